//! Contacts: `GET/POST/PATCH /api/v4/contacts`, search by phone/email with `query`.

use api_core::Request;
use futures::{TryStreamExt as _, stream::BoxStream};
use serde::{Deserialize, Serialize};

use crate::{
    Client, ContactId, Error, GroupId, LeadId, ListPage, ListParams, UserId,
    common::{IdRef, Tag, TagRef, WriteResult, batch_write},
    custom_fields::{CustomFieldValues, CustomFieldsExt, FieldValueWrite},
    ids::{AccountId, CompanyId},
    leads::Updated,
};

/// A contact as read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Contact {
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
    /// Responsible user.
    #[serde(default)]
    pub responsible_user_id: Option<UserId>,
    /// Users group.
    #[serde(default)]
    pub group_id: Option<GroupId>,
    /// Creator.
    #[serde(default)]
    pub created_by: Option<UserId>,
    /// Last editor.
    #[serde(default)]
    pub updated_by: Option<UserId>,
    /// Created (Unix seconds).
    #[serde(default, deserialize_with = "crate::de::opt_i64")]
    pub created_at: Option<i64>,
    /// Updated (Unix seconds).
    #[serde(default, deserialize_with = "crate::de::opt_i64")]
    pub updated_at: Option<i64>,
    /// Nearest task due.
    #[serde(default, deserialize_with = "crate::de::opt_i64")]
    pub closest_task_at: Option<i64>,
    /// Deleted.
    #[serde(default, deserialize_with = "crate::de::lenient_bool")]
    pub is_deleted: bool,
    /// Custom field values (`null` decodes as empty); phones and emails are the `PHONE`/`EMAIL` fields.
    #[serde(default, deserialize_with = "crate::de::null_as_empty")]
    pub custom_fields_values: Vec<CustomFieldValues>,
    /// Account.
    #[serde(default)]
    pub account_id: Option<AccountId>,
    /// `_embedded`: tags, companies, leads (with=leads).
    #[serde(default, rename = "_embedded", deserialize_with = "crate::de::object_or_default")]
    pub embedded: ContactEmbedded,
    /// Other members.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl CustomFieldsExt for Contact {
    fn custom_fields(&self) -> &[CustomFieldValues] {
        &self.custom_fields_values
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
    /// Adds a custom field value.
    pub fn field(mut self, value: FieldValueWrite) -> Self {
        self.custom_fields_values.push(value);
        self
    }
    /// Sets the responsible user.
    pub fn responsible(mut self, user: UserId) -> Self {
        self.responsible_user_id = Some(user);
        self
    }
    /// Adds a tag.
    pub fn tag(mut self, tag: impl Into<TagRef>) -> Self {
        self.embedded.tags.push(tag.into());
        self
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

impl ContactUpdate {
    /// Changes to contact `id`.
    pub fn new(id: ContactId) -> Self {
        Self { id, ..Self::default() }
    }
    /// Sets the name.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
    /// Sets a custom field value.
    pub fn field(mut self, value: FieldValueWrite) -> Self {
        self.custom_fields_values.push(value);
        self
    }
}

/// Contact operations: `client.contacts()`.
#[derive(Debug, Clone, Copy)]
pub struct Contacts<'a> {
    pub(crate) client: &'a Client,
}

impl Contacts<'_> {
    /// `GET /api/v4/contacts/{id}` with `with=` values (e.g. `["leads"]`).
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn get(&self, id: ContactId, with: &[&str]) -> Result<Contact, Error> {
        let mut req = Request::get(format!("/api/v4/contacts/{id}"));
        if !with.is_empty() {
            req = req.query("with", with.join(","));
        }
        self.client.get_one(req).await
    }

    /// Like [`Contacts::get`], `None` when the contact does not exist.
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn find(&self, id: ContactId, with: &[&str]) -> Result<Option<Contact>, Error> {
        match self.get(id, with).await {
            Err(e) if e.is_not_found() => Ok(None),
            other => other.map(Some),
        }
    }

    /// One page of `GET /api/v4/contacts`.
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn list_page(&self, params: &ListParams, page: u32) -> Result<ListPage<Contact>, Error> {
        self.client.list_page("/api/v4/contacts", "contacts", params, page).await
    }

    /// Every contact matching `params`, lazily.
    pub fn list(&self, params: ListParams) -> BoxStream<'static, Result<Contact, Error>> {
        self.client.stream_list("/api/v4/contacts".into(), "contacts", params)
    }

    /// `GET /api/v4/contacts?query=<q>` (first page, up to 50; a miss is Kommo's 204 = empty).
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn search(&self, query: &str) -> Result<Vec<Contact>, Error> {
        Ok(self.list_page(&ListParams::new().query(query), 1).await?.items)
    }

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

    /// `POST /api/v4/contacts` in chunks of 50.
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn create(&self, contacts: &[NewContact]) -> Result<Vec<WriteResult>, Error> {
        batch_write(self.client, http::Method::POST, "/api/v4/contacts", "contacts", contacts).await
    }

    /// Creates one contact.
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn create_one(&self, contact: NewContact) -> Result<ContactId, Error> {
        let r = self.create(std::slice::from_ref(&contact)).await?;
        r.first().map(|r| ContactId(r.id)).ok_or_else(|| Error::InvalidRequest("Kommo returned no contact".into()))
    }

    /// `PATCH /api/v4/contacts/{id}`.
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn update(&self, update: &ContactUpdate) -> Result<Updated, Error> {
        let req = Request::patch(format!("/api/v4/contacts/{}", update.id))
            .json(update)
            .map_err(|e| Error::InvalidRequest(e.to_string()))?
            .idempotent(true);
        self.client.send_json(req).await
    }

    /// `PATCH /api/v4/contacts` in chunks of 50.
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn update_many(&self, updates: &[ContactUpdate]) -> Result<Vec<WriteResult>, Error> {
        batch_write(self.client, http::Method::PATCH, "/api/v4/contacts", "contacts", updates).await
    }

    /// Every contact, collected (convenience for small accounts and tests).
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn list_all(&self, params: ListParams) -> Result<Vec<Contact>, Error> {
        self.list(params).try_collect().await
    }
}
