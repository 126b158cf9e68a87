//! The full-size chaos soak of a flow against the built-in fakes (see `examples::chaos` and its scenario
//! modules): thousands of duplicated and reordered deliveries, faults injected into both fakes, worker pools
//! killed, then every target object checked field by field against what the final source state implies. Exits
//! non-zero when the targets did not converge.
//!
//! ```text
//! cargo run --release -p examples --bin chaos -- --changes 6000 --leads 1000 --kills 5
//! cargo run --release -p examples --bin chaos -- --postgres postgres://postgres@127.0.0.1:5432/test --processes 3
//! cargo run --release -p examples --bin chaos -- --flow kommo-productive --leads 300 --changes 4500 \
//!     --postgres postgres://postgres@127.0.0.1:5432/test --processes 3
//! ```
#![allow(clippy::print_stdout)]

use std::time::Duration;

use clap::Parser;
use examples::chaos::{ChaosConfig, Scenario};

/// Chaos soak of one flow.
#[derive(Parser, Debug)]
struct Args {
    /// The flow.
    #[arg(long, value_enum, default_value_t = Scenario::KommoAirtable)]
    flow: Scenario,
    /// Leads in Kommo.
    #[arg(long, default_value_t = 1000)]
    leads: usize,
    /// Changes made at the source (deliveries are about 1.1 to 2.2 times this with duplicates, by flow).
    #[arg(long, default_value_t = 6000)]
    changes: usize,
    /// Engine processes sharing the store (PostgreSQL; SQLite runs one).
    #[arg(long, default_value_t = 3)]
    processes: usize,
    /// Worker pools killed during the run.
    #[arg(long, default_value_t = 5)]
    kills: usize,
    /// Milliseconds between injected faults.
    #[arg(long, default_value_t = 40)]
    fault_every_ms: u64,
    /// Edits people make in Airtable: "Status" moves and "Next Contact Date" changes (kommo-airtable only).
    #[arg(long, default_value_t = 200)]
    airtable_edits: usize,
    /// Seed of the run's choices.
    #[arg(long, default_value_t = 0x5eed_0017)]
    seed: u64,
    /// PostgreSQL URL (a fresh schema is made and dropped); SQLite in a temporary file without it.
    #[arg(long)]
    postgres: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let cfg = ChaosConfig {
        leads: args.leads,
        changes: args.changes,
        processes: args.processes,
        kills: args.kills,
        fault_every: Duration::from_millis(args.fault_every_ms),
        airtable_edits: args.airtable_edits,
        seed: args.seed,
        drain_timeout: Duration::from_secs(1800),
    };
    let report = match args.postgres {
        Some(url) => args.flow.run_on_postgres(&cfg, &url).await,
        None => args.flow.run_on_sqlite(&cfg).await,
    };
    println!("{:?}: {report}", args.flow);
    anyhow::ensure!(report.converged(), "the targets did not converge");
    Ok(())
}
