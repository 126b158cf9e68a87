//! After a 429 or the HTML 403 ban page, later calls must not sleep inside the client for Kommo's hold-off (60 s /
//! 15 min by default), outside every caller deadline: they fail fast with [`Error::HeldOff`] carrying the remaining
//! wait, or wait only up to [`kommo_api::ClientBuilder::max_wait`].
//!
//! Vendor facts (../shared/api-notes/kommo.md §2): the 429 body is HTML from the gateway with no documented
//! `Retry-After` (amocrm-api-php #526, PR #517); the ban is a 403 nginx HTML page (#434), lifted only by waiting (or
//! support, #318). Every test runs on tokio's paused clock against a scripted transport (no network, no wall clock).

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use api_core::{RawResponse, Request, Transport, TransportError};
use futures::future::BoxFuture;
use http::{HeaderMap, StatusCode};
use kommo_api::{Client, Error, LeadId, error::HoldCause};
use tokio::time::Instant;
use url::Url;

/// Answers the queued statuses in order (then 200 with an account body) and records when each request went out.
#[derive(Debug, Default)]
struct Script {
    queue: Mutex<Vec<(u16, &'static str)>>,
    sent: Mutex<Vec<Instant>>,
}

impl Script {
    fn new(queue: Vec<(u16, &'static str)>) -> Arc<Self> {
        Arc::new(Self { queue: Mutex::new(queue), sent: Mutex::default() })
    }
    fn sent(&self) -> usize {
        self.sent.lock().unwrap().len()
    }
}

impl Transport for Script {
    fn send(&self, _url: Url, _request: Request) -> BoxFuture<'_, Result<RawResponse, TransportError>> {
        Box::pin(async move {
            self.sent.lock().unwrap().push(Instant::now());
            let mut q = self.queue.lock().unwrap();
            let (status, body) =
                if q.is_empty() { (200, r#"{"id":1,"name":"x","subdomain":"x"}"#) } else { q.remove(0) };
            Ok(RawResponse {
                status: StatusCode::from_u16(status).unwrap(),
                headers: HeaderMap::new(),
                body: body.into(),
            })
        })
    }
}

// the gateway's pages, as the notes describe them: HTML, no JSON, no Retry-After
const HTML_429: &str = "<html><head><title>429 Too Many Requests</title></head><body><center><h1>429 Too Many Requests</h1></center><hr><center>nginx</center></body></html>";
const HTML_403: &str = "<html><head><title>403 Forbidden</title></head><body><center><h1>403 Forbidden</h1></center><hr><center>nginx</center></body></html>";

fn client(script: &Arc<Script>) -> kommo_api::ClientBuilder {
    Client::builder().base_url("https://sub.kommo.com").long_lived_token("t").transport(script.clone())
}

#[tokio::test(start_paused = true)]
async fn after_a_429_later_calls_fail_fast_with_the_remaining_wait() {
    let script = Script::new(vec![(429, HTML_429)]);
    let c = client(&script).build().unwrap();
    let start = Instant::now();
    let e = c.leads().get(LeadId(1), &[]).await.unwrap_err();
    assert!(matches!(e, Error::Throttled { .. }), "{e:?}");
    assert_eq!(e.retry_after(), Some(Duration::from_secs(60)));

    tokio::time::advance(Duration::from_secs(20)).await;
    let clone = c.clone(); // clones share the hold
    let before = Instant::now();
    let e = clone.account(&[]).await.unwrap_err();
    assert_eq!(Instant::now(), before, "no sleep inside the client");
    assert!(matches!(e, Error::HeldOff { cause: HoldCause::Throttled, .. }), "{e:?}");
    assert_eq!(e.retry_after(), Some(Duration::from_secs(40)), "the remaining wait, not the whole backoff");
    assert_eq!(e.class(), api_core::ErrorClass::Throttled);
    assert!(e.class().is_retryable());
    assert!(!e.may_have_been_sent());
    assert_eq!(script.sent(), 1, "nothing sent while held");

    // once the hold has passed, requests go out again
    tokio::time::advance(Duration::from_secs(40)).await;
    c.account(&[]).await.unwrap();
    assert_eq!(script.sent(), 2);
    assert_eq!(Instant::now() - start, Duration::from_secs(60));
}

#[tokio::test(start_paused = true)]
async fn after_the_ban_page_later_calls_fail_fast_for_fifteen_minutes() {
    let script = Script::new(vec![(403, HTML_403)]);
    let c = client(&script).build().unwrap();
    let e = c.account(&[]).await.unwrap_err();
    assert!(matches!(e, Error::Banned { .. }), "{e:?}");
    assert_eq!(e.retry_after(), Some(Duration::from_secs(15 * 60)));
    tokio::time::advance(Duration::from_secs(5 * 60)).await;
    let before = Instant::now();
    let e = c.leads().get(LeadId(1), &[]).await.unwrap_err();
    assert_eq!(Instant::now(), before);
    assert!(matches!(e, Error::HeldOff { cause: HoldCause::Banned, .. }), "{e:?}");
    assert_eq!(e.retry_after(), Some(Duration::from_secs(10 * 60)));
    assert_eq!(script.sent(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_hold_within_max_wait_is_waited_out() {
    let script = Script::new(vec![(429, HTML_429)]);
    let c = client(&script).max_wait(Duration::from_secs(90)).build().unwrap();
    let start = Instant::now();
    assert!(matches!(c.account(&[]).await.unwrap_err(), Error::Throttled { .. }));
    c.account(&[]).await.unwrap();
    let sent = script.sent.lock().unwrap().clone();
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[1] - start, Duration::from_secs(60), "waited exactly the hold, then sent");
}

#[tokio::test(start_paused = true)]
async fn the_default_max_wait_is_short() {
    let script = Script::new(vec![(429, HTML_429)]);
    let c = client(&script).throttle_backoff(Duration::from_millis(800)).build().unwrap();
    assert!(matches!(c.account(&[]).await.unwrap_err(), Error::Throttled { .. }));
    // a hold shorter than the default max_wait (1 s) is waited out rather than failed
    let start = Instant::now();
    c.account(&[]).await.unwrap();
    assert_eq!(Instant::now() - start, Duration::from_millis(800));
    assert!(kommo_api::client::DEFAULT_MAX_WAIT <= Duration::from_secs(1));
}

/// Two clients built apart (as in two processes) drawing from one budget: the budget spaces their requests
/// together, and one's 429 holds the other off without a request (the store-backed budget of sync-core does the
/// same across processes; here an in-process `RateLimiter` stands in for it).
#[tokio::test(start_paused = true)]
async fn clients_sharing_a_budget_share_its_spacing_and_holds() {
    use api_core::{RateBudget, RateLimiter, Rule};
    let budget: Arc<dyn RateBudget> =
        Arc::new(RateLimiter::new([Rule::Spacing { per: 7, period: Duration::from_millis(1100) }]));
    let script_a = Script::new(vec![]);
    let script_b = Script::new(vec![]);
    let a = client(&script_a).rate_budget(budget.clone()).build().unwrap();
    let b = client(&script_b).rate_budget(budget.clone()).build().unwrap();
    let start = Instant::now();
    let (ra, rb) = tokio::join!(
        async {
            for _ in 0..7 {
                a.account(&[]).await.unwrap();
            }
        },
        async {
            for _ in 0..7 {
                b.account(&[]).await.unwrap();
            }
        }
    );
    let ((), ()) = (ra, rb);
    let mut sent: Vec<Instant> = script_a.sent.lock().unwrap().clone();
    sent.extend(script_b.sent.lock().unwrap().iter().copied());
    sent.sort();
    assert_eq!(sent.len(), 14);
    for w in sent.windows(2) {
        // 1.1 s / 7 apart, give or take tokio's millisecond timer
        assert!(w[1] - w[0] >= Duration::from_millis(156), "one budget for both clients: {w:?}");
    }
    assert!(sent[13] - sent[0] >= Duration::from_millis(2042), "{:?}", sent[13] - sent[0]);
    assert!(Instant::now() - start >= Duration::from_secs(2));

    // A is throttled: B learns it from the budget and sends nothing
    script_a.queue.lock().unwrap().push((429, HTML_429));
    assert!(matches!(a.account(&[]).await.unwrap_err(), Error::Throttled { .. }));
    let before = Instant::now();
    let e = b.account(&[]).await.unwrap_err();
    assert!(matches!(e, Error::HeldOff { .. }), "{e:?}");
    assert_eq!(Instant::now(), before, "no sleep inside the client");
    assert_eq!(e.retry_after(), Some(Duration::from_secs(60)));
    assert_eq!(script_b.sent(), 7, "nothing sent while the account is held");
    assert_eq!(budget.held("sub.kommo.com").await.unwrap(), Some(Duration::from_secs(60)));
}
