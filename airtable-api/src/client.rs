//! [`Client`] and its builder: authentication, base URL, rate limits, retries.

use std::{fmt, sync::Arc, time::Duration};

use api_core::{
    HttpClient, RateLimiter, RawResponse, Request, ReqwestTransport, RetryPolicy, Rule, Token, Transport,
    TransportConfig, VendorHint,
};
use http::header::AUTHORIZATION;
use serde::de::DeserializeOwned;
use url::Url;

use crate::error::{ApiError, Error, ErrorBody, Operation, RATE_LIMIT_PENALTY};

/// The production base URL.
pub const DEFAULT_BASE_URL: &str = "https://api.airtable.com/v0";

/// Airtable's limit per base: 5 requests per second ("no burst": requests are spaced 200 ms apart).
pub const REQUESTS_PER_SECOND_PER_BASE: u32 = 5;

/// Airtable's limit per personal access token across all bases: 50 requests per second.
pub const REQUESTS_PER_SECOND_PER_TOKEN: u32 = 50;

/// Rate-limit key used for calls that are not about one base (`/meta/bases`, `/meta/whoami`).
pub const META_RATE_KEY: &str = "meta";

/// An Airtable Web API client. Cheap to clone; clones share the connection pool and the rate limiters (one budget per
/// base and one per token, as Airtable counts them).
#[derive(Clone)]
pub struct Client {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) http: HttpClient,
    pub(crate) token: Token,
    pub(crate) penalty: Duration,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("base_url", &self.inner.http.base_url().as_str())
            .field("token", &self.inner.token)
            .field("penalty_after_429", &self.inner.penalty)
            .field("http", &self.inner.http)
            .finish()
    }
}

/// Builds a [`Client`]. Only the token is required.
#[derive(Clone)]
pub struct ClientBuilder {
    token: Option<Token>,
    base_url: String,
    connect_timeout: Duration,
    request_timeout: Duration,
    user_agent: String,
    retry: RetryPolicy,
    per_base: Option<u32>,
    per_token: Option<u32>,
    limiter: Option<RateLimiter>,
    global_limiter: Option<RateLimiter>,
    penalty: Duration,
    transport: Option<Arc<dyn Transport>>,
}

impl fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("token", &self.token)
            .field("base_url", &self.base_url)
            .field("retry", &self.retry)
            .field("per_base", &self.per_base)
            .field("per_token", &self.per_token)
            .field("penalty", &self.penalty)
            .finish_non_exhaustive()
    }
}

impl Default for ClientBuilder {
    fn default() -> Self {
        Self {
            token: None,
            base_url: DEFAULT_BASE_URL.to_owned(),
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(60),
            user_agent: api_core::user_agent!().to_owned(),
            retry: RetryPolicy::default(),
            per_base: Some(REQUESTS_PER_SECOND_PER_BASE),
            per_token: Some(REQUESTS_PER_SECOND_PER_TOKEN),
            limiter: None,
            global_limiter: None,
            penalty: RATE_LIMIT_PENALTY,
            transport: None,
        }
    }
}

impl ClientBuilder {
    /// The personal access token (`pat…`) or OAuth access token, sent as `Authorization: Bearer …`.
    #[must_use]
    pub fn token(mut self, token: impl Into<Token>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// Overrides the base URL (default [`DEFAULT_BASE_URL`]); must include the `/v0` prefix, e.g.
    /// `http://127.0.0.1:4010/v0` for a fake.
    #[must_use]
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = url.into();
        self
    }

    /// Connect timeout (default 10 s).
    #[must_use]
    pub fn connect_timeout(mut self, d: Duration) -> Self {
        self.connect_timeout = d;
        self
    }

    /// Whole-request timeout per attempt (default 60 s).
    #[must_use]
    pub fn request_timeout(mut self, d: Duration) -> Self {
        self.request_timeout = d;
        self
    }

    /// `User-Agent` (default `airtable-client/<version>`).
    #[must_use]
    pub fn user_agent(mut self, ua: impl Into<String>) -> Self {
        self.user_agent = ua.into();
        self
    }

    /// Retry policy (default [`RetryPolicy::default`]: 5 attempts; 429 always retried after the 30 s penalty,
    /// 5xx retried with jitter for idempotent calls only).
    #[must_use]
    pub fn retry_policy(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Requests per second per base (default 5, spaced evenly, no burst). `None` disables the per-base limiter.
    #[must_use]
    pub fn requests_per_second_per_base(mut self, n: Option<u32>) -> Self {
        self.per_base = n;
        self
    }

    /// Requests per second per token across bases (default 50). `None` disables it.
    #[must_use]
    pub fn requests_per_second_per_token(mut self, n: Option<u32>) -> Self {
        self.per_token = n;
        self
    }

    /// Shares an existing per-base limiter (e.g. between two clients for the same bases in one process).
    #[must_use]
    pub fn base_limiter(mut self, limiter: RateLimiter) -> Self {
        self.limiter = Some(limiter);
        self
    }

    /// Shares an existing per-token limiter.
    #[must_use]
    pub fn token_limiter(mut self, limiter: RateLimiter) -> Self {
        self.global_limiter = Some(limiter);
        self
    }

    /// The wait imposed on a base after a 429 (default 30 s, Airtable's rule). Lower it only against a fake.
    #[must_use]
    pub fn penalty_after_429(mut self, d: Duration) -> Self {
        self.penalty = d;
        self
    }

    /// Sends through a custom [`Transport`] instead of reqwest (timeouts and user agent then belong to it).
    #[must_use]
    pub fn transport(mut self, transport: Arc<dyn Transport>) -> Self {
        self.transport = Some(transport);
        self
    }

    /// Builds the client.
    ///
    /// # Errors
    /// [`Error::InvalidRequest`] when the token is missing or empty, the base URL does not parse, or TLS cannot
    /// initialise.
    pub fn build(self) -> Result<Client, Error> {
        let token =
            self.token.filter(|t| !t.is_empty()).ok_or_else(|| Error::InvalidRequest("token missing".into()))?;
        token.bearer_header().map_err(|_| Error::InvalidRequest("token contains invalid header characters".into()))?;
        let mut base = self.base_url.trim_end_matches('/').to_owned();
        base.push('/');
        let base_url = Url::parse(&base).map_err(|e| Error::InvalidRequest(format!("base URL {base:?}: {e}")))?;
        let transport: Arc<dyn Transport> = match self.transport {
            Some(t) => t,
            None => {
                let mut cfg = TransportConfig::new(self.user_agent);
                cfg.connect_timeout = self.connect_timeout;
                cfg.request_timeout = self.request_timeout;
                Arc::new(ReqwestTransport::new(cfg).map_err(|e| Error::InvalidRequest(format!("transport: {e}")))?)
            }
        };
        let limiter = self.limiter.unwrap_or_else(|| match self.per_base {
            Some(n) => RateLimiter::new([Rule::per_second(n)]),
            None => RateLimiter::unlimited(),
        });
        let penalty = self.penalty;
        let mut http = HttpClient::new(base_url, transport)
            .with_limiter(limiter)
            .with_default_key(META_RATE_KEY)
            .with_retry(self.retry)
            .with_classifier(move |resp| classify(resp, penalty));
        if let Some(g) = self.global_limiter.or_else(|| self.per_token.map(|n| RateLimiter::new([Rule::per_second(n)])))
        {
            http = http.with_global_limiter(g);
        }
        Ok(Client { inner: Arc::new(Inner { http, token, penalty }) })
    }
}

/// Airtable's retry rules on top of the generic ones: a 429 means "wait `penalty` (30 s) before the next request to
/// this base" — except the billing-cap 429 (`PUBLIC_API_BILLING_LIMIT_EXCEEDED`), which no wait fixes.
#[must_use]
pub fn classify(resp: &RawResponse, penalty: Duration) -> VendorHint {
    if resp.status.as_u16() == 429 {
        let billing = serde_json::from_slice::<ErrorBody>(&resp.body)
            .is_ok_and(|b| b.kind() == "PUBLIC_API_BILLING_LIMIT_EXCEEDED");
        if billing { VendorHint::Stop } else { VendorHint::WaitAtLeast(penalty) }
    } else {
        VendorHint::Default
    }
}

impl Client {
    /// A builder.
    #[must_use]
    pub fn builder() -> ClientBuilder {
        ClientBuilder::default()
    }

    /// A client with default settings for `token`.
    ///
    /// # Errors
    /// See [`ClientBuilder::build`].
    pub fn new(token: impl Into<Token>) -> Result<Self, Error> {
        Self::builder().token(token).build()
    }

    /// The base URL in use.
    #[must_use]
    pub fn base_url(&self) -> &Url {
        self.inner.http.base_url()
    }

    /// The per-base limiter (shared by clones).
    #[must_use]
    pub fn base_limiter(&self) -> &RateLimiter {
        self.inner.http.limiter()
    }

    /// Sends a request with auth, limits and retries; a non-2xx answer becomes [`Error`].
    ///
    /// # Errors
    /// [`Error::Api`] (and its special cases) for an error answer, [`Error::Transport`] for no answer.
    pub async fn send(&self, request: Request, operation: Operation) -> Result<RawResponse, Error> {
        let auth = self
            .inner
            .token
            .bearer_header()
            .map_err(|_| Error::InvalidRequest("token contains invalid header characters".into()))?;
        let key = request.rate_key.clone();
        let resp = self.inner.http.execute(request.header(AUTHORIZATION, auth)).await?;
        if resp.is_success() {
            return Ok(resp);
        }
        if resp.status.as_u16() == 429 {
            // retries gave up: still honour the 30 s rule for the next caller on this base
            let key = key.unwrap_or_else(|| META_RATE_KEY.to_owned());
            self.inner.http.limiter().pause(&key, tokio::time::Instant::now() + self.inner.penalty);
        }
        Err(Error::from_api(ApiError::from_response(&resp, operation)))
    }

    /// Like [`Client::send`], decoding the JSON answer (decode errors name the JSON path).
    ///
    /// # Errors
    /// As [`Client::send`], plus [`Error::Decode`].
    pub async fn send_json<T: DeserializeOwned>(&self, request: Request, operation: Operation) -> Result<T, Error> {
        let resp = self.send(request, operation).await?;
        Ok(api_core::decode_json(&resp.body)?)
    }
}

/// Percent-encodes one path segment (table names may contain spaces, slashes, `?`).
#[must_use]
pub fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
