//! OAuth token sets in the store, shared by every process on it: api-core's [`TokenStore`] over [`Store`].
//!
//! One row of `oauth_tokens` per key (one per OAuth account). Sessions of several processes
//! ([`api_core::OAuthSession`], each over its own [`Store`] handle on one SQLite file or PostgreSQL schema)
//! coordinate through it so that a single-use refresh token is sent to the vendor once:
//! - [`TokenStore::save_if`] is one `UPDATE … WHERE key = $1 AND refresh_token = $expected`: the refreshed pair
//!   replaces the row only while the row still holds the token it was refreshed from (nothing is written when no
//!   set is stored, as the trait says).
//! - [`TokenStore::claim_refresh`] is a lease in the same row (`claim_holder`, `claim_until`), taken with one
//!   conditional `UPDATE`: granted when the row still holds that refresh token and no other holder's lease is live.
//!   The lease's length is the caller's (`until - now`), but its deadline and the liveness test use the **store's
//!   clock** (on PostgreSQL anchored to the database server's), so processes on machines with skewed clocks
//!   compare leases on one time base. Any save ends the lease.
//!
//! The secrets are stored as they are (the vendor needs them back); protect the database accordingly. Nothing here
//! logs, and [`StoreTokenStore`]'s `Debug` shows the key and backend only.

use std::fmt;

use api_core::Token;
use api_core::oauth::{TokenSet, TokenStore, TokenStoreError};
use futures::future::BoxFuture;
use sqlx::Row;

use crate::store::{Backend, Store};

/// Runs `$body` with `$p` bound to the store's pool.
macro_rules! with_pool {
    ($store:expr, $p:ident => $body:expr) => {
        match $store.backend() {
            Backend::Sqlite($p) => $body,
            #[cfg(feature = "postgres")]
            Backend::Postgres($p) => $body,
        }
    };
}

const LOAD: &str = "SELECT access_token, refresh_token, expires_at FROM oauth_tokens WHERE key = $1";

const SAVE: &str = "INSERT INTO oauth_tokens (key, access_token, refresh_token, expires_at, claim_holder, claim_until, \
     updated_at) VALUES ($1, $2, $3, $4, NULL, NULL, $5) ON CONFLICT (key) DO UPDATE SET \
     access_token = excluded.access_token, refresh_token = excluded.refresh_token, expires_at = excluded.expires_at, \
     claim_holder = NULL, claim_until = NULL, updated_at = excluded.updated_at";

const SEED: &str = "INSERT INTO oauth_tokens (key, access_token, refresh_token, expires_at, claim_holder, claim_until, \
     updated_at) VALUES ($1, $2, $3, $4, NULL, NULL, $5) ON CONFLICT (key) DO NOTHING";

const SAVE_IF: &str = "UPDATE oauth_tokens SET access_token = $2, refresh_token = $3, expires_at = $4, \
     claim_holder = NULL, claim_until = NULL, updated_at = $5 WHERE key = $1 AND refresh_token = $6";

const CLAIM: &str = "UPDATE oauth_tokens SET claim_holder = $2, claim_until = $3 WHERE key = $1 \
     AND refresh_token = $4 AND (claim_holder IS NULL OR claim_holder = $2 OR claim_until <= $5)";

/// An OAuth token store in the sync store's `oauth_tokens` table, under one key (see the module docs). Cheap to
/// clone; clones and other processes' stores with the same key share the token set.
#[derive(Clone)]
pub struct StoreTokenStore {
    store: Store,
    key: String,
}

impl fmt::Debug for StoreTokenStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreTokenStore")
            .field("backend", &self.store.backend_name())
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// The OAuth token store of `key` (e.g. `"kommo"` or `"kommo:<account>"`) in this store.
    #[must_use]
    pub fn token_store(&self, key: impl Into<String>) -> StoreTokenStore {
        StoreTokenStore::new(self.clone(), key)
    }
}

impl StoreTokenStore {
    /// The token store of `key` in `store`.
    #[must_use]
    pub fn new(store: Store, key: impl Into<String>) -> Self {
        Self { store, key: key.into() }
    }

    /// The key this store reads and writes.
    #[must_use]
    pub fn key(&self) -> &str {
        &self.key
    }

    fn now_ms(&self) -> i64 {
        self.store.clock().now_ms()
    }

    /// Stores `tokens` only when no set is stored under the key yet (`INSERT … ON CONFLICT DO NOTHING`), and says
    /// whether it did. For seeding from configuration (e.g. a refresh token from the environment) at start-up:
    /// unlike [`TokenStore::save`], it never overwrites a pair another process has already refreshed (which would
    /// put a spent refresh token back).
    ///
    /// # Errors
    /// Store errors.
    pub async fn seed(&self, tokens: &TokenSet) -> Result<bool, TokenStoreError> {
        let now = self.now_ms();
        let done = with_pool!(self.store, p => sqlx::query(SEED)
            .bind(&self.key)
            .bind(tokens.access_token.expose())
            .bind(refresh_str(tokens))
            .bind(tokens.expires_at)
            .bind(now)
            .execute(p)
            .await
            .map(|r| r.rows_affected()))
        .map_err(store_err)?;
        Ok(done == 1)
    }
}

/// A database error as a token store error (the message names the table, never a token: tokens are only bound
/// as parameters).
fn store_err(e: impl fmt::Display) -> TokenStoreError {
    TokenStoreError(format!("oauth_tokens: {e}"))
}

fn refresh_str(tokens: &TokenSet) -> Option<&str> {
    tokens.refresh_token.as_ref().map(Token::expose)
}

impl TokenStore for StoreTokenStore {
    fn load(&self) -> BoxFuture<'_, Result<Option<TokenSet>, TokenStoreError>> {
        Box::pin(async move {
            type Stored = (String, Option<String>, Option<i64>);
            let row: Option<Stored> = with_pool!(self.store, p => match sqlx::query(LOAD)
                .bind(&self.key)
                .fetch_optional(p)
                .await
                .map_err(store_err)?
            {
                Some(row) => Some((
                    row.try_get("access_token").map_err(store_err)?,
                    row.try_get("refresh_token").map_err(store_err)?,
                    row.try_get("expires_at").map_err(store_err)?,
                )),
                None => None,
            });
            let Some((access, refresh, expires_at)) = row else { return Ok(None) };
            Ok(Some(TokenSet { access_token: Token::new(access), refresh_token: refresh.map(Token::new), expires_at }))
        })
    }

    fn save<'a>(&'a self, tokens: &'a TokenSet) -> BoxFuture<'a, Result<(), TokenStoreError>> {
        Box::pin(async move {
            let now = self.now_ms();
            with_pool!(self.store, p => sqlx::query(SAVE)
                .bind(&self.key)
                .bind(tokens.access_token.expose())
                .bind(refresh_str(tokens))
                .bind(tokens.expires_at)
                .bind(now)
                .execute(p)
                .await
                .map(|_| ()))
            .map_err(store_err)?;
            Ok(())
        })
    }

    fn save_if<'a>(
        &'a self,
        expected: &'a Token,
        tokens: &'a TokenSet,
    ) -> BoxFuture<'a, Result<bool, TokenStoreError>> {
        Box::pin(async move {
            let now = self.now_ms();
            let done = with_pool!(self.store, p => sqlx::query(SAVE_IF)
                .bind(&self.key)
                .bind(tokens.access_token.expose())
                .bind(refresh_str(tokens))
                .bind(tokens.expires_at)
                .bind(now)
                .bind(expected.expose())
                .execute(p)
                .await
                .map(|r| r.rows_affected()))
            .map_err(store_err)?;
            Ok(done == 1)
        })
    }

    fn claim_refresh<'a>(
        &'a self,
        refresh_token: &'a Token,
        holder: &'a str,
        now: i64,
        until: i64,
    ) -> BoxFuture<'a, Result<bool, TokenStoreError>> {
        Box::pin(async move {
            // the caller's clock gives the lease's length only; deadlines are on the store's time base
            let ttl_ms = until.saturating_sub(now).max(0).saturating_mul(1000);
            let store_now = self.now_ms();
            let done = with_pool!(self.store, p => sqlx::query(CLAIM)
                .bind(&self.key)
                .bind(holder)
                .bind(store_now.saturating_add(ttl_ms))
                .bind(refresh_token.expose())
                .bind(store_now)
                .execute(p)
                .await
                .map(|r| r.rows_affected()))
            .map_err(store_err)?;
            Ok(done == 1)
        })
    }
}
