//! What the receiver and the workers record through the `metrics` facade (exported by `serve`'s `/metrics`):
//! ingest requests by source and status, accepted / duplicate events, ingest and handler latency, outcomes,
//! retries and dead letters. A thread-local recorder on a current-thread runtime sees every task of the test.
#![cfg(feature = "server")]
#![allow(missing_docs, clippy::print_stdout)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use sync_core::server::{PathToken, SourceRoute, router};
use sync_core::{
    Backoff, BoxError, Ctx, Engine, Event, Flow, KeyError, Outcome, RawEvent, Store, SystemClock, WorkerConfig, worker,
};
use tower::ServiceExt;

#[derive(Debug, Default)]
struct Recorded {
    counters: Mutex<BTreeMap<String, u64>>,
    histograms: Mutex<BTreeMap<String, usize>>,
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
    fn record(&self, _: f64) {
        *self.0.histograms.lock().unwrap().entry(self.1.clone()).or_default() += 1;
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

/// The body says what the handler returns: `{"id": "...", "do": "done" | "skip" | "retry" | "fail"}`.
#[derive(Debug)]
struct Scripted;

#[async_trait]
impl Flow for Scripted {
    fn name(&self) -> &str {
        "scripted"
    }
    fn sources(&self) -> Vec<String> {
        vec!["hooks".into()]
    }
    fn dedup_key(&self, e: &RawEvent<'_>) -> Result<String, KeyError> {
        let v: serde_json::Value = serde_json::from_slice(e.body).map_err(|err| KeyError(err.to_string()))?;
        v["id"].as_str().map(str::to_owned).ok_or_else(|| KeyError("missing `id`".into()))
    }
    async fn handle(&self, _: &Ctx, e: &Event) -> Result<Outcome, BoxError> {
        let v: serde_json::Value = serde_json::from_slice(&e.payload)?;
        Ok(match v["do"].as_str() {
            Some("skip") => Outcome::skipped("not watched"),
            Some("retry") => Outcome::retry("HTTP 503"),
            Some("fail") => Outcome::fail("HTTP 400"),
            _ => Outcome::Done,
        })
    }
}

async fn post(r: &axum::Router, uri: &str, body: &str) -> StatusCode {
    let req = Request::post(uri).header("content-type", "application/json").body(Body::from(body.to_owned())).unwrap();
    r.clone().oneshot(req).await.unwrap().status()
}

#[tokio::test]
async fn ingest_and_worker_outcomes_are_recorded_per_source() {
    let recorded = Arc::new(Recorded::default());
    let recorder = TestRecorder(recorded.clone());
    let _local = metrics::set_default_local_recorder(&recorder);

    let store = Store::memory(Arc::new(SystemClock)).await.unwrap();
    let engine = Engine::new(store.clone(), vec![Arc::new(Scripted)]).unwrap();
    let (r, _) = router(engine.clone(), vec![SourceRoute::new("hooks", PathToken::new("tok"))]).unwrap();
    for (id, what) in [("a", "done"), ("b", "skip"), ("c", "retry"), ("d", "fail")] {
        let body = format!(r#"{{"id":"{id}","do":"{what}"}}"#);
        assert_eq!(post(&r, "/hooks/hooks/tok", &body).await, StatusCode::OK);
    }
    assert_eq!(post(&r, "/hooks/hooks/tok", r#"{"id":"a","do":"done"}"#).await, StatusCode::OK, "duplicate");
    assert_eq!(post(&r, "/hooks/hooks/wrong", "{}").await, StatusCode::UNAUTHORIZED);
    assert_eq!(post(&r, "/hooks/no-such-source", "{}").await, StatusCode::NOT_FOUND);

    // two attempts at most: "c" retries once, then is dead
    let config = WorkerConfig {
        max_attempts: 2,
        poll_interval: Duration::from_millis(10),
        backoff: Backoff { initial: Duration::from_millis(1), multiplier: 1, max: Duration::from_millis(1) },
        ..WorkerConfig::default()
    };
    let workers = worker::start(engine, config);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let s = store.status().await.unwrap();
        let open: i64 = s
            .depth
            .iter()
            .filter(|((_, st), _)| matches!(st, sync_core::State::Queued | sync_core::State::Running))
            .map(|(_, n)| n)
            .sum();
        if open == 0 && s.dead == 2 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the events did not finish: {s:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    workers.shutdown().await;

    let counters = recorded.counters.lock().unwrap().clone();
    let expect = [
        ("sync_ingest_requests_total{source=hooks,status=200}", 5),
        ("sync_ingest_requests_total{source=hooks,status=401}", 1),
        ("sync_ingest_requests_total{source=unknown,status=404}", 1),
        ("sync_ingest_events_total{source=hooks,result=accepted}", 4),
        ("sync_ingest_events_total{source=hooks,result=duplicate}", 1),
        ("sync_outcomes_total{source=hooks,outcome=done}", 1),
        ("sync_outcomes_total{source=hooks,outcome=skipped}", 1),
        ("sync_outcomes_total{source=hooks,outcome=retry}", 1),
        ("sync_outcomes_total{source=hooks,outcome=dead}", 2),
        ("sync_retries_total{source=hooks}", 1),
        ("sync_dead_letters_total{source=hooks}", 2),
    ];
    for (key, n) in expect {
        assert_eq!(counters.get(key), Some(&n), "{key} in {counters:#?}");
    }
    let histograms = recorded.histograms.lock().unwrap().clone();
    assert_eq!(histograms.get("sync_ingest_duration_seconds{source=hooks}"), Some(&6), "{histograms:#?}");
    assert_eq!(histograms.get("sync_handler_duration_seconds{source=hooks}"), Some(&5), "one per attempt");
}
