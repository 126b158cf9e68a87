//! App API (Bearer app key): transactional sends, customer lookups, API-triggered broadcasts.
//!
//! Rate lanes (each its own limiter): transactional sends 100/s, broadcast triggers 1 per 10 s, everything else
//! 10/s. Transactional sends and broadcast triggers are never retried after they may have reached Customer.io
//! (a repeat would send twice); 429 and connect errors are retried.

use api_core::Request;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{
    BroadcastId, Client, DeliveryId, Error, Identifier, TriggerId, VendorError, WebhookId, client::AppLane,
    ids::encode_segment, limits::ValidationError,
};

/// Which transactional template to use: its numeric id or its trigger name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum MessageRef {
    /// The numeric id.
    Id(u64),
    /// The template's trigger name.
    Trigger(String),
}

/// `POST /v1/send/email`: a transactional email. Either a template ([`SendEmail::template`]) or inline
/// `from` + `subject` + `body` ([`SendEmail::inline`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[must_use]
pub struct SendEmail {
    /// Recipient address(es), e.g. `"Ann <ann@example.com>"`.
    pub to: String,
    /// The person the message is attributed to.
    pub identifiers: Identifier,
    /// The template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transactional_message_id: Option<MessageRef>,
    /// Liquid data (`{{trigger.x}}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_data: Option<Map<String, Value>>,
    /// Inline sender.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// Inline subject.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// Inline HTML body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// Other documented options (`reply_to`, `bcc`, `send_at`, `disable_message_retention`, `tracked`, `headers`,
    /// `attachments`, …), sent as is.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl SendEmail {
    /// A templated email.
    pub fn template(template: MessageRef, to: impl Into<String>, identifiers: Identifier) -> Self {
        Self {
            to: to.into(),
            identifiers,
            transactional_message_id: Some(template),
            message_data: None,
            from: None,
            subject: None,
            body: None,
            extra: Map::new(),
        }
    }

    /// An inline email.
    pub fn inline(
        to: impl Into<String>,
        identifiers: Identifier,
        from: impl Into<String>,
        subject: impl Into<String>,
        body: impl Into<String>,
    ) -> Self {
        Self {
            to: to.into(),
            identifiers,
            transactional_message_id: None,
            message_data: None,
            from: Some(from.into()),
            subject: Some(subject.into()),
            body: Some(body.into()),
            extra: Map::new(),
        }
    }

    /// Adds a `message_data` value.
    pub fn data(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.message_data.get_or_insert_with(Map::new).insert(key.into(), value.into());
        self
    }

    /// Sets another documented option.
    pub fn option(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.extra.insert(key.into(), value.into());
        self
    }

    fn validate(&self) -> Result<(), ValidationError> {
        self.identifiers.validate()?;
        if self.to.trim().is_empty() {
            return Err(ValidationError::Rule("`to` is empty".into()));
        }
        let inline = self.from.is_some() && self.subject.is_some() && self.body.is_some();
        if self.transactional_message_id.is_none() && !inline {
            return Err(ValidationError::Rule(
                "a transactional email needs transactional_message_id or from + subject + body".into(),
            ));
        }
        Ok(())
    }
}

/// A transactional send's answer: `{"delivery_id": "...", "queued_at": 1604977406}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SendResponse {
    /// The delivery id (appears in reporting webhooks).
    pub delivery_id: DeliveryId,
    /// Unix seconds.
    #[serde(default)]
    pub queued_at: Option<i64>,
    /// Other fields.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One match of [`Client::customers_by_email`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CustomerRef {
    /// Your id, if set.
    #[serde(default)]
    pub id: Option<String>,
    /// Email, if set.
    #[serde(default)]
    pub email: Option<String>,
    /// Customer.io's id.
    #[serde(default)]
    pub cio_id: Option<String>,
    /// Other fields.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Deserialize)]
struct Results {
    #[serde(default)]
    results: Vec<CustomerRef>,
}

/// A person's attributes: `GET /v1/customers/{id}/attributes` → `{"customer": {…}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CustomerAttributes {
    /// Your id, if set.
    #[serde(default)]
    pub id: Option<String>,
    /// Attribute values (Customer.io returns them as strings).
    #[serde(default)]
    pub attributes: Map<String, Value>,
    /// When each attribute was last set (unix seconds), when returned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamps: Option<Map<String, Value>>,
    /// `{email, id, cio_id}`, when returned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identifiers: Option<Map<String, Value>>,
    /// Other fields (`unsubscribed`, `devices`, …).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Deserialize)]
struct CustomerEnvelope {
    customer: CustomerAttributes,
}

#[derive(Deserialize)]
struct CustomersEnvelope {
    #[serde(default)]
    customers: Vec<CustomerEnvelope>,
}

/// The audience of an API-triggered broadcast: exactly one selector, or none to use the broadcast's own audience.
#[derive(Debug, Clone, PartialEq, Default)]
#[non_exhaustive]
pub enum Audience {
    /// The audience defined in the broadcast.
    #[default]
    Default,
    /// `ids[]`.
    Ids(Vec<String>),
    /// `emails[]`.
    Emails(Vec<String>),
    /// `per_user_data[]` (each `{id|email, data}`).
    PerUserData(Vec<Value>),
    /// `data_file_url`.
    DataFileUrl(String),
    /// `recipients` filter.
    Recipients(Value),
}

/// `POST /v1/campaigns/{broadcast_id}/triggers`.
#[derive(Debug, Clone, PartialEq, Default)]
#[must_use]
pub struct BroadcastTrigger {
    /// Liquid data (`{{trigger.x}}`).
    pub data: Option<Map<String, Value>>,
    /// Who receives it.
    pub audience: Audience,
    /// `id_ignore_missing`, `email_ignore_missing`, `email_add_duplicates`, ….
    pub flags: Map<String, Value>,
}

impl BroadcastTrigger {
    /// A trigger for the broadcast's own audience.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the audience.
    pub fn audience(mut self, audience: Audience) -> Self {
        self.audience = audience;
        self
    }

    /// Adds a `data` value.
    pub fn data(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.data.get_or_insert_with(Map::new).insert(key.into(), value.into());
        self
    }

    /// Sets a flag such as `id_ignore_missing`.
    pub fn flag(mut self, key: impl Into<String>, value: bool) -> Self {
        self.flags.insert(key.into(), value.into());
        self
    }

    /// The JSON body.
    #[must_use]
    pub fn to_json(&self) -> Value {
        let mut m = self.flags.clone();
        if let Some(d) = &self.data {
            m.insert("data".into(), Value::Object(d.clone()));
        }
        match &self.audience {
            Audience::Default => {}
            Audience::Ids(v) => {
                m.insert("ids".into(), v.clone().into());
            }
            Audience::Emails(v) => {
                m.insert("emails".into(), v.clone().into());
            }
            Audience::PerUserData(v) => {
                m.insert("per_user_data".into(), Value::Array(v.clone()));
            }
            Audience::DataFileUrl(u) => {
                m.insert("data_file_url".into(), u.clone().into());
            }
            Audience::Recipients(r) => {
                m.insert("recipients".into(), r.clone());
            }
        }
        Value::Object(m)
    }
}

/// `{"id": <trigger id>}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TriggerResponse {
    /// The trigger id (appears as `trigger_id` in reporting webhooks; [`Client::broadcast_trigger`] takes it).
    pub id: TriggerId,
    /// Other fields.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Client {
    /// Sends a transactional email: `POST /v1/send/email`. Not retried once it may have been received.
    ///
    /// # Errors
    /// [`Error::Invalid`] without a template or inline content; [`Error::Api`] with `{"meta":{"error":…}}`.
    pub async fn send_email(&self, email: &SendEmail) -> Result<SendResponse, Error> {
        email.validate()?;
        let req = Request::post("/v1/send/email")
            .json(email)
            .map_err(|e| Error::Invalid(ValidationError::Serialize(e.to_string())))?;
        Ok(self.app_send(AppLane::Transactional, req).await?.json()?)
    }

    /// Sends another transactional message type (`push`, `sms`, `in_app`, `inbox_message`): `POST /v1/send/{kind}`
    /// with the body as documented for it.
    ///
    /// # Errors
    /// From the call or decoding.
    pub async fn send_transactional(&self, kind: &str, body: &Value) -> Result<SendResponse, Error> {
        let req = Request::post(format!("/v1/send/{}", encode_segment(kind)))
            .json(body)
            .map_err(|e| Error::Invalid(ValidationError::Serialize(e.to_string())))?;
        Ok(self.app_send(AppLane::Transactional, req).await?.json()?)
    }

    /// People with this email: `GET /v1/customers?email=…`. An empty list (Customer.io answers `200
    /// {"results":[]}`, not 404) means none.
    ///
    /// # Errors
    /// From the call or decoding.
    pub async fn customers_by_email(&self, email: &str) -> Result<Vec<CustomerRef>, Error> {
        let resp = self.app_send(AppLane::General, Request::get("/v1/customers").query("email", email)).await?;
        Ok(resp.json::<Results>()?.results)
    }

    /// A person's attributes: `GET /v1/customers/{id}/attributes?id_type=id|email|cio_id`. `Ok(None)` on 404.
    ///
    /// # Errors
    /// From the call (other than 404) or decoding.
    pub async fn customer_attributes(&self, who: &Identifier) -> Result<Option<CustomerAttributes>, Error> {
        who.validate()?;
        let path = format!("/v1/customers/{}/attributes", encode_segment(who.value()));
        let req = Request::get(path).query("id_type", who.kind());
        match self.app_send(AppLane::General, req).await {
            Ok(resp) => Ok(Some(resp.json::<CustomerEnvelope>()?.customer)),
            // "no such person" is the App API's own JSON error (`{"errors":[{"detail","status":"404"}]}`); a 404
            // without it (an HTML page, an empty body: a wrong base URL or a proxy) is an error, not an answer
            Err(Error::Api { parts, vendor: VendorError::Items(items), .. })
                if parts.status.as_u16() == 404 && !items.is_empty() =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Several people's attributes at once: `POST /v1/customers/attributes?id_type=…` with `{"ids": [...]}` (1 to
    /// 100 identifiers of one kind) → `{"customers": [{"customer": {...}}]}`; people who do not exist are left out
    /// (api-notes customerio.md §3). A read: retried like a GET.
    ///
    /// # Errors
    /// [`Error::Invalid`] for no ids, more than 100, mixed kinds, or a bad identifier; others from the call.
    pub async fn customers_attributes(&self, who: &[Identifier]) -> Result<Vec<CustomerAttributes>, Error> {
        let Some(first) = who.first() else {
            return Err(ValidationError::Rule("customers_attributes needs 1 to 100 identifiers, not 0".into()).into());
        };
        if who.len() > 100 {
            return Err(ValidationError::Rule(format!(
                "customers_attributes takes at most 100 identifiers, not {}",
                who.len()
            ))
            .into());
        }
        for w in who {
            w.validate()?;
            if w.kind() != first.kind() {
                return Err(ValidationError::Rule("customers_attributes takes identifiers of one kind".into()).into());
            }
        }
        let ids: Vec<&str> = who.iter().map(Identifier::value).collect();
        let req = Request::post("/v1/customers/attributes")
            .query("id_type", first.kind())
            .json(&serde_json::json!({ "ids": ids }))
            .map_err(|e| Error::Invalid(ValidationError::Serialize(e.to_string())))?
            .idempotent(true);
        let resp: CustomersEnvelope = self.app_send(AppLane::General, req).await?.json()?;
        Ok(resp.customers.into_iter().map(|c| c.customer).collect())
    }

    /// Triggers an API-triggered broadcast: `POST /v1/campaigns/{broadcast_id}/triggers` (1 per 10 s).
    ///
    /// # Errors
    /// [`Error::Invalid`] for an empty id/email list; [`Error::Api`] (422 for recipient errors).
    pub async fn trigger_broadcast(
        &self,
        broadcast_id: BroadcastId,
        trigger: &BroadcastTrigger,
    ) -> Result<TriggerResponse, Error> {
        match &trigger.audience {
            Audience::Ids(v) | Audience::Emails(v) if v.is_empty() => {
                return Err(ValidationError::Rule("broadcast audience list is empty".into()).into());
            }
            _ => {}
        }
        let req = Request::post(format!("/v1/campaigns/{broadcast_id}/triggers"))
            .json(&trigger.to_json())
            .map_err(|e| Error::Invalid(ValidationError::Serialize(e.to_string())))?;
        Ok(self.app_send(AppLane::Broadcasts, req).await?.json()?)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn email_body() {
        let e = SendEmail::template(MessageRef::Id(44), "ann@example.com", Identifier::id("42")).data("name", "Ann");
        assert_eq!(
            serde_json::to_value(&e).unwrap(),
            json!({"to":"ann@example.com","identifiers":{"id":"42"},"transactional_message_id":44,"message_data":{"name":"Ann"}})
        );
        let bad = SendEmail { transactional_message_id: None, ..e };
        assert!(bad.validate().is_err());
    }

    #[test]
    fn broadcast_body() {
        let t = BroadcastTrigger::new()
            .audience(Audience::Emails(vec!["a@x.io".into()]))
            .data("headline", "Hi")
            .flag("email_ignore_missing", true);
        assert_eq!(t.to_json(), json!({"emails":["a@x.io"],"data":{"headline":"Hi"},"email_ignore_missing":true}));
    }
}

/// A reporting-webhook configuration (`POST /v1/reporting_webhooks`, `PUT /v1/reporting_webhooks/{id}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[must_use]
pub struct ReportingWebhookConfig {
    /// Its name.
    pub name: String,
    /// The URL events are POSTed to.
    pub endpoint: String,
    /// Event types, e.g. `email_opened`, `email_clicked`, `customer_unsubscribed` (`{object_type}_{metric}`).
    pub events: Vec<String>,
    /// Stop sending when true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled: Option<bool>,
    /// `false`: unique opens and clicks only; `true`: every occurrence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub full_resolution: Option<bool>,
    /// Include message content in `sent` events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub with_content: Option<bool>,
}

impl ReportingWebhookConfig {
    /// A configuration for `events` sent to `endpoint`.
    pub fn new(name: impl Into<String>, endpoint: impl Into<String>, events: impl IntoIterator<Item = String>) -> Self {
        Self {
            name: name.into(),
            endpoint: endpoint.into(),
            events: events.into_iter().collect(),
            disabled: None,
            full_resolution: None,
            with_content: None,
        }
    }
}

/// A reporting webhook as the App API returns it. The documentation does not show the response body, so decoding
/// is lenient: the object itself or wrapped in `reporting_webhook`; every field optional; everything kept in `raw`.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportingWebhookInfo {
    /// Its id, if present.
    pub id: Option<WebhookId>,
    /// Its name, if present.
    pub name: Option<String>,
    /// Its endpoint, if present.
    pub endpoint: Option<String>,
    /// The object as received.
    pub raw: Value,
}

impl ReportingWebhookInfo {
    fn from_value(v: Value) -> Self {
        let inner = match v {
            Value::Object(mut m) if m.contains_key("reporting_webhook") => {
                m.remove("reporting_webhook").unwrap_or_default()
            }
            other => other,
        };
        Self {
            id: inner
                .get("id")
                .and_then(|i| i.as_u64().or_else(|| i.as_str().and_then(|s| s.parse().ok())))
                .map(WebhookId),
            name: inner.get("name").and_then(Value::as_str).map(str::to_owned),
            endpoint: inner.get("endpoint").and_then(Value::as_str).map(str::to_owned),
            raw: inner,
        }
    }
}

impl Client {
    /// Creates a reporting webhook: `POST /v1/reporting_webhooks`.
    ///
    /// # Errors
    /// [`Error::Invalid`] without events; others from the call.
    pub async fn create_reporting_webhook(
        &self,
        config: &ReportingWebhookConfig,
    ) -> Result<ReportingWebhookInfo, Error> {
        if config.events.is_empty() {
            return Err(ValidationError::Rule("a reporting webhook needs at least one event".into()).into());
        }
        let req = Request::post("/v1/reporting_webhooks")
            .json(config)
            .map_err(|e| Error::Invalid(ValidationError::Serialize(e.to_string())))?;
        Ok(ReportingWebhookInfo::from_value(self.app_send(AppLane::General, req).await?.json()?))
    }

    /// Updates a reporting webhook: `PUT /v1/reporting_webhooks/{webhook_id}`.
    ///
    /// # Errors
    /// See [`Client::create_reporting_webhook`]; 404 when the id does not exist.
    pub async fn update_reporting_webhook(
        &self,
        webhook_id: WebhookId,
        config: &ReportingWebhookConfig,
    ) -> Result<ReportingWebhookInfo, Error> {
        let req = Request::put(format!("/v1/reporting_webhooks/{webhook_id}"))
            .json(config)
            .map_err(|e| Error::Invalid(ValidationError::Serialize(e.to_string())))?;
        Ok(ReportingWebhookInfo::from_value(self.app_send(AppLane::General, req).await?.json()?))
    }

    /// Lists reporting webhooks: `GET /v1/reporting_webhooks` (a bare array or `{"reporting_webhooks": [...]}`).
    ///
    /// # Errors
    /// From the call or decoding.
    pub async fn list_reporting_webhooks(&self) -> Result<Vec<ReportingWebhookInfo>, Error> {
        let v: Value = self.app_send(AppLane::General, Request::get("/v1/reporting_webhooks")).await?.json()?;
        // An answer in neither shape is an error, never "no webhooks": an ensure-style caller would create a
        // duplicate on every start.
        let excerpt: String = v.to_string().chars().take(200).collect();
        let unrecognised = |what: &str| {
            Error::Decode(api_core::DecodeError {
                path: ".".into(),
                message: format!("{what}; expected an array or {{\"reporting_webhooks\": [...]}}"),
                excerpt: excerpt.clone(),
            })
        };
        let items = match v {
            Value::Array(a) => a,
            Value::Object(mut m) => match m.remove("reporting_webhooks") {
                Some(Value::Array(a)) => a,
                Some(_) => return Err(unrecognised("a non-array `reporting_webhooks`")),
                None => return Err(unrecognised("an object without `reporting_webhooks`")),
            },
            _ => return Err(unrecognised("neither an array nor an object")),
        };
        Ok(items.into_iter().map(ReportingWebhookInfo::from_value).collect())
    }
}

/// Options every transactional send shares (Track spec `transactionalSharedObject`): Liquid `message_data`,
/// `send_at`, `disable_message_retention`, `send_to_unsubscribed`, `queue_draft`, `language`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct TransactionalOptions {
    /// Liquid data (`{{trigger.x}}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_data: Option<Map<String, Value>>,
    /// Send later (unix seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send_at: Option<i64>,
    /// Do not keep the message body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disable_message_retention: Option<bool>,
    /// Send even if the person unsubscribed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send_to_unsubscribed: Option<bool>,
    /// Queue as a draft instead of sending.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_draft: Option<bool>,
    /// The translation to use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
}

/// `POST /v1/send/push`: a transactional push from a template (Track spec schema `sendpush`: required
/// `transactional_message_id` and `identifiers`; content overrides from `transactionalSharedPushObject`; `title`
/// as go-customerio `send_push.go` sends it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[must_use]
pub struct SendPush {
    /// The template.
    pub transactional_message_id: MessageRef,
    /// The person.
    pub identifiers: Identifier,
    /// Which devices: `"all"` (default), `"last_used"`, or one device token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// Title override.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Body override.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Image override.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_url: Option<String>,
    /// Deep link override.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    /// `"default"` or `"none"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sound: Option<String>,
    /// Key-value data delivered with the push.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_data: Option<Map<String, Value>>,
    /// A device to send to instead of the person's (`{token, platform, …}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_device: Option<Value>,
    /// A raw per-platform payload (`{ios: …, android: …}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_payload: Option<Value>,
    /// Shared options.
    #[serde(flatten)]
    pub options: TransactionalOptions,
}

impl SendPush {
    /// A push of `template` to `identifiers`' devices.
    pub fn new(template: MessageRef, identifiers: Identifier) -> Self {
        Self {
            transactional_message_id: template,
            identifiers,
            to: None,
            title: None,
            message: None,
            image_url: None,
            link: None,
            sound: None,
            custom_data: None,
            custom_device: None,
            custom_payload: None,
            options: TransactionalOptions::default(),
        }
    }

    /// Adds a `message_data` value.
    pub fn data(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.options.message_data.get_or_insert_with(Map::new).insert(key.into(), value.into());
        self
    }

    /// Sends to `"all"`, `"last_used"` or one device token.
    pub fn to(mut self, to: impl Into<String>) -> Self {
        self.to = Some(to.into());
        self
    }

    /// Overrides the title and body.
    pub fn content(mut self, title: impl Into<String>, message: impl Into<String>) -> Self {
        self.title = Some(title.into());
        self.message = Some(message.into());
        self
    }
}

/// `POST /v1/send/sms`: a transactional SMS from a template (Track spec schema `sendsms`: required
/// `transactional_message_id`, `identifiers` and `to`; optional `from`, `tracked`, `language`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[must_use]
pub struct SendSms {
    /// The template.
    pub transactional_message_id: MessageRef,
    /// The person.
    pub identifiers: Identifier,
    /// The recipient phone number (E.164, e.g. `+15559876543`) or Liquid (`{{customer.phone}}`).
    pub to: String,
    /// The sending number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// Track link clicks (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracked: Option<bool>,
    /// Shared options.
    #[serde(flatten)]
    pub options: TransactionalOptions,
}

impl SendSms {
    /// An SMS of `template` to `to`, attributed to `identifiers`.
    pub fn new(template: MessageRef, identifiers: Identifier, to: impl Into<String>) -> Self {
        Self {
            transactional_message_id: template,
            identifiers,
            to: to.into(),
            from: None,
            tracked: None,
            options: TransactionalOptions::default(),
        }
    }

    /// Adds a `message_data` value.
    pub fn data(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.options.message_data.get_or_insert_with(Map::new).insert(key.into(), value.into());
        self
    }

    /// The sending number.
    pub fn from(mut self, from: impl Into<String>) -> Self {
        self.from = Some(from.into());
        self
    }
}

/// A broadcast trigger's status (App API `broadcastStatus`; Track spec `broadcastTriggerObject`): docs example
/// `{"id": 1, "broadcast_id": 2, "created_at": 1552341937, "processed_at": 1}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BroadcastTriggerStatus {
    /// The trigger id.
    pub id: TriggerId,
    /// The broadcast.
    #[serde(default)]
    pub broadcast_id: Option<BroadcastId>,
    /// Created, unix seconds.
    #[serde(default)]
    pub created_at: Option<i64>,
    /// Processed, unix seconds (absent or 0 while pending).
    #[serde(default)]
    pub processed_at: Option<i64>,
    /// Other fields.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl BroadcastTriggerStatus {
    /// Whether Customer.io has processed the trigger.
    #[must_use]
    pub fn is_processed(&self) -> bool {
        self.processed_at.is_some_and(|t| t > 0)
    }
}

#[derive(Deserialize)]
struct TriggersEnvelope {
    #[serde(default)]
    triggers: Vec<BroadcastTriggerStatus>,
}

impl Client {
    /// Sends a transactional push: `POST /v1/send/push`. Not retried once it may have been received.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a bad identifier; [`Error::Api`] with `{"meta":{"error":…}}`.
    pub async fn send_push(&self, push: &SendPush) -> Result<SendResponse, Error> {
        push.identifiers.validate()?;
        let req = Request::post("/v1/send/push")
            .json(push)
            .map_err(|e| Error::Invalid(ValidationError::Serialize(e.to_string())))?;
        Ok(self.app_send(AppLane::Transactional, req).await?.json()?)
    }

    /// Sends a transactional SMS: `POST /v1/send/sms`. Not retried once it may have been received.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a bad identifier or an empty `to`; [`Error::Api`] with `{"meta":{"error":…}}`.
    pub async fn send_sms(&self, sms: &SendSms) -> Result<SendResponse, Error> {
        sms.identifiers.validate()?;
        if sms.to.trim().is_empty() {
            return Err(ValidationError::Rule("an SMS needs `to`".into()).into());
        }
        let req = Request::post("/v1/send/sms")
            .json(sms)
            .map_err(|e| Error::Invalid(ValidationError::Serialize(e.to_string())))?;
        Ok(self.app_send(AppLane::Transactional, req).await?.json()?)
    }

    /// A broadcast trigger's status: `GET /v1/campaigns/{broadcast_id}/triggers/{trigger_id}`.
    ///
    /// # Errors
    /// [`Error::Api`] 404 when the broadcast or trigger does not exist; others from the call.
    pub async fn broadcast_trigger(
        &self,
        broadcast_id: BroadcastId,
        trigger_id: TriggerId,
    ) -> Result<BroadcastTriggerStatus, Error> {
        let req = Request::get(format!("/v1/campaigns/{broadcast_id}/triggers/{trigger_id}"));
        Ok(self.app_send(AppLane::General, req).await?.json()?)
    }

    /// A broadcast's triggers: `GET /v1/broadcasts/{broadcast_id}/triggers` → `{"triggers": [...]}` (not
    /// paginated: its one page is the whole list).
    ///
    /// # Errors
    /// [`Error::Api`] 404 when the broadcast does not exist; others from the call.
    pub async fn list_broadcast_triggers(
        &self,
        broadcast_id: BroadcastId,
    ) -> Result<Vec<BroadcastTriggerStatus>, Error> {
        let req = Request::get(format!("/v1/broadcasts/{broadcast_id}/triggers"));
        Ok(self.app_send(AppLane::General, req).await?.json::<TriggersEnvelope>()?.triggers)
    }

    /// Deletes a reporting webhook: `DELETE /v1/reporting_webhooks/{webhook_id}` (200, no body).
    ///
    /// # Errors
    /// [`Error::Api`] 404 when the id does not exist; others from the call.
    pub async fn delete_reporting_webhook(&self, webhook_id: WebhookId) -> Result<(), Error> {
        let req = Request::delete(format!("/v1/reporting_webhooks/{webhook_id}"));
        self.app_send(AppLane::General, req).await.map(drop)
    }
}
