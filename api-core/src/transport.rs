//! The transport: sends one [`Request`] and returns a [`RawResponse`]. No retries, no rate limits: those live in
//! [`crate::HttpClient`], which drives a [`Transport`].

use std::{fmt, sync::Arc, time::Duration};

use futures::future::BoxFuture;
use http::header::{CONTENT_TYPE, USER_AGENT};
use url::Url;

use crate::request::{RawResponse, Request};

/// Why a request produced no response.
#[derive(Debug, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct TransportError {
    /// What went wrong.
    pub kind: TransportErrorKind,
    /// Whether the server may have received (and acted on) the request.
    pub may_have_been_sent: bool,
    /// A description (never containing credentials: reqwest errors carry the URL, and our URLs hold no secrets).
    pub message: String,
}

/// The kind of a [`TransportError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TransportErrorKind {
    /// The connection could not be made (DNS, refused, TLS handshake): the request was not sent.
    Connect,
    /// The request timed out after it may have been sent.
    Timeout,
    /// The connection broke while sending or receiving.
    Io,
    /// The request could not be built (bad URL or header).
    Build,
    /// The rate budget could not grant a slot (e.g. its database is unreachable): the request was not sent.
    Budget,
}

impl fmt::Display for TransportErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Connect => "connect error",
            Self::Timeout => "timeout",
            Self::Io => "connection error",
            Self::Build => "invalid request",
            Self::Budget => "rate budget unavailable",
        })
    }
}

/// Sends requests. Implemented by [`ReqwestTransport`]; tests and fakes may provide their own.
pub trait Transport: Send + Sync + fmt::Debug {
    /// Sends `request` to `url` (already joined with the base URL and carrying its query).
    fn send(&self, url: Url, request: Request) -> BoxFuture<'_, Result<RawResponse, TransportError>>;
}

/// Timeouts and identity for [`ReqwestTransport`].
#[derive(Debug, Clone)]
pub struct TransportConfig {
    /// Connect timeout.
    pub connect_timeout: Duration,
    /// Whole-request timeout.
    pub request_timeout: Duration,
    /// `User-Agent`, e.g. `kommo-api/0.1.0`.
    pub user_agent: String,
    /// Which redirects are followed (default [`Redirects::SameOrigin`] with 10 hops).
    pub redirects: Redirects,
}

/// Which HTTP redirects [`ReqwestTransport`] follows.
///
/// reqwest's own default follows any redirect and drops only `Authorization` when the host changes: a vendor
/// header such as Productive's `X-Auth-Token`, or Basic credentials set by hand, would go to whatever host the
/// `Location` names. So the default here never leaves the origin (scheme, host and port) of the request: a
/// redirect elsewhere is returned as the 3xx response it is, and the client reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Redirects {
    /// Follow up to this many redirects within the request's origin; a cross-origin redirect is returned as is.
    SameOrigin(usize),
    /// Follow none: every 3xx is returned as is.
    None,
}

impl Default for Redirects {
    fn default() -> Self {
        Self::SameOrigin(10)
    }
}

impl Redirects {
    fn policy(self) -> reqwest::redirect::Policy {
        match self {
            Self::None => reqwest::redirect::Policy::none(),
            Self::SameOrigin(max) => reqwest::redirect::Policy::custom(move |attempt| {
                let first = attempt.previous().first().map(Url::origin);
                if attempt.previous().len() > max {
                    attempt.stop()
                } else if first.is_some_and(|o| o != attempt.url().origin()) {
                    tracing::warn!(
                        to = %attempt.url().origin().ascii_serialization(),
                        "cross-origin redirect not followed (credentials stay with the vendor's host)"
                    );
                    attempt.stop()
                } else {
                    attempt.follow()
                }
            }),
        }
    }
}

impl TransportConfig {
    /// Defaults (10 s connect, 60 s request, same-origin redirects only) with the given user agent.
    #[must_use]
    pub fn new(user_agent: impl Into<String>) -> Self {
        Self {
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(60),
            user_agent: user_agent.into(),
            redirects: Redirects::default(),
        }
    }
}

/// A [`Transport`] over a shared `reqwest::Client` (rustls by default).
#[derive(Clone)]
pub struct ReqwestTransport {
    client: reqwest::Client,
    config: Arc<TransportConfig>,
}

impl fmt::Debug for ReqwestTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReqwestTransport").field("config", &self.config).finish_non_exhaustive()
    }
}

impl ReqwestTransport {
    /// Builds the underlying `reqwest::Client`.
    ///
    /// # Errors
    /// When the TLS backend cannot be initialised.
    pub fn new(config: TransportConfig) -> Result<Self, TransportError> {
        let client = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .timeout(config.request_timeout)
            .user_agent(config.user_agent.clone())
            .redirect(config.redirects.policy())
            .build()
            .map_err(|e| TransportError {
                kind: TransportErrorKind::Build,
                may_have_been_sent: false,
                message: e.to_string(),
            })?;
        Ok(Self { client, config: Arc::new(config) })
    }

    /// The configuration in use.
    #[must_use]
    pub fn config(&self) -> &TransportConfig {
        &self.config
    }
}

fn classify_reqwest(e: &reqwest::Error) -> TransportError {
    let (kind, may_have_been_sent) = if e.is_connect() {
        (TransportErrorKind::Connect, false)
    } else if e.is_timeout() {
        (TransportErrorKind::Timeout, true)
    } else if e.is_builder() {
        (TransportErrorKind::Build, false)
    } else {
        (TransportErrorKind::Io, true)
    };
    // `without_url` keeps query strings (which may hold e.g. Airtable offsets) out of the message.
    let message = format!("{}", DisplayChain(e));
    TransportError { kind, may_have_been_sent, message }
}

struct DisplayChain<'a>(&'a (dyn std::error::Error + 'static));

impl fmt::Display for DisplayChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut src = self.0.source();
        while let Some(s) = src {
            write!(f, ": {s}")?;
            src = s.source();
        }
        Ok(())
    }
}

impl Transport for ReqwestTransport {
    fn send(&self, url: Url, request: Request) -> BoxFuture<'_, Result<RawResponse, TransportError>> {
        Box::pin(async move {
            let mut builder = self.client.request(request.method.clone(), url).headers(request.headers.clone());
            if !request.headers.contains_key(USER_AGENT) {
                builder = builder.header(USER_AGENT, self.config.user_agent.as_str());
            }
            if let Some(ct) = request.body.content_type() {
                if !request.headers.contains_key(CONTENT_TYPE) {
                    builder = builder.header(CONTENT_TYPE, ct);
                }
                builder = builder.body(request.body.bytes());
            }
            let resp = builder.send().await.map_err(|e| classify_reqwest(&e))?;
            let status = resp.status();
            let headers = resp.headers().clone();
            let body = resp.bytes().await.map_err(|e| {
                let mut err = classify_reqwest(&e);
                err.may_have_been_sent = true;
                err
            })?;
            Ok(RawResponse { status, headers, body })
        })
    }
}

/// Joins `path` to `base` (keeping the base's own path prefix, e.g. `https://api.airtable.com/v0` + `/meta/bases`),
/// or parses `path` when it is an absolute URL, then appends the query.
///
/// # Errors
/// When the result is not a valid URL.
pub fn build_url(base: &Url, path: &str, query: &[(String, String)]) -> Result<Url, TransportError> {
    let bad = |m: String| TransportError { kind: TransportErrorKind::Build, may_have_been_sent: false, message: m };
    let mut url = if path.starts_with("http://") || path.starts_with("https://") {
        Url::parse(path).map_err(|e| bad(format!("invalid URL {path}: {e}")))?
    } else {
        let mut joined = base.as_str().trim_end_matches('/').to_owned();
        if !path.starts_with('/') {
            joined.push('/');
        }
        joined.push_str(path);
        Url::parse(&joined).map_err(|e| bad(format!("invalid URL {joined}: {e}")))?
    };
    if !query.is_empty() {
        let mut pairs = url.query_pairs_mut();
        for (k, v) in query {
            pairs.append_pair(k, v);
        }
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_base_prefix_and_query() {
        let base = Url::parse("https://api.airtable.com/v0/").unwrap();
        let u = build_url(
            &base,
            "/appX/Table%201",
            &[("pageSize".into(), "100".into()), ("fields[]".into(), "Name".into())],
        )
        .unwrap();
        assert_eq!(u.as_str(), "https://api.airtable.com/v0/appX/Table%201?pageSize=100&fields%5B%5D=Name");
        let abs = build_url(&base, "http://127.0.0.1:9/x", &[]).unwrap();
        assert_eq!(abs.as_str(), "http://127.0.0.1:9/x");
        let no_slash = build_url(&Url::parse("https://x.kommo.com").unwrap(), "api/v4/leads", &[]).unwrap();
        assert_eq!(no_slash.as_str(), "https://x.kommo.com/api/v4/leads");
    }

    /// A vendor (or anything posing as it) redirects to another host: the credentials headers are not sent there;
    /// the 3xx comes back as the answer. A redirect within the origin is followed.
    #[tokio::test]
    async fn credentials_never_follow_a_cross_origin_redirect() {
        use wiremock::matchers::{method, path};
        use wiremock::{Mock, MockServer, ResponseTemplate};
        let vendor = MockServer::start().await;
        let elsewhere = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/moved"))
            .respond_with(ResponseTemplate::new(302).insert_header("location", format!("{}/steal", elsewhere.uri())))
            .mount(&vendor)
            .await;
        Mock::given(method("GET"))
            .and(path("/old"))
            .respond_with(ResponseTemplate::new(301).insert_header("location", "/new"))
            .mount(&vendor)
            .await;
        Mock::given(method("GET")).and(path("/new")).respond_with(ResponseTemplate::new(200)).mount(&vendor).await;
        Mock::given(method("GET")).respond_with(ResponseTemplate::new(200)).mount(&elsewhere).await;
        let t = ReqwestTransport::new(TransportConfig::new("test")).unwrap();
        let base = Url::parse(&vendor.uri()).unwrap();
        let req = Request::get("/moved")
            .header(http::HeaderName::from_static("x-auth-token"), http::HeaderValue::from_static("secret-token"));
        let r = t.send(build_url(&base, "/moved", &[]).unwrap(), req).await.unwrap();
        assert_eq!(r.status.as_u16(), 302);
        assert!(elsewhere.received_requests().await.unwrap().is_empty(), "nothing reached the other host");
        let r = t.send(build_url(&base, "/old", &[]).unwrap(), Request::get("/old")).await.unwrap();
        assert_eq!(r.status.as_u16(), 200, "same-origin redirect followed");
        // reqwest's own default would have gone there, X-Auth-Token and all
        let mut cfg = TransportConfig::new("test");
        cfg.redirects = Redirects::None;
        let none = ReqwestTransport::new(cfg).unwrap();
        let r = none.send(build_url(&base, "/old", &[]).unwrap(), Request::get("/old")).await.unwrap();
        assert_eq!(r.status.as_u16(), 301);
    }
}
