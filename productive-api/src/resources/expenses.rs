//! Expenses (`/expenses`): additional costs on a service of a budget or deal. Create, get, update, delete, list one
//! page, stream every expense.
//!
//! Sources: developer.productive.io/expenses.html (P-old: "An expense always belongs to a service which in turn
//! always belongs to a budget or deal"; filters `service_id`, `person_id`, `project_id`, `date_after`,
//! `date_before`, `status` (1 paid, 2 unpaid), `approval_status`, …); withone "Create an Expense" (attributes
//! `name`, `amount` (`"10000.0"`, a decimal string), `billable_amount`, `currency`, `date`; relationships `service`
//! (type `services`) and `person` (type `people`)); api-notes productive.md §4 Services (expenses only on services
//! with unit Piece); community OpenAPI `/expenses`, `/expenses/{id}`.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{
    Client, Error,
    jsonapi::{Document, Query, Resource, WriteDocument},
    types::{Amount, ExpenseId, PersonId, ResourceType, ServiceId, rel_id},
};

/// An expense's attributes (unknown attributes kept in `extra`). Money as sent ([`Amount`]).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ExpenseAttributes {
    /// Name.
    #[serde(deserialize_with = "crate::types::null_as_default")]
    pub name: String,
    /// Date.
    pub date: Option<NaiveDate>,
    /// Amount.
    pub amount: Option<Amount>,
    /// Billable amount.
    pub billable_amount: Option<Amount>,
    /// Currency.
    pub currency: Option<String>,
    /// Pay on.
    pub pay_on: Option<NaiveDate>,
    /// Paid on.
    pub paid_on: Option<NaiveDate>,
    /// Whether reimbursable.
    pub reimbursable: Option<bool>,
    /// When approved.
    pub approved_at: Option<String>,
    /// Whether invoiced.
    pub invoiced: Option<bool>,
    /// Creation time.
    pub created_at: Option<String>,
    /// Custom fields by id.
    pub custom_fields: Option<Value>,
    /// Unknown attributes.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ResourceType for ExpenseAttributes {
    const TYPE: &'static str = "expenses";
    type Id = ExpenseId;
}

/// An expense resource.
pub type Expense = Resource<ExpenseAttributes>;

impl Resource<ExpenseAttributes> {
    /// The `service` relationship id.
    #[must_use]
    pub fn service_id(&self) -> Option<ServiceId> {
        rel_id(self, "service")
    }

    /// The `person` relationship id.
    #[must_use]
    pub fn person_id(&self) -> Option<PersonId> {
        rel_id(self, "person")
    }
}

/// `POST /expenses`: `name`, `date`, `amount`, `currency` (+ `billable_amount`), relationships `service` and
/// optionally `person`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NewExpense {
    /// Name.
    pub name: String,
    /// Date.
    pub date: NaiveDate,
    /// Amount (sent as a decimal string, like the documented `"10000.0"`).
    pub amount: Amount,
    /// Billable amount.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub billable_amount: Option<Amount>,
    /// Currency (`EUR`).
    pub currency: String,
    /// The service (budget line item) it is spent on.
    #[serde(skip)]
    pub service_id: ServiceId,
    /// The person it is assigned to.
    #[serde(skip)]
    pub person_id: Option<PersonId>,
    /// Any other attributes, sent as given.
    #[serde(skip)]
    pub extra: Map<String, Value>,
}

impl NewExpense {
    /// An expense of `amount` `currency` on `service`.
    #[must_use]
    pub fn new(
        name: impl Into<String>,
        service: ServiceId,
        date: NaiveDate,
        amount: impl Into<Amount>,
        currency: impl Into<String>,
    ) -> Self {
        Self {
            name: name.into(),
            date,
            amount: amount.into(),
            billable_amount: None,
            currency: currency.into(),
            service_id: service,
            person_id: None,
            extra: Map::new(),
        }
    }

    /// The JSON:API body.
    ///
    /// # Errors
    /// Serialization failure.
    pub fn to_document(&self) -> Result<WriteDocument, Error> {
        let doc = WriteDocument::create(ExpenseAttributes::TYPE)
            .attributes(self)?
            .relate("service", "services", &self.service_id)
            .relate_opt("person", "people", self.person_id.as_ref());
        Ok(super::merge_extra(doc, &self.extra))
    }
}

super::collection!(
    list_expenses,
    stream_expenses,
    "/expenses",
    ExpenseAttributes,
    "expenses",
    "Filters: `service_id`, `person_id`, `project_id`, `date_after`/`date_before`, `status` (1 paid, 2 unpaid), `approval_status`, … (developer.productive.io/expenses.html)."
);

impl Client {
    /// `GET /expenses/{id}`.
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn get_expense(&self, id: &ExpenseId, query: &Query) -> Result<Document<Expense>, Error> {
        self.get_resource(&format!("/expenses/{id}"), query).await
    }

    /// `POST /expenses`.
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn create_expense(&self, expense: &NewExpense) -> Result<Expense, Error> {
        Ok(self.post_document("/expenses", &expense.to_document()?).await?.data)
    }

    /// `PATCH /expenses/{id}` with the given attributes.
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn update_expense(&self, id: &ExpenseId, attributes: &Map<String, Value>) -> Result<Expense, Error> {
        let doc = super::merge_extra(WriteDocument::update(ExpenseAttributes::TYPE, id), attributes);
        Ok(self.patch_document(&format!("/expenses/{id}"), &doc).await?.data)
    }

    /// `DELETE /expenses/{id}`.
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn delete_expense(&self, id: &ExpenseId) -> Result<(), Error> {
        self.delete_path(&format!("/expenses/{id}")).await
    }
}
