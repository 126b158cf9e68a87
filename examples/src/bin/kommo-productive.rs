//! `kommo-productive`: won Kommo deals become Productive projects (company, project or template copy, budget,
//! services, team), and Productive task completions and budget alerts come back to Kommo as notes and tasks.
//!
//! ```text
//! cargo run -p examples --bin kommo-productive -- demo
//! cargo run -p examples --bin kommo-productive -- serve --config examples/config/kommo-productive.toml
//! cargo run -p examples --bin kommo-productive -- backfill --config examples/config/kommo-productive.toml
//! cargo run -p examples --bin kommo-productive -- status
//! cargo run -p examples --bin kommo-productive -- replay 42
//! ```
#![allow(clippy::print_stdout)] // a command-line program: stdout is its interface

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use examples::startup::{Health, Service};
use examples::{DemoArgs, Narrator, ServeArgs, env_token, init_tracing, open_store};
use kommo_api::fake::{FakeKommo, SeedLead};
use kommo_api::{EntityType, FieldType, StatusId};
use productive_api::fake::FakeProductive;
use productive_api::resources::deals::DealAttributes;
use productive_api::resources::projects::ProjectAttributes;
use productive_api::resources::webhooks::NewWebhook;
use productive_api::{EventId, Query};
use sync_core::flows::kommo_productive::{Config, KommoProductive};
use sync_core::worker::{self, WorkerConfig};
use sync_core::{Engine, Headers, State, Store, StoreOptions};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    examples::run_cli(
        "kommo-productive",
        "Kommo won deals → Productive projects; Productive updates → Kommo",
        demo,
        serve,
        backfill,
    )
    .await
}

// ------------------------------------------------------------------------------------------- config + clients

/// The binary's own settings, in a `[serve]` table of the same file (the rest is the flow's [`Config`]).
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ServeSection {
    /// `https://<subdomain>.kommo.com`.
    kommo_base_url: String,
    /// The public base URL of this service (`https://sync.example.com`); when set, `serve` creates (or adopts)
    /// the Productive webhooks pointing at `<public_url>/hooks/<sources.productive>` and uses their signature
    /// tokens.
    #[serde(default)]
    public_url: Option<String>,
    /// This process's share of the Kommo account's budget (Kommo allows 7 requests per second per account).
    /// Limits are kept per process: split it across several `serve` processes sharing one database.
    #[serde(default = "kommo_rps")]
    kommo_requests_per_second: u32,
    /// Productive API base URL override (a proxy, or a fake in tests); default `https://api.productive.io`.
    #[serde(default)]
    productive_base_url: Option<String>,
    /// Kommo OAuth integration instead of `KOMMO_TOKEN` (tokens shared through the store; see
    /// [`examples::KommoOAuthConfig`]).
    #[serde(default)]
    kommo_oauth: Option<examples::KommoOAuthConfig>,
}

fn kommo_rps() -> u32 {
    kommo_api::client::DEFAULT_RATE_LIMIT_PER_SECOND
}

fn load(path: &std::path::Path) -> anyhow::Result<(Config, ServeSection)> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut table: toml::Table = toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    let serve = match table.remove("serve") {
        Some(v) => v.try_into::<ServeSection>().context("the [serve] table")?,
        None => anyhow::bail!("{}: missing the [serve] table (kommo_base_url)", path.display()),
    };
    let config = Config::from_toml(&toml::to_string(&table)?)?;
    Ok((config, serve))
}

async fn clients(
    config: &Config,
    serve: &ServeSection,
    store: &Store,
) -> anyhow::Result<(kommo_api::Client, productive_api::Client)> {
    let (url, rps, oauth) =
        (serve.kommo_base_url.as_str(), serve.kommo_requests_per_second, serve.kommo_oauth.as_ref());
    let kommo = examples::kommo_client(url, rps, oauth, store, "KOMMO_TOKEN").await?;
    let mut productive = productive_api::Client::builder()
        .token(env_token("PRODUCTIVE_TOKEN")?)
        .organization_id(&config.productive.organization_id)
        // Productive: 100 requests per 10 s per (token, organization), here spaced evenly (10/s) and shared
        .rate_budget(examples::shared_budget(store, "productive", 10));
    if let Some(url) = &serve.productive_base_url {
        productive = productive.base_url(url.as_str());
    }
    let productive = productive.build()?;
    Ok((kommo, productive))
}

/// Creates (or adopts) one Productive webhook per event we consume and returns their signature tokens.
async fn productive_webhooks(client: &productive_api::Client, target: &str) -> anyhow::Result<Vec<api_core::Token>> {
    let existing = client.all_webhooks(Query::new()).await?;
    let mut tokens = Vec::new();
    for event in [EventId::TaskUpdated, EventId::BudgetUpdated] {
        let found = existing.iter().find(|w| {
            w.attributes.event_id == Some(event)
                && w.attributes.target_url.as_deref() == Some(target)
                && w.attributes.deactivated_at.is_none()
        });
        let token = match found.and_then(|w| w.attributes.signature_token.clone()) {
            Some(t) => t,
            None => {
                let mut w = NewWebhook::new(event, target);
                w.name = Some(format!("crm-sync-kit kommo-productive ({event})"));
                let created = client.create_webhook(&w).await?;
                created.attributes.signature_token.context("Productive returned no signature_token")?
            }
        };
        tokens.push(token);
    }
    Ok(tokens)
}

fn env_list(name: &str) -> Vec<api_core::Token> {
    std::env::var(name)
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(api_core::Token::new)
        .collect()
}

// --------------------------------------------------------------------------------------------------- serve

/// Where `serve` keeps the signature tokens of its Productive webhooks (`cursors` table, stream = the target URL):
/// read before listening, so deliveries are verified while Productive's API is down.
const TOKENS_CURSOR: &str = "kommo-productive/webhook-tokens";

async fn stored_tokens(store: &Store, target: &str) -> anyhow::Result<Vec<api_core::Token>> {
    let raw = store.cursor_get(TOKENS_CURSOR, target).await?;
    let list: Vec<String> = raw.map(|r| serde_json::from_str(&r)).transpose()?.unwrap_or_default();
    Ok(list.into_iter().map(api_core::Token::new).collect())
}

type SharedTokens = Arc<std::sync::RwLock<Vec<api_core::Token>>>;

fn set_tokens(shared: &SharedTokens, fixed: &[api_core::Token], got: Vec<api_core::Token>) {
    let mut all = fixed.to_vec();
    all.extend(got);
    *shared.write().unwrap_or_else(std::sync::PoisonError::into_inner) = all;
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    init_tracing("info");
    let (config, section) = load(&args.config)?;
    let path_secret = env_token("KOMMO_WEBHOOK_SECRET")?;
    let store = open_store(&args.db).await?;
    let (kommo, productive) = clients(&config, &section, &store).await?;
    let flow = Arc::new(KommoProductive::new(config.clone(), kommo, productive.clone()));
    let fixed = env_list("PRODUCTIVE_WEBHOOK_TOKENS");
    let target = section
        .public_url
        .as_ref()
        .map(|public| format!("{}/hooks/{}", public.trim_end_matches('/'), config.sources.productive));
    let tokens: SharedTokens = Arc::default();
    match &target {
        Some(target) => set_tokens(&tokens, &fixed, stored_tokens(&store, target).await?),
        None if fixed.is_empty() => {
            tracing::warn!("no Productive signature tokens: set [serve] public_url or PRODUCTIVE_WEBHOOK_TOKENS");
        }
        None => set_tokens(&tokens, &fixed, Vec::new()),
    }
    let engine = Engine::new(store.clone(), vec![flow.clone()])?;
    let service = Service {
        engine,
        routes: flow.routes_shared(path_secret.expose(), tokens.clone()),
        banner: format!(
            "/hooks/{}/<KOMMO_WEBHOOK_SECRET> and /hooks/{}",
            config.sources.kommo, config.sources.productive
        ),
    };
    let health = Health::new(store.clone(), args.retry_max());
    examples::startup::run(&args, service, health, move |h| async move {
        if let Some(target) = target {
            // create or adopt the webhooks, keep their tokens in the store and in the verifier; again every hour
            let upkeep = {
                let (store, tokens, fixed, target) = (store.clone(), tokens.clone(), fixed.clone(), target.clone());
                move || {
                    let (productive, store, tokens, fixed, target) =
                        (productive.clone(), store.clone(), tokens.clone(), fixed.clone(), target.clone());
                    async move {
                        let got = productive_webhooks(&productive, &target).await?;
                        let plain: Vec<&str> = got.iter().map(api_core::Token::expose).collect();
                        store.cursor_set(TOKENS_CURSOR, &target, &serde_json::to_string(&plain)?).await?;
                        set_tokens(&tokens, &fixed, got);
                        anyhow::Ok(())
                    }
                }
            };
            h.keep_up("webhook:productive", Duration::from_secs(3600), upkeep);
            // another process sharing the store may recreate the webhooks: re-read their tokens every 30 s
            h.spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    match stored_tokens(&store, &target).await {
                        Ok(got) if !got.is_empty() => set_tokens(&tokens, &fixed, got),
                        Ok(_) => {}
                        Err(e) => tracing::warn!(error = %e, "re-reading the Productive webhook tokens failed"),
                    }
                }
            });
        }
        // the workers start when the config is valid; the webhook upkeep goes on beside them
        h.until_ready("validation", || flow.validate()).await;
    })
    .await
}

// ------------------------------------------------------------------------------------------------ backfill

async fn backfill(args: ServeArgs) -> anyhow::Result<()> {
    init_tracing("warn");
    let (config, section) = load(&args.config)?;
    let store = open_store(&args.db).await?;
    let (kommo, productive) = clients(&config, &section, &store).await?;
    let flow = Arc::new(KommoProductive::new(config.clone(), kommo.clone(), productive));
    flow.validate().await?;
    let won = StatusId(config.kommo.won_status_id);
    let pipelines: Vec<kommo_api::PipelineId> = match config.kommo.pipeline_id {
        Some(p) => vec![kommo_api::PipelineId(p)],
        None => kommo.pipelines().list().await?.into_iter().map(|p| p.id).collect(),
    };
    let engine = Engine::new(store.clone(), vec![flow.clone()])?;
    let total = run_backfill(&engine, &kommo, &pipelines, won, &config.sources.kommo).await?;
    println!("{total} won lead(s) pushed through the flow (already kicked-off leads are skipped)");
    Ok(())
}

async fn run_backfill(
    engine: &Engine,
    kommo: &kommo_api::Client,
    pipelines: &[kommo_api::PipelineId],
    won: StatusId,
    source: &str,
) -> anyhow::Result<u64> {
    let mut leads = Vec::new();
    for p in pipelines {
        let params = kommo_api::ListParams::new().limit(250).status(*p, won);
        let mut page = 1;
        loop {
            let got = kommo.leads().list(&params, page).await?;
            let more = got.has_next && !got.items.is_empty();
            leads.extend(got.items);
            if !more {
                break;
            }
            page += 1;
        }
    }
    let bar = indicatif::ProgressBar::new(leads.len() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} leads {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let workers = worker::start(engine.clone(), WorkerConfig::default());
    let mut ids = Vec::new();
    for lead in &leads {
        let body = KommoProductive::backfill_body(lead);
        if let sync_core::Ingested::Accepted { id } =
            engine.ingest(source, &Headers::new(), body.into_bytes().into(), Headers::new()).await?
        {
            ids.push(id);
        }
    }
    bar.set_message("processing");
    loop {
        let mut finished = 0u64;
        for id in &ids {
            if engine.store().get(*id).await?.is_some_and(|r| matches!(r.state, State::Done | State::Dead)) {
                finished += 1;
            }
        }
        let skipped = leads.len() as u64 - ids.len() as u64;
        bar.set_position(finished + skipped);
        if finished == ids.len() as u64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    bar.finish_with_message("done");
    workers.shutdown().await;
    Ok(leads.len() as u64)
}

// ---------------------------------------------------------------------------------------------------- demo

async fn wait_drained(store: &Store) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let s = store.status().await?;
        if !s.depth.iter().any(|((_, st), n)| matches!(st, State::Queued | State::Running) && *n > 0) {
            return Ok(());
        }
        anyhow::ensure!(Instant::now() < deadline, "the queue did not drain within 30 s: {s:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[allow(clippy::too_many_lines)]
async fn demo(args: DemoArgs) -> anyhow::Result<()> {
    init_tracing(if args.verbose { "info" } else { "error" });
    let started = Instant::now();
    let mut n = Narrator::new();
    let tmp = tempfile::tempdir()?;
    let dir = args.dir.clone().unwrap_or_else(|| tmp.path().to_owned());
    std::fs::create_dir_all(&dir)?;

    n.step("Starting the Kommo and Productive fakes, the engine (SQLite) and the webhook receiver on 127.0.0.1");
    let kommo = FakeKommo::start().await?;
    let (pipeline, stages) = kommo.seed_pipeline("Sales", &["Qualified", "Proposal sent"]);
    let anna = kommo.seed_user("Anna Sales", "anna@agency.io");
    let field =
        kommo.seed_custom_field(EntityType::Leads, "Service type", FieldType::Select, None, &["Website", "Branding"]);
    let productive = FakeProductive::start().await?;
    let pm = productive.seed_person("Pat", "Manager", "pm@agency.io");
    productive.seed_person("Dee", "Developer", "dev@agency.io");
    productive.seed_person("Dana", "Designer", "design@agency.io");
    productive.seed_service_type("Design");
    productive.seed_service_type("Development");
    let template = productive.seed_template_project("Website template", &pm, &["Kick-off call", "Sitemap", "Launch"]);
    let config_text = format!(
        r#"
        [kommo]
        pipeline_id = {pipeline}
        service_field = "Service type"

        [productive]
        organization_id = "{org}"
        project_manager_email = "pm@agency.io"
        template_project_id = "{template}"
        copy_poll_interval_ms = 20

        [[services]]
        kommo_value = "Website"
        service_type = "Design"
        unit = "hour"
        billing_type = "time_and_materials"
        price = "95.0"
        quantity = 40

        [[services]]
        kommo_value = "Website"
        service_type = "Development"

        [team]
        always = ["design@agency.io"]
        [team.by_responsible]
        "anna@agency.io" = ["pm@agency.io", "dev@agency.io"]

        [alerts]
        budget_thresholds = [80, 100]
        create_task = true
        "#,
        org = productive.config().organization_id,
    );
    let config = Config::from_toml(&config_text)?;
    let flow = Arc::new(KommoProductive::new(config, kommo.client(), productive.client()));
    flow.validate().await.context("validating the demo config")?;
    n.check(true, "config validated against both fakes (service types, people, Kommo field options, users)");

    let store = Store::open_sqlite(dir.join("kommo-productive.db"), StoreOptions::default()).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let pclient = productive.client();
    let mut tokens = Vec::new();
    for event in [EventId::TaskUpdated, EventId::BudgetUpdated] {
        let w = pclient.create_webhook(&NewWebhook::new(event, format!("{base}/hooks/productive"))).await?;
        tokens.push(w.attributes.signature_token.context("signature token")?);
    }
    let engine = Engine::new(store.clone(), vec![flow.clone()])?;
    let (router, stats) = sync_core::server::router(engine.clone(), flow.routes("demo-secret", tokens))?;
    let server = tokio::spawn(async move {
        let _ = sync_core::server::serve(listener, router, std::future::pending()).await;
    });
    let fast = WorkerConfig {
        poll_interval: Duration::from_millis(20),
        backoff: sync_core::Backoff { initial: Duration::from_millis(200), multiplier: 2, max: Duration::from_secs(1) },
        ..WorkerConfig::default()
    };
    let workers = worker::start(engine.clone(), fast);
    n.say(&format!("receiver: {base}/hooks/kommo/<secret> and {base}/hooks/productive"));

    n.step("A deal is won in Kommo (Productive will answer 503 once in the middle of the saga)");
    let acme = kommo.seed_company("Acme GmbH");
    let website = kommo.enum_id(field, "Website").context("option")?;
    let lead = kommo.seed_lead(
        SeedLead::new("Website relaunch")
            .price(12_000)
            .stage(pipeline, stages[0])
            .responsible(anna)
            .field(field, serde_json::json!({"enum_id": website.get()}))
            .company(acme),
    );
    productive.server.faults.inject(
        Some("POST".parse().context("method")?),
        "/api/v2/deals",
        api_core::fake::Fault::json(
            503,
            &serde_json::json!({"errors": [{"status": 503, "title": "Service Unavailable"}]}),
        ),
        1,
    );
    kommo.set_lead_status(lead, pipeline, StatusId::WON);
    let body = kommo.webhook_for_lead_status(lead);
    let url = format!("{base}/hooks/kommo/demo-secret");
    let status = kommo_api::fake::post_webhook(&url, &body).await?;
    n.check(status.as_u16() == 200, "Kommo's webhook accepted (200 as soon as it is stored)");
    wait_drained(&store).await?;
    let log = &productive.server.log;
    let projects: Vec<_> =
        productive.all::<ProjectAttributes>().into_iter().filter(|p| p.attributes.template != Some(true)).collect();
    let budgets: Vec<_> =
        productive.all::<DealAttributes>().into_iter().filter(productive_api::Resource::is_budget).collect();
    n.check(
        projects.len() == 1,
        &format!("one project copied from the template: {:?}", projects.first().map(|p| &p.attributes.name)),
    );
    n.check(posts(log, "/api/v2/deals") == 2, "the budget POST failed with 503 once and was retried");
    n.check(
        posts(log, "/api/v2/companies") == 1 && posts(log, "/api/v2/projects/copy") == 1,
        "the retry resumed at the budget step: company and project were not created again",
    );
    n.check(budgets.len() == 1, "one budget (deal value 12000 EUR)");
    let services = productive.all::<productive_api::resources::services::ServiceAttributes>();
    n.check(
        services.len() == 2,
        &format!("{} services from the service map (Design 40 h × 95, Development 12000)", services.len()),
    );
    let project = projects.first().map(productive_api::Resource::typed_id).context("no project")?;
    let members = productive
        .all::<productive_api::resources::assignments::ProjectAssignmentAttributes>()
        .into_iter()
        .filter(|a| a.project_id() == Some(project.clone()))
        .count();
    n.check(members == 3, "team assigned: PM (copied from the template, 409 counted as done), developer, designer");
    let notes = kommo.notes_for(EntityType::Leads, lead.get());
    n.check(
        notes.iter().any(|n| n.text().is_some_and(|t| t.contains(&format!("/projects/{project}")))),
        "the Kommo lead got a note with the Productive project link",
    );

    n.step("Kommo redelivers the same webhook three times");
    for _ in 0..3 {
        kommo_api::fake::post_webhook(&url, &body).await?;
    }
    wait_drained(&store).await?;
    n.check(stats.duplicates.load(std::sync::atomic::Ordering::Relaxed) == 3, "3 duplicates dropped at the door");
    n.step("The deal is reopened and won again");
    kommo.set_lead_status(lead, pipeline, stages[1]);
    kommo_api::fake::post_webhook(&url, &kommo.webhook_for_lead_status(lead)).await?;
    kommo.set_lead_status(lead, pipeline, StatusId::WON);
    kommo_api::fake::post_webhook(&url, &kommo.webhook_for_lead_status(lead)).await?;
    wait_drained(&store).await?;
    let projects_now =
        productive.all::<ProjectAttributes>().into_iter().filter(|p| p.attributes.template != Some(true)).count();
    n.check(
        projects_now == 1 && posts(log, "/api/v2/projects/copy") == 1,
        "still one project: the lead ↔ project mapping is in the id map",
    );

    n.step("A task is completed in Productive");
    let task = productive
        .all::<productive_api::resources::tasks::TaskAttributes>()
        .into_iter()
        .find(|t| t.project_id() == Some(project.clone()) && t.attributes.title == "Kick-off call")
        .context("copied task")?;
    let sent = productive.complete_task(&task.typed_id()).await;
    n.check(sent.first().and_then(|s| s.status) == Some(200), "signed delivery verified and accepted");
    wait_drained(&store).await?;
    let notes = kommo.notes_for(EntityType::Leads, lead.get());
    n.check(
        notes.iter().any(|n| n.text().is_some_and(|t| t.contains("task completed: Kick-off call"))),
        "the Kommo lead got a note: task completed",
    );

    n.step("The budget passes 80 % in Productive");
    let budget = budgets[0].typed_id();
    productive.update_deal(&budget, &serde_json::from_value(serde_json::json!({"budget_used": "13430.0"}))?).await;
    wait_drained(&store).await?;
    let notes = kommo.notes_for(EntityType::Leads, lead.get());
    n.check(notes.iter().any(|n| n.text().is_some_and(|t| t.contains("85% used"))), "a budget note on the lead");
    n.check(kommo.tasks_for(EntityType::Leads, lead.get()).len() == 1, "and a Kommo task for Anna");

    workers.shutdown().await;
    server.abort();
    let status = store.status().await?;
    let done: i64 = status.depth.iter().filter(|((_, s), _)| *s == State::Done).map(|(_, n)| *n).sum();
    n.check(status.dead == 0, "no dead letters");
    let retries = store.list(State::Done, 100).await?.iter().map(|r| r.attempts - 1).sum::<i64>();
    let summary = vec![
        ("webhooks accepted", stats.accepted.load(std::sync::atomic::Ordering::Relaxed).to_string()),
        ("duplicates dropped", stats.duplicates.load(std::sync::atomic::Ordering::Relaxed).to_string()),
        ("events done", done.to_string()),
        ("retries", retries.to_string()),
        ("dead letters", status.dead.to_string()),
        ("Productive projects", projects_now.to_string()),
        ("Productive services", services.len().to_string()),
        ("Kommo notes", kommo.notes_for(EntityType::Leads, lead.get()).len().to_string()),
        ("Kommo tasks", kommo.tasks_for(EntityType::Leads, lead.get()).len().to_string()),
        ("elapsed", examples::human(started.elapsed())),
    ];
    n.finish(&summary)
}

/// POST requests to paths starting with `prefix` in a fake's log.
fn posts(log: &api_core::fake::RequestLog, prefix: &str) -> usize {
    log.requests().iter().filter(|r| r.method.as_str() == "POST" && r.path.starts_with(prefix)).count()
}

#[cfg(test)]
mod tests {
    /// The shipped config parses (flow part and `[serve]`), with the documented defaults.
    #[test]
    fn shipped_config_parses() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/kommo-productive.toml");
        let (config, serve) = super::load(&path).expect("examples/config/kommo-productive.toml loads");
        assert_eq!(config.kommo.won_status_id, 142);
        assert_eq!(serve.kommo_requests_per_second, 7, "Kommo's per-account limit");
        assert_eq!(serve.productive_base_url, None);
        assert_eq!(serve.public_url.as_deref(), Some("https://sync.example.com"));
    }
}
