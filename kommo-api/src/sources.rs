//! Lead sources (`GET/POST/PATCH/DELETE /api/v4/sources[/{id}]`) and loss reasons
//! (`GET/POST /api/v4/leads/loss_reasons`, `GET/DELETE /api/v4/leads/loss_reasons/{id}`).
//!
//! Shapes: sources from `../shared/openapi/kommo-community.yaml` (community-made from amoCRM's API reference:
//! `Source`, `SourceCreateItem`, `SourceUpdateItem`, `SourceDeleteItem`, `_embedded.sources`); loss reasons from the
//! PHP library (`EntitiesServices/Leads/LossReasons.php`: path `api/v4/leads/loss_reasons`, `_embedded.loss_reasons`,
//! `Models/Leads/LossReasons/LossReasonModel.php`: `id, name, sort, created_at, updated_at`).

use api_core::Request;
use serde::{Deserialize, Serialize};

use crate::{
    Client, Error, ListPage, ListParams, LossReasonId, PipelineId, SourceId,
    common::{WriteResult, batch_write},
};

/// A lead source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Source {
    /// Id.
    pub id: SourceId,
    /// Name.
    #[serde(default)]
    pub name: String,
    /// Pipeline its leads go to.
    #[serde(default)]
    pub pipeline_id: Option<PipelineId>,
    /// Your id for it.
    #[serde(default)]
    pub external_id: Option<serde_json::Value>,
    /// The default source.
    #[serde(default, deserialize_with = "crate::de::lenient_bool")]
    pub default: bool,
    /// Origin code (`null` for most).
    #[serde(default)]
    pub origin_code: Option<String>,
    /// Other members (`services`, `_links`).
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// A source to create (`SourceCreateItem`: `name` and `external_id` required) or change (`SourceUpdateItem`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[must_use]
pub struct SourceWrite {
    /// The source (updates only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<SourceId>,
    /// Name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Your id for it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    /// Pipeline its leads go to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pipeline_id: Option<PipelineId>,
    /// Make it the default source.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default: Option<bool>,
    /// Echoed back (the client sets the index when `None`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

impl SourceWrite {
    /// A new source.
    pub fn new(name: impl Into<String>, external_id: impl Into<String>) -> Self {
        Self { name: Some(name.into()), external_id: Some(external_id.into()), ..Self::default() }
    }
    /// Changes to source `id`.
    pub fn update(id: SourceId) -> Self {
        Self { id: Some(id), ..Self::default() }
    }
    /// Sets the name.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
    /// Sets the pipeline.
    pub fn pipeline(mut self, pipeline: PipelineId) -> Self {
        self.pipeline_id = Some(pipeline);
        self
    }
}

/// A loss reason.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LossReason {
    /// Id.
    pub id: LossReasonId,
    /// Name.
    #[serde(default)]
    pub name: String,
    /// Sort order.
    #[serde(default, deserialize_with = "crate::de::opt_i64")]
    pub sort: Option<i64>,
    /// Other members (`created_at`, `updated_at`, `_links`).
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// Source operations: `client.sources()`.
#[derive(Debug, Clone, Copy)]
pub struct Sources<'a> {
    pub(crate) client: &'a Client,
}

impl Sources<'_> {
    /// The sources (`GET /api/v4/sources`, one answer, no pages; `filter[external_id]` narrows it; 204 = none).
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn list(&self, params: &ListParams) -> Result<Vec<Source>, Error> {
        Ok(self.client.list_page("/api/v4/sources", "sources", params, 1).await?.items)
    }

    /// `GET /api/v4/sources/{id}`.
    ///
    /// # Errors
    /// See [`Error`]; [`Error::is_not_found`] for an unknown id.
    pub async fn get(&self, id: SourceId) -> Result<Source, Error> {
        self.client.get_one(Request::get(format!("/api/v4/sources/{id}"))).await
    }

    /// `POST /api/v4/sources`; results in input order.
    ///
    /// # Errors
    /// [`Error::InvalidRequest`] when an item has an id, or lacks `name` or `external_id`; see [`Error`].
    pub async fn create(&self, items: &[SourceWrite]) -> Result<Vec<WriteResult>, Error> {
        if let Some(n) = items.iter().position(|s| s.id.is_some() || s.name.is_none() || s.external_id.is_none()) {
            return Err(Error::InvalidRequest(format!("source #{n}: a new source has name and external_id, no id")));
        }
        batch_write(self.client, http::Method::POST, "/api/v4/sources", "sources", items).await
    }

    /// `PATCH /api/v4/sources`; results in input order.
    ///
    /// # Errors
    /// [`Error::InvalidRequest`] when an item has no id; see [`Error`].
    pub async fn update(&self, items: &[SourceWrite]) -> Result<Vec<WriteResult>, Error> {
        if let Some(n) = items.iter().position(|s| s.id.is_none()) {
            return Err(Error::InvalidRequest(format!("source update #{n} has no id")));
        }
        batch_write(self.client, http::Method::PATCH, "/api/v4/sources", "sources", items).await
    }

    /// `DELETE /api/v4/sources/{id}`.
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn delete(&self, id: SourceId) -> Result<(), Error> {
        self.client.send(Request::delete(format!("/api/v4/sources/{id}"))).await?;
        Ok(())
    }
}

/// Loss reason operations: `client.loss_reasons()`.
#[derive(Debug, Clone, Copy)]
pub struct LossReasons<'a> {
    pub(crate) client: &'a Client,
}

impl LossReasons<'_> {
    /// One page of loss reasons (`GET /api/v4/leads/loss_reasons`; 204 = empty page).
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn list(&self, params: &ListParams, page: u32) -> Result<ListPage<LossReason>, Error> {
        self.client.list_page("/api/v4/leads/loss_reasons", "loss_reasons", params, page).await
    }

    /// `GET /api/v4/leads/loss_reasons/{id}`.
    ///
    /// # Errors
    /// See [`Error`]; [`Error::is_not_found`] for an unknown id.
    pub async fn get(&self, id: LossReasonId) -> Result<LossReason, Error> {
        self.client.get_one(Request::get(format!("/api/v4/leads/loss_reasons/{id}"))).await
    }

    /// `POST /api/v4/leads/loss_reasons` `[{name, sort?, request_id}]`; results in input order.
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn create(&self, names: &[&str]) -> Result<Vec<WriteResult>, Error> {
        let body: Vec<serde_json::Value> = names.iter().map(|n| serde_json::json!({ "name": n })).collect();
        batch_write(self.client, http::Method::POST, "/api/v4/leads/loss_reasons", "loss_reasons", &body).await
    }

    /// `DELETE /api/v4/leads/loss_reasons/{id}`.
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn delete(&self, id: LossReasonId) -> Result<(), Error> {
        self.client.send(Request::delete(format!("/api/v4/leads/loss_reasons/{id}"))).await?;
        Ok(())
    }
}
