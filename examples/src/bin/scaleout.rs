//! Scale-out bench: several `serve` processes of one binary on one PostgreSQL schema, fed a backlog of Kommo
//! deliveries, against the built-in fakes, which enforce the vendors' limits strictly (Kommo: 7 requests in any
//! sliding second per account, 429 then the 403 ban; Airtable: 5 per second per base, 30 s after a 429). The
//! configs carry each vendor's whole limit (7 and 5), not a share per process: the processes draw from one budget in
//! the database (`sync_core::StoreBudget`).
//!
//! Measured at the fake, on arrival times: the request rate to the bounding vendor (Kommo for kommo-customerio;
//! Airtable for kommo-airtable, run with Kommo's limit lifted in its fake and its config, since that flow makes
//! about twice as many Kommo requests as Airtable requests per event) over the whole run and over its steady middle (the requests between the 10th and
//! the 90th percentile of arrivals, leaving out start-up and the tail), the most requests in any sliding second, and
//! the 429s. Exits non-zero when a 429 was answered, a sliding second held more than the vendor allows, the steady
//! rate is below 90 % of the vendor's limit, or an event was not applied.
//!
//! ```text
//! cargo build --release -p examples --bins
//! target/release/scaleout --flow kommo-customerio --processes 3 --leads 300
//! target/release/scaleout --flow kommo-airtable --processes 3 --leads 200
//! ```
//! It runs the sibling binaries of its own executable (build them first) and needs PostgreSQL (`--postgres`, default
//! `$SYNC_TEST_POSTGRES_URL` or `postgres://postgres@127.0.0.1:5432/test`); it uses a fresh schema and drops it.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

use airtable_client::fake::{FAKE_TOKEN, FakeAirtable};

use api_core::fake::LoggedRequest;
use clap::{Parser, ValueEnum};
use customerio_api::fake::FakeCustomerIo;
use examples::bench::{arrivals, rate, spawn_serve, wait_ready};
use examples::kommo_airtable_fixture::add_onboarding_table;
use kommo_api::fake::{FakeConfig, FakeKommo, SeedLead};
use kommo_api::{EntityType, FieldType, LeadId, StatusId};
use sync_core::{State, Store, StoreOptions};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Flow {
    /// Kommo-bound: each event reads the lead and its contact from Kommo, then writes to Customer.io.
    KommoCustomerio,
    /// Airtable-bound: each event reads the lead from Kommo, then looks up and upserts one Airtable record.
    KommoAirtable,
}

/// Scale-out bench (see the module docs).
#[derive(Debug, Parser)]
struct Args {
    /// The flow (and binary) to run.
    #[arg(long, value_enum, default_value_t = Flow::KommoCustomerio)]
    flow: Flow,
    /// `serve` processes sharing the schema.
    #[arg(long, default_value_t = 3)]
    processes: usize,
    /// Leads (one delivery, one event each).
    #[arg(long, default_value_t = 300)]
    leads: usize,
    /// PostgreSQL server URL.
    #[arg(long, env = "SYNC_TEST_POSTGRES_URL", default_value = "postgres://postgres@127.0.0.1:5432/test")]
    postgres: String,
}

const SECRET: &str = "scaleout-path-secret";

async fn open_events(store: &Store) -> anyhow::Result<(i64, i64)> {
    let s = store.status().await?;
    let open = s.depth.iter().filter(|((_, st), _)| matches!(st, State::Queued | State::Running)).map(|(_, n)| n).sum();
    Ok((open, s.dead))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let (bin_name, shipped) = match args.flow {
        Flow::KommoCustomerio => ("kommo-customerio", include_str!("../../config/kommo-customerio.toml")),
        Flow::KommoAirtable => ("kommo-airtable", include_str!("../../config/kommo-airtable.toml")),
    };
    let bin: PathBuf = std::env::current_exe()?.with_file_name(bin_name);
    anyhow::ensure!(bin.exists(), "{} is missing: build the example binaries first", bin.display());

    // the fakes, with their default (strict) limits
    // kommo-airtable measures Airtable: Kommo's limit is lifted on both sides (fake and config) so that Airtable,
    // not Kommo (about twice as many requests per event there), bounds the run
    let kommo = match args.flow {
        Flow::KommoCustomerio => FakeKommo::start().await?,
        Flow::KommoAirtable => FakeKommo::start_with(FakeConfig { rate_limit: None, ..FakeConfig::default() }).await?,
    };
    let cio = FakeCustomerIo::start().await?;
    let airtable = FakeAirtable::start().await?;
    let base = airtable.base();
    add_onboarding_table(&base);
    let user = kommo.seed_user("Rita Responsible", "rita@example.com");
    let mut text = shipped
        .replace("https://yourcompany.kommo.com", kommo.base_url().as_str().trim_end_matches('/'))
        .replace("# account_id = 30739638", &format!("account_id = {}", kommo.account_id()))
        .replace("# account_id = 12345678", &format!("account_id = {}", kommo.account_id()));
    let mut env: Vec<(&str, String)> =
        vec![("KOMMO_TOKEN", "fake-kommo-token".into()), ("KOMMO_WEBHOOK_SECRET", SECRET.into())];
    let leads: Vec<LeadId> = match args.flow {
        Flow::KommoCustomerio => {
            let _ = kommo.seed_custom_field(EntityType::Contacts, "Email unsubscribed", FieldType::Checkbox, None, &[]);
            let (pipeline, stages) = kommo.seed_pipeline("Sales", &["New", "In contact", "Proposal sent"]);
            let c = cio.config();
            text = text
                .replace("\"your-site-id\"", &format!("\"{}\"", c.site_id))
                .replace("[customerio]\n", &format!("[customerio]\nbase_url = \"{}\"\n", cio.base_url()));
            env.push(("CUSTOMERIO_TRACK_API_KEY", c.track_api_key.clone()));
            env.push(("CUSTOMERIO_WEBHOOK_SIGNING_KEY", c.webhook_signing_key.clone()));
            (0..args.leads)
                .map(|i| {
                    let contact =
                        kommo.seed_contact(&format!("Client {i}"), Some(&format!("client{i}@example.com")), None);
                    let lead = kommo.seed_lead(
                        SeedLead::new(format!("Deal {i}"))
                            .price(1_000)
                            .responsible(user)
                            .contact(contact)
                            .stage(pipeline, stages[0]),
                    );
                    kommo.update_lead(lead, &serde_json::json!({"status_id": stages[2].get()}));
                    lead
                })
                .collect()
        }
        Flow::KommoAirtable => {
            let _ = kommo.seed_custom_field(EntityType::Leads, "Next Contact Date", FieldType::Date, None, &[]);
            text = text
                .replacen("requests_per_second = 7 ", "requests_per_second = 0 ", 1)
                .replace("appXXXXXXXXXXXXXX", base.id().as_str())
                .replace(
                    "[airtable]\n",
                    &format!("[airtable]\nbase_url = \"{}\"\n", airtable.base_url().as_str().trim_end_matches('/')),
                )
                .lines()
                .filter(|l| !l.starts_with("notification_url"))
                .collect::<Vec<_>>()
                .join("\n");
            env.push(("AIRTABLE_TOKEN", FAKE_TOKEN.into()));
            (0..args.leads)
                .map(|i| {
                    let contact =
                        kommo.seed_contact(&format!("Client {i}"), Some(&format!("client{i}@example.com")), None);
                    kommo.seed_lead(
                        SeedLead::new(format!("Deal {i}"))
                            .price(1_000)
                            .responsible(user)
                            .contact(contact)
                            .stage(kommo.main_pipeline(), StatusId::WON),
                    )
                })
                .collect()
        }
    };

    // one schema, migrated once, shared by every process
    let schema = format!("scaleout_{}", uuid::Uuid::new_v4().simple());
    let store = Store::connect(&args.postgres, StoreOptions::default().pg_schema(schema.clone())).await?;
    let database = format!(
        "{}{}options[search_path]={schema}",
        args.postgres,
        if args.postgres.contains('?') { '&' } else { '?' }
    );
    let dir = tempfile::tempdir()?;
    let config = dir.path().join("config.toml");
    std::fs::write(&config, &text)?;

    let mut children = Vec::new();
    for i in 0..args.processes {
        children.push(spawn_serve(&bin, &config, &database, &env, &dir.path().join(format!("serve-{i}.log")))?);
    }
    for c in &children {
        wait_ready(c.port, c.process.id().unwrap_or_default()).await?;
    }
    println!("{} × {bin_name} serve ready on one PostgreSQL schema; {} deliveries", args.processes, leads.len());

    // the backlog: one status-change delivery per lead, spread over the processes
    let http = reqwest::Client::new();
    let started = Instant::now();
    for (i, lead) in leads.iter().enumerate() {
        let port = children[i % children.len()].port;
        let resp = http
            .post(format!("http://127.0.0.1:{port}/hooks/kommo/{SECRET}"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(kommo.webhook_for_lead_status(*lead))
            .send()
            .await?;
        anyhow::ensure!(resp.status().is_success(), "delivery refused: {}", resp.status());
    }
    let deadline = Instant::now() + Duration::from_secs(60 + 2 * args.leads as u64);
    loop {
        let (open, dead) = open_events(&store).await?;
        if open == 0 {
            anyhow::ensure!(dead == 0, "{dead} dead letters");
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "{open} events still open at the deadline");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let elapsed = started.elapsed();
    for c in &mut children {
        let _ = c.process.start_kill();
    }

    // what the vendors saw
    if std::env::var_os("SCALEOUT_DEBUG").is_some() {
        // the densest second of Kommo arrivals, request by request
        let mut log: Vec<LoggedRequest> =
            kommo.log().requests().into_iter().filter(|r| r.path.starts_with("/api/v4/")).collect();
        log.sort_by_key(|r| r.at);
        let (mut best, mut start) = ((0, 0), 0);
        for end in 0..log.len() {
            while log[end].at.duration_since(log[start].at) >= Duration::from_secs(1) {
                start += 1;
            }
            if end - start > best.1 - best.0 {
                best = (start, end);
            }
        }
        let t0 = log[0].at;
        for r in &log[best.0.saturating_sub(2)..=(best.1 + 2).min(log.len() - 1)] {
            eprintln!("{:>10.3} s {} {}", r.at.duration_since(t0).as_secs_f64(), r.method, r.path);
        }
    }
    let kommo_rate = rate(arrivals(&kommo.log().requests(), |r| r.path.starts_with("/api/v4/")));
    let base_path = format!("/v0/{}/", base.id().as_str());
    let airtable_rate = rate(arrivals(&airtable.log().requests(), |r| r.path.starts_with(&base_path)));
    let (limit, bound, throttled, applied): (u32, _, _, _) = match args.flow {
        Flow::KommoCustomerio => {
            let applied = (0..args.leads)
                .filter(|i| cio.person(&customerio_api::Identifier::email(format!("client{i}@example.com"))).is_some())
                .count();
            (7, &kommo_rate, kommo.throttled(), applied)
        }
        Flow::KommoAirtable => {
            let applied = base.records(examples::kommo_airtable_fixture::TABLE).len();
            (5, &airtable_rate, airtable.throttled_count(), applied)
        }
    };
    println!("events applied: {applied} of {} in {:.1} s", args.leads, elapsed.as_secs_f64());
    println!("| vendor | requests | whole run req/s | steady req/s | max in any second | 429s |");
    println!("|---|---|---|---|---|---|");
    println!(
        "| Kommo | {} | {:.2} | {:.2} | {} | {} |",
        kommo_rate.requests,
        kommo_rate.whole,
        kommo_rate.steady,
        kommo_rate.max_in_second,
        kommo.throttled()
    );
    if args.flow == Flow::KommoAirtable {
        println!(
            "| Airtable (one base) | {} | {:.2} | {:.2} | {} | {} |",
            airtable_rate.requests,
            airtable_rate.whole,
            airtable_rate.steady,
            airtable_rate.max_in_second,
            airtable.throttled_count()
        );
    }
    let share = bound.steady / f64::from(limit) * 100.0;
    println!("bounding vendor: {share:.1} % of its {limit} req/s in the steady part");
    store.close().await;
    drop_schema(&args.postgres, &schema).await?;
    let mut failed = Vec::new();
    if throttled > 0 || kommo.throttled() > 0 {
        failed.push("429s answered".to_owned());
    }
    if bound.max_in_second > usize::try_from(limit).unwrap_or(usize::MAX) {
        failed.push(format!("{} requests in one sliding second", bound.max_in_second));
    }
    if share < 90.0 {
        failed.push(format!("steady rate {share:.1} % < 90 %"));
    }
    if applied != args.leads {
        failed.push(format!("{applied} of {} applied", args.leads));
    }
    if !failed.is_empty() {
        eprintln!("FAILED: {}; logs in {}", failed.join(", "), dir.keep().display());
        std::process::exit(1);
    }
    Ok(())
}

async fn drop_schema(url: &str, schema: &str) -> anyhow::Result<()> {
    use sqlx::{Connection as _, Executor as _};
    let mut conn = sqlx::PgConnection::connect(url).await?;
    conn.execute(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE"))).await?;
    Ok(())
}
