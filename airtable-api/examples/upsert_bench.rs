//! Benchmark (not a test): upserts 1,000 records into the fake through the client with Airtable's real limits
//! (5 requests/s per base, 10 records per request ⇒ a ceiling of 50 records/s) and reports the achieved rate and
//! the number of 429s the fake served.
//!
//! `cargo run -p airtable-client --example upsert_bench --features fake --release`
#![allow(clippy::print_stdout)]

use std::time::Instant;

use airtable_client::{
    Fields, WriteOptions,
    fake::{FakeAirtable, FieldSpec},
};

#[tokio::main]
async fn main() {
    let n: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(1000);
    let fake = FakeAirtable::start().await.expect("fake starts");
    let _ = fake.add_table_with(
        "Contacts",
        vec![
            FieldSpec::new("Email", "email"),
            FieldSpec::new("Name", "singleLineText"),
            FieldSpec::new("Score", "number"),
        ],
    );
    let client = fake.client();
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
         requests {}, 429s received {}",
        result.created_records.len(),
        result.updated_records.len(),
        fake.request_count(),
        fake.throttled_count(),
    );
    assert_eq!(fake.records("Contacts").len(), n);
}
