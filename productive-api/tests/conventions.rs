//! The workspace error convention (`api_core::VendorError`, CONTRIBUTING.md "One SDK shape"), checked with the same
//! scripted answers for every vendor crate: `api_core::conventions::check_error_conventions`.
#![allow(missing_docs)]

use api_core::RetryPolicy;
use api_core::conventions::check_verifier_window;
use api_core::conventions::{ThrottleWait, check_error_conventions};
use api_core::{FixedClock, Token};
use http::{HeaderMap, HeaderValue};
use std::sync::Arc;
use std::time::Duration;

/// Productive: 10 s after a 429 without Retry-After (one window of 100 requests / 10 s, productive.md).
#[tokio::test]
async fn errors_follow_the_workspace_convention() {
    check_error_conventions(ThrottleWait::Penalty(productive_api::client::THROTTLE_WAIT), |url| async move {
        let client = productive_api::Client::builder()
            .token(api_core::Token::new("token"))
            .organization_id(1)
            .base_url(url.as_str())
            .connect_timeout(Duration::from_secs(5))
            .request_timeout(Duration::from_secs(10))
            .retry_policy(RetryPolicy::none())
            .build()
            .unwrap();
        client.get_company(&"1".into()).await.map(drop)
    })
    .await;
    assert_eq!(productive_api::client::THROTTLE_WAIT, Duration::from_secs(10));
}

/// The webhook shape: `webhook::parse`, and `webhook::Verifier` with `tolerance`, `clock`, `verify_headers`
/// (Productive's also parses and refuses a replayed signature, so each check uses a fresh verifier).
#[test]
fn webhooks_follow_the_workspace_shape() {
    use productive_api::webhook::{self, SIGNATURE_HEADER, Verifier};
    let body = include_bytes!("fixtures/task_created_delivery.json").to_vec();
    assert!(webhook::parse(&body).is_ok());
    let token = Token::new("8c1f0e2d-secret-signature-token");
    check_verifier_window(
        |t| {
            let mut h = HeaderMap::new();
            h.insert(SIGNATURE_HEADER, HeaderValue::from_str(&webhook::sign(&token, t, &body)).unwrap());
            (h, body.clone())
        },
        |now, headers, body| {
            Verifier::new(token.clone())
                .tolerance(Duration::from_secs(300))
                .clock(Arc::new(FixedClock::at_unix(now)))
                .verify_headers(headers, body)
                .is_ok()
        },
    );
}

/// A budget that counts the slots it grants, per key (to show that `send`, `list_*` and `stream_*` all draw from
/// the budget plugged in with `rate_budget`).
#[derive(Debug, Default, Clone)]
struct CountingBudget(Arc<std::sync::Mutex<Vec<String>>>);

impl api_core::RateBudget for CountingBudget {
    fn acquire<'a>(&'a self, key: &'a str) -> futures::future::BoxFuture<'a, Result<(), api_core::BudgetError>> {
        self.0.lock().unwrap().push(key.to_owned());
        Box::pin(async { Ok(()) })
    }
    fn pause<'a>(
        &'a self,
        _key: &'a str,
        _wait: Duration,
    ) -> futures::future::BoxFuture<'a, Result<(), api_core::BudgetError>> {
        Box::pin(async { Ok(()) })
    }
    fn held<'a>(
        &'a self,
        _key: &'a str,
    ) -> futures::future::BoxFuture<'a, Result<Option<Duration>, api_core::BudgetError>> {
        Box::pin(async { Ok(None) })
    }
}

/// The shared builder and list vocabulary (CONTRIBUTING.md "One SDK shape"): `token(impl Into<Token>)`,
/// `base_url(impl AsRef<str>)`, `rate_budget(impl RateBudget)`, `list_*` = one page, `stream_*` = every item,
/// and the public raw `send(Request)` going through the same auth headers, budget and retry path.
/// Wire facts: api-notes productive.md §1 (X-Auth-Token + X-Organization-Id, `application/vnd.api+json`) and §2
/// "Pagination" (`page[number]`/`page[size]`, `meta.current_page`/`total_pages`).
#[tokio::test]
async fn builder_lists_streams_and_send_follow_the_shared_shape() {
    use futures::TryStreamExt as _;
    use serde_json::json;
    use wiremock::matchers::{header, method, path, query_param};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    let server = MockServer::start().await;
    let page = |n: u32, id: &str| {
        ResponseTemplate::new(200).set_body_raw(
            json!({"data": [{"id": id, "type": "companies", "attributes": {"name": format!("C{id}")}}],
                   "meta": {"current_page": n, "total_pages": 2, "total_count": 2, "page_size": 1, "max_page_size": 200}})
            .to_string(),
            "application/vnd.api+json",
        )
    };
    // page 2 when asked for; page 1 otherwise (`list_*` without `page[number]` gets the first page)
    Mock::given(method("GET"))
        .and(path("/api/v2/companies"))
        .and(header("x-auth-token", "tok-shared"))
        .and(header("x-organization-id", "77"))
        .and(query_param("page[number]", "2"))
        .and(query_param("page[size]", "1"))
        .respond_with(page(2, "2"))
        .with_priority(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v2/companies"))
        .and(header("x-auth-token", "tok-shared"))
        .and(header("x-organization-id", "77"))
        .and(query_param("page[size]", "1"))
        .respond_with(page(1, "1"))
        .expect(2)
        .mount(&server)
        .await;
    // the raw escape hatch: a 503 then a 200, so the retry path is exercised (GET is idempotent)
    Mock::given(method("GET"))
        .and(path("/api/v2/organization_memberships"))
        .and(header("x-auth-token", "tok-shared"))
        .and(header("x-organization-id", "77"))
        .and(header("content-type", "application/vnd.api+json"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v2/organization_memberships"))
        .and(header("x-auth-token", "tok-shared"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(r#"{"data":[]}"#, "application/vnd.api+json"))
        .expect(1)
        .mount(&server)
        .await;

    let budget = CountingBudget::default();
    let base: String = format!("{}/api/v2", server.uri()); // `String`, `&str`, `Url::as_str` all fit AsRef<str>
    let client = productive_api::Client::builder()
        .token("tok-shared") // a &str is Into<Token>
        .organization_id(77)
        .base_url(&base)
        .rate_budget(budget.clone())
        .retry_policy(RetryPolicy { base_delay: Duration::from_millis(1), ..RetryPolicy::default() })
        .build()
        .unwrap();

    let q = productive_api::Query::new().page_size(1);
    let one = client.list_companies(&q).await.unwrap();
    assert_eq!(one.data.len(), 1, "list_* is ONE page");
    assert_eq!(one.next_page(), Some(2), "and says how to continue");
    let all: Vec<_> = client.stream_companies(q).try_collect().await.unwrap();
    assert_eq!(all.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(), ["1", "2"], "stream_* is every item");

    let raw = client.send(api_core::Request::get("/organization_memberships")).await.unwrap();
    assert_eq!(raw.status.as_u16(), 200);
    let keys = budget.0.lock().unwrap().clone();
    // 1 list + 2 stream pages + 2 attempts of `send`, every one keyed by organization
    assert_eq!(keys.len(), 5, "{keys:?}");
    assert!(keys.iter().all(|k| k == "org:77"), "{keys:?}");

    // an invalid base URL is refused in build(), before anything is sent
    let err = productive_api::Client::builder().token(Token::new("t")).organization_id(1).base_url("::nope").build();
    assert!(matches!(err, Err(productive_api::Error::InvalidRequest(_))));
}
