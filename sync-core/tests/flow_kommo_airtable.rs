//! The Kommo ↔ Airtable flow end to end: real HTTP deliveries to the engine's router, workers, and the Kommo and
//! Airtable fakes, on SQLite and (with `SYNC_TEST_POSTGRES_URL`) PostgreSQL.
#![cfg(feature = "kommo-airtable")]
#![allow(clippy::print_stdout, missing_docs, clippy::too_many_lines, clippy::cast_precision_loss)]

mod common;

use std::{net::SocketAddr, sync::Arc, sync::atomic::Ordering, time::Duration};

use airtable_client::fake::{FakeAirtable, FakeBase, FakeConfig as AtConfig, FakeUser, FieldSpec};
use common::{Harness, wait_until};
use kommo_api::{
    CustomFieldId, EntityType, FieldType, LeadId, StatusId,
    fake::{FakeConfig as KmConfig, FakeKommo, SeedLead},
};
use serde_json::json;
use sync_core::{
    Engine, State, Store, SystemClock, WorkerConfig, WorkerHandle,
    flows::kommo_airtable::{Config, KommoAirtable},
    server, worker,
};

const TABLE: &str = "Client Onboarding";
const PATH_TOKEN: &str = "s3cret-path-token";

struct Env {
    kommo: FakeKommo,
    airtable: FakeAirtable,
    base: FakeBase,
    harness: Option<Harness>,
    store: Store,
    flow: KommoAirtable,
    engine: Engine,
    workers: Option<WorkerHandle>,
    addr: SocketAddr,
    http: reqwest::Client,
    ncd: CustomFieldId,
    contact: kommo_api::ContactId,
    company: kommo_api::CompanyId,
    user: kommo_api::UserId,
    _server: tokio::sync::oneshot::Sender<()>,
}

fn config(base_id: &str, kommo_url: &str) -> Config {
    Config::from_toml(&format!(
        r#"
        [kommo]
        base_url = "{kommo_url}"
        [airtable]
        base_id = "{base_id}"
        [trigger]
        exclude_tags = ["test", "internal"]
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

async fn env(harness: Harness, edit: impl FnOnce(&mut Config)) -> Env {
    let kommo = FakeKommo::start_with(KmConfig { rate_limit: None, ..KmConfig::default() }).await.unwrap();
    let airtable = FakeAirtable::start_with(AtConfig::unlimited()).await.unwrap();
    let base = airtable.base();
    let _ = base.add_table_with(
        TABLE,
        vec![
            FieldSpec::new("Deal Name", "singleLineText"),
            FieldSpec::new("Kommo Deal ID", "singleLineText"),
            FieldSpec::single_select("Status", &["Not Started", "In Progress", "Done"]),
            FieldSpec::new("Deal Value", "number"),
            FieldSpec::new("Responsible", "singleLineText"),
            FieldSpec::new("Client Name", "singleLineText"),
            FieldSpec::new("Email", "email"),
            FieldSpec::new("Phone", "phoneNumber"),
            FieldSpec::new("Company", "singleLineText"),
            FieldSpec::new("Next Contact Date", "date"),
            // unmapped unless a test maps it (two-way text: see the Airtable → Kommo batch test)
            FieldSpec::new("Onboarding Notes", "multilineText"),
        ],
    );
    let ncd = kommo.seed_custom_field(EntityType::Leads, "Next Contact Date", FieldType::Date, None, &[]);
    let _ = kommo.seed_custom_field(EntityType::Leads, "Onboarding Notes", FieldType::Text, None, &[]);
    let user = kommo.seed_user("Rita Responsible", "rita@example.com");
    let contact = kommo.seed_contact("Ada Client", Some("ada@client.example"), Some("+1 555 0100"));
    let company = kommo.seed_company("Client Corp");

    let store = harness.open(Arc::new(SystemClock)).await;
    let mut cfg = config(base.id().as_str(), kommo.base_url().as_str());
    edit(&mut cfg);
    let kommo_client = kommo.client_builder().rate_limit(1000).build().unwrap();
    let airtable_client = airtable
        .client_builder()
        .requests_per_second_per_base(None)
        .requests_per_second_per_token(None)
        .penalty_after_429(Duration::from_millis(300))
        .build()
        .unwrap();
    let flow = KommoAirtable::new(cfg, kommo_client, airtable_client).unwrap();
    flow.validate().await.expect("valid mapping");
    let engine = Engine::new(store.clone(), vec![Arc::new(flow.clone())]).unwrap();
    let (router, _stats) = server::router(engine.clone(), flow.routes(api_core::Token::new(PATH_TOKEN))).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server::serve(listener, router, async {
        let _ = rx.await;
    }));
    flow.ensure_webhook(&store, &format!("http://{addr}/hooks/airtable-ping")).await.unwrap();
    let workers = worker::start(engine.clone(), worker_config());
    Env {
        kommo,
        airtable,
        base,
        harness: Some(harness),
        store,
        flow,
        engine,
        workers: Some(workers),
        addr,
        http: reqwest::Client::new(),
        ncd,
        contact,
        company,
        user,
        _server: tx,
    }
}

impl Env {
    /// Sets the lead's "Next Contact Date" in Kommo (Unix seconds, a date at midnight).
    fn set_ncd(&self, lead: LeadId, unix: i64) {
        self.kommo.update_lead(
            lead,
            &json!({"custom_fields_values": [{"field_id": self.ncd.get(), "values": [{"value": unix}]}]}),
        );
    }

    /// The lead's "Next Contact Date" in Kommo (Unix seconds).
    fn kommo_ncd(&self, lead: LeadId) -> Option<i64> {
        use kommo_api::CustomFieldsExt as _;
        self.kommo.lead(lead).and_then(|l| {
            l.custom_field(self.ncd).and_then(|v| v.first().and_then(kommo_api::custom_fields::FieldValue::as_unix))
        })
    }

    fn seed_won_lead(&self, name: &str, price: i64) -> LeadId {
        let pipeline = self.kommo.main_pipeline();
        self.kommo.seed_lead(
            SeedLead::new(name)
                .price(price)
                .responsible(self.user)
                .contact(self.contact)
                .company(self.company)
                .stage(pipeline, StatusId::WON),
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

    /// Waits until nothing is queued or running (the Airtable pings are async, so callers also wait on outcomes).
    async fn drain(&self) {
        self.drain_within(60).await;
    }

    async fn drain_within(&self, secs: u64) {
        if std::env::var("FLOW_TEST_VERBOSE").is_ok() {
            let store = self.store.clone();
            tokio::spawn(async move {
                let t = std::time::Instant::now();
                loop {
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    println!("{:>5.1}s {:?}", t.elapsed().as_secs_f64(), store.status().await.map(|s| s.depth));
                }
            });
        }
        let store = self.store.clone();
        let ok = wait_until(secs, || {
            let store = store.clone();
            async move {
                let s = store.status().await.unwrap();
                !s.depth.iter().any(|((_, st), n)| *n > 0 && matches!(st, State::Queued | State::Running))
            }
        })
        .await;
        assert!(ok, "queue did not drain: {:?}", self.store.status().await.unwrap());
    }

    /// Waits until `n` Airtable record changes are finished (done, skipped or dead), then for the queue to drain:
    /// the pings that announce them are sent by the fake in the background and may still be on their way.
    async fn changes_finished(&self, n: i64) {
        let store = self.store.clone();
        let ok = wait_until(60, || {
            let store = store.clone();
            async move {
                let s = store.status().await.unwrap();
                let of = |st: State| s.depth.get(&("airtable".to_owned(), st)).copied().unwrap_or(0);
                of(State::Done) + of(State::Dead) >= n
            }
        })
        .await;
        assert!(ok, "{n} record changes not finished: {:?}", self.store.status().await.unwrap());
        self.drain().await;
    }

    fn records(&self) -> Vec<airtable_client::Record> {
        self.base.records(TABLE)
    }

    fn notes(&self, lead: LeadId) -> Vec<String> {
        self.kommo
            .notes_for(EntityType::Leads, lead.get())
            .into_iter()
            .filter_map(|n| n.text().map(str::to_owned))
            .collect()
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
async fn won_deal_creates_one_record_status_only_on_create_and_status_change_adds_one_note() {
    on_both_stores(|h| async move {
        let env = env(h, |_| {}).await;
        let lead = env.seed_won_lead("Website redesign", 12_000);
        let status_hook = env.kommo.webhook_for_lead_status(lead);
        assert_eq!(env.deliver_kommo(&status_hook).await, 200);
        for _ in 0..5 {
            assert_eq!(env.deliver_kommo(&status_hook).await, 200, "redelivery acknowledged");
        }
        // the update webhook Kommo sends for the same change collapses with the status one
        assert_eq!(env.deliver_kommo(&env.kommo.webhook_for_lead_update(lead)).await, 200);
        env.drain().await;
        let recs = env.records();
        assert_eq!(recs.len(), 1, "one record for one deal");
        let f = &recs[0].fields;
        assert_eq!(f.get_str("Kommo Deal ID"), Some(lead.to_string().as_str()));
        assert_eq!(f.get_str("Deal Name"), Some("Website redesign"));
        assert_eq!(f.get_f64("Deal Value"), Some(12_000.0));
        assert_eq!(f.get_str("Client Name"), Some("Ada Client"));
        assert_eq!(f.get_str("Email"), Some("ada@client.example"));
        assert_eq!(f.get_str("Company"), Some("Client Corp"));
        assert_eq!(f.get_str("Responsible"), Some("Rita Responsible"));
        assert_eq!(f.get_str("Status"), Some("Not Started"));
        assert_eq!(
            env.store.id_get("airtable", "onboarding", &lead.to_string()).await.unwrap().as_deref(),
            Some(recs[0].id.as_str())
        );

        // someone moves the status in Airtable: exactly one note, naming who
        let editor = FakeUser::with_email("olivia@agency.example");
        env.base.user_edit(TABLE, &recs[0].id, json!({"Status": "In Progress"}), &editor).unwrap();
        let ok = wait_until(60, || async { !env.notes(lead).is_empty() }).await;
        assert!(ok, "a note appears");
        env.drain().await;
        let notes = env.notes(lead);
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(notes[0].starts_with("Onboarding status: In Progress"), "{}", notes[0]);
        assert!(notes[0].contains("olivia@agency.example"), "{}", notes[0]);

        // a later Kommo update changes mapped fields but never resets the status
        env.kommo.update_lead(lead, &json!({"price": 15_000}));
        assert_eq!(env.deliver_kommo(&env.kommo.webhook_for_lead_update(lead)).await, 200);
        env.drain().await;
        let recs = env.records();
        assert_eq!(recs.len(), 1);
        assert_eq!(recs[0].fields.get_f64("Deal Value"), Some(15_000.0));
        assert_eq!(recs[0].fields.get_str("Status"), Some("In Progress"));
        // our own writes came back as publicApi payloads and made no notes
        tokio::time::sleep(Duration::from_millis(200)).await;
        env.drain().await;
        assert_eq!(env.notes(lead).len(), 1);
        assert_eq!(env.flow.stats().records_created.load(Ordering::Relaxed), 1);
        env.finish().await;
    })
    .await;
}

/// "Status" goes out with the creating write itself (no moment where the record exists without it, which a
/// person or an Airtable automation could fill and we would then overwrite), and a record that already exists
/// for the deal (made by hand, or an id map lost with a database) keeps the status the team gave it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_goes_out_with_the_create_and_an_existing_record_keeps_its_status() {
    let env = env(Harness::sqlite(), |_| {}).await;
    let patches = || env.airtable.count(&reqwest::Method::PATCH, "/v0/");
    let before = patches();
    let fresh = env.seed_won_lead("Fresh deal", 100);
    env.deliver_kommo(&env.kommo.webhook_for_lead_status(fresh)).await;
    env.drain().await;
    assert_eq!(patches() - before, 1, "one write: the upsert");
    let recs = env.base.find(TABLE, "Kommo Deal ID", &fresh.to_string());
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].fields.get_str("Status"), Some("Not Started"));

    let by_hand = env.seed_won_lead("Hand-made deal", 200);
    let someone = FakeUser::with_email("pm@agency.example");
    let rec =
        env.base.user_create(TABLE, json!({"Kommo Deal ID": by_hand.to_string(), "Status": "Done"}), &someone).unwrap();
    env.deliver_kommo(&env.kommo.webhook_for_lead_status(by_hand)).await;
    env.drain().await;
    let recs = env.base.find(TABLE, "Kommo Deal ID", &by_hand.to_string());
    assert_eq!(recs.len(), 1, "adopted, not duplicated");
    assert_eq!(recs[0].id, rec);
    assert_eq!(recs[0].fields.get_str("Status"), Some("Done"), "the team's status is kept");
    assert_eq!(recs[0].fields.get_str("Deal Name"), Some("Hand-made deal"), "mapped fields are filled in");
    assert_eq!(env.store.id_get("airtable", "onboarding", &by_hand.to_string()).await.unwrap(), Some(rec.to_string()));
    env.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn next_contact_date_syncs_both_ways_without_echo() {
    on_both_stores(|h| async move {
        let env = env(h, |_| {}).await;
        let lead = env.seed_won_lead("Annual plan", 5_000);
        env.deliver_kommo(&env.kommo.webhook_for_lead_status(lead)).await;
        env.drain().await;
        let rec = env.records()[0].id.clone();

        // Airtable → Kommo
        let editor = FakeUser::with_email("olivia@agency.example");
        env.base.user_edit(TABLE, &rec, json!({"Next Contact Date": "2026-12-01"}), &editor).unwrap();
        let ok = wait_until(60, || async { env.kommo_ncd(lead) == Some(1_796_083_200) }).await;
        assert!(ok, "Kommo field set to 2026-12-01 (UTC midnight)");
        env.drain().await;

        // Kommo sends leads[update] for our own write: no Airtable write follows
        let patches_before = env.airtable.count(&reqwest::Method::PATCH, "/v0/");
        env.deliver_kommo(&env.kommo.webhook_for_lead_update(lead)).await;
        env.drain().await;
        assert_eq!(env.airtable.count(&reqwest::Method::PATCH, "/v0/"), patches_before, "echo suppressed");
        let skipped = env.store.status().await.unwrap().skipped;
        assert_eq!(
            skipped.get(&("kommo".to_owned(), "no change since the last confirmed sync".to_owned())),
            Some(&1),
            "{skipped:?}"
        );

        // Kommo → Airtable
        env.set_ncd(lead, 1_796_688_000);
        env.deliver_kommo(&env.kommo.webhook_for_lead_update(lead)).await;
        env.drain().await;
        let ok =
            wait_until(60, || async { env.records()[0].fields.get_str("Next Contact Date") == Some("2026-12-08") })
                .await;
        assert!(ok, "Airtable date updated: {:?}", env.records()[0].fields);
        tokio::time::sleep(Duration::from_millis(200)).await;
        env.drain().await;
        // our Airtable write came back as a publicApi payload: no Kommo write for it
        assert_eq!(env.flow.stats().kommo_writes.load(Ordering::Relaxed), 1);
        let skipped = env.store.status().await.unwrap().skipped;
        assert!(
            skipped.get(&("airtable".to_owned(), "echo of our own write".to_owned())).is_some_and(|n| *n >= 1),
            "{skipped:?}"
        );
        assert!(env.notes(lead).is_empty(), "no status change, no note");
        env.finish().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_airtable_change_never_overwrites_a_newer_one() {
    let env = env(Harness::sqlite(), |_| {}).await;
    let lead = env.seed_won_lead("Retainer", 1_000);
    env.deliver_kommo(&env.kommo.webhook_for_lead_status(lead)).await;
    env.drain().await;
    let rec = env.records()[0].id.clone();
    let field = env.base.field_id(TABLE, "Next Contact Date").unwrap();
    let table = env.base.table_id(TABLE).unwrap();
    let webhook = env.base.webhooks()[0].id.clone();
    let payload = |ts: &str, date: &str, n: u64| {
        json!({
            "timestamp": ts,
            "baseTransactionNumber": n,
            "actionMetadata": {"source": "client", "sourceMetadata": {"user": {"id": "usrA", "email": "a@x.example"}}},
            "payloadFormat": "v0",
            "changedTablesById": {table.as_str(): {"changedRecordsById": {rec.as_str(): {
                "current": {"cellValuesByFieldId": {field.as_str(): date}},
                "previous": {"cellValuesByFieldId": {}}
            }}}}
        })
    };
    // the newer change is read first, the older one after it (a reordered feed)
    env.base.push_payload(&webhook, payload("2026-11-20T10:00:05.000Z", "2026-12-24", 900));
    env.base.push_payload(&webhook, payload("2026-11-20T10:00:01.000Z", "2026-12-01", 901));
    env.base.ping(&webhook).await.unwrap();
    env.drain().await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    env.drain().await;
    assert_eq!(env.kommo_ncd(lead), Some(1_798_070_400), "2026-12-24 stays");
    assert_eq!(env.flow.stats().stale_skipped.load(Ordering::Relaxed), 1);
    env.finish().await;
}

/// A payload is a change as it was made, not the record's state: the echo of our write of an older Kommo value can
/// come back after we wrote Kommo's newer value over it. The flow read the lead (B), Kommo changed it (C), our write
/// of B landed after that change (so Airtable stamps it later than C's `updated_at`), then the next event wrote C.
/// B's `publicApi` payload is then neither our last write nor older than the watermark; sent to Kommo it would put
/// B back there and leave Kommo at B and Airtable at C (the chaos soak's `--seed 7` failure). A person's change that
/// our later write overwrote is the same case. Both must leave Kommo and Airtable at C, field by field.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_echo_of_an_older_write_never_reaches_kommo() {
    on_both_stores(|h| async move {
        let env = env(h, |_| {}).await;
        let lead = env.seed_won_lead("Support plan", 2_000);
        // A, then B, then C, each synced to Airtable by the flow (their own payloads are echoes)
        env.set_ncd(lead, 1_796_083_200); // 2026-12-01
        env.deliver_kommo(&env.kommo.webhook_for_lead_status(lead)).await;
        env.drain().await;
        let rec = env.records()[0].id.clone();
        for (unix, day) in [(1_796_688_000, "2026-12-08"), (1_797_292_800, "2026-12-15")] {
            env.set_ncd(lead, unix);
            env.deliver_kommo(&env.kommo.webhook_for_lead_update(lead)).await;
            let ok =
                wait_until(60, || async { env.records()[0].fields.get_str("Next Contact Date") == Some(day) }).await;
            assert!(ok, "Airtable holds {day}: {:?}", env.records()[0].fields);
            env.drain().await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await; // the pings of those writes
        env.drain().await;
        assert_eq!(env.flow.stats().kommo_writes.load(Ordering::Relaxed), 0, "our own echoes went nowhere");
        let gets_before = env.airtable.count(&reqwest::Method::GET, &format!("/v0/{}/", env.base.id().as_str()));

        let field = env.base.field_id(TABLE, "Next Contact Date").unwrap();
        let table = env.base.table_id(TABLE).unwrap();
        let webhook = env.base.webhooks()[0].id.clone();
        let api = env.airtable.api_user();
        let now = || chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let payload = |n: u64, source: serde_json::Value, date: &str, was: &str| {
            json!({
                "timestamp": now(),
                "baseTransactionNumber": n,
                "actionMetadata": source,
                "payloadFormat": "v0",
                "changedTablesById": {table.as_str(): {"changedRecordsById": {rec.as_str(): {
                    "current": {"cellValuesByFieldId": {field.as_str(): date}},
                    "previous": {"cellValuesByFieldId": {field.as_str(): was}}
                }}}}
            })
        };
        // the late echo of our write of B (the shape the fake records for our own writes: `publicApi`, token owner)
        let ours = json!({"source": "publicApi", "sourceMetadata": {"user": {
            "id": api.id, "email": api.email, "permissionLevel": "create", "name": api.name}}});
        env.base.push_payload(&webhook, payload(9_001, ours, "2026-12-08", "2026-12-01"));
        // a person's change that our write of C overwrote
        let person = json!({"source": "client", "sourceMetadata": {"user": {
            "id": "usrOLIVIA0000001", "email": "olivia@agency.example", "permissionLevel": "edit"}}});
        env.base.push_payload(&webhook, payload(9_002, person, "2026-12-31", "2026-12-08"));
        env.base.ping(&webhook).await.unwrap();
        env.drain().await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        env.drain().await;

        assert_eq!(env.kommo_ncd(lead), Some(1_797_292_800), "Kommo keeps 2026-12-15");
        assert_eq!(env.records()[0].fields.get_str("Next Contact Date"), Some("2026-12-15"), "Airtable keeps it");
        assert_eq!(env.flow.stats().kommo_writes.load(Ordering::Relaxed), 0, "no Kommo write for either change");
        let skipped = env.store.status().await.unwrap().skipped;
        assert_eq!(
            skipped.get(&("airtable".to_owned(), "superseded: the record holds our later write".to_owned())),
            Some(&2),
            "{skipped:?}"
        );
        // the records of the changes that would have been written to Kommo are read (one look-up per batch; the
        // two changes may be claimed together or apart)
        let gets = env.airtable.count(&reqwest::Method::GET, &format!("/v0/{}/", env.base.id().as_str()));
        assert!((1..=2).contains(&(gets - gets_before)), "{} record look-ups", gets - gets_before);
        env.finish().await;
    })
    .await;
}

/// The two directions of one lead never run at once: a linked record's Airtable changes carry the lead's ordering
/// key (`lead:<id>`, as its Kommo events do). Kommo changes "Next Contact Date" to 2026-12-08; the flow reads the lead
/// and its write of that value is held 1.5 s at Airtable (arrived, not landed). Meanwhile a person sets 2026-12-24 on
/// the record. Run at once, that change would reach Kommo (the record still held it when read) and our write would
/// then land over it in Airtable: Kommo at 12-24, Airtable at 12-08, and nothing left to bring them together. Ordered,
/// the change waits for the Kommo event, finds the record holding our write and is skipped as superseded: both sides
/// at 12-08 (Airtable cannot write conditionally, so the last write to land wins, on both sides).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_persons_edit_waits_for_the_kommo_event_of_its_lead_in_flight() {
    on_both_stores(|h| async move {
        let env = env(h, |_| {}).await;
        let lead = env.seed_won_lead("Renewal", 3_000);
        env.set_ncd(lead, 1_796_083_200); // 2026-12-01
        env.deliver_kommo(&env.kommo.webhook_for_lead_status(lead)).await;
        env.drain().await;
        tokio::time::sleep(Duration::from_millis(300)).await; // the ping of the creating write
        env.drain().await;
        let rec = env.records()[0].id.clone();

        env.airtable.faults().inject(
            Some(reqwest::Method::PATCH),
            &records_path(&env),
            api_core::fake::Fault::Delay(Duration::from_millis(1_500)),
            1,
        );
        let patches = env.airtable.count(&reqwest::Method::PATCH, &records_path(&env));
        env.set_ncd(lead, 1_796_688_000); // 2026-12-08
        env.deliver_kommo(&env.kommo.webhook_for_lead_update(lead)).await;
        let sent =
            wait_until(30, || async { env.airtable.count(&reqwest::Method::PATCH, &records_path(&env)) > patches })
                .await;
        assert!(sent, "the flow's write of 2026-12-08 is on its way");
        let editor = FakeUser::with_email("olivia@agency.example");
        env.base.user_edit(TABLE, &rec, json!({"Next Contact Date": "2026-12-24"}), &editor).unwrap();
        env.changes_finished(3).await; // the creation, the person's edit, the echo of our write
        tokio::time::sleep(Duration::from_millis(200)).await;
        env.drain().await;

        let kommo = env.kommo_ncd(lead);
        assert_eq!(env.records()[0].fields.get_str("Next Contact Date"), Some("2026-12-08"));
        assert_eq!(kommo, Some(1_796_688_000), "Kommo and Airtable agree");
        assert_eq!(env.flow.stats().kommo_writes.load(Ordering::Relaxed), 0);
        let skipped = env.store.status().await.unwrap().skipped;
        assert_eq!(
            skipped.get(&("airtable".to_owned(), "superseded: the record holds our later write".to_owned())),
            Some(&1),
            "{skipped:?}"
        );
        env.finish().await;
    })
    .await;
}

/// The two vendors stamp changes with their own clocks, Kommo in whole seconds: a Kommo change synced to Airtable
/// can carry a later time than a person's Airtable edit made after that sync landed. The edit is then "older than
/// the last applied change" by the clocks, but the record holds it and nothing will write over it: skipped, it left
/// Airtable at the person's date and Kommo at its own for good (chaos soak: `Next Contact Date: Some("2026-12-05")
/// != None`, the edit skipped as stale 0.3 s after our write and 10 ms before Kommo's rounded stamp). It must reach
/// Kommo; a change the record no longer holds is still skipped as older.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_persons_edit_the_record_holds_reaches_kommo_whatever_the_clocks_say() {
    on_both_stores(|h| async move {
        let env = env(h, |_| {}).await;
        let lead = env.seed_won_lead("Clock skew", 4_000);
        env.set_ncd(lead, 1_796_083_200); // 2026-12-01
        env.deliver_kommo(&env.kommo.webhook_for_lead_status(lead)).await;
        env.drain().await;
        let rec = env.records()[0].id.clone();
        // Kommo's stamps run 3 s ahead of Airtable's from here
        env.kommo.advance_clock(3);
        env.set_ncd(lead, 1_796_688_000); // 2026-12-08
        env.deliver_kommo(&env.kommo.webhook_for_lead_update(lead)).await;
        let ok =
            wait_until(60, || async { env.records()[0].fields.get_str("Next Contact Date") == Some("2026-12-08") })
                .await;
        assert!(ok, "Airtable holds 2026-12-08: {:?}", env.records()[0].fields);
        env.changes_finished(2).await; // the creation and the echo of our write
        // a person's edit after our write landed, stamped before Kommo's change by the clocks
        let editor = FakeUser::with_email("olivia@agency.example");
        env.base.user_edit(TABLE, &rec, json!({"Next Contact Date": "2026-12-24"}), &editor).unwrap();
        env.changes_finished(3).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        env.drain().await;

        let kommo = env.kommo_ncd(lead);
        assert_eq!(env.records()[0].fields.get_str("Next Contact Date"), Some("2026-12-24"));
        assert_eq!(kommo, Some(1_798_070_400), "Kommo has the person's 2026-12-24 too");
        assert_eq!(env.flow.stats().kommo_writes.load(Ordering::Relaxed), 1);
        assert_eq!(env.flow.stats().stale_skipped.load(Ordering::Relaxed), 0);
        env.finish().await;
    })
    .await;
}

/// The other direction of the same clock question. Kommo stamps whole seconds, so a Kommo change made right after
/// our write of a person's Airtable edit (same second) carries a stamp before that edit's Airtable time. Here the
/// gap is made wide: the Kommo fake's clock is set back a minute (it still stamps each lead strictly later than its
/// last change), and the person edits 2.5 s after the lead's last Kommo stamp. The lead as read then does not hold
/// what we last synced, so Kommo changed after our write: it is the newer change and must reach Airtable (skipped
/// as older by the clocks, Kommo kept 2026-12-31 and Airtable 2026-12-24). The test waits 2.5 s of real time: both
/// fakes stamp with the system clock, which a paused tokio clock does not move.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kommo_change_after_our_write_reaches_airtable_whatever_the_clocks_say() {
    on_both_stores(|h| async move {
        let env = env(h, |_| {}).await;
        let lead = env.seed_won_lead("Clock skew back", 5_000);
        env.set_ncd(lead, 1_796_083_200); // 2026-12-01
        env.deliver_kommo(&env.kommo.webhook_for_lead_status(lead)).await;
        env.drain().await;
        let rec = env.records()[0].id.clone();
        env.changes_finished(1).await; // the creation
        env.kommo.advance_clock(-60);
        tokio::time::sleep(Duration::from_millis(2_500)).await;
        let editor = FakeUser::with_email("olivia@agency.example");
        env.base.user_edit(TABLE, &rec, json!({"Next Contact Date": "2026-12-24"}), &editor).unwrap();
        env.changes_finished(2).await;
        assert_eq!(env.kommo_ncd(lead), Some(1_798_070_400), "the person's edit reached Kommo");
        // Kommo's own change after that, stamped before it by the clocks
        env.set_ncd(lead, 1_798_675_200); // 2026-12-31
        env.deliver_kommo(&env.kommo.webhook_for_lead_update(lead)).await;
        let ok =
            wait_until(30, || async { env.records()[0].fields.get_str("Next Contact Date") == Some("2026-12-31") })
                .await;
        env.drain().await;
        assert!(ok, "Airtable has Kommo's 2026-12-31: {:?}", env.records()[0].fields);
        assert_eq!(env.kommo_ncd(lead), Some(1_798_675_200));
        assert_eq!(env.flow.stats().stale_skipped.load(Ordering::Relaxed), 0);
        env.finish().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_skip_with_a_reason_and_reconcile_fills_missed_webhooks() {
    let env = env(Harness::sqlite(), |_| {}).await;
    let (pipeline, stages) = (env.kommo.main_pipeline(), env.kommo.stages(env.kommo.main_pipeline()));
    let open = env.kommo.seed_lead(SeedLead::new("Still open").contact(env.contact).stage(pipeline, stages[0]));
    let tagged = env
        .kommo
        .seed_lead(SeedLead::new("Internal test").contact(env.contact).tag("internal").stage(pipeline, StatusId::WON));
    env.deliver_kommo(&env.kommo.webhook_for_lead_update(open)).await;
    env.deliver_kommo(&env.kommo.webhook_for_lead_status(tagged)).await;
    env.drain().await;
    assert!(env.records().is_empty());
    assert_eq!(env.flow.stats().filtered.load(Ordering::Relaxed), 2);
    // both deliveries are done, with their reason visible to operators
    let skipped = env.store.status().await.unwrap().skipped;
    let open_status = stages[0].get();
    assert_eq!(
        skipped,
        [
            (("kommo".to_owned(), format!("filtered: status {open_status} is not the trigger status 142")), 1),
            (("kommo".to_owned(), "filtered: tagged `internal`".to_owned()), 1),
        ]
        .into_iter()
        .collect(),
    );

    // a won deal whose webhook never arrived is found by the reconcile poll, once
    let missed = env.seed_won_lead("Missed webhook", 700);
    // (the two leads whose webhooks arrived are left out: their states are already in the inbox)
    let n = env.flow.reconcile(&env.store).await.unwrap();
    assert_eq!(n, 1, "only the missed state is new");
    env.drain().await;
    assert_eq!(env.records().len(), 1);
    assert_eq!(env.records()[0].fields.get_str("Kommo Deal ID"), Some(missed.to_string().as_str()));
    // a second pass and the late webhook add nothing
    let again = env.flow.reconcile(&env.store).await.unwrap();
    assert_eq!(again, 0, "a state already in the inbox: nothing new");
    env.deliver_kommo(&env.kommo.webhook_for_lead_status(missed)).await;
    env.drain().await;
    assert_eq!(env.records().len(), 1);
    env.finish().await;
}

/// Kommo batches changes of several entities in one delivery; each becomes its own inbox event. A contact event
/// beside a lead's is stored with its own body and skipped, never dead-lettered as unparsable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_mixing_a_lead_and_a_contact_syncs_the_lead_and_skips_the_contact() {
    on_both_stores(|h| async move {
        let env = env(h, |_| {}).await;
        let lead = env.seed_won_lead("Mixed batch", 4_200);
        let body = env.kommo.webhook_body(&[
            kommo_api::fake::FakeWebhook::LeadStatus(lead),
            kommo_api::fake::FakeWebhook::ContactUpdate(env.contact),
        ]);
        assert_eq!(env.deliver_kommo(&body).await, 200);
        env.drain().await;
        let records = env.records();
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].fields.get_str("Kommo Deal ID"), Some(lead.to_string().as_str()));
        assert_eq!(records[0].fields.get_str("Deal Name"), Some("Mixed batch"));
        let status = env.store.status().await.unwrap();
        assert_eq!(status.dead, 0, "{:?}", env.store.list(State::Dead, 5).await.unwrap());
        assert_eq!(
            status.skipped.get(&("kommo".to_owned(), "no lead events".to_owned())),
            Some(&1),
            "{:?}",
            status.skipped
        );
        env.finish().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_mapping_fails_start_up_naming_the_field() {
    let kommo = FakeKommo::start().await.unwrap();
    let airtable = FakeAirtable::start_with(AtConfig::unlimited()).await.unwrap();
    let base = airtable.base();
    let _ = base.add_table_with(
        TABLE,
        vec![
            FieldSpec::new("Deal Name", "singleLineText"),
            FieldSpec::new("Kommo Deal ID", "singleLineText"),
            FieldSpec::single_select("Status", &["Not Started"]),
        ],
    );
    let mut cfg = config(base.id().as_str(), kommo.base_url().as_str());
    cfg.mapping = sync_core::mapping::Mapping::from_toml(
        r#"
        [[fields]]
        source = "name"
        target = "Deal Nmae"
        "#,
    )
    .unwrap();
    let flow = KommoAirtable::new(cfg, kommo.client(), airtable.client()).unwrap();
    let err = flow.validate().await.unwrap_err().to_string();
    assert!(err.contains("Deal Nmae"), "{err}");
    assert!(err.contains("Deal Name"), "suggests the right name: {err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn airtable_429s_are_waited_out_and_the_record_is_written_once() {
    let env = env(Harness::sqlite(), |_| {}).await;
    let lead = env.seed_won_lead("Throttled", 900);
    env.airtable.faults().inject(
        Some(reqwest::Method::PATCH),
        "/v0/",
        api_core::fake::Fault::json(
            429,
            &json!({"errors": [{"error": "RATE_LIMIT_REACHED", "message": "Rate limit exceeded"}]}),
        ),
        2,
    );
    env.deliver_kommo(&env.kommo.webhook_for_lead_status(lead)).await;
    env.drain().await;
    assert_eq!(env.records().len(), 1);
    assert_eq!(env.records()[0].fields.get_str("Status"), Some("Not Started"));
    env.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_deliveries_with_duplicates_reordering_and_a_restart() {
    on_both_stores(|h| async move {
        let mut env = env(h, |_| {}).await;
        // a short lease so the killed pool's claims are reclaimed quickly
        env.workers.take().unwrap().shutdown().await;
        env.workers = Some(worker::start(
            env.engine.clone(),
            WorkerConfig { lease: Duration::from_secs(2), heartbeat: Duration::from_millis(500), ..worker_config() },
        ));
        let deals_env: Option<usize> = std::env::var("FLOW_TEST_DEALS").ok().and_then(|v| v.parse().ok());
        let deals: usize = deals_env.unwrap_or(500);
        let leads: Vec<LeadId> = (0..deals).map(|i| env.seed_won_lead(&format!("Deal {i}"), i as i64)).collect();
        // 4 deliveries per deal (status, update, and two redeliveries), shuffled
        let mut bodies = Vec::new();
        for &l in &leads {
            let s = env.kommo.webhook_for_lead_status(l);
            bodies.push(s.clone());
            bodies.push(env.kommo.webhook_for_lead_update(l));
            bodies.push(s.clone());
            bodies.push(s);
        }
        let mut rng_state = 0x9E37_79B9_7F4A_7C15_u64;
        for i in (1..bodies.len()).rev() {
            rng_state ^= rng_state << 13;
            rng_state ^= rng_state >> 7;
            rng_state ^= rng_state << 17;
            let j = usize::try_from(rng_state % (i as u64 + 1)).unwrap();
            bodies.swap(i, j);
        }
        assert_eq!(bodies.len(), deals * 4);
        let half = bodies.len() / 2;
        let send = |chunk: Vec<String>| {
            let http = env.http.clone();
            let addr = env.addr;
            async move {
                let mut tasks = tokio::task::JoinSet::new();
                for (k, part) in chunk.chunks(chunk.len().div_ceil(16).max(1)).map(<[String]>::to_vec).enumerate() {
                    let http = http.clone();
                    tasks.spawn(async move {
                        for b in part {
                            let st = http
                                .post(format!("http://{addr}/hooks/kommo/{PATH_TOKEN}"))
                                .header("content-type", "application/x-www-form-urlencoded")
                                .body(b)
                                .send()
                                .await
                                .unwrap()
                                .status();
                            assert!(st.is_success(), "sender {k}: {st}");
                        }
                    });
                }
                while let Some(r) = tasks.join_next().await {
                    r.unwrap();
                }
            }
        };
        send(bodies[..half].to_vec()).await;
        // restart in the middle: workers killed (no graceful release), then a new pool
        tokio::time::sleep(Duration::from_millis(300)).await;
        env.workers.take().unwrap().kill();
        send(bodies[half..].to_vec()).await;
        env.workers = Some(worker::start(
            env.engine.clone(),
            WorkerConfig { lease: Duration::from_secs(2), heartbeat: Duration::from_millis(500), ..worker_config() },
        ));
        env.drain_within(240).await;
        let recs = env.records();
        assert_eq!(recs.len(), deals, "exactly one record per deal");
        let mut ids: Vec<&str> = recs.iter().filter_map(|r| r.fields.get_str("Kommo Deal ID")).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), deals);
        assert!(leads.iter().all(|l| env.notes(*l).is_empty()), "no notes from our own writes");
        let status = env.store.status().await.unwrap();
        assert_eq!(status.dead, 0, "{status:?}");
        env.finish().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_airtable_webhook_is_adopted_on_restart_and_recreated_when_lost() {
    let env = env(Harness::sqlite(), |_| {}).await;
    let url = format!("http://{}/hooks/airtable-ping", env.addr);
    let first = env.base.webhooks()[0].id.clone();
    // a restart adopts the stored webhook: no second webhook, same MAC secret
    let adopted = env.flow.ensure_webhook(&env.store, &url).await.unwrap();
    assert_eq!(adopted, first);
    assert_eq!(env.base.webhooks().len(), 1);
    // Airtable disables it after 7 days without refresh: the next upkeep replaces it and pings verify again
    env.base.expire_webhook(&first);
    let second = env.flow.ensure_webhook(&env.store, &url).await.unwrap();
    assert_ne!(second, first);
    let hooks = env.base.webhooks();
    assert_eq!(hooks.len(), 1, "the lost webhook was removed");
    assert_eq!(hooks[0].id, second);
    let lead = env.seed_won_lead("After recreate", 10);
    env.deliver_kommo(&env.kommo.webhook_for_lead_status(lead)).await;
    env.drain().await;
    let rec = env.records()[0].id.clone();
    env.base.user_edit(TABLE, &rec, json!({"Status": "Done"}), &FakeUser::with_email("x@agency.example")).unwrap();
    let ok = wait_until(60, || async { !env.notes(lead).is_empty() }).await;
    assert!(ok, "pings signed with the new secret are accepted and processed");
    // a ping with a wrong MAC is refused at the door
    let forged = env
        .http
        .post(&url)
        .header("x-airtable-content-mac", "hmac-sha256=00")
        .body(
            json!({"base": {"id": env.base.id()}, "webhook": {"id": second}, "timestamp": "2026-11-23T10:00:00.000Z"})
                .to_string(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status().as_u16(), 401);
    env.finish().await;
}

/// The records path of the fake base (records only: the webhook and payload calls are under `/v0/bases/`).
fn records_path(env: &Env) -> String {
    format!("/v0/{}/", env.base.id().as_str())
}

/// Batches (issue 25): 23 won deals whose events are ready together are read from Kommo in one
/// `GET /api/v4/leads?filter[id][]…&with=contacts,companies` (Kommo takes up to 250 ids: kommo.md "Leads list",
/// `filter[id]` and `with`), their contact, company and responsible user once, the existing records looked up in
/// one Airtable request whose `filterByFormula` is one `OR` over the batch's keys, and written with
/// `performUpsert` ten records per request (airtable.md: "≤10 records per write", upsert by `fieldsToMergeOn`).
/// "Status" goes out only for records the write creates: the deal whose record the team made by hand keeps
/// "Done". Every record is checked field by field.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_won_deals_are_read_in_one_kommo_request_and_written_ten_records_at_a_time() {
    on_both_stores(|h| async move {
        let mut env = env(h, |_| {}).await;
        env.workers.take().unwrap().shutdown().await;
        let leads: Vec<LeadId> = (0..23).map(|i| env.seed_won_lead(&format!("Deal {i}"), 1_000 + i)).collect();
        let someone = FakeUser::with_email("pm@agency.example");
        let by_hand = env
            .base
            .user_create(TABLE, json!({"Kommo Deal ID": leads[7].to_string(), "Status": "Done"}), &someone)
            .unwrap();
        for lead in &leads {
            assert_eq!(env.deliver_kommo(&env.kommo.webhook_for_lead_status(*lead)).await, 200);
        }
        let (k0, a0) = (env.kommo.log().requests().len(), env.airtable.log().requests().len());
        env.workers = Some(worker::start(env.engine.clone(), worker_config()));
        env.drain().await;

        // Kommo: one leads GET for the batch, the related entities once
        let kommo: Vec<_> = env.kommo.log().requests()[k0..].to_vec();
        let lead_gets: Vec<_> =
            kommo.iter().filter(|r| r.method == reqwest::Method::GET && r.path == "/api/v4/leads").collect();
        assert_eq!(lead_gets.len(), 1, "{:?}", kommo.iter().map(|r| &r.path).collect::<Vec<_>>());
        let url =
            reqwest::Url::parse(&format!("http://x/?{}", lead_gets[0].query.as_deref().unwrap_or_default())).unwrap();
        let pairs: Vec<(String, String)> = url.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
        let ids: Vec<String> =
            pairs.iter().filter(|(k, _)| k.starts_with("filter[id][")).map(|(_, v)| v.clone()).collect();
        assert_eq!(ids, leads.iter().map(ToString::to_string).collect::<Vec<_>>());
        assert!(pairs.contains(&("with".into(), "contacts,companies".into())), "{pairs:?}");
        assert!(!kommo.iter().any(|r| r.path.starts_with("/api/v4/leads/")), "no lead read one by one");
        let gets = |p: &str| kommo.iter().filter(|r| r.method == reqwest::Method::GET && r.path.starts_with(p)).count();
        assert_eq!((gets("/api/v4/contacts"), gets("/api/v4/companies"), gets("/api/v4/users")), (1, 1, 1));

        // Airtable: one look-up over the batch's keys, three upserts of 10, 10 and 3 records
        let prefix = records_path(&env);
        let airtable: Vec<_> =
            env.airtable.log().requests()[a0..].iter().filter(|r| r.path.starts_with(&prefix)).cloned().collect();
        let lookups: Vec<_> = airtable.iter().filter(|r| r.method == reqwest::Method::GET).collect();
        assert_eq!(lookups.len(), 1, "{:?}", airtable.iter().map(|r| (&r.method, &r.path)).collect::<Vec<_>>());
        let url =
            reqwest::Url::parse(&format!("http://x/?{}", lookups[0].query.as_deref().unwrap_or_default())).unwrap();
        let formula = url.query_pairs().find(|(k, _)| k == "filterByFormula").map(|(_, v)| v.into_owned());
        let expected = airtable_client::Formula::or(
            leads.iter().map(|l| airtable_client::field_eq("Kommo Deal ID", &l.to_string())),
        );
        assert_eq!(formula.as_deref(), Some(expected.as_str()));
        let writes: Vec<_> = airtable.iter().filter(|r| r.method == reqwest::Method::PATCH).collect();
        let mut sizes: Vec<usize> = writes.iter().map(|w| w.json()["records"].as_array().unwrap().len()).collect();
        sizes.sort_unstable();
        assert_eq!(sizes, vec![3, 10, 10]);
        for w in &writes {
            let body = w.json();
            assert_eq!(body["performUpsert"], json!({"fieldsToMergeOn": ["Kommo Deal ID"]}));
            assert_eq!(body["typecast"], json!(true));
            for r in body["records"].as_array().unwrap() {
                let key = r["fields"]["Kommo Deal ID"].as_str().unwrap();
                let status = r["fields"].get("Status");
                if key == leads[7].to_string() {
                    assert_eq!(status, None, "no status over the team's record");
                } else {
                    assert_eq!(status, Some(&json!("Not Started")), "status with the creating write");
                }
            }
        }

        // the records, field by field
        let recs = env.records();
        assert_eq!(recs.len(), 23);
        for (i, lead) in leads.iter().enumerate() {
            let found = env.base.find(TABLE, "Kommo Deal ID", &lead.to_string());
            assert_eq!(found.len(), 1, "one record for {lead}");
            let f = &found[0].fields;
            assert_eq!(f.get_str("Deal Name"), Some(format!("Deal {i}").as_str()));
            assert_eq!(f.get_f64("Deal Value"), Some(1_000.0 + i as f64));
            assert_eq!(f.get_str("Client Name"), Some("Ada Client"));
            assert_eq!(f.get_str("Email"), Some("ada@client.example"));
            assert_eq!(f.get_str("Phone"), Some("+1 555 0100"));
            assert_eq!(f.get_str("Company"), Some("Client Corp"));
            assert_eq!(f.get_str("Responsible"), Some("Rita Responsible"));
            assert_eq!(f.get_str("Status"), Some(if i == 7 { "Done" } else { "Not Started" }));
            assert_eq!(
                env.store.id_get("airtable", "onboarding", &lead.to_string()).await.unwrap().as_deref(),
                Some(found[0].id.as_str())
            );
        }
        assert_eq!(env.base.find(TABLE, "Kommo Deal ID", &leads[7].to_string())[0].id, by_hand, "adopted");
        assert_eq!(env.flow.stats().records_created.load(Ordering::Relaxed), 22);

        // a later change to two linked deals: one PATCH by record id for both, no look-up
        let a1 = env.airtable.log().requests().len();
        env.workers.take().unwrap().shutdown().await;
        for (lead, price) in [(leads[0], 5_000), (leads[1], 6_000)] {
            env.kommo.update_lead(lead, &json!({"price": price}));
            assert_eq!(env.deliver_kommo(&env.kommo.webhook_for_lead_update(lead)).await, 200);
        }
        env.workers = Some(worker::start(env.engine.clone(), worker_config()));
        env.drain().await;
        let later: Vec<_> =
            env.airtable.log().requests()[a1..].iter().filter(|r| r.path.starts_with(&prefix)).cloned().collect();
        assert_eq!(later.len(), 1, "{:?}", later.iter().map(|r| (&r.method, &r.path)).collect::<Vec<_>>());
        assert_eq!(later[0].method, reqwest::Method::PATCH);
        let body = later[0].json();
        assert_eq!(body["records"].as_array().unwrap().len(), 2);
        assert!(body.get("performUpsert").is_none(), "linked records are updated by id");
        for (lead, price) in [(leads[0], 5_000.0), (leads[1], 6_000.0)] {
            let f = &env.base.find(TABLE, "Kommo Deal ID", &lead.to_string())[0].fields;
            assert_eq!(f.get_f64("Deal Value"), Some(price));
            assert_eq!(f.get_str("Status"), Some("Not Started"));
        }
        env.finish().await;
    })
    .await;
}

/// A poison record in a batch: Airtable refuses the chunk (it writes ten records all or nothing) with 422
/// `INVALID_VALUE_FOR_COLUMN` (airtable.md, error table: 422 "request data is invalid"; the body
/// `{"error": {"type": …, "message": …}}` as the fake answers it), the flow writes that chunk's records one by
/// one, and the one Airtable refuses again goes to the dead letters alone, while its five neighbours are written
/// on their first attempt, field by field.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_airtable_refuses_fails_alone_and_its_batch_neighbours_are_written() {
    let mut env = env(Harness::sqlite(), |_| {}).await;
    env.workers.take().unwrap().shutdown().await;
    let leads: Vec<LeadId> = (0..6).map(|i| env.seed_won_lead(&format!("Deal {i}"), 100 + i)).collect();
    for lead in &leads {
        assert_eq!(env.deliver_kommo(&env.kommo.webhook_for_lead_status(*lead)).await, 200);
    }
    env.airtable.faults().inject(
        Some(reqwest::Method::PATCH),
        &records_path(&env),
        api_core::fake::Fault::json(
            422,
            &json!({"error": {"type": "INVALID_VALUE_FOR_COLUMN", "message": "Field \"Deal Value\" cannot accept the provided value"}}),
        ),
        2,
    );
    env.workers = Some(worker::start(env.engine.clone(), worker_config()));
    env.drain().await;
    let status = env.store.status().await.unwrap();
    assert_eq!(status.dead, 1, "only the refused record's event is dead");
    let dead = env.store.list(State::Dead, 10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert!(dead[0].last_error.as_deref().unwrap_or_default().contains("INVALID_VALUE_FOR_COLUMN"), "{dead:?}");
    let done = env.store.list(State::Done, 100).await.unwrap();
    let neighbours: Vec<_> = done.iter().filter(|r| r.source == "kommo").collect();
    assert_eq!(neighbours.len(), 5);
    assert!(neighbours.iter().all(|r| r.attempts == 1), "neighbours done on their first attempt: {neighbours:?}");
    assert_eq!(env.records().len(), 5);
    let mut missing = 0;
    for (i, lead) in leads.iter().enumerate() {
        let found = env.base.find(TABLE, "Kommo Deal ID", &lead.to_string());
        if found.is_empty() {
            missing += 1;
            assert_eq!(env.store.id_get("airtable", "onboarding", &lead.to_string()).await.unwrap(), None);
            continue;
        }
        assert_eq!(found.len(), 1);
        let f = &found[0].fields;
        assert_eq!(f.get_str("Deal Name"), Some(format!("Deal {i}").as_str()));
        assert_eq!(f.get_f64("Deal Value"), Some(100.0 + i as f64));
        assert_eq!(f.get_str("Client Name"), Some("Ada Client"));
        assert_eq!(f.get_str("Status"), Some("Not Started"));
    }
    assert_eq!(missing, 1);
    env.finish().await;
}

/// Airtable → Kommo in batches: people change "Next Contact Date" and a two-way text field on twelve records while
/// the workers are down; the changes the worker then claims together cost one Airtable look-up of the records
/// (`OR(RECORD_ID()='…',…)`, to drop changes our later writes replaced) and one batch `PATCH /api/v4/leads` (a JSON
/// array with a `request_id` per element, kommo.md "Batch writes"). One change carries 300 characters into a Kommo
/// `text` field, which Kommo refuses over the API above 256 (kommo.md §2, issue #224; the fake answers the batch
/// with 400 `validation-errors` for that `request_id` and applies the rest, the stricter reading of an undocumented
/// case): the flow sends that request again lead by lead, so only that change goes to the dead letters and the
/// eleven others are in Kommo, field by field. A later batch without a poison is one request and nothing else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn airtable_changes_reach_kommo_in_one_batch_write_and_a_refused_lead_fails_alone() {
    on_both_stores(|h| async move {
        use kommo_api::CustomFieldsExt as _;
        let mut env = env(h, |cfg| {
            let extra = sync_core::mapping::Mapping::from_toml(
                "[[fields]]\nsource = \"Onboarding Notes\"\ntarget = \"Onboarding Notes\"\ndirection = \"two-way\"\n",
            )
            .unwrap();
            cfg.mapping.fields.extend(extra.fields);
        })
        .await;
        let leads: Vec<LeadId> = (0..12).map(|i| env.seed_won_lead(&format!("Deal {i}"), 1_000 + i)).collect();
        for lead in &leads {
            assert_eq!(env.deliver_kommo(&env.kommo.webhook_for_lead_status(*lead)).await, 200);
        }
        env.drain().await;
        tokio::time::sleep(Duration::from_millis(300)).await; // the pings of the creating writes
        env.drain().await;
        let notes_field = env.kommo.custom_fields(&EntityType::Leads).into_iter().find(|f| f.name == "Onboarding Notes").unwrap().id;
        let rec_of = |lead: LeadId| env.base.find(TABLE, "Kommo Deal ID", &lead.to_string())[0].id.clone();
        let kommo_value = |lead: LeadId, field: CustomFieldId| {
            env.kommo.lead(lead).and_then(|l| l.custom_field(field).and_then(|v| v.first().map(|x| x.value.clone())))
        };

        env.workers.take().unwrap().shutdown().await;
        let editor = FakeUser::with_email("olivia@agency.example");
        let poison = 5;
        for (i, lead) in leads.iter().enumerate() {
            let fields = if i == poison {
                json!({"Onboarding Notes": "x".repeat(300)})
            } else {
                json!({"Next Contact Date": format!("2027-01-{:02}", i + 1), "Onboarding Notes": format!("kick-off call {i}")})
            };
            env.base.user_edit(TABLE, &rec_of(*lead), fields, &editor).unwrap();
        }
        let (k0, a0) = (env.kommo.log().requests().len(), env.airtable.log().requests().len());
        env.workers = Some(worker::start(env.engine.clone(), worker_config()));
        env.changes_finished(24).await; // 12 record creations, 12 edits

        let kommo: Vec<_> = env.kommo.log().requests()[k0..].to_vec();
        let batch: Vec<_> =
            kommo.iter().filter(|r| r.method == reqwest::Method::PATCH && r.path == "/api/v4/leads").collect();
        assert_eq!(batch.len(), 1, "one batch write: {:?}", kommo.iter().map(|r| (&r.method, &r.path)).collect::<Vec<_>>());
        let body = batch[0].json();
        let items = body.as_array().unwrap();
        assert_eq!(items.len(), 12);
        let mut rids: Vec<&str> = items.iter().map(|i| i["request_id"].as_str().unwrap()).collect();
        rids.dedup();
        assert_eq!(rids.len(), 12, "a request_id per element");
        let mut ids: Vec<u64> = items.iter().map(|i| i["id"].as_u64().unwrap()).collect();
        ids.sort_unstable();
        assert_eq!(ids, leads.iter().map(|l| l.get()).collect::<Vec<_>>());
        // refused: lead by lead (setting a field is idempotent), the poison refused again
        let singles: Vec<_> =
            kommo.iter().filter(|r| r.method == reqwest::Method::PATCH && r.path.starts_with("/api/v4/leads/")).collect();
        assert_eq!(singles.len(), 12, "{:?}", singles.iter().map(|r| &r.path).collect::<Vec<_>>());
        // the look-up of the changed records: one request, a RECORD_ID() formula over all twelve
        let prefix = records_path(&env);
        let lookups: Vec<_> = env.airtable.log().requests()[a0..]
            .iter()
            .filter(|r| r.path.starts_with(&prefix) && r.method == reqwest::Method::GET)
            .cloned()
            .collect();
        assert_eq!(lookups.len(), 1);
        let url = reqwest::Url::parse(&format!("http://x/?{}", lookups[0].query.as_deref().unwrap_or_default())).unwrap();
        let formula = url.query_pairs().find(|(k, _)| k == "filterByFormula").map(|(_, v)| v.into_owned()).unwrap();
        assert_eq!(formula.matches("RECORD_ID()='rec").count(), 12, "{formula}");

        // field by field
        for (i, lead) in leads.iter().enumerate() {
            if i == poison {
                assert_eq!(kommo_value(*lead, notes_field), None, "Kommo refused it");
                continue;
            }
            let day = chrono::NaiveDate::from_ymd_opt(2027, 1, u32::try_from(i + 1).unwrap()).unwrap();
            let unix = day.and_hms_opt(0, 0, 0).unwrap().and_utc().timestamp();
            assert_eq!(kommo_value(*lead, env.ncd), Some(json!(unix)), "lead {i} date");
            assert_eq!(kommo_value(*lead, notes_field), Some(json!(format!("kick-off call {i}"))), "lead {i} notes");
        }
        assert_eq!(env.flow.stats().kommo_writes.load(Ordering::Relaxed), 11 * 2);
        let status = env.store.status().await.unwrap();
        assert_eq!(status.depth.get(&("airtable".to_owned(), State::Dead)), Some(&1), "{:?}", status.depth);
        let dead = env.store.dead_letters(10).await.unwrap();
        assert_eq!(dead.len(), 1);
        let body = String::from_utf8_lossy(&dead[0].payload).into_owned();
        assert!(body.contains(rec_of(leads[poison]).as_str()), "the poison change is the dead one");
        assert!(dead[0].row.last_error.as_deref().is_some_and(|e| e.contains("Kommo")), "{:?}", dead[0].row.last_error);

        // a later batch without a poison: one request, nothing else
        env.workers.take().unwrap().shutdown().await;
        for (i, lead) in leads.iter().enumerate().take(3) {
            env.base.user_edit(TABLE, &rec_of(*lead), json!({"Onboarding Notes": format!("second call {i}")}), &editor).unwrap();
        }
        let k1 = env.kommo.log().requests().len();
        env.workers = Some(worker::start(env.engine.clone(), worker_config()));
        env.changes_finished(27).await;
        let later: Vec<_> = env.kommo.log().requests()[k1..].iter().filter(|r| r.method == reqwest::Method::PATCH).cloned().collect();
        assert_eq!(later.len(), 1, "{:?}", later.iter().map(|r| &r.path).collect::<Vec<_>>());
        assert_eq!(later[0].path, "/api/v4/leads");
        assert_eq!(later[0].json().as_array().unwrap().len(), 3);
        for (i, lead) in leads.iter().enumerate().take(3) {
            assert_eq!(kommo_value(*lead, notes_field), Some(json!(format!("second call {i}"))));
        }
        env.finish().await;
    })
    .await;
}
