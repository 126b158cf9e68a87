//! Time entries (`/time_entries`): time a person spent on a service (optionally on a task). Create, get, update,
//! delete, list one page, stream every entry.
//!
//! Sources: developer.productive.io/time_entries.html (P-old: filters `after`, `before`, `person_id`,
//! `service_id`, `task_id`, `project_id`, `status` …); withone "Get a Time Entry" (the sample attributes below) and
//! "Create a Time Entry" (`data.type = "time_entries"`, attributes `date`, `time` (minutes), `note`,
//! relationships `person`, `service`, optionally `task`); community OpenAPI `/time_entries`, `/time_entries/{id}`
//! (GET, POST, PATCH, DELETE).

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{
    Client, Error,
    jsonapi::{Document, Query, Resource, WriteDocument},
    types::{Amount, PersonId, ResourceType, ServiceId, TaskId, TimeEntryId, TrackMethod, rel_id},
};

/// A time entry's attributes (withone "Get a Time Entry", a copy of the P-old sample; unknown attributes kept in
/// `extra`). Durations are minutes.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct TimeEntryAttributes {
    /// The day the time was spent on.
    pub date: Option<NaiveDate>,
    /// Minutes worked.
    pub time: Option<u64>,
    /// Billable minutes.
    pub billable_time: Option<u64>,
    /// Recognized minutes.
    pub recognized_time: Option<u64>,
    /// Note.
    pub note: Option<String>,
    /// How it was tracked.
    pub track_method_id: Option<TrackMethod>,
    /// Start time of a timed entry.
    pub started_at: Option<String>,
    /// Whether approved.
    pub approved: Option<bool>,
    /// When approved.
    pub approved_at: Option<String>,
    /// Whether invoiced.
    pub invoiced: Option<bool>,
    /// Whether rejected.
    pub rejected: Option<bool>,
    /// Why rejected.
    pub rejected_reason: Option<String>,
    /// Currency of the cost amounts.
    pub currency: Option<String>,
    /// Cost (currency units as sent).
    pub cost: Option<Amount>,
    /// Creation time.
    pub created_at: Option<String>,
    /// Last update.
    pub updated_at: Option<String>,
    /// Unknown attributes.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ResourceType for TimeEntryAttributes {
    const TYPE: &'static str = "time_entries";
    type Id = TimeEntryId;
}

/// A time entry resource.
pub type TimeEntry = Resource<TimeEntryAttributes>;

impl Resource<TimeEntryAttributes> {
    /// The `person` relationship id.
    #[must_use]
    pub fn person_id(&self) -> Option<PersonId> {
        rel_id(self, "person")
    }

    /// The `service` relationship id.
    #[must_use]
    pub fn service_id(&self) -> Option<ServiceId> {
        rel_id(self, "service")
    }

    /// The `task` relationship id.
    #[must_use]
    pub fn task_id(&self) -> Option<TaskId> {
        rel_id(self, "task")
    }
}

/// `POST /time_entries`: `date` and `time` (minutes) plus relationships `person`, `service` and optionally `task`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NewTimeEntry {
    /// The day.
    pub date: NaiveDate,
    /// Minutes.
    pub time: u64,
    /// Note.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Who spent the time.
    #[serde(skip)]
    pub person_id: PersonId,
    /// On which service (budget line item).
    #[serde(skip)]
    pub service_id: ServiceId,
    /// On which task, if any.
    #[serde(skip)]
    pub task_id: Option<TaskId>,
    /// Any other attributes, sent as given.
    #[serde(skip)]
    pub extra: Map<String, Value>,
}

impl NewTimeEntry {
    /// `minutes` spent by `person` on `service` on `date`.
    #[must_use]
    pub fn new(person: PersonId, service: ServiceId, date: NaiveDate, minutes: u64) -> Self {
        Self {
            date,
            time: minutes,
            note: None,
            person_id: person,
            service_id: service,
            task_id: None,
            extra: Map::new(),
        }
    }

    /// With a note.
    #[must_use]
    pub fn note(mut self, note: impl Into<String>) -> Self {
        self.note = Some(note.into());
        self
    }

    /// On a task.
    #[must_use]
    pub fn task(mut self, task: TaskId) -> Self {
        self.task_id = Some(task);
        self
    }

    /// The JSON:API body.
    ///
    /// # Errors
    /// Serialization failure.
    pub fn to_document(&self) -> Result<WriteDocument, Error> {
        let doc = WriteDocument::create(TimeEntryAttributes::TYPE)
            .attributes(self)?
            .relate("person", "people", &self.person_id)
            .relate("service", "services", &self.service_id)
            .relate_opt("task", "tasks", self.task_id.as_ref());
        Ok(super::merge_extra(doc, &self.extra))
    }
}

super::collection!(
    list_time_entries,
    stream_time_entries,
    "/time_entries",
    TimeEntryAttributes,
    "time entries",
    "Filters: `after`/`before` (dates), `person_id`, `service_id`, `task_id`, `project_id`, `status` (1 approved, 2 unapproved, 3 rejected), … (developer.productive.io/time_entries.html)."
);

impl Client {
    /// `GET /time_entries/{id}` (e.g. with `include=person,service`).
    ///
    /// # Errors
    /// See [`Error`]; a missing entry is a 404.
    pub async fn get_time_entry(&self, id: &TimeEntryId, query: &Query) -> Result<Document<TimeEntry>, Error> {
        self.get_resource(&format!("/time_entries/{id}"), query).await
    }

    /// `POST /time_entries`.
    ///
    /// # Errors
    /// See [`Error`]; a missing person/service/date is a 422.
    pub async fn create_time_entry(&self, entry: &NewTimeEntry) -> Result<TimeEntry, Error> {
        Ok(self.post_document("/time_entries", &entry.to_document()?).await?.data)
    }

    /// `PATCH /time_entries/{id}` with the given attributes (e.g. `{"time": 90, "note": "…"}`).
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn update_time_entry(
        &self,
        id: &TimeEntryId,
        attributes: &Map<String, Value>,
    ) -> Result<TimeEntry, Error> {
        let doc = super::merge_extra(WriteDocument::update(TimeEntryAttributes::TYPE, id), attributes);
        Ok(self.patch_document(&format!("/time_entries/{id}"), &doc).await?.data)
    }

    /// `PATCH /time_entries/{id}/approve` (community OpenAPI; the approval workflow of time_entries.html, filter
    /// `status` 1 approved). The body is the entry's identity (**unverified**, see [`Client::patch_action`]).
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn approve_time_entry(&self, id: &TimeEntryId) -> Result<TimeEntry, Error> {
        Ok(self.patch_action(TimeEntryAttributes::TYPE, id, "approve", &Map::new()).await?.data)
    }

    /// `PATCH /time_entries/{id}/unapprove` (community OpenAPI).
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn unapprove_time_entry(&self, id: &TimeEntryId) -> Result<TimeEntry, Error> {
        Ok(self.patch_action(TimeEntryAttributes::TYPE, id, "unapprove", &Map::new()).await?.data)
    }

    /// `PATCH /time_entries/{id}/reject` with `rejected_reason` (community OpenAPI; `rejected_reason` is a
    /// time entry attribute in the documented sample and a create field in withone "Create a Time Entry").
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn reject_time_entry(&self, id: &TimeEntryId, reason: Option<&str>) -> Result<TimeEntry, Error> {
        let mut attrs = Map::new();
        if let Some(r) = reason {
            attrs.insert("rejected_reason".into(), Value::String(r.to_owned()));
        }
        Ok(self.patch_action(TimeEntryAttributes::TYPE, id, "reject", &attrs).await?.data)
    }

    /// `DELETE /time_entries/{id}` (204).
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn delete_time_entry(&self, id: &TimeEntryId) -> Result<(), Error> {
        self.delete_path(&format!("/time_entries/{id}")).await
    }
}
