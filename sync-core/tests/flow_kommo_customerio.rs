//! The Kommo ↔ Customer.io flow end to end: real HTTP deliveries to the engine's router, workers, and the Kommo and
//! Customer.io fakes, on SQLite and (with `SYNC_TEST_POSTGRES_URL`) PostgreSQL.
#![cfg(feature = "kommo-customerio")]
#![allow(clippy::print_stdout, missing_docs, clippy::too_many_lines)]

mod common;

use std::{net::SocketAddr, sync::Arc, sync::atomic::Ordering, time::Duration};

use common::{Harness, wait_until};
use customerio_api::{
    Identifier, Metric, RetryPolicy,
    fake::{FakeConfig as CioConfig, FakeCustomerIo, SignedWebhook},
};
use kommo_api::{
    ContactId, CustomFieldId, EntityType, FieldType, LeadId, PipelineId, StatusId, UserId,
    fake::{FakeConfig as KmConfig, FakeKommo, SeedLead},
};
use sync_core::{
    Engine, ManualClock, SharedClock, State, Store, SystemClock, WorkerConfig, WorkerHandle,
    flows::kommo_customerio::{Config, KommoCustomerIo},
    server, worker,
};

const PATH_TOKEN: &str = "s3cret-path-token";
const EMAIL: &str = "ada@client.example";

struct Env {
    kommo: FakeKommo,
    cio: FakeCustomerIo,
    harness: Option<Harness>,
    store: Store,
    flow: KommoCustomerIo,
    engine: Engine,
    workers: Option<WorkerHandle>,
    addr: SocketAddr,
    http: reqwest::Client,
    contact: ContactId,
    user: UserId,
    pipeline: PipelineId,
    stages: Vec<StatusId>,
    unsub_field: CustomFieldId,
    _server: tokio::sync::oneshot::Sender<()>,
}

fn config(kommo_url: &str) -> Config {
    Config::from_toml(&format!(
        r#"
        [kommo]
        base_url = "{kommo_url}"
        [unsubscribe]
        contact_field = "Email unsubscribed"
        contact_tag = "unsubscribed"
        "#
    ))
    .expect("config parses")
}

fn worker_config() -> WorkerConfig {
    WorkerConfig {
        concurrency: 8,
        poll_interval: Duration::from_millis(20),
        lease: Duration::from_secs(30),
        heartbeat: Duration::from_secs(5),
        backoff: sync_core::Backoff {
            initial: Duration::from_millis(20),
            multiplier: 2,
            max: Duration::from_millis(200),
        },
        ..WorkerConfig::default()
    }
}

async fn env(harness: Harness, clock: SharedClock) -> Env {
    env_with(harness, clock, None).await
}

/// The environment with the Customer.io client `cio_client` (pointed elsewhere than the fake) if given.
async fn env_with(harness: Harness, clock: SharedClock, cio_client: Option<customerio_api::Client>) -> Env {
    let kommo = FakeKommo::start_with(KmConfig { rate_limit: None, ..KmConfig::default() }).await.unwrap();
    let cio =
        FakeCustomerIo::start_with(CioConfig { track_rate_limit: None, app_rate_limit: None, ..CioConfig::default() })
            .await
            .unwrap();
    let user = kommo.seed_user("Rita Responsible", "rita@example.com");
    let contact = kommo.seed_contact("Ada Client", Some(EMAIL), Some("+1 555 0100"));
    let unsub_field =
        kommo.seed_custom_field(EntityType::Contacts, "Email unsubscribed", FieldType::Checkbox, None, &[]);
    let (pipeline, stages) = kommo.seed_pipeline("Sales", &["New", "In contact", "Proposal sent", "Negotiation"]);
    let store = harness.open(clock).await;
    let kommo_client = kommo.client_builder().rate_limit(1000).build().unwrap();
    // two attempts per call, so the engine's own retries are exercised
    let cio_client = cio_client.unwrap_or_else(|| {
        cio.client_builder()
            .retry_policy(RetryPolicy {
                max_attempts: 2,
                base_delay: Duration::from_millis(5),
                ..RetryPolicy::default()
            })
            .build()
            .unwrap()
    });
    let flow = KommoCustomerIo::new(config(kommo.base_url().as_str()), kommo_client, cio_client);
    flow.validate().await.expect("valid config");
    let engine = Engine::new(store.clone(), vec![Arc::new(flow.clone())]).unwrap();
    let key = api_core::Token::new(cio.config().webhook_signing_key.clone());
    let (router, _stats) = server::router(engine.clone(), flow.routes(api_core::Token::new(PATH_TOKEN), key)).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server::serve(listener, router, async {
        let _ = rx.await;
    }));
    let workers = worker::start(engine.clone(), worker_config());
    Env {
        kommo,
        cio,
        harness: Some(harness),
        store,
        flow,
        engine,
        workers: Some(workers),
        addr,
        http: reqwest::Client::new(),
        contact,
        user,
        pipeline,
        stages,
        unsub_field,
        _server: tx,
    }
}

impl Env {
    fn seed_lead(&self, name: &str, price: i64) -> LeadId {
        self.kommo.seed_lead(
            SeedLead::new(name)
                .price(price)
                .responsible(self.user)
                .contact(self.contact)
                .stage(self.pipeline, self.stages[0]),
        )
    }

    async fn deliver_kommo(&self, body: &str) -> u16 {
        self.http
            .post(format!("http://{}/hooks/kommo/{PATH_TOKEN}", self.addr))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body.to_owned())
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    async fn deliver_cio(&self, hook: &SignedWebhook) -> u16 {
        let url = reqwest::Url::parse(&format!("http://{}/hooks/customerio", self.addr)).unwrap();
        hook.deliver(&url).await.unwrap()
    }

    /// Waits until nothing is queued or running.
    async fn drain(&self) {
        let store = self.store.clone();
        let ok = wait_until(30, || {
            let store = store.clone();
            async move {
                let s = store.status().await.unwrap();
                !s.depth.iter().any(|((_, st), n)| *n > 0 && matches!(st, State::Queued | State::Running))
            }
        })
        .await;
        assert!(ok, "queue did not drain: {:?}", self.store.status().await.unwrap());
    }

    fn person(&self) -> Option<customerio_api::fake::Person> {
        self.cio.person(&Identifier::email(EMAIL))
    }

    fn events(&self, name: &str) -> Vec<customerio_api::fake::StoredEvent> {
        self.cio.events_for(&Identifier::email(EMAIL)).into_iter().filter(|e| e.name == name).collect()
    }

    fn notes(&self, lead: LeadId) -> Vec<String> {
        self.kommo
            .notes_for(EntityType::Leads, lead.get())
            .into_iter()
            .filter_map(|n| n.text().map(str::to_owned))
            .collect()
    }

    fn open(&self, ts: i64) -> SignedWebhook {
        self.cio.webhook(&Identifier::email(EMAIL), Metric::Opened).subject("Your proposal").timestamp(ts).build()
    }

    async fn finish(mut self) {
        if let Some(w) = self.workers.take() {
            w.shutdown().await;
        }
        self.store.close().await;
        if let Some(h) = self.harness.take() {
            h.cleanup().await;
        }
    }
}

async fn on_both_stores<F, Fut>(test: F)
where
    F: Fn(Harness) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    test(Harness::sqlite()).await;
    if let Some(pg) = Harness::postgres() {
        test(pg).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_lead_and_stage_change_identify_and_track_once_each() {
    on_both_stores(|h| async move {
        let env = env(h, Arc::new(SystemClock)).await;
        let lead = env.seed_lead("Website redesign", 12_000);
        let add = env.kommo.webhook_for_lead_add(lead);
        for _ in 0..3 {
            assert_eq!(env.deliver_kommo(&add).await, 200);
        }
        env.drain().await;
        let p = env.person().expect("person identified by email");
        assert_eq!(p.attributes["name"], "Ada Client");
        assert_eq!(p.attributes["phone"], "+1 555 0100");
        assert_eq!(p.attributes["kommo_stage"], "New");
        assert_eq!(p.attributes["kommo_pipeline"], "Sales");
        assert_eq!(p.attributes["deal_value"], 12_000.0);
        assert_eq!(p.attributes["responsible_name"], "Rita Responsible");
        assert_eq!(p.attributes["kommo_lead_id"], lead.to_string());
        let created = env.events("kommo_lead_created");
        assert_eq!(created.len(), 1, "redeliveries collapse: {created:?}");
        assert!(created[0].id.is_some(), "tracked with a deterministic event id");

        env.kommo.advance_clock(5);
        env.kommo.set_lead_status(lead, env.pipeline, env.stages[2]);
        let status = env.kommo.webhook_for_lead_status(lead);
        assert_eq!(env.deliver_kommo(&status).await, 200);
        assert_eq!(env.deliver_kommo(&status).await, 200, "redelivery acknowledged");
        env.drain().await;
        let changed = env.events("kommo_stage_changed");
        assert_eq!(changed.len(), 1, "{changed:?}");
        assert_eq!(changed[0].data["old_stage"], "New");
        assert_eq!(changed[0].data["new_stage"], "Proposal sent");
        assert_eq!(env.person().unwrap().attributes["kommo_stage"], "Proposal sent");
        let track_posts = env.cio.log().count(&reqwest::Method::POST, "/api/v1/customers/");
        assert_eq!(track_posts, 2, "one track call per Kommo event");
        assert_eq!(env.flow.stats().events_tracked.load(Ordering::Relaxed), 2);
        env.finish().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lead_without_email_is_skipped_with_a_reason() {
    let env = env(Harness::sqlite(), Arc::new(SystemClock)).await;
    let nomail = env.kommo.seed_contact("Bob NoMail", None, Some("+1 555 0199"));
    let lead = env.kommo.seed_lead(SeedLead::new("No email deal").contact(nomail).stage(env.pipeline, env.stages[0]));
    let orphan = env.kommo.seed_lead(SeedLead::new("No contact deal").stage(env.pipeline, env.stages[0]));
    env.deliver_kommo(&env.kommo.webhook_for_lead_add(lead)).await;
    env.deliver_kommo(&env.kommo.webhook_for_lead_add(orphan)).await;
    env.drain().await;
    assert!(env.cio.people().is_empty());
    assert!(env.cio.events().is_empty());
    assert_eq!(env.flow.stats().skipped_no_email.load(Ordering::Relaxed), 2);
    let st = env.store.status().await.unwrap();
    assert_eq!(st.dead, 0, "skips are not failures: {st:?}");
    env.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_stage_change_arriving_late_does_not_overwrite_newer_attributes() {
    on_both_stores(|h| async move {
        let env = env(h, Arc::new(SystemClock)).await;
        let lead = env.seed_lead("Retainer", 1_000);
        env.kommo.advance_clock(10);
        env.kommo.set_lead_status(lead, env.pipeline, env.stages[1]);
        let older = env.kommo.webhook_for_lead_status(lead);
        env.kommo.advance_clock(10);
        env.kommo.set_lead_status(lead, env.pipeline, env.stages[3]);
        let newer = env.kommo.webhook_for_lead_status(lead);
        env.deliver_kommo(&newer).await;
        env.drain().await;
        env.deliver_kommo(&older).await;
        env.drain().await;
        let p = env.person().unwrap();
        assert_eq!(p.attributes["kommo_stage"], "Negotiation", "the newer stage stays");
        assert_eq!(env.flow.stats().stale_skipped.load(Ordering::Relaxed), 1);
        // both changes happened, so both are tracked (with their own times)
        assert_eq!(env.events("kommo_stage_changed").len(), 2);
        env.finish().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn customerio_429_and_5xx_during_identify_are_retried_without_a_duplicate_event() {
    let env = env(Harness::sqlite(), Arc::new(SystemClock)).await;
    let lead = env.seed_lead("Throttled", 900);
    let put = Some(reqwest::Method::PUT);
    let fault = |s: u16| api_core::fake::Fault::json(s, &serde_json::json!({"meta": {"error": "try later"}}));
    // 2 client attempts per handler run: the first run fails on 503s, the second on a 429 then goes through
    env.cio.faults().inject(put.clone(), "/api/v1/customers/", fault(503), 2);
    env.cio.faults().inject(put, "/api/v1/customers/", fault(429), 1);
    // the track call commits but the connection breaks: the retry re-sends the same event id
    env.cio.faults().inject(
        Some(reqwest::Method::POST),
        "/api/v1/customers/",
        api_core::fake::Fault::DropAfterCommit,
        1,
    );
    env.deliver_kommo(&env.kommo.webhook_for_lead_add(lead)).await;
    env.drain().await;
    assert!(env.cio.log().count(&reqwest::Method::PUT, "/api/v1/customers/") >= 4, "identify was retried");
    assert_eq!(env.events("kommo_lead_created").len(), 1, "exactly one event in Customer.io");
    assert_eq!(env.person().unwrap().attributes["kommo_stage"], "New");
    let st = env.store.status().await.unwrap();
    assert_eq!(st.dead, 0, "{st:?}");
    env.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reporting_webhooks_make_notes_unsubscribe_marks_the_contact_and_forgeries_are_rejected() {
    on_both_stores(|h| async move {
        let env = env(h, Arc::new(SystemClock)).await;
        let lead = env.seed_lead("Annual plan", 5_000);
        env.deliver_kommo(&env.kommo.webhook_for_lead_add(lead)).await;
        env.drain().await;

        let click = env
            .cio
            .webhook(&Identifier::email(EMAIL), Metric::Clicked)
            .subject("Pricing")
            .href("https://example.com/pricing")
            .build();
        assert_eq!(env.deliver_cio(&click).await, 200);
        assert_eq!(env.deliver_cio(&click).await, 200, "redelivery acknowledged");
        env.drain().await;
        let notes = env.notes(lead);
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(notes[0].contains("clicked") && notes[0].contains("https://example.com/pricing"), "{}", notes[0]);
        assert!(notes[0].contains("campaign 1") && notes[0].contains("Pricing"), "{}", notes[0]);

        let bounce = env.cio.webhook(&Identifier::email(EMAIL), Metric::Bounced).build();
        env.deliver_cio(&bounce).await;
        let unsub = env.cio.webhook(&Identifier::email(EMAIL), Metric::Unsubscribed).subject("Newsletter").build();
        env.deliver_cio(&unsub).await;
        env.drain().await;
        let notes = env.notes(lead);
        assert_eq!(notes.len(), 3, "{notes:?}");
        assert!(notes.iter().any(|n| n.contains("bounced") && n.contains("550 mailbox unavailable")), "{notes:?}");
        // a metric the flow does not handle is done as skipped, with its reason in `status`
        let delivered = env.cio.webhook(&Identifier::email(EMAIL), Metric::Delivered).build();
        assert_eq!(env.deliver_cio(&delivered).await, 200);
        env.drain().await;
        assert_eq!(env.notes(lead).len(), 3);
        let skipped = env.store.status().await.unwrap().skipped;
        assert_eq!(skipped.values().sum::<i64>(), 1, "{skipped:?}");
        assert_eq!(skipped.keys().next().map(|(_, r)| r.as_str()), Some("metric not handled"), "{skipped:?}");
        assert!(notes.iter().any(|n| n.contains("unsubscribed")), "{notes:?}");
        let c = env.kommo.contact(env.contact).unwrap();
        assert!(c.embedded.tags.iter().any(|t| t.name == "unsubscribed"), "{:?}", c.embedded.tags);
        use kommo_api::CustomFieldsExt as _;
        let checked = c
            .custom_field(env.unsub_field)
            .and_then(|v| v.first().and_then(kommo_api::custom_fields::FieldValue::as_bool));
        assert_eq!(checked, Some(true));

        // a forged signature is refused at the router and never stored
        let mut forged = env.cio.webhook(&Identifier::email(EMAIL), Metric::Opened).build();
        for (k, v) in &mut forged.headers {
            if k.eq_ignore_ascii_case("x-cio-signature") {
                *v = "00".repeat(32);
            }
        }
        assert_eq!(env.deliver_cio(&forged).await, 401);
        // and a wrong Kommo path token too
        let st = env
            .http
            .post(format!("http://{}/hooks/kommo/wrong", env.addr))
            .body(env.kommo.webhook_for_lead_add(lead))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16();
        assert_eq!(st, 401);
        // Customer.io retries a failed reporting delivery for up to 7 days (api-notes/customerio.md), holding later
        // events back meanwhile: one signed 6 days ago is accepted and applied by the flow's default window
        let six_days_ago = chrono::Utc::now().timestamp() - 6 * 24 * 3600;
        let late = env
            .cio
            .webhook(&Identifier::email(EMAIL), Metric::Clicked)
            .subject("Late retry")
            .href("https://example.com/late")
            .signed_at(six_days_ago)
            .build();
        assert_eq!(env.deliver_cio(&late).await, 200);
        env.drain().await;
        let notes = env.notes(lead);
        assert_eq!(notes.len(), 4, "{notes:?}");
        assert!(notes.iter().any(|n| n.contains("https://example.com/late")), "{notes:?}");
        env.finish().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_opens_within_48h_make_exactly_one_call_task() {
    on_both_stores(|h| async move {
        let clock = ManualClock::starting_now();
        let env = env(h, Arc::new(clock.clone())).await;
        let lead = env.seed_lead("Hot lead", 8_000);
        env.deliver_kommo(&env.kommo.webhook_for_lead_add(lead)).await;
        env.drain().await;
        let t0 = chrono::Utc::now().timestamp();
        for i in 0..10 {
            assert_eq!(env.deliver_cio(&env.open(t0 + i * 3600)).await, 200);
            env.drain().await;
            clock.advance(Duration::from_secs(2 * 3600)); // 10 opens over 20 hours
            if i == 1 {
                assert!(env.kommo.tasks_for(EntityType::Leads, lead.get()).is_empty(), "two opens: no task yet");
            }
        }
        let tasks = env.kommo.tasks_for(EntityType::Leads, lead.get());
        assert_eq!(tasks.len(), 1, "{tasks:?}");
        assert_eq!(tasks[0].responsible_user_id, Some(env.user), "for the deal's owner");
        assert_eq!(tasks[0].task_type_id, Some(1), "a call");
        assert_eq!(env.notes(lead).len(), 10, "one note per open");
        assert_eq!(env.flow.stats().tasks_created.load(Ordering::Relaxed), 1);
        env.finish().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opens_spread_over_three_days_make_no_task() {
    on_both_stores(|h| async move {
        let clock = ManualClock::starting_now();
        let env = env(h, Arc::new(clock.clone())).await;
        let lead = env.seed_lead("Lukewarm lead", 3_000);
        env.deliver_kommo(&env.kommo.webhook_for_lead_add(lead)).await;
        env.drain().await;
        let t0 = chrono::Utc::now().timestamp();
        for i in 0..3 {
            env.deliver_cio(&env.open(t0 + i * 30 * 3600)).await;
            env.drain().await;
            clock.advance(Duration::from_secs(30 * 3600)); // opens at 0 h, 30 h, 60 h
        }
        assert!(env.kommo.tasks_for(EntityType::Leads, lead.get()).is_empty());
        assert_eq!(env.notes(lead).len(), 3);
        env.finish().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_identifies_open_deals_idempotently() {
    let env = env(Harness::sqlite(), Arc::new(SystemClock)).await;
    let a = env.seed_lead("Open A", 100);
    let other = env.kommo.seed_contact("Cy Other", Some("cy@other.example"), None);
    let _b = env.kommo.seed_lead(SeedLead::new("Open B").contact(other).stage(env.pipeline, env.stages[1]));
    let _won = env.kommo.seed_lead(SeedLead::new("Won C").contact(other).stage(env.pipeline, StatusId::WON));
    let mut last = (0, 0);
    let n = env.flow.backfill(&env.store, |d, t| last = (d, t)).await.unwrap();
    assert_eq!(n, 2);
    assert_eq!(last, (2, 2));
    env.drain().await;
    assert_eq!(env.cio.people().len(), 2);
    assert_eq!(env.person().unwrap().attributes["kommo_lead_id"], a.to_string());
    let again = env.flow.backfill(&env.store, |_, _| {}).await.unwrap();
    assert_eq!(again, 0, "same dedup keys: nothing new");
    env.drain().await;
    assert!(env.cio.events().is_empty(), "backfill identifies only: no kommo_lead_created for old deals");
    // the two events were ingested together, so they are usually claimed (and identified) as one batch; either
    // way each person is identified exactly once
    assert_eq!(identifies_sent(&env.cio), 2, "each person identified once");
    env.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_config_fails_start_up_naming_the_entry() {
    let kommo = FakeKommo::start().await.unwrap();
    let cio = FakeCustomerIo::start().await.unwrap();
    let _ = kommo.seed_custom_field(EntityType::Contacts, "Email unsubscribed", FieldType::Checkbox, None, &[]);
    let mut cfg = config(kommo.base_url().as_str());
    cfg.unsubscribe.contact_field = Some("Email unsubscribd".into());
    cfg.mapping = sync_core::mapping::Mapping::from_toml(
        r#"
        [[fields]]
        source = "prce"
        target = "deal_value"
        "#,
    )
    .unwrap();
    let flow = KommoCustomerIo::new(cfg, kommo.client(), cio.client());
    let err = flow.validate().await.unwrap_err().to_string();
    assert!(err.contains("Email unsubscribd") && err.contains("did you mean `Email unsubscribed`"), "{err}");
    assert!(err.contains("prce") && err.contains("price"), "{err}");
}

#[test]
fn the_example_config_parses() {
    let cfg =
        Config::from_toml(include_str!("../../examples/config/kommo-customerio.toml")).expect("example config parses");
    assert_eq!(cfg.engagement.opens, 3);
    assert_eq!(cfg.engagement.window_hours, 48);
    assert_eq!(cfg.unsubscribe.contact_tag.as_deref(), Some("unsubscribed"));
    assert!(cfg.mapping.fields.iter().any(|f| f.target == "deal_value"));
}

/// A transient Kommo failure while the responsible user is looked up is retried: the attribute is the user's
/// name, never the numeric id (that is only for a user Kommo says does not exist).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transient_users_failure_is_retried_not_written_as_the_numeric_id() {
    let env = env(Harness::sqlite(), Arc::new(SystemClock)).await;
    let lead = env.seed_lead("Owner lookup", 700);
    // more 503s than one handler run's client retries: the handler run fails and the engine retries it
    let fault = api_core::fake::Fault::json(503, &serde_json::json!({"title": "Service Unavailable", "status": 503}));
    env.kommo.faults().inject(Some(reqwest::Method::GET), "/api/v4/users/", fault, 8);
    env.deliver_kommo(&env.kommo.webhook_for_lead_add(lead)).await;
    env.drain().await;
    assert_eq!(env.person().expect("identified").attributes["responsible_name"], "Rita Responsible");
    assert_eq!(env.events("kommo_lead_created").len(), 1);
    env.finish().await;
}

/// A Kommo payload without any time (the reduced Digital Pipeline shape): the event's time is the first
/// attempt's, journaled, so a retry after the track call was committed re-sends the same event id (and
/// Customer.io keeps one event) even when the clock moved in between.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payload_without_time_keeps_one_event_id_across_attempts() {
    let clock = ManualClock::starting_now();
    let env = env(Harness::sqlite(), Arc::new(clock.clone())).await;
    let lead = env.seed_lead("No time", 300);
    let body = env.kommo.webhook_for_lead_add(lead);
    let time_keys = ["date_create", "last_modified", "created_at", "updated_at"];
    let timeless: Vec<&str> = body
        .split('&')
        .filter(|pair| {
            let key = pair.split('=').next().unwrap_or_default().replace("%5B", "[").replace("%5D", "]");
            !time_keys.iter().any(|t| key.ends_with(&format!("[{t}]")))
        })
        .collect();
    let timeless = timeless.join("&");
    assert!(kommo_api::webhook::parse(timeless.as_bytes()).unwrap().events[0].time().is_none());
    // the track call commits but its answer is lost, and the client's own retry gets a 503: the handler run fails
    let post = Some(reqwest::Method::POST);
    env.cio.faults().inject(post.clone(), "/api/v1/customers/", api_core::fake::Fault::DropAfterCommit, 1);
    let unavailable = api_core::fake::Fault::json(503, &serde_json::json!({"meta": {"error": "try later"}}));
    env.cio.faults().inject(post, "/api/v1/customers/", unavailable, 1);
    assert_eq!(env.deliver_kommo(&timeless).await, 200);
    let mut tries = 0;
    while env.cio.log().count(&reqwest::Method::POST, "/api/v1/customers/") < 2 {
        tries += 1;
        assert!(tries < 3000, "the first track call was never made");
        tokio::time::sleep(Duration::from_millis(10)).await; // a real server answering, not a timed assertion
    }
    // the failed attempt is rescheduled on the manual clock only once it has finished: wait for that, then move the
    // clock past the backoff (advancing while the attempt still runs would leave its retry due in the future)
    let store = env.store.clone();
    let finished = wait_until(30, || {
        let store = store.clone();
        async move {
            let s = store.status().await.unwrap();
            !s.depth.iter().any(|((_, st), n)| *n > 0 && matches!(st, State::Running))
        }
    })
    .await;
    assert!(finished, "the failed attempt did not finish: {:?}", env.store.status().await.unwrap());
    clock.advance(Duration::from_secs(90)); // the retry runs a minute and a half later
    env.drain().await;
    let events = env.events("kommo_lead_created");
    assert_eq!(events.len(), 1, "one event in Customer.io: {events:?}");
    assert_eq!(env.cio.log().count(&reqwest::Method::POST, "/api/v1/customers/"), 3, "the handler was retried");
    env.finish().await;
}

/// Kommo does not order its deliveries: a `leads[add]` that arrives after a newer stage change of the same lead is
/// stale for the attributes (skipped by the watermark), yet the person must still get `kommo_lead_created_at`
/// (every identify carries the lead's creation time), and the lead's one `kommo_lead_created` event is tracked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lead_add_delivered_after_a_newer_stage_change_still_sets_the_creation_time() {
    let env = env(Harness::sqlite(), Arc::new(SystemClock)).await;
    let lead = env.seed_lead("Late add", 2_500);
    let add = env.kommo.webhook_for_lead_add(lead);
    env.kommo.advance_clock(5);
    env.kommo.set_lead_status(lead, env.pipeline, env.stages[1]);
    let status = env.kommo.webhook_for_lead_status(lead);
    assert_eq!(env.deliver_kommo(&status).await, 200);
    env.drain().await;
    assert_eq!(env.deliver_kommo(&add).await, 200);
    env.drain().await;
    let created_at = env.kommo.lead(lead).unwrap().created_at.expect("seeded with a creation time");
    let p = env.person().expect("identified");
    assert_eq!(p.attributes.get("kommo_lead_created_at"), Some(&serde_json::json!(created_at)), "{p:?}");
    assert_eq!(p.attributes["kommo_stage"], "In contact", "the newer stage stays");
    assert_eq!(env.events("kommo_lead_created").len(), 1);
    assert_eq!(env.events("kommo_stage_changed").len(), 1);
    env.finish().await;
}

/// Identifies Customer.io received: v1 `PUT /api/v1/customers/{id}` plus v2 `identify` operations in batches.
fn identifies_sent(cio: &FakeCustomerIo) -> usize {
    let v1 = cio.log().count(&reqwest::Method::PUT, "/api/v1/customers/");
    v1 + batch_ops(&cio.log().requests()).iter().filter(|op| op["action"] == "identify").count()
}

/// Every operation of every `POST /api/v2/batch` body in `log`, in order.
fn batch_ops(log: &[api_core::fake::LoggedRequest]) -> Vec<serde_json::Value> {
    log.iter()
        .filter(|r| r.method == reqwest::Method::POST && r.path == "/api/v2/batch")
        .flat_map(|r| r.json()["batch"].as_array().cloned().unwrap_or_default())
        .collect()
}

/// `n` leads, each with its own contact (`person{i}@client.example`), in the first stage.
fn seed_people(env: &Env, n: usize) -> Vec<(LeadId, String)> {
    (0..n)
        .map(|i| {
            let email = format!("person{i}@client.example");
            let contact = env.kommo.seed_contact(&format!("Person {i}"), Some(&email), None);
            let lead = env.kommo.seed_lead(
                SeedLead::new(format!("Deal {i}"))
                    .price(1_000 + i64::try_from(i).unwrap())
                    .responsible(env.user)
                    .contact(contact)
                    .stage(env.pipeline, env.stages[0]),
            );
            (lead, email)
        })
        .collect()
}

/// Batches (issue 25): 12 `leads[add]` events ready together are read from Kommo in one
/// `GET /api/v4/leads?filter[id][]…&with=contacts` (kommo.md "Leads list": up to 250 ids, `with`), their contacts in
/// one `GET /api/v4/contacts?filter[id][]…` and the responsible user once, then written to Customer.io in two Track
/// v2 requests (customerio.md §2: `POST /api/v2/batch` with `{"batch":[op, …]}`, types mixed, ≤ 500 KB): first the
/// 12 `person`/`identify` operations (attributes and the event time as `timestamp`, v2's `_timestamp`), then the 12
/// `person`/`event` operations with their deduplicating `id`. No v1 call. Each person and event is checked field
/// by field, and every event is done on its first attempt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_lead_events_are_read_in_one_kommo_request_and_written_in_two_v2_batches() {
    on_both_stores(|h| async move {
        let mut env = env(h, Arc::new(SystemClock)).await;
        env.workers.take().unwrap().shutdown().await;
        let people = seed_people(&env, 12);
        for (lead, _) in &people {
            assert_eq!(env.deliver_kommo(&env.kommo.webhook_for_lead_add(*lead)).await, 200);
        }
        let (k0, c0) = (env.kommo.log().requests().len(), env.cio.log().requests().len());
        env.workers = Some(worker::start(env.engine.clone(), worker_config()));
        env.drain().await;

        let kommo: Vec<_> = env.kommo.log().requests()[k0..].to_vec();
        let lead_gets: Vec<_> =
            kommo.iter().filter(|r| r.method == reqwest::Method::GET && r.path == "/api/v4/leads").collect();
        assert_eq!(lead_gets.len(), 1, "{:?}", kommo.iter().map(|r| &r.path).collect::<Vec<_>>());
        let url =
            reqwest::Url::parse(&format!("http://x/?{}", lead_gets[0].query.as_deref().unwrap_or_default())).unwrap();
        let pairs: Vec<(String, String)> = url.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
        let ids: Vec<String> =
            pairs.iter().filter(|(k, _)| k.starts_with("filter[id][")).map(|(_, v)| v.clone()).collect();
        assert_eq!(ids, people.iter().map(|p| p.0.to_string()).collect::<Vec<_>>());
        assert!(pairs.contains(&("with".into(), "contacts".into())), "{pairs:?}");
        assert!(!kommo.iter().any(|r| r.path.starts_with("/api/v4/leads/")), "no lead read one by one");
        let gets = |p: &str| kommo.iter().filter(|r| r.method == reqwest::Method::GET && r.path.starts_with(p)).count();
        assert_eq!((gets("/api/v4/contacts"), gets("/api/v4/users")), (1, 1));

        let cio: Vec<_> = env.cio.log().requests()[c0..].to_vec();
        assert!(!cio.iter().any(|r| r.path.starts_with("/api/v1/")), "no v1 call");
        let posts: Vec<_> = cio.iter().filter(|r| r.path == "/api/v2/batch").collect();
        assert_eq!(posts.len(), 2, "one request of identifies, one of events");
        let identifies = posts[0].json()["batch"].as_array().cloned().unwrap();
        let events = posts[1].json()["batch"].as_array().cloned().unwrap();
        assert_eq!((identifies.len(), events.len()), (12, 12));
        for (i, (lead, email)) in people.iter().enumerate() {
            let op = identifies.iter().find(|op| op["identifiers"]["email"] == email.as_str()).expect("identified");
            let time = op["timestamp"].as_i64().expect("the event time as `timestamp`");
            let created_at = env.kommo.lead(*lead).unwrap().created_at.unwrap();
            let mut attrs = op["attributes"].clone();
            let value = attrs.as_object_mut().unwrap().remove("deal_value").unwrap();
            assert_eq!(value.as_f64(), Some(1_000.0 + i as f64));
            assert_eq!(
                op,
                &serde_json::json!({"type": "person", "action": "identify", "identifiers": {"email": email},
                    "timestamp": time, "attributes": op["attributes"]}),
            );
            assert_eq!(
                attrs,
                serde_json::json!({"name": format!("Person {i}"), "kommo_deal_name": format!("Deal {i}"),
                    "kommo_stage": "New", "kommo_pipeline": "Sales", "responsible_name": "Rita Responsible",
                    "kommo_lead_id": lead.to_string(), "kommo_lead_created_at": created_at}),
            );
            let ev = events.iter().find(|op| op["identifiers"]["email"] == email.as_str()).expect("tracked");
            assert_eq!(ev["type"], "person");
            assert_eq!(ev["action"], "event");
            assert_eq!(ev["name"], "kommo_lead_created");
            assert_eq!(ev["timestamp"], time);
            assert_eq!(ev["attributes"]["lead_id"], lead.get());
            assert_eq!(ev["attributes"]["lead_name"], format!("Deal {i}"));
            assert_eq!(ev["attributes"]["stage"], "New");
            assert_eq!(ev["attributes"]["pipeline"], "Sales");

            let who = Identifier::email(email.as_str());
            let person = env.cio.person(&who).expect("person in Customer.io");
            assert_eq!(person.attributes["name"], format!("Person {i}"));
            assert_eq!(person.attributes["kommo_stage"], "New");
            assert_eq!(person.attributes["kommo_lead_id"], lead.to_string());
            let stored = env.cio.events_for(&who);
            assert_eq!(stored.len(), 1, "{stored:?}");
            assert_eq!(stored[0].id.as_deref(), ev["id"].as_str(), "tracked with its deterministic id");
        }
        let done = env.store.list(State::Done, 100).await.unwrap();
        assert_eq!(done.len(), 12);
        assert!(done.iter().all(|r| r.attempts == 1), "{done:?}");
        assert_eq!(env.flow.stats().identified.load(Ordering::Relaxed), 12);
        assert_eq!(env.flow.stats().events_tracked.load(Ordering::Relaxed), 12);
        env.finish().await;
    })
    .await;
}

/// A batch request that fails as a whole (503 on both of the client's attempts: customerio.md "Retries": 5xx is
/// retried) leaves its events to be retried, each alone (through v1, as a lone event is handled); the journal of
/// the identifies that did succeed in an earlier batch keeps them from being sent twice. Here the identify batch
/// goes through and the event batch fails: every event is then tracked once by v1, no identify is repeated, and
/// every person has exactly one event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_event_batch_is_retried_alone_without_repeating_the_identifies() {
    on_both_stores(|h| async move {
        let mut env = env(h, Arc::new(SystemClock)).await;
        env.workers.take().unwrap().shutdown().await;
        let people = seed_people(&env, 5);
        for (lead, _) in &people {
            assert_eq!(env.deliver_kommo(&env.kommo.webhook_for_lead_add(*lead)).await, 200);
        }
        // the first batch (identifies) passes; the second (events) fails on both attempts
        let post = Some(reqwest::Method::POST);
        env.cio.faults().inject(post.clone(), "/api/v2/batch", api_core::fake::Fault::Delay(Duration::ZERO), 1);
        let unavailable = api_core::fake::Fault::json(503, &serde_json::json!({"meta": {"error": "unavailable"}}));
        env.cio.faults().inject(post, "/api/v2/batch", unavailable, 2);
        let c0 = env.cio.log().requests().len();
        env.workers = Some(worker::start(env.engine.clone(), worker_config()));
        env.drain().await;
        let cio: Vec<_> = env.cio.log().requests()[c0..].to_vec();
        let ops = batch_ops(&cio);
        assert_eq!(ops.iter().filter(|op| op["action"] == "identify").count(), 5, "identified in the batch");
        assert_eq!(cio.iter().filter(|r| r.method == reqwest::Method::PUT).count(), 0, "no identify repeated");
        let v1_tracks = cio.iter().filter(|r| r.method == reqwest::Method::POST && r.path.ends_with("/events")).count();
        assert_eq!(v1_tracks, 5, "each event retried alone once");
        for (lead, email) in &people {
            let stored = env.cio.events_for(&Identifier::email(email.as_str()));
            assert_eq!(stored.len(), 1, "{lead}: {stored:?}");
            assert_eq!(stored[0].name, "kommo_lead_created");
        }
        let done = env.store.list(State::Done, 100).await.unwrap();
        assert_eq!(done.len(), 5);
        assert!(done.iter().all(|r| r.attempts == 2), "{done:?}");
        assert_eq!(env.store.status().await.unwrap().dead, 0);
        env.finish().await;
    })
    .await;
}

/// Customer.io refuses one operation of a batch with a 207 (customerio.md §2: "At least one object in the batch
/// was invalid; all other requests are accepted", body `{"errors":[{"batch_index":…,"reason":…,"field":…,
/// "message":…}]}`): that event fails alone (dead letter with the vendor's reason, not retried: the same operation
/// would be refused again) and gets no event; its neighbours are identified and tracked on their first attempt.
/// The 207 comes from wiremock: the fake refuses only what the client already refuses before sending.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operation_refused_in_a_207_fails_alone_and_its_neighbours_complete() {
    use wiremock::{Mock, MockServer, ResponseTemplate, matchers};
    let mock = MockServer::start().await;
    let refused = serde_json::json!({"errors": [{"batch_index": 1, "reason": "invalid", "field": "attributes",
        "message": "attribute value is not allowed"}]});
    Mock::given(matchers::method("POST"))
        .and(matchers::path("/api/v2/batch"))
        .respond_with(ResponseTemplate::new(207).set_body_json(&refused))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&mock)
        .await;
    Mock::given(matchers::method("POST"))
        .and(matchers::path("/api/v2/batch"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({})))
        .mount(&mock)
        .await;
    let client = customerio_api::Client::builder()
        .base_url(mock.uri())
        .track_credentials("site-1", api_core::Token::new("track-key"))
        .app_api_key(api_core::Token::new("app-key"))
        .unlimited()
        .build()
        .unwrap();
    let mut env = env_with(Harness::sqlite(), Arc::new(SystemClock), Some(client)).await;
    env.workers.take().unwrap().shutdown().await;
    let people = seed_people(&env, 4);
    for (lead, _) in &people {
        assert_eq!(env.deliver_kommo(&env.kommo.webhook_for_lead_add(*lead)).await, 200);
    }
    env.workers = Some(worker::start(env.engine.clone(), worker_config()));
    env.drain().await;

    let received = mock.received_requests().await.unwrap();
    assert!(received.iter().all(|r| r.url.path() == "/api/v2/batch"), "no v1 call, no retry alone");
    assert_eq!(received.len(), 2);
    let identifies: serde_json::Value = serde_json::from_slice(&received[0].body).unwrap();
    let events: serde_json::Value = serde_json::from_slice(&received[1].body).unwrap();
    let who = |v: &serde_json::Value| -> Vec<String> {
        v["batch"]
            .as_array()
            .unwrap()
            .iter()
            .map(|op| op["identifiers"]["email"].as_str().unwrap().to_owned())
            .collect()
    };
    let sent = who(&identifies);
    assert_eq!(sent.len(), 4);
    let refused_email = sent[1].clone();
    let mut rest = sent.clone();
    rest.remove(1);
    assert_eq!(who(&events), rest, "no event for the refused person");
    assert!(events["batch"].as_array().unwrap().iter().all(|op| op["action"] == "event"));

    let dead = env.store.list(State::Dead, 10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].attempts, 1, "not retried");
    let reason = dead[0].last_error.clone().unwrap_or_default();
    assert!(reason.contains("attribute value is not allowed") && reason.contains("attributes"), "{reason}");
    let refused_lead = people.iter().find(|p| p.1 == refused_email).unwrap().0;
    assert!(dead[0].dedup_key.contains(&format!(":{refused_lead}:")), "{dead:?}");
    let done = env.store.list(State::Done, 100).await.unwrap();
    assert_eq!(done.len(), 3);
    assert!(done.iter().all(|r| r.attempts == 1), "neighbours done on their first attempt: {done:?}");
    assert_eq!(env.flow.stats().identified.load(Ordering::Relaxed), 3);
    assert_eq!(env.flow.stats().events_tracked.load(Ordering::Relaxed), 3);
    env.finish().await;
}

/// An operation that breaks a documented limit (customerio.md §1 limits: an attribute value ≤ 1,000 bytes; here a
/// 1,200-character deal name mapped to `kommo_deal_name`) is not sent: its event fails alone (dead letter naming the
/// limit; the same operation would break it again), and the batch carries its neighbours, done on their first
/// attempt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operation_over_a_documented_limit_is_not_sent_and_fails_alone() {
    let mut env = env(Harness::sqlite(), Arc::new(SystemClock)).await;
    env.workers.take().unwrap().shutdown().await;
    let mut people = seed_people(&env, 3);
    let long = "x".repeat(1_200);
    let contact = env.kommo.seed_contact("Long Deal", Some("long@client.example"), None);
    let lead = env.kommo.seed_lead(
        SeedLead::new(long.clone()).responsible(env.user).contact(contact).stage(env.pipeline, env.stages[0]),
    );
    people.push((lead, "long@client.example".into()));
    for (lead, _) in &people {
        assert_eq!(env.deliver_kommo(&env.kommo.webhook_for_lead_add(*lead)).await, 200);
    }
    let c0 = env.cio.log().requests().len();
    env.workers = Some(worker::start(env.engine.clone(), worker_config()));
    env.drain().await;

    let cio: Vec<_> = env.cio.log().requests()[c0..].to_vec();
    let ops = batch_ops(&cio);
    assert!(!ops.iter().any(|op| op["identifiers"]["email"] == "long@client.example"), "not sent");
    assert_eq!(ops.iter().filter(|op| op["action"] == "identify").count(), 3);
    assert_eq!(ops.iter().filter(|op| op["action"] == "event").count(), 3);
    assert!(!cio.iter().any(|r| r.path.starts_with("/api/v1/")), "nothing retried alone");
    assert!(env.cio.person(&Identifier::email("long@client.example")).is_none());
    for (_, email) in &people[..3] {
        assert_eq!(env.cio.events_for(&Identifier::email(email.as_str())).len(), 1);
    }
    let dead = env.store.list(State::Dead, 10).await.unwrap();
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0].attempts, 1, "not retried");
    assert!(dead[0].dedup_key.contains(&format!(":{lead}:")), "{dead:?}");
    assert!(dead[0].last_error.as_deref().unwrap_or_default().contains("Customer.io"), "{dead:?}");
    let done = env.store.list(State::Done, 100).await.unwrap();
    assert_eq!(done.len(), 3);
    assert!(done.iter().all(|r| r.attempts == 1), "{done:?}");
    env.finish().await;
}
