//! [`NoRedirectTransport`]: a reqwest transport that never follows redirects.
//!
//! Customer.io redirects EU workspaces' calls made to US hosts, so a followed redirect turns into a confusing 401
//! (or, worse, silently routes EU data through the US). This transport returns the 3xx as is; the client turns it
//! into [`Error::Redirect`](crate::Error::Redirect). It is api-core's [`ReqwestTransport`] with
//! [`Redirects::None`] (api-core's default follows redirects only within the request's origin).

use std::{fmt, time::Duration};

use api_core::{RawResponse, Redirects, Request, ReqwestTransport, Transport, TransportConfig, TransportError};
use futures::future::BoxFuture;
use url::Url;

/// A [`Transport`] over `reqwest` that follows no redirect.
#[derive(Clone)]
pub struct NoRedirectTransport(ReqwestTransport);

impl fmt::Debug for NoRedirectTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("NoRedirectTransport").field(&self.0).finish()
    }
}

impl NoRedirectTransport {
    /// Builds the transport.
    ///
    /// # Errors
    /// When the TLS backend cannot be initialised.
    pub fn new(connect_timeout: Duration, request_timeout: Duration, user_agent: &str) -> Result<Self, TransportError> {
        let mut config = TransportConfig::new(user_agent);
        config.connect_timeout = connect_timeout;
        config.request_timeout = request_timeout;
        config.redirects = Redirects::None;
        Ok(Self(ReqwestTransport::new(config)?))
    }
}

impl Transport for NoRedirectTransport {
    fn send(&self, url: Url, request: Request) -> BoxFuture<'_, Result<RawResponse, TransportError>> {
        self.0.send(url, request)
    }
}
