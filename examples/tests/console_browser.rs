//! The operator console in a real browser (issue 24): headless Chromium (Debian's `chromium`; `.ci/run` installs
//! it) driven over the Chrome DevTools Protocol against a running `kommo-customerio serve` whose store was seeded
//! with dead letters. It loads the page with basic auth, checks that the figures shown equal the store's and that
//! the signature header and payload secret are redacted, clicks "Replay", sees the dead letter leave the list
//! (and the worker process it), reads `/metrics` of the same process, and saves screenshots under `target/`
//! (`target/console.png`, `target/console-after-replay.png`; the first is `examples/docs/console.png`).
//!
//! Without Chromium the browser test fails under CI (`CI` set: `.ci/run` installs it first) and says loudly that it
//! was skipped elsewhere, so `cargo test --workspace` works on a fresh machine (as the PostgreSQL tests do without
//! their URL). Set `CHROMIUM` to its path if it is not `/usr/bin/chromium`.
#![allow(missing_docs, clippy::print_stdout, clippy::print_stderr)]

use std::io::{BufRead as _, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine as _;
use customerio_api::fake::FakeCustomerIo;
use customerio_api::{Identifier, Metric};
use futures::{SinkExt as _, StreamExt as _};
use kommo_api::fake::FakeKommo;
use kommo_api::{EntityType, FieldType};
use serde_json::{Value, json};
use sync_core::{NewEvent, State, Store, StoreOptions};
use tokio_tungstenite::tungstenite::Message;

mod common;
use common::{Cli, free_port, interrupt, wait_components_ready, wait_for};

const BIN: &str = env!("CARGO_BIN_EXE_kommo-customerio");
const USER: &str = "ops";
const PASSWORD: &str = "browser-test-password";
const PAYLOAD_SECRET: &str = "whsec-browser-never-shown";

fn chromium_path() -> PathBuf {
    std::env::var_os("CHROMIUM").map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from)
}

/// Whether Chromium is there; without it, a failure under CI and a loud skip elsewhere.
fn chromium_available() -> bool {
    let path = chromium_path();
    if path.exists() {
        return true;
    }
    let message = format!(
        "Chromium is required by the console's browser test and was not found at {} (install Debian's `chromium` \
         package: `apt-get install -y chromium`, as .ci/run does, or set CHROMIUM to its path)",
        path.display()
    );
    assert!(std::env::var_os("CI").is_none(), "{message}");
    // straight to stderr, past the test harness's capture, so the skip shows in a passing run
    let _ = std::io::Write::write_all(
        &mut std::io::stderr(),
        format!("SKIPPED the console's browser test: {message}\n").as_bytes(),
    );
    false
}

/// The workspace's target directory (`CARGO_TARGET_TMPDIR` is `<target>/tmp`).
fn target_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).parent().unwrap().to_owned()
}

/// Headless Chromium with a DevTools WebSocket; killed on drop.
struct Browser {
    child: Child,
    _profile: tempfile::TempDir,
    ws_url: String,
}

impl Browser {
    fn launch() -> Browser {
        let profile = tempfile::tempdir().unwrap();
        let mut child = Command::new(chromium_path())
            .args([
                "--headless",
                "--no-sandbox", // CI runs as root
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-extensions",
                "--disable-background-networking",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
                "--hide-scrollbars",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting chromium");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("DevTools listening on ")
                    && let Some(tx) = tx.take()
                {
                    let _ = tx.send(url.trim().to_owned());
                }
            }
        });
        let ws_url = rx.recv_timeout(Duration::from_secs(60)).expect("chromium did not print its DevTools address");
        Browser { child, _profile: profile, ws_url }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A minimal CDP client: one page session over the browser's WebSocket (flattened sessions).
struct Page {
    ws: Ws,
    session: String,
    next_id: u64,
}

impl Page {
    async fn open(browser: &Browser) -> Page {
        let (ws, _) = tokio_tungstenite::connect_async(browser.ws_url.as_str()).await.unwrap();
        let mut page = Page { ws, session: String::new(), next_id: 0 };
        let target = page.call_browser("Target.createTarget", json!({"url": "about:blank"})).await;
        let target_id = target["targetId"].as_str().unwrap().to_owned();
        let attached =
            page.call_browser("Target.attachToTarget", json!({"targetId": target_id, "flatten": true})).await;
        page.session = attached["sessionId"].as_str().unwrap().to_owned();
        page
    }

    async fn send(&mut self, method: &str, params: Value, session: Option<String>) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut msg = json!({"id": id, "method": method, "params": params});
        if let Some(s) = session {
            msg["sessionId"] = Value::String(s);
        }
        self.ws.send(Message::text(msg.to_string())).await.unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let next = tokio::time::timeout_at(deadline, self.ws.next()).await;
            let frame = next.unwrap_or_else(|_| panic!("no answer to {method}")).unwrap().unwrap();
            let Message::Text(text) = frame else { continue };
            let v: Value = serde_json::from_str(&text).unwrap();
            if v["id"].as_u64() == Some(id) {
                assert!(v.get("error").is_none(), "{method} failed: {v}");
                return v["result"].clone();
            }
            // events and other answers are not needed
        }
    }

    async fn call_browser(&mut self, method: &str, params: Value) -> Value {
        self.send(method, params, None).await
    }

    async fn call(&mut self, method: &str, params: Value) -> Value {
        let s = self.session.clone();
        self.send(method, params, Some(s)).await
    }

    /// Evaluates `expression` in the page and returns its value (JSON).
    async fn eval(&mut self, expression: &str) -> Value {
        let r = self.call("Runtime.evaluate", json!({"expression": expression, "returnByValue": true})).await;
        assert!(r.get("exceptionDetails").is_none(), "{expression}: {r}");
        r["result"]["value"].clone()
    }

    /// Waits until the document is loaded and `ready` (a JS expression) is true.
    async fn wait(&mut self, what: &str, ready: &str) {
        let expr = format!("document.readyState === 'complete' && !!({ready})");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while tokio::time::Instant::now() < deadline {
            if self.eval(&expr).await == Value::Bool(true) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let body = self.eval("document.body ? document.body.innerText : '(no body)'").await;
        panic!("timed out waiting for {what}; the page says:\n{body}");
    }

    async fn screenshot(&mut self, name: &str) -> PathBuf {
        let shot = self.call("Page.captureScreenshot", json!({"format": "png", "captureBeyondViewport": false})).await;
        let png = base64::engine::general_purpose::STANDARD.decode(shot["data"].as_str().unwrap()).unwrap();
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
        let path = target_dir().join(name);
        std::fs::write(&path, png).unwrap();
        println!("screenshot: {}", path.display());
        path
    }
}

/// The figures the page shows, read from the DOM.
const READ_FIGURES: &str = r"(() => {
  const rows = {};
  for (const tr of document.querySelectorAll('#sources tbody tr')) {
    const cell = k => Number(tr.querySelector(`[data-k=${k}]`).textContent);
    rows[tr.dataset.source] = {queued: cell('queued'), retrying: cell('retrying'), running: cell('running'),
      done: cell('done'), skipped: cell('skipped'), dead: cell('dead')};
  }
  return {
    dead: Number(document.getElementById('dead-count').textContent),
    ids: [...document.querySelectorAll('article.dead')].map(a => Number(a.dataset.id)),
    rows,
    html: document.documentElement.outerHTML,
  };
})()";

/// Dead-letters `n` Customer.io "delivered" reports (a metric the flow skips, so a replayed one finishes) in the
/// SQLite store of `cli`, before `serve` starts; returns their ids.
async fn seed_dead_letters(cli: &Cli, cio: &FakeCustomerIo, n: usize) -> Vec<i64> {
    let store = Store::open_sqlite(&cli.database, StoreOptions::default()).await.unwrap();
    let who = Identifier::email("ada@client.example");
    let mut ids = Vec::new();
    for i in 0..n {
        let hook = cio.webhook(&who, Metric::Delivered).build();
        // a secret inside the payload too, as some senders put one there: it must not be shown
        let mut body: Value = serde_json::from_slice(&hook.body).unwrap();
        body["data"]["webhook_secret"] = Value::String(PAYLOAD_SECRET.to_owned());
        let mut event = NewEvent::new("customerio", format!("seeded-{i}"), body.to_string());
        for (k, v) in &hook.headers {
            event.headers.insert(k.to_ascii_lowercase(), v.clone());
        }
        store.ingest(&event).await.unwrap();
        let claimed = store.claim("seed", &["customerio".to_owned()], 10, Duration::from_secs(60)).await.unwrap();
        for e in claimed {
            let reason = format!("Kommo answered 400: field \"Email unsubscribed\" not found (seeded #{i})");
            assert_eq!(store.fail(&e.lease, &reason).await.unwrap(), sync_core::Fence::Applied);
            ids.push(e.id);
        }
    }
    store.close().await;
    ids
}

fn signature_of(hook_headers: &[(String, String)]) -> String {
    hook_headers.iter().find(|(k, _)| k.eq_ignore_ascii_case("x-cio-signature")).unwrap().1.clone()
}

/// The fakes and the `kommo-customerio` CLI configured against them (the shipped config), with `extra_env`.
async fn world(extra_env: &[(&str, &str)]) -> (FakeKommo, FakeCustomerIo, Cli) {
    let kommo = FakeKommo::start().await.unwrap();
    let cio = FakeCustomerIo::start().await.unwrap();
    let _ = kommo.seed_custom_field(EntityType::Contacts, "Email unsubscribed", FieldType::Checkbox, None, &[]);
    let _ = kommo.seed_user("Rita Responsible", "rita@example.com");
    let _ = kommo.seed_pipeline("Sales", &["New", "In contact", "Proposal sent"]);
    let shipped = include_str!("../config/kommo-customerio.toml");
    let c = cio.config();
    let text = shipped
        .replace("https://yourcompany.kommo.com", kommo.base_url().as_str().trim_end_matches('/'))
        .replace("# account_id = 12345678", &format!("account_id = {}", kommo.account_id()))
        .replace("\"your-site-id\"", &format!("\"{}\"", c.site_id))
        .replace("[customerio]\n", &format!("[customerio]\nbase_url = \"{}\"\n", cio.base_url()));
    let mut env = vec![
        ("KOMMO_TOKEN", "fake-kommo-token"),
        ("KOMMO_WEBHOOK_SECRET", "browser-test-secret"),
        ("CUSTOMERIO_TRACK_API_KEY", c.track_api_key.as_str()),
        ("CUSTOMERIO_WEBHOOK_SIGNING_KEY", c.webhook_signing_key.as_str()),
    ];
    env.extend_from_slice(extra_env);
    let cli = Cli::new(BIN, &text, &env);
    (kommo, cio, cli)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_refuses_a_console_on_a_public_address_without_credentials() {
    let (_kommo, _cio, cli) = world(&[]).await;
    let out = cli
        .run_with("serve", &["--listen", &format!("127.0.0.1:{}", free_port()), "--console-listen", "0.0.0.0:0"])
        .await;
    assert!(!out.status.success(), "serve started a public console without credentials");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("without credentials") && stderr.contains("SYNC_CONSOLE_TOKEN"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_in_headless_chromium_shows_the_store_and_replays_a_dead_letter() {
    if !chromium_available() {
        return; // said loudly above; under CI this is a failure instead
    }
    let (_kommo, cio, cli) = world(&[("SYNC_CONSOLE_BASIC_AUTH", &format!("{USER}:{PASSWORD}"))]).await;
    let ids = seed_dead_letters(&cli, &cio, 3).await;
    assert_eq!(ids.len(), 3);
    let signature =
        signature_of(&cio.webhook(&Identifier::email("ada@client.example"), Metric::Delivered).build().headers);

    // serve, with the console on its own port
    let (port, console_port) = (free_port(), free_port());
    let log = cli.dir.path().join("serve.log");
    let child = cli
        .command("serve")
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--console-listen")
        .arg(format!("127.0.0.1:{console_port}"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let http = reqwest::Client::new();
    let console = format!("http://127.0.0.1:{console_port}");
    wait_for("the console", 120, async || {
        http.get(&console).basic_auth(USER, Some(PASSWORD)).send().await.is_ok_and(|r| r.status().is_success())
    })
    .await;
    wait_components_ready(port, child.id(), &["validation"]).await;

    let browser = tokio::task::spawn_blocking(Browser::launch).await.unwrap();
    let mut page = Page::open(&browser).await;
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"));
    page.call("Network.enable", json!({})).await;
    page.call("Network.setExtraHTTPHeaders", json!({"headers": {"Authorization": format!("Basic {auth}")}})).await;
    page.call("Page.enable", json!({})).await;
    page.call(
        "Emulation.setDeviceMetricsOverride",
        json!({"width": 1100, "height": 900, "deviceScaleFactor": 1, "mobile": false}),
    )
    .await;
    page.call("Page.navigate", json!({"url": format!("{console}/")})).await;
    page.wait("the console page", "document.getElementById('dead-count')").await;

    // the numbers shown are the store's
    let shown = page.eval(READ_FIGURES).await;
    let store = Store::open_sqlite(&cli.database, StoreOptions::default()).await.unwrap();
    let status = store.status().await.unwrap();
    let figures = store.source_figures(Duration::from_secs(3600)).await.unwrap();
    assert_eq!(shown["dead"], json!(status.dead), "{shown}");
    assert_eq!(shown["ids"], json!(ids));
    for (source, f) in &figures {
        let row = &shown["rows"][source];
        assert_eq!(
            (row["queued"].as_i64(), row["retrying"].as_i64(), row["done"].as_i64(), row["skipped"].as_i64()),
            (Some(f.queued), Some(f.retrying), Some(f.done), Some(f.skipped)),
            "{source}: {row}"
        );
        assert_eq!(row["dead"].as_i64(), Some(f.dead), "{source}: {row}");
    }
    assert_eq!(shown["rows"]["customerio"]["dead"], json!(3));
    assert!(shown["rows"]["kommo"].is_object(), "every source of the flow is listed: {shown}");
    // redaction, in what the browser received
    let html = shown["html"].as_str().unwrap();
    assert!(!html.contains(&signature) && !html.contains(PAYLOAD_SECRET), "a secret is shown");
    assert!(html.contains("x-cio-signature: [redacted]"));
    // open the first dead letter's headers and payload for the screenshot
    page.eval("document.querySelectorAll('article.dead:first-of-type details').forEach(d => d.open = true); true")
        .await;
    page.call(
        "Emulation.setDeviceMetricsOverride",
        json!({"width": 1100, "height": 1700, "deviceScaleFactor": 1, "mobile": false}),
    )
    .await;
    let before = page.screenshot("console.png").await;
    // as on a phone
    page.call(
        "Emulation.setDeviceMetricsOverride",
        json!({"width": 412, "height": 915, "deviceScaleFactor": 2, "mobile": true}),
    )
    .await;
    let _ = page.screenshot("console-phone.png").await;
    let overflow = page.eval("document.documentElement.scrollWidth <= window.innerWidth").await;
    assert_eq!(overflow, json!(true), "the page scrolls sideways on a phone (only tables may)");
    page.call(
        "Emulation.setDeviceMetricsOverride",
        json!({"width": 1100, "height": 900, "deviceScaleFactor": 1, "mobile": false}),
    )
    .await;

    // click "Replay" on the first dead letter
    let first = ids[0];
    let clicked =
        page.eval(&format!("document.querySelector('article.dead[data-id=\"{first}\"] button').click(); true")).await;
    assert_eq!(clicked, json!(true));
    page.wait(
        "the page after the replay",
        &format!(
            "location.search === '?replayed={first}' && !document.querySelector('article.dead[data-id=\"{first}\"]')"
        ),
    )
    .await;
    let after = page.eval(READ_FIGURES).await;
    assert_eq!(after["dead"], json!(2), "{after}");
    assert_eq!(after["ids"], json!(&ids[1..]));
    assert!(after["html"].as_str().unwrap().contains(&format!("Event #{first} is queued again")));
    let _ = page.screenshot("console-after-replay.png").await;
    // the store agrees, and the running worker finishes the replayed event (the flow skips "delivered")
    assert_eq!(store.status().await.unwrap().dead, 2);
    wait_for("the replayed event to be processed", 60, async || {
        store.get(first).await.unwrap().is_some_and(|r| r.state == State::Done)
    })
    .await;
    let row = store.get(first).await.unwrap().unwrap();
    assert!(row.skip_reason.as_deref() == Some("metric not handled"), "{row:?}");

    // a signed delivery and a path naming no route, for the receiver's metrics
    let hooks = reqwest::Url::parse(&format!("http://127.0.0.1:{port}/hooks/customerio")).unwrap();
    let delivery = cio.webhook(&Identifier::email("ada@client.example"), Metric::Delivered).build();
    assert_eq!(delivery.deliver(&hooks).await.unwrap(), 200);
    let r = http.post(format!("http://127.0.0.1:{port}/hooks/nosuchsource")).body("{}").send().await.unwrap();
    assert_eq!(r.status(), 404);

    // /metrics of the same process: ingest, outcomes, handler latency, vendor HTTP statuses, store gauges
    let metrics = http.get(format!("{console}/metrics")).basic_auth(USER, Some(PASSWORD)).send().await.unwrap();
    assert_eq!(metrics.status(), 200);
    let text = metrics.text().await.unwrap();
    for needle in [
        "sync_ingest_requests_total{source=\"customerio\",status=\"200\"} 1",
        "sync_ingest_requests_total{source=\"unknown\",status=\"404\"} 1",
        "sync_ingest_events_total{source=\"customerio\",result=\"accepted\"} 1",
        "sync_ingest_duration_seconds_bucket{source=\"customerio\"",
        "sync_outcomes_total{source=\"customerio\",outcome=\"skipped\"}",
        "sync_handler_duration_seconds_bucket{source=\"customerio\"",
        "api_http_responses_total{host=\"127.0.0.1\",status=\"200\"}",
        "api_limiter_wait_seconds_bucket{host=\"127.0.0.1\"",
        "sync_queue_depth{source=\"customerio\",state=\"dead\"} 2",
        "sync_dead_letter_rows 2",
    ] {
        assert!(text.contains(needle), "missing `{needle}` in /metrics:\n{text}");
    }
    // the audit line
    drop(page);
    drop(browser);
    interrupt(child, &log).await;
    let log_text = std::fs::read_to_string(&log).unwrap();
    assert!(
        log_text.lines().any(|l| l.contains("audit")
            && l.contains("replay")
            && l.contains(&format!("id={first}"))
            && l.contains("basic:ops")),
        "no audit line for the replay in the log:\n{log_text}"
    );
    println!("before: {}", before.display());
}

/// `purge` (the CLI) and the console's purge form run the same function (`examples::purge_done_events`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_subcommand_deletes_done_events_older_than_the_age() {
    let cli = Cli::new(BIN, "", &[]);
    let clock = std::sync::Arc::new(sync_core::ManualClock::new(chrono::Utc::now() - chrono::Duration::days(10)));
    let store = Store::open_sqlite(&cli.database, StoreOptions::default().clock(clock.clone())).await.unwrap();
    let mut ids = Vec::new();
    for key in ["ten-days-old", "fresh"] {
        store.ingest(&NewEvent::new("kommo", key, "a=1")).await.unwrap();
        let e = store.claim("w", &["kommo".to_owned()], 1, Duration::from_secs(60)).await.unwrap().remove(0);
        assert_eq!(store.complete(&e.lease).await.unwrap(), sync_core::Fence::Applied);
        ids.push(e.id);
        clock.advance(Duration::from_secs(10 * 86_400));
    }
    store.close().await;

    let refused = cli.run_with("purge", &["--older-than-days", "0"]).await;
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("refused"));
    let out = cli.run_with("purge", &["--older-than-days", "8"]).await;
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "purged 1 done events finished more than 8 days ago\n");
    let store = Store::open_sqlite(&cli.database, StoreOptions::default()).await.unwrap();
    assert!(store.get(ids[0]).await.unwrap().is_none(), "the ten-day-old event is purged");
    assert!(store.get(ids[1]).await.unwrap().is_some(), "the fresh one stays");
}
