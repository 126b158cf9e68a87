//! Pipelines and statuses: `GET /api/v4/leads/pipelines[/{id}[/statuses]]`.

use api_core::Request;
use serde::{Deserialize, Serialize};

use crate::{Client, Error, ListParams, PipelineId, StatusId, ids::AccountId};

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

    /// The statuses of one pipeline.
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn statuses(&self, id: PipelineId) -> Result<Vec<Status>, Error> {
        let path = format!("/api/v4/leads/pipelines/{id}/statuses");
        Ok(self.client.list_page(&path, "statuses", &ListParams::new(), 1).await?.items)
    }
}
