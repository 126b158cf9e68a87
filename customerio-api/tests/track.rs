//! Track v1/v2 and App API on the wire (wiremock): paths, auth headers, bodies, errors, retries, batching.

use std::time::Duration;

use customerio_api::{
    Audience, BroadcastId, BroadcastTrigger, Client, Device, Error, Event, EventId, Identifier, Identify, MessageRef,
    Operation, Platform, Region, RetryPolicy, SegmentId, SendEmail, Token, ValidationError, VendorError,
};
use serde_json::{Map, Value, json};
use wiremock::{
    Mock, MockServer, Request, Respond, ResponseTemplate,
    matchers::{body_json, header, method, path, query_param},
};

// python3 -c "import base64;print(base64.b64encode(b'site-1:key-1').decode())" -> c2l0ZS0xOmtleS0x
const BASIC: &str = "Basic c2l0ZS0xOmtleS0x";
const BEARER: &str = "Bearer app-key-1";

fn fixture(name: &str) -> Value {
    serde_json::from_slice(&std::fs::read(format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap())
        .unwrap()
}

fn client(server: &MockServer) -> Client {
    Client::builder()
        .track_credentials("site-1", Token::new("key-1"))
        .app_api_key(Token::new("app-key-1"))
        .base_url(server.uri())
        .unlimited()
        .retry_policy(RetryPolicy { base_delay: Duration::from_millis(5), ..RetryPolicy::default() })
        .build()
        .unwrap()
}

fn ok() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({}))
}

#[tokio::test]
async fn identify_encodes_email_with_plus_and_sends_basic_auth() {
    let server = MockServer::start().await;
    Mock::given(method("PUT"))
        .and(path("/api/v1/customers/ann%2Btag%40example.com"))
        .and(header("authorization", BASIC))
        .and(header("content-type", "application/json"))
        .and(body_json(
            json!({"first_name": "Ann", "created_at": 1_361_205_308, "_update": true, "_timestamp": 1_700_000_000}),
        ))
        .respond_with(ok())
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("PUT"))
        .and(path("/api/v1/customers/cio_d9c106000001"))
        .and(body_json(json!({"email": "new@example.com"})))
        .respond_with(ok())
        .expect(1)
        .mount(&server)
        .await;
    let c = client(&server);
    c.identify(
        &Identifier::email("ann+tag@example.com"),
        &Identify::new().attr("first_name", "Ann").created_at(1_361_205_308).update_only().timestamp(1_700_000_000),
    )
    .await
    .unwrap();
    c.identify(&Identifier::cio_id("d9c106000001"), &Identify::new().email("new@example.com")).await.unwrap();
}

#[tokio::test]
async fn identify_5xx_is_retried_because_put_is_idempotent() {
    let server = MockServer::start().await;
    Mock::given(method("PUT")).respond_with(ResponseTemplate::new(503)).up_to_n_times(2).expect(2).mount(&server).await;
    Mock::given(method("PUT")).respond_with(ok()).expect(1).mount(&server).await;
    client(&server).identify(&Identifier::id("1"), &Identify::new()).await.unwrap();
}

#[tokio::test]
async fn request_timeout_408_is_retried_for_idempotent_requests() {
    let server = MockServer::start().await;
    Mock::given(method("DELETE"))
        .respond_with(ResponseTemplate::new(408))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("DELETE")).respond_with(ok()).expect(1).mount(&server).await;
    client(&server).delete_person(&Identifier::id("1")).await.unwrap();
}

#[tokio::test]
async fn connect_errors_are_typed_and_not_sent() {
    // nothing listens on port 9 of loopback
    let c = Client::builder()
        .track_credentials("s", Token::new("k"))
        .track_base_url("http://127.0.0.1:9")
        .retry_policy(RetryPolicy::none())
        .build()
        .unwrap();
    let err = c.track(&Identifier::id("1"), &Event::new("x")).await.unwrap_err();
    assert!(matches!(err, Error::Transport(_)), "{err:?}");
    assert!(!err.may_have_been_sent());
    assert!(err.is_retryable());
}

#[tokio::test]
async fn track_event_with_id_is_retried_without_id_is_not() {
    let server = MockServer::start().await;
    let id: EventId = "01E4C4CT6YDC7Y5M7FE1GWWPQJ".parse().unwrap();
    Mock::given(method("POST"))
        .and(path("/api/v1/customers/42/events"))
        .and(header("authorization", BASIC))
        .and(body_json(json!({"name": "purchase", "id": "01E4C4CT6YDC7Y5M7FE1GWWPQJ", "timestamp": 1_700_000_000, "data": {"price": 23.45}})))
        .respond_with(ResponseTemplate::new(502))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/api/v1/customers/42/events"))
        .and(body_json(json!({"name": "purchase", "id": "01E4C4CT6YDC7Y5M7FE1GWWPQJ", "timestamp": 1_700_000_000, "data": {"price": 23.45}})))
        .respond_with(ok())
        .expect(1)
        .mount(&server)
        .await;
    let c = client(&server);
    let e = Event::new("purchase").id(id).timestamp(1_700_000_000).data("price", 23.45);
    c.track(&Identifier::id("42"), &e).await.unwrap();

    let server = MockServer::start().await;
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(502)).expect(1).mount(&server).await;
    let err = client(&server).track(&Identifier::id("42"), &Event::new("x").without_id()).await.unwrap_err();
    assert_eq!(err.status().map(|s| s.as_u16()), Some(502));
    assert!(err.may_have_been_sent());
}

#[tokio::test]
async fn other_v1_operations() {
    let server = MockServer::start().await;
    let m = |m: &str, p: &str| Mock::given(method(m)).and(path(p.to_owned())).and(header("authorization", BASIC));
    m("DELETE", "/api/v1/customers/42").respond_with(ok()).expect(1).mount(&server).await;
    m("POST", "/api/v1/customers/42/suppress").respond_with(ok()).expect(1).mount(&server).await;
    m("POST", "/api/v1/customers/42/unsuppress").respond_with(ok()).expect(1).mount(&server).await;
    m("PUT", "/api/v1/customers/42/devices")
        .and(body_json(
            json!({"device": {"id": "tok/1", "platform": "ios", "last_used": 5, "attributes": {"app_version": "1.2"}}}),
        ))
        .respond_with(ok())
        .expect(1)
        .mount(&server)
        .await;
    m("DELETE", "/api/v1/customers/42/devices/tok%2F1").respond_with(ok()).expect(1).mount(&server).await;
    m("POST", "/api/v1/merge_customers")
        .and(body_json(json!({"primary": {"id": "42"}, "secondary": {"email": "old@example.com"}})))
        .respond_with(ok())
        .expect(1)
        .mount(&server)
        .await;
    m("POST", "/api/v1/events")
        .and(body_json(
            json!({"name": "visited", "id": "01E4C4CT6YDC7Y5M7FE1GWWPQJ", "type": "page", "anonymous_id": "anon-9"}),
        ))
        .respond_with(ok())
        .expect(1)
        .mount(&server)
        .await;
    m("GET", "/api/v1/accounts/region")
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture("region_200.json")))
        .expect(1)
        .mount(&server)
        .await;
    m("POST", "/api/v1/segments/7/add_customers")
        .and(query_param("id_type", "email"))
        .and(body_json(json!({"ids": ["a@x.io", "b@x.io"]})))
        .respond_with(ok())
        .expect(1)
        .mount(&server)
        .await;
    m("POST", "/api/v1/segments/7/remove_customers")
        .and(query_param("id_type", "id"))
        .and(body_json(json!({"ids": ["42"]})))
        .respond_with(ok())
        .expect(1)
        .mount(&server)
        .await;
    let c = client(&server);
    let who = Identifier::id("42");
    c.add_to_segment(SegmentId(7), "email", &["a@x.io".into(), "b@x.io".into()]).await.unwrap();
    c.remove_from_segment(SegmentId(7), "id", &["42".into()]).await.unwrap();
    assert!(matches!(c.add_to_segment(SegmentId(7), "phone", &["1".into()]).await, Err(Error::Invalid(_))));
    assert!(matches!(c.add_to_segment(SegmentId(7), "id", &[]).await, Err(Error::Invalid(_))));
    c.delete_person(&who).await.unwrap();
    c.suppress(&who).await.unwrap();
    c.unsuppress(&who).await.unwrap();
    c.add_device(&who, &Device::new("tok/1", Platform::Ios).last_used(5).attr("app_version", "1.2")).await.unwrap();
    c.delete_device(&who, "tok/1").await.unwrap();
    c.merge_people(&who, &Identifier::email("old@example.com")).await.unwrap();
    let anon = Event::new("visited")
        .id("01E4C4CT6YDC7Y5M7FE1GWWPQJ".parse().unwrap())
        .kind(customerio_api::EventType::Page)
        .anonymous_id("anon-9");
    c.track_anonymous(&anon).await.unwrap();
    let region = c.account_region().await.unwrap();
    assert_eq!(Region::from_code(&region.region), Some(Region::Eu));
    assert_eq!(region.environment_id, Some(12345));
}

#[tokio::test]
async fn error_shapes_are_typed_and_4xx_not_retried() {
    let server = MockServer::start().await;
    Mock::given(path("/api/v1/customers/bad"))
        .respond_with(ResponseTemplate::new(400).set_body_json(fixture("track_400_errors.json")))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(path("/api/v1/merge_customers"))
        .respond_with(ResponseTemplate::new(400).set_body_json(fixture("merge_400_error.json")))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(path("/api/v2/entity"))
        .respond_with(ResponseTemplate::new(400).set_body_json(fixture("v2_400.json")))
        .expect(1)
        .mount(&server)
        .await;
    for (p, status) in [
        ("/api/v1/customers/s401", 401),
        ("/api/v1/customers/s403", 403),
        ("/api/v1/customers/s404", 404),
        ("/api/v1/customers/s422", 422),
    ] {
        Mock::given(path(p)).respond_with(ResponseTemplate::new(status)).expect(1).mount(&server).await;
    }
    let c = client(&server);
    let err = c.identify(&Identifier::id("bad"), &Identify::new()).await.unwrap_err();
    assert_eq!(
        err.vendor(),
        Some(&VendorError::Errors(vec!["attribute 'plan' value is too long".into(), "identifier is invalid".into()]))
    );
    assert_eq!(err.class(), api_core::ErrorClass::Client);
    assert!(!err.is_retryable());
    assert!(err.to_string().contains("identifier is invalid"), "{err}");
    assert_eq!(err.http_parts().unwrap().body, serde_json::to_vec(&fixture("track_400_errors.json")).unwrap());

    let err = c.merge_people(&Identifier::id("1"), &Identifier::id("2")).await.unwrap_err();
    assert!(matches!(err.vendor(), Some(VendorError::Message(m)) if m.contains("multiple identifiers")));

    let err = c.entity(&Operation::delete(&Identifier::id("1"))).await.unwrap_err();
    let Some(VendorError::Items(items)) = err.vendor() else { panic!("{err:?}") };
    assert_eq!(items[0].field.as_deref(), Some("batch"));

    for (id, class) in [
        ("s401", api_core::ErrorClass::Auth),
        ("s403", api_core::ErrorClass::Auth),
        ("s404", api_core::ErrorClass::Client),
        ("s422", api_core::ErrorClass::Client),
    ] {
        let err = c.delete_person(&Identifier::id(id)).await.unwrap_err();
        assert_eq!(err.class(), class, "{id}");
    }
}

#[tokio::test]
async fn throttled_429_is_retried_even_for_post_and_exposes_retry_after() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "0"))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST")).respond_with(ok()).expect(1).mount(&server).await;
    client(&server).track(&Identifier::id("1"), &Event::new("x").without_id()).await.unwrap();

    let server = MockServer::start().await;
    Mock::given(method("PUT"))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "30"))
        .expect(1)
        .mount(&server)
        .await;
    let strict = Client::builder()
        .track_credentials("site-1", Token::new("key-1"))
        .track_base_url(server.uri())
        .retry_policy(RetryPolicy::none())
        .build()
        .unwrap();
    let err = strict.identify(&Identifier::id("1"), &Identify::new()).await.unwrap_err();
    assert_eq!(err.class(), api_core::ErrorClass::Throttled);
    assert_eq!(err.retry_after(), Some(Duration::from_secs(30)));
    assert_eq!(err.retry_hint(), Some(Duration::from_secs(30)));
}

#[tokio::test]
async fn redirects_are_never_followed() {
    let server = MockServer::start().await;
    let target = MockServer::start().await;
    Mock::given(method("PUT"))
        .respond_with(
            ResponseTemplate::new(301).insert_header("location", format!("{}/api/v1/customers/1", target.uri())),
        )
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("PUT")).respond_with(ok()).expect(0).mount(&target).await;
    Mock::given(method("GET"))
        .and(path("/v1/customers"))
        .respond_with(ResponseTemplate::new(301).set_body_json(fixture("app_wrong_datacenter_301.json")))
        .expect(1)
        .mount(&server)
        .await;
    let c = client(&server);
    let err = c.identify(&Identifier::id("1"), &Identify::new()).await.unwrap_err();
    let Error::Redirect { location, .. } = &err else { panic!("{err:?}") };
    assert!(location.as_deref().unwrap().starts_with(&target.uri()));
    assert!(err.to_string().contains("region"));
    let err = c.customers_by_email("a@x.io").await.unwrap_err();
    assert!(matches!(&err, Error::Redirect { .. }));
    assert_eq!(err.vendor().unwrap().summary(), "wrong datacenter");
}

#[tokio::test]
async fn guards_refuse_before_sending() {
    let server = MockServer::start().await;
    Mock::given(wiremock::matchers::any()).respond_with(ok()).expect(0).mount(&server).await;
    let c = client(&server);
    let who = Identifier::id("1");
    let e = c.identify(&Identifier::id("x".repeat(151)), &Identify::new()).await.unwrap_err();
    assert!(matches!(e, Error::Invalid(ValidationError::IdentifierTooLong { bytes: 151, max: 150 })));
    // identifiers whose shape Customer.io would misread in a v1 path
    for bad in [Identifier::id("ann@example.com"), Identifier::id("cio_123"), Identifier::email("not-an-email")] {
        let e = c.identify(&bad, &Identify::new()).await.unwrap_err();
        assert!(matches!(e, Error::Invalid(ValidationError::Rule(_))), "{bad:?}: {e:?}");
    }
    let e = c.identify(&who, &Identify::new().attr("bio", "x".repeat(1001))).await.unwrap_err();
    assert!(matches!(e, Error::Invalid(ValidationError::AttributeValueTooLarge { .. })));
    let mut many = Identify::new();
    for i in 0..301 {
        many = many.attr(format!("a{i}"), i);
    }
    let e = c.identify(&who, &many).await.unwrap_err();
    assert!(matches!(e, Error::Invalid(ValidationError::TooManyAttributes { count: 301, .. })));
    let e = c.track(&who, &Event::new("big").data("blob", "x".repeat(100_001))).await.unwrap_err();
    assert!(matches!(e, Error::Invalid(ValidationError::EventDataTooLarge { .. })));
    let e = c.track(&who, &Event::new("n".repeat(101))).await.unwrap_err();
    assert!(matches!(e, Error::Invalid(ValidationError::EventNameTooLong { .. })));
    let big = Operation::identify(&who, {
        let mut m = Map::new();
        for i in 0..40 {
            m.insert(format!("a{i}"), "x".repeat(900).into());
        }
        m
    });
    let e = c.entity(&big).await.unwrap_err();
    assert!(matches!(e, Error::Invalid(ValidationError::OperationTooLarge { index: None, .. })));
    let e = c.batch(&[Operation::delete(&who), big]).await.unwrap_err();
    assert!(matches!(e, Error::Invalid(ValidationError::OperationTooLarge { index: Some(1), .. })));
    assert!(!e.may_have_been_sent());
}

/// Answers 207 with `batch_index: 0` for every request, recording the body sizes and op counts.
struct Partial(std::sync::Arc<std::sync::Mutex<Vec<(usize, usize)>>>);

impl Respond for Partial {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let v: Value = serde_json::from_slice(&req.body).unwrap();
        self.0.lock().unwrap().push((req.body.len(), v["batch"].as_array().unwrap().len()));
        ResponseTemplate::new(207).set_body_json(fixture("batch_207.json"))
    }
}

fn op_of_size(i: usize) -> Operation {
    let mut attrs = Map::new();
    for k in 0..30 {
        attrs.insert(format!("attr_{k}"), "v".repeat(950).into());
    }
    Operation::identify(&Identifier::id(format!("p{i}")), attrs)
}

#[tokio::test]
async fn batch_splits_at_500kb_and_maps_207_indexes() {
    let server = MockServer::start().await;
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    Mock::given(method("POST"))
        .and(path("/api/v2/batch"))
        .and(header("authorization", BASIC))
        .respond_with(Partial(seen.clone()))
        .expect(2)
        .mount(&server)
        .await;
    let ops: Vec<Operation> = (0..20).map(op_of_size).collect();
    let one = serde_json::to_vec(&ops[0]).unwrap().len();
    assert!(one > 28_000 && one < 32_000, "{one}");
    let report = client(&server).batch(&ops).await.unwrap();
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    assert!(seen.iter().all(|(bytes, _)| *bytes <= 500_000), "{seen:?}");
    assert_eq!(seen.iter().map(|(_, n)| n).sum::<usize>(), 20);
    let first_chunk = seen[0].1;
    // batch_index 1 in each request → indexes 1 and first_chunk + 1 in the caller's list
    assert_eq!(report.rejected_indexes(), vec![1, first_chunk + 1]);
    assert_eq!(report.requests, 2);
    assert_eq!(report.rejected[0].error.field.as_deref(), Some("identifiers"));
    assert!(report.aborted.is_none());
    assert!(!report.is_complete());
}

#[tokio::test]
async fn batch_abort_reports_unaccepted_range() {
    let server = MockServer::start().await;
    Mock::given(method("POST")).respond_with(ok()).up_to_n_times(1).expect(1).mount(&server).await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(400).set_body_json(fixture("v2_400.json")))
        .expect(1)
        .mount(&server)
        .await;
    let ops: Vec<Operation> = (0..20).map(op_of_size).collect();
    let report = client(&server).batch(&ops).await.unwrap();
    let aborted = report.aborted.as_ref().unwrap();
    assert!(aborted.first_unaccepted > 0 && aborted.first_unaccepted < 20);
    assert_eq!(report.unaccepted(), aborted.first_unaccepted..20);
    assert_eq!(aborted.error.status().map(|s| s.as_u16()), Some(400));
    assert!(report.into_result().is_err());
}

#[tokio::test]
async fn v2_entity_body() {
    let server = MockServer::start().await;
    let id: EventId = "01E4C4CT6YDC7Y5M7FE1GWWPQJ".parse().unwrap();
    Mock::given(method("POST"))
        .and(path("/api/v2/entity"))
        .and(body_json(json!({"type": "person", "identifiers": {"email": "a@x.io"}, "action": "event", "name": "won", "id": "01E4C4CT6YDC7Y5M7FE1GWWPQJ", "timestamp": 7, "attributes": {"amount": 5}})))
        .respond_with(ok())
        .expect(1)
        .mount(&server)
        .await;
    let mut data = Map::new();
    data.insert("amount".into(), 5.into());
    client(&server).entity(&Operation::event(&Identifier::email("a@x.io"), "won", id, Some(7), data)).await.unwrap();
}

#[tokio::test]
async fn app_api_calls() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/send/email"))
        .and(header("authorization", BEARER))
        .and(body_json(json!({"to": "ann@example.com", "identifiers": {"id": "42"}, "transactional_message_id": "welcome", "message_data": {"name": "Ann"}, "send_at": 1_700_000_000})))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture("transactional_200.json")))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/customers"))
        .and(query_param("email", "ann+x@example.com"))
        .and(header("authorization", BEARER))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture("customers_by_email_not_found.json")))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/customers/ann%40example.com/attributes"))
        .and(query_param("id_type", "email"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"customer": {"id": "42", "attributes": {"plan": "pro"}, "unsubscribed": false}})),
        )
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/customers/missing/attributes"))
        // the App API's error items (api-notes customerio.md: App API errors are `{"errors":[{detail, status}]}`)
        .respond_with(
            ResponseTemplate::new(404).set_body_json(json!({"errors": [{"detail": "Not Found", "status": "404"}]})),
        )
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/campaigns/9/triggers"))
        .and(body_json(json!({"ids": ["42"], "data": {"headline": "Hi"}, "id_ignore_missing": true})))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": 77})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/send/email"))
        .and(body_json(json!({"to": "500@example.com", "identifiers": {"id": "1"}, "transactional_message_id": 1})))
        .respond_with(ResponseTemplate::new(500))
        .expect(1)
        .mount(&server)
        .await;
    let c = client(&server);
    let sent = c
        .send_email(
            &SendEmail::template(MessageRef::Trigger("welcome".into()), "ann@example.com", Identifier::id("42"))
                .data("name", "Ann")
                .option("send_at", 1_700_000_000),
        )
        .await
        .unwrap();
    assert_eq!(sent.delivery_id.as_str(), "A1C2E3jdieDks7zXdyz8XCFn1888");
    assert_eq!(sent.queued_at, Some(1_604_977_406));
    assert!(c.customers_by_email("ann+x@example.com").await.unwrap().is_empty());
    let a = c.customer_attributes(&Identifier::email("ann@example.com")).await.unwrap().unwrap();
    assert_eq!(a.attributes["plan"], "pro");
    assert_eq!(a.extra["unsubscribed"], false);
    assert!(c.customer_attributes(&Identifier::id("missing")).await.unwrap().is_none());
    let t = c
        .trigger_broadcast(
            BroadcastId(9),
            &BroadcastTrigger::new()
                .audience(Audience::Ids(vec!["42".into()]))
                .data("headline", "Hi")
                .flag("id_ignore_missing", true),
        )
        .await
        .unwrap();
    assert_eq!(t.id, customerio_api::TriggerId(77));
    // a transactional send is never retried on 5xx (it would send twice)
    let err = c
        .send_email(&SendEmail::template(MessageRef::Id(1), "500@example.com", Identifier::id("1")))
        .await
        .unwrap_err();
    assert_eq!(err.status().map(|s| s.as_u16()), Some(500));
    // missing credentials are a typed error
    let track_only = Client::builder().track_credentials("s", Token::new("k")).build().unwrap();
    assert!(matches!(track_only.customers_by_email("a@x.io").await, Err(Error::MissingCredentials { api: "App", .. })));
}

#[tokio::test(start_paused = true)]
async fn default_limits_space_requests() {
    // The broadcast lane allows 1 request per 10 s: the second trigger waits (virtual time).
    use std::sync::{Arc, Mutex};

    #[derive(Debug, Default)]
    struct Recorder(Mutex<Vec<tokio::time::Instant>>);
    impl api_core::Transport for Recorder {
        fn send(
            &self,
            _url: url::Url,
            _req: api_core::Request,
        ) -> futures::future::BoxFuture<'_, Result<api_core::RawResponse, api_core::TransportError>> {
            Box::pin(async move {
                self.0.lock().unwrap().push(tokio::time::Instant::now());
                Ok(api_core::RawResponse {
                    status: http::StatusCode::OK,
                    headers: http::HeaderMap::new(),
                    body: bytes::Bytes::from_static(br#"{"id":1}"#),
                })
            })
        }
    }
    let rec = Arc::new(Recorder::default());
    let c = Client::builder().app_api_key(Token::new("k")).transport(rec.clone()).build().unwrap();
    c.trigger_broadcast(BroadcastId(1), &BroadcastTrigger::new()).await.unwrap();
    c.trigger_broadcast(BroadcastId(1), &BroadcastTrigger::new()).await.unwrap();
    let calls = rec.0.lock().unwrap().clone();
    assert!(calls[1] - calls[0] >= Duration::from_secs(10), "{:?}", calls[1] - calls[0]);
}

/// A 404 that is not Customer.io's own "not found" answer (an HTML page from a wrong base URL or a proxy) is an
/// error, not "no such person"; an unrecognised reporting-webhooks list is an error, not "none".
#[tokio::test]
async fn a_foreign_404_and_an_unrecognised_list_are_errors() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1/customers/42/attributes"))
        .respond_with(ResponseTemplate::new(404).set_body_string("<html><body>Not Found</body></html>"))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/reporting_webhooks"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"webhooks": []})))
        .mount(&server)
        .await;
    let c = client(&server);
    let err = c.customer_attributes(&Identifier::id("42")).await.unwrap_err();
    assert!(matches!(&err, Error::Api { .. }), "{err:?}");
    assert_eq!(err.status().map(|s| s.as_u16()), Some(404));
    let err = c.list_reporting_webhooks().await.unwrap_err();
    assert!(matches!(&err, Error::Decode(_)), "{err:?}");
}

/// Raw `send` reaches endpoints the crate does not type, with the right credentials per API.
#[tokio::test]
async fn raw_send_uses_each_apis_credentials() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1/segments"))
        .and(header("authorization", BEARER))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"segments": []})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/api/v1/customers/42/events"))
        .and(header("authorization", BASIC))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&server)
        .await;
    let c = client(&server);
    let r = c.send(customerio_api::Api::App, customerio_api::Request::get("/v1/segments")).await.unwrap();
    assert_eq!(r.status.as_u16(), 200);
    let ev = customerio_api::Request::post("/api/v1/customers/42/events").json(&json!({"name": "raw"})).unwrap();
    c.send(customerio_api::Api::Track, ev).await.unwrap();
}
