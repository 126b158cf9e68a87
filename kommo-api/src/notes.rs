//! Notes: `POST /api/v4/{entity}/notes`, `GET /api/v4/{entity}/{id}/notes`, `GET /api/v4/{entity}/notes`.

use std::fmt;

use futures::stream::BoxStream;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{
    Client, EntityKey, EntityType, Error, ListPage, ListParams, NoteId, UserId,
    common::{WriteResult, batch_write},
    entity::read_model,
};

/// A note type. Unknown types round-trip through [`NoteType::Other`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum NoteType {
    /// `common`: a text note.
    Common,
    /// `call_in`.
    CallIn,
    /// `call_out`.
    CallOut,
    /// `service_message`.
    ServiceMessage,
    /// `extended_service_message`.
    ExtendedServiceMessage,
    /// `geolocation`.
    Geolocation,
    /// `sms_in`.
    SmsIn,
    /// `sms_out`.
    SmsOut,
    /// `attachment`.
    Attachment,
    /// `message_cashier`.
    MessageCashier,
    /// Any other type (`amomail_message`, `invoice_paid`, `ai_result`...), kept as sent.
    Other(String),
}

impl NoteType {
    /// The wire name.
    #[must_use]
    pub fn as_str(&self) -> &str {
        match self {
            Self::Common => "common",
            Self::CallIn => "call_in",
            Self::CallOut => "call_out",
            Self::ServiceMessage => "service_message",
            Self::ExtendedServiceMessage => "extended_service_message",
            Self::Geolocation => "geolocation",
            Self::SmsIn => "sms_in",
            Self::SmsOut => "sms_out",
            Self::Attachment => "attachment",
            Self::MessageCashier => "message_cashier",
            Self::Other(s) => s,
        }
    }

    /// Parses a wire name.
    #[must_use]
    pub fn parse(s: &str) -> Self {
        match s {
            "common" => Self::Common,
            "call_in" => Self::CallIn,
            "call_out" => Self::CallOut,
            "service_message" => Self::ServiceMessage,
            "extended_service_message" => Self::ExtendedServiceMessage,
            "geolocation" => Self::Geolocation,
            "sms_in" => Self::SmsIn,
            "sms_out" => Self::SmsOut,
            "attachment" => Self::Attachment,
            "message_cashier" => Self::MessageCashier,
            other => Self::Other(other.to_owned()),
        }
    }
}

impl fmt::Display for NoteType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for NoteType {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for NoteType {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(match serde_json::Value::deserialize(d)? {
            serde_json::Value::String(s) => Self::parse(&s),
            other => Self::Other(other.to_string()),
        })
    }
}

read_model! {
    /// A note as read.
    Note {
        /// Id.
        pub id: NoteId,
        /// The entity the note is on.
        #[serde(default)]
        pub entity_id: Option<u64>,
        /// The entity type, when Kommo includes it.
        #[serde(default)]
        pub entity_type: Option<EntityType>,
        /// Type.
        pub note_type: NoteType,
        /// Parameters per type (`{"text": ...}` for common notes).
        #[serde(default)]
        pub params: serde_json::Value,
    }
}

impl Note {
    /// `params.text`, when present.
    #[must_use]
    pub fn text(&self) -> Option<&str> {
        self.params.get("text").and_then(serde_json::Value::as_str)
    }
}

/// A note to add.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[must_use]
pub struct NewNote {
    /// The entity id (leads/contacts/companies id).
    pub entity_id: u64,
    /// Type.
    pub note_type: NoteType,
    /// Parameters per type.
    pub params: serde_json::Value,
    /// Responsible user.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub responsible_user_id: Option<UserId>,
    /// Echoed back (set to the index when `None`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

impl NewNote {
    /// A `common` text note.
    pub fn common(entity_id: impl EntityKey, text: impl Into<String>) -> Self {
        Self {
            entity_id: entity_id.into(),
            note_type: NoteType::Common,
            params: serde_json::json!({ "text": text.into() }),
            responsible_user_id: None,
            request_id: None,
        }
    }

    /// A `service_message` note shown as coming from `service`.
    pub fn service_message(entity_id: impl EntityKey, service: impl Into<String>, text: impl Into<String>) -> Self {
        Self {
            entity_id: entity_id.into(),
            note_type: NoteType::ServiceMessage,
            params: serde_json::json!({ "service": service.into(), "text": text.into() }),
            responsible_user_id: None,
            request_id: None,
        }
    }

    /// A `call_in` / `call_out` note: `{uniq, duration, source, link, phone}` (K-docs notes-types).
    pub fn call(
        entity_id: impl EntityKey,
        incoming: bool,
        uniq: impl Into<String>,
        duration_seconds: u64,
        source: impl Into<String>,
        phone: impl Into<String>,
        link: Option<String>,
    ) -> Self {
        let mut params = serde_json::json!({
            "uniq": uniq.into(), "duration": duration_seconds, "source": source.into(), "phone": phone.into()
        });
        if let Some(l) = link {
            params["link"] = serde_json::Value::String(l);
        }
        Self::new(entity_id, if incoming { NoteType::CallIn } else { NoteType::CallOut }, params)
    }

    /// Any note type with raw params.
    pub fn new(entity_id: impl EntityKey, note_type: NoteType, params: serde_json::Value) -> Self {
        Self { entity_id: entity_id.into(), note_type, params, responsible_user_id: None, request_id: None }
    }

    /// Sets the request id.
    pub fn request_id(mut self, id: impl Into<String>) -> Self {
        self.request_id = Some(id.into());
        self
    }
}

/// Changes to a note (`PATCH /api/v4/{entity}/notes[/{id}]`; shape `NoteUpdateById` in
/// `../shared/openapi/kommo-community.yaml`, the PHP library's `NoteModel::toApi`): the type and its params.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[must_use]
pub struct NoteUpdate {
    /// The note (in the path of a single update, in the body of a batch).
    pub id: NoteId,
    /// Type (Kommo wants it with `params`).
    pub note_type: NoteType,
    /// The new parameters (`{"text": ...}` for common notes).
    pub params: serde_json::Value,
    /// Echoed back in batch answers (the client sets the index when `None`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

impl NoteUpdate {
    /// New text for a `common` note.
    pub fn common(id: NoteId, text: impl Into<String>) -> Self {
        Self { id, note_type: NoteType::Common, params: serde_json::json!({ "text": text.into() }), request_id: None }
    }
}

/// Note operations on one entity type: `client.notes(EntityType::Leads)`.
#[derive(Debug, Clone)]
pub struct Notes<'a> {
    pub(crate) client: &'a Client,
    pub(crate) entity: EntityType,
}

impl Notes<'_> {
    /// `POST /api/v4/{entity}/notes` in chunks of 50.
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn add(&self, notes: &[NewNote]) -> Result<Vec<WriteResult>, Error> {
        let path = format!("/api/v4/{}/notes", self.entity.as_str());
        batch_write(self.client, http::Method::POST, &path, "notes", notes).await
    }

    /// `GET /api/v4/{entity}/notes/{id}`.
    ///
    /// # Errors
    /// See [`Error`]; [`Error::is_not_found`] for an unknown id.
    pub async fn get(&self, id: NoteId) -> Result<Note, Error> {
        self.client.get_one(api_core::Request::get(format!("/api/v4/{}/notes/{id}", self.entity.as_str()))).await
    }

    /// `PATCH /api/v4/{entity}/notes/{id}`; answers `{id, entity_id, updated_at, ...}`.
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn update(&self, update: &NoteUpdate) -> Result<WriteResult, Error> {
        let mut body = serde_json::to_value(update).map_err(|e| Error::InvalidRequest(e.to_string()))?;
        if let Some(o) = body.as_object_mut() {
            o.remove("id");
        }
        let req = api_core::Request::patch(format!("/api/v4/{}/notes/{}", self.entity.as_str(), update.id))
            .json(&body)
            .map_err(|e| Error::InvalidRequest(e.to_string()))?
            .idempotent(true);
        self.client.send_json(req).await
    }

    /// `PATCH /api/v4/{entity}/notes` in chunks of 50; results in input order.
    ///
    /// # Errors
    /// See [`Error`]; [`Error::Batch`] when a later chunk fails.
    pub async fn update_many(&self, updates: &[NoteUpdate]) -> Result<Vec<WriteResult>, Error> {
        let path = format!("/api/v4/{}/notes", self.entity.as_str());
        batch_write(self.client, http::Method::PATCH, &path, "notes", updates).await
    }

    /// `POST /api/v4/{entity}/notes/{id}/pin` (no body; community OpenAPI `.../pin`).
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn pin(&self, id: NoteId) -> Result<(), Error> {
        self.pinning(id, "pin").await
    }

    /// `POST /api/v4/{entity}/notes/{id}/unpin` (no body).
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn unpin(&self, id: NoteId) -> Result<(), Error> {
        self.pinning(id, "unpin").await
    }

    async fn pinning(&self, id: NoteId, what: &str) -> Result<(), Error> {
        let req =
            api_core::Request::post(format!("/api/v4/{}/notes/{id}/{what}", self.entity.as_str())).idempotent(true);
        self.client.send(req).await?;
        Ok(())
    }

    /// Adds one note and returns its id.
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn add_one(&self, note: NewNote) -> Result<NoteId, Error> {
        let r = self.add(std::slice::from_ref(&note)).await?;
        r.first().map(|r| NoteId(r.id)).ok_or_else(|| Error::InvalidRequest("Kommo returned no note".into()))
    }

    /// Every note on entity `entity_id` (`GET /api/v4/{entity}/{id}/notes`; 204 = none), lazily.
    pub fn stream_for(&self, entity_id: impl EntityKey, params: ListParams) -> BoxStream<'static, Result<Note, Error>> {
        self.client.stream_list(format!("/api/v4/{}/{entity_id}/notes", self.entity.as_str()), "notes", params)
    }

    /// One page of notes on entity `entity_id` (`GET /api/v4/{entity}/{id}/notes`; 204 = empty page).
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn list_for(
        &self,
        entity_id: impl EntityKey,
        params: &ListParams,
        page: u32,
    ) -> Result<ListPage<Note>, Error> {
        let path = format!("/api/v4/{}/{entity_id}/notes", self.entity.as_str());
        self.client.list_page(&path, "notes", params, page).await
    }

    /// One page of the notes of this entity type (`GET /api/v4/{entity}/notes`, filters e.g. `filter[note_type]`).
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn list(&self, params: &ListParams, page: u32) -> Result<ListPage<Note>, Error> {
        self.client.list_page(&format!("/api/v4/{}/notes", self.entity.as_str()), "notes", params, page).await
    }

    /// Every note of this entity type (`GET /api/v4/{entity}/notes`), lazily.
    pub fn stream(&self, params: ListParams) -> BoxStream<'static, Result<Note, Error>> {
        self.client.stream_list(format!("/api/v4/{}/notes", self.entity.as_str()), "notes", params)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_note_type_round_trips() {
        let t: NoteType = serde_json::from_str("\"ai_result\"").unwrap();
        assert_eq!(t, NoteType::Other("ai_result".into()));
        assert_eq!(serde_json::to_string(&t).unwrap(), "\"ai_result\"");
    }

    #[test]
    fn call_note_shape() {
        let v = serde_json::to_value(NewNote::call(crate::LeadId(7), false, "u1", 60, "pbx", "+1", None)).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"entity_id":7,"note_type":"call_out","params":{"uniq":"u1","duration":60,"source":"pbx","phone":"+1"}})
        );
    }

    #[test]
    fn common_note_shape() {
        let v = serde_json::to_value(NewNote::common(crate::LeadId(7), "hi")).unwrap();
        assert_eq!(v, serde_json::json!({"entity_id":7,"note_type":"common","params":{"text":"hi"}}));
    }
}
