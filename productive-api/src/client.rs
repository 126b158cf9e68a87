//! [`Client`] and its builder: authentication headers, JSON:API content type, Productive's rate limits and the
//! generic JSON:API calls every resource module uses.

use std::{fmt, sync::Arc, time::Duration};

use api_core::{
    Body, HttpClient, Page, RateBudget, RateLimiter, RawResponse, Request, ReqwestTransport, RetryPolicy, Rule, Token,
    Transport, TransportConfig, VendorHint,
};
use futures::Stream;
use http::{HeaderName, HeaderValue, header};
use serde::de::DeserializeOwned;
use url::Url;

use crate::{
    Error,
    jsonapi::{Document, MAX_PAGE_SIZE, MEDIA_TYPE, Query, Resource, WriteDocument},
};

/// `https://api.productive.io/api/v2`.
pub const DEFAULT_BASE_URL: &str = "https://api.productive.io/api/v2";
/// The wait assumed after a 429 without `Retry-After`: one window of the 100 requests / 10 s limit.
pub const THROTTLE_WAIT: Duration = Duration::from_secs(10);

const AUTH_HEADER: HeaderName = HeaderName::from_static("x-auth-token");
const ORG_HEADER: HeaderName = HeaderName::from_static("x-organization-id");

/// Productive's general rate limit: 100 requests per 10 s and 4,000 per 30 min (per token and organization).
#[must_use]
pub fn default_rate_limiter() -> RateLimiter {
    RateLimiter::new([
        Rule::Window { max: 100, window: Duration::from_secs(10) },
        Rule::Window { max: 4000, window: Duration::from_secs(30 * 60) },
    ])
}

/// The additional limit on `/reports/*`: 10 requests per 30 s.
#[must_use]
pub fn reports_rate_limiter() -> RateLimiter {
    RateLimiter::new([Rule::Window { max: 10, window: Duration::from_secs(30) }])
}

/// 429 without `Retry-After`: wait one window. With it, the retry policy honours the header.
fn classify(resp: &RawResponse) -> VendorHint {
    if resp.status.as_u16() == 429 && resp.header("retry-after").is_none() {
        VendorHint::WaitAtLeast(THROTTLE_WAIT)
    } else {
        VendorHint::Default
    }
}

/// Builder for [`Client`].
pub struct ClientBuilder {
    token: Option<Token>,
    organization_id: Option<String>,
    base_url: String,
    transport_config: TransportConfig,
    transport: Option<Arc<dyn Transport>>,
    retry: RetryPolicy,
    limiter: Option<Arc<dyn RateBudget>>,
    reports_limiter: Option<RateLimiter>,
}

impl fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("token", &self.token)
            .field("organization_id", &self.organization_id)
            .field("base_url", &self.base_url)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

impl ClientBuilder {
    /// The API token (`X-Auth-Token`): a [`Token`], a `String` or a `&str` (kept secret: never in `Debug`).
    #[must_use]
    pub fn token(mut self, token: impl Into<Token>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// The organization id (`X-Organization-Id`, numeric, from your Productive URL).
    #[must_use]
    pub fn organization_id(mut self, id: impl fmt::Display) -> Self {
        self.organization_id = Some(id.to_string());
        self
    }

    /// Overrides the base URL (fakes, tests); it must include `/api/v2`. Parsed in [`ClientBuilder::build`]: an
    /// invalid URL is [`Error::InvalidRequest`] there.
    #[must_use]
    pub fn base_url(mut self, url: impl AsRef<str>) -> Self {
        self.base_url = url.as_ref().to_owned();
        self
    }

    /// Connect timeout (default 10 s).
    #[must_use]
    pub fn connect_timeout(mut self, d: Duration) -> Self {
        self.transport_config.connect_timeout = d;
        self
    }

    /// Whole-request timeout (default 60 s).
    #[must_use]
    pub fn request_timeout(mut self, d: Duration) -> Self {
        self.transport_config.request_timeout = d;
        self
    }

    /// `User-Agent` (default `productive-api/<version>`).
    #[must_use]
    pub fn user_agent(mut self, ua: impl Into<String>) -> Self {
        self.transport_config.user_agent = ua.into();
        self
    }

    /// Retry policy (default [`RetryPolicy::default`]).
    #[must_use]
    pub fn retry_policy(mut self, p: RetryPolicy) -> Self {
        self.retry = p;
        self
    }

    /// The rate budget every request draws from (default: an in-process [`default_rate_limiter`], 100 / 10 s and
    /// 4,000 / 30 min). Share one budget between clients that use the same token and organization: a limiter
    /// (clones of a `Client` already share theirs) or a budget shared by several processes (sync-core's
    /// `StoreBudget`, or an `Arc<dyn RateBudget>`). Requests are keyed `org:<organization id>`.
    #[must_use]
    pub fn rate_budget(mut self, budget: impl RateBudget + 'static) -> Self {
        self.limiter = Some(Arc::new(budget));
        self
    }

    /// Replaces the `/reports/*` limiter (default [`reports_rate_limiter`]).
    #[must_use]
    pub fn reports_rate_limiter(mut self, l: RateLimiter) -> Self {
        self.reports_limiter = Some(l);
        self
    }

    /// Uses another transport (tests).
    #[must_use]
    pub fn transport(mut self, t: Arc<dyn Transport>) -> Self {
        self.transport = Some(t);
        self
    }

    /// Builds the client.
    ///
    /// # Errors
    /// [`Error::InvalidRequest`] when the token or organization id is missing or not a valid header value, the base URL is
    /// invalid, or TLS cannot be initialised.
    pub fn build(self) -> Result<Client, Error> {
        let token = self.token.ok_or_else(|| Error::InvalidRequest("a token is required".into()))?;
        if token.is_empty() {
            return Err(Error::InvalidRequest("the token is empty".into()));
        }
        let org = self.organization_id.ok_or_else(|| Error::InvalidRequest("an organization id is required".into()))?;
        let auth = api_core::secret::sensitive_header(token.expose())
            .map_err(|_| Error::InvalidRequest("the token is not a valid header value".into()))?;
        let org_value = HeaderValue::from_str(&org)
            .map_err(|_| Error::InvalidRequest(format!("organization id {org:?} is not a valid header value")))?;
        let base_url = Url::parse(&self.base_url)
            .map_err(|e| Error::InvalidRequest(format!("base URL {:?}: {e}", self.base_url)))?;
        let transport: Arc<dyn Transport> = match self.transport {
            Some(t) => t,
            None => Arc::new(
                ReqwestTransport::new(self.transport_config).map_err(|e| Error::InvalidRequest(e.message.clone()))?,
            ),
        };
        let limiter: Arc<dyn RateBudget> = self.limiter.unwrap_or_else(|| Arc::new(default_rate_limiter()));
        let http = HttpClient::new(base_url.clone(), transport.clone())
            .with_budget(limiter.clone())
            .with_default_key(format!("org:{org}"))
            .with_retry(self.retry)
            .with_classifier(classify);
        // Reports count against the general (token, organization) budget as well as their own 10 / 30 s.
        let reports = HttpClient::new(base_url, transport)
            .with_budget(limiter)
            .with_global_limiter(self.reports_limiter.unwrap_or_else(reports_rate_limiter))
            .with_default_key(format!("org:{org}"))
            .with_retry(self.retry)
            .with_classifier(classify);
        Ok(Client { inner: Arc::new(Inner { http, reports, auth, org: org_value, organization_id: org, token }) })
    }
}

struct Inner {
    http: HttpClient,
    reports: HttpClient,
    auth: HeaderValue,
    org: HeaderValue,
    organization_id: String,
    token: Token,
}

/// A Productive API v2 client. Cheap to clone; clones share the rate limiter and connection pool.
///
/// ```no_run
/// # async fn run() -> Result<(), productive_api::Error> {
/// use productive_api::{Client, Token};
/// let client = Client::builder()
///     .token(Token::new(std::env::var("PRODUCTIVE_TOKEN").unwrap()))
///     .organization_id(12345)
///     .build()?;
/// let acme = client.find_company_by_name("Acme").await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("token", &self.inner.token)
            .field("organization_id", &self.inner.organization_id)
            .field("http", &self.inner.http)
            .finish()
    }
}

impl Client {
    /// A builder with the default base URL, limits and retry policy.
    #[must_use]
    pub fn builder() -> ClientBuilder {
        ClientBuilder {
            token: None,
            organization_id: None,
            base_url: DEFAULT_BASE_URL.to_owned(),
            transport_config: TransportConfig::new(api_core::user_agent!()),
            transport: None,
            retry: RetryPolicy::default(),
            limiter: None,
            reports_limiter: None,
        }
    }

    /// The organization id this client sends.
    #[must_use]
    pub fn organization_id(&self) -> &str {
        &self.inner.organization_id
    }

    /// The base URL.
    #[must_use]
    pub fn base_url(&self) -> &Url {
        self.inner.http.base_url()
    }

    fn prepare(&self, mut req: Request) -> Request {
        req = req.header(AUTH_HEADER, self.inner.auth.clone()).header(ORG_HEADER, self.inner.org.clone());
        req = req.header(header::ACCEPT, HeaderValue::from_static(MEDIA_TYPE));
        if matches!(req.body, Body::None) {
            // smeta and the Ruby gem send the JSON:API content type on every request; P-llms requires it on
            // DELETE as well.
            req = req.header(header::CONTENT_TYPE, HeaderValue::from_static(MEDIA_TYPE));
        }
        req
    }

    /// The raw escape hatch (the workspace's shared `send`): sends an [`api_core::Request`] (path relative to
    /// the base URL, e.g. `Request::get("/timers")`) with the same `X-Auth-Token` / `X-Organization-Id` /
    /// JSON:API media-type headers, the same rate budget (plus the 10 / 30 s reports limit for `/reports/*`) and
    /// the same retry policy as every typed call; a non-2xx response becomes [`Error::Api`] (or
    /// [`Error::UnsupportedMediaType`]). Use it for endpoints this crate does not type.
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn send(&self, req: Request) -> Result<RawResponse, Error> {
        let reports = req.path.trim_start_matches('/').starts_with("reports");
        let req = self.prepare(req);
        let http = if reports { &self.inner.reports } else { &self.inner.http };
        let resp = http.execute(req).await?;
        if resp.is_success() { Ok(resp) } else { Err(Error::from_response(&resp)) }
    }

    /// `GET path?query` decoded as a document with data `T`.
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn get_document<T: DeserializeOwned>(&self, path: &str, query: &Query) -> Result<Document<T>, Error> {
        let mut req = Request::get(path);
        for (k, v) in query.pairs() {
            req = req.query(k.clone(), v);
        }
        Ok(self.send(req).await?.json()?)
    }

    /// `GET path/{id}` (with `include` etc. from `query`).
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn get_resource<A: DeserializeOwned>(
        &self,
        path: &str,
        query: &Query,
    ) -> Result<Document<Resource<A>>, Error> {
        self.get_document(path, query).await
    }

    /// One page of a collection. Without `page[size]` in `query`, asks for [`MAX_PAGE_SIZE`].
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn list_page<A: DeserializeOwned>(
        &self,
        path: &str,
        query: &Query,
    ) -> Result<Document<Vec<Resource<A>>>, Error> {
        let q = if query.get("page[size]").is_some() { query.clone() } else { query.clone().page_size(MAX_PAGE_SIZE) };
        self.get_document(path, &q).await
    }

    /// Every resource of a collection, page by page (`page[number]` 1, 2, … until `current_page >= total_pages`),
    /// lazily. `page[size]` defaults to [`MAX_PAGE_SIZE`]. Stops after the first error; a server that ignores
    /// `page[number]` (answers the same `current_page` again) ends the stream with [`Error::RepeatedCursor`]
    /// instead of looping. Yields `data` only: for `included` resources use
    /// [`Client::stream_documents`] or [`Client::all_merged`].
    pub fn stream<A: DeserializeOwned + Send + 'static>(
        &self,
        path: &str,
        query: Query,
    ) -> impl Stream<Item = Result<Resource<A>, Error>> + Send + 'static {
        use futures::TryStreamExt as _;
        // the pages of `stream_documents`, their `data` only
        self.stream_documents::<A>(path, query)
            .map_ok(|doc| futures::stream::iter(doc.data.into_iter().map(Ok::<_, Error>)))
            .try_flatten()
    }

    /// Collects [`Client::stream`] into a `Vec`.
    ///
    /// # Errors
    /// The first error.
    pub async fn all<A: DeserializeOwned + Send + 'static>(
        &self,
        path: &str,
        query: Query,
    ) -> Result<Vec<Resource<A>>, Error> {
        use futures::TryStreamExt as _;
        self.stream(path, query).try_collect().await
    }

    /// Every page of a collection as a whole document (`data` **and** `included`, `meta`, `links`), page by page
    /// like [`Client::stream`], lazily; ask for related resources with [`Query::include`] and resolve them with
    /// [`Document::related`]. Stops after the first error.
    pub fn stream_documents<A: DeserializeOwned + Send + 'static>(
        &self,
        path: &str,
        query: Query,
    ) -> impl Stream<Item = Result<Document<Vec<Resource<A>>>, Error>> + Send + 'static {
        let client = self.clone();
        let path = path.to_owned();
        api_core::paginate(None, move |page: Option<u32>| {
            let client = client.clone();
            let path = path.clone();
            let q = query.clone().page_number(page.unwrap_or(1));
            async move {
                let doc = client.list_page::<A>(&path, &q).await?;
                let next = doc.next_page();
                Ok::<_, Error>(Page { items: vec![doc], next })
            }
        })
    }

    /// Collects [`Client::stream_documents`]: one document per page.
    ///
    /// # Errors
    /// The first error.
    pub async fn all_documents<A: DeserializeOwned + Send + 'static>(
        &self,
        path: &str,
        query: Query,
    ) -> Result<Vec<Document<Vec<Resource<A>>>>, Error> {
        use futures::TryStreamExt as _;
        self.stream_documents(path, query).try_collect().await
    }

    /// Every page of a collection merged into one document: `data` concatenated in order, `included` merged (a
    /// resource included by several pages appears once), `meta` and `links` of the last page.
    ///
    /// # Errors
    /// The first error.
    pub async fn all_merged<A: DeserializeOwned + Send + 'static>(
        &self,
        path: &str,
        query: Query,
    ) -> Result<Document<Vec<Resource<A>>>, Error> {
        let pages = self.all_documents::<A>(path, query).await?;
        let mut data = Vec::new();
        let mut included = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        let (mut meta, mut links) = (None, None);
        for page in pages {
            data.extend(page.data);
            for r in page.included.all() {
                if seen.insert((r.kind.clone(), r.id.clone())) {
                    included.push(r.clone());
                }
            }
            meta = page.meta;
            links = page.links;
        }
        Ok(Document { data, included: crate::jsonapi::Included::new(included), meta, links })
    }

    /// `POST path` with a JSON:API body.
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn post_document<A: DeserializeOwned>(
        &self,
        path: &str,
        body: &WriteDocument,
    ) -> Result<Document<Resource<A>>, Error> {
        let req = Request::post(path).body(Body::json_with(body, MEDIA_TYPE)?);
        Ok(self.send(req).await?.json()?)
    }

    /// `PATCH path` with a JSON:API body.
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn patch_document<A: DeserializeOwned>(
        &self,
        path: &str,
        body: &WriteDocument,
    ) -> Result<Document<Resource<A>>, Error> {
        let req = Request::patch(path).body(Body::json_with(body, MEDIA_TYPE)?);
        Ok(self.send(req).await?.json()?)
    }

    /// `PATCH /{kind}/{id}/{action}` (a member action: `archive`, `restore`, `close`, …) with the resource's
    /// identity as body (`{"data": {"type": kind, "id": id, "attributes": {…}}}`, `attributes` as given, usually
    /// empty), decoded as the updated resource. Productive documents these actions as `PATCH` (community OpenAPI,
    /// e.g. `/companies/{id}/archive`; P-old faq.html for `/deals/{id}/close` with `delivered_on`); the body an
    /// action without attributes expects is **unverified**, the identity document is the minimal valid JSON:API
    /// update.
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn patch_action<A: DeserializeOwned>(
        &self,
        kind: &str,
        id: impl fmt::Display,
        action: &str,
        attributes: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<Document<Resource<A>>, Error> {
        let mut doc = WriteDocument::update(kind, &id);
        for (k, v) in attributes {
            doc.data.attributes.insert(k.clone(), v.clone());
        }
        self.patch_document(&format!("/{kind}/{id}/{action}"), &doc).await
    }

    /// `DELETE path`.
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn delete_path(&self, path: &str) -> Result<(), Error> {
        self.send(Request::delete(path)).await.map(|_| ())
    }

    /// `GET /reports/…` through the reports limiter (10 / 30 s) as well as the general one.
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn report(&self, path: &str, query: &Query) -> Result<Document<Vec<Resource<serde_json::Value>>>, Error> {
        let p = if path.starts_with("/reports") {
            path.to_owned()
        } else {
            format!("/reports/{}", path.trim_start_matches('/'))
        };
        self.get_document(&p, query).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_token() {
        let c = Client::builder().token(Token::new("s3cr3t-token")).organization_id(42).build().unwrap();
        let d = format!("{c:?}");
        assert!(!d.contains("s3cr3t"), "{d}");
        assert!(d.contains("42"));
        let b = format!("{:?}", Client::builder().token(Token::new("s3cr3t-token")));
        assert!(!b.contains("s3cr3t"), "{b}");
        assert!(c.inner.auth.is_sensitive());
    }

    #[test]
    fn config_errors() {
        assert!(matches!(Client::builder().organization_id(1).build(), Err(Error::InvalidRequest(_))));
        assert!(matches!(Client::builder().token(Token::new("t")).build(), Err(Error::InvalidRequest(_))));
        assert!(matches!(
            Client::builder().token(Token::new("t")).organization_id(1).base_url("not a url").build(),
            Err(Error::InvalidRequest(_))
        ));
        assert!(matches!(
            Client::builder().token(Token::new("bad\nvalue")).organization_id(1).build(),
            Err(Error::InvalidRequest(_))
        ));
    }

    fn is_send_sync<T: Send + Sync + Clone + fmt::Debug>() {}

    #[test]
    fn client_is_send_sync_clone_debug() {
        is_send_sync::<Client>();
    }

    #[test]
    fn classifier_waits_one_window_on_bare_429() {
        let r = |status: u16, ra: Option<&str>| {
            let mut headers = http::HeaderMap::new();
            if let Some(v) = ra {
                headers.insert("retry-after", v.parse().unwrap());
            }
            RawResponse { status: http::StatusCode::from_u16(status).unwrap(), headers, body: bytes::Bytes::new() }
        };
        assert_eq!(classify(&r(429, None)), VendorHint::WaitAtLeast(THROTTLE_WAIT));
        assert_eq!(classify(&r(429, Some("3"))), VendorHint::Default);
        assert_eq!(classify(&r(500, None)), VendorHint::Default);
    }
}
