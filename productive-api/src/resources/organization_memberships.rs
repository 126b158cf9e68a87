//! Organization memberships (`/organization_memberships`): the memberships of the token's person, and the cheapest
//! credential check.
//!
//! Sources: api-notes productive.md §1 "Cheapest credential check": superplane validates token + organization
//! with `GET /organization_memberships?page[size]=1` ("a token valid for a different organization is rejected
//! before any data is read", sp `client.go`; **unverified** as a documented recommendation); community OpenAPI
//! `/organization_memberships` (GET, filter `organization_id`), `/organization_memberships/{id}`. Attribute names
//! are **unverified** (no sample body found; every one is kept in `extra`).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{
    Client, Error,
    jsonapi::{Document, Query, Resource},
    types::{OrganizationMembershipId, PersonId, ResourceType, rel_id},
};

/// An organization membership's attributes (no documented sample: all kept in `extra`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct OrganizationMembershipAttributes {
    /// Every attribute, as sent.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ResourceType for OrganizationMembershipAttributes {
    const TYPE: &'static str = "organization_memberships";
    type Id = OrganizationMembershipId;
}

/// An organization membership resource.
pub type OrganizationMembership = Resource<OrganizationMembershipAttributes>;

impl Resource<OrganizationMembershipAttributes> {
    /// The `person` relationship id, when linkage was sent.
    #[must_use]
    pub fn person_id(&self) -> Option<PersonId> {
        rel_id(self, "person")
    }
}

super::collection!(
    list_organization_memberships,
    stream_organization_memberships,
    "/organization_memberships",
    OrganizationMembershipAttributes,
    "organization memberships",
    "Filters: `organization_id` (community OpenAPI `/organization_memberships`)."
);

impl Client {
    /// `GET /organization_memberships/{id}`.
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn get_organization_membership(
        &self,
        id: &OrganizationMembershipId,
    ) -> Result<Document<OrganizationMembership>, Error> {
        self.get_resource(&format!("/organization_memberships/{id}"), &Query::new()).await
    }

    /// Checks the token and organization id with one cheap request, `GET /organization_memberships?page[size]=1`
    /// (one item read). `Ok(())` when both are accepted; a wrong token is an [`Error::Api`] 401, a token of
    /// another organization a 403 (api-notes productive.md §1: P-llms "401 = unauthenticated | 403 =
    /// unauthorized").
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn check_credentials(&self) -> Result<(), Error> {
        self.list_organization_memberships(&Query::new().page_size(1)).await.map(drop)
    }
}
