//! The Calendly token endpoint: form body, HTTP Basic client credentials, rotation, `invalid_grant`.

use std::sync::Arc;

use api_core::{AuthError, Refresher as _, Token};
use calendly_api::oauth::CalendlyRefresher;
use wiremock::{
    Mock, MockServer, ResponseTemplate,
    matchers::{body_string, header, method, path},
};

fn refresher(server: &MockServer) -> CalendlyRefresher {
    let t = api_core::ReqwestTransport::new(api_core::TransportConfig::new("test")).unwrap();
    CalendlyRefresher::with_transport(&server.uri(), "my-client", Token::new("my-secret"), Arc::new(t)).unwrap()
}

#[tokio::test]
async fn refresh_sends_form_with_basic_auth_and_returns_rotated_tokens() {
    let server = MockServer::start().await;
    // base64("my-client:my-secret")
    Mock::given(method("POST"))
        .and(path("/oauth/token"))
        .and(header("authorization", "Basic bXktY2xpZW50Om15LXNlY3JldA=="))
        .and(header("content-type", "application/x-www-form-urlencoded"))
        .and(body_string("grant_type=refresh_token&refresh_token=rt-1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "token_type": "Bearer", "access_token": "at-2", "refresh_token": "rt-2", "expires_in": 7200,
            "scope": "default", "created_at": 1_790_000_000, "owner": "https://api.calendly.com/users/U",
            "organization": "https://api.calendly.com/organizations/O"
        })))
        .expect(1)
        .mount(&server)
        .await;
    let r = refresher(&server);
    let set = r.refresh(&Token::new("rt-1")).await.unwrap();
    assert_eq!(set.access_token.expose(), "at-2");
    assert_eq!(set.refresh_token.unwrap().expose(), "rt-2");
    assert!(set.expires_at.is_some());
    assert!(!format!("{r:?}").contains("my-secret"));
}

#[tokio::test]
async fn invalid_grant_is_revoked_and_5xx_is_transient() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/oauth/token"))
        .and(body_string("grant_type=refresh_token&refresh_token=used"))
        .respond_with(ResponseTemplate::new(400).set_body_json(serde_json::json!({
            "error": "invalid_grant", "error_description": "The provided authorization grant is invalid, expired, revoked"
        })))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/oauth/token"))
        .and(body_string("grant_type=refresh_token&refresh_token=flaky"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&server)
        .await;
    let r = refresher(&server);
    assert!(matches!(r.refresh(&Token::new("used")).await, Err(AuthError::Revoked(_))));
    assert!(matches!(r.refresh(&Token::new("flaky")).await, Err(AuthError::Refresh(_))));
}

#[tokio::test]
async fn exchange_code() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/oauth/token"))
        .and(body_string("grant_type=authorization_code&code=abc&redirect_uri=https%3A%2F%2Fapp.example.com%2Fcb"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "token_type": "Bearer", "access_token": "at-1", "refresh_token": "rt-1", "expires_in": 7200
        })))
        .expect(1)
        .mount(&server)
        .await;
    let set = refresher(&server).exchange_code("abc", "https://app.example.com/cb").await.unwrap();
    assert_eq!(set.access_token.expose(), "at-1");
}
