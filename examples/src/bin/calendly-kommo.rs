//! Calendly → Kommo meetings: bookings, reschedules, cancellations and no-shows become notes and tasks on the right
//! Kommo deal.
//!
//! ```text
//! cargo run -p examples --bin calendly-kommo -- demo
//! cargo run -p examples --bin calendly-kommo -- serve --config examples/config/calendly-kommo.toml
//! cargo run -p examples --bin calendly-kommo -- status
//! cargo run -p examples --bin calendly-kommo -- replay 42
//! ```
#![allow(clippy::print_stdout)] // a command-line program: stdout is its interface

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use calendly_api::fake::{Booking, FakeCalendly, OutgoingWebhook};
use calendly_api::scheduled_events::CancelerType;
use examples::startup::{self, Health, Service};
use examples::{DemoArgs, Narrator, ServeArgs};
use kommo_api::fake::{FakeConfig as KommoConfig, FakeKommo, SeedLead};
use kommo_api::{EntityType, StatusId};
use serde::Deserialize;
use sync_core::flows::calendly_kommo::{
    CalendlyKommo, Config as FlowConfig, ScopeConfig, WebhookAction, WebhookSpec, ensure_webhook,
};
use sync_core::server::{Verifier, VerifyRequest, router};
use sync_core::{Engine, State, Store, StoreOptions, WorkerConfig, worker};

/// The `serve` config file: connections (no secrets) plus the flow's own `[flow]` section.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    kommo: KommoConn,
    #[serde(default)]
    calendly: CalendlyConn,
    #[serde(default)]
    flow: FlowConfig,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct KommoConn {
    /// `https://<subdomain>.kommo.com`.
    base_url: String,
    /// Env var holding the long-lived token.
    #[serde(default = "kommo_token_env")]
    token_env: String,
    /// This process's share of the account's budget (Kommo allows 7 requests per second per account). Limits are
    /// kept per process: split it across several `serve` processes sharing one database.
    #[serde(default = "kommo_rps")]
    requests_per_second: u32,
    /// `[kommo.oauth]`: a Kommo OAuth integration instead of the long-lived token (tokens shared through the
    /// store; see [`examples::KommoOAuthConfig`]).
    #[serde(default)]
    oauth: Option<examples::KommoOAuthConfig>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CalendlyConn {
    /// Env var holding the personal access token (or OAuth access token).
    #[serde(default = "calendly_token_env")]
    token_env: String,
    /// Env var holding the signing key when `flow.webhook.callback_url` is not set (subscription managed by hand).
    #[serde(default = "signing_key_env")]
    signing_key_env: String,
    /// How often `serve` re-checks the subscription (recreating it if Calendly disabled it), in minutes.
    #[serde(default = "recheck_minutes")]
    recheck_minutes: u64,
    /// API base URL override (a proxy, or a fake in tests); default `https://api.calendly.com`.
    #[serde(default)]
    base_url: Option<String>,
}

impl Default for CalendlyConn {
    fn default() -> Self {
        Self {
            token_env: calendly_token_env(),
            signing_key_env: signing_key_env(),
            recheck_minutes: recheck_minutes(),
            base_url: None,
        }
    }
}

fn kommo_rps() -> u32 {
    kommo_api::client::DEFAULT_RATE_LIMIT_PER_SECOND
}
fn kommo_token_env() -> String {
    "KOMMO_TOKEN".into()
}
fn calendly_token_env() -> String {
    "CALENDLY_TOKEN".into()
}
fn signing_key_env() -> String {
    "CALENDLY_SIGNING_KEY".into()
}
fn recheck_minutes() -> u64 {
    60
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    examples::run_cli(
        "calendly-kommo",
        "Calendly bookings → Kommo notes and meeting tasks",
        |args| async move { demo(&args).await },
        |args| async move { serve(&args).await },
        |_| async {
            anyhow::bail!(
                "calendly-kommo has no backfill: Calendly's API lists events by start time, not changes, so bookings \
                 are synced from webhooks only (replay dead letters with `replay <id>`)"
            )
        },
    )
    .await
}

// --------------------------------------------------------------------------------------------------------- serve

/// Where `serve` keeps the signing key of its current Calendly subscription (`cursors` table, stream = the
/// callback URL): read before listening, so deliveries are verified while Calendly's API is down.
const KEY_CURSOR: &str = "calendly-kommo/signing-key";

/// Refuses every delivery (401, which Calendly retries) while no signing key is known, then defers to the flow's
/// verifier (whose key upkeep replaces).
#[derive(Debug)]
struct UntilKeyKnown {
    known: Arc<AtomicBool>,
    inner: Arc<dyn Verifier>,
}

impl Verifier for UntilKeyKnown {
    fn verify(&self, request: &VerifyRequest<'_>) -> Result<(), String> {
        if !self.known.load(Ordering::SeqCst) {
            return Err("no Calendly signing key known yet (the subscription is being set up)".to_owned());
        }
        self.inner.verify(request)
    }
}

/// Makes sure the subscription exists (created or adopted with a key we generated, see [`ensure_webhook`]), keeps
/// its key in the store and hands it to the flow's verifier.
async fn subscription_upkeep(
    calendly: &calendly_api::Client,
    store: &Store,
    flow: &CalendlyKommo,
    file_scope: ScopeConfig,
    callback_url: &str,
) -> anyhow::Result<()> {
    let me = calendly.me().await.context("Calendly /users/me")?;
    let organization = me.current_organization.clone().context("the Calendly user has no organization")?;
    let spec =
        WebhookSpec { callback_url: callback_url.to_owned(), organization, scope: file_scope, user: Some(me.uri) };
    let ensured = ensure_webhook(calendly, store, &spec).await?;
    if ensured.action != WebhookAction::Kept {
        tracing::info!(uri = %ensured.subscription.uri, action = ?ensured.action, "Calendly webhook subscription");
    }
    store.cursor_set(KEY_CURSOR, callback_url, ensured.signing_key.expose()).await?;
    flow.set_signing_key(ensured.signing_key);
    Ok(())
}

async fn serve(args: &ServeArgs) -> anyhow::Result<()> {
    examples::init_tracing("info");
    let text = std::fs::read_to_string(&args.config).with_context(|| format!("reading {}", args.config.display()))?;
    let file: FileConfig = toml::from_str(&text).with_context(|| format!("parsing {}", args.config.display()))?;
    let store = examples::open_store(&args.db).await?;
    let k = &file.kommo;
    let kommo =
        examples::kommo_client(k.base_url.as_str(), k.requests_per_second, k.oauth.as_ref(), &store, &k.token_env)
            .await?;
    // Calendly: 500 requests per rolling minute per user on paid plans, here spaced evenly (8/s) and shared
    let mut calendly = calendly_api::Client::builder()
        .token(examples::env_token(&file.calendly.token_env)?)
        .rate_budget(examples::shared_budget(&store, "calendly", 8));
    if let Some(url) = &file.calendly.base_url {
        calendly = calendly.base_url(url);
    }
    let calendly = calendly.build()?;
    let callback_url = file.flow.webhook.callback_url.clone();
    let scope = file.flow.webhook.scope;
    // the key: from the environment when the subscription is managed by hand, else the one stored by upkeep (none
    // yet on a first start: deliveries are refused until upkeep has created the subscription)
    let key = match &callback_url {
        Some(url) => store.cursor_get(KEY_CURSOR, url).await?.map(api_core::Token::new),
        None => Some(examples::env_token(&file.calendly.signing_key_env)?),
    };
    let known = Arc::new(AtomicBool::new(key.is_some()));
    let flow = Arc::new(CalendlyKommo::new(
        file.flow,
        kommo,
        key.unwrap_or_else(calendly_api::webhook_subscriptions::generate_signing_key),
    )?);
    let mut routes = flow.routes();
    for route in &mut routes {
        route.verifier = Arc::new(UntilKeyKnown { known: known.clone(), inner: route.verifier.clone() });
    }
    let service = Service {
        engine: Engine::new(store.clone(), vec![flow.clone()])?,
        routes,
        banner: format!("POST /hooks/{}", flow.config().source),
    };
    let every = Duration::from_secs(file.calendly.recheck_minutes.max(1) * 60);
    startup::run(args, service, Health::new(store.clone(), args.retry_max()), move |h| async move {
        if let Some(url) = callback_url {
            let upkeep = {
                let (flow, store, url, known) = (flow.clone(), store.clone(), url.clone(), known.clone());
                move || {
                    let (calendly, store, flow, url, known) =
                        (calendly.clone(), store.clone(), flow.clone(), url.clone(), known.clone());
                    async move {
                        subscription_upkeep(&calendly, &store, &flow, scope, &url).await?;
                        known.store(true, Ordering::SeqCst);
                        anyhow::Ok(())
                    }
                }
            };
            h.keep_up("webhook:calendly", every, upkeep);
            // another process sharing the store may replace the subscription: re-read its key every 30 s
            let (flow, store) = (flow.clone(), store.clone());
            h.spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    match store.cursor_get(KEY_CURSOR, &url).await {
                        Ok(Some(k)) => {
                            flow.set_signing_key(api_core::Token::new(k));
                            known.store(true, Ordering::SeqCst);
                        }
                        Ok(None) => {}
                        Err(e) => tracing::warn!(error = %e, "re-reading the Calendly signing key failed"),
                    }
                }
            });
        }
        h.until_ready("validation", || flow.validate()).await;
    })
    .await
}

// ---------------------------------------------------------------------------------------------------------- demo

/// POSTs Calendly deliveries to the receiver byte for byte (api-core's transport: this crate has no HTTP client
/// of its own).
struct Poster {
    transport: api_core::ReqwestTransport,
    url: url::Url,
}

impl Poster {
    async fn post(&self, w: &OutgoingWebhook) -> anyhow::Result<(u16, String)> {
        use api_core::Transport as _;
        let mut req = api_core::Request::post("")
            .body(api_core::Body::Raw { bytes: w.body.clone(), content_type: "application/json".into() });
        for (k, v) in &w.header_map() {
            if k.as_str() != "content-type" {
                req = req.header(k.clone(), v.clone());
            }
        }
        let resp = self.transport.send(self.url.clone(), req).await.map_err(|e| anyhow::anyhow!("POST: {e}"))?;
        Ok((resp.status.as_u16(), String::from_utf8_lossy(&resp.body).into_owned()))
    }
}

struct Demo {
    kommo: FakeKommo,
    cal: FakeCalendly,
    store: Store,
    http: Poster,
    sent: usize,
    duplicates: usize,
    rejected: usize,
}

impl Demo {
    /// POSTs the queued Calendly deliveries to the receiver; returns them.
    async fn deliver(&mut self) -> anyhow::Result<Vec<OutgoingWebhook>> {
        let out = self.cal.take_outbox();
        for w in &out {
            let (status, body) = self.http.post(w).await?;
            anyhow::ensure!(status == 200, "receiver answered {status}: {body}");
            self.sent += 1;
        }
        self.drain().await?;
        Ok(out)
    }

    async fn drain(&self) -> anyhow::Result<()> {
        let start = Instant::now();
        loop {
            let s = self.store.status().await?;
            let busy: i64 = s
                .depth
                .iter()
                .filter(|((_, st), _)| matches!(st, State::Queued | State::Running))
                .map(|(_, n)| *n)
                .sum();
            if busy == 0 {
                return Ok(());
            }
            anyhow::ensure!(start.elapsed() < Duration::from_secs(20), "the queue did not drain: {s:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn notes(&self, lead: u64) -> Vec<String> {
        self.kommo.notes_for(EntityType::Leads, lead).iter().filter_map(|n| n.text().map(str::to_owned)).collect()
    }
}

fn at(days: i64, hour: u32) -> chrono::DateTime<chrono::Utc> {
    let d = chrono::Utc::now().date_naive() + chrono::Duration::days(days);
    d.and_hms_opt(hour, 0, 0).expect("valid time").and_utc()
}

#[allow(clippy::too_many_lines)]
async fn demo(args: &DemoArgs) -> anyhow::Result<()> {
    if args.verbose {
        examples::init_tracing("info");
    }
    let t0 = Instant::now();
    let mut n = Narrator::new();
    n.step("Starting the Kommo and Calendly fakes, the engine on SQLite and the webhook receiver on 127.0.0.1");
    let kommo = FakeKommo::start_with(KommoConfig { rate_limit: None, ..KommoConfig::default() }).await?;
    let cal = FakeCalendly::start().await?;
    let tmp = tempfile::tempdir()?;
    let dir = args.dir.clone().unwrap_or_else(|| tmp.path().to_path_buf());
    std::fs::create_dir_all(&dir)?;
    let db = dir.join("calendly-kommo.db");
    let store = Store::open_sqlite(&db, StoreOptions::default()).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let hook_url = format!("http://{addr}/hooks/calendly");
    n.say(&format!("Kommo fake {}  Calendly fake {}", kommo.base_url(), cal.base_url()));
    n.say(&format!("store {}  receiver {hook_url}", display(&db)));

    n.step("`serve` start-up: ensure the Calendly webhook subscription (organization scope, our own signing key)");
    let spec = WebhookSpec {
        callback_url: hook_url.clone(),
        organization: cal.organization(),
        scope: ScopeConfig::Organization,
        user: None,
    };
    let ensured = ensure_webhook(&cal.client(), &store, &spec).await?;
    n.check(ensured.action == WebhookAction::Created, "subscription created with a freshly generated signing key");
    let again = ensure_webhook(&cal.client(), &store, &spec).await?;
    n.check(
        again.action == WebhookAction::Kept && again.signing_key.expose() == ensured.signing_key.expose(),
        "a restart keeps it (the key is stored in the engine's database)",
    );

    let maria = kommo.seed_user("Maria Manager", "maria@agency.example");
    let mut config = FlowConfig { timezone: "Europe/Berlin".into(), ..FlowConfig::default() };
    config.new_lead.responsible_user_id = Some(maria.get());
    let flow = CalendlyKommo::new(config, kommo.client(), ensured.signing_key.clone())?;
    flow.validate().await?;
    let routes = flow.routes();
    let engine = Engine::new(store.clone(), vec![Arc::new(flow)])?;
    let (app, stats) = router(engine.clone(), routes)?;
    let server = tokio::spawn(async move {
        let _ = sync_core::server::serve(listener, app, std::future::pending()).await;
    });
    let workers = worker::start(
        engine,
        WorkerConfig {
            poll_interval: Duration::from_millis(20),
            backoff: sync_core::Backoff {
                initial: Duration::from_millis(100),
                multiplier: 2,
                max: Duration::from_secs(2),
            },
            ..WorkerConfig::default()
        },
    );
    let mut d = Demo {
        kommo,
        cal,
        store: store.clone(),
        http: Poster {
            transport: api_core::ReqwestTransport::new(api_core::TransportConfig::new("calendly-kommo-demo"))
                .map_err(|e| anyhow::anyhow!("{e}"))?,
            url: url::Url::parse(&hook_url)?,
        },
        sent: 0,
        duplicates: 0,
        rejected: 0,
    };

    n.step("A known contact books: Ivan Petrov (existing deal \"Website redesign\", owner Maria)");
    let ivan = d.kommo.seed_contact("Ivan Petrov", Some("ivan.petrov@example.com"), None);
    let deal = d.kommo.seed_lead(SeedLead::new("Website redesign").price(12_000).contact(ivan).responsible(maria));
    let won = d.kommo.seed_lead(SeedLead::new("Logo (2025)").contact(ivan));
    d.kommo.set_lead_status(won, d.kommo.main_pipeline(), StatusId::WON);
    let ivan_booking = d.cal.book(
        Booking::new("Ivan.Petrov@example.com", "Ivan Petrov", at(2, 14)).answer("What should we cover?", "Pricing"),
    );
    d.deliver().await?;
    let tasks = d.kommo.tasks_for(EntityType::Leads, deal.get());
    n.check(tasks.len() == 1, "a meeting task on the open deal (the won one is ignored)");
    if let Some(t) = tasks.first() {
        n.say(&format!("task #{}: \"{}\"", t.id, t.text));
        n.check(
            t.complete_till == Some(at(2, 14).timestamp()) && t.responsible_user_id == Some(maria),
            "due at the meeting start, responsible = the deal owner (Maria)",
        );
    }
    let notes = d.notes(deal.get());
    n.check(notes.len() == 1, "a note with time (Europe/Berlin), Zoom link and answers");
    if let Some(note) = notes.first() {
        for line in note.lines() {
            n.say(&format!("  │ {line}"));
        }
    }

    n.step("A new person books: Nina New (no contact in Kommo)");
    let nina = d.cal.book(Booking::new("nina.new@example.org", "Nina New", at(3, 10)));
    d.deliver().await?;
    let nina_lead = d.kommo.leads().into_iter().find(|l| l.name == "Calendly: Nina New");
    n.check(
        d.kommo.contacts().iter().any(|c| c.emails().iter().any(|e| e == "nina.new@example.org")),
        "a contact was created with her email",
    );
    n.check(nina_lead.is_some(), "an inbound lead \"Calendly: Nina New\" was created in the main pipeline");
    let nina_lead = nina_lead.map_or(0, |l| l.id.get());
    n.check(d.kommo.tasks_for(EntityType::Leads, nina_lead).len() == 1, "note and meeting task on the new lead");

    n.step("Calendly redelivers Ivan's booking 3 times (at-least-once delivery)");
    let original = ivan_booking.webhooks.first().context("booking delivery")?;
    for _ in 0..3 {
        let (status, body) = d.http.post(original).await?;
        if status == 200 && body.contains("duplicate") {
            d.duplicates += 1;
        }
    }
    d.drain().await?;
    n.check(d.duplicates == 3, "each answered 200 {\"status\":\"duplicate\"} and was dropped");
    n.check(d.kommo.tasks_for(EntityType::Leads, deal.get()).len() == 1, "still exactly one task on the deal");

    n.step("Ivan reschedules to the next day, 16:00 (Calendly sends canceled+rescheduled and created+old_invitee)");
    let r = d.cal.reschedule(&ivan_booking.invitee.uri, at(3, 16)).map_err(anyhow::Error::msg)?;
    let pair = d.deliver().await?;
    n.say(&format!("deliveries: {}", pair.iter().map(|w| w.event.to_string()).collect::<Vec<_>>().join(", ")));
    let tasks = d.kommo.tasks_for(EntityType::Leads, deal.get());
    n.check(
        tasks.len() == 1 && tasks[0].complete_till == Some(at(3, 16).timestamp()),
        "the same task moved to the new time (no duplicate task)",
    );
    let notes = d.notes(deal.get());
    n.check(
        notes.len() == 2 && notes[1].contains("rescheduled") && !notes.iter().any(|x| x.contains("canceled")),
        "one \"rescheduled\" note, no cancel note",
    );
    let _ = r;

    n.step("Nina cancels (\"Found another vendor\")");
    d.cal.cancel(&nina.invitee.uri, Some("Found another vendor"), CancelerType::Invitee).map_err(anyhow::Error::msg)?;
    d.deliver().await?;
    let t = d.kommo.tasks_for(EntityType::Leads, nina_lead);
    n.check(t.len() == 1 && t[0].is_completed, "her meeting task is closed with a result text");
    if let Some(res) = t.first().and_then(|t| t.result.as_ref()).and_then(|r| r.text.clone()) {
        n.say(&format!("result: {res}"));
    }
    n.check(
        d.notes(nina_lead)
            .iter()
            .any(|x| x.contains("Canceled by: Nina New (invitee)") && x.contains("another vendor")),
        "a note says who canceled and why",
    );

    n.step("Ivan does not show up; Kommo throttles the first attempt (429)");
    d.kommo.inject_throttle(1);
    d.cal.mark_no_show(&r.new.uri).map_err(anyhow::Error::msg)?;
    d.deliver().await?;
    let retried = workers.stats().retried.load(Ordering::Relaxed);
    n.check(retried >= 1, "the 429 became a retry after Kommo's hold-off, then succeeded");
    n.check(d.notes(deal.get()).iter().any(|x| x.contains("no-show")), "a no-show note on the deal");
    n.check(
        d.kommo.tasks_for(EntityType::Leads, deal.get()).iter().any(|t| t.task_type_id == Some(1)),
        "a follow-up task for Maria",
    );

    n.step("Someone posts a forged delivery (signed with the wrong key)");
    let mut fake_delivery = original.clone();
    let forged = calendly_api::webhook::sign(b"guessed-key", chrono::Utc::now().timestamp(), &fake_delivery.body);
    fake_delivery.headers.retain(|(k, _)| !k.eq_ignore_ascii_case("calendly-webhook-signature"));
    fake_delivery.headers.push(("Calendly-Webhook-Signature".into(), forged));
    let (status, _) = d.http.post(&fake_delivery).await?;
    if status == 401 {
        d.rejected += 1;
    }
    n.check(status == 401, "rejected with 401 before anything is stored");

    let dead = store.status().await?.dead;
    n.check(dead == 0, "no dead letters");
    workers.shutdown().await;
    server.abort();
    let all_tasks = d.kommo.tasks();
    let elapsed = t0.elapsed();
    n.finish(&[
        ("deliveries received", (d.sent + d.duplicates + d.rejected).to_string()),
        ("accepted", stats.accepted.load(Ordering::Relaxed).to_string()),
        ("duplicates dropped", stats.duplicates.load(Ordering::Relaxed).to_string()),
        ("rejected (bad signature)", stats.unauthorized.load(Ordering::Relaxed).to_string()),
        ("contacts created", (d.kommo.contacts().len() - 1).to_string()),
        ("leads created", (d.kommo.leads().len() - 2).to_string()),
        ("meeting tasks", all_tasks.iter().filter(|t| t.task_type_id == Some(2)).count().to_string()),
        ("follow-up tasks", all_tasks.iter().filter(|t| t.task_type_id == Some(1)).count().to_string()),
        ("notes", d.kommo.notes().len().to_string()),
        ("retries", retried.to_string()),
        ("dead letters", dead.to_string()),
        ("time", examples::human(elapsed)),
    ])
}

fn display(p: &Path) -> String {
    p.display().to_string()
}

#[cfg(test)]
mod tests {
    /// The shipped config parses, with the documented defaults.
    #[test]
    fn shipped_config_parses() {
        let file: super::FileConfig =
            toml::from_str(include_str!("../../config/calendly-kommo.toml")).expect("calendly-kommo.toml parses");
        assert_eq!(file.kommo.token_env, "KOMMO_TOKEN");
        assert_eq!(file.kommo.requests_per_second, 7, "Kommo's per-account limit");
        assert_eq!(file.calendly.token_env, "CALENDLY_TOKEN");
        assert_eq!(file.calendly.base_url, None);
    }
}
