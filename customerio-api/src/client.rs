//! [`Client`] and [`ClientBuilder`].

use std::{fmt, sync::Arc, time::Duration};

use api_core::{HttpClient, RateBudget, RateLimiter, RawResponse, Request, RetryPolicy, Rule, Token, Transport};
use http::{HeaderValue, header::AUTHORIZATION};
use url::Url;

use crate::{Error, Region, transport::NoRedirectTransport};

/// Default Track rate: 100 requests per second. The current Track spec says 1000/s "not strictly enforced"; older
/// sources say 100/s; we default to the conservative figure (configurable with
/// [`ClientBuilder::rate_budget`]`(Api::Track, …)`).
pub const DEFAULT_TRACK_RATE_PER_SECOND: u32 = 100;
/// Default App API rate: 10 requests per second (App API docs).
pub const DEFAULT_APP_RATE_PER_SECOND: u32 = 10;
/// Default transactional-send rate: 100 per second (App API docs).
pub const DEFAULT_TRANSACTIONAL_RATE_PER_SECOND: u32 = 100;
/// Default Pipelines (CDP) rate: 100 requests per second, like Track (the App API page says Track and Pipelines
/// share a "soft rate limit of 3000 requests per 3 seconds, which isn't strictly enforced"; the Pipelines spec's
/// 429 text says "over the 10-per-second limit"; the sources disagree, so the figure is configurable).
pub const DEFAULT_PIPELINES_RATE_PER_SECOND: u32 = 100;
/// API-triggered broadcasts: 1 request per 10 seconds (App API docs), else 429.
pub const BROADCAST_TRIGGER_INTERVAL: Duration = Duration::from_secs(10);

/// Builds a [`Client`]. See [`Client::builder`].
#[must_use]
pub struct ClientBuilder {
    site_id: Option<String>,
    track_api_key: Option<Token>,
    app_api_key: Option<Token>,
    pipelines_api_key: Option<Token>,
    region: Region,
    track_base: Option<String>,
    app_base: Option<String>,
    pipelines_base: Option<String>,
    connect_timeout: Duration,
    request_timeout: Duration,
    retry: RetryPolicy,
    track_limiter: Option<Arc<dyn RateBudget>>,
    app_limiter: Option<Arc<dyn RateBudget>>,
    transactional_limiter: Option<Arc<dyn RateBudget>>,
    broadcast_limiter: Option<Arc<dyn RateBudget>>,
    pipelines_limiter: Option<Arc<dyn RateBudget>>,
    user_agent: String,
    transport: Option<Arc<dyn Transport>>,
}

impl fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("site_id", &self.site_id)
            .field("region", &self.region)
            .field("track_base", &self.track_base)
            .field("app_base", &self.app_base)
            .field("pipelines_base", &self.pipelines_base)
            .finish_non_exhaustive()
    }
}

impl Default for ClientBuilder {
    fn default() -> Self {
        Self {
            site_id: None,
            track_api_key: None,
            app_api_key: None,
            pipelines_api_key: None,
            region: Region::Us,
            track_base: None,
            app_base: None,
            pipelines_base: None,
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            retry: RetryPolicy::default(),
            track_limiter: None,
            app_limiter: None,
            transactional_limiter: None,
            broadcast_limiter: None,
            pipelines_limiter: None,
            user_agent: api_core::user_agent!().to_owned(),
            transport: None,
        }
    }
}

impl ClientBuilder {
    /// Track API credentials: the workspace's site id and Track API key (HTTP Basic `site_id:api_key`).
    pub fn track_credentials(mut self, site_id: impl Into<String>, api_key: impl Into<Token>) -> Self {
        self.site_id = Some(site_id.into());
        self.track_api_key = Some(api_key.into());
        self
    }

    /// The App API key (sent as `Authorization: Bearer …`).
    pub fn app_api_key(mut self, key: impl Into<Token>) -> Self {
        self.app_api_key = Some(key.into());
        self
    }

    /// The Pipelines (CDP) API key of a source (HTTP Basic with the key as user and an empty password, `key:`;
    /// Pipelines spec `securitySchemes.Basic-Auth`).
    pub fn pipelines_api_key(mut self, key: impl Into<Token>) -> Self {
        self.pipelines_api_key = Some(key.into());
        self
    }

    /// The workspace's region (default US). Sets both base URLs unless overridden.
    pub fn region(mut self, region: Region) -> Self {
        self.region = region;
        self
    }

    /// Overrides the Track base URL (for fakes and tests), e.g. `http://127.0.0.1:9000`. Paths add `/api/v1/…`.
    /// Parsed in [`ClientBuilder::build`] (an invalid URL is [`Error::InvalidRequest`]).
    pub fn track_base_url(mut self, url: impl AsRef<str>) -> Self {
        self.track_base = Some(url.as_ref().to_owned());
        self
    }

    /// Overrides the App API base URL. Paths add `/v1/…`. Parsed in [`ClientBuilder::build`].
    pub fn app_base_url(mut self, url: impl AsRef<str>) -> Self {
        self.app_base = Some(url.as_ref().to_owned());
        self
    }

    /// Overrides the Pipelines (CDP) base URL. Paths add `/v1/…`. Parsed in [`ClientBuilder::build`].
    pub fn pipelines_base_url(mut self, url: impl AsRef<str>) -> Self {
        self.pipelines_base = Some(url.as_ref().to_owned());
        self
    }

    /// Sets the Track, App and Pipelines base URLs to one server (a fake or mock serving all their paths). Parsed
    /// in [`ClientBuilder::build`].
    pub fn base_url(self, url: impl AsRef<str>) -> Self {
        let url = url.as_ref();
        self.track_base_url(url).app_base_url(url).pipelines_base_url(url)
    }

    /// Connect and whole-request timeouts (defaults 10 s and 30 s).
    pub fn timeouts(mut self, connect: Duration, request: Duration) -> Self {
        self.connect_timeout = connect;
        self.request_timeout = request;
        self
    }

    /// The connect timeout (default 10 s), as the other crates' builders name it.
    pub fn connect_timeout(mut self, d: Duration) -> Self {
        self.connect_timeout = d;
        self
    }

    /// The whole-request timeout (default 30 s), as the other crates' builders name it.
    pub fn request_timeout(mut self, d: Duration) -> Self {
        self.request_timeout = d;
        self
    }

    /// The retry policy (default: api-core's, 5 attempts with jittered backoff, `Retry-After` honoured). 408, 429,
    /// 5xx and transport errors are retried (5xx and timeouts only for idempotent requests); 400, 401, 403, 404,
    /// 422 never.
    pub fn retry_policy(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// The rate budget `api`'s requests draw from, e.g. a budget shared by several processes (sync-core's
    /// `StoreBudget`) keyed by the workspace. Each [`Api`] lane has its own budget; the defaults are in-process
    /// limiters: Track [`DEFAULT_TRACK_RATE_PER_SECOND`]/s, App API [`DEFAULT_APP_RATE_PER_SECOND`]/s, transactional
    /// sends [`DEFAULT_TRANSACTIONAL_RATE_PER_SECOND`]/s, broadcast triggers 1 per [`BROADCAST_TRIGGER_INTERVAL`].
    pub fn rate_budget(mut self, api: Api, budget: impl RateBudget + 'static) -> Self {
        let budget: Arc<dyn RateBudget> = Arc::new(budget);
        match api {
            Api::Track => self.track_limiter = Some(budget),
            Api::App => self.app_limiter = Some(budget),
            Api::Transactional => self.transactional_limiter = Some(budget),
            Api::Broadcasts => self.broadcast_limiter = Some(budget),
            Api::Pipelines => self.pipelines_limiter = Some(budget),
        }
        self
    }

    /// Disables client-side rate limiting everywhere (tests, or when an outer limiter is in charge).
    pub fn unlimited(self) -> Self {
        self.rate_budget(Api::Track, RateLimiter::unlimited())
            .rate_budget(Api::App, RateLimiter::unlimited())
            .rate_budget(Api::Transactional, RateLimiter::unlimited())
            .rate_budget(Api::Broadcasts, RateLimiter::unlimited())
            .rate_budget(Api::Pipelines, RateLimiter::unlimited())
    }

    /// The `User-Agent` (default `customerio-api/<version>`).
    pub fn user_agent(mut self, ua: impl Into<String>) -> Self {
        self.user_agent = ua.into();
        self
    }

    /// A custom transport (default: [`NoRedirectTransport`], reqwest with redirects disabled).
    pub fn transport(mut self, transport: Arc<dyn Transport>) -> Self {
        self.transport = Some(transport);
        self
    }

    /// Builds the client.
    ///
    /// # Errors
    /// [`Error::InvalidRequest`] when a base URL does not parse (or is not `http`/`https`) or TLS cannot be
    /// initialised; [`Error::InvalidCredential`] when a key holds bytes not allowed in a header.
    pub fn build(self) -> Result<Client, Error> {
        let track_base = match &self.track_base {
            Some(u) => parse_base(u, "track base URL")?,
            None => self.region.track_base(),
        };
        let app_base = match &self.app_base {
            Some(u) => parse_base(u, "App API base URL")?,
            None => self.region.app_base(),
        };
        let pipelines_base = match &self.pipelines_base {
            Some(u) => parse_base(u, "Pipelines base URL")?,
            None => self.region.pipelines_base(),
        };
        let transport: Arc<dyn Transport> = match self.transport {
            Some(t) => t,
            None => Arc::new(
                NoRedirectTransport::new(self.connect_timeout, self.request_timeout, &self.user_agent)
                    .map_err(|e| Error::InvalidRequest(e.to_string()))?,
            ),
        };
        let track_auth = match (&self.site_id, &self.track_api_key) {
            (Some(site), Some(key)) => {
                Some(api_core::secret::basic_auth_header(site, key).map_err(|_| Error::InvalidCredential)?)
            }
            _ => None,
        };
        let app_auth = match &self.app_api_key {
            Some(k) => Some(k.bearer_header().map_err(|_| Error::InvalidCredential)?),
            None => None,
        };
        let pipelines_auth = match &self.pipelines_api_key {
            Some(k) => Some(
                api_core::secret::basic_auth_header(k.expose(), &Token::new(""))
                    .map_err(|_| Error::InvalidCredential)?,
            ),
            None => None,
        };
        let lane = |base: &Url, limiter: Option<Arc<dyn RateBudget>>, default: RateLimiter, key: &str| {
            HttpClient::new(base.clone(), transport.clone())
                .with_retry(self.retry)
                .with_budget(limiter.unwrap_or_else(|| Arc::new(default)))
                .with_default_key(key)
        };
        let track = lane(
            &track_base,
            self.track_limiter,
            RateLimiter::new([Rule::per_second(DEFAULT_TRACK_RATE_PER_SECOND)]),
            "track",
        );
        let app =
            lane(&app_base, self.app_limiter, RateLimiter::new([Rule::per_second(DEFAULT_APP_RATE_PER_SECOND)]), "app");
        let transactional = lane(
            &app_base,
            self.transactional_limiter,
            RateLimiter::new([Rule::per_second(DEFAULT_TRANSACTIONAL_RATE_PER_SECOND)]),
            "transactional",
        );
        let broadcasts = lane(
            &app_base,
            self.broadcast_limiter,
            RateLimiter::new([Rule::Window { max: 1, window: BROADCAST_TRIGGER_INTERVAL }]),
            "broadcasts",
        );
        let pipelines = lane(
            &pipelines_base,
            self.pipelines_limiter,
            RateLimiter::new([Rule::per_second(DEFAULT_PIPELINES_RATE_PER_SECOND)]),
            "pipelines",
        );
        Ok(Client {
            inner: Arc::new(Inner {
                region: self.region,
                site_id: self.site_id,
                track_auth,
                app_auth,
                pipelines_auth,
                track,
                app,
                transactional,
                broadcasts,
                pipelines,
            }),
        })
    }
}

fn parse_base(raw: &str, what: &str) -> Result<Url, Error> {
    let url = Url::parse(raw).map_err(|e| Error::InvalidRequest(format!("{what} `{raw}`: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.cannot_be_a_base() {
        return Err(Error::InvalidRequest(format!("{what} `{raw}`: not an http(s) base URL")));
    }
    Ok(url)
}

struct Inner {
    region: Region,
    site_id: Option<String>,
    track_auth: Option<HeaderValue>,
    app_auth: Option<HeaderValue>,
    pipelines_auth: Option<HeaderValue>,
    track: HttpClient,
    app: HttpClient,
    transactional: HttpClient,
    broadcasts: HttpClient,
    pipelines: HttpClient,
}

/// A Customer.io client: Track v1/v2 (Basic auth) and the App API (Bearer). Cheap to clone; clones share
/// connections and rate limiters. `Debug` never shows a credential.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("region", &self.inner.region)
            .field("site_id", &self.inner.site_id)
            .field("track_base", &self.inner.track.base_url().as_str())
            .field("app_base", &self.inner.app.base_url().as_str())
            .field("track_credentials", &self.inner.track_auth.as_ref().map(|_| "[redacted]"))
            .field("app_api_key", &self.inner.app_auth.as_ref().map(|_| "[redacted]"))
            .field("pipelines_api_key", &self.inner.pipelines_auth.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

/// Which App API rate-limit lane a request uses.
#[derive(Debug, Clone, Copy)]
pub(crate) enum AppLane {
    General,
    Transactional,
    Broadcasts,
}

/// Which Customer.io API (and, for the App API, which of its rate-limit lanes) a raw request goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Api {
    /// The Track API (Basic auth with site id and Track key).
    Track,
    /// The App API (Bearer auth), general lane (10 requests/s).
    App,
    /// The App API's transactional sends lane (`/v1/send/*`, 100 requests/s).
    Transactional,
    /// The App API's API-triggered broadcasts lane (1 request per 10 s).
    Broadcasts,
    /// The Pipelines (CDP) API (Basic auth with the source's API key).
    Pipelines,
}

impl Client {
    /// A builder: credentials, region, base URL overrides, timeouts, retry policy, rate limits, user agent.
    pub fn builder() -> ClientBuilder {
        ClientBuilder::default()
    }

    /// The configured region.
    #[must_use]
    pub fn region(&self) -> Region {
        self.inner.region
    }

    /// The Track base URL in use.
    #[must_use]
    pub fn track_base_url(&self) -> &Url {
        self.inner.track.base_url()
    }

    /// The App API base URL in use.
    #[must_use]
    pub fn app_base_url(&self) -> &Url {
        self.inner.app.base_url()
    }

    /// Sends a raw request to `api` with the client's credentials, base URL, retries and rate limits: for
    /// endpoints this crate does not type yet. The path is relative to that API's base URL.
    ///
    /// # Errors
    /// [`Error::MissingCredentials`] when that API's credentials were not configured; [`Error::Api`] for a
    /// non-2xx answer, [`Error::Redirect`] for a 3xx, [`Error::Transport`].
    pub async fn send(&self, api: Api, request: Request) -> Result<RawResponse, Error> {
        match api {
            Api::Track => self.track_send(request).await,
            Api::App => self.app_send(AppLane::General, request).await,
            Api::Transactional => self.app_send(AppLane::Transactional, request).await,
            Api::Broadcasts => self.app_send(AppLane::Broadcasts, request).await,
            Api::Pipelines => self.pipelines_send(request).await,
        }
    }

    /// The Pipelines base URL in use.
    #[must_use]
    pub fn pipelines_base_url(&self) -> &Url {
        self.inner.pipelines.base_url()
    }

    /// Sends a Pipelines request with Basic `api_key:` auth.
    pub(crate) async fn pipelines_send(&self, req: Request) -> Result<RawResponse, Error> {
        let auth = self
            .inner
            .pipelines_auth
            .clone()
            .ok_or(Error::MissingCredentials { api: "Pipelines", hint: "ClientBuilder::pipelines_api_key" })?;
        let resp = self.inner.pipelines.execute(req.header(AUTHORIZATION, auth)).await?;
        if resp.is_success() { Ok(resp) } else { Err(Error::from_response(&resp)) }
    }

    /// Sends a Track request with Basic auth; any 2xx is success (the body is returned for 207 handling).
    pub(crate) async fn track_send(&self, req: Request) -> Result<RawResponse, Error> {
        let auth = self
            .inner
            .track_auth
            .clone()
            .ok_or(Error::MissingCredentials { api: "Track", hint: "ClientBuilder::track_credentials" })?;
        let resp = self.inner.track.execute(req.header(AUTHORIZATION, auth)).await?;
        if resp.is_success() { Ok(resp) } else { Err(Error::from_response(&resp)) }
    }

    /// Sends an App API request with Bearer auth.
    pub(crate) async fn app_send(&self, lane: AppLane, req: Request) -> Result<RawResponse, Error> {
        let auth = self
            .inner
            .app_auth
            .clone()
            .ok_or(Error::MissingCredentials { api: "App", hint: "ClientBuilder::app_api_key" })?;
        let http = match lane {
            AppLane::General => &self.inner.app,
            AppLane::Transactional => &self.inner.transactional,
            AppLane::Broadcasts => &self.inner.broadcasts,
        };
        let resp = http.execute(req.header(AUTHORIZATION, auth)).await?;
        if resp.is_success() { Ok(resp) } else { Err(Error::from_response(&resp)) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_traits<T: Clone + Send + Sync + fmt::Debug + 'static>() {}

    #[test]
    fn client_is_clone_send_sync_debug_and_redacts() {
        assert_traits::<Client>();
        let c = Client::builder()
            .track_credentials("site-123", Token::new("track_secret_key"))
            .app_api_key(Token::new("app_secret_key"))
            .region(Region::Eu)
            .build()
            .unwrap();
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("track_secret_key") && !dbg.contains("app_secret_key"), "{dbg}");
        // base64("site-123:track_secret_key") must not leak either
        assert!(!dbg.contains("Basic"), "{dbg}");
        assert!(dbg.contains("track-eu.customer.io") && dbg.contains("api-eu.customer.io"), "{dbg}");
        assert!(dbg.contains("[redacted]"));
    }
}
