//! Groups and group relationships: `GET /groups[/{uuid}]`, `GET /group_relationships[/{uuid}]` (scope
//! `groups:read`; Groups API since 2024-05-03, C-rn 2024/5/3). Not in the 2023 OpenAPI copy: query parameters from
//! developer.calendly.com /api-docs/calendly-api/groups/list-groups and list-group-relationships; resource shapes
//! from calendlyr's fixtures (`test/fixtures/groups/retrieve.json`, `group_relationships/retrieve.json`), which
//! mirror the docs' examples. Unknown fields are kept in `extra`.

use api_core::Request;
use chrono::{DateTime, Utc};
use futures::Stream;
use serde::{Deserialize, Serialize};

use crate::{
    Client, Collection, Error,
    client::clamp_count,
    uri::{GroupRelationshipUri, GroupUri, OrganizationUri},
};

/// A group of users in an organization.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    /// The group URI.
    pub uri: GroupUri,
    /// Name.
    #[serde(default)]
    pub name: Option<String>,
    /// The organization.
    #[serde(default)]
    pub organization: Option<OrganizationUri>,
    /// Created at.
    #[serde(default)]
    pub created_at: Option<DateTime<Utc>>,
    /// Updated at.
    #[serde(default)]
    pub updated_at: Option<DateTime<Utc>>,
    /// Other fields (e.g. `member_count`), kept.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

api_core::open_enum!(
    /// `role` of a group relationship.
    GroupRole {
        /// A member of the group.
        Member = "member",
        /// An admin of the group.
        Admin = "admin",
    }
);

/// A group relationship: one owner (an organization membership or an invitation) is a member or an admin of a
/// group; "a given owner can have one membership record, but multiple admin records".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupRelationship {
    /// The relationship URI.
    pub uri: GroupRelationshipUri,
    /// Member or admin.
    pub role: GroupRole,
    /// The owner: an organization membership (`type: "OrganizationMembership"`, with the embedded user) or an
    /// organization invitation; kept as JSON since its shape depends on `type`.
    #[serde(default)]
    pub owner: Option<serde_json::Value>,
    /// The organization.
    #[serde(default)]
    pub organization: Option<OrganizationUri>,
    /// The group.
    #[serde(default)]
    pub group: Option<GroupUri>,
    /// Created at.
    #[serde(default)]
    pub created_at: Option<DateTime<Utc>>,
    /// Updated at.
    #[serde(default)]
    pub updated_at: Option<DateTime<Utc>>,
    /// Other fields, kept.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl GroupRelationship {
    /// The owner's `type` (`OrganizationMembership` or `OrganizationInvitation`).
    #[must_use]
    pub fn owner_type(&self) -> Option<&str> {
        self.owner.as_ref()?.get("type")?.as_str()
    }

    /// The owner's URI.
    #[must_use]
    pub fn owner_uri(&self) -> Option<&str> {
        self.owner.as_ref()?.get("uri")?.as_str()
    }
}

/// `GET /group_relationships` filters (all optional): organization, owner (a membership or invitation URI), group.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[must_use]
pub struct ListGroupRelationships {
    /// Only this organization.
    pub organization: Option<OrganizationUri>,
    /// Only this owner (an organization membership or invitation URI).
    pub owner: Option<String>,
    /// Only this group.
    pub group: Option<GroupUri>,
    /// Page size (1..=100; default 100).
    pub count: Option<u32>,
}

impl ListGroupRelationships {
    /// Relationships in `organization`.
    pub fn for_organization(organization: OrganizationUri) -> Self {
        Self { organization: Some(organization), ..Self::default() }
    }

    /// Relationships of `group`.
    pub fn for_group(group: GroupUri) -> Self {
        Self { group: Some(group), ..Self::default() }
    }

    /// Only this owner.
    pub fn owner(mut self, owner: impl Into<String>) -> Self {
        self.owner = Some(owner.into());
        self
    }

    /// The query parameters.
    #[must_use]
    pub fn to_query(&self) -> Vec<(String, String)> {
        let mut q = Vec::new();
        if let Some(o) = &self.organization {
            q.push(("organization".to_owned(), o.to_string()));
        }
        if let Some(o) = &self.owner {
            q.push(("owner".to_owned(), o.clone()));
        }
        if let Some(g) = &self.group {
            q.push(("group".to_owned(), g.to_string()));
        }
        q.push(("count".to_owned(), clamp_count(self.count).to_string()));
        q
    }
}

fn groups_query(organization: &OrganizationUri) -> Vec<(String, String)> {
    vec![("organization".to_owned(), organization.to_string()), ("count".to_owned(), clamp_count(None).to_string())]
}

impl Client {
    /// One page of the groups of `organization` (`page_token`: `None` first, then `pagination.next_page_token`).
    ///
    /// # Errors
    /// [`Error`].
    pub async fn list_groups(
        &self,
        organization: &OrganizationUri,
        page_token: Option<&str>,
    ) -> Result<Collection<Group>, Error> {
        self.page("/groups", &groups_query(organization), page_token).await
    }

    /// Every group of `organization`, as a lazy stream over all pages.
    pub fn stream_groups(
        &self,
        organization: &OrganizationUri,
    ) -> impl Stream<Item = Result<Group, Error>> + Send + 'static {
        self.stream("/groups", groups_query(organization))
    }

    /// One group.
    ///
    /// # Errors
    /// [`Error`].
    pub async fn get_group(&self, group: &GroupUri) -> Result<Group, Error> {
        self.resource(Request::get(format!("/groups/{}", group.uuid()))).await
    }

    /// One page of group relationships.
    ///
    /// # Errors
    /// [`Error`].
    pub async fn list_group_relationships(
        &self,
        query: &ListGroupRelationships,
        page_token: Option<&str>,
    ) -> Result<Collection<GroupRelationship>, Error> {
        self.page("/group_relationships", &query.to_query(), page_token).await
    }

    /// Every group relationship matching `query`, as a lazy stream over all pages.
    pub fn stream_group_relationships(
        &self,
        query: &ListGroupRelationships,
    ) -> impl Stream<Item = Result<GroupRelationship, Error>> + Send + 'static {
        self.stream("/group_relationships", query.to_query())
    }

    /// One group relationship.
    ///
    /// # Errors
    /// [`Error`].
    pub async fn get_group_relationship(&self, uri: &GroupRelationshipUri) -> Result<GroupRelationship, Error> {
        self.resource(Request::get(format!("/group_relationships/{}", uri.uuid()))).await
    }
}
