//! Event types (booking pages): `GET /event_types`, `GET /event_types/{uuid}`, and their bookable times
//! (`GET /event_type_available_times`, at most 7 days per request).

use api_core::Request;
use chrono::{DateTime, Utc};
use futures::{Stream, StreamExt as _};
use serde::{Deserialize, Serialize};

use crate::{
    Client, Collection, Error,
    client::clamp_count,
    scheduled_events::format_time,
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

/// The longest range `GET /event_type_available_times` and `GET /user_busy_times` accept: "Date range can be no
/// greater than 1 week (7 days)" (OpenAPI `calendly.yaml`, both operations; api-notes/calendly.md §1 notes they do
/// not paginate).
pub const MAX_AVAILABILITY_RANGE: chrono::TimeDelta = chrono::TimeDelta::days(7);

/// Checks a `start_time`/`end_time` range against the 7-day rule before anything is sent.
pub(crate) fn check_range(start: DateTime<Utc>, end: DateTime<Utc>) -> Result<(), Error> {
    if end <= start {
        return Err(Error::InvalidRequest(format!(
            "end_time ({}) must be after start_time ({})",
            format_time(end),
            format_time(start)
        )));
    }
    if end - start > MAX_AVAILABILITY_RANGE {
        return Err(Error::InvalidRequest(format!(
            "the range {} .. {} is longer than Calendly's 7 days; use the stream_* form, which splits it",
            format_time(start),
            format_time(end)
        )));
    }
    Ok(())
}

/// Splits `start..end` into consecutive windows of at most 7 days.
pub(crate) fn windows(start: DateTime<Utc>, end: DateTime<Utc>) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
    let mut out = Vec::new();
    let mut from = start;
    while from < end {
        let to = (from + MAX_AVAILABILITY_RANGE).min(end);
        out.push((from, to));
        from = to;
    }
    out
}

/// `{"collection": [...]}` without pagination (`/event_type_available_times`, `/user_busy_times`,
/// `/user_availability_schedules`).
#[derive(Debug, Deserialize)]
pub(crate) struct Unpaged<T> {
    pub(crate) collection: Vec<T>,
}

api_core::open_enum!(
    /// `status` of an available time.
    AvailableTimeStatus {
        /// Bookable.
        Available = "available",
    }
);

/// One bookable start time of an event type (`GET /event_type_available_times` `collection[]`; OpenAPI schema
/// `EventTypeAvailableTime`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AvailableTime {
    /// `available`.
    pub status: AvailableTimeStatus,
    /// Seats left (group event types have more than one).
    #[serde(default)]
    pub invitees_remaining: Option<u32>,
    /// The start time (UTC).
    pub start_time: DateTime<Utc>,
    /// The booking page for this slot.
    #[serde(default)]
    pub scheduling_url: Option<String>,
    /// Other fields, kept.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// `GET /event_type_available_times` query: an event type and a range of at most 7 days.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct ListAvailableTimes {
    /// The event type.
    pub event_type: EventTypeUri,
    /// Range start (UTC).
    pub start_time: DateTime<Utc>,
    /// Range end (UTC).
    pub end_time: DateTime<Utc>,
}

impl ListAvailableTimes {
    /// Available times of `event_type` in `start_time..end_time`.
    pub fn new(event_type: EventTypeUri, start_time: DateTime<Utc>, end_time: DateTime<Utc>) -> Self {
        Self { event_type, start_time, end_time }
    }

    /// The query parameters.
    #[must_use]
    pub fn to_query(&self) -> Vec<(String, String)> {
        vec![
            ("event_type".to_owned(), self.event_type.to_string()),
            ("start_time".to_owned(), format_time(self.start_time)),
            ("end_time".to_owned(), format_time(self.end_time)),
        ]
    }
}

impl Client {
    /// One event type (`GET /event_types/{uuid}`).
    ///
    /// # Errors
    /// [`Error`]; 404 when it does not exist.
    pub async fn get_event_type(&self, event_type: &EventTypeUri) -> Result<EventType, Error> {
        self.resource(Request::get(format!("/event_types/{}", event_type.uuid()))).await
    }

    /// The available start times of an event type in a range of at most 7 days (the endpoint does not paginate:
    /// this is the whole answer). The range is checked before sending.
    ///
    /// # Errors
    /// [`Error::InvalidRequest`] for an empty range or one longer than 7 days (nothing sent); [`Error`].
    pub async fn list_event_type_available_times(
        &self,
        query: &ListAvailableTimes,
    ) -> Result<Vec<AvailableTime>, Error> {
        check_range(query.start_time, query.end_time)?;
        let mut req = Request::get("/event_type_available_times");
        for (k, v) in query.to_query() {
            req = req.query(k, v);
        }
        Ok(self.json::<Unpaged<AvailableTime>>(req).await?.collection)
    }

    /// The available start times over any range, as a lazy stream: one request per 7-day window, in order.
    pub fn stream_event_type_available_times(
        &self,
        query: &ListAvailableTimes,
    ) -> impl Stream<Item = Result<AvailableTime, Error>> + Send + 'static {
        let client = self.clone();
        let event_type = query.event_type.clone();
        // an empty or inverted range goes through as one window, so the stream yields the list's InvalidRequest
        let wins = if query.end_time > query.start_time {
            windows(query.start_time, query.end_time)
        } else {
            vec![(query.start_time, query.end_time)]
        };
        futures::stream::iter(wins)
            .then(move |(from, to)| {
                let client = client.clone();
                let q = ListAvailableTimes::new(event_type.clone(), from, to);
                async move { client.list_event_type_available_times(&q).await }
            })
            .flat_map(|r| match r {
                Ok(items) => futures::stream::iter(items.into_iter().map(Ok).collect::<Vec<_>>()),
                Err(e) => futures::stream::iter(vec![Err(e)]),
            })
            .scan(false, |failed, item| {
                // stop after the first error, like the paginated streams
                if *failed {
                    return futures::future::ready(None);
                }
                *failed = item.is_err();
                futures::future::ready(Some(item))
            })
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone as _;

    use super::*;

    #[test]
    fn the_seven_day_rule() {
        let t0 = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        assert!(check_range(t0, t0 + chrono::TimeDelta::days(7)).is_ok());
        assert!(matches!(
            check_range(t0, t0 + chrono::TimeDelta::days(7) + chrono::TimeDelta::seconds(1)),
            Err(Error::InvalidRequest(_))
        ));
        assert!(matches!(check_range(t0, t0), Err(Error::InvalidRequest(_))));
        let w = windows(t0, t0 + chrono::TimeDelta::days(16));
        assert_eq!(w.len(), 3);
        assert_eq!(w[0], (t0, t0 + chrono::TimeDelta::days(7)));
        assert_eq!(w[2], (t0 + chrono::TimeDelta::days(14), t0 + chrono::TimeDelta::days(16)));
    }
}
