//! Users and organization memberships: `GET /users/me`, `GET /users/{uuid}`, `GET /organization_memberships`.

use api_core::Request;
use chrono::{DateTime, Utc};
use futures::Stream;
use serde::{Deserialize, Serialize};

use crate::{
    Client, Collection, Error,
    client::clamp_count,
    uri::{MembershipUri, OrganizationUri, UserUri},
};

/// A Calendly user (`GET /users/me` `resource`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// The user URI.
    pub uri: UserUri,
    /// Display name.
    #[serde(default)]
    pub name: Option<String>,
    /// Scheduling page slug.
    #[serde(default)]
    pub slug: Option<String>,
    /// Email.
    #[serde(default)]
    pub email: Option<String>,
    /// Scheduling page URL.
    #[serde(default)]
    pub scheduling_url: Option<String>,
    /// IANA time zone.
    #[serde(default)]
    pub timezone: Option<String>,
    /// Avatar URL.
    #[serde(default)]
    pub avatar_url: Option<String>,
    /// Created at.
    #[serde(default)]
    pub created_at: Option<DateTime<Utc>>,
    /// Updated at.
    #[serde(default)]
    pub updated_at: Option<DateTime<Utc>>,
    /// The user's current organization (absent on memberships' embedded users).
    #[serde(default)]
    pub current_organization: Option<OrganizationUri>,
    /// Other fields, kept.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

api_core::open_enum!(
    /// A member's role.
    MembershipRole {
        /// A regular member.
        User = "user",
        /// An admin.
        Admin = "admin",
        /// The owner.
        Owner = "owner",
    }
);

/// An organization membership.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrganizationMembership {
    /// The membership URI.
    pub uri: MembershipUri,
    /// Role.
    pub role: MembershipRole,
    /// The member.
    pub user: User,
    /// The organization.
    pub organization: OrganizationUri,
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

/// `GET /organization_memberships` filters: an organization or a user is required.
#[derive(Debug, Clone, Default, PartialEq)]
#[must_use]
pub struct ListMemberships {
    /// Members of this organization.
    pub organization: Option<OrganizationUri>,
    /// Memberships of this user.
    pub user: Option<UserUri>,
    /// Only this email.
    pub email: Option<String>,
    /// Page size (1..=100; default 100).
    pub count: Option<u32>,
}

impl ListMemberships {
    /// Members of `organization`.
    pub fn for_organization(organization: OrganizationUri) -> Self {
        Self { organization: Some(organization), ..Self::default() }
    }

    /// Memberships of `user`.
    pub fn for_user(user: UserUri) -> Self {
        Self { user: Some(user), ..Self::default() }
    }

    /// Only `email`.
    pub fn email(mut self, email: impl Into<String>) -> Self {
        self.email = Some(email.into());
        self
    }

    /// The query parameters.
    #[must_use]
    pub fn to_query(&self) -> Vec<(String, String)> {
        let mut q = Vec::new();
        if let Some(o) = &self.organization {
            q.push(("organization".to_owned(), o.to_string()));
        }
        if let Some(u) = &self.user {
            q.push(("user".to_owned(), u.to_string()));
        }
        if let Some(e) = &self.email {
            q.push(("email".to_owned(), e.clone()));
        }
        q.push(("count".to_owned(), clamp_count(self.count).to_string()));
        q
    }
}

impl Client {
    /// The authenticated user, with `current_organization`.
    ///
    /// # Errors
    /// [`Error`]; 401 for a bad token.
    pub async fn me(&self) -> Result<User, Error> {
        self.resource(Request::get("/users/me")).await
    }

    /// One user.
    ///
    /// # Errors
    /// [`Error`].
    pub async fn get_user(&self, user: &UserUri) -> Result<User, Error> {
        self.resource(Request::get(format!("/users/{}", user.uuid()))).await
    }

    /// One page of organization memberships (`page_token`: `None` for the first page, then
    /// `pagination.next_page_token`).
    ///
    /// # Errors
    /// [`Error`].
    pub async fn list_memberships(
        &self,
        query: &ListMemberships,
        page_token: Option<&str>,
    ) -> Result<Collection<OrganizationMembership>, Error> {
        self.page("/organization_memberships", &query.to_query(), page_token).await
    }

    /// Every organization membership, as a lazy stream over all pages.
    pub fn stream_memberships(
        &self,
        query: &ListMemberships,
    ) -> impl Stream<Item = Result<OrganizationMembership, Error>> + Send + 'static {
        self.stream("/organization_memberships", query.to_query())
    }
}
