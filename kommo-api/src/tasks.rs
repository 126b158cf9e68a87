//! Tasks: `GET/POST/PATCH /api/v4/tasks`, `PATCH /api/v4/tasks/{id}`.

use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};

use crate::{
    EntityKey, EntityType, Error, ListPage, ListParams, TaskId, TaskTypeId,
    entity::{Service, Updated, entity, read_model, write_types},
};

/// Task type 1 as a number ([`TaskTypeId::FOLLOW_UP`]): "Follow-up" in Kommo (the Russian docs call it "Звонок", a call).
pub const TASK_TYPE_FOLLOW_UP: u64 = 1;
/// Task type 2 as a number ([`TaskTypeId::MEETING`]): "Meeting".
pub const TASK_TYPE_MEETING: u64 = 2;

/// `result` of a completed task.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskResult {
    /// The result text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

read_model! {
    /// A task as read.
    Task {
        /// Id.
        pub id: TaskId,
        /// Text.
        #[serde(default)]
        pub text: String,
        /// Due (Unix seconds).
        #[serde(default, deserialize_with = "crate::de::opt_i64")]
        pub complete_till: Option<i64>,
        /// The entity id.
        #[serde(default)]
        pub entity_id: Option<u64>,
        /// The entity type.
        #[serde(default)]
        pub entity_type: Option<EntityType>,
        /// Completed.
        #[serde(default, deserialize_with = "crate::de::lenient_bool")]
        pub is_completed: bool,
        /// Task type id (1 follow-up, 2 meeting, or a custom type; see [`Task::task_type`] for the typed id).
        #[serde(default, deserialize_with = "crate::de::opt_i64")]
        pub task_type_id: Option<i64>,
        /// Duration (seconds).
        #[serde(default, deserialize_with = "crate::de::opt_i64")]
        pub duration: Option<i64>,
        /// Result (completed tasks); `[]` or `null` when none.
        #[serde(default, deserialize_with = "result_or_empty")]
        pub result: Option<TaskResult>,
    }
}

impl Task {
    /// The task type as a typed id.
    #[must_use]
    pub fn task_type(&self) -> Option<TaskTypeId> {
        self.task_type_id.and_then(|t| u64::try_from(t).ok()).map(TaskTypeId)
    }
}

fn result_or_empty<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<TaskResult>, D::Error> {
    // PHP serializes an empty result as `[]`
    Ok(match serde_json::Value::deserialize(d)? {
        v @ serde_json::Value::Object(_) => serde_json::from_value(v).ok(),
        _ => None,
    })
}

write_types! {
    /// A task to create.
    new NewTask {
        /// Text (required).
        pub text: String,
        /// Due (Unix seconds, required).
        pub complete_till: i64,
    }
    /// Changes to a task.
    update TaskUpdate(TaskId) {
        /// Text.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub text: Option<String>,
        /// Due (Unix seconds).
        #[serde(skip_serializing_if = "Option::is_none")]
        pub complete_till: Option<i64>,
        /// Completed.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub is_completed: Option<bool>,
        /// Result text (with `is_completed`).
        #[serde(skip_serializing_if = "Option::is_none")]
        pub result: Option<TaskResult>,
    }
    both {
        /// The entity id.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub entity_id: Option<u64>,
        /// The entity type.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub entity_type: Option<EntityType>,
        /// Task type (see [`TaskTypeId::FOLLOW_UP`], [`TaskTypeId::MEETING`]).
        #[serde(skip_serializing_if = "Option::is_none")]
        pub task_type_id: Option<TaskTypeId>,
        /// Duration (seconds).
        #[serde(skip_serializing_if = "Option::is_none")]
        pub duration: Option<i64>,
    }
    setters [task]
}

impl NewTask {
    /// A task with text and due time.
    pub fn new(text: impl Into<String>, complete_till: i64) -> Self {
        Self {
            text: text.into(),
            complete_till,
            entity_id: None,
            entity_type: None,
            task_type_id: None,
            responsible_user_id: None,
            duration: None,
            request_id: None,
        }
    }
}

impl TaskUpdate {
    /// Moves the due time.
    pub fn due(mut self, complete_till: i64) -> Self {
        self.complete_till = Some(complete_till);
        self
    }
    /// Sets the text.
    pub fn text(mut self, text: impl Into<String>) -> Self {
        self.text = Some(text.into());
        self
    }
    /// Closes the task with a result text: `{"is_completed": true, "result": {"text": ...}}`.
    pub fn complete(mut self, result: impl Into<String>) -> Self {
        self.is_completed = Some(true);
        self.result = Some(TaskResult { text: Some(result.into()) });
        self
    }
}

/// Task operations: `client.tasks()` (the shared [`Service`] plus [`Tasks::list_for`], [`Tasks::stream_for`] and [`Tasks::complete`]).
pub type Tasks<'a> = Service<'a, Task>;

entity!(Task, id: TaskId, new: NewTask, update: TaskUpdate, path: "/api/v4/tasks", key: "tasks", name: "task");

impl Tasks<'_> {
    /// One page of the tasks of one entity (`filter[entity_type]` + `filter[entity_id]`).
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn list_for(&self, id: impl EntityKey, page: u32) -> Result<ListPage<Task>, Error> {
        self.list(&ListParams::new().entity(id), page).await
    }

    /// Every task of one entity (`filter[entity_type]` + `filter[entity_id]`), lazily.
    pub fn stream_for(&self, id: impl EntityKey) -> BoxStream<'static, Result<Task, Error>> {
        self.stream(ListParams::new().entity(id))
    }

    /// Closes a task with a result text.
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn complete(&self, id: TaskId, result: impl Into<String>) -> Result<Updated<TaskId>, Error> {
        self.update(&TaskUpdate::new(id).complete(result)).await
    }
}
