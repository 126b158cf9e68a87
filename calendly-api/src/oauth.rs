//! OAuth 2.0 for Calendly: a [`Refresher`](api_core::Refresher) for `POST https://auth.calendly.com/oauth/token` and the
//! authorization-code exchange. Calendly's refresh tokens are **single-use and rotate**: every successful refresh
//! revokes the old refresh token, so the spent one must never be sent again — [`api_core::OAuthSession`] keeps the
//! new pair (in memory if the [`api_core::TokenStore`] cannot save it yet, retrying the save with compare-and-swap),
//! refreshes single-flight, and reloads the store first so sessions sharing it spend a refresh token once.
//!
//! ```no_run
//! # async fn demo() -> Result<(), calendly_api::Error> {
//! use std::sync::Arc;
//! use api_core::{FileTokenStore, OAuthSession, Token};
//! use calendly_api::{Client, oauth::CalendlyRefresher};
//!
//! let refresher = CalendlyRefresher::new("client-id", Token::new("client-secret"))?;
//! let session = Arc::new(OAuthSession::new(Arc::new(FileTokenStore::new("calendly-tokens.json")), Arc::new(refresher)));
//! let client = Client::builder().oauth(session).build()?;
//! let me = client.me().await?;
//! # let _ = me; Ok(()) }
//! ```

use std::sync::Arc;

use api_core::{
    AuthError, HttpClient, Request, ReqwestTransport, RetryPolicy, Token, TokenSet, Transport, TransportConfig,
    secret::basic_auth_header,
};
use futures::future::BoxFuture;
use serde::Deserialize;
use url::Url;

use crate::{Error, client::DEFAULT_AUTH_BASE_URL};

/// The token endpoint's success body.
#[derive(Debug, Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    refresh_token: Option<String>,
    #[serde(default)]
    expires_in: Option<i64>,
}

/// The token endpoint's error body: `{error, error_description}`.
#[derive(Debug, Deserialize, Default)]
struct OAuthErrorBody {
    #[serde(default)]
    error: String,
    #[serde(default)]
    error_description: String,
}

/// Calls Calendly's token endpoint (client credentials sent with HTTP Basic, form-encoded body).
#[derive(Clone)]
pub struct CalendlyRefresher {
    http: HttpClient,
    client_id: String,
    client_secret: Token,
}

impl std::fmt::Debug for CalendlyRefresher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CalendlyRefresher")
            .field("token_url", &self.http.base_url().as_str())
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

impl CalendlyRefresher {
    /// A refresher against `https://auth.calendly.com`.
    ///
    /// # Errors
    /// TLS initialisation.
    pub fn new(client_id: impl Into<String>, client_secret: Token) -> Result<Self, Error> {
        Self::with_base_url(DEFAULT_AUTH_BASE_URL, client_id, client_secret)
    }

    /// A refresher against another auth base URL (the fake, a proxy), e.g. the client's
    /// [`Client::auth_base_url`](crate::Client::auth_base_url).
    ///
    /// # Errors
    /// TLS initialisation or a bad URL.
    pub fn with_base_url(
        auth_base_url: &str,
        client_id: impl Into<String>,
        client_secret: Token,
    ) -> Result<Self, Error> {
        let t = ReqwestTransport::new(TransportConfig::new(api_core::user_agent!()))
            .map_err(|e| Error::InvalidRequest(format!("HTTP client initialisation: {e}")))?;
        Self::with_transport(auth_base_url, client_id, client_secret, Arc::new(t))
    }

    /// A refresher against another auth base URL over `transport`.
    ///
    /// # Errors
    /// A bad URL.
    pub fn with_transport(
        auth_base_url: &str,
        client_id: impl Into<String>,
        client_secret: Token,
        transport: Arc<dyn Transport>,
    ) -> Result<Self, Error> {
        let base = Url::parse(auth_base_url).map_err(|e| Error::InvalidRequest(format!("bad URL: {e}")))?;
        // Token requests are not idempotent (a refresh token works once): transport errors after sending are not
        // retried by the policy; 5xx are reported as `AuthError::Refresh` for the caller to retry later.
        let http =
            HttpClient::new(base, transport).with_retry(RetryPolicy { max_attempts: 2, ..RetryPolicy::default() });
        Ok(Self { http, client_id: client_id.into(), client_secret })
    }

    async fn token_call(&self, form: &[(&str, &str)]) -> Result<TokenSet, AuthError> {
        let body = serde_urlencoded_pairs(form);
        let auth = basic_auth_header(&self.client_id, &self.client_secret)
            .map_err(|e| AuthError::Refresh(format!("bad client credentials: {e}")))?;
        let req =
            Request::post("/oauth/token").header(http::header::AUTHORIZATION, auth).body(api_core::Body::Form(body));
        let resp = self.http.execute(req).await.map_err(|e| AuthError::Refresh(e.to_string()))?;
        if !resp.is_success() {
            let err: OAuthErrorBody = serde_json::from_slice(&resp.body).unwrap_or_default();
            if err.error == "invalid_grant" || resp.status == http::StatusCode::UNAUTHORIZED {
                return Err(AuthError::Revoked(format!("{}: {}", err.error, err.error_description)));
            }
            return Err(AuthError::Refresh(format!("HTTP {}: {} {}", resp.status, err.error, err.error_description)));
        }
        let tr: TokenResponse = resp.json().map_err(|e| AuthError::Refresh(e.to_string()))?;
        let now = chrono::Utc::now().timestamp();
        Ok(TokenSet::from_expires_in(Token::new(tr.access_token), tr.refresh_token.map(Token::new), tr.expires_in, now))
    }

    /// Exchanges an authorization code (valid 10 minutes) for the first token set; install it with
    /// [`api_core::OAuthSession::install`].
    ///
    /// # Errors
    /// [`AuthError`].
    pub async fn exchange_code(&self, code: &str, redirect_uri: &str) -> Result<TokenSet, AuthError> {
        self.token_call(&[("grant_type", "authorization_code"), ("code", code), ("redirect_uri", redirect_uri)]).await
    }
}

/// The token introspection answer (`POST /oauth/introspect`): `active` and, for an active token, what it is.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
pub struct Introspection {
    /// Whether the token is currently active (neither expired nor revoked).
    pub active: bool,
    /// The token's scope.
    #[serde(default)]
    pub scope: Option<String>,
    /// The client it was issued to.
    #[serde(default)]
    pub client_id: Option<String>,
    /// The token type.
    #[serde(default)]
    pub token_type: Option<String>,
    /// Expiry (unix seconds).
    #[serde(default)]
    pub exp: Option<i64>,
    /// Issued at (unix seconds).
    #[serde(default)]
    pub iat: Option<i64>,
    /// The user URI the token acts for.
    #[serde(default)]
    pub owner: Option<String>,
    /// The organization URI.
    #[serde(default)]
    pub organization: Option<String>,
    /// Other fields, kept.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// The URL to send a user's browser to for consent: `{auth base}/oauth/authorize?client_id=…&response_type=code&
/// redirect_uri=…[&state=…][&code_challenge_method=S256&code_challenge=…]` (api-notes/calendly.md §1 "Auth"; the
/// code it returns is valid 10 minutes). `state` protects the redirect against CSRF; `code_challenge` is the
/// PKCE S256 challenge for public clients.
///
/// # Errors
/// [`Error::InvalidRequest`] for a bad base URL.
pub fn authorize_url(
    auth_base_url: &str,
    client_id: &str,
    redirect_uri: &str,
    state: Option<&str>,
    code_challenge: Option<&str>,
) -> Result<Url, Error> {
    let mut url = Url::parse(auth_base_url)
        .and_then(|u| u.join("/oauth/authorize"))
        .map_err(|e| Error::InvalidRequest(format!("bad auth base URL {auth_base_url:?}: {e}")))?;
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("client_id", client_id)
            .append_pair("response_type", "code")
            .append_pair("redirect_uri", redirect_uri);
        if let Some(s) = state {
            q.append_pair("state", s);
        }
        if let Some(c) = code_challenge {
            q.append_pair("code_challenge_method", "S256").append_pair("code_challenge", c);
        }
    }
    Ok(url)
}

impl CalendlyRefresher {
    /// Sends a form with the client credentials in the body (`client_id`, `client_secret`, then `extra`), as the
    /// revoke and introspect endpoints take them.
    async fn credentials_form_call(
        &self,
        path: &str,
        extra: &[(&str, &str)],
    ) -> Result<api_core::RawResponse, AuthError> {
        let mut form = vec![("client_id", self.client_id.as_str()), ("client_secret", self.client_secret.expose())];
        form.extend_from_slice(extra);
        let req = Request::post(path).body(api_core::Body::Form(serde_urlencoded_pairs(&form)));
        let resp = self.http.execute(req).await.map_err(|e| AuthError::Refresh(e.to_string()))?;
        if !resp.is_success() {
            let err: OAuthErrorBody = serde_json::from_slice(&resp.body).unwrap_or_default();
            return Err(AuthError::Refresh(format!("HTTP {}: {} {}", resp.status, err.error, err.error_description)));
        }
        Ok(resp)
    }

    /// Revokes an access or refresh token (`POST {auth base}/oauth/revoke`, form `client_id`, `client_secret`,
    /// `token`; C-docs post-oauth-revoke, errors `{error, error_description}`), e.g. when a user disconnects.
    ///
    /// # Errors
    /// [`AuthError::Refresh`] with the vendor's error.
    pub async fn revoke(&self, token: &Token) -> Result<(), AuthError> {
        self.credentials_form_call("/oauth/revoke", &[("token", token.expose())]).await.map(|_| ())
    }

    /// Introspects an access or refresh token (`POST {auth base}/oauth/introspect`, form `client_id`,
    /// `client_secret`, `token`; developer.calendly.com /api-docs/calendly-o-auth/o-auth/post-oauth-introspect).
    ///
    /// # Errors
    /// [`AuthError::Refresh`] with the vendor's error or an undecodable answer.
    pub async fn introspect(&self, token: &Token) -> Result<Introspection, AuthError> {
        let resp = self.credentials_form_call("/oauth/introspect", &[("token", token.expose())]).await?;
        resp.json().map_err(|e| AuthError::Refresh(e.to_string()))
    }
}

fn serde_urlencoded_pairs(pairs: &[(&str, &str)]) -> String {
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    s.finish()
}

impl api_core::Refresher for CalendlyRefresher {
    fn refresh<'a>(&'a self, refresh_token: &'a Token) -> BoxFuture<'a, Result<TokenSet, AuthError>> {
        Box::pin(async move {
            self.token_call(&[("grant_type", "refresh_token"), ("refresh_token", refresh_token.expose())]).await
        })
    }
}
