//! [`NoRedirectTransport`]: a reqwest transport that never follows redirects.
//!
//! api-core's `ReqwestTransport` uses reqwest's default policy, which follows up to 10 redirects and drops the
//! `Authorization` header when the host changes. Customer.io redirects EU workspaces' calls from US hosts, so a
//! followed redirect turns into a confusing 401 (or, worse, silently routes EU data through the US). This transport
//! returns the 3xx as is; the client turns it into [`Error::Redirect`](crate::Error::Redirect).
//! (Implemented here because api-core has no redirect option; it could move there.)

use std::{fmt, time::Duration};

use api_core::{RawResponse, Request, Transport, TransportError, TransportErrorKind};
use futures::future::BoxFuture;
use http::header::{CONTENT_TYPE, USER_AGENT};
use url::Url;

/// A [`Transport`] over `reqwest` with `redirect::Policy::none()`.
#[derive(Clone)]
pub struct NoRedirectTransport {
    client: reqwest::Client,
    user_agent: String,
}

impl fmt::Debug for NoRedirectTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NoRedirectTransport").field("user_agent", &self.user_agent).finish_non_exhaustive()
    }
}

impl NoRedirectTransport {
    /// Builds the transport.
    ///
    /// # Errors
    /// When the TLS backend cannot be initialised.
    pub fn new(connect_timeout: Duration, request_timeout: Duration, user_agent: &str) -> Result<Self, TransportError> {
        let client = reqwest::Client::builder()
            .connect_timeout(connect_timeout)
            .timeout(request_timeout)
            .user_agent(user_agent)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| TransportError {
                kind: TransportErrorKind::Build,
                may_have_been_sent: false,
                message: e.to_string(),
            })?;
        Ok(Self { client, user_agent: user_agent.to_owned() })
    }
}

fn classify(e: &reqwest::Error) -> TransportError {
    let (kind, may_have_been_sent) = if e.is_connect() {
        (TransportErrorKind::Connect, false)
    } else if e.is_timeout() {
        (TransportErrorKind::Timeout, true)
    } else if e.is_builder() {
        (TransportErrorKind::Build, false)
    } else {
        (TransportErrorKind::Io, true)
    };
    let mut message = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        message.push_str(": ");
        message.push_str(&s.to_string());
        src = s.source();
    }
    TransportError { kind, may_have_been_sent, message }
}

impl Transport for NoRedirectTransport {
    fn send(&self, url: Url, request: Request) -> BoxFuture<'_, Result<RawResponse, TransportError>> {
        Box::pin(async move {
            let mut builder = self.client.request(request.method.clone(), url).headers(request.headers.clone());
            if !request.headers.contains_key(USER_AGENT) {
                builder = builder.header(USER_AGENT, self.user_agent.as_str());
            }
            if let Some(ct) = request.body.content_type() {
                if !request.headers.contains_key(CONTENT_TYPE) {
                    builder = builder.header(CONTENT_TYPE, ct);
                }
                builder = builder.body(request.body.bytes());
            }
            let resp = builder.send().await.map_err(|e| classify(&e))?;
            let status = resp.status();
            let headers = resp.headers().clone();
            let body = resp.bytes().await.map_err(|e| {
                let mut err = classify(&e);
                err.may_have_been_sent = true;
                err
            })?;
            Ok(RawResponse { status, headers, body })
        })
    }
}
