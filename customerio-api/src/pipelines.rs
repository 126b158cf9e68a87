//! The Pipelines (Data Pipelines / CDP) API: `identify` and `track` only (`POST /v1/identify`, `POST /v1/track` on
//! `https://cdp.customer.io` / `https://cdp-eu.customer.io`), with Basic auth `api_key:` (the key as user, empty
//! password).
//!
//! Source: Customer.io's published Pipelines spec (`shared/openapi/customerio-pipelines.json`, "official" per that
//! folder's README; api-notes customerio.md lists it as "Pipelines spec" and names `https://cdp.customer.io/v1`
//! and `cdp-eu` as the bases): schemas `identify` (`userId` or `anonymousId` required, `traits`), `track`
//! (`event` and `type` required with `userId` or `anonymousId`; `properties`), `common_fields` (`timestamp`
//! ISO-8601 for backfills; `messageId` "is set by Customer.io", so this crate does not send one), response 200
//! `{}`, 400 `{"meta":{"errors":[…]}}`. Page, screen, group, alias and batch are not typed (use
//! [`Client::send`] with [`Api::Pipelines`](crate::Api::Pipelines)).
//!
//! Neither call carries an id Customer.io documents as deduplicating, so neither is retried after it may have
//! reached Customer.io (429 and connect errors are retried).

use api_core::Request;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{Client, Error, limits::ValidationError};

/// Who a Pipelines call is about: your `userId`, or an `anonymousId` before you know them (or both).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct PipelinesUser {
    /// `userId`.
    #[serde(rename = "userId", default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// `anonymousId`.
    #[serde(rename = "anonymousId", default, skip_serializing_if = "Option::is_none")]
    pub anonymous_id: Option<String>,
}

impl PipelinesUser {
    /// By your user id.
    #[must_use]
    pub fn user(id: impl Into<String>) -> Self {
        Self { user_id: Some(id.into()), anonymous_id: None }
    }

    /// By an anonymous id.
    #[must_use]
    pub fn anonymous(id: impl Into<String>) -> Self {
        Self { user_id: None, anonymous_id: Some(id.into()) }
    }

    fn validate(&self) -> Result<(), ValidationError> {
        let blank = |v: &Option<String>| v.as_deref().is_none_or(|s| s.trim().is_empty());
        if blank(&self.user_id) && blank(&self.anonymous_id) {
            return Err(ValidationError::Rule("a Pipelines call needs userId or anonymousId".into()));
        }
        Ok(())
    }
}

/// `POST /v1/identify`: `{"type": "identify", "userId"|"anonymousId", "traits": {...}, "timestamp"?}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[must_use]
pub struct PipelinesIdentify {
    /// Always `"identify"`.
    #[serde(rename = "type")]
    kind: String,
    /// Who.
    #[serde(flatten)]
    pub user: PipelinesUser,
    /// Traits (attributes): `email`, `createdAt` (ISO-8601), `unsubscribed`, `cio_subscription_preferences`, any
    /// other.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub traits: Map<String, Value>,
    /// When it happened (ISO-8601), for backfills; Customer.io uses the receipt time otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
}

impl PipelinesIdentify {
    /// Identifies `user`.
    pub fn new(user: PipelinesUser) -> Self {
        Self { kind: "identify".into(), user, traits: Map::new(), timestamp: None }
    }

    /// Adds a trait.
    pub fn trait_(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.traits.insert(key.into(), value.into());
        self
    }

    /// Sets the ISO-8601 `timestamp`.
    pub fn timestamp(mut self, iso8601: impl Into<String>) -> Self {
        self.timestamp = Some(iso8601.into());
        self
    }
}

/// `POST /v1/track`: `{"type": "track", "event", "userId"|"anonymousId", "properties": {...}, "timestamp"?}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[must_use]
pub struct PipelinesTrack {
    /// Always `"track"` (required by the spec's `track` schema).
    #[serde(rename = "type")]
    kind: String,
    /// Who.
    #[serde(flatten)]
    pub user: PipelinesUser,
    /// The event name.
    pub event: String,
    /// Event properties.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub properties: Map<String, Value>,
    /// When it happened (ISO-8601), for backfills.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
}

impl PipelinesTrack {
    /// `event` for `user`.
    pub fn new(user: PipelinesUser, event: impl Into<String>) -> Self {
        Self { kind: "track".into(), user, event: event.into(), properties: Map::new(), timestamp: None }
    }

    /// Adds a property.
    pub fn property(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.properties.insert(key.into(), value.into());
        self
    }

    /// Sets the ISO-8601 `timestamp`.
    pub fn timestamp(mut self, iso8601: impl Into<String>) -> Self {
        self.timestamp = Some(iso8601.into());
        self
    }
}

impl Client {
    /// Identifies a person through Pipelines: `POST /v1/identify`.
    ///
    /// # Errors
    /// [`Error::Invalid`] without `userId` and `anonymousId`; [`Error::MissingCredentials`] without
    /// [`ClientBuilder::pipelines_api_key`](crate::ClientBuilder::pipelines_api_key); [`Error::Api`] with
    /// `{"meta":{"errors":[…]}}` for a 400.
    pub async fn pipelines_identify(&self, call: &PipelinesIdentify) -> Result<(), Error> {
        call.user.validate()?;
        let req = Request::post("/v1/identify").json(call).map_err(|e| ValidationError::Serialize(e.to_string()))?;
        self.pipelines_send(req).await.map(drop)
    }

    /// Tracks an event through Pipelines: `POST /v1/track`.
    ///
    /// # Errors
    /// [`Error::Invalid`] without a user or with an empty event name; see [`Client::pipelines_identify`].
    pub async fn pipelines_track(&self, call: &PipelinesTrack) -> Result<(), Error> {
        call.user.validate()?;
        if call.event.trim().is_empty() {
            return Err(ValidationError::Rule("a Pipelines track call needs an event name".into()).into());
        }
        let req = Request::post("/v1/track").json(call).map_err(|e| ValidationError::Serialize(e.to_string()))?;
        self.pipelines_send(req).await.map(drop)
    }
}
