//! OAuth (refresh single-flight, 401 handling, code exchange), rate-limit spacing on a paused clock.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use api_core::{FixedClock, RawResponse, Request as ApiRequest, Transport, TransportError};
use futures::future::BoxFuture;
use kommo_api::{Client, Error, MemoryTokenStore, OAuthSession, Token, TokenSet, TokenStore, oauth::KommoOAuth};
use serde_json::json;
use wiremock::{
    Mock, MockServer, ResponseTemplate,
    matchers::{body_json, header, method, path},
};

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

fn app(server: &MockServer) -> KommoOAuth {
    KommoOAuth::new(&server.uri(), "client-id", Token::new("client-secret"), "https://me.example/cb").unwrap()
}

fn tokens(access: &str, refresh: &str, expires_at: i64) -> TokenSet {
    TokenSet {
        access_token: Token::new(access),
        refresh_token: Some(Token::new(refresh)),
        expires_at: Some(expires_at),
    }
}

fn oauth_client(server: &MockServer, store: Arc<dyn TokenStore>, now: u64) -> Client {
    let session =
        Arc::new(OAuthSession::new(store, Arc::new(app(server))).with_clock(Arc::new(FixedClock::at_unix(now))));
    Client::builder().base_url(server.uri()).oauth(session).rate_limit(0).build().unwrap()
}

fn account_ok() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({"id": 1, "name": "x", "subdomain": "x"}))
}

#[tokio::test]
async fn hundred_concurrent_calls_with_an_expired_token_refresh_once() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/oauth2/access_token"))
        .and(body_json(json!({
            "client_id": "client-id", "client_secret": "client-secret", "grant_type": "refresh_token",
            "refresh_token": "old-refresh", "redirect_uri": "https://me.example/cb"
        })))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_raw(fixture("oauth_token.json"), "application/json")
                .set_delay(Duration::from_millis(50)),
        )
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v4/account"))
        .and(header("authorization", "Bearer eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.new"))
        .respond_with(account_ok())
        .expect(100)
        .mount(&server)
        .await;
    let store = MemoryTokenStore::new(Some(tokens("old-access", "old-refresh", 1_000)));
    let client = oauth_client(&server, Arc::new(store.clone()), 2_000);
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let c = client.clone();
        tasks.push(tokio::spawn(async move { c.account(&[]).await }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let stored = store.load().await.unwrap().unwrap();
    assert_eq!(stored.refresh_token.unwrap().expose(), "def50200new", "the rotated refresh token is persisted");
    assert_eq!(stored.expires_at, Some(1_700_000_000 + 86_400), "expiry from server_time + expires_in");
}

#[tokio::test]
async fn a_401_refreshes_once_and_retries() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(header("authorization", "Bearer old-access"))
        .respond_with(ResponseTemplate::new(401).set_body_raw(fixture("unauthorized.json"), "application/problem+json"))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(header("authorization", "Bearer eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.new"))
        .respond_with(account_ok())
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/oauth2/access_token"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(fixture("oauth_token.json"), "application/json"))
        .expect(1)
        .mount(&server)
        .await;
    let store = MemoryTokenStore::new(Some(tokens("old-access", "old-refresh", 10_000_000)));
    let client = oauth_client(&server, Arc::new(store), 2_000);
    client.account(&[]).await.unwrap();
}

#[tokio::test]
async fn a_401_after_the_refresh_is_unauthorized() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(401).set_body_raw(fixture("unauthorized.json"), "application/problem+json"))
        .expect(2)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/oauth2/access_token"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(fixture("oauth_token.json"), "application/json"))
        .expect(1)
        .mount(&server)
        .await;
    let store = MemoryTokenStore::new(Some(tokens("old-access", "old-refresh", 10_000_000)));
    let client = oauth_client(&server, Arc::new(store), 2_000);
    let e = client.account(&[]).await.unwrap_err();
    assert!(matches!(e, Error::Unauthorized { .. }), "{e:?}");
}

#[tokio::test]
async fn a_spent_refresh_token_is_auth_revoked_and_nothing_is_stored() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/oauth2/access_token"))
        .respond_with(
            ResponseTemplate::new(401).set_body_raw(fixture("oauth_revoked.json"), "application/problem+json"),
        )
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET")).respond_with(account_ok()).expect(0).mount(&server).await;
    let store = MemoryTokenStore::new(Some(tokens("old-access", "spent", 1_000)));
    let client = oauth_client(&server, Arc::new(store.clone()), 2_000);
    let e = client.account(&[]).await.unwrap_err();
    let Error::AuthRevoked { reason, .. } = &e else { panic!("{e:?}") };
    assert_eq!(reason, "Token has been revoked");
    assert_eq!(e.class(), api_core::ErrorClass::Auth);
    assert_eq!(store.load().await.unwrap().unwrap().refresh_token.unwrap().expose(), "spent");
}

#[tokio::test]
async fn token_endpoint_5xx_is_a_transient_auth_error() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/oauth2/access_token"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&server)
        .await;
    let store = MemoryTokenStore::new(Some(tokens("old-access", "old-refresh", 1_000)));
    let client = oauth_client(&server, Arc::new(store), 2_000);
    let e = client.account(&[]).await.unwrap_err();
    assert!(matches!(e, Error::Auth(api_core::AuthError::Refresh(_))), "{e:?}");
    assert_eq!(e.class(), api_core::ErrorClass::Transient);
}

#[tokio::test]
async fn authorization_code_exchange_and_file_store() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/oauth2/access_token"))
        .and(body_json(json!({
            "client_id": "client-id", "client_secret": "client-secret", "grant_type": "authorization_code",
            "code": "def502code", "redirect_uri": "https://me.example/cb"
        })))
        .respond_with(ResponseTemplate::new(200).set_body_raw(fixture("oauth_token.json"), "application/json"))
        .expect(1)
        .mount(&server)
        .await;
    let set = app(&server).exchange_code("def502code").await.unwrap();
    assert_eq!(set.refresh_token.as_ref().unwrap().expose(), "def50200new");
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(kommo_api::FileTokenStore::new(dir.path().join("kommo.json")));
    let session = app(&server).session(store.clone());
    session.install(set).await.unwrap();
    assert_eq!(store.load().await.unwrap().unwrap().refresh_token.unwrap().expose(), "def50200new");
    assert_eq!(server.received_requests().await.unwrap().len(), 1);

    server.reset().await;
    Mock::given(method("POST"))
        .and(path("/oauth2/access_token"))
        .respond_with(ResponseTemplate::new(400).set_body_raw(r#"{"title":"Bad Request","status":400,"detail":"Authorization code has expired","hint":"Authorization code has expired"}"#, "application/problem+json"))
        .mount(&server)
        .await;
    let e = app(&server).exchange_code("def502code").await.unwrap_err();
    assert!(matches!(e, Error::AuthRevoked { .. }), "{e:?}");
}

#[tokio::test]
async fn debug_shows_no_secret() {
    let server = MockServer::start().await;
    let a = app(&server);
    assert!(!format!("{a:?}").contains("client-secret"));
    let store = MemoryTokenStore::new(Some(tokens("ACCESS-SECRET", "REFRESH-SECRET", 1)));
    let c = oauth_client(&server, Arc::new(store), 0);
    let s = format!("{c:?}");
    assert!(!s.contains("SECRET"), "{s}");
}

// ---------------------------------------------------------------------------------------------------------------
// rate limiting on tokio's paused clock, through a recording transport

#[derive(Debug, Default)]
struct Recorder {
    calls: Mutex<Vec<tokio::time::Instant>>,
    statuses: Mutex<Vec<u16>>,
}

impl Transport for Recorder {
    fn send(&self, _url: url::Url, _req: ApiRequest) -> BoxFuture<'_, Result<RawResponse, TransportError>> {
        Box::pin(async move {
            self.calls.lock().unwrap().push(tokio::time::Instant::now());
            let status = {
                let mut s = self.statuses.lock().unwrap();
                if s.is_empty() { 200 } else { s.remove(0) }
            };
            let body = if status == 200 {
                r#"{"id":1,"name":"x","subdomain":"x"}"#.to_owned()
            } else {
                "<html>429</html>".to_owned()
            };
            Ok(RawResponse {
                status: http::StatusCode::from_u16(status).unwrap(),
                headers: http::HeaderMap::new(),
                body: body.into(),
            })
        })
    }
}

fn recorded_client(rec: Arc<Recorder>) -> Client {
    Client::builder().base_url("https://example.kommo.com").long_lived_token("t").transport(rec).build().unwrap()
}

#[tokio::test(start_paused = true)]
async fn seven_per_second_evenly_spaced_without_burst() {
    let rec = Arc::new(Recorder::default());
    let c = recorded_client(rec.clone());
    let mut tasks = Vec::new();
    for _ in 0..15 {
        let c = c.clone();
        tasks.push(tokio::spawn(async move { c.account(&[]).await.unwrap() }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let calls = rec.calls.lock().unwrap();
    assert_eq!(calls.len(), 15);
    let gap = Duration::from_secs(1) / 7;
    for w in calls.windows(2) {
        assert!(w[1] - w[0] >= gap - Duration::from_millis(1), "no burst: {:?}", w[1] - w[0]);
    }
    // any 8 consecutive requests span at least one second
    assert!(calls[7] - calls[0] >= Duration::from_secs(1) - Duration::from_millis(7));
}

#[tokio::test(start_paused = true)]
async fn a_429_holds_the_whole_account_for_the_backoff() {
    let rec = Arc::new(Recorder::default());
    rec.statuses.lock().unwrap().push(429);
    let c = recorded_client(rec.clone());
    let e = c.account(&[]).await.unwrap_err();
    assert_eq!(e.retry_after(), Some(kommo_api::client::DEFAULT_THROTTLE_BACKOFF));
    assert_eq!(rec.calls.lock().unwrap().len(), 1, "never hot-retried");
    // a clone is held off too, and fails fast instead of sleeping out the 60 s inside the limiter (issue 18)
    let e = c.clone().account(&[]).await.unwrap_err();
    assert!(matches!(e, kommo_api::Error::HeldOff { .. }), "{e:?}");
    assert_eq!(rec.calls.lock().unwrap().len(), 1, "nothing sent while held off");
    tokio::time::sleep(e.retry_after().unwrap()).await;
    c.clone().account(&[]).await.unwrap();
    let calls = rec.calls.lock().unwrap();
    assert!(calls[1] - calls[0] >= Duration::from_secs(60), "{:?}", calls[1] - calls[0]);
}
