//! Task workflows (`/workflows`) and their statuses (`/workflow_statuses`): get, list one page, stream.
//!
//! Sources: community OpenAPI `/workflows` (filters `name`, `archived`), `/workflows/{id}`, `/workflow_statuses`
//! (filters `name`, `workflow_id`, `category_id` "1: not started, 2: started, 3: closed"),
//! `/workflow_statuses/{id}`; api-notes productive.md §4 Projects (a project's `workflow` relationship, type
//! `workflows`) and Tasks (`workflow_status_id` on create). Attribute names beyond `name` and `category_id` are
//! **unverified** (no sample body found; unknown ones kept in `extra`).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{
    Client, Error,
    jsonapi::{Document, Query, Resource},
    types::{ResourceType, WorkflowId, WorkflowStatusCategory, WorkflowStatusId, rel_id},
};

/// A workflow's attributes.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct WorkflowAttributes {
    /// Name.
    #[serde(deserialize_with = "crate::types::null_as_default")]
    pub name: String,
    /// When archived.
    pub archived_at: Option<String>,
    /// Unknown attributes.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ResourceType for WorkflowAttributes {
    const TYPE: &'static str = "workflows";
    type Id = WorkflowId;
}

/// A workflow resource.
pub type Workflow = Resource<WorkflowAttributes>;

/// A workflow status's attributes.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct WorkflowStatusAttributes {
    /// Name.
    #[serde(deserialize_with = "crate::types::null_as_default")]
    pub name: String,
    /// Not started / started / closed.
    pub category_id: Option<WorkflowStatusCategory>,
    /// Position in the workflow.
    pub position: Option<i64>,
    /// Color id.
    pub color_id: Option<u64>,
    /// Unknown attributes.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ResourceType for WorkflowStatusAttributes {
    const TYPE: &'static str = "workflow_statuses";
    type Id = WorkflowStatusId;
}

/// A workflow status resource.
pub type WorkflowStatus = Resource<WorkflowStatusAttributes>;

impl Resource<WorkflowStatusAttributes> {
    /// The `workflow` relationship id.
    #[must_use]
    pub fn workflow_id(&self) -> Option<WorkflowId> {
        rel_id(self, "workflow")
    }
}

super::collection!(
    list_workflows,
    stream_workflows,
    "/workflows",
    WorkflowAttributes,
    "workflows",
    "Filters: `name`, `archived` (community OpenAPI `/workflows`)."
);
super::collection!(
    list_workflow_statuses,
    stream_workflow_statuses,
    "/workflow_statuses",
    WorkflowStatusAttributes,
    "workflow statuses",
    "Filters: `name`, `workflow_id`, `category_id` (1 not started, 2 started, 3 closed) (community OpenAPI `/workflow_statuses`)."
);

impl Client {
    /// `GET /workflows/{id}` (e.g. with `include=workflow_statuses`).
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn get_workflow(&self, id: &WorkflowId, query: &Query) -> Result<Document<Workflow>, Error> {
        self.get_resource(&format!("/workflows/{id}"), query).await
    }

    /// `GET /workflow_statuses/{id}`.
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn get_workflow_status(&self, id: &WorkflowStatusId) -> Result<Document<WorkflowStatus>, Error> {
        self.get_resource(&format!("/workflow_statuses/{id}"), &Query::new()).await
    }

    /// Every status of a workflow (`filter[workflow_id]`, all pages), collected.
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn statuses_of_workflow(&self, workflow: &WorkflowId) -> Result<Vec<WorkflowStatus>, Error> {
        self.all("/workflow_statuses", Query::new().filter("workflow_id", workflow)).await
    }
}
