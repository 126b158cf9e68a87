//! The worker pool: claims due events in batches, runs them on up to `concurrency` tasks under a heartbeated
//! lease, and records each outcome with a fenced write.
//!
//! Many pools (in one process or on many machines sharing one PostgreSQL) can run at once: claims never hand the
//! same row to two live leases, and a pool that dies simply stops heartbeating, so its rows are reclaimed as new
//! attempts once their leases expire.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::FutureExt;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::backoff::Backoff;
use crate::flow::{Ctx, Engine, Outcome};
use crate::store::{Event, Fence, Lease};

/// Worker pool settings.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Worker id written as `lease_owner` (default: a random UUID). Must be unique among live workers.
    pub owner: Option<String>,
    /// Events handled concurrently.
    pub concurrency: usize,
    /// Most rows claimed per round trip. A claim takes at most one row per free task, or, when a flow batches
    /// ([`Flow::max_batch`](crate::Flow::max_batch)), up to that many rows per free task; so for a batching flow
    /// this is also the largest batch one claim can fill. Default 250 (Kommo's largest page, the largest batch of
    /// the built-in flows).
    pub batch_size: u32,
    /// Lease length; a lease not renewed within this time is reclaimed by another worker.
    pub lease: Duration,
    /// Heartbeat period (well under `lease`).
    pub heartbeat: Duration,
    /// How long to sleep when nothing is due (an ingest in this process wakes the worker earlier).
    pub poll_interval: Duration,
    /// Attempts before an event that keeps failing transiently goes to the dead letters.
    pub max_attempts: u32,
    /// Delay policy for `Retry { after: None }`, handler errors and panics.
    pub backoff: Backoff,
    /// On shutdown, how long in-flight handlers may run before they are cancelled and their claims released.
    pub shutdown_grace: Duration,
    /// Batching ([`Flow::handle_batch`](crate::Flow::handle_batch)): when a claim returns several batchable events
    /// but fewer than it could take (traffic is arriving), how long to wait for more before handing the batch over
    /// (one more claim, then go). A claim that returns a single event never waits: a lone event is handled at
    /// once. Zero: never wait. Default 5 ms.
    pub gather: Duration,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            owner: None,
            concurrency: 8,
            batch_size: 250,
            lease: Duration::from_secs(60),
            heartbeat: Duration::from_secs(15),
            poll_interval: Duration::from_millis(500),
            max_attempts: 10,
            backoff: Backoff::default(),
            shutdown_grace: Duration::from_secs(30),
            gather: Duration::from_millis(5),
        }
    }
}

/// Counters of a running pool.
#[derive(Debug, Default)]
pub struct WorkerStats {
    /// Events completed.
    pub done: AtomicU64,
    /// Events finished as skipped ([`Outcome::Skipped`]).
    pub skipped: AtomicU64,
    /// Retries scheduled.
    pub retried: AtomicU64,
    /// Events moved to dead letters.
    pub dead: AtomicU64,
    /// Outcomes refused because the lease had been lost.
    pub stale: AtomicU64,
    /// Claims released on shutdown.
    pub released: AtomicU64,
}

/// A running worker pool.
#[derive(Debug)]
pub struct WorkerHandle {
    owner: String,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    stats: Arc<WorkerStats>,
    killed: Arc<AtomicBool>,
}

impl WorkerHandle {
    /// The `lease_owner` of this pool.
    #[must_use]
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// Live counters.
    #[must_use]
    pub fn stats(&self) -> &Arc<WorkerStats> {
        &self.stats
    }

    /// Graceful shutdown: stop claiming, let in-flight handlers finish within `shutdown_grace`, cancel the rest and
    /// release their claims (without counting the attempt). Returns when done.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }

    /// Simulates a crash: the pool's tasks are dropped where they are, no claim is released, no outcome written.
    /// The rows stay `running` until their leases expire. For tests.
    ///
    /// Aborted tasks stop at their next await, which can come after this returns; a heartbeat or a claim of the
    /// dying pool that reads the store's clock after `kill` returns is never written, so a test that moves its
    /// clock past the lease right after `kill` cannot have the dead pool extend or retake that lease from the moved
    /// clock (it could then not be reclaimed until the clock moved again).
    pub fn kill(self) {
        self.killed.store(true, Ordering::SeqCst);
        self.task.abort();
    }
}

/// Starts a pool for all sources of `engine`.
#[must_use]
pub fn start(engine: Engine, config: WorkerConfig) -> WorkerHandle {
    let owner = config.owner.clone().unwrap_or_else(|| format!("worker-{}", uuid::Uuid::new_v4()));
    let (stop, stop_rx) = watch::channel(false);
    let stats = Arc::new(WorkerStats::default());
    let killed = Arc::new(AtomicBool::new(false));
    let task = tokio::spawn(run(engine, config, owner.clone(), stop_rx, stats.clone(), killed.clone()));
    WorkerHandle { owner, stop, task, stats, killed }
}

/// Runs a pool until `signal` resolves (e.g. `tokio::signal::ctrl_c()`), then shuts it down gracefully.
pub async fn run_until<F>(engine: Engine, config: WorkerConfig, signal: F)
where
    F: std::future::Future + Send,
{
    let handle = start(engine, config);
    signal.await;
    handle.shutdown().await;
}

type InFlight = Arc<Mutex<HashMap<i64, Lease>>>;

/// Most outcomes written by one batched completion.
const COMPLETE_BATCH_MAX: usize = 256;

type CompleteRequest = (Lease, Option<String>, tokio::sync::oneshot::Sender<Result<Fence, String>>);

/// Funnels a pool's done and skipped outcomes into [`Store::complete_batch`](crate::Store::complete_batch): one
/// fenced write for every outcome that is ready, each handler answered only once its row is written. Under no
/// load a batch is one outcome and adds no latency; under load the write cost is shared.
#[derive(Debug, Clone)]
struct Completer {
    tx: tokio::sync::mpsc::Sender<CompleteRequest>,
}

impl Completer {
    fn start(store: crate::store::Store, tasks: &mut JoinSet<()>) -> Self {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<CompleteRequest>(COMPLETE_BATCH_MAX * 4);
        tasks.spawn(async move {
            let mut batch = Vec::with_capacity(COMPLETE_BATCH_MAX);
            while rx.recv_many(&mut batch, COMPLETE_BATCH_MAX).await > 0 {
                let items: Vec<(Lease, Option<String>)> =
                    batch.iter().map(|(l, r, _)| (l.clone(), r.clone())).collect();
                match store.complete_batch(&items).await {
                    Ok(fences) => {
                        for ((_, _, reply), fence) in batch.drain(..).zip(fences) {
                            let _ = reply.send(Ok(fence));
                        }
                    }
                    Err(e) => {
                        let msg = e.to_string();
                        for (_, _, reply) in batch.drain(..) {
                            let _ = reply.send(Err(msg.clone()));
                        }
                    }
                }
            }
        });
        Self { tx }
    }

    /// Writes done (`reason: None`) or skipped, fenced by the lease.
    async fn finish(&self, lease: &Lease, reason: Option<String>) -> Result<Fence, String> {
        let (reply, rx) = tokio::sync::oneshot::channel();
        let gone = || "the pool's completion task has stopped".to_owned();
        self.tx.send((lease.clone(), reason, reply)).await.map_err(|_| gone())?;
        rx.await.map_err(|_| gone())?
    }
}

async fn run(
    engine: Engine,
    cfg: WorkerConfig,
    owner: String,
    mut stop: watch::Receiver<bool>,
    stats: Arc<WorkerStats>,
    killed: Arc<AtomicBool>,
) {
    let sources = engine.sources();
    let sem = Arc::new(Semaphore::new(cfg.concurrency.max(1)));
    let in_flight: InFlight = Arc::default();
    // Aborting the JoinSet (crash simulation via `kill`) drops every handler task with it.
    let mut tasks = JoinSet::new();
    let store = engine.store().clone();
    // In its own set, which outlives the handlers on shutdown and dies with the pool on `kill`.
    let mut background = JoinSet::new();
    let completer = Completer::start(store.clone(), &mut background);
    let max_batch = engine.max_batch();
    loop {
        if *stop.borrow() {
            break;
        }
        while tasks.try_join_next().is_some() {}
        let free = sem.available_permits();
        if free == 0 {
            tokio::select! {
                _ = tasks.join_next() => {}
                _ = stop.changed() => {}
            }
            continue;
        }
        // a free task can take a whole batch of a batching flow
        let per_task = u32::try_from(max_batch).unwrap_or(u32::MAX);
        let limit = cfg.batch_size.min(u32::try_from(free).unwrap_or(u32::MAX).saturating_mul(per_task)).max(1);
        // Register for the wake-up before claiming, so an ingest between the claim and the wait is not missed.
        let notified = store.notifier().notified();
        let mut events = match claim(&store, &owner, &sources, limit, cfg.lease, &killed).await {
            Ok(events) => events,
            Err(e) => {
                tracing::warn!(error = %e, "claim failed");
                tokio::select! {
                    () = tokio::time::sleep(cfg.poll_interval) => {}
                    _ = stop.changed() => {}
                }
                continue;
            }
        };
        if events.is_empty() {
            tokio::select! {
                () = notified => {}
                () = tokio::time::sleep(cfg.poll_interval) => {}
                _ = tasks.join_next(), if !tasks.is_empty() => {}
                _ = stop.changed() => {}
            }
            continue;
        }
        // Traffic is arriving (several batchable events, room for more): wait a few ms for the rest of it, so
        // the batch is fuller. A single event is never held back.
        let claimed = u32::try_from(events.len()).unwrap_or(u32::MAX);
        if max_batch > 1
            && !cfg.gather.is_zero()
            && claimed >= 2
            && claimed < limit
            && events.iter().filter(|e| batch_key(&engine, e).is_some()).count() >= 2
        {
            tokio::select! {
                () = tokio::time::sleep(cfg.gather) => {}
                _ = stop.changed() => {}
            }
            match claim(&store, &owner, &sources, limit - claimed, cfg.lease, &killed).await {
                Ok(more) => events.extend(more),
                Err(e) => tracing::warn!(error = %e, "claim failed"),
            }
        }
        for unit in group(&engine, events) {
            // More units than free tasks (a claim sized for batches came back as single events, e.g. retries):
            // give the rest back at once instead of letting their leases run down while they wait.
            let Ok(permit) = sem.clone().try_acquire_owned() else {
                for event in &unit {
                    if let Err(e) = store.release(&event.lease).await {
                        tracing::warn!(id = event.id, error = %e, "release failed; the lease will expire");
                    }
                }
                continue;
            };
            let Some(flow) = engine.flow_for(&unit[0].source).cloned() else {
                // Cannot happen: we only claim our own sources. Give the rows back.
                for event in &unit {
                    let _ = store.release(&event.lease).await;
                }
                continue;
            };
            {
                let mut map = in_flight.lock().expect("in-flight map");
                for event in &unit {
                    map.insert(event.id, event.lease.clone());
                }
            }
            let store = store.clone();
            let completer = completer.clone();
            let cfg = cfg.clone();
            let stats = stats.clone();
            let killed = killed.clone();
            let in_flight = in_flight.clone();
            let ids: Vec<i64> = unit.iter().map(|e| e.id).collect();
            if unit.len() == 1 {
                let event = unit.into_iter().next().expect("one event");
                let span =
                    tracing::info_span!("event", id = event.id, source = %event.source, attempt = event.attempts);
                tasks.spawn(
                    async move {
                        process(&store, &completer, flow.as_ref(), event, &cfg, &stats, &killed).await;
                        in_flight.lock().expect("in-flight map").remove(&ids[0]);
                        drop(permit);
                    }
                    .instrument(span),
                );
            } else {
                let span =
                    tracing::info_span!("batch", first = unit[0].id, size = unit.len(), source = %unit[0].source);
                tasks.spawn(
                    async move {
                        process_batch(&store, &completer, flow, unit, &cfg, &stats, &killed).await;
                        let mut map = in_flight.lock().expect("in-flight map");
                        for id in &ids {
                            map.remove(id);
                        }
                        drop(permit);
                    }
                    .instrument(span),
                );
            }
        }
    }
    // Graceful shutdown.
    let drain = async { while tasks.join_next().await.is_some() {} };
    if tokio::time::timeout(cfg.shutdown_grace, drain).await.is_err() {
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
    }
    drop(completer); // the last sender: the completion task writes what is queued and ends
    while background.join_next().await.is_some() {}
    let leftover: Vec<Lease> = in_flight.lock().expect("in-flight map").drain().map(|(_, l)| l).collect();
    for lease in leftover {
        match store.release(&lease).await {
            Ok(Fence::Applied) => {
                stats.released.fetch_add(1, Ordering::Relaxed);
            }
            Ok(Fence::Stale) => {}
            Err(e) => tracing::warn!(id = lease.id, error = %e, "release failed; the lease will expire"),
        }
    }
}

/// The batch key of a claimed event: its flow's [`Flow::batch_key`](crate::Flow::batch_key) on the first attempt,
/// none on a retry (an event that failed once is handled alone, so a poison event cannot fail its neighbours
/// again).
fn batch_key(engine: &Engine, event: &Event) -> Option<String> {
    if event.attempts > 1 {
        return None;
    }
    let flow = engine.flow_for(&event.source)?;
    if flow.max_batch() <= 1 {
        return None;
    }
    flow.batch_key(event).map(|k| format!("{}\u{0}{k}", flow.name()))
}

/// Cuts claimed events into units of work: events of one flow with the same batch key together (in claim order,
/// up to the flow's [`Flow::max_batch`](crate::Flow::max_batch)), every other event alone.
fn group(engine: &Engine, events: Vec<Event>) -> Vec<Vec<Event>> {
    let mut units: Vec<Vec<Event>> = Vec::new();
    let mut open: HashMap<String, usize> = HashMap::new();
    for event in events {
        let Some(key) = batch_key(engine, &event) else {
            units.push(vec![event]);
            continue;
        };
        let max = engine.flow_for(&event.source).map_or(1, |f| f.max_batch().max(1));
        match open.get(&key) {
            Some(&i) if units[i].len() < max => units[i].push(event),
            _ => {
                open.insert(key, units.len());
                units.push(vec![event]);
            }
        }
    }
    units
}

/// The answer of a store call the pool made with `unless killed`: `None` (the pool was killed after the call read
/// the clock, and it wrote nothing) never answers, because the task is being dropped. So no claim, lease extension
/// or release follows a [`WorkerHandle::kill`] from a clock read after it.
async fn unless_killed<T>(answer: crate::Result<Option<T>>) -> crate::Result<T> {
    match answer? {
        Some(value) => Ok(value),
        None => std::future::pending().await,
    }
}

/// One claim of the pool (see [`unless_killed`]).
async fn claim(
    store: &crate::store::Store,
    owner: &str,
    sources: &[String],
    limit: u32,
    lease: Duration,
    killed: &AtomicBool,
) -> crate::Result<Vec<Event>> {
    unless_killed(store.claim_unless(owner, sources, limit, lease, || killed.load(Ordering::SeqCst)).await).await
}

/// One heartbeat of `lease` (see [`unless_killed`]).
async fn beat(
    store: &crate::store::Store,
    lease: &Lease,
    lease_for: Duration,
    killed: &AtomicBool,
) -> crate::Result<Fence> {
    unless_killed(store.heartbeat_unless(lease, lease_for, || killed.load(Ordering::SeqCst)).await).await
}

/// Handles a batch of claimed events with [`Flow::handle_batch`](crate::Flow::handle_batch) under one heartbeat of
/// all their leases, then writes each event's outcome (fenced by its own lease). If the batch handler panics,
/// each event is handled alone (a poison event that panics is isolated); if a lease is lost, the batch is
/// cancelled and the other claims are released for another attempt.
async fn process_batch(
    store: &crate::store::Store,
    completer: &Completer,
    flow: Arc<dyn crate::flow::Flow>,
    events: Vec<Event>,
    cfg: &WorkerConfig,
    stats: &WorkerStats,
    killed: &AtomicBool,
) {
    let leases: Vec<Lease> = events.iter().map(|e| e.lease.clone()).collect();
    let items: Vec<crate::flow::BatchItem> =
        events.into_iter().map(|e| crate::flow::BatchItem::new(store.clone(), e)).collect();
    let handler = AssertUnwindSafe(flow.handle_batch(&items)).catch_unwind();
    let heartbeat = async {
        let mut confirmed = tokio::time::Instant::now();
        let safe_for = cfg.lease.saturating_sub(cfg.heartbeat);
        loop {
            tokio::time::sleep(cfg.heartbeat).await;
            let sent = tokio::time::Instant::now();
            let beats = futures::future::join_all(leases.iter().map(|l| beat(store, l, cfg.lease, killed))).await;
            if beats.iter().any(|b| matches!(b, Ok(Fence::Stale))) {
                return "an event of the batch was reclaimed by another attempt";
            }
            if let Some(Err(e)) = beats.iter().find(|b| b.is_err()) {
                tracing::warn!(error = %e, "heartbeat failed");
                if confirmed.elapsed() >= safe_for {
                    return "heartbeats failed until the leases could lapse";
                }
            } else {
                confirmed = sent;
            }
        }
    };
    let result = tokio::select! {
        r = handler => r,
        why = heartbeat => {
            tracing::warn!(why, "lease lost while handling a batch; the attempt is cancelled");
            stats.stale.fetch_add(1, Ordering::Relaxed);
            for lease in &leases {
                // the reclaimed one answers stale; the others go back to the queue at once
                if let Ok(Fence::Applied) = store.release(lease).await {
                    stats.released.fetch_add(1, Ordering::Relaxed);
                }
            }
            return;
        }
    };
    match result {
        Ok(outcomes) => {
            let mut outcomes = outcomes.into_iter();
            let writes = items.iter().map(|item| {
                let outcome = match outcomes.next() {
                    Some(Ok(o)) => o,
                    Some(Err(e)) => Outcome::retry(format!("handler error: {e}")),
                    None => Outcome::retry("the batch handler gave no outcome for this event"),
                };
                let span = tracing::info_span!("event", id = item.event.id, source = %item.event.source);
                write(store, &item.event.lease, outcome, completer, stats, cfg, item.event.attempts).instrument(span)
            });
            futures::future::join_all(writes).await;
        }
        Err(panic) => {
            let msg = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "non-string panic".to_owned());
            tracing::warn!(%msg, "batch handler panicked: handling each event alone");
            let singles = items.into_iter().map(|item| {
                let span = tracing::info_span!("event", id = item.event.id, source = %item.event.source);
                process(store, completer, flow.as_ref(), item.event, cfg, stats, killed).instrument(span)
            });
            futures::future::join_all(singles).await;
        }
    }
}

/// Handles one claimed event: run the flow under a heartbeat, then write the outcome (fenced).
async fn process(
    store: &crate::store::Store,
    completer: &Completer,
    flow: &dyn crate::flow::Flow,
    event: Event,
    cfg: &WorkerConfig,
    stats: &WorkerStats,
    killed: &AtomicBool,
) {
    let lease = event.lease.clone();
    let max = i64::from(cfg.max_attempts.max(1));
    if event.attempts > max {
        // Only reachable when leases keep expiring (the process dies mid-handler every time).
        write(
            store,
            &lease,
            Outcome::fail(format!("gave up after {} attempts (lease expired)", event.attempts - 1)),
            completer,
            stats,
            cfg,
            event.attempts,
        )
        .await;
        return;
    }
    let started = std::time::Instant::now();
    let ctx = Ctx::for_event(store.clone(), &event);
    let handler = AssertUnwindSafe(flow.handle(&ctx, &event)).catch_unwind();
    // The lease is only as good as the last heartbeat the store accepted: when heartbeats keep failing (the
    // database is unreachable from here) until the lease could lapse before the next one, the handler is cancelled
    // before another worker can reclaim the event and run it at the same time. Its writes stop there; nothing it
    // did is journaled or marked (those writes are fenced by the lease anyway).
    let heartbeat = async {
        let mut confirmed = tokio::time::Instant::now();
        let safe_for = cfg.lease.saturating_sub(cfg.heartbeat);
        loop {
            tokio::time::sleep(cfg.heartbeat).await;
            let sent = tokio::time::Instant::now();
            match beat(store, &lease, cfg.lease, killed).await {
                Ok(Fence::Applied) => confirmed = sent,
                Ok(Fence::Stale) => return "the event was reclaimed by another attempt",
                Err(e) => {
                    tracing::warn!(id = lease.id, error = %e, "heartbeat failed");
                    if confirmed.elapsed() >= safe_for {
                        return "heartbeats failed until the lease could lapse";
                    }
                }
            }
        }
    };
    let result = tokio::select! {
        r = handler => r,
        why = heartbeat => {
            tracing::warn!(id = lease.id, why, "lease lost while handling; the attempt is cancelled");
            stats.stale.fetch_add(1, Ordering::Relaxed);
            return;
        }
    };
    let outcome = match result {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(e)) => Outcome::retry(format!("handler error: {e}")),
        Err(panic) => {
            let msg = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "non-string panic".to_owned());
            Outcome::retry(format!("handler panicked: {msg}"))
        }
    };
    record_metrics(&event, &outcome, started.elapsed(), max);
    write(store, &lease, outcome, completer, stats, cfg, event.attempts).await;
}

/// `sync_handler_duration_seconds{source}` and `sync_outcomes_total{source, outcome}` (`done`, `skipped`,
/// `retry`, `dead`), plus `sync_retries_total{source}` and `sync_dead_letters_total{source}`, for the outcome the
/// handler returned (a write refused by the fence is still counted: the handler's work was done).
fn record_metrics(event: &Event, outcome: &Outcome, took: Duration, max: i64) {
    let source = event.source.clone();
    let label = match outcome {
        Outcome::Done => "done",
        Outcome::Skipped { .. } => "skipped",
        Outcome::Fail { .. } => "dead",
        Outcome::Retry { .. } if event.attempts >= max => "dead",
        Outcome::Retry { .. } => "retry",
    };
    metrics::histogram!("sync_handler_duration_seconds", "source" => source.clone()).record(took);
    metrics::counter!("sync_outcomes_total", "source" => source.clone(), "outcome" => label).increment(1);
    match label {
        "retry" => metrics::counter!("sync_retries_total", "source" => source).increment(1),
        "dead" => metrics::counter!("sync_dead_letters_total", "source" => source).increment(1),
        _ => {}
    }
}

async fn write(
    store: &crate::store::Store,
    lease: &Lease,
    outcome: Outcome,
    completer: &Completer,
    stats: &WorkerStats,
    cfg: &WorkerConfig,
    attempts: i64,
) {
    let max = i64::from(cfg.max_attempts.max(1));
    let (result, counter) = match outcome {
        Outcome::Done => (completer.finish(lease, None).await.map_err(crate::Error::Completion), &stats.done),
        Outcome::Skipped { reason } => {
            (completer.finish(lease, Some(reason)).await.map_err(crate::Error::Completion), &stats.skipped)
        }
        Outcome::Fail { reason } => {
            // The span around the handler names the event (id, source, attempt); operators act on dead letters.
            tracing::error!(%reason, "dead letter: failed permanently (replay it once the cause is fixed)");
            (store.fail(lease, &reason).await, &stats.dead)
        }
        Outcome::Retry { reason, .. } if attempts >= max => {
            let reason = format!("gave up after {attempts} attempts: {reason}");
            tracing::error!(%reason, "dead letter: out of attempts (replay it once the cause is fixed)");
            (store.fail(lease, &reason).await, &stats.dead)
        }
        Outcome::Retry { after, reason } => {
            let n = u32::try_from(attempts).unwrap_or(u32::MAX);
            let delay = after.unwrap_or_else(|| cfg.backoff.delay(n));
            tracing::warn!(%reason, delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX), "will retry");
            (store.retry(lease, delay, &reason).await, &stats.retried)
        }
    };
    match result {
        Ok(Fence::Applied) => {
            counter.fetch_add(1, Ordering::Relaxed);
        }
        Ok(Fence::Stale) => {
            stats.stale.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(id = lease.id, attempt = lease.attempt_no, "outcome refused: lease was reclaimed");
        }
        // The row stays `running`; its lease expires and another attempt runs it (at-least-once).
        Err(e) => tracing::warn!(id = lease.id, error = %e, "writing the outcome failed"),
    }
}
