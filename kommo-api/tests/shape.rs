//! The shared SDK shape (issue 21) as kommo-api follows it: builder vocabulary, `list` = one page / `stream` = all
//! pages, the public raw `send`, typed task types, `is_won` / `is_lost`, and the wire place of webhook events.

use std::time::Duration;

use api_core::{RateLimiter, Request, Rule};
use futures::TryStreamExt as _;
use kommo_api::{
    Client, Error, LeadId, ListParams, StatusId, TaskTypeId,
    tasks::{NewTask, TaskUpdate},
    webhook::{self, WebhookEvent, encode_form},
};
use serde_json::json;
use wiremock::{
    Mock, MockServer, ResponseTemplate,
    matchers::{header, method, path, query_param},
};

fn client(server: &MockServer) -> Client {
    Client::builder().base_url(server.uri()).token("t").rate_limit(0).build().unwrap()
}

#[test]
fn base_url_is_validated_in_build() {
    let e = Client::builder().base_url("https://").token("t").build().unwrap_err();
    assert!(matches!(e, Error::InvalidRequest(ref m) if m.contains("base URL")), "{e:?}");
    // `AsRef<str>`: a `String`, a `&str` and a `url::Url`'s string all work
    let url = url::Url::parse("https://sub.kommo.com").unwrap();
    let c = Client::builder().base_url(url.as_str()).token("t").build().unwrap();
    assert_eq!(c.base_url().as_str(), "https://sub.kommo.com/");
    let c = Client::builder().base_url(String::from("sub.kommo.com")).token("t").build().unwrap();
    assert_eq!(c.base_url().as_str(), "https://sub.kommo.com/");
}

/// `list` answers one page (with `has_next`), `stream` walks every page; the HAL envelope as in kommo.md §3
/// ("HAL list envelope", Krukov `tests/data/contacts.py` `LIST_PAGE_1`).
#[tokio::test]
async fn list_is_one_page_and_stream_is_every_page() {
    let s = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v4/leads"))
        .and(query_param("page", "1"))
        .and(query_param("limit", "250"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "_page": 1,
            "_links": {"self": {"href": "x?page=1"}, "next": {"href": "x?page=2"}},
            "_embedded": {"leads": [{"id": 1, "status_id": 142}, {"id": 2, "status_id": 143}]}
        })))
        .expect(2)
        .mount(&s)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v4/leads"))
        .and(query_param("page", "2"))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&s)
        .await;
    let c = client(&s);
    let page = c.leads().list(&ListParams::new(), 1).await.unwrap();
    assert_eq!(page.items.iter().map(|l| l.id).collect::<Vec<_>>(), [LeadId(1), LeadId(2)]);
    assert!(page.has_next);
    assert!(page.items[0].is_won() && !page.items[0].is_lost());
    assert!(page.items[1].is_lost() && !page.items[1].is_won());
    let all: Vec<_> = c.leads().stream(ListParams::new()).try_collect().await.unwrap();
    assert_eq!(all.len(), 2);
}

/// The raw escape hatch goes through the same auth (Bearer) and error mapping as the typed calls.
#[tokio::test]
async fn send_is_the_public_raw_escape_hatch() {
    let s = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v4/leads/unsorted/summary"))
        .and(header("authorization", "Bearer t"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"total": 3})))
        .expect(1)
        .mount(&s)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v4/nowhere"))
        .respond_with(
            ResponseTemplate::new(404)
                .set_body_json(json!({"title": "Not Found", "type": "https://httpstatus.es/404", "status": 404, "detail": "Pipeline not found"})),
        )
        .expect(1)
        .mount(&s)
        .await;
    let c = client(&s);
    let resp = c.send(Request::get("/api/v4/leads/unsorted/summary")).await.unwrap();
    assert_eq!(resp.json::<serde_json::Value>().unwrap(), json!({"total": 3}));
    let e = c.send(Request::get("/api/v4/nowhere")).await.unwrap_err();
    assert!(e.is_not_found(), "{e:?}");
}

/// Two clients of one account given the same `RateLimiter` through `rate_budget` draw from one budget: four requests
/// at 4 per second, evenly spaced, take at least 750 ms (a scripted transport is not needed: wiremock answers at once).
#[tokio::test]
async fn rate_budget_is_shared_between_clients() {
    let s = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v4/account"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": 1, "name": "a", "subdomain": "a"})))
        .expect(4)
        .mount(&s)
        .await;
    let budget = RateLimiter::new([Rule::per_second(4)]);
    let a = Client::builder().base_url(s.uri()).token("t").rate_budget(budget.clone()).build().unwrap();
    let b = Client::builder().base_url(s.uri()).token("t").rate_budget(budget).build().unwrap();
    let start = tokio::time::Instant::now();
    for _ in 0..2 {
        a.account(&[]).await.unwrap();
        b.account(&[]).await.unwrap();
    }
    assert!(start.elapsed() >= Duration::from_millis(740), "{:?}", start.elapsed());
}

/// Task types are typed ids: `task_type_id` 2 is `TaskTypeId::MEETING` (kommo.md §4 Tasks: "1 – Follow-up,
/// 2 – Meeting").
#[test]
fn task_types_are_typed() {
    let t = NewTask::new("Call", 1_700_000_000).on(LeadId(7)).task_type(TaskTypeId::MEETING).duration(900);
    assert_eq!(
        serde_json::to_value(&t).unwrap(),
        json!({"text": "Call", "complete_till": 1_700_000_000, "entity_id": 7, "entity_type": "leads", "task_type_id": 2, "duration": 900})
    );
    let u = TaskUpdate::new(kommo_api::TaskId(5)).task_type(TaskTypeId::FOLLOW_UP).due(1_700_000_100);
    assert_eq!(serde_json::to_value(&u).unwrap(), json!({"id": 5, "complete_till": 1_700_000_100, "task_type_id": 1}));
}

/// Each event says where it stood (`leads[status][1]`), and lead events answer `is_won` / `is_lost`; the body
/// shape is kommo.md §5 capture 1 (`leads[status][0][id|status_id|old_status_id|pipeline_id]`).
#[test]
fn webhook_events_know_their_wire_place_and_outcome() {
    let body = encode_form(&[
        ("leads[status][0][id]", "10701093"),
        ("leads[status][0][status_id]", "142"),
        ("leads[status][0][old_status_id]", "20067736"),
        ("leads[status][0][pipeline_id]", "9217056"),
        ("leads[status][1][id]", "10701094"),
        ("leads[status][1][status_id]", "143"),
        ("leads[status][1][pipeline_id]", "9217056"),
        ("leads[note][0][note][id]", "5"),
        ("leads[note][0][note][element_id]", "10701093"),
        ("leads[note][0][note][note_type]", "4"),
        ("message[add][3][id]", "m1"),
        ("account[subdomain]", "example"),
    ]);
    let p = webhook::parse(body.as_bytes()).unwrap();
    let places: Vec<String> = p.events.iter().map(|e| e.wire().to_string()).collect();
    assert_eq!(places, ["leads[note][0]", "leads[status][0]", "leads[status][1]", "message[add][3]"]);
    assert!(p.events[1].is_won() && !p.events[1].is_lost());
    assert!(p.events[2].is_lost() && !p.events[2].is_won());
    assert!(!p.events[0].is_won() && !p.events[3].is_won());
    let WebhookEvent::Lead { lead, .. } = &p.events[2] else { panic!("{:?}", p.events) };
    assert_eq!(lead.status_id, Some(StatusId::LOST));
    assert_eq!(lead.wire.root, "leads");
    assert_eq!(lead.wire.action, "status");
    assert_eq!(lead.wire.index, "1");
    // a split body keeps the event's own place, so it parses back to the same event
    for (b, ev) in p.split_bodies().iter().zip(&p.events) {
        assert_eq!(webhook::parse(b.as_bytes()).unwrap().events, vec![ev.clone()]);
    }
}
