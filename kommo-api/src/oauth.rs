//! Kommo OAuth 2.0: the authorization-code exchange and the refresher for [`api_core::OAuthSession`].
//!
//! Kommo's refresh tokens are **single-use and rotate** on every refresh; a second use answers 401
//! `{"hint":"Token has been revoked"}`. The session in `api_core` refreshes single-flight (within a process, and
//! between processes through the [`TokenStore`]'s claim and compare-and-swap), keeps a new pair the store could not
//! save and retries the save, and never sends a spent refresh token again; this module only talks to
//! `POST https://{account}/oauth2/access_token` (JSON body).
//!
//! ```no_run
//! # async fn demo() -> Result<(), kommo_api::Error> {
//! use std::sync::Arc;
//! use kommo_api::{Client, oauth::KommoOAuth};
//! use api_core::{FileTokenStore, Token};
//!
//! let app = KommoOAuth::new("https://mycompany.kommo.com", "client-id", Token::new("secret"), "https://me.example/cb")?;
//! // once, after the user authorized: exchange the `code` from the redirect
//! let tokens = app.exchange_code("def502...").await?;
//! let session = app.session(Arc::new(FileTokenStore::new("/var/lib/me/kommo-tokens.json")));
//! session.install(tokens).await?;
//! let client = Client::builder().base_url("https://mycompany.kommo.com").oauth(session).build()?;
//! # let _ = client; Ok(()) }
//! ```

use std::{fmt, sync::Arc};

use api_core::{
    AuthError, HttpClient, OAuthSession, Request, ReqwestTransport, RetryPolicy, Token, TokenSet, TokenStore,
    Transport, TransportConfig,
};
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use url::Url;

use crate::{Error, error::Problem};

/// An OAuth application (client id/secret/redirect URI) on one account host.
#[derive(Clone)]
pub struct KommoOAuth {
    http: HttpClient,
    client_id: String,
    client_secret: Token,
    redirect_uri: String,
}

impl fmt::Debug for KommoOAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KommoOAuth")
            .field("base_url", &self.http.base_url().as_str())
            .field("client_id", &self.client_id)
            .field("client_secret", &"[redacted]")
            .field("redirect_uri", &self.redirect_uri)
            .finish()
    }
}

#[derive(Serialize)]
struct TokenRequest<'a> {
    client_id: &'a str,
    client_secret: &'a str,
    grant_type: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<&'a str>,
    redirect_uri: &'a str,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    refresh_token: Option<String>,
    #[serde(default, deserialize_with = "crate::de::opt_i64")]
    expires_in: Option<i64>,
    #[serde(default, deserialize_with = "crate::de::opt_i64")]
    server_time: Option<i64>,
}

impl KommoOAuth {
    /// An application on `base_url` (the account host, from the redirect's `referer`).
    ///
    /// # Errors
    /// [`Error::InvalidRequest`] for a bad URL or TLS init failure.
    pub fn new(
        base_url: &str,
        client_id: impl Into<String>,
        client_secret: Token,
        redirect_uri: impl Into<String>,
    ) -> Result<Self, Error> {
        let t = ReqwestTransport::new(TransportConfig::new(api_core::user_agent!()))
            .map_err(|e| Error::InvalidRequest(e.to_string()))?;
        Self::with_transport(base_url, client_id, client_secret, redirect_uri, Arc::new(t))
    }

    /// Like [`KommoOAuth::new`] with a custom transport.
    ///
    /// # Errors
    /// [`Error::InvalidRequest`] for a bad URL.
    pub fn with_transport(
        base_url: &str,
        client_id: impl Into<String>,
        client_secret: Token,
        redirect_uri: impl Into<String>,
        transport: Arc<dyn Transport>,
    ) -> Result<Self, Error> {
        let raw = if base_url.contains("://") { base_url.to_owned() } else { format!("https://{base_url}") };
        let url = Url::parse(&raw).map_err(|e| Error::InvalidRequest(format!("invalid base URL {raw:?}: {e}")))?;
        // a token request is never retried after it may have been sent: the old refresh token could be spent
        let http =
            HttpClient::new(url, transport).with_retry(RetryPolicy { max_attempts: 2, ..RetryPolicy::default() });
        Ok(Self { http, client_id: client_id.into(), client_secret, redirect_uri: redirect_uri.into() })
    }

    /// An OAuth session over `store` using this application as the refresher.
    #[must_use]
    pub fn session(&self, store: Arc<dyn TokenStore>) -> Arc<OAuthSession> {
        Arc::new(OAuthSession::new(store, Arc::new(self.clone())))
    }

    /// Exchanges an authorization code (single use, valid about 20 minutes) for a token set.
    ///
    /// # Errors
    /// [`Error::AuthRevoked`] when Kommo rejects the code; other [`Error`]s for transport failures.
    pub async fn exchange_code(&self, code: &str) -> Result<TokenSet, Error> {
        self.token_request("authorization_code", Some(code), None).await.map_err(Error::from)
    }

    async fn token_request(
        &self,
        grant: &str,
        code: Option<&str>,
        refresh: Option<&str>,
    ) -> Result<TokenSet, AuthError> {
        let body = TokenRequest {
            client_id: &self.client_id,
            client_secret: self.client_secret.expose(),
            grant_type: grant,
            code,
            refresh_token: refresh,
            redirect_uri: &self.redirect_uri,
        };
        let req = Request::post("/oauth2/access_token").json(&body).map_err(|e| AuthError::Refresh(e.to_string()))?;
        let resp = self.http.execute(req).await.map_err(|e| AuthError::Refresh(e.to_string()))?;
        let status = resp.status.as_u16();
        if !resp.is_success() {
            let problem = Problem::parse(&resp.body);
            let what = problem
                .as_ref()
                .and_then(|p| p.hint.clone().or_else(|| p.detail.clone()).or_else(|| p.title.clone()))
                .unwrap_or_else(|| format!("HTTP {status}"));
            // 400/401/403 from the token endpoint: the grant is spent, revoked or wrong
            return Err(if (400..500).contains(&status) && status != 429 {
                AuthError::Revoked(what)
            } else {
                AuthError::Refresh(what)
            });
        }
        let t: TokenResponse = resp.json().map_err(|e| AuthError::Refresh(e.to_string()))?;
        let now = t.server_time.unwrap_or_else(|| {
            i64::try_from(
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs(),
            )
            .unwrap_or(0)
        });
        Ok(TokenSet::from_expires_in(Token::new(t.access_token), t.refresh_token.map(Token::new), t.expires_in, now))
    }
}

impl api_core::Refresher for KommoOAuth {
    fn refresh<'a>(&'a self, refresh_token: &'a Token) -> BoxFuture<'a, Result<TokenSet, AuthError>> {
        Box::pin(async move { self.token_request("refresh_token", None, Some(refresh_token.expose())).await })
    }
}
