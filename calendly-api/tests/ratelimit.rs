//! Calendly's rate-limit rules on a paused tokio clock, through a scripted transport (no sockets, no wall-clock
//! waits): pause when `X-RateLimit-Remaining` hits 0, wait `X-RateLimit-Reset` after a 429, for GET and POST.

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex},
    time::Duration,
};

use api_core::{RawResponse, Request, RetryPolicy, Token, Transport, TransportError};
use calendly_api::{
    Client, WebhookEvent,
    webhook_subscriptions::{CreateOutcome, CreateWebhookSubscription, WebhookScope},
};
use futures::future::BoxFuture;
use http::{HeaderMap, StatusCode};
use tokio::time::Instant;

#[derive(Debug, Default)]
struct Scripted {
    responses: Mutex<VecDeque<RawResponse>>,
    calls: Mutex<Vec<(Instant, http::Method, String)>>,
}

impl Transport for Scripted {
    fn send(&self, url: url::Url, request: Request) -> BoxFuture<'_, Result<RawResponse, TransportError>> {
        self.calls.lock().unwrap().push((Instant::now(), request.method.clone(), url.path().to_owned()));
        let r = self.responses.lock().unwrap().pop_front().expect("a scripted response");
        Box::pin(async move { Ok(r) })
    }
}

fn resp(status: u16, remaining: u32, reset: u64, body: &str) -> RawResponse {
    let mut h = HeaderMap::new();
    h.insert("x-ratelimit-limit", "500".parse().unwrap());
    h.insert("x-ratelimit-remaining", remaining.to_string().parse().unwrap());
    h.insert("x-ratelimit-reset", reset.to_string().parse().unwrap());
    h.insert("content-type", "application/json".parse().unwrap());
    RawResponse { status: StatusCode::from_u16(status).unwrap(), headers: h, body: body.to_owned().into() }
}

const ME: &str = r#"{"resource":{"uri":"https://api.calendly.com/users/U","current_organization":"https://api.calendly.com/organizations/O"}}"#;
const TOO_MANY: &str = r#"{"title":"Too Many Requests","message":"You have exceeded the rate limit."}"#;

fn client(script: Vec<RawResponse>) -> (Client, Arc<Scripted>) {
    let t = Arc::new(Scripted { responses: Mutex::new(script.into()), calls: Mutex::default() });
    let c = Client::builder()
        .token(Token::new("t"))
        .transport(t.clone())
        .retry_policy(RetryPolicy { base_delay: Duration::from_millis(1), ..RetryPolicy::default() })
        .build()
        .unwrap();
    (c, t)
}

fn gaps(t: &Scripted) -> Vec<Duration> {
    let calls = t.calls.lock().unwrap();
    calls.windows(2).map(|w| w[1].0 - w[0].0).collect()
}

#[tokio::test(start_paused = true)]
async fn pauses_when_remaining_hits_zero() {
    let (c, t) = client(vec![resp(200, 0, 42, ME), resp(200, 499, 60, ME)]);
    c.me().await.unwrap();
    assert!(c.last_rate_limit().unwrap().exhausted());
    c.me().await.unwrap();
    let g = gaps(&t);
    assert!(g[0] >= Duration::from_secs(42), "waited for X-RateLimit-Reset: {g:?}");
    assert!(g[0] < Duration::from_secs(44), "{g:?}");
}

#[tokio::test(start_paused = true)]
async fn does_not_pause_while_remaining() {
    let (c, t) = client(vec![resp(200, 1, 42, ME), resp(200, 0, 41, ME)]);
    c.me().await.unwrap();
    c.me().await.unwrap();
    assert!(gaps(&t)[0] < Duration::from_secs(1));
}

#[tokio::test(start_paused = true)]
async fn on_429_waits_until_reset_then_retries() {
    let (c, t) = client(vec![resp(429, 0, 30, TOO_MANY), resp(200, 499, 60, ME)]);
    let me = c.me().await.unwrap();
    assert_eq!(me.uri.uuid(), "U");
    let g = gaps(&t);
    assert_eq!(t.calls.lock().unwrap().len(), 2);
    assert!(g[0] >= Duration::from_secs(30) && g[0] < Duration::from_secs(32), "{g:?}");
}

#[tokio::test(start_paused = true)]
async fn a_429_on_post_is_retried_too_and_pauses_other_requests() {
    let sub = r#"{"resource":{"uri":"https://api.calendly.com/webhook_subscriptions/W","callback_url":"https://x","state":"active","events":["invitee.created"],"scope":"organization","organization":"https://api.calendly.com/organizations/O"}}"#;
    let (c, t) = client(vec![resp(429, 0, 20, TOO_MANY), resp(201, 10, 20, sub), resp(200, 9, 19, ME)]);
    let req = CreateWebhookSubscription::new(
        "https://x",
        [WebhookEvent::InviteeCreated],
        "https://api.calendly.com/organizations/O".into(),
        WebhookScope::Organization,
    );
    let c2 = c.clone();
    let start = Instant::now();
    let (created, me) = tokio::join!(c.create_webhook_subscription(&req), async {
        // starts after the 429 was seen: the shared limiter holds it until the reset
        tokio::time::sleep(Duration::from_millis(1)).await;
        c2.me().await
    });
    assert!(matches!(created.unwrap(), CreateOutcome::Created(_)));
    me.unwrap();
    let calls = t.calls.lock().unwrap();
    assert_eq!(calls.len(), 3);
    assert!(calls[1].0 - start >= Duration::from_secs(20));
    assert!(calls[2].0 - start >= Duration::from_secs(20), "the GET waited for the pause too");
}

#[tokio::test(start_paused = true)]
async fn gives_up_when_throttled_beyond_retry_budget() {
    let script = (0..5).map(|_| resp(429, 0, 60, TOO_MANY)).collect();
    let (c, t) = client(script);
    let e = c.me().await.unwrap_err();
    assert_eq!(e.status(), Some(StatusCode::TOO_MANY_REQUESTS));
    assert_eq!(e.retry_after(), Some(Duration::from_secs(60)), "the engine can reschedule with this");
    assert!(!e.may_have_been_sent());
    assert!(t.calls.lock().unwrap().len() >= 2);
}
