//! [`HttpClient`]: one request through the rate limiter, the transport and the retry policy.
//!
//! Vendor crates build a [`Request`], add their auth header, and call [`HttpClient::execute`]. It returns the final
//! response — success, or the last failed one once the policy says stop — so the vendor crate turns a non-2xx
//! response into its own typed error with its own error body shape. Only a missing response is an `Err`.

use std::{fmt, sync::Arc, time::Duration};

use tokio::time::Instant;
use tracing::Instrument as _;
use url::Url;

use crate::{
    ratelimit::{RateBudget, RateLimiter},
    request::{RawResponse, Request},
    retry::{AttemptOutcome, Decision, RetryInput, RetryPolicy, VendorHint, parse_retry_after},
    transport::{Transport, TransportError, build_url},
};

/// The vendor's classification of a failed response (see [`VendorHint`]).
pub type Classifier = Arc<dyn Fn(&RawResponse) -> VendorHint + Send + Sync>;

/// A request that produced no response, after retries.
#[derive(Debug, thiserror::Error)]
#[error("{source} (after {attempts} attempt(s))")]
pub struct ExecuteError {
    /// The last transport error.
    #[source]
    pub source: TransportError,
    /// Attempts made.
    pub attempts: u32,
}

/// Transport + rate limiter + retry policy, shared by clones.
#[derive(Clone)]
pub struct HttpClient {
    base_url: Url,
    transport: Arc<dyn Transport>,
    limiter: Arc<dyn RateBudget>,
    global_limiter: Option<RateLimiter>,
    hold_check: bool,
    default_key: String,
    retry: RetryPolicy,
    classifier: Classifier,
}

impl fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpClient")
            .field("base_url", &self.base_url.as_str())
            .field("transport", &self.transport)
            .field("limiter", &self.limiter)
            .field("global_limiter", &self.global_limiter)
            .field("default_key", &self.default_key)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

impl HttpClient {
    /// A client for `base_url` sending through `transport`, with no rate limit, the default retry policy and the
    /// default classification ([`VendorHint::Default`] for every response).
    pub fn new(base_url: Url, transport: Arc<dyn Transport>) -> Self {
        let default_key = base_url.host_str().unwrap_or("default").to_owned();
        Self {
            base_url,
            transport,
            limiter: Arc::new(RateLimiter::unlimited()),
            global_limiter: None,
            hold_check: true,
            default_key,
            retry: RetryPolicy::default(),
            classifier: Arc::new(|_| VendorHint::Default),
        }
    }

    /// Sets the keyed limiter (requests use their [`Request::rate_key`] or the default key).
    #[must_use]
    pub fn with_limiter(mut self, limiter: RateLimiter) -> Self {
        self.limiter = Arc::new(limiter);
        self
    }

    /// Sets the keyed budget, e.g. one shared with other processes through a database (see [`RateBudget`]).
    #[must_use]
    pub fn with_budget(mut self, budget: Arc<dyn RateBudget>) -> Self {
        self.limiter = budget;
        self
    }

    /// Whether an attempt checks [`RateBudget::held`] after its slot and, while a hold is in force, waits it out and
    /// queues again (default: yes). A vendor crate that fails fast on a long hold instead (Kommo) turns it off and
    /// checks the hold in its own transport.
    #[must_use]
    pub fn with_hold_check(mut self, on: bool) -> Self {
        self.hold_check = on;
        self
    }

    /// Adds a limiter applied to every request under one key (e.g. Airtable's 50 requests/s per token across bases).
    #[must_use]
    pub fn with_global_limiter(mut self, limiter: RateLimiter) -> Self {
        self.global_limiter = Some(limiter);
        self
    }

    /// Sets the key used when a request has none (defaults to the base URL's host: one Kommo account).
    #[must_use]
    pub fn with_default_key(mut self, key: impl Into<String>) -> Self {
        self.default_key = key.into();
        self
    }

    /// Sets the retry policy.
    #[must_use]
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Sets the vendor classifier.
    #[must_use]
    pub fn with_classifier(mut self, classifier: impl Fn(&RawResponse) -> VendorHint + Send + Sync + 'static) -> Self {
        self.classifier = Arc::new(classifier);
        self
    }

    /// The base URL.
    #[must_use]
    pub fn base_url(&self) -> &Url {
        &self.base_url
    }

    /// The retry policy.
    #[must_use]
    pub fn retry_policy(&self) -> &RetryPolicy {
        &self.retry
    }

    /// The keyed budget.
    #[must_use]
    pub fn budget(&self) -> &Arc<dyn RateBudget> {
        &self.limiter
    }

    /// Waits for a slot for `key`; with the hold check on, a hold found after the slot voids it (wait, queue again).
    ///
    /// The time spent here is recorded in the `api_limiter_wait_seconds{host}` histogram (the `metrics` facade: a
    /// no-op unless the program installs a recorder, as `serve` does for its `/metrics`).
    async fn acquire(&self, key: &str) -> Result<(), TransportError> {
        let started = Instant::now();
        let result = self.acquire_slot(key).await;
        metrics::histogram!("api_limiter_wait_seconds", "host" => self.metrics_host()).record(started.elapsed());
        result
    }

    /// The `host` label of this client's metrics: the base URL's host (one vendor account, region or fake).
    fn metrics_host(&self) -> String {
        self.base_url.host_str().unwrap_or("unknown").to_owned()
    }

    async fn acquire_slot(&self, key: &str) -> Result<(), TransportError> {
        if self.hold_check {
            self.limiter.acquire_clear(key).await?;
        } else {
            self.limiter.acquire(key).await?;
        }
        Ok(())
    }

    /// Sends `request`, waiting for the rate limiter before each attempt and retrying per the policy.
    ///
    /// # Errors
    /// [`ExecuteError`] when no response arrived on the last attempt. A non-2xx response is `Ok`.
    pub async fn execute(&self, request: Request) -> Result<RawResponse, ExecuteError> {
        let url = build_url(&self.base_url, &request.path, &request.query)
            .map_err(|source| ExecuteError { source, attempts: 0 })?;
        let key = request.rate_key.clone().unwrap_or_else(|| self.default_key.clone());
        let span = tracing::debug_span!("http", method = %request.method, path = %url.path(), attempts = tracing::field::Empty);
        let started = Instant::now();
        let mut attempt = 0u32;
        async {
            loop {
                attempt += 1;
                if let Some(g) = &self.global_limiter {
                    g.acquire("global").await;
                }
                let result = match self.acquire(&key).await {
                    Ok(()) => self.transport.send(url.clone(), request.clone()).await,
                    Err(e) => Err(e),
                };
                // every attempt's answer, by status (or `error` when none arrived): vendor 429s and 5xx show here
                let status = match &result {
                    Ok(resp) => resp.status.as_str().to_owned(),
                    Err(_) => "error".to_owned(),
                };
                metrics::counter!("api_http_responses_total", "host" => self.metrics_host(), "status" => status)
                    .increment(1);
                let (outcome, retry_after, hint) = match &result {
                    Ok(resp) if resp.is_success() => {
                        tracing::Span::current().record("attempts", attempt);
                        return Ok(result.expect("matched Ok"));
                    }
                    Ok(resp) => {
                        let ra =
                            resp.header("retry-after").and_then(|v| parse_retry_after(v, std::time::SystemTime::now()));
                        (AttemptOutcome::Status(resp.status), ra, (self.classifier)(resp))
                    }
                    Err(e) => (
                        AttemptOutcome::TransportError { may_have_been_sent: e.may_have_been_sent },
                        None,
                        VendorHint::Default,
                    ),
                };
                let decision = self.retry.decide(&RetryInput {
                    attempt,
                    outcome,
                    retry_after,
                    hint,
                    idempotent: request.idempotent,
                    elapsed: started.elapsed(),
                    jitter: rand::random::<f64>(),
                });
                match decision {
                    Decision::Retry { after } => {
                        tracing::debug!(attempt, ?outcome, wait_ms = after.as_millis(), "retrying");
                        if matches!(outcome, AttemptOutcome::Status(s) if s.as_u16() == 429)
                            || matches!(hint, VendorHint::WaitAtLeast(_))
                        {
                            // the whole key is throttled, not just this request
                            metrics::counter!("api_rate_holds_total", "host" => self.metrics_host()).increment(1);
                            if let Err(e) = self.limiter.pause(&key, after).await {
                                tracing::warn!(error = %e, "could not record the vendor's hold in the rate budget");
                            }
                        }
                        tokio::time::sleep(after).await;
                    }
                    Decision::Stop => {
                        tracing::Span::current().record("attempts", attempt);
                        return result.map_err(|source| ExecuteError { source, attempts: attempt });
                    }
                }
            }
        }
        .instrument(span)
        .await
    }
}

/// Parses a base URL, e.g. from configuration.
///
/// # Errors
/// When `s` is not an absolute URL.
pub fn parse_base_url(s: &str) -> Result<Url, url::ParseError> {
    Url::parse(s)
}

/// A helper to express "wait this long" hints in vendor classifiers.
#[must_use]
pub fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use futures::future::BoxFuture;
    use http::{HeaderMap, StatusCode};

    use super::*;
    use crate::{
        ratelimit::Rule,
        transport::{ReqwestTransport, TransportConfig, TransportErrorKind},
    };

    /// A scripted transport: returns the queued outcomes in order and records when each call happened.
    #[derive(Debug, Default)]
    struct Script {
        queue: Mutex<Vec<Result<u16, bool>>>,
        calls: Mutex<Vec<Instant>>,
    }

    impl Transport for Script {
        fn send(&self, _url: Url, _request: Request) -> BoxFuture<'_, Result<RawResponse, TransportError>> {
            Box::pin(async move {
                self.calls.lock().unwrap().push(Instant::now());
                let next = self.queue.lock().unwrap().remove(0);
                match next {
                    Ok(status) => Ok(RawResponse {
                        status: StatusCode::from_u16(status).unwrap(),
                        headers: HeaderMap::new(),
                        body: bytes::Bytes::new(),
                    }),
                    Err(sent) => Err(TransportError {
                        kind: TransportErrorKind::Io,
                        may_have_been_sent: sent,
                        message: "reset".into(),
                    }),
                }
            })
        }
    }

    fn client(script: Arc<Script>) -> HttpClient {
        HttpClient::new(Url::parse("http://127.0.0.1:1").unwrap(), script)
            .with_retry(RetryPolicy { base_delay: Duration::from_millis(100), ..RetryPolicy::default() })
    }

    #[tokio::test(start_paused = true)]
    async fn retries_5xx_then_succeeds() {
        let s = Arc::new(Script { queue: Mutex::new(vec![Ok(503), Ok(502), Ok(200)]), ..Default::default() });
        let resp = client(s.clone()).execute(Request::get("/x")).await.unwrap();
        assert_eq!(resp.status, StatusCode::OK);
        assert_eq!(s.calls.lock().unwrap().len(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn post_not_retried_on_5xx_but_returned() {
        let s = Arc::new(Script { queue: Mutex::new(vec![Ok(500), Ok(200)]), ..Default::default() });
        let resp = client(s.clone()).execute(Request::post("/x")).await.unwrap();
        assert_eq!(resp.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(s.calls.lock().unwrap().len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn vendor_wait_pauses_the_key_for_everyone() {
        let s = Arc::new(Script { queue: Mutex::new(vec![Ok(429), Ok(200), Ok(200)]), ..Default::default() });
        let c = client(s.clone()).with_classifier(|r| {
            if r.status.as_u16() == 429 {
                VendorHint::WaitAtLeast(Duration::from_secs(30))
            } else {
                VendorHint::Default
            }
        });
        let start = Instant::now();
        let c2 = c.clone();
        let first = tokio::spawn(async move { c2.execute(Request::get("/a").rate_key("appA")).await });
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(1)).await;
        // a second request to the same base, issued during the pause, waits too
        let second = c.execute(Request::get("/b").rate_key("appA")).await.unwrap();
        assert_eq!(second.status, StatusCode::OK);
        assert!(Instant::now() - start >= Duration::from_secs(30));
        assert_eq!(first.await.unwrap().unwrap().status, StatusCode::OK);
        let calls = s.calls.lock().unwrap();
        assert!(calls[1] - calls[0] >= Duration::from_secs(30));
        assert!(calls[2] - calls[0] >= Duration::from_secs(30));
    }

    #[tokio::test(start_paused = true)]
    async fn transport_error_after_send_on_post_is_an_error_without_retry() {
        let s = Arc::new(Script { queue: Mutex::new(vec![Err(true), Ok(200)]), ..Default::default() });
        let err = client(s.clone()).execute(Request::post("/x")).await.unwrap_err();
        assert!(err.source.may_have_been_sent);
        assert_eq!(err.attempts, 1);
        let s = Arc::new(Script { queue: Mutex::new(vec![Err(false), Ok(200)]), ..Default::default() });
        assert!(client(s.clone()).execute(Request::post("/x")).await.is_ok());
        assert_eq!(s.calls.lock().unwrap().len(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn limiter_spaces_requests() {
        let s = Arc::new(Script { queue: Mutex::new(vec![Ok(200); 6]), ..Default::default() });
        let c = client(s.clone()).with_limiter(RateLimiter::new([Rule::per_second(5)]));
        for _ in 0..6 {
            c.execute(Request::get("/x")).await.unwrap();
        }
        let calls = s.calls.lock().unwrap();
        assert_eq!(calls[5] - calls[0], Duration::from_secs(1));
    }

    #[tokio::test]
    async fn reqwest_transport_round_trip_with_wiremock() {
        use wiremock::{Mock, MockServer, ResponseTemplate, matchers};
        let server = MockServer::start().await;
        Mock::given(matchers::method("PUT"))
            .and(matchers::path("/v0/app/tbl"))
            .and(matchers::query_param("typecast", "true"))
            .and(matchers::header("content-type", "application/json"))
            .and(matchers::header("user-agent", "api-core-test/1"))
            .and(matchers::body_json(serde_json::json!({"a": 1})))
            .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({"ok": true})))
            .expect(1)
            .mount(&server)
            .await;
        let t = ReqwestTransport::new(TransportConfig::new("api-core-test/1")).unwrap();
        let c = HttpClient::new(Url::parse(&format!("{}/v0", server.uri())).unwrap(), Arc::new(t));
        let resp = c
            .execute(Request::put("/app/tbl").query("typecast", true).json(&serde_json::json!({"a": 1})).unwrap())
            .await
            .unwrap();
        let v: serde_json::Value = resp.json().unwrap();
        assert_eq!(v["ok"], true);
    }

    /// What the client records through the `metrics` facade, by `name{label=value,…}` (a thread-local recorder:
    /// the test runtime is current-thread).
    #[derive(Debug, Default)]
    struct Recorded {
        counters: Mutex<std::collections::BTreeMap<String, u64>>,
        histograms: Mutex<std::collections::BTreeMap<String, Vec<f64>>>,
    }

    #[derive(Debug)]
    struct Series(Arc<Recorded>, String);

    impl metrics::CounterFn for Series {
        fn increment(&self, value: u64) {
            *self.0.counters.lock().unwrap().entry(self.1.clone()).or_default() += value;
        }
        fn absolute(&self, value: u64) {
            self.0.counters.lock().unwrap().insert(self.1.clone(), value);
        }
    }

    impl metrics::HistogramFn for Series {
        fn record(&self, value: f64) {
            self.0.histograms.lock().unwrap().entry(self.1.clone()).or_default().push(value);
        }
    }

    #[derive(Debug)]
    struct TestRecorder(Arc<Recorded>);

    impl TestRecorder {
        fn series(&self, key: &metrics::Key) -> Arc<Series> {
            let labels: Vec<String> = key.labels().map(|l| format!("{}={}", l.key(), l.value())).collect();
            Arc::new(Series(self.0.clone(), format!("{}{{{}}}", key.name(), labels.join(","))))
        }
    }

    impl metrics::Recorder for TestRecorder {
        fn describe_counter(&self, _: metrics::KeyName, _: Option<metrics::Unit>, _: metrics::SharedString) {}
        fn describe_gauge(&self, _: metrics::KeyName, _: Option<metrics::Unit>, _: metrics::SharedString) {}
        fn describe_histogram(&self, _: metrics::KeyName, _: Option<metrics::Unit>, _: metrics::SharedString) {}
        fn register_counter(&self, key: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Counter {
            metrics::Counter::from_arc(self.series(key))
        }
        fn register_gauge(&self, _: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Gauge {
            metrics::Gauge::noop()
        }
        fn register_histogram(&self, key: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Histogram {
            metrics::Histogram::from_arc(self.series(key))
        }
    }

    #[tokio::test(start_paused = true)]
    async fn every_attempt_is_counted_by_status_and_limiter_waits_are_recorded() {
        let recorded = Arc::new(Recorded::default());
        let recorder = TestRecorder(recorded.clone());
        let _local = metrics::set_default_local_recorder(&recorder);
        // a 429 (holds the key), a connection reset before sending, then the answer
        let s = Arc::new(Script { queue: Mutex::new(vec![Ok(429), Err(false), Ok(200)]), ..Default::default() });
        let c = client(s.clone()).with_limiter(RateLimiter::new([Rule::per_second(5)]));
        assert_eq!(c.execute(Request::get("/x")).await.unwrap().status, StatusCode::OK);
        let counters = recorded.counters.lock().unwrap().clone();
        for status in ["429", "error", "200"] {
            let key = format!("api_http_responses_total{{host=127.0.0.1,status={status}}}");
            assert_eq!(counters.get(&key), Some(&1), "{key} in {counters:?}");
        }
        assert_eq!(counters.get("api_rate_holds_total{host=127.0.0.1}"), Some(&1), "{counters:?}");
        let waits = recorded.histograms.lock().unwrap()["api_limiter_wait_seconds{host=127.0.0.1}"].clone();
        assert_eq!(waits.len(), 3, "one wait per attempt: {waits:?}");
        assert!(waits[0] < 0.001, "the first slot is free: {waits:?}");
        assert!(waits[1] >= 0.1, "after the 429 the key is held: {waits:?}");
    }

    #[tokio::test]
    async fn connect_error_is_not_sent() {
        // port 9 on loopback: nothing listens, connection refused
        let t = ReqwestTransport::new(TransportConfig::new("t/1")).unwrap();
        let c = HttpClient::new(Url::parse("http://127.0.0.1:9").unwrap(), Arc::new(t)).with_retry(RetryPolicy::none());
        let err = c.execute(Request::post("/x")).await.unwrap_err();
        assert_eq!(err.source.kind, TransportErrorKind::Connect);
        assert!(!err.source.may_have_been_sent);
    }
}
