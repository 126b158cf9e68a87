//! Contacts: `GET/POST/PATCH /api/v4/contacts`, search by phone/email with `query`.

use serde::{Deserialize, Serialize};

use crate::{
    ContactId, Error, LeadId,
    common::{IdRef, Tag, TagRef},
    custom_fields::CustomFieldsExt,
    entity::{Expandable, Service, entity, read_model, write_setters, write_types},
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
    crate::ids::contact_point_helpers!();
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

impl crate::entity::EmbeddedWrite for ContactEmbeddedWrite {
    fn is_empty(&self) -> bool {
        self.tags.is_empty() && self.companies.is_empty()
    }
}

write_types! {
    /// A contact to create.
    #[derive(Default)]
    new NewContact {}
    /// Changes to a contact.
    update ContactUpdate(ContactId) {}
    both {
        /// Full name.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub name: Option<String>,
        /// First name.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub first_name: Option<String>,
        /// Last name.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub last_name: Option<String>,
    }
    with custom fields, embedded: ContactEmbeddedWrite,
    setters [field, tag, person, company]
}

write_setters!(ContactUpdate { name });

impl NewContact {
    /// A contact named `name`.
    pub fn new(name: impl Into<String>) -> Self {
        Self { name: Some(name.into()), ..Self::default() }
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
