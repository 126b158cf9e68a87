//! OAuth 2.0 access tokens with rotating, single-use refresh tokens (Kommo, Calendly).
//!
//! The rules this module enforces, because breaking any of them logs an integration out for good:
//! - **A refresh token is spent once.** The moment the token endpoint answers, the old refresh token is dead, so the
//!   new pair is kept and used even when the [`TokenStore`] cannot save it; the save is retried on every later call
//!   (and before the next refresh) with [`TokenStore::save_if`], and the spent refresh token is never sent again.
//! - **Single flight**, in a process and between processes: one refresh at a time per session (concurrent callers
//!   wait and reuse its result), and sessions sharing a store (several workers, several processes) coordinate
//!   through it: before refreshing, a session reloads the store (another session may have refreshed already) and
//!   claims the refresh token ([`TokenStore::claim_refresh`]); the new pair is saved with a compare-and-swap on the
//!   refresh token it replaced, so the loser of a race adopts the winner's pair instead of spending a dead token.
//!   After an `invalid_grant`/revoked answer the session reloads the store too: when someone else spent the token,
//!   their pair is used.
//! - **Refresh ahead of expiry** (`skew`, default 5 minutes). Inside that window the access token is still valid,
//!   so a transient refresh failure (5xx, timeout, a store that cannot be reached, another session holding the
//!   claim) keeps using it and tries again later.
//! - **A 401 triggers at most one refresh**: [`OAuthSession::refresh_after_unauthorized`] takes the token that was
//!   rejected; when another task (or session) already replaced it, the replacement is returned without a new refresh.

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

    /// Whether this set's refresh token is `refresh` (compared in constant time).
    #[must_use]
    pub fn has_refresh_token(&self, refresh: &Token) -> bool {
        self.refresh_token.as_ref().is_some_and(|r| r.ct_eq(refresh.expose()))
    }

    fn same_as(&self, other: &Self) -> bool {
        let refresh_eq = match (&self.refresh_token, &other.refresh_token) {
            (Some(a), Some(b)) => a.ct_eq(b.expose()),
            (None, None) => true,
            _ => false,
        };
        refresh_eq && self.access_token.ct_eq(other.access_token.expose())
    }
}

#[derive(Serialize, Deserialize)]
struct StoredTokenSet {
    access_token: String,
    refresh_token: Option<String>,
    expires_at: Option<i64>,
    /// A live claim on `refresh_token` (see [`TokenStore::claim_refresh`]); any save drops it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    refresh_claim: Option<StoredClaim>,
}

#[derive(Serialize, Deserialize, Clone)]
struct StoredClaim {
    holder: String,
    until: i64,
}

impl StoredTokenSet {
    fn from_set(tokens: &TokenSet) -> Self {
        Self {
            access_token: tokens.access_token.expose().to_owned(),
            refresh_token: tokens.refresh_token.as_ref().map(|t| t.expose().to_owned()),
            expires_at: tokens.expires_at,
            refresh_claim: None,
        }
    }

    fn into_set(self) -> TokenSet {
        TokenSet {
            access_token: Token::new(self.access_token),
            refresh_token: self.refresh_token.map(Token::new),
            expires_at: self.expires_at,
        }
    }

    fn refresh_is(&self, refresh: &Token) -> bool {
        self.refresh_token.as_deref().is_some_and(|r| refresh.ct_eq(r))
    }
}

/// Errors from a token store.
#[derive(Debug, thiserror::Error)]
#[error("token store: {0}")]
pub struct TokenStoreError(pub String);

/// Where token sets live between processes. Implement it over your own database if you like.
///
/// Sessions of several processes that share one store coordinate through [`TokenStore::save_if`] (a
/// compare-and-swap on the refresh token) and [`TokenStore::claim_refresh`] (who may spend a refresh token now).
/// The defaults of both are only safe within one process: a store shared between processes overrides them with a
/// conditional write (e.g. `UPDATE tokens SET ... WHERE refresh_token = $expected`) and a lease.
pub trait TokenStore: Send + Sync + fmt::Debug {
    /// The stored set, if any.
    fn load(&self) -> BoxFuture<'_, Result<Option<TokenSet>, TokenStoreError>>;

    /// Replaces the stored set unconditionally (a new authorization). Must be durable when it returns.
    fn save<'a>(&'a self, tokens: &'a TokenSet) -> BoxFuture<'a, Result<(), TokenStoreError>>;

    /// Compare-and-swap: replaces the stored set with `tokens` only if the stored refresh token is still
    /// `expected` (the one `tokens` was refreshed from). `Ok(true)`: saved, durably. `Ok(false)`: the store holds
    /// something else (another session refreshed or re-authorized); nothing was written, [`TokenStore::load`] it.
    ///
    /// The default loads, compares and saves, which is atomic only when nothing else writes the store meanwhile.
    fn save_if<'a>(
        &'a self,
        expected: &'a Token,
        tokens: &'a TokenSet,
    ) -> BoxFuture<'a, Result<bool, TokenStoreError>> {
        Box::pin(async move {
            let holds_expected = self.load().await?.is_some_and(|cur| cur.has_refresh_token(expected));
            if !holds_expected {
                return Ok(false);
            }
            self.save(tokens).await?;
            Ok(true)
        })
    }

    /// Claims the right to send `refresh_token` to the token endpoint, for `holder` (a session id) until `until`
    /// (unix seconds; `now` is the caller's clock). `Ok(true)` when the stored refresh token is still
    /// `refresh_token` and no other holder has a claim on it that is live at `now` (a holder may renew its own);
    /// `Ok(false)` otherwise: another session is refreshing, or already did ([`TokenStore::load`] tells which).
    /// Any save ends the claim.
    ///
    /// The default grants every claim: sessions of one process are single-flight anyway, but two processes on a
    /// store without claims may both spend the token (the loser then gets `invalid_grant`, reloads the store and
    /// adopts the winner's pair, unless the winner has not saved it yet).
    fn claim_refresh<'a>(
        &'a self,
        refresh_token: &'a Token,
        holder: &'a str,
        now: i64,
        until: i64,
    ) -> BoxFuture<'a, Result<bool, TokenStoreError>> {
        let _ = (refresh_token, holder, now, until);
        Box::pin(async { Ok(true) })
    }
}

#[derive(Debug, Default)]
struct MemoryState {
    tokens: Option<TokenSet>,
    claim: Option<(String, i64)>,
}

/// A token store in memory (tests, short-lived tools). Clones share the store; [`TokenStore::save_if`] and
/// [`TokenStore::claim_refresh`] are atomic, so sessions sharing one behave like processes sharing a database.
#[derive(Debug, Default, Clone)]
pub struct MemoryTokenStore(Arc<StdMutex<MemoryState>>);

impl MemoryTokenStore {
    /// A store holding `tokens`.
    #[must_use]
    pub fn new(tokens: Option<TokenSet>) -> Self {
        Self(Arc::new(StdMutex::new(MemoryState { tokens, claim: None })))
    }

    fn state(&self) -> std::sync::MutexGuard<'_, MemoryState> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl TokenStore for MemoryTokenStore {
    fn load(&self) -> BoxFuture<'_, Result<Option<TokenSet>, TokenStoreError>> {
        let v = self.state().tokens.clone();
        Box::pin(async move { Ok(v) })
    }

    fn save<'a>(&'a self, tokens: &'a TokenSet) -> BoxFuture<'a, Result<(), TokenStoreError>> {
        let mut st = self.state();
        st.tokens = Some(tokens.clone());
        st.claim = None;
        Box::pin(async { Ok(()) })
    }

    fn save_if<'a>(
        &'a self,
        expected: &'a Token,
        tokens: &'a TokenSet,
    ) -> BoxFuture<'a, Result<bool, TokenStoreError>> {
        let mut st = self.state();
        let ok = st.tokens.as_ref().is_some_and(|cur| cur.has_refresh_token(expected));
        if ok {
            st.tokens = Some(tokens.clone());
            st.claim = None;
        }
        Box::pin(async move { Ok(ok) })
    }

    fn claim_refresh<'a>(
        &'a self,
        refresh_token: &'a Token,
        holder: &'a str,
        now: i64,
        until: i64,
    ) -> BoxFuture<'a, Result<bool, TokenStoreError>> {
        let mut st = self.state();
        let current = st.tokens.as_ref().is_some_and(|cur| cur.has_refresh_token(refresh_token));
        let free = st.claim.as_ref().is_none_or(|(h, u)| h == holder || *u <= now);
        let ok = current && free;
        if ok {
            st.claim = Some((holder.to_owned(), until));
        }
        Box::pin(async move { Ok(ok) })
    }
}

/// A token store in a JSON file, written atomically (temp file + rename) with mode 0600 on Unix.
///
/// Writes, [`TokenStore::save_if`] and [`TokenStore::claim_refresh`] hold an exclusive lock on `<path>.lock`
/// (an OS file lock), so processes on one machine sharing the file never spend the same refresh token.
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

    /// Runs `f` on the file while holding the lock file's exclusive lock (between processes too).
    async fn locked<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Path) -> Result<T, TokenStoreError> + Send + 'static,
    ) -> Result<T, TokenStoreError> {
        let path = self.path.clone();
        let mut lock_path = path.clone().into_os_string();
        lock_path.push(".lock");
        let lock_path = PathBuf::from(lock_path);
        tokio::task::spawn_blocking(move || {
            let err = |e: std::io::Error| TokenStoreError(format!("lock {}: {e}", lock_path.display()));
            let mut opts = std::fs::OpenOptions::new();
            opts.write(true).create(true).truncate(false);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
            let lock = opts.open(&lock_path).map_err(err)?;
            lock.lock().map_err(err)?;
            let out = f(&path);
            drop(lock); // closing the file releases the lock
            out
        })
        .await
        .map_err(|e| TokenStoreError(format!("token store task: {e}")))?
    }
}

fn read_stored(path: &Path) -> Result<Option<StoredTokenSet>, TokenStoreError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(TokenStoreError(format!("read {}: {e}", path.display()))),
    };
    serde_json::from_slice(&bytes).map(Some).map_err(|e| TokenStoreError(format!("parse {}: {e}", path.display())))
}

fn write_stored(path: &Path, stored: &StoredTokenSet) -> Result<(), TokenStoreError> {
    use std::io::Write as _;
    let bytes = serde_json::to_vec_pretty(stored).map_err(|e| TokenStoreError(e.to_string()))?;
    let tmp = path.with_extension("tmp");
    let err = |e: std::io::Error| TokenStoreError(format!("write {}: {e}", path.display()));
    {
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let mut f = opts.open(&tmp).map_err(err)?;
        f.write_all(&bytes).map_err(err)?;
        f.sync_all().map_err(err)?;
    }
    std::fs::rename(&tmp, path).map_err(err)?;
    Ok(())
}

impl TokenStore for FileTokenStore {
    fn load(&self) -> BoxFuture<'_, Result<Option<TokenSet>, TokenStoreError>> {
        Box::pin(async move {
            // the file is replaced by rename, so a read never sees half a write
            let path = self.path.clone();
            let stored = tokio::task::spawn_blocking(move || read_stored(&path))
                .await
                .map_err(|e| TokenStoreError(format!("token store task: {e}")))??;
            Ok(stored.map(StoredTokenSet::into_set))
        })
    }

    fn save<'a>(&'a self, tokens: &'a TokenSet) -> BoxFuture<'a, Result<(), TokenStoreError>> {
        let stored = StoredTokenSet::from_set(tokens);
        Box::pin(self.locked(move |path| write_stored(path, &stored)))
    }

    fn save_if<'a>(
        &'a self,
        expected: &'a Token,
        tokens: &'a TokenSet,
    ) -> BoxFuture<'a, Result<bool, TokenStoreError>> {
        let stored = StoredTokenSet::from_set(tokens);
        let expected = expected.clone();
        Box::pin(self.locked(move |path| {
            if !read_stored(path)?.is_some_and(|cur| cur.refresh_is(&expected)) {
                return Ok(false);
            }
            write_stored(path, &stored)?;
            Ok(true)
        }))
    }

    fn claim_refresh<'a>(
        &'a self,
        refresh_token: &'a Token,
        holder: &'a str,
        now: i64,
        until: i64,
    ) -> BoxFuture<'a, Result<bool, TokenStoreError>> {
        let refresh_token = refresh_token.clone();
        let holder = holder.to_owned();
        Box::pin(self.locked(move |path| {
            let Some(mut cur) = read_stored(path)? else { return Ok(false) };
            let free = cur.refresh_claim.as_ref().is_none_or(|c| c.holder == holder || c.until <= now);
            if !cur.refresh_is(&refresh_token) || !free {
                return Ok(false);
            }
            cur.refresh_claim = Some(StoredClaim { holder, until });
            write_stored(path, &cur)?;
            Ok(true)
        }))
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
    /// The token endpoint failed transiently (network, 5xx), or another session has been refreshing for too
    /// long: try again later.
    #[error("token refresh failed: {0}")]
    Refresh(String),
    /// The token store failed (when no valid access token was at hand).
    #[error(transparent)]
    Store(#[from] TokenStoreError),
}

/// The vendor's token endpoint call.
pub trait Refresher: Send + Sync + fmt::Debug {
    /// Exchanges `refresh_token` for a new token set. Map `invalid_grant` to [`AuthError::Revoked`].
    fn refresh<'a>(&'a self, refresh_token: &'a Token) -> BoxFuture<'a, Result<TokenSet, AuthError>>;
}

/// How long a session waits before trying again after a transient refresh failure, while its access token is
/// still valid.
const TRANSIENT_RETRY_SECS: i64 = 10;
/// How often a session whose token has expired looks at the store while another session holds the claim.
const CLAIM_POLL: Duration = Duration::from_millis(50);

#[derive(Default)]
struct SessionState {
    /// The set in use (loaded from the store on first use).
    current: Option<TokenSet>,
    /// `Some(spent)` while `current` is not in the store yet: the store still holds the spent refresh token
    /// `spent`, which the next [`TokenStore::save_if`] expects.
    unsaved: Option<Token>,
    /// After a transient failure inside the early-refresh window: no new attempt before this (unix seconds).
    retry_at: Option<i64>,
}

/// One OAuth session (one account): see the module docs.
pub struct OAuthSession {
    store: Arc<dyn TokenStore>,
    refresher: Arc<dyn Refresher>,
    state: tokio::sync::Mutex<SessionState>,
    skew: Duration,
    claim_ttl: Duration,
    clock: Arc<dyn Clock>,
    holder: String,
}

impl fmt::Debug for OAuthSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuthSession")
            .field("store", &self.store)
            .field("refresher", &self.refresher)
            .field("skew", &self.skew)
            .field("claim_ttl", &self.claim_ttl)
            .field("holder", &self.holder)
            .finish_non_exhaustive()
    }
}

enum Need<'a> {
    /// A token to send now (refresh when due).
    Fresh,
    /// The server rejected this one.
    Replace(&'a Token),
}

impl OAuthSession {
    /// A session over `store` and `refresher`, refreshing 5 minutes before expiry.
    pub fn new(store: Arc<dyn TokenStore>, refresher: Arc<dyn Refresher>) -> Self {
        Self {
            store,
            refresher,
            state: tokio::sync::Mutex::new(SessionState::default()),
            skew: Duration::from_secs(300),
            claim_ttl: Duration::from_secs(30),
            clock: Arc::new(SystemClock),
            holder: format!("{}-{:016x}", std::process::id(), rand::random::<u64>()),
        }
    }

    /// Sets how long before expiry to refresh.
    #[must_use]
    pub fn with_skew(mut self, skew: Duration) -> Self {
        self.skew = skew;
        self
    }

    /// Sets how long a claim on the refresh token lasts (default 30 s): longer than a token request can take.
    /// A session whose token has expired waits up to twice this for another session's refresh.
    #[must_use]
    pub fn with_claim_ttl(mut self, ttl: Duration) -> Self {
        self.claim_ttl = ttl;
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
        let mut st = self.state.lock().await;
        self.store.save(&tokens).await?;
        *st = SessionState { current: Some(tokens), ..SessionState::default() };
        Ok(())
    }

    /// A valid access token, refreshing first when it expires within the skew.
    ///
    /// # Errors
    /// [`AuthError`].
    pub async fn access_token(&self) -> Result<Token, AuthError> {
        let mut st = self.state.lock().await;
        self.obtain(&mut st, &Need::Fresh).await
    }

    /// Called after a 401 with the token that was rejected: refreshes once, unless another task or session
    /// already did.
    ///
    /// # Errors
    /// [`AuthError`]; [`AuthError::Revoked`] when there is no refresh token to try.
    pub async fn refresh_after_unauthorized(&self, rejected: &Token) -> Result<Token, AuthError> {
        let mut st = self.state.lock().await;
        self.obtain(&mut st, &Need::Replace(rejected)).await
    }

    fn due(&self, set: &TokenSet, now: i64) -> bool {
        let skew = i64::try_from(self.skew.as_secs()).unwrap_or(i64::MAX);
        set.expires_at.is_some_and(|exp| exp.saturating_sub(skew) <= now)
    }

    fn ttl_secs(&self) -> i64 {
        i64::try_from(self.claim_ttl.as_secs().max(1)).unwrap_or(i64::MAX)
    }

    async fn obtain(&self, st: &mut SessionState, need: &Need<'_>) -> Result<Token, AuthError> {
        if st.current.is_none() {
            st.current = self.store.load().await?;
        }
        self.retry_save(st).await;
        let give_up = tokio::time::Instant::now() + self.claim_ttl * 2;
        loop {
            let now = self.clock.unix_seconds();
            let cur = st.current.clone().ok_or(AuthError::NoTokens)?;
            let still_valid = cur.expires_at.is_none_or(|exp| exp > now);
            match need {
                Need::Fresh => {
                    let backing_off = still_valid && st.retry_at.is_some_and(|t| now < t);
                    if !self.due(&cur, now) || cur.refresh_token.is_none() || backing_off {
                        return Ok(cur.access_token);
                    }
                }
                Need::Replace(rejected) => {
                    if !cur.access_token.ct_eq(rejected.expose()) {
                        return Ok(cur.access_token);
                    }
                    if cur.refresh_token.is_none() {
                        return Err(AuthError::Revoked("access token rejected and no refresh token".into()));
                    }
                }
            }
            let Some(spend) = cur.refresh_token.clone() else { return Err(AuthError::NoTokens) };
            // inside the early-refresh window a failure to refresh is no reason to stop using the valid token
            let early = matches!(need, Need::Fresh) && still_valid;

            // Between processes the store is the truth. While our own pair is unsaved, the store still holds the
            // spent token, so there is nothing to learn from it and no claim to take.
            if st.unsaved.is_none() {
                match self.store.load().await {
                    Ok(Some(stored)) if !stored.same_as(&cur) => {
                        tracing::info!("OAuth: using the token set another session stored");
                        st.current = Some(stored);
                        st.retry_at = None;
                        continue;
                    }
                    Ok(_) => {}
                    Err(e) if early => return Ok(keep_using(st, cur, now, &e)),
                    Err(e) => return Err(e.into()),
                }
                let until = now.saturating_add(self.ttl_secs());
                match self.store.claim_refresh(&spend, &self.holder, now, until).await {
                    Ok(true) => {}
                    Ok(false) if early => return Ok(cur.access_token),
                    Ok(false) => {
                        // another session is spending this refresh token: wait for its pair in the store
                        if tokio::time::Instant::now() >= give_up {
                            return Err(AuthError::Refresh("another session holds the refresh claim".into()));
                        }
                        tokio::time::sleep(CLAIM_POLL).await;
                        continue;
                    }
                    Err(e) if early => return Ok(keep_using(st, cur, now, &e)),
                    Err(e) => return Err(e.into()),
                }
            }

            match self.refresher.refresh(&spend).await {
                Ok(mut new) => {
                    if new.refresh_token.is_none() {
                        // vendors that do not rotate keep the old refresh token valid
                        new.refresh_token = Some(spend.clone());
                    }
                    // the store holds the token refreshed from, or an older spent one if an earlier save failed
                    let expected = st.unsaved.take().unwrap_or(spend);
                    st.current = Some(new);
                    st.unsaved = Some(expected);
                    st.retry_at = None;
                    tracing::info!("OAuth tokens refreshed");
                    self.retry_save(st).await;
                    return st.current.as_ref().map(|s| s.access_token.clone()).ok_or(AuthError::NoTokens);
                }
                Err(AuthError::Revoked(why)) => {
                    // someone else may have spent it: then their pair is in the store
                    if st.unsaved.is_none()
                        && let Ok(Some(stored)) = self.store.load().await
                        && !stored.has_refresh_token(&spend)
                    {
                        tracing::info!("OAuth: refresh token already spent by another session; using its pair");
                        st.current = Some(stored);
                        continue;
                    }
                    if early {
                        // the access token still works; a session that won a race may not have saved yet
                        return Ok(keep_using(st, cur, now, &AuthError::Revoked(why)));
                    }
                    return Err(AuthError::Revoked(why));
                }
                Err(e) if early => return Ok(keep_using(st, cur, now, &e)),
                Err(e) => return Err(e),
            }
        }
    }

    /// Stores a refreshed pair that is not in the store yet (compare-and-swap on the spent refresh token). A
    /// failure leaves it for the next call; the pair stays in use either way.
    async fn retry_save(&self, st: &mut SessionState) {
        let (Some(expected), Some(cur)) = (st.unsaved.clone(), st.current.clone()) else { return };
        match self.store.save_if(&expected, &cur).await {
            Ok(true) => {
                st.unsaved = None;
                tracing::info!("OAuth tokens stored");
            }
            Ok(false) => match self.store.load().await {
                Ok(Some(stored)) => {
                    // not a refresh of the token we spent (that was ours alone): a new authorization
                    tracing::warn!("OAuth: the store holds another token set (re-authorized?); using it");
                    st.current = Some(stored);
                    st.unsaved = None;
                }
                Ok(None) => match self.store.save(&cur).await {
                    Ok(()) => st.unsaved = None,
                    Err(e) => tracing::warn!(error = %e, "OAuth tokens not stored yet; kept in memory"),
                },
                Err(e) => tracing::warn!(error = %e, "OAuth tokens not stored yet; kept in memory"),
            },
            Err(e) => {
                tracing::warn!(error = %e, "OAuth tokens not stored yet; kept in memory, retrying on the next call");
            }
        }
    }
}

/// The early-refresh window's answer to a failed refresh: the still-valid token, and a pause before the next try.
fn keep_using(st: &mut SessionState, cur: TokenSet, now: i64, e: &dyn fmt::Display) -> Token {
    tracing::warn!(error = %e, "OAuth refresh failed; the access token is still valid, retrying later");
    st.retry_at = Some(now.saturating_add(TRANSIENT_RETRY_SECS));
    cur.access_token
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
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

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

    /// A token endpoint like Kommo's: refresh tokens are single use (a spent one answers `invalid_grant`), it
    /// records every refresh token sent, takes `delay` to answer, and can fail transiently.
    #[derive(Debug)]
    struct Endpoint {
        valid: StdMutex<Vec<String>>,
        sent: StdMutex<Vec<String>>,
        issued: AtomicUsize,
        fail_next: AtomicUsize,
        delay: Duration,
        revoked_delay: Duration,
    }

    impl Endpoint {
        fn new() -> Self {
            Self {
                valid: StdMutex::new(vec!["refresh0".into()]),
                sent: StdMutex::new(Vec::new()),
                issued: AtomicUsize::new(0),
                fail_next: AtomicUsize::new(0),
                delay: Duration::from_millis(100),
                revoked_delay: Duration::from_millis(100),
            }
        }
        fn sent(&self) -> Vec<String> {
            self.sent.lock().unwrap().clone()
        }
    }

    impl Refresher for Endpoint {
        fn refresh<'a>(&'a self, rt: &'a Token) -> BoxFuture<'a, Result<TokenSet, AuthError>> {
            Box::pin(async move {
                self.sent.lock().unwrap().push(rt.expose().to_owned());
                if self.fail_next.load(Ordering::SeqCst) > 0 {
                    self.fail_next.fetch_sub(1, Ordering::SeqCst);
                    tokio::time::sleep(self.delay).await;
                    return Err(AuthError::Refresh("HTTP 503".into()));
                }
                let ok = {
                    let mut valid = self.valid.lock().unwrap();
                    let known = valid.iter().any(|v| v == rt.expose());
                    valid.retain(|v| v != rt.expose()); // single use: spent on arrival
                    known
                };
                if !ok {
                    tokio::time::sleep(self.revoked_delay).await;
                    return Err(AuthError::Revoked("Token has been revoked".into()));
                }
                let n = self.issued.fetch_add(1, Ordering::SeqCst) + 1;
                self.valid.lock().unwrap().push(format!("refresh{n}"));
                tokio::time::sleep(self.delay).await;
                Ok(TokenSet {
                    access_token: Token::new(format!("access{n}")),
                    refresh_token: Some(Token::new(format!("refresh{n}"))),
                    expires_at: Some(1_000_000 + 86_400 * i64::try_from(n).unwrap()),
                })
            })
        }
    }

    /// A store with only `load` and `save` (the trait's defaults for the rest) whose saves can be made to fail.
    #[derive(Debug, Default, Clone)]
    struct FlakyStore {
        inner: MemoryTokenStore,
        fail: Arc<AtomicBool>,
    }

    impl TokenStore for FlakyStore {
        fn load(&self) -> BoxFuture<'_, Result<Option<TokenSet>, TokenStoreError>> {
            self.inner.load()
        }
        fn save<'a>(&'a self, t: &'a TokenSet) -> BoxFuture<'a, Result<(), TokenStoreError>> {
            if self.fail.load(Ordering::SeqCst) {
                return Box::pin(async { Err(TokenStoreError("disk full".into())) });
            }
            self.inner.save(t)
        }
    }

    fn initial(exp: i64) -> TokenSet {
        TokenSet {
            access_token: Token::new("access0"),
            refresh_token: Some(Token::new("refresh0")),
            expires_at: Some(exp),
        }
    }

    fn session(store: Arc<dyn TokenStore>, endpoint: Arc<Endpoint>, clock: &FixedClock) -> Arc<OAuthSession> {
        Arc::new(OAuthSession::new(store, endpoint).with_clock(Arc::new(clock.clone())))
    }

    async fn stored_refresh(store: &dyn TokenStore) -> String {
        store.load().await.unwrap().unwrap().refresh_token.unwrap().expose().to_owned()
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

    #[tokio::test(start_paused = true)]
    async fn two_sessions_sharing_a_store_spend_the_refresh_token_once() {
        let clock = FixedClock::at_unix(1_000_000);
        let store = MemoryTokenStore::new(Some(initial(999_000))); // expired
        let endpoint = Arc::new(Endpoint::new());
        let a = session(Arc::new(store.clone()), endpoint.clone(), &clock);
        let b = session(Arc::new(store.clone()), endpoint.clone(), &clock);
        // both load the expired pair first, as two processes would
        assert_eq!(a.refresh_after_unauthorized(&Token::new("x")).await.unwrap().expose(), "access0");
        assert_eq!(b.refresh_after_unauthorized(&Token::new("x")).await.unwrap().expose(), "access0");
        let (ta, tb) = tokio::join!(a.access_token(), b.access_token());
        assert_eq!(endpoint.sent(), vec!["refresh0"], "the refresh token is spent exactly once");
        assert_eq!(ta.unwrap().expose(), "access1");
        assert_eq!(tb.unwrap().expose(), "access1");
        assert_eq!(stored_refresh(&store).await, "refresh1");
    }

    #[tokio::test(start_paused = true)]
    async fn the_loser_of_a_race_on_a_store_without_claims_adopts_the_winners_pair() {
        let clock = FixedClock::at_unix(1_000_000);
        let store = FlakyStore::default();
        store.inner.save(&initial(999_000)).await.unwrap();
        let mut endpoint = Endpoint::new();
        endpoint.revoked_delay = Duration::from_millis(300); // the winner saves before the loser hears "revoked"
        let endpoint = Arc::new(endpoint);
        let a = session(Arc::new(store.clone()), endpoint.clone(), &clock);
        let b = session(Arc::new(store.clone()), endpoint.clone(), &clock);
        let (ta, tb) = tokio::join!(a.access_token(), b.access_token());
        assert_eq!(ta.unwrap().expose(), "access1");
        assert_eq!(tb.unwrap().expose(), "access1", "after invalid_grant the store is reloaded");
        assert_eq!(stored_refresh(&store).await, "refresh1");
    }

    #[tokio::test(start_paused = true)]
    async fn a_401_after_another_session_refreshed_adopts_its_pair() {
        let clock = FixedClock::at_unix(1_000_000);
        let store = MemoryTokenStore::new(Some(initial(2_000_000)));
        let endpoint = Arc::new(Endpoint::new());
        let a = session(Arc::new(store.clone()), endpoint.clone(), &clock);
        let b = session(Arc::new(store.clone()), endpoint.clone(), &clock);
        assert_eq!(b.access_token().await.unwrap().expose(), "access0");
        assert_eq!(a.refresh_after_unauthorized(&Token::new("access0")).await.unwrap().expose(), "access1");
        // b still holds access0/refresh0 in memory; refresh0 is spent
        assert_eq!(b.refresh_after_unauthorized(&Token::new("access0")).await.unwrap().expose(), "access1");
        assert_eq!(endpoint.sent(), vec!["refresh0"]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_refreshed_pair_that_cannot_be_stored_is_used_and_stored_later() {
        let clock = FixedClock::at_unix(1_000_000);
        let store = FlakyStore::default();
        store.inner.save(&initial(999_000)).await.unwrap();
        store.fail.store(true, Ordering::SeqCst);
        let endpoint = Arc::new(Endpoint::new());
        let s = session(Arc::new(store.clone()), endpoint.clone(), &clock);
        // refresh0 is spent the moment the endpoint answers: the new pair is used although the save failed
        assert_eq!(s.access_token().await.unwrap().expose(), "access1");
        assert_eq!(s.access_token().await.unwrap().expose(), "access1");
        assert_eq!(stored_refresh(&store).await, "refresh0", "not stored yet");
        store.fail.store(false, Ordering::SeqCst);
        assert_eq!(s.access_token().await.unwrap().expose(), "access1");
        assert_eq!(stored_refresh(&store).await, "refresh1", "stored on the next call");
        // failing again through the next refresh: it spends refresh1 (never refresh0), then stores refresh2
        store.fail.store(true, Ordering::SeqCst);
        clock.advance(Duration::from_secs(86_400));
        assert_eq!(s.access_token().await.unwrap().expose(), "access2");
        assert_eq!(stored_refresh(&store).await, "refresh1");
        store.fail.store(false, Ordering::SeqCst);
        assert_eq!(s.refresh_after_unauthorized(&Token::new("access1")).await.unwrap().expose(), "access2");
        assert_eq!(stored_refresh(&store).await, "refresh2");
        assert_eq!(endpoint.sent(), vec!["refresh0", "refresh1"], "a spent refresh token is never sent again");
    }

    #[tokio::test(start_paused = true)]
    async fn a_transient_failure_in_the_early_window_keeps_the_valid_token() {
        let clock = FixedClock::at_unix(1_000_000);
        let store = MemoryTokenStore::new(Some(initial(1_000_100))); // valid, but inside the 5-minute skew
        let endpoint = Arc::new(Endpoint::new());
        endpoint.fail_next.store(1, Ordering::SeqCst);
        let s = session(Arc::new(store.clone()), endpoint.clone(), &clock);
        assert_eq!(s.access_token().await.unwrap().expose(), "access0");
        assert_eq!(s.access_token().await.unwrap().expose(), "access0");
        assert_eq!(endpoint.sent().len(), 1, "no hammering of a failing endpoint");
        clock.advance(Duration::from_secs(11));
        assert_eq!(s.access_token().await.unwrap().expose(), "access1");
        assert_eq!(stored_refresh(&store).await, "refresh1");
        // past expiry a failure is an error
        clock.advance(Duration::from_secs(86_400));
        endpoint.fail_next.store(1, Ordering::SeqCst);
        assert!(matches!(s.access_token().await, Err(AuthError::Refresh(_))));
    }

    #[tokio::test(start_paused = true)]
    async fn an_expired_session_waits_for_the_claim_holder() {
        let clock = FixedClock::at_unix(1_000_000);
        let store = MemoryTokenStore::new(Some(initial(999_000)));
        assert!(store.claim_refresh(&Token::new("refresh0"), "other", 1_000_000, 1_000_030).await.unwrap());
        let endpoint = Arc::new(Endpoint::new());
        let s = session(Arc::new(store.clone()), endpoint.clone(), &clock);
        let other = store.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let mut new = initial(1_086_400);
            new.access_token = Token::new("theirs");
            new.refresh_token = Some(Token::new("their-refresh"));
            assert!(other.save_if(&Token::new("refresh0"), &new).await.unwrap());
        });
        assert_eq!(s.access_token().await.unwrap().expose(), "theirs");
        assert!(endpoint.sent().is_empty());
        // a claim that is never released expires
        assert!(store.claim_refresh(&Token::new("their-refresh"), "other", 1_000_000, 1_000_000).await.unwrap());
        clock.advance(Duration::from_secs(86_400));
        assert!(matches!(s.access_token().await, Err(AuthError::Revoked(_))), "their-refresh is unknown here");
        assert_eq!(endpoint.sent(), vec!["their-refresh"]);
    }

    #[tokio::test]
    async fn memory_store_compare_and_swap_and_claims() {
        let store = MemoryTokenStore::new(Some(initial(1)));
        let mut next = initial(2);
        next.refresh_token = Some(Token::new("refresh1"));
        assert!(!store.save_if(&Token::new("other"), &next).await.unwrap());
        assert!(store.claim_refresh(&Token::new("refresh0"), "a", 100, 130).await.unwrap());
        assert!(store.claim_refresh(&Token::new("refresh0"), "a", 101, 131).await.unwrap(), "renewable");
        assert!(!store.claim_refresh(&Token::new("refresh0"), "b", 101, 131).await.unwrap());
        assert!(store.claim_refresh(&Token::new("refresh0"), "b", 131, 161).await.unwrap(), "expired");
        assert!(!store.claim_refresh(&Token::new("spent"), "c", 200, 230).await.unwrap());
        assert!(store.save_if(&Token::new("refresh0"), &next).await.unwrap());
        assert_eq!(stored_refresh(&store).await, "refresh1");
        assert!(!store.save_if(&Token::new("refresh0"), &initial(3)).await.unwrap(), "only once");
        assert!(store.claim_refresh(&Token::new("refresh1"), "c", 132, 162).await.unwrap(), "a save ends claims");
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

    #[tokio::test]
    async fn file_store_compare_and_swap_and_claims() {
        let dir = std::env::temp_dir().join(format!("api-core-oauth-cas-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let store = FileTokenStore::new(dir.join("tokens.json"));
        assert!(!store.claim_refresh(&Token::new("refresh0"), "a", 100, 130).await.unwrap(), "empty store");
        store.save(&initial(1)).await.unwrap();
        let mut next = initial(2);
        next.refresh_token = Some(Token::new("refresh1"));
        assert!(!store.save_if(&Token::new("other"), &next).await.unwrap());
        assert!(store.claim_refresh(&Token::new("refresh0"), "a", 100, 130).await.unwrap());
        // a second handle on the same file (another process) sees the claim
        let other = FileTokenStore::new(dir.join("tokens.json"));
        assert!(!other.claim_refresh(&Token::new("refresh0"), "b", 101, 131).await.unwrap());
        assert!(other.claim_refresh(&Token::new("refresh0"), "b", 130, 160).await.unwrap(), "expired");
        assert_eq!(store.load().await.unwrap().unwrap().expires_at, Some(1), "a claim keeps the tokens");
        assert!(store.save_if(&Token::new("refresh0"), &next).await.unwrap());
        assert!(!other.save_if(&Token::new("refresh0"), &initial(3)).await.unwrap(), "only once");
        assert_eq!(stored_refresh(&other).await, "refresh1");
        assert!(other.claim_refresh(&Token::new("refresh1"), "c", 131, 161).await.unwrap(), "a save ends claims");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn two_sessions_sharing_a_file_spend_the_refresh_token_once() {
        let dir = std::env::temp_dir().join(format!("api-core-oauth-two-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("tokens.json");
        FileTokenStore::new(&path).save(&initial(999_000)).await.unwrap();
        let clock = FixedClock::at_unix(1_000_000);
        let endpoint = Arc::new(Endpoint::new());
        let a = session(Arc::new(FileTokenStore::new(&path)), endpoint.clone(), &clock);
        let b = session(Arc::new(FileTokenStore::new(&path)), endpoint.clone(), &clock);
        let (ta, tb) = tokio::join!(a.access_token(), b.access_token());
        assert_eq!(endpoint.sent(), vec!["refresh0"]);
        assert_eq!((ta.unwrap().expose(), tb.unwrap().expose()), ("access1", "access1"));
        assert_eq!(stored_refresh(&FileTokenStore::new(&path)).await, "refresh1");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
