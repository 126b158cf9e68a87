//! A chaos soak for the Kommo → Productive flow (`sync_core::flows::kommo_productive`) with a field-level oracle.
//!
//! Several engine "processes" (each with its own API clients, flow instance, receiver router and worker pool, as
//! `serve` has) share one store: SQLite or PostgreSQL. A driver wins, reopens and re-wins Kommo leads and changes
//! their names and prices, fast enough that several changes share a second, and delivers Kommo's form-encoded
//! webhooks for every change to random receivers, each retried until answered 200 (as Kommo does): reordered
//! within a window, about 10 % exact redeliveries, the `leads[update]` hook beside every `leads[status]` one
//! (near-duplicates), and now and then one delivery carrying two leads' status changes (Kommo batches). For
//! projects and budgets the flow has mapped, people close tasks and book time in Productive: the driver sends
//! signed Productive webhooks (`update_task` with `closed: true`, `update_budget` whose usage crosses the alert
//! thresholds), built from the fake's state the way the flow's tests build them, also with exact redeliveries and
//! near-duplicates (the same task closed again, a later delivery about the same item). Meanwhile faults are
//! injected into both fakes (Kommo 429 and 502, Productive 429, 500 and 503, drop-after-commit on POSTs to
//! Productive and on Kommo note and task POSTs) and worker pools are killed (tasks dropped where they are, leases
//! left to expire) and replaced.
//!
//! When the queues have drained, an oracle (`oracle`) derives the expected state of every Productive object and every Kommo
//! note and task from the seeds and from what the driver did, independently of the flow's mapping code, and
//! compares it field by field: for every lead won at the end exactly one company, project, budget, the two
//! services and the three assignments of the config below, exactly one kick-off note with the project link, one
//! note per closed task, one note and one task per crossed budget threshold; nothing else anywhere; no dead
//! letters. A lead that was won and reopened before its event ran may have been skipped by the flow (the lead is
//! "no longer won"): it has either nothing or the whole kick-off, never a part of it.
//!
//! The behaviours modelled by the fakes are those of their own docs (`kommo_api::fake`, `productive_api::fake`);
//! rate limits are off here (throttling is injected as 429 faults instead: Kommo's with the client's throttle
//! backoff shortened, Productive's with `Retry-After: 1`, since without it the client waits a whole 10 s window),
//! to keep a soak short: the subject is convergence, not pacing.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use api_core::fake::Fault;
use kommo_api::fake::{FakeConfig as KmConfig, FakeKommo, FakeWebhook, SeedLead};
use kommo_api::{EntityType, LeadId, StatusId, UserId};
use productive_api::fake::{FakeConfig as PrConfig, FakeProductive};
use productive_api::resources::assignments::ProjectAssignmentAttributes;
use productive_api::resources::companies::CompanyAttributes;
use productive_api::resources::deals::DealAttributes;
use productive_api::resources::projects::ProjectAttributes;
use productive_api::resources::services::ServiceAttributes;
use productive_api::resources::webhooks::NewWebhook;
use productive_api::{BillingType, EventId, PersonId, ServiceTypeId, ServiceUnit};
use serde_json::{Value, json};
use sync_core::flows::kommo_productive::{
    Config, FLOW_NAME, KIND_LEAD_BUDGET, KIND_LEAD_KICKOFF, KIND_LEAD_PROJECT, KommoProductive,
};
use sync_core::{Engine, Store, WorkerHandle, server, worker};

use super::{
    ChaosConfig, Report, Rng, RunCounts, Senders, Window, complete_report, kill_due, kill_one, queue_empty, stop_pools,
    wait_drained, worker_config,
};

const PATH_TOKEN: &str = "chaos-path-token";
const PM: &str = "pm@agency.io";
const DEV: &str = "dev@agency.io";
const DESIGN: &str = "design@agency.io";
const RESPONSIBLE: &str = "anna@agency.io";
/// Design: 40 hours at 95.0 (time and materials); Development: one fixed-price piece at the deal value.
const DESIGN_TOTAL: f64 = 95.0 * 40.0;

/// One engine process: its own clients, flow, receiver and worker pool.
struct Process {
    engine: Engine,
    addr: SocketAddr,
    workers: Option<WorkerHandle>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

/// One webhook delivery.
#[derive(Debug, Clone)]
enum Delivery {
    /// A Kommo form-encoded body.
    Kommo(String),
    /// A Productive JSON body and the signature token to sign it with (signed at each attempt, as Productive
    /// signs each delivery).
    Productive(Vec<u8>, api_core::Token),
}

/// What the oracle needs to know about one lead: its seeds and everything the driver did to it.
#[derive(Debug, Default)]
struct LeadLog {
    company: String,
    /// Every name the lead had.
    names: BTreeSet<String>,
    /// Every price the lead had.
    prices: BTreeSet<i64>,
    ever_won: bool,
    /// Closed task id → the note text the delivery calls for.
    task_notes: BTreeMap<String, String>,
    /// `(budget id, threshold)` → the alert texts the deliveries that crossed it call for (any one of them).
    alerts: BTreeMap<(String, u32), BTreeSet<String>>,
}

/// The ids of the seeds, for the oracle.
struct Seeds {
    org: String,
    anna: UserId,
    pm: PersonId,
    dev: PersonId,
    design: PersonId,
    design_type: ServiceTypeId,
    dev_type: ServiceTypeId,
    thresholds: Vec<u32>,
}

fn flow_config(kommo: &FakeKommo, productive: &FakeProductive) -> String {
    format!(
        "[kommo]\npipeline_id = {}\n\n[productive]\norganization_id = \"{}\"\nproject_manager_email = \"{PM}\"\n\n\
         [[services]]\nservice_type = \"Design\"\nprice = \"95.0\"\nquantity = 40\nunit = \"hour\"\n\
         billing_type = \"time_and_materials\"\n\n[[services]]\nservice_type = \"Development\"\n\n\
         [team]\nalways = [\"{DESIGN}\"]\n[team.by_responsible]\n\"{RESPONSIBLE}\" = [\"{PM}\", \"{DEV}\"]\n\n\
         [alerts]\ntask_completed_note = true\nbudget_thresholds = [80, 100]\ncreate_task = true\ntask_due_hours = 24\n",
        kommo.main_pipeline(),
        productive.config().organization_id
    )
}

fn amount(v: &Value) -> Option<f64> {
    match v {
        Value::String(s) => s.trim().parse().ok(),
        Value::Number(n) => n.as_f64(),
        _ => None,
    }
}

/// Runs the Kommo → Productive soak on `open_store()` (called once per process: each gets its own pool, like a
/// separate process would). `cfg.airtable_edits` is not used by this scenario.
///
/// # Panics
/// When the fakes or the receivers cannot start (nothing to measure then).
#[allow(clippy::too_many_lines)]
pub async fn run_kommo_productive<F, Fut>(cfg: &ChaosConfig, open_store: F) -> Report
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Store>,
{
    let started = Instant::now();
    let mut rng = Rng(cfg.seed.rotate_left(7) | 1);
    let kommo = Arc::new(
        FakeKommo::start_with(KmConfig { rate_limit: None, ..KmConfig::default() }).await.expect("kommo fake"),
    );
    let productive = Arc::new(
        FakeProductive::start_with(PrConfig { per_10s: None, per_30min: None, ..PrConfig::default() })
            .await
            .expect("productive fake"),
    );
    let anna = kommo.seed_user("Anna Sales", RESPONSIBLE);
    let pipeline = kommo.main_pipeline();
    let stages = kommo.stages(pipeline);
    let open_stage = stages[0];
    let reopen_stage = stages[1.min(stages.len() - 1)];
    let seeds = Seeds {
        org: productive.config().organization_id.clone(),
        anna,
        pm: productive.seed_person("Pat", "Manager", PM),
        dev: productive.seed_person("Dee", "Dev", DEV),
        design: productive.seed_person("Dana", "Design", DESIGN),
        design_type: productive.seed_service_type("Design"),
        dev_type: productive.seed_service_type("Development"),
        thresholds: vec![80, 100],
    };
    let mut logs: BTreeMap<LeadId, LeadLog> = BTreeMap::new();
    let mut leads = Vec::new();
    for i in 0..cfg.leads {
        let company_name = format!("Company {i}");
        let company = kommo.seed_company(&company_name);
        let contact = kommo.seed_contact(&format!("Client {i}"), Some(&format!("client{i}@example.com")), None);
        let (name, price) = (format!("Deal {i}"), 1_000 + i64::try_from(i).unwrap_or(0));
        let lead = kommo.seed_lead(
            SeedLead::new(&name)
                .price(price)
                .responsible(anna)
                .contact(contact)
                .company(company)
                .stage(pipeline, open_stage),
        );
        logs.insert(
            lead,
            LeadLog {
                company: company_name,
                names: BTreeSet::from([name]),
                prices: BTreeSet::from([price]),
                ..LeadLog::default()
            },
        );
        leads.push(lead);
    }

    // the processes
    let config_text = flow_config(&kommo, &productive);
    let mut tokens: Vec<api_core::Token> = Vec::new();
    let mut procs = Vec::new();
    for p in 0..cfg.processes.max(1) {
        let store = open_store().await;
        let config = Config::from_toml(&config_text).expect("chaos config");
        let kommo_client = kommo
            .client_builder()
            .rate_limit(1000)
            .throttle_backoff(Duration::from_millis(400))
            .request_timeout(Duration::from_secs(5))
            .build()
            .expect("kommo client");
        let productive_client = productive
            .client_builder()
            .rate_budget(api_core::RateLimiter::unlimited())
            .request_timeout(Duration::from_secs(5))
            .build()
            .expect("productive client");
        let flow = Arc::new(KommoProductive::new(config, kommo_client, productive_client));
        flow.validate().await.expect("config is valid");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        if p == 0 {
            // the Productive subscriptions (their signature tokens sign the driver's deliveries; the fake's own
            // emission is not used: the driver changes state without it and delivers itself)
            let client = productive.client();
            for ev in [EventId::TaskUpdated, EventId::BudgetUpdated] {
                let w = client
                    .create_webhook(&NewWebhook::new(ev, format!("http://{addr}/hooks/productive")))
                    .await
                    .expect("productive webhook");
                tokens.push(w.attributes.signature_token.expect("signature token"));
            }
        }
        let engine = Engine::new(store.clone(), vec![flow.clone()]).expect("engine");
        let (router, _) = server::router(engine.clone(), flow.routes(PATH_TOKEN, tokens.clone())).expect("router");
        let (stop, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(server::serve(listener, router, async {
            let _ = rx.await;
        }));
        let workers = Some(worker::start(engine.clone(), worker_config()));
        procs.push(Process { engine, addr, workers, _stop: stop });
    }
    let addrs: Vec<SocketAddr> = procs.iter().map(|p| p.addr).collect();

    // senders: every delivery is retried until a receiver answers 200 (both vendors retry failed deliveries)
    let senders = Senders::start(&addrs, 11, |http: reqwest::Client, addr: SocketAddr, d: Delivery| async move {
        let req = match d {
            Delivery::Kommo(body) => http
                .post(format!("http://{addr}/hooks/kommo/{PATH_TOKEN}"))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body),
            Delivery::Productive(body, token) => http
                .post(format!("http://{addr}/hooks/productive"))
                .header("content-type", "application/json")
                .header(
                    "productive-signature",
                    productive_api::webhook::sign(&token, chrono::Utc::now().timestamp(), &body),
                )
                .body(body),
        };
        req.send().await.is_ok_and(|r| r.status().is_success())
    });

    // faults
    let faulting = Arc::new(AtomicBool::new(true));
    let faults = Arc::new(AtomicU64::new(0));
    super::transient(cfg, &[kommo.faults(), &productive.server.faults]);
    let injector = {
        let (kommo, productive, faulting, faults, every) =
            (kommo.clone(), productive.clone(), faulting.clone(), faults.clone(), cfg.fault_every);
        let mut r = Rng(cfg.seed.rotate_left(29) | 1);
        tokio::spawn(async move {
            let pf = &productive.server.faults;
            let error = |status: u16, title: &str| {
                Fault::json(status, &json!({"errors": [{"status": status.to_string(), "title": title}]}))
            };
            let traffic = || {
                [reqwest::Method::GET, reqwest::Method::POST, reqwest::Method::PATCH]
                    .iter()
                    .map(|m| kommo.log().count(m, "/") + productive.server.log.count(m, "/"))
                    .sum::<usize>()
            };
            let mut last = 0;
            while faulting.load(Ordering::Relaxed) {
                tokio::time::sleep(every).await;
                // paced by the traffic, so that injected faults never pile up into an outage
                let now = traffic();
                if now < last + 4 {
                    continue;
                }
                last = now;
                match r.below(10) {
                    0 => kommo.inject_throttle(1),
                    1 => kommo.inject_status(502, 1),
                    2 => kommo.faults().inject(
                        Some(reqwest::Method::POST),
                        "/api/v4/leads/notes",
                        Fault::DropAfterCommit,
                        1,
                    ),
                    3 => kommo.faults().inject(Some(reqwest::Method::POST), "/api/v4/tasks", Fault::DropAfterCommit, 1),
                    4 => pf.inject(
                        None,
                        "/api/v2/",
                        Fault::Status {
                            status: 429,
                            headers: vec![("retry-after".into(), "1".into())],
                            body: json!({"errors": [{"status": "429", "title": "Too Many Requests"}]}).to_string(),
                            content_type: "application/vnd.api+json".into(),
                        },
                        1,
                    ),
                    5 => pf.inject(None, "/api/v2/", error(503, "Service Unavailable"), 1),
                    6 => pf.inject(None, "/api/v2/", error(500, "Internal Server Error"), 1),
                    7 => pf.inject(Some(reqwest::Method::POST), "/api/v2/", Fault::DropAfterCommit, 1),
                    _ => {
                        let path = [
                            "/api/v2/companies",
                            "/api/v2/projects",
                            "/api/v2/deals",
                            "/api/v2/services",
                            "/api/v2/project_assignments",
                        ][r.below(5)];
                        pf.inject(Some(reqwest::Method::POST), path, Fault::DropAfterCommit, 1);
                    }
                }
                faults.fetch_add(1, Ordering::Relaxed);
            }
        })
    };

    // the driver
    let store = procs[0].engine.store().clone();
    let mut window = Window::new();
    let mut kills = 0u64;
    // phase 1: `cfg.changes` changes, a fifth of them in Productive; phase 2 (once the kick-offs have caught up):
    // half as many again, all in Productive, so that budgets cross their thresholds and tasks close while faults
    // and kills go on
    let steps = cfg.changes + cfg.changes / 2;
    let kill_every = steps / (cfg.kills + 1);
    let mut task_no = 0u64;
    for step in 0..steps {
        if step == cfg.changes {
            let until = Instant::now() + Duration::from_secs(30);
            while Instant::now() < until && !queue_empty(&store).await {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        let lead = leads[rng.below(leads.len())];
        let current = kommo.lead(lead).expect("seeded lead");
        let won = current.status_id == Some(StatusId::WON);
        let mut batch: Vec<Delivery> = Vec::new();
        let mut roll = if step < cfg.changes { rng.below(100) } else { 99 };
        if roll >= 80 {
            // people work in Productive on a project the flow has mapped
            let won_leads: Vec<LeadId> = logs.iter().filter(|(_, l)| l.ever_won).map(|(id, _)| *id).collect();
            let target = if won_leads.is_empty() { None } else { Some(won_leads[rng.below(won_leads.len())]) };
            let mapped = match target {
                Some(t) => {
                    let key = t.to_string();
                    let project = store.id_get(FLOW_NAME, KIND_LEAD_PROJECT, &key).await.ok().flatten();
                    let budget = store.id_get(FLOW_NAME, KIND_LEAD_BUDGET, &key).await.ok().flatten();
                    project.map(|p| (t, p, budget))
                }
                None => None,
            };
            match mapped {
                Some((t, project, budget)) => {
                    let log = logs.get_mut(&t).expect("logged lead");
                    let made = if rng.chance(55) || budget.is_none() {
                        close_task(&productive, &tokens[0], &seeds, &project, &mut task_no, log, &mut rng).await
                    } else {
                        let budget = budget.unwrap_or_default();
                        book_time(&productive, &tokens[1], &seeds, &budget, log, &mut rng).await
                    };
                    batch.extend(made);
                }
                None => roll = 50, // nothing mapped yet: a price change instead
            }
        }
        match roll {
            0..45 => {
                let to = if won { reopen_stage } else { StatusId::WON };
                kommo.set_lead_status(lead, pipeline, to);
                if to == StatusId::WON {
                    logs.get_mut(&lead).expect("logged lead").ever_won = true;
                }
                batch.push(Delivery::Kommo(kommo.webhook_body(&[FakeWebhook::LeadStatus(lead)])));
                batch.push(Delivery::Kommo(kommo.webhook_body(&[FakeWebhook::LeadUpdate(lead)])));
                // sometimes Kommo batches two leads' status changes in one delivery
                if rng.chance(10) {
                    let other = leads[rng.below(leads.len())];
                    if other != lead {
                        batch.push(Delivery::Kommo(
                            kommo.webhook_body(&[FakeWebhook::LeadStatus(lead), FakeWebhook::LeadStatus(other)]),
                        ));
                    }
                }
            }
            45..65 => {
                let price = 500 + i64::try_from(rng.below(100_000)).unwrap_or(0);
                kommo.update_lead(lead, &json!({"price": price}));
                logs.get_mut(&lead).expect("logged lead").prices.insert(price);
                batch.push(Delivery::Kommo(kommo.webhook_body(&[FakeWebhook::LeadUpdate(lead)])));
            }
            65..80 => {
                let name = format!("Deal {} v{step}", lead.get());
                kommo.update_lead(lead, &json!({"name": name}));
                logs.get_mut(&lead).expect("logged lead").names.insert(name);
                batch.push(Delivery::Kommo(kommo.webhook_body(&[FakeWebhook::LeadUpdate(lead)])));
            }
            _ => {}
        }
        for d in batch {
            window.add(d, &mut rng);
        }
        // reordering: send a random delivery of the window once it holds enough
        window.release(&senders, &mut rng).await;
        if kill_due(cfg, step, kill_every, kills) {
            kills += kill_one(procs.iter_mut().map(|p| (&mut p.workers, &p.engine)).collect(), &mut rng).await;
        }
        tokio::time::sleep(Duration::from_millis(u64::try_from(rng.below(8)).unwrap_or(0))).await;
    }
    window.flush(&senders, &mut rng).await;
    let accepted = senders.finish().await;
    faulting.store(false, Ordering::Relaxed);
    let _ = injector.await;
    kommo.faults().clear();
    productive.server.faults.clear();
    let last_delivery = Instant::now();

    // drain
    let drained = wait_drained(&store, cfg.drain_timeout, Duration::from_millis(300), || async {}).await;
    let drain = last_delivery.elapsed();
    let status = store.status().await.expect("status");
    stop_pools(procs.iter_mut().map(|p| &mut p.workers)).await;

    let mut report = oracle(&kommo, &productive, &store, &seeds, &logs).await;
    let counts = RunCounts {
        posted: window.posted,
        accepted,
        faults: faults.load(Ordering::Relaxed),
        faults_lapsed: super::lapsed(&[kommo.faults(), &productive.server.faults]),
        kills,
        drain,
        total: started.elapsed(),
    };
    complete_report(&mut report, &store, &status, (!drained).then_some(cfg.drain_timeout), counts).await;
    for p in &procs {
        p.engine.store().close().await;
    }
    report
}

/// A person closes a new task of `project` in Productive: the `update_task` delivery, sometimes followed by a
/// later delivery about the same closed task (a near-duplicate: another `created`), and now and then an update of
/// a task left open (filtered by the flow). Records the note the closure calls for.
async fn close_task(
    productive: &FakeProductive,
    token: &api_core::Token,
    seeds: &Seeds,
    project: &str,
    task_no: &mut u64,
    log: &mut LeadLog,
    rng: &mut Rng,
) -> Vec<Delivery> {
    *task_no += 1;
    let project_id = productive_api::ProjectId::from(project.to_owned());
    let title = format!("Task {task_no}");
    let task = productive.seed_task(&project_id, None, &title);
    let mut out = Vec::new();
    if rng.chance(15) {
        // an update of an open task
        if let Some(body) = productive.webhook_body(EventId::TaskUpdated, "tasks", task.as_str()) {
            out.push(Delivery::Productive(body, token.clone()));
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let mut closed = serde_json::Map::new();
    closed.insert("closed".into(), Value::Bool(true));
    closed.insert("closed_at".into(), Value::String(chrono::Utc::now().to_rfc3339()));
    productive.set_attributes("tasks", task.as_str(), &closed);
    let Some(body) = productive.webhook_body(EventId::TaskUpdated, "tasks", task.as_str()) else { return out };
    // the note the delivery calls for, from the delivery itself
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let project_name = v["object"]["included"]
        .as_array()
        .and_then(|inc| inc.iter().find(|r| r["type"] == "projects" && r["id"] == project))
        .and_then(|r| r["attributes"]["name"].as_str())
        .map(str::to_owned);
    let mut text = format!("Productive task completed: {title} (task #{task}");
    if let Some(n) = project_name {
        let _ = write!(text, ", project {n}");
    }
    let _ = write!(text, ")\nhttps://app.productive.io/{}/projects/{project}", seeds.org);
    log.task_notes.insert(task.to_string(), text);
    out.push(Delivery::Productive(body, token.clone()));
    if rng.chance(20) {
        tokio::time::sleep(Duration::from_millis(2)).await;
        if let Some(again) = productive.webhook_body(EventId::TaskUpdated, "tasks", task.as_str()) {
            out.push(Delivery::Productive(again, token.clone()));
        }
    }
    tokio::time::sleep(Duration::from_millis(2)).await;
    out
}

/// A person books time on `budget`: its usage grows by 15–50 % of its total, and the `update_budget` delivery is
/// sent. Records the alert (threshold and acceptable texts) the delivery calls for.
async fn book_time(
    productive: &FakeProductive,
    token: &api_core::Token,
    seeds: &Seeds,
    budget: &str,
    log: &mut LeadLog,
    rng: &mut Rng,
) -> Vec<Delivery> {
    let Some(deal) = productive.get::<DealAttributes>(&productive_api::DealId::from(budget.to_owned())) else {
        return Vec::new();
    };
    let total = deal.attributes.budget_total.as_ref().and_then(productive_api::Amount::as_f64).unwrap_or(0.0);
    let used = deal.attributes.budget_used.as_ref().and_then(productive_api::Amount::as_f64).unwrap_or(0.0);
    #[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation)]
    let next = (used + total * (15 + rng.below(36)) as f64 / 100.0).round() as i64;
    let mut m = serde_json::Map::new();
    m.insert("budget_used".into(), Value::String(format!("{next}.0")));
    productive.set_attributes("deals", budget, &m);
    let Some(body) = productive.webhook_body(EventId::BudgetUpdated, "deals", budget) else { return Vec::new() };
    // the alert the delivery calls for, from the delivery itself
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let a = &v["object"]["data"]["attributes"];
    let used = amount(&a["budget_used"]).unwrap_or(0.0);
    let total = amount(&a["budget_total"]).unwrap_or(0.0);
    if total > 0.0 {
        let pct = used / total * 100.0;
        if let Some(t) = seeds.thresholds.iter().copied().filter(|t| pct >= f64::from(*t)).max() {
            let name = a["name"].as_str().unwrap_or_default();
            let currency = a["currency"].as_str().unwrap_or("EUR");
            let text = format!(
                "Productive budget \"{name}\" (#{budget}) is {pct:.0}% used ({used} of {total} {currency}; alert \
                 threshold {t}%)"
            );
            log.alerts.entry((budget.to_owned(), t)).or_default().insert(text);
        }
    }
    tokio::time::sleep(Duration::from_millis(2)).await;
    vec![Delivery::Productive(body, token.clone())]
}

/// Counts one problem.
fn problem(counter: &mut u64, details: &mut Vec<String>, line: String) {
    *counter += 1;
    details.push(line);
}

/// Compares every Productive object and every Kommo note and task with what the seeds and the driver's actions
/// imply. Written without the flow's mapping code: names, prices, texts and team come from the seeds, the config
/// this scenario wrote and the deliveries the driver sent.
#[allow(clippy::too_many_lines)]
async fn oracle(
    kommo: &FakeKommo,
    productive: &FakeProductive,
    store: &Store,
    seeds: &Seeds,
    logs: &BTreeMap<LeadId, LeadLog>,
) -> Report {
    let mut r = Report::default();
    let companies = productive.all::<CompanyAttributes>();
    let projects: Vec<_> =
        productive.all::<ProjectAttributes>().into_iter().filter(|p| p.attributes.template != Some(true)).collect();
    let budgets: Vec<_> =
        productive.all::<DealAttributes>().into_iter().filter(productive_api::Resource::is_budget).collect();
    let services = productive.all::<ServiceAttributes>();
    let assignments = productive.all::<ProjectAssignmentAttributes>();
    let mut seen_companies = BTreeSet::new();
    let mut seen_projects = BTreeSet::new();
    let mut seen_budgets = BTreeSet::new();
    let mut seen_services = BTreeSet::new();
    let mut seen_assignments = BTreeSet::new();
    let url = |project: &str| format!("https://app.productive.io/{}/projects/{project}", seeds.org);

    for (lead_id, log) in logs {
        let key = lead_id.to_string();
        let lead = kommo.lead(*lead_id).expect("lead");
        let won_now = lead.status_id == Some(StatusId::WON);
        let suffix = format!(" (Kommo #{key})");
        let mine: Vec<_> = projects.iter().filter(|p| p.attributes.name.ends_with(&suffix)).collect();
        let notes: Vec<String> = kommo
            .notes_for(EntityType::Leads, lead_id.get())
            .into_iter()
            .map(|n| n.text().unwrap_or_default().to_owned())
            .collect();
        let tasks = kommo.tasks_for(EntityType::Leads, lead_id.get());
        r.records += (notes.len() + tasks.len()) as u64;
        if mine.len() > 1 {
            problem(&mut r.duplicated, &mut r.details, format!("lead {key}: {} projects", mine.len()));
        }
        let Some(project) = mine.first() else {
            if won_now {
                problem(&mut r.lost, &mut r.details, format!("lead {key} is won and has no project"));
            }
            if !notes.is_empty() || !tasks.is_empty() {
                problem(
                    &mut r.orphans,
                    &mut r.details,
                    format!("lead {key} has no project but {} notes and {} tasks: {notes:?}", notes.len(), tasks.len()),
                );
            }
            for (kind, want) in [(KIND_LEAD_PROJECT, 0), (KIND_LEAD_KICKOFF, 0)] {
                if let Ok(Some(id)) = store.id_get(FLOW_NAME, kind, &key).await {
                    problem(&mut r.orphans, &mut r.details, format!("lead {key}: {kind} maps to {id}, want {want}"));
                }
            }
            continue;
        };
        for p in &mine {
            seen_projects.insert(p.id.clone());
        }
        r.records += 1;
        if !log.ever_won {
            problem(&mut r.orphans, &mut r.details, format!("lead {key} was never won and has project {}", project.id));
        }

        // the project: name from one snapshot of the lead, company, manager
        let company_prefix = format!("{}: ", log.company);
        let deal_name =
            project.attributes.name.strip_prefix(&company_prefix).and_then(|s| s.strip_suffix(&suffix)).unwrap_or("");
        let mut wrong = Vec::new();
        if !log.names.contains(deal_name) {
            wrong.push(format!("name {:?} (lead names {:?})", project.attributes.name, log.names));
        }
        let company = project.company_id().and_then(|c| companies.iter().find(|x| x.typed_id() == c));
        match company {
            Some(c) if c.attributes.name == log.company => {}
            other => wrong.push(format!("company {:?} != {}", other.map(|c| &c.attributes.name), log.company)),
        }
        let same_name = companies.iter().filter(|c| c.attributes.name == log.company).count();
        for c in companies.iter().filter(|c| c.attributes.name == log.company) {
            seen_companies.insert(c.id.clone());
        }
        if same_name > 1 {
            problem(&mut r.duplicated, &mut r.details, format!("lead {key}: {same_name} companies {}", log.company));
        }
        if project.project_manager_id() != Some(seeds.pm.clone()) {
            wrong.push(format!("project manager {:?}", project.project_manager_id()));
        }
        for (kind, want) in [(KIND_LEAD_PROJECT, project.id.as_str()), (KIND_LEAD_KICKOFF, project.id.as_str())] {
            match store.id_get(FLOW_NAME, kind, &key).await {
                Ok(Some(id)) if id == want => {}
                other => wrong.push(format!("id map {kind}: {other:?} != {want}")),
            }
        }
        if !wrong.is_empty() {
            problem(&mut r.wrong, &mut r.details, format!("lead {key} project {}: {}", project.id, wrong.join("; ")));
        }

        // the budget: same snapshot (name), the deal value in its note, the services' total
        let pid = project.typed_id();
        let mine_b: Vec<_> = budgets.iter().filter(|b| b.project_id() == Some(pid.clone())).collect();
        for b in &mine_b {
            seen_budgets.insert(b.id.clone());
        }
        r.records += mine_b.len() as u64;
        if mine_b.len() > 1 {
            problem(&mut r.duplicated, &mut r.details, format!("lead {key}: {} budgets", mine_b.len()));
        }
        let mut price = None;
        match mine_b.first() {
            None => problem(&mut r.lost, &mut r.details, format!("lead {key}: project {} has no budget", project.id)),
            Some(b) => {
                let mut wrong = Vec::new();
                if b.attributes.name != deal_name {
                    wrong.push(format!("name {:?} != {deal_name:?}", b.attributes.name));
                }
                if b.attributes.currency.as_deref() != Some("EUR") {
                    wrong.push(format!("currency {:?}", b.attributes.currency));
                }
                if b.company_id() != project.company_id() {
                    wrong.push(format!("company {:?} != {:?}", b.company_id(), project.company_id()));
                }
                let note_price = b
                    .attributes
                    .note
                    .as_deref()
                    .and_then(|n| n.strip_prefix(&format!("Kommo deal #{key}: ")))
                    .and_then(|n| n.strip_suffix(" EUR"))
                    .and_then(|n| n.parse::<i64>().ok());
                match note_price {
                    Some(p) if log.prices.contains(&p) => price = Some(p),
                    _ => wrong.push(format!("note {:?} (lead prices {:?})", b.attributes.note, log.prices)),
                }
                #[allow(clippy::cast_precision_loss)]
                if let Some(p) = price {
                    let total = b.attributes.budget_total.as_ref().and_then(productive_api::Amount::as_f64);
                    if total != Some(DESIGN_TOTAL + p as f64) {
                        wrong.push(format!("budget_total {total:?} != {}", DESIGN_TOTAL + p as f64));
                    }
                }
                match store.id_get(FLOW_NAME, KIND_LEAD_BUDGET, &key).await {
                    Ok(Some(id)) if id == b.id => {}
                    other => wrong.push(format!("id map {KIND_LEAD_BUDGET}: {other:?} != {}", b.id)),
                }
                if !wrong.is_empty() {
                    problem(&mut r.wrong, &mut r.details, format!("lead {key} budget {}: {}", b.id, wrong.join("; ")));
                }
                // the services of the config
                let mine_s: Vec<_> = services.iter().filter(|s| s.deal_id() == Some(b.typed_id())).collect();
                for s in &mine_s {
                    seen_services.insert(s.id.clone());
                }
                r.records += mine_s.len() as u64;
                #[allow(clippy::cast_precision_loss)]
                let want = [
                    ("Design", &seeds.design_type, 95.0, 40.0, ServiceUnit::Hour, BillingType::TimeAndMaterials),
                    (
                        "Development",
                        &seeds.dev_type,
                        price.map_or(-1.0, |p| p as f64),
                        1.0,
                        ServiceUnit::Piece,
                        BillingType::Fixed,
                    ),
                ];
                for (name, ty, unit_price, qty, unit, billing) in want {
                    let found: Vec<_> = mine_s.iter().filter(|s| s.attributes.name == name).collect();
                    if found.len() > 1 {
                        problem(
                            &mut r.duplicated,
                            &mut r.details,
                            format!("lead {key}: {} {name} services", found.len()),
                        );
                    }
                    let Some(s) = found.first() else {
                        problem(&mut r.lost, &mut r.details, format!("lead {key}: no {name} service"));
                        continue;
                    };
                    let a = &s.attributes;
                    let mut wrong = Vec::new();
                    if s.service_type_id().as_ref() != Some(ty) {
                        wrong.push(format!("service type {:?}", s.service_type_id()));
                    }
                    if a.price.as_ref().and_then(productive_api::Amount::as_f64) != Some(unit_price) {
                        wrong.push(format!("price {:?} != {unit_price}", a.price));
                    }
                    if a.quantity.as_ref().and_then(productive_api::Amount::as_f64) != Some(qty) {
                        wrong.push(format!("quantity {:?} != {qty}", a.quantity));
                    }
                    if a.unit_id != Some(unit) {
                        wrong.push(format!("unit {:?}", a.unit_id));
                    }
                    if a.billing_type_id != Some(billing) {
                        wrong.push(format!("billing {:?}", a.billing_type_id));
                    }
                    if !wrong.is_empty() {
                        problem(
                            &mut r.wrong,
                            &mut r.details,
                            format!("lead {key} service {name}: {}", wrong.join("; ")),
                        );
                    }
                }
                for s in mine_s.iter().filter(|s| s.attributes.name != "Design" && s.attributes.name != "Development") {
                    problem(
                        &mut r.orphans,
                        &mut r.details,
                        format!("lead {key}: extra service {:?}", s.attributes.name),
                    );
                }
            }
        }

        // the team: each person once
        let mine_a: Vec<_> = assignments.iter().filter(|a| a.project_id() == Some(pid.clone())).collect();
        for a in &mine_a {
            seen_assignments.insert(a.id.clone());
        }
        r.records += mine_a.len() as u64;
        for (email, person) in [(PM, &seeds.pm), (DEV, &seeds.dev), (DESIGN, &seeds.design)] {
            let n = mine_a.iter().filter(|a| a.person_id().as_ref() == Some(person)).count();
            if n == 0 {
                problem(&mut r.lost, &mut r.details, format!("lead {key}: {email} not assigned"));
            } else if n > 1 {
                problem(&mut r.duplicated, &mut r.details, format!("lead {key}: {email} assigned {n} times"));
            }
        }
        for a in &mine_a {
            let p = a.person_id();
            if p.as_ref() != Some(&seeds.pm) && p.as_ref() != Some(&seeds.dev) && p.as_ref() != Some(&seeds.design) {
                problem(&mut r.orphans, &mut r.details, format!("lead {key}: unexpected assignment of {p:?}"));
            }
        }

        // Kommo: the kick-off note, one note per closed task, one note and one task per crossed threshold
        let link = url(project.id.as_str());
        let kickoff = price.map(|p| {
            format!(
                "Productive project created: {}\n{link}\nBudget: {p} EUR · services: 2 · team: {PM}, {DEV}, {DESIGN}",
                project.attributes.name
            )
        });
        let mut accounted = vec![false; notes.len()];
        let take = |want: &dyn Fn(&str) -> bool, accounted: &mut Vec<bool>| -> Vec<usize> {
            let idx: Vec<usize> = notes.iter().enumerate().filter(|(_, t)| want(t)).map(|(i, _)| i).collect();
            for i in &idx {
                accounted[*i] = true;
            }
            idx
        };
        let k = take(&|t: &str| t.starts_with("Productive project created: "), &mut accounted);
        match k.len() {
            0 => problem(&mut r.lost, &mut r.details, format!("lead {key}: no kick-off note")),
            1 => {
                if kickoff.as_deref() != Some(notes[k[0]].as_str()) {
                    problem(
                        &mut r.wrong,
                        &mut r.details,
                        format!("lead {key}: kick-off note {:?} != {kickoff:?}", notes[k[0]]),
                    );
                }
            }
            n => problem(&mut r.duplicated, &mut r.details, format!("lead {key}: {n} kick-off notes")),
        }
        for (task, text) in &log.task_notes {
            let n = take(&|t: &str| t == text.as_str(), &mut accounted).len();
            match n {
                1 => {}
                0 => problem(&mut r.lost, &mut r.details, format!("lead {key}: no note for closed task {task}")),
                n => problem(&mut r.duplicated, &mut r.details, format!("lead {key}: {n} notes for task {task}")),
            }
        }
        let mut tasks_accounted = vec![false; tasks.len()];
        for ((budget, threshold), texts) in &log.alerts {
            let head = format!("Productive budget \"{deal_name}\" (#{budget}) is ");
            let tail = format!("alert threshold {threshold}%)");
            let idx = take(&|t: &str| t.starts_with(&head) && t.ends_with(&tail), &mut accounted);
            match idx.len() {
                0 => problem(
                    &mut r.lost,
                    &mut r.details,
                    format!("lead {key}: no alert note for {budget} at {threshold}%"),
                ),
                1 => {}
                n => problem(
                    &mut r.duplicated,
                    &mut r.details,
                    format!("lead {key}: {n} alert notes for {budget} at {threshold}%"),
                ),
            }
            let Some(&first) = idx.first() else { continue };
            let text = &notes[first];
            if !texts.contains(text) {
                problem(
                    &mut r.wrong,
                    &mut r.details,
                    format!("lead {key}: alert note {text:?}, want one of {texts:?}"),
                );
            }
            let want_task = format!("Check the budget: {text}");
            let found: Vec<usize> =
                tasks.iter().enumerate().filter(|(_, t)| t.text == want_task).map(|(i, _)| i).collect();
            for i in &found {
                tasks_accounted[*i] = true;
            }
            match found.len() {
                0 => problem(
                    &mut r.lost,
                    &mut r.details,
                    format!("lead {key}: no alert task for {budget} at {threshold}%"),
                ),
                1 => {
                    let t = &tasks[found[0]];
                    if t.responsible_user_id != Some(seeds.anna)
                        || t.task_type_id != Some(1)
                        || t.entity_type != Some(EntityType::Leads)
                    {
                        problem(
                            &mut r.wrong,
                            &mut r.details,
                            format!(
                                "lead {key}: alert task {} responsible {:?} type {:?}",
                                t.id, t.responsible_user_id, t.task_type_id
                            ),
                        );
                    }
                }
                n => problem(
                    &mut r.duplicated,
                    &mut r.details,
                    format!("lead {key}: {n} alert tasks for {budget} at {threshold}%"),
                ),
            }
        }
        for (i, t) in notes.iter().enumerate().filter(|(i, _)| !accounted[*i]) {
            let _ = i;
            let dup = t.starts_with("Productive task completed: ") || t.starts_with("Productive budget ");
            let line = format!("lead {key}: unexpected note {t:?}");
            if dup {
                problem(&mut r.duplicated, &mut r.details, line);
            } else {
                problem(&mut r.orphans, &mut r.details, line);
            }
        }
        for t in tasks.iter().enumerate().filter(|(i, _)| !tasks_accounted[*i]).map(|(_, t)| t) {
            problem(&mut r.duplicated, &mut r.details, format!("lead {key}: unexpected task {:?}", t.text));
        }
    }

    tracing::info!(
        projects = projects.len(),
        budgets = budgets.len(),
        services = services.len(),
        assignments = assignments.len(),
        task_notes = logs.values().map(|l| l.task_notes.len()).sum::<usize>(),
        alerts = logs.values().map(|l| l.alerts.len()).sum::<usize>(),
        ever_won = logs.values().filter(|l| l.ever_won).count(),
        won_now = logs.keys().filter(|l| kommo.lead(**l).is_some_and(|x| x.status_id == Some(StatusId::WON))).count(),
        "kommo-productive oracle: objects seen"
    );
    // nothing anywhere that no lead accounts for
    for c in companies.iter().filter(|c| !seen_companies.contains(&c.id)) {
        problem(
            &mut r.orphans,
            &mut r.details,
            format!("company {} {:?} belongs to no kicked-off lead", c.id, c.attributes.name),
        );
    }
    for p in projects.iter().filter(|p| !seen_projects.contains(&p.id)) {
        problem(&mut r.orphans, &mut r.details, format!("project {} {:?} belongs to no lead", p.id, p.attributes.name));
    }
    for b in budgets.iter().filter(|b| !seen_budgets.contains(&b.id)) {
        problem(
            &mut r.orphans,
            &mut r.details,
            format!("budget {} {:?} is on no checked project", b.id, b.attributes.name),
        );
    }
    for s in services.iter().filter(|s| !seen_services.contains(&s.id)) {
        problem(
            &mut r.orphans,
            &mut r.details,
            format!("service {} {:?} is on no checked budget", s.id, s.attributes.name),
        );
    }
    for a in assignments.iter().filter(|a| !seen_assignments.contains(&a.id)) {
        problem(&mut r.orphans, &mut r.details, format!("assignment {} is on no checked project", a.id));
    }
    r
}
