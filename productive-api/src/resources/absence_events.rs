//! Absence events (`/events`): Productive's absence categories (time off, remote work) that absence bookings
//! point to (`BookingTarget::Absence`). Not webhook events. Get, list one page, stream.
//!
//! Sources: developer.productive.io/events.html and /reference/resources/events ("Event resources represent
//! Absence categories"; attributes `name`, `description`, `color_id`, `icon_id`, `event_type_id` 1 paid / 2
//! unpaid, `limitation_type_id` 2 limited by days / 3 limited by hours / 4 unlimited, `half_day_bookings`,
//! `sync_personal_integrations`, `absence_type` `time_off` / `remote_work`); withone "List Events" (the sample
//! body in `tests/coverage.rs`; filters `id`, `status` 1 active / 2 archived, `absence_type`, `limitation_type`,
//! `limited`, `half_day_bookings`, `sync_personal_integrations`).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{
    Client, Error,
    jsonapi::{Document, Query, Resource},
    types::{AbsenceEventId, AbsencePayType, ResourceType},
};

api_core::open_enum!(
    /// An absence event's `absence_type` (events.html).
    AbsenceType {
        /// Time off (vacation, sick leave).
        TimeOff = "time_off",
        /// Remote work (always unpaid).
        RemoteWork = "remote_work",
    }
);

/// An absence event's attributes (events.html "Supported attributes"; unknown attributes kept in `extra`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct AbsenceEventAttributes {
    /// Name.
    #[serde(deserialize_with = "crate::types::null_as_default")]
    pub name: String,
    /// Description.
    pub description: Option<String>,
    /// Paid or unpaid.
    pub event_type_id: Option<AbsencePayType>,
    /// How the time off is limited (2 by days, 3 by hours, 4 unlimited), as sent.
    pub limitation_type_id: Option<u64>,
    /// Whether half-day bookings are allowed.
    pub half_day_bookings: Option<bool>,
    /// Whether the assignee's absence status is synced to calendars and Slack.
    pub sync_personal_integrations: Option<bool>,
    /// Time off or remote work.
    pub absence_type: Option<AbsenceType>,
    /// Color id, as sent (the samples show `null` and `"1"`).
    pub color_id: Option<Value>,
    /// Icon id, as sent.
    pub icon_id: Option<Value>,
    /// When archived.
    pub archived_at: Option<String>,
    /// Unknown attributes.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ResourceType for AbsenceEventAttributes {
    const TYPE: &'static str = "events";
    type Id = AbsenceEventId;
}

/// An absence event resource.
pub type AbsenceEvent = Resource<AbsenceEventAttributes>;

super::collection!(
    list_absence_events,
    stream_absence_events,
    "/events",
    AbsenceEventAttributes,
    "absence events (absence categories)",
    "Filters: `status` (1 active, 2 archived), `absence_type`, `limitation_type`, `limited`, … (developer.productive.io/events.html)."
);

impl Client {
    /// `GET /events/{id}`.
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn get_absence_event(&self, id: &AbsenceEventId) -> Result<Document<AbsenceEvent>, Error> {
        self.get_resource(&format!("/events/{id}"), &Query::new()).await
    }
}
