//! Webhook subscriptions (`/webhooks`): create (one per `event_id`), list, get, delete. The create response's
//! `signature_token` is the HMAC key for [`crate::webhook::verify_signature`]; persist it. It is a
//! [`Token`], so `Debug` prints `[redacted]`.

use api_core::Token;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{
    Client, Error,
    jsonapi::{Document, Query, Resource, WriteDocument},
    types::{EventId, ResourceType, WebhookId, WebhookLogId, WebhookState, WebhookType},
};

/// A webhook's attributes (withone "List Webhooks" sample).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct WebhookAttributes {
    /// Name.
    pub name: Option<String>,
    /// The event (one per webhook).
    pub event_id: Option<EventId>,
    /// 1 working, 2 issues, 3 waiting.
    pub state_id: Option<WebhookState>,
    /// Retry attempts so far.
    pub retry_attempts: Option<u64>,
    /// Set when Productive deactivated it (after repeated failures): recreate it.
    pub deactivated_at: Option<String>,
    /// The HMAC key for `Productive-Signature` (redacted in `Debug`).
    pub signature_token: Option<Token>,
    /// Delivery URL.
    pub target_url: Option<String>,
    /// 1 webhook, 2 Zapier.
    pub type_id: Option<WebhookType>,
    /// Test flag.
    pub test: Option<bool>,
    /// Custom headers sent with each delivery.
    pub custom_headers: Option<Value>,
    /// Unknown attributes.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ResourceType for WebhookAttributes {
    const TYPE: &'static str = "webhooks";
    type Id = WebhookId;
}

/// A webhook resource.
pub type Webhook = Resource<WebhookAttributes>;

/// `POST /webhooks`: `event_id`, `target_url`, `name`, `type_id`, `custom_headers`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NewWebhook {
    /// The event.
    pub event_id: EventId,
    /// Delivery URL.
    pub target_url: String,
    /// Name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// 1 webhook (default), 2 Zapier.
    pub type_id: WebhookType,
    /// Extra headers to send with each delivery (reportedly not always sent — sp; **unverified**).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub custom_headers: Option<Map<String, Value>>,
}

impl NewWebhook {
    /// A plain webhook for `event` to `target_url`.
    #[must_use]
    pub fn new(event: EventId, target_url: impl Into<String>) -> Self {
        Self {
            event_id: event,
            target_url: target_url.into(),
            name: None,
            type_id: WebhookType::Webhook,
            custom_headers: None,
        }
    }

    /// The JSON:API body.
    ///
    /// # Errors
    /// Serialization failure.
    pub fn to_document(&self) -> Result<WriteDocument, Error> {
        Ok(WriteDocument::create(WebhookAttributes::TYPE).attributes(self)?)
    }
}

super::collection!(
    list_webhooks,
    stream_webhooks,
    "/webhooks",
    WebhookAttributes,
    "webhooks",
    "Filters: `event_id`, `state_id`, `type_id` (api-notes productive.md §5 Management API)."
);

impl Client {
    /// `POST /webhooks`. Keep the returned `signature_token`.
    ///
    /// # Errors
    /// See [`Error`] (webhooks need the Ultimate plan; other plans are refused).
    pub async fn create_webhook(&self, webhook: &NewWebhook) -> Result<Webhook, Error> {
        Ok(self.post_document("/webhooks", &webhook.to_document()?).await?.data)
    }

    /// Every webhook matching `query` (`GET /webhooks`, all pages), collected; see [`Client::stream_webhooks`]
    /// for the lazy form and [`Client::list_webhooks`] for one page.
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn all_webhooks(&self, query: Query) -> Result<Vec<Webhook>, Error> {
        self.all("/webhooks", query).await
    }

    /// `GET /webhooks/{id}`.
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn get_webhook(&self, id: &WebhookId) -> Result<Document<Webhook>, Error> {
        self.get_resource(&format!("/webhooks/{id}"), &Query::new()).await
    }

    /// `DELETE /webhooks/{id}`.
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn delete_webhook(&self, id: &WebhookId) -> Result<(), Error> {
        self.delete_path(&format!("/webhooks/{id}")).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_token_is_redacted() {
        let w: Webhook = serde_json::from_value(serde_json::json!({"id": "1", "type": "webhooks",
            "attributes": {"event_id": 24, "signature_token": "very-secret-token", "target_url": "https://x/y", "state_id": 1}}))
        .unwrap();
        assert!(!format!("{w:?}").contains("very-secret"));
        assert_eq!(w.attributes.signature_token.unwrap().expose(), "very-secret-token");
        assert_eq!(w.attributes.event_id, Some(EventId::TaskUpdated));
    }
}

/// A webhook delivery log entry's attributes (`/webhook_logs`). Only `retry_attempt` (a documented filter) and
/// `created_at` are typed; the rest is **unverified** (no sample body found) and kept in `extra`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct WebhookLogAttributes {
    /// Which retry this delivery was (0 for the first attempt, presumably).
    pub retry_attempt: Option<u64>,
    /// When logged.
    pub created_at: Option<String>,
    /// Every other attribute, as sent.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ResourceType for WebhookLogAttributes {
    const TYPE: &'static str = "webhook_logs";
    type Id = WebhookLogId;
}

/// A webhook delivery log resource.
pub type WebhookLog = Resource<WebhookLogAttributes>;

impl Resource<WebhookLogAttributes> {
    /// The `webhook` relationship id, when linkage was sent.
    #[must_use]
    pub fn webhook_id(&self) -> Option<WebhookId> {
        crate::types::rel_id(self, "webhook")
    }
}

super::collection!(
    list_webhook_logs,
    stream_webhook_logs,
    "/webhook_logs",
    WebhookLogAttributes,
    "webhook delivery logs",
    "Filters: `webhook_id`, `after`, `before`, `retry_attempt`, `retry_job_id` (api-notes productive.md §5 Management API)."
);
