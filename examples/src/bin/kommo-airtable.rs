//! Kommo ↔ Airtable: won deals become "Client Onboarding" records; onboarding status and "Next Contact Date" flow
//! back to Kommo.
//!
//! ```sh
//! cargo run -p examples --bin kommo-airtable -- demo                 # against in-process fakes, no accounts
//! KOMMO_TOKEN=… AIRTABLE_TOKEN=… KOMMO_WEBHOOK_SECRET=… \
//!   cargo run -p examples --bin kommo-airtable -- serve --config examples/config/kommo-airtable.toml
//! cargo run -p examples --bin kommo-airtable -- backfill --config …  # push existing won deals through the flow
//! cargo run -p examples --bin kommo-airtable -- status               # queue depth, lag, dead letters
//! cargo run -p examples --bin kommo-airtable -- replay 42            # retry dead letter #42
//! ```
#![allow(clippy::print_stdout)] // a command-line program: stdout is its interface

use std::{sync::Arc, sync::atomic::Ordering, time::Duration};

use airtable_client::fake::{FakeAirtable, FakeBase, FakeConfig as AtConfig, FakeUser};
use anyhow::Context as _;
use examples::kommo_airtable_fixture::TABLE;
use examples::startup::{self, Health, Service};
use examples::{DemoArgs, Narrator, ServeArgs};
use kommo_api::{
    CustomFieldsExt as _, EntityType, FieldType, LeadId, StatusId,
    fake::{FakeKommo, SeedLead},
};
use serde_json::json;
use sync_core::{
    Engine, State, Store, StoreOptions, WorkerConfig, WorkerHandle,
    flows::kommo_airtable::{Config, KommoAirtable, SOURCE_KOMMO},
    server::{self, ServerStats},
    worker,
};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    examples::run_cli("kommo-airtable", "Kommo ↔ Airtable onboarding sync", demo, serve, backfill).await
}

// ------------------------------------------------------------------------------------------------- serve

/// The flow with its clients, built offline (no request is sent).
async fn offline_flow(
    config: Config,
    oauth: Option<&examples::KommoOAuthConfig>,
    store: &Store,
) -> anyhow::Result<KommoAirtable> {
    let k = &config.kommo;
    let kommo = examples::kommo_client(&k.base_url, k.requests_per_second, oauth, store, "KOMMO_TOKEN").await?;
    let mut airtable = airtable_client::Client::builder()
        .token(examples::env_token("AIRTABLE_TOKEN")?)
        .rate_budget(examples::shared_budget(store, "airtable", config.airtable.requests_per_second));
    if let Some(url) = &config.airtable.base_url {
        airtable = airtable.base_url(url.clone());
    }
    Ok(KommoAirtable::new(config, kommo, airtable.build()?)?)
}

async fn real_flow(
    config: Config,
    oauth: Option<&examples::KommoOAuthConfig>,
    store: &Store,
) -> anyhow::Result<KommoAirtable> {
    let flow = offline_flow(config, oauth, store).await?;
    flow.validate().await.context("start-up validation against Kommo and Airtable")?;
    Ok(flow)
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    examples::init_tracing("info,sync_core=info");
    let (config, oauth) = examples::load_config_with_kommo_oauth(&args, Config::from_toml)?;
    let path_token = examples::env_token("KOMMO_WEBHOOK_SECRET")?;
    let store = examples::open_store(&args.db).await?;
    let flow = offline_flow(config, oauth.as_ref(), &store).await?;
    // the MAC secret of a webhook that already exists comes from the store: pings are verified from the first
    // request on, also while Airtable's API is down (with none stored, pings are refused with 401 until upkeep
    // creates the webhook; the payload feed is read by the poll anyway)
    flow.load_webhook(&store).await?;
    let service = Service {
        engine: Engine::new(store.clone(), vec![Arc::new(flow.clone())])?,
        routes: flow.routes(path_token),
        banner: "/hooks/kommo/<secret> and /hooks/airtable-ping".to_owned(),
    };
    startup::run(&args, service, Health::new(store.clone(), args.retry_max()), move |h| async move {
        h.until_ready("validation", || flow.validate()).await;
        if let Some(url) = flow.config().airtable.notification_url.clone() {
            let upkeep = {
                let (flow, store) = (flow.clone(), store.clone());
                move || {
                    let (flow, store, url) = (flow.clone(), store.clone(), url.clone());
                    async move { flow.ensure_webhook(&store, &url).await.map(|_| ()) }
                }
            };
            // created once the table is resolved; refreshed before the 7-day expiry, recreated when lost
            h.keep_up("webhook:airtable", Duration::from_secs(12 * 3600), upkeep);
        } else {
            tracing::warn!("airtable.notification_url is not set: Airtable changes are only read by the periodic poll");
        }
        // background loops: payload feed (pings can be missed), Kommo reconcile
        h.spawn(async move {
            let reconcile_every = Duration::from_secs(flow.config().reconcile.interval_secs.max(1));
            let mut feed = tokio::time::interval(Duration::from_secs(60));
            let mut reconcile = tokio::time::interval(reconcile_every);
            loop {
                tokio::select! {
                    _ = feed.tick() => {
                        // another process sharing the store may have recreated the webhook: take its id and secret
                        if let Err(e) = flow.load_webhook(&store).await {
                            tracing::warn!(error = %e, "re-reading the stored Airtable webhook failed");
                        }
                        if let Err(e) = flow.poll_payloads(&store).await {
                            tracing::warn!(error = %e, "Airtable payload poll failed");
                        }
                    },
                    _ = reconcile.tick(), if flow.config().reconcile.interval_secs > 0 => match flow.reconcile(&store).await {
                        Ok(n) => tracing::info!(new_events = n, "Kommo reconcile pass"),
                        Err(e) => tracing::warn!(error = %e, "Kommo reconcile failed"),
                    },
                }
            }
        });
    })
    .await
}

async fn backfill(args: ServeArgs) -> anyhow::Result<()> {
    examples::init_tracing("warn");
    let (config, oauth) = examples::load_config_with_kommo_oauth(&args, Config::from_toml)?;
    let store = examples::open_store(&args.db).await?;
    let flow = real_flow(config, oauth.as_ref(), &store).await?;
    let limits = (flow.config().kommo.requests_per_second, flow.config().airtable.requests_per_second);
    let engine = Engine::new(store.clone(), vec![Arc::new(flow.clone())])?;
    // The workers start first and apply each page of deals while the next is read. Kommo lead events are handled
    // in batches (up to `[batch] max_events`, 250): one claim fills one batch.
    let started = std::time::Instant::now();
    let used_at_start = (examples::budget_used("kommo"), examples::budget_used("airtable"));
    let workers = worker::start(engine, WorkerConfig::default());
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_message("won deals read from Kommo");
    let (seen, new) = flow.backfill(&store, |n| bar.set_position(n as u64)).await?;
    bar.finish_and_clear();
    println!("{seen} won deals found, {new} new events queued ({} already known)", seen - new);
    let bar = indicatif::ProgressBar::new(new as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} records, {per_sec}, eta {eta} | {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    loop {
        let left = pending(&store).await?;
        bar.set_position((new as u64).saturating_sub(u64::try_from(left).unwrap_or(0)));
        bar.set_message(budget_line(started, used_at_start, limits));
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    bar.finish();
    workers.shutdown().await;
    let secs = started.elapsed().as_secs_f64();
    let status = store.status().await?;
    println!(
        "done: {new} events in {secs:.1} s ({:.1} records/s); {}; dead letters: {} (see `status`)",
        new as f64 / secs.max(0.001),
        budget_line(started, used_at_start, limits),
        status.dead
    );
    Ok(())
}

/// "Kommo 123 requests (6.4/s of 7), Airtable 98 requests (4.6/s of 5 per base)": the vendor budgets drawn since
/// `started`.
fn budget_line(started: std::time::Instant, at_start: (u64, u64), (kommo_rps, airtable_rps): (u32, u32)) -> String {
    let secs = started.elapsed().as_secs_f64().max(0.001);
    let k = examples::budget_used("kommo") - at_start.0;
    let a = examples::budget_used("airtable") - at_start.1;
    let of = |n: u32| if n == 0 { "unlimited".to_owned() } else { n.to_string() };
    format!(
        "Kommo {k} requests ({:.1}/s of {}), Airtable {a} requests ({:.1}/s of {} per base)",
        k as f64 / secs,
        of(kommo_rps),
        a as f64 / secs,
        of(airtable_rps)
    )
}

async fn pending(store: &Store) -> anyhow::Result<i64> {
    let s = store.status().await?;
    Ok(s.depth.iter().filter(|((_, st), _)| matches!(st, State::Queued | State::Running)).map(|(_, n)| n).sum())
}

// ------------------------------------------------------------------------------------------------- demo

const PATH_TOKEN: &str = "demo-path-secret";

struct Demo {
    kommo: FakeKommo,
    airtable: FakeAirtable,
    base: FakeBase,
    flow: KommoAirtable,
    store: Store,
    engine: Engine,
    stats: Arc<ServerStats>,
    workers: Option<WorkerHandle>,
    addr: std::net::SocketAddr,
    http: reqwest::Client,
    ncd: kommo_api::CustomFieldId,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

fn demo_workers() -> WorkerConfig {
    WorkerConfig {
        poll_interval: Duration::from_millis(50),
        lease: Duration::from_secs(3),
        heartbeat: Duration::from_secs(1),
        ..WorkerConfig::default()
    }
}

async fn start_engine(
    db: &std::path::Path,
    flow: &KommoAirtable,
) -> anyhow::Result<(Store, Engine, Arc<ServerStats>, std::net::SocketAddr, tokio::sync::oneshot::Sender<()>)> {
    let store = Store::open_sqlite(db, StoreOptions::default()).await?;
    let engine = Engine::new(store.clone(), vec![Arc::new(flow.clone())])?;
    let (router, stats) = server::router(engine.clone(), flow.routes(api_core::Token::new(PATH_TOKEN)))?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server::serve(listener, router, async {
        let _ = rx.await;
    }));
    Ok((store, engine, stats, addr, tx))
}

impl Demo {
    async fn deliver(&self, body: &str) -> anyhow::Result<u16> {
        Ok(self
            .http
            .post(format!("http://{}/hooks/kommo/{PATH_TOKEN}", self.addr))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("user-agent", "amoCRM-WebHook-client/1.0")
            .body(body.to_owned())
            .send()
            .await?
            .status()
            .as_u16())
    }

    async fn settle(&self) -> anyhow::Result<()> {
        // pings are sent by the Airtable fake in the background: let them land, then wait for an empty queue
        for _ in 0..600 {
            tokio::time::sleep(Duration::from_millis(50)).await;
            if pending(&self.store).await? == 0 {
                tokio::time::sleep(Duration::from_millis(150)).await;
                if pending(&self.store).await? == 0 {
                    return Ok(());
                }
            }
        }
        anyhow::bail!("the queue did not drain: {:?}", self.store.status().await?)
    }

    /// Waits (up to 20 s) until `cond` holds — Airtable pings arrive in the background — then for an empty queue.
    async fn until(&self, cond: impl Fn(&Self) -> bool) -> anyhow::Result<()> {
        for _ in 0..400 {
            if cond(self) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.settle().await
    }

    fn notes(&self, lead: LeadId) -> Vec<String> {
        self.kommo.notes_for(EntityType::Leads, lead.get()).iter().filter_map(|n| n.text().map(str::to_owned)).collect()
    }

    fn ncd_of(&self, lead: LeadId) -> Option<String> {
        let unix = self.kommo.lead(lead)?.custom_field(self.ncd)?.first()?.as_unix()?;
        Some(chrono::DateTime::from_timestamp(unix, 0)?.format("%Y-%m-%d").to_string())
    }
}

#[allow(clippy::too_many_lines)] // a script, read top to bottom
async fn demo(args: DemoArgs) -> anyhow::Result<()> {
    if args.verbose {
        examples::init_tracing("info,sync_core=debug");
    }
    let started = std::time::Instant::now();
    let tmp = tempfile::tempdir()?;
    let dir = args.dir.clone().unwrap_or_else(|| tmp.path().to_owned());
    std::fs::create_dir_all(&dir)?;
    let db = dir.join("kommo-airtable.db");
    let mut n = Narrator::new();

    n.step("Starting the Kommo and Airtable fakes (127.0.0.1, real HTTP, real rate limits: 7/s and 5/s)");
    let kommo = FakeKommo::start().await?;
    let airtable =
        FakeAirtable::start_with(AtConfig { penalty_after_429: Duration::from_secs(2), ..AtConfig::default() }).await?;
    let base = airtable.base();
    examples::kommo_airtable_fixture::add_onboarding_table(&base);
    let ncd = kommo.seed_custom_field(EntityType::Leads, "Next Contact Date", FieldType::Date, None, &[]);
    let rita = kommo.seed_user("Rita Responsible", "rita@agency.example");
    let ada = kommo.seed_contact("Ada Lovelace", Some("ada@analytical.example"), Some("+44 20 7946 0000"));
    let company = kommo.seed_company("Analytical Engines Ltd");
    let (pipeline, stages) = (kommo.main_pipeline(), kommo.stages(kommo.main_pipeline()));
    n.say(&format!("Kommo account at {}, Airtable base {} with table \"{TABLE}\"", kommo.base_url(), base.id()));

    n.step("Validating the field mapping against the live schemas, opening the engine (SQLite, WAL) and the receiver");
    let config = Config::from_toml(&format!(
        "[kommo]\nbase_url = \"{}\"\n[airtable]\nbase_id = \"{}\"\n[trigger]\nexclude_tags = [\"test\", \"internal\"]\n",
        kommo.base_url(),
        base.id()
    ))?;
    let airtable_client = airtable.client_builder().penalty_after_429(Duration::from_secs(2)).build()?;
    let flow = KommoAirtable::new(config, kommo.client_builder().build()?, airtable_client)?;
    flow.validate().await?;
    let (store, engine, stats, addr, shutdown) = start_engine(&db, &flow).await?;
    flow.ensure_webhook(&store, &format!("http://{addr}/hooks/airtable-ping")).await?;
    let workers = worker::start(engine.clone(), demo_workers());
    let mut d = Demo {
        kommo,
        airtable,
        base,
        flow,
        store,
        engine,
        stats,
        workers: Some(workers),
        addr,
        http: reqwest::Client::new(),
        ncd,
        shutdown: Some(shutdown),
    };
    n.say(&format!("database {}, receiver http://{addr}/hooks/…, Airtable webhook created", db.display()));

    n.step("A deal is won in Kommo: Kommo posts `leads[status]` (form-encoded) to the receiver");
    let lead = d.kommo.seed_lead(
        SeedLead::new("Website relaunch")
            .price(24_000)
            .responsible(rita)
            .contact(ada)
            .company(company)
            .stage(pipeline, stages[0]),
    );
    d.kommo.set_lead_status(lead, pipeline, StatusId::WON);
    let hook = d.kommo.webhook_for_lead_status(lead);
    let code = d.deliver(&hook).await?;
    n.say(&format!("receiver answered {code} at once; the work happens in the worker"));
    d.settle().await?;
    let recs = d.base.records(TABLE);
    n.check(recs.len() == 1, "one onboarding record exists");
    if let Some(r) = recs.first() {
        n.say(&format!(
            "record {}: {} | {} | {} | Status = {}",
            r.id,
            r.fields.get_str("Deal Name").unwrap_or("-"),
            r.fields.get_str("Client Name").unwrap_or("-"),
            r.fields.get_str("Email").unwrap_or("-"),
            r.fields.get_str("Status").unwrap_or("-")
        ));
        n.check(r.fields.get_str("Status") == Some("Not Started"), "Status is \"Not Started\" on create");
    }

    n.step("Kommo redelivers the same webhook five times (it retries when it thinks we were slow)");
    for _ in 0..5 {
        d.deliver(&hook).await?;
    }
    d.settle().await?;
    n.check(d.base.records(TABLE).len() == 1, "still exactly one record");
    n.say(&format!("duplicates dropped at the door: {}", d.stats.duplicates.load(Ordering::Relaxed)));

    n.step("A second deal is won while Airtable answers 429 twice (it wants 30 s; the demo fake asks 2 s)");
    let lead2 = d.kommo.seed_lead(
        SeedLead::new("Data migration").price(8_500).responsible(rita).contact(ada).stage(pipeline, StatusId::WON),
    );
    d.airtable.faults().inject(
        Some(reqwest::Method::PATCH),
        "/v0/",
        api_core::fake::Fault::Status {
            status: 429,
            headers: vec![],
            body: json!({"errors": [{"error": "RATE_LIMIT_REACHED", "message": "Rate limit exceeded. Please try again later"}]}).to_string(),
            content_type: "application/json".into(),
        },
        2,
    );
    let t = std::time::Instant::now();
    d.deliver(&d.kommo.webhook_for_lead_status(lead2)).await?;
    d.settle().await?;
    let rec2 = d.base.find(TABLE, "Kommo Deal ID", &lead2.to_string());
    n.check(
        rec2.len() == 1,
        &format!("record written after waiting out two 429s ({:.1} s)", t.elapsed().as_secs_f64()),
    );

    n.step("Someone on the onboarding team moves the status in Airtable");
    let olivia = FakeUser {
        id: "usrOLIVIA00000001".into(),
        email: "olivia@agency.example".into(),
        name: "Olivia Onboarding".into(),
    };
    let rec = d
        .base
        .records(TABLE)
        .into_iter()
        .find(|r| r.fields.get_str("Kommo Deal ID") == Some(&lead.to_string()))
        .context("record")?;
    d.base.user_edit(TABLE, &rec.id, json!({"Status": "In Progress"}), &olivia).map_err(anyhow::Error::msg)?;
    d.until(|d| !d.notes(lead).is_empty()).await?;
    let notes = d.notes(lead);
    n.check(notes.len() == 1, "exactly one note on the Kommo deal");
    for note in &notes {
        n.say(&format!("note: \"{note}\""));
    }
    n.check(
        d.base.record(TABLE, &rec.id).and_then(|r| r.fields.get_str("Status").map(str::to_owned)).as_deref()
            == Some("In Progress"),
        "our own writes never reset the status",
    );

    n.step("\"Next Contact Date\" changes in Airtable, then in Kommo");
    d.base
        .user_edit(TABLE, &rec.id, json!({"Next Contact Date": "2026-12-01"}), &olivia)
        .map_err(anyhow::Error::msg)?;
    d.until(|d| d.ncd_of(lead).is_some()).await?;
    n.check(d.ncd_of(lead).as_deref() == Some("2026-12-01"), "Kommo's custom field now says 2026-12-01");
    // Kommo notifies us of our own write: recognised and skipped
    let patches = d.airtable.count(&reqwest::Method::PATCH, "/v0/");
    d.deliver(&d.kommo.webhook_for_lead_update(lead)).await?;
    d.settle().await?;
    n.check(
        d.airtable.count(&reqwest::Method::PATCH, "/v0/") == patches,
        "Kommo's echo of our write caused no Airtable write",
    );
    d.kommo.update_lead(
        lead,
        &json!({"custom_fields_values": [{"field_id": ncd.get(), "values": [{"value": 1_796_688_000}]}]}),
    );
    d.deliver(&d.kommo.webhook_for_lead_update(lead)).await?;
    let rec_id = rec.id.clone();
    d.until(|d| {
        d.base.record(TABLE, &rec_id).and_then(|r| r.fields.get_str("Next Contact Date").map(str::to_owned)).as_deref()
            == Some("2026-12-08")
    })
    .await?;
    let at_ncd = d.base.record(TABLE, &rec.id).and_then(|r| r.fields.get_str("Next Contact Date").map(str::to_owned));
    n.check(at_ncd.as_deref() == Some("2026-12-08"), "Airtable now says 2026-12-08");
    n.check(d.notes(lead).len() == 1, "and no extra notes from all this");

    n.step("The process stops mid-way: three deals are won while it is down, and the worker is killed");
    d.workers.take().context("workers")?.kill();
    let more: Vec<LeadId> = (0..3)
        .map(|i| {
            d.kommo.seed_lead(
                SeedLead::new(format!("Follow-up project {i}"))
                    .price(1_000 * (i + 1))
                    .contact(ada)
                    .stage(pipeline, StatusId::WON),
            )
        })
        .collect();
    for l in &more {
        d.deliver(&d.kommo.webhook_for_lead_status(*l)).await?;
    }
    let queued = pending(&d.store).await?;
    n.say(&format!("{queued} event(s) safely in the inbox; stopping the receiver and closing the database"));
    if let Some(tx) = d.shutdown.take() {
        let _ = tx.send(());
    }
    d.store.close().await;
    n.say("restarting: reopening the same SQLite file, new receiver, new workers");
    let (store, engine, stats, addr, shutdown) = start_engine(&db, &d.flow).await?;
    d.flow.load_webhook(&store).await?;
    d.store = store;
    d.engine = engine.clone();
    d.stats = stats;
    d.addr = addr;
    d.shutdown = Some(shutdown);
    d.workers = Some(worker::start(engine, demo_workers()));
    for l in &more {
        d.deliver(&d.kommo.webhook_for_lead_status(*l)).await?; // Kommo retries: duplicates of what is stored
    }
    d.settle().await?;
    let all = d.base.records(TABLE);
    n.check(all.len() == 5, &format!("{} records for 5 won deals: nothing lost, nothing doubled", all.len()));

    n.step("A deal tagged \"internal\" is won: filtered out with a reason, no record");
    let internal = d
        .kommo
        .seed_lead(SeedLead::new("Internal tooling").tag("internal").contact(ada).stage(pipeline, StatusId::WON));
    d.deliver(&d.kommo.webhook_for_lead_status(internal)).await?;
    d.settle().await?;
    n.check(d.base.find(TABLE, "Kommo Deal ID", &internal.to_string()).is_empty(), "no record for the internal deal");
    let status = d.store.status().await?;
    let reason = (SOURCE_KOMMO.to_owned(), "filtered: tagged `internal`".to_owned());
    n.check(status.skipped.get(&reason) == Some(&1), "`status` shows it as skipped: \"filtered: tagged `internal`\"");
    let skipped: i64 = status.skipped.values().sum();

    let received: i64 = status.depth.iter().filter(|((s, _), _)| s == SOURCE_KOMMO).map(|(_, n)| *n).sum();
    let fs = d.flow.stats();
    let rows = [
        ("Kommo webhooks stored (after dedup)", received.to_string()),
        ("duplicates dropped (since restart)", d.stats.duplicates.load(Ordering::Relaxed).to_string()),
        ("Airtable records", d.base.records(TABLE).len().to_string()),
        ("Kommo notes", d.kommo.notes().len().to_string()),
        ("Airtable 429s injected by the scenario", "2".to_owned()),
        ("Airtable rate-limit 429s (client kept under 5/s)", d.airtable.throttled_count().to_string()),
        ("echoes of our own writes skipped", fs.echoes_skipped.load(Ordering::Relaxed).to_string()),
        ("events filtered out", fs.filtered.load(Ordering::Relaxed).to_string()),
        ("events done as skipped (filtered, echoes; see `status`)", skipped.to_string()),
        ("dead letters", status.dead.to_string()),
        ("elapsed", format!("{:.1} s", started.elapsed().as_secs_f64())),
    ];
    if let Some(w) = d.workers.take() {
        w.shutdown().await;
    }
    n.finish(&rows)
}
