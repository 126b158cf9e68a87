//! People (`/people`): get, list, find by email.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{
    Client, Error,
    jsonapi::{Document, Query, Resource},
    types::{PersonId, ResourceType},
};

/// A person's attributes (withone "List People" sample; unknown attributes kept in `extra`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct PersonAttributes {
    /// First name.
    #[serde(deserialize_with = "crate::types::null_as_default")]
    pub first_name: String,
    /// Last name.
    #[serde(deserialize_with = "crate::types::null_as_default")]
    pub last_name: String,
    /// Email.
    pub email: Option<String>,
    /// Title.
    pub title: Option<String>,
    /// Role id.
    pub role_id: Option<u64>,
    /// Whether this person is a user.
    pub is_user: Option<bool>,
    /// Placeholder person.
    pub placeholder: Option<bool>,
    /// When archived.
    pub archived_at: Option<String>,
    /// When deactivated.
    pub deactivated_at: Option<String>,
    /// Tags.
    #[serde(deserialize_with = "crate::types::null_as_default")]
    pub tag_list: Vec<String>,
    /// Custom fields.
    pub custom_fields: Option<Value>,
    /// Unknown attributes.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl PersonAttributes {
    /// `"First Last"`.
    #[must_use]
    pub fn full_name(&self) -> String {
        format!("{} {}", self.first_name, self.last_name).trim().to_owned()
    }
}

impl ResourceType for PersonAttributes {
    const TYPE: &'static str = "people";
    type Id = PersonId;
}

/// A person resource.
pub type Person = Resource<PersonAttributes>;

super::collection!(
    list_people,
    stream_people,
    "/people",
    PersonAttributes,
    "people",
    "Filters: `email`, `status` (1 active, 2 deactivated), `person_type`, `company_id`, `project_id`, … (api-notes productive.md §4 People)."
);

impl Client {
    /// `GET /people/{id}`.
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn get_person(&self, id: &PersonId) -> Result<Document<Person>, Error> {
        self.get_resource(&format!("/people/{id}"), &Query::new()).await
    }

    /// The person with this email (`filter[email]=…`, compared case-insensitively), if any.
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn find_person_by_email(&self, email: &str) -> Result<Option<Person>, Error> {
        let all = self.all::<PersonAttributes>("/people", Query::new().filter("email", email)).await?;
        Ok(all.into_iter().find(|p| p.attributes.email.as_deref().is_some_and(|e| e.eq_ignore_ascii_case(email))))
    }
}
