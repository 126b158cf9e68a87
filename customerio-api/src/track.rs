//! Track API v1: people, events, devices, suppression, merges.
//!
//! Every call checks Customer.io's documented limits first ([`crate::limits`]) and fails with
//! [`Error::Invalid`] instead of a vendor 400.

use api_core::Request;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{
    Client, Error, EventId, Identifier, SegmentId,
    ids::encode_segment,
    limits::{ValidationError, check_attributes, check_event, check_identifier_value},
};

/// An identify (create or update) body: a flat attribute map with reserved keys set by the typed setters.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
#[must_use]
pub struct Identify {
    body: Map<String, Value>,
}

impl Identify {
    /// An empty identify (creates the person if missing, unless [`Identify::update_only`]).
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets an attribute (string, number, boolean; `null` or `""` clears it).
    pub fn attr(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.body.insert(name.into(), value.into());
        self
    }

    /// Sets several attributes.
    pub fn attrs(mut self, attrs: impl IntoIterator<Item = (String, Value)>) -> Self {
        self.body.extend(attrs);
        self
    }

    /// `email`.
    pub fn email(self, email: impl Into<String>) -> Self {
        self.attr("email", email.into())
    }

    /// `id` (set it when identifying by email; change it when identifying by `cio_id`).
    pub fn id(self, id: impl Into<String>) -> Self {
        self.attr("id", id.into())
    }

    /// `created_at`, unix seconds.
    pub fn created_at(self, unix_seconds: i64) -> Self {
        self.attr("created_at", unix_seconds)
    }

    /// `_update: true`: never create a profile, only update an existing one (a missing person gives a "Failed
    /// Attribute Change" activity, not an error).
    pub fn update_only(self) -> Self {
        self.attr("_update", true)
    }

    /// `_timestamp`, unix seconds: orders rapid successive updates (an older update does not overwrite a newer one).
    pub fn timestamp(self, unix_seconds: i64) -> Self {
        self.attr("_timestamp", unix_seconds)
    }

    /// `anonymous_id`: links earlier anonymous events to this person.
    pub fn anonymous_id(self, anonymous_id: impl Into<String>) -> Self {
        self.attr("anonymous_id", anonymous_id.into())
    }

    /// `unsubscribed`.
    pub fn unsubscribed(self, yes: bool) -> Self {
        self.attr("unsubscribed", yes)
    }

    /// The body as sent.
    #[must_use]
    pub fn body(&self) -> &Map<String, Value> {
        &self.body
    }

    /// Checks the attribute limits.
    ///
    /// # Errors
    /// The first limit broken.
    pub fn validate(&self) -> Result<(), ValidationError> {
        check_attributes(&self.body)?;
        for key in ["id", "email"] {
            if let Some(Value::String(v)) = self.body.get(key) {
                check_identifier_value(v)?;
            }
        }
        Ok(())
    }
}

api_core::open_enum! {
    /// `type` of an event.
    #[derive(Default)]
    EventType {
        /// A standard event (the default).
        #[default]
        Event = "event",
        /// A page view (`name` is the URL).
        Page = "page",
        /// A mobile screen view.
        Screen = "screen",
    }
}

/// An event for `POST /api/v1/customers/{identifier}/events` (and, with `anonymous_id`, `POST /api/v1/events`).
///
/// [`Event::new`] assigns a fresh ULID [`EventId`]: Customer.io ignores an event whose `id` it has seen, so a
/// retried request never double-counts. For replays of a source record, use [`Event::id`] with
/// [`EventId::from_source_key`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[must_use]
pub struct Event {
    /// Event name (≤ 100 bytes; surrounding spaces are trimmed by Customer.io).
    pub name: String,
    /// Dedup id (a ULID).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<EventId>,
    /// `event` (default), `page` or `screen`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<EventType>,
    /// Unix seconds (default: receipt time). Only events from the past 72 h trigger campaigns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<i64>,
    /// Free-form data (≤ 100,000 bytes serialized). Reserved keys: `recipient`, `from_address`, `reply_to`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Map<String, Value>>,
    /// For anonymous events: the anonymous id to merge later via identify's `anonymous_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anonymous_id: Option<String>,
}

impl Event {
    /// An event with a fresh random ULID id.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            id: Some(EventId::new()),
            kind: None,
            timestamp: None,
            data: None,
            anonymous_id: None,
        }
    }

    /// A page view (`type: page`, the name is the URL), with a fresh id.
    pub fn page(url: impl Into<String>) -> Self {
        Self::new(url).kind(EventType::Page)
    }

    /// A mobile screen view (`type: screen`), with a fresh id.
    pub fn screen(name: impl Into<String>) -> Self {
        Self::new(name).kind(EventType::Screen)
    }

    /// Sets the dedup id (e.g. [`EventId::from_source_key`]).
    pub fn id(mut self, id: EventId) -> Self {
        self.id = Some(id);
        self
    }

    /// Sends no dedup id (a retry may then double-count; retries of such events are limited to safe cases).
    pub fn without_id(mut self) -> Self {
        self.id = None;
        self
    }

    /// Sets the type.
    pub fn kind(mut self, kind: EventType) -> Self {
        self.kind = Some(kind);
        self
    }

    /// Sets the timestamp, unix seconds.
    pub fn timestamp(mut self, unix_seconds: i64) -> Self {
        self.timestamp = Some(unix_seconds);
        self
    }

    /// Adds a data field.
    pub fn data(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.data.get_or_insert_with(Map::new).insert(key.into(), value.into());
        self
    }

    /// Replaces the data map.
    pub fn data_map(mut self, data: Map<String, Value>) -> Self {
        self.data = Some(data);
        self
    }

    /// Sets the anonymous id (for [`Client::track_anonymous`]).
    pub fn anonymous_id(mut self, anonymous_id: impl Into<String>) -> Self {
        self.anonymous_id = Some(anonymous_id.into());
        self
    }

    /// Checks name and data limits.
    ///
    /// # Errors
    /// The first limit broken.
    pub fn validate(&self) -> Result<(), ValidationError> {
        check_event(&self.name, self.data.as_ref())
    }
}

api_core::open_enum! {
    /// A device platform.
    Platform {
        /// iOS.
        Ios = "ios",
        /// Android.
        Android = "android",
    }
}

/// A device for `PUT /api/v1/customers/{identifier}/devices`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[must_use]
pub struct Device {
    /// The device token.
    pub id: String,
    /// `ios` or `android`.
    pub platform: Platform,
    /// Unix seconds of last use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used: Option<i64>,
    /// Device attributes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attributes: Option<Map<String, Value>>,
}

impl Device {
    /// A device with its token and platform.
    pub fn new(token: impl Into<String>, platform: Platform) -> Self {
        Self { id: token.into(), platform, last_used: None, attributes: None }
    }

    /// Sets `last_used`.
    pub fn last_used(mut self, unix_seconds: i64) -> Self {
        self.last_used = Some(unix_seconds);
        self
    }

    /// Adds a device attribute.
    pub fn attr(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.attributes.get_or_insert_with(Map::new).insert(key.into(), value.into());
        self
    }
}

/// `GET /api/v1/accounts/region`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegionInfo {
    /// `https://track.customer.io` or `https://track-eu.customer.io`.
    pub url: String,
    /// `us` or `eu`.
    pub region: String,
    /// The workspace id.
    #[serde(default)]
    pub environment_id: Option<i64>,
    /// Other fields.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

fn customer_path(who: &Identifier) -> Result<String, Error> {
    who.validate()?;
    // Customer.io reads the path identifier's type from its shape: an id with `@` would address an email, and an
    // id starting with `cio_` a cio_id, i.e. possibly someone else. Refuse instead of guessing.
    if let Identifier::Id(v) = who
        && (v.contains('@') || v.starts_with("cio_"))
    {
        return Err(ValidationError::Rule(format!(
            "id {v:?} would be read as an email or cio_id in a v1 path; use the v2 API (Client::entity) for it"
        ))
        .into());
    }
    if let Identifier::Email(v) = who
        && !v.contains('@')
    {
        return Err(ValidationError::Rule(format!("email {v:?} has no `@`; Customer.io would read it as an id")).into());
    }
    Ok(format!("/api/v1/customers/{}", who.path_segment()))
}

fn json_req(req: Request, body: &impl Serialize) -> Result<Request, Error> {
    req.json(body).map_err(|e| Error::Invalid(ValidationError::Serialize(e.to_string())))
}

impl Client {
    /// Creates or updates a person: `PUT /api/v1/customers/{identifier}`. Idempotent (retried on 5xx).
    ///
    /// A 200 does not prove the update applied: Customer.io reports identifier conflicts as an "Attribute Update
    /// Failure" activity, not an error.
    ///
    /// # Errors
    /// [`Error::Invalid`] for limit breaches (identifier ≤ 150 bytes, values ≤ 1,000 bytes, ≤ 300 attributes);
    /// [`Error::Api`] and others from the call.
    pub async fn identify(&self, who: &Identifier, body: &Identify) -> Result<(), Error> {
        body.validate()?;
        let req = json_req(Request::put(customer_path(who)?), body)?;
        self.track_send(req).await.map(drop)
    }

    /// Deletes a person: `DELETE /api/v1/customers/{identifier}`. A later identify or event recreates them.
    ///
    /// # Errors
    /// See [`Client::identify`].
    pub async fn delete_person(&self, who: &Identifier) -> Result<(), Error> {
        self.track_send(Request::delete(customer_path(who)?)).await.map(drop)
    }

    /// Suppresses a person: deletes the profile and blocks the identifier from being re-added (GDPR/CCPA).
    /// Irreversible for the profile.
    ///
    /// # Errors
    /// See [`Client::identify`].
    pub async fn suppress(&self, who: &Identifier) -> Result<(), Error> {
        let path = format!("{}/suppress", customer_path(who)?);
        self.track_send(Request::post(path).idempotent(true)).await.map(drop)
    }

    /// Frees a suppressed identifier (the profile is not restored).
    ///
    /// # Errors
    /// See [`Client::identify`].
    pub async fn unsuppress(&self, who: &Identifier) -> Result<(), Error> {
        let path = format!("{}/unsuppress", customer_path(who)?);
        self.track_send(Request::post(path).idempotent(true)).await.map(drop)
    }

    /// Tracks an event for a person: `POST /api/v1/customers/{identifier}/events`. With an event `id` (the default)
    /// the POST is idempotent and is retried on 5xx and timeouts; without one, only on 429 and connect errors.
    ///
    /// # Errors
    /// [`Error::Invalid`] for an empty/long name or data over 100,000 bytes; others from the call.
    pub async fn track(&self, who: &Identifier, event: &Event) -> Result<(), Error> {
        event.validate()?;
        let path = format!("{}/events", customer_path(who)?);
        let req = json_req(Request::post(path), event)?.idempotent(event.id.is_some());
        self.track_send(req).await.map(drop)
    }

    /// Tracks an anonymous event: `POST /api/v1/events` (set [`Event::anonymous_id`]; without it and with
    /// `data.recipient` it is an "invite" event).
    ///
    /// # Errors
    /// See [`Client::track`].
    pub async fn track_anonymous(&self, event: &Event) -> Result<(), Error> {
        event.validate()?;
        let req = json_req(Request::post("/api/v1/events"), event)?.idempotent(event.id.is_some());
        self.track_send(req).await.map(drop)
    }

    /// Adds or updates a device: `PUT /api/v1/customers/{identifier}/devices`.
    ///
    /// # Errors
    /// See [`Client::identify`].
    pub async fn add_device(&self, who: &Identifier, device: &Device) -> Result<(), Error> {
        if device.id.is_empty() {
            return Err(ValidationError::Rule("device token is empty".into()).into());
        }
        let path = format!("{}/devices", customer_path(who)?);
        let req = json_req(Request::put(path), &serde_json::json!({ "device": device }))?;
        self.track_send(req).await.map(drop)
    }

    /// Deletes a device: `DELETE /api/v1/customers/{identifier}/devices/{device_id}`.
    ///
    /// # Errors
    /// See [`Client::identify`].
    pub async fn delete_device(&self, who: &Identifier, device_token: &str) -> Result<(), Error> {
        if device_token.is_empty() {
            return Err(ValidationError::Rule("device token is empty".into()).into());
        }
        let path = format!("{}/devices/{}", customer_path(who)?, encode_segment(device_token));
        self.track_send(Request::delete(path)).await.map(drop)
    }

    /// Merges `secondary` into `primary` (which must already exist): `POST /api/v1/merge_customers`. Irreversible;
    /// not retried on 5xx (a second attempt would fail: the secondary is gone).
    ///
    /// # Errors
    /// See [`Client::identify`]; a 400 carries `{"meta":{"error":"..."}}` ([`VendorError::Message`](crate::VendorError::Message)).
    pub async fn merge_people(&self, primary: &Identifier, secondary: &Identifier) -> Result<(), Error> {
        primary.validate()?;
        secondary.validate()?;
        let body = serde_json::json!({ "primary": primary, "secondary": secondary });
        let req = json_req(Request::post("/api/v1/merge_customers"), &body)?;
        self.track_send(req).await.map(drop)
    }

    /// Adds people to a manual segment: `POST /api/v1/segments/{segment_id}/add_customers?id_type=…` with
    /// `{"ids": [...]}` (1 to 1,000 values of the kind given by `id_type`: `"id"`, `"email"` or `"cio_id"`).
    ///
    /// # Errors
    /// [`Error::Invalid`] for an empty list, more than 1,000 ids, or an unknown `id_type`; others from the call.
    pub async fn add_to_segment(&self, segment_id: SegmentId, id_type: &str, ids: &[String]) -> Result<(), Error> {
        self.segment_change(segment_id, "add_customers", id_type, ids).await
    }

    /// Removes people from a manual segment: `POST /api/v1/segments/{segment_id}/remove_customers`.
    ///
    /// # Errors
    /// See [`Client::add_to_segment`].
    pub async fn remove_from_segment(&self, segment_id: SegmentId, id_type: &str, ids: &[String]) -> Result<(), Error> {
        self.segment_change(segment_id, "remove_customers", id_type, ids).await
    }

    async fn segment_change(
        &self,
        segment_id: SegmentId,
        op: &str,
        id_type: &str,
        ids: &[String],
    ) -> Result<(), Error> {
        if !matches!(id_type, "id" | "email" | "cio_id") {
            return Err(ValidationError::Rule(format!("id_type must be id, email or cio_id, not {id_type:?}")).into());
        }
        if ids.is_empty() || ids.len() > 1000 {
            return Err(
                ValidationError::Rule(format!("a segment change takes 1 to 1000 ids, not {}", ids.len())).into()
            );
        }
        for id in ids {
            check_identifier_value(id)?;
        }
        let req =
            json_req(Request::post(format!("/api/v1/segments/{segment_id}/{op}")), &serde_json::json!({ "ids": ids }))?
                .query("id_type", id_type)
                .idempotent(true);
        self.track_send(req).await.map(drop)
    }

    /// The workspace's region: `GET /api/v1/accounts/region` (works on either regional host).
    ///
    /// # Errors
    /// From the call or decoding.
    pub async fn account_region(&self) -> Result<RegionInfo, Error> {
        let resp = self.track_send(Request::get("/api/v1/accounts/region")).await?;
        Ok(resp.json()?)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn identify_body_has_reserved_keys() {
        let b = Identify::new()
            .email("a@x.io")
            .created_at(1_361_205_308)
            .attr("plan", "basic")
            .update_only()
            .timestamp(1_700_000_000);
        assert_eq!(
            serde_json::to_value(&b).unwrap(),
            json!({"email":"a@x.io","created_at":1_361_205_308,"plan":"basic","_update":true,"_timestamp":1_700_000_000})
        );
    }

    #[test]
    fn event_serializes_with_id_and_type() {
        let id: EventId = "01E4C4CT6YDC7Y5M7FE1GWWPQJ".parse().unwrap();
        let e = Event::new("purchase").id(id).timestamp(1).data("price", 23.45).kind(EventType::Event);
        assert_eq!(
            serde_json::to_value(&e).unwrap(),
            json!({"name":"purchase","id":"01E4C4CT6YDC7Y5M7FE1GWWPQJ","type":"event","timestamp":1,"data":{"price":23.45}})
        );
        assert!(Event::new("x").id.is_some(), "fresh events carry an id");
    }

    #[test]
    fn unknown_platform_round_trips() {
        let p: Platform = serde_json::from_str("\"harmonyos\"").unwrap();
        assert_eq!(p, Platform::Unknown("harmonyos".into()));
        assert_eq!(serde_json::to_string(&p).unwrap(), "\"harmonyos\"");
        assert_eq!(serde_json::from_str::<Platform>("\"ios\"").unwrap(), Platform::Ios);
    }
}
