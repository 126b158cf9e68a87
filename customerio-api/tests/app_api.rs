//! Issue 23's Customer.io operations on the wire (wiremock, 127.0.0.1): method, path, exact query, auth header and
//! exact body for objects and relationships (Track v2), customer search, segments and membership, activities,
//! messages, broadcast trigger status, reporting-webhook deletion, typed push and SMS; pagination edges and error
//! shapes. Sources are cited per test (api-notes = `shared/api-notes/customerio.md`; "Track spec" =
//! `tests/fixtures/openapi/customerio-track.json`; App API reference = docs.customer.io/integrations/api/app/).

use std::time::Duration;

use customerio_api::{
    ActivityQuery, ActivityType, BroadcastId, Client, CustomerFilter, Error, EventId, Identifier, ListOptions,
    MessageQuery, MessageRef, ObjectRef, ObjectRelationship, Operation, PersonRelationship, RetryPolicy, SegmentId,
    SegmentState, SegmentType, SendPush, SendSms, TriggerId, ValidationError, VendorError, WebhookId,
};
use futures::{StreamExt, TryStreamExt};
use serde_json::{Map, Value, json};
use wiremock::{
    Match, Mock, MockServer, Request, ResponseTemplate,
    matchers::{body_json, header, method, path},
};

// python3 -c "import base64;print(base64.b64encode(b'site-1:key-1').decode())" -> c2l0ZS0xOmtleS0x
const BASIC: &str = "Basic c2l0ZS0xOmtleS0x";
const BEARER: &str = "Bearer app-key-1";

fn client(server: &MockServer) -> Client {
    Client::builder()
        .track_credentials("site-1", "key-1")
        .app_api_key("app-key-1")
        .base_url(server.uri())
        .unlimited()
        .retry_policy(RetryPolicy { base_delay: Duration::from_millis(5), ..RetryPolicy::default() })
        .build()
        .unwrap()
}

/// The raw query string, exactly (order included); `""` for none.
struct QueryIs(&'static str);

impl Match for QueryIs {
    fn matches(&self, req: &Request) -> bool {
        req.url.query().unwrap_or("") == self.0
    }
}

fn ok() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({}))
}

fn m(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// Track spec v2 batch example (api-notes §2 "Verbatim batch example from the spec"): object identify and
/// object add_relationships, each through `/api/v2/entity` with Basic auth, exact bodies.
#[tokio::test]
async fn objects_and_relationships_go_to_v2_entity_exactly() {
    let server = MockServer::start().await;
    let acme = json!({"object_type_id": "1", "object_id": "acme"});
    for body in [
        json!({"type":"object","identifiers":acme,"action":"identify","attributes":{"name":"Acme Corp","plan":"enterprise","seats":50}}),
        json!({"type":"object","identifiers":acme,"action":"add_relationships","cio_relationships":[{"identifiers":{"id":"42"},"relationship_attributes":{"role":"admin"}}]}),
        json!({"type":"object","identifiers":acme,"action":"delete_relationships","cio_relationships":[{"identifiers":{"email":"ann@example.com"}}]}),
        json!({"type":"object","identifiers":{"cio_object_id":"c0ffee"},"action":"delete"}),
    ] {
        Mock::given(method("POST"))
            .and(path("/api/v2/entity"))
            .and(QueryIs(""))
            .and(header("authorization", BASIC))
            .and(header("content-type", "application/json"))
            .and(body_json(body))
            .respond_with(ok())
            .expect(1)
            .mount(&server)
            .await;
    }
    let c = client(&server);
    let acme = ObjectRef::new("1", "acme");
    c.identify_object(&acme, m(json!({"name": "Acme Corp", "plan": "enterprise", "seats": 50}))).await.unwrap();
    c.add_relationships(&acme, &[PersonRelationship::new(Identifier::id("42")).attr("role", "admin")]).await.unwrap();
    c.delete_relationships(&acme, &[PersonRelationship::new(Identifier::email("ann@example.com"))]).await.unwrap();
    c.delete_object(&ObjectRef::cio("c0ffee")).await.unwrap();
    // an empty relationship list is refused before anything is sent (the spec requires `cio_relationships`)
    assert!(matches!(c.add_relationships(&acme, &[]).await, Err(Error::Invalid(ValidationError::Rule(_)))));
}

/// Person-side relationships, page and screen views in one v2 batch (Track spec `person_add_relationships`,
/// `person_page`, `person_screen`: `name`, dedup `id`, `timestamp`, data in `attributes`).
#[tokio::test]
async fn person_relationships_page_and_screen_in_a_batch() {
    let server = MockServer::start().await;
    let id = "01E4C4CT6YDC7Y5M7FE1GWWPQJ";
    let expected = json!({"batch": [
        {"type":"person","identifiers":{"id":"42"},"action":"add_relationships","cio_relationships":[{"identifiers":{"object_type_id":"1","object_id":"acme"},"relationship_attributes":{"role":"owner"}}]},
        {"type":"person","identifiers":{"id":"42"},"action":"page","name":"https://example.com/pricing","id":id,"timestamp":1_700_000_000,"attributes":{"referrer":"https://google.com"}},
        {"type":"person","identifiers":{"id":"42"},"action":"screen","name":"Home","id":id},
    ]});
    Mock::given(method("POST"))
        .and(path("/api/v2/batch"))
        .and(header("authorization", BASIC))
        .and(body_json(expected))
        .respond_with(ok())
        .expect(1)
        .mount(&server)
        .await;
    let who = Identifier::id("42");
    let eid: EventId = id.parse().unwrap();
    let ops = [
        Operation::person_add_relationships(
            &who,
            &[ObjectRelationship::new(ObjectRef::new("1", "acme")).attr("role", "owner")],
        ),
        Operation::page(
            &who,
            "https://example.com/pricing",
            eid,
            Some(1_700_000_000),
            m(json!({"referrer": "https://google.com"})),
        ),
        Operation::screen(&who, "Home", eid, None, Map::new()),
    ];
    let report = client(&server).batch(&ops).await.unwrap();
    assert!(report.is_complete());
    assert_eq!(report.requests, 1);
}

/// App API `getPeopleFilter`: `POST /v1/customers?start=…&limit=…` with `{"filter": …}` and Bearer auth; the page's
/// people come from `identifiers`, `next` continues it (go-customerio `ListCustomersInSegmentResponse` shape).
#[tokio::test]
async fn customer_search_pages_with_the_next_token() {
    let server = MockServer::start().await;
    let filter = json!({"filter": {"and": [{"segment": {"id": 4}}, {"attribute": {"field": "plan", "operator": "eq", "value": "pro"}}]}});
    Mock::given(method("POST"))
        .and(path("/v1/customers"))
        .and(QueryIs("limit=2"))
        .and(header("authorization", BEARER))
        .and(body_json(filter.clone()))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "identifiers": [{"email": "a@x.io", "id": "1", "cio_id": "c1"}, {"email": null, "id": "2", "cio_id": "c2"}],
            "ids": ["1", "2"],
            "next": "MTI="
        })))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/customers"))
        .and(QueryIs("start=MTI%3D&limit=2"))
        .and(body_json(filter))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "identifiers": [{"email": "c@x.io", "id": null, "cio_id": "c3"}], "ids": [""], "next": ""
        })))
        .expect(2)
        .mount(&server)
        .await;
    let c = client(&server);
    let f = CustomerFilter::and([CustomerFilter::segment(4u64), CustomerFilter::eq("plan", "pro")]);
    let page = c.list_customers(&f, &ListOptions::new().start("MTI=").limit(2)).await.unwrap();
    assert_eq!(page.items.len(), 1);
    assert_eq!(page.items[0].cio_id.as_deref(), Some("c3"));
    assert_eq!(page.items[0].id, None);
    assert_eq!(page.next, None, "an empty `next` ends the list");
    let all: Vec<_> = c.stream_customers(f, Some(2)).try_collect().await.unwrap();
    let cio: Vec<_> = all.iter().map(|p| p.cio_id.clone().unwrap()).collect();
    assert_eq!(cio, ["c1", "c2", "c3"]);
    // limit over the documented 1,000 is refused before sending (no third request reaches the mocks above)
    let err = c.list_customers(&CustomerFilter::segment(4u64), &ListOptions::new().limit(1001)).await.unwrap_err();
    assert!(matches!(err, Error::Invalid(_)), "{err:?}");
}

/// A `next` token handed back twice stops the stream with `Error::RepeatedCursor` (workspace list convention).
#[tokio::test]
async fn a_repeated_next_token_is_an_error_not_a_loop() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1/segments/7/membership"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "identifiers": [{"email": "a@x.io", "id": "1", "cio_id": "c1"}], "ids": ["1"], "next": "same"
        })))
        .expect(2)
        .mount(&server)
        .await;
    let items: Vec<_> = client(&server).stream_segment_members(SegmentId(7), None).collect().await;
    assert_eq!(items.len(), 3, "{items:?}");
    assert!(items[0].is_ok() && items[1].is_ok());
    assert!(matches!(items[2], Err(Error::RepeatedCursor(_))), "{:?}", items[2]);
}

/// App API `getSegmentMembership`: `GET /v1/segments/{id}/membership?start&limit` (limit ≤ 30,000); a response
/// with only `ids` still yields people (ids only).
#[tokio::test]
async fn segment_membership_page_and_limit() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1/segments/7/membership"))
        .and(QueryIs("start=abc&limit=30000"))
        .and(header("authorization", BEARER))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"ids": ["42", "43"], "next": "def"})))
        .expect(1)
        .mount(&server)
        .await;
    let c = client(&server);
    let page = c.list_segment_members(SegmentId(7), &ListOptions::new().start("abc").limit(30_000)).await.unwrap();
    assert_eq!(page.items.iter().map(|p| p.id.clone().unwrap()).collect::<Vec<_>>(), ["42", "43"]);
    assert_eq!(page.next.as_deref(), Some("def"));
    let err = c.list_segment_members(SegmentId(7), &ListOptions::new().limit(30_001)).await.unwrap_err();
    assert!(matches!(err, Error::Invalid(_)));
}

/// Segments (go-customerio `segments_api.go`; fields from the Track spec's `segmentResponseObject`): list, get,
/// create manual (`{"segment": {name, description}}`), delete (204), count, a person's segments (id_type).
#[tokio::test]
async fn segments_crud_count_and_a_persons_segments() {
    let server = MockServer::start().await;
    let seg = json!({"id": 7, "deduplicate_id": "7:1700000000", "name": "VIP", "description": "big spenders",
        "state": "finished", "progress": null, "type": "manual", "tags": null, "created_at": 1_700_000_000});
    Mock::given(method("GET"))
        .and(path("/v1/segments"))
        .and(QueryIs(""))
        .and(header("authorization", BEARER))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"segments": [seg.clone(), {"id": 8, "state": "rebuilding", "type": "dynamic"}]})),
        )
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/segments/7"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"segment": seg.clone()})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/segments"))
        .and(header("authorization", BEARER))
        .and(body_json(json!({"segment": {"name": "VIP", "description": "big spenders"}})))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"segment": seg.clone()})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .and(path("/v1/segments/7"))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/segments/7/customer_count"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"count": 1234})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/customers/ann%2Bx%40example.com/segments"))
        .and(QueryIs("id_type=email"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"segments": [seg]})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/segments/9"))
        .respond_with(
            ResponseTemplate::new(404).set_body_json(json!({"errors": [{"detail": "not found", "status": "404"}]})),
        )
        .mount(&server)
        .await;
    let c = client(&server);
    let list = c.list_segments().await.unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0].state, Some(SegmentState::Finished));
    assert_eq!(list[0].kind, Some(SegmentType::Manual));
    assert_eq!(list[0].extra["created_at"], 1_700_000_000);
    assert_eq!(list[1].state, Some(SegmentState::Unknown("rebuilding".into())), "open enum keeps new values");
    assert_eq!(c.get_segment(SegmentId(7)).await.unwrap().name.as_deref(), Some("VIP"));
    assert_eq!(c.create_manual_segment("VIP", Some("big spenders")).await.unwrap().id, SegmentId(7));
    c.delete_segment(SegmentId(7)).await.unwrap();
    assert_eq!(c.segment_customer_count(SegmentId(7)).await.unwrap(), 1234);
    assert_eq!(c.customer_segments(&Identifier::email("ann+x@example.com")).await.unwrap()[0].id, SegmentId(7));
    let err = c.get_segment(SegmentId(9)).await.unwrap_err();
    assert_eq!(err.status().map(|s| s.as_u16()), Some(404));
    assert!(matches!(err.vendor(), Some(VendorError::Items(i)) if i.len() == 1));
    assert!(matches!(c.create_manual_segment(" ", None).await, Err(Error::Invalid(_))));
}

/// App API `getPersonActivities`: `GET /v1/customers/{id}/activities?id_type&start&limit&type&name` (limit ≤ 100);
/// items as the Track spec's `activityObject`.
#[tokio::test]
async fn customer_activities_query_and_items() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1/customers/42/activities"))
        .and(QueryIs("id_type=id&limit=2&type=event&name=purchase"))
        .and(header("authorization", BEARER))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "activities": [
                {"id": "act1", "type": "event", "name": "purchase", "timestamp": 1_700_000_000, "customer_id": "42",
                 "customer_identifiers": {"email": "a@x.io", "id": "42", "cio_id": "c1"}, "data": {"price": 5}},
                {"id": "act2", "type": "_o:1:create", "timestamp": 1_700_000_001}
            ],
            "next": "n1"
        })))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/customers/42/activities"))
        .and(QueryIs("id_type=id&limit=101"))
        .respond_with(ok())
        .expect(0)
        .mount(&server)
        .await;
    let c = client(&server);
    let q = ActivityQuery::new().kind(ActivityType::Event).name("purchase").page(ListOptions::new().limit(2));
    let page = c.list_customer_activities(&Identifier::id("42"), &q).await.unwrap();
    assert_eq!(page.next.as_deref(), Some("n1"));
    assert_eq!(page.items[0].kind, Some(ActivityType::Event));
    assert_eq!(page.items[0].data, Some(json!({"price": 5})));
    assert_eq!(page.items[1].kind, Some(ActivityType::Unknown("_o:1:create".into())));
    let too_long = ActivityQuery::new().page(ListOptions::new().limit(101));
    assert!(matches!(c.list_customer_activities(&Identifier::id("42"), &too_long).await, Err(Error::Invalid(_))));
}

/// App API `getPersonMessages`: `GET /v1/customers/{id}/messages?id_type&start_ts&end_ts`; items as the Track spec's
/// `messageObject`; streaming follows `next` until it is empty.
#[tokio::test]
async fn customer_messages_time_range_and_stream() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1/customers/c1/messages"))
        .and(QueryIs("id_type=cio_id&start_ts=1690000000&end_ts=1700000000"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "messages": [{"id": "RPILAgUBcRhIBqSfeiIwdIYJKxTY", "type": "email", "recipient": "a@x.io", "subject": "Hi",
                          "metrics": {"sent": 1_695_000_000, "opened": 1_695_000_100}, "created": 1_695_000_000,
                          "broadcast_id": 9, "campaign_id": null, "forgotten": false}],
            "next": "p2"
        })))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/customers/c1/messages"))
        .and(QueryIs("id_type=cio_id&start=p2&start_ts=1690000000&end_ts=1700000000"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"messages": [], "next": ""})))
        .expect(1)
        .mount(&server)
        .await;
    let c = client(&server);
    // with `id_type=cio_id` the App API path carries the bare value (as `customer_attributes` sends it)
    let who = Identifier::cio_id("c1");
    let all: Vec<_> = c
        .stream_customer_messages(&who, MessageQuery::new().between(1_690_000_000, 1_700_000_000))
        .try_collect()
        .await
        .unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].kind, Some(customerio_api::MessageType::Email));
    assert_eq!(all[0].metrics["opened"], 1_695_000_100);
    assert_eq!(all[0].extra["forgotten"], false);
}

/// App API `broadcastStatus` (docs example `{"id":1,"broadcast_id":2,"created_at":1552341937,"processed_at":1}`),
/// `listBroadcastTriggers` (`GET /v1/broadcasts/{id}/triggers` → `{"triggers": [...]}`), and `deleteWebhook`
/// (`DELETE /v1/reporting_webhooks/{id}`: 200 without a body, 404 for an unknown id).
#[tokio::test]
async fn broadcast_trigger_status_and_webhook_deletion() {
    let server = MockServer::start().await;
    let status = json!({"id": 1, "broadcast_id": 2, "created_at": 1_552_341_937, "processed_at": 1});
    Mock::given(method("GET"))
        .and(path("/v1/campaigns/2/triggers/1"))
        .and(header("authorization", BEARER))
        .respond_with(ResponseTemplate::new(200).set_body_json(status.clone()))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/broadcasts/2/triggers"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"triggers": [status]})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .and(path("/v1/reporting_webhooks/5"))
        .and(header("authorization", BEARER))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .and(path("/v1/reporting_webhooks/6"))
        .respond_with(
            ResponseTemplate::new(404).set_body_json(json!({"errors": [{"detail": "not found", "status": "404"}]})),
        )
        .expect(1)
        .mount(&server)
        .await;
    let c = client(&server);
    let s = c.broadcast_trigger(BroadcastId(2), TriggerId(1)).await.unwrap();
    assert_eq!((s.id, s.broadcast_id, s.created_at), (TriggerId(1), Some(BroadcastId(2)), Some(1_552_341_937)));
    assert!(s.is_processed());
    assert_eq!(c.list_broadcast_triggers(BroadcastId(2)).await.unwrap().len(), 1);
    c.delete_reporting_webhook(WebhookId(5)).await.unwrap();
    let err = c.delete_reporting_webhook(WebhookId(6)).await.unwrap_err();
    assert_eq!(err.status().map(|s| s.as_u16()), Some(404));
    assert!(!err.may_have_been_sent());
}

/// Typed transactional push and SMS (Track spec `sendpush`/`sendsms`; the `sendsms` example body verbatim):
/// `POST /v1/send/{push,sms}` with Bearer auth, `{"delivery_id","queued_at"}` back (api-notes §3); a 400
/// `{"meta":{"error":…}}` is `VendorError::Message`; a 500 is not retried (a send may have happened).
#[tokio::test]
async fn typed_push_and_sms_sends() {
    let server = MockServer::start().await;
    let sent = json!({"delivery_id": "A1C2E3jdieDks7zXdyz8XCFn1888", "queued_at": 1_604_977_406});
    Mock::given(method("POST"))
        .and(path("/v1/send/sms"))
        .and(header("authorization", BEARER))
        .and(body_json(json!({"transactional_message_id": "confirmation code", "to": "+15559876543", "from": "+15551234567",
            "identifiers": {"id": "123456"}, "message_data": {"confirmation_code": "123456", "account_name": "Jane Doe"}})))
        .respond_with(ResponseTemplate::new(200).set_body_json(sent.clone()))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/send/push"))
        .and(body_json(json!({"transactional_message_id": 44, "identifiers": {"id": "12345"}, "to": "last_used",
            "title": "Hi", "message": "Shipped", "message_data": {"order": "A-1"}, "send_to_unsubscribed": false})))
        .respond_with(ResponseTemplate::new(200).set_body_json(sent))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/send/push"))
        .and(body_json(json!({"transactional_message_id": 45, "identifiers": {"id": "12345"}})))
        .respond_with(
            ResponseTemplate::new(400)
                .set_body_json(json!({"meta": {"error": "\"transactional_message_id\" not found"}})),
        )
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/send/push"))
        .and(body_json(json!({"transactional_message_id": 46, "identifiers": {"id": "12345"}})))
        .respond_with(ResponseTemplate::new(500))
        .expect(1)
        .mount(&server)
        .await;
    let c = client(&server);
    let sms = SendSms::new(MessageRef::Trigger("confirmation code".into()), Identifier::id("123456"), "+15559876543")
        .from("+15551234567")
        .data("confirmation_code", "123456")
        .data("account_name", "Jane Doe");
    assert_eq!(c.send_sms(&sms).await.unwrap().delivery_id.as_str(), "A1C2E3jdieDks7zXdyz8XCFn1888");
    let mut push = SendPush::new(MessageRef::Id(44), Identifier::id("12345"))
        .to("last_used")
        .content("Hi", "Shipped")
        .data("order", "A-1");
    push.options.send_to_unsubscribed = Some(false);
    assert_eq!(c.send_push(&push).await.unwrap().queued_at, Some(1_604_977_406));
    let err = c.send_push(&SendPush::new(MessageRef::Id(45), Identifier::id("12345"))).await.unwrap_err();
    assert_eq!(err.vendor(), Some(&VendorError::Message("\"transactional_message_id\" not found".into())));
    let err = c.send_push(&SendPush::new(MessageRef::Id(46), Identifier::id("12345"))).await.unwrap_err();
    assert!(err.may_have_been_sent(), "a 5xx send may have happened, and it was not repeated");
    let empty_to = SendSms::new(MessageRef::Id(1), Identifier::id("1"), " ");
    assert!(matches!(c.send_sms(&empty_to).await, Err(Error::Invalid(_))));
}

/// Pipelines (Pipelines spec, `shared/openapi/customerio-pipelines.json`): `POST /v1/identify` and `/v1/track` with
/// Basic `api_key:` (python3 -c "import base64;print(base64.b64encode(b'pk-1:').decode())" → cGstMTo=), exact
/// bodies; a 400 `{"meta":{"errors":[…]}}` (the spec's 400 schema) is `VendorError::Errors`; a 500 is not retried
/// (no documented dedup id); without the key nothing is sent.
#[tokio::test]
async fn pipelines_identify_and_track_on_the_wire() {
    use customerio_api::{Api, PipelinesIdentify, PipelinesTrack, PipelinesUser};
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/identify"))
        .and(QueryIs(""))
        .and(header("authorization", "Basic cGstMTo="))
        .and(header("content-type", "application/json"))
        .and(body_json(
            json!({"type": "identify", "userId": "97980cfea0067", "traits": {"email": "cool.person@example.com"},
            "timestamp": "2015-12-12T19:11:01.249Z"}),
        ))
        .respond_with(ok())
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/track"))
        .and(header("authorization", "Basic cGstMTo="))
        .and(body_json(json!({"type": "track", "anonymousId": "anon-1", "event": "Course Started", "properties": {"title": "Intro"}})))
        .respond_with(ok())
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/track"))
        .and(body_json(json!({"type": "track", "userId": "1", "event": "bad"})))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({"meta": {"errors": ["event is invalid"]}})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/track"))
        .and(body_json(json!({"type": "track", "userId": "1", "event": "boom"})))
        .respond_with(ResponseTemplate::new(500))
        .expect(1)
        .mount(&server)
        .await;
    let c = Client::builder()
        .pipelines_api_key("pk-1")
        .base_url(server.uri())
        .unlimited()
        .retry_policy(RetryPolicy { base_delay: Duration::from_millis(5), ..RetryPolicy::default() })
        .build()
        .unwrap();
    assert!(!format!("{c:?}").contains("pk-1"));
    c.pipelines_identify(
        &PipelinesIdentify::new(PipelinesUser::user("97980cfea0067"))
            .trait_("email", "cool.person@example.com")
            .timestamp("2015-12-12T19:11:01.249Z"),
    )
    .await
    .unwrap();
    c.pipelines_track(
        &PipelinesTrack::new(PipelinesUser::anonymous("anon-1"), "Course Started").property("title", "Intro"),
    )
    .await
    .unwrap();
    let err = c.pipelines_track(&PipelinesTrack::new(PipelinesUser::user("1"), "bad")).await.unwrap_err();
    assert_eq!(err.vendor(), Some(&VendorError::Errors(vec!["event is invalid".into()])));
    let err = c.pipelines_track(&PipelinesTrack::new(PipelinesUser::user("1"), "boom")).await.unwrap_err();
    assert!(err.may_have_been_sent());
    assert!(matches!(
        c.pipelines_identify(&PipelinesIdentify::new(PipelinesUser::default())).await,
        Err(Error::Invalid(_))
    ));
    let no_key = Client::builder().base_url(server.uri()).build().unwrap();
    let err = no_key.send(Api::Pipelines, api_core::Request::post("/v1/identify")).await.unwrap_err();
    assert!(matches!(err, Error::MissingCredentials { api: "Pipelines", .. }), "{err:?}");
}

/// `POST /v1/customers/attributes?id_type=email` with `{"ids": [...]}` → `{"customers": [{"customer": …}]}`
/// (api-notes §3: ≤ 100 ids, missing ones left out); a read, so a 503 is retried.
#[tokio::test]
async fn customers_attributes_in_one_call() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/customers/attributes"))
        .and(QueryIs("id_type=email"))
        .and(header("authorization", BEARER))
        .and(body_json(json!({"ids": ["a@x.io", "b@x.io"]})))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/customers/attributes"))
        .and(QueryIs("id_type=email"))
        .and(body_json(json!({"ids": ["a@x.io", "b@x.io"]})))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"customers": [
            {"customer": {"id": "1", "attributes": {"plan": "pro"}, "identifiers": {"email": "a@x.io", "id": "1", "cio_id": "c1"}}}
        ]})))
        .expect(1)
        .mount(&server)
        .await;
    let c = client(&server);
    let got = c.customers_attributes(&[Identifier::email("a@x.io"), Identifier::email("b@x.io")]).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].attributes["plan"], "pro");
    let mixed = c.customers_attributes(&[Identifier::email("a@x.io"), Identifier::id("2")]).await;
    assert!(matches!(mixed, Err(Error::Invalid(_))));
    let many: Vec<_> = (0..101).map(|i| Identifier::id(i.to_string())).collect();
    assert!(matches!(c.customers_attributes(&many).await, Err(Error::Invalid(_))));
    assert!(matches!(c.customers_attributes(&[]).await, Err(Error::Invalid(_))));
}
