//! Operations against wiremock: paths, query parameters, bodies, headers and call counts; decoding of the
//! documented example bodies (tests/fixtures, copied from the OpenAPI examples); error shapes; pagination edges.

use api_core::{RetryPolicy, Token};
use calendly_api::{
    Client, Error, EventUri, InviteeUri, NoShowUri, OrganizationUri, UserUri, WebhookEvent, WebhookUri,
    event_types::ListEventTypes,
    invitees::{InviteeStatus, ListInvitees},
    scheduled_events::{EventStatus, ListScheduledEvents, LocationType},
    users::{ListMemberships, MembershipRole},
    webhook_subscriptions::{
        CreateOutcome, CreateWebhookSubscription, ListWebhookSubscriptions, SubscriptionState, WebhookScope,
    },
};
use chrono::{TimeZone as _, Utc};
use futures::{StreamExt as _, TryStreamExt as _};
use serde_json::{Value, json};
use wiremock::{
    Mock, MockServer, ResponseTemplate,
    matchers::{body_json, header, method, path, query_param, query_param_is_missing},
};

const TOKEN: &str = "pat-test-token";
const ORG: &str = "https://api.calendly.com/organizations/AAAAAAAAAAAAAAAA";

fn fixture(name: &str) -> Value {
    let s = std::fs::read_to_string(format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap();
    serde_json::from_str(&s).unwrap()
}

/// A documented collection example as the last page (the examples carry a `next_page_token`).
fn last_page(name: &str) -> Value {
    let mut v = fixture(name);
    v["pagination"]["next_page_token"] = Value::Null;
    v
}

async fn setup() -> (MockServer, Client) {
    let server = MockServer::start().await;
    let client = Client::builder()
        .token(Token::new(TOKEN))
        .base_url(server.uri())
        .retry_policy(RetryPolicy { base_delay: std::time::Duration::from_millis(1), ..RetryPolicy::default() })
        .build()
        .unwrap();
    (server, client)
}

fn auth() -> wiremock::matchers::HeaderExactMatcher {
    header("authorization", format!("Bearer {TOKEN}").as_str())
}

#[tokio::test]
async fn users_me() {
    let (server, client) = setup().await;
    Mock::given(method("GET"))
        .and(path("/users/me"))
        .and(auth())
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture("users_me.json")))
        .expect(1)
        .mount(&server)
        .await;
    let me = client.me().await.unwrap();
    assert_eq!(me.uri.uuid(), "AAAAAAAAAAAAAAAA");
    assert_eq!(me.current_organization.unwrap().as_str(), ORG);
    assert_eq!(me.timezone.as_deref(), Some("America/New York"));
}

#[tokio::test]
async fn scheduled_events_three_pages_with_filters() {
    let (server, client) = setup().await;
    let page = |next: Option<&str>, uuid: &str| {
        let mut v = fixture("scheduled_events_list.json");
        v["collection"][0]["uri"] = json!(format!("https://api.calendly.com/scheduled_events/{uuid}"));
        v["pagination"]["next_page_token"] = json!(next);
        v
    };
    let common = |m: wiremock::MockBuilder| {
        m.and(path("/scheduled_events"))
            .and(auth())
            .and(query_param("organization", ORG))
            .and(query_param("status", "active"))
            .and(query_param("min_start_time", "2026-01-01T00:00:00.000000Z"))
            .and(query_param("max_start_time", "2026-02-01T00:00:00.000000Z"))
            .and(query_param("invitee_email", "jane@example.com"))
            .and(query_param("count", "100"))
    };
    common(Mock::given(method("GET")))
        .and(query_param_is_missing("page_token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(page(Some("tok2"), "E1")))
        .expect(1)
        .mount(&server)
        .await;
    common(Mock::given(method("GET")))
        .and(query_param("page_token", "tok2"))
        .respond_with(ResponseTemplate::new(200).set_body_json(page(Some("tok3"), "E2")))
        .expect(1)
        .mount(&server)
        .await;
    common(Mock::given(method("GET")))
        .and(query_param("page_token", "tok3"))
        .respond_with(ResponseTemplate::new(200).set_body_json(page(None, "E3")))
        .expect(1)
        .mount(&server)
        .await;
    let q = ListScheduledEvents::for_organization(ORG.into())
        .status(EventStatus::Active)
        .min_start_time(Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap())
        .max_start_time(Utc.with_ymd_and_hms(2026, 2, 1, 0, 0, 0).unwrap())
        .invitee_email("jane@example.com");
    let events: Vec<_> = client.stream_scheduled_events(&q).try_collect().await.unwrap();
    let uuids: Vec<_> = events.iter().map(|e| e.uri.uuid().to_owned()).collect();
    assert_eq!(uuids, ["E1", "E2", "E3"]);
    assert_eq!(events[0].location.as_ref().unwrap().kind, LocationType::Physical);
    assert_eq!(events[0].location.as_ref().unwrap().location.as_deref(), Some("Calendly Office"));
}

#[tokio::test]
async fn stream_is_lazy_and_stops_on_repeated_cursor() {
    let (server, client) = setup().await;
    let mut v = fixture("scheduled_events_list.json");
    v["pagination"]["next_page_token"] = json!("same");
    Mock::given(method("GET"))
        .and(path("/scheduled_events"))
        .respond_with(ResponseTemplate::new(200).set_body_json(v))
        .expect(2)
        .mount(&server)
        .await;
    let s = client.stream_scheduled_events(&ListScheduledEvents::for_user("https://api.calendly.com/users/U".into()));
    let items: Vec<_> = s.collect().await;
    assert_eq!(items.len(), 3, "page 1 item, page 2 item, then the loop error");
    assert!(matches!(items[2], Err(Error::RepeatedCursor(_))));
    // lazy: building a stream sends nothing
    let _unused = client.stream_scheduled_events(&ListScheduledEvents::default());
}

#[tokio::test]
async fn empty_collection() {
    let (server, client) = setup().await;
    Mock::given(method("GET"))
        .and(path("/scheduled_events/EV1/invitees"))
        .and(query_param("status", "canceled"))
        .and(query_param("count", "50"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "collection": [],
            "pagination": {"count": 0, "next_page": null, "previous_page": null, "next_page_token": null, "previous_page_token": null}
        })))
        .expect(1)
        .mount(&server)
        .await;
    let invs: Vec<_> = client
        .stream_invitees(
            &EventUri::from("https://api.calendly.com/scheduled_events/EV1"),
            &ListInvitees::default().status(InviteeStatus::Canceled).count(50),
        )
        .try_collect()
        .await
        .unwrap();
    assert!(invs.is_empty());
}

#[tokio::test]
async fn event_invitees_and_single_resources() {
    let (server, client) = setup().await;
    Mock::given(method("GET"))
        .and(path("/scheduled_events/GBGBDCAADAEDCRZ2"))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture("scheduled_event.json")))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/scheduled_events/AAAAAAAAAAAAAAAA/invitees"))
        .and(query_param("email", "test@example.com"))
        .respond_with(ResponseTemplate::new(200).set_body_json(last_page("invitees_list.json")))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/scheduled_events/AAAAAAAAAAAAAAAA/invitees/AAAAAAAAAAAAAAAA"))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture("invitee.json")))
        .expect(1)
        .mount(&server)
        .await;
    let ev =
        client.get_scheduled_event(&"https://api.calendly.com/scheduled_events/GBGBDCAADAEDCRZ2".into()).await.unwrap();
    assert_eq!(ev.name.as_deref(), Some("15 Minute Meeting"));
    assert_eq!(ev.extra["booking_method"], "instant");
    let invs: Vec<_> = client
        .stream_invitees(
            &"https://api.calendly.com/scheduled_events/AAAAAAAAAAAAAAAA".into(),
            &ListInvitees::default().email("test@example.com"),
        )
        .try_collect()
        .await
        .unwrap();
    assert_eq!(invs[0].email.as_deref(), Some("test@example.com"));
    assert_eq!(
        invs[0].questions_and_answers.len(),
        fixture("invitees_list.json")["collection"][0]["questions_and_answers"].as_array().unwrap().len()
    );
    let inv = client
        .get_invitee(&InviteeUri::from(
            "https://api.calendly.com/scheduled_events/AAAAAAAAAAAAAAAA/invitees/AAAAAAAAAAAAAAAA",
        ))
        .await
        .unwrap();
    // the spec's single-invitee example uses another (old-style) URI than its list example
    assert_eq!(inv.uri.uuid(), "ABCDABCDABCDABCD");
    assert_eq!(inv.email.as_deref(), Some("email@example.com"));
    assert!(matches!(client.get_invitee(&InviteeUri::from("nonsense")).await, Err(Error::InvalidRequest(_))));
}

#[tokio::test]
async fn event_types_and_memberships() {
    let (server, client) = setup().await;
    Mock::given(method("GET"))
        .and(path("/event_types"))
        .and(query_param("user", "https://api.calendly.com/users/U"))
        .and(query_param("active", "true"))
        .respond_with(ResponseTemplate::new(200).set_body_json(last_page("event_types_list.json")))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/organization_memberships"))
        .and(query_param("organization", ORG))
        .respond_with(ResponseTemplate::new(200).set_body_json(last_page("memberships_list.json")))
        .expect(1)
        .mount(&server)
        .await;
    let ets: Vec<_> = client
        .stream_event_types(&ListEventTypes::for_user("https://api.calendly.com/users/U".into()).active(true))
        .try_collect()
        .await
        .unwrap();
    assert_eq!(ets[0].duration, Some(30));
    assert_eq!(ets[0].kind.as_deref(), Some("solo"));
    let ms: Vec<_> =
        client.stream_memberships(&ListMemberships::for_organization(ORG.into())).try_collect().await.unwrap();
    assert_eq!(ms[0].role, MembershipRole::Admin);
    assert_eq!(ms[0].user.name.as_deref(), Some("John Doe"));
}

#[tokio::test]
async fn cancel_with_reason_and_no_shows() {
    let (server, client) = setup().await;
    Mock::given(method("POST"))
        .and(path("/scheduled_events/EV1/cancellation"))
        .and(body_json(json!({"reason": "Host unavailable"})))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({
            "resource": {"canceled_by": "John Doe", "reason": "Host unavailable", "canceler_type": "host", "created_at": "2026-06-24T22:30:45.105381Z"}
        })))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/scheduled_events/EV2/cancellation"))
        .and(body_json(json!({})))
        .respond_with(
            ResponseTemplate::new(403)
                .set_body_json(json!({"title": "Permission Denied", "message": "Event is already canceled"})),
        )
        .expect(1)
        .mount(&server)
        .await;
    let inv =
        "https://api.calendly.com/scheduled_events/GBGBDCAADAEDCRZ2/invitees/7c1dbe46-bd84-42e2-9b97-05e2fb379bfe";
    Mock::given(method("POST"))
        .and(path("/invitee_no_shows"))
        .and(body_json(json!({"invitee": inv})))
        .respond_with(ResponseTemplate::new(201).set_body_json(fixture("invitee_no_show_created.json")))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .and(path("/invitee_no_shows/639fa667-4c1b-4b20-93b5-1b1969d67dc6"))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&server)
        .await;
    let c = client
        .cancel_event(&"https://api.calendly.com/scheduled_events/EV1".into(), Some("Host unavailable"))
        .await
        .unwrap();
    assert_eq!(c.canceled_by.as_deref(), Some("John Doe"));
    let e = client.cancel_event(&"https://api.calendly.com/scheduled_events/EV2".into(), None).await.unwrap_err();
    assert_eq!(e.status().unwrap().as_u16(), 403);
    assert_eq!(e.body().unwrap().message, "Event is already canceled");
    assert!(!e.is_retryable());
    let ns = client.mark_no_show(&InviteeUri::from(inv)).await.unwrap();
    assert_eq!(ns.invitee.unwrap().as_str(), inv);
    client.unmark_no_show(&NoShowUri::from(ns.uri.as_str())).await.unwrap();
}

#[tokio::test]
async fn webhook_subscription_operations() {
    let (server, client) = setup().await;
    let req = CreateWebhookSubscription::new(
        "https://blah.foo/bar",
        [WebhookEvent::InviteeCreated],
        ORG.into(),
        WebhookScope::User,
    )
    .user("https://api.calendly.com/users/AAAAAAAAAAAAAAAA".into())
    .signing_key(Token::new("key-abc"));
    let expected_body = json!({
        "url": "https://blah.foo/bar",
        "events": ["invitee.created"],
        "organization": ORG,
        "scope": "user",
        "user": "https://api.calendly.com/users/AAAAAAAAAAAAAAAA",
        "signing_key": "key-abc",
    });
    Mock::given(method("POST"))
        .and(path("/webhook_subscriptions"))
        .and(body_json(expected_body.clone()))
        .respond_with(ResponseTemplate::new(201).set_body_json(fixture("webhook_subscription_created.json")))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/webhook_subscriptions"))
        .respond_with(ResponseTemplate::new(409).set_body_json(fixture("error_409_already_exists.json")))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/webhook_subscriptions"))
        .and(query_param("organization", ORG))
        .and(query_param("scope", "user"))
        .and(query_param("user", "https://api.calendly.com/users/AAAAAAAAAAAAAAAA"))
        .respond_with(ResponseTemplate::new(200).set_body_json(last_page("webhook_subscriptions_list.json")))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .and(path("/webhook_subscriptions/AAAAAAAAAAAAAAAA"))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&server)
        .await;
    let CreateOutcome::Created(sub) = client.create_webhook_subscription(&req).await.unwrap() else {
        panic!("created")
    };
    assert_eq!(sub.state, SubscriptionState::Active);
    assert_eq!(sub.scope, WebhookScope::User);
    let CreateOutcome::AlreadyExists(body) = client.create_webhook_subscription(&req).await.unwrap() else {
        panic!("409")
    };
    assert_eq!(body.title, "Already Exists");
    let list = ListWebhookSubscriptions::new(OrganizationUri::from(ORG), WebhookScope::User)
        .user(UserUri::from("https://api.calendly.com/users/AAAAAAAAAAAAAAAA"));
    let existing = client.find_webhook_subscription(&list, "https://blah.foo/bar").await.unwrap().unwrap();
    assert_eq!(existing.uri, sub.uri);
    assert!(client.delete_webhook_subscription(&WebhookUri::from(existing.uri.as_str())).await.unwrap());
}

#[tokio::test]
async fn error_shapes() {
    let (server, client) = setup().await;
    Mock::given(method("GET"))
        .and(path("/users/me"))
        .respond_with(ResponseTemplate::new(404).set_body_json(fixture("error_404.json")))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/webhook_subscriptions"))
        .respond_with(ResponseTemplate::new(403).set_body_json(fixture("error_403_plan.json")))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/scheduled_events/BAD"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"resource": {"uri": "u", "start_time": "yesterday"}})),
        )
        .expect(1)
        .mount(&server)
        .await;
    let e = client.me().await.unwrap_err();
    assert!(e.is_not_found());
    let b = e.body().unwrap();
    assert_eq!(b.title, "Resource Not Found");
    assert_eq!(b.details[0].parameter.as_deref(), Some("string"));
    assert_eq!(e.api().unwrap().parts.body, serde_json::to_vec(&fixture("error_404.json")).unwrap());
    let e = client
        .create_webhook_subscription(&CreateWebhookSubscription::new(
            "https://x",
            [WebhookEvent::InviteeCreated],
            ORG.into(),
            WebhookScope::Organization,
        ))
        .await
        .unwrap_err();
    assert!(e.is_plan_gate());
    assert_eq!(
        server.received_requests().await.unwrap().iter().filter(|r| r.method.as_str() == "POST").count(),
        1,
        "403 is not retried"
    );
    let e = client.get_scheduled_event(&"https://api.calendly.com/scheduled_events/BAD".into()).await.unwrap_err();
    let Error::Decode(d) = &e else { panic!("{e:?}") };
    assert_eq!(d.path, "resource.start_time");
}

#[tokio::test]
async fn server_errors_retried_for_get_not_for_post() {
    let (server, client) = setup().await;
    Mock::given(method("GET"))
        .and(path("/users/me"))
        .respond_with(
            ResponseTemplate::new(500).set_body_json(json!({"title": "Internal Server Error", "message": "oops"})),
        )
        .up_to_n_times(2)
        .expect(2)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/users/me"))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture("users_me.json")))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/scheduled_events/EV/cancellation"))
        .respond_with(ResponseTemplate::new(502).set_body_string("<html>bad gateway</html>"))
        .expect(1)
        .mount(&server)
        .await;
    client.me().await.unwrap();
    let e = client.cancel_event(&"https://api.calendly.com/scheduled_events/EV".into(), None).await.unwrap_err();
    assert!(e.body().is_none());
    assert!(e.may_have_been_sent());
    assert!(e.is_retryable(), "the engine may reschedule it after checking state");
}

#[tokio::test]
async fn sample_webhook_data_is_unwrapped_envelope() {
    let (server, client) = setup().await;
    let body =
        std::fs::read_to_string(format!("{}/tests/fixtures/webhook_invitee_created.json", env!("CARGO_MANIFEST_DIR")))
            .unwrap();
    Mock::given(method("GET"))
        .and(path("/sample_webhook_data"))
        .and(query_param("event", "invitee.created"))
        .and(query_param("organization", ORG))
        .and(query_param("scope", "organization"))
        .and(query_param_is_missing("count"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(body, "application/json"))
        .expect(1)
        .mount(&server)
        .await;
    let d = client
        .sample_webhook_data(
            &WebhookEvent::InviteeCreated,
            &ListWebhookSubscriptions::new(ORG.into(), WebhookScope::Organization),
        )
        .await
        .unwrap();
    assert_eq!(d.invitee().unwrap().email.as_deref(), Some("invitee@example.com"));
}

/// Query parameters and body fields this crate sends are those of Calendly's OpenAPI description (tests/fixtures/
/// openapi_subset.json, generated from /work/shared/openapi/calendly.yaml), plus `group`, which Calendly added after
/// that 2023 copy (api-notes §6: `GET /scheduled_events` takes `group`; webhook subscriptions take `group`).
#[test]
fn requests_match_openapi() {
    let spec = fixture("openapi_subset.json");
    let allowed = |op: &str| -> Vec<String> {
        let mut v: Vec<String> = spec["operations"][op]["query"]
            .as_array()
            .unwrap_or_else(|| panic!("{op}"))
            .iter()
            .map(|s| s.as_str().unwrap().to_owned())
            .collect();
        v.push("group".into());
        v
    };
    let check = |op: &str, q: Vec<(String, String)>| {
        let a = allowed(op);
        for (k, _) in q {
            assert!(a.contains(&k), "{op}: {k} not in spec {a:?}");
        }
    };
    let t = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    check(
        "GET /scheduled_events",
        ListScheduledEvents::for_organization(ORG.into())
            .user("https://x/users/U".into())
            .group("https://x/groups/G".into())
            .status(EventStatus::Active)
            .min_start_time(t)
            .max_start_time(t)
            .invitee_email("a@b")
            .sort(calendly_api::scheduled_events::EventSort::StartTimeDesc)
            .to_query(),
    );
    let mut li = ListInvitees::default().status(InviteeStatus::Active).email("a@b");
    li.sort = Some("created_at:desc".into());
    check("GET /scheduled_events/{uuid}/invitees", li.to_query());
    let mut et = ListEventTypes::for_organization(ORG.into()).active(true);
    et.user = Some("https://x/users/U".into());
    et.sort = Some("name:asc".into());
    check("GET /event_types", et.to_query());
    check("GET /organization_memberships", ListMemberships::for_organization(ORG.into()).email("a@b").to_query());
    check(
        "GET /webhook_subscriptions",
        ListWebhookSubscriptions::new(ORG.into(), WebhookScope::User).user("https://x/users/U".into()).to_query(),
    );
    let body =
        CreateWebhookSubscription::new("https://x", [WebhookEvent::InviteeCreated], ORG.into(), WebhookScope::User)
            .user("https://x/users/U".into())
            .signing_key(Token::new("k"))
            .to_body();
    let props: Vec<&str> = spec["operations"]["POST /webhook_subscriptions"]["body"]["properties"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for k in body.as_object().unwrap().keys() {
        assert!(props.contains(&k.as_str()) || k == "group", "{k}");
    }
    for r in spec["operations"]["POST /webhook_subscriptions"]["body"]["required"].as_array().unwrap() {
        assert!(body.get(r.as_str().unwrap()).is_some(), "required {r}");
    }
    assert_eq!(spec["operations"]["POST /invitee_no_shows"]["body"]["properties"], json!(["invitee"]));
    assert_eq!(
        spec["operations"]["POST /scheduled_events/{uuid}/cancellation"]["body"]["properties"],
        json!(["reason"])
    );
    for op in [
        "GET /users/me",
        "GET /scheduled_events/{uuid}",
        "GET /scheduled_events/{event_uuid}/invitees/{invitee_uuid}",
        "GET /webhook_subscriptions/{webhook_uuid}",
        "DELETE /webhook_subscriptions/{webhook_uuid}",
        "GET /invitee_no_shows/{uuid}",
        "DELETE /invitee_no_shows/{uuid}",
    ] {
        assert!(spec["operations"].get(op).is_some(), "{op} exists in the spec");
    }
}

#[tokio::test]
async fn single_resource_gets_and_delete_404() {
    let (server, client) = setup().await;
    let mut user = fixture("users_me.json");
    user["resource"]["uri"] = json!("https://api.calendly.com/users/BBBB");
    Mock::given(method("GET"))
        .and(path("/users/BBBB"))
        .respond_with(ResponseTemplate::new(200).set_body_json(user))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/invitee_no_shows/639fa667-4c1b-4b20-93b5-1b1969d67dc6"))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture("invitee_no_show_created.json")))
        .expect(1)
        .mount(&server)
        .await;
    let mut sub = fixture("webhook_subscription_created.json");
    sub["resource"]["state"] = json!("disabled");
    Mock::given(method("GET"))
        .and(path("/webhook_subscriptions/AAAAAAAAAAAAAAAA"))
        .respond_with(ResponseTemplate::new(200).set_body_json(sub))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .and(path("/webhook_subscriptions/GONE"))
        .respond_with(ResponseTemplate::new(404).set_body_json(fixture("error_404.json")))
        .expect(1)
        .mount(&server)
        .await;
    assert_eq!(
        client.get_user(&UserUri::from("https://api.calendly.com/users/BBBB")).await.unwrap().uri.uuid(),
        "BBBB"
    );
    let ns = client
        .get_no_show(&NoShowUri::from("https://api.calendly.com/invitee_no_shows/639fa667-4c1b-4b20-93b5-1b1969d67dc6"))
        .await
        .unwrap();
    assert!(ns.invitee.is_some());
    let s = client
        .get_webhook_subscription(&WebhookUri::from("https://api.calendly.com/webhook_subscriptions/AAAAAAAAAAAAAAAA"))
        .await
        .unwrap();
    assert_eq!(s.state, SubscriptionState::Disabled);
    assert!(
        !client
            .delete_webhook_subscription(&WebhookUri::from("https://api.calendly.com/webhook_subscriptions/GONE"))
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn unknown_enum_values_round_trip_from_the_wire() {
    let (server, client) = setup().await;
    let mut sub = fixture("webhook_subscription_created.json");
    sub["resource"]["state"] = json!("paused");
    sub["resource"]["scope"] = json!("team");
    sub["resource"]["events"] = json!(["invitee.created", "meeting_recap.created"]);
    Mock::given(method("GET"))
        .and(path("/webhook_subscriptions/AAAAAAAAAAAAAAAA"))
        .respond_with(ResponseTemplate::new(200).set_body_json(sub.clone()))
        .mount(&server)
        .await;
    let s = client
        .get_webhook_subscription(&WebhookUri::from("https://api.calendly.com/webhook_subscriptions/AAAAAAAAAAAAAAAA"))
        .await
        .unwrap();
    assert_eq!(s.state, SubscriptionState::Unknown("paused".into()));
    assert_eq!(s.scope, WebhookScope::Unknown("team".into()));
    assert_eq!(s.events[1], WebhookEvent::Unknown("meeting_recap.created".into()));
    assert_eq!(serde_json::to_value(&s).unwrap(), sub["resource"], "serializes back to the same JSON");
}

/// Someone subscribes the URL between our list and our create: Calendly answers 409 "Hook with this url already
/// exists" (tests/fixtures/error_409_already_exists.json); `ensure` adopts the listed subscription as `Adopted`, its
/// signing key unknown (never `Kept`, which would tell the caller to trust its stored key).
#[tokio::test]
async fn a_409_race_is_adopted_with_an_unknown_key() {
    use calendly_api::webhook_subscriptions::EnsureAction;
    let (server, client) = setup().await;
    let mut listed = last_page("webhook_subscriptions_list.json");
    let url = listed["collection"][0]["callback_url"].as_str().unwrap().to_owned();
    let empty = json!({"collection": [], "pagination": {"count": 0, "next_page": null, "previous_page": null, "next_page_token": null, "previous_page_token": null}});
    Mock::given(method("GET"))
        .and(path("/webhook_subscriptions"))
        .respond_with(ResponseTemplate::new(200).set_body_json(empty))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    listed["collection"].as_array_mut().unwrap().truncate(1);
    Mock::given(method("GET"))
        .and(path("/webhook_subscriptions"))
        .respond_with(ResponseTemplate::new(200).set_body_json(listed))
        .with_priority(2)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/webhook_subscriptions"))
        .respond_with(ResponseTemplate::new(409).set_body_json(fixture("error_409_already_exists.json")))
        .expect(1)
        .mount(&server)
        .await;
    let events: Vec<WebhookEvent> = serde_json::from_value(json!(["invitee.created", "invitee.canceled"])).unwrap();
    let req =
        CreateWebhookSubscription::new(url.clone(), events, OrganizationUri::from(ORG), WebhookScope::Organization);
    let e = client.ensure_webhook_subscription(&req).await.unwrap();
    assert_eq!(e.action, EnsureAction::Adopted);
    assert!(e.signing_key.is_none(), "the adopted subscription's key is not ours");
    assert_eq!(e.subscription.callback_url, url);
    server.verify().await;
}

/// Fields Calendly sends as `null` now and then (api-notes/calendly.md, the example bodies: `null` for many
/// invitee fields) must not fail a whole page: a `null` list or flag reads as empty / `false`.
#[test]
fn null_lists_and_flags_decode() {
    let mut invitee = fixture("invitee.json")["resource"].clone();
    invitee["questions_and_answers"] = Value::Null;
    let inv: calendly_api::invitees::Invitee = serde_json::from_value(invitee).unwrap();
    assert!(inv.questions_and_answers.is_empty());
    let mut page = last_page("event_types_list.json");
    page["collection"][0]["active"] = Value::Null;
    page["collection"][0]["custom_questions"] = Value::Null;
    let et: calendly_api::event_types::EventType = serde_json::from_value(page["collection"][0].clone()).unwrap();
    assert!(!et.active);
    assert!(et.custom_questions.is_empty());
}

/// `list_*` is one page (issue 21's shape): the `page_token` goes on the query and the page's
/// `pagination.next_page_token` continues; nothing more is fetched. Pagination shape from the OpenAPI
/// `Pagination` schema (api-notes/calendly.md §1 "Pagination").
#[tokio::test]
async fn list_is_one_page_with_its_cursor() {
    let (server, client) = setup().await;
    let mut v = fixture("scheduled_events_list.json");
    v["pagination"]["next_page_token"] = json!("tok3");
    Mock::given(method("GET"))
        .and(path("/scheduled_events"))
        .and(auth())
        .and(query_param("user", "https://api.calendly.com/users/U"))
        .and(query_param("count", "10"))
        .and(query_param("page_token", "tok2"))
        .respond_with(ResponseTemplate::new(200).set_body_json(v))
        .expect(1)
        .mount(&server)
        .await;
    let page = client
        .list_scheduled_events(
            &ListScheduledEvents::for_user("https://api.calendly.com/users/U".into()).count(10),
            Some("tok2"),
        )
        .await
        .unwrap();
    assert_eq!(page.collection.len(), 1);
    assert_eq!(page.pagination.next_page_token.as_deref(), Some("tok3"));
    assert_eq!(page.collection[0].name.as_deref(), Some("15 Minute Meeting"));
}

/// The shared builder vocabulary: `token` takes a `&str`, `rate_budget` any `RateBudget`.
#[tokio::test]
async fn builder_takes_str_token_and_rate_budget() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/users/me"))
        .and(auth())
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture("users_me.json")))
        .expect(1)
        .mount(&server)
        .await;
    let budget = std::sync::Arc::new(api_core::RateLimiter::unlimited());
    let client = Client::builder().token(TOKEN).base_url(server.uri()).rate_budget(budget.clone()).build().unwrap();
    client.me().await.unwrap();
    // the client draws from the budget passed in: a hold recorded on it is what the client sees
    use api_core::RateBudget as _;
    budget.pause(calendly_api::client::RATE_KEY, std::time::Duration::from_secs(30)).await.unwrap();
    assert!(client.budget().held(calendly_api::client::RATE_KEY).await.unwrap().is_some());
}
