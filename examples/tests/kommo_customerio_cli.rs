//! The `kommo-customerio` binary end to end: `serve` as a real process, configured by the shipped example config
//! (pointed at the in-process fakes on 127.0.0.1, which enforce the vendors' rate limits) and env-var secrets.
#![allow(missing_docs, clippy::print_stdout, clippy::print_stderr)]

use api_core::fake::Fault;
use customerio_api::fake::FakeCustomerIo;
use customerio_api::{Identifier, Metric};
use kommo_api::fake::{FakeKommo, SeedLead};
use kommo_api::{EntityType, FieldType, LeadId, StatusId};

mod common;
use common::{
    Cli, PgSchema, component, free_port, interrupt, lead_notes, post_webhook_to, readyz, wait_components_ready,
    wait_for,
};

const BIN: &str = env!("CARGO_BIN_EXE_kommo-customerio");
const SECRET: &str = "cli-test-secret";
const EMAIL: &str = "ada@client.example";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_identifies_tracks_and_notes_and_refuses_forged_reports() {
    let kommo = FakeKommo::start().await.unwrap();
    let cio = FakeCustomerIo::start().await.unwrap();
    let _ = kommo.seed_custom_field(EntityType::Contacts, "Email unsubscribed", FieldType::Checkbox, None, &[]);
    let user = kommo.seed_user("Rita Responsible", "rita@example.com");
    let contact = kommo.seed_contact("Ada Client", Some(EMAIL), Some("+1 555 0100"));
    let (pipeline, stages) = kommo.seed_pipeline("Sales", &["New", "In contact", "Proposal sent"]);

    let shipped = include_str!("../config/kommo-customerio.toml");
    let c = cio.config();
    let text = shipped
        .replace("https://yourcompany.kommo.com", kommo.base_url().as_str().trim_end_matches('/'))
        .replace("# account_id = 12345678", &format!("account_id = {}", kommo.account_id()))
        .replace("\"your-site-id\"", &format!("\"{}\"", c.site_id))
        .replace("[customerio]\n", &format!("[customerio]\nbase_url = \"{}\"\n", cio.base_url()));
    assert_ne!(text, shipped);
    let env = [
        ("KOMMO_TOKEN", "fake-kommo-token"),
        ("KOMMO_WEBHOOK_SECRET", SECRET),
        ("CUSTOMERIO_TRACK_API_KEY", c.track_api_key.as_str()),
        ("CUSTOMERIO_WEBHOOK_SIGNING_KEY", c.webhook_signing_key.as_str()),
    ];
    let cli = Cli::new(BIN, &text, &env);
    let port = free_port();
    let (child, log) = cli.serve(port, "serve.log").await;
    wait_components_ready(port, child.id(), &["validation"]).await;
    let http = reqwest::Client::new();

    // a deal moves stage in Kommo: the person is identified with the mapped attributes and the event tracked
    let lead = kommo.seed_lead(
        SeedLead::new("Annual plan").price(5_000).responsible(user).contact(contact).stage(pipeline, stages[0]),
    );
    kommo.update_lead(lead, &serde_json::json!({"status_id": stages[2].get()}));
    let body = kommo.webhook_for_lead_status(lead);
    for _ in 0..3 {
        assert_eq!(post_webhook_to(format!("http://127.0.0.1:{port}/hooks/kommo/{SECRET}"), body.clone()).await, 200);
    }
    let who = Identifier::email(EMAIL);
    wait_for("the identify and the tracked event", 60, async || {
        cio.person(&who).is_some() && !cio.events_for(&who).is_empty()
    })
    .await;
    let person = cio.person(&who).unwrap();
    let attrs = serde_json::to_value(&person).unwrap();
    assert!(attrs.to_string().contains("Proposal sent"), "stage attribute: {attrs}");
    assert!(attrs.to_string().contains(&lead.to_string()), "kommo_lead_id attribute: {attrs}");

    // a signed reporting webhook (email opened) becomes a note on the deal; a forged one is refused
    let url = reqwest::Url::parse(&format!("http://127.0.0.1:{port}/hooks/customerio")).unwrap();
    let opened = cio.webhook(&who, Metric::Opened).subject("Your proposal").build();
    let mut forged = http.post(url.clone()).body(opened.body.clone());
    for (k, v) in &opened.headers {
        let v = if k.eq_ignore_ascii_case("x-cio-signature") { "00".repeat(32) } else { v.clone() };
        forged = forged.header(k.as_str(), v);
    }
    assert_eq!(forged.send().await.unwrap().status().as_u16(), 401);
    assert_eq!(opened.deliver(&url).await.unwrap(), 200);
    assert_eq!(opened.deliver(&url).await.unwrap(), 200, "redelivery acknowledged");
    let notes = || lead_notes(&kommo, lead);
    wait_for("the opened note", 60, async || notes().iter().any(|n| n.contains("opened"))).await;

    // a metric the flow does not handle is acknowledged and shows in `status` as skipped
    let delivered = cio.webhook(&who, Metric::Delivered).build();
    assert_eq!(delivered.deliver(&url).await.unwrap(), 200);
    wait_for("the skipped event in status", 60, async || {
        String::from_utf8_lossy(&cli.run("status").await.stdout).contains("metric not handled")
    })
    .await;
    interrupt(child, &log).await;
    assert_eq!(notes().iter().filter(|n| n.contains("opened")).count(), 1, "one note for the redelivered open");
    let text = String::from_utf8_lossy(&cli.run("status").await.stdout).into_owned();
    assert!(text.contains("dead letters: 0"), "{text}");
    assert!(!text.contains("queued") && !text.contains("running"), "{text}");
}

struct World {
    kommo: FakeKommo,
    cio: FakeCustomerIo,
    user: kommo_api::UserId,
    contact: kommo_api::ContactId,
    pipeline: kommo_api::PipelineId,
    stages: Vec<StatusId>,
    cli: Cli,
}

impl World {
    async fn start() -> World {
        Self::start_with(kommo_api::fake::FakeConfig::default()).await
    }

    async fn start_with(kommo: kommo_api::fake::FakeConfig) -> World {
        let kommo = FakeKommo::start_with(kommo).await.unwrap();
        let cio = FakeCustomerIo::start().await.unwrap();
        let _ = kommo.seed_custom_field(EntityType::Contacts, "Email unsubscribed", FieldType::Checkbox, None, &[]);
        let user = kommo.seed_user("Rita Responsible", "rita@example.com");
        let contact = kommo.seed_contact("Ada Client", Some(EMAIL), Some("+1 555 0100"));
        let (pipeline, stages) = kommo.seed_pipeline("Sales", &["New", "In contact", "Proposal sent"]);
        let shipped = include_str!("../config/kommo-customerio.toml");
        let c = cio.config();
        let text = shipped
            .replace("https://yourcompany.kommo.com", kommo.base_url().as_str().trim_end_matches('/'))
            .replace("# account_id = 12345678", &format!("account_id = {}", kommo.account_id()))
            .replace("\"your-site-id\"", &format!("\"{}\"", c.site_id))
            .replace("[customerio]\n", &format!("[customerio]\nbase_url = \"{}\"\n", cio.base_url()));
        let env = [
            ("KOMMO_TOKEN", "fake-kommo-token"),
            ("KOMMO_WEBHOOK_SECRET", SECRET),
            ("CUSTOMERIO_TRACK_API_KEY", c.track_api_key.as_str()),
            ("CUSTOMERIO_WEBHOOK_SIGNING_KEY", c.webhook_signing_key.as_str()),
        ];
        let cli = Cli::new(BIN, &text, &env);
        World { kommo, cio, user, contact, pipeline, stages, cli }
    }

    /// A deal of Ada's at "New", moved to "Proposal sent"; returns it with its status-change webhook body.
    fn deal_moved_to_proposal(&self, name: &str) -> (LeadId, String) {
        let lead = self.kommo.seed_lead(
            SeedLead::new(name)
                .price(5_000)
                .responsible(self.user)
                .contact(self.contact)
                .stage(self.pipeline, self.stages[0]),
        );
        self.kommo.update_lead(lead, &serde_json::json!({"status_id": self.stages[2].get()}));
        (lead, self.kommo.webhook_for_lead_status(lead))
    }

    /// Ada in Customer.io, field by field, after `lead` reached "Proposal sent"; and the tracked stage events.
    fn assert_person(&self, lead: LeadId) {
        let who = Identifier::email(EMAIL);
        let person = self.cio.person(&who).expect("Ada identified");
        let a = &person.attributes;
        assert_eq!(person.email.as_deref(), Some(EMAIL));
        assert_eq!(a.get("name").and_then(|v| v.as_str()), Some("Ada Client"), "{a:?}");
        assert_eq!(a.get("phone").and_then(|v| v.as_str()), Some("+1 555 0100"), "{a:?}");
        assert_eq!(a.get("kommo_stage").and_then(|v| v.as_str()), Some("Proposal sent"), "{a:?}");
        assert_eq!(a.get("kommo_pipeline").and_then(|v| v.as_str()), Some("Sales"), "{a:?}");
        assert_eq!(a.get("deal_value").and_then(serde_json::Value::as_f64), Some(5_000.0), "{a:?}");
        assert_eq!(a.get("responsible_name").and_then(|v| v.as_str()), Some("Rita Responsible"), "{a:?}");
        let lead_id = a.get("kommo_lead_id").map(|v| v.to_string().trim_matches('"').to_owned());
        assert_eq!(lead_id, Some(lead.to_string()), "{a:?}");
    }
}

async fn post_kommo(port: u16, body: &str) -> u16 {
    post_webhook_to(format!("http://127.0.0.1:{port}/hooks/kommo/{SECRET}"), body.to_owned()).await
}

/// Scale-out: two `serve` processes on one PostgreSQL schema (the Customer.io reporting webhook is set up by
/// hand, so there is no subscription to adopt); every Kommo webhook and every signed Customer.io report is sent to
/// both processes and applied once: one identify with every mapped attribute, one tracked stage event with a
/// stable id, one note per report.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_serve_processes_share_one_postgres() {
    let Some(pg) = PgSchema::create().await else { return };
    let mut w = World::start().await;
    let text = std::fs::read_to_string(&w.cli.config).unwrap();
    std::fs::write(&w.cli.config, text.replace("requests_per_second = 7", "requests_per_second = 3")).unwrap();
    w.cli.database = pg.database();
    let ports = [free_port(), free_port()];
    let mut procs = Vec::new();
    for (i, port) in ports.iter().enumerate() {
        let (child, log) = w.cli.serve(*port, &format!("{i}.log")).await;
        wait_components_ready(*port, child.id(), &["validation"]).await;
        procs.push((child, log));
    }
    let (lead, body) = w.deal_moved_to_proposal("Annual plan");
    for port in ports {
        assert_eq!(post_kommo(port, &body).await, 200);
    }
    let who = Identifier::email(EMAIL);
    wait_for("the tracked event", 60, async || !w.cio.events_for(&who).is_empty()).await;
    let opened = w.cio.webhook(&who, Metric::Opened).subject("Your proposal").build();
    for port in ports {
        let url = reqwest::Url::parse(&format!("http://127.0.0.1:{port}/hooks/customerio")).unwrap();
        assert_eq!(opened.deliver(&url).await.unwrap(), 200);
    }
    let notes = || lead_notes(&w.kommo, lead);
    wait_for("the opened note", 60, async || notes().iter().any(|n| n.contains("opened"))).await;
    wait_for("an empty queue", 60, async || {
        let out = String::from_utf8_lossy(&w.cli.run("status").await.stdout).into_owned();
        !out.contains("queued") && !out.contains("running")
    })
    .await;
    for (child, log) in procs {
        interrupt(child, &log).await;
    }
    w.assert_person(lead);
    let events = w.cio.events_for(&who);
    let stage_events: Vec<_> = events.iter().filter(|e| e.name == "kommo_stage_changed").collect();
    assert_eq!(stage_events.len(), 1, "one stage event for one webhook sent twice: {events:?}");
    assert!(stage_events[0].id.is_some(), "with a stable event id");
    assert_eq!(notes().iter().filter(|n| n.contains("opened")).count(), 1, "{:?}", notes());
    let stored = pg.count("SELECT count(*) FROM {s}.inbox").await;
    assert_eq!(stored, 2, "the Kommo webhook and the report, each stored once");
    let text = String::from_utf8_lossy(&w.cli.run("status").await.stdout).into_owned();
    assert!(text.contains("dead letters: 0"), "{text}");
    pg.drop_schema().await;
}

/// `serve` starts while Kommo answers 503 (and Customer.io's Track API too): the receiver accepts at once,
/// `/readyz` (200, `degraded`) and `status` show the failing validation, nothing is sent; after recovery the
/// waiting event is applied, field by field.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_accepts_webhooks_while_kommo_answers_503_and_applies_them_after() {
    let w = World::start().await;
    let outage = Fault::json(503, &serde_json::json!({"title": "Service Unavailable", "status": 503}));
    w.kommo.faults().inject(None, "/api", outage.clone(), u32::MAX);
    w.cio.faults().inject(None, "/", outage, u32::MAX);
    let port = free_port();
    let (child, log) = w.cli.serve(port, "serve.log").await;
    let (lead, body) = w.deal_moved_to_proposal("Annual plan");
    assert_eq!(post_kommo(port, &body).await, 200, "accepted while Kommo is down");
    let pid = child.id();
    wait_for("the failing validation in /readyz", 60, async || {
        let (status, body) = readyz(port).await;
        status == 200 && component(&body, "validation", pid).is_some_and(|v| v["state"] == "failing")
    })
    .await;
    let (_, body) = readyz(port).await;
    assert_eq!(body["status"], "degraded", "{body}");
    let v = component(&body, "validation", pid).unwrap();
    assert!(v["attempts"].as_i64() >= Some(1) && v["last_error"].as_str().is_some_and(|e| e.contains("503")), "{v}");
    let text = String::from_utf8_lossy(&w.cli.run("status").await.stdout).into_owned();
    assert!(text.lines().any(|l| l.trim_start().starts_with("validation") && l.contains("failing")), "{text}");
    assert!(text.lines().any(|l| l.starts_with("kommo ") && l.contains("queued")), "{text}");
    let who = Identifier::email(EMAIL);
    assert!(w.cio.person(&who).is_none(), "nothing applied while the flow is not ready");

    w.kommo.faults().clear();
    w.cio.faults().clear();
    wait_components_ready(port, pid, &["validation"]).await;
    wait_for("the identify and the tracked event", 60, async || {
        w.cio.person(&who).is_some() && !w.cio.events_for(&who).is_empty()
    })
    .await;
    interrupt(child, &log).await;
    w.assert_person(lead);
    let text = String::from_utf8_lossy(&w.cli.run("status").await.stdout).into_owned();
    assert!(text.contains("dead letters: 0"), "{text}");
    assert!(!text.contains("queued") && !text.contains("running"), "{text}");
}

/// Shared OAuth tokens: two `serve` processes on one database (an SQLite file) use one Kommo OAuth account. The
/// store is seeded once from `KOMMO_REFRESH_TOKEN`; access tokens live 301 s and the session refreshes 300 s
/// early, so the pair is refreshed about every second by whichever process calls Kommo, and Kommo's single-use
/// refresh tokens are each sent exactly once (the fake revokes a reused one) across both processes; every deal is
/// still applied. (2 requests/s per process: the fake counts the token requests against the account's 7/s.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_serve_processes_share_kommo_oauth_tokens() {
    let fake = kommo_api::fake::FakeConfig {
        oauth: Some(("cli-client".into(), "cli-client-secret".into())),
        oauth_expires_in: 301,
        ..kommo_api::fake::FakeConfig::default()
    };
    let mut w = World::start_with(fake).await;
    w.kommo.install_oauth_tokens("seed-access", "seed-refresh");
    let text = std::fs::read_to_string(&w.cli.config).unwrap();
    let text = text.replace("requests_per_second = 7", "requests_per_second = 2")
        + "\n[kommo.oauth]\nclient_id = \"cli-client\"\nredirect_uri = \"https://sync.example.com/oauth\"\n";
    std::fs::write(&w.cli.config, text).unwrap();
    let c = w.cio.config();
    // no KOMMO_TOKEN: the OAuth integration's secret and the seed refresh token only
    w.cli = {
        let env = [
            ("KOMMO_CLIENT_SECRET", "cli-client-secret"),
            ("KOMMO_REFRESH_TOKEN", "seed-refresh"),
            ("KOMMO_WEBHOOK_SECRET", SECRET),
            ("CUSTOMERIO_TRACK_API_KEY", c.track_api_key.as_str()),
            ("CUSTOMERIO_WEBHOOK_SIGNING_KEY", c.webhook_signing_key.as_str()),
        ];
        Cli::new(BIN, &std::fs::read_to_string(&w.cli.config).unwrap(), &env)
    };
    let ports = [free_port(), free_port()];
    let mut procs = Vec::new();
    for (i, port) in ports.iter().enumerate() {
        let (child, log) = w.cli.serve(*port, &format!("{i}.log")).await;
        wait_components_ready(*port, child.id(), &["validation"]).await;
        procs.push((child, log));
    }
    // deals to both processes: either refreshes the shared pair when it is due
    let mut leads = Vec::new();
    for i in 0..6 {
        let (lead, body) = w.deal_moved_to_proposal(&format!("OAuth deal {i}"));
        for port in ports {
            assert_eq!(post_kommo(port, &body).await, 200);
        }
        leads.push(lead);
    }
    wait_for("every deal applied", 120, async || {
        let out = String::from_utf8_lossy(&w.cli.run("status").await.stdout).into_owned();
        out.lines().any(|l| l.starts_with("kommo ") && l.contains(" done ") && l.trim_end().ends_with(" 6"))
            && !out.contains("queued")
            && !out.contains("running")
    })
    .await;
    let logs: Vec<String> = procs.iter().map(|(_, l)| std::fs::read_to_string(l).unwrap()).collect();
    for (child, log) in procs {
        interrupt(child, &log).await;
    }
    let sent: Vec<String> = w
        .kommo
        .log()
        .requests()
        .iter()
        .filter(|r| r.path == "/oauth2/access_token")
        .map(|r| r.json()["refresh_token"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert!(sent.len() >= 2, "refreshed more than once: {sent:?}");
    assert_eq!(sent[0], "seed-refresh", "seeded from the environment");
    let mut unique = sent.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), sent.len(), "each single-use refresh token was sent once: {sent:?}");
    let users: Vec<bool> = logs.iter().map(|l| l.contains("Kommo OAuth tokens seeded")).collect();
    assert_eq!(users.iter().filter(|b| **b).count(), 1, "seeded by one process only");
    let bearers: std::collections::HashSet<String> = w
        .kommo
        .log()
        .requests()
        .iter()
        .filter(|r| r.path.starts_with("/api/v4"))
        .filter_map(|r| r.headers.get("authorization").and_then(|v| v.to_str().ok()).map(str::to_owned))
        .collect();
    assert!(bearers.len() >= 2 && bearers.iter().all(|b| b.starts_with("Bearer fake-access-")), "{bearers:?}");
    // the store holds the last pair Kommo issued
    let store = sync_core::Store::open_sqlite(&w.cli.database, sync_core::StoreOptions::default()).await.unwrap();
    let held = api_core::oauth::TokenStore::load(&store.token_store("kommo:127.0.0.1")).await.unwrap().unwrap();
    assert_eq!(held.refresh_token.map(|t| t.expose().to_owned()), Some(format!("fake-refresh-{}", sent.len())));
    for lead in &leads {
        let who = Identifier::email(EMAIL);
        assert!(
            w.cio.events_for(&who).iter().any(|e| e.data.values().any(|v| v.to_string().contains(&lead.to_string()))),
            "{lead}"
        );
    }
    let text = String::from_utf8_lossy(&w.cli.run("status").await.stdout).into_owned();
    assert!(text.contains("dead letters: 0"), "{text}");
}
