//! Organization invitations and memberships: `GET`/`POST /organizations/{uuid}/invitations`,
//! `GET`/`DELETE /organizations/{org_uuid}/invitations/{uuid}`, `GET`/`DELETE /organization_memberships/{uuid}`
//! (OpenAPI `calendly.yaml`, schemas `OrganizationInvitation`, `OrganizationMembership`).

use api_core::Request;
use chrono::{DateTime, Utc};
use futures::Stream;
use serde::{Deserialize, Serialize};

use crate::{
    Client, Collection, Error,
    client::clamp_count,
    uri::{InvitationUri, MembershipUri, OrganizationUri, UserUri},
    users::OrganizationMembership,
};

api_core::open_enum!(
    /// `status` of an invitation.
    InvitationStatus {
        /// Sent, not answered.
        Pending = "pending",
        /// Accepted: `user` is set.
        Accepted = "accepted",
        /// Declined.
        Declined = "declined",
    }
);

/// An invitation to join an organization.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrganizationInvitation {
    /// The invitation URI.
    pub uri: InvitationUri,
    /// The organization.
    pub organization: OrganizationUri,
    /// The invited email.
    pub email: String,
    /// Pending, accepted or declined.
    pub status: InvitationStatus,
    /// Created at.
    #[serde(default)]
    pub created_at: Option<DateTime<Utc>>,
    /// Updated at.
    #[serde(default)]
    pub updated_at: Option<DateTime<Utc>>,
    /// When it was last sent.
    #[serde(default)]
    pub last_sent_at: Option<DateTime<Utc>>,
    /// The user, once accepted.
    #[serde(default)]
    pub user: Option<UserUri>,
    /// Other fields, kept.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// `GET /organizations/{uuid}/invitations` filters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[must_use]
pub struct ListInvitations {
    /// Only this email.
    pub email: Option<String>,
    /// Only this status.
    pub status: Option<InvitationStatus>,
    /// Sort, e.g. `created_at:asc` (the default).
    pub sort: Option<String>,
    /// Page size (1..=100; default 100).
    pub count: Option<u32>,
}

impl ListInvitations {
    /// Only `email`.
    pub fn email(mut self, email: impl Into<String>) -> Self {
        self.email = Some(email.into());
        self
    }

    /// Only `status`.
    pub fn status(mut self, status: InvitationStatus) -> Self {
        self.status = Some(status);
        self
    }

    /// The query parameters.
    #[must_use]
    pub fn to_query(&self) -> Vec<(String, String)> {
        let mut q = Vec::new();
        if let Some(e) = &self.email {
            q.push(("email".to_owned(), e.clone()));
        }
        if let Some(s) = &self.status {
            q.push(("status".to_owned(), s.to_string()));
        }
        if let Some(s) = &self.sort {
            q.push(("sort".to_owned(), s.clone()));
        }
        q.push(("count".to_owned(), clamp_count(self.count).to_string()));
        q
    }
}

#[derive(Serialize)]
struct InviteBody<'a> {
    email: &'a str,
}

fn invitation_path(invitation: &InvitationUri) -> Result<String, Error> {
    let org = invitation
        .organization_uuid()
        .ok_or_else(|| Error::InvalidRequest(format!("not an organization invitation URI: {invitation}")))?;
    Ok(format!("/organizations/{org}/invitations/{}", invitation.uuid()))
}

impl Client {
    /// One page of the invitations of `organization` (`page_token`: `None` first, then
    /// `pagination.next_page_token`).
    ///
    /// # Errors
    /// [`Error`].
    pub async fn list_invitations(
        &self,
        organization: &OrganizationUri,
        query: &ListInvitations,
        page_token: Option<&str>,
    ) -> Result<Collection<OrganizationInvitation>, Error> {
        self.page(&format!("/organizations/{}/invitations", organization.uuid()), &query.to_query(), page_token).await
    }

    /// Every invitation of `organization` matching `query`, as a lazy stream over all pages.
    pub fn stream_invitations(
        &self,
        organization: &OrganizationUri,
        query: &ListInvitations,
    ) -> impl Stream<Item = Result<OrganizationInvitation, Error>> + Send + 'static {
        self.stream(format!("/organizations/{}/invitations", organization.uuid()), query.to_query())
    }

    /// One invitation.
    ///
    /// # Errors
    /// [`Error::InvalidRequest`] for a URI without the organization segment; [`Error`].
    pub async fn get_invitation(&self, invitation: &InvitationUri) -> Result<OrganizationInvitation, Error> {
        self.resource(Request::get(invitation_path(invitation)?)).await
    }

    /// Invites `email` to `organization` (201). 400 `Already Invited` / `Already Organization Member` when it was
    /// done before (check [`crate::ApiErrorBody::title`]); 403 when the seats are used up.
    ///
    /// # Errors
    /// [`Error::InvalidRequest`] for an empty email; [`Error`].
    pub async fn invite_user(
        &self,
        organization: &OrganizationUri,
        email: &str,
    ) -> Result<OrganizationInvitation, Error> {
        if !email.contains('@') {
            return Err(Error::InvalidRequest(format!("not an email address: {email:?}")));
        }
        let req = Request::post(format!("/organizations/{}/invitations", organization.uuid()))
            .json(&InviteBody { email })
            .map_err(|e| Error::InvalidRequest(e.to_string()))?;
        self.resource(req).await
    }

    /// Revokes an invitation (204); its link stops working. 400 `Invitation Already Accepted` once accepted.
    ///
    /// # Errors
    /// [`Error`].
    pub async fn revoke_invitation(&self, invitation: &InvitationUri) -> Result<(), Error> {
        self.send(Request::delete(invitation_path(invitation)?)).await.map(|_| ())
    }

    /// One organization membership.
    ///
    /// # Errors
    /// [`Error`].
    pub async fn get_membership(&self, membership: &MembershipUri) -> Result<OrganizationMembership, Error> {
        self.resource(Request::get(format!("/organization_memberships/{}", membership.uuid()))).await
    }

    /// Removes a user from the organization (204; needs an admin; the owner cannot be removed).
    ///
    /// # Errors
    /// [`Error`].
    pub async fn remove_membership(&self, membership: &MembershipUri) -> Result<(), Error> {
        self.send(Request::delete(format!("/organization_memberships/{}", membership.uuid()))).await.map(|_| ())
    }
}
