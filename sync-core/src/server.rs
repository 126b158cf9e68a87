//! The ingest router (feature `server`): one `POST` endpoint per source that verifies, deduplicates and stores
//! the raw event, and answers as soon as the inbox row is committed. Work happens later, in the workers.
//!
//! | request | answer |
//! |---|---|
//! | `POST /hooks/{source}` or `POST /hooks/{source}/{token}`, verified, new | `200 {"status":"accepted","id":…}` |
//! | same, already stored (`source`, dedup key) | `200 {"status":"duplicate"}` (the sender stops retrying) |
//! | body over the source's limit | `413` |
//! | verifier refuses (bad signature, wrong path token) | `401` |
//! | the flow cannot derive a dedup key (malformed body) | `400` |
//! | unknown source | `404` |
//! | the store failed (nothing acknowledged; the sender retries) | `503` |
//! | `GET /healthz` | `200` while the process runs |
//! | `GET /readyz` | `200` if the database answers (the receiver accepts), else `503`; JSON body below |
//!
//! `/readyz` answers 200 whenever the database answers, because that is what accepting a webhook needs: a flow
//! whose start-up validation or webhook upkeep is still failing does not stop the receiver (its events wait in the
//! inbox). The body says how far the process is, from the `component_health` table ([`crate::Store::health`]):
//!
//! ```json
//! {"status": "degraded", "database": "ok",
//!  "components": [{"component": "validation", "instance": "host:4242", "state": "failing", "attempts": 3,
//!                  "last_error": "…", "since": "2026-…Z", "updated_at": "2026-…Z"}]}
//! ```
//!
//! `status` is `ready` when every listed component is `ready` (or none is listed), `degraded` when any is
//! `failing`, else `starting`. Components of every process sharing the database are listed, each with the
//! `instance` that reported it. When the database does not answer: `503 {"status": "unavailable", "database":
//! "<error>"}`. Orchestrators should route traffic on the status code and alert on the body.
//!
//! Rejections are logged (`tracing::warn!` with the reason) and counted in [`ServerStats`].
//! Verification runs on the raw bytes before anything is parsed or written.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::error::{Error, Result};
use crate::flow::{Engine, IngestError};
use crate::store::{Headers, Ingested};

/// What a verifier sees.
#[derive(Debug, Clone, Copy)]
pub struct VerifyRequest<'a> {
    /// Source name.
    pub source: &'a str,
    /// Request headers, lower-case names.
    pub headers: &'a Headers,
    /// Raw body.
    pub body: &'a [u8],
    /// The `{token}` path segment, if the request used `/hooks/{source}/{token}`.
    pub path_token: Option<&'a str>,
}

/// Authenticates a webhook request (signature check over the raw body, or a secret path token for senders that
/// sign nothing, like Kommo). Return `Err(reason)` to answer 401.
pub trait Verifier: Send + Sync + std::fmt::Debug {
    /// Checks the request.
    fn verify(&self, request: &VerifyRequest<'_>) -> Result<(), String>;
}

/// A closure as a [`Verifier`] (wrap the API crates' signature checks with this).
pub struct FnVerifier<F>(pub F);

impl<F> std::fmt::Debug for FnVerifier<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FnVerifier")
    }
}

impl<F> Verifier for FnVerifier<F>
where
    F: Fn(&VerifyRequest<'_>) -> Result<(), String> + Send + Sync,
{
    fn verify(&self, request: &VerifyRequest<'_>) -> Result<(), String> {
        (self.0)(request)
    }
}

/// A secret path token (`/hooks/{source}/{token}`), compared in constant time. The secret never appears in
/// `Debug` output.
pub struct PathToken {
    secret: String,
}

impl PathToken {
    /// A token verifier. Use a long random secret (e.g. 32 random bytes, hex).
    pub fn new(secret: impl Into<String>) -> Self {
        Self { secret: secret.into() }
    }
}

impl std::fmt::Debug for PathToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PathToken(<redacted>)")
    }
}

impl Verifier for PathToken {
    fn verify(&self, request: &VerifyRequest<'_>) -> Result<(), String> {
        match request.path_token {
            Some(token) if constant_time_eq(token.as_bytes(), self.secret.as_bytes()) => Ok(()),
            Some(_) => Err("path token mismatch".into()),
            None => Err("path token missing".into()),
        }
    }
}

/// Byte-slice equality whose running time does not depend on where the slices differ (only on their lengths).
#[must_use]
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// One webhook source mounted on the router.
#[derive(Debug, Clone)]
pub struct SourceRoute {
    /// Source name (as consumed by a flow of the engine).
    pub source: String,
    /// Authentication.
    pub verifier: Arc<dyn Verifier>,
    /// Largest accepted body in bytes (default 1 MiB).
    pub body_limit: usize,
    /// Header names (lower-case) stored with the event (default: `content-type`).
    pub keep_headers: Vec<String>,
}

impl SourceRoute {
    /// A route with the defaults.
    pub fn new(source: impl Into<String>, verifier: impl Verifier + 'static) -> Self {
        Self {
            source: source.into(),
            verifier: Arc::new(verifier),
            body_limit: 1024 * 1024,
            keep_headers: vec!["content-type".into()],
        }
    }

    /// Sets the body limit.
    #[must_use]
    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = bytes;
        self
    }

    /// Adds headers to keep with the event.
    #[must_use]
    pub fn keep_headers<I: IntoIterator<Item = S>, S: Into<String>>(mut self, names: I) -> Self {
        self.keep_headers.extend(names.into_iter().map(|s| s.into().to_ascii_lowercase()));
        self
    }
}

/// Request counters of a router.
#[derive(Debug, Default)]
pub struct ServerStats {
    /// New events stored.
    pub accepted: AtomicU64,
    /// Duplicates acknowledged.
    pub duplicates: AtomicU64,
    /// 401s.
    pub unauthorized: AtomicU64,
    /// 413s.
    pub too_large: AtomicU64,
    /// 400s.
    pub malformed: AtomicU64,
    /// 404s.
    pub unknown_source: AtomicU64,
    /// 503s.
    pub store_errors: AtomicU64,
}

#[derive(Debug)]
struct AppState {
    engine: Engine,
    routes: HashMap<String, SourceRoute>,
    stats: Arc<ServerStats>,
}

/// Builds the router for `routes` (each must name a source of a flow in `engine`), returning it with its counters.
pub fn router(engine: Engine, routes: Vec<SourceRoute>) -> Result<(Router, Arc<ServerStats>)> {
    let mut map = HashMap::new();
    for route in routes {
        if engine.flow_for(&route.source).is_none() {
            return Err(Error::Config(format!("route for source `{}`, which no flow consumes", route.source)));
        }
        map.insert(route.source.clone(), route);
    }
    let stats = Arc::new(ServerStats::default());
    let state = Arc::new(AppState { engine, routes: map, stats: stats.clone() });
    let router = Router::new()
        .route("/hooks/{source}", post(hook))
        .route("/hooks/{source}/{token}", post(hook_with_token))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .with_state(state);
    Ok((router, stats))
}

async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    use crate::store::HealthState;
    let unavailable = |e: &crate::Error| {
        tracing::warn!(error = %e, "readiness check failed");
        let body = serde_json::json!({"status": "unavailable", "database": e.to_string()});
        (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response()
    };
    let store = state.engine.store();
    if let Err(e) = store.ping().await {
        return unavailable(&e);
    }
    let components = match store.health().await {
        Ok(c) => c,
        Err(e) => return unavailable(&e),
    };
    let status = if components.iter().any(|c| c.state == HealthState::Failing) {
        "degraded"
    } else if components.iter().all(|c| c.state == HealthState::Ready) {
        "ready"
    } else {
        "starting"
    };
    let list: Vec<serde_json::Value> = components
        .iter()
        .map(|c| {
            serde_json::json!({
                "component": c.component,
                "instance": c.instance,
                "state": c.state.as_str(),
                "attempts": c.attempts,
                "last_error": c.last_error,
                "since": c.since.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                "updated_at": c.updated_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            })
        })
        .collect();
    let body = serde_json::json!({"status": status, "database": "ok", "components": list});
    (StatusCode::OK, axum::Json(body)).into_response()
}

async fn hook(
    State(state): State<Arc<AppState>>,
    Path(source): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    handle(&state, &source, None, &headers, body).await
}

async fn hook_with_token(
    State(state): State<Arc<AppState>>,
    Path((source, token)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    handle(&state, &source, Some(&token), &headers, body).await
}

fn reject(counter: &AtomicU64, status: StatusCode, source: &str, reason: &str) -> Response {
    counter.fetch_add(1, Ordering::Relaxed);
    tracing::warn!(source, status = status.as_u16(), reason, "webhook rejected");
    (status, reason.to_owned()).into_response()
}

/// [`handle_delivery`], measured: `sync_ingest_requests_total{source, status}` and the
/// `sync_ingest_duration_seconds{source}` histogram (a path naming no route counts as source `unknown`, so a
/// scanner cannot grow the label set).
async fn handle(state: &AppState, source: &str, token: Option<&str>, headers: &HeaderMap, body: Body) -> Response {
    let started = std::time::Instant::now();
    let response = handle_delivery(state, source, token, headers, body).await;
    let label = if state.routes.contains_key(source) { source.to_owned() } else { "unknown".to_owned() };
    metrics::histogram!("sync_ingest_duration_seconds", "source" => label.clone()).record(started.elapsed());
    metrics::counter!("sync_ingest_requests_total", "source" => label, "status" => response.status().as_str().to_owned())
        .increment(1);
    response
}

async fn handle_delivery(
    state: &AppState,
    source: &str,
    token: Option<&str>,
    headers: &HeaderMap,
    body: Body,
) -> Response {
    let stats = &state.stats;
    let Some(route) = state.routes.get(source) else {
        return reject(&stats.unknown_source, StatusCode::NOT_FOUND, source, "unknown source");
    };
    let declared = headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > route.body_limit) {
        return reject(&stats.too_large, StatusCode::PAYLOAD_TOO_LARGE, source, "body over the limit");
    }
    let body = match axum::body::to_bytes(body, route.body_limit).await {
        Ok(b) => b,
        Err(e) => {
            return reject(
                &stats.too_large,
                StatusCode::PAYLOAD_TOO_LARGE,
                source,
                &format!("body over the limit or unreadable: {e}"),
            );
        }
    };
    let all_headers = header_map(headers);
    let request = VerifyRequest { source, headers: &all_headers, body: &body, path_token: token };
    if let Err(reason) = route.verifier.verify(&request) {
        return reject(
            &stats.unauthorized,
            StatusCode::UNAUTHORIZED,
            source,
            &format!("verification failed: {reason}"),
        );
    }
    let kept: Headers = all_headers
        .iter()
        .filter(|(k, _)| route.keep_headers.contains(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    match state.engine.ingest(source, &all_headers, body, kept).await {
        Ok(Ingested::Accepted { id }) => {
            stats.accepted.fetch_add(1, Ordering::Relaxed);
            metrics::counter!("sync_ingest_events_total", "source" => source.to_owned(), "result" => "accepted")
                .increment(1);
            (StatusCode::OK, axum::Json(serde_json::json!({"status": "accepted", "id": id}))).into_response()
        }
        Ok(Ingested::Duplicate) => {
            stats.duplicates.fetch_add(1, Ordering::Relaxed);
            metrics::counter!("sync_ingest_events_total", "source" => source.to_owned(), "result" => "duplicate")
                .increment(1);
            (StatusCode::OK, axum::Json(serde_json::json!({"status": "duplicate"}))).into_response()
        }
        Err(IngestError::Malformed(e)) => reject(&stats.malformed, StatusCode::BAD_REQUEST, source, &e.to_string()),
        Err(IngestError::UnknownSource(_)) => {
            reject(&stats.unknown_source, StatusCode::NOT_FOUND, source, "unknown source")
        }
        Err(IngestError::Store(e)) => {
            stats.store_errors.fetch_add(1, Ordering::Relaxed);
            tracing::error!(source, error = %e, "ingest failed; the sender will retry");
            (StatusCode::SERVICE_UNAVAILABLE, "temporarily unavailable").into_response()
        }
    }
}

/// Request headers as a map with lower-case names (multi-valued headers joined with `, `; non-UTF-8 values skipped).
#[must_use]
pub fn header_map(headers: &HeaderMap) -> Headers {
    let mut out = Headers::new();
    for (name, value) in headers {
        if let Ok(v) = value.to_str() {
            out.entry(name.as_str().to_owned())
                .and_modify(|e: &mut String| {
                    e.push_str(", ");
                    e.push_str(v);
                })
                .or_insert_with(|| v.to_owned());
        }
    }
    out
}

/// Serves `router` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router).with_graceful_shutdown(shutdown).await
}
