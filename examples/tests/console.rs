//! The operator console's routes over real HTTP (issue 24): authentication refused without the token, the
//! loopback rules, CSRF-safe replay and purge through the store functions the CLI uses, redaction of signature
//! headers and secrets in payloads, and `/metrics` in Prometheus text format with the store's figures.
#![allow(missing_docs, clippy::print_stdout, clippy::print_stderr)]

use std::sync::Arc;
use std::time::Duration;

use examples::console::{self, ConsoleAuth, ConsoleConfig, ConsoleHandle};
use reqwest::StatusCode;
use sync_core::{ManualClock, NewEvent, State, Store};

const TOKEN: &str = "console-test-token-0123456789";
/// A signature as Customer.io sends it in `X-CIO-Signature` (hex HMAC-SHA256; api-notes/customerio.md, "Reporting
/// webhooks"): it must never be shown.
const SIGNATURE: &str = "4f1e8c0d2b3a495867f0e1d2c3b4a5968778695a4b3c2d1e0f1a2b3c4d5e6f70";
const PAYLOAD_SECRET: &str = "whsec-never-shown";

async fn store() -> (Store, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
    (Store::memory(clock.clone()).await.unwrap(), clock)
}

/// Ingests an event into `source` and dead-letters it the way a worker does (claim, then `fail`).
async fn dead_letter(store: &Store, source: &str, key: &str, body: &str) -> i64 {
    let mut event = NewEvent::new(source, key, body.to_owned());
    event.headers.insert("x-cio-signature".into(), SIGNATURE.into());
    event.headers.insert("x-cio-timestamp".into(), "1700000000".into());
    event.headers.insert("content-type".into(), "application/json".into());
    store.ingest(&event).await.unwrap();
    let claimed = store.claim("seed", &[source.to_owned()], 10, Duration::from_secs(60)).await.unwrap();
    let e = claimed.into_iter().find(|e| e.dedup_key == key).unwrap();
    assert_eq!(store.fail(&e.lease, "HTTP 422 from Kommo: field not found").await.unwrap(), sync_core::Fence::Applied);
    e.id
}

async fn start(store: &Store, auth: ConsoleAuth) -> (ConsoleHandle, ConsoleConfig) {
    let mut config = ConsoleConfig::new(auth);
    config.instance = "test:1".into();
    let handle = console::start("127.0.0.1:0".parse().unwrap(), store.clone(), config.clone()).await.unwrap();
    (handle, config)
}

fn url(h: &ConsoleHandle, path: &str) -> String {
    format!("http://{}{path}", h.addr())
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

#[tokio::test]
async fn every_route_refuses_requests_without_the_bearer_token() {
    let (store, _) = store().await;
    let id = dead_letter(&store, "customerio", "d1", "{}").await;
    let (h, config) = start(&store, ConsoleAuth::none().bearer(TOKEN)).await;
    let http = client();
    for (method, path) in [("GET", "/"), ("GET", "/metrics"), ("POST", "/purge")] {
        let r = http.request(method.parse().unwrap(), url(&h, path)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{method} {path}");
        assert_eq!(r.headers()["www-authenticate"], "Bearer");
        let r = http.request(method.parse().unwrap(), url(&h, path)).bearer_auth("wrong").send().await.unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{method} {path} with a wrong token");
    }
    // a replay without the token changes nothing, even with the right form token
    let r = http
        .post(url(&h, &format!("/replay/{id}")))
        .form(&[("csrf", config.csrf_token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(store.get(id).await.unwrap().unwrap().state, State::Dead);
    let r = http.get(url(&h, "/")).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["cache-control"], "no-store");
    assert!(r.headers()["content-security-policy"].to_str().unwrap().contains("form-action 'self'"));
    assert!(r.text().await.unwrap().contains(&format!("data-id=\"{id}\"")));
}

#[tokio::test]
async fn basic_auth_prompts_the_browser_and_checks_user_and_password() {
    let (store, _) = store().await;
    let (h, _) = start(&store, ConsoleAuth::none().basic("ops", "correct horse")).await;
    let http = client();
    let r = http.get(url(&h, "/")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(r.headers()["www-authenticate"], "Basic realm=\"sync console\"");
    for (user, password) in [("ops", "wrong"), ("other", "correct horse"), ("ops", "")] {
        let r = http.get(url(&h, "/")).basic_auth(user, Some(password)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{user}:{password}");
    }
    let r = http.get(url(&h, "/")).basic_auth("ops", Some("correct horse")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // a bearer token is not accepted when only basic auth is configured
    let r = http.get(url(&h, "/")).bearer_auth("correct horse").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn refuses_to_start_on_a_public_address_without_credentials() {
    let (store, _) = store().await;
    let err = console::start("0.0.0.0:0".parse().unwrap(), store.clone(), ConsoleConfig::new(ConsoleAuth::none()))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("without credentials") && err.contains(console::TOKEN_ENV), "{err}");
    let err = console::start("[::]:0".parse().unwrap(), store, ConsoleConfig::new(ConsoleAuth::none()))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("not a loopback address"), "{err}");
}

#[tokio::test]
async fn without_credentials_only_loopback_host_names_are_answered() {
    let (store, _) = store().await;
    let (h, _) = start(&store, ConsoleAuth::none()).await;
    let http = client();
    assert_eq!(http.get(url(&h, "/")).send().await.unwrap().status(), StatusCode::OK);
    // a DNS-rebinding page reaches 127.0.0.1 under its own name: refused
    let r = http.get(url(&h, "/")).header("host", "attacker.example").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = http.get(url(&h, "/")).header("host", format!("localhost:{}", h.addr().port())).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn replay_needs_the_form_token_and_a_same_origin_request() {
    let (store, _) = store().await;
    let id = dead_letter(&store, "customerio", "d1", "{}").await;
    let (h, config) = start(&store, ConsoleAuth::none().bearer(TOKEN)).await;
    let http = client();
    let replay = url(&h, &format!("/replay/{id}"));
    let origin = format!("http://{}", h.addr());
    let csrf = config.csrf_token.as_str();

    // no form token, a wrong one, another site's Origin, a cross-site fetch: refused, the row stays dead
    let attempts = [
        http.post(&replay).bearer_auth(TOKEN).form(&[("x", "y")]),
        http.post(&replay).bearer_auth(TOKEN).form(&[("csrf", "0".repeat(64).as_str())]),
        http.post(&replay).bearer_auth(TOKEN).header("origin", "http://attacker.example").form(&[("csrf", csrf)]),
        http.post(&replay).bearer_auth(TOKEN).header("sec-fetch-site", "cross-site").form(&[("csrf", csrf)]),
    ];
    for a in attempts {
        let r = a.send().await.unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        assert_eq!(store.get(id).await.unwrap().unwrap().state, State::Dead);
    }
    // GET does not replay
    let r = http.get(&replay).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);

    // the page's form, as the browser posts it
    let r = http
        .post(&replay)
        .bearer_auth(TOKEN)
        .header("origin", &origin)
        .header("sec-fetch-site", "same-origin")
        .form(&[("csrf", csrf)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()["location"], format!("/?replayed={id}"));
    let row = store.get(id).await.unwrap().unwrap();
    assert_eq!((row.state, row.attempts), (State::Queued, 0), "Store::replay: queued with a fresh attempt budget");
    // a second click: no longer a dead letter
    let r = http.post(&replay).bearer_auth(TOKEN).form(&[("csrf", csrf)]).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::CONFLICT);
    let page = http.get(url(&h, "/?replayed=1")).bearer_auth(TOKEN).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("id=dead-count>0<"), "the dead letter left the list");
    assert!(!page.contains(&format!("data-id=\"{id}\"")));
}

#[tokio::test]
async fn purge_removes_old_done_events_through_purge_done() {
    let (store, clock) = store().await;
    store.ingest(&NewEvent::new("kommo", "old", "{}")).await.unwrap();
    let e = store.claim("w", &["kommo".into()], 1, Duration::from_secs(60)).await.unwrap().remove(0);
    assert_eq!(store.complete(&e.lease).await.unwrap(), sync_core::Fence::Applied);
    clock.advance(Duration::from_secs(10 * 86_400));
    store.ingest(&NewEvent::new("kommo", "new", "{}")).await.unwrap();
    let e2 = store.claim("w", &["kommo".into()], 1, Duration::from_secs(60)).await.unwrap().remove(0);
    assert_eq!(store.complete(&e2.lease).await.unwrap(), sync_core::Fence::Applied);
    let (h, config) = start(&store, ConsoleAuth::none().bearer(TOKEN)).await;
    let http = client();
    let r = http.post(url(&h, "/purge")).bearer_auth(TOKEN).form(&[("days", "8")]).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN, "no form token");
    let r = http
        .post(url(&h, "/purge"))
        .bearer_auth(TOKEN)
        .form(&[("csrf", config.csrf_token.as_str()), ("days", "0")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST, "0 days would forget dedup keys the senders may still retry");
    assert!(store.get(e.id).await.unwrap().is_some());
    let r = http
        .post(url(&h, "/purge"))
        .bearer_auth(TOKEN)
        .form(&[("csrf", config.csrf_token.as_str()), ("days", "8")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()["location"], "/?purged=1");
    assert!(store.get(e.id).await.unwrap().is_none(), "the 10-day-old done event is gone");
    assert!(store.get(e2.id).await.unwrap().is_some(), "the fresh one stays");
}

#[tokio::test]
async fn the_page_shows_the_stores_figures_and_redacts_signatures_and_secrets() {
    let (store, _) = store().await;
    let body = format!(
        r#"{{"event_id":"01HX","metric":"delivered","data":{{"email_address":"ada@client.example","webhook_secret":"{PAYLOAD_SECRET}"}}}}"#
    );
    let dead = dead_letter(&store, "customerio", "d1", &body).await;
    // a skipped event, a queued one, a retrying one
    store.ingest(&NewEvent::new("customerio", "s1", "{}")).await.unwrap();
    let s = store.claim("w", &["customerio".into()], 1, Duration::from_secs(60)).await.unwrap().remove(0);
    assert_eq!(store.skip(&s.lease, "metric not handled: delivered").await.unwrap(), sync_core::Fence::Applied);
    store.ingest(&NewEvent::new("kommo", "r1", "leads%5Bstatus%5D%5B0%5D%5Bid%5D=42")).await.unwrap();
    let r = store.claim("w", &["kommo".into()], 1, Duration::from_secs(60)).await.unwrap().remove(0);
    assert_eq!(store.retry(&r.lease, Duration::ZERO, "HTTP 503").await.unwrap(), sync_core::Fence::Applied);
    store.ingest(&NewEvent::new("kommo", "q1", "x=1")).await.unwrap();

    let (h, _) = start(&store, ConsoleAuth::none().bearer(TOKEN)).await;
    let page = client().get(url(&h, "/")).bearer_auth(TOKEN).send().await.unwrap().text().await.unwrap();
    let figures = store.source_figures(Duration::from_secs(3600)).await.unwrap();
    let kommo = &figures["kommo"];
    assert_eq!((kommo.queued, kommo.retrying, kommo.dead), (2, 1, 0));
    let cio = &figures["customerio"];
    assert_eq!((cio.done, cio.skipped, cio.dead, cio.finished_in_window), (1, 1, 1, 2));
    // each figure as shown, in its row
    let row = |source: &str| {
        let start = page.find(&format!("<tr data-source=\"{source}\">")).unwrap();
        page[start..start + page[start..].find("</tr>").unwrap()].to_owned()
    };
    let kommo_row = row("kommo");
    assert!(kommo_row.contains("data-k=queued>2<") && kommo_row.contains("data-k=retrying>1<"), "{kommo_row}");
    let cio_row = row("customerio");
    assert!(cio_row.contains("data-k=dead>1<") && cio_row.contains("data-k=skipped>1<"), "{cio_row}");
    assert!(cio_row.contains("data-k=throughput>2<"), "{cio_row}");
    assert!(page.contains("id=dead-count>1<"));
    assert!(page.contains("metric not handled: delivered"), "skipped reason listed");
    assert!(page.contains("HTTP 422 from Kommo: field not found"), "the dead letter's error");
    assert!(page.contains(&format!("action=\"/replay/{dead}\"")));
    // redaction: the signature header and the secret field are not shown, the rest is
    assert!(!page.contains(SIGNATURE), "signature header shown");
    assert!(!page.contains(PAYLOAD_SECRET), "payload secret shown");
    assert!(page.contains("x-cio-signature: [redacted]"));
    assert!(page.contains("x-cio-timestamp: 1700000000"));
    assert!(page.contains("ada@client.example"));
    // the payload is HTML-escaped
    assert!(page.contains("&quot;metric&quot;: &quot;delivered&quot;"));
}

#[tokio::test]
async fn metrics_are_prometheus_text_with_the_stores_figures() {
    let (store, _) = store().await;
    let _ = dead_letter(&store, "customerio", "d1", "{}").await;
    store.ingest(&NewEvent::new("kommo", "q1", "x=1")).await.unwrap();
    let mut config = ConsoleConfig::new(ConsoleAuth::none().bearer(TOKEN));
    let handle = console::metrics_handle().unwrap();
    config.metrics = Some(handle);
    // something recorded through the facade, as api-core's HttpClient does for each vendor answer
    metrics::counter!("api_http_responses_total", "host" => "test.invalid", "status" => "429").increment(2);
    let h = console::start("127.0.0.1:0".parse().unwrap(), store.clone(), config).await.unwrap();
    let http = client();
    assert_eq!(http.get(url(&h, "/metrics")).send().await.unwrap().status(), StatusCode::UNAUTHORIZED);
    let r = http.get(url(&h, "/metrics")).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/plain; version=0.0.4"));
    let text = r.text().await.unwrap();
    for line in [
        "sync_queue_depth{source=\"customerio\",state=\"dead\"} 1",
        "sync_queue_depth{source=\"kommo\",state=\"queued\"} 1",
        "sync_dead_letter_rows 1",
        "api_http_responses_total{host=\"test.invalid\",status=\"429\"} 2",
    ] {
        assert!(text.lines().any(|l| l == line), "missing `{line}` in\n{text}");
    }
    assert!(text.contains("# TYPE sync_queue_depth gauge"), "{text}");
    // without a recorder handle the route is off
    let (h2, _) = start(&store, ConsoleAuth::none().bearer(TOKEN)).await;
    let r = http.get(url(&h2, "/metrics")).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_page_shows_components_webhook_expiry_and_vendor_holds_without_the_webhook_secret() {
    use api_core::RateBudget as _;
    let (store, clock) = store().await;
    // the Airtable webhook record as the kommo-airtable flow stores it (cursors: airtable-webhook / current), with
    // its MAC secret, which must not be shown
    let expires = chrono::DateTime::<chrono::Utc>::from(std::time::SystemTime::now()) + chrono::Duration::hours(30);
    let record = serde_json::json!({
        "id": "achW1234567890abc",
        "mac_secret_base64": "bWFjLXNlY3JldC1uZXZlci1zaG93bg==",
        "expiration_time": expires.to_rfc3339(),
    });
    store.cursor_set("airtable-webhook", "current", &record.to_string()).await.unwrap();
    store
        .set_health(
            "webhook:calendly",
            "web-1:42",
            &sync_core::HealthReport::failing(3, "Calendly: 401 Unauthenticated"),
        )
        .await
        .unwrap();
    store.set_health("validation", "web-1:42", &sync_core::HealthReport::ready()).await.unwrap();
    // a 429 from Airtable held the base for 30 s (api-notes/airtable.md: wait 30 s after a 429)
    let budget = store.rate_budget("airtable", Duration::from_millis(216));
    let _ = budget.reserve("appBASE").await.unwrap();
    budget.pause("appBASE", Duration::from_secs(30)).await.unwrap();
    clock.advance(Duration::from_secs(10));

    let (h, _) = start(&store, ConsoleAuth::none().bearer(TOKEN)).await;
    let page = client().get(url(&h, "/")).bearer_auth(TOKEN).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("Airtable webhook <code>achW1234567890abc</code>"), "{page}");
    assert!(page.contains("<span class=warn>expires in 29h5"), "under two days left is a warning: {page}");
    assert!(!page.contains("bWFjLXNlY3JldC1uZXZlci1zaG93bg"), "the MAC secret is shown");
    let calendly = &page[page.find("data-component=\"webhook:calendly\"").unwrap()..];
    let calendly = &calendly[..calendly.find("</tr>").unwrap()];
    assert!(calendly.contains("data-k=state>failing<") && calendly.contains("Calendly: 401 Unauthenticated"));
    let hold = &page[page.find("data-key=\"airtable:appBASE\"").unwrap()..];
    let hold = &hold[..hold.find("</tr>").unwrap()];
    assert!(hold.contains("held for 20.000s more"), "{hold}");
}
