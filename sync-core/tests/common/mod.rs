//! Test harness shared by the behaviour suites: one store per test, on SQLite (a temp file) or on PostgreSQL
//! (a fresh schema in `SYNC_TEST_POSTGRES_URL`).
#![allow(dead_code, unreachable_pub, missing_docs, clippy::print_stdout)]

use std::collections::HashMap;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sync_core::{SharedClock, Store, StoreOptions};

/// Where a test's stores live.
#[derive(Debug)]
pub enum Harness {
    Sqlite { dir: tempfile::TempDir },
    Postgres { url: String, schema: String },
}

impl Harness {
    pub fn sqlite() -> Self {
        Harness::Sqlite { dir: tempfile::tempdir().expect("tempdir") }
    }

    /// `None` (after printing the skip notice) when `SYNC_TEST_POSTGRES_URL` is not set.
    pub fn postgres() -> Option<Self> {
        let Ok(url) = std::env::var("SYNC_TEST_POSTGRES_URL") else {
            println!("skipped: SYNC_TEST_POSTGRES_URL not set");
            return None;
        };
        let schema = format!("t_{}", uuid::Uuid::new_v4().simple());
        Some(Harness::Postgres { url, schema })
    }

    /// Opens a store (a new pool each call, like a separate process would have). On PostgreSQL without the
    /// wake-up listener: the suites open many stores at once, and one `LISTEN` connection each would exhaust the
    /// server's connections (`open_with_wakeups` is for the test of that feature).
    pub async fn open(&self, clock: SharedClock) -> Store {
        self.open_inner(clock, false).await
    }

    /// Opens a store with the PostgreSQL wake-up listener on (the default outside tests).
    pub async fn open_with_wakeups(&self, clock: SharedClock) -> Store {
        self.open_inner(clock, true).await
    }

    async fn open_inner(&self, clock: SharedClock, wakeups: bool) -> Store {
        match self {
            Harness::Sqlite { dir } => {
                Store::open_sqlite(dir.path().join("sync.db"), StoreOptions::default().clock(clock))
                    .await
                    .expect("open sqlite")
            }
            Harness::Postgres { url, schema } => {
                let opts = StoreOptions::default()
                    .clock(clock)
                    .pg_schema(schema.clone())
                    .max_connections(8)
                    .pg_wakeups(wakeups);
                Store::connect(url, opts).await.expect("open postgres")
            }
        }
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self, Harness::Postgres { .. })
    }

    /// Drops the PostgreSQL schema (the SQLite temp dir goes away on drop).
    #[cfg_attr(not(feature = "postgres"), allow(clippy::unused_async))]
    pub async fn cleanup(self) {
        #[cfg(feature = "postgres")]
        if let Harness::Postgres { url, schema } = &self {
            use sqlx::{Connection, Executor};
            let mut conn = sqlx::PgConnection::connect(url).await.expect("connect");
            conn.execute(sqlx::AssertSqlSafe(format!("DROP SCHEMA IF EXISTS {schema} CASCADE")))
                .await
                .expect("drop schema");
        }
        drop(self);
    }
}

/// Counts effects per key (the "remote system" of the tests).
#[derive(Debug, Default, Clone)]
pub struct Sink {
    pub effects: Arc<Mutex<HashMap<String, usize>>>,
    pub calls: Arc<AtomicUsize>,
}

impl Sink {
    pub fn record(&self, key: &str) {
        *self.effects.lock().unwrap().entry(key.to_owned()).or_default() += 1;
    }
    pub fn count(&self, key: &str) -> usize {
        self.effects.lock().unwrap().get(key).copied().unwrap_or(0)
    }
    pub fn total(&self) -> usize {
        self.effects.lock().unwrap().values().sum()
    }
    pub fn keys(&self) -> usize {
        self.effects.lock().unwrap().len()
    }
    pub fn max_per_key(&self) -> usize {
        self.effects.lock().unwrap().values().copied().max().unwrap_or(0)
    }
}

/// Polls `cond` every 10 ms (real time) for up to `secs` seconds.
pub async fn wait_until<F, Fut>(secs: u64, mut cond: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while tokio::time::Instant::now() < deadline {
        if cond().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

/// Runs each listed case (an `async fn(&Harness)` in `cases`) once per backend.
#[macro_export]
macro_rules! behaviour_suite {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let h = $crate::common::Harness::sqlite();
                    $crate::cases::$name(&h).await;
                    h.cleanup().await;
                }
            )*
        }
        #[cfg(feature = "postgres")]
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(h) = $crate::common::Harness::postgres() else { return };
                    $crate::cases::$name(&h).await;
                    h.cleanup().await;
                }
            )*
        }
    };
}
