//! The start-up skeleton every `serve` shares: **the receiver never depends on the vendors being up.**
//!
//! [`run`] opens nothing on the network before it listens: the binary builds its flow, engine and routes offline
//! (config, env tokens, secrets already in the store), then [`run`] binds the listener and accepts webhooks at
//! once (they wait in the inbox), and runs the binary's start-up work in the background: validation against the
//! vendors and webhook / subscription upkeep, each step retried forever with capped exponential backoff and full
//! jitter ([`Health::until_ready`]), every failure logged at `warn`. The workers (and the binary's poll /
//! reconcile loops) start only when that start-up work returns, i.e. when the flow is ready.
//!
//! Each background component records its state in the store ([`sync_core::Store::set_health`]): `starting`,
//! `ready` or `failing` with the last error, the failed attempts and since when. `status` (another process)
//! prints it, and `GET /readyz` returns it in its body while answering 200 as long as the database answers.
//! A process removes its rows when it shuts down cleanly; rows of a process that crashed stay, with their
//! `updated` time showing their age.
//!
//! Webhook secrets that only the vendor hands out (Productive signature tokens, the Airtable MAC secret, the
//! Calendly signing key we registered) are read by the verifiers from a shared, replaceable place: loaded from
//! the store before listening, replaced by upkeep, and re-read from the store periodically (another process may
//! have rotated them). A delivery for which no secret is known yet is **refused with 401**, never accepted
//! unverified: the vendors retry non-2xx deliveries (Productive for about two days, Airtable 13 times, Calendly
//! with backoff), and the window is short because the secrets of a webhook that already exists are in the store
//! before the listener opens.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sync_core::server::SourceRoute;
use sync_core::{Backoff, Engine, HealthReport, Store, WorkerConfig, worker};

use crate::ServeArgs;

/// Records the health of background components in the store and retries them until they succeed.
/// Cheap to clone (clones share the instance name and the spawned tasks).
#[derive(Debug, Clone)]
pub struct Health {
    store: Store,
    instance: Arc<str>,
    backoff: Backoff,
    tasks: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Health {
    /// A reporter for this process (`instance` = `host:pid`), retrying with capped exponential backoff and full
    /// jitter from 500 ms up to `retry_max`.
    #[must_use]
    pub fn new(store: Store, retry_max: Duration) -> Self {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .or_else(|| std::env::var("HOSTNAME").ok())
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "localhost".to_owned());
        let initial = Duration::from_millis(500).min(retry_max);
        Self {
            store,
            instance: format!("{host}:{}", std::process::id()).into(),
            backoff: Backoff { initial, multiplier: 2, max: retry_max },
            tasks: Arc::default(),
        }
    }

    /// This process's name in the health table.
    #[must_use]
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// The store.
    #[must_use]
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Records `report` for `component` (a failure to record is logged, never fatal: health is for people).
    pub async fn report(&self, component: &str, report: &HealthReport) {
        if let Err(e) = self.store.set_health(component, &self.instance, report).await {
            tracing::warn!(component, error = %e, "could not record the component's health");
        }
    }

    /// Runs `attempt` until it succeeds: `starting` first, `failing` (with the error and the attempt count, logged
    /// at `warn`) after each failure followed by a jittered, capped exponential wait, `ready` on success.
    pub async fn until_ready<T, E, F, Fut>(&self, component: &str, mut attempt: F) -> T
    where
        E: std::fmt::Display,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let mut failures: u32 = 0;
        if self.current_is_not_failing(component).await {
            self.report(component, &HealthReport::starting()).await;
        }
        loop {
            let error = match attempt().await {
                Ok(v) => {
                    if failures > 0 {
                        tracing::info!(component, after_failures = failures, "ready");
                    }
                    self.report(component, &HealthReport::ready()).await;
                    return v;
                }
                Err(e) => format!("{e:#}"),
            };
            failures = failures.saturating_add(1);
            let wait = self.backoff.delay(failures);
            tracing::warn!(component, attempt = failures, retry_in = ?wait, error = %error, "failed; retrying");
            self.report(component, &HealthReport::failing(i64::from(failures), error)).await;
            tokio::time::sleep(wait).await;
        }
    }

    /// `false` when `component` of this process is already recorded as failing (a periodic upkeep that fails
    /// again keeps its `since`; a first run starts as `starting`).
    async fn current_is_not_failing(&self, component: &str) -> bool {
        match self.store.health().await {
            Ok(rows) => !rows.iter().any(|r| {
                r.component == component && *r.instance == *self.instance && r.state == sync_core::HealthState::Failing
            }),
            Err(_) => true,
        }
    }

    /// Spawns `task`, aborted when `serve` shuts down.
    pub fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        let handle = tokio::spawn(task);
        self.tasks.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(handle);
    }

    /// Spawns an upkeep: `attempt` runs until it succeeds ([`Health::until_ready`] under `component`) at once, and
    /// again `every` after each success.
    pub fn keep_up<F, Fut, E>(&self, component: &'static str, every: Duration, mut attempt: F)
    where
        F: FnMut() -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), E>> + Send,
        E: std::fmt::Display + Send,
    {
        let me = self.clone();
        self.spawn(async move {
            loop {
                me.until_ready(component, &mut attempt).await;
                tokio::time::sleep(every).await;
            }
        });
    }

    fn abort_all(&self) {
        for task in self.tasks.lock().unwrap_or_else(std::sync::PoisonError::into_inner).drain(..) {
            task.abort();
        }
    }
}

/// What a binary builds offline (no vendor call) before [`run`] listens.
#[derive(Debug)]
pub struct Service {
    /// The engine with the binary's flow.
    pub engine: Engine,
    /// The webhook routes (their verifiers read the shared secrets).
    pub routes: Vec<SourceRoute>,
    /// What the log line after binding says is served (paths).
    pub banner: String,
}

/// Runs `serve`: retention, the receiver on `args.listen` at once, `startup` in the background (validation and
/// webhook upkeep through [`Health::until_ready`]; it returns when the flow is ready, after spawning its loops
/// with [`Health::spawn`] / [`Health::keep_up`]), then the workers. Returns after Ctrl-C / SIGINT, once in-flight
/// events are finished.
///
/// # Errors
/// When the listener cannot be bound or the router cannot be built.
pub async fn run<F, Fut>(args: &ServeArgs, service: Service, health: Health, startup: F) -> anyhow::Result<()>
where
    F: FnOnce(Health) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let Service { engine, routes, banner } = service;
    let store = engine.store().clone();
    let _retention = crate::spawn_retention(store.clone(), args.retention_days);
    let (router, _stats) = sync_core::server::router(engine.clone(), routes)?;
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    tracing::info!(addr = %listener.local_addr()?, instance = health.instance(), "receiving webhooks on {banner}");
    let _console =
        crate::console::start_for_serve(&args.console, store.clone(), &engine, health.instance(), args.retention_days)
            .await?;
    let starting = startup(health.clone());
    let background = tokio::spawn(async move {
        starting.await;
        let workers = worker::start(engine, WorkerConfig::default());
        tracing::info!("flow ready: workers started");
        workers
    });
    sync_core::server::serve(listener, router, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    tracing::info!("shutting down: finishing in-flight events");
    health.abort_all();
    if background.is_finished() {
        if let Ok(workers) = background.await {
            workers.shutdown().await;
        }
    } else {
        background.abort();
        tracing::info!("start-up had not finished: no worker was running");
    }
    if let Err(e) = store.health_forget(health.instance()).await {
        tracing::warn!(error = %e, "could not remove this process's health rows");
    }
    Ok(())
}
