//! Tasks (`/tasks`) and task lists (`/task_lists`).

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{
    Client, Error,
    jsonapi::{Document, Query, Resource, WriteDocument},
    types::{PersonId, ProjectId, ResourceType, TaskId, TaskListId, rel_id},
};

/// A task's attributes (sp webhook fixture + P-ref field names; unknown attributes kept in `extra`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct TaskAttributes {
    /// Title.
    #[serde(deserialize_with = "crate::types::null_as_default")]
    pub title: String,
    /// Description (HTML).
    pub description: Option<String>,
    /// Whether the task is closed (completed).
    #[serde(deserialize_with = "crate::types::null_as_default")]
    pub closed: bool,
    /// When closed.
    pub closed_at: Option<String>,
    /// Due date.
    pub due_date: Option<NaiveDate>,
    /// Start date.
    pub start_date: Option<NaiveDate>,
    /// Task number, as sent.
    pub task_number: Option<Value>,
    /// Type (1 regular, 3 milestone — **unverified**).
    pub type_id: Option<u64>,
    /// Initial estimate (minutes).
    pub initial_estimate: Option<u64>,
    /// Creation time.
    pub created_at: Option<String>,
    /// Last update.
    pub updated_at: Option<String>,
    /// Unknown attributes.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ResourceType for TaskAttributes {
    const TYPE: &'static str = "tasks";
    type Id = TaskId;
}

/// A task resource.
pub type Task = Resource<TaskAttributes>;

impl Resource<TaskAttributes> {
    /// The `project` relationship id.
    #[must_use]
    pub fn project_id(&self) -> Option<ProjectId> {
        rel_id(self, "project")
    }

    /// The `assignee` relationship id.
    #[must_use]
    pub fn assignee_id(&self) -> Option<PersonId> {
        rel_id(self, "assignee")
    }

    /// The `task_list` relationship id.
    #[must_use]
    pub fn task_list_id(&self) -> Option<TaskListId> {
        rel_id(self, "task_list")
    }
}

/// A task list's attributes.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct TaskListAttributes {
    /// Name.
    #[serde(deserialize_with = "crate::types::null_as_default")]
    pub name: String,
    /// Position.
    pub position: Option<i64>,
    /// When archived.
    pub archived_at: Option<String>,
    /// Unknown attributes.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ResourceType for TaskListAttributes {
    const TYPE: &'static str = "task_lists";
    type Id = TaskListId;
}

/// A task list resource.
pub type TaskList = Resource<TaskListAttributes>;

/// `POST /tasks`: `title` plus relationships `project`, `task_list`, `assignee`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NewTask {
    /// Title.
    pub title: String,
    /// Description.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Due date.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub due_date: Option<NaiveDate>,
    /// Project.
    #[serde(skip)]
    pub project_id: ProjectId,
    /// Task list.
    #[serde(skip)]
    pub task_list_id: Option<TaskListId>,
    /// Assignee.
    #[serde(skip)]
    pub assignee_id: Option<PersonId>,
    /// Any other attributes, sent as given.
    #[serde(skip)]
    pub extra: Map<String, Value>,
}

impl NewTask {
    /// A task titled `title` in `project`.
    #[must_use]
    pub fn new(title: impl Into<String>, project: ProjectId) -> Self {
        Self {
            title: title.into(),
            description: None,
            due_date: None,
            project_id: project,
            task_list_id: None,
            assignee_id: None,
            extra: Map::new(),
        }
    }

    /// The JSON:API body.
    ///
    /// # Errors
    /// Serialization failure.
    pub fn to_document(&self) -> Result<WriteDocument, Error> {
        let doc = WriteDocument::create(TaskAttributes::TYPE)
            .attributes(self)?
            .relate("project", "projects", &self.project_id)
            .relate_opt("task_list", "task_lists", self.task_list_id.as_ref())
            .relate_opt("assignee", "people", self.assignee_id.as_ref());
        Ok(super::merge_extra(doc, &self.extra))
    }
}

super::collection!(
    list_tasks,
    stream_tasks,
    "/tasks",
    TaskAttributes,
    "tasks",
    "Filters: `project_id`, `status` (1 open, 2 closed), `assignee_id`, … (api-notes productive.md §4 Tasks)."
);
super::collection!(
    list_task_lists,
    stream_task_lists,
    "/task_lists",
    TaskListAttributes,
    "task lists",
    "Filters: `project_id`, … (community OpenAPI `/task_lists`)."
);

impl Client {
    /// `GET /tasks/{id}` (e.g. with `include=project,assignee`).
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn get_task(&self, id: &TaskId, query: &Query) -> Result<Document<Task>, Error> {
        self.get_resource(&format!("/tasks/{id}"), query).await
    }

    /// `POST /tasks`.
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn create_task(&self, task: &NewTask) -> Result<Task, Error> {
        Ok(self.post_document("/tasks", &task.to_document()?).await?.data)
    }

    /// `PATCH /tasks/{id}` with the given attributes (e.g. `{"closed": true}`).
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn update_task(&self, id: &TaskId, attributes: &Map<String, Value>) -> Result<Task, Error> {
        let doc = super::merge_extra(WriteDocument::update(TaskAttributes::TYPE, id), attributes);
        Ok(self.patch_document(&format!("/tasks/{id}"), &doc).await?.data)
    }

    /// `GET /task_lists` of a project (`filter[project_id]`), all pages.
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn task_lists_of_project(&self, project: &ProjectId) -> Result<Vec<TaskList>, Error> {
        self.all("/task_lists", Query::new().filter("project_id", project)).await
    }

    /// `POST /task_lists` (`name`, relationship `project`).
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn create_task_list(&self, project: &ProjectId, name: &str) -> Result<TaskList, Error> {
        let doc = WriteDocument::create(TaskListAttributes::TYPE)
            .attribute("name", name)
            .relate("project", "projects", project);
        Ok(self.post_document("/task_lists", &doc).await?.data)
    }

    /// `DELETE /tasks/{id}` (community OpenAPI; 204).
    ///
    /// # Errors
    /// See [`Error`]; an unknown task is a 404.
    pub async fn delete_task(&self, id: &TaskId) -> Result<(), Error> {
        self.delete_path(&format!("/tasks/{id}")).await
    }
}
