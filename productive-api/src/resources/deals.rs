//! Deals and budgets (`/deals`): one resource; `budget: true` on create makes a budget, absent or `false` a deal
//! (P-old deals.html). `filter[type]` is 1 for deals, 2 for budgets.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{
    Client, Error,
    jsonapi::{Document, Query, Resource, WriteDocument},
    types::{Amount, CompanyId, DealId, DealStatusId, DealType, PersonId, ProjectId, ResourceType, rel_id},
};

/// A deal's or budget's attributes (unknown attributes kept in `extra`; money fields as [`Amount`]).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct DealAttributes {
    /// Name.
    #[serde(deserialize_with = "crate::types::null_as_default")]
    pub name: String,
    /// Number, as sent.
    pub number: Option<Value>,
    /// `true` for a budget.
    pub budget: Option<bool>,
    /// Start date.
    pub date: Option<NaiveDate>,
    /// End date.
    pub end_date: Option<NaiveDate>,
    /// Currency (`EUR`).
    pub currency: Option<String>,
    /// 1 internal, 2 client.
    pub deal_type_id: Option<DealType>,
    /// Win probability (percent).
    pub probability: Option<u32>,
    /// Total budget amount across services (budget currency).
    pub budget_total: Option<Amount>,
    /// Budget used.
    pub budget_used: Option<Amount>,
    /// When delivered.
    pub delivered_on: Option<NaiveDate>,
    /// When closed.
    pub closed_at: Option<String>,
    /// Purchase order number.
    pub purchase_order_number: Option<String>,
    /// Note.
    pub note: Option<String>,
    /// Custom fields.
    pub custom_fields: Option<Value>,
    /// Creation time.
    pub created_at: Option<String>,
    /// Unknown attributes.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ResourceType for DealAttributes {
    const TYPE: &'static str = "deals";
    type Id = DealId;
}

/// A deal or budget resource.
pub type Deal = Resource<DealAttributes>;

impl Resource<DealAttributes> {
    /// Whether this is a budget (`budget: true`).
    #[must_use]
    pub fn is_budget(&self) -> bool {
        self.attributes.budget == Some(true)
    }

    /// The `company` relationship id.
    #[must_use]
    pub fn company_id(&self) -> Option<CompanyId> {
        rel_id(self, "company")
    }

    /// The `project` relationship id.
    #[must_use]
    pub fn project_id(&self) -> Option<ProjectId> {
        rel_id(self, "project")
    }
}

/// Deal or budget, for `filter[type]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DealKind {
    /// `filter[type]=1`.
    Deal,
    /// `filter[type]=2`.
    Budget,
}

/// `POST /deals`. Attributes for values, relationships for `company`, `project`, `responsible`, `deal_status`.
///
/// Per withone's copy of the docs (api-notes/productive.md §4 "Deals and budgets") a create needs name, date,
/// responsible, company, `deal_type_id`, probability, currency and a deal status (**unverified** as enforced).
/// The constructors default what has a sensible default: `date` = today (UTC), `deal_type_id` = client, and for a
/// budget `probability` = 100 (a budget is sold work). [`NewDeal::validate`] (run by [`Client::create_deal`])
/// rejects a create without name, date, currency, responsible, company, `deal_type_id` or probability before
/// anything is sent. The deal status is an account-specific id with no default: it is sent when set, and
/// otherwise left to Productive (the pipeline's first status, as the web app does: **unverified**).
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct NewDeal {
    /// Name.
    pub name: String,
    /// `true` for a budget.
    pub budget: bool,
    /// Start date.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub date: Option<NaiveDate>,
    /// End date.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_date: Option<NaiveDate>,
    /// Currency.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    /// 1 internal, 2 client.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deal_type_id: Option<DealType>,
    /// Probability (percent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub probability: Option<u32>,
    /// Purchase order number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub purchase_order_number: Option<String>,
    /// Note.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Custom fields.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub custom_fields: Option<Value>,
    /// The client company (relationship `company`).
    #[serde(skip)]
    pub company_id: Option<CompanyId>,
    /// The project (relationship `project`).
    #[serde(skip)]
    pub project_id: Option<ProjectId>,
    /// The responsible person (relationship `responsible`).
    #[serde(skip)]
    pub responsible_id: Option<PersonId>,
    /// The deal status (relationship `deal_status`).
    #[serde(skip)]
    pub deal_status_id: Option<DealStatusId>,
    /// Any other attributes, sent as given.
    #[serde(skip)]
    pub extra: Map<String, Value>,
}

impl NewDeal {
    /// A client budget for `company` on `project`, dated today (UTC), probability 100. Set
    /// [`currency`](Self::currency) and [`responsible`](Self::responsible) before creating it.
    #[must_use]
    pub fn budget(name: impl Into<String>, company: CompanyId, project: ProjectId) -> Self {
        Self {
            name: name.into(),
            budget: true,
            date: Some(chrono::Utc::now().date_naive()),
            deal_type_id: Some(DealType::Client),
            probability: Some(100),
            company_id: Some(company),
            project_id: Some(project),
            ..Self::default()
        }
    }

    /// A client deal for `company`, dated today (UTC). Set [`currency`](Self::currency),
    /// [`responsible`](Self::responsible) and [`probability`](Self::probability) before creating it.
    #[must_use]
    pub fn deal(name: impl Into<String>, company: CompanyId) -> Self {
        Self {
            name: name.into(),
            date: Some(chrono::Utc::now().date_naive()),
            deal_type_id: Some(DealType::Client),
            company_id: Some(company),
            ..Self::default()
        }
    }

    /// Sets the currency (`EUR`).
    #[must_use]
    pub fn currency(mut self, currency: impl Into<String>) -> Self {
        self.currency = Some(currency.into());
        self
    }

    /// Sets the responsible person.
    #[must_use]
    pub fn responsible(mut self, person: PersonId) -> Self {
        self.responsible_id = Some(person);
        self
    }

    /// Sets the win probability (percent).
    #[must_use]
    pub fn probability(mut self, percent: u32) -> Self {
        self.probability = Some(percent);
        self
    }

    /// Sets the start date.
    #[must_use]
    pub fn date(mut self, date: NaiveDate) -> Self {
        self.date = Some(date);
        self
    }

    /// Sets the deal status.
    #[must_use]
    pub fn deal_status(mut self, status: DealStatusId) -> Self {
        self.deal_status_id = Some(status);
        self
    }

    /// Checks the attributes the docs list as required on create (see [`NewDeal`]); a value given in `extra`
    /// (`"currency"`, `"responsible_id"`, …) counts.
    ///
    /// # Errors
    /// [`Error::InvalidRequest`] naming every missing one.
    pub fn validate(&self) -> Result<(), Error> {
        let has = |k: &str| self.extra.get(k).is_some_and(|v| !v.is_null());
        let mut missing = Vec::new();
        if self.name.trim().is_empty() && !has("name") {
            missing.push("name");
        }
        for (set, name) in [
            (self.date.is_some(), "date"),
            (self.currency.as_deref().is_some_and(|c| !c.is_empty()), "currency"),
            (self.deal_type_id.is_some(), "deal_type_id"),
            (self.probability.is_some(), "probability"),
            (self.company_id.is_some(), "company_id"),
            (self.responsible_id.is_some(), "responsible_id"),
        ] {
            if !set && !has(name) {
                missing.push(name);
            }
        }
        if missing.is_empty() {
            Ok(())
        } else {
            Err(Error::InvalidRequest(format!("deal/budget create is missing required {}", missing.join(", "))))
        }
    }

    /// The JSON:API body. `budget` is sent only when `true` (absent makes a deal).
    ///
    /// # Errors
    /// Serialization failure.
    pub fn to_document(&self) -> Result<WriteDocument, Error> {
        let mut doc = WriteDocument::create(DealAttributes::TYPE).attributes(self)?;
        if !self.budget {
            doc.data.attributes.remove("budget");
        }
        let doc = doc
            .relate_opt("company", "companies", self.company_id.as_ref())
            .relate_opt("project", "projects", self.project_id.as_ref())
            .relate_opt("responsible", "people", self.responsible_id.as_ref())
            .relate_opt("deal_status", "deal_statuses", self.deal_status_id.as_ref());
        Ok(super::merge_extra(doc, &self.extra))
    }
}

super::collection!(
    list_deals,
    stream_deals,
    "/deals",
    DealAttributes,
    "deals and budgets",
    "Filters: `type` (1 deal, 2 budget), `project_id`, `company_id`, `stage_status_id`, `budget_status`, … (api-notes productive.md §4 Deals and budgets)."
);

impl Client {
    /// `GET /deals/{id}`.
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn get_deal(&self, id: &DealId, query: &Query) -> Result<Document<Deal>, Error> {
        self.get_resource(&format!("/deals/{id}"), query).await
    }

    /// Deals or budgets of a project (`filter[project_id]`, `filter[type]`), all pages.
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn deals_of_project(&self, project: &ProjectId, kind: Option<DealKind>) -> Result<Vec<Deal>, Error> {
        let mut q = Query::new().filter("project_id", project);
        if let Some(k) = kind {
            q = q.filter("type", if k == DealKind::Deal { 1 } else { 2 });
        }
        self.all("/deals", q).await
    }

    /// `POST /deals` (a budget when `deal.budget`).
    ///
    /// # Errors
    /// [`Error::InvalidRequest`] when a required attribute is missing ([`NewDeal::validate`]); otherwise see [`Error`].
    pub async fn create_deal(&self, deal: &NewDeal) -> Result<Deal, Error> {
        deal.validate()?;
        Ok(self.post_document("/deals", &deal.to_document()?).await?.data)
    }

    /// `POST /deals` with `budget: true`.
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn create_budget(&self, budget: &NewDeal) -> Result<Deal, Error> {
        let mut b = budget.clone();
        b.budget = true;
        self.create_deal(&b).await
    }

    /// `DELETE /deals/{id}` (api-notes productive.md §4 Deals: `GET|PATCH|DELETE /deals/{id}`; 204).
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn delete_deal(&self, id: &DealId) -> Result<(), Error> {
        self.delete_path(&format!("/deals/{id}")).await
    }

    /// `PATCH /deals/{id}/close`: closes (delivers) a budget or deal. With `delivered_on`, the body is the one
    /// P-old faq.html documents for delivering a budget (`{"data":{"type":"deals","attributes":{"delivered_on":
    /// "2024-03-14"}}}`, plus the deal's `id`); without it, the deal's identity only.
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn close_deal(&self, id: &DealId, delivered_on: Option<NaiveDate>) -> Result<Deal, Error> {
        let mut attrs = Map::new();
        if let Some(d) = delivered_on {
            attrs.insert("delivered_on".into(), Value::String(d.to_string()));
        }
        Ok(self.patch_action(DealAttributes::TYPE, id, "close", &attrs).await?.data)
    }

    /// `PATCH /deals/{id}/open`: reopens a closed budget or deal (api-notes productive.md §4 Deals, from the
    /// generated reference).
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn reopen_deal(&self, id: &DealId) -> Result<Deal, Error> {
        Ok(self.patch_action(DealAttributes::TYPE, id, "open", &Map::new()).await?.data)
    }

    /// `PATCH /deals/{id}` with the given attributes.
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn update_deal(&self, id: &DealId, attributes: &Map<String, Value>) -> Result<Deal, Error> {
        let doc = super::merge_extra(WriteDocument::update(DealAttributes::TYPE, id), attributes);
        Ok(self.patch_document(&format!("/deals/{id}"), &doc).await?.data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_and_deal_bodies() {
        let b = NewDeal::budget("Onboarding", "7".into(), "9".into())
            .currency("EUR")
            .responsible("3".into())
            .date(NaiveDate::from_ymd_opt(2026, 3, 14).unwrap());
        b.validate().unwrap();
        assert_eq!(
            serde_json::to_value(b.to_document().unwrap()).unwrap(),
            serde_json::json!({"data": {"type": "deals",
                "attributes": {"name": "Onboarding", "budget": true, "date": "2026-03-14", "currency": "EUR",
                               "deal_type_id": 2, "probability": 100},
                "relationships": {"company": {"data": {"type": "companies", "id": "7"}},
                                  "project": {"data": {"type": "projects", "id": "9"}},
                                  "responsible": {"data": {"type": "people", "id": "3"}}}}})
        );
        let d = NewDeal::deal("Lead", "7".into());
        let v = serde_json::to_value(d.to_document().unwrap()).unwrap();
        assert!(v["data"]["attributes"].get("budget").is_none(), "a deal omits `budget`");
        assert!(v["data"]["attributes"]["date"].is_string(), "dated today by default");
    }

    /// The notes' required-on-create list (api-notes/productive.md §4 Deals and budgets, from withone's copy of the
    /// docs): name, date, responsible, company, `deal_type_id`, probability, currency (+ deal status, no default).
    #[test]
    fn a_create_without_a_required_attribute_is_rejected_before_sending() {
        let e = NewDeal::deal("Lead", "7".into()).validate().unwrap_err();
        assert!(matches!(&e, Error::InvalidRequest(m) if m.ends_with("currency, probability, responsible_id")), "{e}");
        let e = NewDeal::budget("B", "7".into(), "9".into()).currency("EUR").validate().unwrap_err();
        assert!(matches!(&e, Error::InvalidRequest(m) if m.ends_with("required responsible_id")), "{e}");
        let mut by_extra = NewDeal::budget("B", "7".into(), "9".into()).currency("EUR");
        by_extra.extra.insert("responsible_id".into(), Value::from(3));
        by_extra.validate().unwrap();
        NewDeal::deal("Lead", "7".into()).currency("EUR").responsible("3".into()).probability(20).validate().unwrap();
    }
}
