//! Project assignments (`/project_assignments`: a person's membership of a project) and service assignments
//! (`/service_assignments`: people allowed to track on a service when the budget restricts tracking by person).
//! A duplicate assignment (409, or 422 "already taken") is returned as [`Assigned::AlreadyAssigned`], not an
//! error, so retries are harmless.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{
    Client, Error,
    jsonapi::{Query, Resource, WriteDocument},
    types::{PersonId, ProjectAssignmentId, ProjectId, ResourceType, ServiceAssignmentId, ServiceId, rel_id},
};

/// A project assignment's attributes (mostly per-member preferences).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ProjectAssignmentAttributes {
    /// Whether the member watches the project.
    pub watched: Option<bool>,
    /// Unknown attributes.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ResourceType for ProjectAssignmentAttributes {
    const TYPE: &'static str = "project_assignments";
    type Id = ProjectAssignmentId;
}

/// A project assignment resource.
pub type ProjectAssignment = Resource<ProjectAssignmentAttributes>;

impl Resource<ProjectAssignmentAttributes> {
    /// The assigned person.
    #[must_use]
    pub fn person_id(&self) -> Option<PersonId> {
        rel_id(self, "person")
    }

    /// The project.
    #[must_use]
    pub fn project_id(&self) -> Option<ProjectId> {
        rel_id(self, "project")
    }
}

/// A service assignment's attributes.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ServiceAssignmentAttributes {
    /// Unknown attributes.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ResourceType for ServiceAssignmentAttributes {
    const TYPE: &'static str = "service_assignments";
    type Id = ServiceAssignmentId;
}

/// A service assignment resource.
pub type ServiceAssignment = Resource<ServiceAssignmentAttributes>;

/// The outcome of an assignment: created now, or it already existed.
#[derive(Debug, Clone)]
pub enum Assigned<T> {
    /// Created by this call.
    Created(T),
    /// Productive answered 409/422 "already assigned"; nothing changed. The error is kept for logging.
    AlreadyAssigned(Box<crate::error::ApiError>),
}

impl<T> Assigned<T> {
    /// Whether this call created the assignment.
    #[must_use]
    pub fn is_created(&self) -> bool {
        matches!(self, Self::Created(_))
    }
}

fn ignore_duplicate<T>(r: Result<T, Error>) -> Result<Assigned<T>, Error> {
    match r {
        Ok(t) => Ok(Assigned::Created(t)),
        Err(e) if e.is_already_exists() => match e {
            Error::Api(api) => Ok(Assigned::AlreadyAssigned(api)),
            other => Err(other),
        },
        Err(e) => Err(e),
    }
}

super::collection!(
    list_project_assignments,
    stream_project_assignments,
    "/project_assignments",
    ProjectAssignmentAttributes,
    "project assignments (memberships)",
    "Filters: `person_id`, `project_id` (api-notes productive.md §4 Project assignments)."
);
super::collection!(
    list_service_assignments,
    stream_service_assignments,
    "/service_assignments",
    ServiceAssignmentAttributes,
    "service assignments",
    "Filters: `person_id`, `service_id` (api-notes productive.md §4 Service assignments)."
);

impl Client {
    /// `POST /project_assignments` for `person` on `project` (relationships `person` and `project`).
    ///
    /// # Errors
    /// See [`Error`]; a duplicate is `Ok(Assigned::AlreadyAssigned)`.
    pub async fn assign_person_to_project(
        &self,
        project: &ProjectId,
        person: &PersonId,
    ) -> Result<Assigned<ProjectAssignment>, Error> {
        let doc = WriteDocument::create(ProjectAssignmentAttributes::TYPE)
            .relate("person", "people", person)
            .relate("project", "projects", project);
        ignore_duplicate(self.post_document("/project_assignments", &doc).await.map(|d| d.data))
    }

    /// Project assignments of a project (`filter[project_id]`), all pages.
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn project_assignments(&self, project: &ProjectId) -> Result<Vec<ProjectAssignment>, Error> {
        self.all("/project_assignments", Query::new().filter("project_id", project)).await
    }

    /// `DELETE /project_assignments/{id}`.
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn delete_project_assignment(&self, id: &ProjectAssignmentId) -> Result<(), Error> {
        self.delete_path(&format!("/project_assignments/{id}")).await
    }

    /// `POST /service_assignments` for `person` on `service`.
    ///
    /// # Errors
    /// See [`Error`]; a duplicate is `Ok(Assigned::AlreadyAssigned)`.
    pub async fn assign_person_to_service(
        &self,
        service: &ServiceId,
        person: &PersonId,
    ) -> Result<Assigned<ServiceAssignment>, Error> {
        let doc = WriteDocument::create(ServiceAssignmentAttributes::TYPE)
            .relate("person", "people", person)
            .relate("service", "services", service);
        ignore_duplicate(self.post_document("/service_assignments", &doc).await.map(|d| d.data))
    }

    /// `DELETE /service_assignments/{id}` (api-notes productive.md §4 Service assignments; 204).
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn delete_service_assignment(&self, id: &ServiceAssignmentId) -> Result<(), Error> {
        self.delete_path(&format!("/service_assignments/{id}")).await
    }
}
