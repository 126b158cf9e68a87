//! Data-compliance deletion (Enterprise plans): `POST /data_compliance/deletion/invitees` and
//! `POST /data_compliance/deletion/events` (OpenAPI `calendly.yaml`, "Delete Invitee Data" and "Delete Scheduled
//! Event Data"). Both answer 202 `{}`: the request is accepted and "can take up to 7 days to complete".

use api_core::Request;
use chrono::{DateTime, Months, Utc};
use serde::Serialize;

use crate::{Client, Error, scheduled_events::format_time};

#[derive(Serialize)]
struct InviteesBody<'a> {
    emails: &'a [String],
}

#[derive(Serialize)]
struct EventsBody {
    start_time: String,
    end_time: String,
}

/// Checks the documented rule for event data deletion: "Time range can be no greater than 24 months and must
/// occur in the past" (`now` is the caller's clock).
///
/// # Errors
/// [`Error::InvalidRequest`].
pub fn check_event_deletion_range(start: DateTime<Utc>, end: DateTime<Utc>, now: DateTime<Utc>) -> Result<(), Error> {
    if end <= start {
        return Err(Error::InvalidRequest("end_time must be after start_time".into()));
    }
    if end > now {
        return Err(Error::InvalidRequest(format!("the range must be in the past; it ends at {}", format_time(end))));
    }
    if start.checked_add_months(Months::new(24)).is_some_and(|limit| end > limit) {
        return Err(Error::InvalidRequest("the range is longer than 24 months".into()));
    }
    Ok(())
}

impl Client {
    /// Asks Calendly to remove the data of the invitees with these emails from every past booking of the
    /// organization (202, asynchronous). Enterprise only (403 "Please upgrade your Calendly account to
    /// Enterprise."). Repeating the request is harmless.
    ///
    /// # Errors
    /// [`Error::InvalidRequest`] for an empty list (nothing sent); [`Error`].
    pub async fn delete_invitee_data(&self, emails: &[String]) -> Result<(), Error> {
        if emails.is_empty() {
            return Err(Error::InvalidRequest("no emails to delete".into()));
        }
        let req = Request::post("/data_compliance/deletion/invitees")
            .json(&InviteesBody { emails })
            .map_err(|e| Error::InvalidRequest(e.to_string()))?
            .idempotent(true);
        self.send(req).await.map(|_| ())
    }

    /// Asks Calendly to remove the organization's scheduled events data in `start..end` (202, asynchronous). The
    /// range must be in the past and at most 24 months long, checked before sending. Enterprise only.
    ///
    /// # Errors
    /// [`Error::InvalidRequest`] (nothing sent); [`Error`].
    pub async fn delete_scheduled_event_data(&self, start: DateTime<Utc>, end: DateTime<Utc>) -> Result<(), Error> {
        check_event_deletion_range(start, end, Utc::now())?;
        let req = Request::post("/data_compliance/deletion/events")
            .json(&EventsBody { start_time: format_time(start), end_time: format_time(end) })
            .map_err(|e| Error::InvalidRequest(e.to_string()))?
            .idempotent(true);
        self.send(req).await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone as _;

    use super::*;

    #[test]
    fn deletion_range_rules() {
        let now = Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap();
        let a = Utc.with_ymd_and_hms(2024, 12, 1, 0, 0, 0).unwrap();
        assert!(check_event_deletion_range(a, now, now).is_ok(), "exactly 24 months");
        assert!(check_event_deletion_range(a - chrono::TimeDelta::seconds(1), now, now).is_err(), "over 24 months");
        assert!(check_event_deletion_range(a, now + chrono::TimeDelta::seconds(1), now).is_err(), "future");
        assert!(check_event_deletion_range(a, a, now).is_err(), "empty");
    }
}
