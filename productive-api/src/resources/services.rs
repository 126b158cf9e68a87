//! Services (`/services`, line items of a deal/budget) and service types (`/service_types`).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{
    Client, Error,
    jsonapi::{Document, Query, Resource, WriteDocument},
    types::{Amount, BillingType, DealId, PersonId, ResourceType, ServiceId, ServiceTypeId, ServiceUnit, rel_id},
};

/// A service's attributes.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ServiceAttributes {
    /// Name.
    #[serde(deserialize_with = "crate::types::null_as_default")]
    pub name: String,
    /// 1 hour, 2 piece, 3 day.
    pub unit_id: Option<ServiceUnit>,
    /// 1 fixed, 2 time & materials, 3 not billable.
    pub billing_type_id: Option<BillingType>,
    /// Price (documented as a decimal string, `"100000.0"`).
    pub price: Option<Amount>,
    /// Quantity.
    pub quantity: Option<Amount>,
    /// Description.
    pub description: Option<String>,
    /// Estimated time in minutes.
    pub estimated_time: Option<u64>,
    /// Unknown attributes.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ResourceType for ServiceAttributes {
    const TYPE: &'static str = "services";
    type Id = ServiceId;
}

/// A service resource.
pub type Service = Resource<ServiceAttributes>;

impl Resource<ServiceAttributes> {
    /// The `deal` relationship id.
    #[must_use]
    pub fn deal_id(&self) -> Option<DealId> {
        rel_id(self, "deal")
    }

    /// The `service_type` relationship id.
    #[must_use]
    pub fn service_type_id(&self) -> Option<ServiceTypeId> {
        rel_id(self, "service_type")
    }
}

/// `POST /services`: attributes `name`, `unit_id`, `billing_type_id`, `price`, `quantity`, … and relationships
/// `deal` and `service_type` (withone "Create a Service" example; that example also sends `service_type_id` as an
/// attribute — this crate sends the relationship, plus the attribute for compatibility).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NewService {
    /// Name.
    pub name: String,
    /// Unit.
    pub unit_id: ServiceUnit,
    /// Billing type.
    pub billing_type_id: BillingType,
    /// Price.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub price: Option<Amount>,
    /// Quantity (a JSON number, like the documented example's `"quantity": 1`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quantity: Option<serde_json::Number>,
    /// Description.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Estimated time (minutes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub estimated_time: Option<u64>,
    /// The service type (relationship `service_type`; also sent as attribute `service_type_id`).
    pub service_type_id: ServiceTypeId,
    /// The deal or budget (relationship `deal`).
    #[serde(skip)]
    pub deal_id: DealId,
    /// The responsible person (relationship `person`).
    #[serde(skip)]
    pub person_id: Option<PersonId>,
    /// Any other attributes, sent as given.
    #[serde(skip)]
    pub extra: Map<String, Value>,
}

impl NewService {
    /// A service on `deal` of `service_type`.
    #[must_use]
    pub fn new(
        name: impl Into<String>,
        deal: DealId,
        service_type: ServiceTypeId,
        unit: ServiceUnit,
        billing: BillingType,
    ) -> Self {
        Self {
            name: name.into(),
            unit_id: unit,
            billing_type_id: billing,
            price: None,
            quantity: None,
            description: None,
            estimated_time: None,
            service_type_id: service_type,
            deal_id: deal,
            person_id: None,
            extra: Map::new(),
        }
    }

    /// The JSON:API body.
    ///
    /// # Errors
    /// Serialization failure.
    pub fn to_document(&self) -> Result<WriteDocument, Error> {
        let doc = WriteDocument::create(ServiceAttributes::TYPE)
            .attributes(self)?
            .relate("deal", "deals", &self.deal_id)
            .relate("service_type", "service_types", &self.service_type_id)
            .relate_opt("person", "people", self.person_id.as_ref());
        Ok(super::merge_extra(doc, &self.extra))
    }
}

/// A service type's attributes.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ServiceTypeAttributes {
    /// Name.
    #[serde(deserialize_with = "crate::types::null_as_default")]
    pub name: String,
    /// When archived.
    pub archived_at: Option<String>,
    /// Unknown attributes.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ResourceType for ServiceTypeAttributes {
    const TYPE: &'static str = "service_types";
    type Id = ServiceTypeId;
}

/// A service type resource.
pub type ServiceType = Resource<ServiceTypeAttributes>;

super::collection!(
    list_services,
    stream_services,
    "/services",
    ServiceAttributes,
    "services (budget line items)",
    "Filters: `deal_id`, `project_id`, `person_id`, `service_type_id`, `budget_status`, … (api-notes productive.md §4 Services)."
);
super::collection!(
    list_service_types,
    stream_service_types,
    "/service_types",
    ServiceTypeAttributes,
    "service types",
    "Filters: `name`, `status`, `person_id`, `query` (api-notes productive.md §4 Service types)."
);

impl Client {
    /// `GET /services/{id}`.
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn get_service(&self, id: &ServiceId) -> Result<Document<Service>, Error> {
        self.get_resource(&format!("/services/{id}"), &Query::new()).await
    }

    /// Services of a deal/budget (`filter[deal_id]`), all pages.
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn services_of_deal(&self, deal: &DealId) -> Result<Vec<Service>, Error> {
        self.all("/services", Query::new().filter("deal_id", deal)).await
    }

    /// `POST /services`.
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn create_service(&self, service: &NewService) -> Result<Service, Error> {
        Ok(self.post_document("/services", &service.to_document()?).await?.data)
    }

    /// Every service type matching `query` (`GET /service_types`, all pages), collected; see
    /// [`Client::stream_service_types`] for the lazy form and [`Client::list_service_types`] for one page.
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn all_service_types(&self, query: Query) -> Result<Vec<ServiceType>, Error> {
        self.all("/service_types", query).await
    }

    /// The service type named exactly `name`, if any (`filter[name]`).
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn find_service_type_by_name(&self, name: &str) -> Result<Option<ServiceType>, Error> {
        let all = self.all_service_types(Query::new().filter("name", name)).await?;
        Ok(all.into_iter().find(|s| s.attributes.name == name))
    }

    /// `POST /service_types` (body: `name` only).
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn create_service_type(&self, name: &str) -> Result<ServiceType, Error> {
        let doc = WriteDocument::create(ServiceTypeAttributes::TYPE).attribute("name", name);
        Ok(self.post_document("/service_types", &doc).await?.data)
    }

    /// `DELETE /services/{id}` (api-notes productive.md §4 Services; 204).
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn delete_service(&self, id: &ServiceId) -> Result<(), Error> {
        self.delete_path(&format!("/services/{id}")).await
    }

    /// `PATCH /services/{id}` with the given attributes (e.g. `{"price": "120.0", "quantity": 2}`; api-notes
    /// productive.md §4 Services: `GET|PATCH|DELETE /services/{id}`).
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn update_service(&self, id: &ServiceId, attributes: &Map<String, Value>) -> Result<Service, Error> {
        let doc = super::merge_extra(WriteDocument::update(ServiceAttributes::TYPE, id), attributes);
        Ok(self.patch_document(&format!("/services/{id}"), &doc).await?.data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_body() {
        let mut s = NewService::new("Design", "5".into(), "3".into(), ServiceUnit::Piece, BillingType::Fixed);
        s.price = Some("100000.0".into());
        s.quantity = Some(1.into());
        assert_eq!(
            serde_json::to_value(s.to_document().unwrap()).unwrap(),
            serde_json::json!({"data": {"type": "services",
                "attributes": {"name": "Design", "unit_id": 2, "billing_type_id": 1, "price": "100000.0",
                               "quantity": 1, "service_type_id": "3"},
                "relationships": {"deal": {"data": {"type": "deals", "id": "5"}},
                                  "service_type": {"data": {"type": "service_types", "id": "3"}}}}})
        );
    }
}
