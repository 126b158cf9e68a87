//! Helpers for the tests that run the example binaries as processes.
#![allow(dead_code, unreachable_pub, clippy::print_stderr)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

/// One example binary, configured like an operator would: a config file and a database in a temp dir, tokens in
/// the environment.
pub struct Cli {
    bin: &'static str,
    env: Vec<(String, String)>,
    /// Holds the config, the SQLite database and the logs.
    pub dir: tempfile::TempDir,
    /// The config file.
    pub config: PathBuf,
    /// `--database`: an SQLite file in `dir` unless a test points it elsewhere.
    pub database: String,
}

impl Cli {
    /// Writes `config` to a temp dir; `env` are the variables every run gets.
    pub fn new(bin: &'static str, config: &str, env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, config).unwrap();
        let database = dir.path().join("sync.db").display().to_string();
        let env = env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        Self { bin, env, dir, config: path, database }
    }

    /// The command line for a subcommand (`--config` where it takes one, and `--database`).
    pub fn command(&self, sub: &str) -> Command {
        let mut cmd = Command::new(self.bin);
        cmd.arg(sub).envs(self.env.iter().map(|(k, v)| (k, v))).env("RUST_LOG", "info").env_remove("SYNC_DATABASE_URL");
        if !matches!(sub, "status" | "replay" | "purge") {
            cmd.arg("--config").arg(&self.config);
        }
        cmd.arg("--database").arg(&self.database);
        cmd
    }

    /// Runs a subcommand to completion (off the runtime, so in-process fakes keep answering).
    pub async fn run(&self, sub: &str) -> Output {
        self.run_with(sub, &[]).await
    }

    /// Runs a subcommand with extra arguments.
    pub async fn run_with(&self, sub: &str, args: &[&str]) -> Output {
        let mut cmd = self.command(sub);
        cmd.args(args);
        let out = tokio::task::spawn_blocking(move || cmd.output().unwrap()).await.unwrap();
        if !out.status.success() {
            eprintln!("--- {sub} stderr ---\n{}", String::from_utf8_lossy(&out.stderr));
        }
        out
    }

    /// Starts `serve` on `port`, logging to `<dir>/<log>`, and waits until `/readyz` answers 200.
    pub async fn serve(&self, port: u16, log: &str) -> (Child, PathBuf) {
        let log = self.dir.path().join(log);
        let child = self
            .command("serve")
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let http = reqwest::Client::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
        loop {
            let ready = http.get(format!("http://127.0.0.1:{port}/readyz")).send().await;
            if ready.is_ok_and(|r| r.status().is_success()) {
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(60).collect::<Vec<_>>().into_iter().rev().collect();
                panic!("timed out waiting for readyz on port {port}; the last lines of its log:\n{}", tail.join("\n"));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        (child, log)
    }
}

/// A port that was free a moment ago (the binary binds it itself). Chosen below Linux's ephemeral range
/// (32768–60999): a port the OS hands out for `bind(0)` can be taken meanwhile as the local port of any outgoing
/// connection (to a fake, to PostgreSQL), and `serve` then fails to bind it; ports below the range are only ever
/// taken by an explicit bind. Within 20000–31999, checked free, a different run of ports per test process.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(u16::MAX);
    let start = u16::try_from(std::process::id() % 6_000).unwrap_or(0) * 2;
    let _ = NEXT.compare_exchange(u16::MAX, start, Ordering::SeqCst, Ordering::SeqCst);
    loop {
        let port = 20_000 + NEXT.fetch_add(1, Ordering::SeqCst) % 12_000;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// Polls `cond` every 50 ms for up to `secs` seconds; panics naming `what` if it never holds.
pub async fn wait_for(what: &str, secs: u64, mut cond: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while tokio::time::Instant::now() < deadline {
        if cond().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

/// Sends SIGINT (what Ctrl-C sends) and waits for a clean exit.
pub async fn interrupt(mut child: Child, log: &Path) {
    let status = Command::new("kill").arg("-INT").arg(child.id().to_string()).status().unwrap();
    assert!(status.success());
    let exit = tokio::task::spawn_blocking(move || {
        for _ in 0..600 {
            if let Some(s) = child.try_wait().unwrap() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        None
    })
    .await
    .unwrap();
    let logs = std::fs::read_to_string(log).unwrap_or_default();
    assert!(exit.is_some_and(|s| s.success()), "serve did not exit cleanly on SIGINT: {exit:?}\n{logs}");
    assert!(logs.contains("shutting down"), "{logs}");
}

/// POSTs a Kommo webhook body as Kommo does and returns the status code.
pub async fn post_webhook_to(url: String, body: String) -> u16 {
    kommo_api::fake::post_webhook(&url, &body).await.unwrap().as_u16()
}

/// The texts of a Kommo lead's notes in the fake.
pub fn lead_notes(kommo: &kommo_api::fake::FakeKommo, lead: kommo_api::LeadId) -> Vec<String> {
    kommo
        .notes_for(kommo_api::EntityType::Leads, lead.get())
        .into_iter()
        .filter_map(|n| n.text().map(str::to_owned))
        .collect()
}

/// `GET /readyz` on `port`: the status code and the JSON body (`Null` when it is not JSON).
pub async fn readyz(port: u16) -> (u16, serde_json::Value) {
    let resp = reqwest::get(format!("http://127.0.0.1:{port}/readyz")).await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(serde_json::Value::Null))
}

/// The `/readyz` entry of `component` reported by the process `pid`.
pub fn component(body: &serde_json::Value, name: &str, pid: u32) -> Option<serde_json::Value> {
    let suffix = format!(":{pid}");
    body["components"]
        .as_array()?
        .iter()
        .find(|c| c["component"] == name && c["instance"].as_str().is_some_and(|i| i.ends_with(&suffix)))
        .cloned()
}

/// Waits until `/readyz` on `port` lists every one of `components` as `ready` for the process `pid` (the flow is
/// validated and its webhooks are set up; `serve` answers `/readyz` long before that).
pub async fn wait_components_ready(port: u16, pid: u32, components: &[&str]) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let (_, body) = readyz(port).await;
        if components.iter().all(|c| component(&body, c, pid).is_some_and(|v| v["state"] == "ready")) {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "components {components:?} of {pid} not ready: {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A fresh PostgreSQL schema (migrated once) that several `serve` processes share, from `SYNC_TEST_POSTGRES_URL`.
pub struct PgSchema {
    /// The server URL.
    pub url: String,
    /// The schema.
    pub schema: String,
}

impl PgSchema {
    /// `None`, after printing loudly that the test is skipped, when `SYNC_TEST_POSTGRES_URL` is not set.
    pub async fn create() -> Option<Self> {
        let Ok(url) = std::env::var("SYNC_TEST_POSTGRES_URL") else {
            println!("SKIPPED: SYNC_TEST_POSTGRES_URL is not set; this multi-process PostgreSQL test did not run");
            eprintln!("SKIPPED: SYNC_TEST_POSTGRES_URL is not set; this multi-process PostgreSQL test did not run");
            return None;
        };
        let schema = format!("cli_{}", uuid::Uuid::new_v4().simple());
        let store = sync_core::Store::connect(&url, sync_core::StoreOptions::default().pg_schema(schema.clone()))
            .await
            .unwrap();
        store.close().await;
        Some(Self { url, schema })
    }

    /// The `--database` URL reaching the schema through `search_path`.
    pub fn database(&self) -> String {
        format!("{}{}options[search_path]={}", self.url, if self.url.contains('?') { '&' } else { '?' }, self.schema)
    }

    /// A number from a query on the schema (`{s}` in `sql` stands for the schema name).
    pub async fn count(&self, sql: &str) -> i64 {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(&self.url).await.unwrap();
        let sql = sql.replace("{s}", &self.schema);
        sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).fetch_one(&mut conn).await.unwrap()
    }

    /// Drops the schema.
    pub async fn drop_schema(self) {
        use sqlx::{Connection, Executor};
        let mut conn = sqlx::PgConnection::connect(&self.url).await.unwrap();
        conn.execute(sqlx::AssertSqlSafe(format!("DROP SCHEMA {} CASCADE", self.schema))).await.unwrap();
    }
}
