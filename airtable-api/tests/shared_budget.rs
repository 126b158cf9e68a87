//! Two clients built apart (as in two `serve` processes) drawing one base's requests from one shared budget
//! ([`airtable_client::ClientBuilder::shared_budget`]): their requests are spaced together, and one client's 429
//! holds the base for both — including a request the other had already queued.
//!
//! Vendor rule (api-notes/airtable.md C.4, OFFICIAL rate-limits): 5 requests per second per base; after a 429,
//! "wait 30 seconds before subsequent requests will succeed". The test runs on tokio's paused clock against a
//! scripted transport (no network); sync-core's `StoreBudget` is the cross-process budget, tested in sync-core.
#![allow(missing_docs)]

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use airtable_client::{Client, RecordId};
use api_core::{RateBudget, RateLimiter, RawResponse, Request, Rule, Transport, TransportError};
use futures::future::BoxFuture;
use http::{HeaderMap, StatusCode};
use tokio::time::Instant;
use url::Url;

#[derive(Debug, Default)]
struct Script {
    queue: Mutex<Vec<u16>>,
    sent: Mutex<Vec<Instant>>,
}

const RECORD: &str = r#"{"id":"rec560UJdUtocSouk","createdTime":"2022-09-12T21:03:48.000Z","fields":{"Name":"x"}}"#;
const RATE_LIMITED: &str =
    r#"{"errors":[{"error":"RATE_LIMIT_REACHED","message":"Rate limit exceeded. Please try again later"}]}"#;

impl Transport for Script {
    fn send(&self, _url: Url, _request: Request) -> BoxFuture<'_, Result<RawResponse, TransportError>> {
        Box::pin(async move {
            self.sent.lock().unwrap().push(Instant::now());
            let status = {
                let mut q = self.queue.lock().unwrap();
                if q.is_empty() { 200 } else { q.remove(0) }
            };
            let body = if status == 429 { RATE_LIMITED } else { RECORD };
            Ok(RawResponse {
                status: StatusCode::from_u16(status).unwrap(),
                headers: HeaderMap::new(),
                body: body.into(),
            })
        })
    }
}

fn client(script: &Arc<Script>, budget: &Arc<dyn RateBudget>) -> Client {
    Client::builder().token("patXXXX.secret").transport(script.clone()).rate_budget(budget.clone()).build().unwrap()
}

#[tokio::test(start_paused = true)]
async fn two_clients_share_one_base_budget_and_its_429_hold() {
    let budget: Arc<dyn RateBudget> =
        Arc::new(RateLimiter::new([Rule::Spacing { per: 5, period: Duration::from_millis(1100) }]));
    let (sa, sb) = (Arc::new(Script::default()), Arc::new(Script::default()));
    let (a, b) = (client(&sa, &budget), client(&sb, &budget));
    let id = RecordId::from("rec560UJdUtocSouk");
    let (ta, tb) = (a.table("appBase", "tblX"), b.table("appBase", "tblX"));
    let start = Instant::now();
    tokio::join!(
        async {
            for _ in 0..5 {
                ta.get(&id).await.unwrap();
            }
        },
        async {
            for _ in 0..5 {
                tb.get(&id).await.unwrap();
            }
        }
    );
    let mut sent: Vec<Instant> = sa.sent.lock().unwrap().clone();
    sent.extend(sb.sent.lock().unwrap().iter().copied());
    sent.sort();
    assert_eq!(sent.len(), 10);
    for w in sent.windows(2) {
        assert!(w[1] - w[0] >= Duration::from_millis(219), "one budget for both clients: {w:?}");
    }

    // A's request is answered 429; B's request, already queued behind it, waits out the 30 s hold
    sa.queue.lock().unwrap().push(429);
    let before = Instant::now();
    let (ra, rb) = tokio::join!(ta.get(&id), async {
        tokio::time::sleep(Duration::from_millis(1)).await;
        tb.get(&id).await
    });
    rb.unwrap();
    let b_sent = *sb.sent.lock().unwrap().last().unwrap();
    assert!(b_sent - before >= Duration::from_secs(30), "B went out {:?} after A's 429", b_sent - before);
    // A retried too, after the hold
    ra.unwrap();
    let a_last = *sa.sent.lock().unwrap().last().unwrap();
    assert!(a_last - before >= Duration::from_secs(30));
    assert_eq!(sa.sent.lock().unwrap().len(), 7, "5 + the 429 + its retry");
    assert_eq!(sb.sent.lock().unwrap().len(), 6, "nothing sent into the penalty");
    assert!(Instant::now() - start >= Duration::from_secs(31));
}

/// The raw `send` escape hatch draws from the same budget as the typed calls (keyed by the request's rate key, the
/// base id) and honours the 30 s hold a typed call's 429 left on the base (api-notes/airtable.md C.4).
#[tokio::test(start_paused = true)]
async fn raw_send_draws_from_the_rate_budget_and_its_hold() {
    let budget: Arc<dyn RateBudget> =
        Arc::new(RateLimiter::new([Rule::Spacing { per: 5, period: Duration::from_millis(1100) }]));
    let script = Arc::new(Script::default());
    let c = client(&script, &budget);
    let raw = || Request::get("/appBase/tblX/rec560UJdUtocSouk").rate_key("appBase");
    for _ in 0..3 {
        c.send(raw()).await.unwrap();
    }
    {
        let sent = script.sent.lock().unwrap();
        for w in sent.windows(2) {
            assert!(w[1] - w[0] >= Duration::from_millis(219), "raw sends are spaced by the budget: {w:?}");
        }
    }
    // a typed call draws a 429 (then succeeds after the hold); a raw send queued behind it waits the hold out too
    script.queue.lock().unwrap().push(429);
    let before = Instant::now();
    let (table, id) = (c.table("appBase", "tblX"), RecordId::from("rec560UJdUtocSouk"));
    let (typed, rawr) = tokio::join!(table.get(&id), async {
        tokio::time::sleep(Duration::from_millis(1)).await;
        c.send(raw()).await
    });
    typed.unwrap();
    rawr.unwrap();
    let sent = script.sent.lock().unwrap().clone();
    assert_eq!(sent.len(), 6, "3 + the 429 + its retry + the raw send");
    assert!(sent[5] - before >= Duration::from_secs(30), "nothing sent into the penalty: {:?}", sent[5] - before);
    assert!(budget.held("appBase").await.unwrap().is_none(), "hold over");
}
