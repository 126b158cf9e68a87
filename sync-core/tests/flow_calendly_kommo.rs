//! Calendly → Kommo flow against the Calendly and Kommo fakes, on SQLite and (with `SYNC_TEST_POSTGRES_URL`)
//! PostgreSQL: bookings (known contact, new person, three open deals, Deal ID answers), cancellations, both orders
//! of the reschedule pair, no-shows, forged signatures, 200 deliveries with duplicates, and the webhook
//! subscription lifecycle.
#![cfg(feature = "calendly-kommo")]
#![allow(missing_docs, clippy::print_stdout, clippy::too_many_lines)]
// `common::Harness::cleanup` awaits only with the `postgres` feature
#![allow(clippy::unused_async)]

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use api_core::Token;
use calendly_api::fake::{Booking, FakeCalendly, FakeConfig as CalConfig, OutgoingWebhook};
use calendly_api::scheduled_events::CancelerType;
use calendly_api::webhook_subscriptions::SubscriptionState;
use chrono::{DateTime, Utc};
use kommo_api::fake::{FakeConfig as KommoConfig, FakeKommo, SeedLead};
use kommo_api::{EntityType, LeadId, StatusId, UserId};
use sync_core::flows::calendly_kommo::{
    CalendlyKommo, Config, EVENTS, ScopeConfig, WebhookAction, WebhookSpec, ensure_webhook, task_for_invitee,
};
use sync_core::server::{ServerStats, router};
use sync_core::{Engine, State, Store, SystemClock, WorkerConfig, WorkerHandle, worker};

use common::Harness;

const KEY: &str = "test-signing-key-0123456789";

struct Rig {
    kommo: FakeKommo,
    cal: FakeCalendly,
    store: Store,
    workers: Option<WorkerHandle>,
    stats: Arc<ServerStats>,
    hook_url: String,
    http: reqwest::Client,
    server: tokio::task::JoinHandle<()>,
}

impl Rig {
    async fn start(h: &Harness, config: Config, created_first: bool) -> Rig {
        Self::start_with(h, created_first, |_| config).await
    }

    async fn start_with(h: &Harness, created_first: bool, config: impl FnOnce(&FakeKommo) -> Config) -> Rig {
        let kommo = FakeKommo::start_with(KommoConfig { rate_limit: None, ..KommoConfig::default() }).await.unwrap();
        let config = config(&kommo);
        let cal =
            FakeCalendly::start_with(CalConfig { reschedule_created_first: created_first, ..CalConfig::default() })
                .await
                .unwrap();
        let store = h.open(Arc::new(SystemClock)).await;
        let client = kommo.client_builder().rate_limit(0).build().unwrap();
        let flow = CalendlyKommo::new(config, client, Token::new(KEY)).unwrap();
        flow.validate().await.expect("valid config");
        let routes = flow.routes();
        let engine = Engine::new(store.clone(), vec![Arc::new(flow)]).unwrap();
        let (app, stats) = router(engine.clone(), routes).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        let hook_url = format!("http://{addr}/hooks/calendly");
        let _ = cal.subscribe(&hook_url, &EVENTS, KEY);
        let workers = worker::start(
            engine,
            WorkerConfig {
                concurrency: 4,
                poll_interval: Duration::from_millis(20),
                backoff: sync_core::Backoff {
                    initial: Duration::from_millis(50),
                    multiplier: 2,
                    max: Duration::from_millis(500),
                },
                ..WorkerConfig::default()
            },
        );
        Rig { kommo, cal, store, workers: Some(workers), stats, hook_url, http: reqwest::Client::new(), server }
    }

    /// POSTs every queued Calendly delivery to the receiver (all must be accepted) and waits for the workers.
    async fn deliver(&self) -> Vec<OutgoingWebhook> {
        let sent: Vec<OutgoingWebhook> = self.cal.take_outbox();
        for w in &sent {
            assert_eq!(w.post(&self.http).await.unwrap(), 200, "delivery of {}", w.event);
        }
        self.drain().await;
        sent
    }

    async fn drain(&self) {
        let store = self.store.clone();
        let ok = common::wait_until(30, || {
            let store = store.clone();
            async move {
                let s = store.status().await.unwrap();
                s.depth.iter().all(|((_, st), n)| *n == 0 || !matches!(st, State::Queued | State::Running))
            }
        })
        .await;
        assert!(ok, "queue did not drain: {:?}", self.store.status().await.unwrap());
        let status = self.store.status().await.unwrap();
        if status.dead > 0 {
            let dead = self.store.list(State::Dead, 10).await.unwrap();
            panic!("dead letters: {dead:?}");
        }
    }

    fn notes(&self, lead: u64) -> Vec<String> {
        self.kommo.notes_for(EntityType::Leads, lead).iter().filter_map(|n| n.text().map(str::to_owned)).collect()
    }

    async fn stop(mut self) {
        if let Some(w) = self.workers.take() {
            w.shutdown().await;
        }
        self.server.abort();
    }
}

fn start_in(hours: i64) -> DateTime<Utc> {
    let t = Utc::now() + chrono::Duration::hours(hours);
    DateTime::from_timestamp(t.timestamp() - t.timestamp() % 60, 0).unwrap()
}

/// A contact with an email and one open deal owned by a new user.
fn known_contact(k: &FakeKommo, name: &str, email: &str) -> (kommo_api::ContactId, LeadId, UserId) {
    let owner = k.seed_user(&format!("{name}'s manager"), &format!("mgr.{email}"));
    let c = k.seed_contact(name, Some(email), None);
    let lead = k.seed_lead(SeedLead::new(format!("{name} deal")).contact(c).responsible(owner));
    (c, lead, owner)
}

mod cases {
    use super::*;

    /// A known contact books: note + meeting task on the open deal (a won deal is ignored), due at the start,
    /// responsible = the deal owner, task type Meeting; the invitee ↔ task mapping is stored.
    pub async fn booking_by_known_contact(h: &Harness) {
        let rig = Rig::start(h, Config::default(), false).await;
        let (c, open, owner) = known_contact(&rig.kommo, "Ivan Petrov", "ivan@example.com");
        let won = rig.kommo.seed_lead(SeedLead::new("old won deal").contact(c));
        rig.kommo.set_lead_status(won, rig.kommo.main_pipeline(), StatusId::WON);
        // a substring match on `query` that is not the same email must not be chosen
        let _other = rig.kommo.seed_contact("Not Ivan", Some("ivan@example.com.au"), None);
        let start = start_in(48);
        let booked = rig.cal.book(Booking::new("IVAN@example.com", "Ivan Petrov", start).answer("Topic", "Pricing"));
        rig.deliver().await;

        let tasks = rig.kommo.tasks();
        assert_eq!(tasks.len(), 1, "{tasks:?}");
        let t = &tasks[0];
        assert_eq!(t.entity_id, Some(open.get()));
        assert_eq!(t.complete_till, Some(start.timestamp()));
        assert_eq!(t.task_type_id, Some(2));
        assert_eq!(t.responsible_user_id, Some(owner));
        assert!(t.text.contains("Intro call") && t.text.contains("Ivan Petrov"), "{}", t.text);
        let notes = rig.notes(open.get());
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(
            notes[0].contains("booked") && notes[0].contains("zoom") && notes[0].contains("Topic: Pricing"),
            "{}",
            notes[0]
        );
        assert!(rig.notes(won.get()).is_empty());
        assert_eq!(rig.kommo.contacts().len(), 2, "no contact created");
        assert_eq!(
            task_for_invitee(&rig.store, &booked.invitee.uri).await.unwrap().map(kommo_api::TaskId::get),
            Some(t.id.get())
        );
        rig.stop().await;
    }

    /// An unknown email: a contact and an inbound lead in the configured pipeline and stage (tagged), then the
    /// note and task on it.
    pub async fn booking_by_new_person_inbound_lead(h: &Harness) {
        let mut stage = None;
        let rig = Rig::start_with(h, false, |k| {
            let (pid, stages) = k.seed_pipeline("Inbound", &["New booking", "Qualified"]);
            stage = Some((pid, stages[0]));
            let mut c = Config::default();
            c.new_lead.pipeline_id = Some(pid.get());
            c.new_lead.status_id = Some(stages[0].get());
            c
        })
        .await;
        let (pid, sid) = stage.unwrap();
        let start = start_in(24);
        rig.cal.book(Booking::new("new.person@example.org", "Nina New", start));
        rig.deliver().await;
        let contacts = rig.kommo.contacts();
        assert_eq!(contacts.len(), 1);
        assert_eq!(contacts[0].emails(), vec!["new.person@example.org".to_owned()]);
        let leads = rig.kommo.leads();
        assert_eq!(leads.len(), 1);
        let lead = &leads[0];
        assert_eq!(lead.name, "Calendly: Nina New");
        assert_eq!(lead.pipeline_id, Some(pid));
        assert_eq!(lead.status_id, Some(sid));
        assert_eq!(lead.embedded.contacts.first().map(|c| c.id), Some(contacts[0].id));
        assert!(lead.embedded.tags.iter().any(|t| t.name == "calendly"), "{:?}", lead.embedded.tags);
        assert_eq!(rig.kommo.tasks_for(EntityType::Leads, lead.id.get()).len(), 1);
        assert_eq!(rig.notes(lead.id.get()).len(), 1);
        rig.stop().await;
    }

    /// A contact with three open deals: the most recently updated one gets the meeting (a logged decision).
    pub async fn contact_with_three_open_deals(h: &Harness) {
        let rig = Rig::start(h, Config::default(), false).await;
        let k = &rig.kommo;
        let c = k.seed_contact("Olga Three", Some("olga@example.com"), None);
        let a = k.seed_lead(SeedLead::new("A").contact(c));
        let b = k.seed_lead(SeedLead::new("B").contact(c));
        let d = k.seed_lead(SeedLead::new("C").contact(c));
        k.advance_clock(30);
        k.update_lead(b, &serde_json::json!({"price": 900}));
        rig.cal.book(Booking::new("olga@example.com", "Olga Three", start_in(5)));
        rig.deliver().await;
        assert_eq!(rig.kommo.tasks_for(EntityType::Leads, b.get()).len(), 1);
        assert_eq!(rig.notes(b.get()).len(), 1);
        for other in [a, d] {
            assert!(rig.kommo.tasks_for(EntityType::Leads, other.get()).is_empty());
            assert!(rig.notes(other.get()).is_empty());
        }
        assert_eq!(rig.kommo.leads().len(), 3, "no lead created");
        rig.stop().await;
    }

    /// A valid "Deal ID" answer wins over the rule; one naming a missing deal falls back to the rule.
    pub async fn deal_id_answer_valid_and_missing(h: &Harness) {
        let rig = Rig::start(h, Config::default(), false).await;
        let k = &rig.kommo;
        let c = k.seed_contact("Petra Pick", Some("petra@example.com"), None);
        let older = k.seed_lead(SeedLead::new("older").contact(c));
        k.advance_clock(30);
        let newer = k.seed_lead(SeedLead::new("newer").contact(c));
        rig.cal.book(
            Booking::new("petra@example.com", "Petra Pick", start_in(3)).answer("Deal ID", format!("#{}", older.get())),
        );
        rig.cal.book(Booking::new("petra@example.com", "Petra Pick", start_in(4)).answer("deal id", "99999999"));
        rig.deliver().await;
        assert_eq!(rig.kommo.tasks_for(EntityType::Leads, older.get()).len(), 1, "explicit Deal ID");
        assert_eq!(
            rig.kommo.tasks_for(EntityType::Leads, newer.get()).len(),
            1,
            "missing deal: fell back to the newest"
        );
        assert_eq!(rig.kommo.tasks().len(), 2);
        rig.stop().await;
    }

    /// Cancel: a note with the canceller and reason; the task is closed with a result text.
    pub async fn cancellation_closes_task(h: &Harness) {
        let rig = Rig::start(h, Config::default(), false).await;
        let (_, lead, _) = known_contact(&rig.kommo, "Carl Cancel", "carl@example.com");
        let booked = rig.cal.book(Booking::new("carl@example.com", "Carl Cancel", start_in(10)));
        rig.deliver().await;
        rig.cal.cancel(&booked.invitee.uri, Some("Found another vendor"), CancelerType::Invitee).unwrap();
        rig.deliver().await;
        let tasks = rig.kommo.tasks();
        assert_eq!(tasks.len(), 1);
        assert!(tasks[0].is_completed);
        let result = tasks[0].result.as_ref().and_then(|r| r.text.clone()).unwrap_or_default();
        assert!(result.contains("Meeting canceled") && result.contains("Found another vendor"), "{result}");
        let notes = rig.notes(lead.get());
        assert_eq!(notes.len(), 2, "{notes:?}");
        assert!(
            notes[1].contains("canceled")
                && notes[1].contains("Carl Cancel")
                && notes[1].contains("Found another vendor"),
            "{}",
            notes[1]
        );
        assert!(task_for_invitee(&rig.store, &booked.invitee.uri).await.unwrap().is_none());
        rig.stop().await;
    }

    async fn reschedule(h: &Harness, created_first: bool) {
        let rig = Rig::start(h, Config::default(), created_first).await;
        let (_, lead, _) = known_contact(&rig.kommo, "Rita Resched", "rita@example.com");
        let booked = rig.cal.book(Booking::new("rita@example.com", "Rita Resched", start_in(20)));
        rig.deliver().await;
        let task_id = rig.kommo.tasks()[0].id;
        let new_start = start_in(44);
        let r = rig.cal.reschedule(&booked.invitee.uri, new_start).unwrap();
        let sent = rig.deliver().await;
        let order: Vec<String> = sent.iter().map(|w| w.event.to_string()).collect();
        let expected = if created_first {
            ["invitee.created", "invitee.canceled"]
        } else {
            ["invitee.canceled", "invitee.created"]
        };
        assert_eq!(order, expected);
        let tasks = rig.kommo.tasks();
        assert_eq!(tasks.len(), 1, "never a duplicate task: {tasks:?}");
        assert_eq!(tasks[0].id, task_id);
        assert_eq!(tasks[0].complete_till, Some(new_start.timestamp()), "task moved to the new time");
        assert!(!tasks[0].is_completed);
        let notes = rig.notes(lead.get());
        assert_eq!(notes.len(), 2, "booked + one rescheduled note: {notes:?}");
        assert!(notes[1].contains("rescheduled"), "{}", notes[1]);
        assert!(!notes.iter().any(|n| n.contains("canceled")), "no cancel note: {notes:?}");
        assert_eq!(task_for_invitee(&rig.store, &r.new.uri).await.unwrap(), Some(task_id));
        assert_eq!(task_for_invitee(&rig.store, &booked.invitee.uri).await.unwrap(), None);
        // the chain goes on: reschedule again, then cancel the newest booking → the same task is closed
        let r2 = rig.cal.reschedule(&r.new.uri, start_in(70)).unwrap();
        rig.deliver().await;
        rig.cal.cancel(&r2.new.uri, Some("sick"), CancelerType::Host).unwrap();
        rig.deliver().await;
        let tasks = rig.kommo.tasks();
        assert_eq!(tasks.len(), 1);
        assert!(tasks[0].is_completed);
        let notes = rig.notes(lead.get());
        assert_eq!(notes.len(), 4, "{notes:?}");
        assert_eq!(notes.iter().filter(|n| n.contains("rescheduled")).count(), 2);
        assert_eq!(notes.iter().filter(|n| n.contains("canceled")).count(), 1);
        rig.stop().await;
    }

    pub async fn reschedule_canceled_first(h: &Harness) {
        reschedule(h, false).await;
    }

    pub async fn reschedule_created_first(h: &Harness) {
        reschedule(h, true).await;
    }

    /// No-show: a note and a follow-up task on the deal.
    pub async fn no_show_note_and_follow_up(h: &Harness) {
        let rig = Rig::start(h, Config::default(), false).await;
        let (_, lead, owner) = known_contact(&rig.kommo, "Nora Noshow", "nora@example.com");
        let booked = rig.cal.book(Booking::new("nora@example.com", "Nora Noshow", start_in(1)));
        rig.deliver().await;
        rig.cal.mark_no_show(&booked.invitee.uri).unwrap();
        rig.deliver().await;
        let tasks = rig.kommo.tasks_for(EntityType::Leads, lead.get());
        assert_eq!(tasks.len(), 2, "{tasks:?}");
        let follow = tasks.iter().find(|t| t.task_type_id == Some(1)).expect("follow-up task");
        assert!(follow.text.contains("did not attend"), "{}", follow.text);
        assert_eq!(follow.responsible_user_id, Some(owner));
        let notes = rig.notes(lead.get());
        assert_eq!(notes.len(), 2);
        assert!(notes[1].contains("no-show"), "{}", notes[1]);
        // a no-show for a booking whose invitee.created never arrived: done as skipped, reason in `status`
        let lost = rig.cal.book(Booking::new("nora@example.com", "Nora Noshow", start_in(3)));
        let _ = rig.cal.take_outbox();
        rig.cal.mark_no_show(&lost.invitee.uri).unwrap();
        rig.deliver().await;
        assert_eq!(rig.kommo.tasks_for(EntityType::Leads, lead.get()).len(), 2, "nothing new");
        let skipped = rig.store.status().await.unwrap().skipped;
        let reason = ("calendly".to_owned(), "no-show for a booking never synced".to_owned());
        assert_eq!(skipped.get(&reason), Some(&1), "{skipped:?}");
        rig.stop().await;
    }

    /// Forged, unsigned and tampered deliveries answer 401 and store nothing.
    pub async fn forged_signature_rejected(h: &Harness) {
        let rig = Rig::start(h, Config::default(), false).await;
        rig.cal.book(Booking::new("eve@example.com", "Eve", start_in(2)));
        let w = rig.cal.take_outbox().remove(0);
        let now = Utc::now().timestamp();
        let forged = calendly_api::webhook::sign(b"not-the-key", now, &w.body);
        let post = |sig: Option<String>, body: bytes::Bytes| {
            let mut req = rig.http.post(&rig.hook_url).header("content-type", "application/json").body(body);
            if let Some(s) = sig {
                req = req.header("Calendly-Webhook-Signature", s);
            }
            req.send()
        };
        assert_eq!(post(Some(forged), w.body.clone()).await.unwrap().status(), 401);
        assert_eq!(post(None, w.body.clone()).await.unwrap().status(), 401);
        let mut tampered = w.body.to_vec();
        let pos = tampered.windows(3).position(|s| s == b"Eve").unwrap();
        tampered[pos] = b'A';
        assert_eq!(post(w.signature().map(str::to_owned), tampered.into()).await.unwrap().status(), 401);
        // older than Calendly's retry period (the default window, 25 h): no retry of Calendly's is that late
        let too_old = i64::try_from(calendly_api::webhook::DEFAULT_TOLERANCE.as_secs()).unwrap() + 60;
        let stale = calendly_api::webhook::sign(KEY.as_bytes(), now - too_old, &w.body);
        assert_eq!(post(Some(stale), w.body.clone()).await.unwrap().status(), 401);
        assert_eq!(rig.stats.unauthorized.load(Ordering::Relaxed), 4);
        assert!(rig.store.status().await.unwrap().depth.is_empty(), "nothing stored");
        // Calendly retries a failed delivery for up to 24 hours, with its original signature time
        // (api-notes/calendly.md): one signed 23 hours ago is accepted by the flow's default window
        let late = calendly_api::webhook::sign(KEY.as_bytes(), now - 23 * 3600, &w.body);
        assert_eq!(post(Some(late), w.body.clone()).await.unwrap().status(), 200);
        // and the genuine one too (a duplicate of it)
        assert_eq!(w.post(&rig.http).await.unwrap(), 200);
        rig.drain().await;
        assert_eq!(rig.kommo.tasks().len(), 1);
        rig.stop().await;
    }

    /// 200 deliveries (50 bookings × 4, shuffled, concurrent; half known contacts, half new people) → exactly one
    /// task and one note per booking.
    pub async fn two_hundred_deliveries_with_duplicates(h: &Harness) {
        use rand::seq::SliceRandom as _;
        let rig = Rig::start(h, Config::default(), false).await;
        let mut known_leads = Vec::new();
        for i in 0..25 {
            let (_, lead, _) = known_contact(&rig.kommo, &format!("Known {i}"), &format!("known{i}@example.com"));
            known_leads.push(lead);
        }
        for i in 0..25 {
            rig.cal.book(Booking::new(format!("known{i}@example.com"), format!("Known {i}"), start_in(10 + i)));
            rig.cal.book(Booking::new(format!("new{i}@example.net"), format!("New {i}"), start_in(40 + i)));
        }
        let once = rig.cal.take_outbox();
        assert_eq!(once.len(), 50);
        let mut all: Vec<OutgoingWebhook> = once.iter().flat_map(|w| std::iter::repeat_n(w.clone(), 4)).collect();
        all.shuffle(&mut rand::rng());
        assert_eq!(all.len(), 200);
        for chunk in all.chunks(25) {
            let posts = chunk.iter().map(|w| w.post(&rig.http));
            for r in futures::future::join_all(posts).await {
                assert_eq!(r.unwrap(), 200);
            }
        }
        rig.drain().await;
        assert_eq!(rig.stats.accepted.load(Ordering::Relaxed), 50);
        assert_eq!(rig.stats.duplicates.load(Ordering::Relaxed), 150);
        let tasks = rig.kommo.tasks();
        assert_eq!(tasks.len(), 50, "one task per booking");
        let mut per_lead = std::collections::HashMap::new();
        for t in &tasks {
            *per_lead.entry(t.entity_id.unwrap()).or_insert(0) += 1;
        }
        assert!(per_lead.values().all(|n| *n == 1), "{per_lead:?}");
        for lead in &known_leads {
            assert_eq!(per_lead.get(&lead.get()), Some(&1));
        }
        assert_eq!(rig.kommo.contacts().len(), 50, "25 known + 25 created");
        assert_eq!(rig.kommo.leads().len(), 50);
        assert_eq!(rig.kommo.notes().len(), 50);
        rig.stop().await;
    }

    /// Kommo answers 429 once, and drops the connection after committing a contact, a note and a task: every
    /// write is retried (after Kommo's hold-off for the 429) and searched for before being made again, so nothing
    /// is duplicated.
    pub async fn throttling_and_ambiguous_failures(h: &Harness) {
        use api_core::fake::Fault;
        use axum::http::Method;
        let rig = Rig::start(h, Config::default(), false).await;
        let (_, lead, _) = known_contact(&rig.kommo, "Fiona Fault", "fiona@example.com");
        let faults = rig.kommo.faults();
        rig.kommo.inject_throttle(1);
        faults.inject(Some(Method::POST), "/api/v4/contacts", Fault::DropAfterCommit, 1);
        faults.inject(Some(Method::POST), "/api/v4/leads/notes", Fault::DropAfterCommit, 1);
        faults.inject(Some(Method::POST), "/api/v4/tasks", Fault::DropAfterCommit, 2);
        rig.cal.book(Booking::new("fiona@example.com", "Fiona Fault", start_in(6)));
        rig.cal.book(Booking::new("gus@example.com", "Gus New", start_in(7)));
        rig.deliver().await;
        assert_eq!(rig.kommo.tasks().len(), 2, "{:?}", rig.kommo.tasks());
        assert_eq!(rig.kommo.tasks_for(EntityType::Leads, lead.get()).len(), 1);
        assert_eq!(rig.kommo.notes().len(), 2, "one note per booking");
        assert_eq!(rig.kommo.contacts().len(), 2, "Gus's contact created once");
        assert_eq!(rig.kommo.leads().len(), 2, "one inbound lead for Gus");
        let retried = rig.workers.as_ref().unwrap().stats().retried.load(Ordering::Relaxed);
        assert!(retried >= 3, "retries: {retried}");
        rig.stop().await;
    }

    /// `ensure_webhook`: create (key stored), keep, recreate when disabled or when the key is unknown, and two
    /// concurrent starters agree on one subscription and one key.
    pub async fn webhook_subscription_lifecycle(h: &Harness) {
        let cal = FakeCalendly::start().await.unwrap();
        let store = h.open(Arc::new(SystemClock)).await;
        let client = cal.client();
        let spec = WebhookSpec {
            callback_url: "https://sync.example.com/hooks/calendly".into(),
            organization: cal.organization(),
            scope: ScopeConfig::Organization,
            user: None,
        };
        let key_of = |cal: &FakeCalendly| {
            let subs = cal.subscriptions();
            assert_eq!(subs.len(), 1, "exactly one subscription");
            subs[0].signing_key.clone().unwrap().expose().to_owned()
        };
        let a = ensure_webhook(&client, &store, &spec).await.unwrap();
        assert_eq!(a.action, WebhookAction::Created);
        assert_eq!(a.signing_key.expose(), key_of(&cal));
        assert_eq!(a.subscription.events.len(), 3);
        let b = ensure_webhook(&client, &store, &spec).await.unwrap();
        assert_eq!(b.action, WebhookAction::Kept);
        assert_eq!(b.signing_key.expose(), a.signing_key.expose());
        // Calendly disabled it after 24 h of failures: recreated with a fresh key
        cal.set_subscription_state(&a.subscription.uri, SubscriptionState::Disabled).unwrap();
        let c = ensure_webhook(&client, &store, &spec).await.unwrap();
        assert_eq!(c.action, WebhookAction::Recreated);
        assert_ne!(c.signing_key.expose(), a.signing_key.expose());
        assert_eq!(c.signing_key.expose(), key_of(&cal));
        assert_eq!(cal.subscriptions()[0].subscription.state, SubscriptionState::Active);
        // the replacement was made before the old one went (at the alternate URL: one subscription per URL)
        assert_eq!(cal.subscriptions().len(), 1);
        assert_eq!(
            cal.subscriptions()[0].subscription.callback_url,
            "https://sync.example.com/hooks/calendly?subscription_rev=1"
        );
        let calls: Vec<String> = cal.server.log.requests().iter().map(|r| format!("{} {}", r.method, r.path)).collect();
        let created = calls.iter().rposition(|c| c == "POST /webhook_subscriptions").unwrap();
        let deleted = calls.iter().rposition(|c| c.starts_with("DELETE /webhook_subscriptions/")).unwrap();
        assert!(created < deleted, "create before delete: {calls:?}");
        // and is found there on the next start
        let kept = ensure_webhook(&client, &store, &spec).await.unwrap();
        assert_eq!(kept.action, WebhookAction::Kept);
        assert_eq!(kept.signing_key.expose(), c.signing_key.expose());
        // a subscription someone else made (key unknown to us) is replaced
        let other_store = Store::memory(Arc::new(SystemClock)).await.unwrap();
        let d = ensure_webhook(&client, &other_store, &spec).await.unwrap();
        assert_eq!(d.action, WebhookAction::Recreated);
        assert_eq!(d.signing_key.expose(), key_of(&cal));
        // two starters sharing one store, at once: one subscription, one key
        let spec2 = WebhookSpec { callback_url: "https://sync.example.com/hooks/calendly-2".into(), ..spec.clone() };
        let (x, y) = tokio::join!(ensure_webhook(&client, &store, &spec2), ensure_webhook(&client, &store, &spec2));
        let (x, y) = (x.unwrap(), y.unwrap());
        assert_eq!(x.signing_key.expose(), y.signing_key.expose());
        let subs: Vec<_> =
            cal.subscriptions().into_iter().filter(|s| s.subscription.callback_url == spec2.callback_url).collect();
        assert_eq!(subs.len(), 1);
        assert_eq!(subs[0].signing_key.as_ref().unwrap().expose(), x.signing_key.expose());
    }
}

behaviour_suite!(
    booking_by_known_contact,
    booking_by_new_person_inbound_lead,
    contact_with_three_open_deals,
    deal_id_answer_valid_and_missing,
    cancellation_closes_task,
    reschedule_canceled_first,
    reschedule_created_first,
    no_show_note_and_follow_up,
    forged_signature_rejected,
    two_hundred_deliveries_with_duplicates,
    throttling_and_ambiguous_failures,
    webhook_subscription_lifecycle,
);

/// Start-up validation names the wrong entry and lists the valid choices.
#[tokio::test]
async fn validation_names_the_wrong_entry() {
    let kommo = FakeKommo::start_with(KommoConfig { rate_limit: None, ..KommoConfig::default() }).await.unwrap();
    let mk = |c: Config| CalendlyKommo::new(c, kommo.client(), Token::new(KEY)).unwrap();
    let mut c = Config::default();
    c.task.task_type_id = 77;
    let e = mk(c).validate().await.unwrap_err();
    assert_eq!(e.entry, "task.task_type_id");
    assert!(e.message.contains("Meeting"), "{e}");
    let mut c = Config::default();
    c.new_lead.pipeline_id = Some(4242);
    let e = mk(c).validate().await.unwrap_err();
    assert_eq!(e.entry, "new_lead.pipeline_id");
    assert!(e.message.contains("Sales"), "{e}");
    let mut c = Config::default();
    c.task.responsible_user_id = Some(999);
    assert_eq!(mk(c).validate().await.unwrap_err().entry, "task.responsible_user_id");
    let c = Config { timezone: "Mars/Olympus".into(), ..Config::default() };
    assert_eq!(CalendlyKommo::new(c, kommo.client(), Token::new(KEY)).unwrap_err().entry, "timezone");
    mk(Config::default()).validate().await.unwrap();
}

/// Issue 17, "effects converge": a handler aborted at shutdown is released with `attempts - 1`
/// (`Store::release`), so its rerun is again attempt 1. Every Kommo create must still search first: here each
/// attempt's create commits at the fake but its answer is lost (`Fault::DropAfterCommit`, the same window as a
/// shutdown between Kommo's reply and the step journal commit), and the attempt is released, never retried. The
/// handler is driven by hand on a [`sync_core::ManualClock`] store: no workers, no sleeps.
mod converge {
    use std::sync::Arc;
    use std::time::Duration;

    use api_core::fake::Fault;
    use calendly_api::fake::{Booking, FakeCalendly, FakeConfig as CalConfig};
    use chrono::{DateTime, Utc};
    use kommo_api::EntityType;
    use kommo_api::fake::{FakeConfig as KommoConfig, FakeKommo};
    use kommo_api::notes::NoteType;
    use reqwest::Method;
    use sync_core::flows::calendly_kommo::{CalendlyKommo, Config, EVENTS, task_for_invitee};
    use sync_core::{Ctx, Engine, Flow, Headers, ManualClock, Outcome, Store};

    use super::{KEY, known_contact};

    struct Rig {
        kommo: FakeKommo,
        cal: FakeCalendly,
        flow: Arc<CalendlyKommo>,
        engine: Engine,
        store: Store,
        clock: ManualClock,
    }

    impl Rig {
        async fn new() -> Self {
            let kommo =
                FakeKommo::start_with(KommoConfig { rate_limit: None, ..KommoConfig::default() }).await.unwrap();
            let cal = FakeCalendly::start_with(CalConfig::default()).await.unwrap();
            // deliveries are queued in the fake's outbox for a subscription; the test ingests them itself
            let _ = cal.subscribe("http://127.0.0.1:9/hooks/calendly", &EVENTS, KEY);
            let clock = ManualClock::new(DateTime::from_timestamp(1_900_000_000, 0).unwrap());
            let store = Store::memory(Arc::new(clock.clone())).await.unwrap();
            let client = kommo.client_builder().rate_limit(0).build().unwrap();
            let flow = Arc::new(CalendlyKommo::new(Config::default(), client, api_core::Token::new(KEY)).unwrap());
            flow.validate().await.unwrap();
            let engine = Engine::new(store.clone(), vec![flow.clone()]).unwrap();
            Self { kommo, cal, flow, engine, store, clock }
        }

        /// Ingests every queued Calendly delivery (signatures are not under test here).
        async fn ingest_outbox(&self) {
            let outbox = self.cal.take_outbox();
            assert!(!outbox.is_empty(), "a delivery was queued");
            for w in outbox {
                let r = self.engine.ingest("calendly", &Headers::new(), w.body.clone(), Headers::new()).await.unwrap();
                assert!(matches!(r, sync_core::Ingested::Accepted { .. }), "{r:?}");
            }
        }

        /// One attempt of the next event. A retryable outcome is *released* (the shutdown path: the attempt is
        /// not counted), so the rerun sees `attempts == 1` again. Returns the outcome and the attempts it saw.
        async fn attempt(&self) -> (Outcome, i64) {
            let mut claimed =
                self.store.claim("test-worker", &["calendly".to_owned()], 1, Duration::from_secs(30)).await.unwrap();
            assert_eq!(claimed.len(), 1, "one event due");
            let event = claimed.remove(0);
            let ctx = Ctx::for_event(self.store.clone(), &event);
            let outcome = self.flow.handle(&ctx, &event).await.unwrap();
            let _ = match &outcome {
                Outcome::Done | Outcome::Skipped { .. } => self.store.complete(&event.lease).await.unwrap(),
                Outcome::Retry { .. } => self.store.release(&event.lease).await.unwrap(),
                Outcome::Fail { reason } => panic!("permanent failure: {reason}"),
            };
            self.clock.advance(Duration::from_secs(60));
            (outcome, event.attempts)
        }

        fn lose_next_response(&self, path: &str) {
            self.kommo.faults().inject(Some(Method::POST), path, Fault::DropAfterCommit, 1);
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn rerun_after_a_released_attempt_finds_the_note_and_the_task() {
        let rig = Rig::new().await;
        let (_, lead, owner) = known_contact(&rig.kommo, "Ivan Petrov", "ivan@example.com");
        let start = DateTime::<Utc>::from_timestamp(2_000_001_600, 0).unwrap();
        let booked = rig.cal.book(Booking::new("ivan@example.com", "Ivan Petrov", start));
        rig.ingest_outbox().await;

        // 1: the note commits, the answer is lost, the attempt is released; 2: again attempt 1, the note must be
        // found, the task commits and its answer is lost, released; 3: again attempt 1, the task must be found
        rig.lose_next_response("/api/v4/leads/notes");
        let (o, attempts) = rig.attempt().await;
        assert!(matches!(o, Outcome::Retry { .. }), "{o:?}");
        assert_eq!(attempts, 1);
        rig.lose_next_response("/api/v4/tasks");
        let (o, attempts) = rig.attempt().await;
        assert!(matches!(o, Outcome::Retry { .. }), "{o:?}");
        assert_eq!(attempts, 1, "a released attempt is not counted");
        let (o, attempts) = rig.attempt().await;
        assert_eq!(o, Outcome::Done);
        assert_eq!(attempts, 1);

        let notes = rig.kommo.notes_for(EntityType::Leads, lead.get());
        assert_eq!(notes.len(), 1, "exactly one booking note: {notes:?}");
        let n = &notes[0];
        assert_eq!(n.entity_id, Some(lead.get()));
        assert_eq!(n.note_type, NoteType::Common);
        let text = n.text().unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "📅 Calendly: Intro call booked");
        assert!(lines.contains(&"Invitee: Ivan Petrov <ivan@example.com>"), "{text}");
        assert_eq!(lines.last().copied(), Some(format!("Calendly invitee: {}", booked.invitee.uri).as_str()), "{text}");

        let tasks = rig.kommo.tasks_for(EntityType::Leads, lead.get());
        assert_eq!(tasks.len(), 1, "exactly one meeting task: {tasks:?}");
        let t = &tasks[0];
        assert_eq!(t.entity_id, Some(lead.get()));
        assert_eq!(t.entity_type, Some(EntityType::Leads));
        assert_eq!(t.complete_till, Some(start.timestamp()));
        assert_eq!(t.task_type_id, Some(2), "meeting");
        assert_eq!(t.responsible_user_id, Some(owner));
        assert_eq!(t.text, "Meeting: Intro call with Ivan Petrov");
        assert!(!t.is_completed);
        assert_eq!(task_for_invitee(&rig.store, &booked.invitee.uri).await.unwrap(), Some(t.id));

        // a no-show: the note and the follow-up task, each with its answer lost once and the attempt released;
        // the clock moves on between attempts, so the follow-up's due time must not depend on when one ran
        let (mark, _) = rig.cal.mark_no_show(&booked.invitee.uri).unwrap();
        rig.ingest_outbox().await;
        rig.lose_next_response("/api/v4/leads/notes");
        assert!(matches!(rig.attempt().await.0, Outcome::Retry { .. }));
        rig.lose_next_response("/api/v4/tasks");
        assert!(matches!(rig.attempt().await.0, Outcome::Retry { .. }));
        let (o, attempts) = rig.attempt().await;
        assert_eq!(o, Outcome::Done);
        assert_eq!(attempts, 1);
        let notes = rig.kommo.notes_for(EntityType::Leads, lead.get());
        assert_eq!(notes.len(), 2, "one booking note and one no-show note: {notes:?}");
        let no_show = notes.iter().find(|n| n.id != notes[0].id).unwrap().text().unwrap();
        assert!(no_show.starts_with("🚫 Calendly: no-show — Ivan Petrov did not attend Intro call\n"), "{no_show}");
        let tasks = rig.kommo.tasks_for(EntityType::Leads, lead.get());
        assert_eq!(tasks.len(), 2, "the meeting task and one follow-up: {tasks:?}");
        let follow: Vec<_> = tasks.iter().filter(|t| t.task_type_id == Some(1)).collect();
        assert_eq!(follow.len(), 1, "{tasks:?}");
        let f = follow[0];
        assert_eq!(f.entity_id, Some(lead.get()));
        assert_eq!(f.entity_type, Some(EntityType::Leads));
        assert_eq!(f.text, "Follow up: Ivan Petrov did not attend Intro call");
        // due 24 h after the no-show was reported (Calendly's mark time), whichever attempt created it
        assert_eq!(f.complete_till, Some(mark.created_at.unwrap().timestamp() + 24 * 3600));
        assert_eq!(f.responsible_user_id, Some(owner));
        assert!(!f.is_completed);
        assert_eq!(
            task_for_invitee(&rig.store, &booked.invitee.uri).await.unwrap(),
            Some(t.id),
            "still the meeting task"
        );
    }
}
