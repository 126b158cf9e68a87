//! Client against wiremock (bodies, query params, headers, call counts) and a scripted in-process transport for the
//! timing rules (paused tokio clock).

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex},
    time::Duration,
};

use airtable_client::{
    CellValue, Client, Error, ErrorType, Fields, RecordId, RecordUpdate, WriteOptions,
    webhook::{
        ActionSource, ChangeKind, CreateWebhook, MacSecret, PayloadErrorCode, WebhookPayload, WebhookSpecification,
        verify_mac,
    },
};
use api_core::{RawResponse, Request, RetryPolicy, SignatureError, Transport, TransportError};
use futures::{StreamExt as _, TryStreamExt as _, future::BoxFuture};
use http::{HeaderMap, StatusCode};
use serde_json::{Value, json};
use tokio::time::Instant;
use wiremock::{
    Mock, MockServer, ResponseTemplate,
    matchers::{body_json, header, method, path, query_param},
};

const TOKEN: &str = "patTEST.secretpart";

fn fixture(name: &str) -> Value {
    let p = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn client(server: &MockServer) -> Client {
    Client::builder()
        .token(TOKEN)
        .base_url(format!("{}/v0", server.uri()))
        .requests_per_second_per_base(None)
        .requests_per_second_per_token(None)
        .retry_policy(RetryPolicy {
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(5),
            ..RetryPolicy::default()
        })
        .build()
        .unwrap()
}

fn rec(id: &str, name: &str) -> Value {
    json!({"id": id, "createdTime": "2022-10-19T16:52:15.000Z", "fields": {"Name": name}})
}

#[test]
fn debug_never_shows_the_token() {
    let c = Client::new(TOKEN).unwrap();
    let s = format!("{c:?}");
    assert!(!s.contains("secretpart"), "{s}");
    assert!(!format!("{:?}", Client::builder().token(TOKEN)).contains("secretpart"));
}

#[tokio::test]
async fn create_chunks_25_into_10_10_5_with_typecast_and_bearer() {
    let server = MockServer::start().await;
    for n in [10usize, 5] {
        let records: Vec<Value> = (0..n).map(|i| rec(&format!("rec{i}"), "x")).collect();
        let times = if n == 10 { 2 } else { 1 };
        Mock::given(method("POST"))
            .and(path("/v0/appB/Contacts"))
            .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
            .and(wiremock::matchers::body_partial_json(json!({"typecast": true})))
            .and(move |r: &wiremock::Request| {
                let v: Value = serde_json::from_slice(&r.body).unwrap();
                v["records"].as_array().unwrap().len() == n
            })
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"records": records})))
            .expect(times)
            .mount(&server)
            .await;
    }
    let fields: Vec<Fields> = (0..25).map(|i| Fields::new().with("Name", format!("n{i}"))).collect();
    let out = client(&server).table("appB", "Contacts").create(fields, WriteOptions::typecast()).await.unwrap();
    assert_eq!(out.len(), 25);
    let reqs = server.received_requests().await.unwrap();
    let first: Value = serde_json::from_slice(&reqs[0].body).unwrap();
    assert_eq!(first["records"][0], json!({"fields": {"Name": "n0"}}));
}

#[tokio::test]
async fn upsert_body_and_response_mapping() {
    let server = MockServer::start().await;
    Mock::given(method("PATCH"))
        .and(path("/v0/appB/tblTasks"))
        .and(body_json(fixture("upsert_request.json")))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture("upsert_response.json")))
        .expect(1)
        .mount(&server)
        .await;
    let records = [
        Fields::new().with("Name", "Kick off design work").with("Status", "In progress"),
        Fields::new().with("Name", "New homepage").with("Status", "To do"),
    ];
    let r =
        client(&server).table("appB", "tblTasks").upsert(&records, &["Name"], WriteOptions::default()).await.unwrap();
    assert_eq!(r.created_records, [RecordId::from("rec1")]);
    assert_eq!(r.updated_records, [RecordId::from("rec2")]);
    assert_eq!(r.records[1].get_str("Status"), Some("To do"));
    // missing merge field: rejected before any request
    let e = client(&server)
        .table("appB", "tblTasks")
        .upsert(&[Fields::new().with("Status", "x")], &["Name"], WriteOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(e, Error::InvalidRequest(_)));
}

#[tokio::test]
async fn upsert_replace_uses_put_and_ambiguity_is_typed() {
    let server = MockServer::start().await;
    Mock::given(method("PUT"))
        .and(path("/v0/appB/T"))
        .respond_with(ResponseTemplate::new(422).set_body_json(json!({"error": {"type": "INVALID_REQUEST_UNKNOWN",
            "message": "Cannot upsert: more than one record matches fieldsToMergeOn"}})))
        .expect(1)
        .mount(&server)
        .await;
    let e = client(&server)
        .table("appB", "T")
        .upsert_replace(&[Fields::new().with("Email", "a@x")], &["Email"], WriteOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(e, Error::UpsertAmbiguous(_)), "{e:?}");
}

#[tokio::test]
async fn update_patch_put_single_and_delete_bodies() {
    let server = MockServer::start().await;
    Mock::given(method("PATCH"))
        .and(path("/v0/appB/T"))
        .and(body_json(json!({"records": [{"id": "rec1", "fields": {"Name": "A"}}]})))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"records": [rec("rec1", "A")]})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("PUT"))
        .and(path("/v0/appB/T"))
        .and(body_json(json!({"records": [{"id": "rec1", "fields": {"Name": "B"}}], "returnFieldsByFieldId": true})))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"records": [rec("rec1", "B")]})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("PATCH"))
        .and(path("/v0/appB/T/rec1"))
        .and(body_json(json!({"fields": {"Name": "C"}, "typecast": true})))
        .respond_with(ResponseTemplate::new(200).set_body_json(rec("rec1", "C")))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .and(path("/v0/appB/T"))
        .and(query_param("records[]", "rec1"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"records": [{"id": "rec1", "deleted": true}, {"id": "rec2", "deleted": true}]})),
        )
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v0/appB/T/rec9"))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture("record.json")))
        .expect(1)
        .mount(&server)
        .await;
    let c = client(&server);
    let t = c.table("appB", "T");
    let u = |n: &str| RecordUpdate { id: "rec1".into(), fields: Fields::new().with("Name", n) };
    assert_eq!(t.update(&[u("A")], WriteOptions::default()).await.unwrap()[0].get_str("Name"), Some("A"));
    let by_id = WriteOptions { return_fields_by_field_id: true, ..WriteOptions::default() };
    assert_eq!(t.replace(&[u("B")], by_id).await.unwrap()[0].get_str("Name"), Some("B"));
    let one = t.update_one(&"rec1".into(), &Fields::new().with("Name", "C"), WriteOptions::typecast()).await.unwrap();
    assert_eq!(one.get_str("Name"), Some("C"));
    let d = t.delete(&["rec1".into(), "rec2".into()]).await.unwrap();
    assert_eq!(d.len(), 2);
    let reqs = server.received_requests().await.unwrap();
    let del = reqs.iter().find(|r| r.method.as_str() == "DELETE").unwrap();
    assert_eq!(del.url.query(), Some("records%5B%5D=rec1&records%5B%5D=rec2"));
    let r = t.get(&"rec9".into()).await.unwrap();
    assert_eq!(r.comment_count, Some(5));
}

#[tokio::test]
async fn list_pagination_params_and_empty_table() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v0/appB/My%20Table"))
        .and(query_param("pageSize", "2"))
        .and(query_param("filterByFormula", "{Status}='Active'"))
        .and(query_param("sort[0][field]", "Name"))
        .and(query_param("sort[0][direction]", "desc"))
        .and(query_param("view", "Grid view"))
        .and(query_param("fields[]", "Name"))
        .and(query_param("returnFieldsByFieldId", "true"))
        .and(query_param("cellFormat", "string"))
        .and(query_param("timeZone", "Europe/Berlin"))
        .and(query_param("userLocale", "en-gb"))
        .and(|r: &wiremock::Request| !r.url.query().unwrap_or("").contains("offset"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"records": [rec("rec1", "a"), rec("rec2", "b")], "offset": "itr1/rec3"})),
        )
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v0/appB/My%20Table"))
        .and(query_param("offset", "itr1/rec3"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"records": [rec("rec3", "c")]})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v0/appB/Empty"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"records": []})))
        .expect(1)
        .mount(&server)
        .await;
    let c = client(&server);
    let all: Vec<_> = c
        .table("appB", "My Table")
        .list()
        .page_size(2)
        .filter_by_formula("{Status}='Active'")
        .sort("Name", airtable_client::Direction::Desc)
        .view("Grid view")
        .fields(["Name"])
        .return_fields_by_field_id(true)
        .cell_format(airtable_client::records::CellFormat::String)
        .time_zone("Europe/Berlin")
        .user_locale("en-gb")
        .stream()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(all.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), ["rec1", "rec2", "rec3"]);
    let empty = c.table("appB", "Empty").list().all().await.unwrap();
    assert!(empty.is_empty());
}

#[tokio::test]
async fn list_stream_is_lazy_and_stops_after_error() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v0/appB/T"))
        .and(|r: &wiremock::Request| !r.url.query().unwrap_or("").contains("offset"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"records": [rec("rec1", "a")], "offset": "o1"})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v0/appB/T"))
        .and(query_param("offset", "o1"))
        .respond_with(
            ResponseTemplate::new(422)
                .set_body_json(json!({"error": {"type": "LIST_RECORDS_ITERATOR_NOT_AVAILABLE", "message": "expired"}})),
        )
        .expect(1)
        .mount(&server)
        .await;
    let c = client(&server);
    let mut s = Box::pin(c.table("appB", "T").list().stream());
    assert!(s.next().await.unwrap().is_ok());
    let e = s.next().await.unwrap().unwrap_err();
    assert!(matches!(e, Error::IteratorExpired(_)));
    assert!(s.next().await.is_none());
}

#[tokio::test]
async fn long_formula_uses_post_list_records() {
    let server = MockServer::start().await;
    let formula =
        format!("OR({})", (0..900).map(|i| format!("{{Email}}='user{i}@example.com'")).collect::<Vec<_>>().join(","));
    Mock::given(method("POST"))
        .and(path("/v0/appB/T/listRecords"))
        .and(body_json(json!({"filterByFormula": formula, "pageSize": 100})))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"records": [rec("rec1", "a")]})))
        .expect(1)
        .mount(&server)
        .await;
    let all = client(&server).table("appB", "T").list().page_size(100).filter_by_formula(formula).all().await.unwrap();
    assert_eq!(all.len(), 1);
}

#[tokio::test]
async fn both_error_shapes_are_typed() {
    let server = MockServer::start().await;
    let cases = [
        ("A", 403, "error_not_found_or_forbidden.json", ErrorType::InvalidPermissionsOrModelNotFound),
        ("B", 403, "error_invalid_permissions.json", ErrorType::InvalidPermissions),
        ("C", 422, "error_invalid_multiple_choice.json", ErrorType::InvalidMultipleChoiceOptions),
        ("D", 404, "error_not_found_string.json", ErrorType::NotFound),
    ];
    for (t, status, f, _) in &cases {
        Mock::given(method("GET"))
            .and(path(format!("/v0/appB/{t}/rec1")))
            .respond_with(ResponseTemplate::new(*status).set_body_json(fixture(f)))
            .expect(1..)
            .mount(&server)
            .await;
    }
    Mock::given(method("GET"))
        .and(path("/v0/appB/E/rec1"))
        .respond_with(
            ResponseTemplate::new(422).set_body_json(json!({"error": {"type": "SOMETHING_NEW", "message": "m"}})),
        )
        .mount(&server)
        .await;
    let c = client(&server);
    for (t, status, _, kind) in &cases {
        let e = c.table("appB", *t).get(&"rec1".into()).await.unwrap_err();
        assert_eq!(e.status().unwrap().as_u16(), *status);
        assert_eq!(e.error_type(), Some(kind));
        assert!(!e.api().unwrap().parts.body.is_empty(), "raw body kept");
        assert_eq!(e.class(), api_core::ErrorClass::from_status(StatusCode::from_u16(*status).unwrap()));
    }
    let e = c.table("appB", "A").get(&"rec1".into()).await;
    assert!(e.as_ref().unwrap_err().is_not_found());
    assert!(e.unwrap_err().to_string().contains("no access"));
    let e = c.table("appB", "D").get(&"rec1".into()).await.unwrap_err();
    assert!(
        matches!(&e.api().unwrap().body.as_ref().unwrap().error, airtable_client::ErrorField::Code(c) if c == "NOT_FOUND")
    );
    let e = c.table("appB", "E").get(&"rec1".into()).await.unwrap_err();
    assert_eq!(e.error_type(), Some(&ErrorType::Other("SOMETHING_NEW".into())));
}

#[tokio::test]
async fn server_errors_retried_for_reads_not_for_creates() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v0/appB/T"))
        .respond_with(ResponseTemplate::new(502).set_body_string("<html>bad gateway</html>"))
        .up_to_n_times(2)
        .expect(2)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v0/appB/T"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"records": []})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v0/appB/T"))
        .respond_with(ResponseTemplate::new(503).set_body_string("busy"))
        .expect(1)
        .mount(&server)
        .await;
    let c = client(&server);
    c.table("appB", "T").list().all().await.unwrap();
    let e =
        c.table("appB", "T").create(vec![Fields::new().with("Name", "x")], WriteOptions::default()).await.unwrap_err();
    assert_eq!(e.status().unwrap().as_u16(), 503);
    assert!(e.api().unwrap().body.is_none(), "non-Airtable body kept raw");
    assert_eq!(e.error_type(), Some(&ErrorType::ServerError));
}

#[tokio::test]
async fn billing_cap_429_is_not_retried() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v0/appB/T"))
        .respond_with(
            ResponseTemplate::new(429).set_body_json(json!({"error": {"type": "PUBLIC_API_BILLING_LIMIT_EXCEEDED"}})),
        )
        .expect(1)
        .mount(&server)
        .await;
    let e = client(&server).table("appB", "T").list().all().await.unwrap_err();
    assert_eq!(e.error_type(), Some(&ErrorType::PublicApiBillingLimitExceeded));
    assert_eq!(e.retry_after(), None);
}

#[tokio::test]
async fn metadata_bases_and_schema() {
    let server = MockServer::start().await;
    // two pages: the documented bases body (pyairtable tests/sample_data/Bases.json, api-notes airtable.md D) split
    // by an `offset` ("{"bases":[…], "offset"?}", paginated by `offset`, api-notes D)
    let bases = fixture("bases.json")["bases"].clone();
    Mock::given(method("GET"))
        .and(path("/v0/meta/bases"))
        .and(|r: &wiremock::Request| r.url.query().is_none())
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"bases": [bases[0].clone()], "offset": "itrPAGE2"})),
        )
        .expect(2)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v0/meta/bases"))
        .and(query_param("offset", "itrPAGE2"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"bases": [bases[1].clone()]})))
        .expect(2)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v0/meta/bases/appLkNDICXNqxSDhG/tables"))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture("base_schema.json")))
        .expect(1)
        .mount(&server)
        .await;
    let c = client(&server);
    // list_bases: one page, with what continues it
    let first = c.list_bases(None).await.unwrap();
    assert_eq!(first.bases.len(), 1);
    assert_eq!(first.offset.as_deref(), Some("itrPAGE2"));
    let last = c.list_bases(first.offset.as_deref()).await.unwrap();
    assert_eq!((last.bases[0].id.as_str(), last.offset), ("appSW9R5uCNmRmfl6", None));
    // stream_bases: every base across pages
    let bases: Vec<_> = c.stream_bases().try_collect().await.unwrap();
    assert_eq!(bases.len(), 2);
    assert_eq!(bases[1].permission_level, "edit");
    let s = c.base_schema(&"appLkNDICXNqxSDhG".into()).await.unwrap();
    let t = s.table("Apartments").unwrap();
    assert_eq!(t.primary_field_id.as_str(), "fld1VnoyuotSTyxW1");
    assert_eq!(t.field("District").unwrap().linked_table_id().unwrap().as_str(), "tblK6MZHez0ZvBChZ");
    assert_eq!(t.field("District").unwrap().kind, airtable_client::FieldType::MultipleRecordLinks);
    assert_eq!(t.views[0].kind, "grid");
}

#[tokio::test]
async fn webhook_management_bodies() {
    let server = MockServer::start().await;
    let spec = WebhookSpecification::table_data("tbl00000000000000");
    Mock::given(method("POST"))
        .and(path("/v0/bases/appB/webhooks"))
        .and(body_json(json!({"notificationUrl": "https://foo.com/receive-ping", "specification": {"options": {
            "filters": {"dataTypes": ["tableData"], "recordChangeScope": "tbl00000000000000"},
            "includes": {"includePreviousCellValues": true}}}})))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": "ach00000000000000",
            "macSecretBase64": "c3VwZXIgZHVwZXIgc2VjcmV0", "expirationTime": "2023-01-30T00:00:00.000Z"})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v0/bases/appB/webhooks"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"webhooks": [fixture("webhook_pyairtable.json")]})),
        )
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v0/bases/appB/webhooks/ach1/refresh"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"expirationTime": "2023-02-06T00:00:00.000Z"})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v0/bases/appB/webhooks/ach1/enableNotifications"))
        .and(body_json(json!({"enable": false})))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .and(path("/v0/bases/appB/webhooks/ach1"))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&server)
        .await;
    let c = client(&server);
    let base = "appB".into();
    let created = c
        .create_webhook(
            &base,
            &CreateWebhook { notification_url: Some("https://foo.com/receive-ping".into()), specification: spec },
        )
        .await
        .unwrap();
    assert_eq!(created.mac_secret_base64.expose_base64(), "c3VwZXIgZHVwZXIgc2VjcmV0");
    let hooks = c.list_webhooks(&base).await.unwrap();
    let r = hooks[0].last_notification_result.as_ref().unwrap();
    assert!(!r.success);
    assert_eq!(r.will_be_retried, Some(true));
    let id = "ach1".into();
    assert_eq!(
        c.refresh_webhook(&base, &id).await.unwrap().expiration_time,
        Some(chrono::DateTime::parse_from_rfc3339("2023-02-06T00:00:00.000Z").unwrap().to_utc())
    );
    c.set_webhook_notifications(&base, &id, false).await.unwrap();
    c.delete_webhook(&base, &id).await.unwrap();
}

#[tokio::test]
async fn payload_feed_three_pages_with_cursor_hand_off() {
    let server = MockServer::start().await;
    let p = |n: u64| {
        json!({"timestamp": "2022-02-01T21:25:05.663Z", "baseTransactionNumber": n, "payloadFormat": "v0",
        "actionMetadata": {"source": "publicApi", "sourceMetadata": {}}})
    };
    let pages = [
        ("3", json!({"cursor": 5, "mightHaveMore": true, "payloads": [p(10), p(11)]})),
        ("5", json!({"cursor": 7, "mightHaveMore": true, "payloads": [p(12), p(12)]})),
        ("7", json!({"cursor": 8, "mightHaveMore": false, "payloads": [p(13)]})),
    ];
    for (cur, body) in pages {
        Mock::given(method("GET"))
            .and(path("/v0/bases/appB/webhooks/ach1/payloads"))
            .and(query_param("cursor", cur))
            .and(query_param("limit", "2"))
            .respond_with(ResponseTemplate::new(200).set_body_json(body))
            .expect(1)
            .mount(&server)
            .await;
    }
    let c = client(&server);
    let mut feed = c.payload_feed(&"appB".into(), &"ach1".into(), 3).limit(2);
    let mut seen = Vec::new();
    while let Some(p) = feed.next().await {
        let p = p.unwrap();
        assert_eq!(feed.cursor(), p.next_cursor, "the cursor to persist follows each payload");
        seen.push((p.cursor, p.payload.base_transaction_number));
    }
    assert_eq!(seen, [(3, 10), (4, 11), (5, 12), (6, 12), (7, 13)], "split payloads share a txn number, not a cursor");
    assert_eq!(feed.cursor(), 8);
    assert_eq!(feed.pages_fetched(), 3);
}

#[tokio::test]
async fn payload_feed_empty_keeps_cursor() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v0/bases/appB/webhooks/ach1/payloads"))
        .and(query_param("cursor", "9"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"cursor": 9, "mightHaveMore": false, "payloads": []})),
        )
        .expect(1)
        .mount(&server)
        .await;
    let (all, cursor) = client(&server).payload_feed(&"appB".into(), &"ach1".into(), 9).collect_all().await.unwrap();
    assert!(all.is_empty());
    assert_eq!(cursor, 9);
}

#[test]
fn payload_fixtures_parse() {
    let page: airtable_client::PayloadsPage = serde_json::from_value(fixture("payloads_official.json")).unwrap();
    assert_eq!(page.cursor, 5);
    let n = page.numbered();
    assert_eq!(n[0].cursor, 4);
    let p = &n[0].payload;
    assert_eq!(p.source(), Some(&ActionSource::Client));
    assert_eq!(p.user().unwrap().permission_level.as_deref(), Some("create"));

    let d: WebhookPayload = serde_json::from_value(fixture("payload_destroyed_tables.json")).unwrap();
    assert_eq!(d.destroyed_table_ids.len(), 2);
    let e: WebhookPayload = serde_json::from_value(fixture("payload_error.json")).unwrap();
    assert!(e.is_error());
    assert_eq!(e.code, Some(PayloadErrorCode::InvalidHook));
    assert!(e.action_metadata.is_none());

    let mut full = fixture("payloads_official.json")["payloads"][0].clone();
    full["changedTablesById"] = json!({"tbl00000000000000": fixture("table_changed_official.json")});
    let p: WebhookPayload = serde_json::from_value(full.clone()).unwrap();
    let t = &p.changed_tables_by_id[&"tbl00000000000000".into()];
    assert_eq!(
        t.changed_fields_by_id[&"fld10000000000002".into()].previous.as_ref().unwrap().kind.as_deref(),
        Some("rating")
    );
    assert_eq!(t.changed_views_by_id.len(), 1);
    let changes = p.record_changes();
    let kinds: Vec<ChangeKind> = changes.iter().map(|c| c.kind).collect();
    assert_eq!(kinds, [ChangeKind::Created, ChangeKind::Updated, ChangeKind::Destroyed]);
    let upd = &changes[1];
    assert_eq!(upd.fields[&"fld00000000000001".into()].current.as_ref().unwrap().as_str(), Some("hello world"));
    assert_eq!(upd.unchanged[&"fld0000000000000".into()].as_ref().unwrap().as_f64(), Some(1.0));
    // round trip keeps everything
    assert_eq!(serde_json::to_value(&p).unwrap(), full);
}

/// `previous` absent vs `null` (issue 21): "Cell value V2 or null by fieldId", and previous values are "only a part
/// of the payload if the specification contains them in the includes object" (api-notes airtable.md A.9, OFFICIAL
/// webhooks-changed-record / webhooks-table-changed). Bodies: the official table-changed example, and the same
/// changed-record shape with a `null` previous value and without `previous`.
#[test]
fn record_change_tells_an_absent_previous_from_a_null_one() {
    use airtable_client::PreviousValue;
    let payload = |table_changed: Value| -> WebhookPayload {
        let mut full = fixture("payloads_official.json")["payloads"][0].clone();
        full["changedTablesById"] = json!({"tbl00000000000000": table_changed});
        serde_json::from_value(full).unwrap()
    };
    // the official example: `previous` lists fld0000000000001 (16 chars), `current` fld00000000000001 (17 chars)
    let official = payload(fixture("table_changed_official.json")).record_changes();
    let upd = &official[1];
    assert_eq!(upd.fields[&"fld00000000000001".into()].previous, PreviousValue::Absent, "not listed in previous");
    let cleared = &upd.fields[&"fld0000000000001".into()];
    assert_eq!(cleared.previous.value().and_then(|v| v.as_str()), Some("hello"));
    assert_eq!(cleared.current, None, "listed only in previous: now empty");
    // a created record has nothing before it
    assert!(official[0].fields.values().all(|f| f.previous.is_absent()));

    // `previous` present with null: the cell was empty before
    let was_empty = payload(json!({"changedRecordsById": {"rec00000000000001": {
        "current": {"cellValuesByFieldId": {"fld00000000000001": "hello world"}},
        "previous": {"cellValuesByFieldId": {"fld00000000000001": null}}
    }}}))
    .record_changes();
    let f = &was_empty[0].fields[&"fld00000000000001".into()];
    assert!(f.previous.is_null());
    assert_eq!(f.previous.clone().into_option(), Some(None));
    assert_eq!(f.current.as_ref().and_then(|v| v.as_str()), Some("hello world"));

    // no `previous` at all (includePreviousCellValues off): absent, not null
    let no_prev = payload(json!({"changedRecordsById": {"rec00000000000001": {
        "current": {"cellValuesByFieldId": {"fld00000000000001": null}}
    }}}))
    .record_changes();
    let f = &no_prev[0].fields[&"fld00000000000001".into()];
    assert_eq!(f.previous, PreviousValue::Absent);
    assert_eq!(f.previous.clone().into_option(), None);
    assert_eq!(f.current, None, "null in current: cleared");
}

/// The raw escape hatch goes through auth and retry like the typed calls: bearer token on every attempt, an
/// idempotent GET retried after a 503 (api-notes airtable.md C.2: 503 "retry the request with backoffs"), a POST
/// not marked idempotent never re-sent after a 5xx.
#[tokio::test]
async fn raw_send_uses_auth_and_retry() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v0/meta/whoami"))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v0/meta/whoami"))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": "usrL2PNC5o3H4lBEi"})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v0/appB/T"))
        .respond_with(ResponseTemplate::new(500))
        .expect(1)
        .mount(&server)
        .await;
    let c = client(&server);
    let resp = c.send(Request::get("/meta/whoami").idempotent(true)).await.unwrap();
    assert_eq!(resp.json::<Value>().unwrap()["id"], "usrL2PNC5o3H4lBEi");
    let e = c.send(Request::post("/appB/T").json(&json!({"fields": {}})).unwrap().rate_key("appB")).await.unwrap_err();
    assert_eq!(e.status(), Some(StatusCode::INTERNAL_SERVER_ERROR));
    assert!(e.may_have_been_sent());
}

#[test]
fn payload_v2_cells() {
    let v: airtable_client::PayloadCellValue =
        serde_json::from_value(json!([{"id": "rec560UJdUtocSouk", "name": "Record primary column value"}])).unwrap();
    assert_eq!(v.ref_ids(), ["rec560UJdUtocSouk"]);
    let s: airtable_client::PayloadCellValue =
        serde_json::from_value(json!({"id": "selX", "name": "Done", "color": "greenLight2"})).unwrap();
    assert_eq!(s.choice_name(), Some("Done"));
    let u: airtable_client::PayloadCellValue = serde_json::from_value(json!({"weird": true})).unwrap();
    assert!(matches!(u, airtable_client::PayloadCellValue::Unknown(_)));
    let c: CellValue = serde_json::from_value(json!({"state": "generated", "isStale": false, "value": "hi"})).unwrap();
    assert!(matches!(c, CellValue::AiText(_)));
}

/// Known-answer vector computed independently:
/// `python3 -c "import hmac,hashlib,base64;print(hmac.new(base64.b64decode('c3VwZXIgZHVwZXIgc2VjcmV0'),
///  open('tests/fixtures/ping.json','rb').read(),hashlib.sha256).hexdigest())"`
/// → 6a485d628c81ff7a8ab8a766815962d5ca22efcc52b94be59e3966359d937084 (body: the fixture file's exact bytes).
#[test]
fn mac_known_answer_forged_and_truncated() {
    let secret = MacSecret::from_base64("c3VwZXIgZHVwZXIgc2VjcmV0");
    let body = std::fs::read(format!("{}/tests/fixtures/ping.json", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let good = "hmac-sha256=6a485d628c81ff7a8ab8a766815962d5ca22efcc52b94be59e3966359d937084";
    verify_mac(&secret, &body, Some(good)).unwrap();
    verify_mac(&secret, &body, Some(&good.to_uppercase().replace("HMAC-SHA256=", "hmac-sha256="))).unwrap();
    assert_eq!(secret.sign(&body).unwrap(), good);
    let forged = "hmac-sha256=7a485d628c81ff7a8ab8a766815962d5ca22efcc52b94be59e3966359d937084";
    assert_eq!(verify_mac(&secret, &body, Some(forged)), Err(SignatureError::Mismatch));
    assert!(matches!(verify_mac(&secret, &body, Some(&good[..good.len() - 2])), Err(SignatureError::Malformed(_))));
    assert_eq!(verify_mac(&secret, &body, None), Err(SignatureError::Missing));
    assert!(matches!(verify_mac(&secret, &body, Some("6a485d628c81ff7a")), Err(SignatureError::Malformed(_))));
    // the key is the decoded secret, not its base64 text
    let wrong_key = MacSecret::from_base64(base64_of("c3VwZXIgZHVwZXIgc2VjcmV0"));
    assert_eq!(verify_mac(&wrong_key, &body, Some(good)), Err(SignatureError::Mismatch));
    let mut tampered = body.clone();
    tampered[10] ^= 1;
    assert_eq!(verify_mac(&secret, &tampered, Some(good)), Err(SignatureError::Mismatch));
    let n = airtable_client::WebhookNotification::from_request(&secret, &body, Some(good)).unwrap();
    assert_eq!(n.base.id.as_str(), "app00000000000000");
}

fn base64_of(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s)
}

// ------------------------------------------------------------------------------------------------------------
// timing rules with a scripted transport (no sockets: the paused clock can fast-forward safely)

#[derive(Debug, Default)]
struct Scripted {
    replies: Mutex<VecDeque<(u16, Value)>>,
    sent: Mutex<Vec<(Instant, String)>>,
}

impl Transport for Scripted {
    fn send(&self, url: url::Url, _request: Request) -> BoxFuture<'_, Result<RawResponse, TransportError>> {
        self.sent.lock().unwrap().push((Instant::now(), url.path().to_owned()));
        let (status, body) = self.replies.lock().unwrap().pop_front().unwrap_or((200, json!({"records": []})));
        Box::pin(async move {
            Ok(RawResponse {
                status: StatusCode::from_u16(status).unwrap(),
                headers: HeaderMap::new(),
                body: bytes::Bytes::from(body.to_string()),
            })
        })
    }
}

fn scripted_client(t: Arc<Scripted>) -> Client {
    Client::builder().token(TOKEN).base_url("http://fake.invalid/v0").transport(t).build().unwrap()
}

#[tokio::test(start_paused = true)]
async fn waits_30_seconds_after_a_429_for_that_base() {
    let t = Arc::new(Scripted::default());
    t.replies.lock().unwrap().push_back((
        429,
        json!({"error": {"type": "RATE_LIMIT_REACHED", "message": "Rate limit exceeded. Please try again later"}}),
    ));
    let c = scripted_client(t.clone());
    let start = Instant::now();
    c.table("appA", "T").list().all().await.unwrap();
    let sent = t.sent.lock().unwrap().clone();
    assert_eq!(sent.len(), 2);
    let gap = sent[1].0 - sent[0].0;
    assert!(gap >= Duration::from_secs(30), "retried after {gap:?}");
    assert!(gap < Duration::from_secs(31));
    // the next request to the same base also respected the hold; another base is not held back by it
    let before = Instant::now();
    c.table("appOther", "T").list().all().await.unwrap();
    assert!(Instant::now() - before < Duration::from_secs(1));
    assert!(Instant::now() - start >= Duration::from_secs(30));
}

#[tokio::test(start_paused = true)]
async fn penalty_applies_to_next_call_when_retries_gave_up() {
    let t = Arc::new(Scripted::default());
    t.replies.lock().unwrap().push_back((429, json!({"error": {"type": "RATE_LIMIT_REACHED"}})));
    let c = Client::builder()
        .token(TOKEN)
        .base_url("http://fake.invalid/v0")
        .transport(t.clone())
        .retry_policy(RetryPolicy::none())
        .build()
        .unwrap();
    let e = c.table("appA", "T").list().all().await.unwrap_err();
    assert_eq!(e.retry_after(), Some(Duration::from_secs(30)));
    c.table("appA", "T").list().all().await.unwrap();
    let sent = t.sent.lock().unwrap().clone();
    assert!(sent[1].0 - sent[0].0 >= Duration::from_secs(30));
}

#[tokio::test(start_paused = true)]
async fn never_six_requests_to_one_base_within_a_second() {
    let t = Arc::new(Scripted::default());
    let c = scripted_client(t.clone());
    let mut tasks = Vec::new();
    for i in 0..20 {
        let c = c.clone();
        let base = if i % 4 == 0 { "appOther" } else { "appA" };
        tasks.push(tokio::spawn(async move { c.table(base, "T").list().all().await.unwrap() }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let sent = t.sent.lock().unwrap().clone();
    let a: Vec<Instant> = sent.iter().filter(|(_, p)| p.contains("/appA/")).map(|(t, _)| *t).collect();
    assert_eq!(a.len(), 15);
    for w in a.windows(6) {
        assert!(w[5] - w[0] >= Duration::from_secs(1), "6 requests within {:?}", w[5] - w[0]);
    }
    // the other base was not slowed down by appA's queue
    let other: Vec<Instant> = sent.iter().filter(|(_, p)| p.contains("/appOther/")).map(|(t, _)| *t).collect();
    assert!(other[4] - other[0] < Duration::from_secs(1) + Duration::from_millis(1));
}

#[tokio::test]
async fn failed_later_chunk_reports_committed_records() {
    let server = MockServer::start().await;
    let first: Vec<Value> = (0..10).map(|i| rec(&format!("rec{i}"), "x")).collect();
    Mock::given(method("POST"))
        .and(path("/v0/appB/T"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"records": first})))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v0/appB/T"))
        .respond_with(
            ResponseTemplate::new(422)
                .set_body_json(json!({"error": {"type": "INVALID_VALUE_FOR_COLUMN", "message": "bad"}})),
        )
        .expect(1)
        .mount(&server)
        .await;
    let fields: Vec<Fields> = (0..15).map(|i| Fields::new().with("Name", format!("n{i}"))).collect();
    let e = client(&server).table("appB", "T").create(fields, WriteOptions::default()).await.unwrap_err();
    assert!(matches!(e, Error::PartialBatch { failed_chunk: 1, .. }), "{e:?}");
    assert_eq!(e.committed().len(), 10);
    assert_eq!(e.error_type(), Some(&ErrorType::InvalidValueForColumn));
    assert!(!e.is_upsert_ambiguous());
}

#[tokio::test]
async fn payload_feed_as_stream_stops_after_error() {
    let server = MockServer::start().await;
    let p = json!({"timestamp": "2022-02-01T21:25:05.663Z", "baseTransactionNumber": 1, "payloadFormat": "v0"});
    Mock::given(method("GET"))
        .and(path("/v0/bases/appB/webhooks/ach1/payloads"))
        .and(query_param("cursor", "1"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"cursor": 2, "mightHaveMore": true, "payloads": [p]})),
        )
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v0/bases/appB/webhooks/ach1/payloads"))
        .and(query_param("cursor", "2"))
        .respond_with(ResponseTemplate::new(404).set_body_json(json!({"error": "NOT_FOUND"})))
        .expect(1)
        .mount(&server)
        .await;
    let items: Vec<_> = client(&server).payload_feed(&"appB".into(), &"ach1".into(), 1).into_stream().collect().await;
    assert_eq!(items.len(), 2);
    assert_eq!(items[0].as_ref().unwrap().cursor, 1);
    assert!(items[1].as_ref().unwrap_err().is_not_found());
}

/// `update_one` keeps `returnFieldsByFieldId`: Airtable's single-record update takes it in the JSON body next to
/// `fields` and `typecast` (api-notes/airtable.md B.4 "Body `{…, "typecast"?, "returnFieldsByFieldId"?}`" and F:
/// pyairtable `Table.update` PATCHes `{"fields", "typecast", "returnFieldsByFieldId"}` to `…/{recordId}`).
#[tokio::test]
async fn update_one_passes_return_fields_by_field_id() {
    let server = MockServer::start().await;
    Mock::given(method("PATCH"))
        .and(path("/v0/appB/T/rec1"))
        .and(body_json(json!({"fields": {"fldName": "C"}, "typecast": true, "returnFieldsByFieldId": true})))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"id": "rec1", "createdTime": "2022-10-19T16:52:15.000Z", "fields": {"fldName": "C"}}),
        ))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("PATCH"))
        .and(path("/v0/appB/T/rec2"))
        .and(body_json(json!({"fields": {"Name": "D"}})))
        .respond_with(ResponseTemplate::new(200).set_body_json(rec("rec2", "D")))
        .expect(1)
        .mount(&server)
        .await;
    let c = client(&server);
    let t = c.table("appB", "T");
    let opts = WriteOptions { typecast: true, return_fields_by_field_id: true };
    let one = t.update_one(&"rec1".into(), &Fields::new().with("fldName", "C"), opts).await.unwrap();
    assert_eq!(one.get_str("fldName"), Some("C"));
    // both off: neither member is sent
    let two = t.update_one(&"rec2".into(), &Fields::new().with("Name", "D"), WriteOptions::default()).await.unwrap();
    assert_eq!(two.get_str("Name"), Some("D"));
    let reqs = server.received_requests().await.unwrap();
    let body: Value = serde_json::from_slice(&reqs[0].body).unwrap();
    assert_eq!(body, json!({"fields": {"fldName": "C"}, "typecast": true, "returnFieldsByFieldId": true}));
}

/// A struct's `None` (and a NaN, which JSON cannot carry) is left out of the write: PATCH and upsert clear every cell
/// sent as `null` ("A PATCH request will only update the fields included in the request", api-notes/airtable.md
/// B.4), so an unknown value must not wipe what is stored. Clearing is explicit: `Fields::clear`.
#[tokio::test]
async fn none_and_nan_are_not_sent_and_clear_is_explicit() {
    #[derive(serde::Serialize)]
    struct Onboarding {
        #[serde(rename = "Deal ID")]
        deal: String,
        #[serde(rename = "Next Contact")]
        next_contact: Option<String>,
        #[serde(rename = "Amount")]
        amount: f64,
        #[serde(rename = "Owner")]
        owner: Option<String>,
    }
    let server = MockServer::start().await;
    Mock::given(method("PATCH"))
        .and(path("/v0/appB/T"))
        .and(body_json(json!({
            "performUpsert": {"fieldsToMergeOn": ["Deal ID"]},
            "records": [
                {"fields": {"Deal ID": "1", "Owner": "ann"}},
                {"fields": {"Deal ID": "2", "Next Contact": null}},
                {"fields": {"Deal ID": "3"}}
            ],
            "typecast": false
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"records": [rec("rec1", "a"), rec("rec2", "b"), rec("rec3", "c")], "createdRecords": [], "updatedRecords": ["rec1", "rec2", "rec3"]}),
        ))
        .expect(1)
        .mount(&server)
        .await;
    let first = Onboarding { deal: "1".into(), next_contact: None, amount: f64::NAN, owner: Some("ann".into()) };
    let f1 = Fields::from_struct(&first).unwrap();
    assert_eq!(f1.get("Next Contact"), None, "None is not a value to write");
    assert_eq!(f1.get("Amount"), None, "NaN is not a value to write");
    // the explicit way to empty a cell
    let f2 = Fields::new().with("Deal ID", "2").clear("Next Contact");
    assert_eq!(f2.get("Next Contact"), Some(&CellValue::Clear));
    // builder conversions skip nothing-values too
    let f3 = Fields::new().with("Deal ID", "3").with("Owner", None::<String>).with("Amount", f64::NAN);
    assert_eq!(serde_json::to_value(&f3).unwrap(), json!({"Deal ID": "3"}));
    let c = client(&server);
    c.table("appB", "T").upsert(&[f1, f2, f3], &["Deal ID"], WriteOptions::default()).await.unwrap();
}

/// A transport whose answers take `.1` to come back (the send time is recorded when the request leaves).
#[derive(Debug)]
struct Delayed(Arc<Scripted>, Duration);

impl Transport for Delayed {
    fn send(&self, url: url::Url, request: Request) -> BoxFuture<'_, Result<RawResponse, TransportError>> {
        let answer = self.0.send(url, request);
        let d = self.1;
        Box::pin(async move {
            tokio::time::sleep(d).await;
            answer.await
        })
    }
}

/// "If you exceed these rates, you will receive a 429 status code and will need to wait 30 seconds before subsequent
/// requests will succeed" (api-notes/airtable.md C.4): after a 429 the whole base waits 30 s — every clone, including
/// requests that had already been given a later slot before the 429 came back.
#[tokio::test(start_paused = true)]
async fn a_429_holds_the_base_for_every_clone_even_slots_already_reserved() {
    let t = Arc::new(Scripted::default());
    t.replies.lock().unwrap().push_back((429, json!({"error": {"type": "RATE_LIMIT_REACHED"}})));
    let c = Client::builder()
        .token(TOKEN)
        .base_url("http://fake.invalid/v0")
        .transport(Arc::new(Delayed(t.clone(), Duration::from_millis(300))))
        .build()
        .unwrap();
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let c = c.clone();
        tasks.push(tokio::spawn(async move { c.table("appA", "T").list().all().await.unwrap() }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let sent: Vec<Duration> = t.sent.lock().unwrap().iter().map(|(at, _)| *at - start).collect();
    assert_eq!(sent.len(), 5, "{sent:?}");
    // the 429 came back at 300 ms: only what was already on the wire by then went out before 30.3 s
    let hold = Duration::from_millis(300)..Duration::from_millis(30_300);
    assert!(sent.iter().all(|d| !hold.contains(d)), "sent during the hold: {sent:?}");
    assert_eq!(sent.iter().filter(|d| **d < hold.start).count(), 2, "{sent:?}");
}

/// "Webhooks … will expire and be disabled after 7 days" unless refreshed or their payloads listed, and
/// `expirationTime` is `optional<string>` — null only for legacy hooks that never expire (api-notes/airtable.md A.3,
/// A.6). The expiry is a typed time, and `needs_refresh(now, margin)` says when to refresh.
#[test]
fn webhook_expiry_is_typed_and_needs_refresh_within_the_margin() {
    use airtable_client::Webhook;
    use chrono::{TimeZone as _, Utc};
    let hook: Webhook = serde_json::from_value(fixture("webhook_pyairtable.json")).unwrap();
    let expires = Utc.with_ymd_and_hms(2023, 1, 25, 0, 0, 0).unwrap();
    assert_eq!(hook.expiration_time, Some(expires));
    let day = Duration::from_secs(86_400);
    let now = expires - chrono::Duration::days(3);
    assert!(!hook.needs_refresh(now, 2 * day), "3 days left, margin 2 days");
    assert!(hook.needs_refresh(now, 3 * day), "exactly at the margin");
    assert!(hook.needs_refresh(expires - chrono::Duration::hours(1), 2 * day));
    assert!(!hook.is_expired(expires - chrono::Duration::seconds(1)));
    assert!(hook.is_expired(expires) && hook.needs_refresh(expires, Duration::ZERO));
    // a hook that never expires never needs a refresh
    let legacy = Webhook { expiration_time: None, ..hook.clone() };
    assert!(!legacy.needs_refresh(now, 365 * day) && !legacy.is_expired(now));
    // the create answer carries the same typed expiry
    let created: airtable_client::CreatedWebhook = serde_json::from_value(
        json!({"id": "ach1", "macSecretBase64": "c2VjcmV0", "expirationTime": "2023-01-30T00:00:00.000Z"}),
    )
    .unwrap();
    assert_eq!(created.expiration_time, Some(Utc.with_ymd_and_hms(2023, 1, 30, 0, 0, 0).unwrap()));
    assert!(created.needs_refresh(Utc.with_ymd_and_hms(2023, 1, 29, 0, 0, 0).unwrap(), 2 * day));
}
