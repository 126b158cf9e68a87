//! The `kommo-airtable` binary end to end: `serve` and `backfill` run as real processes, configured by the shipped
//! example config (pointed at the in-process fakes on 127.0.0.1) and env-var tokens, exactly as an operator would
//! run them; `status` reads the database they leave behind.
#![allow(missing_docs, clippy::print_stdout, clippy::print_stderr)]

use airtable_client::fake::{FAKE_TOKEN, FakeAirtable, FakeBase, FakeUser};
use examples::kommo_airtable_fixture::{TABLE, add_onboarding_table};
use kommo_api::fake::{FakeKommo, SeedLead};
use kommo_api::{EntityType, FieldType, LeadId, StatusId};
use serde_json::json;

mod common;
use common::{
    Cli, component, free_port, interrupt, lead_notes, post_webhook_to, readyz, wait_components_ready, wait_for,
};

const BIN: &str = env!("CARGO_BIN_EXE_kommo-airtable");
const SECRET: &str = "cli-test-secret";

struct World {
    kommo: FakeKommo,
    airtable: FakeAirtable,
    base: FakeBase,
    cli: Cli,
    user: kommo_api::UserId,
    contact: kommo_api::ContactId,
}

impl World {
    /// Fakes (enforcing the vendors' rate limits) with the schema the shipped config maps, and that config
    /// rewritten to point at them.
    async fn start(notification_url: Option<&str>) -> World {
        let (kommo, airtable) = (FakeKommo::start().await.unwrap(), FakeAirtable::start().await.unwrap());
        let base = airtable.base();
        add_onboarding_table(&base);
        let _ = kommo.seed_custom_field(EntityType::Leads, "Next Contact Date", FieldType::Date, None, &[]);
        let user = kommo.seed_user("Rita Responsible", "rita@example.com");
        let contact = kommo.seed_contact("Ada Client", Some("ada@client.example"), Some("+1 555 0100"));

        let shipped = include_str!("../config/kommo-airtable.toml");
        let at_url = airtable.base_url().clone();
        let mut text = shipped
            .replace("https://yourcompany.kommo.com", kommo.base_url().as_str().trim_end_matches('/'))
            .replace("appXXXXXXXXXXXXXX", base.id().as_str())
            .replace("[airtable]\n", &format!("[airtable]\nbase_url = \"{}\"\n", at_url.trim_end_matches('/')));
        text = match notification_url {
            Some(url) => text.replace("https://your-host.example/hooks/airtable-ping", url),
            None => text.lines().filter(|l| !l.starts_with("notification_url")).collect::<Vec<_>>().join("\n"),
        };
        text = text.replace("# account_id = 30739638", &format!("account_id = {}", kommo.account_id()));
        assert_ne!(text, shipped, "the shipped config still has the placeholders this test replaces");
        let env =
            [("KOMMO_TOKEN", "fake-kommo-token"), ("AIRTABLE_TOKEN", FAKE_TOKEN), ("KOMMO_WEBHOOK_SECRET", SECRET)];
        let cli = Cli::new(BIN, &text, &env);
        World { kommo, airtable, base, cli, user, contact }
    }

    /// The "Kommo Deal ID" of every onboarding record, sorted.
    fn record_deal_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .base
            .records(TABLE)
            .iter()
            .filter_map(|r| r.fields.get_str("Kommo Deal ID").map(str::to_owned))
            .collect();
        ids.sort();
        ids
    }

    fn won_lead(&self, name: &str, tag: Option<&str>) -> LeadId {
        let mut seed = SeedLead::new(name)
            .price(1_000)
            .responsible(self.user)
            .contact(self.contact)
            .stage(self.kommo.main_pipeline(), StatusId::WON);
        if let Some(t) = tag {
            seed = seed.tag(t);
        }
        self.kommo.seed_lead(seed)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_receives_syncs_both_ways_and_shuts_down_on_sigint() {
    let port = free_port();
    let ping_url = format!("http://127.0.0.1:{port}/hooks/airtable-ping");
    let w = World::start(Some(&ping_url)).await;
    let (child, log) = w.cli.serve(port, "serve.log").await;
    wait_components_ready(port, child.id(), &["validation", "webhook:airtable"]).await;
    let base_url = format!("http://127.0.0.1:{port}");

    // start-up created the Airtable webhook, pointed at our receiver
    let hooks = w.base.webhooks();
    assert_eq!(hooks.len(), 1, "{hooks:?}");
    assert_eq!(hooks[0].notification_url.as_deref(), Some(ping_url.as_str()));

    // a won deal arrives by webhook (the wrong path secret is refused first)
    let lead = w.won_lead("CLI onboarding", None);
    let body = w.kommo.webhook_for_lead_status(lead);
    let post = |secret: &str| post_webhook_to(format!("{base_url}/hooks/kommo/{secret}"), body.clone());
    assert_eq!(post("wrong").await, 401);
    for _ in 0..3 {
        assert_eq!(post(SECRET).await, 200);
    }
    wait_for("the onboarding record", 60, async || w.base.records(TABLE).len() == 1).await;
    let rec = w.base.records(TABLE).remove(0);
    assert_eq!(rec.fields.get_str("Kommo Deal ID"), Some(lead.to_string().as_str()));
    assert_eq!(rec.fields.get_str("Deal Name"), Some("CLI onboarding"));

    // someone moves the status in Airtable: the ping reaches `serve`, a note lands on the lead
    let editor = FakeUser::with_email("olivia@agency.example");
    w.base.user_edit(TABLE, &rec.id, json!({"Status": "In Progress"}), &editor).unwrap();
    let notes = || lead_notes(&w.kommo, lead);
    wait_for("the status note", 60, async || notes().iter().any(|n| n.contains("Onboarding status: In Progress")))
        .await;

    // a tagged deal is filtered
    let tagged = w.won_lead("Internal test deal", Some("test"));
    let body = w.kommo.webhook_for_lead_status(tagged);
    assert_eq!(post_webhook_to(format!("{base_url}/hooks/kommo/{SECRET}"), body).await, 200);
    // it has no effect to wait for: watch for it in `status`, read while `serve` runs (SQLite WAL readers)
    wait_for("the filtered event in status", 60, async || {
        String::from_utf8_lossy(&w.cli.run("status").await.stdout).contains("filtered: tagged `test`")
    })
    .await;

    // a webhook naming another Kommo account: accepted (the receiver only checks the path secret), then
    // dead-lettered by the flow, never silently dropped; `replay` puts it back in the queue
    let own = format!("account%5Bid%5D={}", w.kommo.account_id());
    let other = w.won_lead("Deal of another account", None);
    let forged = w.kommo.webhook_for_lead_status(other);
    assert!(forged.contains(&own), "{forged}");
    let forged = forged.replace(&own, "account%5Bid%5D=999");
    assert_eq!(post_webhook_to(format!("{base_url}/hooks/kommo/{SECRET}"), forged).await, 200);
    let dead_id = std::cell::Cell::new(None::<String>);
    wait_for("the dead letter in status", 60, async || {
        let out = String::from_utf8_lossy(&w.cli.run("status").await.stdout).into_owned();
        let id =
            out.lines().find_map(|l| l.trim().strip_prefix("dead #")?.split_whitespace().next().map(str::to_owned));
        let found = id.is_some() && out.contains("webhook from another account");
        dead_id.set(id);
        found
    })
    .await;
    let dead_id = dead_id.take().unwrap();
    let out = w.cli.run_with("replay", &[&dead_id]).await;
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("event #{dead_id} is queued again")));
    let out = w.cli.run_with("replay", &["999999"]).await;
    assert!(!out.status.success(), "replaying something that is not a dead letter fails");
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not a dead letter"), "{out:?}");
    // replayed with a fresh attempt budget, it fails again for the same reason (the sender is still wrong)
    wait_for("the replayed event to finish", 60, async || {
        String::from_utf8_lossy(&w.cli.run("status").await.stdout).contains("dead letters: 1")
    })
    .await;

    interrupt(child, &log).await;
    let logs = std::fs::read_to_string(&log).unwrap_or_default();
    let dead_lines =
        logs.lines().filter(|l| l.contains(&format!("id={dead_id} ")) && l.contains("dead letter")).count();
    assert_eq!(dead_lines, 2, "dead-lettered, replayed, dead-lettered again (logged each time)\n{logs}");
    assert_eq!(w.base.records(TABLE).len(), 1, "the tagged deal made no record\n{logs}");
    assert_eq!(notes().iter().filter(|n| n.contains("Onboarding status")).count(), 1, "{:?}\n{logs}", notes());

    // `status` on the database serve left behind: everything done, the filtered event with its reason
    let out = w.cli.run("status").await;
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    println!("{text}");
    assert!(!text.contains("queued") && !text.contains("running"), "{text}");
    assert!(text.contains("dead letters: 1"), "{text}");
    assert!(text.contains("filtered: tagged `test`"), "{text}");
}

/// The restart the issue describes: `serve` starts while Kommo and Airtable answer every request with 503. It
/// listens at once and stores the won deal's webhook (200); `/readyz` stays 200 (`degraded`) and `status` shows the
/// failing validation with its error while nothing is written. When both recover, validation passes, the Airtable
/// webhook is created, and the waiting event becomes the onboarding record, checked field by field.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_accepts_webhooks_while_kommo_and_airtable_answer_503_and_applies_them_after() {
    let port = free_port();
    let ping_url = format!("http://127.0.0.1:{port}/hooks/airtable-ping");
    let w = World::start(Some(&ping_url)).await;
    let outage = api_core::fake::Fault::json(503, &json!({"errors": [{"status": 503}]}));
    w.kommo.faults().inject(None, "/api", outage.clone(), u32::MAX);
    w.airtable.faults().inject(None, "/v0", outage, u32::MAX);
    let (child, log) = w.cli.serve(port, "serve.log").await;
    let pid = child.id();
    let lead = w.won_lead("Outage onboarding", None);
    let body = w.kommo.webhook_for_lead_status(lead);
    assert_eq!(post_webhook_to(format!("http://127.0.0.1:{port}/hooks/kommo/{SECRET}"), body).await, 200);
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
    assert!(w.base.records(TABLE).is_empty() && w.base.webhooks().is_empty(), "nothing written while down");

    w.kommo.faults().clear();
    w.airtable.faults().clear();
    wait_components_ready(port, pid, &["validation", "webhook:airtable"]).await;
    wait_for("the onboarding record", 60, async || w.base.records(TABLE).len() == 1).await;
    // the record's creation comes back through the new webhook as an echo of our own write: let it finish
    wait_for("an empty queue", 60, async || {
        let out = String::from_utf8_lossy(&w.cli.run("status").await.stdout).into_owned();
        !out.contains("queued") && !out.contains("running")
    })
    .await;
    interrupt(child, &log).await;
    let hooks = w.base.webhooks();
    assert_eq!(hooks.len(), 1, "{hooks:?}");
    assert_eq!(hooks[0].notification_url.as_deref(), Some(ping_url.as_str()));
    let records = w.base.records(TABLE);
    assert_eq!(records.len(), 1, "{records:?}");
    let f = &records[0].fields;
    assert_eq!(f.get_str("Kommo Deal ID"), Some(lead.to_string().as_str()));
    assert_eq!(f.get_str("Deal Name"), Some("Outage onboarding"));
    assert_eq!(f.get_str("Status"), Some("Not Started"));
    assert_eq!(f.get_f64("Deal Value"), Some(1_000.0));
    assert_eq!(f.get_str("Responsible"), Some("Rita Responsible"));
    assert_eq!(f.get_str("Client Name"), Some("Ada Client"));
    assert_eq!(f.get_str("Email"), Some("ada@client.example"));
    assert_eq!(f.get_str("Phone"), Some("+1 555 0100"));
    let text = String::from_utf8_lossy(&w.cli.run("status").await.stdout).into_owned();
    assert!(text.contains("dead letters: 0"), "{text}");
    assert!(!text.contains("queued") && !text.contains("running"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_pushes_won_deals_once_and_is_safe_to_rerun() {
    let w = World::start(None).await;
    let leads: Vec<LeadId> = (0..3).map(|i| w.won_lead(&format!("Backfill {i}"), None)).collect();
    let _tagged = w.won_lead("Backfill internal", Some("internal"));
    let pipeline = w.kommo.main_pipeline();
    let open = w.kommo.stages(pipeline)[0];
    let _open = w.kommo.seed_lead(SeedLead::new("Still open").contact(w.contact).stage(pipeline, open));

    let out = w.cli.run("backfill").await;
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("4 won deals found, 4 new events queued (0 already known)"), "{stdout}");
    assert!(stdout.contains("dead letters: 0"), "{stdout}");
    assert_eq!(w.record_deal_ids(), sorted_ids(&leads), "one record per untagged won deal");

    let again = w.cli.run("backfill").await;
    assert!(again.status.success());
    let stdout = String::from_utf8_lossy(&again.stdout);
    assert!(stdout.contains("4 won deals found, 0 new events queued (4 already known)"), "{stdout}");
    assert_eq!(w.base.records(TABLE).len(), 3, "re-running adds nothing");
}

/// Scale-out: two `serve` processes on one PostgreSQL schema. The second adopts the Airtable webhook the first
/// created (its MAC secret comes from the shared store); every deal's webhook reaches both processes, and each
/// deal still gets exactly one record. Rate limits are kept per process, so the config splits the vendors'
/// budgets between the two (Kommo 3 + 3 of 7/s, Airtable 2 + 2 of 5/s) and the fakes enforce the real limits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_serve_processes_share_one_postgres() {
    let Ok(url) = std::env::var("SYNC_TEST_POSTGRES_URL") else {
        println!("skipped: SYNC_TEST_POSTGRES_URL not set");
        return;
    };
    let schema = format!("cli_{}", uuid::Uuid::new_v4().simple());
    // the schema is made (and migrated) once; both processes reach it through `search_path` in their URL
    let store =
        sync_core::Store::connect(&url, sync_core::StoreOptions::default().pg_schema(schema.clone())).await.unwrap();
    store.close().await;
    let (port_a, port_b) = (free_port(), free_port());
    let ping_url = format!("http://127.0.0.1:{port_a}/hooks/airtable-ping");
    let mut w = World::start(Some(&ping_url)).await;
    let text = std::fs::read_to_string(&w.cli.config).unwrap();
    let text = text.replace("requests_per_second = 7", "requests_per_second = 3");
    std::fs::write(&w.cli.config, text.replace("requests_per_second = 5", "requests_per_second = 2")).unwrap();
    w.cli.database = format!("{url}{}options[search_path]={schema}", if url.contains('?') { '&' } else { '?' });

    let (a, log_a) = w.cli.serve(port_a, "a.log").await;
    wait_components_ready(port_a, a.id(), &["validation", "webhook:airtable"]).await;
    let (b, log_b) = w.cli.serve(port_b, "b.log").await;
    wait_components_ready(port_b, b.id(), &["validation", "webhook:airtable"]).await;
    assert_eq!(w.base.webhooks().len(), 1, "the second process adopted the first one's webhook");
    let logs_b = std::fs::read_to_string(&log_b).unwrap();
    assert!(!logs_b.contains("Airtable webhook created"), "{logs_b}");

    const DEALS: usize = 30;
    let leads: Vec<LeadId> = (0..DEALS).map(|i| w.won_lead(&format!("Scale-out {i}"), None)).collect();
    for lead in &leads {
        let body = w.kommo.webhook_for_lead_status(*lead);
        for port in [port_a, port_b] {
            assert_eq!(
                post_webhook_to(format!("http://127.0.0.1:{port}/hooks/kommo/{SECRET}"), body.clone()).await,
                200
            );
        }
    }
    wait_for("one record per deal", 120, async || w.base.records(TABLE).len() >= DEALS).await;
    wait_for("an empty queue", 60, async || {
        let out = String::from_utf8_lossy(&w.cli.run("status").await.stdout).into_owned();
        !out.contains("queued") && !out.contains("running")
    })
    .await;
    interrupt(a, &log_a).await;
    interrupt(b, &log_b).await;

    assert_eq!(w.record_deal_ids(), sorted_ids(&leads), "exactly one record per deal");
    assert_eq!(w.airtable.throttled_count(), 0, "two processes stayed inside the base's 5/s together");
    let out = w.cli.run("status").await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("dead letters: 0"), "{text}");
    let kommo_done = text
        .lines()
        .find(|l| l.starts_with("kommo ") && l.contains(" done "))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|n| n.parse::<usize>().ok());
    assert!(kommo_done.is_some_and(|n| n >= DEALS), "{text}");

    use sqlx::{Connection, Executor};
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    // The reconcile poll's first pass (at start-up) may see a won lead before its webhook arrives and store that
    // state under its own key; what this test checks is that each webhook, sent to both processes, is stored once.
    let webhook_events: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM {schema}.inbox WHERE source = 'kommo' AND dedup_key NOT LIKE '%:poll'"
    )))
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(
        webhook_events,
        i64::try_from(DEALS).unwrap(),
        "one stored webhook event per deal, the second delivery of each was a duplicate\n{text}"
    );
    conn.execute(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE"))).await.unwrap();
}

/// Lead ids as the sorted texts the records hold.
fn sorted_ids(leads: &[LeadId]) -> Vec<String> {
    let mut ids: Vec<String> = leads.iter().map(ToString::to_string).collect();
    ids.sort();
    ids
}
