//! Calls: `POST /api/v4/calls` (log calls; Kommo attaches each to the contact, company or lead with that phone).
//!
//! Shape: `../shared/openapi/kommo-community.yaml` (community-made from amoCRM's API reference: `CallCreateItem`,
//! `CallDirection`, `CallCreateResponse` with `_embedded.calls[{id, entity_id, entity_type, request_id}]` and
//! `errors`), the PHP library (`EntitiesServices/Calls.php`, `Models/CallModel.php`).

use api_core::Request;
use serde::{Deserialize, Serialize};

use crate::{CallId, Client, Error, UserId};

api_core::open_enum! {
    /// The call's direction.
    CallDirection {
        /// `inbound`.
        Inbound = "inbound",
        /// `outbound`.
        Outbound = "outbound",
    }
}

/// A call to log.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[must_use]
pub struct NewCall {
    /// Direction (required).
    pub direction: CallDirection,
    /// Duration in seconds (required).
    pub duration: u64,
    /// The telephony source shown in Kommo (required).
    pub source: String,
    /// The other party's phone (required; Kommo finds the entity by it).
    pub phone: String,
    /// Your call id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uniq: Option<String>,
    /// Recording link.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    /// Result text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub call_result: Option<String>,
    /// Status code (Kommo's list: 1 left a message, 2 call back later, 3 not available, 4 talked, 5 wrong
    /// number, 6 no answer, 7 busy).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub call_status: Option<u8>,
    /// Responsible user of the call.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub responsible_user_id: Option<UserId>,
    /// When (Unix seconds).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at: Option<i64>,
    /// Echoed back (the client sets the index when `None`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

impl NewCall {
    /// A call with the required members.
    pub fn new(direction: CallDirection, phone: impl Into<String>, duration: u64, source: impl Into<String>) -> Self {
        Self {
            direction,
            duration,
            source: source.into(),
            phone: phone.into(),
            uniq: None,
            link: None,
            call_result: None,
            call_status: None,
            responsible_user_id: None,
            created_at: None,
            request_id: None,
        }
    }
    /// Your call id.
    pub fn uniq(mut self, uniq: impl Into<String>) -> Self {
        self.uniq = Some(uniq.into());
        self
    }
    /// Recording link.
    pub fn link(mut self, link: impl Into<String>) -> Self {
        self.link = Some(link.into());
        self
    }
    /// Result text and status code.
    pub fn result(mut self, text: impl Into<String>, status: u8) -> Self {
        self.call_result = Some(text.into());
        self.call_status = Some(status);
        self
    }
    /// Responsible user.
    pub fn responsible(mut self, user: UserId) -> Self {
        self.responsible_user_id = Some(user);
        self
    }
}

/// One logged call: the entity it went to.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct LoggedCall {
    /// The call (a note id on the entity).
    pub id: CallId,
    /// The entity.
    #[serde(default)]
    pub entity_id: Option<u64>,
    /// The entity type (`contact`, `lead`, ... as sent).
    #[serde(default)]
    pub entity_type: Option<serde_json::Value>,
    /// Echoed request id.
    #[serde(default)]
    pub request_id: Option<String>,
}

/// The answer of `POST /api/v4/calls`: the calls logged and, per call that was not, Kommo's error object.
#[derive(Debug, Clone, PartialEq)]
pub struct CallsLogged {
    /// Logged calls.
    pub calls: Vec<LoggedCall>,
    /// Calls Kommo could not log (e.g. no entity with that phone), as sent.
    pub errors: Vec<serde_json::Value>,
}

/// Call operations: `client.calls()`.
#[derive(Debug, Clone, Copy)]
pub struct Calls<'a> {
    pub(crate) client: &'a Client,
}

impl Calls<'_> {
    /// `POST /api/v4/calls` (one request; `request_id` set to the index when none is given).
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn add(&self, calls: &[NewCall]) -> Result<CallsLogged, Error> {
        let mut body = Vec::with_capacity(calls.len());
        for (i, c) in calls.iter().enumerate() {
            let mut c = c.clone();
            c.request_id.get_or_insert_with(|| i.to_string());
            body.push(c);
        }
        let req = Request::post("/api/v4/calls").json(&body).map_err(|e| Error::InvalidRequest(e.to_string()))?;
        let resp = self.client.send(req).await?;
        let calls = crate::hal::decode_list(&resp, "calls", 1)?.items;
        let errors = if resp.body.is_empty() {
            Vec::new()
        } else {
            let v: serde_json::Value = resp.json()?;
            v.get("errors").and_then(serde_json::Value::as_array).cloned().unwrap_or_default()
        };
        Ok(CallsLogged { calls, errors })
    }
}
