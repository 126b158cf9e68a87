//! Unsorted (incoming) leads: `GET /api/v4/leads/unsorted[/{uid}]`, `POST /api/v4/leads/unsorted/forms|sip`,
//! `POST /api/v4/leads/unsorted/{uid}/accept|link`, `DELETE /api/v4/leads/unsorted/{uid}/decline`.
//!
//! Shapes: `../shared/openapi/kommo-community.yaml` (community-made from amoCRM's API reference:
//! `UnsortedFormCreateItem`, `FormMetadata`, `UnsortedAcceptRequest`, `UnsortedDeclineRequest`,
//! `UnsortedAcceptResponse`, `UnsortedCreateResponse`) and the official PHP library (`EntitiesServices/Unsorted.php`:
//! paths, `_embedded.unsorted`, forms and sip only for creation, link only for chats and mail;
//! `Models/Unsorted/SipMetadata.php` for the sip metadata). The `link` body is **unverified** (no source read
//! states it; see the crate README's coverage table).

use api_core::Request;
use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};

use crate::{
    Client, EntityType, Error, ListPage, ListParams, PipelineId, StatusId, UnsortedUid, UserId, companies::NewCompany,
    contacts::NewContact, leads::NewLead,
};

api_core::open_enum! {
    /// Where an unsorted lead came from (`category`).
    UnsortedCategory {
        /// A phone call (`sip`).
        Sip = "sip",
        /// An email (`mail`).
        Mail = "mail",
        /// A chat message (`chats`).
        Chats = "chats",
        /// A web form (`forms`).
        Forms = "forms",
    }
}

/// An id reference with its `_links`, as in the `_embedded` of unsorted answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ref {
    /// The id.
    pub id: u64,
}

/// `_embedded` of an unsorted answer: the lead, contacts and companies it made or holds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UnsortedRefs {
    /// Leads.
    #[serde(default, deserialize_with = "crate::de::null_as_empty")]
    pub leads: Vec<Ref>,
    /// Contacts.
    #[serde(default, deserialize_with = "crate::de::null_as_empty")]
    pub contacts: Vec<Ref>,
    /// Companies.
    #[serde(default, deserialize_with = "crate::de::null_as_empty")]
    pub companies: Vec<Ref>,
}

/// An unsorted lead as listed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Unsorted {
    /// Uid.
    pub uid: UnsortedUid,
    /// Your source id (`source_uid`).
    #[serde(default)]
    pub source_uid: Option<String>,
    /// Source name.
    #[serde(default)]
    pub source_name: Option<String>,
    /// Category.
    #[serde(default)]
    pub category: Option<UnsortedCategory>,
    /// Pipeline.
    #[serde(default)]
    pub pipeline_id: Option<PipelineId>,
    /// Created (Unix seconds).
    #[serde(default, deserialize_with = "crate::de::opt_i64")]
    pub created_at: Option<i64>,
    /// Per-category metadata, as sent.
    #[serde(default)]
    pub metadata: serde_json::Value,
    /// Other members (`account_id`, `_embedded`, `_links`).
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// `_embedded` of a new unsorted lead: the lead, contacts and company to create with it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct NewUnsortedEmbedded {
    /// The lead (one).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub leads: Vec<NewLead>,
    /// Contacts.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub contacts: Vec<NewContact>,
    /// Companies.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub companies: Vec<NewCompany>,
}

/// `metadata` of a form submission (`FormMetadata`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[must_use]
pub struct FormMetadata {
    /// Your form id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub form_id: Option<String>,
    /// Form name shown in Kommo.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub form_name: Option<String>,
    /// Page the form is on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub form_page: Option<String>,
    /// When it was sent (Unix seconds).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub form_sent_at: Option<i64>,
    /// Submitter IP.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// Referrer URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub referer: Option<String>,
    /// Visitor uid from Kommo's tracking.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub visitor_uid: Option<String>,
}

/// `metadata` of a call (`SipMetadata::toApi` in the PHP library).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[must_use]
pub struct SipMetadata {
    /// The calling user (`from`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<u64>,
    /// The caller's phone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    /// When (Unix seconds).
    pub called_at: i64,
    /// Duration (seconds).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration: Option<u64>,
    /// Recording link.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    /// The telephony widget's code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_code: Option<String>,
    /// Your call id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uniq: Option<String>,
    /// Whether Kommo adds a call event (the PHP library sends `true` unless told otherwise).
    pub is_call_event_needed: bool,
}

/// An unsorted lead to create (`POST /api/v4/leads/unsorted/forms` or `/sip`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[must_use]
pub struct NewUnsorted<M> {
    /// Your stable source id (required).
    pub source_uid: String,
    /// Source name shown in Kommo (required).
    pub source_name: String,
    /// Pipeline to put it in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pipeline_id: Option<PipelineId>,
    /// When it was created (Unix seconds).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at: Option<i64>,
    /// Lead, contacts, company.
    #[serde(rename = "_embedded")]
    pub embedded: NewUnsortedEmbedded,
    /// Category metadata.
    pub metadata: M,
    /// Echoed back (the client sets the index when `None`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

impl<M> NewUnsorted<M> {
    /// An unsorted lead from `source_uid` / `source_name` with `metadata`.
    pub fn new(source_uid: impl Into<String>, source_name: impl Into<String>, metadata: M) -> Self {
        Self {
            source_uid: source_uid.into(),
            source_name: source_name.into(),
            pipeline_id: None,
            created_at: None,
            embedded: NewUnsortedEmbedded::default(),
            metadata,
            request_id: None,
        }
    }
    /// The lead to create.
    pub fn lead(mut self, lead: NewLead) -> Self {
        self.embedded.leads.push(lead);
        self
    }
    /// A contact to create.
    pub fn contact(mut self, contact: NewContact) -> Self {
        self.embedded.contacts.push(contact);
        self
    }
    /// A company to create.
    pub fn company(mut self, company: NewCompany) -> Self {
        self.embedded.companies.push(company);
        self
    }
    /// The pipeline.
    pub fn pipeline(mut self, pipeline: PipelineId) -> Self {
        self.pipeline_id = Some(pipeline);
        self
    }
    /// The creation time.
    pub fn created_at(mut self, unix: i64) -> Self {
        self.created_at = Some(unix);
        self
    }
}

/// A form submission to add.
pub type NewUnsortedForm = NewUnsorted<FormMetadata>;
/// A call to add.
pub type NewUnsortedSip = NewUnsorted<SipMetadata>;

/// One created unsorted lead: `{uid, account_id, request_id, _embedded: {leads, contacts, companies}}`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct UnsortedCreated {
    /// Uid.
    pub uid: UnsortedUid,
    /// Echoed request id.
    #[serde(default)]
    pub request_id: Option<String>,
    /// What was made.
    #[serde(default, rename = "_embedded", deserialize_with = "crate::de::object_or_default")]
    pub embedded: UnsortedRefs,
}

/// The answer to accept and decline: `{uid, pipeline_id, category, _embedded}`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct UnsortedOutcome {
    /// Uid.
    pub uid: UnsortedUid,
    /// Pipeline.
    #[serde(default)]
    pub pipeline_id: Option<PipelineId>,
    /// Category.
    #[serde(default)]
    pub category: Option<UnsortedCategory>,
    /// The lead, contacts and companies now in the CRM (accept) or removed (decline).
    #[serde(default, rename = "_embedded", deserialize_with = "crate::de::object_or_default")]
    pub embedded: UnsortedRefs,
}

/// `GET /api/v4/leads/unsorted/summary`: counts over the filtered unsorted leads (PHP library
/// `UnsortedSummaryModel`: `total, accepted, declined, average_sort_time, categories`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct UnsortedSummary {
    /// Unsorted leads.
    #[serde(default, deserialize_with = "crate::de::opt_i64")]
    pub total: Option<i64>,
    /// Accepted.
    #[serde(default, deserialize_with = "crate::de::opt_i64")]
    pub accepted: Option<i64>,
    /// Declined.
    #[serde(default, deserialize_with = "crate::de::opt_i64")]
    pub declined: Option<i64>,
    /// Average time until sorted (seconds).
    #[serde(default, deserialize_with = "crate::de::opt_i64")]
    pub average_sort_time: Option<i64>,
    /// Counts per category, as sent.
    #[serde(default)]
    pub categories: serde_json::Value,
}

/// Unsorted operations: `client.unsorted()`.
#[derive(Debug, Clone, Copy)]
pub struct UnsortedLeads<'a> {
    pub(crate) client: &'a Client,
}

const PATH: &str = "/api/v4/leads/unsorted";

fn body_with_request_ids<T: Serialize>(items: &[T]) -> Result<Vec<serde_json::Value>, Error> {
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let mut v = serde_json::to_value(item).map_err(|e| Error::InvalidRequest(e.to_string()))?;
            if let Some(o) = v.as_object_mut()
                && o.get("request_id").is_none_or(serde_json::Value::is_null)
            {
                o.insert("request_id".into(), i.to_string().into());
            }
            Ok(v)
        })
        .collect()
}

impl UnsortedLeads<'_> {
    /// One page of unsorted leads (`GET /api/v4/leads/unsorted`; filters `filter[uid]`, `filter[category]`,
    /// `filter[pipeline_id]`; 204 = empty page).
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn list(&self, params: &ListParams, page: u32) -> Result<ListPage<Unsorted>, Error> {
        self.client.list_page(PATH, "unsorted", params, page).await
    }

    /// Every unsorted lead matching `params`, lazily.
    pub fn stream(&self, params: ListParams) -> BoxStream<'static, Result<Unsorted, Error>> {
        self.client.stream_list(PATH.to_owned(), "unsorted", params)
    }

    /// `GET /api/v4/leads/unsorted/summary` with the list's filters (`filter[created_at][from]`, `filter[pipeline_id]`...).
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn summary(&self, params: &ListParams) -> Result<UnsortedSummary, Error> {
        let mut req = Request::get(format!("{PATH}/summary"));
        for (k, v) in params.pairs() {
            req = req.query(k, v);
        }
        self.client.send_json(req).await
    }

    /// `GET /api/v4/leads/unsorted/{uid}`.
    ///
    /// # Errors
    /// See [`Error`]; [`Error::is_not_found`] for an unknown uid.
    pub async fn get(&self, uid: &UnsortedUid) -> Result<Unsorted, Error> {
        self.client.get_one(Request::get(format!("{PATH}/{uid}"))).await
    }

    async fn create<M: Serialize>(
        &self,
        category: &str,
        items: &[NewUnsorted<M>],
    ) -> Result<Vec<UnsortedCreated>, Error> {
        let req = Request::post(format!("{PATH}/{category}"))
            .json(&body_with_request_ids(items)?)
            .map_err(|e| Error::InvalidRequest(e.to_string()))?;
        let resp = self.client.send(req).await?;
        Ok(crate::hal::decode_list(&resp, "unsorted", 1)?.items)
    }

    /// `POST /api/v4/leads/unsorted/forms`: form submissions, each with its lead and contacts.
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn create_forms(&self, items: &[NewUnsortedForm]) -> Result<Vec<UnsortedCreated>, Error> {
        self.create("forms", items).await
    }

    /// `POST /api/v4/leads/unsorted/sip`: calls, each with its lead and contacts.
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn create_sip(&self, items: &[NewUnsortedSip]) -> Result<Vec<UnsortedCreated>, Error> {
        self.create("sip", items).await
    }

    /// `POST /api/v4/leads/unsorted/{uid}/accept` `{user_id?, status_id?}`: the lead goes into the pipeline (to
    /// `status` when given).
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn accept(
        &self,
        uid: &UnsortedUid,
        user: Option<UserId>,
        status: Option<StatusId>,
    ) -> Result<UnsortedOutcome, Error> {
        let mut body = serde_json::Map::new();
        if let Some(u) = user {
            body.insert("user_id".into(), u.get().into());
        }
        if let Some(s) = status {
            body.insert("status_id".into(), s.get().into());
        }
        let req = Request::post(format!("{PATH}/{uid}/accept"))
            .json(&body)
            .map_err(|e| Error::InvalidRequest(e.to_string()))?;
        self.client.send_json(req).await
    }

    /// `DELETE /api/v4/leads/unsorted/{uid}/decline` `{user_id?}`.
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn decline(&self, uid: &UnsortedUid, user: Option<UserId>) -> Result<UnsortedOutcome, Error> {
        let mut body = serde_json::Map::new();
        if let Some(u) = user {
            body.insert("user_id".into(), u.get().into());
        }
        let req = Request::delete(format!("{PATH}/{uid}/decline"))
            .json(&body)
            .map_err(|e| Error::InvalidRequest(e.to_string()))?;
        self.client.send_json(req).await
    }

    /// `POST /api/v4/leads/unsorted/{uid}/link` `{user_id?, link: {entity_id, entity_type}}`: attaches a chat or
    /// mail unsorted lead to an existing lead (Kommo allows it for chats and mail only). Body shape **unverified**.
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn link(
        &self,
        uid: &UnsortedUid,
        user: Option<UserId>,
        to: crate::LeadId,
    ) -> Result<UnsortedOutcome, Error> {
        let mut body = serde_json::json!({ "link": { "entity_id": to.get(), "entity_type": EntityType::Leads } });
        if let Some(u) = user {
            body["user_id"] = u.get().into();
        }
        let req = Request::post(format!("{PATH}/{uid}/link"))
            .json(&body)
            .map_err(|e| Error::InvalidRequest(e.to_string()))?;
        self.client.send_json(req).await
    }
}
