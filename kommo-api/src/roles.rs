//! User roles: `GET/POST /api/v4/roles`, `GET/PATCH/DELETE /api/v4/roles/{id}`.
//!
//! Shapes: `../shared/openapi/kommo-community.yaml` (community-made from amoCRM's API reference: `Role`,
//! `RoleCreateItem` with `name` required and `rights` (`UserRights`), `RoleUpdateById`, `_embedded.roles`), the PHP
//! library (`EntitiesServices/Roles.php`). Rights are kept as JSON: their per-entity shape (`{"add": "A", ...}`,
//! kommo.md §4 "Users") is Kommo's and passes through unchanged.

use api_core::Request;
use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};

use crate::{
    Client, Error, ListPage, ListParams, RoleId,
    common::{WriteResult, batch_write},
};

/// A role.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Role {
    /// Id.
    pub id: RoleId,
    /// Name.
    #[serde(default)]
    pub name: String,
    /// Rights (`leads`, `contacts`, `companies`, `tasks`, `mail_access`, `catalog_access`, `status_rights`...).
    #[serde(default)]
    pub rights: serde_json::Value,
    /// Other members (`_embedded.users` with `with=users`, `_links`).
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// A role to create or change.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[must_use]
pub struct RoleWrite {
    /// Name (required on create).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Rights.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rights: Option<serde_json::Value>,
    /// Echoed back (the client sets the index when `None`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

impl RoleWrite {
    /// A role named `name` with `rights`.
    pub fn new(name: impl Into<String>, rights: serde_json::Value) -> Self {
        Self { name: Some(name.into()), rights: Some(rights), request_id: None }
    }
}

/// Role operations: `client.roles()`.
#[derive(Debug, Clone, Copy)]
pub struct Roles<'a> {
    pub(crate) client: &'a Client,
}

impl Roles<'_> {
    /// One page of roles (`GET /api/v4/roles`, `with=users`; 204 = empty page).
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn list(&self, params: &ListParams, page: u32) -> Result<ListPage<Role>, Error> {
        self.client.list_page("/api/v4/roles", "roles", params, page).await
    }

    /// Every role, lazily.
    pub fn stream(&self, params: ListParams) -> BoxStream<'static, Result<Role, Error>> {
        self.client.stream_list("/api/v4/roles".into(), "roles", params)
    }

    /// `GET /api/v4/roles/{id}`.
    ///
    /// # Errors
    /// See [`Error`]; [`Error::is_not_found`] for an unknown id.
    pub async fn get(&self, id: RoleId) -> Result<Role, Error> {
        self.client.get_one(Request::get(format!("/api/v4/roles/{id}"))).await
    }

    /// `POST /api/v4/roles`; results in input order.
    ///
    /// # Errors
    /// [`Error::InvalidRequest`] for a role without a name; see [`Error`].
    pub async fn create(&self, items: &[RoleWrite]) -> Result<Vec<WriteResult>, Error> {
        if let Some(n) = items.iter().position(|r| r.name.is_none()) {
            return Err(Error::InvalidRequest(format!("role #{n} to create has no name")));
        }
        batch_write(self.client, http::Method::POST, "/api/v4/roles", "roles", items).await
    }

    /// `PATCH /api/v4/roles/{id}`; answers the role.
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn update(&self, id: RoleId, update: &RoleWrite) -> Result<Role, Error> {
        let req = Request::patch(format!("/api/v4/roles/{id}"))
            .json(update)
            .map_err(|e| Error::InvalidRequest(e.to_string()))?
            .idempotent(true);
        self.client.send_json(req).await
    }

    /// `DELETE /api/v4/roles/{id}`.
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn delete(&self, id: RoleId) -> Result<(), Error> {
        self.client.send(Request::delete(format!("/api/v4/roles/{id}"))).await?;
        Ok(())
    }
}
