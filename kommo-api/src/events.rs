//! Events (`GET /api/v4/events`, for reconciliation and deletions) and webhook subscriptions
//! (`GET/POST/DELETE /api/v4/webhooks`).

use api_core::Request;
use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};

use crate::{Client, Error, ListPage, ListParams, UserId, WebhookId, ids::AccountId};

/// An event from the account's event log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Id (a string, e.g. `"01pz58t6p04vry6tvk7wfqtgbb"`).
    pub id: String,
    /// Type (`lead_added`, `lead_deleted`, `lead_status_changed`, `custom_field_123_value_changed`...).
    #[serde(rename = "type")]
    pub kind: String,
    /// The entity id.
    #[serde(default)]
    pub entity_id: Option<u64>,
    /// The entity type, singular (`lead`, `contact`, `company`, `task`).
    #[serde(default)]
    pub entity_type: Option<String>,
    /// Author.
    #[serde(default)]
    pub created_by: Option<UserId>,
    /// When (Unix seconds).
    #[serde(default, deserialize_with = "crate::de::opt_i64")]
    pub created_at: Option<i64>,
    /// Values after (`[{"lead_status": {"id": 142, "pipeline_id": 1}}]`).
    #[serde(default)]
    pub value_after: serde_json::Value,
    /// Values before.
    #[serde(default)]
    pub value_before: serde_json::Value,
    /// Account.
    #[serde(default)]
    pub account_id: Option<AccountId>,
    /// Other members.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// Event operations: `client.events()`.
#[derive(Debug, Clone, Copy)]
pub struct Events<'a> {
    pub(crate) client: &'a Client,
}

impl Events<'_> {
    /// One page of events. Filters: `filter[type]` (use [`ListParams::filter_in`] with `"type"`),
    /// `filter[entity]`, `filter[created_at][from]` ([`ListParams::created_between`]).
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn list(&self, params: &ListParams, page: u32) -> Result<ListPage<Event>, Error> {
        self.client.list_page("/api/v4/events", "events", params, page).await
    }

    /// `GET /api/v4/events/types[?language_code=..]`: every event type. The list is read from
    /// `_embedded.events_types` (the PHP library's `EventTypes::getEntitiesFromResponse`, constant `EVENTS_TYPES`)
    /// or `_embedded.types` (the community OpenAPI's `EventTypesResponse`); the sources disagree, both are accepted.
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn types(&self, language: Option<&str>) -> Result<Vec<EventType>, Error> {
        let mut req = Request::get("/api/v4/events/types");
        if let Some(l) = language {
            req = req.query("language_code", l);
        }
        let resp = self.client.send(req).await?;
        let page = crate::hal::decode_list::<EventType>(&resp, "events_types", 1)?;
        if !page.items.is_empty() {
            return Ok(page.items);
        }
        Ok(crate::hal::decode_list::<EventType>(&resp, "types", 1)?.items)
    }

    /// Every event matching `params`, lazily.
    pub fn stream(&self, params: ListParams) -> BoxStream<'static, Result<Event, Error>> {
        self.client.stream_list("/api/v4/events".into(), "events", params)
    }
}

/// An event type (`GET /api/v4/events/types`): its `key` is what `filter[type]` and [`Event::kind`] use.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventType {
    /// The type key (`lead_added`, `custom_field_value_changed`...).
    pub key: String,
    /// Type code.
    #[serde(default)]
    pub type_id: Option<serde_json::Value>,
    /// Name in the requested language.
    #[serde(default)]
    pub lang: Option<String>,
    /// Entity type (`lead`, ...).
    #[serde(default)]
    pub entity_type: Option<String>,
    /// Other members.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// A webhook subscription.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebhookSubscription {
    /// Id.
    #[serde(default)]
    pub id: Option<WebhookId>,
    /// The receiver URL.
    pub destination: String,
    /// Events (`add_lead`, `status_lead`, `update_contact`, `note_lead`...).
    #[serde(default)]
    pub settings: Vec<String>,
    /// Disabled by Kommo after failures.
    #[serde(default, deserialize_with = "crate::de::lenient_bool")]
    pub disabled: bool,
    /// Created (Unix seconds).
    #[serde(default, deserialize_with = "crate::de::opt_i64")]
    pub created_at: Option<i64>,
    /// Other members.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// Webhook subscription operations: `client.webhooks()` (admin tokens only).
#[derive(Debug, Clone, Copy)]
pub struct Webhooks<'a> {
    pub(crate) client: &'a Client,
}

impl Webhooks<'_> {
    /// `GET /api/v4/webhooks` (204 = none).
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn list(&self) -> Result<Vec<WebhookSubscription>, Error> {
        Ok(self.client.list_page("/api/v4/webhooks", "webhooks", &ListParams::new(), 1).await?.items)
    }

    /// `POST /api/v4/webhooks {destination, settings}` (subscribing the same destination again replaces it).
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn subscribe(&self, destination: &str, settings: &[&str]) -> Result<WebhookSubscription, Error> {
        let req = Request::post("/api/v4/webhooks")
            .json(&serde_json::json!({ "destination": destination, "settings": settings }))
            .map_err(|e| Error::InvalidRequest(e.to_string()))?
            .idempotent(true);
        self.client.send_json(req).await
    }

    /// `DELETE /api/v4/webhooks {destination}`.
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn unsubscribe(&self, destination: &str) -> Result<(), Error> {
        let req = Request::delete("/api/v4/webhooks")
            .json(&serde_json::json!({ "destination": destination }))
            .map_err(|e| Error::InvalidRequest(e.to_string()))?;
        self.client.send(req).await?;
        Ok(())
    }
}
