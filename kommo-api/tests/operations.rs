//! The request of every remaining resource operation (method, path, query, JSON body) against wiremock.

use std::time::Duration;

use futures::TryStreamExt as _;
use kommo_api::{
    Client, CompanyId, ContactId, CustomFieldId, EntityType, FieldValueWrite, LeadId, ListParams, PipelineId, TaskId,
    UserId,
    companies::{CompanyUpdate, NewCompany},
    contacts::ContactUpdate,
    links::Link,
    tasks::TaskUpdate,
};
use serde_json::json;
use wiremock::{
    Mock, MockServer, ResponseTemplate,
    matchers::{body_json, method, path, query_param},
};

fn client(server: &MockServer) -> Client {
    Client::builder()
        .base_url(server.uri())
        .long_lived_token("t")
        .rate_limit(0)
        .retry_policy(kommo_api::RetryPolicy { base_delay: Duration::from_millis(1), ..Default::default() })
        .build()
        .unwrap()
}

fn ok(v: serde_json::Value) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(v)
}

async fn mock(server: &MockServer, m: &str, p: &str, body: Option<serde_json::Value>, resp: ResponseTemplate) {
    let mut b = Mock::given(method(m)).and(path(p));
    if let Some(body) = body {
        b = b.and(body_json(body));
    }
    b.respond_with(resp).expect(1).mount(server).await;
}

#[tokio::test]
async fn companies_operations() {
    let s = MockServer::start().await;
    mock(&s, "POST", "/api/v4/companies", Some(json!([{"name": "ACME", "custom_fields_values": [{"field_id": 5, "values": [{"value": "https://acme.example"}]}], "request_id": "0"}])),
        ok(json!({"_embedded": {"companies": [{"id": 31, "request_id": "0"}]}}))).await;
    mock(
        &s,
        "PATCH",
        "/api/v4/companies/31",
        Some(json!({"id": 31, "name": "ACME Inc"})),
        ok(json!({"id": 31, "updated_at": 2})),
    )
    .await;
    Mock::given(method("GET"))
        .and(path("/api/v4/companies/31"))
        .and(query_param("with", "contacts,leads"))
        .respond_with(ok(json!({"id": 31, "name": "ACME Inc", "custom_fields_values": null, "_embedded": {"tags": [], "contacts": [{"id": 3}], "leads": [{"id": 4}]}})))
        .expect(1)
        .mount(&s)
        .await;
    let c = client(&s);
    let id = c
        .companies()
        .create_one(NewCompany::new("ACME").field(FieldValueWrite::text(CustomFieldId(5), "https://acme.example")))
        .await
        .unwrap();
    assert_eq!(id, CompanyId(31));
    c.companies().update(&CompanyUpdate { id, name: Some("ACME Inc".into()), ..Default::default() }).await.unwrap();
    let co = c.companies().get(id, &["contacts", "leads"]).await.unwrap();
    assert_eq!(co.embedded.contacts[0].id, ContactId(3));
}

#[tokio::test]
async fn contacts_updates_and_get() {
    let s = MockServer::start().await;
    mock(&s, "PATCH", "/api/v4/contacts/3", Some(json!({"id": 3, "custom_fields_values": [{"field_code": "EMAIL", "values": [{"value": "new@example.com", "enum_code": "WORK"}]}]})),
        ok(json!({"id": 3, "updated_at": 5}))).await;
    mock(&s, "PATCH", "/api/v4/contacts", Some(json!([{"id": 3, "name": "Ann B", "request_id": "0"}, {"id": 4, "name": "Bob", "request_id": "1"}])),
        ok(json!({"_embedded": {"contacts": [{"id": 3, "updated_at": 6, "request_id": "0"}, {"id": 4, "updated_at": 6, "request_id": "1"}]}}))).await;
    Mock::given(method("GET"))
        .and(path("/api/v4/contacts/3"))
        .and(query_param("with", "leads"))
        .respond_with(ok(json!({"id": 3, "name": "Ann B", "custom_fields_values": null, "_embedded": {"leads": [{"id": 42}], "companies": []}})))
        .expect(1)
        .mount(&s)
        .await;
    let c = client(&s);
    c.contacts()
        .update(&ContactUpdate::new(ContactId(3)).field(FieldValueWrite::email("new@example.com")))
        .await
        .unwrap();
    let r = c
        .contacts()
        .update_many(&[ContactUpdate::new(ContactId(3)).name("Ann B"), ContactUpdate::new(ContactId(4)).name("Bob")])
        .await
        .unwrap();
    assert_eq!(r.iter().map(|r| r.id).collect::<Vec<_>>(), vec![3, 4]);
    let ann = c.contacts().get(ContactId(3), &["leads"]).await.unwrap();
    assert_eq!(ann.embedded.leads[0].id.get(), 42);
}

#[tokio::test]
async fn tasks_get_and_batch_update() {
    let s = MockServer::start().await;
    mock(&s, "GET", "/api/v4/tasks/11", None, ok(json!({"id": 11, "text": "Call", "complete_till": 1700000000, "entity_id": 42, "entity_type": "leads", "is_completed": false, "task_type_id": 1, "result": [], "responsible_user_id": 5}))).await;
    mock(
        &s,
        "PATCH",
        "/api/v4/tasks",
        Some(json!([{"id": 11, "complete_till": 1700003600, "request_id": "0"}])),
        ok(json!({"_embedded": {"tasks": [{"id": 11, "updated_at": 9, "request_id": "0"}]}})),
    )
    .await;
    let c = client(&s);
    let t = c.tasks().get(TaskId(11)).await.unwrap();
    assert!(t.result.is_none(), "PHP's [] for an empty result");
    assert_eq!(t.entity_type, Some(EntityType::Leads));
    c.tasks().update_many(&[TaskUpdate::new(TaskId(11)).due(1_700_003_600)]).await.unwrap();
}

#[tokio::test]
async fn notes_list_links_tags() {
    let s = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v4/leads/42/notes"))
        .and(query_param("page", "1"))
        .respond_with(ok(json!({"_page": 1, "_links": {}, "_embedded": {"notes": [
            {"id": 1, "entity_id": 42, "note_type": "common", "params": {"text": "hi"}, "created_at": 1},
            {"id": 2, "entity_id": 42, "note_type": "call_in", "params": {"uniq": "x", "duration": 60, "source": "pbx", "phone": "+1"}},
            {"id": 3, "entity_id": 42, "note_type": "ai_result", "params": {}}
        ]}})))
        .expect(1)
        .mount(&s)
        .await;
    mock(&s, "POST", "/api/v4/leads/42/link", Some(json!([{"to_entity_id": 3, "to_entity_type": "contacts", "metadata": {"is_main": true}}, {"to_entity_id": 31, "to_entity_type": "companies"}])),
        ok(json!({"_embedded": {"links": [{"entity_id": 42, "entity_type": "leads", "to_entity_id": 3, "to_entity_type": "contacts", "metadata": {"main_contact": true}}]}}))).await;
    mock(
        &s,
        "POST",
        "/api/v4/leads/42/unlink",
        Some(json!([{"to_entity_id": 31, "to_entity_type": "companies"}])),
        ResponseTemplate::new(204),
    )
    .await;
    mock(&s, "GET", "/api/v4/leads/42/links", None, ResponseTemplate::new(204)).await;
    mock(
        &s,
        "GET",
        "/api/v4/leads/tags",
        None,
        ok(json!({"_embedded": {"tags": [{"id": 7, "name": "vip", "color": null}]}})),
    )
    .await;
    mock(
        &s,
        "POST",
        "/api/v4/leads/tags",
        Some(json!([{"name": "new"}])),
        ok(json!({"_embedded": {"tags": [{"id": 8, "name": "new", "request_id": "0"}]}})),
    )
    .await;
    let c = client(&s);
    let notes: Vec<_> =
        c.notes(EntityType::Leads).stream_for(LeadId(42), ListParams::new()).try_collect().await.unwrap();
    assert_eq!(notes[0].text(), Some("hi"));
    assert_eq!(notes[1].note_type, kommo_api::notes::NoteType::CallIn);
    assert_eq!(notes[2].note_type, kommo_api::notes::NoteType::Other("ai_result".into()));
    let ops = c.entity(EntityType::Leads);
    let linked =
        ops.link(LeadId(42), &[Link::contact(ContactId(3), true), Link::company(CompanyId(31))]).await.unwrap();
    assert_eq!(linked[0].to_entity_type, EntityType::Contacts);
    ops.unlink(LeadId(42), &[Link::company(CompanyId(31))]).await.unwrap();
    assert!(ops.links(LeadId(42)).await.unwrap().is_empty());
    let tags: Vec<_> = ops.stream_tags(ListParams::new()).try_collect().await.unwrap();
    assert_eq!(tags[0].name, "vip");
    assert_eq!(ops.create_tags(&["new"]).await.unwrap()[0].id.get(), 8);
}

#[tokio::test]
async fn users_account_pipeline_field_webhooks() {
    let s = MockServer::start().await;
    mock(&s, "GET", "/api/v4/users/5", None, ok(json!({"id": 5, "name": "Sam", "email": "sam@example.com", "lang": "en", "rights": {"is_admin": false, "is_active": true, "group_id": 0}}))).await;
    Mock::given(method("GET"))
        .and(path("/api/v4/users"))
        .and(query_param("limit", "250"))
        .respond_with(ok(
            json!({"_embedded": {"users": [{"id": 5, "name": "Sam", "email": "Sam@Example.com", "rights": {}}]}}),
        ))
        .expect(1)
        .mount(&s)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v4/account"))
        .and(query_param("with", "task_types,is_api_filter_enabled"))
        .respond_with(ok(json!({"id": 31141123, "name": "Acc", "subdomain": "example", "current_user_id": 5, "country": "US", "currency": "USD",
            "is_api_filter_enabled": true, "_embedded": {"task_types": [{"id": 1, "name": "Follow-up"}]}})))
        .expect(1)
        .mount(&s)
        .await;
    mock(&s, "GET", "/api/v4/leads/pipelines/7130863/statuses", None, ok(json!({"_total_items": 1, "_embedded": {"statuses": [{"id": 142, "name": "Won", "pipeline_id": 7130863, "type": 0}]}}))).await;
    mock(&s, "GET", "/api/v4/contacts/custom_fields/3", None, ok(json!({"id": 3, "name": "Phone", "type": "multitext", "code": "PHONE", "enums": [{"id": 1, "value": "WORK", "sort": 2}]}))).await;
    mock(&s, "POST", "/api/v4/webhooks", Some(json!({"destination": "https://me.example/h/s", "settings": ["status_lead"]})),
        ok(json!({"id": 9, "destination": "https://me.example/h/s", "settings": ["status_lead"], "disabled": false, "created_at": 1}))).await;
    mock(
        &s,
        "DELETE",
        "/api/v4/webhooks",
        Some(json!({"destination": "https://me.example/h/s"})),
        ResponseTemplate::new(204),
    )
    .await;
    let c = client(&s);
    let u = c.users().get(UserId(5)).await.unwrap();
    assert!(u.is_active() && !u.is_admin());
    assert_eq!(c.users().find_by_email("sam@example.com").await.unwrap().unwrap().id, UserId(5));
    let acc = c.account(&["task_types", "is_api_filter_enabled"]).await.unwrap();
    assert_eq!(acc.extra["is_api_filter_enabled"], true);
    let st = c.pipelines().statuses(PipelineId(7_130_863)).await.unwrap();
    assert_eq!(st[0].id, kommo_api::StatusId::WON);
    let f = c.custom_fields(EntityType::Contacts).get(CustomFieldId(3)).await.unwrap();
    assert_eq!(f.field_type, kommo_api::FieldType::Multitext);
    let w = c.webhooks().subscribe("https://me.example/h/s", &["status_lead"]).await.unwrap();
    assert_eq!(w.id.map(kommo_api::WebhookId::get), Some(9));
    c.webhooks().unsubscribe("https://me.example/h/s").await.unwrap();
}
