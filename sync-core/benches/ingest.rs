//! Ingest through the router on loopback: 32 concurrent senders POST signed-by-token webhooks to an axum server
//! backed by an SQLite file in WAL mode; reports accepted/s and p50/p99/max acknowledgement latency. Each 200 is
//! sent only after the inbox row is committed.
//!
//! `cargo bench -p crm-sync-kit-engine --all-features --bench ingest`
#![allow(
    missing_docs,
    clippy::print_stdout,
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use sync_core::server::{PathToken, SourceRoute, router, serve};
use sync_core::{BoxError, Ctx, Engine, Event, Flow, KeyError, Outcome, RawEvent, Store, StoreOptions};

#[derive(Debug)]
struct Hooks;

#[async_trait]
impl Flow for Hooks {
    fn name(&self) -> &str {
        "hooks"
    }
    fn sources(&self) -> Vec<String> {
        vec!["bench".into()]
    }
    fn dedup_key(&self, e: &RawEvent<'_>) -> Result<String, KeyError> {
        e.headers.get("webhook-id").cloned().ok_or_else(|| KeyError("missing webhook-id".into()))
    }
    async fn handle(&self, _: &Ctx, _: &Event) -> Result<Outcome, BoxError> {
        Ok(Outcome::Done)
    }
}

const SENDERS: usize = 32;
const PER_SENDER: usize = 1_000;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_sqlite(dir.path().join("ingest.db"), StoreOptions::default()).await.unwrap();
    let engine = Engine::new(store.clone(), vec![Arc::new(Hooks)]).unwrap();
    let (app, stats) = router(engine, vec![SourceRoute::new("bench", PathToken::new("s3cret"))]).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(listener, app, async move {
        let _ = stop_rx.await;
    }));
    let url = format!("http://{addr}/hooks/bench/s3cret");
    let body = r#"{"event":"lead.status_changed","lead":{"id":123456,"status_id":142,"pipeline_id":7}}"#;

    // Warm-up (connections, statement cache).
    let client = reqwest::Client::builder().pool_max_idle_per_host(SENDERS).build().unwrap();
    for i in 0..200 {
        client.post(&url).header("webhook-id", format!("warm-{i}")).body(body).send().await.unwrap();
    }

    let started = Instant::now();
    let mut tasks = Vec::new();
    for s in 0..SENDERS {
        let client = client.clone();
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(PER_SENDER);
            for i in 0..PER_SENDER {
                let t = Instant::now();
                let r = client.post(&url).header("webhook-id", format!("{s}-{i}")).body(body).send().await.unwrap();
                assert!(r.status().is_success());
                let _ = r.bytes().await.unwrap();
                lat.push(t.elapsed());
            }
            lat
        }));
    }
    let mut lat: Vec<Duration> = Vec::new();
    for t in tasks {
        lat.extend(t.await.unwrap());
    }
    let elapsed = started.elapsed();
    lat.sort();
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
    let total = SENDERS * PER_SENDER;
    println!(
        "ingest (router, loopback, SQLite WAL, {SENDERS} senders): {total} accepted in {:.2} s = {:.0}/s; \
         p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64(),
        pct(0.50).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3,
        lat[lat.len() - 1].as_secs_f64() * 1e3,
    );
    assert_eq!(stats.accepted.load(std::sync::atomic::Ordering::Relaxed) as usize, total + 200);
    let _ = stop_tx.send(());
    server.await.unwrap().unwrap();
}
