//! [`Client`] and its builder: authentication, base URL, rate limits, retries.

use std::{
    fmt,
    hash::{BuildHasher as _, Hasher as _},
    sync::Arc,
    time::{Duration, SystemTime},
};

use api_core::{
    Decision, HttpClient, RateBudget, RateLimiter, RawResponse, Request, ReqwestTransport, RetryPolicy, Rule, Token,
    Transport, TransportConfig, VendorHint, parse_retry_after,
    retry::{AttemptOutcome, RetryInput},
};
use http::header::AUTHORIZATION;
use serde::de::DeserializeOwned;
use tokio::time::Instant;
use url::Url;

use crate::{
    error::{ApiError, Error, ErrorBody, Operation, RATE_LIMIT_PENALTY},
    limit::{BaseLimiter, DEFAULT_RATE_MARGIN},
};

/// The production base URL.
pub const DEFAULT_BASE_URL: &str = "https://api.airtable.com/v0";

/// The host of the upload-attachment endpoint:
/// `POST https://content.airtable.com/v0/{baseId}/{recordId}/{attachmentFieldIdOrName}/uploadAttachment` (OFFICIAL
/// upload-attachment; pyairtable `Table.upload_attachment`).
pub const DEFAULT_CONTENT_URL: &str = "https://content.airtable.com/v0";

/// Airtable's limit per base: 5 requests per second, counted on arrival. The client sends fewer: requests are spaced
/// `(1 s + margin) / 5` apart (220 ms with [`DEFAULT_RATE_MARGIN`]), see [`crate::limit`].
pub const REQUESTS_PER_SECOND_PER_BASE: u32 = 5;

/// Airtable's limit per personal access token across all bases: 50 requests per second.
pub const REQUESTS_PER_SECOND_PER_TOKEN: u32 = 50;

/// Rate-limit key used for calls that are not about one base (`/meta/bases`, `/meta/whoami`).
pub const META_RATE_KEY: &str = "meta";

/// An Airtable Web API client. Cheap to clone; clones share the connection pool and the rate limiters (one budget per
/// base and one per token, as Airtable counts them) and the 30 s hold of a base after a 429.
#[derive(Clone)]
pub struct Client {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    /// One attempt per call (no retries, no keyed limiter there): the loop in [`Client::send`] owns both, so every
    /// attempt, retries included, goes through the base limiter.
    pub(crate) http: HttpClient,
    pub(crate) token: Token,
    pub(crate) penalty: Duration,
    pub(crate) limiter: BaseLimiter,
    /// Airtable's 50 requests/s per token, waited for *before* the base's slot so that nothing stands between the
    /// base slot and the send (a wait there would shrink the gap the base limiter keeps).
    pub(crate) token_limiter: Option<RateLimiter>,
    /// A per-base budget, possibly shared with other processes ([`ClientBuilder::rate_budget`]); replaces `limiter`.
    pub(crate) shared: Option<Arc<dyn RateBudget>>,
    pub(crate) retry: RetryPolicy,
    /// The upload host ([`ClientBuilder::content_url`]), ending in `/`.
    pub(crate) content_url: Url,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("base_url", &self.inner.http.base_url().as_str())
            .field("token", &self.inner.token)
            .field("penalty_after_429", &self.inner.penalty)
            .field("base_limiter", &self.inner.limiter)
            .field("retry", &self.inner.retry)
            .field("http", &self.inner.http)
            .finish()
    }
}

/// Builds a [`Client`]. Only the token is required.
#[derive(Clone)]
pub struct ClientBuilder {
    token: Option<Token>,
    base_url: String,
    content_url: String,
    connect_timeout: Duration,
    request_timeout: Duration,
    user_agent: String,
    retry: RetryPolicy,
    per_base: Option<u32>,
    rate_margin: Duration,
    per_token: Option<u32>,
    limiter: Option<BaseLimiter>,
    global_limiter: Option<RateLimiter>,
    shared: Option<Arc<dyn RateBudget>>,
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
            .field("rate_margin", &self.rate_margin)
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
            content_url: DEFAULT_CONTENT_URL.to_owned(),
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(60),
            user_agent: api_core::user_agent!().to_owned(),
            retry: RetryPolicy::default(),
            per_base: Some(REQUESTS_PER_SECOND_PER_BASE),
            rate_margin: DEFAULT_RATE_MARGIN,
            per_token: Some(REQUESTS_PER_SECOND_PER_TOKEN),
            limiter: None,
            global_limiter: None,
            shared: None,
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
    /// `http://127.0.0.1:4010/v0` for a fake. Parsed in [`ClientBuilder::build`] (invalid: [`Error::InvalidRequest`]).
    #[must_use]
    pub fn base_url(mut self, url: impl AsRef<str>) -> Self {
        url.as_ref().clone_into(&mut self.base_url);
        self
    }

    /// Overrides the upload host (default [`DEFAULT_CONTENT_URL`], with `/v0`), where
    /// [`Client::upload_attachment`] goes; e.g. a fake's base URL. Parsed in [`ClientBuilder::build`].
    #[must_use]
    pub fn content_url(mut self, url: impl AsRef<str>) -> Self {
        url.as_ref().clone_into(&mut self.content_url);
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

    /// Requests per second per base (default 5, Airtable's rule), spaced evenly with the
    /// [`ClientBuilder::rate_margin`] headroom, no burst. `None` disables the spacing (the 30 s hold after a 429
    /// stays).
    #[must_use]
    pub fn requests_per_second_per_base(mut self, n: Option<u32>) -> Self {
        self.per_base = n;
        self
    }

    /// Headroom for network jitter (default [`DEFAULT_RATE_MARGIN`], 100 ms): requests to one base are spaced
    /// `(1 s + margin) / n` apart, so arrivals never exceed `n` per second while the one-way latency varies by less
    /// than the margin (see [`crate::limit`]). Zero sits exactly on Airtable's line, where jitter draws 429s.
    #[must_use]
    pub fn rate_margin(mut self, margin: Duration) -> Self {
        self.rate_margin = margin;
        self
    }

    /// Requests per second per token across bases (default 50). `None` disables it.
    #[must_use]
    pub fn requests_per_second_per_token(mut self, n: Option<u32>) -> Self {
        self.per_token = n;
        self
    }

    /// Shares an existing per-base limiter (e.g. between two clients for the same bases in one process); it then
    /// replaces [`ClientBuilder::requests_per_second_per_base`] and [`ClientBuilder::rate_margin`].
    #[must_use]
    pub fn base_limiter(mut self, limiter: BaseLimiter) -> Self {
        self.limiter = Some(limiter);
        self
    }

    /// Draws the per-base requests from `budget` (the workspace's one name for plugging in an
    /// [`api_core::RateBudget`], e.g. sync-core's `StoreBudget` shared by several processes, or an
    /// `Arc<dyn RateBudget>`), keyed by base id, instead of this process's [`BaseLimiter`]: give it the base's whole
    /// limit (5 per second with a jitter margin), not a share per process. The 30 s hold after a 429 is recorded in
    /// it ([`RateBudget::pause`]), so one process's 429 holds every process off that base, and each attempt checks
    /// the hold right after its slot ([`RateBudget::held`]): a slot reserved before the 429 is void.
    #[must_use]
    pub fn rate_budget(mut self, budget: impl RateBudget + 'static) -> Self {
        self.shared = Some(Arc::new(budget));
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
    /// [`Error::InvalidRequest`] when the token is missing or empty, the base URL or the content URL does not parse,
    /// or TLS cannot initialise.
    pub fn build(self) -> Result<Client, Error> {
        let token =
            self.token.filter(|t| !t.is_empty()).ok_or_else(|| Error::InvalidRequest("token missing".into()))?;
        token.bearer_header().map_err(|_| Error::InvalidRequest("token contains invalid header characters".into()))?;
        let mut base = self.base_url.trim_end_matches('/').to_owned();
        base.push('/');
        let base_url = Url::parse(&base).map_err(|e| Error::InvalidRequest(format!("base URL {base:?}: {e}")))?;
        let mut content = self.content_url.trim_end_matches('/').to_owned();
        content.push('/');
        let content_url =
            Url::parse(&content).map_err(|e| Error::InvalidRequest(format!("content URL {content:?}: {e}")))?;
        let transport: Arc<dyn Transport> = match self.transport {
            Some(t) => t,
            None => {
                let mut cfg = TransportConfig::new(self.user_agent);
                cfg.connect_timeout = self.connect_timeout;
                cfg.request_timeout = self.request_timeout;
                Arc::new(ReqwestTransport::new(cfg).map_err(|e| Error::InvalidRequest(format!("transport: {e}")))?)
            }
        };
        let limiter = self.limiter.unwrap_or_else(|| BaseLimiter::new(self.per_base, self.rate_margin));
        let penalty = self.penalty;
        let http = HttpClient::new(base_url, transport)
            .with_default_key(META_RATE_KEY)
            .with_retry(RetryPolicy::none())
            .with_classifier(move |resp| classify(resp, penalty));
        let token_limiter =
            self.global_limiter.or_else(|| self.per_token.map(|n| RateLimiter::new([Rule::per_second(n)])));
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                token,
                penalty,
                limiter,
                token_limiter,
                shared: self.shared,
                retry: self.retry,
                content_url,
            }),
        })
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

    /// The per-base limiter (shared by clones; pass it to [`ClientBuilder::base_limiter`] to share it further).
    #[must_use]
    pub fn base_limiter(&self) -> &BaseLimiter {
        &self.inner.limiter
    }

    /// Waits for the base's slot: in the shared budget when there is one (a hold found after the slot voids it),
    /// else in this process's [`BaseLimiter`].
    async fn acquire_base(&self, key: &str) -> Result<(), Error> {
        let Some(shared) = &self.inner.shared else {
            self.inner.limiter.acquire(key).await;
            return Ok(());
        };
        shared.acquire_clear(key).await.map_err(api_core::ExecuteError::from)?;
        Ok(())
    }

    /// The raw escape hatch: sends any [`Request`] (a path under the base URL, or an absolute URL) through the same
    /// path as the typed calls — the bearer token, the per-token limiter, the base's budget (keyed by
    /// [`Request::rate_key`]: set it to the base id; without one the request counts against [`META_RATE_KEY`]), the
    /// 30 s hold after a 429, and the retry policy (5xx retried only when [`Request::idempotent`]). A non-2xx answer
    /// becomes [`Error`].
    ///
    /// # Errors
    /// [`Error::Api`] (and its special cases) for an error answer, [`Error::Transport`] for no answer.
    pub async fn send(&self, request: Request) -> Result<RawResponse, Error> {
        self.send_as(request, Operation::Other).await
    }

    /// [`Client::send`] for a typed call: `operation` tells a few errors apart (upsert ambiguity, expired offsets).
    ///
    /// Every attempt waits for the base's slot ([`BaseLimiter::acquire`]). A 429 (other than the billing cap) holds
    /// the base for the penalty (30 s) at once, for every clone and every request already queued, whether or not
    /// this call retries.
    pub(crate) async fn send_as(&self, request: Request, operation: Operation) -> Result<RawResponse, Error> {
        let auth = self
            .inner
            .token
            .bearer_header()
            .map_err(|_| Error::InvalidRequest("token contains invalid header characters".into()))?;
        let request = request.header(AUTHORIZATION, auth);
        let key = request.rate_key.clone().unwrap_or_else(|| META_RATE_KEY.to_owned());
        let started = Instant::now();
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            if let Some(g) = &self.inner.token_limiter {
                g.acquire("token").await;
            }
            self.acquire_base(&key).await?;
            let result = self.inner.http.execute(request.clone()).await;
            let (outcome, retry_after, hint) = match &result {
                Ok(resp) if resp.is_success() => return result.map_err(Error::from),
                Ok(resp) => {
                    let hint = classify(resp, self.inner.penalty);
                    if let VendorHint::WaitAtLeast(wait) = hint {
                        // the whole base is throttled, not just this request
                        self.inner.limiter.pause(&key, Instant::now() + wait);
                        if let Some(shared) = &self.inner.shared
                            && let Err(e) = shared.pause(&key, wait).await
                        {
                            tracing::warn!(error = %e, "could not share Airtable's 429 hold through the rate budget");
                        }
                    }
                    let ra = resp.header("retry-after").and_then(|v| parse_retry_after(v, SystemTime::now()));
                    (AttemptOutcome::Status(resp.status), ra, hint)
                }
                Err(e) => (
                    AttemptOutcome::TransportError { may_have_been_sent: e.source.may_have_been_sent },
                    None,
                    VendorHint::Default,
                ),
            };
            let decision = self.inner.retry.decide(&RetryInput {
                attempt,
                outcome,
                retry_after,
                hint,
                idempotent: request.idempotent,
                elapsed: started.elapsed(),
                jitter: jitter(),
            });
            match decision {
                Decision::Retry { after } => {
                    tracing::debug!(attempt, ?outcome, wait_ms = after.as_millis(), "retrying");
                    tokio::time::sleep(after).await;
                }
                Decision::Stop => {
                    return match result {
                        Ok(resp) => Err(Error::from_api(ApiError::from_response(&resp, operation))),
                        Err(e) => Err(e.into()),
                    };
                }
            }
        }
    }

    /// Like [`Client::send_as`], decoding the JSON answer (decode errors name the JSON path).
    pub(crate) async fn send_json<T: DeserializeOwned>(
        &self,
        request: Request,
        operation: Operation,
    ) -> Result<T, Error> {
        let resp = self.send_as(request, operation).await?;
        Ok(api_core::decode_json(&resp.body)?)
    }
}

/// A uniform sample in `[0, 1)` for full-jitter backoff (std's randomly keyed hasher; no rand dependency).
fn jitter() -> f64 {
    let bits = std::collections::hash_map::RandomState::new().build_hasher().finish() >> 11;
    #[allow(clippy::cast_precision_loss)]
    let x = bits as f64 / (1u64 << 53) as f64;
    x
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
