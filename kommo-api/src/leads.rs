//! Leads (deals): `GET/POST/PATCH /api/v4/leads`, `GET/PATCH /api/v4/leads/{id}`, `POST /api/v4/leads/complex`.

use api_core::Request;
use serde::{Deserialize, Serialize};

pub use crate::entity::Updated;

use crate::{
    CompanyId, ContactId, Error, LeadId, LossReasonId, PipelineId, StatusId,
    common::{IdRef, Tag, TagRef},
    entity::{Expandable, Service, entity, read_model, write_setters, write_types},
};

read_model! {
    /// A lead as read.
    Lead with custom fields {
        /// Id.
        pub id: LeadId,
        /// Name.
        #[serde(default)]
        pub name: String,
        /// Sale value (numeric strings and floats tolerated).
        #[serde(default, deserialize_with = "crate::de::opt_i64")]
        pub price: Option<i64>,
        /// Status (stage); see [`StatusId::WON`] / [`StatusId::LOST`].
        #[serde(default)]
        pub status_id: Option<StatusId>,
        /// Pipeline.
        #[serde(default)]
        pub pipeline_id: Option<PipelineId>,
        /// Loss reason.
        #[serde(default)]
        pub loss_reason_id: Option<LossReasonId>,
        /// Closed (Unix seconds).
        #[serde(default, deserialize_with = "crate::de::opt_i64")]
        pub closed_at: Option<i64>,
        /// Nearest task due (Unix seconds).
        #[serde(default, deserialize_with = "crate::de::opt_i64")]
        pub closest_task_at: Option<i64>,
        /// Score.
        #[serde(default, deserialize_with = "crate::de::opt_i64")]
        pub score: Option<i64>,
        /// Seconds spent on the deal.
        #[serde(default, deserialize_with = "crate::de::opt_i64")]
        pub labor_cost: Option<i64>,
        /// `_embedded`: tags, contacts (with=contacts), companies...
        #[serde(default, rename = "_embedded", deserialize_with = "crate::de::object_or_default")]
        pub embedded: LeadEmbedded,
    }
}

impl Lead {
    crate::ids::closed_status_helpers!();

    /// The main contact (`is_main`), or the first one (needs `with=contacts`).
    #[must_use]
    pub fn main_contact(&self) -> Option<ContactId> {
        let c = &self.embedded.contacts;
        c.iter().find(|c| c.is_main).or_else(|| c.first()).map(|c| c.id)
    }
}

/// A contact reference inside a lead.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeadContactRef {
    /// Contact id.
    pub id: ContactId,
    /// Whether it is the lead's main contact.
    #[serde(default, deserialize_with = "crate::de::lenient_bool")]
    pub is_main: bool,
}

/// A company reference inside a lead.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompanyRef {
    /// Company id.
    pub id: CompanyId,
}

/// A lead's `_embedded`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LeadEmbedded {
    /// Tags.
    #[serde(default, deserialize_with = "crate::de::null_as_empty")]
    pub tags: Vec<Tag>,
    /// Contacts (with=contacts).
    #[serde(default, deserialize_with = "crate::de::null_as_empty")]
    pub contacts: Vec<LeadContactRef>,
    /// Companies.
    #[serde(default, deserialize_with = "crate::de::null_as_empty")]
    pub companies: Vec<CompanyRef>,
    /// Other members (`loss_reason`, `catalog_elements`, `source`).
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// `_embedded` of a lead write.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LeadEmbeddedWrite {
    /// Tags (replaces the tag list).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<TagRef>,
    /// Contacts to link.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub contacts: Vec<IdRef>,
    /// Companies to link.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub companies: Vec<IdRef>,
}

impl crate::entity::EmbeddedWrite for LeadEmbeddedWrite {
    fn is_empty(&self) -> bool {
        self.tags.is_empty() && self.contacts.is_empty() && self.companies.is_empty()
    }
}

write_types! {
    /// A lead to create. Only writable members; set what you need.
    #[derive(Default)]
    new NewLead {}
    /// Changes to a lead. Only the members set are sent.
    update LeadUpdate(LeadId) {
        /// Loss reason.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub loss_reason_id: Option<LossReasonId>,
    }
    both {
        /// Name.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub name: Option<String>,
        /// Sale value.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub price: Option<i64>,
        /// Status (on create: defaults to the pipeline's first stage).
        #[serde(skip_serializing_if = "Option::is_none")]
        pub status_id: Option<StatusId>,
        /// Pipeline (on create: defaults to the main pipeline).
        #[serde(skip_serializing_if = "Option::is_none")]
        pub pipeline_id: Option<PipelineId>,
    }
    with custom fields, embedded: LeadEmbeddedWrite,
    setters [field, tag, price, stage, contact, company]
}

write_setters!(LeadUpdate { name });

impl NewLead {
    /// A lead named `name`.
    pub fn new(name: impl Into<String>) -> Self {
        Self { name: Some(name.into()), ..Self::default() }
    }
}

impl LeadUpdate {
    /// Moves the lead to a status in its current pipeline.
    pub fn status(mut self, status: StatusId) -> Self {
        self.status_id = Some(status);
        self
    }

    /// Closes the lead as lost (status 143) with a loss reason.
    pub fn lost(mut self, reason: Option<LossReasonId>) -> Self {
        self.status_id = Some(StatusId::LOST);
        self.loss_reason_id = reason;
        self
    }
}

/// A lead for `POST /api/v4/leads/complex`, with one new contact and/or company embedded.
///
/// It is sent with **one** `_embedded` object: the lead's own tags and linked contacts/companies
/// ([`NewLead::embedded`]) merged with [`ComplexLead::embedded`] (tags: the lead's first; contacts and companies:
/// the new ones first, then the linked ids). Kommo's PHP backend keeps only the last of two `_embedded` keys, so
/// writing both would silently drop tags or the new contact/company.
#[derive(Debug, Clone, Default, PartialEq)]
#[must_use]
pub struct ComplexLead {
    /// The lead's members.
    pub lead: NewLead,
    /// A new contact / company to create with it (as JSON objects in Kommo's write shape).
    pub embedded: ComplexEmbedded,
}

impl Serialize for ComplexLead {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::Error as _;
        let mut lead = match serde_json::to_value(&self.lead).map_err(S::Error::custom)? {
            serde_json::Value::Object(m) => m,
            other => return Err(S::Error::custom(format!("a lead serialises to an object, got {other}"))),
        };
        let mut embedded = match lead.remove("_embedded") {
            Some(serde_json::Value::Object(m)) => m,
            _ => serde_json::Map::new(),
        };
        let extra = match serde_json::to_value(&self.embedded).map_err(S::Error::custom)? {
            serde_json::Value::Object(m) => m,
            _ => serde_json::Map::new(),
        };
        for (key, value) in extra {
            let serde_json::Value::Array(mut items) = value else { continue };
            match embedded.remove(&key) {
                // tags: the lead's own first; contacts/companies: the new entities first (Kommo creates the
                // first one), then the lead's linked ids
                Some(serde_json::Value::Array(mine)) if key == "tags" => {
                    let mut merged = mine;
                    merged.append(&mut items);
                    items = merged;
                }
                Some(serde_json::Value::Array(mut mine)) => items.append(&mut mine),
                _ => {}
            }
            embedded.insert(key, serde_json::Value::Array(items));
        }
        if !embedded.is_empty() {
            lead.insert("_embedded".into(), serde_json::Value::Object(embedded));
        }
        lead.serialize(serializer)
    }
}

/// `_embedded` of a complex lead.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ComplexEmbedded {
    /// Contacts (at most one is used).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub contacts: Vec<crate::contacts::NewContact>,
    /// Companies (at most one is used).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub companies: Vec<crate::companies::NewCompany>,
    /// Tags.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<TagRef>,
}

/// One result of `leads/complex`: `{id, contact_id, company_id, request_id, merged}`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ComplexResult {
    /// Lead id.
    pub id: LeadId,
    /// Created (or merged) contact.
    #[serde(default)]
    pub contact_id: Option<ContactId>,
    /// Created (or merged) company.
    #[serde(default)]
    pub company_id: Option<CompanyId>,
    /// Echoed request ids.
    #[serde(default)]
    pub request_id: Vec<String>,
    /// Whether duplicate control merged it into an existing entity.
    #[serde(default, deserialize_with = "crate::de::lenient_bool")]
    pub merged: bool,
}

/// Lead operations: `client.leads()` (the shared [`Service`] plus [`Leads::create_complex`]).
pub type Leads<'a> = Service<'a, Lead>;

entity!(Lead, id: LeadId, new: NewLead, update: LeadUpdate, path: "/api/v4/leads", key: "leads", name: "lead");
impl Expandable for Lead {}

impl Leads<'_> {
    /// `POST /api/v4/leads/complex` (at most 50 leads per call, each with one new contact and company).
    ///
    /// # Errors
    /// [`Error::InvalidRequest`] over 50 leads; see [`Error`].
    pub async fn create_complex(&self, leads: &[ComplexLead]) -> Result<Vec<ComplexResult>, Error> {
        if leads.len() > crate::common::BATCH_SIZE {
            return Err(Error::InvalidRequest(format!("leads/complex takes at most 50 leads, got {}", leads.len())));
        }
        let req =
            Request::post("/api/v4/leads/complex").json(leads).map_err(|e| Error::InvalidRequest(e.to_string()))?;
        self.client.send_json(req).await
    }
}
