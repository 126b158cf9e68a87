//! A real process-kill test: the `sync-core-crashtest` binary ingests and processes events into an SQLite file;
//! it is SIGKILLed at random points three times and restarted; the final run must end with every event done and
//! its effect journaled exactly once.
#![allow(missing_docs, clippy::print_stdout, clippy::cast_possible_wrap)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rand::Rng;
use sqlx::Connection;

const N: usize = 3_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_and_restart_loses_nothing_and_applies_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("crash.db");
    let log = dir.path().join("executions.log");
    let bin = env!("CARGO_BIN_EXE_sync-core-crashtest");
    let spawn = || {
        Command::new(bin)
            .arg(&db)
            .arg(N.to_string())
            .arg(&log)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn crashtest")
    };
    let mut kills = 0;
    for round in 0..3 {
        let mut child = spawn();
        let wait = rand::rng().random_range(200..700);
        tokio::time::sleep(Duration::from_millis(wait)).await;
        if child.try_wait().unwrap().is_none() {
            child.kill().expect("SIGKILL"); // std's Child::kill sends SIGKILL on Unix
            kills += 1;
        }
        let status = child.wait().unwrap();
        let done = count(&db, "SELECT COUNT(*) FROM inbox WHERE state = 'done'").await;
        println!("round {round}: killed after {wait} ms ({status}); {done} done so far");
    }
    let started = Instant::now();
    let out = spawn().wait_with_output().unwrap();
    assert!(out.status.success(), "final run failed: {:?}", out.status);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "complete");
    println!("final run took {:?}; {kills} kills", started.elapsed());

    assert_eq!(count(&db, "SELECT COUNT(*) FROM inbox").await, N as i64, "one row per event");
    assert_eq!(count(&db, "SELECT COUNT(*) FROM inbox WHERE state = 'done'").await, N as i64, "every event done");
    assert_eq!(count(&db, "SELECT COUNT(*) FROM step_journal WHERE step = 'effect'").await, N as i64, "effects");
    assert_eq!(
        count(&db, "SELECT COUNT(DISTINCT run_id) FROM step_journal WHERE step = 'effect'").await,
        N as i64,
        "each effect once"
    );
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM step_journal j JOIN inbox i ON j.run_id = CAST(i.id AS TEXT) AND j.result = '\"' || i.dedup_key || '\"'").await,
        N as i64,
        "each effect belongs to its own event"
    );
    let executions = std::fs::read_to_string(&log).unwrap().lines().count();
    println!("{executions} handler executions for {N} events (re-executions after kills are expected)");
    assert!(executions >= N);
}

async fn count(db: &std::path::Path, sql: &'static str) -> i64 {
    let url = format!("sqlite://{}", db.display());
    let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
    let n: i64 = sqlx::query_scalar(sql).fetch_one(&mut conn).await.unwrap();
    conn.close().await.unwrap();
    n
}
