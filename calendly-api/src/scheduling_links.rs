//! Single-use scheduling links (`POST /scheduling_links`, calendly.yaml "Create Single-Use Scheduling Link": a
//! booking URL for one event type that can be used for one booking) and shares (`POST /shares`, calendly.yaml
//! "Create Share": a customised one-off copy of an event type with its own links).

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

api_core::open_enum!(
    /// `period_type` of a share: how far ahead it can be booked.
    PeriodType {
        /// `max_booking_time` days into the future, counting available days.
        AvailableMoving = "available_moving",
        /// `max_booking_time` days into the future.
        Moving = "moving",
        /// Between `start_date` and `end_date`.
        Fixed = "fixed",
        /// Any time.
        Unlimited = "unlimited",
    }
);

/// One location of a share (`location_configurations[]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocationConfiguration {
    /// The kind: `physical`, `ask_invitee`, `custom`, `outbound_call`, `inbound_call`, `google_conference`,
    /// `gotomeeting_conference`, `microsoft_teams_conference`, `webex_conference`, `zoom_conference`.
    pub kind: String,
    /// Address or text (`physical`, `custom`, `ask_invitee`; at most 255 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// Extra text (`physical`, `inbound_call`; at most 255 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub additional_info: Option<String>,
    /// Phone number (required for `inbound_call`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone_number: Option<String>,
    /// Position.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<u32>,
}

/// A share's availability: `{rules, timezone}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShareAvailability {
    /// The rules.
    pub rules: Vec<crate::availability::AvailabilityRule>,
    /// IANA time zone of the intervals.
    pub timezone: String,
}

/// `POST /shares` (calendly.yaml "Create Share"): a customised one-off copy of an event type, booked through the
/// single-use links it returns. "Any parameter which is not provided in the request body will be copied from the
/// target Event Type."
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[must_use]
pub struct CreateShare {
    /// The event type to share.
    pub event_type: EventTypeUri,
    /// Name (at most 55 characters).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Length in minutes (1..=720).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration: Option<u32>,
    /// Booking period.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub period_type: Option<PeriodType>,
    /// First bookable day (`fixed`), `YYYY-MM-DD`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_date: Option<chrono::NaiveDate>,
    /// Last bookable day (`fixed`), `YYYY-MM-DD`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_date: Option<chrono::NaiveDate>,
    /// Days ahead (`moving`, `available_moving`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_booking_time: Option<u32>,
    /// Hide a single custom location until booked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hide_location: Option<bool>,
    /// Locations.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub location_configurations: Vec<LocationConfiguration>,
    /// Availability.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub availability_rule: Option<ShareAvailability>,
}

impl CreateShare {
    /// A share of `event_type` with everything copied from it.
    pub fn new(event_type: EventTypeUri) -> Self {
        Self {
            event_type,
            name: None,
            duration: None,
            period_type: None,
            start_date: None,
            end_date: None,
            max_booking_time: None,
            hide_location: None,
            location_configurations: Vec::new(),
            availability_rule: None,
        }
    }

    /// Bookable between two days.
    pub fn fixed(mut self, start: chrono::NaiveDate, end: chrono::NaiveDate) -> Self {
        self.period_type = Some(PeriodType::Fixed);
        self.start_date = Some(start);
        self.end_date = Some(end);
        self
    }

    /// Checks the spec's rules: name ≤ 55 characters, duration 1..=720, dates for `fixed`, `max_booking_time` for
    /// `moving`/`available_moving`, a phone number for `inbound_call`, location texts ≤ 255 characters.
    ///
    /// # Errors
    /// [`Error::InvalidRequest`].
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |m: &str| Err(Error::InvalidRequest(m.to_owned()));
        if self.name.as_ref().is_some_and(|n| n.chars().count() > 55) {
            return bad("name is longer than 55 characters");
        }
        if self.duration.is_some_and(|d| !(1..=720).contains(&d)) {
            return bad("duration must be 1..=720 minutes");
        }
        match &self.period_type {
            Some(PeriodType::Fixed) if self.start_date.is_none() || self.end_date.is_none() => {
                return bad("period_type fixed needs start_date and end_date");
            }
            Some(PeriodType::Moving | PeriodType::AvailableMoving) if self.max_booking_time.is_none() => {
                return bad("period_type moving/available_moving needs max_booking_time");
            }
            _ => {}
        }
        for l in &self.location_configurations {
            if l.kind == "inbound_call" && l.phone_number.is_none() {
                return bad("an inbound_call location needs a phone_number");
            }
            let long = |s: &Option<String>| s.as_ref().is_some_and(|s| s.chars().count() > 255);
            if long(&l.location) || long(&l.additional_info) {
                return bad("location texts are at most 255 characters");
            }
        }
        Ok(())
    }
}

/// The `resource` of `POST /shares`: the links to book it and what the share overrides.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Share {
    /// Single-use links that book the share.
    #[serde(default)]
    pub scheduling_links: Vec<SchedulingLink>,
    /// The overridden settings, as sent back.
    #[serde(default)]
    pub share_override: Option<serde_json::Value>,
    /// Other fields, kept.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl Client {
    /// Creates a share (201): a customised one-off version of an event type with its booking links. Validated
    /// before sending ([`CreateShare::validate`]). Not idempotent.
    ///
    /// # Errors
    /// [`Error::InvalidRequest`] (nothing sent); [`Error`].
    pub async fn create_share(&self, share: &CreateShare) -> Result<Share, Error> {
        share.validate()?;
        let req = Request::post("/shares").json(share).map_err(|e| Error::InvalidRequest(e.to_string()))?;
        self.resource(req).await
    }
}
