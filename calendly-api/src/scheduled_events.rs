//! Scheduled events (meetings): list, get, cancel. `GET /scheduled_events`, `GET /scheduled_events/{uuid}`,
//! `POST /scheduled_events/{uuid}/cancellation`.

use api_core::Request;
use chrono::{DateTime, SecondsFormat, Utc};
use futures::Stream;
use serde::{Deserialize, Serialize};

use crate::{
    Client, Collection, Error,
    client::clamp_count,
    uri::{EventTypeUri, EventUri, GroupUri, OrganizationUri, UserUri},
};

api_core::open_enum!(
    /// `status` of a scheduled event.
    EventStatus {
        /// Booked and not canceled.
        Active = "active",
        /// Canceled.
        Canceled = "canceled",
    }
);

api_core::open_enum!(
    /// `location.type`. Open: the spec's names differ from what is delivered (`zoom` vs `zoom_conference`).
    LocationType {
        /// In person (`location`, `additional_info`).
        Physical = "physical",
        /// Custom text.
        Custom = "custom",
        /// The invitee provides the location.
        AskInvitee = "ask_invitee",
        /// The invitee calls the host.
        InboundCall = "inbound_call",
        /// The host calls the invitee.
        OutboundCall = "outbound_call",
        /// Google Meet.
        GoogleConference = "google_conference",
        /// GoToMeeting.
        Gotomeeting = "gotomeeting",
        /// Microsoft Teams.
        MicrosoftTeamsConference = "microsoft_teams_conference",
        /// Webex.
        WebexConference = "webex_conference",
        /// Zoom, as delivered.
        Zoom = "zoom",
        /// Zoom, as the 2023 spec names it.
        ZoomConference = "zoom_conference",
    }
);

api_core::open_enum!(
    /// Who canceled: `canceler_type`.
    CancelerType {
        /// The host (or an API call on the host's behalf).
        Host = "host",
        /// The invitee.
        Invitee = "invitee",
    }
);

impl LocationType {
    /// Whether this is a Zoom meeting, under either name: `zoom` (what deliveries and API responses carry) or
    /// `zoom_conference` (the 2023 spec's enum) (api-notes/calendly.md §3, "Spec vs reality").
    #[must_use]
    pub fn is_zoom(&self) -> bool {
        matches!(self, Self::Zoom | Self::ZoomConference)
    }
}

/// `location`: polymorphic by `type`; modelled as an open struct.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Location {
    /// The kind.
    #[serde(rename = "type")]
    pub kind: LocationType,
    /// Address or text (physical, custom, phone numbers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// Conference join URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub join_url: Option<String>,
    /// Conference provisioning status (`initiated`, `processing`, `pushed`, `failed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Extra text for physical locations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub additional_info: Option<String>,
    /// Provider data (Zoom's `{id, settings, password, extra}`; `id` is a number in deliveries).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<serde_json::Value>,
    /// Other fields, kept.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// `invitees_counter`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InviteesCounter {
    /// All invitees, canceled included.
    #[serde(default)]
    pub total: u32,
    /// Active invitees.
    #[serde(default)]
    pub active: u32,
    /// Capacity (greater than 1 for group events).
    #[serde(default)]
    pub limit: u32,
}

/// A host of the event: `event_memberships[]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventMembership {
    /// The host user.
    pub user: UserUri,
    /// Host email.
    #[serde(default)]
    pub user_email: Option<String>,
    /// Host name.
    #[serde(default)]
    pub user_name: Option<String>,
    /// Other fields, kept.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// An additional guest: `event_guests[]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventGuest {
    /// Guest email.
    pub email: String,
    /// Added at.
    #[serde(default)]
    pub created_at: Option<DateTime<Utc>>,
    /// Updated at.
    #[serde(default)]
    pub updated_at: Option<DateTime<Utc>>,
}

/// A cancellation (`cancellation` on events and invitees; the body of `POST …/cancellation`'s response).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Cancellation {
    /// Free text: usually the canceling person's name.
    #[serde(default)]
    pub canceled_by: Option<String>,
    /// The reason given, if any.
    #[serde(default)]
    pub reason: Option<String>,
    /// Host or invitee (missing in some documented examples).
    #[serde(default)]
    pub canceler_type: Option<CancelerType>,
    /// When.
    #[serde(default)]
    pub created_at: Option<DateTime<Utc>>,
}

/// A scheduled event: `GET /scheduled_events/{uuid}` `resource`, and `payload.scheduled_event` in webhooks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScheduledEvent {
    /// The event URI.
    pub uri: EventUri,
    /// The event type's name (e.g. "Intro call").
    #[serde(default)]
    pub name: Option<String>,
    /// Active or canceled.
    #[serde(default = "default_active")]
    pub status: EventStatus,
    /// Start (UTC).
    pub start_time: DateTime<Utc>,
    /// End (UTC).
    pub end_time: DateTime<Utc>,
    /// The event type.
    #[serde(default)]
    pub event_type: Option<EventTypeUri>,
    /// Where.
    #[serde(default)]
    pub location: Option<Location>,
    /// Invitee counts.
    #[serde(default)]
    pub invitees_counter: Option<InviteesCounter>,
    /// Created at.
    #[serde(default)]
    pub created_at: Option<DateTime<Utc>>,
    /// Updated at.
    #[serde(default)]
    pub updated_at: Option<DateTime<Utc>>,
    /// Hosts.
    #[serde(default)]
    pub event_memberships: Vec<EventMembership>,
    /// Additional guests.
    #[serde(default)]
    pub event_guests: Vec<EventGuest>,
    /// Set when the event is canceled.
    #[serde(default)]
    pub cancellation: Option<Cancellation>,
    /// Meeting notes (plain text).
    #[serde(default)]
    pub meeting_notes_plain: Option<String>,
    /// Meeting notes (HTML).
    #[serde(default)]
    pub meeting_notes_html: Option<String>,
    /// Other fields (`calendar_event`, …), kept.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl Location {
    /// Whether the meeting is on Zoom (`type` `zoom` or `zoom_conference`, see [`LocationType::is_zoom`]).
    #[must_use]
    pub fn is_zoom(&self) -> bool {
        self.kind.is_zoom()
    }
}

fn default_active() -> EventStatus {
    EventStatus::Active
}

api_core::open_enum!(
    /// Sort order of scheduled events.
    EventSort {
        /// Earliest first.
        StartTimeAsc = "start_time:asc",
        /// Latest first.
        StartTimeDesc = "start_time:desc",
    }
);

/// `GET /scheduled_events` filters. Pass `user` (your own events), `organization` (admins), or `group`; admins may
/// combine `organization` with `user` or `group`.
#[derive(Debug, Clone, Default, PartialEq)]
#[must_use]
pub struct ListScheduledEvents {
    /// Events of this user.
    pub user: Option<UserUri>,
    /// Events of this organization.
    pub organization: Option<OrganizationUri>,
    /// Events of this group.
    pub group: Option<GroupUri>,
    /// Only this status.
    pub status: Option<EventStatus>,
    /// Start time at or after.
    pub min_start_time: Option<DateTime<Utc>>,
    /// Start time before.
    pub max_start_time: Option<DateTime<Utc>>,
    /// Only events with an invitee with this email.
    pub invitee_email: Option<String>,
    /// Sort order.
    pub sort: Option<EventSort>,
    /// Page size (1..=100; default 100).
    pub count: Option<u32>,
}

impl ListScheduledEvents {
    /// Events of `user`.
    pub fn for_user(user: UserUri) -> Self {
        Self { user: Some(user), ..Self::default() }
    }

    /// Events of `organization` (needs an admin or owner).
    pub fn for_organization(organization: OrganizationUri) -> Self {
        Self { organization: Some(organization), ..Self::default() }
    }

    /// Also filter by user (with an organization).
    pub fn user(mut self, user: UserUri) -> Self {
        self.user = Some(user);
        self
    }

    /// Filter by group.
    pub fn group(mut self, group: GroupUri) -> Self {
        self.group = Some(group);
        self
    }

    /// Only `status`.
    pub fn status(mut self, status: EventStatus) -> Self {
        self.status = Some(status);
        self
    }

    /// Start time at or after `t`.
    pub fn min_start_time(mut self, t: DateTime<Utc>) -> Self {
        self.min_start_time = Some(t);
        self
    }

    /// Start time before `t`.
    pub fn max_start_time(mut self, t: DateTime<Utc>) -> Self {
        self.max_start_time = Some(t);
        self
    }

    /// Only events with an invitee with this email.
    pub fn invitee_email(mut self, email: impl Into<String>) -> Self {
        self.invitee_email = Some(email.into());
        self
    }

    /// Sort order.
    pub fn sort(mut self, sort: EventSort) -> Self {
        self.sort = Some(sort);
        self
    }

    /// Page size (clamped to 1..=100).
    pub fn count(mut self, n: u32) -> Self {
        self.count = Some(n);
        self
    }

    /// The query parameters, in a stable order.
    #[must_use]
    pub fn to_query(&self) -> Vec<(String, String)> {
        let mut q = Vec::new();
        let mut push = |k: &str, v: Option<String>| {
            if let Some(v) = v {
                q.push((k.to_owned(), v));
            }
        };
        push("user", self.user.as_ref().map(ToString::to_string));
        push("organization", self.organization.as_ref().map(ToString::to_string));
        push("group", self.group.as_ref().map(ToString::to_string));
        push("status", self.status.as_ref().map(ToString::to_string));
        push("min_start_time", self.min_start_time.map(format_time));
        push("max_start_time", self.max_start_time.map(format_time));
        push("invitee_email", self.invitee_email.clone());
        push("sort", self.sort.as_ref().map(ToString::to_string));
        push("count", Some(clamp_count(self.count).to_string()));
        q
    }
}

/// Calendly's UTC timestamp format: `2026-06-10T06:30:00.000000Z`.
#[must_use]
pub fn format_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// The body of `POST /scheduled_events/{uuid}/cancellation`.
#[derive(Debug, Serialize)]
struct CancelBody<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
}

impl Client {
    /// One page of scheduled events (`page_token`: `None` for the first page, then
    /// `pagination.next_page_token`).
    ///
    /// # Errors
    /// [`Error`].
    pub async fn list_scheduled_events(
        &self,
        query: &ListScheduledEvents,
        page_token: Option<&str>,
    ) -> Result<Collection<ScheduledEvent>, Error> {
        self.page("/scheduled_events", &query.to_query(), page_token).await
    }

    /// Every scheduled event matching `query`, as a lazy stream (one request per 100 events).
    pub fn stream_scheduled_events(
        &self,
        query: &ListScheduledEvents,
    ) -> impl Stream<Item = Result<ScheduledEvent, Error>> + Send + 'static {
        self.stream("/scheduled_events", query.to_query())
    }

    /// One scheduled event.
    ///
    /// # Errors
    /// [`Error`]; 404 when it does not exist.
    pub async fn get_scheduled_event(&self, event: &EventUri) -> Result<ScheduledEvent, Error> {
        self.resource(Request::get(format!("/scheduled_events/{}", event.uuid()))).await
    }

    /// Cancels a scheduled event (all invitees), with an optional reason (max 10,000 characters). Calendly answers
    /// 201 with the cancellation; 403 when already canceled or in the past.
    ///
    /// # Errors
    /// [`Error`].
    pub async fn cancel_event(&self, event: &EventUri, reason: Option<&str>) -> Result<Cancellation, Error> {
        let req = Request::post(format!("/scheduled_events/{}/cancellation", event.uuid()))
            .json(&CancelBody { reason })
            .map_err(|e| Error::InvalidRequest(e.to_string()))?;
        self.resource(req).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_order_and_format() {
        let t = DateTime::parse_from_rfc3339("2026-06-10T06:30:00Z").unwrap().with_timezone(&Utc);
        let q = ListScheduledEvents::for_organization("https://api.calendly.com/organizations/O".into())
            .status(EventStatus::Active)
            .min_start_time(t)
            .invitee_email("a@b.c")
            .count(500)
            .to_query();
        assert_eq!(
            q,
            vec![
                ("organization".into(), "https://api.calendly.com/organizations/O".into()),
                ("status".into(), "active".into()),
                ("min_start_time".into(), "2026-06-10T06:30:00.000000Z".into()),
                ("invitee_email".into(), "a@b.c".into()),
                ("count".into(), "100".into()),
            ]
        );
    }

    #[test]
    fn unknown_location_type_round_trips() {
        let l: Location = serde_json::from_str(r#"{"type":"hologram","join_url":"x","beam":1}"#).unwrap();
        assert_eq!(l.kind, LocationType::Unknown("hologram".into()));
        assert_eq!(l.extra["beam"], 1);
        let back = serde_json::to_value(&l).unwrap();
        assert_eq!(back["type"], "hologram");
        assert!(!l.is_zoom());
        for (kind, zoom) in [("zoom", true), ("zoom_conference", true), ("google_conference", false)] {
            let l: Location = serde_json::from_value(serde_json::json!({"type": kind})).unwrap();
            assert_eq!(l.is_zoom(), zoom, "{kind}");
        }
        let s: EventStatus = serde_json::from_str("\"archived\"").unwrap();
        assert_eq!(s.as_str(), "archived");
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"archived\"");
    }
}
