//! Wire tests for the operations of issue 23's Productive row: for each, the method, path, exact query, the
//! headers (`Content-Type`/`Accept: application/vnd.api+json`, `X-Auth-Token`, `X-Organization-Id`; api-notes
//! productive.md §1) and the exact body, plus decoding of the answer, error shapes and pagination edges. Each test
//! names its source.
#![allow(missing_docs)]

use std::time::Duration;

use chrono::NaiveDate;
use futures::TryStreamExt as _;
use productive_api::{
    Client, Error, Query, RetryPolicy,
    jsonapi::{Document, Resource, WriteDocument},
    resources::{
        bookings::{Allocation, BookingTarget, NewBooking},
        expenses::NewExpense,
        people::NewPerson,
        time_entries::{NewTimeEntry, TimeEntryAttributes},
    },
    types::{BookingMethod, DealStage, ResourceType, TrackMethod, WorkflowStatusCategory},
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use wiremock::{
    Mock, MockServer, ResponseTemplate,
    matchers::{body_json, header, method, path},
};

const VND: &str = "application/vnd.api+json";

fn fixture(name: &str) -> Value {
    let p = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn client(server: &MockServer) -> Client {
    Client::builder()
        .token("tok-123")
        .organization_id(4242)
        .base_url(format!("{}/api/v2", server.uri()))
        .retry_policy(RetryPolicy { base_delay: Duration::from_millis(1), ..RetryPolicy::default() })
        .build()
        .unwrap()
}

/// Mounts a mock that matches only the exact request: method, path, the query pairs (no more, no fewer), the
/// auth and media-type headers, and the exact JSON body (or no body at all).
async fn expect(
    server: &MockServer,
    m: &str,
    p: &str,
    query: &[(&str, &str)],
    body: Option<Value>,
    status: u16,
    answer: Option<Value>,
) {
    let mut want: Vec<(String, String)> = query.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    want.sort();
    let exact_query = move |r: &wiremock::Request| {
        let mut got: Vec<(String, String)> =
            r.url.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
        got.sort();
        got == want
    };
    let builder = Mock::given(method(m))
        .and(path(p))
        .and(exact_query)
        .and(header("x-auth-token", "tok-123"))
        .and(header("x-organization-id", "4242"))
        .and(header("accept", VND))
        .and(header("content-type", VND));
    let builder = match body {
        Some(b) => builder.and(body_json(b)),
        None => builder.and(|r: &wiremock::Request| r.body.is_empty()),
    };
    let resp = match answer {
        Some(v) => ResponseTemplate::new(status).set_body_raw(v.to_string(), VND),
        None => ResponseTemplate::new(status),
    };
    builder.respond_with(resp).expect(1).mount(server).await;
}

fn d(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

fn page_meta(current: u32, total: u32, count: u64) -> Value {
    json!({"current_page": current, "total_pages": total, "total_count": count, "page_size": 200, "max_page_size": 200})
}

// ---------------------------------------------------------------------------------------------------------------
// time entries

/// withone "Create a Time Entry" (copy of P-old time_entries.html): `data.type = "time_entries"`, attributes `date`,
/// `time` (minutes), `note`, relationships `person`, `service`, optionally `task`. The answer is the documented
/// "Get a Time Entry" sample (fixture `time_entry_withone.json`).
#[tokio::test]
async fn time_entry_create_get_update_delete() {
    let server = MockServer::start().await;
    let sample = fixture("time_entry_withone.json");
    expect(
        &server,
        "POST",
        "/api/v2/time_entries",
        &[],
        Some(json!({"data": {"type": "time_entries",
            "attributes": {"date": "2016-10-01", "time": 480, "note": "test note"},
            "relationships": {"person": {"data": {"type": "people", "id": "7"}},
                              "service": {"data": {"type": "services", "id": "31"}},
                              "task": {"data": {"type": "tasks", "id": "99"}}}}})),
        201,
        Some(sample.clone()),
    )
    .await;
    expect(
        &server,
        "GET",
        "/api/v2/time_entries/262",
        &[("include", "person,service")],
        None,
        200,
        Some(sample.clone()),
    )
    .await;
    expect(
        &server,
        "PATCH",
        "/api/v2/time_entries/262",
        &[],
        Some(json!({"data": {"type": "time_entries", "id": "262", "attributes": {"time": 90}}})),
        200,
        Some(sample),
    )
    .await;
    expect(&server, "DELETE", "/api/v2/time_entries/262", &[], None, 204, None).await;

    let c = client(&server);
    let new = NewTimeEntry::new("7".into(), "31".into(), d("2016-10-01"), 480).note("test note").task("99".into());
    let e = c.create_time_entry(&new).await.unwrap();
    assert_eq!(e.typed_id().as_str(), "262");
    assert_eq!(e.attributes.time, Some(480));
    assert_eq!(e.attributes.billable_time, Some(480));
    assert_eq!(e.attributes.track_method_id, Some(TrackMethod::Manual));
    assert_eq!(e.attributes.date, Some(d("2016-10-01")));
    assert!(e.attributes.extra.contains_key("currency_default"), "unknown attributes are kept");
    let got = c.get_time_entry(&"262".into(), &Query::new().include(["person", "service"])).await.unwrap();
    assert_eq!(got.data.attributes.note.as_deref(), Some("test note"));
    let mut patch = Map::new();
    patch.insert("time".into(), json!(90));
    c.update_time_entry(&"262".into(), &patch).await.unwrap();
    c.delete_time_entry(&"262".into()).await.unwrap();
}

/// P-old time_entries.html: `filter[person_id]`, `filter[after]`/`filter[before]` (dates); api-notes §2
/// "Pagination": `page[number]`/`page[size]`, `meta.current_page`/`total_pages`. `list_*` asks for one page,
/// `stream_*` walks them all; an empty collection streams nothing.
#[tokio::test]
async fn time_entries_list_one_page_and_stream_all() {
    let server = MockServer::start().await;
    let entry = |id: &str| json!({"id": id, "type": "time_entries", "attributes": {"date": "2026-01-05", "time": 60}});
    let filters = [("filter[person_id]", "7"), ("filter[after]", "2026-01-01"), ("filter[before]", "2026-01-31")];
    let mut q1 = filters.to_vec();
    q1.push(("page[size]", "200"));
    expect(
        &server,
        "GET",
        "/api/v2/time_entries",
        &q1,
        None,
        200,
        Some(json!({"data": [entry("1")], "meta": page_meta(1, 2, 2)})),
    )
    .await;
    let mut s1 = q1.clone();
    s1.push(("page[number]", "1"));
    expect(
        &server,
        "GET",
        "/api/v2/time_entries",
        &s1,
        None,
        200,
        Some(json!({"data": [entry("1")], "meta": page_meta(1, 2, 2)})),
    )
    .await;
    let mut s2 = q1.clone();
    s2.push(("page[number]", "2"));
    expect(
        &server,
        "GET",
        "/api/v2/time_entries",
        &s2,
        None,
        200,
        Some(json!({"data": [entry("2")], "meta": page_meta(2, 2, 2)})),
    )
    .await;
    let c = client(&server);
    let q = Query::new().filter("person_id", 7).filter("after", "2026-01-01").filter("before", "2026-01-31");
    let page = c.list_time_entries(&q).await.unwrap();
    assert_eq!(page.data.len(), 1);
    assert_eq!(page.next_page(), Some(2));
    let all: Vec<_> = c.stream_time_entries(q).try_collect().await.unwrap();
    assert_eq!(all.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(), ["1", "2"]);

    let empty = MockServer::start().await;
    expect(
        &empty,
        "GET",
        "/api/v2/time_entries",
        &[("page[size]", "200"), ("page[number]", "1")],
        None,
        200,
        Some(json!({"data": [], "meta": page_meta(1, 0, 0)})),
    )
    .await;
    let none: Vec<_> = client(&empty).stream_time_entries(Query::new()).try_collect().await.unwrap();
    assert!(none.is_empty());
}

/// api-notes productive.md §2 "Errors": a 422 carries the JSON:API error document (the only concrete example is
/// `{"errors":[{"detail":"Validation failed"}]}`, fixture `error_validation.json`); a POST that got a 4xx is never
/// retried (`expect(1)`).
#[tokio::test]
async fn time_entry_validation_error_is_typed_and_not_retried() {
    let server = MockServer::start().await;
    expect(
        &server,
        "POST",
        "/api/v2/time_entries",
        &[],
        Some(json!({"data": {"type": "time_entries", "attributes": {"date": "2026-01-05", "time": 60},
            "relationships": {"person": {"data": {"type": "people", "id": "7"}},
                              "service": {"data": {"type": "services", "id": "31"}}}}})),
        422,
        Some(fixture("error_validation.json")),
    )
    .await;
    let err = client(&server)
        .create_time_entry(&NewTimeEntry::new("7".into(), "31".into(), d("2026-01-05"), 60))
        .await
        .unwrap_err();
    assert_eq!(err.status().map(|s| s.as_u16()), Some(422));
    let Error::Api(api) = &err else { panic!("{err:?}") };
    assert_eq!(api.document.as_ref().unwrap().errors[0].detail.as_deref(), Some("Validation failed"));
    assert!(!err.may_have_been_sent());
}

// ---------------------------------------------------------------------------------------------------------------
// bookings

/// withone "Create a Booking" (copy of P-old bookings.html): `started_on`, `ended_on`, `booking_method_id` (1
/// hours per day → `time`, 2 percentage → `percentage`, 3 total time → `total_time`), `service` for a budget
/// booking, `event` for an absence, `note`; `draft: true` = tentative (P-old bookings.html).
#[tokio::test]
async fn booking_create_service_and_absence_then_update_delete() {
    let server = MockServer::start().await;
    let answer = |id: &str, method: u64| {
        json!({"data": {"id": id, "type": "bookings", "attributes": {"started_on": "2026-02-02", "ended_on": "2026-02-06",
            "booking_method_id": method, "time": 240, "draft": true, "note": "some note"},
            "relationships": {"person": {"data": {"type": "people", "id": "7"}}, "service": {"meta": {"included": false}}}}})
    };
    expect(
        &server,
        "POST",
        "/api/v2/bookings",
        &[],
        Some(json!({"data": {"type": "bookings",
            "attributes": {"started_on": "2026-02-02", "ended_on": "2026-02-06", "booking_method_id": 1, "time": 240,
                           "draft": true, "note": "some note"},
            "relationships": {"person": {"data": {"type": "people", "id": "7"}},
                              "service": {"data": {"type": "services", "id": "31"}}}}})),
        201,
        Some(answer("500", 1)),
    )
    .await;
    let c = client(&server);
    let mut b = NewBooking::new(
        "7".into(),
        BookingTarget::Service("31".into()),
        d("2026-02-02"),
        d("2026-02-06"),
        Allocation::MinutesPerDay(240),
    );
    b.draft = Some(true);
    b.note = Some("some note".into());
    let created = c.create_booking(&b).await.unwrap();
    assert_eq!(created.attributes.booking_method_id, Some(BookingMethod::PerDay));
    assert_eq!(created.person_id().unwrap().as_str(), "7");
    assert!(created.service_id().is_none(), "meta.included=false is no linkage");

    let server = MockServer::start().await;
    expect(
        &server,
        "POST",
        "/api/v2/bookings",
        &[],
        Some(json!({"data": {"type": "bookings",
            "attributes": {"started_on": "2026-03-02", "ended_on": "2026-03-02", "booking_method_id": 2, "percentage": 50},
            "relationships": {"person": {"data": {"type": "people", "id": "7"}},
                              "event": {"data": {"type": "events", "id": "3"}}}}})),
        201,
        Some(answer("501", 2)),
    )
    .await;
    expect(
        &server,
        "PATCH",
        "/api/v2/bookings/501",
        &[],
        Some(json!({"data": {"type": "bookings", "id": "501", "attributes": {"draft": false}}})),
        200,
        Some(answer("501", 2)),
    )
    .await;
    expect(&server, "DELETE", "/api/v2/bookings/501", &[], None, 204, None).await;
    expect(&server, "GET", "/api/v2/bookings/501", &[], None, 200, Some(answer("501", 2))).await;
    let c = client(&server);
    let absence = NewBooking::new(
        "7".into(),
        BookingTarget::Absence("3".into()),
        d("2026-03-02"),
        d("2026-03-02"),
        Allocation::Percentage(50),
    );
    let a = c.create_booking(&absence).await.unwrap();
    assert_eq!(a.attributes.booking_method_id, Some(BookingMethod::Percentage));
    let mut patch = Map::new();
    patch.insert("draft".into(), json!(false));
    c.update_booking(&"501".into(), &patch).await.unwrap();
    assert_eq!(c.get_booking(&"501".into(), &Query::new()).await.unwrap().data.id, "501");
    c.delete_booking(&"501".into()).await.unwrap();
}

/// A booking that ends before it starts, or a percentage outside 1..=100, is refused before anything is sent
/// (the server is never called: no mock is mounted, and wiremock records no request).
#[tokio::test]
async fn invalid_bookings_are_refused_before_sending() {
    let server = MockServer::start().await;
    let c = client(&server);
    let backwards = NewBooking::new(
        "7".into(),
        BookingTarget::Service("31".into()),
        d("2026-02-06"),
        d("2026-02-02"),
        Allocation::TotalMinutes(600),
    );
    assert!(matches!(c.create_booking(&backwards).await, Err(Error::InvalidRequest(m)) if m.contains("before")));
    let too_much = NewBooking::new(
        "7".into(),
        BookingTarget::Absence("3".into()),
        d("2026-02-02"),
        d("2026-02-02"),
        Allocation::Percentage(150),
    );
    assert!(matches!(c.create_booking(&too_much).await, Err(Error::InvalidRequest(_))));
    assert!(server.received_requests().await.unwrap().is_empty());
}

/// Community OpenAPI `/bookings`: `filter[person_id]`, `filter[after]`, `filter[before]`.
#[tokio::test]
async fn bookings_list_with_filters() {
    let server = MockServer::start().await;
    expect(
        &server,
        "GET",
        "/api/v2/bookings",
        &[("filter[person_id]", "7"), ("filter[after]", "2026-02-01"), ("page[size]", "50")],
        None,
        200,
        Some(json!({"data": [{"id": "500", "type": "bookings", "attributes": {"booking_method_id": 3, "total_time": 600}}],
                    "meta": page_meta(1, 1, 1)})),
    )
    .await;
    let page = client(&server)
        .list_bookings(&Query::new().filter("person_id", 7).filter("after", "2026-02-01").page_size(50))
        .await
        .unwrap();
    assert_eq!(page.data[0].attributes.booking_method_id, Some(BookingMethod::TotalTime));
    assert_eq!(page.data[0].attributes.total_time, Some(600));
    assert_eq!(page.next_page(), None);
}

// ---------------------------------------------------------------------------------------------------------------
// expenses, invoices, line items

/// withone "Create an Expense" (copy of P-old expenses.html): attributes `name`, `amount` (`"10000.0"`),
/// `billable_amount`, `currency`, `date`; relationships `service` (`"266"`) and `person`.
#[tokio::test]
async fn expense_create_update_delete_and_list() {
    let server = MockServer::start().await;
    let answer = json!({"data": {"id": "27", "type": "expenses", "attributes": {"name": "test name", "date": "2025-08-02",
        "amount": "10000.0", "billable_amount": "10000.0", "currency": "EUR"}}});
    expect(
        &server,
        "POST",
        "/api/v2/expenses",
        &[],
        Some(json!({"data": {"type": "expenses",
            "attributes": {"name": "test name", "date": "2025-08-02", "amount": "10000.0", "billable_amount": "10000.0",
                           "currency": "EUR"},
            "relationships": {"service": {"data": {"type": "services", "id": "266"}},
                              "person": {"data": {"type": "people", "id": "7"}}}}})),
        201,
        Some(answer.clone()),
    )
    .await;
    expect(
        &server,
        "PATCH",
        "/api/v2/expenses/27",
        &[],
        Some(json!({"data": {"type": "expenses", "id": "27", "attributes": {"name": "renamed"}}})),
        200,
        Some(answer.clone()),
    )
    .await;
    expect(&server, "DELETE", "/api/v2/expenses/27", &[], None, 204, None).await;
    expect(
        &server,
        "GET",
        "/api/v2/expenses",
        &[("filter[service_id]", "266"), ("filter[status]", "2"), ("page[size]", "200")],
        None,
        200,
        Some(json!({"data": [answer["data"].clone()], "meta": page_meta(1, 1, 1)})),
    )
    .await;
    let c = client(&server);
    let mut e = NewExpense::new("test name", "266".into(), d("2025-08-02"), "10000.0", "EUR");
    e.billable_amount = Some("10000.0".into());
    e.person_id = Some("7".into());
    let made = c.create_expense(&e).await.unwrap();
    assert_eq!(made.attributes.amount.as_ref().and_then(productive_api::Amount::as_f64), Some(10000.0));
    let mut patch = Map::new();
    patch.insert("name".into(), json!("renamed"));
    c.update_expense(&made.typed_id(), &patch).await.unwrap();
    c.delete_expense(&made.typed_id()).await.unwrap();
    let unpaid = c.list_expenses(&Query::new().filter("service_id", 266).filter("status", 2)).await.unwrap();
    assert_eq!(unpaid.data.len(), 1);
}

/// Community OpenAPI `/invoices/{id}` and `/line_items` (`filter[invoice_id]`); api-notes §2: `include` puts the
/// related resources in `included` (shapes **unverified**: no sample body was found, see `invoices` module docs).
#[tokio::test]
async fn invoice_with_included_line_items_and_line_items_of_invoice() {
    let server = MockServer::start().await;
    let line = |id: &str, amount: &str| {
        json!({"id": id, "type": "line_items", "attributes": {"description": "Design", "quantity": "1.0",
            "unit_price": amount, "amount": amount, "unit_id": 2},
            "relationships": {"invoice": {"data": {"type": "invoices", "id": "88"}}}})
    };
    expect(
        &server,
        "GET",
        "/api/v2/invoices/88",
        &[("include", "line_items,company")],
        None,
        200,
        Some(json!({"data": {"id": "88", "type": "invoices",
            "attributes": {"number": "2026-7", "invoiced_on": "2026-02-01", "currency": "EUR", "amount": "150.0"},
            "relationships": {"line_items": {"data": [{"type": "line_items", "id": "1"}, {"type": "line_items", "id": "2"}]},
                              "company": {"data": {"type": "companies", "id": "5"}}}},
            "included": [line("1", "100.0"), line("2", "50.0"), {"id": "5", "type": "companies", "attributes": {"name": "Acme"}}]})),
    )
    .await;
    expect(
        &server,
        "GET",
        "/api/v2/line_items",
        &[("filter[invoice_id]", "88"), ("page[size]", "200"), ("page[number]", "1")],
        None,
        200,
        Some(json!({"data": [line("1", "100.0"), line("2", "50.0")], "meta": page_meta(1, 1, 2)})),
    )
    .await;
    let c = client(&server);
    let doc = c.get_invoice(&"88".into(), &Query::new().include(["line_items", "company"])).await.unwrap();
    assert_eq!(doc.data.attributes.number.as_deref(), Some("2026-7"));
    assert_eq!(doc.data.company_id().unwrap().as_str(), "5");
    let lines = doc
        .related_many::<_, productive_api::resources::invoices::LineItemAttributes>(&doc.data, "line_items")
        .unwrap();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[1].attributes.amount.as_ref().unwrap().0, "50.0");
    let listed = c.line_items_of_invoice(&"88".into()).await.unwrap();
    assert_eq!(listed[0].invoice_id().unwrap().as_str(), "88");
    assert_eq!(listed[0].attributes.unit_id, Some(productive_api::ServiceUnit::Piece));
}

// ---------------------------------------------------------------------------------------------------------------
// workflows, deal statuses, custom fields, organization memberships, webhook logs

/// Community OpenAPI `/workflows/{id}`, `/workflow_statuses` (`filter[workflow_id]`, `filter[category_id]`
/// "1: not started, 2: started, 3: closed"), `/deal_statuses`, `/deal_statuses/{id}`.
#[tokio::test]
async fn workflows_statuses_and_deal_statuses() {
    let server = MockServer::start().await;
    expect(
        &server,
        "GET",
        "/api/v2/workflows/11",
        &[],
        None,
        200,
        Some(
            json!({"data": {"id": "11", "type": "workflows", "attributes": {"name": "Default", "archived_at": null}}}),
        ),
    )
    .await;
    expect(
        &server,
        "GET",
        "/api/v2/workflow_statuses",
        &[("filter[workflow_id]", "11"), ("page[size]", "200"), ("page[number]", "1")],
        None,
        200,
        Some(json!({"data": [
            {"id": "1", "type": "workflow_statuses", "attributes": {"name": "To do", "category_id": 1},
             "relationships": {"workflow": {"data": {"type": "workflows", "id": "11"}}}},
            {"id": "2", "type": "workflow_statuses", "attributes": {"name": "Done", "category_id": 3}},
            {"id": "3", "type": "workflow_statuses", "attributes": {"name": "Parked", "category_id": 9}}],
            "meta": page_meta(1, 1, 3)})),
    )
    .await;
    expect(
        &server,
        "GET",
        "/api/v2/deal_statuses",
        &[("page[size]", "200")],
        None,
        200,
        Some(json!({"data": [{"id": "4", "type": "deal_statuses", "attributes": {"name": "Won", "status_id": 2, "probability": 100}}],
                    "meta": page_meta(1, 1, 1)})),
    )
    .await;
    expect(
        &server,
        "GET",
        "/api/v2/deal_statuses/4",
        &[],
        None,
        200,
        Some(json!({"data": {"id": "4", "type": "deal_statuses", "attributes": {"name": "Won", "status_id": 2}}})),
    )
    .await;
    let c = client(&server);
    assert_eq!(c.get_workflow(&"11".into(), &Query::new()).await.unwrap().data.attributes.name, "Default");
    let st = c.statuses_of_workflow(&"11".into()).await.unwrap();
    assert_eq!(st[0].attributes.category_id, Some(WorkflowStatusCategory::NotStarted));
    assert_eq!(st[0].workflow_id().unwrap().as_str(), "11");
    assert_eq!(st[1].attributes.category_id, Some(WorkflowStatusCategory::Closed));
    assert_eq!(st[2].attributes.category_id, Some(WorkflowStatusCategory::Other(9)), "unknown values are kept");
    let ds = c.list_deal_statuses(&Query::new()).await.unwrap();
    assert_eq!(ds.data[0].attributes.status_id, Some(DealStage::Won));
    assert_eq!(c.get_deal_status(&"4".into()).await.unwrap().data.attributes.name, "Won");
}

/// Community OpenAPI `/custom_fields` (`filter[customizable_type]`), `/custom_fields/{id}`,
/// `/custom_field_options` (`filter[custom_field_id]`).
#[tokio::test]
async fn custom_fields_and_options() {
    let server = MockServer::start().await;
    expect(
        &server,
        "GET",
        "/api/v2/custom_fields",
        &[("filter[customizable_type]", "Deals"), ("page[size]", "200")],
        None,
        200,
        Some(json!({"data": [{"id": "42", "type": "custom_fields", "attributes": {"name": "Source", "customizable_type": "Deals", "data_type_id": 3}}],
                    "meta": page_meta(1, 1, 1)})),
    )
    .await;
    expect(
        &server,
        "GET",
        "/api/v2/custom_fields/42",
        &[("include", "options")],
        None,
        200,
        Some(json!({"data": {"id": "42", "type": "custom_fields", "attributes": {"name": "Source"}}})),
    )
    .await;
    expect(
        &server,
        "GET",
        "/api/v2/custom_field_options",
        &[("filter[custom_field_id]", "42"), ("page[size]", "200"), ("page[number]", "1")],
        None,
        200,
        Some(json!({"data": [{"id": "7", "type": "custom_field_options", "attributes": {"name": "Kommo"},
            "relationships": {"custom_field": {"data": {"type": "custom_fields", "id": "42"}}}}], "meta": page_meta(1, 1, 1)})),
    )
    .await;
    expect(
        &server,
        "GET",
        "/api/v2/custom_field_options/7",
        &[],
        None,
        200,
        Some(json!({"data": {"id": "7", "type": "custom_field_options", "attributes": {"name": "Kommo"}}})),
    )
    .await;
    let c = client(&server);
    let fields = c.list_custom_fields(&Query::new().filter("customizable_type", "Deals")).await.unwrap();
    assert_eq!(fields.data[0].attributes.customizable_type.as_deref(), Some("Deals"));
    c.get_custom_field(&"42".into(), &Query::new().include(["options"])).await.unwrap();
    let opts = c.options_of_custom_field(&"42".into()).await.unwrap();
    assert_eq!(opts[0].custom_field_id().unwrap().as_str(), "42");
    assert_eq!(c.get_custom_field_option(&"7".into()).await.unwrap().data.attributes.name, "Kommo");
}

/// api-notes productive.md §1 "Cheapest credential check": `GET /organization_memberships?page[size]=1` (sp
/// `client.go`); 401 = bad token, 403 = token of another organization (P-llms reading, same section).
#[tokio::test]
async fn check_credentials_reads_one_membership_and_reports_401_403() {
    let server = MockServer::start().await;
    expect(
        &server,
        "GET",
        "/api/v2/organization_memberships",
        &[("page[size]", "1")],
        None,
        200,
        Some(json!({"data": [{"id": "1", "type": "organization_memberships", "attributes": {"role_id": 2},
            "relationships": {"person": {"data": {"type": "people", "id": "7"}}}}], "meta": page_meta(1, 3, 3)})),
    )
    .await;
    expect(
        &server,
        "GET",
        "/api/v2/organization_memberships/1",
        &[],
        None,
        200,
        Some(json!({"data": {"id": "1", "type": "organization_memberships", "attributes": {"role_id": 2}}})),
    )
    .await;
    let c = client(&server);
    c.check_credentials().await.unwrap();
    let m = c.get_organization_membership(&"1".into()).await.unwrap();
    assert_eq!(m.data.attributes.extra["role_id"], 2);

    for status in [401u16, 403] {
        let server = MockServer::start().await;
        let title = if status == 401 { "Unauthorized" } else { "Forbidden" };
        expect(
            &server,
            "GET",
            "/api/v2/organization_memberships",
            &[("page[size]", "1")],
            None,
            status,
            Some(json!({"errors": [{"status": status, "title": title}]})),
        )
        .await;
        let err = client(&server).check_credentials().await.unwrap_err();
        assert_eq!(err.status().map(|s| s.as_u16()), Some(status));
        assert!(!err.is_retryable());
    }
}

/// api-notes productive.md §5 Management API: `GET /webhook_logs` with `filter[webhook_id]`, `filter[after]`.
#[tokio::test]
async fn webhook_logs_of_a_webhook() {
    let server = MockServer::start().await;
    expect(
        &server,
        "GET",
        "/api/v2/webhook_logs",
        &[("filter[webhook_id]", "5"), ("filter[after]", "2026-02-01"), ("page[size]", "200"), ("page[number]", "1")],
        None,
        200,
        Some(json!({"data": [{"id": "900", "type": "webhook_logs", "attributes": {"retry_attempt": 2, "created_at": "2026-02-02T10:00:00.000+01:00", "response_code": 500},
            "relationships": {"webhook": {"data": {"type": "webhooks", "id": "5"}}}}], "meta": page_meta(1, 1, 1)})),
    )
    .await;
    let logs: Vec<_> = client(&server)
        .stream_webhook_logs(Query::new().filter("webhook_id", 5).filter("after", "2026-02-01"))
        .try_collect()
        .await
        .unwrap();
    assert_eq!(logs[0].attributes.retry_attempt, Some(2));
    assert_eq!(logs[0].webhook_id().unwrap().as_str(), "5");
    assert_eq!(logs[0].attributes.extra["response_code"], 500);
}

// ---------------------------------------------------------------------------------------------------------------
// update / archive / restore, person create, deal close, deletes

/// api-notes productive.md §4 Companies / Projects / People: `PATCH /{kind}/{id}`, `PATCH /{kind}/{id}/archive`,
/// `PATCH /{kind}/{id}/restore` (smeta; community OpenAPI). The member actions send the resource identity.
#[tokio::test]
async fn update_archive_restore_companies_projects_people() {
    let server = MockServer::start().await;
    for (kind, id) in [("companies", "5"), ("projects", "9"), ("people", "7")] {
        let answer = json!({"data": {"id": id, "type": kind, "attributes": {"name": "x", "archived_at": null}}});
        expect(
            &server,
            "PATCH",
            &format!("/api/v2/{kind}/{id}"),
            &[],
            Some(json!({"data": {"type": kind, "id": id, "attributes": {"description": "new"}}})),
            200,
            Some(answer.clone()),
        )
        .await;
        for action in ["archive", "restore"] {
            expect(
                &server,
                "PATCH",
                &format!("/api/v2/{kind}/{id}/{action}"),
                &[],
                Some(json!({"data": {"type": kind, "id": id, "attributes": {}}})),
                200,
                Some(answer.clone()),
            )
            .await;
        }
    }
    let c = client(&server);
    let mut patch = Map::new();
    patch.insert("description".into(), json!("new"));
    c.update_company(&"5".into(), &patch).await.unwrap();
    c.archive_company(&"5".into()).await.unwrap();
    c.restore_company(&"5".into()).await.unwrap();
    c.update_project(&"9".into(), &patch).await.unwrap();
    c.archive_project(&"9".into()).await.unwrap();
    c.restore_project(&"9".into()).await.unwrap();
    c.update_person(&"7".into(), &patch).await.unwrap();
    c.archive_person(&"7".into()).await.unwrap();
    c.restore_person(&"7".into()).await.unwrap();
}

/// `POST /people` with `first_name`, `last_name`, `email` (withone "List People" attribute names), `title`, and
/// the `company` relationship.
#[tokio::test]
async fn create_person_body() {
    let server = MockServer::start().await;
    expect(
        &server,
        "POST",
        "/api/v2/people",
        &[],
        Some(json!({"data": {"type": "people",
            "attributes": {"first_name": "Ana", "last_name": "Kovač", "email": "ana@acme.io", "title": "CTO"},
            "relationships": {"company": {"data": {"type": "companies", "id": "5"}}}}})),
        201,
        Some(json!({"data": {"id": "70", "type": "people", "attributes": {"first_name": "Ana", "last_name": "Kovač", "email": "ana@acme.io"}}})),
    )
    .await;
    let mut p = NewPerson::new("Ana", "Kovač", "ana@acme.io");
    p.title = Some("CTO".into());
    p.company_id = Some("5".into());
    let made = client(&server).create_person(&p).await.unwrap();
    assert_eq!(made.attributes.full_name(), "Ana Kovač");
}

/// P-old faq.html (api-notes productive.md §4 Deals "Delivering a budget"): `PATCH /deals/{id}/close` with
/// `{"data":{"type":"deals","attributes":{"delivered_on":"2024-03-14"}}}`; `PATCH /deals/{id}/open` (smeta).
#[tokio::test]
async fn close_and_reopen_deal() {
    let server = MockServer::start().await;
    let answer = json!({"data": {"id": "12", "type": "deals", "attributes": {"name": "Budget", "budget": true, "delivered_on": "2024-03-14"}}});
    expect(
        &server,
        "PATCH",
        "/api/v2/deals/12/close",
        &[],
        Some(json!({"data": {"type": "deals", "id": "12", "attributes": {"delivered_on": "2024-03-14"}}})),
        200,
        Some(answer.clone()),
    )
    .await;
    expect(
        &server,
        "PATCH",
        "/api/v2/deals/12/open",
        &[],
        Some(json!({"data": {"type": "deals", "id": "12", "attributes": {}}})),
        200,
        Some(answer),
    )
    .await;
    let c = client(&server);
    let closed = c.close_deal(&"12".into(), Some(d("2024-03-14"))).await.unwrap();
    assert_eq!(closed.attributes.delivered_on, Some(d("2024-03-14")));
    c.reopen_deal(&"12".into()).await.unwrap();
}

/// api-notes productive.md §4: `DELETE /tasks/{id}`, `/services/{id}`, `/service_assignments/{id}` (smeta); the
/// JSON:API content type is sent on DELETE too (P-llms, §1). A 404 is `is_not_found`; a DELETE that met a 503 is
/// retried (idempotent).
#[tokio::test]
async fn deletes_for_tasks_services_and_service_assignments() {
    let server = MockServer::start().await;
    expect(&server, "DELETE", "/api/v2/tasks/3", &[], None, 204, None).await;
    expect(&server, "DELETE", "/api/v2/services/4", &[], None, 204, None).await;
    expect(&server, "DELETE", "/api/v2/service_assignments/5", &[], None, 204, None).await;
    expect(
        &server,
        "DELETE",
        "/api/v2/tasks/404",
        &[],
        None,
        404,
        Some(json!({"errors": [{"status": 404, "title": "Not Found"}]})),
    )
    .await;
    let c = client(&server);
    c.delete_task(&"3".into()).await.unwrap();
    c.delete_service(&"4".into()).await.unwrap();
    c.delete_service_assignment(&"5".into()).await.unwrap();
    assert!(c.delete_task(&"404".into()).await.unwrap_err().is_not_found());

    let flaky = MockServer::start().await;
    Mock::given(method("DELETE"))
        .and(path("/api/v2/services/4"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(1)
        .expect(1)
        .mount(&flaky)
        .await;
    expect(&flaky, "DELETE", "/api/v2/services/4", &[], None, 204, None).await;
    client(&flaky).delete_service(&"4".into()).await.unwrap();
}

// ---------------------------------------------------------------------------------------------------------------
// the JSON:API layer stays generic

/// A resource this crate does not ship: Productive's timers (developer.productive.io/timers.html, fixture
/// `timers_p_old.json` copied from its `GET /api/v2/timers` sample), modelled with the public traits alone
/// (`ResourceType`, `Resource`, `Document`, `WriteDocument`, `Query`) and read through the generic client calls,
/// with `include=time_entry` resolving the relationship into the crate's own `TimeEntryAttributes`.
#[tokio::test]
async fn a_user_models_an_unshipped_resource_with_the_public_traits() {
    #[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
    #[serde(default)]
    struct TimerAttributes {
        person_id: Option<u64>,
        started_at: Option<String>,
        stopped_at: Option<String>,
        total_time: Option<u64>,
    }
    api_core::string_id!(
        /// A timer id.
        TimerId
    );
    impl ResourceType for TimerAttributes {
        const TYPE: &'static str = "timers";
        type Id = TimerId;
    }

    let server = MockServer::start().await;
    // the documented list: relationships not included → `{"meta":{"included":false}}`
    expect(
        &server,
        "GET",
        "/api/v2/timers",
        &[("filter[person_id]", "8778"), ("page[size]", "200"), ("page[number]", "1")],
        None,
        200,
        Some(fixture("timers_p_old.json")),
    )
    .await;
    // with `include=time_entry`: the timer's linkage and the time entry in `included` (api-notes §2 Document
    // shape); the time entry is the documented "Get a Time Entry" sample
    let entry = fixture("time_entry_withone.json")["data"].clone();
    let mut timer = fixture("timers_p_old.json")["data"][0].clone();
    timer["relationships"]["time_entry"] = json!({"data": {"type": "time_entries", "id": "262"}});
    expect(
        &server,
        "GET",
        "/api/v2/timers/9",
        &[("include", "time_entry")],
        None,
        200,
        Some(json!({"data": timer, "included": [entry]})),
    )
    .await;
    // a write with the public builder: `POST /timers` with the `time_entry` relationship (timers.html: "Creating a
    // Timer is possible (on API) providing either time_entry_id or service_id")
    expect(&server, "POST", "/api/v2/timers", &[],
        Some(json!({"data": {"type": "timers", "attributes": {}, "relationships": {"time_entry": {"data": {"type": "time_entries", "id": "262"}}}}})),
        201, Some(json!({"data": fixture("timers_p_old.json")["data"][1].clone()}))).await;

    let c = client(&server);
    let timers: Vec<Resource<TimerAttributes>> =
        c.stream::<TimerAttributes>("/timers", Query::new().filter("person_id", 8778)).try_collect().await.unwrap();
    assert_eq!(timers.len(), 2);
    assert_eq!(timers[0].typed_id(), TimerId::from("9".to_owned()));
    assert_eq!(timers[0].attributes.person_id, Some(8778));
    assert!(!timers[0].relationship("time_entry").unwrap().is_included());
    assert_eq!(timers[0].related_id("organization").unwrap().id, "2149");

    let doc: Document<Resource<TimerAttributes>> =
        c.get_resource("/timers/9", &Query::new().include(["time_entry"])).await.unwrap();
    let te = doc.related::<_, TimeEntryAttributes>(&doc.data, "time_entry").unwrap().unwrap();
    assert_eq!(te.typed_id().as_str(), "262");
    assert_eq!(te.attributes.time, Some(480));

    let body = WriteDocument::create(TimerAttributes::TYPE).relate("time_entry", "time_entries", "262");
    let started = c.post_document::<TimerAttributes>("/timers", &body).await.unwrap().data;
    assert_eq!(started.id, "10");
}

/// developer.productive.io/events.html ("Event resources represent Absence categories"); the body is withone's
/// copy of the documented "List Events" sample (first item, and the second as far as the copy shows it, with the
/// created event's `"color_id": "1"` from "Create an Event"); `filter[status]`, `filter[absence_type]`.
#[tokio::test]
async fn absence_events_list_and_get() {
    use productive_api::resources::absence_events::AbsenceType;
    use productive_api::types::AbsencePayType;
    let server = MockServer::start().await;
    let sample = json!({"data": [
        {"id": "112", "type": "events", "attributes": {"name": "test name", "event_type_id": 2, "icon_id": null,
            "color_id": null, "archived_at": null, "limitation_type_id": 2, "sync_personal_integrations": true,
            "half_day_bookings": false, "description": null, "absence_type": "time_off"},
         "relationships": {"organization": {"data": {"type": "organizations", "id": "532"}}}},
        {"id": "116", "type": "events", "attributes": {"name": "test name", "event_type_id": 2, "icon_id": null,
            "color_id": "1", "archived_at": null, "limitation_type_id": 4, "sync_personal_integrations": true,
            "half_day_bookings": false, "description": null, "absence_type": "time_off"},
         "relationships": {"organization": {"data": {"type": "organizations", "id": "534"}}}}],
        "meta": page_meta(1, 1, 2)});
    expect(
        &server,
        "GET",
        "/api/v2/events",
        &[("filter[status]", "1"), ("filter[absence_type]", "time_off"), ("page[size]", "200")],
        None,
        200,
        Some(sample.clone()),
    )
    .await;
    expect(&server, "GET", "/api/v2/events/112", &[], None, 200, Some(json!({"data": sample["data"][0].clone()})))
        .await;
    let c = client(&server);
    let page =
        c.list_absence_events(&Query::new().filter("status", 1).filter("absence_type", "time_off")).await.unwrap();
    assert_eq!(page.data.len(), 2);
    let first = &page.data[0].attributes;
    assert_eq!(first.event_type_id, Some(AbsencePayType::Unpaid));
    assert_eq!(first.absence_type, Some(AbsenceType::TimeOff));
    assert_eq!(page.data[1].attributes.color_id, Some(json!("1")));
    let one = c.get_absence_event(&"112".into()).await.unwrap();
    // the id an absence booking points to
    let target = BookingTarget::Absence(one.data.typed_id());
    assert_eq!(target, BookingTarget::Absence("112".into()));
}

/// Time entry and booking deliveries: the envelope of api-notes productive.md §5 "Delivery" (sp fixture shape)
/// with event ids 7 / 17 (P-old webhooks.html table). The event and item type names are **unverified**; the
/// resource is classified by `item_type`, the event's entity, or `object.data.type`.
#[test]
fn time_entry_and_booking_deliveries_are_typed() {
    use productive_api::webhook::{Action, WebhookEvent, parse};
    let entry = fixture("time_entry_withone.json")["data"].clone();
    let body = json!({"event": "create_time_entry", "item_type": "time_entry", "item_id": 262,
        "created": "2026-03-14T05:17:57.508+01:00", "object": {"data": entry.clone()}});
    let WebhookEvent::TimeEntry { action, entry: e, .. } = parse(body.to_string().as_bytes()).unwrap().typed().unwrap()
    else {
        panic!("not a time entry")
    };
    assert_eq!(action, Action::Create);
    assert_eq!(e.attributes.time, Some(480));
    // an unexpected item type name still classifies by the resource type
    let body = json!({"event": "update_timeentry", "item_type": "TimeEntry", "item_id": 262,
        "created": "2026-03-14T05:17:57.508+01:00", "object": {"data": entry}});
    assert!(matches!(parse(body.to_string().as_bytes()).unwrap().typed().unwrap(), WebhookEvent::TimeEntry { .. }));
    let booking = json!({"id": "500", "type": "bookings", "attributes": {"started_on": "2026-02-02", "ended_on": "2026-02-06",
        "booking_method_id": 1, "time": 240}});
    let body = json!({"event": "update_booking", "item_type": "booking", "item_id": 500,
        "created": "2026-02-01T10:00:00.000+01:00", "object": {"data": booking}});
    let WebhookEvent::Booking { action, booking: b, .. } = parse(body.to_string().as_bytes()).unwrap().typed().unwrap()
    else {
        panic!("not a booking")
    };
    assert_eq!(action, Action::Update);
    assert_eq!(b.attributes.booking_method_id, Some(BookingMethod::PerDay));
}

/// Community OpenAPI `/time_entries/{id}/approve`, `/unapprove`, `/reject` (PATCH); `rejected_reason` is an
/// attribute of the documented time entry sample.
#[tokio::test]
async fn time_entry_approval_actions() {
    let server = MockServer::start().await;
    let sample = fixture("time_entry_withone.json");
    for action in ["approve", "unapprove"] {
        expect(
            &server,
            "PATCH",
            &format!("/api/v2/time_entries/262/{action}"),
            &[],
            Some(json!({"data": {"type": "time_entries", "id": "262", "attributes": {}}})),
            200,
            Some(sample.clone()),
        )
        .await;
    }
    expect(
        &server,
        "PATCH",
        "/api/v2/time_entries/262/reject",
        &[],
        Some(
            json!({"data": {"type": "time_entries", "id": "262", "attributes": {"rejected_reason": "wrong service"}}}),
        ),
        200,
        Some(sample),
    )
    .await;
    let c = client(&server);
    c.approve_time_entry(&"262".into()).await.unwrap();
    c.unapprove_time_entry(&"262".into()).await.unwrap();
    c.reject_time_entry(&"262".into(), Some("wrong service")).await.unwrap();
}

/// api-notes productive.md §4: `PATCH /services/{id}` (Services), `DELETE /projects/{id}` (Projects),
/// `DELETE /deals/{id}` (Deals and budgets), all from the generated reference (smeta).
#[tokio::test]
async fn service_update_project_and_deal_delete() {
    let server = MockServer::start().await;
    expect(
        &server,
        "PATCH",
        "/api/v2/services/4",
        &[],
        Some(json!({"data": {"type": "services", "id": "4", "attributes": {"price": "120.0", "quantity": 2}}})),
        200,
        Some(json!({"data": {"id": "4", "type": "services", "attributes": {"name": "Design", "price": "120.0", "quantity": 2}}})),
    )
    .await;
    expect(&server, "DELETE", "/api/v2/projects/9", &[], None, 204, None).await;
    expect(&server, "DELETE", "/api/v2/deals/12", &[], None, 204, None).await;
    let c = client(&server);
    let mut patch = Map::new();
    patch.insert("price".into(), json!("120.0"));
    patch.insert("quantity".into(), json!(2));
    let s = c.update_service(&"4".into(), &patch).await.unwrap();
    assert_eq!(s.attributes.price.as_ref().unwrap().0, "120.0");
    c.delete_project(&"9".into()).await.unwrap();
    c.delete_deal(&"12".into()).await.unwrap();
}
