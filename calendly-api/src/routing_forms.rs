//! Routing forms and their submissions: `GET /routing_forms[/{uuid}]`, `GET /routing_form_submissions[/{uuid}]`
//! (OpenAPI `calendly.yaml`, schemas `RoutingForm`, `RoutingFormSubmission`; scope `routing_forms:read`).
//! A submission is the same resource the `routing_form_submission.created` webhook delivers
//! ([`RoutingFormSubmission`]).

use api_core::Request;
use chrono::{DateTime, Utc};
use futures::Stream;
use serde::{Deserialize, Serialize};

pub use crate::webhook::RoutingFormSubmission;
use crate::{
    Client, Collection, Error,
    client::clamp_count,
    uri::{OrganizationUri, RoutingFormSubmissionUri, RoutingFormUri},
};

api_core::open_enum!(
    /// `status` of a routing form.
    RoutingFormStatus {
        /// Live.
        Published = "published",
        /// Not published yet.
        Draft = "draft",
    }
);

/// A question of a routing form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoutingFormQuestion {
    /// The question's id (answers refer to it as `question_uuid`).
    pub uuid: String,
    /// The question text.
    #[serde(default)]
    pub name: Option<String>,
    /// `text`, `phone`, `email`, `textarea`, `select`, `radios`, …
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    /// Whether an answer is required.
    #[serde(default)]
    pub required: bool,
    /// The choices of select/radio questions (`null` otherwise, read as none).
    #[serde(default, deserialize_with = "api_core::de::null_as_default")]
    pub answer_choices: Vec<String>,
    /// Other fields, kept.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// A routing form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoutingForm {
    /// The form URI.
    pub uri: RoutingFormUri,
    /// The organization.
    #[serde(default)]
    pub organization: Option<OrganizationUri>,
    /// Name.
    #[serde(default)]
    pub name: Option<String>,
    /// `published` or `draft`.
    #[serde(default)]
    pub status: Option<RoutingFormStatus>,
    /// The questions.
    #[serde(default)]
    pub questions: Vec<RoutingFormQuestion>,
    /// Created at.
    #[serde(default)]
    pub created_at: Option<DateTime<Utc>>,
    /// Updated at.
    #[serde(default)]
    pub updated_at: Option<DateTime<Utc>>,
    /// Other fields, kept.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// `GET /routing_forms` query: the organization is required.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct ListRoutingForms {
    /// The organization.
    pub organization: OrganizationUri,
    /// `created_at:asc` or `created_at:desc`.
    pub sort: Option<String>,
    /// Page size (1..=100; default 100).
    pub count: Option<u32>,
}

impl ListRoutingForms {
    /// The routing forms of `organization`.
    pub fn new(organization: OrganizationUri) -> Self {
        Self { organization, sort: None, count: None }
    }

    /// Sort, e.g. `created_at:desc`.
    pub fn sort(mut self, sort: impl Into<String>) -> Self {
        self.sort = Some(sort.into());
        self
    }

    /// The query parameters.
    #[must_use]
    pub fn to_query(&self) -> Vec<(String, String)> {
        let mut q = vec![("organization".to_owned(), self.organization.to_string())];
        if let Some(s) = &self.sort {
            q.push(("sort".to_owned(), s.clone()));
        }
        q.push(("count".to_owned(), clamp_count(self.count).to_string()));
        q
    }
}

/// `GET /routing_form_submissions` query: the form is required.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct ListRoutingFormSubmissions {
    /// The routing form.
    pub form: RoutingFormUri,
    /// `created_at:asc` or `created_at:desc`.
    pub sort: Option<String>,
    /// Page size (1..=100; default 100).
    pub count: Option<u32>,
}

impl ListRoutingFormSubmissions {
    /// The submissions of `form`.
    pub fn new(form: RoutingFormUri) -> Self {
        Self { form, sort: None, count: None }
    }

    /// Sort, e.g. `created_at:desc`.
    pub fn sort(mut self, sort: impl Into<String>) -> Self {
        self.sort = Some(sort.into());
        self
    }

    /// The query parameters.
    #[must_use]
    pub fn to_query(&self) -> Vec<(String, String)> {
        let mut q = vec![("form".to_owned(), self.form.to_string())];
        if let Some(s) = &self.sort {
            q.push(("sort".to_owned(), s.clone()));
        }
        q.push(("count".to_owned(), clamp_count(self.count).to_string()));
        q
    }
}

impl Client {
    /// One page of routing forms (`page_token`: `None` first, then `pagination.next_page_token`).
    ///
    /// # Errors
    /// [`Error`].
    pub async fn list_routing_forms(
        &self,
        query: &ListRoutingForms,
        page_token: Option<&str>,
    ) -> Result<Collection<RoutingForm>, Error> {
        self.page("/routing_forms", &query.to_query(), page_token).await
    }

    /// Every routing form, as a lazy stream over all pages.
    pub fn stream_routing_forms(
        &self,
        query: &ListRoutingForms,
    ) -> impl Stream<Item = Result<RoutingForm, Error>> + Send + 'static {
        self.stream("/routing_forms", query.to_query())
    }

    /// One routing form.
    ///
    /// # Errors
    /// [`Error`].
    pub async fn get_routing_form(&self, form: &RoutingFormUri) -> Result<RoutingForm, Error> {
        self.resource(Request::get(format!("/routing_forms/{}", form.uuid()))).await
    }

    /// One page of a form's submissions.
    ///
    /// # Errors
    /// [`Error`].
    pub async fn list_routing_form_submissions(
        &self,
        query: &ListRoutingFormSubmissions,
        page_token: Option<&str>,
    ) -> Result<Collection<RoutingFormSubmission>, Error> {
        self.page("/routing_form_submissions", &query.to_query(), page_token).await
    }

    /// Every submission of a form, as a lazy stream over all pages.
    pub fn stream_routing_form_submissions(
        &self,
        query: &ListRoutingFormSubmissions,
    ) -> impl Stream<Item = Result<RoutingFormSubmission, Error>> + Send + 'static {
        self.stream("/routing_form_submissions", query.to_query())
    }

    /// One submission.
    ///
    /// # Errors
    /// [`Error`].
    pub async fn get_routing_form_submission(
        &self,
        submission: &RoutingFormSubmissionUri,
    ) -> Result<RoutingFormSubmission, Error> {
        self.resource(Request::get(format!("/routing_form_submissions/{}", submission.uuid()))).await
    }
}
