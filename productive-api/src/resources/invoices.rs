//! Invoices (`/invoices`) and their line items (`/line_items`): read access (get, list one page, stream).
//!
//! Sources: community OpenAPI `/invoices` (filters `company_id`, `deal_id`, `project_id`, `number`,
//! `invoice_status`, `payment_status`, `invoiced_on`, `status` (0 unsent, 1 paid, 2 overdue, 3 not overdue, …), …),
//! `/invoices/{id}`, `/line_items` (filters `invoice_id`, `service_id`, `expense_id`, …), `/line_items/{id}`.
//! The attribute names below are those of Productive's invoice filters and sort keys (`number`, `invoiced_on`,
//! `pay_on`, `sent_on`, `paid_on`, `currency`, `amount`, `amount_tax`, `amount_with_tax`, `amount_paid`,
//! `amount_unpaid`) and of the line item filters (`description`, `quantity`, `unit_price`, `discount`, `tax_name`,
//! `tax_value`); no sample response body was found, so the shapes are **unverified** (every field optional,
//! unknown ones kept in `extra`).
//!
//! Creating and finalizing invoices (`POST /invoices`, `/invoices/{id}/finalize`, `/send`,
//! `POST /line_items/generate`) needs account-specific document types, subsidiaries and tax rates; it is not
//! typed here (use [`Client::post_document`] or [`Client::send`]).

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{
    Client, Error,
    jsonapi::{Document, Query, Resource},
    types::{Amount, CompanyId, InvoiceId, LineItemId, ResourceType, ServiceId, rel_id},
};

/// An invoice's attributes (**unverified** names, see the module docs; unknown attributes kept in `extra`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct InvoiceAttributes {
    /// Invoice number.
    pub number: Option<String>,
    /// Subject.
    pub subject: Option<String>,
    /// Invoice date.
    pub invoiced_on: Option<NaiveDate>,
    /// Due date.
    pub pay_on: Option<NaiveDate>,
    /// When sent.
    pub sent_on: Option<NaiveDate>,
    /// When paid.
    pub paid_on: Option<NaiveDate>,
    /// Currency.
    pub currency: Option<String>,
    /// Amount without tax.
    pub amount: Option<Amount>,
    /// Tax.
    pub amount_tax: Option<Amount>,
    /// Amount with tax.
    pub amount_with_tax: Option<Amount>,
    /// Paid so far.
    pub amount_paid: Option<Amount>,
    /// Still unpaid.
    pub amount_unpaid: Option<Amount>,
    /// Creation time.
    pub created_at: Option<String>,
    /// Unknown attributes.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ResourceType for InvoiceAttributes {
    const TYPE: &'static str = "invoices";
    type Id = InvoiceId;
}

/// An invoice resource.
pub type Invoice = Resource<InvoiceAttributes>;

impl Resource<InvoiceAttributes> {
    /// The `company` relationship id.
    #[must_use]
    pub fn company_id(&self) -> Option<CompanyId> {
        rel_id(self, "company")
    }
}

/// A line item's attributes (**unverified** names, see the module docs).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct LineItemAttributes {
    /// Description.
    pub description: Option<String>,
    /// Quantity, as sent.
    pub quantity: Option<Amount>,
    /// Unit price.
    pub unit_price: Option<Amount>,
    /// Discount, as sent.
    pub discount: Option<Amount>,
    /// Tax name.
    pub tax_name: Option<String>,
    /// Tax value, as sent.
    pub tax_value: Option<Amount>,
    /// Amount.
    pub amount: Option<Amount>,
    /// Unit (`unit_id`, as in services: 1 hour, 2 piece, 3 day).
    pub unit_id: Option<crate::types::ServiceUnit>,
    /// Unknown attributes.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ResourceType for LineItemAttributes {
    const TYPE: &'static str = "line_items";
    type Id = LineItemId;
}

/// A line item resource.
pub type LineItem = Resource<LineItemAttributes>;

impl Resource<LineItemAttributes> {
    /// The `invoice` relationship id.
    #[must_use]
    pub fn invoice_id(&self) -> Option<InvoiceId> {
        rel_id(self, "invoice")
    }

    /// The `service` relationship id.
    #[must_use]
    pub fn service_id(&self) -> Option<ServiceId> {
        rel_id(self, "service")
    }
}

super::collection!(
    list_invoices,
    stream_invoices,
    "/invoices",
    InvoiceAttributes,
    "invoices",
    "Filters: `company_id`, `deal_id`, `project_id`, `number`, `invoice_status`, `payment_status`, `invoiced_on`, … (community OpenAPI `/invoices`)."
);
super::collection!(
    list_line_items,
    stream_line_items,
    "/line_items",
    LineItemAttributes,
    "invoice line items",
    "Filters: `invoice_id`, `service_id`, `expense_id`, … (community OpenAPI `/line_items`)."
);

impl Client {
    /// `GET /invoices/{id}` (e.g. with `include=line_items`).
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn get_invoice(&self, id: &InvoiceId, query: &Query) -> Result<Document<Invoice>, Error> {
        self.get_resource(&format!("/invoices/{id}"), query).await
    }

    /// `GET /line_items/{id}`.
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn get_line_item(&self, id: &LineItemId) -> Result<Document<LineItem>, Error> {
        self.get_resource(&format!("/line_items/{id}"), &Query::new()).await
    }

    /// Every line item of an invoice (`GET /line_items?filter[invoice_id]=…`, all pages), collected.
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn line_items_of_invoice(&self, invoice: &InvoiceId) -> Result<Vec<LineItem>, Error> {
        self.all("/line_items", Query::new().filter("invoice_id", invoice)).await
    }
}
