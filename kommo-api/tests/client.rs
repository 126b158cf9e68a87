//! The client against wiremock: request shapes, response decoding from fixtures, every error shape and retry branch.

use std::time::Duration;

use futures::TryStreamExt as _;
use kommo_api::{
    Client, CustomFieldId, CustomFieldsExt, EntityType, EnumId, Error, FieldValueWrite, LeadId, ListParams, Order,
    PipelineId, StatusId, TypedValue,
    contacts::NewContact,
    leads::{LeadUpdate, NewLead},
    notes::NewNote,
    tasks::{NewTask, TaskUpdate},
};
use serde_json::json;
use wiremock::{
    Mock, MockServer, Request, ResponseTemplate,
    matchers::{body_json, header, method, path, query_param},
};

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

fn hal(name: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_raw(fixture(name), "application/hal+json")
}

fn client(server: &MockServer) -> Client {
    Client::builder()
        .base_url(server.uri())
        .long_lived_token("test-token")
        .rate_limit(0)
        .retry_policy(kommo_api::RetryPolicy { base_delay: Duration::from_millis(1), ..Default::default() })
        .build()
        .unwrap()
}

#[tokio::test]
async fn get_lead_with_contacts_decodes_fixture() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v4/leads/19619"))
        .and(query_param("with", "contacts,companies"))
        .and(header("authorization", "Bearer test-token"))
        .respond_with(hal("lead.json"))
        .expect(1)
        .mount(&server)
        .await;
    let lead = client(&server).leads().get(LeadId(19619), &["contacts", "companies"]).await.unwrap();
    assert_eq!(lead.status_id, Some(StatusId::WON));
    assert!(lead.is_won());
    assert_eq!(lead.price, Some(46333));
    assert_eq!(lead.main_contact().map(kommo_api::ContactId::get), Some(10_971_465));
    assert_eq!(lead.embedded.companies[0].id.get(), 10_971_463);
    assert_eq!(lead.custom_field(CustomFieldId(294_471)).unwrap().typed(), TypedValue::Date(1_534_156_200));
    assert_eq!(
        lead.custom_field(CustomFieldId(294_473)).unwrap().typed(),
        TypedValue::Select { enum_id: Some(EnumId(441_215)), value: "Сайт".into() }
    );
    assert_eq!(lead.extra["is_price_modified_by_robot"], json!(false), "unknown members kept");
}

#[tokio::test]
async fn list_leads_sends_filters_and_pages_until_204() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v4/leads"))
        .and(query_param("limit", "2"))
        .and(query_param("with", "contacts"))
        .and(query_param("filter[statuses][0][pipeline_id]", "1300"))
        .and(query_param("filter[statuses][0][status_id]", "142"))
        .and(query_param("filter[updated_at][from]", "1500000000"))
        .and(query_param("filter[updated_at][to]", "1600000000"))
        .and(query_param("order[updated_at]", "asc"))
        .and(query_param("page", "1"))
        .respond_with(hal("leads_page1.json"))
        .expect(1)
        .mount(&server)
        .await;
    // the page after the last one: `_links.next` pointed here, Kommo answers 204
    Mock::given(method("GET"))
        .and(path("/api/v4/leads"))
        .and(query_param("page", "2"))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&server)
        .await;
    let params = ListParams::new()
        .limit(2)
        .with(["contacts"])
        .status(PipelineId(1300), StatusId::WON)
        .updated_between(Some(1_500_000_000), Some(1_600_000_000))
        .order("updated_at", Order::Asc);
    let leads: Vec<_> = client(&server).leads().stream(params).try_collect().await.unwrap();
    assert_eq!(leads.len(), 2);
    assert_eq!(leads[0].price, Some(46333), "numeric string tolerated");
    assert!(leads[0].custom_fields_values.is_empty(), "null = empty");
    assert_eq!(leads[1].embedded.tags[0].name, "vip");
}

#[tokio::test]
async fn list_stops_without_next_link_and_errors_stop_the_stream() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v4/contacts"))
        .respond_with(hal("contacts_page.json"))
        .expect(1)
        .mount(&server)
        .await;
    let all: Vec<_> = client(&server).contacts().stream(ListParams::new()).try_collect().await.unwrap();
    assert_eq!(all.len(), 1);

    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v4/leads"))
        .respond_with(
            ResponseTemplate::new(400).set_body_raw(fixture("validation_error.json"), "application/problem+json"),
        )
        .expect(1)
        .mount(&server)
        .await;
    let items: Vec<_> = client(&server).leads().stream(ListParams::new()).collect::<Vec<_>>().await;
    assert_eq!(items.len(), 1);
    assert!(items[0].is_err());
}

use futures::StreamExt as _;

#[tokio::test]
async fn limit_over_250_is_rejected_locally() {
    let server = MockServer::start().await;
    let err = client(&server).leads().list(&ListParams::new().limit(500), 1).await.unwrap_err();
    assert!(matches!(err, Error::InvalidRequest(_)));
    assert!(server.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn contact_search_miss_is_204_and_match_filters_exactly() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v4/contacts"))
        .and(query_param("query", "nobody@example.com"))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v4/contacts"))
        .and(query_param("query", "ann@example.com"))
        .respond_with(hal("contacts_page.json"))
        .expect(1)
        .mount(&server)
        .await;
    let c = client(&server);
    assert!(c.contacts().find_by_email("nobody@example.com").await.unwrap().is_none());
    let ann = c.contacts().find_by_email("ann@example.com").await.unwrap().unwrap();
    assert_eq!(ann.id.get(), 3);
    assert_eq!(ann.emails(), vec!["ann@example.com.au".to_owned(), "Ann@Example.com".to_owned()]);
}

#[tokio::test]
async fn create_leads_chunks_by_50_with_request_ids_in_order() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/v4/leads"))
        .respond_with(|req: &Request| {
            let body: Vec<serde_json::Value> = serde_json::from_slice(&req.body).unwrap();
            assert!(body.len() <= 50);
            // answer in reverse order: the client must map back by request_id
            let items: Vec<_> = body
                .iter()
                .rev()
                .map(|e| {
                    let rid = e["request_id"].as_str().unwrap().to_owned();
                    json!({"id": 1000 + rid.parse::<u64>().unwrap(), "request_id": rid, "_links": {}})
                })
                .collect();
            ResponseTemplate::new(200).set_body_json(json!({"_links": {}, "_embedded": {"leads": items}}))
        })
        .expect(3)
        .mount(&server)
        .await;
    let leads: Vec<NewLead> = (0..120).map(|i| NewLead::new(format!("L{i}"))).collect();
    let res = client(&server).leads().create(&leads).await.unwrap();
    assert_eq!(res.len(), 120);
    assert!(res.iter().enumerate().all(|(i, r)| r.id == 1000 + i as u64));
}

#[tokio::test]
async fn create_lead_body_is_the_write_model() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/v4/leads"))
        .and(body_json(json!([{
            "name": "Deal",
            "price": 5000,
            "status_id": 142,
            "pipeline_id": 1300,
            "custom_fields_values": [
                {"field_id": 1, "values": [{"value": "x"}]},
                {"field_id": 2, "values": [{"value": 1700000000}]},
                {"field_id": 3, "values": [{"enum_id": 9}]}
            ],
            "_embedded": {"tags": [{"name": "vip"}], "contacts": [{"id": 77}]},
            "request_id": "0"
        }])))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"_embedded": {"leads": [{"id": 5, "request_id": "0"}]}})),
        )
        .expect(1)
        .mount(&server)
        .await;
    let id = client(&server)
        .leads()
        .create_one(
            NewLead::new("Deal")
                .price(5000)
                .stage(PipelineId(1300), StatusId::WON)
                .field(FieldValueWrite::text(CustomFieldId(1), "x"))
                .field(FieldValueWrite::date(CustomFieldId(2), 1_700_000_000))
                .field(FieldValueWrite::select(CustomFieldId(3), EnumId(9)))
                .tag("vip")
                .contact(kommo_api::ContactId(77)),
        )
        .await
        .unwrap();
    assert_eq!(id, LeadId(5));
}

#[tokio::test]
async fn batch_failure_in_a_later_chunk_reports_what_was_written() {
    let server = MockServer::start().await;
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let c2 = calls.clone();
    Mock::given(method("PATCH"))
        .and(path("/api/v4/leads"))
        .respond_with(move |req: &Request| {
            let n = c2.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            if n == 0 {
                let body: Vec<serde_json::Value> = serde_json::from_slice(&req.body).unwrap();
                let items: Vec<_> = body
                    .iter()
                    .map(|e| json!({"id": e["id"], "updated_at": 1, "request_id": e["request_id"]}))
                    .collect();
                ResponseTemplate::new(200).set_body_json(json!({"_embedded": {"leads": items}}))
            } else {
                ResponseTemplate::new(400).set_body_raw(fixture("validation_error.json"), "application/problem+json")
            }
        })
        .expect(2)
        .mount(&server)
        .await;
    let updates: Vec<LeadUpdate> = (1..=60).map(|i| LeadUpdate::new(LeadId(i)).price(1)).collect();
    let err = client(&server).leads().update_many(&updates).await.unwrap_err();
    let Error::Batch { written, not_written, source } = &err else { panic!("{err:?}") };
    assert_eq!(written.len(), 50);
    assert_eq!(not_written.len(), 10);
    assert_eq!(not_written[0], "50");
    assert_eq!(source.status().map(|s| s.as_u16()), Some(400));
    assert_eq!(err.validation_errors()[0].errors[0].code.as_deref(), Some("NotSupportedChoice"));
}

#[tokio::test]
async fn update_lead_status_and_fields() {
    let server = MockServer::start().await;
    Mock::given(method("PATCH"))
        .and(path("/api/v4/leads/42"))
        .and(body_json(json!({"id": 42, "status_id": 143, "custom_fields_values": [{"field_id": 7, "values": null}]})))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"id": 42, "updated_at": 1700000001, "_links": {}})),
        )
        .expect(1)
        .mount(&server)
        .await;
    let u = client(&server)
        .leads()
        .update(&LeadUpdate::new(LeadId(42)).status(StatusId::LOST).field(FieldValueWrite::clear(CustomFieldId(7))))
        .await
        .unwrap();
    assert_eq!(u.updated_at, Some(1_700_000_001));
}

#[tokio::test]
async fn contact_create_with_email_and_phone() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/v4/contacts"))
        .and(body_json(json!([{
            "name": "Ann",
            "custom_fields_values": [
                {"field_code": "EMAIL", "values": [{"value": "ann@example.com", "enum_code": "WORK"}]},
                {"field_code": "PHONE", "values": [{"value": "+1 555", "enum_code": "WORK"}]}
            ],
            "request_id": "0"
        }])))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"_embedded": {"contacts": [{"id": 9, "request_id": "0"}]}})),
        )
        .expect(1)
        .mount(&server)
        .await;
    let id = client(&server)
        .contacts()
        .create_one(NewContact::new("Ann").email("ann@example.com").phone("+1 555"))
        .await
        .unwrap();
    assert_eq!(id.get(), 9);
}

#[tokio::test]
async fn notes_and_tasks_requests() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/v4/leads/notes"))
        .and(body_json(json!([{"entity_id": 42, "note_type": "common", "params": {"text": "hi"}, "request_id": "0"}])))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"_embedded": {"notes": [{"id": 1, "entity_id": 42, "request_id": "0"}]}})),
        )
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/api/v4/tasks"))
        .and(body_json(json!([{"text": "Meet", "complete_till": 1700003600, "entity_id": 42, "entity_type": "leads", "task_type_id": 2, "responsible_user_id": 5, "request_id": "0"}])))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"_embedded": {"tasks": [{"id": 11, "request_id": "0"}]}})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("PATCH"))
        .and(path("/api/v4/tasks/11"))
        .and(body_json(json!({"id": 11, "is_completed": true, "result": {"text": "Cancelled: client ill"}})))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": 11, "updated_at": 5})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v4/tasks"))
        .and(query_param("filter[entity_type]", "leads"))
        .and(query_param("filter[entity_id][0]", "42"))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&server)
        .await;
    let c = client(&server);
    assert_eq!(c.notes(EntityType::Leads).add_one(NewNote::common(LeadId(42), "hi")).await.unwrap().get(), 1);
    let t = c
        .tasks()
        .create_one(
            NewTask::new("Meet", 1_700_003_600)
                .on(LeadId(42))
                .task_type(kommo_api::tasks::TASK_TYPE_MEETING)
                .responsible(kommo_api::UserId(5)),
        )
        .await
        .unwrap();
    c.tasks().update(&TaskUpdate::new(t).complete("Cancelled: client ill")).await.unwrap();
    let tasks: Vec<_> = c.tasks().stream_for(LeadId(42)).try_collect().await.unwrap();
    assert!(tasks.is_empty());
}

#[tokio::test]
async fn custom_fields_and_pipelines_decode() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v4/leads/custom_fields"))
        .respond_with(hal("custom_fields_page.json"))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v4/leads/pipelines"))
        .respond_with(hal("pipelines.json"))
        .mount(&server)
        .await;
    let c = client(&server);
    let fields = c.custom_fields(EntityType::Leads).all().await.unwrap();
    assert_eq!(fields[1].field_type, kommo_api::FieldType::Select);
    assert_eq!(fields[1].enum_by_value("звонок").unwrap().id, EnumId(441_217));
    assert_eq!(fields[1].required_statuses[0].status_id, StatusId::WON);
    let p = c.pipelines().list().await.unwrap();
    assert_eq!(p[0].statuses().len(), 4);
    assert_eq!(p[0].statuses()[0].kind, Some(1));
    assert!(p[0].status_by_name("closed - won").is_some());
}

// ---------------------------------------------------------------------------------------------------------------
// error shapes and retry branches

#[tokio::test]
async fn validation_400_decoded() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/v4/leads"))
        .respond_with(
            ResponseTemplate::new(400).set_body_raw(fixture("validation_error.json"), "application/problem+json"),
        )
        .expect(1)
        .mount(&server)
        .await;
    let err = client(&server).leads().create(&[NewLead::new("x")]).await.unwrap_err();
    assert_eq!(err.class(), api_core::ErrorClass::Client);
    assert!(!err.may_have_been_sent());
    let p = err.problem().unwrap();
    assert_eq!(p.title.as_deref(), Some("Bad Request"));
    assert_eq!(err.validation_errors()[0].errors[0].path.as_deref(), Some("custom_fields_values.0.field_id"));
}

#[tokio::test]
async fn static_token_401_is_unauthorized_without_retry() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(401).set_body_raw(fixture("unauthorized.json"), "application/problem+json"))
        .expect(1)
        .mount(&server)
        .await;
    let err = client(&server).account(&[]).await.unwrap_err();
    assert!(matches!(err, Error::Unauthorized { .. }), "{err:?}");
    assert_eq!(err.class(), api_core::ErrorClass::Auth);
    assert_eq!(err.problem().unwrap().detail.as_deref(), Some("Неверный логин или пароль"));
}

#[tokio::test]
async fn payment_required_and_not_found() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v4/leads/pipelines/1"))
        .respond_with(ResponseTemplate::new(404).set_body_raw(
            r#"{"title":"Not Found","type":"https://httpstatus.es/404","status":404,"detail":"Pipeline not found"}"#,
            "application/problem+json",
        ))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v4/account"))
        .respond_with(ResponseTemplate::new(402).set_body_raw(
            r#"{"title":"Payment Required","status":402,"detail":"Тариф не позволяет включать покупателей"}"#,
            "application/problem+json",
        ))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v4/leads/5"))
        .respond_with(ResponseTemplate::new(404))
        .mount(&server)
        .await;
    let c = client(&server);
    let e = c.pipelines().get(PipelineId(1)).await.unwrap_err();
    assert!(e.is_not_found());
    assert_eq!(e.problem().unwrap().detail.as_deref(), Some("Pipeline not found"));
    let e = c.account(&[]).await.unwrap_err();
    assert_eq!(e.status().unwrap().as_u16(), 402);
    assert!(c.leads().find(LeadId(5), &[]).await.unwrap().is_none());
}

#[tokio::test]
async fn html_429_is_throttled_never_retried_and_pauses_the_account() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v4/leads/1"))
        .respond_with(ResponseTemplate::new(429).set_body_raw(fixture("too_many_requests.html"), "text/html"))
        .expect(1)
        .mount(&server)
        .await;
    let c = Client::builder()
        .base_url(server.uri())
        .long_lived_token("t")
        .throttle_backoff(Duration::from_millis(300))
        .build()
        .unwrap();
    let err = c.leads().get(LeadId(1), &[]).await.unwrap_err();
    assert!(matches!(err, Error::Throttled { .. }), "{err:?}");
    assert_eq!(err.retry_after(), Some(Duration::from_millis(300)));
    assert_eq!(err.class(), api_core::ErrorClass::Throttled);
    assert!(err.problem().is_none());
    assert!(err.parts().unwrap().body_excerpt().contains("nginx"), "raw HTML kept");
    // the next request on the account waits out the pause
    Mock::given(method("GET"))
        .and(path("/api/v4/account"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": 1, "name": "x", "subdomain": "x"})))
        .mount(&server)
        .await;
    let start = std::time::Instant::now();
    c.account(&[]).await.unwrap();
    assert!(start.elapsed() >= Duration::from_millis(250), "{:?}", start.elapsed());
}

#[tokio::test]
async fn html_403_is_banned_json_403_is_not() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v4/leads/1"))
        .respond_with(ResponseTemplate::new(403).set_body_raw(fixture("ban.html"), "text/html"))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v4/leads/2"))
        .respond_with(ResponseTemplate::new(403).set_body_raw(r#"{"title":"Forbidden","status":403,"detail":"Access to this account is prohibited from your IP address"}"#, "application/problem+json"))
        .expect(1)
        .mount(&server)
        .await;
    let c = Client::builder().base_url(server.uri()).long_lived_token("t").ban_backoff(Duration::ZERO).build().unwrap();
    let e = c.leads().get(LeadId(1), &[]).await.unwrap_err();
    assert!(matches!(e, Error::Banned { .. }), "{e:?}");
    assert_eq!(e.retry_after(), Some(Duration::ZERO));
    let e = c.leads().get(LeadId(2), &[]).await.unwrap_err();
    assert!(matches!(e, Error::Api { .. }), "{e:?}");
    assert_eq!(e.class(), api_core::ErrorClass::Auth);
}

#[tokio::test]
async fn get_5xx_is_retried_post_5xx_is_not() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v4/account"))
        .respond_with(ResponseTemplate::new(502).set_body_raw("<html>bad gateway</html>", "text/html"))
        .up_to_n_times(2)
        .expect(2)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v4/account"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": 1, "name": "x", "subdomain": "x"})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/api/v4/leads"))
        .respond_with(ResponseTemplate::new(500).set_body_raw("oops", "text/plain"))
        .expect(1)
        .mount(&server)
        .await;
    let c = client(&server);
    assert_eq!(c.account(&[]).await.unwrap().id.get(), 1);
    let e = c.leads().create(&[NewLead::new("x")]).await.unwrap_err();
    assert_eq!(e.class(), api_core::ErrorClass::Transient);
    assert!(e.may_have_been_sent(), "a 500 on a create may have been applied");
    assert_eq!(&e.parts().unwrap().body[..], b"oops", "non-JSON body kept raw");
}

#[tokio::test]
async fn connect_error_is_transport() {
    let c = Client::builder()
        .base_url("http://127.0.0.1:9")
        .long_lived_token("t")
        .retry_policy(kommo_api::RetryPolicy::none())
        .build()
        .unwrap();
    let e = c.account(&[]).await.unwrap_err();
    assert!(matches!(e, Error::Transport(_)));
    assert!(!e.may_have_been_sent());
}

#[tokio::test]
async fn decode_error_names_the_json_path() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v4/leads"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"_embedded": {"leads": [{"id": 1}, {"id": "not-a-number"}]}})),
        )
        .mount(&server)
        .await;
    let e = client(&server).leads().list(&ListParams::new(), 1).await.unwrap_err();
    let Error::Decode(d) = &e else { panic!("{e:?}") };
    assert_eq!(d.path, "_embedded.leads[1].id");
}

#[tokio::test]
async fn complex_leads_and_events() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/v4/leads/complex"))
        .and(body_json(json!([{
            "name": "Deal", "request_id": "1",
            "_embedded": {"contacts": [{"name": "Ann", "custom_fields_values": [{"field_code": "EMAIL", "values": [{"value": "a@b.c", "enum_code": "WORK"}]}]}]}
        }])))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([{"id": 9774766, "contact_id": 12117258, "company_id": 12117260, "request_id": ["1"], "merged": false}])))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v4/events"))
        .and(query_param("filter[type][0]", "lead_deleted"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"_page": 1, "_links": {}, "_embedded": {"events": [
            {"id": "01pz58t6p04vry6tvk7wfqtgbb", "type": "lead_status_changed", "entity_id": 42, "entity_type": "lead", "created_by": 9,
             "created_at": 1700000000, "value_after": [{"lead_status": {"id": 142, "pipeline_id": 11}}],
             "value_before": [{"lead_status": {"id": 21, "pipeline_id": 11}}], "account_id": 1}
        ]}})))
        .expect(1)
        .mount(&server)
        .await;
    let c = client(&server);
    let complex = kommo_api::leads::ComplexLead {
        lead: NewLead::new("Deal").request_id("1"),
        embedded: kommo_api::leads::ComplexEmbedded {
            contacts: vec![NewContact::new("Ann").email("a@b.c")],
            ..Default::default()
        },
    };
    let r = c.leads().create_complex(&[complex]).await.unwrap();
    assert_eq!(r[0].contact_id.map(kommo_api::ContactId::get), Some(12_117_258));
    assert_eq!(r[0].request_id, vec!["1".to_owned()]);
    let too_many: Vec<_> = (0..51).map(|_| kommo_api::leads::ComplexLead::default()).collect();
    assert!(matches!(c.leads().create_complex(&too_many).await, Err(Error::InvalidRequest(_))));
    let events: Vec<_> =
        c.events().stream(ListParams::new().filter_in("type", "lead_deleted")).try_collect().await.unwrap();
    assert_eq!(events[0].value_after[0]["lead_status"]["id"], 142);
}
