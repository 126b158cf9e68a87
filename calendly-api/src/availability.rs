//! Availability: a user's availability schedules (`GET /user_availability_schedules[/{uuid}]`) and busy times
//! (`GET /user_busy_times`, at most 7 days per request). Shapes from the OpenAPI copy `calendly.yaml` (schemas
//! `AvailabilitySchedule`, `UserBusyTime`, and their examples).

use api_core::Request;
use chrono::{DateTime, Utc};
use futures::{Stream, StreamExt as _};
use serde::{Deserialize, Serialize};

use crate::{
    Client, Error,
    event_types::{Unpaged, check_range, windows},
    scheduled_events::format_time,
    uri::{AvailabilityScheduleUri, EventUri, UserUri},
};

/// One `{from, to}` interval of a rule, as `HH:MM` in the schedule's time zone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interval {
    /// Start, `HH:MM`.
    pub from: String,
    /// End, `HH:MM`.
    pub to: String,
}

api_core::open_enum!(
    /// `type` of an availability rule.
    RuleType {
        /// A weekly rule for `wday`.
        Wday = "wday",
        /// A date override for `date`.
        Date = "date",
    }
);

/// An availability rule: weekly (`wday`) or a date override (`date`); no intervals means unavailable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AvailabilityRule {
    /// `wday` or `date`.
    #[serde(rename = "type")]
    pub kind: RuleType,
    /// The available intervals.
    #[serde(default)]
    pub intervals: Vec<Interval>,
    /// The weekday (`sunday` … `saturday`) of a `wday` rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wday: Option<String>,
    /// The date (`YYYY-MM-DD`) of a `date` rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date: Option<String>,
}

/// A user's availability schedule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AvailabilitySchedule {
    /// The schedule URI.
    pub uri: AvailabilityScheduleUri,
    /// Whether it is the user's default schedule.
    #[serde(default)]
    pub default: bool,
    /// Name, e.g. "Working Hours".
    #[serde(default)]
    pub name: Option<String>,
    /// The user.
    #[serde(default)]
    pub user: Option<UserUri>,
    /// IANA time zone of the intervals.
    #[serde(default)]
    pub timezone: Option<String>,
    /// The rules.
    #[serde(default)]
    pub rules: Vec<AvailabilityRule>,
    /// Other fields, kept.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

api_core::open_enum!(
    /// `type` of a busy time.
    BusyTimeType {
        /// A Calendly meeting (with `event`).
        Calendly = "calendly",
        /// An event on a connected calendar ("Check for conflicts").
        External = "external",
    }
);

/// `{uri}` of a busy time's Calendly event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BusyEvent {
    /// The scheduled event.
    pub uri: EventUri,
}

/// One busy period of a user (`GET /user_busy_times` `collection[]`), ascending by start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BusyTime {
    /// `calendly` or `external`.
    #[serde(rename = "type")]
    pub kind: BusyTimeType,
    /// Start (UTC).
    pub start_time: DateTime<Utc>,
    /// End (UTC).
    pub end_time: DateTime<Utc>,
    /// Start including the event type's buffer (Calendly meetings).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buffered_start_time: Option<DateTime<Utc>>,
    /// End including the buffer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buffered_end_time: Option<DateTime<Utc>>,
    /// The Calendly meeting (`calendly` busy times).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<BusyEvent>,
}

impl Client {
    /// The availability schedules of `user` (`GET /user_availability_schedules?user=`; the endpoint does not
    /// paginate, so this is every schedule).
    ///
    /// # Errors
    /// [`Error`].
    pub async fn list_availability_schedules(&self, user: &UserUri) -> Result<Vec<AvailabilitySchedule>, Error> {
        let req = Request::get("/user_availability_schedules").query("user", user);
        Ok(self.json::<Unpaged<AvailabilitySchedule>>(req).await?.collection)
    }

    /// The availability schedules of `user`, as a stream (one request; for symmetry with the paginated lists).
    pub fn stream_availability_schedules(
        &self,
        user: &UserUri,
    ) -> impl Stream<Item = Result<AvailabilitySchedule, Error>> + Send + 'static {
        let client = self.clone();
        let user = user.clone();
        futures::stream::once(async move { client.list_availability_schedules(&user).await }).flat_map(|r| {
            futures::stream::iter(match r {
                Ok(items) => items.into_iter().map(Ok).collect::<Vec<_>>(),
                Err(e) => vec![Err(e)],
            })
        })
    }

    /// One availability schedule.
    ///
    /// # Errors
    /// [`Error`].
    pub async fn get_availability_schedule(
        &self,
        schedule: &AvailabilityScheduleUri,
    ) -> Result<AvailabilitySchedule, Error> {
        self.resource(Request::get(format!("/user_availability_schedules/{}", schedule.uuid()))).await
    }

    /// The busy times of `user` in `start..end` (at most 7 days, checked before sending; the endpoint does not
    /// paginate). A 424 `External Calendar Error` means a connected calendar could not be read.
    ///
    /// # Errors
    /// [`Error::InvalidRequest`] for an empty range or one over 7 days; [`Error`].
    pub async fn list_user_busy_times(
        &self,
        user: &UserUri,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Result<Vec<BusyTime>, Error> {
        check_range(start, end)?;
        let req = Request::get("/user_busy_times")
            .query("user", user)
            .query("start_time", format_time(start))
            .query("end_time", format_time(end));
        Ok(self.json::<Unpaged<BusyTime>>(req).await?.collection)
    }

    /// The busy times of `user` over any range, as a lazy stream: one request per 7-day window, in order; ends
    /// after the first error.
    pub fn stream_user_busy_times(
        &self,
        user: &UserUri,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> impl Stream<Item = Result<BusyTime, Error>> + Send + 'static {
        let client = self.clone();
        let user = user.clone();
        // an empty or inverted range goes through as one window, so the stream yields the list's InvalidRequest
        let wins = if end > start { windows(start, end) } else { vec![(start, end)] };
        futures::stream::iter(wins)
            .then(move |(from, to)| {
                let client = client.clone();
                let user = user.clone();
                async move { client.list_user_busy_times(&user, from, to).await }
            })
            .flat_map(|r| {
                futures::stream::iter(match r {
                    Ok(items) => items.into_iter().map(Ok).collect::<Vec<_>>(),
                    Err(e) => vec![Err(e)],
                })
            })
            .scan(false, |failed, item| {
                if *failed {
                    return futures::future::ready(None);
                }
                *failed = item.is_err();
                futures::future::ready(Some(item))
            })
    }
}
