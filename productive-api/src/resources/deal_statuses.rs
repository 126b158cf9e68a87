//! Deal statuses (`/deal_statuses`): the stages of the sales pipelines. Get, list one page, stream.
//!
//! Sources: community OpenAPI `/deal_statuses` (GET, POST; no filters listed), `/deal_statuses/{id}`; api-notes
//! productive.md §4 Deals (`deal_status_id` on create; `stage_status_id` 1 open, 2 won, 3 lost; `pipeline_id`).
//! Attribute names beyond `name` are **unverified** (no sample body found; unknown ones kept in `extra`).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{
    Client, Error,
    jsonapi::{Document, Query, Resource},
    types::{DealStage, DealStatusId, ResourceType},
};

/// A deal status's attributes.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct DealStatusAttributes {
    /// Name.
    #[serde(deserialize_with = "crate::types::null_as_default")]
    pub name: String,
    /// Open / won / lost.
    pub status_id: Option<DealStage>,
    /// Win probability (percent).
    pub probability: Option<u32>,
    /// Position in the pipeline.
    pub position: Option<i64>,
    /// Color id.
    pub color_id: Option<u64>,
    /// When archived.
    pub archived_at: Option<String>,
    /// Unknown attributes.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ResourceType for DealStatusAttributes {
    const TYPE: &'static str = "deal_statuses";
    type Id = DealStatusId;
}

/// A deal status resource.
pub type DealStatus = Resource<DealStatusAttributes>;

super::collection!(
    list_deal_statuses,
    stream_deal_statuses,
    "/deal_statuses",
    DealStatusAttributes,
    "deal statuses",
    "No filters are documented (community OpenAPI `/deal_statuses`)."
);

impl Client {
    /// `GET /deal_statuses/{id}`.
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn get_deal_status(&self, id: &DealStatusId) -> Result<Document<DealStatus>, Error> {
        self.get_resource(&format!("/deal_statuses/{id}"), &Query::new()).await
    }
}
