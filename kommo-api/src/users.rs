//! Users (`GET /api/v4/users[/{id}]`) and the account (`GET /api/v4/account`).

use api_core::Request;
use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};

use crate::{Client, Error, GroupId, ListPage, ListParams, UserId, ids::AccountId};

/// A user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    /// Id.
    pub id: UserId,
    /// Name.
    #[serde(default)]
    pub name: String,
    /// Email (login).
    #[serde(default)]
    pub email: Option<String>,
    /// Interface language.
    #[serde(default)]
    pub lang: Option<String>,
    /// Rights (`is_admin`, `is_active`, `group_id`, per-entity rights...), as sent.
    #[serde(default)]
    pub rights: serde_json::Value,
    /// Other members (`_embedded.roles`, `_links`).
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl User {
    /// `rights.is_active`.
    #[must_use]
    pub fn is_active(&self) -> bool {
        self.rights.get("is_active").and_then(serde_json::Value::as_bool).unwrap_or(true)
    }

    /// `rights.is_admin`.
    #[must_use]
    pub fn is_admin(&self) -> bool {
        self.rights.get("is_admin").and_then(serde_json::Value::as_bool).unwrap_or(false)
    }

    /// `rights.group_id`.
    #[must_use]
    pub fn group_id(&self) -> Option<GroupId> {
        self.rights.get("group_id").and_then(serde_json::Value::as_u64).map(GroupId)
    }
}

/// The account (`GET /api/v4/account`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Account {
    /// Id.
    pub id: AccountId,
    /// Name.
    #[serde(default)]
    pub name: String,
    /// Subdomain.
    #[serde(default)]
    pub subdomain: String,
    /// The token's user.
    #[serde(default)]
    pub current_user_id: Option<UserId>,
    /// Country code.
    #[serde(default)]
    pub country: Option<String>,
    /// Currency code.
    #[serde(default)]
    pub currency: Option<String>,
    /// Created (Unix seconds).
    #[serde(default, deserialize_with = "crate::de::opt_i64")]
    pub created_at: Option<i64>,
    /// Other members and `with=` extras (`_embedded.task_types`, `is_api_filter_enabled`...).
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// User operations: `client.users()`.
#[derive(Debug, Clone, Copy)]
pub struct Users<'a> {
    pub(crate) client: &'a Client,
}

impl Users<'_> {
    /// One page of users (`GET /api/v4/users`).
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn list(&self, params: &ListParams, page: u32) -> Result<ListPage<User>, Error> {
        self.client.list_page("/api/v4/users", "users", params, page).await
    }

    /// Every user, lazily.
    pub fn stream(&self, params: ListParams) -> BoxStream<'static, Result<User, Error>> {
        self.client.stream_list("/api/v4/users".into(), "users", params)
    }

    /// One user.
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn get(&self, id: UserId) -> Result<User, Error> {
        self.client.get_one(Request::get(format!("/api/v4/users/{id}"))).await
    }

    /// The user with this email (case-insensitive), scanning the user list.
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn find_by_email(&self, email: &str) -> Result<Option<User>, Error> {
        use futures::TryStreamExt as _;
        let users: Vec<User> = self.stream(ListParams::new().limit(250)).try_collect().await?;
        Ok(users.into_iter().find(|u| u.email.as_deref().is_some_and(|e| e.eq_ignore_ascii_case(email.trim()))))
    }
}

impl Client {
    /// `GET /api/v4/account` with `with=` values (`task_types`, `users_groups`, `is_api_filter_enabled`...).
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn account(&self, with: &[&str]) -> Result<Account, Error> {
        let mut req = Request::get("/api/v4/account");
        if !with.is_empty() {
            req = req.query("with", with.join(","));
        }
        self.send_json(req).await
    }
}
