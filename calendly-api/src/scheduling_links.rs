//! Single-use scheduling links: `POST /scheduling_links` (OpenAPI `calendly.yaml`, "Create Single-Use Scheduling
//! Link"): a booking URL for one event type that can be used for one booking.

use api_core::Request;
use serde::{Deserialize, Serialize};

use crate::{Client, Error, uri::EventTypeUri};

/// A single-use scheduling link (the `resource` of `POST /scheduling_links`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchedulingLink {
    /// The link to send to the invitee.
    pub booking_url: String,
    /// The event type it books.
    #[serde(default)]
    pub owner: Option<EventTypeUri>,
    /// `EventType` (currently always).
    #[serde(default)]
    pub owner_type: Option<String>,
    /// Other fields, kept.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// `POST /scheduling_links` body: `{max_event_count: 1, owner, owner_type: "EventType"}` — all three required, and
/// `max_event_count` can only be 1 (the spec's enum is `[1]`).
#[derive(Debug, Serialize)]
struct CreateBody<'a> {
    max_event_count: u32,
    owner: &'a EventTypeUri,
    owner_type: &'static str,
}

impl Client {
    /// Creates a single-use scheduling link for `event_type` (201 `{resource: {booking_url, owner, owner_type}}`).
    /// Not idempotent: a retry after a lost answer creates a second link (links are free and expire unused).
    ///
    /// # Errors
    /// [`Error`]; 404 for an unknown event type.
    pub async fn create_scheduling_link(&self, event_type: &EventTypeUri) -> Result<SchedulingLink, Error> {
        let body = CreateBody { max_event_count: 1, owner: event_type, owner_type: "EventType" };
        let req = Request::post("/scheduling_links").json(&body).map_err(|e| Error::InvalidRequest(e.to_string()))?;
        self.resource(req).await
    }
}
