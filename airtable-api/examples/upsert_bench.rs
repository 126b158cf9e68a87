//! Benchmark (not a test): upserts 1,000 records through the client into the fake, which enforces Airtable's rate
//! limit strictly (5 requests per sliding second per base counted on arrival, no slack, 30 s hold after a 429 —
//! api-notes/airtable.md C.4), over real HTTP with added network latency and jitter on each way. Reports records/s
//! (the ceiling is 50/s = 5 requests/s × 10 records) and the number of 429s the fake served.
//!
//! `cargo run -p airtable-client --example upsert_bench --features fake -- [records] [latency ms] [jitter ms]`
//! (defaults 1000, 50, 50: each request and each answer is delayed 50 ms + uniform[0, 50) ms).
#![allow(clippy::print_stdout)]

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use airtable_client::{
    Fields, WriteOptions,
    fake::{FakeAirtable, FieldSpec},
};
use api_core::{RawResponse, Request, ReqwestTransport, Transport, TransportConfig, TransportError};
use futures::future::BoxFuture;

/// reqwest with a simulated network delay on the way in and on the way back.
#[derive(Debug)]
struct Jittered {
    inner: ReqwestTransport,
    base: Duration,
    jitter: Duration,
    rng: Mutex<u64>,
}

impl Jittered {
    fn delay(&self) -> Duration {
        let mut x = self.rng.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        *x ^= *x >> 12;
        *x ^= *x << 25;
        *x ^= *x >> 27;
        #[allow(clippy::cast_precision_loss)]
        let unit = (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64;
        self.base + self.jitter.mul_f64(unit)
    }
}

impl Transport for Jittered {
    fn send(&self, url: url::Url, request: Request) -> BoxFuture<'_, Result<RawResponse, TransportError>> {
        Box::pin(async move {
            tokio::time::sleep(self.delay()).await;
            let answer = self.inner.send(url, request).await;
            tokio::time::sleep(self.delay()).await;
            answer
        })
    }
}

#[tokio::main]
async fn main() {
    let arg = |i: usize, default: u64| std::env::args().nth(i).and_then(|s| s.parse().ok()).unwrap_or(default);
    let n = usize::try_from(arg(1, 1000)).unwrap_or(1000);
    let (latency, jitter) = (Duration::from_millis(arg(2, 50)), Duration::from_millis(arg(3, 50)));
    let fake = FakeAirtable::start().await.expect("fake starts"); // strict: FakeConfig::default()
    let _ = fake.add_table_with(
        "Contacts",
        vec![
            FieldSpec::new("Email", "email"),
            FieldSpec::new("Name", "singleLineText"),
            FieldSpec::new("Score", "number"),
        ],
    );
    let transport = Jittered {
        inner: ReqwestTransport::new(TransportConfig::new("upsert-bench")).expect("reqwest"),
        base: latency,
        jitter,
        rng: Mutex::new(0x9E37_79B9_7F4A_7C15),
    };
    let client = fake.client_builder().transport(Arc::new(transport)).build().expect("client"); // default limits
    let table = client.table(fake.id(), "Contacts");
    let records: Vec<Fields> = (0..n)
        .map(|i| {
            Fields::new()
                .with("Email", format!("user{i}@example.com"))
                .with("Name", format!("User {i}"))
                .with("Score", i64::try_from(i).unwrap_or(0))
        })
        .collect();
    let started = Instant::now();
    let result = table.upsert(&records, &["Email"], WriteOptions::default()).await.expect("upsert");
    let secs = started.elapsed().as_secs_f64();
    #[allow(clippy::cast_precision_loss)]
    let rate = n as f64 / secs;
    println!(
        "upserted {n} records ({} created, {} updated) in {secs:.2} s: {rate:.1} records/s (ceiling 50/s = 5 req/s x 10); \
         latency {latency:?} + jitter up to {jitter:?} each way; requests {}, 429s received {}",
        result.created_records.len(),
        result.updated_records.len(),
        fake.request_count(),
        fake.throttled_count(),
    );
    assert_eq!(fake.records("Contacts").len(), n);
}
