//! Flows: the handler trait, its outcome, and the context handed to it.
//!
//! # Why `async-trait` and not native `async fn` in traits
//!
//! Workers hold flows as `Arc<dyn Flow>` so that one engine runs several flows chosen at start-up from config.
//! Native `async fn` in traits (Rust 1.75+) is not dyn-compatible: the returned future is an anonymous associated
//! type, so `dyn Flow` would not compile without hand-written boxing. `#[async_trait]` boxes the future
//! (`Pin<Box<dyn Future + Send>>`), which makes the trait object-safe and the futures `Send` for `tokio::spawn`;
//! the cost (one allocation per handled event) is noise next to a database round trip.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::clock::SharedClock;
use crate::error::{BoxError, Error, Result};
use crate::store::{Event, Headers, Ingested, Markers, NewEvent, Store};

/// What a handler decided about an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Processed to completion.
    Done,
    /// Finished without applying anything, on purpose: filtered out by configuration, already handled, nothing
    /// to do. Stored as done with the reason, which [`Store::status`] counts per source and reason, so keep
    /// `reason` to a small set of phrases (ids belong in the logs).
    Skipped {
        /// Why (stored as `skip_reason`).
        reason: String,
    },
    /// Try again later: after `after` if given (e.g. from a `Retry-After` hint), else after the worker's backoff.
    /// After the worker's `max_attempts` the event goes to the dead letters.
    Retry {
        /// Explicit delay.
        after: Option<Duration>,
        /// Why (stored as `last_error`).
        reason: String,
    },
    /// Permanent failure: straight to the dead letters.
    Fail {
        /// Why (stored as `last_error`).
        reason: String,
    },
}

impl Outcome {
    /// `Retry` with the worker's backoff.
    pub fn retry(reason: impl Into<String>) -> Self {
        Self::Retry { after: None, reason: reason.into() }
    }

    /// `Skipped`.
    pub fn skipped(reason: impl Into<String>) -> Self {
        Self::Skipped { reason: reason.into() }
    }

    /// `Fail`.
    pub fn fail(reason: impl Into<String>) -> Self {
        Self::Fail { reason: reason.into() }
    }
}

/// The outcome of one delivery that carries several events (a Kommo webhook can batch many leads): done if any
/// event was applied, otherwise skipped with every distinct reason.
#[derive(Debug, Default)]
pub struct Tally {
    applied: bool,
    reasons: std::collections::BTreeSet<String>,
}

impl Tally {
    /// One event was applied.
    pub fn applied(&mut self) {
        self.applied = true;
    }

    /// One event was skipped for `reason`.
    pub fn skipped(&mut self, reason: impl Into<String>) {
        self.reasons.insert(reason.into());
    }

    /// [`Outcome::Done`] if anything was applied, else [`Outcome::Skipped`] with the reasons joined by `; `.
    #[must_use]
    pub fn outcome(self) -> Outcome {
        if self.applied {
            Outcome::Done
        } else {
            Outcome::skipped(self.reasons.into_iter().collect::<Vec<_>>().join("; "))
        }
    }
}

/// A request as received, before it is stored: what a flow derives its keys from.
#[derive(Debug, Clone, Copy)]
pub struct RawEvent<'a> {
    /// Source name.
    pub source: &'a str,
    /// Request headers (lower-case names).
    pub headers: &'a Headers,
    /// Raw body.
    pub body: &'a [u8],
}

/// The body is not a valid event for this source (the router answers 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed event: {0}")]
pub struct KeyError(pub String);

/// One entity's event cut out of a multi-entity delivery by [`Flow::split`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// Deduplication key of this entity's change.
    pub dedup_key: String,
    /// Ordering key (normally the entity).
    pub ordering_key: Option<String>,
    /// The body stored for this part (handled by [`Flow::handle`] like any event of the source).
    pub payload: bytes::Bytes,
}

/// An integration flow.
#[async_trait]
pub trait Flow: Send + Sync + std::fmt::Debug {
    /// A stable name (used in logs and as part of journal keys).
    fn name(&self) -> &str;

    /// The inbox sources this flow consumes. A source belongs to exactly one flow.
    fn sources(&self) -> Vec<String>;

    /// The deduplication key of a raw event (vendor event id, `webhook-id` header, a hash of the body, ...).
    fn dedup_key(&self, event: &RawEvent<'_>) -> Result<String, KeyError>;

    /// The ordering key: events with the same key run one at a time in arrival order, across every source the
    /// worker consumes, so a flow can order both directions of one record by giving them one key (kommo-airtable:
    /// a lead's Kommo webhooks and its record's Airtable changes are both `lead:<id>`). Default: none.
    fn ordering_key(&self, event: &RawEvent<'_>) -> Option<String> {
        let _ = event;
        None
    }

    /// Splits a delivery that carries several independent entities (a Kommo webhook batching many leads) into one
    /// inbox event per entity, each with its own dedup key, ordering key and body, so that every entity is ordered,
    /// retried and dead-lettered on its own (a delivery keyed by its first entity orders the others by nothing).
    /// `None` (the default): the delivery is one event, keyed by [`Flow::dedup_key`] and [`Flow::ordering_key`].
    /// The parts are stored in one transaction: all or none.
    ///
    /// # Errors
    /// [`KeyError`] when the body is malformed (the router answers 400).
    fn split(&self, event: &RawEvent<'_>) -> Result<Option<Vec<Part>>, KeyError> {
        let _ = event;
        Ok(None)
    }

    /// Processes one event. An `Err` is treated as a transient failure (retried with backoff), as is a panic.
    async fn handle(&self, ctx: &Ctx, event: &Event) -> Result<Outcome, BoxError>;

    /// The batch an event may be handled in: claimed events of this flow with the same key (and on their first
    /// attempt) are handed to [`Flow::handle_batch`] together, up to [`Flow::max_batch`] at a time. `None` (the
    /// default): the event is always handled alone by [`Flow::handle`].
    ///
    /// A batch is whatever the worker has claimed at that moment: a lone event is handed over at once, never held
    /// back to wait for company.
    fn batch_key(&self, event: &Event) -> Option<String> {
        let _ = event;
        None
    }

    /// Most events per [`Flow::handle_batch`] call (the vendor's batch size, e.g. 250 Kommo leads per GET).
    /// Default 1: no batching.
    fn max_batch(&self) -> usize {
        1
    }

    /// Processes a batch of claimed events (same flow, same [`Flow::batch_key`]) in one go and returns one outcome
    /// per event, in order. Exactly-once stays per event: each item has its own [`Ctx`] (its own journal and
    /// lease), and a batch write records each event's result with [`step_batch`], so a partial failure leaves only
    /// the events it hit to be retried, and one failing (poison) event gets its own `Retry`/`Fail` while its
    /// neighbours complete. A missing outcome counts as a transient failure of that event; if the whole call
    /// panics, the worker runs every event of the batch alone through [`Flow::handle`] (so a poison event that
    /// panics is isolated). Events on a retry (attempt 2 and later) are always handled alone.
    ///
    /// The default runs [`Flow::handle`] for each event in turn.
    async fn handle_batch(&self, items: &[BatchItem]) -> Vec<Result<Outcome, BoxError>> {
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            out.push(self.handle(&item.ctx, &item.event).await);
        }
        out
    }
}

/// One claimed event of a batch handed to [`Flow::handle_batch`], with its own context (journal keyed by the
/// event, writes fenced by the event's lease).
#[derive(Debug, Clone)]
pub struct BatchItem {
    /// The event's context.
    pub ctx: Ctx,
    /// The event.
    pub event: Event,
}

impl BatchItem {
    /// The item for a claimed event.
    #[must_use]
    pub fn new(store: Store, event: Event) -> Self {
        Self { ctx: Ctx::for_event(store, &event), event }
    }
}

/// One event's part in a [`step_batch`]: its context, the journal step it records, the markers pending while the
/// write runs, and the input the batch write needs from it.
#[derive(Debug)]
pub struct BatchStep<'a, I> {
    /// The event's context.
    pub ctx: &'a Ctx,
    /// The journal step (per event; two events may name different steps).
    pub step: String,
    /// Markers recognised while the write runs ([`Ctx::step_marked`]'s `pending`).
    pub pending: Markers,
    /// What the write needs from this event.
    pub input: I,
}

/// Store round trips of a batch, at most this many at once (a batch of 250 events must not take every connection
/// of the pool, nor queue 250 SQLite writers behind one lock).
const STORE_CONCURRENCY: usize = 8;

/// Runs `futs` with at most [`STORE_CONCURRENCY`] at once; results in order.
/// Takes a `Vec` (collected by the caller): an iterator's closure held across the awaits makes the future not
/// `Send` for every lifetime (the higher-ranked `FnOnce` error of `async_trait` bodies).
pub(crate) async fn bounded<T, Fut: Future<Output = T>>(futs: Vec<Fut>) -> Vec<T> {
    use futures::StreamExt as _;
    futures::stream::iter(futs).buffered(STORE_CONCURRENCY).collect().await
}

/// [`Ctx::step_marked`] for one write that serves several events (a batch request): exactly-once per event.
///
/// Events whose step is already journaled (an earlier attempt completed it) get their journaled result and are
/// not written again. For the others, their `pending` markers are listed (per lease), then `f` runs **once** with
/// their inputs, in order, and must return one result per input, in the same order. Each event whose result is
/// `Ok((value, markers))` has `value` journaled and `pending` + `markers` committed in its own transaction, fenced by
/// its own lease; each `Err` (and each missing result) leaves that event's journal and markers untouched (its
/// pending markers are dropped) and comes back as [`Error::Step`]. So a batch write that fails partially (one
/// Airtable chunk of 10 failed, one item of a Kommo batch body refused) retries only what did not apply.
///
/// `f` must be idempotent at its target for every item on every attempt, as for [`Ctx::step`].
pub async fn step_batch<I, T, F, Fut>(items: Vec<BatchStep<'_, I>>, f: F) -> Vec<Result<T>>
where
    T: Serialize + DeserializeOwned,
    F: FnOnce(Vec<I>) -> Fut + Send,
    Fut: Future<Output = Vec<Result<(T, Markers), BoxError>>> + Send,
{
    let n = items.len();
    let mut out: Vec<Option<Result<T>>> = (0..n).map(|_| None).collect();
    let journaled = bounded(items.iter().map(|it| it.ctx.store.step_get(&it.ctx.run_id, &it.step)).collect()).await;
    let mut run = Vec::new();
    let mut inputs = Vec::new();
    for (i, (item, got)) in items.into_iter().zip(journaled).enumerate() {
        match got {
            Ok(Some(v)) => out[i] = Some(serde_json::from_value(v).map_err(Error::from)),
            Ok(None) => {
                inputs.push(item.input);
                run.push((i, item.ctx, item.step, item.pending));
            }
            Err(e) => out[i] = Some(Err(e)),
        }
    }
    let put = bounded(
        run.iter()
            .map(|(_, ctx, _, pending)| async move {
                match &ctx.lease {
                    Some(lease) => ctx.store.pending_put(lease, pending).await,
                    None => Ok(()),
                }
            })
            .collect(),
    )
    .await;
    if let Some(e) = put.into_iter().find_map(std::result::Result::err) {
        // nothing was written yet: clear what was listed and report the store failure for every runnable item
        let msg = e.to_string();
        bounded(run.iter().map(|(_, ctx, _, _)| ctx.clear_pending()).collect()).await;
        for (i, _, step, _) in &run {
            let source = format!("listing pending markers failed: {msg}").into();
            out[*i] = Some(Err(Error::Step { step: step.clone(), source }));
        }
        return out.into_iter().flatten().collect();
    }
    let mut results = if run.is_empty() { Vec::new() } else { f(inputs).await };
    results.truncate(run.len());
    let mut results = results.into_iter();
    let finish = run.into_iter().map(|(i, ctx, step, pending)| {
        let r = results.next();
        async move {
            let r = match r {
                Some(Ok((value, confirmed))) => ctx.commit(&step, &value, pending.with(confirmed)).await,
                Some(Err(source)) => {
                    ctx.clear_pending().await;
                    Err(Error::Step { step, source })
                }
                None => {
                    ctx.clear_pending().await;
                    Err(Error::Step { step, source: "the batch write gave no result for this event".into() })
                }
            };
            (i, r)
        }
    });
    for (i, r) in bounded(finish.collect()).await {
        out[i] = Some(r);
    }
    // every index was filled: journaled, failed to read, or run
    out.into_iter().flatten().collect()
}

/// The handler's view of the store for one attempt of one event. Journal writes are fenced by the attempt's
/// lease.
#[derive(Debug, Clone)]
pub struct Ctx {
    store: Store,
    run_id: String,
    lease: Option<crate::store::Lease>,
}

impl Ctx {
    /// A context for one claimed event (the run id is the inbox id).
    #[must_use]
    pub fn for_event(store: Store, event: &Event) -> Self {
        Self { store, run_id: event.id.to_string(), lease: Some(event.lease.clone()) }
    }

    /// A context outside the inbox (pollers, backfills): journal writes are keyed by `run_id` and not fenced.
    #[must_use]
    pub fn detached(store: Store, run_id: impl Into<String>) -> Self {
        Self { store, run_id: run_id.into(), lease: None }
    }

    /// The run id (journal key; stable across retries of the same event, usable as an idempotency key).
    #[must_use]
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// A stable idempotency key for `step` of this run (send it to APIs that accept one).
    #[must_use]
    pub fn idempotency_key(&self, step: &str) -> String {
        format!("sync-{}-{step}", self.run_id)
    }

    /// The store.
    #[must_use]
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The clock.
    #[must_use]
    pub fn clock(&self) -> &SharedClock {
        self.store.clock()
    }

    /// Now, from the store's clock.
    #[must_use]
    pub fn now(&self) -> DateTime<Utc> {
        self.store.clock().now()
    }

    /// Runs `f` once per run: the first successful result is journaled and returned on every later call (also on
    /// retries of the event), without running `f` again. If `f` fails, nothing is journaled and the error is
    /// returned as [`Error::Step`]. A crash between `f`'s side effect and the journal write runs `f` again on the
    /// next attempt, so `f` must be idempotent at its target on every attempt (upsert, idempotency key,
    /// search-before-create). A step that makes something true at a target uses [`Ctx::step_marked`].
    pub async fn step<T, F, Fut>(&self, name: &str, f: F) -> Result<T>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut + Send,
        Fut: Future<Output = Result<T, BoxError>> + Send,
    {
        self.step_marked(name, Markers::new(), || async move { f().await.map(|v| (v, Markers::new())) }).await
    }

    /// [`Ctx::step`] for a write whose result the engine must remember (the convergence rule): `f` makes the write
    /// and returns its result with the [`Markers`] its confirmed answer makes true (e.g. the id map entry of a
    /// created record); those and `pending` are recorded in the same transaction as the journal entry, fenced by
    /// the lease, and only if `f` succeeded. While `f` runs, `pending`'s written values are already recognised by
    /// [`Ctx::is_echo`] (the target's webhook for this write may arrive first); they lapse with the attempt if `f`
    /// fails or the process dies, so a retry never mistakes a write that did not happen for one that did.
    pub async fn step_marked<T, F, Fut>(&self, name: &str, pending: Markers, f: F) -> Result<T>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut + Send,
        Fut: Future<Output = Result<(T, Markers), BoxError>> + Send,
    {
        if let Some(v) = self.store.step_get(&self.run_id, name).await? {
            return Ok(serde_json::from_value(v)?);
        }
        if let Some(lease) = &self.lease {
            self.store.pending_put(lease, &pending).await?;
        }
        let (value, confirmed) = match f().await {
            Ok(v) => v,
            Err(source) => {
                self.clear_pending().await;
                return Err(Error::Step { step: name.to_owned(), source });
            }
        };
        self.commit(name, &value, pending.with(confirmed)).await
    }

    /// Drops this attempt's pending markers (its write failed).
    async fn clear_pending(&self) {
        if let Some(lease) = &self.lease
            && let Err(e) = self.store.pending_clear(lease).await
        {
            // harmless: a pending row counts only while this attempt runs
            tracing::debug!(error = %e, "clearing pending markers failed");
        }
    }

    /// Journals `value` as the result of `name` with `markers` (one fenced transaction); returns the stored result.
    async fn commit<T: Serialize + DeserializeOwned>(&self, name: &str, value: &T, markers: Markers) -> Result<T> {
        let json = serde_json::to_value(value)?;
        let stored = self.store.step_commit(&self.run_id, name, &json, self.lease.as_ref(), &markers).await?;
        Ok(serde_json::from_value(stored)?)
    }

    /// The journaled result of `step` in this run, if an earlier attempt completed it.
    pub async fn journaled(&self, step: &str) -> Result<Option<serde_json::Value>> {
        self.store.step_get(&self.run_id, step).await
    }

    /// Id map lookup: the remote id for `local_key`.
    pub async fn id_get(&self, system: &str, kind: &str, local_key: &str) -> Result<Option<String>> {
        self.store.id_get(system, kind, local_key).await
    }

    /// Id map reverse lookup: the local key for `remote_id`.
    pub async fn id_get_local(&self, system: &str, kind: &str, remote_id: &str) -> Result<Option<String>> {
        self.store.id_get_local(system, kind, remote_id).await
    }

    /// Id map write (unique both ways). Prefer [`Markers::id`] in the [`Ctx::step_marked`] that created the remote
    /// object: recorded with the step's journal entry, an entry can never be lost between the two.
    pub async fn id_put(&self, system: &str, kind: &str, local_key: &str, remote_id: &str) -> Result<()> {
        self.store.id_put(system, kind, local_key, remote_id).await
    }

    /// Counts this run as a hit on `key` (once per run, however often the event is retried) and returns the hits
    /// within `window`, e.g. "3 opens in 48 h".
    pub async fn count_hit(&self, key: &str, window: Duration) -> Result<i64> {
        self.store.counter_hit(key, &self.run_id, window).await
    }

    /// Whether an event of `event_time` is not older than the newest change applied to `entity` (the watermark
    /// moves with [`Markers::watermark`], committed by [`Ctx::step_marked`] once the change is applied).
    pub async fn watermark_check(&self, entity: &str, event_time: DateTime<Utc>) -> Result<bool> {
        self.store.watermark_check(entity, event_time).await
    }

    /// Whether `value` is what we ourselves last wrote to `(system, entity, field)` (recorded with a confirmed
    /// write), or what a live attempt is writing there right now.
    pub async fn is_echo(&self, system: &str, entity: &str, field: &str, value: &serde_json::Value) -> Result<bool> {
        self.store.is_echo(system, entity, field, value).await
    }
}

/// Why an ingest through [`Engine::ingest`] was refused.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// No flow consumes this source.
    #[error("unknown source `{0}`")]
    UnknownSource(String),
    /// The flow could not derive a dedup key: the body is malformed.
    #[error(transparent)]
    Malformed(#[from] KeyError),
    /// The store failed; nothing was acknowledged.
    #[error(transparent)]
    Store(#[from] Error),
}

/// A store plus the flows that consume its sources.
#[derive(Debug, Clone)]
pub struct Engine {
    store: Store,
    flows: Arc<HashMap<String, Arc<dyn Flow>>>,
}

impl Engine {
    /// Registers `flows`. Fails if two flows claim the same source.
    pub fn new(store: Store, flows: Vec<Arc<dyn Flow>>) -> Result<Self> {
        let mut map: HashMap<String, Arc<dyn Flow>> = HashMap::new();
        for flow in flows {
            for source in flow.sources() {
                if let Some(other) = map.insert(source.clone(), flow.clone()) {
                    return Err(Error::Config(format!(
                        "source `{source}` is consumed by both `{}` and `{}`",
                        other.name(),
                        flow.name()
                    )));
                }
            }
        }
        Ok(Self { store, flows: Arc::new(map) })
    }

    /// The store.
    #[must_use]
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The flow consuming `source`.
    #[must_use]
    pub fn flow_for(&self, source: &str) -> Option<&Arc<dyn Flow>> {
        self.flows.get(source)
    }

    /// The largest [`Flow::max_batch`] of the registered flows (at least 1).
    #[must_use]
    pub fn max_batch(&self) -> usize {
        self.flows.values().map(|f| f.max_batch()).max().unwrap_or(1).max(1)
    }

    /// All sources, sorted.
    #[must_use]
    pub fn sources(&self) -> Vec<String> {
        let mut v: Vec<String> = self.flows.keys().cloned().collect();
        v.sort();
        v
    }

    /// Derives the keys with the source's flow and stores the event (`kept_headers` are stored with it).
    pub async fn ingest(
        &self,
        source: &str,
        headers: &Headers,
        body: bytes::Bytes,
        kept_headers: Headers,
    ) -> Result<Ingested, IngestError> {
        let flow = self.flow_for(source).ok_or_else(|| IngestError::UnknownSource(source.to_owned()))?;
        let raw = RawEvent { source, headers, body: &body };
        if let Some(parts) = flow.split(&raw)? {
            let events: Vec<NewEvent> = parts
                .into_iter()
                .map(|p| NewEvent {
                    source: source.to_owned(),
                    dedup_key: p.dedup_key,
                    ordering_key: p.ordering_key,
                    payload: p.payload,
                    headers: kept_headers.clone(),
                })
                .collect();
            if events.is_empty() {
                return Err(IngestError::Malformed(KeyError("the delivery holds no event".into())));
            }
            let stored = self.store.ingest_batch_with_cursor(&events, None).await?;
            return Ok(stored
                .into_iter()
                .find(|i| matches!(i, Ingested::Accepted { .. }))
                .unwrap_or(Ingested::Duplicate));
        }
        let dedup_key = flow.dedup_key(&raw)?;
        let ordering_key = flow.ordering_key(&raw);
        let event =
            NewEvent { source: source.to_owned(), dedup_key, ordering_key, payload: body, headers: kept_headers };
        Ok(self.store.ingest(&event).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::{Outcome, Tally};

    #[test]
    fn tally_is_done_if_anything_applied_else_skipped_with_each_reason_once() {
        let mut t = Tally::default();
        t.skipped("b");
        t.skipped("a");
        t.skipped("b");
        assert_eq!(t.outcome(), Outcome::skipped("a; b"));
        let mut t = Tally::default();
        t.skipped("a");
        t.applied();
        assert_eq!(t.outcome(), Outcome::Done);
    }
}
