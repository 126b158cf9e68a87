//! Contacts: `GET/POST/PATCH /api/v4/contacts`, search by phone/email with `query`.

use serde::{Deserialize, Serialize};

use crate::{
    ContactId, Error, LeadId, UserId,
    common::{IdRef, Tag, TagRef},
    custom_fields::{CustomFieldsExt, FieldValueWrite},
    entity::{Expandable, Service, entity, read_model, write_setters},
    ids::CompanyId,
};

read_model! {
    /// A contact as read.
    Contact with custom fields {
        /// Id.
        pub id: ContactId,
        /// Full name.
        #[serde(default)]
        pub name: String,
        /// First name.
        #[serde(default)]
        pub first_name: Option<String>,
        /// Last name.
        #[serde(default)]
        pub last_name: Option<String>,
        /// Nearest task due.
        #[serde(default, deserialize_with = "crate::de::opt_i64")]
        pub closest_task_at: Option<i64>,
        /// `_embedded`: tags, companies, leads (with=leads).
        #[serde(default, rename = "_embedded", deserialize_with = "crate::de::object_or_default")]
        pub embedded: ContactEmbedded,
    }
}

impl Contact {
    /// Every email (`EMAIL` field values).
    #[must_use]
    pub fn emails(&self) -> Vec<String> {
        self.values_by_code("EMAIL")
    }

    /// Every phone (`PHONE` field values).
    #[must_use]
    pub fn phones(&self) -> Vec<String> {
        self.values_by_code("PHONE")
    }
}

/// An id reference in `_embedded`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmbeddedId<I> {
    /// The id.
    pub id: I,
}

/// A contact's `_embedded`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ContactEmbedded {
    /// Tags.
    #[serde(default, deserialize_with = "crate::de::null_as_empty")]
    pub tags: Vec<Tag>,
    /// Companies.
    #[serde(default, deserialize_with = "crate::de::null_as_empty")]
    pub companies: Vec<EmbeddedId<CompanyId>>,
    /// Leads (with=leads).
    #[serde(default, deserialize_with = "crate::de::null_as_empty")]
    pub leads: Vec<EmbeddedId<LeadId>>,
    /// Other members.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// `_embedded` of a contact write.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ContactEmbeddedWrite {
    /// Tags.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<TagRef>,
    /// Companies to link.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub companies: Vec<IdRef>,
}

impl ContactEmbeddedWrite {
    fn is_empty(&self) -> bool {
        self.tags.is_empty() && self.companies.is_empty()
    }
}

/// A contact to create.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[must_use]
pub struct NewContact {
    /// Full name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// First name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    /// Last name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    /// Responsible user.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub responsible_user_id: Option<UserId>,
    /// Custom field values (`FieldValueWrite::email`, `FieldValueWrite::phone`...).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub custom_fields_values: Vec<FieldValueWrite>,
    /// Tags and companies.
    #[serde(rename = "_embedded", skip_serializing_if = "ContactEmbeddedWrite::is_empty")]
    pub embedded: ContactEmbeddedWrite,
    /// Echoed back (set to the index when `None`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

write_setters!(NewContact { responsible, field, tag, request_id });

impl NewContact {
    /// A contact named `name`.
    pub fn new(name: impl Into<String>) -> Self {
        Self { name: Some(name.into()), ..Self::default() }
    }
    /// Sets first and last name.
    pub fn names(mut self, first: impl Into<String>, last: impl Into<String>) -> Self {
        self.first_name = Some(first.into());
        self.last_name = Some(last.into());
        self
    }
    /// Adds a work email.
    pub fn email(self, email: impl Into<String>) -> Self {
        self.field(FieldValueWrite::email(email))
    }
    /// Adds a work phone.
    pub fn phone(self, phone: impl Into<String>) -> Self {
        self.field(FieldValueWrite::phone(phone))
    }
    /// Links a company.
    pub fn company(mut self, id: CompanyId) -> Self {
        self.embedded.companies.push(IdRef { id: id.get() });
        self
    }
}

/// Changes to a contact.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[must_use]
pub struct ContactUpdate {
    /// The contact.
    pub id: ContactId,
    /// Full name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// First name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    /// Last name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    /// Responsible user.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub responsible_user_id: Option<UserId>,
    /// Custom field values (only these fields change; multitext fields are replaced as a whole).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub custom_fields_values: Vec<FieldValueWrite>,
    /// Tags.
    #[serde(rename = "_embedded", skip_serializing_if = "ContactEmbeddedWrite::is_empty")]
    pub embedded: ContactEmbeddedWrite,
    /// Echoed back in batch responses.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

write_setters!(ContactUpdate { name, responsible, field, tag, request_id });

impl ContactUpdate {
    /// Changes to contact `id`.
    pub fn new(id: ContactId) -> Self {
        Self { id, ..Self::default() }
    }
}

/// Contact operations: `client.contacts()` (the shared [`Service`] plus search by email or phone).
pub type Contacts<'a> = Service<'a, Contact>;

entity!(
    Contact,
    id: ContactId,
    new: NewContact,
    update: ContactUpdate,
    path: "/api/v4/contacts",
    key: "contacts",
    name: "contact"
);
impl Expandable for Contact {}

impl Contacts<'_> {
    /// The first contact whose `EMAIL` values contain `email` exactly (case-insensitive). `query` matches
    /// substrings of any field, so the results are filtered.
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn find_by_email(&self, email: &str) -> Result<Option<Contact>, Error> {
        let email = email.trim();
        let found = self.search(email).await?;
        Ok(found.into_iter().find(|c| c.emails().iter().any(|e| e.trim().eq_ignore_ascii_case(email))))
    }

    /// The first contact whose `PHONE` values match `phone` by digits.
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn find_by_phone(&self, phone: &str) -> Result<Option<Contact>, Error> {
        let digits = |s: &str| s.chars().filter(char::is_ascii_digit).collect::<String>();
        let want = digits(phone);
        let found = self.search(phone.trim()).await?;
        Ok(found.into_iter().find(|c| c.phones().iter().any(|p| !want.is_empty() && digits(p) == want)))
    }
}
