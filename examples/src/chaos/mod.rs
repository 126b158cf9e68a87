//! A chaos soak for the Kommo ↔ Airtable flow with a field-level oracle.
//!
//! Several engine "processes" (each with its own API clients, receiver, flow instance and worker pool, as `serve`
//! has) share one store: SQLite or PostgreSQL. A driver changes leads in the Kommo fake (won, reopened, price,
//! name, "Next Contact Date", all fast enough that several changes share a second) and delivers Kommo's
//! form-encoded webhooks for every change to random receivers: reordered within a window, 10 % exact
//! redeliveries, and the `leads[update]` hook beside every `leads[status]` one (near-duplicates). People change
//! "Status" and the two-way "Next Contact Date" in Airtable. Meanwhile faults are injected into both fakes (Kommo 429 and 502, Airtable 429 and
//! 503, drop-after-commit on writes to both) and worker pools are killed (tasks dropped where they are, leases
//! left to expire) and replaced.
//!
//! When the queues have drained, an oracle (`oracle`) derives the expected state of every onboarding record from the
//! fakes' final state — independently of the flow's mapping code — and compares it field by field. The
//! [`Report`] says what was wrong, per record.
//!
//! The behaviours modelled by the fakes are those of their own docs (`kommo_api::fake`, `airtable_client::fake`);
//! rate limits are off here (throttling is injected as 429 faults instead, with the clients' penalty shortened
//! to keep a soak short): the subject is convergence, not pacing.

// the other flows' scenarios (each in its own file, reusing `ChaosConfig`, `Report`, `Rng`, `worker_config`)
// scenario modules:
pub mod calendly_kommo;
pub mod kommo_customerio;
pub mod kommo_productive;

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use airtable_client::fake::{FakeAirtable, FakeBase, FakeConfig as AtConfig, FakeUser};
use api_core::fake::Fault;
use kommo_api::fake::{FakeConfig as KmConfig, FakeKommo, FakeWebhook, SeedLead};
use kommo_api::{CompanyId, ContactId, CustomFieldId, CustomFieldsExt as _, EntityType, FieldType, LeadId, StatusId};
use serde_json::json;
use sync_core::flows::kommo_airtable::{Config, KommoAirtable};
use sync_core::{Engine, State, Store, StoreOptions, SystemClock, WorkerConfig, WorkerHandle, server, worker};

use crate::kommo_airtable_fixture::{TABLE, add_onboarding_table};

const PATH_TOKEN: &str = "chaos-path-token";

/// The size and mix of a run.
#[derive(Debug, Clone)]
pub struct ChaosConfig {
    /// Leads in Kommo.
    pub leads: usize,
    /// Changes made in Kommo (each is delivered at least once; with near- and exact duplicates the deliveries
    /// are about 1.6 times this).
    pub changes: usize,
    /// Engine processes sharing the store.
    pub processes: usize,
    /// Worker pools killed (and replaced) during the run.
    pub kills: usize,
    /// One fault is injected every this often.
    pub fault_every: Duration,
    /// Edits made by people in Airtable: "Status" moves and "Next Contact Date" changes, about half each.
    pub airtable_edits: usize,
    /// Seed of the run's choices.
    pub seed: u64,
    /// How long the queues may take to drain after the last delivery.
    pub drain_timeout: Duration,
}

impl ChaosConfig {
    /// The size CI runs: a few hundred deliveries, two kills.
    #[must_use]
    pub fn ci() -> Self {
        Self {
            leads: 40,
            changes: 200,
            processes: 2,
            kills: 2,
            fault_every: Duration::from_millis(40),
            airtable_edits: 12,
            seed: 0x5eed_0017,
            drain_timeout: Duration::from_secs(240),
        }
    }
}

/// The flow a chaos run exercises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    /// Kommo ↔ Airtable ([`run_kommo_airtable`]).
    KommoAirtable,
    /// Kommo → Productive ([`kommo_productive::run_kommo_productive`]).
    KommoProductive,
    /// Calendly → Kommo ([`calendly_kommo::run_calendly_kommo`]).
    CalendlyKommo,
    /// Kommo ↔ Customer.io ([`kommo_customerio::run_kommo_customerio`]).
    KommoCustomerio,
}

impl Scenario {
    /// Runs the scenario with `cfg` on the stores `open_store` opens (one per process).
    pub async fn run<F, Fut>(self, cfg: &ChaosConfig, open_store: F) -> Report
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Store>,
    {
        match self {
            Self::KommoAirtable => run_kommo_airtable(cfg, open_store).await,
            Self::KommoProductive => kommo_productive::run_kommo_productive(cfg, open_store).await,
            Self::CalendlyKommo => calendly_kommo::run_calendly_kommo(cfg, open_store).await,
            Self::KommoCustomerio => kommo_customerio::run_kommo_customerio(cfg, open_store).await,
        }
    }

    /// Runs it on one SQLite file in a temporary directory, with one process (SQLite is single-host).
    ///
    /// # Panics
    /// When the temporary directory or the store cannot be made.
    pub async fn run_on_sqlite(self, cfg: &ChaosConfig) -> Report {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("chaos.db");
        let cfg = ChaosConfig { processes: 1, ..cfg.clone() };
        self.run(&cfg, || {
            let path = path.clone();
            async move {
                let opts = StoreOptions::default().clock(Arc::new(SystemClock)).max_connections(4);
                Store::open_sqlite(path, opts).await.expect("SQLite store")
            }
        })
        .await
    }

    /// Runs it on PostgreSQL at `url`, in a schema of its own that is dropped afterwards, with `cfg.processes`
    /// processes. With `CHAOS_KEEP_SCHEMA` set in the environment, a run that did not converge keeps its schema
    /// (journal, markers, id map) for a post-mortem and prints its name.
    ///
    /// # Panics
    /// When PostgreSQL cannot be reached.
    pub async fn run_on_postgres(self, cfg: &ChaosConfig, url: &str) -> Report {
        use sqlx::{Connection as _, Executor as _};
        let schema = format!("chaos_{}", uuid::Uuid::new_v4().simple());
        let report = self
            .run(cfg, || {
                let (url, schema) = (url.to_owned(), schema.clone());
                async move {
                    let opts = StoreOptions::default().pg_schema(schema).max_connections(6);
                    Store::connect(&url, opts).await.expect("PostgreSQL store")
                }
            })
            .await;
        if !report.converged() && std::env::var_os("CHAOS_KEEP_SCHEMA").is_some() {
            // the journal, markers and id map of the failed run, for a post-mortem
            tracing::warn!(%schema, "CHAOS_KEEP_SCHEMA is set: the failed run's schema is kept (DROP SCHEMA {schema} CASCADE when done)");
            eprintln!("schema kept for inspection: {schema}");
            return report;
        }
        let mut conn = sqlx::PgConnection::connect(url).await.expect("PostgreSQL");
        conn.execute(sqlx::AssertSqlSafe(format!("DROP SCHEMA IF EXISTS {schema} CASCADE")))
            .await
            .expect("drop schema");
        report
    }
}

/// What a run found.
#[derive(Debug, Default, Clone)]
pub struct Report {
    /// Webhook deliveries posted (each retried until answered 200, as Kommo does).
    pub deliveries: u64,
    /// Deliveries answered 200 (all of them, once retried).
    pub accepted: u64,
    /// Leads whose final state called for a record that does not exist.
    pub lost: u64,
    /// Extra records for one deal, and notes beyond one per Airtable status change.
    pub duplicated: u64,
    /// Records with at least one wrong field (or not linked to their deal).
    pub wrong: u64,
    /// Records whose deal does not exist or that no id map entry links.
    pub orphans: u64,
    /// Dead letters.
    pub dead: u64,
    /// Faults injected.
    pub faults: u64,
    /// Of those, the ones no request met before they lapsed (a fault lapses when no request meets it within two
    /// injection periods).
    pub faults_lapsed: u64,
    /// Worker pools killed.
    pub kills: u64,
    /// Records checked.
    pub records: u64,
    /// From the last delivery to an empty queue.
    pub drain: Duration,
    /// Whole run.
    pub total: Duration,
    /// One line per wrong object.
    pub details: Vec<String>,
}

impl Report {
    /// True when nothing was lost, duplicated, wrong or dead.
    #[must_use]
    pub fn converged(&self) -> bool {
        self.lost == 0 && self.duplicated == 0 && self.wrong == 0 && self.orphans == 0 && self.dead == 0
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "deliveries {} | accepted {} | lost {} | duplicated effects {} | records with wrong fields {} | orphans {} | dead letters {} | records checked {} | faults {} ({} lapsed unmet) | kills {} | drain {:.1}s | total {:.1}s",
            self.deliveries,
            self.accepted,
            self.lost,
            self.duplicated,
            self.wrong,
            self.orphans,
            self.dead,
            self.records,
            self.faults,
            self.faults_lapsed,
            self.kills,
            self.drain.as_secs_f64(),
            self.total.as_secs_f64()
        )?;
        for d in self.details.iter().take(40) {
            writeln!(f, "  {d}")?;
        }
        if self.details.len() > 40 {
            writeln!(f, "  … {} more", self.details.len() - 40)?;
        }
        Ok(())
    }
}

/// A small deterministic generator (xorshift64*), so a failing seed can be rerun.
#[derive(Debug, Clone)]
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub(crate) fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % (n.max(1) as u64)).unwrap_or(0)
    }
    pub(crate) fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

/// One engine process: its own clients, flow, receiver and worker pool.
struct Process {
    flow: KommoAirtable,
    engine: Engine,
    addr: SocketAddr,
    workers: Option<WorkerHandle>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

pub(crate) fn worker_config() -> WorkerConfig {
    WorkerConfig {
        concurrency: 8,
        poll_interval: Duration::from_millis(50),
        lease: Duration::from_secs(3),
        heartbeat: Duration::from_millis(700),
        max_attempts: 40,
        backoff: sync_core::Backoff {
            initial: Duration::from_millis(30),
            multiplier: 2,
            max: Duration::from_millis(800),
        },
        shutdown_grace: Duration::from_secs(10),
        ..WorkerConfig::default()
    }
}

/// What the seeds are, for the oracle.
struct Seeds {
    ncd: CustomFieldId,
    user_name: String,
    contacts: HashMap<ContactId, (String, String, String)>,
    companies: HashMap<CompanyId, String>,
    lead_parties: HashMap<LeadId, (ContactId, CompanyId)>,
}

/// Runs the Kommo ↔ Airtable soak on `open_store()` (called once per process: each gets its own pool, like a
/// separate process would).
///
/// # Panics
/// When the fakes or the receivers cannot start (nothing to measure then).
pub async fn run_kommo_airtable<F, Fut>(cfg: &ChaosConfig, open_store: F) -> Report
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Store>,
{
    let started = Instant::now();
    let mut rng = Rng(cfg.seed | 1);
    let kommo = Arc::new(
        FakeKommo::start_with(KmConfig { rate_limit: None, ..KmConfig::default() }).await.expect("kommo fake"),
    );
    let airtable = Arc::new(FakeAirtable::start_with(AtConfig::unlimited()).await.expect("airtable fake"));
    let base = airtable.base();
    add_onboarding_table(&base);
    let ncd = kommo.seed_custom_field(EntityType::Leads, "Next Contact Date", FieldType::Date, None, &[]);
    let user_name = "Rita Responsible".to_owned();
    let user = kommo.seed_user(&user_name, "rita@example.com");
    let pipeline = kommo.main_pipeline();
    let stages = kommo.stages(pipeline);
    let open_stage = stages[0];
    let mut seeds =
        Seeds { ncd, user_name, contacts: HashMap::new(), companies: HashMap::new(), lead_parties: HashMap::new() };
    let mut leads = Vec::new();
    for i in 0..cfg.leads {
        let (name, email, phone) =
            (format!("Client {i}"), format!("client{i}@example.com"), format!("+1 555 01{i:02}"));
        let contact = kommo.seed_contact(&name, Some(&email), Some(&phone));
        let company_name = format!("Company {i}");
        let company = kommo.seed_company(&company_name);
        seeds.contacts.insert(contact, (name, email, phone));
        seeds.companies.insert(company, company_name);
        let lead = kommo.seed_lead(
            SeedLead::new(format!("Deal {i}"))
                .price(1_000 + i64::try_from(i).unwrap_or(0))
                .responsible(user)
                .contact(contact)
                .company(company)
                .stage(pipeline, open_stage),
        );
        seeds.lead_parties.insert(lead, (contact, company));
        leads.push(lead);
    }

    // the processes
    let mut procs = Vec::new();
    for p in 0..cfg.processes.max(1) {
        let store = open_store().await;
        let cfg_text = format!(
            "[kommo]\nbase_url = \"{}\"\n[airtable]\nbase_id = \"{}\"\nbase_url = \"{}\"\n[reconcile]\ninterval_secs = 0\n",
            kommo.base_url().as_str().trim_end_matches('/'),
            base.id().as_str(),
            airtable.base_url().trim_end_matches('/')
        );
        let config = Config::from_toml(&cfg_text).expect("chaos config");
        let kommo_client = kommo
            .client_builder()
            .rate_limit(1000)
            .throttle_backoff(Duration::from_millis(400))
            .request_timeout(Duration::from_secs(5))
            .build()
            .expect("kommo client");
        let airtable_client = airtable
            .client_builder()
            .requests_per_second_per_base(None)
            .requests_per_second_per_token(None)
            .penalty_after_429(Duration::from_millis(300))
            .build()
            .expect("airtable client");
        let flow = KommoAirtable::new(config, kommo_client, airtable_client).expect("flow");
        flow.validate().await.expect("mapping is valid");
        let engine = Engine::new(store.clone(), vec![Arc::new(flow.clone())]).expect("engine");
        let (router, _) =
            server::router(engine.clone(), flow.routes(api_core::Token::new(PATH_TOKEN))).expect("router");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (stop, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(server::serve(listener, router, async {
            let _ = rx.await;
        }));
        if p == 0 {
            flow.ensure_webhook(&store, &format!("http://{addr}/hooks/airtable-ping")).await.expect("webhook");
        } else {
            flow.load_webhook(&store).await.expect("adopt webhook");
        }
        let workers = Some(worker::start(engine.clone(), worker_config()));
        procs.push(Process { flow, engine, addr, workers, _stop: stop });
    }
    let addrs: Vec<SocketAddr> = procs.iter().map(|p| p.addr).collect();

    // senders: every delivery is retried until a receiver answers 200 (Kommo retries failed deliveries)
    let senders = Senders::start(&addrs, 1, |http: reqwest::Client, addr: SocketAddr, body: String| async move {
        http.post(format!("http://{addr}/hooks/kommo/{PATH_TOKEN}"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
    });

    // faults
    let faulting = Arc::new(AtomicBool::new(true));
    let faults = Arc::new(AtomicU64::new(0));
    transient(cfg, &[kommo.faults(), airtable.faults()]);
    let injector = {
        let (kommo, airtable, faulting, faults, every) =
            (kommo.clone(), airtable.clone(), faulting.clone(), faults.clone(), cfg.fault_every);
        let mut r = Rng(cfg.seed.rotate_left(17) | 1);
        tokio::spawn(async move {
            while faulting.load(Ordering::Relaxed) {
                tokio::time::sleep(every).await;
                match r.below(7) {
                    0 => kommo.inject_throttle(1),
                    1 => kommo.inject_status(502, 1),
                    2 => kommo.faults().inject(Some(reqwest::Method::PATCH), "/api/v4/leads", Fault::DropAfterCommit, 1),
                    3 => kommo.faults().inject(Some(reqwest::Method::POST), "/api/v4/leads", Fault::DropAfterCommit, 1),
                    4 => airtable.faults().inject(
                        None,
                        "/v0/",
                        Fault::json(429, &json!({"errors": [{"error": "RATE_LIMIT_REACHED", "message": "Rate limit exceeded. Please try again later"}]})),
                        1,
                    ),
                    5 => airtable.faults().inject(
                        None,
                        "/v0/",
                        Fault::json(503, &json!({"error": {"type": "SERVICE_UNAVAILABLE", "message": "Service unavailable"}})),
                        1,
                    ),
                    _ => airtable.faults().inject(Some(reqwest::Method::PATCH), "/v0/", Fault::DropAfterCommit, 1),
                }
                faults.fetch_add(1, Ordering::Relaxed);
            }
        })
    };

    // the driver
    let mut window = Window::new();
    let mut edits_left = cfg.airtable_edits;
    let mut status_edits: HashMap<String, Vec<String>> = HashMap::new();
    let mut kills = 0u64;
    let kill_every = cfg.changes / (cfg.kills + 1);
    let person = FakeUser::with_email("olivia@agency.example");
    for step in 0..cfg.changes {
        let lead = leads[rng.below(leads.len())];
        let current = kommo.lead(lead).expect("seeded lead");
        let won = current.status_id == Some(StatusId::WON);
        let mut bodies = Vec::new();
        match rng.below(100) {
            0..40 => {
                let to = if won { stages[1.min(stages.len() - 1)] } else { StatusId::WON };
                kommo.set_lead_status(lead, pipeline, to);
                bodies.push(kommo.webhook_body(&[FakeWebhook::LeadStatus(lead)]));
                bodies.push(kommo.webhook_body(&[FakeWebhook::LeadUpdate(lead)]));
            }
            40..65 => {
                kommo.update_lead(lead, &json!({"price": 500 + rng.below(100_000)}));
                bodies.push(kommo.webhook_body(&[FakeWebhook::LeadUpdate(lead)]));
            }
            65..80 => {
                kommo.update_lead(lead, &json!({"name": format!("Deal {} v{step}", lead.get())}));
                bodies.push(kommo.webhook_body(&[FakeWebhook::LeadUpdate(lead)]));
            }
            _ => {
                let day = 1_796_083_200 + 86_400 * i64::try_from(rng.below(60)).unwrap_or(0);
                kommo.update_lead(
                    lead,
                    &json!({"custom_fields_values": [{"field_id": seeds.ncd.get(), "values": [{"value": day}]}]}),
                );
                bodies.push(kommo.webhook_body(&[FakeWebhook::LeadUpdate(lead)]));
            }
        }
        // sometimes Kommo batches two leads' changes in one delivery
        if rng.chance(8) {
            let other = leads[rng.below(leads.len())];
            bodies.push(kommo.webhook_body(&[FakeWebhook::LeadUpdate(lead), FakeWebhook::LeadUpdate(other)]));
        }
        for b in bodies {
            window.add(b, &mut rng);
        }
        // a person moves "Status" on an existing record (at most twice per record, to distinct values), or changes
        // its "Next Contact Date"
        if edits_left > 0 && rng.chance(15) {
            let recs = base.records(TABLE);
            let store = procs[0].engine.store();
            let rec = if recs.is_empty() { None } else { Some(&recs[rng.below(recs.len())]) };
            // only records the flow has linked (a change made before the link is an unlinked record's change)
            let linked = match rec {
                Some(rec) => {
                    store.id_get_local("airtable", "onboarding", rec.id.as_str()).await.ok().flatten().is_some()
                }
                None => false,
            };
            if let Some(rec) = rec.filter(|_| linked)
                && rng.chance(50)
            {
                // a person moves the two-way "Next Contact Date" in Airtable: it reaches Kommo, and races the
                // Kommo changes of the same lead (the oracle wants both sides equal)
                let day = chrono::DateTime::from_timestamp(
                    1_796_083_200 + 86_400 * i64::try_from(rng.below(60)).unwrap_or(0),
                    0,
                )
                .map(|d| d.format("%Y-%m-%d").to_string())
                .unwrap_or_default();
                if base.user_edit(TABLE, &rec.id, json!({"Next Contact Date": day}), &person).is_ok() {
                    edits_left -= 1;
                }
            } else if let Some(rec) = rec.filter(|_| linked) {
                let done = status_edits.entry(rec.id.to_string()).or_default();
                let now = rec.fields.get_str("Status").unwrap_or("Not Started").to_owned();
                let to = ["In Progress", "Done"].into_iter().find(|s| *s != now && !done.iter().any(|d| d == s));
                if let Some(to) = to
                    && done.len() < 2
                    && base.user_edit(TABLE, &rec.id, json!({"Status": to}), &person).is_ok()
                {
                    done.push(to.to_owned());
                    edits_left -= 1;
                }
            }
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
    airtable.faults().clear();
    let last_delivery = Instant::now();

    // drain: the queue empties, then the Airtable feed is read once more (a ping lost to a fault is made up by
    // `serve`'s periodic poll), and the queue empties again
    let store = procs[0].engine.store().clone();
    let flow = procs[0].flow.clone();
    let drained = wait_drained(&store, cfg.drain_timeout, Duration::from_millis(300), || async {
        let _ = flow.poll_payloads(&store).await;
    })
    .await;
    let drain = last_delivery.elapsed();
    let status = store.status().await.expect("status");
    stop_pools(procs.iter_mut().map(|p| &mut p.workers)).await;

    let mut report = oracle(&kommo, &base, &store, &seeds, &leads, &status_edits).await;
    let counts = RunCounts {
        posted: window.posted,
        accepted,
        faults: faults.load(Ordering::Relaxed),
        faults_lapsed: lapsed(&[kommo.faults(), airtable.faults()]),
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

/// Deliveries on their way to the receivers: each is added with a 10 % chance of an exact redelivery, and once more
/// than 12 are pending a random one is sent (reordering within the window); `flush` sends the rest in random order.
pub(crate) struct Window<D> {
    pending: Vec<D>,
    /// Deliveries sent so far.
    pub(crate) posted: u64,
}

impl<D: Clone + Send + 'static> Window<D> {
    pub(crate) fn new() -> Self {
        Self { pending: Vec::new(), posted: 0 }
    }

    /// Adds `d`, and maybe an exact redelivery of it.
    pub(crate) fn add(&mut self, d: D, rng: &mut Rng) {
        if rng.chance(10) {
            self.pending.push(d.clone()); // an exact redelivery
        }
        self.pending.push(d);
    }

    /// Sends random deliveries until at most 12 are pending.
    pub(crate) async fn release(&mut self, senders: &Senders<D>, rng: &mut Rng) {
        while self.pending.len() > 12 {
            let d = self.pending.swap_remove(rng.below(self.pending.len()));
            senders.send(d).await;
            self.posted += 1;
        }
    }

    /// Sends every pending delivery, in random order.
    pub(crate) async fn flush(&mut self, senders: &Senders<D>, rng: &mut Rng) {
        while !self.pending.is_empty() {
            let d = self.pending.swap_remove(rng.below(self.pending.len()));
            senders.send(d).await;
            self.posted += 1;
        }
    }

    /// Sends every pending delivery in the order added.
    pub(crate) async fn send_all(&mut self, senders: &Senders<D>) {
        for d in self.pending.drain(..) {
            senders.send(d).await;
            self.posted += 1;
        }
    }
}

/// Eight webhook senders sharing one queue, as a vendor's delivery workers: each delivery goes to a random receiver
/// and is retried every 50 ms until one answers 2xx (the vendors retry failed deliveries). `post` makes one attempt
/// and says whether it was answered 2xx.
pub(crate) struct Senders<D> {
    tx: tokio::sync::mpsc::Sender<D>,
    tasks: tokio::task::JoinSet<()>,
    delivered: Arc<AtomicU64>,
}

impl<D: Clone + Send + 'static> Senders<D> {
    /// Starts the senders; `salt` seeds their choice of receiver.
    pub(crate) fn start<F, Fut>(addrs: &[SocketAddr], salt: u64, post: F) -> Self
    where
        F: Fn(reqwest::Client, SocketAddr, D) -> Fut + Clone + Send + 'static,
        Fut: std::future::Future<Output = bool> + Send,
    {
        let (tx, rx) = tokio::sync::mpsc::channel::<D>(1024);
        let rx = Arc::new(tokio::sync::Mutex::new(rx));
        let delivered = Arc::new(AtomicU64::new(0));
        let mut tasks = tokio::task::JoinSet::new();
        for s in 0..8u64 {
            let (rx, addrs, delivered, post) = (rx.clone(), addrs.to_vec(), delivered.clone(), post.clone());
            tasks.spawn(async move {
                let http = reqwest::Client::new();
                let mut r = Rng(0x9e37_79b9_7f4a_7c15 ^ (s + salt));
                loop {
                    let Some(d) = rx.lock().await.recv().await else { break };
                    loop {
                        let addr = addrs[r.below(addrs.len())];
                        if post(http.clone(), addr, d.clone()).await {
                            delivered.fetch_add(1, Ordering::Relaxed);
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            });
        }
        Self { tx, tasks, delivered }
    }

    /// Queues one delivery.
    pub(crate) async fn send(&self, d: D) {
        self.tx.send(d).await.expect("senders alive");
    }

    /// Waits until every queued delivery was answered 2xx; returns how many were.
    pub(crate) async fn finish(self) -> u64 {
        let Self { tx, mut tasks, delivered } = self;
        drop(tx);
        while tasks.join_next().await.is_some() {}
        delivered.load(Ordering::Relaxed)
    }
}

/// Whether the kill schedule calls for a kill at `step`: every `kill_every` steps, at most `cfg.kills` times.
pub(crate) fn kill_due(cfg: &ChaosConfig, step: usize, kill_every: usize, kills: u64) -> bool {
    cfg.kills > 0 && kill_every > 0 && step > 0 && step.is_multiple_of(kill_every) && kills < cfg.kills as u64
}

/// Kills the worker pool of a random process where it stands (tasks dropped mid-write, leases left to expire),
/// then starts a new one for it. Returns 1 when a pool was killed (0 when that process had none running).
pub(crate) async fn kill_one(mut pools: Vec<(&mut Option<WorkerHandle>, &Engine)>, rng: &mut Rng) -> u64 {
    if pools.is_empty() {
        return 0;
    }
    let i = rng.below(pools.len());
    let (workers, engine) = &mut pools[i];
    let killed = match workers.take() {
        Some(w) => {
            w.kill();
            1
        }
        None => 0,
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    **workers = Some(worker::start((*engine).clone(), worker_config()));
    killed
}

/// Waits (up to `timeout`) until nothing is queued or running, twice in a row `settle` apart, calling `between`
/// each time the queues look empty (a last poll of a feed, say). `true` when they drained.
pub(crate) async fn wait_drained<F, Fut>(store: &Store, timeout: Duration, settle: Duration, mut between: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if queue_empty(store).await {
            between().await;
            tokio::time::sleep(settle).await;
            if queue_empty(store).await {
                return true;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// Shuts down the worker pools still running.
pub(crate) async fn stop_pools<'a>(pools: impl IntoIterator<Item = &'a mut Option<WorkerHandle>>) {
    for pool in pools {
        if let Some(w) = pool.take() {
            w.shutdown().await;
        }
    }
}

/// Makes the faults a soak injects on its clock (one every `fault_every`) transient: each lapses when no matching
/// request arrives within two injection periods. Without it, faults aimed at a path few requests take pile up while
/// the run goes on (a fault waits for its request however long that takes), and the next requests there meet them
/// all in a row: one Airtable → Kommo change met 40 `PATCH /api/v4/leads` faults in a row and was dead-lettered
/// (seed 7, a fast run), an outage no vendor produces and no retry schedule is meant to ride out. Busy paths are
/// unaffected: their faults meet a request long before they lapse.
pub(crate) fn transient(cfg: &ChaosConfig, faults: &[&api_core::fake::Faults]) {
    for f in faults {
        f.lapse_after(Some(cfg.fault_every * 2));
    }
}

/// Faults of `faults` that lapsed unmet.
pub(crate) fn lapsed(faults: &[&api_core::fake::Faults]) -> u64 {
    faults.iter().map(|f| f.lapsed()).sum()
}

/// What a run counted, for [`complete_report`].
pub(crate) struct RunCounts {
    pub(crate) posted: u64,
    pub(crate) accepted: u64,
    pub(crate) faults: u64,
    pub(crate) faults_lapsed: u64,
    pub(crate) kills: u64,
    pub(crate) drain: Duration,
    pub(crate) total: Duration,
}

/// Adds the engine's view to the oracle's report (a queue that did not drain counts as lost; every dead letter is
/// listed with its error) and the run's counts.
pub(crate) async fn complete_report(
    report: &mut Report,
    store: &Store,
    status: &sync_core::Status,
    drained: Option<Duration>,
    counts: RunCounts,
) {
    if let Some(timeout) = drained {
        report.details.push(format!("the queue did not drain within {timeout:?}: {:?}", status.depth));
        report.lost += 1;
    }
    report.deliveries = counts.posted;
    report.accepted = counts.accepted;
    report.dead = u64::try_from(status.dead).unwrap_or(0);
    if report.dead > 0 {
        for row in store.list(State::Dead, 20).await.unwrap_or_default() {
            report.details.push(format!("dead letter {} ({}): {:?}", row.id, row.dedup_key, row.last_error));
        }
    }
    report.faults = counts.faults;
    report.faults_lapsed = counts.faults_lapsed;
    report.kills = counts.kills;
    report.drain = counts.drain;
    report.total = counts.total;
}

pub(crate) async fn queue_empty(store: &Store) -> bool {
    store
        .status()
        .await
        .is_ok_and(|s| !s.depth.iter().any(|((_, st), n)| *n > 0 && matches!(st, State::Queued | State::Running)))
}

/// Compares every onboarding record, field by field, with what the final Kommo state implies, and every lead's
/// notes with the status changes people made in Airtable. Written without the flow's mapping code: the expected
/// values come from the seeds and the fakes.
async fn oracle(
    kommo: &FakeKommo,
    base: &FakeBase,
    store: &Store,
    seeds: &Seeds,
    leads: &[LeadId],
    status_edits: &HashMap<String, Vec<String>>,
) -> Report {
    let mut r = Report::default();
    let records = base.records(TABLE);
    r.records = records.len() as u64;
    let mut by_deal: BTreeMap<String, Vec<&airtable_client::Record>> = BTreeMap::new();
    for rec in &records {
        match rec.fields.get_str("Kommo Deal ID") {
            Some(id) => by_deal.entry(id.to_owned()).or_default().push(rec),
            None => {
                r.orphans += 1;
                r.details.push(format!("record {} has no Kommo Deal ID", rec.id));
            }
        }
    }
    for lead_id in leads {
        let lead = kommo.lead(*lead_id).expect("lead");
        let key = lead_id.to_string();
        let recs = by_deal.remove(&key).unwrap_or_default();
        let won = lead.status_id == Some(StatusId::WON);
        if recs.len() > 1 {
            r.duplicated += (recs.len() - 1) as u64;
            r.details.push(format!("lead {key}: {} records", recs.len()));
        }
        let Some(rec) = recs.first() else {
            if won {
                r.lost += 1;
                r.details.push(format!("lead {key} is won and has no record"));
            }
            continue;
        };
        let (contact, company) = seeds.lead_parties[lead_id];
        let (cname, email, phone) = &seeds.contacts[&contact];
        let ncd = lead
            .custom_field(seeds.ncd)
            .and_then(|v| v.first().and_then(kommo_api::custom_fields::FieldValue::as_unix))
            .map(|u| {
                chrono::DateTime::from_timestamp(u, 0).map(|d| d.format("%Y-%m-%d").to_string()).unwrap_or_default()
            });
        let mut wrong = Vec::new();
        let mut check_str = |field: &str, want: Option<&str>| {
            let got = rec.fields.get_str(field);
            if got != want {
                wrong.push(format!("{field}: {got:?} != {want:?}"));
            }
        };
        check_str("Deal Name", Some(lead.name.as_str()));
        check_str("Responsible", Some(seeds.user_name.as_str()));
        check_str("Client Name", Some(cname.as_str()));
        check_str("Email", Some(email.as_str()));
        check_str("Phone", Some(phone.as_str()));
        check_str("Company", Some(seeds.companies[&company].as_str()));
        check_str("Next Contact Date", ncd.as_deref());
        let status_want =
            status_edits.get(rec.id.as_str()).and_then(|v| v.last()).map_or("Not Started", String::as_str);
        check_str("Status", Some(status_want));
        let price = lead.price.map(|p| p as f64);
        if rec.fields.get_f64("Deal Value") != price {
            wrong.push(format!("Deal Value: {:?} != {price:?}", rec.fields.get_f64("Deal Value")));
        }
        match store.id_get("airtable", "onboarding", &key).await {
            Ok(Some(id)) if id == rec.id.as_str() => {}
            other => wrong.push(format!("id map: {other:?} != {}", rec.id)),
        }
        if !wrong.is_empty() {
            r.wrong += 1;
            let mut line = format!("lead {key} (record {}, won: {won}):", rec.id);
            for w in &wrong {
                let _ = write!(line, " {w};");
            }
            r.details.push(line);
        }
        // one note per status change a person made, none for our own writes
        let notes: Vec<String> = kommo
            .notes_for(EntityType::Leads, lead_id.get())
            .into_iter()
            .filter_map(|n| n.text().map(str::to_owned))
            .collect();
        let edits = status_edits.get(rec.id.as_str()).map_or(&[][..], Vec::as_slice);
        for e in edits {
            let n = notes.iter().filter(|t| t.starts_with(&format!("Onboarding status: {e} "))).count();
            if n != 1 {
                if n > 1 {
                    r.duplicated += (n - 1) as u64;
                } else {
                    r.lost += 1;
                }
                r.details.push(format!("lead {key}: {n} notes for the Airtable status change to {e}"));
            }
        }
        if notes.len() > edits.len() {
            r.duplicated += (notes.len() - edits.len()) as u64;
            r.details.push(format!("lead {key}: {} notes for {} status changes: {notes:?}", notes.len(), edits.len()));
        }
    }
    for (deal, recs) in by_deal {
        r.orphans += recs.len() as u64;
        r.details.push(format!("{} record(s) for unknown deal {deal}", recs.len()));
    }
    r
}
