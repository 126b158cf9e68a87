//! Segments (App API): list, get, create (manual), delete, member count, membership (paginated), and a person's
//! segments. Adding and removing people from a manual segment is the Track API's
//! [`Client::add_to_segment`]/[`Client::remove_from_segment`].
//!
//! Sources: go-customerio `segments_api.go` (paths `GET/POST /v1/segments`, `GET/DELETE /v1/segments/{id}`
//! (204 on delete), `GET /v1/segments/{id}/customer_count` → `{"count"}`, `GET /v1/segments/{id}/membership` →
//! `{ids, identifiers, next}`, create body `{"segment": {name, description}}`, answers wrapped in `segment`/
//! `segments`); the App API reference `getSegmentMembership` (`start`, `limit` up to 30,000); Track spec schema
//! `segmentResponseObject` (fields, `state` and `type` values). `GET /v1/customers/{id}/segments` is listed in
//! api-notes customerio.md §3 (node PR #228); its `{"segments": [...]}` envelope is read like `GET /v1/segments`
//! (unverified).

use api_core::{Page, Request};
use futures::Stream;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::{
    Client, CustomerRef, Error, Identifier, SegmentId,
    client::AppLane,
    customers::{ListOptions, PeoplePage},
    ids::encode_segment,
    limits::ValidationError,
};

/// The most people one membership page returns (`getSegmentMembership` `limit` max 30,000).
pub const MAX_MEMBERSHIP_LIMIT: u32 = 30_000;

api_core::open_enum! {
    /// Where a segment is in its build (Track spec `segmentResponseObject.state`).
    SegmentState {
        /// Handling event conditions.
        Events = "events",
        /// Handling profile attribute conditions.
        Build = "build",
        /// Waiting to handle event conditions.
        EventsQueued = "events_queued",
        /// Waiting to handle attribute conditions.
        BuildQueued = "build_queued",
        /// Built.
        Finished = "finished",
    }
}

api_core::open_enum! {
    /// Data-driven or manual (Track spec `segmentResponseObject.type`).
    SegmentType {
        /// Data-driven: membership follows conditions.
        Dynamic = "dynamic",
        /// Manual: people are added and removed by API or CSV.
        Manual = "manual",
    }
}

/// A segment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Segment {
    /// Its id.
    pub id: SegmentId,
    /// `id:timestamp`.
    #[serde(default)]
    pub deduplicate_id: Option<String>,
    /// Its name.
    #[serde(default)]
    pub name: Option<String>,
    /// Its description.
    #[serde(default)]
    pub description: Option<String>,
    /// Build state.
    #[serde(default)]
    pub state: Option<SegmentState>,
    /// Build progress (percent) while building.
    #[serde(default)]
    pub progress: Option<i64>,
    /// Dynamic or manual.
    #[serde(default, rename = "type")]
    pub kind: Option<SegmentType>,
    /// Tags.
    #[serde(default)]
    pub tags: Option<Vec<String>>,
    /// Other fields (`created_at`, `updated_at`, …).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Deserialize)]
struct SegmentEnvelope {
    segment: Segment,
}

#[derive(Deserialize)]
struct SegmentsEnvelope {
    #[serde(default)]
    segments: Vec<Segment>,
}

#[derive(Deserialize)]
struct Count {
    count: u64,
}

impl Client {
    /// Every segment: `GET /v1/segments` → `{"segments": [...]}` (the endpoint is not paginated: its one page is the
    /// whole list).
    ///
    /// # Errors
    /// From the call or decoding.
    pub async fn list_segments(&self) -> Result<Vec<Segment>, Error> {
        let resp = self.app_send(AppLane::General, Request::get("/v1/segments")).await?;
        Ok(resp.json::<SegmentsEnvelope>()?.segments)
    }

    /// One segment: `GET /v1/segments/{segment_id}` → `{"segment": {...}}`.
    ///
    /// # Errors
    /// [`Error::Api`] 404 when it does not exist; others from the call.
    pub async fn get_segment(&self, segment_id: SegmentId) -> Result<Segment, Error> {
        let resp = self.app_send(AppLane::General, Request::get(format!("/v1/segments/{segment_id}"))).await?;
        Ok(resp.json::<SegmentEnvelope>()?.segment)
    }

    /// Creates an empty manual segment: `POST /v1/segments` with `{"segment": {"name", "description"}}`. Not
    /// retried after it may have reached Customer.io (a repeat would create a second segment).
    ///
    /// # Errors
    /// [`Error::Invalid`] for an empty name; others from the call.
    pub async fn create_manual_segment(&self, name: &str, description: Option<&str>) -> Result<Segment, Error> {
        if name.trim().is_empty() {
            return Err(ValidationError::Rule("a segment needs a name".into()).into());
        }
        let mut segment = Map::new();
        segment.insert("name".into(), name.into());
        if let Some(d) = description {
            segment.insert("description".into(), d.into());
        }
        let req = Request::post("/v1/segments")
            .json(&json!({ "segment": segment }))
            .map_err(|e| ValidationError::Serialize(e.to_string()))?;
        Ok(self.app_send(AppLane::General, req).await?.json::<SegmentEnvelope>()?.segment)
    }

    /// Deletes a segment: `DELETE /v1/segments/{segment_id}` (204).
    ///
    /// # Errors
    /// [`Error::Api`] 404 when it does not exist; others from the call.
    pub async fn delete_segment(&self, segment_id: SegmentId) -> Result<(), Error> {
        self.app_send(AppLane::General, Request::delete(format!("/v1/segments/{segment_id}"))).await.map(drop)
    }

    /// How many people are in a segment: `GET /v1/segments/{segment_id}/customer_count` → `{"count": n}`.
    ///
    /// # Errors
    /// From the call or decoding.
    pub async fn segment_customer_count(&self, segment_id: SegmentId) -> Result<u64, Error> {
        let req = Request::get(format!("/v1/segments/{segment_id}/customer_count"));
        Ok(self.app_send(AppLane::General, req).await?.json::<Count>()?.count)
    }

    /// One page of a segment's members: `GET /v1/segments/{segment_id}/membership?start&limit` (`limit` at most
    /// 30,000) → `{"identifiers": [...], "ids": [...], "next": "…"}`.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a `limit` out of range; others from the call.
    pub async fn list_segment_members(
        &self,
        segment_id: SegmentId,
        page: &ListOptions,
    ) -> Result<Page<CustomerRef, String>, Error> {
        let req = page.apply(
            Request::get(format!("/v1/segments/{segment_id}/membership")),
            MAX_MEMBERSHIP_LIMIT,
            "segment membership",
        )?;
        Ok(self.app_send(AppLane::General, req).await?.json::<PeoplePage>()?.into_page())
    }

    /// Every member of a segment, page after page (`limit` per page, `None` for the default).
    pub fn stream_segment_members(
        &self,
        segment_id: SegmentId,
        limit: Option<u32>,
    ) -> impl Stream<Item = Result<CustomerRef, Error>> + Send + '_ {
        api_core::paginate(None, move |start: Option<String>| async move {
            self.list_segment_members(segment_id, &ListOptions { start, limit }).await
        })
    }

    /// The segments a person is in: `GET /v1/customers/{id}/segments?id_type=…` → `{"segments": [...]}`.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a bad identifier; [`Error::Api`] 404 for an unknown person.
    pub async fn customer_segments(&self, who: &Identifier) -> Result<Vec<Segment>, Error> {
        who.validate()?;
        let req = Request::get(format!("/v1/customers/{}/segments", encode_segment(who.value())))
            .query("id_type", who.kind());
        Ok(self.app_send(AppLane::General, req).await?.json::<SegmentsEnvelope>()?.segments)
    }
}
