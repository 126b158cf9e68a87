//! Wire-level tests: each request's headers, path, query and JSON:API body; decoding of documented sample
//! documents; error shapes; pagination; retries.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use api_core::{RawResponse, Request, RetryPolicy, Transport, TransportError};
use futures::{StreamExt, future::BoxFuture};
use productive_api::{
    BillingType, Client, Error, EventId, Query, ServiceUnit, Token,
    resources::{
        assignments::Assigned,
        companies::{CompanyAttributes, NewCompany},
        deals::NewDeal,
        projects::{CopyWait, NewProject, ProjectCopy},
        services::NewService,
        webhooks::NewWebhook,
    },
    types::{DuplicationStatus, ProjectType},
    webhook::{Delivery, WebhookEvent, verify_signature},
};
use serde_json::{Value, json};
use wiremock::{
    Mock, MockServer, ResponseTemplate,
    matchers::{body_json, header, method, path, query_param, query_param_is_missing},
};

const VND: &str = "application/vnd.api+json";

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

fn client(server: &MockServer) -> Client {
    Client::builder()
        .token(Token::new("tok-123"))
        .organization_id(4242)
        .base_url(format!("{}/api/v2", server.uri()))
        .retry_policy(RetryPolicy { base_delay: Duration::from_millis(1), ..RetryPolicy::default() })
        .build()
        .unwrap()
}

fn vnd(status: u16, body: &Value) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_raw(body.to_string(), VND)
}

fn auth() -> (wiremock::matchers::HeaderExactMatcher, wiremock::matchers::HeaderExactMatcher) {
    (header("x-auth-token", "tok-123"), header("x-organization-id", "4242"))
}

#[tokio::test]
async fn find_company_by_name_sends_headers_filter_and_page_size() {
    let server = MockServer::start().await;
    let (a, o) = auth();
    Mock::given(method("GET"))
        .and(path("/api/v2/companies"))
        .and(a)
        .and(o)
        .and(header("accept", VND))
        .and(header("content-type", VND))
        .and(query_param("filter[name]", "Acme & Co"))
        .and(query_param("page[size]", "200"))
        .and(query_param("page[number]", "1"))
        .respond_with(vnd(200, &json!({
            "data": [
                {"id": "5", "type": "companies", "attributes": {"name": "ACME & CO"}},
                {"id": "6", "type": "companies", "attributes": {"name": "Acme & Co", "vat": "HR123", "unknown_new": 1}}
            ],
            "meta": {"current_page": 1, "total_pages": 1, "total_count": 2, "page_size": 200, "max_page_size": 200}
        })))
        .expect(1)
        .mount(&server)
        .await;
    let c = client(&server).find_company_by_name("Acme & Co").await.unwrap().unwrap();
    assert_eq!(c.id, "6", "the exact match wins over the case-insensitive one");
    assert_eq!(c.attributes.vat.as_deref(), Some("HR123"));
    assert!(c.attributes.extra.contains_key("unknown_new"));
}

#[tokio::test]
async fn create_company_and_project_bodies() {
    let server = MockServer::start().await;
    let (a, o) = auth();
    Mock::given(method("POST"))
        .and(path("/api/v2/companies"))
        .and(a)
        .and(o)
        .and(header("content-type", VND))
        .and(body_json(json!({"data": {"type": "companies", "attributes": {"name": "Acme", "domain": "acme.io"}}})))
        .respond_with(vnd(201, &json!({"data": {"id": "7", "type": "companies", "attributes": {"name": "Acme"}}})))
        .expect(1)
        .mount(&server)
        .await;
    let (a, o) = auth();
    Mock::given(method("POST"))
        .and(path("/api/v2/projects"))
        .and(a)
        .and(o)
        .and(header("content-type", VND))
        .and(body_json(json!({"data": {"type": "projects",
            "attributes": {"name": "Acme website", "project_type_id": 2},
            "relationships": {
                "company": {"data": {"type": "companies", "id": "7"}},
                "project_manager": {"data": {"type": "people", "id": "3"}},
                "workflow": {"data": {"type": "workflows", "id": "11"}}}}})))
        .respond_with(vnd(201, &serde_json::from_str::<Value>(&fixture("project_p_old.json")).unwrap()))
        .expect(1)
        .mount(&server)
        .await;
    let c = client(&server);
    let mut nc = NewCompany::new("Acme");
    nc.domain = Some("acme.io".into());
    let company = c.create_company(&nc).await.unwrap();
    let p = c
        .create_project(&NewProject::client("Acme website", company.typed_id(), "3".into()).workflow("11".into()))
        .await
        .unwrap();
    assert_eq!(p.attributes.project_type_id, Some(ProjectType::Client));
}

#[tokio::test]
async fn decodes_the_documented_project_sample() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v2/projects/804"))
        .and(query_param("include", "company,project_manager"))
        .respond_with(vnd(200, &serde_json::from_str::<Value>(&fixture("project_p_old.json")).unwrap()))
        .expect(1)
        .mount(&server)
        .await;
    let doc = client(&server)
        .get_project(&"804".into(), &Query::new().include(["company", "project_manager"]))
        .await
        .unwrap();
    let p = &doc.data;
    assert_eq!(p.typed_id().as_str(), "804");
    assert_eq!(p.attributes.duplication_status, Some(DuplicationStatus::Idle));
    assert!(!p.is_copying());
    assert_eq!(p.company_id(), None, "meta.included = false: no linkage");
    assert!(!p.relationship("company").unwrap().is_included());
    assert!(p.attributes.extra.contains_key("public_access"), "deprecated attribute kept");
}

#[tokio::test]
async fn pagination_over_three_pages_stops_at_total_pages() {
    let server = MockServer::start().await;
    for (n, ids) in [(1, vec!["1", "2"]), (2, vec!["3", "4"]), (3, vec!["5"])] {
        let data: Vec<Value> = ids
            .iter()
            .map(|id| json!({"id": id, "type": "people", "attributes": {"email": format!("{id}@x.io")}}))
            .collect();
        Mock::given(method("GET"))
            .and(path("/api/v2/people"))
            .and(query_param("page[number]", n.to_string()))
            .and(query_param("page[size]", "2"))
            .and(query_param("filter[status]", "1"))
            .respond_with(vnd(
                200,
                &json!({"data": data, "meta": {"current_page": n, "total_pages": 3, "total_count": 5,
                "page_size": 2, "max_page_size": 200}}),
            ))
            .expect(1)
            .mount(&server)
            .await;
    }
    let c = client(&server);
    let all: Vec<_> = c
        .stream::<Value>("/people", Query::new().filter("status", 1).page_size(2))
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(all.iter().map(|p| p.id.as_str()).collect::<Vec<_>>(), ["1", "2", "3", "4", "5"]);
}

#[tokio::test]
async fn empty_collection_and_missing_meta_are_one_page() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v2/companies"))
        .respond_with(vnd(200, &json!({"data": [], "meta": {"current_page": 1, "total_pages": 0, "total_count": 0}})))
        .expect(1)
        .mount(&server)
        .await;
    let all = client(&server).all::<CompanyAttributes>("/companies", Query::new()).await.unwrap();
    assert!(all.is_empty());
}

#[tokio::test]
async fn error_statuses_as_number_and_string() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v2/companies"))
        .respond_with(vnd(400, &serde_json::from_str::<Value>(&fixture("error_unsupported_filter.json")).unwrap()))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v2/people"))
        .respond_with(vnd(400, &serde_json::from_str::<Value>(&fixture("error_unsupported_include.json")).unwrap()))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/api/v2/companies"))
        .respond_with(vnd(
            422,
            &json!({"errors": [{"status": "422", "title": "Invalid Attribute",
            "detail": "name can't be blank", "source": {"pointer": "/data/attributes/name"}}]}),
        ))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/api/v2/deals"))
        .respond_with(vnd(422, &serde_json::from_str::<Value>(&fixture("error_validation.json")).unwrap()))
        .mount(&server)
        .await;
    let c = client(&server);
    let e = c.list_companies(&Query::new().filter("undefined", 1)).await.unwrap_err();
    let doc = e.error_document().unwrap();
    assert_eq!(doc.errors[0].status.as_deref(), Some("400"));
    assert_eq!(doc.errors[0].title.as_deref(), Some("Unsupported Filter"));
    let e = c.list_people(&Query::new().include(["userz"])).await.unwrap_err();
    assert!(e.to_string().contains("Include 'userz'"), "{e}");
    let e = c.create_company(&NewCompany::new("")).await.unwrap_err();
    let err = &e.error_document().unwrap().errors[0];
    assert_eq!(err.status.as_deref(), Some("422"));
    assert_eq!(err.source.as_ref().unwrap().pointer.as_deref(), Some("/data/attributes/name"));
    assert_eq!(e.class(), api_core::ErrorClass::Client);
    assert!(!e.may_have_been_sent());
    let e = c
        .create_deal(&NewDeal::deal("x", "1".into()).currency("EUR").responsible("3".into()).probability(10))
        .await
        .unwrap_err();
    assert_eq!(e.error_document().unwrap().errors[0].detail.as_deref(), Some("Validation failed"));
    assert_eq!(e.http_parts().unwrap().body.len(), fixture("error_validation.json").trim_end().len());
}

#[tokio::test]
async fn unsupported_media_type_is_typed() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/v2/webhooks"))
        .respond_with(ResponseTemplate::new(415))
        .expect(1)
        .mount(&server)
        .await;
    let e = client(&server).create_webhook(&NewWebhook::new(EventId::TaskUpdated, "https://x/y")).await.unwrap_err();
    assert!(matches!(e, Error::UnsupportedMediaType(_)), "{e:?}");
    assert!(e.to_string().contains("application/vnd.api+json"));
}

#[tokio::test]
async fn webhook_create_body_and_redacted_token() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/v2/webhooks"))
        .and(header("content-type", VND))
        .and(body_json(json!({"data": {"type": "webhooks", "attributes": {
            "event_id": 24, "target_url": "https://sync.example.com/hooks/productive",
            "name": "Kommo sync: task updated", "type_id": 1, "custom_headers": {"X-Sync": "1"}}}})))
        .respond_with(vnd(201, &serde_json::from_str::<Value>(&fixture("webhook_created.json")).unwrap()))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .and(path("/api/v2/webhooks/77"))
        .and(header("content-type", VND))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&server)
        .await;
    let c = client(&server);
    let mut w = NewWebhook::new(EventId::TaskUpdated, "https://sync.example.com/hooks/productive");
    w.name = Some("Kommo sync: task updated".into());
    w.custom_headers = Some(serde_json::from_value(json!({"X-Sync": "1"})).unwrap());
    let created = c.create_webhook(&w).await.unwrap();
    assert!(!format!("{created:?}").contains("secret-signature"));
    assert_eq!(created.attributes.signature_token.as_ref().unwrap().expose(), "8c1f0e2d-secret-signature-token");
    c.delete_webhook(&created.typed_id()).await.unwrap();
}

#[tokio::test]
async fn budget_service_and_assignment_bodies() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/v2/deals"))
        .and(body_json(json!({"data": {"type": "deals",
            "attributes": {"name": "Acme onboarding", "budget": true, "date": "2026-11-23", "currency": "EUR",
                           "deal_type_id": 2, "probability": 100},
            "relationships": {"company": {"data": {"type": "companies", "id": "7"}},
                              "project": {"data": {"type": "projects", "id": "9"}},
                              "responsible": {"data": {"type": "people", "id": "3"}}}}})))
        .respond_with(vnd(
            201,
            &json!({"data": {"id": "55", "type": "deals", "attributes": {"name": "Acme onboarding",
            "budget": true, "budget_total": 0}}}),
        ))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/api/v2/services"))
        .and(body_json(json!({"data": {"type": "services",
            "attributes": {"name": "Design", "unit_id": 1, "billing_type_id": 2, "price": "100000.0", "quantity": 1,
                           "service_type_id": "3"},
            "relationships": {"deal": {"data": {"type": "deals", "id": "55"}},
                              "service_type": {"data": {"type": "service_types", "id": "3"}}}}})))
        .respond_with(vnd(
            201,
            &json!({"data": {"id": "88", "type": "services", "attributes": {"name": "Design",
            "unit_id": 1, "billing_type_id": 2, "price": "100000.0", "quantity": "1.0"}}}),
        ))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/api/v2/project_assignments"))
        .and(body_json(json!({"data": {"type": "project_assignments", "attributes": {},
            "relationships": {"person": {"data": {"type": "people", "id": "3"}},
                              "project": {"data": {"type": "projects", "id": "9"}}}}})))
        .respond_with(vnd(422, &json!({"errors": [{"status": 422, "detail": "Person has already been taken"}]})))
        .expect(1)
        .mount(&server)
        .await;
    let c = client(&server);
    // api-notes/productive.md §4 Deals and budgets: every attribute listed as required on create is sent
    let b = NewDeal::budget("Acme onboarding", "7".into(), "9".into())
        .currency("EUR")
        .responsible("3".into())
        .date(chrono::NaiveDate::from_ymd_opt(2026, 11, 23).unwrap());
    let budget = c.create_budget(&b).await.unwrap();
    assert!(budget.is_budget());
    let mut s =
        NewService::new("Design", budget.typed_id(), "3".into(), ServiceUnit::Hour, BillingType::TimeAndMaterials);
    s.price = Some("100000.0".into());
    s.quantity = Some(1.into());
    let svc = c.create_service(&s).await.unwrap();
    assert_eq!(svc.attributes.price.unwrap().as_f64(), Some(100_000.0));
    let r = c.assign_person_to_project(&"9".into(), &"3".into()).await.unwrap();
    assert!(matches!(r, Assigned::AlreadyAssigned(_)));
}

#[tokio::test]
async fn project_copy_is_posted_then_polled_until_idle() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/v2/projects/copy"))
        .and(body_json(
            json!({"data": {"type": "projects", "attributes": {"template_id": "42", "name": "Acme onboarding",
            "company_id": "7", "copy_memberships": true, "copy_boards": true, "copy_task_lists": true,
            "copy_open_tasks": true}}}),
        ))
        .respond_with(vnd(
            201,
            &json!({"data": {"id": "900", "type": "projects",
            "attributes": {"name": "Acme onboarding", "duplication_status": "in_progress"}}}),
        ))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v2/projects/900"))
        .respond_with(vnd(
            200,
            &json!({"data": {"id": "900", "type": "projects",
            "attributes": {"name": "Acme onboarding", "duplication_status": "copying_tasks"}}}),
        ))
        .up_to_n_times(2)
        .expect(2)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v2/projects/900"))
        .respond_with(vnd(
            200,
            &json!({"data": {"id": "900", "type": "projects",
            "attributes": {"name": "Acme onboarding", "duplication_status": "idle"}}}),
        ))
        .expect(1)
        .with_priority(2)
        .mount(&server)
        .await;
    let mut copy = ProjectCopy::from_template("42".into(), "Acme onboarding");
    copy.company_id = Some("7".into());
    let p = client(&server)
        .copy_project_and_wait(&copy, CopyWait::new(Duration::from_millis(1), Duration::from_secs(10)))
        .await
        .unwrap();
    assert_eq!(p.attributes.duplication_status, Some(DuplicationStatus::Idle));
}

#[tokio::test]
async fn project_copy_times_out() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v2/projects/900"))
        .and(query_param_is_missing("include"))
        .respond_with(vnd(
            200,
            &json!({"data": {"id": "900", "type": "projects",
            "attributes": {"duplication_status": "in_progress"}}}),
        ))
        .expect(1..=3)
        .mount(&server)
        .await;
    let e = client(&server)
        .wait_for_project_copy(&"900".into(), CopyWait::new(Duration::from_millis(10), Duration::from_millis(25)))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::JobTimeout { polls: 1..=3, .. }), "{e}");
}

/// A scripted transport for retry timing in virtual time (a real socket and a paused clock do not mix).
#[derive(Debug, Default)]
struct Script {
    queue: Mutex<Vec<(u16, Option<&'static str>)>>,
    calls: Mutex<Vec<tokio::time::Instant>>,
}

impl Transport for Script {
    fn send(&self, _url: url::Url, _request: Request) -> BoxFuture<'_, Result<RawResponse, TransportError>> {
        Box::pin(async move {
            self.calls.lock().unwrap().push(tokio::time::Instant::now());
            let (status, retry_after) = self.queue.lock().unwrap().remove(0);
            let mut headers = http::HeaderMap::new();
            if let Some(ra) = retry_after {
                headers.insert("retry-after", ra.parse().unwrap());
            }
            Ok(RawResponse {
                status: http::StatusCode::from_u16(status).unwrap(),
                headers,
                body: bytes::Bytes::from_static(br#"{"data":[],"meta":{"current_page":1,"total_pages":1}}"#),
            })
        })
    }
}

fn scripted(script: Arc<Script>) -> Client {
    Client::builder().token(Token::new("t")).organization_id(1).transport(script).build().unwrap()
}

#[tokio::test(start_paused = true)]
async fn bare_429_waits_one_window_then_succeeds() {
    let s = Arc::new(Script { queue: Mutex::new(vec![(429, None), (200, None)]), ..Script::default() });
    scripted(s.clone()).list_companies(&Query::new()).await.unwrap();
    let calls = s.calls.lock().unwrap();
    assert_eq!(calls.len(), 2);
    assert!(calls[1] - calls[0] >= Duration::from_secs(10), "{:?}", calls[1] - calls[0]);
}

#[tokio::test(start_paused = true)]
async fn retry_after_is_honoured_on_429_even_for_post() {
    let s = Arc::new(Script { queue: Mutex::new(vec![(429, Some("3")), (201, None)]), ..Script::default() });
    let c = scripted(s.clone());
    let _ = c.post_document::<Value>("/companies", &NewCompany::new("A").to_document().unwrap()).await;
    let calls = s.calls.lock().unwrap();
    assert_eq!(calls.len(), 2);
    let gap = calls[1] - calls[0];
    assert!(gap >= Duration::from_secs(3) && gap < Duration::from_secs(10), "{gap:?}");
}

#[tokio::test(start_paused = true)]
async fn server_errors_retry_gets_but_not_posts() {
    let s = Arc::new(Script { queue: Mutex::new(vec![(502, None), (200, None)]), ..Script::default() });
    scripted(s.clone()).list_companies(&Query::new()).await.unwrap();
    assert_eq!(s.calls.lock().unwrap().len(), 2);
    let s = Arc::new(Script { queue: Mutex::new(vec![(502, None), (201, None)]), ..Script::default() });
    let e = scripted(s.clone()).create_company(&NewCompany::new("A")).await.unwrap_err();
    assert_eq!(s.calls.lock().unwrap().len(), 1);
    assert!(e.may_have_been_sent());
    assert!(e.is_retryable());
}

#[tokio::test(start_paused = true)]
async fn rate_limiter_spaces_the_101st_request() {
    let s = Arc::new(Script { queue: Mutex::new(vec![(200, None); 101]), ..Script::default() });
    let c = scripted(s.clone());
    for _ in 0..101 {
        c.list_companies(&Query::new()).await.unwrap();
    }
    let calls = s.calls.lock().unwrap();
    assert!(calls[99] - calls[0] < Duration::from_secs(1), "100 requests pass at once");
    assert!(calls[100] - calls[0] >= Duration::from_secs(10), "the 101st waits for the 10 s window");
}

#[test]
fn delivery_fixture_known_answer_signature_and_parsing() {
    // python3 -c "import hmac,hashlib;b=open('tests/fixtures/task_created_delivery.json','rb').read();\
    //   print(hmac.new(b'8c1f0e2d-secret-signature-token',b'1790000000.'+b,hashlib.sha256).hexdigest())"
    const SIG: &str = "46f050681c39e09ce4f95bb7e75589a3545a111171d0112f335b512971616c2d";
    let body = fixture("task_created_delivery.json");
    let token = Token::new("8c1f0e2d-secret-signature-token");
    let clock = api_core::FixedClock::at_unix(1_790_000_100);
    let header = format!("t=1790000000, s={SIG}");
    assert_eq!(
        verify_signature(&token, Some(&header), body.as_bytes(), &clock, Duration::from_secs(300)).unwrap(),
        1_790_000_000
    );
    let forged = format!("t=1790000000, s={}", "0".repeat(64));
    assert!(verify_signature(&token, Some(&forged), body.as_bytes(), &clock, Duration::from_secs(300)).is_err());
    let late = api_core::FixedClock::at_unix(1_790_000_000 + 301);
    assert!(verify_signature(&token, Some(&header), body.as_bytes(), &late, Duration::from_secs(300)).is_err());
    let d = Delivery::parse(body.as_bytes()).unwrap();
    assert_eq!(d.dedup_key(), "create_task|20305431|2026-09-23T18:46:58.988+02:00");
    let WebhookEvent::Task { task, included, completed, .. } = d.typed().unwrap() else { panic!() };
    assert!(!completed);
    assert_eq!(task.typed_id().as_str(), "20305431");
    assert_eq!(task.assignee_id(), None);
    assert_eq!(included.all().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn reports_have_their_own_limit_and_count_against_the_general_one() {
    let s = Arc::new(Script { queue: Mutex::new(vec![(200, None); 111]), ..Script::default() });
    let c = scripted(s.clone());
    for _ in 0..11 {
        c.report("/reports/time_reports", &Query::new()).await.unwrap();
    }
    {
        let calls = s.calls.lock().unwrap();
        assert!(calls[9] - calls[0] < Duration::from_secs(1));
        assert!(calls[10] - calls[0] >= Duration::from_secs(30), "the 11th report waits for the 30 s window");
    }
    // the 11th report (at t≈30 s) also used the general 100 / 10 s window: 99 more requests pass at once, the
    // 100th waits until that report is 10 s old
    for _ in 0..100 {
        c.list_companies(&Query::new()).await.unwrap();
    }
    let calls = s.calls.lock().unwrap();
    assert!(calls[109] - calls[10] < Duration::from_secs(1));
    assert!(calls[110] - calls[10] >= Duration::from_secs(10), "{:?}", calls[110] - calls[10]);
}

#[tokio::test]
async fn a_server_that_ignores_page_number_is_an_error_not_a_loop() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v2/companies"))
        .respond_with(vnd(
            200,
            &json!({"data": [{"id": "1", "type": "companies", "attributes": {"name": "A"}}],
            "meta": {"current_page": 1, "total_pages": 3, "total_count": 3}}),
        ))
        .expect(2)
        .mount(&server)
        .await;
    let items: Vec<_> = client(&server).stream::<CompanyAttributes>("/companies", Query::new()).collect().await;
    assert_eq!(items.len(), 3);
    assert!(items[0].is_ok() && items[1].is_ok());
    assert!(matches!(items[2], Err(Error::RepeatedCursor(_))), "{:?}", items[2]);
}

#[tokio::test]
async fn decode_errors_name_the_json_path() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v2/companies/5"))
        .respond_with(vnd(
            200,
            &json!({"data": {"id": "5", "type": "companies", "attributes": {"name": ["not", "a", "string"]}}}),
        ))
        .mount(&server)
        .await;
    let e = client(&server).get_company(&"5".into()).await.unwrap_err();
    let Error::Decode(d) = &e else { panic!("{e:?}") };
    assert_eq!(d.path, "data.attributes.name");
    assert_eq!(e.class(), api_core::ErrorClass::Decode);
}

/// One `null` in an attribute the crate declared as a plain `String`/`Vec`/`bool` used to fail the whole page.
/// The notes (api-notes/productive.md §8 "Attributes: `#[serde(default)]` everywhere"; §4 People: placeholder and
/// contact people, `tag_list`, `title`, … from withone "List People") give no non-null guarantee for any attribute,
/// and the community OpenAPI (`productive-community.yaml`) declares every body as a free-form object, so each
/// attribute is decoded as possibly null: `null` reads as the empty value.
#[tokio::test]
async fn pages_with_null_attributes_decode() {
    use productive_api::resources::{
        comments::CommentAttributes,
        deals::DealAttributes,
        people::PersonAttributes,
        projects::ProjectAttributes,
        services::{ServiceAttributes, ServiceTypeAttributes},
        tasks::{TaskAttributes, TaskListAttributes},
    };
    let server = MockServer::start().await;
    let page = |kind: &str, attrs: Value| {
        json!({"data": [{"id": "1", "type": kind, "attributes": attrs},
                        {"id": "2", "type": kind, "attributes": {}}],
               "meta": {"current_page": 1, "total_pages": 1, "total_count": 2, "page_size": 200, "max_page_size": 200}})
    };
    let bodies = [
        (
            "people",
            json!({"first_name": "Pat", "last_name": null, "email": null, "title": null, "tag_list": null,
                          "placeholder": true}),
        ),
        ("companies", json!({"name": null, "billing_name": null, "tag_list": null, "contact": null})),
        ("comments", json!({"body": null, "created_at": "2026-09-23T18:46:58.988+02:00"})),
        ("deals", json!({"name": null, "budget": true, "date": null, "budget_total": null})),
        ("projects", json!({"name": null, "duplication_status": null, "template": null})),
        ("services", json!({"name": null, "price": null, "unit_id": null})),
        ("service_types", json!({"name": null})),
        ("tasks", json!({"title": null, "closed": null, "due_date": null})),
        ("task_lists", json!({"name": null})),
    ];
    for (kind, attrs) in &bodies {
        Mock::given(method("GET"))
            .and(path(format!("/api/v2/{kind}")))
            .respond_with(vnd(200, &page(kind, attrs.clone())))
            .expect(1)
            .mount(&server)
            .await;
    }
    let c = client(&server);
    let people = c.all::<PersonAttributes>("/people", Query::new()).await.unwrap();
    assert_eq!(people[0].attributes.full_name(), "Pat");
    assert!(people[0].attributes.tag_list.is_empty() && people[0].attributes.email.is_none());
    let companies = c.all::<CompanyAttributes>("/companies", Query::new()).await.unwrap();
    assert_eq!(companies[0].attributes.name, "");
    assert_eq!(c.all::<CommentAttributes>("/comments", Query::new()).await.unwrap()[0].attributes.body, "");
    assert!(c.all::<DealAttributes>("/deals", Query::new()).await.unwrap()[0].is_budget());
    assert_eq!(c.all::<ProjectAttributes>("/projects", Query::new()).await.unwrap().len(), 2);
    assert_eq!(c.all::<ServiceAttributes>("/services", Query::new()).await.unwrap().len(), 2);
    assert_eq!(c.all::<ServiceTypeAttributes>("/service_types", Query::new()).await.unwrap().len(), 2);
    let tasks = c.all::<TaskAttributes>("/tasks", Query::new()).await.unwrap();
    assert!(!tasks[0].attributes.closed && tasks[0].attributes.title.is_empty());
    assert_eq!(c.all::<TaskListAttributes>("/task_lists", Query::new()).await.unwrap().len(), 2);
}

/// api-notes/productive.md §2 "Document shape": related resources come only with `?include=` and land in the
/// top-level `included`; §2 "Pagination": page with `page[number]` until `meta.total_pages`. `stream` yields
/// `data` only, so the included companies were lost; the document stream keeps them, page by page.
#[tokio::test]
async fn document_stream_keeps_included_across_pages() {
    use productive_api::resources::projects::ProjectAttributes;
    let server = MockServer::start().await;
    let project = |id: u32, company: u32| {
        json!({"id": id.to_string(), "type": "projects", "attributes": {"name": format!("P{id}")},
               "relationships": {"company": {"data": {"type": "companies", "id": company.to_string()}}}})
    };
    let company =
        |id: u32| json!({"id": id.to_string(), "type": "companies", "attributes": {"name": format!("C{id}")}});
    let pages = [
        (1, json!([project(1, 7), project(2, 8)]), json!([company(7), company(8)])),
        (2, json!([project(3, 7)]), json!([company(7)])),
    ];
    for (n, data, included) in pages {
        Mock::given(method("GET"))
            .and(path("/api/v2/projects"))
            .and(query_param("include", "company"))
            .and(query_param("page[number]", n.to_string()))
            .and(query_param("page[size]", "2"))
            .respond_with(vnd(
                200,
                &json!({"data": data, "included": included,
                        "meta": {"current_page": n, "total_pages": 2, "total_count": 3, "page_size": 2}}),
            ))
            .expect(2)
            .mount(&server)
            .await;
    }
    let c = client(&server);
    let q = Query::new().include(["company"]).page_size(2);
    let docs: Vec<_> = c.stream_documents::<ProjectAttributes>("/projects", q.clone()).collect::<Vec<_>>().await;
    assert_eq!(docs.len(), 2);
    let names = |d: &productive_api::Document<Vec<productive_api::Resource<ProjectAttributes>>>| {
        d.data
            .iter()
            .map(|p| d.related::<_, CompanyAttributes>(p, "company").unwrap().unwrap().attributes.name)
            .collect::<Vec<_>>()
    };
    let docs: Vec<_> = docs.into_iter().map(Result::unwrap).collect();
    assert_eq!(names(&docs[0]), ["C7", "C8"]);
    assert_eq!(names(&docs[1]), ["C7"]);
    let merged = c.all_merged::<ProjectAttributes>("/projects", q).await.unwrap();
    assert_eq!(merged.data.len(), 3);
    assert_eq!(merged.included.all().len(), 2, "company 7 included by both pages appears once");
    assert_eq!(names(&merged), ["C7", "C8", "C7"]);
    assert_eq!(merged.meta.unwrap().current_page, Some(2));
}

#[tokio::test]
async fn document_stream_stops_after_an_error() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v2/projects"))
        .and(query_param("page[number]", "1"))
        .respond_with(vnd(200, &json!({"data": [], "meta": {"current_page": 1, "total_pages": 3}})))
        .expect(2)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v2/projects"))
        .and(query_param("page[number]", "2"))
        .respond_with(vnd(400, &json!({"errors": [{"status": 400, "title": "Unsupported Include"}]})))
        .expect(2)
        .mount(&server)
        .await;
    let items: Vec<_> = client(&server).stream_documents::<Value>("/projects", Query::new()).collect().await;
    assert_eq!(items.len(), 2);
    assert!(items[0].is_ok() && items[1].is_err());
    assert!(client(&server).all_documents::<Value>("/projects", Query::new()).await.is_err());
}
