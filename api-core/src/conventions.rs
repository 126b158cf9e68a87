//! A check that a vendor crate's errors follow the workspace convention ([`VendorError`]), run by each crate's
//! `tests/conventions.rs` with the same scripted answers: the same calls, five vendors (feature `fake`).
//!
//! [`check_error_conventions`] serves each answer from a local server ([`crate::fake::FakeServer`], 127.0.0.1 only)
//! and asserts what the error says about it; a closed port stands for a connection that could not be made.

use std::{future::Future, time::Duration};

use url::Url;

use crate::{
    ErrorClass, VendorError,
    fake::{FakeServer, Fault},
};

/// What the vendor documents for a 429 that carries no `Retry-After`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThrottleWait {
    /// A documented penalty (Kommo 60 s, Airtable 30 s, Productive 10 s).
    Penalty(Duration),
    /// None documented: `retry_after()` is `None` unless the vendor sends a header.
    Unspecified,
}

fn answer(status: u16, headers: &[(&str, &str)], body: &str) -> Fault {
    Fault::Status {
        status,
        headers: headers.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
        body: body.to_owned(),
        content_type: "application/json".into(),
    }
}

/// Runs `call` (one read request of the vendor's client built against the given base URL, without retries)
/// against each scripted answer and asserts the conventions of [`VendorError`]:
///
/// | answer | class | retryable | may have been sent | retry after |
/// |---|---|---|---|---|
/// | 429, no `Retry-After` | Throttled | yes | no | the vendor's penalty, if documented |
/// | 503 with `Retry-After: 7` | Transient | yes | yes | 7 s |
/// | 500 | Transient | yes | yes | none |
/// | 404 | Client | no | no | none |
/// | 422 | Client | no | no | none |
/// | connection refused | Transport | yes | no | none |
///
/// # Panics
/// When an error breaks the convention (this is a test helper).
pub async fn check_error_conventions<E, F, Fut>(throttle: ThrottleWait, call: F)
where
    E: VendorError,
    F: Fn(Url) -> Fut,
    Fut: Future<Output = Result<(), E>>,
{
    let server = FakeServer::start(axum::Router::new()).await.expect("bind 127.0.0.1");
    let body = r#"{"error":"scripted","message":"scripted answer"}"#;
    let cases: [(&str, Fault, ErrorClass, bool, Option<Duration>); 5] = [
        (
            "429",
            answer(429, &[], body),
            ErrorClass::Throttled,
            false,
            match throttle {
                ThrottleWait::Penalty(d) => Some(d),
                ThrottleWait::Unspecified => None,
            },
        ),
        (
            "503 + Retry-After",
            answer(503, &[("retry-after", "7")], body),
            ErrorClass::Transient,
            true,
            Some(Duration::from_secs(7)),
        ),
        ("500", answer(500, &[], body), ErrorClass::Transient, true, None),
        ("404", answer(404, &[], body), ErrorClass::Client, false, None),
        ("422", answer(422, &[], body), ErrorClass::Client, false, None),
    ];
    for (name, fault, class, sent, wait) in cases {
        server.faults.clear();
        server.faults.inject(None, "/", fault, 1000);
        let e = call(server.base_url.clone()).await.err().unwrap_or_else(|| panic!("{name}: the call succeeded"));
        assert_eq!(e.class(), class, "{name}: class of {e}");
        assert_eq!(e.is_retryable(), class.is_retryable(), "{name}: is_retryable of {e}");
        assert_eq!(e.may_have_been_sent(), sent, "{name}: may_have_been_sent of {e}");
        assert_eq!(e.retry_after(), wait, "{name}: retry_after of {e}");
    }
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        l.local_addr().expect("address")
    };
    let e = call(Url::parse(&format!("http://{closed}")).expect("URL"))
        .await
        .err()
        .unwrap_or_else(|| panic!("connection refused: the call succeeded"));
    assert_eq!(e.class(), ErrorClass::Transport, "connection refused: class of {e}");
    assert!(e.is_retryable(), "connection refused: is_retryable of {e}");
    assert!(!e.may_have_been_sent(), "connection refused: may_have_been_sent of {e}");
    assert_eq!(e.retry_after(), None, "connection refused: retry_after of {e}");
}

/// A delivery signed at a given unix time: its headers and raw body.
pub type Signed = (http::HeaderMap, Vec<u8>);

/// Checks a crate's webhook `Verifier` against the workspace shape with a 300 s window: `sign(t)` produces a
/// delivery signed at unix time `t`; `verify(now, headers, body)` builds a fresh `Verifier` with
/// `.tolerance(300 s).clock(FixedClock::at_unix(now))` and calls `verify_headers(headers, body)`. Asserts: accepted
/// 299 s either side of the signing time (the window is two-sided), refused 301 s either side, refused with a
/// changed body, refused without headers.
///
/// # Panics
/// When the verifier breaks the shape (this is a test helper).
pub fn check_verifier_window<S, V>(sign: S, verify: V)
where
    S: Fn(i64) -> Signed,
    V: Fn(u64, &http::HeaderMap, &[u8]) -> bool,
{
    let t: i64 = 1_790_000_000;
    let at = |d: i64| u64::try_from(t + d).expect("positive");
    let (headers, body) = sign(t);
    assert!(verify(at(0), &headers, &body), "a fresh delivery is accepted");
    assert!(verify(at(299), &headers, &body), "299 s late is within the window");
    assert!(verify(at(-299), &headers, &body), "299 s early (the sender's clock ahead) is within the window");
    assert!(!verify(at(301), &headers, &body), "301 s late is refused");
    assert!(!verify(at(-301), &headers, &body), "301 s early is refused: the window is two-sided");
    let mut changed = body.clone();
    changed.push(b' ');
    assert!(!verify(at(0), &headers, &changed), "a changed body is refused");
    assert!(!verify(at(0), &http::HeaderMap::new(), &body), "a delivery without signature headers is refused");
}
