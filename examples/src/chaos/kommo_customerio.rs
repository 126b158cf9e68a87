//! A chaos soak for the Kommo ↔ Customer.io flow with a field-level oracle.
//!
//! Several engine "processes" (each with its own API clients, flow instance, receiver and worker pool, as `serve`
//! has) share one store. A driver creates leads in the Kommo fake (each with its own contact, so one person per
//! lead) and moves them through the open stages of a pipeline fast enough that several changes share a second,
//! changes prices and names, and delivers Kommo's form-encoded webhooks for every change to random receivers,
//! retried until answered 200: `leads[add]`, `leads[status]` (sometimes batched with another lead's status change,
//! sometimes with the `leads[update]` hook of the same change beside it), 10 % exact redeliveries, all reordered
//! within a window. For people already identified in Customer.io it sends signed reporting webhooks (opened,
//! clicked, at most one unsubscribed per person), each with its own subject. Meanwhile faults are injected into
//! both fakes (Kommo 429 and 502; Customer.io 429 and 503; drop-after-commit on `PUT` identify, `POST` track, and
//! on Kommo note, task and contact writes) and worker pools are killed (tasks dropped where they are, leases left
//! to expire) and replaced.
//!
//! The flow consumes `leads[add]` and `leads[status]` only (its module docs): a price or name change reaches
//! Customer.io with the lead's next stage change. So the driver ends every lead with a stage change, and the
//! final Kommo state is then what every person must hold.
//!
//! When the queues have drained, an oracle (`oracle`) derives every person's expected attributes from the fakes' final
//! state — independently of the flow's mapping code — and compares them field by field; it counts the
//! `kommo_lead_created` / `kommo_stage_changed` events against the changes made, the Kommo notes against the
//! reporting events sent (one per event, found by its subject), the unsubscribe marks on the contacts, and the
//! engagement call tasks (3 opens within 48 h: exactly one task per person, none below 3).
//!
//! Rate limits of both fakes are off here (throttling is injected as 429 faults instead): the subject is
//! convergence, not pacing.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use api_core::fake::Fault;
use customerio_api::fake::{FakeConfig as CioConfig, FakeCustomerIo, SignedWebhook};
use customerio_api::{Identifier, Metric, RetryPolicy};
use kommo_api::fake::{FakeConfig as KmConfig, FakeKommo, FakeWebhook, SeedLead};
use kommo_api::{
    CompanyId, ContactId, CustomFieldId, CustomFieldsExt as _, EntityType, FieldType, LeadId, PipelineId, StatusId,
};
use serde_json::{Value, json};
use sync_core::flows::kommo_customerio::{Config, KommoCustomerIo};
use sync_core::{Engine, Store, WorkerHandle, server, worker};

use super::{
    ChaosConfig, Report, Rng, RunCounts, Senders, Window, complete_report, kill_due, kill_one, stop_pools,
    wait_drained, worker_config,
};

const PATH_TOKEN: &str = "chaos-path-token";
const USER_NAME: &str = "Rita Responsible";
const PIPELINE_NAME: &str = "Lifecycle";
const STAGE_NAMES: &[&str] = &["New", "Qualified", "Proposal", "Negotiation", "Contract"];
const UNSUB_FIELD: &str = "Email unsubscribed";
const UNSUB_TAG: &str = "unsubscribed";
/// The engagement rule of the flow's default config: this many opens within the window make one call task.
const OPENS_FOR_TASK: usize = 3;

/// One engine process: its own clients, flow, receiver and worker pool.
struct Process {
    engine: Engine,
    addr: SocketAddr,
    workers: Option<WorkerHandle>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

/// A webhook delivery, as the vendor would POST it.
#[derive(Clone)]
enum Delivery {
    Kommo(String),
    Cio(Box<SignedWebhook>),
}

/// What the driver did to one lead, for the oracle.
#[derive(Debug, Clone)]
struct LeadModel {
    id: LeadId,
    contact: ContactId,
    email: String,
    contact_name: String,
    phone: String,
    company: String,
    /// `(old stage, new stage)` of every stage change made (each delivered at least once).
    moves: Vec<(String, String)>,
    /// Whether the last change was a stage change (see the module docs).
    ends_with_move: bool,
    /// Subjects of the reporting events sent for this person, with their metric.
    reports: Vec<(Metric, String)>,
}

/// Runs the Kommo ↔ Customer.io soak on `open_store()` (called once per process: each gets its own pool, like a
/// separate process would). `cfg.leads` leads are created during the run (one person each); `cfg.changes` is the
/// number of driver steps (lead creations, stage, price and name changes, reporting webhooks);
/// `cfg.airtable_edits` is not used.
///
/// # Panics
/// When the fakes or the receivers cannot start (nothing to measure then).
#[allow(clippy::too_many_lines)]
pub async fn run_kommo_customerio<F, Fut>(cfg: &ChaosConfig, open_store: F) -> Report
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Store>,
{
    let started = Instant::now();
    let mut rng = Rng(cfg.seed.rotate_left(5) | 1);
    let kommo = Arc::new(
        FakeKommo::start_with(KmConfig { rate_limit: None, ..KmConfig::default() }).await.expect("kommo fake"),
    );
    let cio = Arc::new(
        FakeCustomerIo::start_with(CioConfig { track_rate_limit: None, app_rate_limit: None, ..CioConfig::default() })
            .await
            .expect("customer.io fake"),
    );
    let user = kommo.seed_user(USER_NAME, "rita@example.com");
    let unsub_field = kommo.seed_custom_field(EntityType::Contacts, UNSUB_FIELD, FieldType::Checkbox, None, &[]);
    let (pipeline, stages) = kommo.seed_pipeline(PIPELINE_NAME, STAGE_NAMES);
    let stage_name: HashMap<StatusId, String> =
        stages.iter().zip(STAGE_NAMES).map(|(s, n)| (*s, (*n).to_owned())).collect();
    // every lead's contact and company exist from the start; the leads are created during the run
    let mut parties: Vec<(ContactId, CompanyId, String, String, String, String)> = Vec::new();
    for i in 0..cfg.leads {
        let (name, email, phone) =
            (format!("Client {i}"), format!("client{i}@example.com"), format!("+1 555 02{i:02}"));
        let contact = kommo.seed_contact(&name, Some(&email), Some(&phone));
        let company_name = format!("Company {i}");
        let company = kommo.seed_company(&company_name);
        parties.push((contact, company, name, email, phone, company_name));
    }

    // the processes
    let signing_key = cio.config().webhook_signing_key.clone();
    let mut procs = Vec::new();
    for _ in 0..cfg.processes.max(1) {
        let store = open_store().await;
        let cfg_text = format!(
            "[kommo]\nbase_url = \"{}\"\n[unsubscribe]\ncontact_field = \"{UNSUB_FIELD}\"\ncontact_tag = \"{UNSUB_TAG}\"\n",
            kommo.base_url().as_str().trim_end_matches('/'),
        );
        let config = Config::from_toml(&cfg_text).expect("chaos config");
        let kommo_client = kommo
            .client_builder()
            .rate_limit(1000)
            .throttle_backoff(Duration::from_millis(400))
            .request_timeout(Duration::from_secs(5))
            .build()
            .expect("kommo client");
        let cio_client = cio
            .client_builder()
            .retry_policy(RetryPolicy {
                max_attempts: 3,
                base_delay: Duration::from_millis(10),
                ..RetryPolicy::default()
            })
            .build()
            .expect("customer.io client");
        let flow = KommoCustomerIo::new(config, kommo_client, cio_client);
        flow.validate().await.expect("config is valid");
        let engine = Engine::new(store.clone(), vec![Arc::new(flow.clone())]).expect("engine");
        let routes = flow.routes(api_core::Token::new(PATH_TOKEN), api_core::Token::new(signing_key.clone()));
        let (router, _) = server::router(engine.clone(), routes).expect("router");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
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
        match d {
            Delivery::Kommo(body) => http
                .post(format!("http://{addr}/hooks/kommo/{PATH_TOKEN}"))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success()),
            Delivery::Cio(hook) => {
                let url = url::Url::parse(&format!("http://{addr}/hooks/customerio")).expect("url");
                hook.deliver(&url).await.is_ok_and(|s| s == 200)
            }
        }
    });

    // faults
    let faulting = Arc::new(AtomicBool::new(true));
    let faults = Arc::new(AtomicU64::new(0));
    super::transient(cfg, &[kommo.faults(), cio.faults()]);
    let injector = {
        let (kommo, cio, faulting, faults, every) =
            (kommo.clone(), cio.clone(), faulting.clone(), faults.clone(), cfg.fault_every);
        let mut r = Rng(cfg.seed.rotate_left(23) | 1);
        tokio::spawn(async move {
            use reqwest::Method;
            let people = "/api/v1/customers/";
            while faulting.load(Ordering::Relaxed) {
                tokio::time::sleep(every).await;
                match r.below(12) {
                    0 => kommo.inject_throttle(1),
                    1 => kommo.inject_status(502, 1),
                    2 => cio.faults().inject(
                        Some(Method::PUT),
                        people,
                        Fault::json(429, &json!({"meta": {"error": "rate limit exceeded"}})),
                        1,
                    ),
                    3 => {
                        cio.faults().inject(
                            None,
                            people,
                            Fault::json(503, &json!({"meta": {"error": "try later"}})),
                            1,
                        );
                    }
                    4 => cio.faults().inject(Some(Method::PUT), people, Fault::DropAfterCommit, 1),
                    5 => cio.faults().inject(Some(Method::POST), people, Fault::DropAfterCommit, 1),
                    6 => kommo.faults().inject(Some(Method::POST), "/api/v4/leads/notes", Fault::DropAfterCommit, 1),
                    7 => kommo.faults().inject(Some(Method::POST), "/api/v4/tasks", Fault::DropAfterCommit, 1),
                    // the batched path (issue 25): Track v2 batches throttled, failing, or applied with the answer lost
                    8 => cio.faults().inject(
                        Some(Method::POST),
                        "/api/v2/batch",
                        Fault::json(429, &json!({"meta": {"error": "rate limit exceeded"}})),
                        1,
                    ),
                    9 => cio.faults().inject(
                        Some(Method::POST),
                        "/api/v2/batch",
                        Fault::json(503, &json!({"errors": [{"reason": "unavailable", "message": "try later"}]})),
                        1,
                    ),
                    10 => cio.faults().inject(Some(Method::POST), "/api/v2/batch", Fault::DropAfterCommit, 1),
                    _ => kommo.faults().inject(Some(Method::PATCH), "/api/v4/contacts", Fault::DropAfterCommit, 1),
                }
                faults.fetch_add(1, Ordering::Relaxed);
            }
        })
    };

    // the driver
    let mut models: Vec<LeadModel> = Vec::new();
    let mut window = Window::new();
    let mut kills = 0u64;
    let mut subject_no = 0u64;
    // after the Kommo changes, a tail of reporting webhooks only (engagement builds up while faults go on)
    let tail = cfg.changes / 4;
    let kill_every = (cfg.changes + tail) / (cfg.kills + 1);
    // moves a lead to another open stage and returns the webhook event of the change
    let move_lead = |models: &mut Vec<LeadModel>, i: usize, rng: &mut Rng| -> FakeWebhook {
        let m = &mut models[i];
        let current = kommo.lead(m.id).and_then(|l| l.status_id).expect("a lead with a stage");
        let others: Vec<StatusId> = stages.iter().copied().filter(|s| *s != current).collect();
        let to = others[rng.below(others.len())];
        kommo.set_lead_status(m.id, pipeline, to);
        m.moves.push((stage_name[&current].clone(), stage_name[&to].clone()));
        m.ends_with_move = true;
        FakeWebhook::LeadStatus(m.id)
    };
    // a reporting webhook for a random person already in Customer.io (each with its own subject)
    let report_event = |models: &mut Vec<LeadModel>, rng: &mut Rng, subject_no: &mut u64| -> Option<SignedWebhook> {
        let known: Vec<usize> =
            (0..models.len()).filter(|i| cio.person(&Identifier::email(models[*i].email.clone())).is_some()).collect();
        let i = *known.get(rng.below(known.len()))?;
        let who = Identifier::email(models[i].email.clone());
        let unsubscribed = models[i].reports.iter().any(|(m, _)| *m == Metric::Unsubscribed);
        let metric = match rng.below(100) {
            0..70 => Metric::Opened,
            70..92 => Metric::Clicked,
            _ if !unsubscribed => Metric::Unsubscribed,
            _ => Metric::Opened,
        };
        *subject_no += 1;
        let subject = format!("Mail {subject_no}");
        let mut b = cio.webhook(&who, metric.clone()).subject(subject.clone());
        if metric == Metric::Clicked {
            b = b.href(format!("https://example.com/offer/{subject_no}"));
        }
        models[i].reports.push((metric, subject));
        Some(b.build())
    };
    for step in 0..cfg.changes + tail {
        let mut out: Vec<Delivery> = Vec::new();
        if step == cfg.changes {
            // every lead ends with a stage change (a price or name change reaches Customer.io with the next one)
            for i in 0..models.len() {
                if !models[i].ends_with_move {
                    let ev = move_lead(&mut models, i, &mut rng);
                    out.push(Delivery::Kommo(kommo.webhook_body(&[ev])));
                }
            }
            // and the people are in Customer.io before the reporting tail (as they would be before a campaign)
            let wait = Instant::now() + Duration::from_secs(20);
            while Instant::now() < wait
                && models.iter().any(|m| cio.person(&Identifier::email(m.email.clone())).is_none())
            {
                window.send_all(&senders).await;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        if step >= cfg.changes {
            if let Some(hook) = report_event(&mut models, &mut rng, &mut subject_no) {
                out.push(Delivery::Cio(Box::new(hook)));
            }
        } else if models.len() < cfg.leads
            && (models.is_empty() || step >= cfg.changes / 2 || rng.below(cfg.changes) < 2 * cfg.leads)
        {
            let i = models.len();
            let (contact, company, name, email, phone, company_name) = parties[i].clone();
            let id = kommo.seed_lead(
                SeedLead::new(format!("Deal {i}"))
                    .price(1_000 + i64::try_from(i).unwrap_or(0))
                    .responsible(user)
                    .contact(contact)
                    .company(company)
                    .stage(pipeline, stages[0]),
            );
            models.push(LeadModel {
                id,
                contact,
                email,
                contact_name: name,
                phone,
                company: company_name,
                moves: Vec::new(),
                ends_with_move: true,
                reports: Vec::new(),
            });
            out.push(Delivery::Kommo(kommo.webhook_body(&[FakeWebhook::LeadAdd(id)])));
        } else {
            let i = rng.below(models.len());
            let id = models[i].id;
            match rng.below(100) {
                0..45 => {
                    if rng.chance(25) {
                        // a price change made together with the move
                        kommo.update_lead(id, &json!({"price": 500 + rng.below(100_000)}));
                    }
                    let ev = move_lead(&mut models, i, &mut rng);
                    if rng.chance(10) && models.len() > 1 {
                        // Kommo batches another lead's move into the same delivery
                        let j = (i + 1 + rng.below(models.len() - 1)) % models.len();
                        let other = move_lead(&mut models, j, &mut rng);
                        out.push(Delivery::Kommo(kommo.webhook_body(&[ev.clone(), other.clone()])));
                        if rng.chance(50) {
                            // and delivers that move on its own too (a near-duplicate)
                            out.push(Delivery::Kommo(kommo.webhook_body(&[other])));
                        }
                    } else if rng.chance(20) {
                        out.push(Delivery::Kommo(kommo.webhook_body(&[ev, FakeWebhook::LeadUpdate(id)])));
                    } else {
                        out.push(Delivery::Kommo(kommo.webhook_body(&[ev])));
                    }
                }
                45..57 => {
                    kommo.update_lead(id, &json!({"price": 500 + rng.below(100_000)}));
                    models[i].ends_with_move = false;
                    out.push(Delivery::Kommo(kommo.webhook_body(&[FakeWebhook::LeadUpdate(id)])));
                }
                57..65 => {
                    kommo.update_lead(id, &json!({"name": format!("Deal {i} v{step}")}));
                    models[i].ends_with_move = false;
                    out.push(Delivery::Kommo(kommo.webhook_body(&[FakeWebhook::LeadUpdate(id)])));
                }
                _ => {
                    if let Some(hook) = report_event(&mut models, &mut rng, &mut subject_no) {
                        out.push(Delivery::Cio(Box::new(hook)));
                    }
                }
            }
        }
        for d in out {
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
    cio.faults().clear();
    let last_delivery = Instant::now();

    let store = procs[0].engine.store().clone();
    let drained = wait_drained(&store, cfg.drain_timeout, Duration::from_millis(300), || async {}).await;
    let drain = last_delivery.elapsed();
    let status = store.status().await.expect("status");
    stop_pools(procs.iter_mut().map(|p| &mut p.workers)).await;

    let batches: Vec<_> = cio.log().requests().into_iter().filter(|r| r.path == "/api/v2/batch").collect();
    let ops: usize = batches.iter().map(|r| r.json()["batch"].as_array().map_or(0, Vec::len)).sum();
    eprintln!("kommo-customerio: {} Track v2 batch requests carried {ops} operations", batches.len());
    let mut report = oracle(&kommo, &cio, pipeline, &stage_name, unsub_field, &models);
    let counts = RunCounts {
        posted: window.posted,
        accepted,
        faults: faults.load(Ordering::Relaxed),
        faults_lapsed: super::lapsed(&[kommo.faults(), cio.faults()]),
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

/// Compares every person in Customer.io, field by field, with what the final Kommo state of their lead implies;
/// counts the tracked events against the changes made, the Kommo notes against the reporting events sent, the
/// unsubscribe marks and the engagement tasks. Written without the flow's code: the expected values come from
/// the driver's model and the fakes.
fn oracle(
    kommo: &FakeKommo,
    cio: &FakeCustomerIo,
    pipeline: PipelineId,
    stage_name: &HashMap<StatusId, String>,
    unsub_field: CustomFieldId,
    models: &[LeadModel],
) -> Report {
    let mut r = Report::default();
    let people = cio.people();
    r.records = people.len() as u64;
    let known: Vec<String> = models.iter().map(|m| m.email.to_lowercase()).collect();
    for p in &people {
        if !p.email.as_deref().is_some_and(|e| known.contains(&e.to_lowercase())) {
            r.orphans += 1;
            r.details.push(format!("person {} ({:?}) belongs to no lead", p.cio_id, p.email));
        }
    }
    for m in models {
        let key = m.id.to_string();
        let lead = kommo.lead(m.id).expect("lead");
        let who = Identifier::email(m.email.clone());
        let Some(person) = cio.person(&who) else {
            r.lost += 1;
            r.details.push(format!("lead {key}: no person {} in Customer.io", m.email));
            continue;
        };
        // attributes, field by field
        let mut want: BTreeMap<&str, Value> = BTreeMap::new();
        want.insert("email", json!(m.email));
        want.insert("name", json!(m.contact_name));
        want.insert("phone", json!(m.phone));
        want.insert("company", json!(m.company));
        want.insert("kommo_deal_name", json!(lead.name));
        let stage = lead.status_id.and_then(|s| stage_name.get(&s)).cloned();
        want.insert("kommo_stage", json!(stage));
        want.insert("kommo_pipeline", json!(PIPELINE_NAME));
        #[allow(clippy::cast_precision_loss)]
        want.insert("deal_value", json!(lead.price.map(|p| p as f64)));
        want.insert("responsible_name", json!(USER_NAME));
        want.insert("kommo_lead_id", json!(key));
        want.insert("kommo_lead_created_at", json!(lead.created_at));
        let mut wrong = Vec::new();
        if lead.pipeline_id != Some(pipeline) {
            wrong.push(format!("the lead left pipeline {pipeline}"));
        }
        for (field, value) in &want {
            let got = person.attributes.get(*field);
            let same = match (got, value) {
                (Some(Value::Number(a)), Value::Number(b)) => a.as_f64() == b.as_f64(),
                (g, w) => g == Some(w),
            };
            if !same {
                wrong.push(format!("{field}: {got:?} != {value}"));
            }
        }
        for extra in person.attributes.keys() {
            if !want.contains_key(extra.as_str()) && !matches!(extra.as_str(), "id" | "cio_id" | "created_at") {
                wrong.push(format!("unexpected attribute {extra} = {}", person.attributes[extra]));
            }
        }
        // events: one `kommo_lead_created`, one `kommo_stage_changed` per move
        let events = cio.events_for(&who);
        let created = events.iter().filter(|e| e.name == "kommo_lead_created").count();
        if created != 1 {
            if created == 0 {
                r.lost += 1;
            } else {
                r.duplicated += (created - 1) as u64;
            }
            r.details.push(format!("lead {key}: {created} kommo_lead_created events"));
        }
        let mut want_moves: BTreeMap<(String, String), i64> = BTreeMap::new();
        for mv in &m.moves {
            *want_moves.entry(mv.clone()).or_default() += 1;
        }
        for e in events.iter().filter(|e| e.name == "kommo_stage_changed") {
            let s = |k: &str| e.data.get(k).and_then(Value::as_str).unwrap_or_default().to_owned();
            if e.data.get("lead_id").and_then(Value::as_u64) != Some(m.id.get()) {
                wrong.push(format!("stage event {:?} names lead {:?}", e.id, e.data.get("lead_id")));
            }
            *want_moves.entry((s("old_stage"), s("new_stage"))).or_default() -= 1;
        }
        for ((from, to), n) in want_moves {
            match n {
                0 => {}
                n if n > 0 => {
                    r.lost += n.unsigned_abs();
                    r.details.push(format!("lead {key}: {n} kommo_stage_changed {from} → {to} missing"));
                }
                n => {
                    r.duplicated += n.unsigned_abs();
                    r.details.push(format!("lead {key}: {} extra kommo_stage_changed {from} → {to}", -n));
                }
            }
        }
        // notes: one per reporting event (each has its own subject), nothing else
        let notes: Vec<String> = kommo
            .notes_for(EntityType::Leads, m.id.get())
            .into_iter()
            .filter_map(|n| n.text().map(str::to_owned))
            .collect();
        for (metric, subject) in &m.reports {
            let quoted = format!("“{subject}”");
            let n = notes.iter().filter(|t| t.contains(&quoted)).count();
            if n != 1 {
                if n == 0 {
                    r.lost += 1;
                } else {
                    r.duplicated += (n - 1) as u64;
                }
                r.details.push(format!("lead {key}: {n} notes for the {metric} event {subject}"));
            }
        }
        if notes.len() > m.reports.len() {
            r.duplicated += (notes.len() - m.reports.len()) as u64;
            r.details.push(format!("lead {key}: {} notes for {} reporting events", notes.len(), m.reports.len()));
        }
        // unsubscribe marks on the contact
        let unsubscribed = m.reports.iter().any(|(mt, _)| *mt == Metric::Unsubscribed);
        let contact = kommo.contact(m.contact).expect("contact");
        let checked = contact
            .custom_field(unsub_field)
            .and_then(|v| v.first().and_then(kommo_api::custom_fields::FieldValue::as_bool))
            .unwrap_or(false);
        let tagged = contact.embedded.tags.iter().any(|t| t.name == UNSUB_TAG);
        if checked != unsubscribed || tagged != unsubscribed {
            wrong.push(format!(
                "contact {}: unsubscribed {unsubscribed}, field checked {checked}, tagged {tagged}",
                m.contact
            ));
        }
        // engagement: the whole run is inside one window, so one call task once the opens reach the threshold
        let opens = m.reports.iter().filter(|(mt, _)| *mt == Metric::Opened).count();
        let tasks = kommo.tasks_for(EntityType::Leads, m.id.get());
        let want_tasks = usize::from(opens >= OPENS_FOR_TASK);
        if tasks.len() != want_tasks {
            if tasks.len() > want_tasks {
                r.duplicated += (tasks.len() - want_tasks) as u64;
            } else {
                r.lost += 1;
            }
            r.details.push(format!("lead {key}: {} call tasks after {opens} opens", tasks.len()));
        }
        if !wrong.is_empty() {
            r.wrong += 1;
            let mut line = format!("lead {key} (person {}):", m.email);
            for w in &wrong {
                let _ = write!(line, " {w};");
            }
            r.details.push(line);
        }
    }
    r
}
