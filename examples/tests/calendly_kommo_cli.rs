//! The `calendly-kommo` binary end to end: `serve` as a real process with the shipped example config pointed at
//! the in-process fakes, tokens from the environment. `serve` creates the Calendly webhook subscription itself
//! (with a signing key it generates and stores), and the fake Calendly delivers bookings to it as they happen.
#![allow(missing_docs, clippy::print_stdout, clippy::print_stderr)]

use calendly_api::fake::{Booking, DEFAULT_TOKEN, FakeCalendly, FakeConfig as CalConfig, OutgoingWebhook};
use calendly_api::scheduled_events::CancelerType;
use kommo_api::EntityType;
use kommo_api::fake::{FakeKommo, SeedLead};
use kommo_api::tasks::TASK_TYPE_MEETING;

mod common;
use common::{Cli, PgSchema, component, free_port, interrupt, lead_notes, readyz, wait_components_ready, wait_for};

const BIN: &str = env!("CARGO_BIN_EXE_calendly-kommo");
const COMPONENTS: &[&str] = &["validation", "webhook:calendly"];

/// The shipped config pointed at the fakes, the subscription's callback on `port`.
fn config(kommo: &FakeKommo, cal: &FakeCalendly, port: u16) -> String {
    let shipped = include_str!("../config/calendly-kommo.toml");
    let text = shipped
        .replace("https://yourcompany.kommo.com", kommo.base_url().as_str().trim_end_matches('/'))
        .replace(
            "[calendly]\n",
            &format!("[calendly]\nbase_url = \"{}\"\n", cal.base_url().as_str().trim_end_matches('/')),
        )
        .replace("https://sync.yourcompany.com/hooks/calendly", &format!("http://127.0.0.1:{port}/hooks/calendly"));
    assert_ne!(text, shipped);
    text
}

/// POSTs a Calendly delivery, byte for byte with its signature, to the receiver on `port`.
async fn post_to(w: &OutgoingWebhook, port: u16) -> u16 {
    let mut copy = w.clone();
    copy.url = format!("http://127.0.0.1:{port}/hooks/calendly");
    copy.post(&reqwest::Client::new()).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_subscribes_and_turns_a_booking_into_a_meeting_task() {
    let kommo = FakeKommo::start().await.unwrap();
    let cal = FakeCalendly::start_with(CalConfig { auto_deliver: true, ..CalConfig::default() }).await.unwrap();
    let owner = kommo.seed_user("Mia Manager", "mia@agency.example");
    let contact = kommo.seed_contact("Ivan Petrov", Some("ivan@example.com"), None);
    let lead = kommo.seed_lead(SeedLead::new("Ivan's deal").contact(contact).responsible(owner));

    let port = free_port();
    let env = [("KOMMO_TOKEN", "fake-kommo-token"), ("CALENDLY_TOKEN", DEFAULT_TOKEN)];
    let cli = Cli::new(BIN, &config(&kommo, &cal, port), &env);
    let (child, log) = cli.serve(port, "serve.log").await;
    wait_components_ready(port, child.id(), COMPONENTS).await;
    let subs = cal.subscriptions();
    assert_eq!(subs.len(), 1, "serve created the subscription");
    assert_eq!(subs[0].subscription.callback_url, format!("http://127.0.0.1:{port}/hooks/calendly"));

    // Ivan books: Calendly posts invitee.created to serve, a meeting task lands on his open deal
    let start = chrono::Utc::now() + chrono::Duration::hours(30);
    let booked = cal.book(Booking::new("ivan@example.com", "Ivan Petrov", start));
    let tasks = || kommo.tasks_for(EntityType::Leads, lead.get());
    wait_for("the meeting task", 60, async || !tasks().is_empty()).await;
    let task = &tasks()[0];
    assert_eq!(task.task_type_id, i64::try_from(TASK_TYPE_MEETING).ok(), "{task:?}");
    assert_eq!(task.responsible_user_id, Some(owner));
    assert!(task.text.contains("Ivan Petrov"), "{}", task.text);

    // a forged delivery (wrong key) is refused; a redelivery of the genuine one changes nothing
    let http = reqwest::Client::new();
    assert_eq!(booked.webhooks[0].forged().post(&http).await.unwrap(), 401);
    assert_eq!(cal.deliver(&booked.webhooks[0]).await.unwrap(), 200);
    wait_for("an empty queue", 30, async || {
        let out = String::from_utf8_lossy(&cli.run("status").await.stdout).into_owned();
        !out.contains("queued") && !out.contains("running")
    })
    .await;
    interrupt(child, &log).await;
    assert_eq!(tasks().len(), 1, "one task for one booking");
    let text = String::from_utf8_lossy(&cli.run("status").await.stdout).into_owned();
    assert!(text.contains("dead letters: 0"), "{text}");
}

/// Scale-out: two `serve` processes on one PostgreSQL schema. The first creates the Calendly subscription with a
/// key it generates and stores, the second adopts it (one subscription, one key); a booking and its cancellation
/// are delivered to both processes and applied once: one meeting task (type, owner, due time, text), closed on
/// cancel, one booking note and one cancel note with the reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_serve_processes_share_one_postgres() {
    let Some(pg) = PgSchema::create().await else { return };
    let kommo = FakeKommo::start().await.unwrap();
    let cal = FakeCalendly::start().await.unwrap();
    let owner = kommo.seed_user("Mia Manager", "mia@agency.example");
    let contact = kommo.seed_contact("Ivan Petrov", Some("ivan@example.com"), None);
    let lead = kommo.seed_lead(SeedLead::new("Ivan's deal").contact(contact).responsible(owner));
    let ports = [free_port(), free_port()];
    let env = [("KOMMO_TOKEN", "fake-kommo-token"), ("CALENDLY_TOKEN", DEFAULT_TOKEN)];
    // Kommo's 7 requests/s per account, split by hand while budgets are per process
    let text = config(&kommo, &cal, ports[0]).replace("requests_per_second = 7", "requests_per_second = 3");
    let mut cli = Cli::new(BIN, &text, &env);
    cli.database = pg.database();
    let mut procs = Vec::new();
    for (i, port) in ports.iter().enumerate() {
        let (child, log) = cli.serve(*port, &format!("{i}.log")).await;
        wait_components_ready(*port, child.id(), COMPONENTS).await;
        procs.push((child, log));
    }
    let subs = cal.subscriptions();
    assert_eq!(subs.len(), 1, "adopted, not duplicated: {subs:?}");

    let start = chrono::DateTime::from_timestamp(chrono::Utc::now().timestamp() + 30 * 3600, 0).unwrap();
    let booked = cal.book(Booking::new("ivan@example.com", "Ivan Petrov", start));
    let _ = cal.take_outbox();
    for w in &booked.webhooks {
        for port in ports {
            assert_eq!(post_to(w, port).await, 200);
        }
    }
    let tasks = || kommo.tasks_for(EntityType::Leads, lead.get());
    wait_for("the meeting task", 60, async || !tasks().is_empty()).await;
    let (_, canceled) = cal.cancel(&booked.invitee.uri, Some("Found another vendor"), CancelerType::Invitee).unwrap();
    let _ = cal.take_outbox();
    for w in &canceled {
        for port in ports {
            assert_eq!(post_to(w, port).await, 200);
        }
    }
    wait_for("the closed task", 60, async || tasks().first().is_some_and(|t| t.is_completed)).await;
    wait_for("an empty queue", 60, async || {
        let out = String::from_utf8_lossy(&cli.run("status").await.stdout).into_owned();
        !out.contains("queued") && !out.contains("running")
    })
    .await;
    for (child, log) in procs {
        interrupt(child, &log).await;
    }
    let all = tasks();
    assert_eq!(all.len(), 1, "one task for one booking delivered twice: {all:?}");
    let task = &all[0];
    assert_eq!(task.task_type_id, i64::try_from(TASK_TYPE_MEETING).ok(), "{task:?}");
    assert_eq!(task.responsible_user_id, Some(owner));
    assert_eq!(task.complete_till, Some(start.timestamp()), "due at the meeting start");
    assert!(task.text.contains("Ivan Petrov"), "{}", task.text);
    assert!(task.is_completed, "closed by the cancellation");
    let notes = lead_notes(&kommo, lead);
    assert_eq!(notes.len(), 2, "one booking note and one cancel note: {notes:?}");
    assert_eq!(notes.iter().filter(|n| n.contains("Found another vendor")).count(), 1, "{notes:?}");
    let stored = pg.count("SELECT count(*) FROM {s}.inbox WHERE source = 'calendly'").await;
    assert_eq!(stored, i64::try_from(booked.webhooks.len() + canceled.len()).unwrap(), "each delivery stored once");
    assert_eq!(cal.subscriptions().len(), 1);
    let text = String::from_utf8_lossy(&cli.run("status").await.stdout).into_owned();
    assert!(text.contains("dead letters: 0"), "{text}");
    pg.drop_schema().await;
}

/// A first start while Calendly and Kommo answer 503: `serve` listens at once, but it knows no signing key yet (the
/// subscription cannot be created), so a delivery is refused with 401 (Calendly retries), never accepted
/// unverified; `/readyz` (200, `degraded`) and `status` show both components failing. After recovery the
/// subscription is created with our key and a booking becomes the meeting task, field by field.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_starts_while_calendly_and_kommo_answer_503_and_refuses_unverifiable_deliveries() {
    let kommo = FakeKommo::start().await.unwrap();
    let cal = FakeCalendly::start_with(CalConfig { auto_deliver: true, ..CalConfig::default() }).await.unwrap();
    let owner = kommo.seed_user("Mia Manager", "mia@agency.example");
    let contact = kommo.seed_contact("Ivan Petrov", Some("ivan@example.com"), None);
    let lead = kommo.seed_lead(SeedLead::new("Ivan's deal").contact(contact).responsible(owner));
    let outage = api_core::fake::Fault::json(503, &serde_json::json!({"title": "Service Unavailable"}));
    kommo.faults().inject(None, "/api", outage.clone(), u32::MAX);
    cal.server.faults.inject(None, "/", outage, u32::MAX);
    let port = free_port();
    let env = [("KOMMO_TOKEN", "fake-kommo-token"), ("CALENDLY_TOKEN", DEFAULT_TOKEN)];
    let cli = Cli::new(BIN, &config(&kommo, &cal, port), &env);
    let (child, log) = cli.serve(port, "serve.log").await;
    let pid = child.id();

    let refused = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/hooks/calendly"))
        .header("content-type", "application/json")
        .header("calendly-webhook-signature", format!("t={},v1={}", chrono::Utc::now().timestamp(), "00".repeat(32)))
        .body(r#"{"event":"invitee.created","payload":{}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status().as_u16(), 401);
    assert!(refused.text().await.unwrap().contains("no Calendly signing key known yet"));
    wait_for("both components failing", 60, async || {
        let (status, body) = readyz(port).await;
        status == 200 && COMPONENTS.iter().all(|c| component(&body, c, pid).is_some_and(|v| v["state"] == "failing"))
    })
    .await;
    assert_eq!(readyz(port).await.1["status"], "degraded");
    let text = String::from_utf8_lossy(&cli.run("status").await.stdout).into_owned();
    let line = text.lines().find(|l| l.trim_start().starts_with("webhook:calendly")).unwrap_or_default();
    assert!(line.contains("failing") && line.contains("503"), "{text}");
    assert!(cal.subscriptions().is_empty());

    kommo.faults().clear();
    cal.server.faults.clear();
    wait_components_ready(port, pid, COMPONENTS).await;
    assert_eq!(cal.subscriptions().len(), 1);
    let start = chrono::DateTime::from_timestamp(chrono::Utc::now().timestamp() + 30 * 3600, 0).unwrap();
    let _ = cal.book(Booking::new("ivan@example.com", "Ivan Petrov", start));
    let tasks = || kommo.tasks_for(EntityType::Leads, lead.get());
    wait_for("the meeting task", 60, async || !tasks().is_empty()).await;
    wait_for("an empty queue", 30, async || {
        let out = String::from_utf8_lossy(&cli.run("status").await.stdout).into_owned();
        !out.contains("queued") && !out.contains("running")
    })
    .await;
    interrupt(child, &log).await;
    let all = tasks();
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(all[0].task_type_id, i64::try_from(TASK_TYPE_MEETING).ok());
    assert_eq!(all[0].responsible_user_id, Some(owner));
    assert_eq!(all[0].complete_till, Some(start.timestamp()));
    assert!(all[0].text.contains("Ivan Petrov") && !all[0].is_completed, "{:?}", all[0]);
    assert_eq!(lead_notes(&kommo, lead).len(), 1, "one booking note");
    let text = String::from_utf8_lossy(&cli.run("status").await.stdout).into_owned();
    assert!(text.contains("dead letters: 0"), "{text}");
}
