//! Shared scaffolding for the vendor fakes (feature `fake`): an axum server on 127.0.0.1 with an ephemeral port, a
//! request log, fault injection and a rate-limit counter. Each vendor crate's `fake` module supplies the routes and
//! the state; this module supplies everything around them.
//!
//! Faults are queued rules matched by method and path prefix, each applied a given number of times:
//! - [`Fault::Status`]: answer with this status, headers and body instead of calling the handler (429, 5xx);
//! - [`Fault::Delay`]: wait, then call the handler;
//! - [`Fault::DropAfterCommit`]: call the handler (its effect is committed) and then break the connection, so the
//!   client sees an I/O error and cannot know whether the request took effect.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    Router,
    body::Body,
    extract::{Request, State},
    http::{HeaderMap, Method, StatusCode},
    middleware::{self, Next},
    response::{IntoResponse, Response},
};
use bytes::Bytes;
use tokio::time::Instant;
use url::Url;

/// One request as the fake received it.
#[derive(Debug, Clone)]
pub struct LoggedRequest {
    /// Method.
    pub method: Method,
    /// Path (percent-encoded, as sent).
    pub path: String,
    /// Raw query string, if any.
    pub query: Option<String>,
    /// Headers.
    pub headers: HeaderMap,
    /// Body.
    pub body: Bytes,
    /// When the request arrived (before any fault or rate limit was applied): rate measurements count arrivals,
    /// as the vendors do.
    pub at: std::time::Instant,
}

impl LoggedRequest {
    /// The body parsed as JSON (`Null` if it is not JSON).
    #[must_use]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// The log of requests a fake received, shared.
#[derive(Debug, Clone, Default)]
pub struct RequestLog(Arc<Mutex<Vec<LoggedRequest>>>);

impl RequestLog {
    /// All requests so far.
    #[must_use]
    pub fn requests(&self) -> Vec<LoggedRequest> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// How many requests had this method and a path starting with `path_prefix`.
    #[must_use]
    pub fn count(&self, method: &Method, path_prefix: &str) -> usize {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .filter(|r| r.method == method && r.path.starts_with(path_prefix))
            .count()
    }

    /// Forgets the log.
    pub fn clear(&self) {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clear();
    }

    fn push(&self, r: LoggedRequest) {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(r);
    }
}

/// An injected fault.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Answer with this instead of calling the handler.
    Status {
        /// Status code.
        status: u16,
        /// Extra headers.
        headers: Vec<(String, String)>,
        /// Body text.
        body: String,
        /// Content type of the body.
        content_type: String,
    },
    /// Wait before calling the handler.
    Delay(Duration),
    /// Call the handler, then break the connection.
    DropAfterCommit,
}

impl Fault {
    /// A JSON error response.
    #[must_use]
    pub fn json(status: u16, body: &serde_json::Value) -> Self {
        Self::Status { status, headers: Vec::new(), body: body.to_string(), content_type: "application/json".into() }
    }
}

#[derive(Debug, Clone)]
struct FaultRule {
    method: Option<Method>,
    path_prefix: String,
    fault: Fault,
    remaining: u32,
    /// When the rule lapses unmet (see [`Faults::lapse_after`]).
    until: Option<Instant>,
}

#[derive(Debug, Default)]
struct FaultQueue {
    rules: Vec<FaultRule>,
    lapse: Option<Duration>,
    hits: u64,
    lapsed: u64,
}

impl FaultQueue {
    fn expire(&mut self) {
        let now = Instant::now();
        let mut lapsed = 0;
        self.rules.retain(|r| {
            let keep = r.until.is_none_or(|t| now < t);
            if !keep {
                lapsed += u64::from(r.remaining);
            }
            keep
        });
        self.lapsed += lapsed;
    }
}

/// The queue of faults to inject, shared.
#[derive(Debug, Clone, Default)]
pub struct Faults(Arc<Mutex<FaultQueue>>);

impl Faults {
    fn queue(&self) -> std::sync::MutexGuard<'_, FaultQueue> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Injects `fault` on the next `times` requests matching `method` (any when `None`) and `path_prefix`.
    pub fn inject(&self, method: Option<Method>, path_prefix: &str, fault: Fault, times: u32) {
        let mut q = self.queue();
        let until = q.lapse.map(|d| Instant::now() + d);
        q.rules.push(FaultRule { method, path_prefix: path_prefix.to_owned(), fault, remaining: times, until });
    }

    /// Faults injected from now on lapse when no matching request arrives within `after` (`None`: they wait for
    /// their request however long that takes, the default). A fault injected on a clock (a soak's "a fault every
    /// 40 ms") is a moment of outage: without a lapse, faults on a path few requests take pile up, and the next
    /// requests there meet all of them in a row, which no vendor does.
    pub fn lapse_after(&self, after: Option<Duration>) {
        self.queue().lapse = after;
    }

    /// Faults waiting for a request (lapsed ones not counted).
    #[must_use]
    pub fn pending(&self) -> u64 {
        let mut q = self.queue();
        q.expire();
        q.rules.iter().map(|r| u64::from(r.remaining)).sum()
    }

    /// Faults that met a request so far.
    #[must_use]
    pub fn hits(&self) -> u64 {
        self.queue().hits
    }

    /// Faults that lapsed unmet so far (see [`Faults::lapse_after`]).
    #[must_use]
    pub fn lapsed(&self) -> u64 {
        let mut q = self.queue();
        q.expire();
        q.lapsed
    }

    /// Removes all pending faults.
    pub fn clear(&self) {
        self.queue().rules.clear();
    }

    fn take(&self, method: &Method, path: &str) -> Option<Fault> {
        let mut q = self.queue();
        q.expire();
        let idx = q.rules.iter().position(|r| {
            r.remaining > 0 && r.method.as_ref().is_none_or(|m| m == method) && path.starts_with(&r.path_prefix)
        })?;
        q.rules[idx].remaining -= 1;
        let fault = q.rules[idx].fault.clone();
        if q.rules[idx].remaining == 0 {
            q.rules.remove(idx);
        }
        q.hits += 1;
        Some(fault)
    }
}

/// Enforces a vendor's rate limit per key for a fake, answering with 429s: a sliding window on arrival time with no
/// slack (a request is admitted when fewer than `max` admitted requests arrived in the `window` before it). This is
/// at least as strict as any fixed-window or token-bucket reading of "N per window", so a client that passes here
/// passes the vendor. Uses tokio's clock (a paused test clock drives it).
#[derive(Debug, Clone)]
pub struct WindowCounter {
    max: u32,
    window: Duration,
    state: Arc<Mutex<HashMap<String, std::collections::VecDeque<Instant>>>>,
}

impl WindowCounter {
    /// At most `max` per sliding `window` per key.
    #[must_use]
    pub fn new(max: u32, window: Duration) -> Self {
        Self { max, window, state: Arc::default() }
    }

    /// Counts one request for `key`; `false` when it exceeds the limit (answer 429; a refused request is not
    /// counted).
    #[must_use]
    pub fn admit(&self, key: &str) -> bool {
        let now = Instant::now();
        let mut map = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let arrivals = map.entry(key.to_owned()).or_default();
        while arrivals.front().is_some_and(|t| now.duration_since(*t) >= self.window) {
            arrivals.pop_front();
        }
        if arrivals.len() < self.max as usize {
            arrivals.push_back(now);
            true
        } else {
            false
        }
    }
}

#[derive(Clone)]
struct Shared {
    log: RequestLog,
    faults: Faults,
}

async fn around(State(shared): State<Shared>, req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, 64 * 1024 * 1024).await else {
        return (StatusCode::PAYLOAD_TOO_LARGE, "body too large").into_response();
    };
    shared.log.push(LoggedRequest {
        method: parts.method.clone(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        headers: parts.headers.clone(),
        body: bytes.clone(),
        at: std::time::Instant::now(),
    });
    let fault = shared.faults.take(&parts.method, parts.uri.path());
    let req = Request::from_parts(parts, Body::from(bytes));
    match fault {
        None => next.run(req).await,
        Some(Fault::Status { status, headers, body, content_type }) => {
            let mut resp = Response::new(Body::from(body));
            *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            if let Ok(v) = content_type.parse() {
                resp.headers_mut().insert(axum::http::header::CONTENT_TYPE, v);
            }
            for (k, v) in headers {
                if let (Ok(k), Ok(v)) = (k.parse::<axum::http::HeaderName>(), v.parse()) {
                    resp.headers_mut().insert(k, v);
                }
            }
            resp
        }
        Some(Fault::Delay(d)) => {
            tokio::time::sleep(d).await;
            next.run(req).await
        }
        Some(Fault::DropAfterCommit) => {
            let _committed = next.run(req).await;
            // A body stream that fails makes hyper abort the connection: the client gets an I/O error after sending.
            let failing = futures::stream::once(async {
                Err::<Bytes, std::io::Error>(std::io::Error::other("fake: connection dropped after commit"))
            });
            let mut resp = Response::new(Body::from_stream(failing));
            resp.headers_mut().insert(axum::http::header::CONTENT_LENGTH, axum::http::HeaderValue::from_static("100"));
            resp
        }
    }
}

/// A running fake: its base URL, request log and fault queue. Stops when dropped.
#[derive(Debug)]
pub struct FakeServer {
    /// `http://127.0.0.1:<port>`.
    pub base_url: Url,
    /// The bound address.
    pub addr: SocketAddr,
    /// Requests received.
    pub log: RequestLog,
    /// Faults to inject.
    pub faults: Faults,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl FakeServer {
    /// Serves `router` on 127.0.0.1 with an ephemeral port, wrapped in logging and fault injection.
    ///
    /// # Errors
    /// When the socket cannot be bound.
    pub async fn start(router: Router) -> std::io::Result<Self> {
        Self::start_on("127.0.0.1:0".parse().expect("valid address"), router).await
    }

    /// Like [`FakeServer::start`] on a given loopback address (e.g. to restart a fake on the same port).
    ///
    /// # Errors
    /// When the socket cannot be bound.
    pub async fn start_on(addr: SocketAddr, router: Router) -> std::io::Result<Self> {
        let log = RequestLog::default();
        let faults = Faults::default();
        let shared = Shared { log: log.clone(), faults: faults.clone() };
        let app = router.layer(middleware::from_fn_with_state(shared, around));
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
        });
        let base_url = Url::parse(&format!("http://{addr}")).expect("valid URL");
        Ok(Self { base_url, addr, log, faults, shutdown: Some(tx) })
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use axum::routing::post;

    use super::*;
    use crate::{HttpClient, Request as ApiRequest, ReqwestTransport, RetryPolicy, TransportConfig};

    async fn setup() -> (FakeServer, Arc<AtomicUsize>, HttpClient) {
        let effects = Arc::new(AtomicUsize::new(0));
        let e = effects.clone();
        let router = Router::new().route(
            "/things",
            post(move || {
                let e = e.clone();
                async move {
                    e.fetch_add(1, Ordering::SeqCst);
                    (StatusCode::CREATED, "{\"id\":1}")
                }
            }),
        );
        let fake = FakeServer::start(router).await.unwrap();
        let t = ReqwestTransport::new(TransportConfig::new("fake-test/1")).unwrap();
        let client = HttpClient::new(fake.base_url.clone(), Arc::new(t))
            .with_retry(RetryPolicy { base_delay: Duration::from_millis(1), ..RetryPolicy::default() });
        (fake, effects, client)
    }

    #[tokio::test]
    async fn logs_and_injects_status_faults() {
        let (fake, effects, client) = setup().await;
        fake.faults.inject(
            Some(Method::POST),
            "/things",
            Fault::json(429, &serde_json::json!({"error": "slow down"})),
            2,
        );
        let resp =
            client.execute(ApiRequest::post("/things").json(&serde_json::json!({"n": 1})).unwrap()).await.unwrap();
        assert_eq!(resp.status.as_u16(), 201, "429 twice then success (429 is retried even for POST)");
        assert_eq!(effects.load(Ordering::SeqCst), 1);
        assert_eq!(fake.log.count(&Method::POST, "/things"), 3);
        assert_eq!(fake.log.requests()[0].json()["n"], 1);
    }

    /// A fault injected with a lapse waits for its request only that long; without one it waits for good.
    #[tokio::test(start_paused = true)]
    async fn faults_lapse_unmet_only_when_asked() {
        let faults = Faults::default();
        faults.inject(Some(Method::PATCH), "/leads", Fault::DropAfterCommit, 1);
        faults.lapse_after(Some(Duration::from_millis(40)));
        faults.inject(Some(Method::PATCH), "/leads", Fault::DropAfterCommit, 2);
        assert_eq!(faults.pending(), 3);
        tokio::time::advance(Duration::from_millis(39)).await;
        assert_eq!(faults.pending(), 3, "not lapsed before its time");
        tokio::time::advance(Duration::from_millis(2)).await;
        assert_eq!((faults.pending(), faults.lapsed()), (1, 2), "the two with a lapse are gone, unmet");
        assert!(faults.take(&Method::GET, "/leads").is_none(), "method must match");
        assert!(matches!(faults.take(&Method::PATCH, "/leads/1"), Some(Fault::DropAfterCommit)));
        tokio::time::advance(Duration::from_secs(3600)).await;
        assert!(faults.take(&Method::PATCH, "/leads").is_none());
        assert_eq!((faults.hits(), faults.lapsed(), faults.pending()), (1, 2, 0));
    }

    #[tokio::test]
    async fn drop_after_commit_reports_maybe_sent() {
        let (fake, effects, client) = setup().await;
        fake.faults.inject(None, "/things", Fault::DropAfterCommit, 1);
        let err = client.execute(ApiRequest::post("/things")).await.unwrap_err();
        assert!(err.source.may_have_been_sent);
        assert_eq!(effects.load(Ordering::SeqCst), 1, "the effect happened although the client saw an error");
    }

    #[test]
    fn window_counter_limits() {
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap();
        rt.block_on(async {
            let c = WindowCounter::new(2, Duration::from_secs(1));
            assert!(c.admit("a"));
            assert!(c.admit("a"));
            assert!(!c.admit("a"));
            assert!(c.admit("b"));
            tokio::time::advance(Duration::from_secs(1)).await;
            assert!(c.admit("a"));
        });
    }
}
