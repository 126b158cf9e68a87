//! [`Client`] and its builder: bearer auth (personal access token or OAuth), base URL, retries, rate limits.

use std::{
    fmt,
    sync::{Arc, Mutex},
    time::Duration,
};

use api_core::{
    Auth, HttpClient, OAuthSession, Page, RateBudget, RateLimiter, RawResponse, Request, ReqwestTransport, RetryPolicy,
    Rule, Token, Transport, TransportConfig,
};
use futures::Stream;
use serde::{Deserialize, de::DeserializeOwned};
use url::Url;

use crate::{
    error::{ApiError, Error},
    ratelimit::{RateLimitInfo, classify},
};

/// The production API base URL.
pub const DEFAULT_BASE_URL: &str = "https://api.calendly.com";
/// The production OAuth base URL (`/oauth/token`, `/oauth/authorize`, `/oauth/revoke`).
pub const DEFAULT_AUTH_BASE_URL: &str = "https://auth.calendly.com";
/// The largest page Calendly serves (`count` ≤ 100).
pub const MAX_PAGE_SIZE: u32 = 100;
/// The rate-limit key all requests of one client share (Calendly limits per user; one client = one user).
pub const RATE_KEY: &str = "calendly";
/// The rate-limit key of `POST /invitees` (the Scheduling API), which has its own, much lower limits (paid
/// non-Enterprise: 10/min, 50/h, 100/day per user; api-notes/calendly.md §1 "Rate limits"): its `X-RateLimit-*`
/// answers and 429s hold this key only, never the rest of the client. The request also takes a slot of
/// [`RATE_KEY`] first, since it counts against the general limit too.
pub const SCHEDULING_API_RATE_KEY: &str = "calendly:scheduling_api";

/// A Calendly API v2 client. Cheap to clone; clones share the connection pool, rate limiter and OAuth session.
///
/// `Debug` never shows the token.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    http: HttpClient,
    auth: Auth,
    base_url: Url,
    auth_base_url: Url,
    last_rate_limit: Mutex<Option<RateLimitInfo>>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("base_url", &self.inner.base_url.as_str())
            .field("auth_base_url", &self.inner.auth_base_url.as_str())
            .field("auth", &self.inner.auth)
            .field("http", &self.inner.http)
            .finish_non_exhaustive()
    }
}

/// Builds a [`Client`]. Start with [`Client::builder`].
#[must_use]
pub struct ClientBuilder {
    auth: Option<Auth>,
    base_url: String,
    auth_base_url: String,
    transport: TransportConfig,
    custom_transport: Option<Arc<dyn Transport>>,
    retry: RetryPolicy,
    limiter: Option<Arc<dyn RateBudget>>,
}

impl fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("auth", &self.auth)
            .field("base_url", &self.base_url)
            .field("auth_base_url", &self.auth_base_url)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

impl Default for ClientBuilder {
    fn default() -> Self {
        Self {
            auth: None,
            base_url: DEFAULT_BASE_URL.to_owned(),
            auth_base_url: DEFAULT_AUTH_BASE_URL.to_owned(),
            transport: TransportConfig::new(api_core::user_agent!()),
            custom_transport: None,
            retry: RetryPolicy::default(),
            limiter: None,
        }
    }
}

impl ClientBuilder {
    /// Authenticates with a personal access token (or any fixed bearer token): a [`Token`], a `String` or a
    /// `&str`.
    pub fn token(mut self, token: impl Into<Token>) -> Self {
        self.auth = Some(Auth::Static(token.into()));
        self
    }

    /// Authenticates with an OAuth session (see [`crate::oauth::CalendlyRefresher`]): access tokens are refreshed
    /// ahead of expiry and once after a 401, single-flight, never sending a spent (rotated) refresh token.
    pub fn oauth(mut self, session: Arc<OAuthSession>) -> Self {
        self.auth = Some(Auth::OAuth(session));
        self
    }

    /// Sets the credentials directly.
    pub fn auth(mut self, auth: Auth) -> Self {
        self.auth = Some(auth);
        self
    }

    /// Overrides the API base URL (default [`DEFAULT_BASE_URL`]), e.g. for the fake or a proxy.
    pub fn base_url(mut self, url: impl AsRef<str>) -> Self {
        self.base_url = url.as_ref().to_owned();
        self
    }

    /// Overrides the OAuth base URL (default [`DEFAULT_AUTH_BASE_URL`]); kept for [`Client::auth_base_url`].
    pub fn auth_base_url(mut self, url: impl AsRef<str>) -> Self {
        self.auth_base_url = url.as_ref().to_owned();
        self
    }

    /// Connect timeout (default 10 s).
    pub fn connect_timeout(mut self, d: Duration) -> Self {
        self.transport.connect_timeout = d;
        self
    }

    /// Whole-request timeout (default 60 s).
    pub fn request_timeout(mut self, d: Duration) -> Self {
        self.transport.request_timeout = d;
        self
    }

    /// `User-Agent` (default `calendly-api/<version>`).
    pub fn user_agent(mut self, ua: impl Into<String>) -> Self {
        self.transport.user_agent = ua.into();
        self
    }

    /// Retry policy (default [`RetryPolicy::default`]: 5 attempts, 429s wait for `X-RateLimit-Reset`).
    pub fn retry_policy(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Client-side rate limiter (default: at most 500 requests per rolling minute, Calendly's paid-plan limit; the
    /// server's headers pause it earlier on the Free plan's 50). Share one limiter between clients of one user, or
    /// pass a budget shared with other processes ([`RateBudget`], e.g. sync-core's `StoreBudget`).
    pub fn rate_budget(mut self, limiter: impl RateBudget + 'static) -> Self {
        self.limiter = Some(Arc::new(limiter));
        self
    }

    /// Sends through this transport instead of reqwest (tests, recording proxies).
    pub fn transport(mut self, transport: Arc<dyn Transport>) -> Self {
        self.custom_transport = Some(transport);
        self
    }

    /// Builds the client.
    ///
    /// # Errors
    /// [`Error::InvalidRequest`] without credentials or with a bad URL; a TLS initialisation failure.
    pub fn build(self) -> Result<Client, Error> {
        let auth =
            self.auth.ok_or_else(|| Error::InvalidRequest("no credentials: call .token() or .oauth()".into()))?;
        let base_url = parse_url(&self.base_url)?;
        let auth_base_url = parse_url(&self.auth_base_url)?;
        let transport: Arc<dyn Transport> = match self.custom_transport {
            Some(t) => t,
            None => Arc::new(
                ReqwestTransport::new(self.transport)
                    .map_err(|e| Error::InvalidRequest(format!("HTTP client initialisation: {e}")))?,
            ),
        };
        let limiter = self.limiter.unwrap_or_else(|| {
            Arc::new(RateLimiter::new([Rule::Window { max: 500, window: Duration::from_secs(60) }]))
        });
        let http = HttpClient::new(base_url.clone(), transport)
            .with_budget(limiter)
            .with_default_key(RATE_KEY)
            .with_retry(self.retry)
            .with_classifier(classify);
        Ok(Client { inner: Arc::new(Inner { http, auth, base_url, auth_base_url, last_rate_limit: Mutex::new(None) }) })
    }
}

fn parse_url(s: &str) -> Result<Url, Error> {
    Url::parse(s).map_err(|e| Error::InvalidRequest(format!("bad URL {s:?}: {e}")))
}

/// `{"resource": T}`.
#[derive(Debug, Deserialize)]
pub(crate) struct Resource<T> {
    pub(crate) resource: T,
}

/// One page of a collection: `{collection: [...], pagination: {...}}`.
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq)]
#[serde(bound(deserialize = "T: DeserializeOwned"))]
pub struct Collection<T> {
    /// The items.
    pub collection: Vec<T>,
    /// Cursors.
    pub pagination: Pagination,
}

/// Calendly's `pagination` object. No totals.
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize, PartialEq, Eq)]
pub struct Pagination {
    /// Items on this page.
    #[serde(default)]
    pub count: Option<u32>,
    /// The next page's full URL, or `null`.
    #[serde(default)]
    pub next_page: Option<String>,
    /// The previous page's full URL, or `null`.
    #[serde(default)]
    pub previous_page: Option<String>,
    /// The `page_token` of the next page, or `null` on the last page.
    #[serde(default)]
    pub next_page_token: Option<String>,
    /// The `page_token` of the previous page.
    #[serde(default)]
    pub previous_page_token: Option<String>,
}

impl Client {
    /// A builder with production defaults.
    pub fn builder() -> ClientBuilder {
        ClientBuilder::default()
    }

    /// A client with a personal access token and production defaults.
    ///
    /// # Errors
    /// See [`ClientBuilder::build`].
    pub fn with_token(token: Token) -> Result<Self, Error> {
        Self::builder().token(token).build()
    }

    /// The API base URL (resource URIs from a real account start with it).
    #[must_use]
    pub fn base_url(&self) -> &Url {
        &self.inner.base_url
    }

    /// The OAuth base URL.
    #[must_use]
    pub fn auth_base_url(&self) -> &Url {
        &self.inner.auth_base_url
    }

    /// The rate budget (shared by clones; see [`ClientBuilder::rate_budget`] to share it with other processes).
    #[must_use]
    pub fn budget(&self) -> &Arc<dyn RateBudget> {
        self.inner.http.budget()
    }

    /// The `X-RateLimit-*` headers of the most recent response, if any.
    #[must_use]
    pub fn last_rate_limit(&self) -> Option<RateLimitInfo> {
        *self.inner.last_rate_limit.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Sends a request with the bearer token; a 401 with an OAuth session refreshes once and retries. Non-2xx becomes
    /// [`Error::Api`]. Use it for endpoints this crate does not wrap.
    ///
    /// # Errors
    /// [`Error`].
    pub async fn send(&self, request: Request) -> Result<RawResponse, Error> {
        let token = self.inner.auth.token().await?;
        let resp = self.send_with(request.clone(), &token).await?;
        let resp = if resp.status == http::StatusCode::UNAUTHORIZED {
            match self.inner.auth.on_unauthorized(&token).await? {
                Some(fresh) => self.send_with(request, &fresh).await?,
                None => resp,
            }
        } else {
            resp
        };
        if !resp.is_success() {
            return Err(Error::Api(Box::new(ApiError::from_response(&resp))));
        }
        Ok(resp)
    }

    async fn send_with(&self, request: Request, token: &Token) -> Result<RawResponse, Error> {
        let header = token.bearer_header().map_err(|_| Error::InvalidRequest("token is not a valid header".into()))?;
        let key = request.rate_key.clone().unwrap_or_else(|| RATE_KEY.to_owned());
        let resp = self.inner.http.execute(request.header(http::header::AUTHORIZATION, header)).await?;
        self.observe(&resp, &key).await;
        Ok(resp)
    }

    /// Records the rate-limit headers; when the window is used up, holds further requests of `key` (the request's
    /// rate key) until the reset.
    async fn observe(&self, resp: &RawResponse, key: &str) {
        let Some(info) = RateLimitInfo::from_headers(&resp.headers) else { return };
        *self.inner.last_rate_limit.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(info);
        if info.exhausted()
            && let Some(reset) = info.reset
        {
            tracing::debug!(reset_s = reset.as_secs(), key, "Calendly rate-limit window used up; pausing");
            if let Err(e) = self.inner.http.budget().pause(key, reset).await {
                tracing::warn!(error = %e, "could not record Calendly's rate-limit reset in the budget");
            }
        }
    }

    /// Sends and decodes JSON.
    pub(crate) async fn json<T: DeserializeOwned>(&self, request: Request) -> Result<T, Error> {
        let resp = self.send(request).await?;
        Ok(resp.json()?)
    }

    /// Sends and decodes `{"resource": T}`.
    pub(crate) async fn resource<T: DeserializeOwned>(&self, request: Request) -> Result<T, Error> {
        Ok(self.json::<Resource<T>>(request).await?.resource)
    }

    /// Fetches one page of a collection at `path` with `query` and an optional `page_token` (the raw form of every
    /// typed `list_*`).
    ///
    /// # Errors
    /// [`Error`].
    pub async fn page<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(String, String)],
        page_token: Option<&str>,
    ) -> Result<Collection<T>, Error> {
        let mut req = Request::get(path);
        for (k, v) in query {
            req = req.query(k.clone(), v);
        }
        req = req.query_opt("page_token", page_token);
        self.json(req).await
    }

    /// A lazy stream over every item of a collection at `path` with `query`, following
    /// `pagination.next_page_token` (the raw form of every typed `stream_*`). A repeated token ends the stream with
    /// [`Error::RepeatedCursor`]; an error ends it after yielding the error.
    pub fn stream<T>(
        &self,
        path: impl Into<String>,
        query: Vec<(String, String)>,
    ) -> impl Stream<Item = Result<T, Error>> + Send + 'static
    where
        T: DeserializeOwned + Send + 'static,
    {
        let client = self.clone();
        let path = path.into();
        api_core::paginate(None, move |cursor: Option<String>| {
            let client = client.clone();
            let path = path.clone();
            let query = query.clone();
            async move {
                let page = client.page::<T>(&path, &query, cursor.as_deref()).await?;
                let next = page.pagination.next_page_token.filter(|t| !t.is_empty());
                Ok::<_, Error>(Page { items: page.collection, next })
            }
        })
    }
}

/// Clamps a requested page size to Calendly's 1..=100.
pub(crate) fn clamp_count(n: Option<u32>) -> u32 {
    n.unwrap_or(MAX_PAGE_SIZE).clamp(1, MAX_PAGE_SIZE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_token() {
        let c = Client::builder().token(Token::new("pat-super-secret-123")).build().unwrap();
        let s = format!("{c:?}");
        assert!(!s.contains("pat-super-secret-123"), "{s}");
        assert!(s.contains("api.calendly.com"));
        let b = format!("{:?}", Client::builder().token(Token::new("pat-super-secret-123")));
        assert!(!b.contains("pat-super-secret-123"), "{b}");
    }

    #[test]
    fn client_is_send_sync_clone_debug() {
        fn assert_traits<T: Send + Sync + Clone + fmt::Debug + 'static>() {}
        assert_traits::<Client>();
    }

    #[test]
    fn needs_credentials() {
        assert!(matches!(Client::builder().build(), Err(Error::InvalidRequest(_))));
        assert!(matches!(
            Client::builder().token(Token::new("x")).base_url("not a url").build(),
            Err(Error::InvalidRequest(_))
        ));
    }

    #[test]
    fn count_clamped() {
        assert_eq!(clamp_count(None), 100);
        assert_eq!(clamp_count(Some(0)), 1);
        assert_eq!(clamp_count(Some(500)), 100);
        assert_eq!(clamp_count(Some(20)), 20);
    }
}
