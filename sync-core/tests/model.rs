//! Property test: random sequences of {ingest, duplicate, claim, complete, transient failure, permanent failure,
//! worker crash, lease expiry, time passing} against the store, checked step by step against a reference model
//! (which row a claim must return, which writes the fence must refuse), then drained; after draining every event
//! is done (completed exactly once) or dead (completed never), none lost, none duplicated.
#![allow(missing_docs, clippy::print_stdout, clippy::cast_possible_truncation, clippy::cast_sign_loss)]

mod common;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use proptest::prelude::*;
use sync_core::{Clock, Error, Fence, Ingested, Lease, ManualClock, NewEvent, State, Store};

const LEASE: Duration = Duration::from_secs(30);
const RETRY_DELAY: Duration = Duration::from_secs(5);
const MAX_ATTEMPTS: i64 = 4;
const WORKERS: usize = 3;

#[derive(Debug, Clone)]
enum Op {
    Ingest(u8),
    Claim(usize),
    Complete(usize),
    TransientFail(usize),
    PermanentFail(usize),
    Crash(usize),
    ExpireLeases,
    Tick,
}

fn op() -> impl Strategy<Value = Op> {
    let w = 0..WORKERS;
    prop_oneof![
        3 => (0u8..12).prop_map(Op::Ingest),
        4 => w.clone().prop_map(Op::Claim),
        3 => w.clone().prop_map(Op::Complete),
        2 => w.clone().prop_map(Op::TransientFail),
        1 => w.clone().prop_map(Op::PermanentFail),
        1 => w.prop_map(Op::Crash),
        1 => Just(Op::ExpireLeases),
        1 => Just(Op::Tick),
    ]
}

#[derive(Debug, Clone)]
struct ModelEvent {
    key: u8,
    ordering: Option<String>,
    state: State,
    attempt_no: i64,
    attempts: i64,
    owner: Option<String>,
    lease_until: i64,
    run_after: i64,
    completions: u32,
    journaled: bool,
}

#[derive(Debug, Default)]
struct Model {
    events: BTreeMap<i64, ModelEvent>,
    keys: HashMap<u8, i64>,
}

impl Model {
    fn eligible(&self, now: i64) -> Option<i64> {
        self.events
            .iter()
            .filter(|(_, e)| {
                (e.state == State::Queued && e.run_after <= now) || (e.state == State::Running && e.lease_until <= now)
            })
            .find(|(id, e)| {
                e.ordering.as_ref().is_none_or(|o| {
                    !self.events.range(..**id).any(|(_, p)| {
                        p.ordering.as_ref() == Some(o) && matches!(p.state, State::Queued | State::Running)
                    })
                })
            })
            .map(|(id, _)| *id)
    }

    fn holds(&self, lease: &Lease) -> bool {
        let e = &self.events[&lease.id];
        e.state == State::Running && e.attempt_no == lease.attempt_no && e.owner.as_deref() == Some(&lease.owner)
    }
}

fn event_for(key: u8) -> NewEvent {
    let ev = NewEvent::new("test", format!("k{key}"), Bytes::from(vec![key]));
    if key.is_multiple_of(2) { ev.ordering_key(format!("o{}", key % 4)) } else { ev }
}

async fn run_case(store: &Store, clock: &ManualClock, ops: &[Op]) {
    let sources = vec!["test".to_owned()];
    let mut model = Model::default();
    let mut held: Vec<Option<Lease>> = vec![None; WORKERS];
    let now = || clock.now_ms();
    for op in ops {
        match *op {
            Op::Ingest(k) => {
                let r = store.ingest(&event_for(k)).await.unwrap();
                match (model.keys.get(&k), r) {
                    (Some(_), Ingested::Duplicate) => {}
                    (None, Ingested::Accepted { id }) => {
                        model.keys.insert(k, id);
                        let ev = event_for(k);
                        model.events.insert(
                            id,
                            ModelEvent {
                                key: k,
                                ordering: ev.ordering_key,
                                state: State::Queued,
                                attempt_no: 0,
                                attempts: 0,
                                owner: None,
                                lease_until: 0,
                                run_after: now(),
                                completions: 0,
                                journaled: false,
                            },
                        );
                    }
                    (seen, r) => panic!("ingest k{k}: seen={seen:?} got {r:?}"),
                }
            }
            Op::Claim(w) => {
                if held[w].is_some() {
                    continue;
                }
                let owner = format!("w{w}");
                let expected = model.eligible(now());
                let got = store.claim(&owner, &sources, 1, LEASE).await.unwrap();
                assert_eq!(got.first().map(|e| e.id), expected, "claim by {owner} at {ops:?}");
                if let Some(e) = got.into_iter().next() {
                    let m = model.events.get_mut(&e.id).unwrap();
                    m.state = State::Running;
                    m.attempt_no += 1;
                    m.attempts += 1;
                    m.owner = Some(owner);
                    m.lease_until = now() + LEASE.as_millis() as i64;
                    assert_eq!(e.lease.attempt_no, m.attempt_no);
                    assert_eq!(e.attempts, m.attempts);
                    assert_eq!(e.dedup_key, format!("k{}", m.key));
                    held[w] = Some(e.lease);
                }
            }
            Op::Complete(w) | Op::TransientFail(w) | Op::PermanentFail(w) => {
                let Some(lease) = held[w].take() else { continue };
                let live = model.holds(&lease);
                let m_attempts = model.events[&lease.id].attempts;
                let (fence, new_state) = match *op {
                    Op::Complete(_) => {
                        // The effect, journaled under the fence, then the completion.
                        let r =
                            store.step_put(&lease.id.to_string(), "effect", &serde_json::json!(1), Some(&lease)).await;
                        let journaled = model.events[&lease.id].journaled;
                        if live || journaled {
                            r.unwrap();
                        } else {
                            assert!(matches!(r, Err(Error::Stale { .. })), "fenced journal write: {r:?}");
                        }
                        if live {
                            model.events.get_mut(&lease.id).unwrap().journaled = true;
                        }
                        (store.complete(&lease).await.unwrap(), State::Done)
                    }
                    Op::TransientFail(_) if m_attempts >= MAX_ATTEMPTS => {
                        (store.fail(&lease, "gave up").await.unwrap(), State::Dead)
                    }
                    Op::TransientFail(_) => {
                        (store.retry(&lease, RETRY_DELAY, "transient").await.unwrap(), State::Queued)
                    }
                    _ => (store.fail(&lease, "permanent").await.unwrap(), State::Dead),
                };
                assert_eq!(fence == Fence::Applied, live, "fence for {op:?} (lease {lease:?})");
                if live {
                    let n = now();
                    let m = model.events.get_mut(&lease.id).unwrap();
                    m.state = new_state;
                    m.owner = None;
                    if new_state == State::Queued {
                        m.run_after = n + RETRY_DELAY.as_millis() as i64;
                    }
                    if new_state == State::Done {
                        m.completions += 1;
                    }
                }
            }
            Op::Crash(w) => held[w] = None,
            Op::ExpireLeases => clock.advance(LEASE + Duration::from_secs(1)),
            Op::Tick => clock.advance(RETRY_DELAY),
        }
    }
    // Drain with a fresh worker.
    for _ in 0..200 {
        clock.advance(LEASE + Duration::from_secs(1));
        let batch = store.claim("drainer", &sources, 100, LEASE).await.unwrap();
        if batch.is_empty() && model.events.values().all(|e| matches!(e.state, State::Done | State::Dead)) {
            break;
        }
        for e in batch {
            let m = model.events.get_mut(&e.id).unwrap();
            assert_eq!(store.complete(&e.lease).await.unwrap(), Fence::Applied);
            m.state = State::Done;
            m.completions += 1;
        }
    }
    // Invariant: every event is done exactly once or dead; none lost, none duplicated.
    let mut total = 0;
    for (id, m) in &model.events {
        let row = store.get(*id).await.unwrap().expect("never lost");
        assert_eq!(row.state, m.state, "event {id}");
        assert!(matches!(m.state, State::Done | State::Dead), "drained: {m:?}");
        assert_eq!(m.completions, u32::from(m.state == State::Done), "completed exactly once: {m:?}");
        total += 1;
    }
    let st = store.status().await.unwrap();
    assert_eq!(st.depth.values().sum::<i64>(), total, "one row per distinct key");
    assert_eq!(total as usize, model.keys.len());
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn sqlite_model(ops in proptest::collection::vec(op(), 1..80)) {
        rt().block_on(async {
            let clock = ManualClock::starting_now();
            let store = Store::memory(Arc::new(clock.clone())).await.unwrap();
            run_case(&store, &clock, &ops).await;
        });
    }
}

#[cfg(feature = "postgres")]
proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn postgres_model(ops in proptest::collection::vec(op(), 1..60)) {
        rt().block_on(async {
            let Some(h) = common::Harness::postgres() else { return };
            let clock = ManualClock::starting_now();
            let store = h.open(Arc::new(clock.clone())).await;
            run_case(&store, &clock, &ops).await;
            store.close().await;
            h.cleanup().await;
        });
    }
}
