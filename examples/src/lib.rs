//! Shared plumbing for the example binaries: the common subcommands, opening the store, operator output
//! (`status`, `replay`), tokens from the environment, and the narrated demo output.
//!
//! Each binary in `src/bin/` runs one integration flow from `sync_core::flows`:
//! `demo` (against the in-process fakes, no accounts needed), `serve` (for real, from `--config` and env vars),
//! `backfill`, `status` and `replay <id>`.
#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![allow(clippy::print_stdout)] // these are command-line programs: stdout is their interface

use std::{path::PathBuf, time::Duration};

use anyhow::Context as _;
use clap::{Args, Subcommand};
use sync_core::{State, Store, StoreOptions};

/// The subcommands every example binary offers.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a narrated end-to-end scenario against in-process fakes (no accounts, no network).
    Demo(DemoArgs),
    /// Run the flow for real: webhook receiver + workers (+ pollers), from a config file and env-var tokens.
    Serve(ServeArgs),
    /// Push all matching existing records through the flow (idempotent: safe to re-run).
    Backfill(ServeArgs),
    /// Show queue depth per source and state, lag and dead letters.
    Status(DbArgs),
    /// Put a dead-lettered event back in the queue.
    Replay {
        /// Database.
        #[command(flatten)]
        db: DbArgs,
        /// The inbox id shown by `status`.
        id: i64,
    },
    /// Delete done events (and their step journal) finished more than N days ago, as the hourly retention of
    /// `serve` does (dead letters are kept). Their dedup keys are forgotten: keep N above every vendor's retry period.
    Purge {
        /// Database.
        #[command(flatten)]
        db: DbArgs,
        /// Age in days (at least 1).
        #[arg(long)]
        older_than_days: u64,
    },
}

/// The command line every example binary parses: `<binary> <subcommand> [options]`.
#[derive(Debug, clap::Parser)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// The `main` of every example binary: parses the command line (`name` and `about` show in `--help`), runs the
/// store subcommands every binary shares (`status`, `replay`, `purge`) and hands `demo`, `serve` and `backfill` to
/// the binary's own functions.
///
/// # Errors
/// What the subcommand returns; a command-line error exits with clap's message and code.
pub async fn run_cli<D, S, B>(
    name: &'static str,
    about: &'static str,
    demo: impl FnOnce(DemoArgs) -> D,
    serve: impl FnOnce(ServeArgs) -> S,
    backfill: impl FnOnce(ServeArgs) -> B,
) -> anyhow::Result<()>
where
    D: Future<Output = anyhow::Result<()>>,
    S: Future<Output = anyhow::Result<()>>,
    B: Future<Output = anyhow::Result<()>>,
{
    use clap::{CommandFactory as _, FromArgMatches as _};
    let matches =
        Cli::command().name(name).bin_name(name).about(about).version(env!("CARGO_PKG_VERSION")).get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    match cli.command {
        Command::Demo(args) => demo(args).await,
        Command::Serve(args) => serve(args).await,
        Command::Backfill(args) => backfill(args).await,
        Command::Status(db) => print_status(&open_store(&db).await?).await,
        Command::Replay { db, id } => replay(&open_store(&db).await?, id).await,
        Command::Purge { db, older_than_days } => purge(&open_store(&db).await?, older_than_days).await,
    }
}

/// Options of `demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Keep the demo's SQLite database in this directory instead of a temporary one.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Print engine logs (tracing) as well as the narration.
    #[arg(long)]
    pub verbose: bool,
}

/// Which database to use.
#[derive(Debug, Args, Clone)]
pub struct DbArgs {
    /// `sqlite://path/to/file.db` or a plain path (embedded, the default), or `postgres://…` to share one database
    /// between several `serve` processes.
    #[arg(long, env = "SYNC_DATABASE_URL", default_value = "sync.db")]
    pub database: String,
}

/// Options of `serve` and `backfill`.
#[derive(Debug, Args, Clone)]
pub struct ServeArgs {
    /// The TOML config file (no secrets in it: tokens come from environment variables).
    #[arg(long)]
    pub config: PathBuf,
    /// Database.
    #[command(flatten)]
    pub db: DbArgs,
    /// Address for the webhook receiver.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: std::net::SocketAddr,
    /// Days done events (and markers not written since) are kept before the hourly purge removes them: longer than
    /// every vendor's retry period (Customer.io retries for 7 days), or a late redelivery would be applied again.
    /// Dead letters are kept until replayed or purged by hand. 0 turns retention off.
    #[arg(long, default_value_t = 8)]
    pub retention_days: u64,
    /// Longest wait, in milliseconds, between two attempts of start-up validation or webhook upkeep while a vendor
    /// is failing (capped exponential backoff with full jitter from 500 ms; the receiver keeps accepting
    /// meanwhile).
    #[arg(long, default_value_t = 60_000)]
    pub retry_max_ms: u64,
    /// The operator console and `/metrics` (`--console-listen`).
    #[command(flatten)]
    pub console: console::ConsoleArgs,
}

impl ServeArgs {
    /// [`ServeArgs::retry_max_ms`] as a duration.
    #[must_use]
    pub fn retry_max(&self) -> Duration {
        Duration::from_millis(self.retry_max_ms.max(1))
    }
}

/// Starts `serve`'s retention task: every hour, done rows (and their step journal) older than `days` are purged
/// and echo hashes and watermarks not written for as long are compacted (`Store::purge_done`, `Store::compact`).
/// `None` when `days` is 0.
#[must_use]
pub fn spawn_retention(store: Store, days: u64) -> Option<tokio::task::JoinHandle<()>> {
    if days == 0 {
        return None;
    }
    let keep = Duration::from_secs(days * 86_400);
    Some(tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(3600));
        loop {
            every.tick().await;
            match (store.purge_done(keep).await, store.compact(keep).await) {
                (Ok(done), Ok(c)) => {
                    tracing::info!(done, hashes = c.hashes, watermarks = c.watermarks, "retention: purged");
                }
                (Err(e), _) | (_, Err(e)) => tracing::warn!(error = %e, "retention pass failed; next in an hour"),
            }
        }
    }))
}

/// Starts `tracing` output on stderr (`RUST_LOG` overrides `default_filter`).
pub fn init_tracing(default_filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    // colours only on a terminal: log files and journald get plain text
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_ansi(ansi).with_writer(std::io::stderr).try_init();
}

/// Opens the store named by `db` (migrations are applied on open).
///
/// # Errors
/// When the database cannot be opened or migrated.
pub async fn open_store(db: &DbArgs) -> anyhow::Result<Store> {
    let url = &db.database;
    let store = if url.starts_with("postgres://") || url.starts_with("postgresql://") || url.starts_with("sqlite:") {
        Store::connect(url, StoreOptions::default()).await
    } else {
        Store::open_sqlite(url, StoreOptions::default()).await
    };
    store.with_context(|| format!("opening the store at {}", redact_url(url)))
}

/// `url` with any password replaced by `***`.
#[must_use]
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_owned(),
    }
}

/// A token from an environment variable, with a clear error when it is missing.
///
/// # Errors
/// When the variable is unset or empty.
pub fn env_token(name: &str) -> anyhow::Result<api_core::Token> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => Ok(api_core::Token::new(v.trim())),
        _ => anyhow::bail!("environment variable {name} is not set (tokens are never read from config files)"),
    }
}

/// `[kommo.oauth]` (in `kommo-productive`: `[serve.kommo_oauth]`): run the Kommo client on an OAuth
/// integration's tokens instead of a long-lived token. The tokens live in the store (`oauth_tokens`, key
/// `kommo:<account host>`), shared by every `serve` process on it: Kommo's refresh tokens are single-use, and the
/// store's compare-and-swap and refresh claim make sure each is sent to Kommo once, whichever process refreshes.
/// On the first start the store has no tokens: they are seeded from the refresh token in `refresh_token_env`
/// (only when the store has none, so a restart never puts a spent token back). The client secret comes from
/// `client_secret_env`.
#[derive(Debug, Clone, serde::Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct KommoOAuthConfig {
    /// The integration's id (Kommo: Settings → Integrations → your integration → Keys).
    pub client_id: String,
    /// The integration's redirect URI, exactly as registered.
    pub redirect_uri: String,
    /// Env var holding the client secret.
    #[serde(default = "client_secret_env")]
    pub client_secret_env: String,
    /// Env var holding a refresh token (from the code exchange) to seed an empty store with.
    #[serde(default = "refresh_token_env")]
    pub refresh_token_env: String,
}

fn client_secret_env() -> String {
    "KOMMO_CLIENT_SECRET".into()
}
fn refresh_token_env() -> String {
    "KOMMO_REFRESH_TOKEN".into()
}

/// Reads a `serve` config file whose `[kommo.oauth]` table is optional: the flow's config, parsed by `parse` from
/// the rest of the file, and that table.
///
/// # Errors
/// When the file cannot be read, is not TOML, or either part does not parse.
pub fn load_config_with_kommo_oauth<C, E>(
    args: &ServeArgs,
    parse: impl FnOnce(&str) -> Result<C, E>,
) -> anyhow::Result<(C, Option<KommoOAuthConfig>)>
where
    E: std::error::Error + Send + Sync + 'static,
{
    let path = args.config.display();
    let text = std::fs::read_to_string(&args.config).with_context(|| format!("reading {path}"))?;
    let mut table: toml::Table = toml::from_str(&text).with_context(|| format!("parsing {path}"))?;
    let oauth = take_kommo_oauth(&mut table, "kommo")?;
    let config = parse(&toml::to_string(&table)?).with_context(|| format!("parsing {path}"))?;
    Ok((config, oauth))
}

/// Removes `[<section>.oauth]` from a parsed config file and returns it (the flows' own config types do not know
/// it).
///
/// # Errors
/// When the table does not have the shape of [`KommoOAuthConfig`].
pub fn take_kommo_oauth(table: &mut toml::Table, section: &str) -> anyhow::Result<Option<KommoOAuthConfig>> {
    let Some(toml::Value::Table(t)) = table.get_mut(section) else { return Ok(None) };
    match t.remove("oauth") {
        Some(v) => Ok(Some(v.try_into().with_context(|| format!("the [{section}.oauth] table"))?)),
        None => Ok(None),
    }
}

/// The Kommo client of a `serve` process: the account at `base_url`, its requests drawn from the budget shared
/// through `store` ([`shared_budget`], the account's whole `per_second`), authenticated by [`kommo_auth`].
///
/// # Errors
/// As [`kommo_auth`], or when the client cannot be built.
pub async fn kommo_client(
    base_url: &str,
    per_second: u32,
    oauth: Option<&KommoOAuthConfig>,
    store: &Store,
    token_env: &str,
) -> anyhow::Result<kommo_api::Client> {
    let builder =
        kommo_api::Client::builder().base_url(base_url).rate_budget(shared_budget(store, "kommo", per_second));
    Ok(kommo_auth(builder, base_url, oauth, store, token_env).await?.build()?)
}

/// Authenticates a Kommo client builder: with `oauth`, an OAuth session over the store's shared token set
/// (seeded from the environment when empty, see [`KommoOAuthConfig`]); without it, the long-lived token in the
/// env var `token_env`.
///
/// # Errors
/// A missing env var, a bad base URL, or a store error while seeding.
pub async fn kommo_auth(
    builder: kommo_api::ClientBuilder,
    base_url: &str,
    oauth: Option<&KommoOAuthConfig>,
    store: &Store,
    token_env: &str,
) -> anyhow::Result<kommo_api::ClientBuilder> {
    let Some(o) = oauth else { return Ok(builder.long_lived_token(env_token(token_env)?)) };
    let host = url::Url::parse(base_url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_else(|| base_url.to_owned());
    let tokens = store.token_store(format!("kommo:{host}"));
    if api_core::oauth::TokenStore::load(&tokens).await?.is_none() {
        let refresh = env_token(&o.refresh_token_env)
            .context("the store holds no Kommo OAuth tokens yet; seed them with a refresh token")?;
        let seed = api_core::oauth::TokenSet {
            access_token: api_core::Token::new(""),
            refresh_token: Some(refresh),
            expires_at: Some(0),
        };
        if tokens.seed(&seed).await? {
            tracing::info!(key = tokens.key(), "Kommo OAuth tokens seeded from {}", o.refresh_token_env);
        }
    }
    let app = kommo_api::oauth::KommoOAuth::new(
        base_url,
        o.client_id.clone(),
        env_token(&o.client_secret_env)?,
        o.redirect_uri.clone(),
    )?;
    Ok(builder.oauth(app.session(std::sync::Arc::new(tokens))))
}

/// Prints the operator status of `store`.
///
/// # Errors
/// When the store cannot be read.
pub async fn print_status(store: &Store) -> anyhow::Result<()> {
    print!("{}", render_status(store).await?);
    Ok(())
}

/// The operator's status report: depth per source and state, queue lag, events skipped on purpose (per source
/// and reason), the background components of every `serve` (validation, webhook upkeep: state, attempts, last
/// error) and the first dead letters.
///
/// # Errors
/// When the store cannot be read.
pub async fn render_status(store: &Store) -> anyhow::Result<String> {
    use std::fmt::Write as _;
    let status = store.status().await?;
    let mut out = String::new();
    writeln!(out, "{:<28} {:<8} {:>8}", "source", "state", "events")?;
    for ((source, state), n) in &status.depth {
        writeln!(out, "{source:<28} {:<8} {n:>8}", state.as_str())?;
    }
    match status.oldest_due_age {
        Some(age) => writeln!(out, "oldest due event waiting: {}", human(age))?,
        None => writeln!(out, "nothing waiting")?,
    }
    let skipped: i64 = status.skipped.values().sum();
    writeln!(out, "skipped on purpose (done, nothing applied): {skipped}")?;
    let mut reasons: Vec<_> = status.skipped.iter().collect();
    reasons.sort_by(|a, b| b.1.cmp(a.1).then_with(|| a.0.cmp(b.0)));
    for ((source, reason), n) in reasons.iter().take(20) {
        writeln!(out, "  {n:>8}  {source:<20} {reason}")?;
    }
    if reasons.len() > 20 {
        writeln!(out, "  … and {} more reasons", reasons.len() - 20)?;
    }
    let health = store.health().await?;
    if !health.is_empty() {
        writeln!(out, "components:")?;
        let now = chrono::Utc::now();
        let age = |t: chrono::DateTime<chrono::Utc>| human((now - t).to_std().unwrap_or_default());
        for c in &health {
            write!(
                out,
                "  {:<24} {:<24} {:<8} since {} ago, updated {} ago",
                c.component,
                c.instance,
                c.state.as_str(),
                age(c.since),
                age(c.updated_at)
            )?;
            if c.attempts > 0 {
                write!(out, ", attempts={}", c.attempts)?;
            }
            if let Some(e) = &c.last_error {
                write!(out, ", last error: {}", e.replace('\n', " "))?;
            }
            writeln!(out)?;
        }
    }
    writeln!(out, "dead letters: {}", status.dead)?;
    if status.dead > 0 {
        for row in store.list(State::Dead, 20).await? {
            writeln!(
                out,
                "  dead #{} {} {} attempts={} error={}",
                row.id,
                row.source,
                row.dedup_key,
                row.attempts,
                row.last_error.as_deref().unwrap_or("-")
            )?;
        }
        writeln!(out, "replay one with: replay <id>")?;
    }
    Ok(out)
}

/// Replays dead letter `id` and says what happened.
///
/// # Errors
/// When the store cannot be written.
pub async fn replay(store: &Store, id: i64) -> anyhow::Result<()> {
    if store.replay(id).await? {
        println!("event #{id} is queued again; a running `serve` will process it");
    } else {
        anyhow::bail!("event #{id} is not a dead letter (see `status`)");
    }
    Ok(())
}

/// Deletes done events finished more than `days` days ago ([`Store::purge_done`]): the `purge` subcommand and the
/// console's purge form. Returns how many were deleted.
///
/// # Errors
/// When `days` is 0 (events just finished: their dedup keys must outlive the senders' retries) or the store
/// cannot be written.
pub async fn purge_done_events(store: &Store, days: u64) -> anyhow::Result<u64> {
    anyhow::ensure!(
        days > 0,
        "purging events finished less than a day ago is refused: their dedup keys must outlive the senders' retries"
    );
    Ok(store.purge_done(Duration::from_secs(days.saturating_mul(86_400))).await?)
}

/// `purge`: runs [`purge_done_events`] and says what happened.
///
/// # Errors
/// As [`purge_done_events`].
pub async fn purge(store: &Store, days: u64) -> anyhow::Result<()> {
    let n = purge_done_events(store, days).await?;
    println!("purged {n} done events finished more than {days} days ago");
    Ok(())
}

/// A duration for people.
#[must_use]
pub fn human(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    } else if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{}.{:03}s", s, d.subsec_millis())
    }
}

/// Narration for demos: numbered steps and checks, printed to stdout.
#[derive(Debug, Default)]
pub struct Narrator {
    step: u32,
    checks_failed: u32,
}

impl Narrator {
    /// A new narrator.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Announces the next step.
    pub fn step(&mut self, text: &str) {
        self.step += 1;
        println!("\n[{}] {text}", self.step);
    }

    /// Prints a detail line.
    pub fn say(&self, text: &str) {
        println!("    {text}");
    }

    /// Prints a check; a failed check makes [`Narrator::finish`] fail.
    pub fn check(&mut self, ok: bool, text: &str) {
        if ok {
            println!("    ✔ {text}");
        } else {
            self.checks_failed += 1;
            println!("    ✘ {text}");
        }
    }

    /// Prints a two-column summary table and fails if any check failed.
    ///
    /// # Errors
    /// When a check failed.
    pub fn finish(&self, rows: &[(&str, String)]) -> anyhow::Result<()> {
        let width = rows.iter().map(|(k, _)| k.chars().count()).max().unwrap_or(0);
        println!("\nSummary");
        println!("{}", "-".repeat(width + 14));
        for (k, v) in rows {
            println!("{k:<width$}  {v:>10}");
        }
        println!("{}", "-".repeat(width + 14));
        if self.checks_failed > 0 {
            anyhow::bail!("{} check(s) failed", self.checks_failed);
        }
        println!("all checks passed");
        Ok(())
    }
}

/// Headroom added to a vendor's one-second window before it is divided among the allowed requests by
/// [`shared_budget`]: `n` requests are spaced `(1 s + margin) / n` apart, so up to this much difference in network and
/// scheduling delay between requests never puts `n + 1` arrivals in one second at a vendor that counts a strict
/// sliding second (Kommo, Airtable). 80 ms: Kommo 7/s → one request every 155 ms (6.45/s, 92 % of the line),
/// Airtable 5/s per base → every 216 ms (4.63/s, 93 %). Measured with the `scaleout` bench (examples README).
pub const SHARED_RATE_MARGIN: Duration = Duration::from_millis(80);

/// The rate budget of `namespace` (`"kommo"`, `"airtable"`, `"productive"`, `"calendly"`, `"customerio"`) shared by
/// every `serve` process on `store`: `per_second` is the vendor's whole limit per key (one Kommo account, one
/// Airtable base, …), never a share per process; one process's 429 holds all of them off. `0` disables limiting.
#[must_use]
pub fn shared_budget(store: &Store, namespace: &str, per_second: u32) -> std::sync::Arc<dyn api_core::RateBudget> {
    let inner: std::sync::Arc<dyn api_core::RateBudget> = if per_second == 0 {
        std::sync::Arc::new(api_core::RateLimiter::unlimited())
    } else {
        std::sync::Arc::new(
            store.rate_budget(namespace, sync_core::StoreBudget::per_second(per_second, SHARED_RATE_MARGIN)),
        )
    };
    std::sync::Arc::new(Counted { inner, count: budget_counter(namespace) })
}

/// Requests this process has drawn from the budget of `namespace` (`"kommo"`, `"airtable"`, …) so far, over every
/// budget [`shared_budget`] made for it: what `backfill` shows as the vendor budget used.
#[must_use]
pub fn budget_used(namespace: &str) -> u64 {
    budget_counter(namespace).load(std::sync::atomic::Ordering::Relaxed)
}

fn budget_counter(namespace: &str) -> std::sync::Arc<std::sync::atomic::AtomicU64> {
    static COUNTERS: std::sync::OnceLock<
        std::sync::Mutex<std::collections::HashMap<String, std::sync::Arc<std::sync::atomic::AtomicU64>>>,
    > = std::sync::OnceLock::new();
    let map = COUNTERS.get_or_init(Default::default);
    map.lock().unwrap_or_else(std::sync::PoisonError::into_inner).entry(namespace.to_owned()).or_default().clone()
}

type BoxFut<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// A budget that counts the slots it grants (see [`budget_used`]).
#[derive(Debug)]
struct Counted {
    inner: std::sync::Arc<dyn api_core::RateBudget>,
    count: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl api_core::RateBudget for Counted {
    fn acquire<'a>(&'a self, key: &'a str) -> BoxFut<'a, Result<(), api_core::ratelimit::BudgetError>> {
        Box::pin(async move {
            self.inner.acquire(key).await?;
            self.count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Ok(())
        })
    }

    fn pause<'a>(&'a self, key: &'a str, wait: Duration) -> BoxFut<'a, Result<(), api_core::ratelimit::BudgetError>> {
        self.inner.pause(key, wait)
    }

    fn held<'a>(&'a self, key: &'a str) -> BoxFut<'a, Result<Option<Duration>, api_core::ratelimit::BudgetError>> {
        self.inner.held(key)
    }
}

pub mod bench;
pub mod chaos;
pub mod console;
pub mod startup;

/// The Airtable side of the `kommo-airtable` example: the "Client Onboarding" table that the shipped config
/// (`examples/config/kommo-airtable.toml`) maps, created in a fake base for the demo, the CLI tests and the
/// chaos soak.
pub mod kommo_airtable_fixture {
    use airtable_client::fake::{FakeBase, FieldSpec};

    /// The table's name.
    pub const TABLE: &str = "Client Onboarding";

    /// Adds the table, with every field the shipped mapping names, to `base`.
    pub fn add_onboarding_table(base: &FakeBase) {
        let _ = base.add_table_with(
            TABLE,
            vec![
                FieldSpec::new("Deal Name", "singleLineText"),
                FieldSpec::new("Kommo Deal ID", "singleLineText"),
                FieldSpec::single_select("Status", &["Not Started", "In Progress", "Done"]),
                FieldSpec::new("Deal Value", "number"),
                FieldSpec::new("Responsible", "singleLineText"),
                FieldSpec::new("Client Name", "singleLineText"),
                FieldSpec::new("Email", "email"),
                FieldSpec::new("Phone", "phoneNumber"),
                FieldSpec::new("Company", "singleLineText"),
                FieldSpec::new("Next Contact Date", "date"),
            ],
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_database_passwords() {
        assert_eq!(redact_url("postgres://app:hunter2@db:5432/sync"), "postgres://app:***@db:5432/sync");
        assert_eq!(redact_url("sync.db"), "sync.db");
    }

    #[test]
    fn human_durations() {
        assert_eq!(human(Duration::from_millis(1500)), "1.500s");
        assert_eq!(human(Duration::from_secs(125)), "2m05s");
        assert_eq!(human(Duration::from_secs(3725)), "1h02m");
    }

    #[test]
    fn missing_env_token_is_a_clear_error() {
        let err = env_token("CRM_SYNC_KIT_SURELY_UNSET_VAR").unwrap_err().to_string();
        assert!(err.contains("CRM_SYNC_KIT_SURELY_UNSET_VAR"));
    }
}
