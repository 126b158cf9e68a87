//! OAuth 2.0 access tokens with rotating, single-use refresh tokens (Kommo, Calendly).
//!
//! The rules this module enforces, because breaking any of them logs an integration out for good:
//! - **Single flight**: one refresh at a time per session; concurrent callers wait and reuse its result.
//! - **Persist before use**: the new token set is saved through the [`TokenStore`] before anyone uses the new
//!   access token (the old refresh token is dead the moment the server answers).
//! - **Refresh ahead of expiry** (`skew`, default 5 minutes).
//! - **A 401 triggers at most one refresh**: [`OAuthSession::refresh_after_unauthorized`] takes the token that was
//!   rejected; when another task already replaced it, the replacement is returned without a new refresh.

use std::{
    fmt,
    path::{Path, PathBuf},
    sync::{Arc, Mutex as StdMutex},
    time::Duration,
};

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

use crate::{
    secret::Token,
    webhook::{Clock, SystemClock},
};

/// An access token, its refresh token and its expiry.
#[derive(Clone, Debug)]
pub struct TokenSet {
    /// The bearer token.
    pub access_token: Token,
    /// The refresh token (single use where the vendor rotates them).
    pub refresh_token: Option<Token>,
    /// Expiry (unix seconds), if known.
    pub expires_at: Option<i64>,
}

impl TokenSet {
    /// A token set from a token endpoint's `expires_in` (seconds from `now`).
    #[must_use]
    pub fn from_expires_in(access: Token, refresh: Option<Token>, expires_in: Option<i64>, now_unix: i64) -> Self {
        Self { access_token: access, refresh_token: refresh, expires_at: expires_in.map(|s| now_unix + s) }
    }
}

#[derive(Serialize, Deserialize)]
struct StoredTokenSet {
    access_token: String,
    refresh_token: Option<String>,
    expires_at: Option<i64>,
}

/// Errors from a token store.
#[derive(Debug, thiserror::Error)]
#[error("token store: {0}")]
pub struct TokenStoreError(pub String);

/// Where token sets live between processes. Implement it over your own database if you like.
pub trait TokenStore: Send + Sync + fmt::Debug {
    /// The stored set, if any.
    fn load(&self) -> BoxFuture<'_, Result<Option<TokenSet>, TokenStoreError>>;
    /// Replaces the stored set. Must be durable when it returns.
    fn save<'a>(&'a self, tokens: &'a TokenSet) -> BoxFuture<'a, Result<(), TokenStoreError>>;
}

/// A token store in memory (tests, short-lived tools).
#[derive(Debug, Default, Clone)]
pub struct MemoryTokenStore(Arc<StdMutex<Option<TokenSet>>>);

impl MemoryTokenStore {
    /// A store holding `tokens`.
    #[must_use]
    pub fn new(tokens: Option<TokenSet>) -> Self {
        Self(Arc::new(StdMutex::new(tokens)))
    }
}

impl TokenStore for MemoryTokenStore {
    fn load(&self) -> BoxFuture<'_, Result<Option<TokenSet>, TokenStoreError>> {
        let v = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        Box::pin(async move { Ok(v) })
    }

    fn save<'a>(&'a self, tokens: &'a TokenSet) -> BoxFuture<'a, Result<(), TokenStoreError>> {
        *self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(tokens.clone());
        Box::pin(async { Ok(()) })
    }
}

/// A token store in a JSON file, written atomically (temp file + rename) with mode 0600 on Unix.
#[derive(Debug, Clone)]
pub struct FileTokenStore {
    path: PathBuf,
}

impl FileTokenStore {
    /// A store at `path` (created on first save).
    #[must_use]
    pub fn new(path: impl AsRef<Path>) -> Self {
        Self { path: path.as_ref().to_owned() }
    }
}

impl TokenStore for FileTokenStore {
    fn load(&self) -> BoxFuture<'_, Result<Option<TokenSet>, TokenStoreError>> {
        Box::pin(async move {
            let bytes = match tokio::fs::read(&self.path).await {
                Ok(b) => b,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(TokenStoreError(format!("read {}: {e}", self.path.display()))),
            };
            let s: StoredTokenSet = serde_json::from_slice(&bytes)
                .map_err(|e| TokenStoreError(format!("parse {}: {e}", self.path.display())))?;
            Ok(Some(TokenSet {
                access_token: Token::new(s.access_token),
                refresh_token: s.refresh_token.map(Token::new),
                expires_at: s.expires_at,
            }))
        })
    }

    fn save<'a>(&'a self, tokens: &'a TokenSet) -> BoxFuture<'a, Result<(), TokenStoreError>> {
        Box::pin(async move {
            let stored = StoredTokenSet {
                access_token: tokens.access_token.expose().to_owned(),
                refresh_token: tokens.refresh_token.as_ref().map(|t| t.expose().to_owned()),
                expires_at: tokens.expires_at,
            };
            let bytes = serde_json::to_vec_pretty(&stored).map_err(|e| TokenStoreError(e.to_string()))?;
            let tmp = self.path.with_extension("tmp");
            let err = |e: std::io::Error| TokenStoreError(format!("write {}: {e}", self.path.display()));
            {
                let mut opts = tokio::fs::OpenOptions::new();
                opts.write(true).create(true).truncate(true);
                #[cfg(unix)]
                opts.mode(0o600);
                let mut f = opts.open(&tmp).await.map_err(err)?;
                tokio::io::AsyncWriteExt::write_all(&mut f, &bytes).await.map_err(err)?;
                f.sync_all().await.map_err(err)?;
            }
            tokio::fs::rename(&tmp, &self.path).await.map_err(err)?;
            Ok(())
        })
    }
}

/// Why a token could not be had.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// The refresh token was rejected (`invalid_grant`): the user must authorize again.
    #[error("authorization revoked: {0}")]
    Revoked(String),
    /// No tokens are stored yet and none were given.
    #[error("no OAuth tokens: run the authorization-code exchange first")]
    NoTokens,
    /// The token endpoint failed transiently (network, 5xx): try again later.
    #[error("token refresh failed: {0}")]
    Refresh(String),
    /// The token store failed; the new tokens were not used.
    #[error(transparent)]
    Store(#[from] TokenStoreError),
}

/// The vendor's token endpoint call.
pub trait Refresher: Send + Sync + fmt::Debug {
    /// Exchanges `refresh_token` for a new token set. Map `invalid_grant` to [`AuthError::Revoked`].
    fn refresh<'a>(&'a self, refresh_token: &'a Token) -> BoxFuture<'a, Result<TokenSet, AuthError>>;
}

/// One OAuth session (one account): see the module docs.
pub struct OAuthSession {
    store: Arc<dyn TokenStore>,
    refresher: Arc<dyn Refresher>,
    current: tokio::sync::Mutex<Option<TokenSet>>,
    skew: Duration,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for OAuthSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuthSession")
            .field("store", &self.store)
            .field("refresher", &self.refresher)
            .field("skew", &self.skew)
            .finish_non_exhaustive()
    }
}

impl OAuthSession {
    /// A session over `store` and `refresher`, refreshing 5 minutes before expiry.
    pub fn new(store: Arc<dyn TokenStore>, refresher: Arc<dyn Refresher>) -> Self {
        Self {
            store,
            refresher,
            current: tokio::sync::Mutex::new(None),
            skew: Duration::from_secs(300),
            clock: Arc::new(SystemClock),
        }
    }

    /// Sets how long before expiry to refresh.
    #[must_use]
    pub fn with_skew(mut self, skew: Duration) -> Self {
        self.skew = skew;
        self
    }

    /// Injects a clock.
    #[must_use]
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Saves an initial token set (after the authorization-code exchange) and uses it.
    ///
    /// # Errors
    /// When the store fails.
    pub async fn install(&self, tokens: TokenSet) -> Result<(), AuthError> {
        let mut cur = self.current.lock().await;
        self.store.save(&tokens).await?;
        *cur = Some(tokens);
        Ok(())
    }

    /// A valid access token, refreshing first when it expires within the skew.
    ///
    /// # Errors
    /// [`AuthError`].
    pub async fn access_token(&self) -> Result<Token, AuthError> {
        let mut cur = self.current.lock().await;
        if cur.is_none() {
            *cur = self.store.load().await?;
        }
        let set = cur.as_ref().ok_or(AuthError::NoTokens)?;
        let skew = i64::try_from(self.skew.as_secs()).unwrap_or(i64::MAX);
        let due = set.expires_at.is_some_and(|exp| exp - skew <= self.clock.unix_seconds());
        if due && set.refresh_token.is_some() {
            let new = self.refresh_locked(set).await?;
            let token = new.access_token.clone();
            *cur = Some(new);
            return Ok(token);
        }
        Ok(set.access_token.clone())
    }

    /// Called after a 401 with the token that was rejected: refreshes once, unless another task already did.
    ///
    /// # Errors
    /// [`AuthError`]; [`AuthError::Revoked`] when there is no refresh token to try.
    pub async fn refresh_after_unauthorized(&self, rejected: &Token) -> Result<Token, AuthError> {
        let mut cur = self.current.lock().await;
        if cur.is_none() {
            *cur = self.store.load().await?;
        }
        let set = cur.as_ref().ok_or(AuthError::NoTokens)?;
        if !set.access_token.ct_eq(rejected.expose()) {
            return Ok(set.access_token.clone());
        }
        if set.refresh_token.is_none() {
            return Err(AuthError::Revoked("access token rejected and no refresh token".into()));
        }
        let new = self.refresh_locked(set).await?;
        let token = new.access_token.clone();
        *cur = Some(new);
        Ok(token)
    }

    async fn refresh_locked(&self, set: &TokenSet) -> Result<TokenSet, AuthError> {
        let rt = set.refresh_token.as_ref().ok_or(AuthError::NoTokens)?;
        let mut new = self.refresher.refresh(rt).await?;
        if new.refresh_token.is_none() {
            // vendors that do not rotate keep the old refresh token valid
            new.refresh_token = set.refresh_token.clone();
        }
        self.store.save(&new).await?;
        tracing::info!("OAuth tokens refreshed and stored");
        Ok(new)
    }
}

/// How a vendor client authenticates: a long-lived token or an OAuth session.
#[derive(Clone, Debug)]
pub enum Auth {
    /// A long-lived token (personal access token, API key).
    Static(Token),
    /// OAuth 2.0 with refresh.
    OAuth(Arc<OAuthSession>),
}

impl Auth {
    /// The token to send now.
    ///
    /// # Errors
    /// [`AuthError`] from the OAuth session.
    pub async fn token(&self) -> Result<Token, AuthError> {
        match self {
            Self::Static(t) => Ok(t.clone()),
            Self::OAuth(s) => s.access_token().await,
        }
    }

    /// After a 401 with `rejected`: a new token to try once, or `None` when there is nothing to refresh.
    ///
    /// # Errors
    /// [`AuthError`] from the OAuth session.
    pub async fn on_unauthorized(&self, rejected: &Token) -> Result<Option<Token>, AuthError> {
        match self {
            Self::Static(_) => Ok(None),
            Self::OAuth(s) => s.refresh_after_unauthorized(rejected).await.map(Some),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::webhook::FixedClock;

    #[derive(Debug, Default)]
    struct CountingRefresher {
        calls: AtomicUsize,
    }

    impl Refresher for CountingRefresher {
        fn refresh<'a>(&'a self, rt: &'a Token) -> BoxFuture<'a, Result<TokenSet, AuthError>> {
            Box::pin(async move {
                let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
                tokio::task::yield_now().await;
                if rt.expose() == "revoked" {
                    return Err(AuthError::Revoked("invalid_grant".into()));
                }
                Ok(TokenSet {
                    access_token: Token::new(format!("access{n}")),
                    refresh_token: Some(Token::new(format!("refresh{n}"))),
                    expires_at: Some(1_000_000 + 86_400),
                })
            })
        }
    }

    fn initial(exp: i64) -> TokenSet {
        TokenSet {
            access_token: Token::new("access0"),
            refresh_token: Some(Token::new("refresh0")),
            expires_at: Some(exp),
        }
    }

    #[tokio::test]
    async fn concurrent_401s_refresh_once_and_persist_first() {
        let store = MemoryTokenStore::new(Some(initial(2_000_000)));
        let r = Arc::new(CountingRefresher::default());
        let s = Arc::new(
            OAuthSession::new(Arc::new(store.clone()), r.clone()).with_clock(Arc::new(FixedClock::at_unix(1_000_000))),
        );
        let rejected = s.access_token().await.unwrap();
        let mut tasks = Vec::new();
        for _ in 0..10 {
            let s = s.clone();
            let rej = rejected.clone();
            tasks.push(tokio::spawn(async move { s.refresh_after_unauthorized(&rej).await.unwrap() }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap().expose(), "access1");
        }
        assert_eq!(r.calls.load(Ordering::SeqCst), 1);
        let stored = store.load().await.unwrap().unwrap();
        assert_eq!(stored.refresh_token.unwrap().expose(), "refresh1");
    }

    #[tokio::test]
    async fn refreshes_ahead_of_expiry() {
        let clock = FixedClock::at_unix(1_000_000);
        let r = Arc::new(CountingRefresher::default());
        let s = OAuthSession::new(Arc::new(MemoryTokenStore::new(Some(initial(1_000_000 + 600)))), r.clone())
            .with_clock(Arc::new(clock.clone()));
        assert_eq!(s.access_token().await.unwrap().expose(), "access0");
        clock.advance(Duration::from_secs(301)); // now within the 5-minute skew
        assert_eq!(s.access_token().await.unwrap().expose(), "access1");
        assert_eq!(s.access_token().await.unwrap().expose(), "access1");
        assert_eq!(r.calls.load(Ordering::SeqCst), 1);
    }

    #[derive(Debug)]
    struct FailingStore;
    impl TokenStore for FailingStore {
        fn load(&self) -> BoxFuture<'_, Result<Option<TokenSet>, TokenStoreError>> {
            Box::pin(async { Ok(Some(initial(0))) })
        }
        fn save<'a>(&'a self, _t: &'a TokenSet) -> BoxFuture<'a, Result<(), TokenStoreError>> {
            Box::pin(async { Err(TokenStoreError("disk full".into())) })
        }
    }

    #[tokio::test]
    async fn new_token_not_used_when_it_cannot_be_stored() {
        let s = OAuthSession::new(Arc::new(FailingStore), Arc::new(CountingRefresher::default()))
            .with_clock(Arc::new(FixedClock::at_unix(1_000_000)));
        assert!(matches!(s.access_token().await, Err(AuthError::Store(_))));
    }

    #[tokio::test]
    async fn revoked_is_typed() {
        let set =
            TokenSet { access_token: Token::new("a"), refresh_token: Some(Token::new("revoked")), expires_at: None };
        let s = OAuthSession::new(Arc::new(MemoryTokenStore::new(Some(set))), Arc::new(CountingRefresher::default()));
        assert!(matches!(s.refresh_after_unauthorized(&Token::new("a")).await, Err(AuthError::Revoked(_))));
        assert!(matches!(Auth::Static(Token::new("x")).on_unauthorized(&Token::new("x")).await, Ok(None)));
    }

    #[tokio::test]
    async fn file_store_round_trip_private() {
        let dir = std::env::temp_dir().join(format!("api-core-oauth-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("tokens.json");
        let store = FileTokenStore::new(&path);
        assert!(store.load().await.unwrap().is_none());
        store.save(&initial(42)).await.unwrap();
        let back = store.load().await.unwrap().unwrap();
        assert_eq!(back.access_token.expose(), "access0");
        assert_eq!(back.expires_at, Some(42));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        assert!(!format!("{store:?} {back:?}").contains("access0"));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
