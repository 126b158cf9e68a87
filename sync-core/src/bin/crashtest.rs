//! Helper for the SIGKILL test (`tests/crash_kill.rs`; feature `crash-test`): ingests events `e0..e{n-1}` into an
//! SQLite file while a worker pool processes them, and exits 0 once every event is done. Killed and restarted
//! at random points by the test, it must end with every event processed exactly once.
//!
//! Usage: `sync-core-crashtest <db-path> <n> <execution-log>`
#![allow(clippy::print_stdout)]

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sync_core::worker::{self, WorkerConfig};
use sync_core::{
    BoxError, Ctx, Engine, Event, Flow, KeyError, NewEvent, Outcome, RawEvent, State, Store, StoreOptions,
};

#[derive(Debug)]
struct CrashFlow {
    log: std::path::PathBuf,
}

#[async_trait]
impl Flow for CrashFlow {
    fn name(&self) -> &str {
        "crash"
    }
    fn sources(&self) -> Vec<String> {
        vec!["crash".into()]
    }
    fn dedup_key(&self, e: &RawEvent<'_>) -> Result<String, KeyError> {
        Ok(String::from_utf8_lossy(e.body).into_owned())
    }
    async fn handle(&self, ctx: &Ctx, event: &Event) -> Result<Outcome, BoxError> {
        // Every execution is logged (an event may execute more than once across kills) ...
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(&self.log)?;
        writeln!(f, "{}", event.dedup_key)?;
        tokio::time::sleep(Duration::from_millis(1)).await;
        // ... but its effect is journaled once, fenced by the attempt.
        let key = event.dedup_key.clone();
        let _: String = ctx.step("effect", || async move { Ok::<_, BoxError>(key) }).await?;
        Ok(Outcome::Done)
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, db, n, log] = args.as_slice() else {
        return Err("usage: sync-core-crashtest <db-path> <n> <execution-log>".into());
    };
    let n: usize = n.parse()?;
    let store = Store::open_sqlite(db, StoreOptions::default()).await?;
    let flow = Arc::new(CrashFlow { log: log.into() });
    let engine = Engine::new(store.clone(), vec![flow])?;
    let cfg = WorkerConfig {
        concurrency: 4,
        batch_size: 16,
        lease: Duration::from_secs(1),
        heartbeat: Duration::from_millis(250),
        poll_interval: Duration::from_millis(20),
        ..WorkerConfig::default()
    };
    let workers = worker::start(engine, cfg);
    for i in 0..n {
        store.ingest(&NewEvent::new("crash", format!("e{i}"), format!("e{i}"))).await?;
    }
    loop {
        let st = store.status().await?;
        let open = [State::Queued, State::Running]
            .iter()
            .map(|s| st.depth.get(&("crash".to_owned(), *s)).copied().unwrap_or(0))
            .sum::<i64>();
        if open == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    workers.shutdown().await;
    println!("complete");
    Ok(())
}
