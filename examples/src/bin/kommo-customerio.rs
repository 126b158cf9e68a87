//! Kommo ↔ Customer.io lifecycle messaging: new leads and stage changes become Customer.io people and events;
//! email engagement (opens, clicks, unsubscribes, bounces) comes back as Kommo notes, and a burst of opens as a call
//! task for the deal's owner.
//!
//! ```sh
//! cargo run -p examples --bin kommo-customerio -- demo                 # against in-process fakes, no accounts
//! KOMMO_TOKEN=… KOMMO_WEBHOOK_SECRET=… CUSTOMERIO_TRACK_API_KEY=… CUSTOMERIO_WEBHOOK_SIGNING_KEY=… \
//!   cargo run -p examples --bin kommo-customerio -- serve --config examples/config/kommo-customerio.toml
//! cargo run -p examples --bin kommo-customerio -- backfill --config …  # identify the contacts of all open deals
//! cargo run -p examples --bin kommo-customerio -- status               # queue depth, lag, dead letters
//! cargo run -p examples --bin kommo-customerio -- replay 42            # retry dead letter #42
//! ```
#![allow(clippy::print_stdout)] // a command-line program: stdout is its interface

use std::{sync::Arc, sync::atomic::Ordering, time::Duration};

use anyhow::Context as _;
use customerio_api::{
    Identifier, Metric, Region,
    fake::{FakeCustomerIo, SignedWebhook},
};
use examples::startup::{self, Health, Service};
use examples::{DemoArgs, Narrator, ServeArgs};
use kommo_api::{CustomFieldsExt as _, EntityType, FieldType, LeadId, fake::FakeKommo, fake::SeedLead};
use sync_core::{
    Engine, State, Store, StoreOptions, WorkerConfig, WorkerHandle,
    flows::kommo_customerio::{Config, EVENT_LEAD_CREATED, EVENT_STAGE_CHANGED, KommoCustomerIo},
    server::{self, ServerStats},
    worker,
};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    examples::run_cli("kommo-customerio", "Kommo ↔ Customer.io lifecycle messaging", demo, serve, backfill).await
}

// ------------------------------------------------------------------------------------------------- serve

/// The flow with its clients, built offline (no request is sent).
async fn offline_flow(
    config: Config,
    oauth: Option<&examples::KommoOAuthConfig>,
    store: &Store,
) -> anyhow::Result<KommoCustomerIo> {
    let k = &config.kommo;
    let kommo = examples::kommo_client(&k.base_url, k.requests_per_second, oauth, store, "KOMMO_TOKEN").await?;
    let region = Region::from_code(&config.customerio.region)
        .with_context(|| format!("customerio.region: `{}` is neither `us` nor `eu`", config.customerio.region))?;
    anyhow::ensure!(!config.customerio.site_id.is_empty(), "customerio.site_id is empty (Account → API Credentials)");
    let mut cio = customerio_api::Client::builder()
        .region(region)
        .track_credentials(config.customerio.site_id.clone(), examples::env_token("CUSTOMERIO_TRACK_API_KEY")?)
        // the Track API's limit is per workspace (site id)
        .rate_budget(
            customerio_api::Api::Track,
            examples::shared_budget(
                store,
                &format!("customerio:{}", config.customerio.site_id),
                customerio_api::client::DEFAULT_TRACK_RATE_PER_SECOND,
            ),
        );
    if let Some(url) = &config.customerio.base_url {
        cio = cio.base_url(url);
    }
    let cio = cio.build().with_context(|| "customerio client (customerio.base_url?)")?;
    Ok(KommoCustomerIo::new(config, kommo, cio))
}

async fn real_flow(
    config: Config,
    oauth: Option<&examples::KommoOAuthConfig>,
    store: &Store,
) -> anyhow::Result<KommoCustomerIo> {
    let flow = offline_flow(config, oauth, store).await?;
    flow.validate().await.context("start-up validation against Kommo")?;
    Ok(flow)
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    examples::init_tracing("info,sync_core=info");
    let (config, oauth) = examples::load_config_with_kommo_oauth(&args, Config::from_toml)?;
    let path_token = examples::env_token("KOMMO_WEBHOOK_SECRET")?;
    let signing_key = examples::env_token("CUSTOMERIO_WEBHOOK_SIGNING_KEY")?;
    let store = examples::open_store(&args.db).await?;
    let flow = offline_flow(config, oauth.as_ref(), &store).await?;
    let service = Service {
        engine: Engine::new(store.clone(), vec![Arc::new(flow.clone())])?,
        routes: flow.routes(path_token, signing_key),
        banner: "/hooks/kommo/<secret> and /hooks/customerio".to_owned(),
    };
    // Customer.io's reporting webhook is set up by hand (its signing key comes from the environment): the only
    // background component is the validation against Kommo
    startup::run(&args, service, Health::new(store, args.retry_max()), move |h| async move {
        h.until_ready("validation", || flow.validate()).await;
    })
    .await
}

async fn backfill(args: ServeArgs) -> anyhow::Result<()> {
    examples::init_tracing("warn");
    let (config, oauth) = examples::load_config_with_kommo_oauth(&args, Config::from_toml)?;
    let store = examples::open_store(&args.db).await?;
    let flow = real_flow(config, oauth.as_ref(), &store).await?;
    let new = run_backfill(&flow, &store).await?;
    println!("done: {new} new event(s); dead letters: {} (see `status`)", store.status().await?.dead);
    Ok(())
}

/// Queues every open deal (progress bar), then runs workers until the queue is empty (second bar).
async fn run_backfill(flow: &KommoCustomerIo, store: &Store) -> anyhow::Result<usize> {
    let bar = indicatif::ProgressBar::new(0);
    bar.set_message("open deals queued");
    let new = flow
        .backfill(store, |done, total| {
            bar.set_length(total);
            bar.set_position(done);
        })
        .await?;
    bar.finish();
    println!("{new} new event(s) queued (a re-run queues only deals changed since)");
    let engine = Engine::new(store.clone(), vec![Arc::new(flow.clone())])?;
    let workers =
        worker::start(engine, WorkerConfig { poll_interval: Duration::from_millis(50), ..WorkerConfig::default() });
    let bar = indicatif::ProgressBar::new(new as u64);
    bar.set_message("identified");
    loop {
        let left = pending(store).await?;
        bar.set_position((new as u64).saturating_sub(u64::try_from(left).unwrap_or(0)));
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bar.finish();
    workers.shutdown().await;
    Ok(new)
}

async fn pending(store: &Store) -> anyhow::Result<i64> {
    let s = store.status().await?;
    Ok(s.depth.iter().filter(|((_, st), _)| matches!(st, State::Queued | State::Running)).map(|(_, n)| n).sum())
}

// ------------------------------------------------------------------------------------------------- demo

const PATH_TOKEN: &str = "demo-path-secret";
const ADA: &str = "ada@analytical.example";

struct Demo {
    kommo: FakeKommo,
    cio: FakeCustomerIo,
    store: Store,
    stats: Arc<ServerStats>,
    workers: Option<WorkerHandle>,
    addr: std::net::SocketAddr,
    http: reqwest::Client,
}

impl Demo {
    async fn deliver_kommo(&self, body: &str) -> anyhow::Result<u16> {
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

    async fn deliver_cio(&self, hook: &SignedWebhook) -> anyhow::Result<u16> {
        Ok(hook.deliver(&format!("http://{}/hooks/customerio", self.addr).parse()?).await?)
    }

    async fn settle(&self) -> anyhow::Result<()> {
        for _ in 0..600 {
            if pending(&self.store).await? == 0 {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        anyhow::bail!("the queue did not drain: {:?}", self.store.status().await?)
    }

    fn events(&self, name: &str) -> Vec<customerio_api::fake::StoredEvent> {
        self.cio.events_for(&Identifier::email(ADA)).into_iter().filter(|e| e.name == name).collect()
    }

    fn notes(&self, lead: LeadId) -> Vec<String> {
        self.kommo.notes_for(EntityType::Leads, lead.get()).iter().filter_map(|n| n.text().map(str::to_owned)).collect()
    }

    fn tasks(&self, lead: LeadId) -> usize {
        self.kommo.tasks_for(EntityType::Leads, lead.get()).len()
    }

    fn open(&self, subject: &str) -> SignedWebhook {
        self.cio.webhook(&Identifier::email(ADA), Metric::Opened).campaign_id(7).subject(subject).build()
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
    let db = dir.join("kommo-customerio.db");
    let mut n = Narrator::new();

    n.step("Starting the Kommo and Customer.io fakes (127.0.0.1, real HTTP)");
    let kommo = FakeKommo::start().await?;
    let cio = FakeCustomerIo::start().await?;
    let rita = kommo.seed_user("Rita Responsible", "rita@agency.example");
    let ada = kommo.seed_contact("Ada Lovelace", Some(ADA), Some("+44 20 7946 0000"));
    let company = kommo.seed_company("Analytical Engines Ltd");
    let unsub_field =
        kommo.seed_custom_field(EntityType::Contacts, "Email unsubscribed", FieldType::Checkbox, None, &[]);
    let (pipeline, stages) = kommo.seed_pipeline("Inbound", &["New", "In contact", "Proposal sent", "Negotiation"]);
    n.say(&format!("Kommo at {}, Customer.io (Track + App API) at {}", kommo.base_url(), cio.base_url()));

    n.step("Validating the config against Kommo, opening the engine (SQLite) and the receiver");
    let config = Config::from_toml(&format!(
        "[kommo]\nbase_url = \"{}\"\n[unsubscribe]\ncontact_field = \"Email unsubscribed\"\ncontact_tag = \"unsubscribed\"\n",
        kommo.base_url()
    ))?;
    let flow = KommoCustomerIo::new(config, kommo.client_builder().build()?, cio.client());
    flow.validate().await?;
    let store = Store::open_sqlite(&db, StoreOptions::default()).await?;
    let engine = Engine::new(store.clone(), vec![Arc::new(flow.clone())])?;
    let signing_key = api_core::Token::new(cio.config().webhook_signing_key.clone());
    let (router, stats) = server::router(engine.clone(), flow.routes(api_core::Token::new(PATH_TOKEN), signing_key))?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (shutdown, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server::serve(listener, router, async {
        let _ = rx.await;
    }));
    let workers = worker::start(
        engine,
        WorkerConfig {
            poll_interval: Duration::from_millis(20),
            lease: Duration::from_secs(5),
            ..WorkerConfig::default()
        },
    );
    let d = Demo { kommo, cio, store, stats, workers: Some(workers), addr, http: reqwest::Client::new() };
    n.say(&format!("database {}, receiver http://{addr}/hooks/kommo/<secret> and /hooks/customerio", db.display()));

    n.step("A new lead arrives in Kommo: `leads[add]` → identify Ada in Customer.io + `kommo_lead_created`");
    let lead = d.kommo.seed_lead(
        SeedLead::new("Analytics platform")
            .price(18_000)
            .responsible(rita)
            .contact(ada)
            .company(company)
            .stage(pipeline, stages[0]),
    );
    let code = d.deliver_kommo(&d.kommo.webhook_for_lead_add(lead)).await?;
    n.say(&format!("receiver answered {code} at once; the work happens in the worker"));
    d.settle().await?;
    let person = d.cio.person(&Identifier::email(ADA));
    n.check(person.is_some(), "Ada exists in Customer.io, identified by email");
    if let Some(p) = &person {
        let a = &p.attributes;
        n.say(&format!(
            "attributes: name={} company={} kommo_stage={} deal_value={} responsible_name={}",
            a["name"], a["company"], a["kommo_stage"], a["deal_value"], a["responsible_name"]
        ));
    }
    n.check(
        d.events(EVENT_LEAD_CREATED).len() == 1,
        "one `kommo_lead_created` event, with an id derived from the Kommo event",
    );

    n.step("The deal moves to \"Proposal sent\": `leads[status]` → attributes updated + `kommo_stage_changed`");
    d.kommo.advance_clock(60);
    d.kommo.set_lead_status(lead, pipeline, stages[2]);
    let status_hook = d.kommo.webhook_for_lead_status(lead);
    d.deliver_kommo(&status_hook).await?;
    d.settle().await?;
    let changed = d.events(EVENT_STAGE_CHANGED);
    n.check(changed.len() == 1, "one `kommo_stage_changed` event");
    if let Some(e) = changed.first() {
        n.say(&format!(
            "event data: old_stage={} new_stage={} deal_value={}",
            e.data["old_stage"], e.data["new_stage"], e.data["deal_value"]
        ));
    }

    n.step("Kommo redelivers the same status webhook three times");
    for _ in 0..3 {
        d.deliver_kommo(&status_hook).await?;
    }
    d.settle().await?;
    n.check(d.events(EVENT_STAGE_CHANGED).len() == 1, "still exactly one event in Customer.io");
    n.say(&format!("duplicates dropped at the door: {}", d.stats.duplicates.load(Ordering::Relaxed)));

    n.step("Ada opens the proposal email: opens arrive as signed reporting webhooks (rule: 3 opens in 48 h)");
    for i in 1..=5 {
        d.deliver_cio(&d.open("Your proposal")).await?;
        d.settle().await?;
        n.say(&format!("open #{i}: call tasks on the deal = {}", d.tasks(lead)));
    }
    n.check(d.tasks(lead) == 1, "exactly one call task, created at the third open");
    if let Some(t) = d.kommo.tasks_for(EntityType::Leads, lead.get()).first() {
        n.check(t.responsible_user_id == Some(rita), &format!("for the deal's owner: \"{}\"", t.text));
    }

    n.step("Ada clicks the pricing link");
    let click = d
        .cio
        .webhook(&Identifier::email(ADA), Metric::Clicked)
        .campaign_id(7)
        .subject("Your proposal")
        .href("https://example.com/pricing")
        .build();
    d.deliver_cio(&click).await?;
    d.deliver_cio(&click).await?; // Customer.io retries too
    d.settle().await?;
    let notes = d.notes(lead);
    let click_note = notes.iter().find(|t| t.contains("clicked"));
    n.check(notes.iter().filter(|t| t.contains("clicked")).count() == 1, "one click note (the redelivery was dropped)");
    if let Some(t) = click_note {
        n.say(&format!("note: \"{t}\""));
    }

    n.step("Ada unsubscribes");
    let unsub =
        d.cio.webhook(&Identifier::email(ADA), Metric::Unsubscribed).campaign_id(7).subject("Your proposal").build();
    d.deliver_cio(&unsub).await?;
    d.settle().await?;
    let contact = d.kommo.contact(ada);
    let tagged = contact.as_ref().is_some_and(|c| c.embedded.tags.iter().any(|t| t.name == "unsubscribed"));
    let checked = contact.as_ref().and_then(|c| c.custom_field(unsub_field)?.first()?.as_bool()) == Some(true);
    n.check(d.notes(lead).iter().any(|t| t.contains("unsubscribed")), "an unsubscribe note on the deal");
    n.check(tagged && checked, "the contact is tagged \"unsubscribed\" and \"Email unsubscribed\" is checked");

    n.step("Someone posts a reporting webhook with a forged signature");
    let mut forged = d.open("Totally real");
    for (k, v) in &mut forged.headers {
        if k.eq_ignore_ascii_case("x-cio-signature") {
            *v = "0".repeat(64);
        }
    }
    let code = d.deliver_cio(&forged).await?;
    n.check(code == 401, &format!("rejected by the receiver with {code}, nothing stored"));

    n.step("A lead whose contact has no email arrives");
    let bob = d.kommo.seed_contact("Bob NoMail", None, Some("+1 555 0199"));
    let lead2 = d.kommo.seed_lead(SeedLead::new("Phone-only deal").contact(bob).stage(pipeline, stages[0]));
    d.deliver_kommo(&d.kommo.webhook_for_lead_add(lead2)).await?;
    d.settle().await?;
    n.check(
        flow.stats().skipped_no_email.load(Ordering::Relaxed) == 1,
        "skipped with a reason (logged, counted), not a failure",
    );

    n.step("Backfill: identify the contacts of all open deals (idempotent, so running it now adds only what is new)");
    let new = run_backfill(&flow, &d.store).await?;
    n.check(
        d.events(EVENT_LEAD_CREATED).len() == 1,
        &format!("{new} event(s) queued; Ada still has one `kommo_lead_created`"),
    );

    let status = d.store.status().await?;
    let fs = flow.stats();
    let get = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed).to_string();
    let rows = [
        ("people identified (calls)", get(&fs.identified)),
        ("events tracked", get(&fs.events_tracked)),
        ("events in Customer.io", d.cio.events().len().to_string()),
        ("duplicates dropped at the door", d.stats.duplicates.load(Ordering::Relaxed).to_string()),
        ("forged webhooks rejected", d.stats.unauthorized.load(Ordering::Relaxed).to_string()),
        ("Kommo notes", get(&fs.notes_added)),
        ("call tasks", get(&fs.tasks_created)),
        ("leads skipped (no email)", get(&fs.skipped_no_email)),
        ("dead letters", status.dead.to_string()),
        ("elapsed", format!("{:.1} s", started.elapsed().as_secs_f64())),
    ];
    let mut d = d;
    if let Some(w) = d.workers.take() {
        w.shutdown().await;
    }
    let _ = shutdown.send(());
    n.finish(&rows)
}
