//! People (`/people`): get, list, find by email.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{
    Client, Error,
    jsonapi::{Document, Query, Resource, WriteDocument},
    types::{CompanyId, PersonId, ResourceType},
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

/// `POST /people`: `first_name`, `last_name`, `email` (the response attributes of withone "List People"; the
/// fake requires `first_name` and `email`), optionally `title` and the `company` relationship (a contact of a
/// client company). Which fields Productive requires is **unverified**.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct NewPerson {
    /// First name.
    pub first_name: String,
    /// Last name.
    pub last_name: String,
    /// Email.
    pub email: String,
    /// Title.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// The company the person belongs to (contacts).
    #[serde(skip)]
    pub company_id: Option<CompanyId>,
    /// Any other attributes, sent as given.
    #[serde(skip)]
    pub extra: Map<String, Value>,
}

impl NewPerson {
    /// A person with a name and an email.
    #[must_use]
    pub fn new(first_name: impl Into<String>, last_name: impl Into<String>, email: impl Into<String>) -> Self {
        Self { first_name: first_name.into(), last_name: last_name.into(), email: email.into(), ..Self::default() }
    }

    /// The JSON:API body.
    ///
    /// # Errors
    /// Serialization failure.
    pub fn to_document(&self) -> Result<WriteDocument, Error> {
        let doc = WriteDocument::create(PersonAttributes::TYPE).attributes(self)?.relate_opt(
            "company",
            "companies",
            self.company_id.as_ref(),
        );
        Ok(super::merge_extra(doc, &self.extra))
    }
}

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

    /// `POST /people`.
    ///
    /// # Errors
    /// See [`Error`]; a missing required attribute is a 422.
    pub async fn create_person(&self, person: &NewPerson) -> Result<Person, Error> {
        Ok(self.post_document("/people", &person.to_document()?).await?.data)
    }

    /// `PATCH /people/{id}` with the given attributes (only those are changed).
    ///
    /// # Errors
    /// See [`Error`]; a missing person is a 404, an invalid value a 422.
    pub async fn update_person(&self, id: &PersonId, attributes: &Map<String, Value>) -> Result<Person, Error> {
        let doc = super::merge_extra(WriteDocument::update(PersonAttributes::TYPE, id), attributes);
        Ok(self.patch_document(&format!("/people/{id}"), &doc).await?.data)
    }

    /// `PATCH /people/{id}/archive` (community OpenAPI); the answer is the archived person (`archived_at` set).
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn archive_person(&self, id: &PersonId) -> Result<Person, Error> {
        Ok(self.patch_action(PersonAttributes::TYPE, id, "archive", &Map::new()).await?.data)
    }

    /// `PATCH /people/{id}/restore` (community OpenAPI): un-archives.
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn restore_person(&self, id: &PersonId) -> Result<Person, Error> {
        Ok(self.patch_action(PersonAttributes::TYPE, id, "restore", &Map::new()).await?.data)
    }
}
