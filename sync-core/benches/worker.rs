//! Worker throughput with a no-op flow: events/s from claim to completion, on SQLite (file, WAL) and, with
//! `SYNC_TEST_POSTGRES_URL`, on PostgreSQL; with 1 and 3 worker pools (each with its own connection pool, as
//! separate processes would have).
//!
//! `cargo bench -p crm-sync-kit-engine --all-features --bench worker`
#![allow(missing_docs, clippy::print_stdout, clippy::cast_precision_loss)]

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use sync_core::worker::{self, WorkerConfig};
use sync_core::{
    BoxError, Ctx, Engine, Event, Flow, KeyError, NewEvent, Outcome, RawEvent, State, Store, StoreOptions,
};

#[derive(Debug)]
struct Noop;

#[async_trait]
impl Flow for Noop {
    fn name(&self) -> &str {
        "noop"
    }
    fn sources(&self) -> Vec<String> {
        vec!["bench".into()]
    }
    fn dedup_key(&self, e: &RawEvent<'_>) -> Result<String, KeyError> {
        Ok(String::from_utf8_lossy(e.body).into_owned())
    }
    async fn handle(&self, _: &Ctx, _: &Event) -> Result<Outcome, BoxError> {
        Ok(Outcome::Done)
    }
}

const N: usize = 20_000;

async fn run(label: &str, open: impl AsyncFn() -> Store, pools: usize) {
    let store = open().await;
    let events: Vec<NewEvent> = (0..N).map(|i| NewEvent::new("bench", format!("e{i}"), format!("e{i}"))).collect();
    for chunk in events.chunks(1000) {
        store.ingest_batch_with_cursor(chunk, None).await.unwrap();
    }
    let mut handles = Vec::new();
    let started = Instant::now();
    for _ in 0..pools {
        let engine = Engine::new(open().await, vec![Arc::new(Noop)]).unwrap();
        let cfg = WorkerConfig {
            concurrency: 16,
            batch_size: 64,
            poll_interval: Duration::from_millis(5),
            ..WorkerConfig::default()
        };
        handles.push(worker::start(engine, cfg));
    }
    // Completion is watched through the pools' own counters: polling `status()` (a grouped scan of the inbox)
    // every few milliseconds would compete for the same two cores and understate the workers.
    let done = || handles.iter().map(|h| h.stats().done.load(Ordering::Relaxed)).sum::<u64>();
    while done() < N as u64 {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let elapsed = started.elapsed();
    let st = store.status().await.unwrap();
    assert_eq!(st.depth.get(&("bench".to_owned(), State::Done)).copied(), Some(N as i64), "every event done once");
    for h in handles {
        h.shutdown().await;
    }
    println!(
        "{label:<10} {pools} pool(s): {N} events in {:>6.2} s = {:>7.0} events/s",
        elapsed.as_secs_f64(),
        N as f64 / elapsed.as_secs_f64()
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    for pools in [1, 3] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bench.db");
        run("sqlite", || async { Store::open_sqlite(&path, StoreOptions::default()).await.unwrap() }, pools).await;
    }
    #[cfg(feature = "postgres")]
    if let Ok(url) = std::env::var("SYNC_TEST_POSTGRES_URL") {
        for pools in [1, 3] {
            let schema = format!("bench_{}", uuid::Uuid::new_v4().simple());
            let opts = StoreOptions::default().pg_schema(schema.clone()).max_connections(8);
            run("postgres", || async { Store::connect(&url, opts.clone()).await.unwrap() }, pools).await;
            use sqlx::{Connection, Executor};
            let mut c = sqlx::PgConnection::connect(&url).await.unwrap();
            c.execute(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE"))).await.unwrap();
        }
    } else {
        println!("postgres: skipped (SYNC_TEST_POSTGRES_URL not set)");
    }
}
