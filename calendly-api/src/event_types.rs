//! Event types (booking pages): `GET /event_types`.

use chrono::{DateTime, Utc};
use futures::Stream;
use serde::{Deserialize, Serialize};

use crate::{
    Client, Collection, Error,
    client::clamp_count,
    uri::{EventTypeUri, OrganizationUri, UserUri},
};

/// An event type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventType {
    /// The event type URI.
    pub uri: EventTypeUri,
    /// Name.
    #[serde(default)]
    pub name: Option<String>,
    /// Whether it can be booked (`null` reads as `false`).
    #[serde(default, deserialize_with = "api_core::de::null_as_default")]
    pub active: bool,
    /// URL slug.
    #[serde(default)]
    pub slug: Option<String>,
    /// Booking page URL.
    #[serde(default)]
    pub scheduling_url: Option<String>,
    /// Length in minutes.
    #[serde(default)]
    pub duration: Option<u32>,
    /// `solo` or `group`.
    #[serde(default)]
    pub kind: Option<String>,
    /// `round_robin`, `collective`, or null.
    #[serde(default)]
    pub pooling_type: Option<String>,
    /// `StandardEventType` or `AdhocEventType`.
    #[serde(default, rename = "type")]
    pub type_: Option<String>,
    /// Colour (`#rrggbb`).
    #[serde(default)]
    pub color: Option<String>,
    /// Whether it is hidden from the scheduling page.
    #[serde(default)]
    pub secret: Option<bool>,
    /// Plain-text description.
    #[serde(default)]
    pub description_plain: Option<String>,
    /// The owner profile: `{type: "User"|"Team", name, owner}`.
    #[serde(default)]
    pub profile: Option<serde_json::Value>,
    /// Custom booking questions (`null` reads as none).
    #[serde(default, deserialize_with = "api_core::de::null_as_default")]
    pub custom_questions: Vec<serde_json::Value>,
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

/// `GET /event_types` filters: a user or an organization is required.
#[derive(Debug, Clone, Default, PartialEq)]
#[must_use]
pub struct ListEventTypes {
    /// Event types of this user.
    pub user: Option<UserUri>,
    /// Event types of this organization.
    pub organization: Option<OrganizationUri>,
    /// Only active (`true`) or inactive (`false`).
    pub active: Option<bool>,
    /// Sort, e.g. `name:asc`.
    pub sort: Option<String>,
    /// Page size (1..=100; default 100).
    pub count: Option<u32>,
}

impl ListEventTypes {
    /// Event types of `user`.
    pub fn for_user(user: UserUri) -> Self {
        Self { user: Some(user), ..Self::default() }
    }

    /// Event types of `organization`.
    pub fn for_organization(organization: OrganizationUri) -> Self {
        Self { organization: Some(organization), ..Self::default() }
    }

    /// Only active or inactive.
    pub fn active(mut self, active: bool) -> Self {
        self.active = Some(active);
        self
    }

    /// The query parameters.
    #[must_use]
    pub fn to_query(&self) -> Vec<(String, String)> {
        let mut q = Vec::new();
        if let Some(u) = &self.user {
            q.push(("user".to_owned(), u.to_string()));
        }
        if let Some(o) = &self.organization {
            q.push(("organization".to_owned(), o.to_string()));
        }
        if let Some(a) = self.active {
            q.push(("active".to_owned(), a.to_string()));
        }
        if let Some(s) = &self.sort {
            q.push(("sort".to_owned(), s.clone()));
        }
        q.push(("count".to_owned(), clamp_count(self.count).to_string()));
        q
    }
}

impl Client {
    /// One page of event types (`page_token`: `None` for the first page, then `pagination.next_page_token`).
    ///
    /// # Errors
    /// [`Error`].
    pub async fn list_event_types(
        &self,
        query: &ListEventTypes,
        page_token: Option<&str>,
    ) -> Result<Collection<EventType>, Error> {
        self.page("/event_types", &query.to_query(), page_token).await
    }

    /// Every event type matching `query`, as a lazy stream over all pages.
    pub fn stream_event_types(
        &self,
        query: &ListEventTypes,
    ) -> impl Stream<Item = Result<EventType, Error>> + Send + 'static {
        self.stream("/event_types", query.to_query())
    }
}
