//! Webhooks: management, the notification ping and its MAC, and the cursor payload feed.
//!
//! Airtable's webhook model: a ping (`{base:{id}, webhook:{id}, timestamp}`, signed with
//! `X-Airtable-Content-MAC: hmac-sha256=<hex>`) only says "something changed"; the changes are read from
//! `GET /bases/{baseId}/webhooks/{webhookId}/payloads?cursor=N`, looping while `mightHaveMore`. Each payload's cursor
//! number is its identity: persist the cursor after each processed payload ([`CursoredPayload::next_cursor`]) and
//! dedupe on (webhook id, cursor) — never on `baseTransactionNumber`, which split payloads share.

use std::{collections::BTreeMap, fmt, time::Duration};

use api_core::{Request, SignatureError, webhook::Clock};
use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{
    Client, Error,
    cell::{Attachment, Collaborator},
    client::encode_segment,
    error::Operation,
    ids::{BaseId, FieldId, RecordId, TableId, UserId, ViewId, WebhookId},
};

/// The MAC header name.
pub const MAC_HEADER: &str = "X-Airtable-Content-MAC";
/// Maximum `limit` of the payloads endpoint.
pub const MAX_PAYLOADS_PER_PAGE: u32 = 50;

type Map = serde_json::Map<String, serde_json::Value>;

api_core::open_enum! {
    /// Where a change came from (`actionMetadata.source`, also `filters.fromSources`).
    ActionSource / Other {
        /// A person in the Airtable UI.
        Client = "client",
        /// The Web API.
        PublicApi = "publicApi",
        /// A form submission.
        FormSubmission = "formSubmission",
        /// An interface form page.
        FormPageSubmission = "formPageSubmission",
        /// An automation.
        Automation = "automation",
        /// Airtable itself.
        System = "system",
        /// A sync.
        Sync = "sync",
        /// An anonymous user.
        AnonymousUser = "anonymousUser",
        /// Airtable's own "unknown".
        Unknown = "unknown",
    }
}

api_core::open_enum! {
    /// `filters.dataTypes`.
    DataType / Other {
        /// Record and cell changes.
        TableData = "tableData",
        /// Field changes.
        TableFields = "tableFields",
        /// Table name/description changes.
        TableMetadata = "tableMetadata",
    }
}

api_core::open_enum! {
    /// `filters.changeTypes`.
    ChangeType / Other {
        /// Created.
        Add = "add",
        /// Destroyed.
        Remove = "remove",
        /// Changed.
        Update = "update",
    }
}

api_core::open_enum! {
    /// The `code` of an error payload.
    PayloadErrorCode / Other {
        /// The specification's filters became invalid (e.g. a watched field was deleted).
        InvalidFilters = "INVALID_FILTERS",
        /// The hook became invalid.
        InvalidHook = "INVALID_HOOK",
        /// Airtable internal error.
        InternalError = "INTERNAL_ERROR",
    }
}

/// The webhook MAC secret (`macSecretBase64`), returned once at creation. `Debug` never shows it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MacSecret(String);

impl fmt::Debug for MacSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MacSecret([redacted])")
    }
}

impl MacSecret {
    /// From the base64 text Airtable returned.
    #[must_use]
    pub fn from_base64(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    /// The base64 text (to store it).
    #[must_use]
    pub fn expose_base64(&self) -> &str {
        &self.0
    }

    /// The HMAC key: the base64-decoded bytes (not the text).
    ///
    /// # Errors
    /// [`SignatureError::Malformed`] when the secret is not base64.
    pub fn key(&self) -> Result<Vec<u8>, SignatureError> {
        base64::engine::general_purpose::STANDARD
            .decode(self.0.trim())
            .map_err(|_| SignatureError::Malformed("macSecretBase64 is not base64".into()))
    }

    /// The `X-Airtable-Content-MAC` value for `body`: `hmac-sha256=` + lowercase hex (as Airtable sends it; used by
    /// the fake and by tests).
    ///
    /// # Errors
    /// When the secret is not base64.
    pub fn sign(&self, body: &[u8]) -> Result<String, SignatureError> {
        let mac = api_core::webhook::hmac_sha256(&self.key()?, &[body]);
        Ok(format!("hmac-sha256={}", hex_lower(&mac)))
    }
}

fn hex_lower(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Verifies `X-Airtable-Content-MAC` over the raw request body, in constant time. The key is the base64-decoded
/// `macSecretBase64`; the header is `hmac-sha256=<hex>` (hex compared case-insensitively).
///
/// # Errors
/// [`SignatureError::Missing`] without a header, [`SignatureError::Malformed`] for a header without the
/// `hmac-sha256=` prefix or not 64 hex digits, [`SignatureError::Mismatch`] otherwise.
pub fn verify_mac(secret: &MacSecret, raw_body: &[u8], header: Option<&str>) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?.trim();
    let hex = header
        .strip_prefix("hmac-sha256=")
        .ok_or_else(|| SignatureError::Malformed("expected `hmac-sha256=<hex>`".into()))?;
    if hex.len() != 64 {
        return Err(SignatureError::Malformed(format!("expected 64 hex digits, got {}", hex.len())));
    }
    api_core::webhook::verify_hex(&secret.key()?, &[raw_body], hex)
}

/// An id object (`{"id": "…"}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdRef<T> {
    /// The id.
    pub id: T,
}

/// The notification ping body: `{"base":{"id"},"webhook":{"id"},"timestamp"}`. It carries no changes; fetch them
/// with [`Client::payload_feed`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookNotification {
    /// The base.
    pub base: IdRef<BaseId>,
    /// The webhook.
    pub webhook: IdRef<WebhookId>,
    /// When the ping was sent (ISO 8601).
    pub timestamp: String,
}

/// Why a ping was rejected.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NotificationError {
    /// The MAC check failed.
    #[error(transparent)]
    Signature(#[from] SignatureError),
    /// The body is not a ping.
    #[error(transparent)]
    Decode(#[from] api_core::DecodeError),
}

impl WebhookNotification {
    /// Verifies the MAC over `raw_body`, then parses it.
    ///
    /// # Errors
    /// [`NotificationError`].
    pub fn from_request(
        secret: &MacSecret,
        raw_body: &[u8],
        mac_header: Option<&str>,
    ) -> Result<Self, NotificationError> {
        verify_mac(secret, raw_body, mac_header)?;
        Ok(api_core::decode_json(raw_body)?)
    }

    /// Rejects pings whose `timestamp` is further than `tolerance` from `clock` (replay guard; pings are only
    /// triggers, so a replay is harmless, but callers may want it).
    ///
    /// # Errors
    /// [`SignatureError::Expired`] or [`SignatureError::Malformed`] for an unparsable timestamp.
    pub fn check_age(&self, clock: &dyn Clock, tolerance: Duration) -> Result<(), SignatureError> {
        let ts = chrono::DateTime::parse_from_rfc3339(&self.timestamp)
            .map_err(|_| SignatureError::Malformed("ping timestamp is not ISO 8601".into()))?;
        api_core::webhook::check_timestamp(ts.timestamp(), clock, tolerance)
    }
}

/// Parses a ping's raw body (without checking its MAC: see [`Verifier`]).
///
/// # Errors
/// [`api_core::DecodeError`] naming the JSON path.
pub fn parse(raw_body: &[u8]) -> Result<WebhookNotification, api_core::DecodeError> {
    api_core::decode_json(raw_body)
}

/// Default window for a ping's `timestamp`. Airtable does not retry pings (a missed one is caught up by the
/// cursor feed), so a ping is either on time or useless; 5 minutes allow for clock skew and a slow network.
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(300);

/// Verifies notification pings for one webhook: the `X-Airtable-Content-MAC` over the raw body, then the ping's
/// `timestamp` within a window either side of now (the workspace's shared verifier shape: `new`, `tolerance`,
/// `clock`, `verify_headers`).
#[derive(Debug, Clone)]
pub struct Verifier {
    secret: MacSecret,
    tolerance: Duration,
    clock: std::sync::Arc<dyn Clock>,
}

impl Verifier {
    /// A verifier for the webhook's `macSecretBase64`, with [`DEFAULT_TOLERANCE`] and the system clock.
    #[must_use]
    pub fn new(secret: MacSecret) -> Self {
        Self { secret, tolerance: DEFAULT_TOLERANCE, clock: std::sync::Arc::new(api_core::SystemClock) }
    }

    /// How far a ping's `timestamp` may be from now, either side (default [`DEFAULT_TOLERANCE`]).
    #[must_use]
    pub fn tolerance(mut self, tolerance: Duration) -> Self {
        self.tolerance = tolerance;
        self
    }

    /// Injects a clock (tests: `api_core::FixedClock`).
    #[must_use]
    pub fn clock(mut self, clock: std::sync::Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Verifies the MAC (from `header`, the [`MAC_HEADER`] value) and the ping's age, then returns the ping.
    ///
    /// # Errors
    /// [`NotificationError`]: the MAC first (nothing about a forged body is parsed), then the body, then the age.
    pub fn verify(&self, header: Option<&str>, raw_body: &[u8]) -> Result<WebhookNotification, NotificationError> {
        let ping = WebhookNotification::from_request(&self.secret, raw_body, header)?;
        ping.check_age(self.clock.as_ref(), self.tolerance)?;
        Ok(ping)
    }

    /// [`Verifier::verify`] with the [`MAC_HEADER`] found in `headers` (looked up case-insensitively).
    ///
    /// # Errors
    /// As [`Verifier::verify`]; a header that is not ASCII is malformed.
    pub fn verify_headers(
        &self,
        headers: &http::HeaderMap,
        raw_body: &[u8],
    ) -> Result<WebhookNotification, NotificationError> {
        let h = headers
            .get(MAC_HEADER)
            .map(|v| v.to_str().map_err(|_| SignatureError::Malformed("not ASCII".into())))
            .transpose()?;
        self.verify(h, raw_body)
    }
}

/// `specification.options.filters`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Filters {
    /// Required: what to watch.
    pub data_types: Vec<DataType>,
    /// A table or view id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record_change_scope: Option<String>,
    /// Only these change types.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub change_types: Vec<ChangeType>,
    /// Only changes from these sources.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub from_sources: Vec<ActionSource>,
    /// `{formSubmission: {viewId}, formPageSubmission: {pageId}}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_options: Option<serde_json::Value>,
    /// Only changes to these fields' data.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub watch_data_in_field_ids: Vec<FieldId>,
    /// Only changes to these fields' schema.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub watch_schemas_of_field_ids: Vec<FieldId>,
    /// Unknown members.
    #[serde(flatten)]
    pub extra: Map,
}

/// `specification.options.includes`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Includes {
    /// `"all"` or a list of field ids whose values are always included (`unchanged`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_cell_values_in_field_ids: Option<serde_json::Value>,
    /// Include `previous` cell values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_previous_cell_values: Option<bool>,
    /// Include previous field definitions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_previous_field_definitions: Option<bool>,
    /// Unknown members.
    #[serde(flatten)]
    pub extra: Map,
}

/// `specification.options`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct SpecOptions {
    /// Filters.
    pub filters: Filters,
    /// Includes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub includes: Option<Includes>,
}

/// A webhook specification (`{"options": {...}}`). Tables, fields and views must be given by id.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct WebhookSpecification {
    /// Options.
    pub options: SpecOptions,
}

impl WebhookSpecification {
    /// Record changes (`tableData`) of one table (or view), with previous values included.
    #[must_use]
    pub fn table_data(scope: impl Into<String>) -> Self {
        Self {
            options: SpecOptions {
                filters: Filters {
                    data_types: vec![DataType::TableData],
                    record_change_scope: Some(scope.into()),
                    ..Filters::default()
                },
                includes: Some(Includes { include_previous_cell_values: Some(true), ..Includes::default() }),
            },
        }
    }
}

/// Create-webhook request body.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateWebhook {
    /// Where pings go (none: poll only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notification_url: Option<String>,
    /// What to watch.
    pub specification: WebhookSpecification,
}

/// Create-webhook answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreatedWebhook {
    /// Id.
    pub id: WebhookId,
    /// The MAC secret: store it now, it cannot be fetched again.
    pub mac_secret_base64: MacSecret,
    /// Expiry: 7 days from now, extended by refresh or listing payloads (see [`Webhook::expiration_time`]).
    #[serde(default)]
    pub expiration_time: Option<DateTime<Utc>>,
}

impl CreatedWebhook {
    /// See [`Webhook::needs_refresh`].
    #[must_use]
    pub fn needs_refresh(&self, now: DateTime<Utc>, margin: std::time::Duration) -> bool {
        needs_refresh(self.expiration_time, now, margin)
    }
}

/// `lastNotificationResult`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NotificationResult {
    /// Whether delivery succeeded.
    pub success: bool,
    /// When it completed.
    #[serde(default)]
    pub completion_timestamp: Option<String>,
    /// Duration in ms.
    #[serde(default)]
    pub duration_ms: Option<f64>,
    /// 0 = first try.
    #[serde(default)]
    pub retry_number: Option<u32>,
    /// Whether Airtable will retry.
    #[serde(default)]
    pub will_be_retried: Option<bool>,
    /// `{"message": …}` on failure.
    #[serde(default)]
    pub error: Option<serde_json::Value>,
}

/// A webhook as listed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Webhook {
    /// Id.
    pub id: WebhookId,
    /// Whether pings are sent (turned off after 13 failed deliveries).
    pub are_notifications_enabled: bool,
    /// Cursor of the next payload to be generated.
    pub cursor_for_next_payload: u64,
    /// Whether the hook is enabled (turned off when its specification becomes invalid).
    pub is_hook_enabled: bool,
    /// Last successful ping.
    #[serde(default)]
    pub last_successful_notification_time: Option<String>,
    /// Ping URL.
    #[serde(default)]
    pub notification_url: Option<String>,
    /// When the hook expires and is disabled: "Webhooks created with PAT or OAuth will expire and be disabled after 7
    /// days", extended to 7 days from any refresh or payload listing while active; `None` only for legacy hooks that
    /// never expire (api-notes/airtable.md A.3). An expired hook cannot be refreshed, only recreated.
    #[serde(default)]
    pub expiration_time: Option<DateTime<Utc>>,
    /// Last ping result.
    #[serde(default)]
    pub last_notification_result: Option<NotificationResult>,
    /// The specification.
    pub specification: WebhookSpecification,
}

impl Webhook {
    /// Whether to refresh now: the hook expires within `margin` of `now` (or already has). `false` for a hook that
    /// never expires. Refresh while the hook is active — at least every 7 days minus the margin — with
    /// [`Client::refresh_webhook`] (listing its payloads extends it too); an expired one must be recreated.
    #[must_use]
    pub fn needs_refresh(&self, now: DateTime<Utc>, margin: std::time::Duration) -> bool {
        needs_refresh(self.expiration_time, now, margin)
    }

    /// Whether the expiry has passed at `now` (Airtable then disables the hook).
    #[must_use]
    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        self.expiration_time.is_some_and(|t| t <= now)
    }
}

fn needs_refresh(expiration: Option<DateTime<Utc>>, now: DateTime<Utc>, margin: std::time::Duration) -> bool {
    let margin = chrono::Duration::from_std(margin).unwrap_or(chrono::Duration::MAX);
    expiration.is_some_and(|t| now.checked_add_signed(margin).is_none_or(|limit| t <= limit))
}

/// Refresh answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RefreshedWebhook {
    /// The new expiry (7 days from now).
    #[serde(default)]
    pub expiration_time: Option<DateTime<Utc>>,
}

/// A select choice or linked record in a payload cell (`{id, name, color?}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamedRef {
    /// Choice id (`sel…`) or record id (`rec…`).
    pub id: String,
    /// Choice name or the linked record's primary value.
    pub name: String,
    /// Choice color.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub color: Option<String>,
}

/// A cell value in webhook payloads (the "V2" format: selects and links are objects), decided by shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
#[non_exhaustive]
pub enum PayloadCellValue {
    /// Checkbox.
    Checkbox(bool),
    /// Number, currency, percent, rating, duration (kept as a JSON number: integers round-trip).
    Number(serde_json::Number),
    /// Text, date, dateTime.
    Text(String),
    /// Arrays: multiple selects, links, attachments, collaborators, lookups.
    List(Vec<PayloadCellValue>),
    /// One attachment.
    Attachment(Attachment),
    /// A collaborator.
    Collaborator(Collaborator),
    /// A select choice or a linked record.
    Ref(NamedRef),
    /// Anything else, verbatim.
    Unknown(serde_json::Value),
}

impl PayloadCellValue {
    /// The text.
    #[must_use]
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::Text(s) => Some(s),
            _ => None,
        }
    }

    /// The number.
    #[must_use]
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Self::Number(n) => n.as_f64(),
            _ => None,
        }
    }

    /// A single select's name.
    #[must_use]
    pub fn choice_name(&self) -> Option<&str> {
        match self {
            Self::Ref(r) => Some(&r.name),
            _ => None,
        }
    }

    /// The ids of links/choices in a list (linked record ids for `multipleRecordLinks`).
    #[must_use]
    pub fn ref_ids(&self) -> Vec<&str> {
        match self {
            Self::List(v) => {
                v.iter().filter_map(|x| if let Self::Ref(r) = x { Some(r.id.as_str()) } else { None }).collect()
            }
            Self::Ref(r) => vec![r.id.as_str()],
            _ => Vec::new(),
        }
    }

    /// The names in a list of choices/links.
    #[must_use]
    pub fn ref_names(&self) -> Vec<&str> {
        match self {
            Self::List(v) => {
                v.iter().filter_map(|x| if let Self::Ref(r) = x { Some(r.name.as_str()) } else { None }).collect()
            }
            Self::Ref(r) => vec![r.name.as_str()],
            _ => Vec::new(),
        }
    }
}

/// `{"cellValuesByFieldId": {fld: value-or-null}}`. A cleared cell is `None`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct CellValues {
    /// Values by field id.
    #[serde(rename = "cellValuesByFieldId", default)]
    pub cell_values_by_field_id: BTreeMap<FieldId, Option<PayloadCellValue>>,
}

/// A created record in a payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreatedRecord {
    /// Creation time.
    #[serde(rename = "createdTime")]
    pub created_time: String,
    /// Values by field id.
    #[serde(rename = "cellValuesByFieldId", default)]
    pub cell_values_by_field_id: BTreeMap<FieldId, Option<PayloadCellValue>>,
}

/// A changed record: current values of the changed fields, previous (with `includePreviousCellValues`), unchanged
/// (with `includeCellValuesInFieldIds`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangedRecord {
    /// New values.
    pub current: CellValues,
    /// Old values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<CellValues>,
    /// Included unchanged values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unchanged: Option<CellValues>,
}

/// `{name, type}` of a field in a payload (either may be absent in `changedFieldsById`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct FieldInfo {
    /// Name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Type.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

/// A changed field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldChange {
    /// New definition.
    pub current: FieldInfo,
    /// Old definition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<FieldInfo>,
}

/// Record changes as seen through a view (`recordChangeScope` = a view id).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ViewChanged {
    /// Created records.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub created_records_by_id: BTreeMap<RecordId, CreatedRecord>,
    /// Changed records.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub changed_records_by_id: BTreeMap<RecordId, ChangedRecord>,
    /// Destroyed records.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub destroyed_record_ids: Vec<RecordId>,
}

/// Changes to one table.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TableChanged {
    /// Name/description change (`{current, previous}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changed_metadata: Option<serde_json::Value>,
    /// Created fields.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub created_fields_by_id: BTreeMap<FieldId, FieldInfo>,
    /// Changed fields.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub changed_fields_by_id: BTreeMap<FieldId, FieldChange>,
    /// Destroyed fields.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub destroyed_field_ids: Vec<FieldId>,
    /// Created records.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub created_records_by_id: BTreeMap<RecordId, CreatedRecord>,
    /// Changed records.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub changed_records_by_id: BTreeMap<RecordId, ChangedRecord>,
    /// Destroyed records.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub destroyed_record_ids: Vec<RecordId>,
    /// Per-view changes.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub changed_views_by_id: BTreeMap<ViewId, ViewChanged>,
    /// Unknown members.
    #[serde(flatten)]
    pub extra: Map,
}

/// The user behind a change (`sourceMetadata.user`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SourceUser {
    /// Id.
    pub id: UserId,
    /// Email.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// `read|comment|edit|create|owner`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permission_level: Option<String>,
    /// Name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Other members (`profilePicUrl`).
    #[serde(flatten)]
    pub extra: Map,
}

/// `sourceMetadata`: a user for `client`/`publicApi`; other shapes (`viewId`, `automationId`) stay in `extra`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct SourceMetadata {
    /// The user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<SourceUser>,
    /// Other members.
    #[serde(flatten)]
    pub extra: Map,
}

/// `actionMetadata`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ActionMetadata {
    /// Source.
    pub source: ActionSource,
    /// Source details.
    #[serde(default)]
    pub source_metadata: SourceMetadata,
}

/// One payload: either a change payload or an error payload (`error: true, code`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookPayload {
    /// When (ISO 8601).
    pub timestamp: String,
    /// The base transaction; shared by the parts of a split payload — not an identity.
    pub base_transaction_number: u64,
    /// Who/what made the change (absent on some error payloads).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action_metadata: Option<ActionMetadata>,
    /// `v0`.
    #[serde(default)]
    pub payload_format: String,
    /// Table changes.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub changed_tables_by_id: BTreeMap<TableId, TableChanged>,
    /// Created tables (kept verbatim).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub created_tables_by_id: BTreeMap<TableId, serde_json::Value>,
    /// Destroyed tables.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub destroyed_table_ids: Vec<TableId>,
    /// `true` on an error payload.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub error: bool,
    /// The error code of an error payload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<PayloadErrorCode>,
    /// Unknown members.
    #[serde(flatten)]
    pub extra: Map,
}

/// Kind of a flattened record change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChangeKind {
    /// Created.
    Created,
    /// Fields changed.
    Updated,
    /// Destroyed.
    Destroyed,
}

/// A field's value before a change, as the payload tells it: a payload without a `previous` value for the field
/// says nothing about it, which is not the same as a `previous` value of `null` (the cell was empty).
///
/// "Cell value V2 or null by fieldId" (api-notes/airtable.md A.9, OFFICIAL webhooks-changed-record); `previous` is
/// "only a part of the payload if the specification contains them in the includes object"
/// (`includePreviousCellValues`).
#[derive(Debug, Clone, PartialEq, Default)]
pub enum PreviousValue {
    /// The payload carries no previous value for the field: the specification does not include previous values,
    /// the record was created (nothing came before), or `previous` does not list the field.
    #[default]
    Absent,
    /// `null` in `previous.cellValuesByFieldId`: the cell was empty before the change.
    Null,
    /// The value before the change.
    Value(PayloadCellValue),
}

impl PreviousValue {
    /// From a `previous.cellValuesByFieldId` lookup: `None` = no entry, `Some(None)` = `null`.
    #[must_use]
    pub fn from_entry(entry: Option<&Option<PayloadCellValue>>) -> Self {
        match entry {
            None => Self::Absent,
            Some(None) => Self::Null,
            Some(Some(v)) => Self::Value(v.clone()),
        }
    }

    /// The previous value, if the payload gave one (`None` for both [`PreviousValue::Absent`] and
    /// [`PreviousValue::Null`]).
    #[must_use]
    pub fn value(&self) -> Option<&PayloadCellValue> {
        match self {
            Self::Value(v) => Some(v),
            Self::Absent | Self::Null => None,
        }
    }

    /// Whether the payload said nothing about the previous value.
    #[must_use]
    pub fn is_absent(&self) -> bool {
        matches!(self, Self::Absent)
    }

    /// Whether the payload said the cell was empty before (`null`).
    #[must_use]
    pub fn is_null(&self) -> bool {
        matches!(self, Self::Null)
    }

    /// As `Option<Option<_>>`: `None` = absent, `Some(None)` = `null`, `Some(Some(v))` = a value.
    #[must_use]
    pub fn into_option(self) -> Option<Option<PayloadCellValue>> {
        match self {
            Self::Absent => None,
            Self::Null => Some(None),
            Self::Value(v) => Some(Some(v)),
        }
    }
}

/// One field's change: `(previous, current)`.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldValueChange {
    /// The value before the change: [`PreviousValue::Absent`] unless the payload carried one (the specification's
    /// `includePreviousCellValues`), [`PreviousValue::Null`] when it was empty.
    pub previous: PreviousValue,
    /// Current value (`None`: the cell is now empty — `null` in `current`, or the field listed only in `previous`).
    pub current: Option<PayloadCellValue>,
}

/// A flat record change, from [`WebhookPayload::record_changes`].
#[derive(Debug, Clone, PartialEq)]
pub struct RecordChange {
    /// Table.
    pub table_id: TableId,
    /// Record.
    pub record_id: RecordId,
    /// Kind.
    pub kind: ChangeKind,
    /// Field changes (empty for destroyed records).
    pub fields: BTreeMap<FieldId, FieldValueChange>,
    /// Unchanged values included by the specification.
    pub unchanged: BTreeMap<FieldId, Option<PayloadCellValue>>,
}

impl WebhookPayload {
    /// The source of the change, if given.
    #[must_use]
    pub fn source(&self) -> Option<&ActionSource> {
        self.action_metadata.as_ref().map(|a| &a.source)
    }

    /// The user behind the change, if given.
    #[must_use]
    pub fn user(&self) -> Option<&SourceUser> {
        self.action_metadata.as_ref()?.source_metadata.user.as_ref()
    }

    /// Whether this is an error payload (`error: true`); the hook needs recreating.
    #[must_use]
    pub fn is_error(&self) -> bool {
        self.error
    }

    /// The record changes as a flat list (table, record, kind, field → (previous, current)), in table order:
    /// created, then changed, then destroyed.
    #[must_use]
    pub fn record_changes(&self) -> Vec<RecordChange> {
        let mut out = Vec::new();
        for (table_id, t) in &self.changed_tables_by_id {
            for (record_id, c) in &t.created_records_by_id {
                out.push(RecordChange {
                    table_id: table_id.clone(),
                    record_id: record_id.clone(),
                    kind: ChangeKind::Created,
                    fields: c
                        .cell_values_by_field_id
                        .iter()
                        .map(|(f, v)| {
                            (f.clone(), FieldValueChange { previous: PreviousValue::Absent, current: v.clone() })
                        })
                        .collect(),
                    unchanged: BTreeMap::new(),
                });
            }
            for (record_id, c) in &t.changed_records_by_id {
                let prev = c.previous.as_ref().map(|p| &p.cell_values_by_field_id);
                let mut fields: BTreeMap<FieldId, FieldValueChange> = c
                    .current
                    .cell_values_by_field_id
                    .iter()
                    .map(|(f, v)| {
                        let previous = PreviousValue::from_entry(prev.and_then(|p| p.get(f)));
                        (f.clone(), FieldValueChange { previous, current: v.clone() })
                    })
                    .collect();
                // a field present only in `previous` was cleared
                if let Some(p) = prev {
                    for (f, v) in p {
                        fields.entry(f.clone()).or_insert_with(|| FieldValueChange {
                            previous: PreviousValue::from_entry(Some(v)),
                            current: None,
                        });
                    }
                }
                out.push(RecordChange {
                    table_id: table_id.clone(),
                    record_id: record_id.clone(),
                    kind: ChangeKind::Updated,
                    fields,
                    unchanged: c.unchanged.as_ref().map(|u| u.cell_values_by_field_id.clone()).unwrap_or_default(),
                });
            }
            for record_id in &t.destroyed_record_ids {
                out.push(RecordChange {
                    table_id: table_id.clone(),
                    record_id: record_id.clone(),
                    kind: ChangeKind::Destroyed,
                    fields: BTreeMap::new(),
                    unchanged: BTreeMap::new(),
                });
            }
        }
        out
    }
}

/// One page of `GET …/payloads`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PayloadsPage {
    /// The cursor to ask for next (last payload's number + 1; the request cursor when empty).
    pub cursor: u64,
    /// Whether to ask again now.
    pub might_have_more: bool,
    /// Payloads, oldest first.
    pub payloads: Vec<WebhookPayload>,
}

/// A payload with its cursor number, from the feed.
#[derive(Debug, Clone, PartialEq)]
pub struct CursoredPayload {
    /// This payload's cursor number (its identity within the webhook).
    pub cursor: u64,
    /// The cursor to persist once this payload is processed (`cursor + 1`).
    pub next_cursor: u64,
    /// The payload.
    pub payload: WebhookPayload,
}

/// Payloads Airtable deleted before they were read: data loss the caller must act on (resync what the webhook
/// watches, then go on from [`PayloadGap::first_available`]).
///
/// Airtable keeps payloads one week, read or not, and never resets the cursor (api-notes/airtable.md A.8). A listing
/// from an older cursor starts at the oldest kept payload; the page shows it: the first returned payload's number,
/// `cursor - payloads.len()`, is above the requested cursor (for an empty page, the returned cursor is).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayloadGap {
    /// The webhook.
    pub webhook: WebhookId,
    /// The cursor asked for.
    pub requested: u64,
    /// The first payload still available (the cursor to go on from).
    pub first_available: u64,
}

impl PayloadGap {
    /// How many payloads were lost.
    #[must_use]
    pub fn lost(&self) -> u64 {
        self.first_available.saturating_sub(self.requested)
    }
}

impl std::fmt::Display for PayloadGap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} payload(s) of webhook {} expired unread (cursors {}..{}): resync, then continue from cursor {}",
            self.lost(),
            self.webhook,
            self.requested,
            self.first_available,
            self.first_available
        )
    }
}

impl PayloadsPage {
    /// The gap between the `requested` cursor and the first payload this page holds, if Airtable deleted payloads
    /// in between (see [`PayloadGap`]).
    #[must_use]
    pub fn gap(&self, webhook: &WebhookId, requested: u64) -> Option<PayloadGap> {
        let first = self.cursor.saturating_sub(self.payloads.len() as u64);
        (first > requested.max(1)).then(|| PayloadGap {
            webhook: webhook.clone(),
            requested: requested.max(1),
            first_available: first,
        })
    }

    /// The payloads with their cursor numbers: payload `i` of `n` is `cursor - n + i` (robust even if the server
    /// skipped purged payloads).
    #[must_use]
    pub fn numbered(self) -> Vec<CursoredPayload> {
        let n = self.payloads.len() as u64;
        let first = self.cursor.saturating_sub(n);
        self.payloads
            .into_iter()
            .enumerate()
            .map(|(i, payload)| {
                let cursor = first + i as u64;
                CursoredPayload { cursor, next_cursor: cursor + 1, payload }
            })
            .collect()
    }
}

/// The payload feed: pages through `…/payloads` from a cursor while `mightHaveMore`. Pull with
/// [`PayloadFeed::next`]; [`PayloadFeed::cursor`] is the cursor to persist (after the payloads taken so far).
///
/// When Airtable deleted payloads before they were read, the feed yields [`Error::PayloadsExpired`] once, in order
/// (before the payloads after the gap), with its [`PayloadGap`]; its cursor then points past the gap, and polling
/// again goes on with the kept payloads. The payloads lost are not coming back: resync what the webhook watches.
#[derive(Debug)]
pub struct PayloadFeed {
    client: Client,
    base: BaseId,
    webhook: WebhookId,
    limit: Option<u32>,
    cursor: u64,
    buffer: std::collections::VecDeque<CursoredPayload>,
    more: bool,
    pages: u32,
}

impl PayloadFeed {
    /// The next payload, fetching a page when needed; `None` when drained (`mightHaveMore: false`).
    ///
    /// # Errors
    /// The page error; the feed can be polled again (it retries the same cursor). [`Error::PayloadsExpired`] when
    /// payloads were deleted unread: handle the loss, then poll again for the payloads after it.
    pub async fn next(&mut self) -> Option<Result<CursoredPayload, Error>> {
        loop {
            if let Some(p) = self.buffer.pop_front() {
                self.cursor = p.next_cursor;
                return Some(Ok(p));
            }
            if !self.more {
                return None;
            }
            let page =
                match self.client.webhook_payloads(&self.base, &self.webhook, Some(self.cursor), self.limit).await {
                    Ok(p) => p,
                    Err(e) => return Some(Err(e)),
                };
            self.pages += 1;
            let progressed = page.cursor != self.cursor || !page.payloads.is_empty();
            self.more = page.might_have_more && progressed;
            let request_cursor = self.cursor;
            let end = page.cursor;
            let gap = page.gap(&self.webhook, request_cursor);
            self.buffer.extend(page.numbered());
            if self.buffer.is_empty() {
                // nothing returned: adopt the server's cursor (equal to ours by the docs, unless payloads expired)
                self.cursor = end.max(request_cursor);
            }
            if let Some(gap) = gap {
                tracing::error!(%gap, "airtable webhook payloads expired unread");
                self.cursor = self.cursor.max(gap.first_available);
                return Some(Err(Error::PayloadsExpired(gap)));
            }
        }
    }

    /// The cursor to persist: the next payload to read.
    #[must_use]
    pub fn cursor(&self) -> u64 {
        self.cursor
    }

    /// Pages fetched so far.
    #[must_use]
    pub fn pages_fetched(&self) -> u32 {
        self.pages
    }

    /// The feed as a [`futures::Stream`] of payloads (ends when drained or after the first error). Use
    /// [`PayloadFeed::next`] instead when you need [`PayloadFeed::cursor`] afterwards.
    pub fn into_stream(self) -> impl futures::Stream<Item = Result<CursoredPayload, Error>> + Send {
        futures::stream::unfold((self, false), |(mut feed, failed)| async move {
            if failed {
                return None;
            }
            match feed.next().await? {
                Ok(p) => Some((Ok(p), (feed, false))),
                Err(e) => Some((Err(e), (feed, true))),
            }
        })
    }

    /// Drains everything into a vector and returns it with the final cursor.
    ///
    /// # Errors
    /// The first page error.
    pub async fn collect_all(mut self) -> Result<(Vec<CursoredPayload>, u64), Error> {
        let mut out = Vec::new();
        while let Some(p) = self.next().await {
            out.push(p?);
        }
        Ok((out, self.cursor))
    }
}

#[derive(Deserialize)]
struct WebhooksList {
    webhooks: Vec<Webhook>,
}

impl Client {
    fn hooks_path(base: &BaseId) -> String {
        format!("/bases/{}/webhooks", encode_segment(base.as_str()))
    }

    fn hook_path(base: &BaseId, id: &WebhookId) -> String {
        format!("{}/{}", Self::hooks_path(base), encode_segment(id.as_str()))
    }

    /// Creates a webhook (at most 10 per base). Store `mac_secret_base64`: it is returned only now.
    ///
    /// # Errors
    /// [`Error`].
    pub async fn create_webhook(&self, base: &BaseId, req: &CreateWebhook) -> Result<CreatedWebhook, Error> {
        let r = Request::post(Self::hooks_path(base)).json(req)?.rate_key(base.as_str());
        self.send_json(r, Operation::Other).await
    }

    /// Lists the base's webhooks.
    ///
    /// # Errors
    /// [`Error`].
    pub async fn list_webhooks(&self, base: &BaseId) -> Result<Vec<Webhook>, Error> {
        let r = Request::get(Self::hooks_path(base)).rate_key(base.as_str());
        Ok(self.send_json::<WebhooksList>(r, Operation::Other).await?.webhooks)
    }

    /// Extends an active webhook's expiry to 7 days from now.
    ///
    /// # Errors
    /// [`Error`].
    pub async fn refresh_webhook(&self, base: &BaseId, id: &WebhookId) -> Result<RefreshedWebhook, Error> {
        let r =
            Request::post(format!("{}/refresh", Self::hook_path(base, id))).idempotent(true).rate_key(base.as_str());
        self.send_json(r, Operation::Other).await
    }

    /// Deletes a webhook.
    ///
    /// # Errors
    /// [`Error`].
    pub async fn delete_webhook(&self, base: &BaseId, id: &WebhookId) -> Result<(), Error> {
        let r = Request::delete(Self::hook_path(base, id)).rate_key(base.as_str());
        self.send_as(r, Operation::Other).await.map(|_| ())
    }

    /// Enables or disables notification pings (`POST …/enableNotifications {"enable": bool}`).
    ///
    /// # Errors
    /// [`Error`].
    pub async fn set_webhook_notifications(&self, base: &BaseId, id: &WebhookId, enable: bool) -> Result<(), Error> {
        let r = Request::post(format!("{}/enableNotifications", Self::hook_path(base, id)))
            .json(&serde_json::json!({ "enable": enable }))?
            .idempotent(true)
            .rate_key(base.as_str());
        self.send_as(r, Operation::Other).await.map(|_| ())
    }

    /// One page of payloads from `cursor` (default 1), `limit` ≤ 50. Also extends the hook's expiry.
    ///
    /// # Errors
    /// [`Error`].
    pub async fn webhook_payloads(
        &self,
        base: &BaseId,
        id: &WebhookId,
        cursor: Option<u64>,
        limit: Option<u32>,
    ) -> Result<PayloadsPage, Error> {
        let r = Request::get(format!("{}/payloads", Self::hook_path(base, id)))
            .query_opt("cursor", cursor)
            .query_opt("limit", limit.map(|l| l.clamp(1, MAX_PAYLOADS_PER_PAGE)))
            .rate_key(base.as_str());
        self.send_json(r, Operation::Other).await
    }

    /// The payload feed from `cursor` (the last cursor you persisted; 1 for a new hook).
    #[must_use]
    pub fn payload_feed(&self, base: &BaseId, id: &WebhookId, cursor: u64) -> PayloadFeed {
        PayloadFeed {
            client: self.clone(),
            base: base.clone(),
            webhook: id.clone(),
            limit: None,
            cursor: cursor.max(1),
            buffer: std::collections::VecDeque::new(),
            more: true,
            pages: 0,
        }
    }
}

impl PayloadFeed {
    /// Payloads per page (≤ 50).
    #[must_use]
    pub fn limit(mut self, limit: u32) -> Self {
        self.limit = Some(limit.clamp(1, MAX_PAYLOADS_PER_PAGE));
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_source_round_trips() {
        let a: ActionMetadata =
            serde_json::from_value(serde_json::json!({"source": "telepathy", "sourceMetadata": {}})).unwrap();
        assert_eq!(a.source, ActionSource::Other("telepathy".into()));
        assert_eq!(serde_json::to_value(&a).unwrap()["source"], "telepathy");
        assert_eq!(ActionSource::parse("unknown"), ActionSource::Unknown);
    }

    #[test]
    fn mac_secret_debug_is_redacted() {
        let s = MacSecret::from_base64("c3VwZXIgZHVwZXIgc2VjcmV0");
        assert!(!format!("{s:?}").contains("c3VwZX"));
        let c = CreatedWebhook { id: "ach1".into(), mac_secret_base64: s, expiration_time: None };
        assert!(!format!("{c:?}").contains("c3VwZX"));
    }

    #[test]
    fn numbering_uses_response_cursor() {
        let page = PayloadsPage {
            cursor: 10,
            might_have_more: false,
            payloads: vec![
                serde_json::from_value(
                    serde_json::json!({"timestamp": "t", "baseTransactionNumber": 1, "payloadFormat": "v0"})
                )
                .unwrap();
                2
            ],
        };
        let hook = WebhookId::from("ach1");
        // asked from 8: payloads 8 and 9, no gap; asked from 5: 5..7 were deleted unread
        assert_eq!(page.gap(&hook, 8), None);
        let gap = page.gap(&hook, 5).unwrap();
        assert_eq!((gap.requested, gap.first_available, gap.lost()), (5, 8, 3));
        let n = page.numbered();
        assert_eq!((n[0].cursor, n[1].cursor, n[1].next_cursor), (8, 9, 10));
        // an empty page whose cursor moved past the request: everything asked for is gone
        let empty = PayloadsPage { cursor: 12, might_have_more: false, payloads: Vec::new() };
        assert_eq!(empty.gap(&hook, 10).map(|g| g.lost()), Some(2));
        assert_eq!(PayloadsPage { cursor: 10, ..empty }.gap(&hook, 10), None, "the documented empty answer");
    }
}
