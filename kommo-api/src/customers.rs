//! Customers (`GET/POST/PATCH /api/v4/customers[/{id}]`, the shared entity service), their transactions
//! (`GET/POST /api/v4/customers/{id}/transactions`, `DELETE .../{transaction_id}`, `GET /api/v4/customers/transactions`)
//! and segments (`GET/POST /api/v4/customers/segments`, `DELETE /api/v4/customers/segments/{id}`).
//!
//! Shapes: `../shared/openapi/kommo-community.yaml` (community-made from amoCRM's API reference: `Customer`,
//! `CustomerCreateItem`, `CustomerUpdateItem`, `CustomerTransaction`, `CustomerTransactionCreate`,
//! `CustomerSegment`, `CustomerSegmentCreate`); the PHP library (`EntitiesServices/Customers/*`, `Segments.php`).
//! Customers must be enabled on the account: otherwise Kommo answers 402 (kommo.md §3 "Error shapes": "Тариф не
//! позволяет включать покупателей"), an [`Error::Api`] with status 402.

use api_core::Request;
use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};

use crate::{
    CustomFieldValues, CustomerId, CustomerStatusId, Error, FieldValueWrite, ListPage, ListParams, SegmentId,
    TransactionId,
    common::{IdRef, Tag, TagRef, WriteResult, batch_write},
    entity::{Expandable, Service, entity, read_model, write_types},
};

read_model! {
    /// A customer as read.
    Customer with custom fields {
        /// Id.
        pub id: CustomerId,
        /// Name.
        #[serde(default)]
        pub name: String,
        /// Expected purchase value.
        #[serde(default, deserialize_with = "crate::de::opt_i64")]
        pub next_price: Option<i64>,
        /// Expected purchase date (Unix seconds).
        #[serde(default, deserialize_with = "crate::de::opt_i64")]
        pub next_date: Option<i64>,
        /// Purchase period (days).
        #[serde(default, deserialize_with = "crate::de::opt_i64")]
        pub periodicity: Option<i64>,
        /// Customer status.
        #[serde(default)]
        pub status_id: Option<CustomerStatusId>,
        /// Lifetime value.
        #[serde(default, deserialize_with = "crate::de::opt_i64")]
        pub ltv: Option<i64>,
        /// Purchases.
        #[serde(default, deserialize_with = "crate::de::opt_i64")]
        pub purchases_count: Option<i64>,
        /// Average purchase.
        #[serde(default, deserialize_with = "crate::de::opt_i64")]
        pub average_check: Option<i64>,
        /// `_embedded`: tags, contacts, companies, segments, catalog elements.
        #[serde(default, rename = "_embedded", deserialize_with = "crate::de::object_or_default")]
        pub embedded: CustomerEmbedded,
    }
}

/// A customer's `_embedded`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CustomerEmbedded {
    /// Tags.
    #[serde(default, deserialize_with = "crate::de::null_as_empty")]
    pub tags: Vec<Tag>,
    /// Segments.
    #[serde(default, deserialize_with = "crate::de::null_as_empty")]
    pub segments: Vec<IdRef>,
    /// Other members (`contacts`, `companies`, `catalog_elements`).
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// `_embedded` of a customer write: tags and segments.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CustomerEmbeddedWrite {
    /// Tags (on updates they replace the list).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<TagRef>,
    /// Segments.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub segments: Vec<IdRef>,
}

impl crate::entity::EmbeddedWrite for CustomerEmbeddedWrite {
    fn is_empty(&self) -> bool {
        self.tags.is_empty() && self.segments.is_empty()
    }
}

write_types! {
    /// A customer to create.
    #[derive(Default)]
    new NewCustomer {}
    /// Changes to a customer.
    update CustomerUpdate(CustomerId) {}
    both {
        /// Name.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub name: Option<String>,
        /// Expected purchase value.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub next_price: Option<i64>,
        /// Expected purchase date (Unix seconds).
        #[serde(skip_serializing_if = "Option::is_none")]
        pub next_date: Option<i64>,
        /// Purchase period (days).
        #[serde(skip_serializing_if = "Option::is_none")]
        pub periodicity: Option<i64>,
        /// Customer status.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub status_id: Option<CustomerStatusId>,
    }
    with custom fields, embedded: CustomerEmbeddedWrite,
    setters [field, tag]
}

impl NewCustomer {
    /// A customer named `name`.
    pub fn new(name: impl Into<String>) -> Self {
        Self { name: Some(name.into()), ..Self::default() }
    }
}

impl CustomerUpdate {
    /// Puts the customer in a segment.
    pub fn segment(mut self, id: SegmentId) -> Self {
        self.embedded.segments.push(IdRef { id: id.get() });
        self
    }
}

/// Customer operations: `client.customers()` (the shared [`Service`] plus transactions and segments).
pub type Customers<'a> = Service<'a, Customer>;

entity!(
    Customer,
    id: CustomerId,
    new: NewCustomer,
    update: CustomerUpdate,
    path: "/api/v4/customers",
    key: "customers",
    name: "customer"
);
impl Expandable for Customer {}

/// A customer status (`CustomerStatus`: `id, name, sort, color, type`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CustomerStatus {
    /// Id.
    pub id: CustomerStatusId,
    /// Name.
    #[serde(default)]
    pub name: String,
    /// Sort order.
    #[serde(default, deserialize_with = "crate::de::opt_i64")]
    pub sort: Option<i64>,
    /// Color.
    #[serde(default)]
    pub color: Option<String>,
    /// Kommo's status kind, as sent.
    #[serde(default, rename = "type")]
    pub kind: Option<serde_json::Value>,
    /// Other members.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// A purchase (transaction) of a customer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transaction {
    /// Id.
    pub id: TransactionId,
    /// The customer.
    #[serde(default)]
    pub customer_id: Option<CustomerId>,
    /// Amount.
    #[serde(default, deserialize_with = "crate::de::opt_i64")]
    pub price: Option<i64>,
    /// Comment.
    #[serde(default)]
    pub comment: Option<String>,
    /// When (Unix seconds).
    #[serde(default, deserialize_with = "crate::de::opt_i64")]
    pub created_at: Option<i64>,
    /// Other members (`created_by`, `_links`, `_embedded`).
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// A purchase to record (`CustomerTransactionCreate`: `price` required).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[must_use]
pub struct NewTransaction {
    /// Amount.
    pub price: i64,
    /// Comment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// When (Unix seconds).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at: Option<i64>,
    /// Echoed back (the client sets the index when `None`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

impl NewTransaction {
    /// A purchase of `price`.
    pub fn new(price: i64) -> Self {
        Self { price, comment: None, created_at: None, request_id: None }
    }
    /// A comment.
    pub fn comment(mut self, c: impl Into<String>) -> Self {
        self.comment = Some(c.into());
        self
    }
}

/// A customer segment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Segment {
    /// Id.
    pub id: SegmentId,
    /// Name.
    #[serde(default)]
    pub name: String,
    /// Color.
    #[serde(default)]
    pub color: Option<String>,
    /// Customers in it.
    #[serde(default, deserialize_with = "crate::de::opt_i64")]
    pub customers_count: Option<i64>,
    /// Custom field values (`null` decodes as empty).
    #[serde(default, deserialize_with = "crate::de::null_as_empty")]
    pub custom_fields_values: Vec<CustomFieldValues>,
    /// Other members.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// A segment to create (`CustomerSegmentCreate`: `name` required).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[must_use]
pub struct NewSegment {
    /// Name.
    pub name: String,
    /// Color.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub color: Option<String>,
    /// Custom field values.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub custom_fields_values: Vec<FieldValueWrite>,
    /// Echoed back (the client sets the index when `None`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

impl Customers<'_> {
    /// One page of customer `id`'s purchases (`GET /api/v4/customers/{id}/transactions`; 204 = empty page).
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn list_transactions(
        &self,
        id: CustomerId,
        params: &ListParams,
        page: u32,
    ) -> Result<ListPage<Transaction>, Error> {
        let path = format!("/api/v4/customers/{id}/transactions");
        self.client.list_page(&path, "transactions", params, page).await
    }

    /// Every purchase of every customer (`GET /api/v4/customers/transactions`), lazily.
    pub fn stream_transactions(&self, params: ListParams) -> BoxStream<'static, Result<Transaction, Error>> {
        self.client.stream_list("/api/v4/customers/transactions".into(), "transactions", params)
    }

    /// `POST /api/v4/customers/{id}/transactions`; results in input order.
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn add_transactions(&self, id: CustomerId, items: &[NewTransaction]) -> Result<Vec<WriteResult>, Error> {
        let path = format!("/api/v4/customers/{id}/transactions");
        batch_write(self.client, http::Method::POST, &path, "transactions", items).await
    }

    /// `DELETE /api/v4/customers/{id}/transactions/{transaction_id}`.
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn delete_transaction(&self, id: CustomerId, transaction: TransactionId) -> Result<(), Error> {
        self.client.send(Request::delete(format!("/api/v4/customers/{id}/transactions/{transaction}"))).await?;
        Ok(())
    }

    /// The customer statuses (`GET /api/v4/customers/statuses`, one answer; 204 = none).
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn statuses(&self) -> Result<Vec<CustomerStatus>, Error> {
        Ok(self.client.list_page("/api/v4/customers/statuses", "statuses", &ListParams::new(), 1).await?.items)
    }

    /// `POST /api/v4/customers/statuses` `[{name, sort?, color?, request_id}]` (`CustomerStatusCreate`); results in
    /// input order.
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn create_statuses(
        &self,
        items: &[(&str, Option<i64>, Option<&str>)],
    ) -> Result<Vec<WriteResult>, Error> {
        let body: Vec<serde_json::Value> = items
            .iter()
            .map(|(name, sort, color)| {
                let mut v = serde_json::json!({ "name": name });
                if let Some(s) = sort {
                    v["sort"] = (*s).into();
                }
                if let Some(c) = color {
                    v["color"] = (*c).into();
                }
                v
            })
            .collect();
        batch_write(self.client, http::Method::POST, "/api/v4/customers/statuses", "statuses", &body).await
    }

    /// `DELETE /api/v4/customers/statuses/{id}`.
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn delete_status(&self, id: CustomerStatusId) -> Result<(), Error> {
        self.client.send(Request::delete(format!("/api/v4/customers/statuses/{id}"))).await?;
        Ok(())
    }

    /// The segments (`GET /api/v4/customers/segments`, one answer; 204 = none).
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn segments(&self) -> Result<Vec<Segment>, Error> {
        Ok(self.client.list_page("/api/v4/customers/segments", "segments", &ListParams::new(), 1).await?.items)
    }

    /// `POST /api/v4/customers/segments`; results in input order.
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn create_segments(&self, items: &[NewSegment]) -> Result<Vec<WriteResult>, Error> {
        batch_write(self.client, http::Method::POST, "/api/v4/customers/segments", "segments", items).await
    }

    /// `DELETE /api/v4/customers/segments/{id}`.
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn delete_segment(&self, id: SegmentId) -> Result<(), Error> {
        self.client.send(Request::delete(format!("/api/v4/customers/segments/{id}"))).await?;
        Ok(())
    }
}
