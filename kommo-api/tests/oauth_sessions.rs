//! OAuth against a wiremock token endpoint that behaves like Kommo's (single-use refresh tokens): sessions that
//! share a store, a store that cannot save, a token endpoint that fails during the early-refresh window (issue 18).

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use api_core::FixedClock;
use futures::future::BoxFuture;
use kommo_api::{Client, MemoryTokenStore, OAuthSession, Token, TokenSet, TokenStore, oauth::KommoOAuth};
use serde_json::json;
use wiremock::{
    Mock, MockServer, ResponseTemplate,
    matchers::{body_partial_json, header, method, path},
};

const NOW: u64 = 1_700_000_000;

fn tokens(access: &str, refresh: &str, expires_at: i64) -> TokenSet {
    TokenSet {
        access_token: Token::new(access),
        refresh_token: Some(Token::new(refresh)),
        expires_at: Some(expires_at),
    }
}

fn token_response(access: &str, refresh: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "token_type": "Bearer", "expires_in": 86_400, "server_time": NOW,
        "access_token": access, "refresh_token": refresh
    }))
}

fn revoked() -> ResponseTemplate {
    ResponseTemplate::new(401).set_body_raw(
        std::fs::read_to_string(format!("{}/tests/fixtures/oauth_revoked.json", env!("CARGO_MANIFEST_DIR"))).unwrap(),
        "application/problem+json",
    )
}

fn client(server: &MockServer, store: Arc<dyn TokenStore>, clock: &FixedClock) -> Client {
    let app =
        KommoOAuth::new(&server.uri(), "client-id", Token::new("client-secret"), "https://me.example/cb").unwrap();
    let session = Arc::new(OAuthSession::new(store, Arc::new(app)).with_clock(Arc::new(clock.clone())));
    Client::builder().base_url(server.uri()).oauth(session).rate_limit(0).build().unwrap()
}

async fn account_with(server: &MockServer, access: &str, times: u64) {
    Mock::given(method("GET"))
        .and(path("/api/v4/account"))
        .and(header("authorization", format!("Bearer {access}").as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": 1, "name": "x", "subdomain": "x"})))
        .expect(times)
        .mount(server)
        .await;
}

/// The refresh tokens the token endpoint received, in order.
async fn refresh_tokens_sent(server: &MockServer) -> Vec<String> {
    server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.path() == "/oauth2/access_token")
        .map(|r| r.body_json::<serde_json::Value>().unwrap()["refresh_token"].as_str().unwrap().to_owned())
        .collect()
}

/// Kommo's token endpoint for one refresh token: the first use answers `new`, every later one "revoked".
async fn single_use(server: &MockServer, refresh: &str, new: (&str, &str), delay: Duration) {
    Mock::given(method("POST"))
        .and(path("/oauth2/access_token"))
        .and(body_partial_json(json!({"grant_type": "refresh_token", "refresh_token": refresh})))
        .respond_with(token_response(new.0, new.1).set_delay(delay))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(server)
        .await;
    Mock::given(method("POST"))
        .and(path("/oauth2/access_token"))
        .and(body_partial_json(json!({"refresh_token": refresh})))
        .respond_with(revoked())
        .with_priority(2)
        .mount(server)
        .await;
}

#[tokio::test]
async fn two_sessions_sharing_a_store_refresh_once_and_end_with_the_same_pair() {
    let server = MockServer::start().await;
    single_use(&server, "old-refresh", ("new-access", "new-refresh"), Duration::from_millis(200)).await;
    account_with(&server, "new-access", 2).await;
    let clock = FixedClock::at_unix(NOW);
    let store = MemoryTokenStore::new(Some(tokens("old-access", "old-refresh", 1_000))); // expired
    // two workers (two sessions, as in two processes) on one account and one store
    let a = client(&server, Arc::new(store.clone()), &clock);
    let b = client(&server, Arc::new(store.clone()), &clock);
    let (ra, rb) = tokio::join!(a.account(&[]), b.account(&[]));
    ra.unwrap();
    rb.unwrap();
    assert_eq!(refresh_tokens_sent(&server).await, vec!["old-refresh"], "the refresh token is spent exactly once");
    let stored = store.load().await.unwrap().unwrap();
    assert_eq!(stored.access_token.expose(), "new-access");
    assert_eq!(stored.refresh_token.unwrap().expose(), "new-refresh");
}

/// A token store whose saves fail while `fail` is set (its reads work).
#[derive(Debug, Clone, Default)]
struct FlakyStore {
    inner: MemoryTokenStore,
    fail: Arc<AtomicBool>,
}

impl TokenStore for FlakyStore {
    fn load(&self) -> BoxFuture<'_, Result<Option<TokenSet>, api_core::oauth::TokenStoreError>> {
        self.inner.load()
    }
    fn save<'a>(&'a self, t: &'a TokenSet) -> BoxFuture<'a, Result<(), api_core::oauth::TokenStoreError>> {
        if self.fail.load(Ordering::SeqCst) {
            return Box::pin(async { Err(api_core::oauth::TokenStoreError("database is down".into())) });
        }
        self.inner.save(t)
    }
}

#[tokio::test]
async fn a_pair_that_cannot_be_stored_is_used_stored_later_and_the_old_refresh_token_never_sent_again() {
    let server = MockServer::start().await;
    single_use(&server, "old-refresh", ("new-access", "new-refresh"), Duration::ZERO).await;
    account_with(&server, "new-access", 3).await;
    let clock = FixedClock::at_unix(NOW);
    let store = FlakyStore::default();
    store.inner.save(&tokens("old-access", "old-refresh", 1_000)).await.unwrap();
    store.fail.store(true, Ordering::SeqCst);
    let c = client(&server, Arc::new(store.clone()), &clock);
    c.account(&[]).await.unwrap();
    c.account(&[]).await.unwrap();
    assert_eq!(store.load().await.unwrap().unwrap().refresh_token.unwrap().expose(), "old-refresh");
    store.fail.store(false, Ordering::SeqCst);
    c.account(&[]).await.unwrap();
    let stored = store.load().await.unwrap().unwrap();
    assert_eq!(stored.refresh_token.unwrap().expose(), "new-refresh", "stored once the store is back");
    assert_eq!(stored.access_token.expose(), "new-access");
    assert_eq!(refresh_tokens_sent(&server).await, vec!["old-refresh"], "the spent refresh token is never reused");
}

#[tokio::test]
async fn a_503_during_early_refresh_keeps_the_still_valid_access_token() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/oauth2/access_token"))
        .respond_with(ResponseTemplate::new(503).set_body_raw("<html>502 Bad Gateway</html>", "text/html"))
        .mount(&server)
        .await;
    account_with(&server, "old-access", 1).await;
    let clock = FixedClock::at_unix(NOW);
    // expires in 2 minutes: inside the 5-minute early-refresh window, still valid
    let store = MemoryTokenStore::new(Some(tokens("old-access", "old-refresh", 1_700_000_120)));
    let c = client(&server, Arc::new(store.clone()), &clock);
    c.account(&[]).await.unwrap();
    assert!(!refresh_tokens_sent(&server).await.is_empty(), "a refresh was attempted");
    assert_eq!(store.load().await.unwrap().unwrap().refresh_token.unwrap().expose(), "old-refresh");
}
