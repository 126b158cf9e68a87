//! The operator console and `/metrics` of every `serve` (issue 24), on their own listen address
//! (`--console-listen`), never on the public webhook port.
//!
//! What it shows (server-rendered HTML, no JavaScript, readable on a phone): per source and flow the queue depth,
//! the oldest queued age, the throughput of the last hour and the events waiting for a retry; the dead letters with
//! error, attempts, headers and payload (secrets and signature headers redacted, see [`redact`]) and a replay
//! button; skipped events by reason; the vendor rate budgets shared through the store with any 429/ban hold in
//! force; the background components (validation, webhook / subscription upkeep of Airtable, Calendly, Productive)
//! with their state and last error, and the Airtable webhook's expiry.
//!
//! **Actions go through the store functions the CLI uses**: replay is [`sync_core::Store::replay`] (the `replay`
//! subcommand), purge is [`crate::purge_done_events`] (the `purge` subcommand; [`sync_core::Store::purge_done`]
//! underneath, as in the retention task); each writes an audit line
//! (`tracing` target `audit`) naming the action, the row or cut-off, the result and who asked (the authenticated
//! principal and the peer address).
//!
//! **Authentication**: `Authorization: Bearer <SYNC_CONSOLE_TOKEN>` or HTTP basic auth with
//! `SYNC_CONSOLE_BASIC_AUTH` (`user:password`); both may be set. Without either, the console only starts on a
//! loopback address, and then refuses requests whose `Host` is not a loopback name (a DNS-rebinding page cannot
//! reach it). **CSRF**: every state-changing route is a POST carrying the per-process token embedded in the page's
//! forms, and is refused when the browser says it comes from another origin (`Origin` not this host,
//! `Sec-Fetch-Site` other than `same-origin`). Browsers send basic-auth credentials with cross-site form posts,
//! so the token is what keeps another site from replaying or purging.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::Context as _;
use axum::extract::{ConnectInfo, Form, Path, Query, State as AxumState};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Router, middleware};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use sync_core::{Engine, Store};

mod page;
pub mod redact;

/// The console's command-line options (part of `serve`'s).
#[derive(Debug, clap::Args, Clone, Default)]
pub struct ConsoleArgs {
    /// Address of the operator console and `/metrics` (off when unset). Keep it off the public webhook port; a
    /// non-loopback address needs `SYNC_CONSOLE_TOKEN` or `SYNC_CONSOLE_BASIC_AUTH` in the environment.
    #[arg(long, env = "SYNC_CONSOLE_LISTEN")]
    pub console_listen: Option<SocketAddr>,
}

/// The environment variable holding the console's bearer token.
pub const TOKEN_ENV: &str = "SYNC_CONSOLE_TOKEN";
/// The environment variable holding the console's basic-auth credentials, `user:password`.
pub const BASIC_ENV: &str = "SYNC_CONSOLE_BASIC_AUTH";

/// Who may use the console.
#[derive(Clone, Default)]
pub struct ConsoleAuth {
    bearer: Option<String>,
    basic: Option<(String, String)>,
}

impl std::fmt::Debug for ConsoleAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsoleAuth")
            .field("bearer", &self.bearer.as_ref().map(|_| "[redacted]"))
            .field("basic_user", &self.basic.as_ref().map(|(u, _)| u))
            .finish()
    }
}

impl ConsoleAuth {
    /// No credentials: only allowed on a loopback address.
    #[must_use]
    pub fn none() -> Self {
        Self::default()
    }

    /// Accepts `Authorization: Bearer <token>`.
    #[must_use]
    pub fn bearer(mut self, token: impl Into<String>) -> Self {
        self.bearer = Some(token.into());
        self
    }

    /// Accepts HTTP basic auth with `user` and `password`.
    #[must_use]
    pub fn basic(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        self.basic = Some((user.into(), password.into()));
        self
    }

    /// From [`TOKEN_ENV`] and [`BASIC_ENV`] (empty values count as unset).
    ///
    /// # Errors
    /// When [`BASIC_ENV`] is not `user:password`.
    pub fn from_env() -> anyhow::Result<Self> {
        let mut auth = Self::none();
        if let Ok(t) = std::env::var(TOKEN_ENV)
            && !t.trim().is_empty()
        {
            auth = auth.bearer(t.trim());
        }
        if let Ok(b) = std::env::var(BASIC_ENV)
            && !b.trim().is_empty()
        {
            let (u, p) = b.trim().split_once(':').with_context(|| format!("{BASIC_ENV} must be user:password"))?;
            anyhow::ensure!(!p.is_empty(), "{BASIC_ENV} has an empty password");
            auth = auth.basic(u, p);
        }
        Ok(auth)
    }

    /// Whether any credential is configured.
    #[must_use]
    pub fn is_configured(&self) -> bool {
        self.bearer.is_some() || self.basic.is_some()
    }

    /// The principal named by `headers`' credentials, `None` when they are missing or wrong.
    fn check(&self, headers: &HeaderMap) -> Option<String> {
        let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
        let (scheme, rest) = value.split_once(' ')?;
        if scheme.eq_ignore_ascii_case("bearer") {
            let want = self.bearer.as_ref()?;
            return ct_eq(rest.trim(), want).then(|| "bearer".to_owned());
        }
        if scheme.eq_ignore_ascii_case("basic") {
            use base64::Engine as _;
            let (user, password) = self.basic.as_ref()?;
            let decoded = base64::engine::general_purpose::STANDARD.decode(rest.trim()).ok()?;
            let decoded = String::from_utf8(decoded).ok()?;
            let (u, p) = decoded.split_once(':')?;
            // both compared, in constant time, before deciding
            let ok = ct_eq(u, user) & ct_eq(p, password);
            return ok.then(|| format!("basic:{u}"));
        }
        None
    }
}

fn ct_eq(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq as _;
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// What the console serves, besides the store.
#[derive(Clone)]
pub struct ConsoleConfig {
    /// Credentials.
    pub auth: ConsoleAuth,
    /// The token every POST form carries (random per process by default).
    pub csrf_token: String,
    /// The Prometheus exporter's handle (`None`: `/metrics` answers 404).
    pub metrics: Option<PrometheusHandle>,
    /// `(source, flow name)` of this process's engine, in source order.
    pub flows: Vec<(String, String)>,
    /// Default age, in days, offered by the purge form (the retention setting).
    pub retention_days: u64,
    /// This process's name (`host:pid`).
    pub instance: String,
}

impl std::fmt::Debug for ConsoleConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsoleConfig")
            .field("auth", &self.auth)
            .field("csrf_token", &"[redacted]")
            .field("metrics", &self.metrics.is_some())
            .field("flows", &self.flows)
            .field("retention_days", &self.retention_days)
            .field("instance", &self.instance)
            .finish()
    }
}

impl ConsoleConfig {
    /// A config with a fresh random CSRF token, no metrics and no flows.
    #[must_use]
    pub fn new(auth: ConsoleAuth) -> Self {
        Self {
            auth,
            csrf_token: hex::encode(rand::random::<[u8; 32]>()),
            metrics: None,
            flows: Vec::new(),
            retention_days: 8,
            instance: String::new(),
        }
    }

    /// The sources and flows of `engine`.
    #[must_use]
    pub fn flows_of(mut self, engine: &Engine) -> Self {
        self.flows = engine
            .sources()
            .into_iter()
            .map(|s| {
                let flow = engine.flow_for(&s).map(|f| f.name().to_owned()).unwrap_or_default();
                (s, flow)
            })
            .collect();
        self
    }
}

#[derive(Debug)]
struct Console {
    store: Store,
    config: ConsoleConfig,
    /// Whether the listen address is loopback (only then may `auth` be empty).
    loopback_only: bool,
}

/// Histogram buckets (seconds) of every latency the process records: 1 ms to 60 s.
const BUCKETS: &[f64] = &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

/// The process's Prometheus recorder, installed on first use (the `metrics` facade has one global recorder per
/// process: api-core's HTTP client, sync-core's ingest and workers all record into it).
///
/// # Errors
/// When another recorder was installed first.
pub fn metrics_handle() -> anyhow::Result<PrometheusHandle> {
    static HANDLE: OnceLock<Result<PrometheusHandle, String>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new().set_buckets(BUCKETS).map_err(|e| e.to_string())?.build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).map_err(|e| e.to_string())?;
            Ok(handle)
        })
        .clone()
        .map_err(|e| anyhow::anyhow!("installing the Prometheus recorder: {e}"))
}

/// The console's router (every route behind authentication).
pub fn router(store: Store, config: ConsoleConfig) -> Router {
    router_for(store, config, true)
}

fn router_for(store: Store, config: ConsoleConfig, loopback_only: bool) -> Router {
    let state = Arc::new(Console { store, config, loopback_only });
    Router::new()
        .route("/", get(index))
        .route("/replay/{id}", post(replay))
        .route("/purge", post(purge))
        .route("/metrics", get(metrics_route))
        .layer(middleware::from_fn_with_state(state.clone(), guard))
        .with_state(state)
}

/// A running console; dropping it stops it.
#[derive(Debug)]
pub struct ConsoleHandle {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
    upkeep: Option<tokio::task::JoinHandle<()>>,
}

impl ConsoleHandle {
    /// The bound address.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for ConsoleHandle {
    fn drop(&mut self) {
        self.task.abort();
        if let Some(u) = &self.upkeep {
            u.abort();
        }
    }
}

/// Starts the console of a `serve` process when `--console-listen` is set: credentials from the environment,
/// the process's Prometheus recorder, the engine's flows.
///
/// # Errors
/// On a non-loopback address without credentials, bad credentials in the environment, or when the address cannot
/// be bound.
pub async fn start_for_serve(
    args: &ConsoleArgs,
    store: Store,
    engine: &Engine,
    instance: &str,
    retention_days: u64,
) -> anyhow::Result<Option<ConsoleHandle>> {
    let Some(addr) = args.console_listen else { return Ok(None) };
    let auth = ConsoleAuth::from_env()?;
    let metrics = metrics_handle()?;
    let mut config = ConsoleConfig::new(auth).flows_of(engine);
    config.metrics = Some(metrics.clone());
    config.retention_days = retention_days;
    config.instance = instance.to_owned();
    let mut handle = start(addr, store, config).await?;
    // the exporter's histograms are drained into their buckets by upkeep; without it they grow unbounded
    handle.upkeep = Some(tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(5));
        loop {
            every.tick().await;
            metrics.run_upkeep();
        }
    }));
    Ok(Some(handle))
}

/// Binds `addr` and serves the console on it.
///
/// # Errors
/// On a non-loopback address without credentials, or when the address cannot be bound.
pub async fn start(addr: SocketAddr, store: Store, config: ConsoleConfig) -> anyhow::Result<ConsoleHandle> {
    let loopback = addr.ip().is_loopback();
    anyhow::ensure!(
        loopback || config.auth.is_configured(),
        "refusing to serve the console on {addr} (not a loopback address) without credentials: set {TOKEN_ENV} or \
         {BASIC_ENV}"
    );
    let listener =
        tokio::net::TcpListener::bind(addr).await.with_context(|| format!("binding the console on {addr}"))?;
    let addr = listener.local_addr()?;
    let app = router_for(store, config, loopback).into_make_service_with_connect_info::<SocketAddr>();
    tracing::info!(%addr, "operator console and /metrics on http://{addr}/");
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "the console stopped");
        }
    });
    Ok(ConsoleHandle { addr, task, upkeep: None })
}

/// The principal of an authenticated request (set by [`guard`]).
#[derive(Debug, Clone)]
struct Principal(String);

/// Authentication for every route, the loopback `Host` check without credentials, and the security headers.
async fn guard(
    AxumState(console): AxumState<Arc<Console>>,
    mut request: axum::extract::Request,
    next: middleware::Next,
) -> Response {
    let headers = request.headers();
    let principal = if console.config.auth.is_configured() {
        match console.config.auth.check(headers) {
            Some(p) => p,
            None => {
                let mut r = (StatusCode::UNAUTHORIZED, "authentication required\n").into_response();
                if console.config.auth.basic.is_some() {
                    r.headers_mut()
                        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"sync console\""));
                } else {
                    r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                }
                return r;
            }
        }
    } else {
        // no credentials: loopback only, and only under a loopback host name (DNS rebinding)
        if !console.loopback_only || !host_is_loopback(headers) {
            return (StatusCode::FORBIDDEN, "the console without credentials answers loopback hosts only\n")
                .into_response();
        }
        "local".to_owned()
    };
    request.extensions_mut().insert(Principal(principal));
    let mut response = next.run(request).await;
    let h = response.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    // `same-origin`, not `no-referrer`: under `no-referrer` Chromium sends `Origin: null` with the page's own form
    // posts (found by the browser test), which the CSRF check refuses
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    response
}

fn host_is_loopback(headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else { return false };
    // strip the port (IPv6 literals are bracketed)
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        host.rsplit_once(':').map_or(host, |(h, _)| h)
    };
    name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The CSRF rule for POSTs: the form's token equals this process's, and the browser does not say the request
/// comes from another site.
fn csrf_ok(console: &Console, headers: &HeaderMap, token: &str) -> Result<(), &'static str> {
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok())
        && site != "same-origin"
    {
        return Err("cross-site request refused");
    }
    if let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("");
        let same = origin.strip_prefix("http://").or_else(|| origin.strip_prefix("https://")) == Some(host);
        if !same {
            return Err("cross-origin request refused");
        }
    }
    if !ct_eq(token, &console.config.csrf_token) {
        return Err("missing or wrong form token (reload the page)");
    }
    Ok(())
}

fn peer(connect: Option<&axum::Extension<ConnectInfo<SocketAddr>>>) -> String {
    connect.map_or_else(|| "-".to_owned(), |c| c.0.0.to_string())
}

#[derive(Debug, serde::Deserialize, Default)]
struct Flash {
    replayed: Option<i64>,
    purged: Option<u64>,
}

async fn index(AxumState(console): AxumState<Arc<Console>>, Query(flash): Query<Flash>) -> Response {
    match page::render(&console.store, &console.config, &flash).await {
        Ok(html) => {
            ([(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"))], html).into_response()
        }
        Err(e) => {
            tracing::warn!(error = %e, "console: the store could not be read");
            (StatusCode::SERVICE_UNAVAILABLE, format!("the store could not be read: {e}\n")).into_response()
        }
    }
}

#[derive(Debug, serde::Deserialize)]
struct TokenForm {
    #[serde(default)]
    csrf: String,
}

async fn replay(
    AxumState(console): AxumState<Arc<Console>>,
    Path(id): Path<i64>,
    axum::Extension(Principal(who)): axum::Extension<Principal>,
    connect: Option<axum::Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    Form(form): Form<TokenForm>,
) -> Response {
    let peer = peer(connect.as_ref());
    if let Err(why) = csrf_ok(&console, &headers, &form.csrf) {
        tracing::warn!(target: "audit", action = "replay", id, who, peer, refused = why, "console action refused");
        return (StatusCode::FORBIDDEN, format!("{why}\n")).into_response();
    }
    match console.store.replay(id).await {
        Ok(true) => {
            tracing::info!(target: "audit", action = "replay", id, who, peer, result = "queued", "console: dead letter replayed");
            Redirect::to(&format!("/?replayed={id}")).into_response()
        }
        Ok(false) => {
            tracing::info!(target: "audit", action = "replay", id, who, peer, result = "not a dead letter", "console: replay refused");
            (StatusCode::CONFLICT, format!("event #{id} is not a dead letter (already replayed?)\n")).into_response()
        }
        Err(e) => {
            tracing::warn!(target: "audit", action = "replay", id, who, peer, error = %e, "console: replay failed");
            (StatusCode::SERVICE_UNAVAILABLE, format!("replay failed: {e}\n")).into_response()
        }
    }
}

#[derive(Debug, serde::Deserialize)]
struct PurgeForm {
    #[serde(default)]
    csrf: String,
    days: u64,
}

async fn purge(
    AxumState(console): AxumState<Arc<Console>>,
    axum::Extension(Principal(who)): axum::Extension<Principal>,
    connect: Option<axum::Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    Form(form): Form<PurgeForm>,
) -> Response {
    let peer = peer(connect.as_ref());
    let days = form.days;
    if let Err(why) = csrf_ok(&console, &headers, &form.csrf) {
        tracing::warn!(target: "audit", action = "purge", days, who, peer, refused = why, "console action refused");
        return (StatusCode::FORBIDDEN, format!("{why}\n")).into_response();
    }
    if days == 0 {
        return (
            StatusCode::BAD_REQUEST,
            "purging events finished less than a day ago is refused: their dedup keys \
            must outlive the senders' retries\n",
        )
            .into_response();
    }
    // the function of the `purge` subcommand
    match crate::purge_done_events(&console.store, days).await {
        Ok(n) => {
            tracing::info!(target: "audit", action = "purge", days, who, peer, purged = n, "console: done events purged");
            Redirect::to(&format!("/?purged={n}")).into_response()
        }
        Err(e) => {
            tracing::warn!(target: "audit", action = "purge", days, who, peer, error = %e, "console: purge failed");
            (StatusCode::SERVICE_UNAVAILABLE, format!("purge failed: {e}\n")).into_response()
        }
    }
}

/// `/metrics`: the process's counters and histograms, plus gauges read from the store at scrape time (queue depth
/// per source and state, the oldest due event's age, dead letters, vendor holds).
async fn metrics_route(AxumState(console): AxumState<Arc<Console>>) -> Response {
    let Some(handle) = &console.config.metrics else {
        return (StatusCode::NOT_FOUND, "metrics are not enabled in this process\n").into_response();
    };
    if let Err(e) = record_store_gauges(&console.store).await {
        tracing::warn!(error = %e, "/metrics: the store could not be read; store gauges are stale");
    }
    ([(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"))], handle.render())
        .into_response()
}

async fn record_store_gauges(store: &Store) -> anyhow::Result<()> {
    let status = store.status().await?;
    let mut depth: BTreeMap<(String, &'static str), i64> = BTreeMap::new();
    for ((source, state), n) in &status.depth {
        depth.insert((source.clone(), state.as_str()), *n);
    }
    for ((source, state), n) in depth {
        #[allow(clippy::cast_precision_loss)] // counts far below 2^52
        metrics::gauge!("sync_queue_depth", "source" => source, "state" => state).set(n as f64);
    }
    metrics::gauge!("sync_oldest_due_age_seconds").set(status.oldest_due_age.unwrap_or_default().as_secs_f64());
    #[allow(clippy::cast_precision_loss)]
    metrics::gauge!("sync_dead_letter_rows").set(status.dead as f64);
    let now = chrono::Utc::now();
    for b in store.budget_states().await? {
        let left = b.paused_until.map_or(0.0, |t| (t - now).to_std().unwrap_or_default().as_secs_f64());
        metrics::gauge!("sync_rate_hold_seconds", "key" => b.key).set(left);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        let h = |v: &str| {
            let mut m = HeaderMap::new();
            m.insert(header::HOST, HeaderValue::from_str(v).unwrap());
            host_is_loopback(&m)
        };
        assert!(h("127.0.0.1:9090"));
        assert!(h("localhost:9090"));
        assert!(h("[::1]:9090"));
        assert!(!h("evil.example:9090"));
        assert!(!h("10.0.0.1"));
        assert!(!host_is_loopback(&HeaderMap::new()));
    }

    #[test]
    fn debug_hides_the_token_the_password_and_the_form_token() {
        let a = ConsoleAuth::none().bearer("s3cret-token").basic("ops", "pa55");
        let text = format!("{a:?}");
        assert!(!text.contains("s3cret") && !text.contains("pa55"), "{text}");
        let config = ConsoleConfig::new(a);
        let text = format!("{config:?}");
        assert!(!text.contains(&config.csrf_token) && !text.contains("s3cret"), "{text}");
    }
}
