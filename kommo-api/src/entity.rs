//! The one service behind `client.leads()`, `client.contacts()`, `client.companies()` and `client.tasks()`.
//!
//! Kommo's entity endpoints share one shape: `GET /api/v4/{entity}` (a HAL list under `_embedded.{entity}`, 204 =
//! empty), `GET /api/v4/{entity}/{id}`, `POST`/`PATCH /api/v4/{entity}` with batches of at most 50 elements, and
//! `PATCH /api/v4/{entity}/{id}`. [`Entity`] says what differs per entity (path, `_embedded` key, id type, write
//! types) and [`Service`] implements the calls once; each entity module adds only what is its own (complex leads,
//! contact search by email or phone, task completion).
//!
//! ```
//! use kommo_api::{entity::Entity, leads::Lead, tasks::Task};
//! assert_eq!(Lead::PATH, "/api/v4/leads");
//! assert_eq!(Task::KEY, "tasks");
//! ```

use std::{fmt, marker::PhantomData};

use api_core::Request;
use futures::{TryStreamExt as _, stream::BoxStream};
use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::{
    Client, Error, ListPage, ListParams,
    common::{WriteResult, batch_write},
};

/// What differs between Kommo's entity endpoints. Implemented for [`Lead`](crate::leads::Lead),
/// [`Contact`](crate::contacts::Contact), [`Company`](crate::companies::Company) and [`Task`](crate::tasks::Task).
pub trait Entity: DeserializeOwned + Send + 'static {
    /// The typed id ([`LeadId`](crate::LeadId), ...).
    type Id: Copy + fmt::Display + From<u64> + DeserializeOwned + Send + Sync + 'static;
    /// What `POST /api/v4/{entity}` takes.
    type New: Serialize + Sync;
    /// What `PATCH /api/v4/{entity}` takes.
    type Update: EntityUpdate<Id = Self::Id> + Sync;
    /// The collection path, `/api/v4/leads`.
    const PATH: &'static str;
    /// The `_embedded` key of lists and batch answers, `leads`.
    const KEY: &'static str;
    /// The singular name, for messages (`lead`).
    const NAME: &'static str;
}

/// An update of one entity: it names the entity it changes.
pub trait EntityUpdate: Serialize {
    /// The entity's id type.
    type Id;
    /// The entity the update changes (in the path of a single `PATCH`, in the body of a batch).
    fn id(&self) -> Self::Id;
}

/// Entities whose single `GET` takes `with=` values (leads, contacts, companies; tasks take none).
pub trait Expandable: Entity {}

/// `PATCH /api/v4/{entity}/{id}` answer: `{id, updated_at}`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Updated<I> {
    /// Id.
    pub id: I,
    /// The new `updated_at`.
    #[serde(default, deserialize_with = "crate::de::opt_i64")]
    pub updated_at: Option<i64>,
}

/// Operations on one entity type: `client.leads()`, `client.contacts()`, ... (see the type aliases
/// [`Leads`](crate::leads::Leads), [`Contacts`](crate::contacts::Contacts), [`Companies`](crate::companies::Companies),
/// [`Tasks`](crate::tasks::Tasks)).
pub struct Service<'a, E> {
    pub(crate) client: &'a Client,
    entity: PhantomData<fn() -> E>,
}

impl<'a, E> Service<'a, E> {
    pub(crate) fn new(client: &'a Client) -> Self {
        Self { client, entity: PhantomData }
    }
}

impl<E> Clone for Service<'_, E> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<E> Copy for Service<'_, E> {}

impl<E: Entity> fmt::Debug for Service<'_, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Service").field("path", &E::PATH).field("client", &self.client).finish()
    }
}

impl<E: Entity> Service<'_, E> {
    fn get_request(id: E::Id, with: &[&str]) -> Request {
        let mut req = Request::get(format!("{}/{id}", E::PATH));
        if !with.is_empty() {
            req = req.query("with", with.join(","));
        }
        req
    }

    async fn fetch(&self, id: E::Id, with: &[&str]) -> Result<E, Error> {
        self.client.get_one(Self::get_request(id, with)).await
    }

    async fn fetch_opt(&self, id: E::Id, with: &[&str]) -> Result<Option<E>, Error> {
        match self.client.get_json(Self::get_request(id, with)).await {
            Err(e) if e.is_not_found() => Ok(None),
            other => other,
        }
    }

    /// One page of `GET /api/v4/{entity}` (204 = empty page; [`ListPage::has_next`] says whether another follows).
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn list(&self, params: &ListParams, page: u32) -> Result<ListPage<E>, Error> {
        self.client.list_page(E::PATH, E::KEY, params, page).await
    }

    /// Every entity matching `params`, page by page, lazily (stops on 204 or a missing `_links.next`).
    pub fn stream(&self, params: ListParams) -> BoxStream<'static, Result<E, Error>> {
        self.client.stream_list(E::PATH.to_owned(), E::KEY, params)
    }

    /// Every entity matching `params`, collected (convenience for small accounts and tests).
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn all(&self, params: ListParams) -> Result<Vec<E>, Error> {
        self.stream(params).try_collect().await
    }

    /// `GET /api/v4/{entity}?query=<q>` (the first page; a miss is Kommo's 204 = empty).
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn search(&self, query: &str) -> Result<Vec<E>, Error> {
        Ok(self.list(&ListParams::new().query(query), 1).await?.items)
    }

    /// `POST /api/v4/{entity}` in chunks of 50; results in input order.
    ///
    /// # Errors
    /// See [`Error`]; [`Error::Batch`] when a later chunk fails.
    pub async fn create(&self, items: &[E::New]) -> Result<Vec<WriteResult>, Error> {
        batch_write(self.client, http::Method::POST, E::PATH, E::KEY, items).await
    }

    /// Creates one entity and returns its id.
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn create_one(&self, item: E::New) -> Result<E::Id, Error> {
        let r = self.create(std::slice::from_ref(&item)).await?;
        r.first()
            .map(|r| E::Id::from(r.id))
            .ok_or_else(|| Error::InvalidRequest(format!("Kommo returned no {}", E::NAME)))
    }

    /// `PATCH /api/v4/{entity}/{id}`.
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn update(&self, update: &E::Update) -> Result<Updated<E::Id>, Error> {
        let req = Request::patch(format!("{}/{}", E::PATH, update.id()))
            .json(update)
            .map_err(|e| Error::InvalidRequest(e.to_string()))?
            .idempotent(true);
        self.client.send_json(req).await
    }

    /// `PATCH /api/v4/{entity}` in chunks of 50; results in input order.
    ///
    /// # Errors
    /// See [`Error`]; [`Error::Batch`] when a later chunk fails.
    pub async fn update_many(&self, updates: &[E::Update]) -> Result<Vec<WriteResult>, Error> {
        batch_write(self.client, http::Method::PATCH, E::PATH, E::KEY, updates).await
    }
}

impl<E: Expandable> Service<'_, E> {
    /// `GET /api/v4/{entity}/{id}` with `with=` values (e.g. `["contacts"]` on leads, `["leads"]` on contacts).
    ///
    /// # Errors
    /// See [`Error`]; [`Error::is_not_found`] for an unknown id (Kommo answers 204 or 404).
    pub async fn get(&self, id: E::Id, with: &[&str]) -> Result<E, Error> {
        self.fetch(id, with).await
    }

    /// Like [`Service::get`], `None` for an unknown id (404 or 204).
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn find(&self, id: E::Id, with: &[&str]) -> Result<Option<E>, Error> {
        self.fetch_opt(id, with).await
    }
}

impl Service<'_, crate::tasks::Task> {
    /// `GET /api/v4/tasks/{id}`.
    ///
    /// # Errors
    /// See [`Error`]; [`Error::is_not_found`] for an unknown id.
    pub async fn get(&self, id: crate::TaskId) -> Result<crate::tasks::Task, Error> {
        self.fetch(id, &[]).await
    }

    /// Like `get`, `None` for an unknown id (404 or 204).
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn find(&self, id: crate::TaskId) -> Result<Option<crate::tasks::Task>, Error> {
        self.fetch_opt(id, &[]).await
    }
}

/// Implements [`Entity`] (and [`EntityUpdate`] for its update type) for one entity.
macro_rules! entity {
    ($entity:ty, id: $id:ty, new: $new:ty, update: $update:ty, path: $path:literal, key: $key:literal, name: $name:literal) => {
        impl $crate::entity::Entity for $entity {
            type Id = $id;
            type New = $new;
            type Update = $update;
            const PATH: &'static str = $path;
            const KEY: &'static str = $key;
            const NAME: &'static str = $name;
        }

        impl $crate::entity::EntityUpdate for $update {
            type Id = $id;
            fn id(&self) -> $id {
                self.id
            }
        }
    };
}
pub(crate) use entity;

/// `_embedded` of a write: skipped when empty.
pub(crate) trait EmbeddedWrite {
    /// Nothing to send.
    fn is_empty(&self) -> bool;
}

/// `skip_serializing_if` for an `_embedded` write member.
pub(crate) fn embedded_is_empty<T: EmbeddedWrite>(e: &T) -> bool {
    e.is_empty()
}

/// The two write types of one entity, declared once: what `POST /api/v4/{entity}` takes (`$new`) and what `PATCH`
/// takes (`$update`, with the entity's `id`). The members both have are written once (`both { .. }`), each side adds
/// its own, and the members every Kommo entity write has are added here: `responsible_user_id`, `request_id` and,
/// `with custom fields`, `custom_fields_values` and `_embedded`. `$update::new(id)` and the [`write_setters!`]
/// named in `setters [..]` (on both types) come with them.
macro_rules! write_types {
    (
        $(#[$nmeta:meta])* new $new:ident { $($nbody:tt)* }
        $(#[$umeta:meta])* update $upd:ident($id:ty) { $($ubody:tt)* }
        both { $($both:tt)* }
        $(with custom fields, embedded: $emb:ty,)?
        setters [$($setter:ident),* $(,)?]
    ) => {
        $crate::entity::write_types!(@one $(#[$nmeta])* $new { $($nbody)* $($both)* } $($emb)?);
        $crate::entity::write_types!(@one $(#[$umeta])* #[derive(Default)] $upd {
            /// The entity (in the path of a single `PATCH`, in the body of a batch update).
            pub id: $id,
            $($ubody)* $($both)*
        } $($emb)?);
        impl $upd {
            /// Changes to entity `id`; only the members set are sent.
            pub fn new(id: $id) -> Self {
                Self { id, ..Self::default() }
            }
        }
        $crate::entity::write_setters!($new { responsible, request_id $(, $setter)* });
        $crate::entity::write_setters!($upd { responsible, request_id $(, $setter)* });
    };
    (@one $(#[$meta:meta])* $name:ident { $($body:tt)* } $($emb:ty)?) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, ::serde::Serialize)]
        #[must_use]
        pub struct $name {
            $($body)*
            /// Responsible user.
            #[serde(skip_serializing_if = "Option::is_none")]
            pub responsible_user_id: Option<$crate::UserId>,
            $(
            /// Custom field values (on updates only the fields given change; multitext fields are replaced as a
            /// whole).
            #[serde(skip_serializing_if = "Vec::is_empty")]
            pub custom_fields_values: Vec<$crate::FieldValueWrite>,
            /// `_embedded`: tags (on updates the tags given replace the entity's list) and linked entities.
            #[serde(rename = "_embedded", skip_serializing_if = "crate::entity::embedded_is_empty")]
            pub embedded: $emb,
            )?
            /// Echoed back in the response (the client sets the element's index when `None`).
            #[serde(skip_serializing_if = "Option::is_none")]
            pub request_id: Option<String>,
        }
    };
}
pub(crate) use write_types;

/// Builder setters shared by the write types (`NewLead`, `LeadUpdate`, `NewContact`, ...): each names the members it
/// has, and gets the same method for each.
macro_rules! write_setters {
    ($t:ty { $($what:ident),* $(,)? }) => {
        impl $t {
            $($crate::entity::write_setters!(@ $what);)*
        }
    };
    (@ name) => {
        /// Sets the name.
        pub fn name(mut self, name: impl Into<String>) -> Self {
            self.name = Some(name.into());
            self
        }
    };
    (@ responsible) => {
        /// Sets the responsible user.
        pub fn responsible(mut self, user: $crate::UserId) -> Self {
            self.responsible_user_id = Some(user);
            self
        }
    };
    (@ field) => {
        /// Adds a custom field value (on updates, only the fields given change).
        pub fn field(mut self, value: $crate::FieldValueWrite) -> Self {
            self.custom_fields_values.push(value);
            self
        }
    };
    (@ tag) => {
        /// Adds a tag (on updates, the tags given replace the entity's tag list).
        pub fn tag(mut self, tag: impl Into<$crate::TagRef>) -> Self {
            self.embedded.tags.push(tag.into());
            self
        }
    };
    (@ request_id) => {
        /// Sets the `request_id` Kommo echoes back (the client sets the element's index when none is given).
        pub fn request_id(mut self, id: impl Into<String>) -> Self {
            self.request_id = Some(id.into());
            self
        }
    };
    (@ price) => {
        /// Sets the sale value.
        pub fn price(mut self, price: i64) -> Self {
            self.price = Some(price);
            self
        }
    };
    (@ stage) => {
        /// Sets pipeline and status (the stage).
        pub fn stage(mut self, pipeline: $crate::PipelineId, status: $crate::StatusId) -> Self {
            self.pipeline_id = Some(pipeline);
            self.status_id = Some(status);
            self
        }
    };
    (@ contact) => {
        /// Links a contact.
        pub fn contact(mut self, id: $crate::ContactId) -> Self {
            self.embedded.contacts.push($crate::common::IdRef { id: id.get() });
            self
        }
    };
    (@ company) => {
        /// Links a company.
        pub fn company(mut self, id: $crate::CompanyId) -> Self {
            self.embedded.companies.push($crate::common::IdRef { id: id.get() });
            self
        }
    };
    (@ person) => {
        /// Sets first and last name.
        pub fn names(mut self, first: impl Into<String>, last: impl Into<String>) -> Self {
            self.first_name = Some(first.into());
            self.last_name = Some(last.into());
            self
        }
        /// Adds a work email (`EMAIL`; on updates the values given replace the field's values).
        pub fn email(self, email: impl Into<String>) -> Self {
            self.field($crate::FieldValueWrite::email(email))
        }
        /// Adds a work phone (`PHONE`; on updates the values given replace the field's values).
        pub fn phone(self, phone: impl Into<String>) -> Self {
            self.field($crate::FieldValueWrite::phone(phone))
        }
    };
    (@ task) => {
        /// Attaches the task to an entity (its type comes with the typed id).
        pub fn on<K: $crate::EntityKey>(mut self, id: K) -> Self {
            self.entity_type = Some(K::entity_type());
            self.entity_id = Some(id.into());
            self
        }
        /// Sets the task type ([`TaskTypeId::FOLLOW_UP`]($crate::TaskTypeId::FOLLOW_UP), a custom type...).
        pub fn task_type(mut self, t: impl Into<$crate::TaskTypeId>) -> Self {
            self.task_type_id = Some(t.into());
            self
        }
        /// Sets the duration (seconds).
        pub fn duration(mut self, seconds: i64) -> Self {
            self.duration = Some(seconds);
            self
        }
    };
}
pub(crate) use write_setters;

/// A read model: the entity's own members, then the members every Kommo entity has (responsible user, group,
/// creator and editor, created and updated times, account; with `with custom fields`: the deleted flag and the
/// custom field values, and [`CustomFieldsExt`](crate::CustomFieldsExt)), then every other member kept as sent.
macro_rules! read_model {
    ($(#[$meta:meta])* $name:ident with custom fields { $($body:tt)* }) => {
        $crate::entity::read_model!(@emit $(#[$meta])* $name { $($body)* } {
            /// Deleted (in the recycle bin; listed with `with=only_deleted`).
            #[serde(default, deserialize_with = "crate::de::lenient_bool")]
            pub is_deleted: bool,
            /// Custom field values (`null` decodes as empty).
            #[serde(default, deserialize_with = "crate::de::null_as_empty")]
            pub custom_fields_values: Vec<$crate::CustomFieldValues>,
        });

        impl $crate::CustomFieldsExt for $name {
            fn custom_fields(&self) -> &[$crate::CustomFieldValues] {
                &self.custom_fields_values
            }
        }
    };
    ($(#[$meta:meta])* $name:ident { $($body:tt)* }) => {
        $crate::entity::read_model!(@emit $(#[$meta])* $name { $($body)* } {});
    };
    (@emit $(#[$meta:meta])* $name:ident { $($body:tt)* } { $($more:tt)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, ::serde::Serialize, ::serde::Deserialize)]
        pub struct $name {
            $($body)*
            /// Responsible user.
            #[serde(default)]
            pub responsible_user_id: Option<$crate::UserId>,
            /// Users group.
            #[serde(default)]
            pub group_id: Option<$crate::GroupId>,
            /// Creator (0 = a robot or the system).
            #[serde(default)]
            pub created_by: Option<$crate::UserId>,
            /// Last editor (0 = a robot or the system).
            #[serde(default)]
            pub updated_by: Option<$crate::UserId>,
            /// Created (Unix seconds).
            #[serde(default, deserialize_with = "crate::de::opt_i64")]
            pub created_at: Option<i64>,
            /// Updated (Unix seconds).
            #[serde(default, deserialize_with = "crate::de::opt_i64")]
            pub updated_at: Option<i64>,
            /// Account.
            #[serde(default)]
            pub account_id: Option<$crate::AccountId>,
            $($more)*
            /// Every other member, kept as sent (`_links` and members this crate does not model).
            #[serde(flatten)]
            pub extra: serde_json::Map<String, serde_json::Value>,
        }
    };
}
pub(crate) use read_model;
