//! [`Client`] and [`ClientBuilder`]: connection, authentication, rate limiting, retries and error mapping.

use std::{
    fmt,
    sync::{Arc, Mutex},
    time::Duration,
};

use api_core::{
    Auth, HttpClient, HttpErrorParts, OAuthSession, RateBudget, RateLimiter, RawResponse, Request, ReqwestTransport,
    RetryPolicy, Rule, Token, Transport, TransportConfig, VendorHint,
};
use futures::{future::BoxFuture, stream::BoxStream};
use http::{HeaderMap, HeaderValue, StatusCode};
use serde::de::DeserializeOwned;
use tokio::time::Instant;
use url::Url;

use crate::{
    error::{Error, HoldCause, Problem},
    hal::{self, ListPage, ListParams},
};

/// Kommo's documented limit: "not more than 7 requests per second".
pub const DEFAULT_RATE_LIMIT_PER_SECOND: u32 = 7;
/// Default hold-off after a 429 (Kommo sends no `Retry-After`).
pub const DEFAULT_THROTTLE_BACKOFF: Duration = Duration::from_secs(60);
/// Default hold-off after the HTML 403 ban page.
pub const DEFAULT_BAN_BACKOFF: Duration = Duration::from_secs(15 * 60);
/// Default headroom below Kommo's line: 7 requests are spread over 1 s + this margin (one request every ~171 ms,
/// 5.8 requests/s), so that up to this much network or scheduling jitter between two requests never makes 8 of
/// them arrive within one second at a server that counts a strict sliding second (as Kommo's documented limit reads
/// and the fake enforces). A 429 costs a minute of the account's time, so the margin is cheap.
pub const DEFAULT_RATE_MARGIN: Duration = Duration::from_millis(200);
/// Default longest wait for a hold-off before a request fails with [`Error::HeldOff`] instead.
pub const DEFAULT_MAX_WAIT: Duration = Duration::from_secs(1);

/// A Kommo API v4 client for one account. Cheap to clone; clones share the rate limiter, the OAuth session and
/// the connection pool. `Debug` never shows a token.
#[derive(Clone)]
pub struct Client {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) http: HttpClient,
    pub(crate) auth: Auth,
    pub(crate) base_url: Url,
    pub(crate) rate_key: String,
    pub(crate) throttle_backoff: Duration,
    pub(crate) ban_backoff: Duration,
    pub(crate) hold: Arc<Hold>,
    pub(crate) max_wait: Duration,
    /// A budget shared with other processes ([`ClientBuilder::rate_budget`]): its holds are checked too.
    pub(crate) shared: Option<Arc<dyn RateBudget>>,
}

/// The account's hold-off after a 429 or the ban page, shared by the clones of a client.
///
/// Why not [`RateLimiter::pause`]: a paused limiter makes every later request sleep inside `acquire` for the whole
/// hold-off (60 s, 15 min), outside the caller's deadline and the request timeout, so workers stall and lose their
/// leases. The hold is checked instead right before a request would go on the wire (after the limiter's slot), and a
/// request either waits out a short remainder (at most [`ClientBuilder::max_wait`]) or fails with
/// [`Error::HeldOff`] and the remaining wait.
#[derive(Debug, Default)]
pub(crate) struct Hold {
    state: Mutex<Option<(Instant, HoldCause)>>,
}

impl Hold {
    fn set(&self, cause: HoldCause, until: Instant) {
        let mut st = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match *st {
            Some((u, _)) if u >= until => {}
            _ => *st = Some((until, cause)),
        }
    }

    /// The cause and the time left, while the hold lasts.
    fn remaining(&self) -> Option<(HoldCause, Duration)> {
        let mut st = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        match *st {
            Some((until, cause)) if until > now => Some((cause, until - now)),
            Some(_) => {
                *st = None;
                None
            }
            None => None,
        }
    }
}

/// The header of the response [`Gated`] makes up for a request it did not send; never on a real response.
const HELD_HEADER: &str = "x-kommo-api-held";

/// The transport behind the limiter: applies the [`Hold`] right before a request would go out, so requests that were
/// already queued in the limiter when Kommo said 429 are not sent into the penalty either.
#[derive(Debug)]
struct Gated {
    inner: Arc<dyn Transport>,
    hold: Arc<Hold>,
    max_wait: Duration,
    shared: Option<(Arc<dyn RateBudget>, String)>,
}

impl Transport for Gated {
    fn send(&self, url: Url, request: Request) -> BoxFuture<'_, Result<RawResponse, api_core::TransportError>> {
        Box::pin(async move {
            let mut budget = self.max_wait;
            if let Some((shared, key)) = &self.shared {
                // another process's 429 or ban, recorded after this request reserved its slot
                let left = shared.held(key).await?;
                if let Some(left) = left {
                    self.hold.set(HoldCause::Throttled, Instant::now() + left);
                }
            }
            while let Some((cause, left)) = self.hold.remaining() {
                if left > budget {
                    return Ok(held_response(cause, left));
                }
                budget -= left;
                tokio::time::sleep(left).await;
            }
            self.inner.send(url, request).await
        })
    }
}

/// A made-up 429 (the classifier never retries it) that [`Client::check`] turns into [`Error::HeldOff`].
fn held_response(cause: HoldCause, left: Duration) -> RawResponse {
    let kind = match cause {
        HoldCause::Banned => "banned",
        _ => "throttled",
    };
    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&format!("{kind};{}", left.as_nanos())) {
        headers.insert(HELD_HEADER, v);
    }
    RawResponse { status: StatusCode::TOO_MANY_REQUESTS, headers, body: bytes::Bytes::new() }
}

fn held_error(resp: &RawResponse) -> Option<Error> {
    let (kind, nanos) = resp.header(HELD_HEADER)?.split_once(';')?;
    let cause = if kind == "banned" { HoldCause::Banned } else { HoldCause::Throttled };
    let retry_after = Duration::from_nanos(nanos.parse().ok()?);
    Some(Error::HeldOff { cause, retry_after })
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let auth = match &self.inner.auth {
            Auth::Static(_) => "long-lived token [redacted]",
            Auth::OAuth(_) => "OAuth session [redacted]",
        };
        f.debug_struct("Client")
            .field("base_url", &self.inner.base_url.as_str())
            .field("auth", &auth)
            .field("rate_key", &self.inner.rate_key)
            .field("http", &self.inner.http)
            .finish_non_exhaustive()
    }
}

/// Builds a [`Client`]. Required: a base URL and credentials.
#[must_use]
pub struct ClientBuilder {
    base_url: Option<String>,
    auth: Option<Auth>,
    rate_limit: Option<u32>,
    rate_margin: Duration,
    retry: RetryPolicy,
    user_agent: String,
    connect_timeout: Duration,
    request_timeout: Duration,
    throttle_backoff: Duration,
    ban_backoff: Duration,
    max_wait: Duration,
    transport: Option<Arc<dyn Transport>>,
    shared: Option<Arc<dyn RateBudget>>,
}

impl fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("base_url", &self.base_url)
            .field("auth", &self.auth.as_ref().map(|_| "[redacted]"))
            .field("rate_limit", &self.rate_limit)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

impl Default for ClientBuilder {
    fn default() -> Self {
        Self {
            base_url: None,
            auth: None,
            rate_limit: Some(DEFAULT_RATE_LIMIT_PER_SECOND),
            rate_margin: DEFAULT_RATE_MARGIN,
            retry: RetryPolicy::default(),
            user_agent: api_core::user_agent!().to_owned(),
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(60),
            throttle_backoff: DEFAULT_THROTTLE_BACKOFF,
            ban_backoff: DEFAULT_BAN_BACKOFF,
            max_wait: DEFAULT_MAX_WAIT,
            transport: None,
            shared: None,
        }
    }
}

impl ClientBuilder {
    /// The account's full base URL: `https://{subdomain}.kommo.com`, `https://{subdomain}.amocrm.ru`,
    /// `https://{subdomain}.amocrm.com`, or any URL (fakes, tests). A bare host (`sub.kommo.com`) gets `https://`.
    /// Validated in [`ClientBuilder::build`] ([`Error::InvalidRequest`] when it does not parse or has no host).
    pub fn base_url(mut self, url: impl AsRef<str>) -> Self {
        self.base_url = Some(url.as_ref().to_owned());
        self
    }

    /// Authenticates with a fixed bearer token: a private integration's long-lived token (1 day to 5 years, no
    /// refresh; kommo.md §1). The workspace's shared builder name (CONTRIBUTING.md "One SDK shape").
    pub fn token(mut self, token: impl Into<Token>) -> Self {
        self.auth = Some(Auth::Static(token.into()));
        self
    }

    /// The same as [`ClientBuilder::token`], under the name Kommo's docs use ("long-lived token").
    pub fn long_lived_token(self, token: impl Into<Token>) -> Self {
        self.token(token)
    }

    /// Authenticates with an OAuth session (see [`crate::oauth::KommoOAuth`] for the Kommo refresher).
    pub fn oauth(mut self, session: Arc<OAuthSession>) -> Self {
        self.auth = Some(Auth::OAuth(session));
        self
    }

    /// Sets the credentials directly.
    pub fn auth(mut self, auth: Auth) -> Self {
        self.auth = Some(auth);
        self
    }

    /// Requests per second for this account, evenly spaced with no burst (default 7, Kommo's documented limit).
    /// `0` disables limiting. The requests are spread over one second plus [`ClientBuilder::rate_margin`].
    pub fn rate_limit(mut self, per_second: u32) -> Self {
        self.rate_limit = Some(per_second);
        self
    }

    /// Headroom against jitter (default [`DEFAULT_RATE_MARGIN`], 200 ms): `rate_limit` requests are spread over
    /// `1 s + margin`, so requests delayed unevenly on the way never arrive faster than `rate_limit` in any second.
    /// `Duration::ZERO` sits exactly on the vendor's line (a strict server then answers 429 on any jitter).
    pub fn rate_margin(mut self, margin: Duration) -> Self {
        self.rate_margin = margin;
        self
    }

    /// Draws every request from `budget` (the workspace's one name for plugging in a rate budget, CONTRIBUTING.md
    /// "One SDK shape") instead of the client's own limiter: an [`api_core::RateLimiter`] shared by several clients
    /// of one account in a process, or a budget shared with other processes (e.g. sync-core's `StoreBudget`, keyed
    /// by [`Client::rate_key`]): configure the account's whole limit there, not a share per process. An
    /// `Arc<dyn RateBudget>` is a budget too. The hold after a 429 or the ban page is recorded in it
    /// ([`RateBudget::pause`]), so one client's penalty holds off all of them: each request checks it before asking
    /// for a token and again right before it goes on the wire, and fails with [`Error::HeldOff`] when the hold is
    /// longer than [`ClientBuilder::max_wait`]. Replaces [`ClientBuilder::rate_limit`].
    pub fn rate_budget(mut self, budget: impl RateBudget + 'static) -> Self {
        self.shared = Some(Arc::new(budget));
        self
    }

    /// The retry policy for 5xx and connection errors (429 and the ban page are never retried in-process).
    pub fn retry_policy(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// The `User-Agent` (default `kommo-api/<version>`).
    pub fn user_agent(mut self, ua: impl Into<String>) -> Self {
        self.user_agent = ua.into();
        self
    }

    /// Connect timeout (default 10 s).
    pub fn connect_timeout(mut self, d: Duration) -> Self {
        self.connect_timeout = d;
        self
    }

    /// Whole-request timeout (default 60 s).
    pub fn request_timeout(mut self, d: Duration) -> Self {
        self.request_timeout = d;
        self
    }

    /// How long the account is held off after a 429 (default 60 s). The error's `retry_after` carries it.
    pub fn throttle_backoff(mut self, d: Duration) -> Self {
        self.throttle_backoff = d;
        self
    }

    /// How long the account is held off after the HTML 403 ban page (default 15 min).
    pub fn ban_backoff(mut self, d: Duration) -> Self {
        self.ban_backoff = d;
        self
    }

    /// The longest a request waits for the account's hold-off (after a 429 or the ban page) to pass before it is
    /// sent (default [`DEFAULT_MAX_WAIT`], 1 s). A longer remaining hold fails the request at once with
    /// [`Error::HeldOff`] and the remaining wait, without sending it: set this to the caller's deadline budget, and
    /// let a scheduler retry the rest later. The wait is never hidden in the rate limiter.
    pub fn max_wait(mut self, d: Duration) -> Self {
        self.max_wait = d;
        self
    }

    /// Uses a custom transport (tests, instrumentation).
    pub fn transport(mut self, transport: Arc<dyn Transport>) -> Self {
        self.transport = Some(transport);
        self
    }

    /// Builds the client.
    ///
    /// # Errors
    /// [`Error::InvalidRequest`] when the base URL or credentials are missing or invalid, or the TLS backend fails.
    pub fn build(self) -> Result<Client, Error> {
        let raw = self.base_url.ok_or_else(|| Error::InvalidRequest("base_url is required".into()))?;
        let raw = if raw.contains("://") { raw } else { format!("https://{raw}") };
        let base_url = Url::parse(&raw).map_err(|e| Error::InvalidRequest(format!("invalid base URL {raw:?}: {e}")))?;
        if base_url.host_str().is_none() {
            return Err(Error::InvalidRequest(format!("base URL {raw:?} has no host")));
        }
        let auth = self.auth.ok_or_else(|| Error::InvalidRequest("credentials are required".into()))?;
        let transport: Arc<dyn Transport> = match self.transport {
            Some(t) => t,
            None => {
                let mut cfg = TransportConfig::new(self.user_agent);
                cfg.connect_timeout = self.connect_timeout;
                cfg.request_timeout = self.request_timeout;
                Arc::new(ReqwestTransport::new(cfg).map_err(|e| Error::InvalidRequest(e.to_string()))?)
            }
        };
        let hold = Arc::new(Hold::default());
        let rate_key = match base_url.port() {
            Some(p) => format!("{}:{p}", base_url.host_str().unwrap_or_default()),
            None => base_url.host_str().unwrap_or_default().to_owned(),
        };
        let transport: Arc<dyn Transport> = Arc::new(Gated {
            inner: transport,
            hold: hold.clone(),
            max_wait: self.max_wait,
            shared: self.shared.clone().map(|b| (b, rate_key.clone())),
        });
        let budget: Arc<dyn RateBudget> = match &self.shared {
            Some(shared) => shared.clone(),
            None => Arc::new(match self.rate_limit {
                Some(0) | None => RateLimiter::unlimited(),
                Some(n) => {
                    RateLimiter::new([Rule::Spacing { per: n, period: Duration::from_secs(1) + self.rate_margin }])
                }
            }),
        };
        // the hold is Kommo's own (fail fast in `Gated`), never a sleep inside the limiter
        let http = HttpClient::new(base_url.clone(), transport)
            .with_budget(budget)
            .with_hold_check(false)
            .with_default_key(rate_key.clone())
            .with_retry(self.retry)
            .with_classifier(classify);
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                auth,
                base_url,
                rate_key,
                throttle_backoff: self.throttle_backoff,
                ban_backoff: self.ban_backoff,
                hold,
                max_wait: self.max_wait,
                shared: self.shared,
            }),
        })
    }
}

/// Kommo's retry rules on top of the generic ones: 429, 401 and the HTML 403 ban page are never retried in-process
/// (the client maps them to typed errors and holds the account off); 5xx follow the policy (idempotent requests only).
#[must_use]
pub fn classify(resp: &RawResponse) -> VendorHint {
    match resp.status.as_u16() {
        401 | 403 | 429 => VendorHint::Stop,
        _ => VendorHint::Default,
    }
}

/// Whether a response is Kommo's ban page: a 403 whose body is not a JSON problem document.
#[must_use]
pub fn is_ban_page(resp: &RawResponse) -> bool {
    resp.status == StatusCode::FORBIDDEN && Problem::parse(&resp.body).is_none()
}

impl Client {
    /// A builder.
    pub fn builder() -> ClientBuilder {
        ClientBuilder::default()
    }

    /// The account base URL.
    #[must_use]
    pub fn base_url(&self) -> &Url {
        &self.inner.base_url
    }

    /// The underlying HTTP client (its limiter is keyed by [`Client::rate_key`]).
    #[must_use]
    pub fn http(&self) -> &HttpClient {
        &self.inner.http
    }

    /// The rate-limit key of this account (`host[:port]`).
    #[must_use]
    pub fn rate_key(&self) -> &str {
        &self.inner.rate_key
    }

    /// The raw escape hatch: sends any request (a path relative to the account's base URL, e.g.
    /// `Request::get("/api/v4/leads/42")`) through the same authentication, rate budget, hold-off, retries and
    /// Kommo's error mapping as the typed calls. A non-2xx response becomes an [`Error`]; 204 is returned as a
    /// success with an empty body.
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn send(&self, request: Request) -> Result<RawResponse, Error> {
        if let Some(shared) = &self.inner.shared
            && let Some(left) = shared.held(&self.inner.rate_key).await.map_err(api_core::ExecuteError::from)?
        {
            self.inner.hold.set(HoldCause::Throttled, Instant::now() + left);
        }
        if let Some((cause, retry_after)) = self.inner.hold.remaining()
            && retry_after > self.inner.max_wait
        {
            // fail before asking for a token too (an OAuth refresh would be another request)
            return Err(Error::HeldOff { cause, retry_after });
        }
        let token = self.inner.auth.token().await?;
        let resp = self.send_with(&request, &token).await?;
        if resp.status != StatusCode::UNAUTHORIZED {
            return self.check(resp).await;
        }
        let problem = Problem::parse(&resp.body);
        if problem.as_ref().is_some_and(Problem::is_revoked) && matches!(self.inner.auth, Auth::Static(_)) {
            return Err(revoked(&resp, problem.as_ref()));
        }
        // at most one refresh, then one more try
        let Some(fresh) = self.inner.auth.on_unauthorized(&token).await? else {
            return Err(Error::Unauthorized { parts: HttpErrorParts::from_response(&resp), problem });
        };
        tracing::debug!("retrying once with a refreshed access token after a 401");
        let resp = self.send_with(&request, &fresh).await?;
        if resp.status == StatusCode::UNAUTHORIZED {
            let problem = Problem::parse(&resp.body);
            if problem.as_ref().is_some_and(Problem::is_revoked) {
                return Err(revoked(&resp, problem.as_ref()));
            }
            return Err(Error::Unauthorized { parts: HttpErrorParts::from_response(&resp), problem });
        }
        self.check(resp).await
    }

    async fn send_with(&self, request: &Request, token: &Token) -> Result<RawResponse, Error> {
        let header = token.bearer_header().map_err(|_| Error::InvalidRequest("token is not a valid header".into()))?;
        let req = request.clone().header(http::header::AUTHORIZATION, header);
        Ok(self.inner.http.execute(req).await?)
    }

    async fn check(&self, resp: RawResponse) -> Result<RawResponse, Error> {
        if resp.is_success() {
            return Ok(resp);
        }
        if let Some(held) = held_error(&resp) {
            return Err(held);
        }
        let parts = HttpErrorParts::from_response(&resp);
        if resp.status == StatusCode::TOO_MANY_REQUESTS {
            let hinted = resp
                .header("retry-after")
                .and_then(|v| api_core::parse_retry_after(v, std::time::SystemTime::now()))
                .unwrap_or_default();
            let retry_after = self.inner.throttle_backoff.max(hinted);
            self.hold(HoldCause::Throttled, retry_after).await;
            tracing::warn!(?retry_after, "Kommo answered 429; account held off");
            return Err(Error::Throttled { parts, retry_after });
        }
        if is_ban_page(&resp) {
            let retry_after = self.inner.ban_backoff;
            self.hold(HoldCause::Banned, retry_after).await;
            tracing::error!(?retry_after, "Kommo answered the HTML 403 ban page; account held off");
            return Err(Error::Banned { parts, retry_after });
        }
        let problem = Problem::parse(&resp.body);
        Err(Error::Api { parts, problem })
    }

    async fn hold(&self, cause: HoldCause, d: Duration) {
        if !d.is_zero() {
            self.inner.hold.set(cause, Instant::now() + d);
            if let Some(shared) = &self.inner.shared
                && let Err(e) = shared.pause(&self.inner.rate_key, d).await
            {
                tracing::warn!(error = %e, "could not share Kommo's hold-off through the rate budget");
            }
        }
    }

    /// GET and decode JSON; `None` on 204.
    pub(crate) async fn get_json<T: DeserializeOwned>(&self, request: Request) -> Result<Option<T>, Error> {
        let resp = self.send(request).await?;
        if resp.status == StatusCode::NO_CONTENT || resp.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        Ok(Some(resp.json()?))
    }

    /// GET one entity; a 204 (Kommo's answer for an unknown id) is [`Error::NotFound`].
    pub(crate) async fn get_one<T: DeserializeOwned>(&self, request: Request) -> Result<T, Error> {
        let what = request.path.clone();
        self.get_json(request).await?.ok_or(Error::NotFound(what))
    }

    /// Sends and decodes JSON (a 204 or empty body is a decode error naming the root).
    pub(crate) async fn send_json<T: DeserializeOwned>(&self, request: Request) -> Result<T, Error> {
        let resp = self.send(request).await?;
        Ok(resp.json()?)
    }

    /// One page of a HAL list.
    pub(crate) async fn list_page<T: DeserializeOwned>(
        &self,
        path: &str,
        key: &str,
        params: &ListParams,
        page: u32,
    ) -> Result<ListPage<T>, Error> {
        let req = params.apply(Request::get(path), page)?;
        let resp = self.send(req).await?;
        hal::decode_list(&resp, key, page)
    }

    /// A lazy stream over every page of a HAL list, starting at `params`' page (default 1).
    pub(crate) fn stream_list<T: DeserializeOwned + Send + 'static>(
        &self,
        path: String,
        key: &'static str,
        params: ListParams,
    ) -> BoxStream<'static, Result<T, Error>> {
        let client = self.clone();
        let first = params.start_page();
        let params = Arc::new(params);
        Box::pin(api_core::paginate(Some(first), move |cursor: Option<u32>| {
            let client = client.clone();
            let params = params.clone();
            let path = path.clone();
            async move {
                let page = cursor.unwrap_or(1);
                let p: ListPage<T> = client.list_page(&path, key, &params, page).await?;
                let next = (p.has_next && !p.items.is_empty()).then_some(page + 1);
                Ok::<_, Error>(api_core::Page { items: p.items, next })
            }
        }))
    }
}

fn revoked(resp: &RawResponse, problem: Option<&Problem>) -> Error {
    let reason = problem
        .and_then(|p| p.hint.clone().or_else(|| p.detail.clone()))
        .unwrap_or_else(|| "token has been revoked".into());
    Error::AuthRevoked { reason, parts: Some(HttpErrorParts::from_response(resp)) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_traits<T: Clone + Send + Sync + fmt::Debug + 'static>() {}

    #[test]
    fn client_is_clone_send_sync_debug() {
        assert_traits::<Client>();
    }

    #[test]
    fn debug_hides_the_token() {
        let c = Client::builder().base_url("sub.kommo.com").token("SECRET-TOKEN-123").build().unwrap();
        let s = format!("{c:?}");
        assert!(!s.contains("SECRET-TOKEN-123"), "{s}");
        assert!(s.contains("https://sub.kommo.com/"), "{s}");
        let b = Client::builder().token("SECRET-TOKEN-123");
        assert!(!format!("{b:?}").contains("SECRET"));
    }

    #[test]
    fn builder_requires_url_and_auth() {
        assert!(matches!(Client::builder().token("t").build(), Err(Error::InvalidRequest(_))));
        assert!(matches!(Client::builder().base_url("https://x.kommo.com").build(), Err(Error::InvalidRequest(_))));
    }

    fn resp(status: u16, body: &str) -> RawResponse {
        RawResponse {
            status: StatusCode::from_u16(status).unwrap(),
            headers: http::HeaderMap::new(),
            body: bytes::Bytes::from(body.to_owned()),
        }
    }

    #[test]
    fn classifier_never_retries_429_403_401() {
        assert_eq!(classify(&resp(429, "<html>")), VendorHint::Stop);
        assert_eq!(classify(&resp(403, "<html>")), VendorHint::Stop);
        assert_eq!(classify(&resp(401, "{}")), VendorHint::Stop);
        assert_eq!(classify(&resp(502, "")), VendorHint::Default);
        assert!(is_ban_page(&resp(403, "<html><center>403 Forbidden</center><hr>nginx</html>")));
        assert!(!is_ban_page(&resp(403, r#"{"title":"Forbidden","status":403}"#)));
    }
}
