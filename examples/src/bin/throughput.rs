//! Throughput bench of `kommo-airtable` with batching (issue 25): the real binary against the built-in fakes,
//! which enforce the vendors' limits strictly (Kommo: 7 requests in any sliding second per account, 429 then the
//! 403 ban; Airtable: 5 per second per base, 30 s of 429s after one), each request delayed by `--latency-ms` at the
//! fake (a network round trip).
//!
//! - `--mode backfill`: `--leads` won deals in Kommo, then `kommo-airtable backfill` (one process) reads them and
//!   drains the queue; the figure is records per second end to end (start of the process to its exit, with the
//!   start-up validation, the Kommo listing and the drain). Target (issue 25): ≥ 40 records/s (80 % of Airtable's
//!   ceiling of 50 records/s per base) with 0 × 429.
//! - `--mode serve`: `--processes` `kommo-airtable serve` processes (several need `--postgres`), then one
//!   status-change delivery per deal sent by `--senders` concurrent senders; the figure is the time from the first
//!   delivery until every record is present in Airtable. Target: ≤ 60 s for 2,000 deliveries at 32 senders.
//!
//! Also reported, on arrival times at the fakes: requests per vendor, the most in any sliding second, the 429s.
//! Exits non-zero when a target is missed, a 429 was answered, or a record is missing.
//!
//! ```text
//! cargo build --release -p examples --bins
//! target/release/throughput --mode backfill --leads 2000 --latency-ms 50
//! target/release/throughput --mode serve --leads 2000 --senders 32 --latency-ms 50
//! ```
//! The database is a SQLite file in a temporary directory unless `--postgres <url>` is given (a fresh schema is
//! made and dropped).
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::{
    path::PathBuf,
    process::Stdio,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use airtable_client::fake::{FAKE_TOKEN, FakeAirtable};
use anyhow::{Context as _, bail};
use api_core::fake::Fault;
use clap::{Parser, ValueEnum};
use examples::bench::{arrivals, rate, spawn_serve, wait_ready};
use examples::kommo_airtable_fixture::{TABLE, add_onboarding_table};
use kommo_api::fake::{FakeKommo, SeedLead};
use kommo_api::{EntityType, FieldType, LeadId, StatusId};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// `kommo-airtable backfill` of won deals, then the drain.
    Backfill,
    /// `kommo-airtable serve` fed one delivery per deal by concurrent senders.
    Serve,
}

/// Throughput bench (see the module docs).
#[derive(Debug, Parser)]
struct Args {
    /// What to measure.
    #[arg(long, value_enum, default_value_t = Mode::Backfill)]
    mode: Mode,
    /// Won deals (one record each).
    #[arg(long, default_value_t = 2000)]
    leads: usize,
    /// Delay the fakes add to every API request, in milliseconds.
    #[arg(long, default_value_t = 50)]
    latency_ms: u64,
    /// Concurrent senders of the deliveries (serve).
    #[arg(long, default_value_t = 32)]
    senders: usize,
    /// `serve` processes (more than one needs `--postgres`).
    #[arg(long, default_value_t = 1)]
    processes: usize,
    /// Most lead events per batch (`[batch] max_events`; 1 turns batching off, for comparison).
    #[arg(long, default_value_t = 250)]
    batch: usize,
    /// PostgreSQL server URL (default: a SQLite file).
    #[arg(long)]
    postgres: Option<String>,
}

const SECRET: &str = "throughput-path-secret";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(args.processes == 1 || args.postgres.is_some(), "several processes need --postgres");
    let bin: PathBuf = std::env::current_exe()?.with_file_name("kommo-airtable");
    anyhow::ensure!(bin.exists(), "{} is missing: build the example binaries first", bin.display());

    // the fakes with their default (strict) limits, plus latency on every API request
    let kommo = FakeKommo::start().await?;
    let airtable = FakeAirtable::start().await?;
    let latency = Duration::from_millis(args.latency_ms);
    if !latency.is_zero() {
        kommo.faults().inject(None, "/api/v4/", Fault::Delay(latency), u32::MAX);
        airtable.faults().inject(None, "/v0/", Fault::Delay(latency), u32::MAX);
    }
    let base = airtable.base();
    add_onboarding_table(&base);
    let user = kommo.seed_user("Rita Responsible", "rita@example.com");
    let _ = kommo.seed_custom_field(EntityType::Leads, "Next Contact Date", FieldType::Date, None, &[]);
    let leads: Vec<LeadId> = (0..args.leads)
        .map(|i| {
            let contact = kommo.seed_contact(&format!("Client {i}"), Some(&format!("client{i}@example.com")), None);
            kommo.seed_lead(
                SeedLead::new(format!("Deal {i}"))
                    .price(1_000)
                    .responsible(user)
                    .contact(contact)
                    .stage(kommo.main_pipeline(), StatusId::WON),
            )
        })
        .collect();
    let text = include_str!("../../config/kommo-airtable.toml")
        .replace("https://yourcompany.kommo.com", kommo.base_url().as_str().trim_end_matches('/'))
        .replace("# account_id = 30739638", &format!("account_id = {}", kommo.account_id()))
        .replace("appXXXXXXXXXXXXXX", base.id().as_str())
        .replace(
            "[airtable]\n",
            &format!("[airtable]\nbase_url = \"{}\"\n", airtable.base_url().as_str().trim_end_matches('/')),
        )
        .replace("max_events = 250", &format!("max_events = {}", args.batch))
        .lines()
        .filter(|l| !l.starts_with("notification_url"))
        .collect::<Vec<_>>()
        .join("\n");
    let env: Vec<(&str, String)> = vec![
        ("KOMMO_TOKEN", "fake-kommo-token".into()),
        ("KOMMO_WEBHOOK_SECRET", SECRET.into()),
        ("AIRTABLE_TOKEN", FAKE_TOKEN.into()),
    ];
    let dir = tempfile::tempdir()?;
    let config = dir.path().join("config.toml");
    std::fs::write(&config, &text)?;
    let (database, schema) = match &args.postgres {
        Some(url) => {
            let schema = format!("throughput_{}", uuid::Uuid::new_v4().simple());
            // migrated once here, shared by every process
            let store =
                sync_core::Store::connect(url, sync_core::StoreOptions::default().pg_schema(schema.clone())).await?;
            store.close().await;
            let sep = if url.contains('?') { '&' } else { '?' };
            (format!("{url}{sep}options[search_path]={schema}"), Some(schema))
        }
        None => (format!("sqlite:{}", dir.path().join("sync.db").display()), None),
    };
    println!(
        "{} won deals; fakes: Kommo 7 req/s per account, Airtable 5 req/s per base (30 s after a 429), +{} ms per \
         request; batches of up to {}",
        args.leads, args.latency_ms, args.batch
    );

    let (elapsed, what) = match args.mode {
        Mode::Backfill => {
            let started = Instant::now();
            let out = tokio::process::Command::new(&bin)
                .arg("backfill")
                .arg("--config")
                .arg(&config)
                .arg("--database")
                .arg(&database)
                .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
                .env("RUST_LOG", "warn")
                .stdin(Stdio::null())
                .output()
                .await
                .with_context(|| format!("running {}", bin.display()))?;
            let elapsed = started.elapsed();
            print!("{}", String::from_utf8_lossy(&out.stdout));
            if !out.status.success() {
                eprintln!("{}", String::from_utf8_lossy(&out.stderr));
                bail!("backfill failed: {}", out.status);
            }
            (elapsed, "backfill (process start to exit)")
        }
        Mode::Serve => {
            let mut children = Vec::new();
            for i in 0..args.processes {
                children.push(spawn_serve(&bin, &config, &database, &env, &dir.path().join(format!("serve-{i}.log")))?);
            }
            for c in &children {
                wait_ready(c.port, c.process.id().unwrap_or_default()).await?;
            }
            let ports: Arc<Vec<u16>> = Arc::new(children.iter().map(|c| c.port).collect());
            let bodies: Arc<Vec<String>> = Arc::new(leads.iter().map(|l| kommo.webhook_for_lead_status(*l)).collect());
            let next = Arc::new(AtomicUsize::new(0));
            let http = reqwest::Client::new();
            let started = Instant::now();
            let mut senders = tokio::task::JoinSet::new();
            for _ in 0..args.senders.max(1) {
                let (ports, bodies, next, http) = (ports.clone(), bodies.clone(), next.clone(), http.clone());
                senders.spawn(async move {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(body) = bodies.get(i) else { return Ok::<_, anyhow::Error>(()) };
                        let port = ports[i % ports.len()];
                        let resp = http
                            .post(format!("http://127.0.0.1:{port}/hooks/kommo/{SECRET}"))
                            .header("content-type", "application/x-www-form-urlencoded")
                            .body(body.clone())
                            .send()
                            .await?;
                        anyhow::ensure!(resp.status().is_success(), "delivery refused: {}", resp.status());
                    }
                });
            }
            while let Some(r) = senders.join_next().await {
                r??;
            }
            let sent = started.elapsed();
            println!("{} deliveries acknowledged in {:.2} s", leads.len(), sent.as_secs_f64());
            let deadline = Instant::now() + Duration::from_secs(600);
            while base.records(TABLE).len() < leads.len() {
                anyhow::ensure!(Instant::now() < deadline, "records still missing after 600 s");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let elapsed = started.elapsed();
            for c in &mut children {
                let _ = c.process.start_kill();
            }
            (elapsed, "first delivery to the last record present")
        }
    };

    let records = base.records(TABLE);
    let with_status = records.iter().filter(|r| r.fields.get_str("Status") == Some("Not Started")).count();
    let kommo_log = kommo.log().requests();
    let at_log = airtable.log().requests();
    let base_prefix = format!("/v0/{}/", base.id().as_str());
    let (k_req, a_req) = (
        arrivals(&kommo_log, |r| r.path.starts_with("/api/v4/")),
        arrivals(&at_log, |r| r.path.starts_with(&base_prefix)),
    );
    let secs = elapsed.as_secs_f64();
    let per_sec = records.len() as f64 / secs;
    println!("{what}: {} records in {secs:.1} s = {per_sec:.1} records/s", records.len());
    println!("| vendor | requests | req/s over the run | max in any second | 429s |");
    println!("|---|---|---|---|---|");
    println!(
        "| Kommo | {} | {:.2} | {} | {} |",
        k_req.len(),
        k_req.len() as f64 / secs,
        rate(k_req.clone()).max_in_second,
        kommo.throttled()
    );
    println!(
        "| Airtable (one base) | {} | {:.2} | {} | {} |",
        a_req.len(),
        a_req.len() as f64 / secs,
        rate(a_req.clone()).max_in_second,
        airtable.throttled_count()
    );
    if let (Some(url), Some(schema)) = (&args.postgres, &schema) {
        use sqlx::{Connection as _, Executor as _};
        let mut conn = sqlx::PgConnection::connect(url).await?;
        conn.execute(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE"))).await?;
    }
    let mut failed = Vec::new();
    if kommo.throttled() > 0 || airtable.throttled_count() > 0 {
        failed.push("429s answered".to_owned());
    }
    if records.len() != leads.len() {
        failed.push(format!("{} of {} records", records.len(), leads.len()));
    }
    if with_status != records.len() {
        failed.push(format!("{} of {} records without the initial status", records.len() - with_status, records.len()));
    }
    match args.mode {
        Mode::Backfill if per_sec < 40.0 => failed.push(format!("{per_sec:.1} records/s < 40")),
        Mode::Serve if secs > 60.0 => failed.push(format!("{secs:.1} s > 60 s")),
        _ => {}
    }
    if !failed.is_empty() {
        eprintln!("FAILED: {}; logs in {}", failed.join(", "), dir.keep().display());
        std::process::exit(1);
    }
    Ok(())
}
