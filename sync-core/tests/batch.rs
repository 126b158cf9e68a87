//! Batches of claimed events (issue 25): a flow handles several events in one step and exactly-once stays per
//! event. Every case runs on SQLite and (with `SYNC_TEST_POSTGRES_URL`) on PostgreSQL.
#![allow(missing_docs, clippy::print_stdout)]

mod common;

behaviour_suite!(
    a_batch_records_each_event_and_a_partial_failure_retries_only_the_rest,
    a_poison_event_is_isolated_from_its_batch,
    a_panicking_batch_is_handled_one_by_one,
    a_lone_event_is_not_delayed,
);

pub mod cases {
    use std::collections::HashSet;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use async_trait::async_trait;
    use serde_json::json;
    use sync_core::worker::{self, WorkerConfig};
    use sync_core::{
        Backoff, BatchItem, BatchStep, BoxError, Ctx, Engine, Event, Flow, KeyError, Markers, NewEvent, Outcome,
        RawEvent, State, Store, SystemClock, step_batch,
    };

    use crate::common::{Harness, Sink, wait_until};

    /// A batching flow over source `b`: every event writes its key to a "remote" (the sink) through one batch
    /// write ([`step_batch`]), with an echo marker for the value it wrote.
    #[derive(Default)]
    pub struct BatchFlow {
        pub sink: Sink,
        pub max: usize,
        /// Keys of each `handle_batch` call.
        pub batches: Mutex<Vec<Vec<String>>>,
        /// Keys handled alone by `handle`.
        pub singles: Mutex<Vec<String>>,
        /// Keys whose write the remote refuses once.
        pub fail_once: Mutex<HashSet<String>>,
        /// Keys whose write the remote always refuses.
        pub poison: HashSet<String>,
        /// `handle_batch` panics when a batch holds this key (and `handle` too).
        pub panics_on: Option<String>,
    }

    impl std::fmt::Debug for BatchFlow {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("BatchFlow")
        }
    }

    impl BatchFlow {
        /// One batch write for `items`: each event's outcome from its own result.
        async fn write(&self, items: &[(&Ctx, String)]) -> Vec<Outcome> {
            let steps = items
                .iter()
                .map(|(ctx, key)| BatchStep {
                    ctx,
                    step: "effect".to_owned(),
                    pending: Markers::new().written("remote", key.clone(), "v", json!(key)),
                    input: key.clone(),
                })
                .collect();
            let results = step_batch(steps, |keys: Vec<String>| async move {
                keys.into_iter()
                    .map(|key| {
                        if self.poison.contains(&key) || self.fail_once.lock().unwrap().remove(&key) {
                            return Err::<(String, Markers), BoxError>(format!("remote refused {key}").into());
                        }
                        self.sink.record(&key);
                        Ok((key, Markers::new()))
                    })
                    .collect()
            })
            .await;
            results
                .into_iter()
                .map(|r| match r {
                    Ok(_) => Outcome::Done,
                    Err(e) => Outcome::Retry { after: Some(Duration::from_millis(300)), reason: e.to_string() },
                })
                .collect()
        }
    }

    #[async_trait]
    impl Flow for BatchFlow {
        fn name(&self) -> &str {
            "batch"
        }
        fn sources(&self) -> Vec<String> {
            vec!["b".into()]
        }
        fn dedup_key(&self, e: &RawEvent<'_>) -> Result<String, KeyError> {
            std::str::from_utf8(e.body).map(str::to_owned).map_err(|_| KeyError("not utf-8".into()))
        }
        fn batch_key(&self, _event: &Event) -> Option<String> {
            Some("all".into())
        }
        fn max_batch(&self) -> usize {
            self.max
        }
        async fn handle_batch(&self, items: &[BatchItem]) -> Vec<Result<Outcome, BoxError>> {
            let keys: Vec<String> = items.iter().map(|i| i.event.dedup_key.clone()).collect();
            self.batches.lock().unwrap().push(keys.clone());
            if let Some(p) = &self.panics_on
                && keys.contains(p)
            {
                panic!("poison in the batch");
            }
            let pairs: Vec<(&Ctx, String)> = items.iter().map(|i| (&i.ctx, i.event.dedup_key.clone())).collect();
            self.write(&pairs).await.into_iter().map(Ok).collect()
        }
        async fn handle(&self, ctx: &Ctx, event: &Event) -> Result<Outcome, BoxError> {
            self.singles.lock().unwrap().push(event.dedup_key.clone());
            if self.panics_on.as_deref() == Some(event.dedup_key.as_str()) {
                panic!("poison alone");
            }
            Ok(self.write(&[(ctx, event.dedup_key.clone())]).await.remove(0))
        }
    }

    fn config() -> WorkerConfig {
        WorkerConfig {
            concurrency: 4,
            lease: Duration::from_secs(30),
            heartbeat: Duration::from_secs(5),
            poll_interval: Duration::from_millis(20),
            max_attempts: 3,
            backoff: Backoff { initial: Duration::from_millis(1), multiplier: 2, max: Duration::from_millis(5) },
            ..WorkerConfig::default()
        }
    }

    async fn ingest(store: &Store, keys: &[&str]) {
        for k in keys {
            store.ingest(&NewEvent::new("b", *k, k.as_bytes().to_vec())).await.unwrap();
        }
    }

    /// The row of `key`, looked up state by state: a row that moves between two of those look-ups (running back
    /// to queued for a retry) is missed by one pass, so a miss is looked up again.
    async fn row(store: &Store, key: &str) -> sync_core::store::InboxRow {
        for _ in 0..50 {
            for state in [State::Queued, State::Running, State::Done, State::Dead] {
                if let Some(r) = store.list(state, 1000).await.unwrap().into_iter().find(|r| r.dedup_key == key) {
                    return r;
                }
            }
        }
        panic!("no row for {key}");
    }

    async fn count(store: &Store, state: State) -> usize {
        store.list(state, 1000).await.unwrap().len()
    }

    /// Six events ready at once are handed over as batches of at most `max_batch`; the remote refuses one write of
    /// the first batch: the other events are journaled and marked done after that one batch write, the refused
    /// one alone has no journal entry and no echo marker, is retried alone, and is then written once.
    pub async fn a_batch_records_each_event_and_a_partial_failure_retries_only_the_rest(h: &Harness) {
        let store = h.open(Arc::new(SystemClock)).await;
        let flow = Arc::new(BatchFlow { max: 4, ..BatchFlow::default() });
        flow.fail_once.lock().unwrap().insert("e3".into());
        let keys = ["e1", "e2", "e3", "e4", "e5", "e6"];
        ingest(&store, &keys).await;
        let engine = Engine::new(store.clone(), vec![flow.clone() as Arc<dyn Flow>]).unwrap();
        // e3's retry waits 300 ms, so the state between its two attempts can be looked at
        let retry_later =
            Backoff { initial: Duration::from_millis(300), multiplier: 1, max: Duration::from_millis(300) };
        let w = worker::start(engine, WorkerConfig { backoff: retry_later, ..config() });

        assert!(wait_until(30, || async { count(&store, State::Done).await == 5 }).await);
        // the state between the two attempts: e3 is waiting for its retry (its failed outcome may still be being
        // written when the fifth neighbour is done), the others are done
        assert!(wait_until(10, || async { row(&store, "e3").await.state == State::Queued }).await, "e3 waits");
        let e3 = row(&store, "e3").await;
        assert_eq!(e3.state, State::Queued, "{e3:?}");
        assert!(e3.last_error.as_deref().unwrap_or_default().contains("remote refused e3"), "{e3:?}");
        assert_eq!(store.step_get(&e3.id.to_string(), "effect").await.unwrap(), None, "no journal for e3");
        assert!(!store.is_echo("remote", "e3", "v", &json!("e3")).await.unwrap(), "no marker for e3's failed write");
        for k in ["e1", "e2", "e4", "e5", "e6"] {
            let r = row(&store, k).await;
            assert_eq!((r.state, r.attempts), (State::Done, 1), "{r:?}");
            assert_eq!(store.step_get(&r.id.to_string(), "effect").await.unwrap(), Some(json!(k)));
            assert!(store.is_echo("remote", k, "v", &json!(k)).await.unwrap(), "{k}'s marker is committed");
            assert_eq!(flow.sink.count(k), 1);
        }
        let batches = flow.batches.lock().unwrap().clone();
        assert!(batches.iter().all(|b| b.len() <= 4), "{batches:?}");
        assert_eq!(batches.concat().len(), 6, "each event in one batch: {batches:?}");
        assert!(batches.iter().any(|b| b.len() > 1), "ready events were batched: {batches:?}");

        assert!(wait_until(30, || async { count(&store, State::Done).await == 6 }).await);
        let e3 = row(&store, "e3").await;
        assert_eq!((e3.state, e3.attempts), (State::Done, 2));
        assert_eq!(*flow.singles.lock().unwrap(), vec!["e3".to_owned()], "the retry runs alone");
        assert_eq!(flow.batches.lock().unwrap().concat().len(), 6, "and not in a batch");
        assert!(store.is_echo("remote", "e3", "v", &json!("e3")).await.unwrap());
        for k in keys {
            assert_eq!(flow.sink.count(k), 1, "{k} written exactly once");
        }
        w.shutdown().await;
        store.close().await;
    }

    /// An event whose write always fails goes to the dead letters after its attempts; its neighbours in the batch
    /// complete on their first attempt and are never written again.
    pub async fn a_poison_event_is_isolated_from_its_batch(h: &Harness) {
        let store = h.open(Arc::new(SystemClock)).await;
        let flow = Arc::new(BatchFlow { max: 10, poison: ["p".to_owned()].into(), ..BatchFlow::default() });
        ingest(&store, &["a", "b", "p", "c", "d"]).await;
        let engine = Engine::new(store.clone(), vec![flow.clone() as Arc<dyn Flow>]).unwrap();
        let w = worker::start(engine, config());
        assert!(wait_until(30, || async { count(&store, State::Dead).await == 1 }).await);
        assert!(wait_until(30, || async { count(&store, State::Done).await == 4 }).await);
        let p = row(&store, "p").await;
        assert_eq!((p.state, p.attempts), (State::Dead, 3), "{p:?}");
        for k in ["a", "b", "c", "d"] {
            let r = row(&store, k).await;
            assert_eq!((r.state, r.attempts), (State::Done, 1), "{r:?}");
            assert_eq!(flow.sink.count(k), 1);
        }
        assert_eq!(flow.sink.count("p"), 0);
        assert_eq!(flow.singles.lock().unwrap().len(), 2, "attempts 2 and 3 of the poison event ran alone");
        w.shutdown().await;
        store.close().await;
    }

    /// A batch handler that panics (on a poison event) does not fail the batch: each event is handled alone in the
    /// same attempt, the neighbours complete, only the poison event is retried and dead-lettered.
    pub async fn a_panicking_batch_is_handled_one_by_one(h: &Harness) {
        let store = h.open(Arc::new(SystemClock)).await;
        let flow = Arc::new(BatchFlow { max: 10, panics_on: Some("p".into()), ..BatchFlow::default() });
        ingest(&store, &["a", "b", "p", "c"]).await;
        let engine = Engine::new(store.clone(), vec![flow.clone() as Arc<dyn Flow>]).unwrap();
        let w = worker::start(engine, config());
        assert!(wait_until(30, || async { count(&store, State::Dead).await == 1 }).await);
        assert!(wait_until(30, || async { count(&store, State::Done).await == 3 }).await);
        for k in ["a", "b", "c"] {
            let r = row(&store, k).await;
            assert_eq!((r.state, r.attempts), (State::Done, 1), "{r:?}");
            assert_eq!(flow.sink.count(k), 1);
        }
        let p = row(&store, "p").await;
        assert_eq!((p.state, p.attempts), (State::Dead, 3), "{p:?}");
        assert!(p.last_error.as_deref().unwrap_or_default().contains("panicked"), "{p:?}");
        w.shutdown().await;
        store.close().await;
    }

    /// A lone event is handed over at once: the worker waits for company (`gather`) only when a claim brought
    /// several events. With a `gather` of one hour, the lone event is done within seconds, handled alone; two
    /// events ready together (with a `gather` of 300 ms) are one batch, handed over after the gather.
    ///
    /// Not on a paused tokio clock: sqlx's pool timeouts run on tokio time, and a paused clock auto-advances into
    /// them while the runtime waits for the database (`PoolTimedOut` on the first query). The hour against
    /// seconds is not a timing race: a worker that waited would miss the 30 s bound by 59 minutes.
    pub async fn a_lone_event_is_not_delayed(h: &Harness) {
        let store = h.open(Arc::new(SystemClock)).await;
        let flow = Arc::new(BatchFlow { max: 10, ..BatchFlow::default() });
        ingest(&store, &["alone"]).await;
        let engine = Engine::new(store.clone(), vec![flow.clone() as Arc<dyn Flow>]).unwrap();
        let w = worker::start(engine.clone(), WorkerConfig { gather: Duration::from_secs(3600), ..config() });
        assert!(wait_until(30, || async { count(&store, State::Done).await == 1 }).await, "a lone event waited");
        assert_eq!(*flow.singles.lock().unwrap(), vec!["alone".to_owned()]);
        assert!(flow.batches.lock().unwrap().is_empty());
        w.shutdown().await;

        let gather = Duration::from_millis(300);
        let w = worker::start(engine, WorkerConfig { gather, poll_interval: Duration::from_secs(60), ..config() });
        tokio::time::sleep(Duration::from_millis(100)).await; // the pool is idle, waiting for a wake-up
        let start = std::time::Instant::now();
        let both = [NewEvent::new("b", "x", b"x".to_vec()), NewEvent::new("b", "y", b"y".to_vec())];
        store.ingest_batch_with_cursor(&both, None).await.unwrap();
        assert!(wait_until(30, || async { count(&store, State::Done).await == 3 }).await);
        assert!(start.elapsed() >= gather, "several events wait up to `gather` for more");
        assert_eq!(*flow.batches.lock().unwrap(), vec![vec!["x".to_owned(), "y".to_owned()]]);
        w.shutdown().await;
        store.close().await;
    }
}
