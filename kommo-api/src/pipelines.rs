//! Pipelines and statuses: `GET /api/v4/leads/pipelines[/{id}[/statuses]]`.

use api_core::Request;
use serde::{Deserialize, Serialize};

use crate::{
    Client, Error, ListParams, PipelineId, StatusId,
    common::{WriteResult, batch_write},
    ids::AccountId,
};

/// A pipeline status (stage).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// Id (142 won, 143 lost in every pipeline).
    pub id: StatusId,
    /// Name.
    #[serde(default)]
    pub name: String,
    /// Sort order.
    #[serde(default, deserialize_with = "crate::de::opt_i64")]
    pub sort: Option<i64>,
    /// Editable.
    #[serde(default, deserialize_with = "crate::de::lenient_bool")]
    pub is_editable: bool,
    /// Pipeline.
    #[serde(default)]
    pub pipeline_id: Option<PipelineId>,
    /// Color (`#c1c1c1`).
    #[serde(default)]
    pub color: Option<String>,
    /// 0 regular, 1 "incoming leads" (unsorted).
    #[serde(default, deserialize_with = "crate::de::opt_i64", rename = "type")]
    pub kind: Option<i64>,
    /// Account.
    #[serde(default)]
    pub account_id: Option<AccountId>,
    /// Other members.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// A pipeline with its statuses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pipeline {
    /// Id.
    pub id: PipelineId,
    /// Name.
    #[serde(default)]
    pub name: String,
    /// Sort order.
    #[serde(default, deserialize_with = "crate::de::opt_i64")]
    pub sort: Option<i64>,
    /// The main pipeline.
    #[serde(default, deserialize_with = "crate::de::lenient_bool")]
    pub is_main: bool,
    /// "Incoming leads" stage enabled.
    #[serde(default, deserialize_with = "crate::de::lenient_bool")]
    pub is_unsorted_on: bool,
    /// Archived.
    #[serde(default, deserialize_with = "crate::de::lenient_bool")]
    pub is_archive: bool,
    /// Account.
    #[serde(default)]
    pub account_id: Option<AccountId>,
    /// `_embedded.statuses`.
    #[serde(default, rename = "_embedded", deserialize_with = "crate::de::object_or_default")]
    pub embedded: PipelineEmbedded,
    /// Other members.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// A pipeline's `_embedded`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PipelineEmbedded {
    /// Statuses.
    #[serde(default, deserialize_with = "crate::de::null_as_empty")]
    pub statuses: Vec<Status>,
}

impl Pipeline {
    /// The statuses.
    #[must_use]
    pub fn statuses(&self) -> &[Status] {
        &self.embedded.statuses
    }

    /// The status with this name (case-insensitive).
    #[must_use]
    pub fn status_by_name(&self, name: &str) -> Option<&Status> {
        self.embedded.statuses.iter().find(|s| s.name.to_lowercase() == name.to_lowercase())
    }
}

/// A pipeline to create (`PipelineCreateItem`: name, sort, is_main, is_unsorted_on, `_embedded.statuses`) or change
/// (`PipelineUpdateItem`, with `id`; also `is_archive`). Shapes from `../shared/openapi/kommo-community.yaml`
/// (community-made from amoCRM's API reference) and the PHP library (`EntitiesServices/Leads/Pipelines.php`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[must_use]
pub struct PipelineWrite {
    /// The pipeline (updates only; in the path).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<PipelineId>,
    /// Name (required on create).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Sort order.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sort: Option<i64>,
    /// Make it the main pipeline.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub is_main: Option<bool>,
    /// "Incoming leads" stage on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub is_unsorted_on: Option<bool>,
    /// Archived (updates).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub is_archive: Option<bool>,
    /// Statuses to create with the pipeline (create only).
    #[serde(rename = "_embedded", skip_serializing_if = "Option::is_none")]
    pub embedded: Option<PipelineWriteEmbedded>,
    /// Echoed back (the client sets the index when `None`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

/// `_embedded` of a new pipeline.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PipelineWriteEmbedded {
    /// Its statuses (Kommo adds won 142 and lost 143 itself).
    pub statuses: Vec<StatusWrite>,
}

impl PipelineWrite {
    /// A new pipeline named `name`.
    pub fn new(name: impl Into<String>) -> Self {
        Self { name: Some(name.into()), ..Self::default() }
    }
    /// Changes to pipeline `id`.
    pub fn update(id: PipelineId) -> Self {
        Self { id: Some(id), ..Self::default() }
    }
    /// Sets the name.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
    /// Sets the sort order.
    pub fn sort(mut self, sort: i64) -> Self {
        self.sort = Some(sort);
        self
    }
    /// Adds a status to create with the pipeline.
    pub fn status(mut self, status: StatusWrite) -> Self {
        self.embedded.get_or_insert_with(Default::default).statuses.push(status);
        self
    }
}

/// A status to create (`StatusCreateItem`: name, sort, color) or change (`StatusUpdateItem`, with `id`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[must_use]
pub struct StatusWrite {
    /// The status (updates only; in the path).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<StatusId>,
    /// Name (required on create).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Sort order.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sort: Option<i64>,
    /// Color (one of Kommo's palette, e.g. `#fffeb2`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub color: Option<String>,
    /// Echoed back (the client sets the index when `None`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

impl StatusWrite {
    /// A new status named `name` at `sort`.
    pub fn new(name: impl Into<String>, sort: i64) -> Self {
        Self { name: Some(name.into()), sort: Some(sort), ..Self::default() }
    }
    /// Changes to status `id`.
    pub fn update(id: StatusId) -> Self {
        Self { id: Some(id), ..Self::default() }
    }
    /// Sets the name.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
    /// Sets the color.
    pub fn color(mut self, color: impl Into<String>) -> Self {
        self.color = Some(color.into());
        self
    }
}

/// `PATCH` one object at `path` (its id left out of the body) and decode `{id, updated_at, ...}`.
async fn patch_one<T: Serialize>(client: &Client, path: String, item: &T) -> Result<WriteResult, Error> {
    let mut body = serde_json::to_value(item).map_err(|e| Error::InvalidRequest(e.to_string()))?;
    if let Some(o) = body.as_object_mut() {
        o.remove("id");
    }
    let req = Request::patch(path).json(&body).map_err(|e| Error::InvalidRequest(e.to_string()))?.idempotent(true);
    client.send_json(req).await
}

/// Pipeline operations: `client.pipelines()`.
#[derive(Debug, Clone, Copy)]
pub struct Pipelines<'a> {
    pub(crate) client: &'a Client,
}

impl Pipelines<'_> {
    /// Every pipeline with its statuses (one request; Kommo allows at most 50 pipelines).
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn list(&self) -> Result<Vec<Pipeline>, Error> {
        Ok(self.client.list_page("/api/v4/leads/pipelines", "pipelines", &ListParams::new(), 1).await?.items)
    }

    /// One pipeline.
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn get(&self, id: PipelineId) -> Result<Pipeline, Error> {
        self.client.get_one(Request::get(format!("/api/v4/leads/pipelines/{id}"))).await
    }

    /// `POST /api/v4/leads/pipelines` (with their statuses); results in input order.
    ///
    /// # Errors
    /// [`Error::InvalidRequest`] when an item has an id or no name; see [`Error`].
    pub async fn create(&self, items: &[PipelineWrite]) -> Result<Vec<WriteResult>, Error> {
        if let Some(n) = items.iter().position(|p| p.id.is_some() || p.name.is_none()) {
            return Err(Error::InvalidRequest(format!("pipeline #{n} to create needs a name and no id")));
        }
        batch_write(self.client, http::Method::POST, "/api/v4/leads/pipelines", "pipelines", items).await
    }

    /// `PATCH /api/v4/leads/pipelines/{id}`.
    ///
    /// # Errors
    /// [`Error::InvalidRequest`] without an id; see [`Error`].
    pub async fn update(&self, update: &PipelineWrite) -> Result<WriteResult, Error> {
        let id = update.id.ok_or_else(|| Error::InvalidRequest("pipeline update has no id".into()))?;
        patch_one(self.client, format!("/api/v4/leads/pipelines/{id}"), update).await
    }

    /// `DELETE /api/v4/leads/pipelines/{id}`.
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn delete(&self, id: PipelineId) -> Result<(), Error> {
        self.client.send(Request::delete(format!("/api/v4/leads/pipelines/{id}"))).await?;
        Ok(())
    }

    /// `POST /api/v4/leads/pipelines/{id}/statuses`; results in input order.
    ///
    /// # Errors
    /// [`Error::InvalidRequest`] when an item has an id or no name; see [`Error`].
    pub async fn create_statuses(
        &self,
        pipeline: PipelineId,
        items: &[StatusWrite],
    ) -> Result<Vec<WriteResult>, Error> {
        if let Some(n) = items.iter().position(|s| s.id.is_some() || s.name.is_none()) {
            return Err(Error::InvalidRequest(format!("status #{n} to create needs a name and no id")));
        }
        let path = format!("/api/v4/leads/pipelines/{pipeline}/statuses");
        batch_write(self.client, http::Method::POST, &path, "statuses", items).await
    }

    /// `PATCH /api/v4/leads/pipelines/{pipeline}/statuses/{id}`.
    ///
    /// # Errors
    /// [`Error::InvalidRequest`] without an id; see [`Error`].
    pub async fn update_status(&self, pipeline: PipelineId, update: &StatusWrite) -> Result<WriteResult, Error> {
        let id = update.id.ok_or_else(|| Error::InvalidRequest("status update has no id".into()))?;
        patch_one(self.client, format!("/api/v4/leads/pipelines/{pipeline}/statuses/{id}"), update).await
    }

    /// `DELETE /api/v4/leads/pipelines/{pipeline}/statuses/{id}` (the system statuses 142 and 143 cannot be).
    ///
    /// # Errors
    /// [`Error::InvalidRequest`] for 142 / 143; see [`Error`].
    pub async fn delete_status(&self, pipeline: PipelineId, id: StatusId) -> Result<(), Error> {
        if id.is_closed() {
            return Err(Error::InvalidRequest(format!("status {id} is a system status and cannot be deleted")));
        }
        self.client.send(Request::delete(format!("/api/v4/leads/pipelines/{pipeline}/statuses/{id}"))).await?;
        Ok(())
    }

    /// The statuses of one pipeline.
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn statuses(&self, id: PipelineId) -> Result<Vec<Status>, Error> {
        let path = format!("/api/v4/leads/pipelines/{id}/statuses");
        Ok(self.client.list_page(&path, "statuses", &ListParams::new(), 1).await?.items)
    }
}
