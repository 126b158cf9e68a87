//! Issue 22's Kommo operations against wiremock: method, path, query and JSON body exactly, the answer decoded, and
//! the error shapes. Sources: `../shared/openapi/kommo-community.yaml` ("community" below; made from amoCRM's API
//! reference), the official PHP library `amocrm/amocrm-api-php` ("PHP lib") and `../shared/api-notes/kommo.md`.

use api_core::Request;
use futures::TryStreamExt as _;
use kommo_api::{
    CatalogElementId, CatalogId, Client, CompanyId, ContactId, CustomFieldId, EntityType, Error, FieldValueWrite,
    LeadId, ListParams, LossReasonId, NoteId, PipelineId, SourceId, StatusId, UnsortedUid, UserId,
    calls::{CallDirection, NewCall},
    catalogs::{CatalogType, CatalogWrite, ElementWrite},
    companies::CompanyUpdate,
    contacts::NewContact,
    leads::NewLead,
    links::Link,
    notes::{NoteType, NoteUpdate},
    pipelines::{PipelineWrite, StatusWrite},
    sources::SourceWrite,
    unsorted::{FormMetadata, NewUnsortedForm, NewUnsortedSip, SipMetadata, UnsortedCategory},
};
use serde_json::{Value, json};
use wiremock::{
    Mock, MockServer, ResponseTemplate,
    matchers::{body_json, method, path, query_param},
};

fn client(server: &MockServer) -> Client {
    Client::builder()
        .base_url(server.uri())
        .token("t")
        .rate_limit(0)
        .retry_policy(kommo_api::RetryPolicy::none())
        .build()
        .unwrap()
}

fn ok(v: Value) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(v)
}

async fn expect(server: &MockServer, m: &str, p: &str, body: Option<Value>, resp: ResponseTemplate) {
    let mut b = Mock::given(method(m)).and(path(p));
    if let Some(body) = body {
        b = b.and(body_json(body));
    }
    b.respond_with(resp).expect(1).mount(server).await;
}

/// kommo.md §3 "Error shapes", the 400 validation body verbatim.
fn validation_error() -> ResponseTemplate {
    ResponseTemplate::new(400).insert_header("content-type", "application/problem+json").set_body_json(json!({
        "validation-errors": [{"request_id": "0", "errors": [{"code": "NotSupportedChoice", "path": "custom_fields_values.0.field_id", "detail": "The value you selected is not a valid choice."}]}],
        "title": "Bad Request", "type": "https://httpstatus.es/400", "status": 400, "detail": "Request validation failed"
    }))
}

/// community `POST /api/v4/leads/unsorted/forms` (`UnsortedFormCreateItem`, `FormMetadata`, `UnsortedCreateResponse`).
#[tokio::test]
async fn unsorted_forms_are_created_with_lead_and_contact() {
    let s = MockServer::start().await;
    expect(&s, "POST", "/api/v4/leads/unsorted/forms", Some(json!([{
        "source_uid": "site-form-1", "source_name": "Website form", "pipeline_id": 7, "created_at": 1_700_000_000,
        "_embedded": {"leads": [{"name": "Web lead", "price": 500}], "contacts": [{"name": "Ann", "custom_fields_values": [{"field_code": "EMAIL", "values": [{"value": "ann@example.com", "enum_code": "WORK"}]}]}]},
        "metadata": {"form_id": "f1", "form_name": "Contact us", "form_page": "https://example.com/contact", "form_sent_at": 1_700_000_000, "ip": "203.0.113.7", "referer": "https://google.com"},
        "request_id": "0"
    }])), ok(json!({"_total_items": 1, "_embedded": {"unsorted": [{"uid": "a1fee9a9e3c3cbb10c30c4b6a67a1b2c", "account_id": 1, "request_id": "0", "_embedded": {"leads": [{"id": 101, "_links": {}}], "contacts": [{"id": 202}], "companies": []}}]}}))).await;
    let form = NewUnsortedForm::new(
        "site-form-1",
        "Website form",
        FormMetadata {
            form_id: Some("f1".into()),
            form_name: Some("Contact us".into()),
            form_page: Some("https://example.com/contact".into()),
            form_sent_at: Some(1_700_000_000),
            ip: Some("203.0.113.7".into()),
            referer: Some("https://google.com".into()),
            visitor_uid: None,
        },
    )
    .pipeline(PipelineId(7))
    .created_at(1_700_000_000)
    .lead(NewLead::new("Web lead").price(500))
    .contact(NewContact::new("Ann").email("ann@example.com"));
    let made = client(&s).unsorted().create_forms(&[form]).await.unwrap();
    assert_eq!(made.len(), 1);
    assert_eq!(made[0].uid, UnsortedUid::from("a1fee9a9e3c3cbb10c30c4b6a67a1b2c"));
    assert_eq!(made[0].request_id.as_deref(), Some("0"));
    assert_eq!(made[0].embedded.leads[0].id, 101);
    assert_eq!(made[0].embedded.contacts[0].id, 202);
}

/// PHP lib `Unsorted::add` (`POST api/v4/leads/unsorted/sip`) with `SipMetadata::toApi` members.
#[tokio::test]
async fn unsorted_sip_and_validation_errors() {
    let s = MockServer::start().await;
    expect(&s, "POST", "/api/v4/leads/unsorted/sip", Some(json!([{
        "source_uid": "pbx", "source_name": "Office PBX",
        "_embedded": {"leads": [{"name": "Call from +15550100"}]},
        "metadata": {"from": 5, "phone": "+15550100", "called_at": 1_700_000_100, "duration": 42, "service_code": "pbx_widget", "uniq": "call-1", "is_call_event_needed": true},
        "request_id": "r1"
    }])), validation_error()).await;
    let mut sip = NewUnsortedSip::new(
        "pbx",
        "Office PBX",
        SipMetadata {
            from: Some(5),
            phone: Some("+15550100".into()),
            called_at: 1_700_000_100,
            duration: Some(42),
            link: None,
            service_code: Some("pbx_widget".into()),
            uniq: Some("call-1".into()),
            is_call_event_needed: true,
        },
    )
    .lead(NewLead::new("Call from +15550100"));
    sip.request_id = Some("r1".into());
    let e = client(&s).unsorted().create_sip(&[sip]).await.unwrap_err();
    let errors = e.validation_errors();
    assert_eq!(errors[0].errors[0].code.as_deref(), Some("NotSupportedChoice"), "{e:?}");
    assert_eq!(e.status().map(|s| s.as_u16()), Some(400));
}

/// PHP lib `Unsorted` (`GET api/v4/leads/unsorted`, `_embedded.unsorted`, `filter[category]`; 204 = empty),
/// community `UnsortedAcceptRequest`/`UnsortedDeclineRequest`/`UnsortedAcceptResponse`.
#[tokio::test]
async fn unsorted_list_accept_decline_link() {
    let s = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v4/leads/unsorted"))
        .and(query_param("filter[category][0]", "forms"))
        .and(query_param("page", "1"))
        .respond_with(ok(json!({"_page": 1, "_links": {"self": {"href": "x"}, "next": {"href": "y"}}, "_embedded": {"unsorted": [
            {"uid": "u1", "source_uid": "site-form-1", "source_name": "Website form", "category": "forms", "pipeline_id": 7, "created_at": 1_700_000_000, "metadata": {"form_id": "f1"}, "account_id": 1},
            {"uid": "u2", "category": "telepathy"}
        ]}})))
        .expect(1)
        .mount(&s)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v4/leads/unsorted"))
        .and(query_param("page", "2"))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&s)
        .await;
    expect(&s, "POST", "/api/v4/leads/unsorted/u1/accept", Some(json!({"user_id": 5, "status_id": 20})),
        ok(json!({"uid": "u1", "pipeline_id": 7, "category": "forms", "created_at": 1_700_000_000, "_embedded": {"leads": [{"id": 101}], "contacts": [{"id": 202}]}}))).await;
    expect(
        &s,
        "DELETE",
        "/api/v4/leads/unsorted/u2/decline",
        Some(json!({"user_id": 5})),
        ok(json!({"uid": "u2", "pipeline_id": 7, "category": "forms", "_embedded": {"leads": [{"id": 102}]}})),
    )
    .await;
    expect(
        &s,
        "POST",
        "/api/v4/leads/unsorted/u3/link",
        Some(json!({"user_id": 5, "link": {"entity_id": 300, "entity_type": "leads"}})),
        ok(json!({"uid": "u3", "_embedded": {"leads": [{"id": 300}]}})),
    )
    .await;
    let c = client(&s);
    let params = ListParams::new().filter_in("category", "forms");
    let all: Vec<_> = c.unsorted().stream(params).try_collect().await.unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].category, Some(UnsortedCategory::Forms));
    assert_eq!(all[0].metadata["form_id"], "f1");
    assert_eq!(all[1].category, Some(UnsortedCategory::Unknown("telepathy".into())));
    let a = c.unsorted().accept(&"u1".into(), Some(UserId(5)), Some(StatusId(20))).await.unwrap();
    assert_eq!(a.embedded.leads[0].id, 101);
    let d = c.unsorted().decline(&"u2".into(), Some(UserId(5))).await.unwrap();
    assert_eq!(d.uid.as_str(), "u2");
    let l = c.unsorted().link(&"u3".into(), Some(UserId(5)), LeadId(300)).await.unwrap();
    assert_eq!(l.embedded.leads[0].id, 300);
}

/// community `GET/POST/PATCH /api/v4/catalogs` (`Catalog`, `CatalogCreateItem`, `CatalogUpdateItem`).
#[tokio::test]
async fn catalogs_list_create_update() {
    let s = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v4/catalogs"))
        .and(query_param("limit", "250"))
        .respond_with(ok(json!({"_page": 1, "_links": {"self": {"href": "x"}}, "_embedded": {"catalogs": [
            {"id": 1, "name": "Products", "created_by": 5, "updated_by": 5, "created_at": 1, "updated_at": 2, "sort": 10, "type": "products", "can_add_elements": true, "can_show_in_cards": false, "can_link_multiple": true, "can_be_deleted": false, "sdk_widget_code": null, "account_id": 9}
        ]}})))
        .expect(1)
        .mount(&s)
        .await;
    expect(
        &s,
        "POST",
        "/api/v4/catalogs",
        Some(json!([{"name": "Services", "type": "regular", "request_id": "0"}])),
        ok(json!({"_embedded": {"catalogs": [{"id": 2, "name": "Services", "request_id": "0"}]}})),
    )
    .await;
    expect(
        &s,
        "PATCH",
        "/api/v4/catalogs",
        Some(json!([{"id": 2, "name": "Our services", "request_id": "0"}])),
        ok(json!({"_embedded": {"catalogs": [{"id": 2, "name": "Our services", "request_id": "0"}]}})),
    )
    .await;
    let c = client(&s);
    let page = c.catalogs().list(&ListParams::new(), 1).await.unwrap();
    assert_eq!(page.items[0].id, CatalogId(1));
    assert_eq!(page.items[0].kind, Some(CatalogType::Products));
    assert!(page.items[0].can_link_multiple && !page.items[0].can_be_deleted);
    assert!(!page.has_next);
    let made = c.catalogs().create(&[CatalogWrite::new("Services").kind(CatalogType::Regular)]).await.unwrap();
    assert_eq!(made[0].id, 2);
    let up = c.catalogs().update(&[CatalogWrite::update(CatalogId(2)).name("Our services")]).await.unwrap();
    assert_eq!(up[0].id, 2);
    // an update without an id never leaves the client
    let e = c.catalogs().update(&[CatalogWrite::new("x")]).await.unwrap_err();
    assert!(matches!(e, Error::InvalidRequest(_)), "{e:?}");
}

/// community `GET/POST/PATCH /api/v4/catalogs/{id}/elements[/{id}]` (`CatalogElement`, `_embedded.elements`).
#[tokio::test]
async fn catalog_elements_list_get_create_update() {
    let s = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v4/catalogs/1/elements"))
        .and(query_param("query", "sku-1"))
        .and(query_param("page", "1"))
        .respond_with(ok(json!({"_page": 1, "_links": {"self": {"href": "x"}}, "_embedded": {"elements": [
            {"id": 11, "catalog_id": 1, "name": "Widget", "created_by": 5, "updated_by": 5, "created_at": 1, "updated_at": 2, "is_deleted": false,
             "custom_fields_values": [{"field_id": 70, "field_name": "SKU", "field_code": "SKU", "field_type": "text", "values": [{"value": "sku-1"}]}], "account_id": 9, "_embedded": {"warning": null}}
        ]}})))
        .expect(1)
        .mount(&s)
        .await;
    expect(
        &s,
        "GET",
        "/api/v4/catalogs/1/elements/11",
        None,
        ok(json!({"id": 11, "catalog_id": 1, "name": "Widget", "custom_fields_values": null})),
    )
    .await;
    expect(&s, "GET", "/api/v4/catalogs/1/elements/12", None, ResponseTemplate::new(204)).await;
    expect(&s, "POST", "/api/v4/catalogs/1/elements", Some(json!([{"name": "Gadget", "custom_fields_values": [{"field_id": 70, "values": [{"value": "sku-2"}]}], "request_id": "0"}])),
        ok(json!({"_embedded": {"elements": [{"id": 12, "catalog_id": 1, "name": "Gadget", "request_id": "0"}]}}))).await;
    expect(
        &s,
        "PATCH",
        "/api/v4/catalogs/1/elements",
        Some(json!([{"id": 12, "name": "Gadget 2", "request_id": "0"}])),
        ok(json!({"_embedded": {"elements": [{"id": 12, "name": "Gadget 2", "request_id": "0"}]}})),
    )
    .await;
    let c = client(&s);
    let els = c.catalogs().elements(CatalogId(1));
    let page = els.list(&ListParams::new().query("sku-1"), 1).await.unwrap();
    assert_eq!(page.items[0].id, CatalogElementId(11));
    let sku = kommo_api::CustomFieldsExt::custom_field(&page.items[0], CustomFieldId(70)).unwrap();
    assert_eq!(sku.text().as_deref(), Some("sku-1"));
    assert!(els.get(CatalogElementId(11)).await.unwrap().custom_fields_values.is_empty());
    assert!(els.get(CatalogElementId(12)).await.unwrap_err().is_not_found());
    let made = els
        .create(&[ElementWrite::new("Gadget").field(FieldValueWrite::text(CustomFieldId(70), "sku-2"))])
        .await
        .unwrap();
    assert_eq!(made[0].id, 12);
    let up = els.update(&[ElementWrite::update(CatalogElementId(12)).name("Gadget 2")]).await.unwrap();
    assert_eq!(up[0].id, 12);
}

/// community `POST /api/v4/calls` (`CallCreateItem` required `direction, duration, source, phone`;
/// `CallCreateResponse` with `_embedded.calls` and `errors`).
#[tokio::test]
async fn calls_are_logged_and_partial_errors_kept() {
    let s = MockServer::start().await;
    expect(&s, "POST", "/api/v4/calls", Some(json!([
        {"direction": "inbound", "duration": 60, "source": "pbx", "phone": "+15550100", "uniq": "c-1", "link": "https://pbx.example/rec/1.mp3", "call_result": "Talked", "call_status": 4, "responsible_user_id": 5, "request_id": "0"},
        {"direction": "outbound", "duration": 5, "source": "pbx", "phone": "+15550199", "request_id": "1"}
    ])), ok(json!({"_total_items": 1, "errors": [{"request_id": "1", "detail": "Entity not found"}], "_embedded": {"calls": [
        {"id": 900, "entity_id": 202, "entity_type": "contact", "account_id": 9, "request_id": "0", "_embedded": {"entity": {"id": 202}}}
    ]}}))).await;
    let calls = [
        NewCall::new(CallDirection::Inbound, "+15550100", 60, "pbx")
            .uniq("c-1")
            .link("https://pbx.example/rec/1.mp3")
            .result("Talked", 4)
            .responsible(UserId(5)),
        NewCall::new(CallDirection::Outbound, "+15550199", 5, "pbx"),
    ];
    let out = client(&s).calls().add(&calls).await.unwrap();
    assert_eq!(out.calls.len(), 1);
    assert_eq!(out.calls[0].id, kommo_api::CallId(900));
    assert_eq!(out.calls[0].entity_id, Some(202));
    assert_eq!(out.errors, vec![json!({"request_id": "1", "detail": "Entity not found"})]);
}

/// community `GET/POST/PATCH /api/v4/sources`, `DELETE /api/v4/sources/{id}`; PHP lib `LossReasons`
/// (`api/v4/leads/loss_reasons`, `_embedded.loss_reasons`).
#[tokio::test]
async fn sources_and_loss_reasons() {
    let s = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v4/sources"))
        .and(query_param("filter[external_id]", "ext-1"))
        .respond_with(ok(json!({"_total_items": 1, "_embedded": {"sources": [{"id": 3, "name": "Landing", "pipeline_id": 7, "external_id": "ext-1", "default": false, "origin_code": null, "services": []}]}})))
        .expect(1)
        .mount(&s)
        .await;
    expect(
        &s,
        "POST",
        "/api/v4/sources",
        Some(json!([{"name": "Landing", "external_id": "ext-1", "pipeline_id": 7, "request_id": "0"}])),
        ok(json!({"_total_items": 1, "_embedded": {"sources": [{"id": 3, "name": "Landing", "request_id": "0"}]}})),
    )
    .await;
    expect(
        &s,
        "PATCH",
        "/api/v4/sources",
        Some(json!([{"id": 3, "name": "Landing 2", "request_id": "0"}])),
        ok(json!({"_embedded": {"sources": [{"id": 3, "name": "Landing 2", "request_id": "0"}]}})),
    )
    .await;
    expect(&s, "DELETE", "/api/v4/sources/3", None, ResponseTemplate::new(204)).await;
    Mock::given(method("GET"))
        .and(path("/api/v4/leads/loss_reasons"))
        .and(query_param("page", "1"))
        .respond_with(ok(json!({"_page": 1, "_embedded": {"loss_reasons": [{"id": 8, "name": "Too expensive", "sort": 10000, "created_at": 1, "updated_at": 2}]}})))
        .expect(1)
        .mount(&s)
        .await;
    expect(
        &s,
        "POST",
        "/api/v4/leads/loss_reasons",
        Some(json!([{"name": "No budget", "request_id": "0"}])),
        ok(json!({"_embedded": {"loss_reasons": [{"id": 9, "name": "No budget", "request_id": "0"}]}})),
    )
    .await;
    expect(&s, "DELETE", "/api/v4/leads/loss_reasons/9", None, ResponseTemplate::new(204)).await;
    let c = client(&s);
    let found = c.sources().list(&ListParams::new().filter("external_id", "ext-1")).await.unwrap();
    assert_eq!(found[0].id, SourceId(3));
    assert_eq!(found[0].pipeline_id, Some(PipelineId(7)));
    assert_eq!(
        c.sources().create(&[SourceWrite::new("Landing", "ext-1").pipeline(PipelineId(7))]).await.unwrap()[0].id,
        3
    );
    assert_eq!(c.sources().update(&[SourceWrite::update(SourceId(3)).name("Landing 2")]).await.unwrap()[0].id, 3);
    c.sources().delete(SourceId(3)).await.unwrap();
    assert!(matches!(
        c.sources().create(&[SourceWrite::default().name("no external id")]).await,
        Err(Error::InvalidRequest(_))
    ));
    let reasons = c.loss_reasons().list(&ListParams::new(), 1).await.unwrap();
    assert_eq!(reasons.items[0].id, LossReasonId(8));
    assert_eq!(reasons.items[0].name, "Too expensive");
    assert_eq!(c.loss_reasons().create(&["No budget"]).await.unwrap()[0].id, 9);
    c.loss_reasons().delete(LossReasonId(9)).await.unwrap();
}

/// community `GET /api/v4/{entity_type}/notes/{id}` (`Note`) and `PATCH` (`NoteUpdateById`, answer
/// `NoteCreateResult`); kommo.md §4 "Notes" (`params` per type).
#[tokio::test]
async fn notes_get_and_update() {
    let s = MockServer::start().await;
    expect(&s, "GET", "/api/v4/leads/notes/55", None, ok(json!({"id": 55, "entity_id": 42, "note_type": "common", "params": {"text": "hi"}, "is_pinned": false, "account_id": 9}))).await;
    expect(
        &s,
        "PATCH",
        "/api/v4/leads/notes/55",
        Some(json!({"note_type": "common", "params": {"text": "hello"}})),
        ok(json!({"id": 55, "entity_id": 42, "updated_at": 1_700_000_000, "_links": {}})),
    )
    .await;
    expect(&s, "PATCH", "/api/v4/contacts/notes", Some(json!([{"id": 56, "note_type": "common", "params": {"text": "a"}, "request_id": "0"}, {"id": 57, "note_type": "service_message", "params": {"service": "Bot", "text": "b"}, "request_id": "1"}])),
        ok(json!({"_embedded": {"notes": [{"id": 57, "entity_id": 3, "request_id": "1"}, {"id": 56, "entity_id": 3, "request_id": "0"}]}}))).await;
    let c = client(&s);
    let n = c.notes(EntityType::Leads).get(NoteId(55)).await.unwrap();
    assert_eq!(n.text(), Some("hi"));
    let u = c.notes(EntityType::Leads).update(&NoteUpdate::common(NoteId(55), "hello")).await.unwrap();
    assert_eq!((u.id, u.updated_at), (55, Some(1_700_000_000)));
    let many = c
        .notes(EntityType::Contacts)
        .update_many(&[
            NoteUpdate::common(NoteId(56), "a"),
            NoteUpdate {
                id: NoteId(57),
                note_type: NoteType::ServiceMessage,
                params: json!({"service": "Bot", "text": "b"}),
                request_id: None,
            },
        ])
        .await
        .unwrap();
    assert_eq!(many.iter().map(|r| r.id).collect::<Vec<_>>(), [56, 57], "results in input order");
}

/// kommo.md §4 "Links" (mass `POST /api/v4/{entity}/link` with `entity_id` per element; PHP lib `Links`),
/// community `EntityLinkItem`.
#[tokio::test]
async fn mass_link_and_unlink() {
    let s = MockServer::start().await;
    expect(&s, "POST", "/api/v4/leads/link", Some(json!([
        {"entity_id": 1, "to_entity_id": 10, "to_entity_type": "contacts", "metadata": {"is_main": true}},
        {"entity_id": 2, "to_entity_id": 20, "to_entity_type": "companies"}
    ])), ok(json!({"_embedded": {"links": [
        {"entity_id": 1, "entity_type": "leads", "to_entity_id": 10, "to_entity_type": "contacts", "metadata": {"is_main": true}},
        {"entity_id": 2, "entity_type": "leads", "to_entity_id": 20, "to_entity_type": "companies", "metadata": null}
    ]}}))).await;
    expect(
        &s,
        "POST",
        "/api/v4/leads/unlink",
        Some(json!([{"entity_id": 1, "to_entity_id": 10, "to_entity_type": "contacts"}])),
        ResponseTemplate::new(204),
    )
    .await;
    let c = client(&s);
    let ops = c.entity(EntityType::Leads);
    let made = ops
        .link_many(&[Link::contact(ContactId(10), true).of(LeadId(1)), Link::company(CompanyId(20)).of(LeadId(2))])
        .await
        .unwrap();
    assert_eq!(made.len(), 2);
    assert_eq!(made[1].entity_id, Some(2));
    ops.unlink_many(&[Link::contact(ContactId(10), false).of(LeadId(1))]).await.unwrap();
    let e = ops.unlink_many(&[Link::lead(LeadId(3))]).await.unwrap_err();
    assert!(matches!(e, Error::InvalidRequest(_)), "a mass link needs its source: {e:?}");
}

/// community `GET /api/v4/events/types?language_code=` (`_embedded.types`) and PHP lib `EventTypes`
/// (`_embedded.events_types`): both keys decode.
#[tokio::test]
async fn event_types_under_either_key() {
    let s = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v4/events/types"))
        .and(query_param("language_code", "en"))
        .respond_with(ok(json!({"_embedded": {"events_types": [{"key": "lead_added", "type": 1, "lang": "Lead added", "entity_type": "lead"}]}})))
        .expect(1)
        .mount(&s)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v4/events/types"))
        .and(query_param("language_code", "es"))
        .respond_with(ok(json!({"_embedded": {"types": [{"key": "lead_deleted", "lang": "Lead eliminado"}]}})))
        .expect(1)
        .mount(&s)
        .await;
    let c = client(&s);
    assert_eq!(c.events().types(Some("en")).await.unwrap()[0].key, "lead_added");
    assert_eq!(c.events().types(Some("es")).await.unwrap()[0].lang.as_deref(), Some("Lead eliminado"));
}

/// community `POST/PATCH/DELETE /api/v4/leads/pipelines[/{id}]` and `.../statuses[/{id}]` (`PipelineCreateItem`,
/// `StatusCreateItem`, `PipelineUpdateById`, `StatusUpdateById`); kommo.md §4 "System statuses" (142/143).
#[tokio::test]
async fn pipeline_and_status_writes() {
    let s = MockServer::start().await;
    expect(&s, "POST", "/api/v4/leads/pipelines", Some(json!([{"name": "Partners", "sort": 20, "_embedded": {"statuses": [{"name": "New", "sort": 10}, {"name": "Qualified", "sort": 20, "color": "#fffeb2"}]}, "request_id": "0"}])),
        ok(json!({"_embedded": {"pipelines": [{"id": 70, "request_id": "0", "_links": {}}]}}))).await;
    expect(
        &s,
        "PATCH",
        "/api/v4/leads/pipelines/70",
        Some(json!({"name": "Partner deals"})),
        ok(json!({"id": 70, "updated_at": 5})),
    )
    .await;
    expect(
        &s,
        "POST",
        "/api/v4/leads/pipelines/70/statuses",
        Some(json!([{"name": "Proposal", "sort": 30, "request_id": "0"}])),
        ok(json!({"_embedded": {"statuses": [{"id": 700, "request_id": "0"}]}})),
    )
    .await;
    expect(
        &s,
        "PATCH",
        "/api/v4/leads/pipelines/70/statuses/700",
        Some(json!({"color": "#ccc8f9"})),
        ok(json!({"id": 700, "updated_at": 6})),
    )
    .await;
    expect(&s, "DELETE", "/api/v4/leads/pipelines/70/statuses/700", None, ResponseTemplate::new(204)).await;
    expect(&s, "DELETE", "/api/v4/leads/pipelines/70", None, ResponseTemplate::new(204)).await;
    let c = client(&s);
    let p = PipelineWrite::new("Partners")
        .sort(20)
        .status(StatusWrite::new("New", 10))
        .status(StatusWrite::new("Qualified", 20).color("#fffeb2"));
    assert_eq!(c.pipelines().create(&[p]).await.unwrap()[0].id, 70);
    assert_eq!(
        c.pipelines().update(&PipelineWrite::update(PipelineId(70)).name("Partner deals")).await.unwrap().updated_at,
        Some(5)
    );
    assert_eq!(
        c.pipelines().create_statuses(PipelineId(70), &[StatusWrite::new("Proposal", 30)]).await.unwrap()[0].id,
        700
    );
    let st = c
        .pipelines()
        .update_status(PipelineId(70), &StatusWrite::update(StatusId(700)).color("#ccc8f9"))
        .await
        .unwrap();
    assert_eq!(st.id, 700);
    c.pipelines().delete_status(PipelineId(70), StatusId(700)).await.unwrap();
    assert!(matches!(c.pipelines().delete_status(PipelineId(70), StatusId::WON).await, Err(Error::InvalidRequest(_))));
    c.pipelines().delete(PipelineId(70)).await.unwrap();
}

/// kommo.md §4 "Contacts and companies" (`PATCH /api/v4/companies`, batch, each with `id`) and §2 (chunks of 50,
/// `request_id` per element).
#[tokio::test]
async fn companies_batch_update() {
    let s = MockServer::start().await;
    expect(&s, "PATCH", "/api/v4/companies", Some(json!([
        {"id": 31, "name": "ACME Inc", "request_id": "0"},
        {"id": 32, "custom_fields_values": [{"field_id": 5, "values": [{"value": "https://b.example"}]}], "_embedded": {"tags": [{"name": "vip"}]}, "request_id": "1"}
    ])), ok(json!({"_embedded": {"companies": [{"id": 31, "request_id": "0", "updated_at": 3}, {"id": 32, "request_id": "1", "updated_at": 3}]}}))).await;
    let c = client(&s);
    let r = c
        .companies()
        .update_many(&[
            CompanyUpdate::new(CompanyId(31)).name("ACME Inc"),
            CompanyUpdate::new(CompanyId(32))
                .field(FieldValueWrite::text(CustomFieldId(5), "https://b.example"))
                .tag("vip"),
        ])
        .await
        .unwrap();
    assert_eq!(r.iter().map(|r| r.id).collect::<Vec<_>>(), [31, 32]);
    // the raw escape hatch reaches the same endpoints
    let resp = c.send(Request::get("/api/v4/companies/31")).await;
    assert!(resp.is_err(), "nothing is mounted for GET");
}

/// community `POST/PATCH /api/v4/{entity_type}/custom_fields`, `DELETE .../{id}` (`CustomFieldCreate`: `name`,
/// `type` required; `CustomFieldUpdateItem`), groups under `_embedded.groups` (`CustomFieldGroupCreate`,
/// `CustomFieldGroupUpdateById`); group ids as Kommo sends them (strings) or as the community spec says (numbers).
#[tokio::test]
async fn custom_field_and_group_writes() {
    use kommo_api::{FieldGroupId, FieldType, custom_fields::FieldWrite};
    let s = MockServer::start().await;
    expect(&s, "POST", "/api/v4/leads/custom_fields", Some(json!([{"name": "Plan", "type": "select", "enums": [{"value": "Basic", "sort": 1}, {"value": "Pro", "sort": 2}], "group_id": "leads_16761579411681", "request_id": "0"}])),
        ok(json!({"_embedded": {"custom_fields": [{"id": 900, "name": "Plan", "type": "select", "request_id": "0"}]}}))).await;
    expect(
        &s,
        "PATCH",
        "/api/v4/leads/custom_fields",
        Some(json!([{"id": 900, "name": "Plan (2026)", "request_id": "0"}])),
        ok(json!({"_embedded": {"custom_fields": [{"id": 900, "request_id": "0"}]}})),
    )
    .await;
    expect(&s, "DELETE", "/api/v4/leads/custom_fields/900", None, ResponseTemplate::new(204)).await;
    expect(&s, "GET", "/api/v4/leads/custom_fields/groups", None,
        ok(json!({"_page": 1, "_embedded": {"groups": [{"id": "leads_16761579411681", "name": "Billing", "sort": 2, "is_predefined": false}, {"id": 7, "name": "Main", "is_predefined": true}]}}))).await;
    expect(
        &s,
        "POST",
        "/api/v4/leads/custom_fields/groups",
        Some(json!([{"name": "Delivery", "sort": 3, "request_id": "0"}])),
        ok(json!({"_embedded": {"groups": [{"id": "leads_2", "name": "Delivery", "request_id": "0"}]}})),
    )
    .await;
    expect(
        &s,
        "PATCH",
        "/api/v4/leads/custom_fields/groups/leads_2",
        Some(json!({"name": "Shipping"})),
        ok(json!({"id": "leads_2", "name": "Shipping", "sort": 3})),
    )
    .await;
    expect(&s, "DELETE", "/api/v4/leads/custom_fields/groups/leads_2", None, ResponseTemplate::new(204)).await;
    let c = client(&s);
    let f = c.custom_fields(EntityType::Leads);
    let made = f
        .create(&[FieldWrite::new("Plan", FieldType::Select)
            .option("Basic", 1)
            .option("Pro", 2)
            .group(FieldGroupId::from("leads_16761579411681"))])
        .await
        .unwrap();
    assert_eq!(made[0].id, 900);
    f.update(&[FieldWrite::update(CustomFieldId(900)).name("Plan (2026)")]).await.unwrap();
    f.delete(CustomFieldId(900)).await.unwrap();
    assert!(matches!(f.create(&[FieldWrite::update(CustomFieldId(1))]).await, Err(Error::InvalidRequest(_))));
    let groups = f.groups().await.unwrap();
    assert_eq!(groups[0].id.as_str(), "leads_16761579411681");
    assert_eq!(groups[1].id.as_str(), "7");
    let g = f.create_groups(&[("Delivery", Some(3))]).await.unwrap();
    assert_eq!(g[0].id.as_str(), "leads_2");
    assert_eq!(f.update_group(&g[0].id, Some("Shipping"), None).await.unwrap().name, "Shipping");
    f.delete_group(&g[0].id).await.unwrap();
}

/// community `GET/POST /api/v4/roles`, `GET/PATCH/DELETE /api/v4/roles/{id}` (`Role`, `RoleCreateItem`,
/// `RoleUpdateById`; rights as in kommo.md §4 "Users").
#[tokio::test]
async fn roles_crud() {
    use kommo_api::{RoleId, roles::RoleWrite};
    let s = MockServer::start().await;
    let rights = json!({"leads": {"view": "A", "edit": "A", "add": "A", "delete": "D", "export": "D"}, "mail_access": false, "catalog_access": true});
    Mock::given(method("GET"))
        .and(path("/api/v4/roles"))
        .and(query_param("with", "users"))
        .respond_with(ok(json!({"_total_items": 1, "_page": 1, "_page_count": 1, "_embedded": {"roles": [{"id": 4, "name": "Sales", "rights": rights, "_embedded": {"users": [{"id": 5}]}}]}})))
        .expect(1)
        .mount(&s)
        .await;
    expect(
        &s,
        "POST",
        "/api/v4/roles",
        Some(json!([{"name": "Support", "rights": rights, "request_id": "0"}])),
        ok(json!({"_total_items": 1, "_embedded": {"roles": [{"id": 6, "name": "Support", "request_id": "0"}]}})),
    )
    .await;
    expect(
        &s,
        "PATCH",
        "/api/v4/roles/6",
        Some(json!({"name": "Customer support"})),
        ok(json!({"id": 6, "name": "Customer support", "rights": rights})),
    )
    .await;
    expect(&s, "GET", "/api/v4/roles/6", None, ok(json!({"id": 6, "name": "Customer support", "rights": rights})))
        .await;
    expect(&s, "DELETE", "/api/v4/roles/6", None, ResponseTemplate::new(204)).await;
    let c = client(&s);
    let page = c.roles().list(&ListParams::new().with(["users"]), 1).await.unwrap();
    assert_eq!(page.items[0].id, RoleId(4));
    assert_eq!(page.items[0].rights["leads"]["delete"], "D");
    assert_eq!(c.roles().create(&[RoleWrite::new("Support", rights.clone())]).await.unwrap()[0].id, 6);
    let upd = RoleWrite { name: Some("Customer support".into()), ..RoleWrite::default() };
    assert_eq!(c.roles().update(RoleId(6), &upd).await.unwrap().name, "Customer support");
    assert_eq!(c.roles().get(RoleId(6)).await.unwrap().rights, rights);
    c.roles().delete(RoleId(6)).await.unwrap();
}

/// community `GET/POST/PATCH /api/v4/customers` (`Customer`, `CustomerCreateItem`, `CustomerUpdateItem`),
/// transactions (`CustomerTransactionCreate`: `price` required) and segments (`CustomerSegmentCreate`); kommo.md §3:
/// an account without customers answers 402.
#[tokio::test]
async fn customers_transactions_segments() {
    use kommo_api::{
        CustomerId, CustomerStatusId, SegmentId, TransactionId,
        customers::{CustomerUpdate, NewCustomer, NewSegment, NewTransaction},
    };
    let s = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v4/customers"))
        .and(query_param("page", "1"))
        .respond_with(ok(json!({"_page": 1, "_embedded": {"customers": [{"id": 61, "name": "ACME", "next_price": 1000, "next_date": 1_700_000_000, "periodicity": 30, "status_id": 3, "ltv": 5000, "purchases_count": 5, "average_check": 1000, "responsible_user_id": 5, "is_deleted": false, "custom_fields_values": null, "account_id": 9, "_embedded": {"tags": [], "segments": [{"id": 2}]}}]}})))
        .expect(1)
        .mount(&s)
        .await;
    expect(&s, "POST", "/api/v4/customers", Some(json!([{"name": "Globex", "next_price": 200, "status_id": 3, "_embedded": {"tags": [{"name": "b2b"}]}, "request_id": "0"}])),
        ok(json!({"_embedded": {"customers": [{"id": 62, "request_id": "0"}]}}))).await;
    expect(
        &s,
        "PATCH",
        "/api/v4/customers",
        Some(json!([{"id": 62, "_embedded": {"segments": [{"id": 2}]}, "request_id": "0"}])),
        ok(json!({"_embedded": {"customers": [{"id": 62, "request_id": "0", "updated_at": 9}]}})),
    )
    .await;
    expect(
        &s,
        "POST",
        "/api/v4/customers/62/transactions",
        Some(json!([{"price": 1500, "comment": "Order #7", "request_id": "0"}])),
        ok(json!({"_embedded": {"transactions": [{"id": 700, "request_id": "0"}]}})),
    )
    .await;
    Mock::given(method("GET"))
        .and(path("/api/v4/customers/62/transactions"))
        .respond_with(ok(json!({"_page": 1, "_embedded": {"transactions": [{"id": 700, "customer_id": 62, "price": 1500, "comment": "Order #7", "created_at": 1_700_000_000, "created_by": 5}]}})))
        .expect(1)
        .mount(&s)
        .await;
    expect(&s, "DELETE", "/api/v4/customers/62/transactions/700", None, ResponseTemplate::new(204)).await;
    expect(&s, "GET", "/api/v4/customers/segments", None, ok(json!({"_embedded": {"segments": [{"id": 2, "name": "Loyal", "color": "ae0d4f", "customers_count": 10, "custom_fields_values": null}]}}))).await;
    expect(
        &s,
        "POST",
        "/api/v4/customers/segments",
        Some(json!([{"name": "New", "color": "10599d", "request_id": "0"}])),
        ok(json!({"_embedded": {"segments": [{"id": 3, "request_id": "0"}]}})),
    )
    .await;
    expect(&s, "DELETE", "/api/v4/customers/segments/3", None, ResponseTemplate::new(204)).await;
    let c = client(&s);
    let page = c.customers().list(&ListParams::new(), 1).await.unwrap();
    let acme = &page.items[0];
    assert_eq!((acme.id, acme.status_id, acme.ltv), (CustomerId(61), Some(CustomerStatusId(3)), Some(5000)));
    assert_eq!(acme.embedded.segments[0].id, 2);
    let mut new = NewCustomer::new("Globex").tag("b2b");
    new.next_price = Some(200);
    new.status_id = Some(CustomerStatusId(3));
    assert_eq!(c.customers().create_one(new).await.unwrap(), CustomerId(62));
    c.customers().update_many(&[CustomerUpdate::new(CustomerId(62)).segment(SegmentId(2))]).await.unwrap();
    let t =
        c.customers().add_transactions(CustomerId(62), &[NewTransaction::new(1500).comment("Order #7")]).await.unwrap();
    assert_eq!(t[0].id, 700);
    let listed = c.customers().list_transactions(CustomerId(62), &ListParams::new(), 1).await.unwrap();
    assert_eq!(listed.items[0].price, Some(1500));
    c.customers().delete_transaction(CustomerId(62), TransactionId(700)).await.unwrap();
    assert_eq!(c.customers().segments().await.unwrap()[0].customers_count, Some(10));
    let seg = NewSegment { name: "New".into(), color: Some("10599d".into()), ..NewSegment::default() };
    assert_eq!(c.customers().create_segments(&[seg]).await.unwrap()[0].id, 3);
    c.customers().delete_segment(SegmentId(3)).await.unwrap();
}

/// kommo.md §3: "402 ... Тариф не позволяет включать покупателей" (Krukov `interaction.py`).
#[tokio::test]
async fn customers_off_is_a_402_api_error() {
    let s = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v4/customers"))
        .respond_with(ResponseTemplate::new(402).set_body_json(json!({"title": "Payment Required", "type": "https://httpstatus.es/402", "status": 402, "detail": "Тариф не позволяет включать покупателей"})))
        .expect(1)
        .mount(&s)
        .await;
    let e = client(&s).customers().list(&ListParams::new(), 1).await.unwrap_err();
    assert!(matches!(e, Error::Api { .. }), "{e:?}");
    assert_eq!(e.status().map(|s| s.as_u16()), Some(402));
    assert_eq!(e.problem().and_then(|p| p.detail.as_deref()), Some("Тариф не позволяет включать покупателей"));
}

/// community `POST /api/v4/{entity_type}/notes/{id}/pin|unpin` (no body) and `GET/POST /api/v4/customers/statuses`,
/// `DELETE /customers/statuses/{id}` (`CustomerStatus`, `CustomerStatusCreate`).
#[tokio::test]
async fn note_pins_and_customer_statuses() {
    use kommo_api::CustomerStatusId;
    let s = MockServer::start().await;
    expect(&s, "POST", "/api/v4/leads/notes/55/pin", None, ok(json!({"_links": {}, "_embedded": {}}))).await;
    expect(&s, "POST", "/api/v4/leads/notes/55/unpin", None, ResponseTemplate::new(204)).await;
    expect(&s, "GET", "/api/v4/customers/statuses", None, ok(json!({"_embedded": {"statuses": [{"id": 3, "name": "Recurring", "sort": 10, "color": "#fff000", "type": "regular"}]}}))).await;
    expect(
        &s,
        "POST",
        "/api/v4/customers/statuses",
        Some(json!([{"name": "VIP", "sort": 20, "color": "#ccc8f9", "request_id": "0"}])),
        ok(json!({"_embedded": {"statuses": [{"id": 4, "request_id": "0"}]}})),
    )
    .await;
    expect(&s, "DELETE", "/api/v4/customers/statuses/4", None, ResponseTemplate::new(204)).await;
    let c = client(&s);
    c.notes(EntityType::Leads).pin(NoteId(55)).await.unwrap();
    c.notes(EntityType::Leads).unpin(NoteId(55)).await.unwrap();
    let st = c.customers().statuses().await.unwrap();
    assert_eq!((st[0].id, st[0].name.as_str()), (CustomerStatusId(3), "Recurring"));
    assert_eq!(c.customers().create_statuses(&[("VIP", Some(20), Some("#ccc8f9"))]).await.unwrap()[0].id, 4);
    c.customers().delete_status(CustomerStatusId(4)).await.unwrap();
}

/// PHP lib `Unsorted::summary` (`GET api/v4/leads/unsorted/summary` with the filter's query) and
/// `UnsortedSummaryModel` (`total, accepted, declined, average_sort_time, categories`).
#[tokio::test]
async fn unsorted_summary() {
    let s = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v4/leads/unsorted/summary"))
        .and(query_param("filter[pipeline_id][0]", "7"))
        .respond_with(ok(json!({"total": 4, "accepted": 10, "declined": 2, "average_sort_time": 3600, "categories": {"forms": 3, "sip": 1}})))
        .expect(1)
        .mount(&s)
        .await;
    let sum = client(&s).unsorted().summary(&ListParams::new().pipeline(PipelineId(7))).await.unwrap();
    assert_eq!(
        (sum.total, sum.accepted, sum.declined, sum.average_sort_time),
        (Some(4), Some(10), Some(2), Some(3600))
    );
    assert_eq!(sum.categories["forms"], 3);
}
