//! Projects (`/projects`): create, get, list, find by name; copy from a template (`POST /projects/copy`, a
//! background job) and wait for the copy to finish.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{
    Client, Error,
    jsonapi::{Document, Query, Resource, WriteDocument},
    resources::is_false,
    types::{CompanyId, DuplicationStatus, PersonId, ProjectId, ProjectType, ResourceType, WorkflowId, rel_id},
};

/// A project's attributes (P-old projects.html sample; unknown attributes kept in `extra`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ProjectAttributes {
    /// Name.
    pub name: String,
    /// Number (`"1"`), as sent.
    pub number: Option<Value>,
    /// Project number, as sent.
    pub project_number: Option<Value>,
    /// 1 internal, 2 client.
    pub project_type_id: Option<ProjectType>,
    /// Color id.
    pub project_color_id: Option<u64>,
    /// Whether this project is a template.
    pub template: Option<bool>,
    /// Copy job state (`"idle"` when no copy runs).
    pub duplication_status: Option<DuplicationStatus>,
    /// When archived.
    pub archived_at: Option<String>,
    /// Creation time.
    pub created_at: Option<String>,
    /// Last activity.
    pub last_activity_at: Option<String>,
    /// Custom fields.
    pub custom_fields: Option<Value>,
    /// Preferences.
    pub preferences: Option<Value>,
    /// Unknown attributes.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ResourceType for ProjectAttributes {
    const TYPE: &'static str = "projects";
    type Id = ProjectId;
}

/// A project resource.
pub type Project = Resource<ProjectAttributes>;

impl Resource<ProjectAttributes> {
    /// The `company` relationship id (sent only with `include=company` or in write responses).
    #[must_use]
    pub fn company_id(&self) -> Option<CompanyId> {
        rel_id(self, "company")
    }

    /// The `project_manager` relationship id.
    #[must_use]
    pub fn project_manager_id(&self) -> Option<PersonId> {
        rel_id(self, "project_manager")
    }

    /// The `workflow` relationship id.
    #[must_use]
    pub fn workflow_id(&self) -> Option<WorkflowId> {
        rel_id(self, "workflow")
    }

    /// Whether a copy into this project is still running: `duplication_status` present and neither `idle` nor
    /// `failed` (unknown values count as running).
    #[must_use]
    pub fn is_copying(&self) -> bool {
        !matches!(self.attributes.duplication_status, None | Some(DuplicationStatus::Idle | DuplicationStatus::Failed))
    }
}

/// `POST /projects`. Sends `name` + `project_type_id` as attributes and `company`, `project_manager`,
/// `workflow` as relationships, like the documented example.
#[derive(Debug, Clone, PartialEq)]
pub struct NewProject {
    /// Name.
    pub name: String,
    /// Project type (client projects need a company).
    pub project_type: ProjectType,
    /// The client company.
    pub company_id: Option<CompanyId>,
    /// The project manager.
    pub project_manager_id: PersonId,
    /// The task workflow.
    pub workflow_id: Option<WorkflowId>,
    /// Any other attributes (`project_color_id`, `custom_fields`, …), sent as given.
    pub extra: Map<String, Value>,
}

impl NewProject {
    /// A client project for `company`, managed by `manager`.
    #[must_use]
    pub fn client(name: impl Into<String>, company: CompanyId, manager: PersonId) -> Self {
        Self {
            name: name.into(),
            project_type: ProjectType::Client,
            company_id: Some(company),
            project_manager_id: manager,
            workflow_id: None,
            extra: Map::new(),
        }
    }

    /// Sets the workflow.
    #[must_use]
    pub fn workflow(mut self, id: WorkflowId) -> Self {
        self.workflow_id = Some(id);
        self
    }

    /// The JSON:API body.
    #[must_use]
    pub fn to_document(&self) -> WriteDocument {
        let doc = WriteDocument::create(ProjectAttributes::TYPE)
            .attribute("name", self.name.clone())
            .attribute("project_type_id", self.project_type.value())
            .relate_opt("company", "companies", self.company_id.as_ref())
            .relate("project_manager", "people", &self.project_manager_id)
            .relate_opt("workflow", "workflows", self.workflow_id.as_ref());
        super::merge_extra(doc, &self.extra)
    }
}

/// `POST /projects/copy` (P-ref actions/projects-copy-copy). All attributes; every `copy_*` flag defaults to
/// false and only flags set to `true` are sent. Prerequisites (P-ref): `copy_task_lists` needs `copy_boards`;
/// `copy_open_tasks`/`copy_closed_tasks` need `copy_task_lists`; `copy_assignees`/`copy_task_subscribers` need a
/// tasks flag plus `copy_memberships` — [`ProjectCopy::validate`] checks them.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[allow(clippy::struct_excessive_bools)]
pub struct ProjectCopy {
    /// The source (template) project.
    pub template_id: ProjectId,
    /// The new project's name.
    pub name: String,
    /// The client company.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub company_id: Option<CompanyId>,
    /// Project type.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project_type_id: Option<ProjectType>,
    /// Project manager.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project_manager_id: Option<PersonId>,
    /// Color.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project_color_id: Option<u64>,
    /// Mark the result as a template.
    #[serde(skip_serializing_if = "is_false")]
    pub copy_as_template: bool,
    /// Copy memberships (project assignments).
    #[serde(skip_serializing_if = "is_false")]
    pub copy_memberships: bool,
    /// Copy boards.
    #[serde(skip_serializing_if = "is_false")]
    pub copy_boards: bool,
    /// Copy task lists (needs `copy_boards`).
    #[serde(skip_serializing_if = "is_false")]
    pub copy_task_lists: bool,
    /// Copy open tasks (needs `copy_task_lists`).
    #[serde(skip_serializing_if = "is_false")]
    pub copy_open_tasks: bool,
    /// Copy closed tasks (needs `copy_task_lists`).
    #[serde(skip_serializing_if = "is_false")]
    pub copy_closed_tasks: bool,
    /// Copy task assignees (needs a tasks flag and `copy_memberships`).
    #[serde(skip_serializing_if = "is_false")]
    pub copy_assignees: bool,
    /// Copy task subscribers (needs a tasks flag and `copy_memberships`).
    #[serde(skip_serializing_if = "is_false")]
    pub copy_task_subscribers: bool,
    /// Copy views.
    #[serde(skip_serializing_if = "is_false")]
    pub copy_views: bool,
    /// Copy custom fields.
    #[serde(skip_serializing_if = "is_false")]
    pub copy_custom_fields: bool,
    /// Copy budgets.
    #[serde(skip_serializing_if = "is_false")]
    pub copy_budgets: bool,
    /// Copy notes.
    #[serde(skip_serializing_if = "is_false")]
    pub copy_notes: bool,
    /// Copy dashboards.
    #[serde(skip_serializing_if = "is_false")]
    pub copy_dashboards: bool,
    /// Any other attributes (other `copy_*` flags), sent as given.
    #[serde(skip)]
    pub extra: Map<String, Value>,
}

impl ProjectCopy {
    /// Copy `template` into a new project `name`, every flag false.
    #[must_use]
    pub fn new(template: ProjectId, name: impl Into<String>) -> Self {
        Self {
            template_id: template,
            name: name.into(),
            company_id: None,
            project_type_id: None,
            project_manager_id: None,
            project_color_id: None,
            copy_as_template: false,
            copy_memberships: false,
            copy_boards: false,
            copy_task_lists: false,
            copy_open_tasks: false,
            copy_closed_tasks: false,
            copy_assignees: false,
            copy_task_subscribers: false,
            copy_views: false,
            copy_custom_fields: false,
            copy_budgets: false,
            copy_notes: false,
            copy_dashboards: false,
            extra: Map::new(),
        }
    }

    /// Copy `template` into a new project `name` with its boards, task lists, open tasks and memberships (what an
    /// onboarding template usually needs).
    #[must_use]
    pub fn from_template(template: ProjectId, name: impl Into<String>) -> Self {
        Self {
            copy_memberships: true,
            copy_boards: true,
            copy_task_lists: true,
            copy_open_tasks: true,
            ..Self::new(template, name)
        }
    }

    /// Checks the documented flag prerequisites.
    ///
    /// # Errors
    /// [`Error::Config`] naming the flag whose prerequisite is missing.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |m: &str| Err(Error::Config(format!("project copy: {m}")));
        if self.copy_task_lists && !self.copy_boards {
            return bad("copy_task_lists needs copy_boards");
        }
        if (self.copy_open_tasks || self.copy_closed_tasks) && !self.copy_task_lists {
            return bad("copy_open_tasks/copy_closed_tasks need copy_task_lists");
        }
        if (self.copy_assignees || self.copy_task_subscribers)
            && !((self.copy_open_tasks || self.copy_closed_tasks) && self.copy_memberships)
        {
            return bad("copy_assignees/copy_task_subscribers need a tasks flag and copy_memberships");
        }
        Ok(())
    }

    /// The JSON:API body.
    ///
    /// # Errors
    /// Serialization failure.
    pub fn to_document(&self) -> Result<WriteDocument, Error> {
        Ok(super::merge_extra(WriteDocument::create(ProjectAttributes::TYPE).attributes(self)?, &self.extra))
    }
}

impl Client {
    /// `GET /projects/{id}` (with `include` from `query`, e.g. `company,project_manager`).
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn get_project(&self, id: &ProjectId, query: &Query) -> Result<Document<Project>, Error> {
        self.get_resource(&format!("/projects/{id}"), query).await
    }

    /// `GET /projects` with `query` (one page). Templates are excluded unless `filter[with_templates]=true` or
    /// `filter[template]=true`.
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn list_projects(&self, query: &Query) -> Result<Document<Vec<Project>>, Error> {
        self.list_page("/projects", query).await
    }

    /// The first project named exactly `name` (optionally of `company`).
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn find_project_by_name(
        &self,
        name: &str,
        company: Option<&CompanyId>,
    ) -> Result<Option<Project>, Error> {
        let mut q = Query::new().filter("name", name);
        if let Some(c) = company {
            q = q.filter("company_id", c);
        }
        let all = self.list_all_vec::<ProjectAttributes>("/projects", q).await?;
        Ok(all.into_iter().find(|p| p.attributes.name == name))
    }

    /// `POST /projects`.
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn create_project(&self, project: &NewProject) -> Result<Project, Error> {
        Ok(self.post_document("/projects", &project.to_document()).await?.data)
    }

    /// `POST /projects/copy`: starts the background copy and returns the new project as the response describes it
    /// (its `duplication_status` says whether the copy still runs). Use [`Client::wait_for_project_copy`] or
    /// [`Client::copy_project_and_wait`]. Not retried automatically (a POST); on an ambiguous failure, look for a
    /// project with the new name before copying again.
    ///
    /// # Errors
    /// [`Error::Config`] when the flags are inconsistent; otherwise see [`Error`].
    pub async fn copy_project(&self, copy: &ProjectCopy) -> Result<Project, Error> {
        copy.validate()?;
        Ok(self.post_document("/projects/copy", &copy.to_document()?).await?.data)
    }

    /// Polls `GET /projects/{id}` every `interval` until the copy finished (`duplication_status` idle or absent),
    /// at most `max_polls` times.
    ///
    /// # Errors
    /// [`Error::JobTimeout`] after `max_polls`; [`Error::Config`] when the status is `failed`; otherwise see
    /// [`Error`].
    pub async fn wait_for_project_copy(
        &self,
        id: &ProjectId,
        interval: Duration,
        max_polls: u32,
    ) -> Result<Project, Error> {
        for poll in 0..max_polls {
            if poll > 0 {
                tokio::time::sleep(interval).await;
            }
            let p = self.get_project(id, &Query::new()).await?.data;
            if p.attributes.duplication_status == Some(DuplicationStatus::Failed) {
                return Err(Error::Config(format!("copy into project {id} failed (duplication_status = failed)")));
            }
            if !p.is_copying() {
                return Ok(p);
            }
        }
        Err(Error::JobTimeout { what: format!("copy into project {id}"), polls: max_polls })
    }

    /// [`Client::copy_project`] then [`Client::wait_for_project_copy`].
    ///
    /// # Errors
    /// As those two.
    pub async fn copy_project_and_wait(
        &self,
        copy: &ProjectCopy,
        interval: Duration,
        max_polls: u32,
    ) -> Result<Project, Error> {
        let started = self.copy_project(copy).await?;
        if !started.is_copying() {
            return Ok(started);
        }
        self.wait_for_project_copy(&started.typed_id(), interval, max_polls).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_flag_prerequisites() {
        ProjectCopy::from_template("1".into(), "x").validate().unwrap();
        let c = ProjectCopy { copy_task_lists: true, ..ProjectCopy::new("1".into(), "x") };
        assert!(c.validate().is_err());
        let c = ProjectCopy {
            copy_assignees: true,
            copy_open_tasks: true,
            copy_task_lists: true,
            copy_boards: true,
            ..ProjectCopy::new("1".into(), "x")
        };
        assert!(c.validate().is_err(), "assignees need memberships");
    }

    #[test]
    fn copy_body_sends_only_true_flags() {
        let mut c = ProjectCopy::from_template("42".into(), "Acme onboarding");
        c.company_id = Some("7".into());
        c.project_type_id = Some(ProjectType::Client);
        let v = serde_json::to_value(c.to_document().unwrap()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"data": {"type": "projects", "attributes": {
                "template_id": "42", "name": "Acme onboarding", "company_id": "7", "project_type_id": 2,
                "copy_memberships": true, "copy_boards": true, "copy_task_lists": true, "copy_open_tasks": true}}})
        );
    }

    #[test]
    fn new_project_body_uses_relationships() {
        let p = NewProject::client("Site", "7".into(), "3".into()).workflow("9".into());
        assert_eq!(
            serde_json::to_value(p.to_document()).unwrap(),
            serde_json::json!({"data": {"type": "projects", "attributes": {"name": "Site", "project_type_id": 2},
                "relationships": {"company": {"data": {"type": "companies", "id": "7"}},
                    "project_manager": {"data": {"type": "people", "id": "3"}},
                    "workflow": {"data": {"type": "workflows", "id": "9"}}}}})
        );
    }
}
