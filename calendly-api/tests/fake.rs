//! The fake, exercised through the crate's own client.
#![cfg(feature = "fake")]

use std::{sync::Arc, time::Duration};

use api_core::{FixedClock, MemoryTokenStore, OAuthSession, Token};
use calendly_api::{
    Client, InviteeUri, Verifier, WebhookEvent, WebhookPayload,
    fake::{Booking, DEFAULT_TOKEN, FakeCalendly, FakeConfig},
    invitees::{InviteeStatus, ListInvitees},
    oauth::CalendlyRefresher,
    scheduled_events::{CancelerType, EventStatus, ListScheduledEvents},
    webhook::RescheduleSide,
    webhook_subscriptions::{
        CreateOutcome, CreateWebhookSubscription, EnsureAction, ListWebhookSubscriptions, SubscriptionState,
        WebhookScope,
    },
};
use chrono::{TimeZone as _, Utc};
use futures::TryStreamExt as _;
use wiremock::{Mock, MockServer, ResponseTemplate, matchers};

const NOW: u64 = 1_790_000_000;

async fn fake() -> (FakeCalendly, FixedClock) {
    let clock = FixedClock::at_unix(NOW);
    let fake =
        FakeCalendly::start_with(FakeConfig { clock: Arc::new(clock.clone()), ..FakeConfig::default() }).await.unwrap();
    (fake, clock)
}

fn at(h: u32) -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, h, 0, 0).unwrap()
}

#[tokio::test]
async fn me_and_event_types() {
    let (fake, _) = fake().await;
    let c = fake.client();
    let me = c.me().await.unwrap();
    assert_eq!(me.uri, fake.user());
    assert_eq!(me.current_organization, Some(fake.organization()));
    let ets: Vec<_> = c
        .stream_event_types(&calendly_api::event_types::ListEventTypes::for_user(me.uri.clone()))
        .try_collect()
        .await
        .unwrap();
    assert_eq!(ets.len(), 1);
    assert_eq!(ets[0].uri, fake.event_type());
    let bad = Client::builder().base_url(fake.base_url().as_str()).token(Token::new("nope")).build().unwrap();
    let err = bad.me().await.unwrap_err();
    assert_eq!(err.status().unwrap().as_u16(), 401);
    assert_eq!(err.body().unwrap().title, "Unauthenticated");
}

#[tokio::test]
async fn book_list_paginate_and_filter() {
    let (fake, _) = fake().await;
    for n in 0..7u32 {
        let _ = fake.book(Booking::new(format!("p{n}@example.com"), format!("Person {n}"), at(n + 1)));
    }
    let c = fake.client();
    let q = ListScheduledEvents::for_organization(fake.organization()).count(3);
    let events: Vec<_> = c.stream_scheduled_events(&q).try_collect().await.unwrap();
    assert_eq!(events.len(), 7);
    assert!(events.windows(2).all(|w| w[0].start_time <= w[1].start_time));
    assert_eq!(fake.server.log.count(&http::Method::GET, "/scheduled_events"), 3, "3 pages of 3, 3, 1");
    let by_email: Vec<_> = c
        .stream_scheduled_events(&ListScheduledEvents::for_user(fake.user()).invitee_email("p4@example.com"))
        .try_collect()
        .await
        .unwrap();
    assert_eq!(by_email.len(), 1);
    assert_eq!(by_email[0].start_time, at(5));
    let windowed: Vec<_> = c
        .stream_scheduled_events(
            &ListScheduledEvents::for_organization(fake.organization()).min_start_time(at(3)).max_start_time(at(5)),
        )
        .try_collect()
        .await
        .unwrap();
    assert_eq!(windowed.len(), 2);
    let invs: Vec<_> = c.stream_invitees(&events[0].uri, &ListInvitees::default()).try_collect().await.unwrap();
    assert_eq!(invs.len(), 1);
    assert_eq!(invs[0].email.as_deref(), Some("p0@example.com"));
    let one = c.get_invitee(&invs[0].uri).await.unwrap();
    assert_eq!(one, invs[0]);
    let ev = c.get_scheduled_event(&events[0].uri).await.unwrap();
    assert_eq!(ev.invitees_counter.unwrap().active, 1);
    // count > 100 is a 400 with details
    let err = c
        .page::<serde_json::Value>(
            "/scheduled_events",
            &[("user".into(), fake.user().to_string()), ("count".into(), "101".into())],
            None,
        )
        .await
        .unwrap_err();
    assert_eq!(err.status().unwrap().as_u16(), 400);
    assert_eq!(err.body().unwrap().details[0].parameter.as_deref(), Some("count"));
}

#[tokio::test]
async fn book_emits_signed_v2_webhook() {
    let (fake, _) = fake().await;
    let sub = fake.subscribe("http://127.0.0.1:9/hook", &[WebhookEvent::InviteeCreated], "key-1");
    let booked = fake.book(Booking::new("jane@example.com", "Jane Doe", at(9)).answer("Company?", "Acme"));
    assert_eq!(booked.webhooks.len(), 1);
    let w = &booked.webhooks[0];
    assert_eq!(w.subscription, sub);
    assert_eq!(fake.outbox().len(), 1);
    let verifier = Verifier::new(Token::new("key-1")).clock(Arc::new(FixedClock::at_unix(NOW + 10)));
    let d = verifier.verify_and_parse(w.signature(), &w.body).unwrap();
    assert_eq!(d.event, WebhookEvent::InviteeCreated);
    assert_eq!(d.created_by, Some(fake.user()));
    let inv = d.invitee().unwrap();
    assert_eq!(inv.uri, booked.invitee.uri);
    assert_eq!(inv.questions_and_answers[0].answer, "Acme");
    let se = inv.scheduled_event.as_ref().unwrap();
    assert_eq!(se.uri, booked.event.uri);
    assert_eq!(se.start_time, at(9));
    // raw shape: v2 envelope, no v1 keys
    let raw: serde_json::Value = serde_json::from_slice(&w.body).unwrap();
    assert!(raw.get("time").is_none());
    assert!(raw["payload"].get("invitee").is_none());
    assert!(raw["payload"]["event"].is_string());
    // wrong key fails
    assert!(
        Verifier::new(Token::new("key-2"))
            .clock(Arc::new(FixedClock::at_unix(NOW)))
            .verify(w.signature(), &w.body)
            .is_err()
    );
}

#[tokio::test]
async fn cancel_via_api_and_reschedule_pair() {
    let (fake, _) = fake().await;
    let _ =
        fake.subscribe("http://127.0.0.1:9/hook", &[WebhookEvent::InviteeCreated, WebhookEvent::InviteeCanceled], "k");
    let a = fake.book(Booking::new("a@example.com", "A", at(1)));
    let b = fake.book(Booking::new("b@example.com", "B", at(2)));
    let _ = fake.take_outbox();
    let c = fake.client();
    let cancellation = c.cancel_event(&a.event.uri, Some("host is sick")).await.unwrap();
    assert_eq!(cancellation.reason.as_deref(), Some("host is sick"));
    assert_eq!(cancellation.canceler_type, Some(CancelerType::Host));
    let again = c.cancel_event(&a.event.uri, None).await.unwrap_err();
    assert_eq!(again.status().unwrap().as_u16(), 403);
    let out = fake.take_outbox();
    assert_eq!(out.len(), 1);
    let d = out[0].parse().unwrap();
    assert!(d.is_plain_cancellation());
    assert_eq!(d.invitee().unwrap().cancellation.as_ref().unwrap().reason.as_deref(), Some("host is sick"));
    assert_eq!(d.invitee().unwrap().scheduled_event.as_ref().unwrap().status, EventStatus::Canceled);
    let canceled: Vec<_> = c
        .stream_scheduled_events(&ListScheduledEvents::for_user(fake.user()).status(EventStatus::Canceled))
        .try_collect()
        .await
        .unwrap();
    assert_eq!(canceled.len(), 1);

    let r = fake.reschedule(&b.invitee.uri, at(5)).unwrap();
    assert_eq!(r.webhooks.len(), 2);
    let first = r.webhooks[0].parse().unwrap();
    let second = r.webhooks[1].parse().unwrap();
    let (Some(RescheduleSide::Canceled(p1)), Some(RescheduleSide::Created(p2))) =
        (first.reschedule(), second.reschedule())
    else {
        panic!("expected canceled then created");
    };
    assert_eq!(p1, p2);
    assert_eq!(p1.old, b.invitee.uri);
    assert_eq!(p1.new, r.new.uri);
    assert!(!first.is_plain_cancellation());
    let old = c.get_invitee(&b.invitee.uri).await.unwrap();
    assert_eq!(old.status, InviteeStatus::Canceled);
    assert!(old.rescheduled);
    assert_eq!(old.rescheduled_to(), Some(&r.new.uri));
}

#[tokio::test]
async fn no_show_via_api() {
    let (fake, _) = fake().await;
    let _ = fake.subscribe(
        "http://127.0.0.1:9/hook",
        &[WebhookEvent::InviteeNoShowCreated, WebhookEvent::InviteeNoShowDeleted],
        "k",
    );
    let b = fake.book(Booking::new("a@example.com", "A", at(1)));
    let c = fake.client();
    let ns = c.mark_no_show(&b.invitee.uri).await.unwrap();
    assert_eq!(ns.invitee.as_ref(), Some(&b.invitee.uri));
    assert_eq!(c.get_no_show(&ns.uri).await.unwrap().uri, ns.uri);
    assert_eq!(c.get_invitee(&b.invitee.uri).await.unwrap().no_show.unwrap().uri, ns.uri);
    c.unmark_no_show(&ns.uri).await.unwrap();
    assert!(c.unmark_no_show(&ns.uri).await.unwrap_err().is_not_found());
    let out = fake.take_outbox();
    let kinds: Vec<_> = out.iter().map(|w| w.event.clone()).collect();
    assert_eq!(kinds, vec![WebhookEvent::InviteeNoShowCreated, WebhookEvent::InviteeNoShowDeleted]);
    let created = out[0].parse().unwrap();
    assert!(created.dedup_key().ends_with(ns.uri.as_str()));
}

#[tokio::test]
async fn subscriptions_lifecycle_and_409() {
    let (fake, _) = fake().await;
    let c = fake.client();
    let org = fake.organization();
    let req = CreateWebhookSubscription::new(
        "https://hooks.example.com/calendly",
        [WebhookEvent::InviteeCreated, WebhookEvent::InviteeCanceled],
        org.clone(),
        WebhookScope::Organization,
    )
    .signing_key(Token::new("k1"));
    let CreateOutcome::Created(sub) = c.create_webhook_subscription(&req).await.unwrap() else { panic!("created") };
    assert_eq!(sub.state, SubscriptionState::Active);
    assert_eq!(fake.subscriptions()[0].signing_key.as_ref().unwrap().expose(), "k1");
    let CreateOutcome::AlreadyExists(body) = c.create_webhook_subscription(&req).await.unwrap() else { panic!("409") };
    assert_eq!(body.message, "Hook with this url already exists");
    let list = ListWebhookSubscriptions::new(org.clone(), WebhookScope::Organization);
    let found = c.find_webhook_subscription(&list, "https://hooks.example.com/calendly").await.unwrap().unwrap();
    assert_eq!(found.uri, sub.uri);
    assert_eq!(c.get_webhook_subscription(&sub.uri).await.unwrap(), sub);
    // ensure: kept, then recreated once disabled
    let e = c.ensure_webhook_subscription(&req).await.unwrap();
    assert_eq!(e.action, EnsureAction::Kept);
    assert!(e.signing_key.is_none());
    fake.set_subscription_state(&sub.uri, SubscriptionState::Disabled).unwrap();
    let deletes_before = fake.server.log.count(&http::Method::DELETE, "/webhook_subscriptions");
    let e =
        c.ensure_webhook_subscription(&CreateWebhookSubscription { signing_key: None, ..req.clone() }).await.unwrap();
    assert_eq!(e.action, EnsureAction::Recreated);
    let key = e.signing_key.unwrap();
    assert_eq!(key.expose().len(), 64);
    assert_ne!(e.subscription.uri, sub.uri);
    // the replacement was created before the old one was deleted: at the other URL (one subscription per URL)
    assert_eq!(e.subscription.callback_url, "https://hooks.example.com/calendly?subscription_rev=1");
    let calls: Vec<String> = fake.server.log.requests().iter().map(|r| format!("{} {}", r.method, r.path)).collect();
    let created = calls.iter().rposition(|c| c == "POST /webhook_subscriptions").unwrap();
    let deleted = calls.iter().rposition(|c| c.starts_with("DELETE /webhook_subscriptions/")).unwrap();
    assert!(created < deleted, "create before delete: {calls:?}");
    assert_eq!(fake.server.log.count(&http::Method::DELETE, "/webhook_subscriptions"), deletes_before + 1);
    assert_eq!(fake.subscriptions().len(), 1);
    assert_eq!(fake.subscriptions()[0].signing_key.as_ref().unwrap().expose(), key.expose());
    // ensuring again keeps the one at the alternate URL; replacing it again moves back to the plain URL
    let again = c.ensure_webhook_subscription(&req).await.unwrap();
    assert_eq!((again.action, again.subscription.uri.clone()), (EnsureAction::Kept, e.subscription.uri.clone()));
    fake.set_subscription_state(&e.subscription.uri, SubscriptionState::Disabled).unwrap();
    let back = c.ensure_webhook_subscription(&req).await.unwrap();
    assert_eq!(back.action, EnsureAction::Recreated);
    assert_eq!(back.subscription.callback_url, "https://hooks.example.com/calendly");
    assert_eq!(fake.subscriptions().len(), 1);
    let e = back;
    assert!(c.delete_webhook_subscription(&e.subscription.uri).await.unwrap());
    assert!(!c.delete_webhook_subscription(&e.subscription.uri).await.unwrap());
    let sample = c.sample_webhook_data(&WebhookEvent::InviteeCreated, &list).await.unwrap();
    assert!(matches!(sample.payload, WebhookPayload::Invitee(_)));
}

/// A subscription created through an OAuth app is signed with the app's key (Calendly generates it; see
/// api-notes/calendly.md, Webhooks): `oauth_app()` sends no key and returns none.
#[tokio::test]
async fn oauth_app_subscriptions_send_no_key_and_a_409_is_adopted() {
    let fake = FakeCalendly::start_with(calendly_api::fake::FakeConfig {
        oauth_app_signing_key: Some("app-key-from-the-developer-portal".into()),
        ..calendly_api::fake::FakeConfig::default()
    })
    .await
    .unwrap();
    let c = fake.client();
    let org = fake.organization();
    let req = CreateWebhookSubscription::new(
        "https://hooks.example.com/calendly",
        [WebhookEvent::InviteeCreated],
        org.clone(),
        WebhookScope::Organization,
    )
    .signing_key(Token::new("ours"))
    .oauth_app();
    assert!(req.to_body().get("signing_key").is_none(), "{}", req.to_body());
    let e = c.ensure_webhook_subscription(&req).await.unwrap();
    assert_eq!(e.action, EnsureAction::Created);
    assert!(e.signing_key.is_none(), "no key of ours: verify with the app's key");
    assert_eq!(fake.subscriptions()[0].signing_key.as_ref().unwrap().expose(), "app-key-from-the-developer-portal");
}

/// The limit is a sliding window on arrival time (api-notes/calendly.md: 500 per user per minute; a fixed window
/// would let a burst at the end of one window and the start of the next through): with 2 per 600 ms, a request
/// 650 ms after the first is admitted (the first has left the window) but the one after it is not (the second is
/// still in it), where a fixed window would have admitted both.
#[tokio::test]
async fn rate_limit_is_a_sliding_window_on_arrival_time() {
    let (fake, _) = fake().await;
    fake.set_rate_limit(2, Duration::from_millis(600));
    let raw = reqwest::Client::new();
    let get = || raw.get(format!("{}users/me", fake.base_url())).bearer_auth(DEFAULT_TOKEN).send();
    let start = tokio::time::Instant::now();
    assert_eq!(get().await.unwrap().status().as_u16(), 200);
    tokio::time::sleep_until(start + Duration::from_millis(300)).await;
    assert_eq!(get().await.unwrap().status().as_u16(), 200);
    tokio::time::sleep_until(start + Duration::from_millis(650)).await;
    let third = get().await.unwrap();
    assert_eq!(third.status().as_u16(), 200, "the first request has left the window");
    assert_eq!(third.headers()["x-ratelimit-remaining"], "0");
    let fourth = get().await.unwrap();
    if start.elapsed() < Duration::from_millis(900) {
        assert_eq!(fourth.status().as_u16(), 429, "the second request is still in the window");
        assert_eq!(fourth.headers()["x-ratelimit-reset"], "1", "until the second request leaves, rounded up");
    } else {
        eprintln!("WARNING: the machine stalled for {:?}; the fourth request's check was not made", start.elapsed());
    }
}

#[tokio::test]
async fn rate_limit_429_then_recovers() {
    let (fake, _) = fake().await;
    fake.set_rate_limit(2, Duration::from_secs(1));
    let c = fake
        .client_builder()
        .token(Token::new(DEFAULT_TOKEN))
        .retry_policy(api_core::RetryPolicy::none())
        .build()
        .unwrap();
    c.me().await.unwrap();
    assert_eq!(c.last_rate_limit().unwrap().remaining, Some(1));
    c.me().await.unwrap();
    assert_eq!(c.last_rate_limit().unwrap().remaining, Some(0));
    // the client paused itself until the reset, so the third call waits instead of hitting a 429
    let started = std::time::Instant::now();
    c.me().await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(500), "waited for the window to reset");
    assert_eq!(fake.server.log.count(&http::Method::GET, "/users/me"), 3);
    // a raw client without the pause sees the fake's 429
    let raw = reqwest::Client::new();
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let r = raw.get(format!("{}users/me", fake.base_url())).bearer_auth(DEFAULT_TOKEN).send().await.unwrap();
        statuses.push((
            r.status().as_u16(),
            r.headers().get("x-ratelimit-remaining").unwrap().to_str().unwrap().to_owned(),
        ));
    }
    assert_eq!(statuses.last().unwrap().0, 429, "{statuses:?}");
    assert_eq!(statuses.last().unwrap().1, "0");
}

#[tokio::test]
async fn injected_faults_are_retried() {
    let (fake, _) = fake().await;
    let c = fake.client();
    fake.server.faults.inject(
        Some(http::Method::GET),
        "/users/me",
        api_core::fake::Fault::json(503, &serde_json::json!({"title": "Service Unavailable", "message": "try later"})),
        2,
    );
    c.me().await.unwrap();
    assert_eq!(fake.server.log.count(&http::Method::GET, "/users/me"), 3);
    fake.server.faults.inject(
        None,
        "/users/me",
        api_core::fake::Fault::json(500, &serde_json::json!({"title": "Internal Server Error", "message": "boom"})),
        10,
    );
    let e = c.me().await.unwrap_err();
    assert_eq!(e.body().unwrap().title, "Internal Server Error");
    assert!(e.is_retryable());
}

#[tokio::test]
async fn auto_delivery_posts_signed_webhooks() {
    let receiver = MockServer::start().await;
    Mock::given(matchers::method("POST"))
        .and(matchers::path("/hook"))
        .and(matchers::header_exists("calendly-webhook-signature"))
        .respond_with(ResponseTemplate::new(200))
        .expect(2)
        .mount(&receiver)
        .await;
    let clock = FixedClock::at_unix(NOW);
    let fake =
        FakeCalendly::start_with(FakeConfig { auto_deliver: true, clock: Arc::new(clock), ..FakeConfig::default() })
            .await
            .unwrap();
    let _ = fake.subscribe(
        &format!("{}/hook", receiver.uri()),
        &[WebhookEvent::InviteeCreated, WebhookEvent::InviteeCanceled],
        "k",
    );
    let b = fake.book(Booking::new("a@example.com", "A", at(1)));
    let _ = fake.cancel(&b.invitee.uri, Some("no longer needed"), CancelerType::Invitee).unwrap();
    let log = fake.wait_for_deliveries(2, Duration::from_secs(5)).await;
    assert_eq!(log.len(), 2);
    assert!(log.iter().all(|d| d.result == Ok(200)));
    assert!(fake.outbox().is_empty());
    let reqs = receiver.received_requests().await.unwrap();
    let verifier = Verifier::new(Token::new("k")).clock(Arc::new(FixedClock::at_unix(NOW)));
    for r in &reqs {
        let h = r.headers.get("calendly-webhook-signature").unwrap().to_str().unwrap();
        verifier.verify_and_parse(Some(h), &r.body).unwrap();
    }
    let d = verifier
        .verify_and_parse(
            Some(reqs[1].headers.get("calendly-webhook-signature").unwrap().to_str().unwrap()),
            &reqs[1].body,
        )
        .unwrap();
    let inv = d.invitee().unwrap();
    assert_eq!(inv.cancellation.as_ref().unwrap().canceler_type, Some(CancelerType::Invitee));
    assert_eq!(inv.cancellation.as_ref().unwrap().canceled_by.as_deref(), Some("A"));
}

#[tokio::test]
async fn user_scope_only_gets_own_events() {
    let (fake, _) = fake().await;
    let other = fake.add_user("Bob Host", "bob@example.com");
    let et = fake.add_event_type("Bob's call", 45, Some(&other));
    let c = fake.client();
    let req = CreateWebhookSubscription::new(
        "https://h.example.com/u",
        [WebhookEvent::InviteeCreated],
        fake.organization(),
        WebhookScope::User,
    )
    .user(other.clone())
    .signing_key(Token::new("u"));
    assert!(matches!(c.create_webhook_subscription(&req).await.unwrap(), CreateOutcome::Created(_)));
    assert!(fake.book(Booking::new("x@example.com", "X", at(1))).webhooks.is_empty());
    let b = fake.book(Booking::new("y@example.com", "Y", at(2)).event_type(et));
    assert_eq!(b.webhooks.len(), 1);
    assert_eq!(b.event.end_time - b.event.start_time, chrono::Duration::minutes(45));
    let members: Vec<_> = c
        .stream_memberships(&calendly_api::users::ListMemberships::for_organization(fake.organization()))
        .try_collect()
        .await
        .unwrap();
    assert_eq!(members.len(), 2);
}

#[tokio::test]
async fn oauth_refresh_rotates_single_use_tokens() {
    let (fake, _) = fake().await;
    let initial = fake.issue_oauth_tokens();
    let first_refresh = initial.refresh_token.clone().unwrap();
    let transport = api_core::ReqwestTransport::new(api_core::TransportConfig::new("test")).unwrap();
    let refresher =
        CalendlyRefresher::with_transport(fake.base_url().as_str(), "cid", Token::new("secret"), Arc::new(transport))
            .unwrap();
    let store = Arc::new(MemoryTokenStore::new(None));
    let session = Arc::new(OAuthSession::new(store.clone(), Arc::new(refresher.clone())));
    session.install(initial.clone()).await.unwrap();
    let c = fake.client_builder().oauth(session).build().unwrap();
    assert!(!format!("{c:?}").contains(initial.access_token.expose()), "Debug never shows tokens");
    assert!(!format!("{c:?}").contains(first_refresh.expose()));
    fake.set_user_timezone(&fake.user(), "Europe/Madrid").unwrap();
    assert_eq!(c.me().await.unwrap().timezone.as_deref(), Some("Europe/Madrid"));
    // the access token is revoked: the client refreshes once and retries
    fake.revoke_token(initial.access_token.expose());
    c.me().await.unwrap();
    let stored = api_core::TokenStore::load(store.as_ref()).await.unwrap().unwrap();
    assert_ne!(stored.refresh_token.as_ref().unwrap().expose(), first_refresh.expose(), "rotated and stored");
    // the old refresh token is single-use
    let err = api_core::Refresher::refresh(&refresher, &first_refresh).await.unwrap_err();
    assert!(matches!(err, api_core::AuthError::Revoked(_)), "{err:?}");
    assert_eq!(fake.server.log.count(&http::Method::POST, "/oauth/token"), 2);
    let _ = InviteeUri::from("x");
}

#[tokio::test]
async fn reschedule_pair_in_created_first_order() {
    let (fake, _) = fake().await;
    let _ =
        fake.subscribe("http://127.0.0.1:9/hook", &[WebhookEvent::InviteeCreated, WebhookEvent::InviteeCanceled], "k");
    let b = fake.book(Booking::new("a@example.com", "A", at(1)));
    let r = fake.reschedule_ordered(&b.invitee.uri, at(3), true).unwrap();
    let kinds: Vec<_> = r.webhooks.iter().map(|w| w.event.clone()).collect();
    assert_eq!(kinds, [WebhookEvent::InviteeCreated, WebhookEvent::InviteeCanceled]);
    assert_eq!(
        r.webhooks[0].parse().unwrap().reschedule().unwrap().pair(),
        r.webhooks[1].parse().unwrap().reschedule().unwrap().pair()
    );
    assert_eq!(r.event.start_time, at(3));
    assert_eq!(r.event.end_time, at(3) + chrono::Duration::minutes(30));
    // the old invitee cannot be rescheduled again
    assert!(fake.reschedule(&b.invitee.uri, at(4)).is_err());
}

#[tokio::test]
async fn forged_and_stale_copies_and_disabled_subscriptions() {
    let (fake, _) = fake().await;
    let sub = fake.subscribe("http://127.0.0.1:9/hook", &[WebhookEvent::InviteeCreated], "k");
    let w = fake.book(Booking::new("a@example.com", "A", at(1))).webhooks.remove(0);
    let v = Verifier::new(Token::new("k")).clock(Arc::new(FixedClock::at_unix(NOW)));
    v.verify(w.signature(), &w.body).unwrap();
    v.verify_headers(&w.header_map(), &w.body).unwrap();
    assert_eq!(w.header("content-type"), Some("application/json; charset=utf-8"));
    assert!(v.verify(w.forged().signature(), &w.body).is_err());
    // older than Calendly's 24 h of retries (and the default window's hour of margin)
    let stale = w.resigned("k", i64::try_from(NOW).unwrap() - 26 * 3600);
    assert!(matches!(v.verify(stale.signature(), &stale.body), Err(api_core::SignatureError::Expired { .. })));
    fake.set_subscription_state(&sub, SubscriptionState::Disabled).unwrap();
    assert!(fake.book(Booking::new("b@example.com", "B", at(2))).webhooks.is_empty(), "disabled: nothing delivered");
}

#[tokio::test]
async fn failing_receiver_gets_subscription_disabled() {
    let receiver = MockServer::start().await;
    Mock::given(matchers::method("POST")).respond_with(ResponseTemplate::new(500)).expect(2).mount(&receiver).await;
    let fake = FakeCalendly::start_with(FakeConfig { disable_after_failures: Some(2), ..FakeConfig::default() })
        .await
        .unwrap();
    let sub = fake.subscribe(&format!("{}/hook", receiver.uri()), &[WebhookEvent::InviteeCreated], "k");
    let w = fake.book(Booking::new("a@example.com", "A", at(1))).webhooks.remove(0);
    assert_eq!(fake.deliver(&w).await, Ok(500));
    assert_eq!(fake.subscriptions()[0].subscription.state, SubscriptionState::Active);
    let recs = fake.deliver_pending().await;
    assert_eq!(recs[0].result, Ok(500));
    let s = fake.client().get_webhook_subscription(&sub).await.unwrap();
    assert_eq!(s.state, SubscriptionState::Disabled);
}

#[tokio::test]
async fn drop_after_commit_on_cancel() {
    let (fake, _) = fake().await;
    let b = fake.book(Booking::new("a@example.com", "A", at(1)));
    fake.server.faults.inject(
        Some(http::Method::POST),
        "/scheduled_events/",
        api_core::fake::Fault::DropAfterCommit,
        1,
    );
    let c = fake.client();
    let e = c.cancel_event(&b.event.uri, Some("x")).await.unwrap_err();
    assert!(e.may_have_been_sent());
    assert_eq!(c.get_scheduled_event(&b.event.uri).await.unwrap().status, EventStatus::Canceled, "it took effect");
}

/// Issue 23: single-use scheduling links through the client (calendly.yaml "Create Single-Use Scheduling Link":
/// `max_event_count` 1, `owner_type` `EventType`); an unknown event type is a 404.
#[tokio::test]
async fn fake_serves_scheduling_links() {
    let (fake, _) = fake().await;
    let c = fake.client();
    let link = c.create_scheduling_link(&fake.event_type()).await.unwrap();
    assert!(link.booking_url.starts_with("https://calendly.com/d/"), "{}", link.booking_url);
    assert!(link.booking_url.ends_with("/intro-call"), "{}", link.booking_url);
    assert_eq!(link.owner.as_ref(), Some(&fake.event_type()));
    assert_eq!(fake.scheduling_links(), vec![link]);
    let unknown = calendly_api::EventTypeUri::from_uuid(fake.base_url(), "nope");
    let err = c.create_scheduling_link(&unknown).await.unwrap_err();
    assert!(err.is_not_found(), "{err}");
    // the fake refuses what Calendly's schema refuses
    let raw = reqwest::Client::new();
    let r = raw
        .post(format!("{}scheduling_links", fake.base_url()))
        .bearer_auth(DEFAULT_TOKEN)
        .json(&serde_json::json!({"max_event_count": 2, "owner": fake.event_type(), "owner_type": "EventType"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["details"][0]["parameter"], "max_event_count");
}

/// Issue 23: `POST /invitees` books through the Scheduling API: the meeting exists, `scheduling_method` is `api`,
/// subscribers get `invitee.created`; what Calendly requires is checked (a past start is a 400).
#[tokio::test]
async fn fake_serves_invitee_creation() {
    use calendly_api::invitees::{CreateInvitee, NewInvitee};
    let (fake, _) = fake().await;
    let _sub = fake.subscribe("http://127.0.0.1:9/hooks", &[WebhookEvent::InviteeCreated], "k");
    let c = fake.client();
    let booking = CreateInvitee::new(
        fake.event_type(),
        at(15),
        NewInvitee::with_split_name("ada@example.com", "Ada", Some("Lovelace".into()), "Europe/London"),
    )
    .answer("Company?", "Analytical Engines");
    let inv = c.create_invitee(&booking).await.unwrap();
    assert_eq!(inv.name.as_deref(), Some("Ada Lovelace"));
    assert_eq!(inv.scheduling_method.as_deref(), Some("api"));
    assert_eq!(inv.questions_and_answers[0].answer, "Analytical Engines");
    let ev = c.get_scheduled_event(&inv.event_uri().unwrap()).await.unwrap();
    assert_eq!(ev.start_time, at(15));
    assert_eq!(ev.end_time, at(15) + chrono::Duration::minutes(30));
    let out = fake.take_outbox();
    assert_eq!(out.len(), 1);
    let d = out[0].parse().unwrap();
    let WebhookPayload::Invitee(p) = &d.payload else { panic!("{d:?}") };
    assert_eq!(p.uri, inv.uri);
    let past = CreateInvitee::new(
        fake.event_type(),
        Utc.timestamp_opt(i64::try_from(NOW).unwrap() - 60, 0).unwrap(),
        NewInvitee::new("x@example.com", "X", "UTC"),
    );
    let err = c.create_invitee(&past).await.unwrap_err();
    let calendly_api::Error::Api(api) = &err else { panic!("{err:?}") };
    assert_eq!(api.body.as_ref().unwrap().details[0].parameter.as_deref(), Some("start_time"));
}

/// Issue 23: `POST /invitees` has its own limits (paid non-Enterprise: 10/min, 50/h, 100/day, api-notes/calendly.md
/// §1), enforced like the general one: sliding windows on arrival, every window at once, 429 with the refusing
/// window's `X-RateLimit-Limit` and `Reset`. Scaled down to 2 per 400 ms and 3 per 1200 ms so the test runs in a
/// second.
#[tokio::test]
async fn fake_invitee_creation_has_its_own_strict_limits() {
    let (fake, _) = fake().await;
    assert_eq!(calendly_api::fake::paid_invitee_create_limits()[0], (10, Duration::from_secs(60)));
    fake.set_invitee_create_limits(vec![(2, Duration::from_millis(400)), (3, Duration::from_millis(1200))]);
    let raw = reqwest::Client::new();
    // a different free slot each time (the fake refuses a taken one)
    let slot = std::sync::atomic::AtomicU32::new(0);
    let post = || {
        let n = slot.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let body = serde_json::json!({
            "event_type": fake.event_type(), "start_time": format!("2026-12-01T{:02}:00:00Z", 9 + n),
            "invitee": {"email": "a@example.com", "name": "A", "timezone": "UTC"}
        });
        raw.post(format!("{}invitees", fake.base_url())).bearer_auth(DEFAULT_TOKEN).json(&body).send()
    };
    let start = tokio::time::Instant::now();
    let mut created = 0;
    let mut status = |r: &reqwest::Response| {
        created += usize::from(r.status().as_u16() == 201);
        r.status().as_u16()
    };
    assert_eq!(status(&post().await.unwrap()), 201);
    assert_eq!(status(&post().await.unwrap()), 201);
    let third = post().await.unwrap();
    let third_status = status(&third);
    if start.elapsed() < Duration::from_millis(350) {
        assert_eq!(third_status, 429, "2 per 400 ms");
        assert_eq!(third.headers()["x-ratelimit-limit"], "2");
        assert_eq!(third.headers()["x-ratelimit-reset"], "1");
    }
    tokio::time::sleep_until(start + Duration::from_millis(450)).await;
    let fourth = post().await.unwrap();
    let fourth_status = status(&fourth);
    tokio::time::sleep_until(start + Duration::from_millis(900)).await;
    let fifth = post().await.unwrap();
    let fifth_status = status(&fifth);
    if start.elapsed() < Duration::from_millis(1150) && third_status == 429 {
        assert_eq!(fourth_status, 201, "the short window has passed");
        assert_eq!(fifth_status, 429, "3 per 1200 ms: all three still inside");
        assert_eq!(fifth.headers()["x-ratelimit-limit"], "3");
    } else {
        eprintln!("WARNING: the machine stalled for {:?}; the window checks were not made", start.elapsed());
    }
    assert_eq!(fake.scheduled_events().len(), created, "refused requests book nothing");
}

/// Issue 23: the agent-booking loop against the fake — available times (7-day rule enforced server-side too, as
/// calendly.yaml states it), book one through `POST /invitees`, and the slot is gone; a taken slot is refused.
#[tokio::test]
async fn fake_available_times_then_book() {
    use calendly_api::{
        event_types::ListAvailableTimes,
        invitees::{CreateInvitee, NewInvitee},
    };
    let (fake, _) = fake().await;
    let c = fake.client();
    // Tuesday 2026-12-01 .. Wednesday: 16 half-hour slots a day from 09:00 UTC
    let q = ListAvailableTimes::new(fake.event_type(), at(0), at(0) + chrono::Duration::days(2));
    let before = c.list_event_type_available_times(&q).await.unwrap();
    assert_eq!(before.len(), 32);
    assert_eq!(before[0].start_time, at(9));
    let chosen = before[3].start_time;
    c.create_invitee(&CreateInvitee::new(fake.event_type(), chosen, NewInvitee::new("b@example.com", "B", "UTC")))
        .await
        .unwrap();
    let after = c.list_event_type_available_times(&q).await.unwrap();
    assert_eq!(after.len(), 31);
    assert!(after.iter().all(|t| t.start_time != chosen));
    let again = c
        .create_invitee(&CreateInvitee::new(fake.event_type(), chosen, NewInvitee::new("c@example.com", "C", "UTC")))
        .await
        .unwrap_err();
    assert_eq!(again.status().map(|s| s.as_u16()), Some(400));
    // the fake refuses a range over 7 days like Calendly (the client refuses it before sending)
    let raw = reqwest::Client::new();
    let r = raw
        .get(format!("{}event_type_available_times", fake.base_url()))
        .query(&[
            ("event_type", fake.event_type().as_str()),
            ("start_time", "2026-12-01T00:00:00Z"),
            ("end_time", "2026-12-08T00:00:01Z"),
        ])
        .bearer_auth(DEFAULT_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
}
