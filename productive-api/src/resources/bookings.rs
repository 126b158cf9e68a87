//! Bookings (`/bookings`): scheduled time of a person on a service (budget booking) or an absence event (time
//! off, remote work). Create, get, update, delete, list one page, stream every booking.
//!
//! Sources: developer.productive.io/bookings.html (P-old: budget vs absence bookings; booking methods per day /
//! percentage / total hours with `time` / `percentage` / `total_time`; `draft: true` = tentative); withone "Create
//! a Booking" (`person`, `started_on`, `ended_on`, `booking_method_id` 1 hours per day (needs `time`), 2
//! percentage (needs `percentage`), 3 total time; `service` for a budget booking, `event` for an absence; `note`);
//! community OpenAPI `/bookings` (filters `person_id`, `event_id`, `after`, `before`, `started_on`, `ended_on`,
//! `draft`, `with_draft`, `project_id`, …; no `filter[service_id]` is documented).
//!
//! The documented create fields are written as `person_id`, `service_id`, `event_id`; like the rest of this crate
//! the client sends them as JSON:API relationships (`person`, `service`, `event`), the form the documented
//! examples use (api-notes productive.md §2 "Write bodies"; which form the server prefers is **unverified**).

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{
    Client, Error,
    jsonapi::{Document, Query, Resource, WriteDocument},
    types::{AbsenceEventId, BookingId, BookingMethod, PersonId, ResourceType, ServiceId, TaskId, rel_id},
};

/// A booking's attributes (P-old bookings.html "Supported attributes"; unknown attributes kept in `extra`).
/// Times are minutes.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct BookingAttributes {
    /// First day.
    pub started_on: Option<NaiveDate>,
    /// Last day (inclusive).
    pub ended_on: Option<NaiveDate>,
    /// How the time is allocated.
    pub booking_method_id: Option<BookingMethod>,
    /// Minutes per day ([`BookingMethod::PerDay`]).
    pub time: Option<u64>,
    /// Hours per day, as sent.
    pub hours: Option<Value>,
    /// Percent of working time ([`BookingMethod::Percentage`]).
    pub percentage: Option<u64>,
    /// Total minutes over the period ([`BookingMethod::TotalTime`]).
    pub total_time: Option<u64>,
    /// Tentative (`true`) or confirmed.
    pub draft: Option<bool>,
    /// Note.
    pub note: Option<String>,
    /// Absence approval: when approved.
    pub approved_at: Option<String>,
    /// Absence approval: when rejected.
    pub rejected_at: Option<String>,
    /// Absence approval: why rejected.
    pub rejected_reason: Option<String>,
    /// Absence approval: when canceled.
    pub canceled_at: Option<String>,
    /// Creation time.
    pub created_at: Option<String>,
    /// Last update.
    pub updated_at: Option<String>,
    /// Custom fields by id.
    pub custom_fields: Option<Value>,
    /// Unknown attributes.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ResourceType for BookingAttributes {
    const TYPE: &'static str = "bookings";
    type Id = BookingId;
}

/// A booking resource.
pub type Booking = Resource<BookingAttributes>;

impl Resource<BookingAttributes> {
    /// The `person` relationship id.
    #[must_use]
    pub fn person_id(&self) -> Option<PersonId> {
        rel_id(self, "person")
    }

    /// The `service` relationship id (budget bookings).
    #[must_use]
    pub fn service_id(&self) -> Option<ServiceId> {
        rel_id(self, "service")
    }

    /// The `event` relationship id (absence bookings).
    #[must_use]
    pub fn event_id(&self) -> Option<AbsenceEventId> {
        rel_id(self, "event")
    }
}

/// What a booking is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BookingTarget {
    /// A budget booking on a service.
    Service(ServiceId),
    /// An absence booking on an event (time off, remote work).
    Absence(AbsenceEventId),
}

/// How much time a booking allocates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Allocation {
    /// Minutes per day (`booking_method_id: 1`, `time`).
    MinutesPerDay(u64),
    /// Percent of working time (`booking_method_id: 2`, `percentage`).
    Percentage(u64),
    /// Total minutes over the period (`booking_method_id: 3`, `total_time`).
    TotalMinutes(u64),
}

/// `POST /bookings`.
#[derive(Debug, Clone, PartialEq)]
pub struct NewBooking {
    /// Who.
    pub person_id: PersonId,
    /// On what.
    pub target: BookingTarget,
    /// First day.
    pub started_on: NaiveDate,
    /// Last day (inclusive).
    pub ended_on: NaiveDate,
    /// How much.
    pub allocation: Allocation,
    /// Tentative.
    pub draft: Option<bool>,
    /// Note.
    pub note: Option<String>,
    /// Task, if any.
    pub task_id: Option<TaskId>,
    /// Any other attributes, sent as given.
    pub extra: Map<String, Value>,
}

impl NewBooking {
    /// A booking of `person` on `target` from `started_on` to `ended_on` (inclusive).
    #[must_use]
    pub fn new(
        person: PersonId,
        target: BookingTarget,
        started_on: NaiveDate,
        ended_on: NaiveDate,
        allocation: Allocation,
    ) -> Self {
        Self {
            person_id: person,
            target,
            started_on,
            ended_on,
            allocation,
            draft: None,
            note: None,
            task_id: None,
            extra: Map::new(),
        }
    }

    /// Checks what the docs require before sending: `ended_on` not before `started_on`, a percentage in 1..=100.
    ///
    /// # Errors
    /// [`Error::InvalidRequest`].
    pub fn validate(&self) -> Result<(), Error> {
        if self.ended_on < self.started_on {
            return Err(Error::InvalidRequest(format!(
                "booking ends ({}) before it starts ({})",
                self.ended_on, self.started_on
            )));
        }
        if let Allocation::Percentage(p) = self.allocation
            && !(1..=100).contains(&p)
        {
            return Err(Error::InvalidRequest(format!("booking percentage {p} is not in 1..=100")));
        }
        Ok(())
    }

    /// The JSON:API body.
    ///
    /// # Errors
    /// [`NewBooking::validate`].
    pub fn to_document(&self) -> Result<WriteDocument, Error> {
        self.validate()?;
        let (method, key, amount) = match self.allocation {
            Allocation::MinutesPerDay(m) => (BookingMethod::PerDay, "time", m),
            Allocation::Percentage(p) => (BookingMethod::Percentage, "percentage", p),
            Allocation::TotalMinutes(m) => (BookingMethod::TotalTime, "total_time", m),
        };
        let mut doc = WriteDocument::create(BookingAttributes::TYPE)
            .attribute("started_on", self.started_on.to_string())
            .attribute("ended_on", self.ended_on.to_string())
            .attribute("booking_method_id", method.value())
            .attribute(key, amount);
        if let Some(d) = self.draft {
            doc = doc.attribute("draft", d);
        }
        if let Some(n) = &self.note {
            doc = doc.attribute("note", n.as_str());
        }
        doc = doc.relate("person", "people", &self.person_id);
        doc = match &self.target {
            BookingTarget::Service(s) => doc.relate("service", "services", s),
            BookingTarget::Absence(e) => doc.relate("event", "events", e),
        };
        doc = doc.relate_opt("task", "tasks", self.task_id.as_ref());
        Ok(super::merge_extra(doc, &self.extra))
    }
}

super::collection!(
    list_bookings,
    stream_bookings,
    "/bookings",
    BookingAttributes,
    "bookings",
    "Filters: `person_id`, `event_id`, `project_id`, `after`/`before`, `started_on`/`ended_on`, `draft`, `with_draft`, … (community OpenAPI `/bookings`)."
);

impl Client {
    /// `GET /bookings/{id}`.
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn get_booking(&self, id: &BookingId, query: &Query) -> Result<Document<Booking>, Error> {
        self.get_resource(&format!("/bookings/{id}"), query).await
    }

    /// `POST /bookings`.
    ///
    /// # Errors
    /// [`Error::InvalidRequest`] before sending (see [`NewBooking::validate`]); otherwise see [`Error`].
    pub async fn create_booking(&self, booking: &NewBooking) -> Result<Booking, Error> {
        Ok(self.post_document("/bookings", &booking.to_document()?).await?.data)
    }

    /// `PATCH /bookings/{id}` with the given attributes.
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn update_booking(&self, id: &BookingId, attributes: &Map<String, Value>) -> Result<Booking, Error> {
        let doc = super::merge_extra(WriteDocument::update(BookingAttributes::TYPE, id), attributes);
        Ok(self.patch_document(&format!("/bookings/{id}"), &doc).await?.data)
    }

    /// `DELETE /bookings/{id}`.
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn delete_booking(&self, id: &BookingId) -> Result<(), Error> {
        self.delete_path(&format!("/bookings/{id}")).await
    }
}
