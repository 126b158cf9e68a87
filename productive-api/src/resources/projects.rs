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
    #[serde(deserialize_with = "crate::types::null_as_default")]
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
    /// `failed` (unknown values count as running). An absent status says nothing either way: see
    /// [`Resource::copy_finished`].
    #[must_use]
    pub fn is_copying(&self) -> bool {
        !matches!(self.attributes.duplication_status, None | Some(DuplicationStatus::Idle | DuplicationStatus::Failed))
    }

    /// Whether the project reports a finished copy: `duplication_status` is `idle` (the documented resting value,
    /// P-old projects.html). Absent, `in_progress`, `failed` and unknown values are not finished.
    #[must_use]
    pub fn copy_finished(&self) -> bool {
        self.attributes.duplication_status == Some(DuplicationStatus::Idle)
    }
}

/// How long to wait for a project copy (a background job, api-notes/productive.md §4 "Project copy").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CopyWait {
    /// Pause between polls of `GET /projects/{id}`.
    pub interval: Duration,
    /// Give up (with [`Error::JobTimeout`]) when the copy has not reported `idle` this long after the wait began.
    pub deadline: Duration,
}

impl CopyWait {
    /// Poll every `interval` until `deadline`.
    #[must_use]
    pub fn new(interval: Duration, deadline: Duration) -> Self {
        Self { interval, deadline }
    }

    /// Poll every `interval`, at most about `max_polls` times (deadline = `interval × max_polls`).
    #[must_use]
    pub fn polls(interval: Duration, max_polls: u32) -> Self {
        Self { interval, deadline: interval.saturating_mul(max_polls.max(1)) }
    }
}

impl Default for CopyWait {
    /// Every 2 s for up to 10 min (a template with many tasks takes a while to copy).
    fn default() -> Self {
        Self { interval: Duration::from_secs(2), deadline: Duration::from_secs(600) }
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
    /// [`Error::InvalidRequest`] naming the flag whose prerequisite is missing.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |m: &str| Err(Error::InvalidRequest(format!("project copy: {m}")));
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

super::collection!(
    list_projects,
    stream_projects,
    "/projects",
    ProjectAttributes,
    "projects",
    "Filters: `company_id`, `status` (1 active, 2 archived), `name`, `project_type`, `with_templates`, … (api-notes productive.md §4 Projects)."
);

impl Client {
    /// `DELETE /projects/{id}` (api-notes productive.md §4 Projects: `GET|PATCH|DELETE /projects/{id}`; 204).
    /// Prefer [`Client::archive_project`] for projects with tracked time.
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn delete_project(&self, id: &ProjectId) -> Result<(), Error> {
        self.delete_path(&format!("/projects/{id}")).await
    }

    /// `PATCH /projects/{id}` with the given attributes (only those are changed).
    ///
    /// # Errors
    /// See [`Error`]; a missing project is a 404, an invalid value a 422.
    pub async fn update_project(&self, id: &ProjectId, attributes: &Map<String, Value>) -> Result<Project, Error> {
        let doc = super::merge_extra(WriteDocument::update(ProjectAttributes::TYPE, id), attributes);
        Ok(self.patch_document(&format!("/projects/{id}"), &doc).await?.data)
    }

    /// `PATCH /projects/{id}/archive` (community OpenAPI); the answer is the archived project (`archived_at` set).
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn archive_project(&self, id: &ProjectId) -> Result<Project, Error> {
        Ok(self.patch_action(ProjectAttributes::TYPE, id, "archive", &Map::new()).await?.data)
    }

    /// `PATCH /projects/{id}/restore` (community OpenAPI): un-archives.
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn restore_project(&self, id: &ProjectId) -> Result<Project, Error> {
        Ok(self.patch_action(ProjectAttributes::TYPE, id, "restore", &Map::new()).await?.data)
    }

    /// `GET /projects/{id}` (with `include` from `query`, e.g. `company,project_manager`).
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn get_project(&self, id: &ProjectId, query: &Query) -> Result<Document<Project>, Error> {
        self.get_resource(&format!("/projects/{id}"), query).await
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
        let all = self.all::<ProjectAttributes>("/projects", q).await?;
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
    /// (its `duplication_status` may say whether the copy still runs). What this response holds while the job runs
    /// is **unverified** (api-notes/productive.md §4 "Project copy"); [`Client::copy_project_and_wait`] does not
    /// depend on it. Not retried automatically (a POST); on an ambiguous failure, look for a project with the new
    /// name before copying again.
    ///
    /// # Errors
    /// [`Error::InvalidRequest`] when the flags are inconsistent; otherwise see [`Error`].
    pub async fn copy_project(&self, copy: &ProjectCopy) -> Result<Project, Error> {
        copy.validate()?;
        Ok(self.post_document("/projects/copy", &copy.to_document()?).await?.data)
    }

    /// Polls `GET /projects/{id}` every `wait.interval` until the project reports a finished copy
    /// (`duplication_status` = `idle`; an absent or unknown status is **not** taken as finished), giving up at
    /// `wait.deadline`.
    ///
    /// # Errors
    /// [`Error::JobTimeout`] at the deadline; [`Error::InvalidRequest`] when the status is `failed`; otherwise see
    /// [`Error`].
    pub async fn wait_for_project_copy(&self, id: &ProjectId, wait: CopyWait) -> Result<Project, Error> {
        let start = tokio::time::Instant::now();
        let mut polls = 0u32;
        loop {
            let p = self.get_project(id, &Query::new()).await?.data;
            polls += 1;
            if p.attributes.duplication_status == Some(DuplicationStatus::Failed) {
                return Err(Error::InvalidRequest(format!(
                    "copy into project {id} failed (duplication_status = failed)"
                )));
            }
            if p.copy_finished() {
                return Ok(p);
            }
            let last_state =
                p.attributes.duplication_status.as_ref().map_or_else(|| "absent".to_owned(), |s| format!("{s:?}"));
            Self::pause_or_time_out(start, wait, polls, || (format!("copy into project {id}"), last_state.clone()))
                .await?;
        }
    }

    async fn pause_or_time_out(
        start: tokio::time::Instant,
        wait: CopyWait,
        polls: u32,
        what: impl FnOnce() -> (String, String),
    ) -> Result<(), Error> {
        let waited = start.elapsed();
        if waited + wait.interval > wait.deadline {
            let (what, last_state) = what();
            return Err(Error::JobTimeout { what, polls, waited, last_state });
        }
        tokio::time::sleep(wait.interval).await;
        Ok(())
    }

    /// The project a copy created, found by its name (and company), excluding the source: for a `POST
    /// /projects/copy` response that is not the new project (a job resource, the source project, or no body).
    /// The newest (highest id) exact match wins.
    async fn find_copied_project(&self, copy: &ProjectCopy) -> Result<Option<Project>, Error> {
        let mut q = Query::new().filter("name", &copy.name);
        if let Some(c) = &copy.company_id {
            q = q.filter("company_id", c);
        }
        if copy.copy_as_template {
            q = q.filter("with_templates", "true");
        }
        let all = self.all::<ProjectAttributes>("/projects", q).await?;
        Ok(all
            .into_iter()
            .filter(|p| p.attributes.name == copy.name && p.id != copy.template_id.as_str())
            .max_by_key(|p| (p.id.parse::<u64>().unwrap_or(0), p.id.clone())))
    }

    /// [`Client::copy_project`], then waits until the new project reports a finished copy
    /// ([`Client::wait_for_project_copy`]). The response of the POST is used only when it is a `projects` resource
    /// other than the source; otherwise (a job resource, the source echoed back, an empty `202`) the new project is
    /// looked up by name (and company) until it appears. A status in the POST response is never trusted as
    /// finished: the project is read at least once.
    ///
    /// # Errors
    /// [`Error::JobTimeout`] when the copy has not reported `idle` by `wait.deadline` (counted from the POST);
    /// otherwise as [`Client::copy_project`] and [`Client::wait_for_project_copy`].
    pub async fn copy_project_and_wait(&self, copy: &ProjectCopy, wait: CopyWait) -> Result<Project, Error> {
        copy.validate()?;
        let start = tokio::time::Instant::now();
        let req = api_core::Request::post("/projects/copy")
            .body(api_core::Body::json_with(&copy.to_document()?, crate::jsonapi::MEDIA_TYPE)?);
        let resp = self.send(req).await?;
        let started = api_core::decode_json::<Document<Option<Resource<Value>>>>(&resp.body)
            .ok()
            .and_then(|d| d.data)
            .filter(|r| r.kind == ProjectAttributes::TYPE && r.id != copy.template_id.as_str() && !r.id.is_empty());
        let mut polls = 0u32;
        let id = match started {
            Some(r) => ProjectId::from(r.id),
            None => loop {
                if let Some(p) = self.find_copied_project(copy).await? {
                    break p.typed_id();
                }
                polls += 1;
                Self::pause_or_time_out(start, wait, polls, || {
                    (
                        format!("copy of project {} into {:?}", copy.template_id, copy.name),
                        "project not found yet".into(),
                    )
                })
                .await?;
            },
        };
        let left = CopyWait { interval: wait.interval, deadline: wait.deadline.saturating_sub(start.elapsed()) };
        match self.wait_for_project_copy(&id, left).await {
            Err(Error::JobTimeout { what, polls: p, last_state, .. }) => {
                Err(Error::JobTimeout { what, polls: polls + p, waited: start.elapsed(), last_state })
            }
            other => other,
        }
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
