//! The fake, driven through our own client.
#![cfg(feature = "fake")]

use std::{sync::Arc, time::Duration};

use api_core::fake::Fault;
use customerio_api::{
    Audience, BroadcastId, BroadcastTrigger, Error, Event, EventId, FixedClock, Identifier, Identify, Metric,
    ObjectType, Operation, RetryPolicy, SendEmail, Token, VendorError, Verifier,
    fake::{FakeConfig, FakeCustomerIo},
    webhook::parse,
};
use http::Method;
use serde_json::{Map, Value, json};

fn attrs(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        other => panic!("not an object: {other}"),
    }
}

#[tokio::test]
async fn identify_creates_updates_and_respects_timestamp_order() {
    let fake = FakeCustomerIo::start().await.unwrap();
    let cio = fake.client();
    let ann = Identifier::email("ann+crm@example.com");
    cio.identify(&ann, &Identify::new().attr("plan", "pro").id("42").timestamp(200)).await.unwrap();
    let p = fake.person(&ann).expect("created");
    assert_eq!(p.id.as_deref(), Some("42"));
    assert_eq!(p.attributes["plan"], "pro");
    // stale update (older _timestamp) does not overwrite
    cio.identify(&Identifier::id("42"), &Identify::new().attr("plan", "free").timestamp(100)).await.unwrap();
    assert_eq!(fake.person(&ann).unwrap().attributes["plan"], "pro");
    cio.identify(&Identifier::id("42"), &Identify::new().attr("plan", "team").timestamp(300)).await.unwrap();
    assert_eq!(fake.person(&ann).unwrap().attributes["plan"], "team");
    // the path was URL-encoded: `+` travelled as %2B
    assert!(fake.log().requests()[0].path.ends_with("ann%2Bcrm%40example.com"), "{}", fake.log().requests()[0].path);
    // lookup by email through the App API; cio_id path works too
    let found = cio.customers_by_email("ann+crm@example.com").await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].id.as_deref(), Some("42"));
    let cio_id = found[0].cio_id.clone().unwrap();
    cio.identify(&Identifier::cio_id(cio_id.clone()), &Identify::new().attr("vip", true)).await.unwrap();
    assert_eq!(fake.person(&ann).unwrap().attributes["vip"], true);
    let attrs = cio.customer_attributes(&Identifier::id("42")).await.unwrap().unwrap();
    assert_eq!(attrs.attributes["plan"], "team");
    assert!(cio.customer_attributes(&Identifier::id("nope")).await.unwrap().is_none());
    assert!(cio.customers_by_email("none@example.com").await.unwrap().is_empty());
}

#[tokio::test]
async fn identify_by_new_id_with_existing_email_adopts_the_person() {
    let fake = FakeCustomerIo::start().await.unwrap();
    let cio = fake.client();
    cio.identify(&Identifier::email("bo@example.com"), &Identify::new().attr("source", "form")).await.unwrap();
    cio.identify(&Identifier::id("kommo-7"), &Identify::new().email("bo@example.com").attr("stage", "won"))
        .await
        .unwrap();
    assert_eq!(fake.people().len(), 1, "{:?}", fake.people());
    let p = fake.person(&Identifier::id("kommo-7")).unwrap();
    assert_eq!((p.attributes["source"].clone(), p.attributes["stage"].clone()), (json!("form"), json!("won")));
    // an email that already belongs to someone with another id is a conflict: 200, nothing changes
    cio.identify(&Identifier::id("other"), &Identify::new().email("bo@example.com")).await.unwrap();
    assert!(fake.person(&Identifier::id("other")).is_none());
    assert!(fake.activity().iter().any(|a| a.contains("Attribute Update Failure")));
}

#[tokio::test]
async fn update_only_never_creates() {
    let fake = FakeCustomerIo::start().await.unwrap();
    let cio = fake.client();
    cio.identify(&Identifier::id("ghost"), &Identify::new().attr("a", 1).update_only()).await.unwrap();
    assert!(fake.person(&Identifier::id("ghost")).is_none());
    assert!(fake.activity().iter().any(|a| a.contains("Failed Attribute Change")));
}

#[tokio::test]
async fn events_are_deduplicated_by_id() {
    let fake = FakeCustomerIo::start().await.unwrap();
    let cio = fake.client();
    let who = Identifier::id("7");
    let id = EventId::from_source_key_unix("kommo:lead:7:won", 1_700_000_000);
    let e = Event::new("deal_won").id(id).timestamp(1_700_000_000).data("amount", 10);
    cio.track(&who, &e).await.unwrap();
    cio.track(&who, &e).await.unwrap();
    let events = fake.events_for(&who);
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].id.as_deref(), Some(id.to_string().as_str()));
    assert_eq!(events[0].data["amount"], 10);
    // anonymous event, then linked by identify with anonymous_id
    cio.track_anonymous(&Event::new("visited").anonymous_id("anon-1")).await.unwrap();
    cio.identify(&who, &Identify::new().anonymous_id("anon-1")).await.unwrap();
    assert_eq!(fake.events_for(&who).len(), 2);
}

#[tokio::test]
async fn drop_after_commit_then_retry_does_not_double_count() {
    let fake = FakeCustomerIo::start().await.unwrap();
    let cio = fake.client();
    let who = Identifier::id("9");
    fake.faults().inject(Some(Method::POST), "/api/v1/customers/9/events", Fault::DropAfterCommit, 1);
    // an event with an id is idempotent: the client retries the broken request itself
    cio.track(&who, &Event::new("signup")).await.unwrap();
    assert_eq!(fake.log().count(&Method::POST, "/api/v1/customers/9/events"), 2);
    assert_eq!(fake.events_for(&who).len(), 1);
}

#[tokio::test]
async fn rate_limit_429_and_5xx_faults_are_retried() {
    let fake = FakeCustomerIo::start_with(FakeConfig {
        track_rate_limit: Some((2, Duration::from_millis(200))),
        rate_limit_retry_after: Duration::from_millis(200),
        ..FakeConfig::default()
    })
    .await
    .unwrap();
    let cio = fake.client();
    for i in 0..5 {
        cio.identify(&Identifier::id(format!("p{i}")), &Identify::new().attr("n", i)).await.unwrap();
    }
    assert_eq!(fake.people().len(), 5);
    let puts = fake.log().count(&Method::PUT, "/api/v1/customers/");
    assert!(puts > 5, "some were answered 429 and retried: {puts}");

    fake.faults().inject(None, "/api/v1/customers/x", Fault::json(503, &json!({"meta": {"errors": ["down"]}})), 1);
    cio.identify(&Identifier::id("x"), &Identify::new()).await.unwrap();
    // with retries off, the typed error comes back
    let strict = fake.client_builder().retry_policy(RetryPolicy::none()).build().unwrap();
    fake.faults().inject(None, "/api/v1/customers/y", Fault::json(503, &json!({"meta": {"errors": ["down"]}})), 1);
    let err = strict.identify(&Identifier::id("y"), &Identify::new()).await.unwrap_err();
    assert_eq!(err.status().map(|s| s.as_u16()), Some(503));
    assert_eq!(err.vendor(), Some(&VendorError::Errors(vec!["down".into()])));
    assert!(err.is_retryable());
}

#[tokio::test]
async fn wrong_credentials_are_401() {
    let fake = FakeCustomerIo::start().await.unwrap();
    let cio = fake.client_builder().track_credentials("fake-site-id", Token::new("wrong")).build().unwrap();
    let err = cio.identify(&Identifier::id("1"), &Identify::new()).await.unwrap_err();
    assert_eq!(err.status().map(|s| s.as_u16()), Some(401));
    assert_eq!(err.class(), api_core::ErrorClass::Auth);
}

#[tokio::test]
async fn suppress_merge_devices_delete() {
    let fake = FakeCustomerIo::start().await.unwrap();
    let cio = fake.client();
    let a = Identifier::id("a");
    let b = Identifier::email("b@example.com");
    fake.seed_person(&a, &attrs(json!({"plan": "pro"})));
    fake.seed_person(&b, &attrs(json!({"city": "Oslo", "plan": "free"})));
    cio.track(&b, &Event::new("opened_app")).await.unwrap();
    cio.merge_people(&a, &b).await.unwrap();
    let merged = fake.person(&a).unwrap();
    assert_eq!(merged.attributes["plan"], "pro");
    assert_eq!(merged.attributes["city"], "Oslo");
    assert!(fake.person(&b).is_none());
    assert_eq!(fake.events_for(&a).len(), 1);
    // merge with a missing primary: 400 {"meta":{"error":...}}
    let err = cio.merge_people(&Identifier::id("missing"), &a).await.unwrap_err();
    assert!(matches!(err.vendor(), Some(VendorError::Message(_))), "{err:?}");

    cio.add_device(&a, &customerio_api::Device::new("tok1", customerio_api::Platform::Ios).last_used(5)).await.unwrap();
    assert_eq!(fake.person(&a).unwrap().devices.len(), 1);
    cio.delete_device(&a, "tok1").await.unwrap();
    assert!(fake.person(&a).unwrap().devices.is_empty());

    cio.suppress(&a).await.unwrap();
    assert!(fake.person(&a).is_none());
    assert!(fake.is_suppressed(&a));
    cio.identify(&a, &Identify::new().attr("plan", "x")).await.unwrap();
    assert!(fake.person(&a).is_none(), "suppressed identifiers are not re-added");
    cio.unsuppress(&a).await.unwrap();
    cio.identify(&a, &Identify::new().attr("plan", "x")).await.unwrap();
    assert!(fake.person(&a).is_some());
    cio.delete_person(&a).await.unwrap();
    assert!(fake.person(&a).is_none());
}

#[tokio::test]
async fn batch_207_reports_failed_indexes_and_applies_the_rest() {
    let fake = FakeCustomerIo::start().await.unwrap();
    let cio = fake.client();
    let ops = vec![
        Operation::identify(&Identifier::id("1"), attrs(json!({"plan": "pro"}))),
        Operation::raw(json!({"type": "person", "action": "identify", "identifiers": {"id": "2", "email": "x@y.z"}}))
            .unwrap(),
        Operation::event(&Identifier::id("1"), "won", EventId::new(), Some(5), Map::new()),
        Operation::raw(json!({"type": "spaceship", "action": "launch"})).unwrap(),
        Operation::identify_object("1", "acme", &attrs(json!({"name": "Acme"}))),
    ];
    let report = cio.batch(&ops).await.unwrap();
    assert_eq!(report.rejected_indexes(), vec![1, 3]);
    assert!(report.aborted.is_none());
    assert_eq!(fake.person(&Identifier::id("1")).unwrap().attributes["plan"], "pro");
    assert_eq!(fake.events_for(&Identifier::id("1")).len(), 1);
    assert_eq!(fake.object("1", "acme").unwrap()["name"], "Acme");
    cio.entity(&Operation::identify(&Identifier::id("3"), attrs(json!({"a": 1}))).with_timestamp(10)).await.unwrap();
    assert!(fake.person(&Identifier::id("3")).is_some());
    let err = cio
        .entity(&Operation::raw(json!({"type": "person", "action": "fly", "identifiers": {"id": "3"}})).unwrap())
        .await
        .unwrap_err();
    assert!(matches!(err.vendor(), Some(VendorError::Items(i)) if i[0].field.as_deref() == Some("action")), "{err:?}");
}

#[tokio::test]
async fn app_api_send_and_broadcast() {
    let fake = FakeCustomerIo::start().await.unwrap();
    let cio = fake.client();
    let sent = cio
        .send_email(&SendEmail::template(customerio_api::MessageRef::Id(3), "ann@example.com", Identifier::id("42")))
        .await
        .unwrap();
    assert!(!sent.delivery_id.as_str().is_empty());
    assert_eq!(fake.sent_messages()[0].body["transactional_message_id"], 3);
    let t = cio
        .trigger_broadcast(BroadcastId(9), &BroadcastTrigger::new().audience(Audience::Ids(vec!["42".into()])))
        .await
        .unwrap();
    assert_eq!(t.id, customerio_api::TriggerId(1));
    assert_eq!(fake.broadcast_triggers()[0].body["ids"], json!(["42"]));
    // the fake enforces 1 per 10 s; with retries off the 429 surfaces as Throttled
    let strict = fake.client_builder().retry_policy(RetryPolicy::none()).build().unwrap();
    let err = strict.trigger_broadcast(BroadcastId(9), &BroadcastTrigger::new()).await.unwrap_err();
    assert_eq!(err.status().map(|s| s.as_u16()), Some(429));
    assert_eq!(err.class(), api_core::ErrorClass::Throttled);
    assert!(err.retry_hint().is_some());

    let cfg = customerio_api::ReportingWebhookConfig::new(
        "crm-sync",
        "https://sync.example.com/hooks/cio",
        ["email_opened".to_owned(), "email_clicked".to_owned()],
    );
    let created = cio.create_reporting_webhook(&cfg).await.unwrap();
    assert_eq!(created.id, Some(customerio_api::WebhookId(1)));
    let updated = cio
        .update_reporting_webhook(
            customerio_api::WebhookId(1),
            &customerio_api::ReportingWebhookConfig { disabled: Some(true), ..cfg },
        )
        .await
        .unwrap();
    assert_eq!(updated.raw["disabled"], true);
    let list = cio.list_reporting_webhooks().await.unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].endpoint.as_deref(), Some("https://sync.example.com/hooks/cio"));
    assert_eq!(fake.reporting_webhooks().len(), 1);
}

#[tokio::test]
async fn signed_webhooks_verify_and_deliver() {
    let clock = FixedClock::at_unix(1_700_000_000);
    let fake = FakeCustomerIo::start_with(FakeConfig { clock: Arc::new(clock.clone()), ..FakeConfig::default() })
        .await
        .unwrap();
    let ann = Identifier::email("ann@example.com");
    fake.seed_person(&ann, &attrs(json!({"id": "42"})));
    let hook = fake.webhook(&ann, Metric::Clicked).href("https://example.com/pricing").subject("Hi").build();
    let verifier = Verifier::new(Token::new(fake.config().webhook_signing_key.clone())).clock(Arc::new(clock.clone()));
    let event = verifier.verify_and_parse(&hook.header_map(), &hook.body).unwrap();
    assert_eq!(event.metric, Metric::Clicked);
    assert_eq!(event.object_type, ObjectType::Email);
    assert_eq!(event.data.href.as_deref(), Some("https://example.com/pricing"));
    assert_eq!(event.person_id(), Some("42"));
    assert_eq!(event.person_email(), Some("ann@example.com"));
    assert_eq!(event.timestamp, 1_700_000_000);
    assert_eq!(hook.signed_timestamp(), "1700000000");
    // a late retry inside Customer.io's 7-day retry period is accepted; one older than the window is not
    let late = fake.webhook(&ann, Metric::Opened).signed_at(1_700_000_000 - 6 * 24 * 3600).build();
    assert!(verifier.verify_and_parse(&late.header_map(), &late.body).is_ok());
    let stale_at = 1_700_000_000 - customerio_api::webhook::DEFAULT_TOLERANCE.as_secs() as i64 - 1;
    let stale = fake.webhook(&ann, Metric::Opened).signed_at(stale_at).build();
    assert!(verifier.verify_and_parse(&stale.header_map(), &stale.body).is_err());
    let unsub = fake.webhook(&ann, Metric::Unsubscribed).build();
    assert_eq!(parse(&unsub.body).unwrap().metric, Metric::Unsubscribed);

    // delivery to a receiver (an axum route standing in for the sync engine's ingest)
    let got = Arc::new(std::sync::Mutex::new(Vec::new()));
    let g = got.clone();
    let v = verifier.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: http::HeaderMap, body: bytes::Bytes| {
            let g = g.clone();
            let v = v.clone();
            async move {
                match v.verify_and_parse(&headers, &body) {
                    Ok(e) => {
                        g.lock().unwrap().push(e);
                        http::StatusCode::OK
                    }
                    Err(_) => http::StatusCode::UNAUTHORIZED,
                }
            }
        }),
    );
    let receiver = api_core::fake::FakeServer::start(app).await.unwrap();
    let url = receiver.base_url.join("/hook").unwrap();
    assert_eq!(hook.deliver(&url).await.unwrap(), 200);
    assert_eq!(stale.deliver(&url).await.unwrap(), 401);
    assert_eq!(got.lock().unwrap().len(), 1);
    assert_eq!(got.lock().unwrap()[0].event_id, hook.event.event_id);
}

#[tokio::test]
async fn guard_errors_never_reach_the_fake() {
    let fake = FakeCustomerIo::start().await.unwrap();
    let cio = fake.client();
    let err = cio.identify(&Identifier::id("i".repeat(151)), &Identify::new()).await.unwrap_err();
    assert!(matches!(err, Error::Invalid(_)));
    assert!(!err.may_have_been_sent());
    assert_eq!(fake.log().requests().len(), 0);
}

/// Objects and relationships through the v2 API: object identify creates (with a `cio_object_id`), relationships
/// from both sides, `cio_object_id` updates, attribute removal, deletes (Track spec object schemas; api-notes §2).
#[tokio::test]
async fn objects_and_relationships_are_stored() {
    use customerio_api::{ObjectRef, ObjectRelationship, PersonRelationship};
    let fake = FakeCustomerIo::start().await.unwrap();
    let cio = fake.client();
    let acme = ObjectRef::new("1", "acme");
    cio.identify_object(&acme, attrs(json!({"name": "Acme Corp", "plan": "enterprise"}))).await.unwrap();
    cio.add_relationships(&acme, &[PersonRelationship::new(Identifier::id("42")).attr("role", "admin")]).await.unwrap();
    let ann = Identifier::email("ann@example.com");
    cio.identify(&ann, &Identify::new()).await.unwrap();
    cio.entity(&Operation::person_add_relationships(&ann, &[ObjectRelationship::new(acme.clone())])).await.unwrap();
    let person42 = fake.person(&Identifier::id("42")).expect("relating creates the person like an event would");
    let annp = fake.person(&ann).unwrap();
    let rels = fake.relationships("1", "acme");
    let mut want = vec![(person42.cio_id.clone(), attrs(json!({"role": "admin"}))), (annp.cio_id.clone(), Map::new())];
    want.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(rels, want);

    // update through cio_object_id; "" removes an attribute
    let cio_object_id = fake.object_cio_id("1", "acme").unwrap();
    cio.identify_object(&ObjectRef::cio(cio_object_id), attrs(json!({"plan": "", "seats": 5}))).await.unwrap();
    assert_eq!(fake.object("1", "acme").unwrap(), attrs(json!({"name": "Acme Corp", "seats": 5})));
    // an unknown cio_object_id updates nothing (update only) and is noted in the activity log
    cio.identify_object(&ObjectRef::cio("nope"), attrs(json!({"x": 1}))).await.unwrap();
    assert!(fake.activity().iter().any(|a| a.contains("nope")));

    cio.delete_relationships(&acme, &[PersonRelationship::new(Identifier::id("42"))]).await.unwrap();
    assert_eq!(fake.relationships("1", "acme").len(), 1);
    // deleting the person removes their relationships
    cio.delete_person(&ann).await.unwrap();
    assert!(fake.relationships("1", "acme").is_empty());
    cio.delete_object(&acme).await.unwrap();
    assert!(fake.object("1", "acme").is_none());
}

/// Invalid object operations are 207 items like the real batch endpoint (api-notes §2: "207 for partial failure"):
/// both kinds of identifiers at once, an empty relationship list sent raw, a relationship attribute over 1,000 bytes.
#[tokio::test]
async fn invalid_object_operations_are_207_items() {
    let fake = FakeCustomerIo::start().await.unwrap();
    let cio = fake.client();
    let long = "x".repeat(1001);
    let ops = vec![
        Operation::raw(json!({"type": "object", "action": "identify", "identifiers": {"object_type_id": "1", "object_id": "a", "cio_object_id": "c"}})).unwrap(),
        Operation::raw(json!({"type": "object", "action": "add_relationships", "identifiers": {"object_type_id": "1", "object_id": "a"}, "cio_relationships": []})).unwrap(),
        Operation::raw(json!({"type": "object", "action": "add_relationships", "identifiers": {"object_type_id": "1", "object_id": "a"}, "cio_relationships": [{"identifiers": {"id": "1"}, "relationship_attributes": {"note": long}}]})).unwrap(),
        Operation::raw(json!({"type": "object", "action": "identify", "identifiers": {"object_type_id": "1", "object_id": "b"}, "attributes": {"ok": true}})).unwrap(),
    ];
    // the raw operations skip the client's own checks, so the fake's are what answers
    let body = json!({"batch": ops});
    let resp = cio
        .send(customerio_api::Api::Track, api_core::Request::post("/api/v2/batch").json(&body).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status.as_u16(), 207);
    let v: Value = resp.json().unwrap();
    let idx: Vec<u64> = v["errors"].as_array().unwrap().iter().map(|e| e["batch_index"].as_u64().unwrap()).collect();
    assert_eq!(idx, [0, 1, 2]);
    assert!(fake.object("1", "b").is_some(), "the valid operation is applied");
}

/// Segments in the fake: seeded and API-created manual segments, Track add/remove (manual only), membership
/// pages with `next`, count, a person's segments, search filters, delete (App API paths as go-customerio's
/// `segments_api.go`; membership `limit` ≤ 30,000; search `limit` ≤ 1,000).
#[tokio::test]
async fn segments_membership_and_search() {
    use customerio_api::{CustomerFilter as F, ListOptions, SegmentId, SegmentType};
    use futures::TryStreamExt;
    let fake = FakeCustomerIo::start().await.unwrap();
    let cio = fake.client();
    for (id, plan) in [("1", "pro"), ("2", "free"), ("3", "pro")] {
        cio.identify(&Identifier::id(id), &Identify::new().attr("plan", plan).email(format!("p{id}@x.io")))
            .await
            .unwrap();
    }
    let dynamic = fake.seed_segment("Pro", SegmentType::Dynamic, &[Identifier::id("1"), Identifier::id("3")]);
    let manual = cio.create_manual_segment("VIP", Some("hand-picked")).await.unwrap();
    assert_eq!(manual.kind, Some(SegmentType::Manual));
    cio.add_to_segment(manual.id, "email", &["p2@x.io".into(), "p3@x.io".into()]).await.unwrap();
    // a dynamic segment cannot be changed by hand
    let err = cio.add_to_segment(dynamic, "id", &["2".into()]).await.unwrap_err();
    assert_eq!(err.status().map(|s| s.as_u16()), Some(400));

    assert_eq!(cio.list_segments().await.unwrap().len(), 2);
    assert_eq!(cio.segment_customer_count(manual.id).await.unwrap(), 2);
    let first = cio.list_segment_members(manual.id, &ListOptions::new().limit(1)).await.unwrap();
    assert_eq!(first.items[0].id.as_deref(), Some("2"));
    assert!(first.next.is_some());
    let all: Vec<_> = cio.stream_segment_members(manual.id, Some(1)).try_collect().await.unwrap();
    assert_eq!(all.iter().map(|p| p.id.clone().unwrap()).collect::<Vec<_>>(), ["2", "3"]);
    let over = cio
        .send(
            customerio_api::Api::App,
            api_core::Request::get(format!("/v1/segments/{}/membership", manual.id)).query("limit", 30_001),
        )
        .await;
    assert_eq!(over.unwrap_err().status().map(|s| s.as_u16()), Some(400));

    let segs = cio.customer_segments(&Identifier::email("p3@x.io")).await.unwrap();
    assert_eq!(segs.iter().map(|s| s.id).collect::<Vec<_>>(), [dynamic, manual.id]);

    let pro_not_vip = F::and([F::eq("plan", "pro"), F::not(F::segment(manual.id))]);
    let found: Vec<_> = cio.stream_customers(pro_not_vip, Some(1)).try_collect().await.unwrap();
    assert_eq!(found.iter().map(|p| p.id.clone().unwrap()).collect::<Vec<_>>(), ["1"]);
    let either = F::or([F::segment(dynamic), F::exists("nickname")]);
    assert_eq!(cio.list_customers(&either, &ListOptions::new()).await.unwrap().items.len(), 2);

    cio.remove_from_segment(manual.id, "id", &["2".into()]).await.unwrap();
    assert_eq!(fake.segment(manual.id).unwrap().members.len(), 1);
    cio.delete_segment(manual.id).await.unwrap();
    let err = cio.get_segment(manual.id).await.unwrap_err();
    assert_eq!(err.status().map(|s| s.as_u16()), Some(404));
    assert!(matches!(cio.get_segment(SegmentId(999)).await, Err(Error::Api { .. })));
}

/// The new App API routes draw from the same strict App lane as the others (10 per second, sliding window, real
/// 429s with `Retry-After`; App API docs "requests are limited to 10 per second").
#[tokio::test]
async fn segment_reads_share_the_app_rate_limit() {
    let fake = FakeCustomerIo::start_with(FakeConfig {
        app_rate_limit: Some((3, Duration::from_secs(60))),
        ..FakeConfig::default()
    })
    .await
    .unwrap();
    let strict = fake.client_builder().retry_policy(RetryPolicy::none()).build().unwrap();
    for _ in 0..3 {
        strict.list_segments().await.unwrap();
    }
    let err = strict.list_segments().await.unwrap_err();
    assert_eq!(err.status().map(|s| s.as_u16()), Some(429));
    let err =
        strict.list_customers(&customerio_api::CustomerFilter::exists("email"), &Default::default()).await.unwrap_err();
    assert_eq!(err.status().map(|s| s.as_u16()), Some(429));
    assert!(err.retry_after().is_some());
}

/// Broadcast trigger status and list, reporting-webhook deletion, typed push/SMS checks (App API `broadcastStatus`,
/// `listBroadcastTriggers`, `deleteWebhook`; Track spec `sendpush`/`sendsms` required fields).
#[tokio::test]
async fn trigger_status_webhook_deletion_and_typed_sends() {
    use customerio_api::{BroadcastId, MessageRef, ReportingWebhookConfig, SendPush, SendSms, TriggerId};
    let fake =
        FakeCustomerIo::start_with(FakeConfig { broadcast_rate_limit: None, ..FakeConfig::default() }).await.unwrap();
    let cio = fake.client();
    let t = cio.trigger_broadcast(BroadcastId(9), &BroadcastTrigger::new()).await.unwrap();
    let status = cio.broadcast_trigger(BroadcastId(9), t.id).await.unwrap();
    assert_eq!(status.broadcast_id, Some(BroadcastId(9)));
    assert!(status.is_processed());
    assert_eq!(cio.list_broadcast_triggers(BroadcastId(9)).await.unwrap().len(), 1);
    let err = cio.broadcast_trigger(BroadcastId(9), TriggerId(999)).await.unwrap_err();
    assert_eq!(err.status().map(|s| s.as_u16()), Some(404));

    let cfg = ReportingWebhookConfig::new("sync", "https://example.com/hook", ["email_opened".to_owned()]);
    let a = cio.create_reporting_webhook(&cfg).await.unwrap().id.unwrap();
    let b = cio.create_reporting_webhook(&cfg).await.unwrap().id.unwrap();
    cio.delete_reporting_webhook(a).await.unwrap();
    let c = cio.create_reporting_webhook(&cfg).await.unwrap().id.unwrap();
    assert!(c > b, "a deleted id is never reused");
    let err = cio.delete_reporting_webhook(a).await.unwrap_err();
    assert_eq!(err.status().map(|s| s.as_u16()), Some(404));
    assert_eq!(cio.list_reporting_webhooks().await.unwrap().len(), 2);

    let who = Identifier::id("42");
    cio.send_push(&SendPush::new(MessageRef::Id(1), who.clone()).to("all")).await.unwrap();
    cio.send_sms(&SendSms::new(MessageRef::Trigger("code".into()), who, "+15559876543")).await.unwrap();
    let kinds: Vec<_> = fake.sent_messages().iter().map(|m| m.kind.clone()).collect();
    assert_eq!(kinds, ["push", "sms"]);
    // the fake checks what the client cannot be made to omit, through the raw escape hatch
    let raw = api_core::Request::post("/v1/send/sms")
        .json(&json!({"identifiers": {"id": "42"}, "transactional_message_id": 1}))
        .unwrap();
    let err = cio.send(customerio_api::Api::Transactional, raw).await.unwrap_err();
    assert_eq!(err.vendor(), Some(&VendorError::Message("\"to\" is required".into())));
}

/// The fake's `POST /v1/customers/attributes` leaves unknown people out (api-notes §3).
#[tokio::test]
async fn batch_attributes_leave_unknown_people_out() {
    let fake = FakeCustomerIo::start().await.unwrap();
    let cio = fake.client();
    cio.identify(&Identifier::id("1"), &Identify::new().attr("plan", "pro")).await.unwrap();
    let got = cio.customers_attributes(&[Identifier::id("1"), Identifier::id("404")]).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].attributes["plan"], "pro");
}

/// A person's activities (their events, page and screen views) and messages (transactional sends) through the
/// fake, paginated and filtered like the App API's `getPersonActivities`/`getPersonMessages`.
#[tokio::test]
async fn activities_and_messages_of_a_person() {
    use customerio_api::{ActivityQuery, ActivityType, ListOptions, MessageQuery, MessageRef, MessageType, SendSms};
    use futures::TryStreamExt;
    let fake = FakeCustomerIo::start_with(FakeConfig {
        clock: Arc::new(FixedClock::at_unix(1_700_000_000)),
        ..FakeConfig::default()
    })
    .await
    .unwrap();
    let cio = fake.client();
    let ann = Identifier::email("ann@example.com");
    cio.identify(&ann, &Identify::new().id("7")).await.unwrap();
    cio.track(&ann, &Event::new("signup").timestamp(1)).await.unwrap();
    cio.track(&ann, &Event::new("purchase").timestamp(2)).await.unwrap();
    cio.track(&ann, &Event::page("https://example.com/pricing").timestamp(3)).await.unwrap();
    let page =
        cio.list_customer_activities(&ann, &ActivityQuery::new().page(ListOptions::new().limit(2))).await.unwrap();
    assert_eq!(
        page.items.iter().map(|a| a.name.clone().unwrap()).collect::<Vec<_>>(),
        ["https://example.com/pricing", "purchase"]
    );
    assert!(page.next.is_some());
    let events: Vec<_> = cio
        .stream_customer_activities(
            &ann,
            ActivityQuery::new().kind(ActivityType::Event).page(ListOptions::new().limit(1)),
        )
        .try_collect()
        .await
        .unwrap();
    assert_eq!(events.iter().map(|a| a.name.clone().unwrap()).collect::<Vec<_>>(), ["purchase", "signup"]);
    let err = cio.list_customer_activities(&Identifier::id("nobody"), &ActivityQuery::new()).await.unwrap_err();
    assert_eq!(err.status().map(|s| s.as_u16()), Some(404));

    cio.send_sms(&SendSms::new(MessageRef::Id(3), Identifier::id("7"), "+15559876543")).await.unwrap();
    let msgs = cio.list_customer_messages(&Identifier::id("7"), &MessageQuery::new()).await.unwrap();
    assert_eq!(msgs.items.len(), 1);
    assert_eq!(msgs.items[0].kind, Some(MessageType::Twilio));
    assert_eq!(msgs.items[0].recipient.as_deref(), Some("+15559876543"));
    let none = cio.list_customer_messages(&ann, &MessageQuery::new().between(0, 1_000)).await.unwrap();
    assert!(none.items.is_empty() && none.next.is_none());
}
