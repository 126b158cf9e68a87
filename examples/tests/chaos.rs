//! The CI-sized chaos soaks, one per flow (see `examples::chaos` and its scenario modules): a few hundred
//! deliveries with duplicates and reordering, faults injected into both fakes, two worker pools killed; afterwards
//! every target object is compared field by field with what the final source state implies. Each scenario runs on
//! SQLite with one process and on PostgreSQL with two (skipped, loudly, without `SYNC_TEST_POSTGRES_URL`; `.ci/run`
//! sets it). The full-size runs are `cargo run --release -p examples --bin chaos -- --flow <flow>`.
#![allow(missing_docs, clippy::print_stdout)]

use std::time::Duration;

use examples::chaos::{ChaosConfig, Report, Scenario};

fn ci(scenario: Scenario) -> ChaosConfig {
    let base = ChaosConfig::ci();
    match scenario {
        Scenario::KommoAirtable => base,
        Scenario::KommoProductive => ChaosConfig { leads: 30, changes: 160, ..base },
        Scenario::CalendlyKommo => ChaosConfig { leads: 30, changes: 320, ..base },
        Scenario::KommoCustomerio => {
            ChaosConfig { leads: 30, changes: 260, fault_every: Duration::from_millis(35), ..base }
        }
    }
}

fn check(store: &str, scenario: Scenario, report: &Report) {
    println!("{scenario:?} on {store}: {report}");
    assert!(report.converged(), "{scenario:?} on {store}: {report}");
    assert!(report.records > 0 && report.faults > 0 && report.kills == 2, "{scenario:?} on {store}: {report}");
}

async fn on_sqlite(scenario: Scenario) {
    let report = scenario.run_on_sqlite(&ci(scenario)).await;
    check("SQLite", scenario, &report);
}

async fn on_postgres(scenario: Scenario) {
    let Ok(url) = std::env::var("SYNC_TEST_POSTGRES_URL") else {
        println!("SKIPPED {scenario:?} on PostgreSQL: SYNC_TEST_POSTGRES_URL is not set");
        return;
    };
    let cfg = ChaosConfig { processes: 2, ..ci(scenario) };
    let report = scenario.run_on_postgres(&cfg, &url).await;
    check("PostgreSQL (2 processes)", scenario, &report);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kommo_airtable_converges_on_sqlite() {
    on_sqlite(Scenario::KommoAirtable).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kommo_airtable_converges_on_postgres_with_two_processes() {
    on_postgres(Scenario::KommoAirtable).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kommo_productive_converges_on_sqlite() {
    on_sqlite(Scenario::KommoProductive).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kommo_productive_converges_on_postgres_with_two_processes() {
    on_postgres(Scenario::KommoProductive).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calendly_kommo_converges_on_sqlite() {
    on_sqlite(Scenario::CalendlyKommo).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calendly_kommo_converges_on_postgres_with_two_processes() {
    on_postgres(Scenario::CalendlyKommo).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kommo_customerio_converges_on_sqlite() {
    on_sqlite(Scenario::KommoCustomerio).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kommo_customerio_converges_on_postgres_with_two_processes() {
    on_postgres(Scenario::KommoCustomerio).await;
}
