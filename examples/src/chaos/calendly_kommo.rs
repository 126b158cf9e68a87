//! A chaos soak for the Calendly → Kommo flow with a field-level oracle.
//!
//! Several engine "processes" (each with its own Kommo client, flow instance, receiver and worker pool, as
//! `serve` has) share one store: SQLite or PostgreSQL. Each process starts the way `serve` does: it makes sure the
//! Calendly webhook subscription exists with [`ensure_webhook`] (the first creates it and its signing key, the
//! others keep it and read the same key from the store), with 429 and 503 faults injected into those Calendly
//! `GET`s.
//!
//! A driver plays the people of a Calendly account: known people (a Kommo contact with one open deal and one won
//! deal; they sometimes type their email in another case) and new people (no Kommo contact) book meetings, some
//! with an answer; bookings are rescheduled (both orders of Calendly's delivery pair, chosen at random), canceled
//! (by the invitee or the host, with or without a reason) and marked as no-shows; now and then a booking is
//! canceled so fast that the cancellation arrives before the booking (the flow's documented `canceled-unsynced`
//! case). Every delivery Calendly would send (`invitee.created`, `invitee.canceled`, `invitee_no_show.created`,
//! signed with the subscription's key) goes to a random receiver, is re-signed and retried until answered 2xx,
//! and 10 % are redelivered exactly. Deliveries are reordered within a window across people; one person's
//! deliveries keep their order (Calendly sends one person's events in the order they happen, the flow orders by
//! person, and the out-of-order cases it documents — the reschedule pair in either order, a cancellation before
//! its booking — are produced on purpose). Meanwhile faults are injected into the Kommo fake (429, 502, and
//! drop-after-commit on `POST`s of contacts, leads, notes and tasks and on task `PATCH`es) and worker pools are
//! killed (tasks dropped where they are, leases left to expire) and replaced.
//!
//! The flow reads nothing from Calendly while it handles deliveries (every fact is in the signed payload), so
//! Calendly faults can only reach the subscription set-up; they are injected there. Rate limits are off in both
//! fakes (throttling is injected as 429 faults instead, with the Kommo client's hold-off shortened): the subject is
//! convergence, not pacing.
//!
//! When the queues have drained, an oracle (`oracle`) derives what Kommo must hold from the Calendly fake's final state and
//! the driver's record of each booking chain — one contact per person, one inbound lead per new person, and per
//! booking chain exactly one meeting task (due at the final start, closed with the canceller and reason when
//! canceled), the booked / rescheduled / canceled / no-show notes with their exact texts (times, invitee, join
//! link, host, answers, the `Calendly invitee:` line), and one follow-up task per no-show — written from the flow's
//! documentation, not its code, and compares field by field. Anything in Kommo that no booking explains is an
//! orphan.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use api_core::Token;
use api_core::fake::Fault;
use calendly_api::InviteeUri;
use calendly_api::fake::{Booking, FakeCalendly, FakeConfig as CalConfig, OutgoingWebhook};
use calendly_api::invitees::Invitee;
use calendly_api::scheduled_events::{CancelerType, ScheduledEvent};
use chrono::{DateTime, Utc};
use kommo_api::fake::{FakeConfig as KmConfig, FakeKommo, SeedLead};
use kommo_api::{ContactId, EntityType, LeadId, StatusId, UserId};
use serde_json::json;
use sync_core::flows::calendly_kommo::{CalendlyKommo, Config, ScopeConfig, WebhookSpec, ensure_webhook};
use sync_core::{Engine, Store, WorkerHandle, server, worker};

use super::{
    ChaosConfig, Report, Rng, RunCounts, complete_report, kill_due, kill_one, stop_pools, wait_drained, worker_config,
};

/// One engine process: its own Kommo client, flow, receiver and worker pool.
struct Process {
    engine: Engine,
    addr: SocketAddr,
    workers: Option<WorkerHandle>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

/// A Kommo contact seeded for a known person.
#[derive(Debug, Clone, Copy)]
struct Known {
    contact: ContactId,
    lead: LeadId,
    won: LeadId,
}

/// A person who books.
#[derive(Debug, Clone)]
struct Person {
    email: String,
    name: String,
    known: Option<Known>,
    last_no_show: Option<Instant>,
}

/// Where a booking chain ended (as far as the driver is concerned).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Active,
    Canceled,
    NoShow,
}

/// One booking and its reschedules: `invitees[0]` booked, each next one the reschedule of the one before.
#[derive(Debug, Clone)]
struct Chain {
    person: usize,
    invitees: Vec<InviteeUri>,
    /// Canceled before its `invitee.created` was delivered (the cancellation arrives first).
    cancel_first: bool,
    end: End,
}

/// Runs the Calendly → Kommo soak on `open_store()` (called once per process). [`ChaosConfig::leads`] is the
/// number of people (half of them known to Kommo), [`ChaosConfig::changes`] the number of driver actions (book,
/// reschedule, cancel, no-show); [`ChaosConfig::airtable_edits`] is not used.
///
/// # Panics
/// When the fakes, the subscription or the receivers cannot be set up (nothing to measure then).
#[allow(clippy::too_many_lines)]
pub async fn run_calendly_kommo<F, Fut>(cfg: &ChaosConfig, open_store: F) -> Report
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Store>,
{
    let started = Instant::now();
    let mut rng = Rng(cfg.seed.rotate_left(7) | 1);
    let kommo = Arc::new(
        FakeKommo::start_with(KmConfig { rate_limit: None, ..KmConfig::default() }).await.expect("kommo fake"),
    );
    let cal = Arc::new(
        FakeCalendly::start_with(CalConfig { rate_limit: u32::MAX, ..CalConfig::default() })
            .await
            .expect("calendly fake"),
    );
    let faults = Arc::new(AtomicU64::new(0));

    // the people
    let mut people = Vec::new();
    for i in 0..cfg.leads.max(2) {
        if i % 2 == 0 {
            let (name, email) = (format!("Known Person {i}"), format!("known{i}@example.com"));
            let owner = kommo.seed_user(&format!("Manager {i}"), &format!("manager{i}@agency.example"));
            let contact = kommo.seed_contact(&name, Some(&email), None);
            let won = kommo.seed_lead(SeedLead::new(format!("Old deal {i}")).contact(contact).responsible(owner));
            kommo.set_lead_status(won, kommo.main_pipeline(), StatusId::WON);
            let lead = kommo.seed_lead(SeedLead::new(format!("Deal {i}")).contact(contact).responsible(owner));
            people.push(Person { email, name, known: Some(Known { contact, lead, won }), last_no_show: None });
        } else {
            people.push(Person {
                email: format!("new{i}@example.net"),
                name: format!("New Person {i}"),
                known: None,
                last_no_show: None,
            });
        }
    }

    // the processes
    let mut procs = Vec::new();
    let mut signing_key = None;
    for _ in 0..cfg.processes.max(1) {
        let store = open_store().await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        // serve's start-up: make sure the subscription exists (Calendly throttles and fails meanwhile)
        let spec = WebhookSpec {
            callback_url: format!("http://{}/hooks/calendly", procs.first().map_or(addr, |p: &Process| p.addr)),
            organization: cal.organization(),
            scope: ScopeConfig::Organization,
            user: None,
        };
        cal.server.faults.inject(
            Some(reqwest::Method::GET),
            "/webhook_subscriptions",
            // as Calendly sends it: with the seconds until the window resets (1 s here, to keep the soak short)
            Fault::Status {
                status: 429,
                headers: vec![
                    ("X-RateLimit-Limit".into(), "500".into()),
                    ("X-RateLimit-Remaining".into(), "0".into()),
                    ("X-RateLimit-Reset".into(), "1".into()),
                ],
                body: json!({"title": "Too Many Requests", "message": "You have exceeded the rate limit"}).to_string(),
                content_type: "application/json".into(),
            },
            1,
        );
        cal.server.faults.inject(
            Some(reqwest::Method::GET),
            "/webhook_subscriptions",
            Fault::json(503, &json!({"title": "Service Unavailable", "message": "Try again later"})),
            1,
        );
        faults.fetch_add(2, Ordering::Relaxed);
        let calendly_client = cal.client();
        let mut ensured = None;
        for _ in 0..20 {
            match ensure_webhook(&calendly_client, &store, &spec).await {
                Ok(e) => {
                    ensured = Some(e);
                    break;
                }
                Err(e) => {
                    tracing::info!(error = %e, "ensure_webhook failed; retrying");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        let ensured = ensured.expect("the Calendly subscription");
        let key = ensured.signing_key.expose().to_owned();
        assert!(signing_key.as_ref().is_none_or(|k| *k == key), "the processes agree on one signing key");
        signing_key = Some(key);

        let kommo_client = kommo
            .client_builder()
            .rate_limit(1000)
            .throttle_backoff(Duration::from_millis(400))
            .request_timeout(Duration::from_secs(5))
            .build()
            .expect("kommo client");
        let flow = CalendlyKommo::new(Config::default(), kommo_client, ensured.signing_key.clone()).expect("flow");
        flow.validate().await.expect("config is valid");
        let engine = Engine::new(store.clone(), vec![Arc::new(flow.clone())]).expect("engine");
        let (router, _) = server::router(engine.clone(), flow.routes()).expect("router");
        let (stop, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(server::serve(listener, router, async {
            let _ = rx.await;
        }));
        let workers = Some(worker::start(engine.clone(), worker_config()));
        procs.push(Process { engine, addr, workers, _stop: stop });
    }
    cal.server.faults.clear();
    let key = Token::new(signing_key.expect("at least one process"));
    let addrs: Vec<SocketAddr> = procs.iter().map(|p| p.addr).collect();
    let _ = cal.take_outbox();

    // senders: one queue per shard of people, so one person's deliveries keep their order; each delivery is
    // re-signed and retried until a receiver answers 2xx (Calendly retries failed deliveries)
    let delivered = Arc::new(AtomicU64::new(0));
    let mut senders = tokio::task::JoinSet::new();
    let mut queues = Vec::new();
    for s in 0..8u64 {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<OutgoingWebhook>(1024);
        queues.push(tx);
        let (addrs, delivered, key) = (addrs.clone(), delivered.clone(), key.clone());
        senders.spawn(async move {
            let http = reqwest::Client::new();
            let mut r = Rng(0x9e37_79b9_7f4a_7c15 ^ (s + 1));
            while let Some(w) = rx.recv().await {
                loop {
                    let addr = addrs[r.below(addrs.len())];
                    let w = OutgoingWebhook { url: format!("http://{addr}/hooks/calendly"), ..w.clone() }
                        .resigned(key.expose(), Utc::now().timestamp());
                    if w.post(&http).await.is_ok_and(|s| (200..300).contains(&s)) {
                        delivered.fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        });
    }

    // faults
    let faulting = Arc::new(AtomicBool::new(true));
    // (the Calendly faults above are for the set-up and were injected before this: they wait for it)
    super::transient(cfg, &[kommo.faults()]);
    let injector = {
        let (kommo, faulting, faults, every) = (kommo.clone(), faulting.clone(), faults.clone(), cfg.fault_every);
        let mut r = Rng(cfg.seed.rotate_left(23) | 1);
        tokio::spawn(async move {
            let drop_post = |path: &str| {
                kommo.faults().inject(Some(reqwest::Method::POST), path, Fault::DropAfterCommit, 1);
            };
            while faulting.load(Ordering::Relaxed) {
                tokio::time::sleep(every).await;
                match r.below(8) {
                    0 => kommo.inject_throttle(1),
                    1 => kommo.inject_status(502, 1),
                    2 => drop_post("/api/v4/contacts"),
                    3 => drop_post("/api/v4/leads"),
                    4 => drop_post("/api/v4/leads/notes"),
                    5 | 6 => drop_post("/api/v4/tasks"),
                    _ => {
                        kommo.faults().inject(Some(reqwest::Method::PATCH), "/api/v4/tasks", Fault::DropAfterCommit, 1);
                    }
                }
                faults.fetch_add(1, Ordering::Relaxed);
            }
        })
    };

    // the driver
    let base = {
        let t = Utc::now().timestamp() + 7 * 86_400;
        t - t % 3600
    };
    let mut slot = 0i64;
    let mut next_start = || {
        slot += 1;
        DateTime::<Utc>::from_timestamp(base + slot * 900, 0).expect("valid time")
    };
    let mut chains: Vec<Chain> = Vec::new();
    let mut window: Vec<(usize, OutgoingWebhook)> = Vec::new();
    let mut posted = 0u64;
    let mut kills = 0u64;
    let kill_every = cfg.changes / (cfg.kills + 1);
    for step in 0..cfg.changes {
        let active: Vec<usize> = (0..chains.len()).filter(|c| chains[*c].end == End::Active).collect();
        let roll = rng.below(100);
        let mut emitted: Vec<(usize, OutgoingWebhook)> = Vec::new();
        if active.is_empty() || !(45..95).contains(&roll) {
            // a booking (5 %: canceled at once, the cancellation delivered first)
            let p = rng.below(people.len());
            let person = &people[p];
            let mut email = person.email.clone();
            if person.known.is_some() && rng.chance(25) {
                email = email.to_uppercase();
            }
            let mut booking = Booking::new(email, person.name.clone(), next_start());
            if rng.chance(30) {
                booking = booking.answer("Topic", format!("Pricing {}", rng.below(100)));
            }
            let booked = cal.book(booking);
            let mut chain =
                Chain { person: p, invitees: vec![booked.invitee.uri.clone()], cancel_first: false, end: End::Active };
            if roll >= 95 {
                let (_, canceled) = cal
                    .cancel(&booked.invitee.uri, Some("Booked by mistake"), CancelerType::Invitee)
                    .expect("cancel the new booking");
                chain.cancel_first = true;
                chain.end = End::Canceled;
                emitted.extend(canceled.into_iter().map(|w| (p, w)));
            }
            emitted.extend(booked.webhooks.into_iter().map(|w| (p, w)));
            chains.push(chain);
        } else {
            let c = active[rng.below(active.len())];
            let p = chains[c].person;
            let last = chains[c].invitees.last().expect("a chain has an invitee").clone();
            match roll {
                45..70 => {
                    let r = cal.reschedule_ordered(&last, next_start(), rng.chance(50)).expect("reschedule");
                    chains[c].invitees.push(r.new.uri.clone());
                    emitted.extend(r.webhooks.into_iter().map(|w| (p, w)));
                }
                70..85 => {
                    let (by, reason) = if rng.chance(50) {
                        (CancelerType::Invitee, if rng.chance(50) { Some("Found another vendor") } else { None })
                    } else {
                        (CancelerType::Host, Some("Host is sick"))
                    };
                    let (_, ws) = cal.cancel(&last, reason, by).expect("cancel");
                    chains[c].end = End::Canceled;
                    emitted.extend(ws.into_iter().map(|w| (p, w)));
                }
                _ => {
                    // at most one no-show per person and second: the follow-up task is found again by its text
                    // and due time, which are the same for two no-shows of one person in one second
                    if people[p].last_no_show.is_none_or(|t| t.elapsed() > Duration::from_millis(1500)) {
                        let (_, ws) = cal.mark_no_show(&last).expect("no-show");
                        chains[c].end = End::NoShow;
                        people[p].last_no_show = Some(Instant::now());
                        emitted.extend(ws.into_iter().map(|w| (p, w)));
                    }
                }
            }
        }
        for (p, w) in emitted {
            if rng.chance(10) {
                window.push((p, w.clone())); // an exact redelivery
            }
            window.push((p, w));
        }
        // reordering across people: a random person's oldest pending delivery once the window holds enough
        while window.len() > 12 {
            let pick = window[rng.below(window.len())].0;
            let i = window.iter().position(|(p, _)| *p == pick).expect("present");
            let (p, w) = window.remove(i);
            queues[p % queues.len()].send(w).await.expect("senders alive");
            posted += 1;
        }
        if kill_due(cfg, step, kill_every, kills) {
            kills += kill_one(procs.iter_mut().map(|p| (&mut p.workers, &p.engine)).collect(), &mut rng).await;
        }
        tokio::time::sleep(Duration::from_millis(u64::try_from(rng.below(8)).unwrap_or(0))).await;
    }
    while !window.is_empty() {
        let pick = window[rng.below(window.len())].0;
        let i = window.iter().position(|(p, _)| *p == pick).expect("present");
        let (p, w) = window.remove(i);
        queues[p % queues.len()].send(w).await.expect("senders alive");
        posted += 1;
    }
    drop(queues);
    while senders.join_next().await.is_some() {}
    faulting.store(false, Ordering::Relaxed);
    let _ = injector.await;
    kommo.faults().clear();
    let last_delivery = Instant::now();

    let store = procs[0].engine.store().clone();
    let drained = wait_drained(&store, cfg.drain_timeout, Duration::from_millis(0), || async {}).await;
    let drain = last_delivery.elapsed();
    let status = store.status().await.expect("status");
    stop_pools(procs.iter_mut().map(|p| &mut p.workers)).await;

    let mut report = oracle(&kommo, &cal, &store, &people, &chains).await;
    let counts = RunCounts {
        posted,
        accepted: delivered.load(Ordering::Relaxed),
        faults: faults.load(Ordering::Relaxed),
        faults_lapsed: super::lapsed(&[kommo.faults()]),
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

// ------------------------------------------------------------------------------------------------- the oracle

/// `Sat 06 Jun 2026, 14:00` (the flow's documented time format, in its configured zone: UTC here).
fn when(t: DateTime<Utc>) -> String {
    t.format("%a %d %b %Y, %H:%M").to_string()
}

/// The meeting details every note carries, in the documented order, ending with the `Calendly invitee:` line.
fn details(inv: &Invitee, ev: &ScheduledEvent) -> String {
    let mut s = format!("When: {}–{} (UTC)\n", when(ev.start_time), ev.end_time.format("%H:%M"));
    let _ = writeln!(
        s,
        "Invitee: {} <{}>",
        inv.name.as_deref().unwrap_or_default(),
        inv.email.as_deref().unwrap_or_default()
    );
    if let Some(l) = &ev.location {
        let _ = writeln!(s, "Where: {}: {}", l.kind, l.join_url.as_deref().unwrap_or_default());
    }
    if let Some(h) = ev.event_memberships.first().and_then(|m| m.user_name.as_deref()) {
        let _ = writeln!(s, "Host: {h}");
    }
    if !inv.questions_and_answers.is_empty() {
        s.push_str("Answers:\n");
        for qa in &inv.questions_and_answers {
            let _ = writeln!(s, "- {}: {}", qa.question, qa.answer);
        }
    }
    let _ = write!(s, "Calendly invitee: {}", inv.uri);
    s
}

/// A task the oracle expects.
struct WantTask {
    chain: usize,
    what: &'static str,
    type_id: i64,
    text: String,
    due: i64,
    duration: Option<i64>,
    completed: bool,
    result: Option<String>,
    /// Earlier due times of the same task (a meeting task not moved by a reschedule is "wrong", not "lost").
    earlier: Vec<i64>,
}

/// Compares Kommo with what the final Calendly state and the booking chains imply (see the module docs).
#[allow(clippy::too_many_lines)]
async fn oracle(kommo: &FakeKommo, cal: &FakeCalendly, store: &Store, people: &[Person], chains: &[Chain]) -> Report {
    let mut r = Report { records: chains.len() as u64, ..Report::default() };
    let invitees: HashMap<String, Invitee> = cal.invitees().into_iter().map(|i| (i.uri.to_string(), i)).collect();
    let events: HashMap<String, ScheduledEvent> =
        cal.scheduled_events().into_iter().map(|e| (e.uri.to_string(), e)).collect();
    let inv = |u: &InviteeUri| invitees.get(u.as_str()).expect("the fake knows its invitee");
    let ev =
        |i: &Invitee| events.get(i.event.as_ref().expect("invitee event").as_str()).expect("the fake knows its event");
    let main = kommo.main_pipeline();
    let first_stage = kommo.stages(main)[0];
    let contacts = kommo.contacts();
    let leads = kommo.leads();
    let seeded_leads: Vec<u64> =
        people.iter().filter_map(|p| p.known).flat_map(|k| [k.lead.get(), k.won.get()]).collect();
    let seeded_contacts: Vec<u64> = people.iter().filter_map(|p| p.known).map(|k| k.contact.get()).collect();

    // per person: the contact and the deal the meetings must land on
    let mut lead_of: HashMap<usize, u64> = HashMap::new();
    let mut explained_contacts: Vec<u64> = seeded_contacts.clone();
    let mut explained_leads: Vec<u64> = seeded_leads.clone();
    for (pi, p) in people.iter().enumerate() {
        let effective = chains.iter().any(|c| c.person == pi && !c.cancel_first);
        let with_email: Vec<_> =
            contacts.iter().filter(|c| c.emails().iter().any(|e| e.eq_ignore_ascii_case(&p.email))).collect();
        if let Some(k) = p.known {
            if with_email.len() != 1 || with_email[0].id != k.contact {
                r.duplicated += with_email.len().saturating_sub(1) as u64;
                r.details.push(format!(
                    "{}: {} contacts with this email, expected only the seeded one",
                    p.email,
                    with_email.len()
                ));
            }
            lead_of.insert(pi, k.lead.get());
            continue;
        }
        if !effective {
            if !with_email.is_empty() {
                r.orphans += with_email.len() as u64;
                r.details.push(format!(
                    "{}: every booking was canceled before it arrived, yet {} contact(s) exist",
                    p.email,
                    with_email.len()
                ));
            }
            continue;
        }
        match with_email.len() {
            0 => {
                r.lost += 1;
                r.details.push(format!("{}: no contact created", p.email));
                continue;
            }
            1 => {}
            n => {
                r.duplicated += (n - 1) as u64;
                r.details.push(format!("{}: {n} contacts with this email", p.email));
            }
        }
        let contact = with_email[0];
        explained_contacts.extend(with_email.iter().map(|c| c.id.get()));
        if contact.name != p.name {
            r.wrong += 1;
            r.details.push(format!("{}: contact name {:?} != {:?}", p.email, contact.name, p.name));
        }
        let theirs: Vec<_> = leads
            .iter()
            .filter(|l| with_email.iter().any(|c| l.embedded.contacts.iter().any(|lc| lc.id == c.id)))
            .collect();
        explained_leads.extend(theirs.iter().map(|l| l.id.get()));
        let Some(lead) = theirs.first() else {
            r.lost += 1;
            r.details.push(format!("{}: no inbound lead", p.email));
            continue;
        };
        if theirs.len() > 1 {
            r.duplicated += (theirs.len() - 1) as u64;
            r.details.push(format!("{}: {} leads for one new person", p.email, theirs.len()));
        }
        let mut wrong = Vec::new();
        if lead.name != format!("Calendly: {}", p.name) {
            wrong.push(format!("name {:?}", lead.name));
        }
        if lead.pipeline_id != Some(main) || lead.status_id != Some(first_stage) {
            wrong.push(format!("stage {:?}/{:?}", lead.pipeline_id, lead.status_id));
        }
        if !lead.embedded.tags.iter().any(|t| t.name == "calendly") {
            wrong.push("tag calendly missing".to_owned());
        }
        if !wrong.is_empty() {
            r.wrong += 1;
            r.details.push(format!("{}: inbound lead {}: {}", p.email, lead.id, wrong.join("; ")));
        }
        lead_of.insert(pi, lead.id.get());
    }
    for c in &contacts {
        if !explained_contacts.contains(&c.id.get()) {
            r.orphans += 1;
            r.details.push(format!("contact {} ({:?}, {:?}) explained by no person", c.id, c.name, c.emails()));
        }
    }
    for l in &leads {
        if !explained_leads.contains(&l.id.get()) {
            r.orphans += 1;
            r.details.push(format!("lead {} ({:?}) explained by no person", l.id, l.name));
        }
    }

    // per chain: the notes and tasks it must have left on its person's deal
    let mut want_notes: BTreeMap<u64, Vec<(usize, String)>> = BTreeMap::new();
    let mut want_tasks: BTreeMap<u64, Vec<WantTask>> = BTreeMap::new();
    for (ci, c) in chains.iter().enumerate() {
        if c.cancel_first {
            continue;
        }
        let Some(&lead) = lead_of.get(&c.person) else { continue };
        let notes = want_notes.entry(lead).or_default();
        let root = inv(&c.invitees[0]);
        let root_ev = ev(root);
        notes.push((
            ci,
            format!("📅 Calendly: {} booked\n{}", root_ev.name.as_deref().unwrap_or_default(), details(root, root_ev)),
        ));
        for pair in c.invitees.windows(2) {
            let (prev, next) = (ev(inv(&pair[0])), inv(&pair[1]));
            let next_ev = ev(next);
            notes.push((
                ci,
                format!(
                    "🔁 Calendly: {} rescheduled\nWas: {} (UTC)\n{}",
                    next_ev.name.as_deref().unwrap_or_default(),
                    when(prev.start_time),
                    details(next, next_ev)
                ),
            ));
        }
        let last = inv(c.invitees.last().expect("an invitee"));
        let last_ev = ev(last);
        let event_name = last_ev.name.clone().unwrap_or_default();
        let name = last.name.clone().unwrap_or_default();
        let mut result = None;
        let canceled = c.end == End::Canceled;
        if canceled {
            let x = last.cancellation.clone().unwrap_or_default();
            let by = x.canceled_by.clone().unwrap_or_default();
            let reason = x.reason.clone().unwrap_or_else(|| "none given".to_owned());
            let role = x.canceler_type.map(|t| format!(" ({t})")).unwrap_or_default();
            notes.push((
                ci,
                format!(
                    "❌ Calendly: {event_name} canceled\nCanceled by: {by}{role}\nReason: {reason}\n{}",
                    details(last, last_ev)
                ),
            ));
            result = Some(format!("Meeting canceled in Calendly (by {by}; reason: {reason})"));
        }
        let tasks = want_tasks.entry(lead).or_default();
        tasks.push(WantTask {
            chain: ci,
            what: "meeting task",
            type_id: 2,
            text: format!("Meeting: {event_name} with {name}"),
            due: last_ev.start_time.timestamp(),
            duration: Some((last_ev.end_time - last_ev.start_time).num_seconds()),
            completed: canceled,
            result,
            earlier: c.invitees[..c.invitees.len() - 1].iter().map(|u| ev(inv(u)).start_time.timestamp()).collect(),
        });
        if c.end == End::NoShow {
            let marked = last.no_show.as_ref().and_then(|n| n.created_at).expect("no-show time");
            notes.push((
                ci,
                format!(
                    "🚫 Calendly: no-show — {name} did not attend {event_name}\nReported: {} (UTC)\n{}",
                    when(marked),
                    details(last, last_ev)
                ),
            ));
            tasks.push(WantTask {
                chain: ci,
                what: "follow-up task",
                type_id: 1,
                text: format!("Follow up: {name} did not attend {event_name}"),
                due: marked.timestamp() + 24 * 3600,
                duration: None,
                completed: false,
                result: None,
                earlier: Vec::new(),
            });
        }
    }

    // notes, lead by lead (and none anywhere else)
    let mut noted: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    for n in kommo.notes() {
        let on = n.entity_id.unwrap_or(0);
        noted.entry(on).or_default().push(n.text().unwrap_or_default().to_owned());
    }
    for (lead, want) in &want_notes {
        let mut have = noted.remove(lead).unwrap_or_default();
        for (ci, text) in want {
            let n = have.iter().filter(|t| *t == text).count();
            if n == 1 {
                have.retain(|t| t != text);
                continue;
            }
            if n > 1 {
                r.duplicated += (n - 1) as u64;
                r.details.push(format!(
                    "lead {lead}, booking {}: {n} copies of note {:?}",
                    chains[*ci].invitees[0],
                    first_line(text)
                ));
                have.retain(|t| t != text);
                continue;
            }
            // not there: a note of the same kind about the same invitee with other text is wrong, else lost
            let (head, tail) = (first_line(text), text.lines().last().unwrap_or_default());
            if let Some(i) = have.iter().position(|t| first_line(t) == head && t.lines().last() == Some(tail)) {
                let got = have.remove(i);
                r.wrong += 1;
                r.details.push(format!("lead {lead}: note {head:?} reads {got:?}, expected {text:?}"));
            } else {
                r.lost += 1;
                r.details.push(format!("lead {lead}, booking {}: note missing: {text:?}", chains[*ci].invitees[0]));
            }
        }
        for t in have {
            r.orphans += 1;
            r.details.push(format!("lead {lead}: note no booking explains: {t:?}"));
        }
    }
    for (on, have) in noted {
        r.orphans += have.len() as u64;
        r.details.push(format!("entity {on}: {} note(s) no booking explains: {:?}", have.len(), have.first()));
    }

    // tasks, lead by lead (and none anywhere else)
    let responsible: HashMap<u64, Option<UserId>> = leads.iter().map(|l| (l.id.get(), l.responsible_user_id)).collect();
    let mut tasked: BTreeMap<u64, Vec<kommo_api::tasks::Task>> = BTreeMap::new();
    for t in kommo.tasks() {
        let on = if t.entity_type == Some(EntityType::Leads) { t.entity_id.unwrap_or(0) } else { 0 };
        tasked.entry(on).or_default().push(t);
    }
    for (lead, want) in &want_tasks {
        let mut have = tasked.remove(lead).unwrap_or_default();
        for w in want {
            let booking = &chains[w.chain].invitees[0];
            let matching: Vec<usize> = (0..have.len())
                .filter(|i| have[*i].task_type_id == Some(w.type_id) && have[*i].complete_till == Some(w.due))
                .collect();
            if matching.is_empty() {
                if let Some(i) = have.iter().position(|t| {
                    t.task_type_id == Some(w.type_id) && t.complete_till.is_some_and(|d| w.earlier.contains(&d))
                }) {
                    let t = have.remove(i);
                    r.wrong += 1;
                    r.details.push(format!(
                        "lead {lead}, booking {booking}: {} {} still due at an earlier time {:?}, expected {}",
                        w.what, t.id, t.complete_till, w.due
                    ));
                } else {
                    r.lost += 1;
                    r.details.push(format!("lead {lead}, booking {booking}: {} due {} missing", w.what, w.due));
                }
                continue;
            }
            if matching.len() > 1 {
                r.duplicated += (matching.len() - 1) as u64;
                r.details.push(format!("lead {lead}, booking {booking}: {} copies of the {}", matching.len(), w.what));
            }
            let t = have[matching[0]].clone();
            for i in matching.into_iter().rev() {
                have.remove(i);
            }
            let mut wrong = Vec::new();
            if t.text != w.text {
                wrong.push(format!("text {:?} != {:?}", t.text, w.text));
            }
            if t.is_completed != w.completed {
                wrong.push(format!("completed {} != {}", t.is_completed, w.completed));
            }
            let result = t.result.as_ref().and_then(|x| x.text.clone());
            if w.result.is_some() && result != w.result {
                wrong.push(format!("result {result:?} != {:?}", w.result));
            }
            if w.duration.is_some() && t.duration != w.duration {
                wrong.push(format!("duration {:?} != {:?}", t.duration, w.duration));
            }
            let want_resp = responsible.get(lead).copied().flatten();
            if t.responsible_user_id != want_resp {
                wrong.push(format!("responsible {:?} != {want_resp:?}", t.responsible_user_id));
            }
            if w.type_id == 2 {
                // the invitee ↔ task map (the documented state table): live, or canceled with its task
                let last = chains[w.chain].invitees.last().expect("an invitee");
                let want_map = if w.completed { format!("canceled:{}", t.id) } else { t.id.to_string() };
                match store.id_get("kommo", "calendly_invitee_task", last.as_str()).await {
                    Ok(Some(v)) if v == want_map => {}
                    other => wrong.push(format!("invitee map {other:?} != {want_map}")),
                }
            }
            if !wrong.is_empty() {
                r.wrong += 1;
                r.details.push(format!("lead {lead}, booking {booking}: {} {}: {}", w.what, t.id, wrong.join("; ")));
            }
        }
        for t in have {
            r.orphans += 1;
            r.details.push(format!(
                "lead {lead}: task {} no booking explains: {:?} due {:?}",
                t.id, t.text, t.complete_till
            ));
        }
    }
    for (on, have) in tasked {
        r.orphans += have.len() as u64;
        r.details.push(format!(
            "entity {on}: {} task(s) no booking explains: {:?}",
            have.len(),
            have.first().map(|t| &t.text)
        ));
    }
    r
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or_default()
}
