//! The shared behaviour suite: every case runs on SQLite and (with `SYNC_TEST_POSTGRES_URL`) on PostgreSQL.
#![allow(missing_docs, clippy::print_stdout, clippy::cast_possible_truncation)]

mod common;

behaviour_suite!(
    retention_keeps_a_fixed_working_set_bounded,
    ingest_dedup_concurrent,
    claim_fencing_after_lease_expiry,
    worker_killed_mid_lease_is_reclaimed,
    a_killed_pool_extends_no_lease_after_the_kill,
    panic_is_retried,
    retries_then_dead_letter_and_replay,
    ordering_key_serialises_events,
    graceful_shutdown_releases_claims,
    heartbeat_keeps_lease,
    cursor_advances_with_batch,
    helpers_id_map_journal_counters_watermarks_echo,
    status_and_purge,
    skipped_is_done_with_reason,
    complete_batch_is_fenced_per_row,
    multi_worker_exactly_once,
);

mod cases {
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use async_trait::async_trait;
    use bytes::Bytes;
    use chrono::TimeZone;
    use rand::Rng;
    use sync_core::worker::{self, WorkerConfig};
    use sync_core::{
        Backoff, BoxError, Ctx, Engine, Error, Event, Fence, Flow, Headers, Ingested, KeyError, ManualClock, NewEvent,
        Outcome, RawEvent, State, SystemClock,
    };
    use tokio::sync::Notify;

    use crate::common::{Harness, Sink, wait_until};

    type Behaviour = dyn Fn(&Event, u32) -> Decision + Send + Sync;

    /// What the test flow does on a given attempt.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Decision {
        Done,
        ErrBeforeEffect,
        RetryAfterEffect,
        Panic,
        Fail,
        Skip,
        Block,
    }

    /// A configurable flow over source `test`: effects go through `ctx.step`, recorded in the sink.
    pub struct TestFlow {
        pub sink: Sink,
        pub behaviour: Box<Behaviour>,
        pub calls: Mutex<HashMap<String, u32>>,
        pub entered: Notify,
        pub gate: Notify,
        pub with_ordering: bool,
    }

    impl std::fmt::Debug for TestFlow {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("TestFlow")
        }
    }

    impl TestFlow {
        pub fn new(behaviour: impl Fn(&Event, u32) -> Decision + Send + Sync + 'static) -> Arc<Self> {
            Arc::new(Self {
                sink: Sink::default(),
                behaviour: Box::new(behaviour),
                calls: Mutex::default(),
                entered: Notify::new(),
                gate: Notify::new(),
                with_ordering: false,
            })
        }
        pub fn calls(&self, key: &str) -> u32 {
            self.calls.lock().unwrap().get(key).copied().unwrap_or(0)
        }
    }

    #[async_trait]
    impl Flow for TestFlow {
        fn name(&self) -> &str {
            "test"
        }
        fn sources(&self) -> Vec<String> {
            vec!["test".into()]
        }
        fn dedup_key(&self, e: &RawEvent<'_>) -> Result<String, KeyError> {
            std::str::from_utf8(e.body).map(str::to_owned).map_err(|_| KeyError("not utf-8".into()))
        }
        fn ordering_key(&self, e: &RawEvent<'_>) -> Option<String> {
            self.with_ordering.then(|| "entity".to_owned()).filter(|_| !e.body.is_empty())
        }
        async fn handle(&self, ctx: &Ctx, event: &Event) -> Result<Outcome, BoxError> {
            let n = {
                let mut calls = self.calls.lock().unwrap();
                let n = calls.entry(event.dedup_key.clone()).or_default();
                *n += 1;
                *n
            };
            self.sink.calls.fetch_add(1, Ordering::SeqCst);
            let decision = (self.behaviour)(event, n);
            match decision {
                Decision::ErrBeforeEffect => return Err("transient".into()),
                Decision::Panic => panic!("boom"),
                Decision::Fail => return Ok(Outcome::fail("designed to fail")),
                Decision::Skip => return Ok(Outcome::skipped("filtered by test")),
                Decision::Block => {
                    self.entered.notify_one();
                    self.gate.notified().await;
                }
                _ => {}
            }
            let sink = self.sink.clone();
            let key = event.dedup_key.clone();
            ctx.step("effect", || async move {
                sink.record(&key);
                Ok::<_, BoxError>(key)
            })
            .await?;
            if decision == Decision::RetryAfterEffect {
                return Ok(Outcome::Retry { after: Some(Duration::ZERO), reason: "after effect".into() });
            }
            Ok(Outcome::Done)
        }
    }

    fn fast_config() -> WorkerConfig {
        WorkerConfig {
            concurrency: 4,
            batch_size: 16,
            lease: Duration::from_secs(30),
            heartbeat: Duration::from_secs(5),
            poll_interval: Duration::from_millis(20),
            max_attempts: 5,
            backoff: Backoff { initial: Duration::from_millis(1), multiplier: 2, max: Duration::from_millis(5) },
            shutdown_grace: Duration::from_secs(5),
            owner: None,
            gather: Duration::from_millis(5),
        }
    }

    fn ev(key: &str) -> NewEvent {
        NewEvent::new("test", key, Bytes::from(key.to_owned()))
    }

    async fn count(store: &sync_core::Store, state: State) -> i64 {
        store.status().await.unwrap().depth.get(&("test".to_owned(), state)).copied().unwrap_or(0)
    }

    async fn drained(store: &sync_core::Store) -> bool {
        count(store, State::Queued).await == 0 && count(store, State::Running).await == 0
    }

    pub async fn ingest_dedup_concurrent(h: &Harness) {
        let store = h.open(Arc::new(SystemClock)).await;
        let flow = TestFlow::new(|_, _| Decision::Done);
        let engine = Engine::new(store.clone(), vec![flow.clone()]).unwrap();
        let mut joins = Vec::new();
        for _ in 0..100 {
            let engine = engine.clone();
            joins.push(tokio::spawn(async move {
                engine.ingest("test", &Headers::new(), Bytes::from_static(b"evt-1"), Headers::new()).await.unwrap()
            }));
        }
        let mut accepted = 0;
        for j in joins {
            if matches!(j.await.unwrap(), Ingested::Accepted { .. }) {
                accepted += 1;
            }
        }
        assert_eq!(accepted, 1, "exactly one ingest is accepted");
        let w = worker::start(engine, fast_config());
        assert!(wait_until(20, || async { count(&store, State::Done).await == 1 }).await);
        w.shutdown().await;
        assert_eq!(flow.calls("evt-1"), 1, "handler runs once");
        assert_eq!(flow.sink.count("evt-1"), 1);
        assert_eq!(store.status().await.unwrap().depth.values().sum::<i64>(), 1, "one row");
    }

    pub async fn claim_fencing_after_lease_expiry(h: &Harness) {
        let clock = ManualClock::starting_now();
        let store = h.open(Arc::new(clock.clone())).await;
        let Ingested::Accepted { id } = store.ingest(&ev("a")).await.unwrap() else { panic!("dup") };
        let sources = vec!["test".to_owned()];
        let a = store.claim("A", &sources, 10, Duration::from_secs(30)).await.unwrap();
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].id, id);
        // Leased: nobody else gets it.
        assert!(store.claim("B", &sources, 10, Duration::from_secs(30)).await.unwrap().is_empty());
        clock.advance(Duration::from_secs(31));
        let b = store.claim("B", &sources, 10, Duration::from_secs(30)).await.unwrap();
        assert_eq!(b.len(), 1, "expired lease is reclaimed");
        assert_eq!(b[0].lease.attempt_no, a[0].lease.attempt_no + 1, "as a new attempt");
        // The zombie's writes are refused.
        assert_eq!(store.complete(&a[0].lease).await.unwrap(), Fence::Stale);
        assert_eq!(store.retry(&a[0].lease, Duration::ZERO, "x").await.unwrap(), Fence::Stale);
        assert_eq!(store.fail(&a[0].lease, "x").await.unwrap(), Fence::Stale);
        assert_eq!(store.heartbeat(&a[0].lease, Duration::from_secs(30)).await.unwrap(), Fence::Stale);
        let r = store.step_put(&id.to_string(), "s", &serde_json::json!(1), Some(&a[0].lease)).await;
        assert!(matches!(r, Err(Error::Stale { .. })), "fenced journal write: {r:?}");
        // The live attempt completes once.
        assert_eq!(store.complete(&b[0].lease).await.unwrap(), Fence::Applied);
        assert_eq!(store.complete(&b[0].lease).await.unwrap(), Fence::Stale, "not twice");
        let row = store.get(id).await.unwrap().unwrap();
        assert_eq!(row.state, State::Done);
        assert_eq!(row.attempts, 2);
    }

    pub async fn worker_killed_mid_lease_is_reclaimed(h: &Harness) {
        let clock = ManualClock::starting_now();
        let store = h.open(Arc::new(clock.clone())).await;
        let flow = TestFlow::new(|_, n| if n == 1 { Decision::Block } else { Decision::Done });
        let engine = Engine::new(store.clone(), vec![flow.clone()]).unwrap();
        engine.store().ingest(&ev("k")).await.unwrap();
        let w1 = worker::start(engine.clone(), fast_config());
        tokio::time::timeout(Duration::from_secs(20), flow.entered.notified()).await.expect("handler entered");
        w1.kill();
        assert_eq!(count(&store, State::Running).await, 1, "the dead worker's row stays leased");
        let w2 = worker::start(engine.clone(), fast_config());
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(count(&store, State::Done).await, 0, "not reclaimed before the lease expires");
        clock.advance(Duration::from_secs(31));
        assert!(wait_until(20, || async { count(&store, State::Done).await == 1 }).await);
        w2.shutdown().await;
        assert_eq!(flow.sink.count("k"), 1, "effect once");
        assert_eq!(flow.calls("k"), 2);
    }

    /// `kill` then an immediate clock move past the lease (what the crash tests do): the dying pool's handler is
    /// dropped at its next await, after `kill` has returned, and a heartbeat that reads the moved clock in that
    /// window must not be written (it would extend the lease from the moved clock, and the new pool could not
    /// reclaim the event until the clock moved again: a crash test's drain then timed out, 1 run in 13 under load).
    /// Heartbeats every millisecond make the window likely; each round must be reclaimed without moving the clock.
    pub async fn a_killed_pool_extends_no_lease_after_the_kill(h: &Harness) {
        const ROUNDS: usize = 150;
        let clock = ManualClock::starting_now();
        let store = h.open(Arc::new(clock.clone())).await;
        let flow = TestFlow::new(|_, n| if n == 1 { Decision::Block } else { Decision::Done });
        let engine = Engine::new(store.clone(), vec![flow.clone()]).unwrap();
        let busy = WorkerConfig {
            heartbeat: Duration::from_millis(1),
            poll_interval: Duration::from_millis(1),
            ..fast_config()
        };
        for round in 0..ROUNDS {
            let key = format!("k{round}");
            store.ingest(&ev(&key)).await.unwrap();
            let w1 = worker::start(engine.clone(), busy.clone());
            // (not `flow.entered`: the previous round's second call left a stored permit there)
            assert!(wait_until(20, || async { flow.calls(&key) == 1 }).await, "round {round}: handler entered");
            w1.kill();
            clock.advance(Duration::from_secs(31));
            let w2 = worker::start(engine.clone(), fast_config());
            let want = i64::try_from(round + 1).unwrap();
            let done = wait_until(10, || async { count(&store, State::Done).await == want }).await;
            w2.shutdown().await;
            assert!(done, "round {round}: the event was not reclaimed after the kill and the clock move");
            assert_eq!(flow.sink.count(&key), 1, "round {round}: effect once");
        }
    }

    pub async fn panic_is_retried(h: &Harness) {
        let store = h.open(Arc::new(SystemClock)).await;
        let flow = TestFlow::new(|_, n| if n == 1 { Decision::Panic } else { Decision::Done });
        let engine = Engine::new(store.clone(), vec![flow.clone()]).unwrap();
        let Ingested::Accepted { id } = store.ingest(&ev("p")).await.unwrap() else { panic!() };
        let w = worker::start(engine, fast_config());
        assert!(wait_until(20, || async { count(&store, State::Done).await == 1 }).await);
        w.shutdown().await;
        assert_eq!(flow.calls("p"), 2);
        assert_eq!(flow.sink.count("p"), 1);
        assert_eq!(store.get(id).await.unwrap().unwrap().attempts, 2);
    }

    pub async fn retries_then_dead_letter_and_replay(h: &Harness) {
        let store = h.open(Arc::new(SystemClock)).await;
        let fixed = Arc::new(AtomicBool::new(false));
        let f2 = fixed.clone();
        let flow = TestFlow::new(move |e, _| match e.dedup_key.as_str() {
            "perm" => Decision::Fail,
            _ if f2.load(Ordering::SeqCst) => Decision::Done,
            _ => Decision::ErrBeforeEffect,
        });
        let engine = Engine::new(store.clone(), vec![flow.clone()]).unwrap();
        let Ingested::Accepted { id } = store.ingest(&ev("flaky")).await.unwrap() else { panic!() };
        store.ingest(&ev("perm")).await.unwrap();
        let w = worker::start(engine, fast_config());
        assert!(wait_until(20, || async { count(&store, State::Dead).await == 2 }).await);
        assert_eq!(flow.calls("flaky"), 5, "max_attempts");
        assert_eq!(flow.calls("perm"), 1, "permanent failure is not retried");
        let row = store.get(id).await.unwrap().unwrap();
        assert!(row.last_error.as_deref().unwrap().contains("gave up after 5 attempts"), "{row:?}");
        assert_eq!(store.status().await.unwrap().dead, 2);
        fixed.store(true, Ordering::SeqCst);
        assert!(store.replay(id).await.unwrap());
        assert!(!store.replay(id).await.unwrap(), "only dead letters replay");
        assert!(wait_until(20, || async { count(&store, State::Done).await == 1 }).await);
        w.shutdown().await;
        assert_eq!(flow.sink.count("flaky"), 1);
        assert_eq!(flow.sink.count("perm"), 0);
    }

    pub async fn ordering_key_serialises_events(h: &Harness) {
        let store = h.open(Arc::new(SystemClock)).await;
        let order = Arc::new(Mutex::new(Vec::<String>::new()));
        let active = Arc::new(AtomicUsize::new(0));
        let (o2, a2) = (order.clone(), active.clone());
        #[derive(Debug)]
        struct Ordered {
            order: Arc<Mutex<Vec<String>>>,
            active: Arc<AtomicUsize>,
            failed_once: AtomicBool,
        }
        #[async_trait]
        impl Flow for Ordered {
            fn name(&self) -> &str {
                "ordered"
            }
            fn sources(&self) -> Vec<String> {
                vec!["test".into(), "test-other-side".into()]
            }
            fn dedup_key(&self, e: &RawEvent<'_>) -> Result<String, KeyError> {
                Ok(String::from_utf8_lossy(e.body).into_owned())
            }
            fn ordering_key(&self, _: &RawEvent<'_>) -> Option<String> {
                Some("deal-1".into())
            }
            async fn handle(&self, _ctx: &Ctx, event: &Event) -> Result<Outcome, BoxError> {
                assert_eq!(self.active.fetch_add(1, Ordering::SeqCst), 0, "never two of one entity at once");
                tokio::time::sleep(Duration::from_millis(5)).await;
                self.active.fetch_sub(1, Ordering::SeqCst);
                if event.dedup_key == "e0" && !self.failed_once.swap(true, Ordering::SeqCst) {
                    return Ok(Outcome::Retry { after: Some(Duration::from_millis(30)), reason: "first".into() });
                }
                self.order.lock().unwrap().push(event.dedup_key.clone());
                Ok(Outcome::Done)
            }
        }
        let flow = Arc::new(Ordered { order: o2, active: a2, failed_once: AtomicBool::new(false) });
        let engine = Engine::new(store.clone(), vec![flow]).unwrap();
        // an event of a source no worker here consumes (another program's flow on the same store), same key: it
        // must not hold this flow's events back
        store.ingest(&NewEvent::new("not-ours", "x0", Bytes::from_static(b"x0")).ordering_key("deal-1")).await.unwrap();
        // the key orders across the flow's sources (both directions of one entity)
        for i in 0..8 {
            let source = if i % 2 == 0 { "test" } else { "test-other-side" };
            engine.ingest(source, &Headers::new(), Bytes::from(format!("e{i}")), Headers::new()).await.unwrap();
        }
        let w = worker::start(engine, WorkerConfig { concurrency: 8, ..fast_config() });
        let done = wait_until(20, || async { order.lock().unwrap().len() == 8 }).await;
        assert!(done, "{:?} {:?}", store.status().await.unwrap(), order.lock().unwrap());
        w.shutdown().await;
        let expected: Vec<String> = (0..8).map(|i| format!("e{i}")).collect();
        assert_eq!(*order.lock().unwrap(), expected, "arrival order across both sources, even across a retry");
        assert_eq!(active.load(Ordering::SeqCst), 0);
    }

    pub async fn graceful_shutdown_releases_claims(h: &Harness) {
        let store = h.open(Arc::new(SystemClock)).await;
        let flow = TestFlow::new(|_, n| if n == 1 { Decision::Block } else { Decision::Done });
        let engine = Engine::new(store.clone(), vec![flow.clone()]).unwrap();
        let Ingested::Accepted { id } = store.ingest(&ev("g")).await.unwrap() else { panic!() };
        let w =
            worker::start(engine.clone(), WorkerConfig { shutdown_grace: Duration::from_millis(100), ..fast_config() });
        tokio::time::timeout(Duration::from_secs(20), flow.entered.notified()).await.expect("entered");
        let stats = w.stats().clone();
        w.shutdown().await;
        assert_eq!(stats.released.load(Ordering::SeqCst), 1);
        let row = store.get(id).await.unwrap().unwrap();
        assert_eq!(row.state, State::Queued, "released, immediately claimable");
        assert_eq!(row.attempts, 0, "a release does not use up an attempt");
        // A fresh pool picks it up right away (no lease wait).
        let w = worker::start(engine, fast_config());
        assert!(wait_until(20, || async { count(&store, State::Done).await == 1 }).await);
        w.shutdown().await;
        assert_eq!(flow.sink.count("g"), 1);
    }

    pub async fn heartbeat_keeps_lease(h: &Harness) {
        let clock = ManualClock::starting_now();
        let store = h.open(Arc::new(clock.clone())).await;
        let flow = TestFlow::new(|_, n| if n == 1 { Decision::Block } else { Decision::Done });
        let engine = Engine::new(store.clone(), vec![flow.clone()]).unwrap();
        store.ingest(&ev("hb")).await.unwrap();
        let cfg = WorkerConfig { heartbeat: Duration::from_millis(20), ..fast_config() };
        let w = worker::start(engine, cfg);
        tokio::time::timeout(Duration::from_secs(20), flow.entered.notified()).await.expect("entered");
        for _ in 0..4 {
            clock.advance(Duration::from_secs(20));
            tokio::time::sleep(Duration::from_millis(100)).await; // let a heartbeat (20 ms) run
        }
        // 80 s of store time later, the 30 s lease is still ours.
        let other = store.claim("other", &["test".to_owned()], 10, Duration::from_secs(30)).await.unwrap();
        assert!(other.is_empty(), "heartbeat extended the lease");
        flow.gate.notify_one();
        assert!(wait_until(20, || async { count(&store, State::Done).await == 1 }).await);
        w.shutdown().await;
        assert_eq!(flow.calls("hb"), 1);
    }

    pub async fn cursor_advances_with_batch(h: &Harness) {
        let store = h.open(Arc::new(SystemClock)).await;
        store.ingest(&ev("x1")).await.unwrap();
        let batch = vec![ev("x1"), ev("x2"), ev("x3")];
        let r = store.ingest_batch_with_cursor(&batch, Some(("test", "payloads", "42"))).await.unwrap();
        assert_eq!(r[0], Ingested::Duplicate);
        assert!(matches!(r[1], Ingested::Accepted { .. }));
        assert!(matches!(r[2], Ingested::Accepted { .. }));
        assert_eq!(store.cursor_get("test", "payloads").await.unwrap().as_deref(), Some("42"));
        store.cursor_set("test", "payloads", "43").await.unwrap();
        assert_eq!(store.cursor_get("test", "payloads").await.unwrap().as_deref(), Some("43"));
        assert_eq!(store.cursor_get("test", "other").await.unwrap(), None);
        assert_eq!(count(&store, State::Queued).await, 3);
    }

    pub async fn helpers_id_map_journal_counters_watermarks_echo(h: &Harness) {
        let clock = ManualClock::starting_now();
        let store = h.open(Arc::new(clock.clone())).await;
        // id map, unique both ways
        store.id_put("airtable", "record", "deal-1", "rec1").await.unwrap();
        assert_eq!(store.id_get("airtable", "record", "deal-1").await.unwrap().as_deref(), Some("rec1"));
        assert_eq!(store.id_get_local("airtable", "record", "rec1").await.unwrap().as_deref(), Some("deal-1"));
        let e = store.id_put("airtable", "record", "deal-2", "rec1").await.unwrap_err();
        assert!(matches!(e, Error::IdConflict { .. }), "{e}");
        store.id_put("airtable", "record", "deal-1", "rec9").await.unwrap();
        assert_eq!(store.id_get("airtable", "record", "deal-1").await.unwrap().as_deref(), Some("rec9"));
        // step journal: runs once, returns the stored result
        let ctx = Ctx::detached(store.clone(), "run-1");
        let runs = Arc::new(AtomicUsize::new(0));
        for _ in 0..3 {
            let r = runs.clone();
            let v: String = ctx
                .step("create", || async move {
                    r.fetch_add(1, Ordering::SeqCst);
                    Ok::<_, BoxError>("P-1".to_owned())
                })
                .await
                .unwrap();
            assert_eq!(v, "P-1");
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        let failed: Result<u32, _> = ctx.step("fails", || async { Err::<u32, BoxError>("nope".into()) }).await;
        assert!(matches!(failed, Err(Error::Step { .. })));
        assert_eq!(store.step_get("run-1", "fails").await.unwrap(), None, "failures are not journaled");
        // counters: idempotent per hit, sliding window
        let w = Duration::from_secs(48 * 3600);
        assert_eq!(store.counter_hit("opens:c1", "h1", w).await.unwrap(), 1);
        assert_eq!(store.counter_hit("opens:c1", "h1", w).await.unwrap(), 1, "same hit counts once");
        clock.advance(Duration::from_secs(3600));
        assert_eq!(store.counter_hit("opens:c1", "h2", w).await.unwrap(), 2);
        clock.advance(Duration::from_secs(47 * 3600 + 1));
        assert_eq!(store.counter_hit("opens:c1", "h3", w).await.unwrap(), 2, "h1 fell out of the window");
        // watermarks
        let t = |s: i64| chrono::Utc.timestamp_opt(1_700_000_000 + s, 0).unwrap();
        assert!(store.watermark_advance("lead:1", t(10)).await.unwrap());
        assert!(store.watermark_advance("lead:1", t(10)).await.unwrap(), "equal time passes (retries)");
        assert!(store.watermark_advance("lead:1", t(20)).await.unwrap());
        assert!(!store.watermark_advance("lead:1", t(15)).await.unwrap(), "stale");
        assert!(store.watermark_advance("lead:2", t(15)).await.unwrap());
        // echo suppression
        let v = serde_json::json!({"date": "2026-01-02"});
        assert!(!store.is_echo("kommo", "lead:1", "next_contact", &v).await.unwrap());
        store.remember_written("kommo", "lead:1", "next_contact", &v).await.unwrap();
        assert!(store.is_echo("kommo", "lead:1", "next_contact", &v).await.unwrap());
        assert!(!store.is_echo("kommo", "lead:1", "next_contact", &serde_json::json!("x")).await.unwrap());
        store.ping().await.unwrap();
    }

    /// Thirty days of traffic over a fixed working set of five entities, with `serve`'s retention (purge done rows
    /// and compact markers older than three days) once a day: the done rows stay at three or four days' worth, the
    /// markers of the working set stay, and those of an entity untouched since day 0 are gone.
    pub async fn retention_keeps_a_fixed_working_set_bounded(h: &Harness) {
        let clock = ManualClock::starting_now();
        let store = h.open(Arc::new(clock.clone())).await;
        let keep = Duration::from_secs(3 * 86400);
        let v = serde_json::json!("in sync");
        let t0 = chrono::Utc::now();
        store.remember_written("kommo", "lead:gone", "name", &v).await.unwrap();
        assert!(store.watermark_advance("lead:gone", t0).await.unwrap());
        let sources = vec!["test".to_owned()];
        let mut max_done = 0;
        for day in 0..30u32 {
            for i in 0..10 {
                store.ingest(&ev(&format!("d{day}-{i}"))).await.unwrap();
            }
            for c in store.claim("w", &sources, 10, Duration::from_secs(30)).await.unwrap() {
                assert_eq!(store.complete(&c.lease).await.unwrap(), Fence::Applied);
            }
            for e in 0..5 {
                store.remember_written("kommo", &format!("lead:{e}"), "name", &v).await.unwrap();
                let when = t0 + chrono::Duration::days(i64::from(day));
                assert!(store.watermark_advance(&format!("lead:{e}"), when).await.unwrap());
            }
            clock.advance(Duration::from_secs(86400));
            store.purge_done(keep).await.unwrap();
            store.compact(keep).await.unwrap();
            let done = *store.status().await.unwrap().depth.get(&("test".into(), State::Done)).unwrap_or(&0);
            max_done = max_done.max(done);
        }
        assert!(max_done <= 40, "done rows bounded by the retention period: at most {max_done}");
        assert_eq!(store.status().await.unwrap().depth.get(&("test".into(), State::Done)), Some(&30));
        for e in 0..5 {
            assert!(store.is_echo("kommo", &format!("lead:{e}"), "name", &v).await.unwrap(), "working set kept");
            let older = t0 + chrono::Duration::days(20);
            assert!(!store.watermark_check(&format!("lead:{e}"), older).await.unwrap(), "working set kept");
        }
        assert!(!store.is_echo("kommo", "lead:gone", "name", &v).await.unwrap(), "an old hash is compacted");
        let earlier = t0 - chrono::Duration::days(1);
        assert!(store.watermark_check("lead:gone", earlier).await.unwrap(), "an old watermark is compacted");
        // a second pass finds nothing more
        assert_eq!(store.compact(keep).await.unwrap(), sync_core::Compacted::default());
    }

    pub async fn status_and_purge(h: &Harness) {
        let clock = ManualClock::starting_now();
        let store = h.open(Arc::new(clock.clone())).await;
        for k in ["s1", "s2", "s3"] {
            store.ingest(&ev(k)).await.unwrap();
        }
        clock.advance(Duration::from_secs(60));
        let st = store.status().await.unwrap();
        assert_eq!(st.depth.get(&("test".into(), State::Queued)), Some(&3));
        assert_eq!(st.oldest_due_age, Some(Duration::from_secs(60)));
        let sources = vec!["test".to_owned()];
        let claimed = store.claim("w", &sources, 2, Duration::from_secs(30)).await.unwrap();
        assert_eq!(claimed.len(), 2);
        assert_eq!(store.complete(&claimed[0].lease).await.unwrap(), Fence::Applied);
        assert_eq!(store.fail(&claimed[1].lease, "bad").await.unwrap(), Fence::Applied);
        let st = store.status().await.unwrap();
        assert_eq!(st.dead, 1);
        assert_eq!(st.depth.get(&("test".into(), State::Done)), Some(&1));
        assert_eq!(store.list(State::Dead, 10).await.unwrap()[0].last_error.as_deref(), Some("bad"));
        assert_eq!(store.purge_done(Duration::from_secs(86400)).await.unwrap(), 0, "too recent");
        clock.advance(Duration::from_secs(2 * 86400));
        assert_eq!(store.purge_done(Duration::from_secs(86400)).await.unwrap(), 1);
        let st = store.status().await.unwrap();
        assert_eq!(st.depth.get(&("test".into(), State::Done)), None);
        assert_eq!(st.dead, 1, "dead letters are kept");
    }

    /// `Outcome::Skipped` finishes the event (done, no effect) and keeps the reason: per row, and counted per
    /// source and reason in `status`; the write is fenced like every other outcome.
    pub async fn skipped_is_done_with_reason(h: &Harness) {
        let store = h.open(Arc::new(SystemClock)).await;
        let flow = TestFlow::new(|e, _| if e.dedup_key.starts_with("skip") { Decision::Skip } else { Decision::Done });
        for k in ["skip-1", "keep-1", "skip-2", "keep-2", "skip-3"] {
            store.ingest(&ev(k)).await.unwrap();
        }
        let engine = Engine::new(store.clone(), vec![flow.clone()]).unwrap();
        let pool = worker::start(engine, fast_config());
        assert!(wait_until(20, || drained(&store)).await);
        let stats = pool.stats();
        assert_eq!(stats.skipped.load(Ordering::SeqCst), 3);
        assert_eq!(stats.done.load(Ordering::SeqCst), 2);
        pool.shutdown().await;

        assert_eq!(flow.sink.total(), 2, "skipped events have no effect");
        let st = store.status().await.unwrap();
        assert_eq!(st.depth.get(&("test".into(), State::Done)), Some(&5), "skipped events are done");
        assert_eq!(st.skipped.len(), 1);
        assert_eq!(st.skipped.get(&("test".into(), "filtered by test".into())), Some(&3));
        let done = store.list(State::Done, 10).await.unwrap();
        let reasons: Vec<(&str, Option<&str>)> =
            done.iter().map(|r| (r.dedup_key.as_str(), r.skip_reason.as_deref())).collect();
        assert_eq!(
            reasons,
            vec![
                ("skip-1", Some("filtered by test")),
                ("keep-1", None),
                ("skip-2", Some("filtered by test")),
                ("keep-2", None),
                ("skip-3", Some("filtered by test")),
            ]
        );

        // Fenced: a stale lease cannot turn a finished row into a skipped one.
        store.ingest(&ev("late")).await.unwrap();
        let sources = vec!["test".to_owned()];
        let claimed = store.claim("w", &sources, 1, Duration::from_secs(30)).await.unwrap();
        assert_eq!(store.complete(&claimed[0].lease).await.unwrap(), Fence::Applied);
        assert_eq!(store.skip(&claimed[0].lease, "too late").await.unwrap(), Fence::Stale);
        assert_eq!(store.get(claimed[0].id).await.unwrap().unwrap().skip_reason, None);
    }

    /// One grouped write finishes many rows, each fenced on its own: stale leases (reclaimed, or already finished)
    /// are refused and reported as such, in input order; skip reasons land on their rows only.
    pub async fn complete_batch_is_fenced_per_row(h: &Harness) {
        let clock = ManualClock::starting_now();
        let store = h.open(Arc::new(clock.clone())).await;
        for i in 0..6 {
            store.ingest(&ev(&format!("b{i}"))).await.unwrap();
        }
        let sources = vec!["test".to_owned()];
        let first = store.claim("w1", &sources, 6, Duration::from_secs(30)).await.unwrap();
        assert_eq!(first.len(), 6);
        // b4 and b5: the lease expires and another worker reclaims them
        clock.advance(Duration::from_secs(31));
        let again = store.claim("w2", &sources, 6, Duration::from_secs(30)).await.unwrap();
        let again_ids: Vec<i64> = again.iter().map(|e| e.id).collect();
        assert_eq!(again_ids, first.iter().map(|e| e.id).collect::<Vec<_>>(), "all six were expired");
        // w2 finishes b0..b3 in one batch (b1 and b3 skipped); w1's stale leases for b4, b5 are refused
        let batch: Vec<(sync_core::Lease, Option<String>)> = vec![
            (again[0].lease.clone(), None),
            (again[1].lease.clone(), Some("filtered".into())),
            (again[2].lease.clone(), None),
            (again[3].lease.clone(), Some("echo".into())),
            (first[4].lease.clone(), None),
            (first[5].lease.clone(), Some("stale".into())),
        ];
        let fences = store.complete_batch(&batch).await.unwrap();
        use Fence::{Applied, Stale};
        assert_eq!(fences, vec![Applied, Applied, Applied, Applied, Stale, Stale]);
        // finishing the same leases again is refused (already done)
        assert_eq!(store.complete_batch(&batch[..2]).await.unwrap(), vec![Stale, Stale]);
        assert_eq!(store.complete_batch(&[]).await.unwrap(), vec![]);
        let rows: Vec<(State, Option<String>)> = {
            let mut v = Vec::new();
            for e in &again {
                let r = store.get(e.id).await.unwrap().unwrap();
                v.push((r.state, r.skip_reason));
            }
            v
        };
        assert_eq!(
            rows,
            vec![
                (State::Done, None),
                (State::Done, Some("filtered".into())),
                (State::Done, None),
                (State::Done, Some("echo".into())),
                (State::Running, None),
                (State::Running, None),
            ]
        );
        // w2's live leases for b4, b5 still finish
        let rest: Vec<_> = again[4..].iter().map(|e| (e.lease.clone(), None)).collect();
        assert_eq!(store.complete_batch(&rest).await.unwrap(), vec![Applied, Applied]);
        assert_eq!(count(&store, State::Done).await, 6);
        assert_eq!(store.status().await.unwrap().skipped.values().sum::<i64>(), 2);
    }

    /// 3 worker pools (each with its own connection pool, as separate processes would have) process 5,000 events
    /// ingested with 10% duplicates; handlers fail transiently at random (before and after the effect), and every
    /// 50th event is designed to fail permanently.
    pub async fn multi_worker_exactly_once(h: &Harness) {
        const N: usize = 5_000;
        let flow = TestFlow::new(|e, _| {
            let i: usize = e.dedup_key[2..].parse().unwrap();
            if i.is_multiple_of(50) {
                return Decision::Fail;
            }
            let roll: f64 = rand::rng().random();
            if roll < 0.10 {
                Decision::ErrBeforeEffect
            } else if roll < 0.15 {
                Decision::RetryAfterEffect
            } else {
                Decision::Done
            }
        });
        let ingest_store = h.open(Arc::new(SystemClock)).await;
        let ingest_engine = Engine::new(ingest_store.clone(), vec![flow.clone()]).unwrap();
        let mut handles = Vec::new();
        for _ in 0..3 {
            let store = h.open(Arc::new(SystemClock)).await;
            let engine = Engine::new(store, vec![flow.clone()]).unwrap();
            let cfg = WorkerConfig { concurrency: 8, batch_size: 32, max_attempts: 50, ..fast_config() };
            handles.push(worker::start(engine, cfg));
        }
        // Ingest concurrently with processing, in 4 parallel streams, ~10% of them duplicates.
        let mut ingesters = Vec::new();
        for part in 0..4 {
            let engine = ingest_engine.clone();
            ingesters.push(tokio::spawn(async move {
                let mut dups = 0;
                for i in (part..N).step_by(4) {
                    let body = Bytes::from(format!("e-{i}"));
                    engine.ingest("test", &Headers::new(), body.clone(), Headers::new()).await.unwrap();
                    if i % 10 == 3 {
                        let r = engine.ingest("test", &Headers::new(), body, Headers::new()).await.unwrap();
                        assert_eq!(r, Ingested::Duplicate);
                        dups += 1;
                    }
                }
                dups
            }));
        }
        let mut dups = 0;
        for i in ingesters {
            dups += i.await.unwrap();
        }
        assert_eq!(dups, N / 10);
        let ok = wait_until(150, || async { drained(&ingest_store).await }).await;
        for w in handles {
            w.shutdown().await;
        }
        assert!(ok, "drained: {:?}", ingest_store.status().await.unwrap());
        let designed = N / 50;
        assert_eq!(count(&ingest_store, State::Dead).await, designed as i64, "only the designed failures are dead");
        assert_eq!(count(&ingest_store, State::Done).await, (N - designed) as i64);
        assert_eq!(flow.sink.keys(), N - designed, "no effect lost");
        assert_eq!(flow.sink.total(), N - designed, "no effect applied twice");
        assert_eq!(flow.sink.max_per_key(), 1);
        println!(
            "multi-worker on {}: {} handler calls for {} events",
            if h.is_postgres() { "postgres" } else { "sqlite" },
            flow.sink.calls.load(Ordering::SeqCst),
            N
        );
    }
}

/// PostgreSQL: an ingest through one pool wakes an idle worker on another pool (another process, in production)
/// through `NOTIFY`, long before that worker's next poll.
#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_ingest_wakes_workers_of_other_pools() {
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use sync_core::worker::{self, WorkerConfig};
    use sync_core::{Engine, NewEvent, State, SystemClock};

    let Some(h) = common::Harness::postgres() else { return };
    let producer = h.open(Arc::new(SystemClock)).await;
    let consumer = h.open_with_wakeups(Arc::new(SystemClock)).await;
    let flow = cases::TestFlow::new(|_, _| cases::Decision::Done);
    let engine = Engine::new(consumer.clone(), vec![flow.clone()]).unwrap();
    let cfg = WorkerConfig { poll_interval: Duration::from_secs(60), ..WorkerConfig::default() };
    let pool = worker::start(engine, cfg);
    // let the worker make its first (empty) claim and go to sleep on its 60 s poll
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    producer.ingest(&NewEvent::new("test", "wake-1", "wake-1")).await.unwrap();
    let done = common::wait_until(20, || async {
        producer.status().await.unwrap().depth.get(&("test".to_owned(), State::Done)) == Some(&1)
    })
    .await;
    assert!(done, "the other pool's worker was not woken (it would have waited for its 60 s poll)");
    assert!(started.elapsed() < Duration::from_secs(20));
    assert_eq!(flow.sink.count("wake-1"), 1);
    pool.shutdown().await;
    h.cleanup().await;
}

/// PostgreSQL: lease deadlines come from the database server's clock. A process whose wall clock runs ten
/// minutes ahead must neither see another process's 30 s lease as lapsed (and run the same event twice) nor
/// write deadlines that keep its own lease alive for ten minutes after it died.
#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_leases_use_the_database_clock_not_a_skewed_machine_clock() {
    use std::sync::Arc;
    use std::time::Duration;

    use sync_core::{Clock, NewEvent, SystemClock};

    /// This machine's wall clock, ten minutes fast.
    #[derive(Debug)]
    struct Fast;
    impl Clock for Fast {
        fn now_ms(&self) -> i64 {
            chrono::Utc::now().timestamp_millis() + 600_000
        }
        fn is_wall_clock(&self) -> bool {
            true
        }
    }

    let Some(h) = common::Harness::postgres() else { return };
    let honest = h.open(Arc::new(SystemClock)).await;
    let fast = h.open(Arc::new(Fast)).await;
    let skew = fast.clock().now_ms() - chrono::Utc::now().timestamp_millis();
    assert!(skew.abs() < 5_000, "the fast machine's store reads the database clock (off by {skew} ms)");
    let sources = vec!["test".to_owned()];
    honest.ingest(&NewEvent::new("test", "lease-1", "lease-1")).await.unwrap();
    let mine = honest.claim("honest", &sources, 10, Duration::from_secs(30)).await.unwrap();
    assert_eq!(mine.len(), 1);
    assert!(
        fast.claim("fast", &sources, 10, Duration::from_secs(30)).await.unwrap().is_empty(),
        "a 30 s lease taken a moment ago is not lapsed, whatever the other machine's clock says"
    );
    honest.close().await;
    fast.close().await;
    h.cleanup().await;
}
