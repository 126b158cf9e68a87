//! Health of background components (table `component_health`, migration 0007).
//!
//! A process that runs work in the background which can fail on its own (start-up validation against a vendor,
//! the upkeep of a webhook or subscription) reports each component's state here, so that another process (the
//! `status` command) and the readiness probe (`GET /readyz`) can show it. One row per `(component, instance)`:
//! `instance` names the reporting process (e.g. `host:pid`), so processes sharing one database do not overwrite
//! each other. `since` is kept while the state stays the same and moves when it changes; `updated_at` moves on
//! every report.

use chrono::{DateTime, Utc};

use super::{Backend, Store};
use crate::clock::ms_to_datetime;
use crate::error::{Error, Result};

/// The state of a background component.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HealthState {
    /// Not yet succeeded once, and not failed yet either.
    Starting,
    /// Its last attempt succeeded.
    Ready,
    /// Its last attempt failed (it is being retried).
    Failing,
}

impl HealthState {
    /// The name stored in the table (`starting`, `ready`, `failing`).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Starting => "starting",
            Self::Ready => "ready",
            Self::Failing => "failing",
        }
    }

    fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "starting" => Self::Starting,
            "ready" => Self::Ready,
            "failing" => Self::Failing,
            other => {
                return Err(Error::Db(sqlx::Error::Decode(format!("unknown component health state `{other}`").into())));
            }
        })
    }
}

impl std::fmt::Display for HealthState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a component reports ([`Store::set_health`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthReport {
    /// The state.
    pub state: HealthState,
    /// Failed attempts since the component was last ready (0 when ready).
    pub attempts: i64,
    /// The last error's text (kept with `Failing`; `None` clears it).
    pub last_error: Option<String>,
}

impl HealthReport {
    /// `Starting`, no attempts, no error.
    #[must_use]
    pub fn starting() -> Self {
        Self { state: HealthState::Starting, attempts: 0, last_error: None }
    }

    /// `Ready`, no attempts, no error.
    #[must_use]
    pub fn ready() -> Self {
        Self { state: HealthState::Ready, attempts: 0, last_error: None }
    }

    /// `Failing` after `attempts` failed attempts, the last with `error`.
    #[must_use]
    pub fn failing(attempts: i64, error: impl Into<String>) -> Self {
        Self { state: HealthState::Failing, attempts, last_error: Some(error.into()) }
    }
}

/// A row of [`Store::health`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentHealth {
    /// The component (e.g. `validation`, `webhook:productive`).
    pub component: String,
    /// The process that reports it.
    pub instance: String,
    /// The state.
    pub state: HealthState,
    /// Failed attempts since the component was last ready.
    pub attempts: i64,
    /// The last error's text.
    pub last_error: Option<String>,
    /// When it entered `state`.
    pub since: DateTime<Utc>,
    /// When it last reported.
    pub updated_at: DateTime<Utc>,
}

const UPSERT_HEALTH: &str = "INSERT INTO component_health \
     (component, instance, state, attempts, last_error, since, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $6) \
     ON CONFLICT (component, instance) DO UPDATE SET \
     since = CASE WHEN component_health.state = excluded.state THEN component_health.since ELSE excluded.since END, \
     state = excluded.state, attempts = excluded.attempts, last_error = excluded.last_error, \
     updated_at = excluded.updated_at";

impl Store {
    /// Records the state of `component` as reported by `instance` (upsert). `since` stays while the state is
    /// unchanged and becomes now when it changes.
    ///
    /// # Errors
    /// Store errors.
    pub async fn set_health(&self, component: &str, instance: &str, report: &HealthReport) -> Result<()> {
        let now = self.now();
        on_pool!(self, p => sqlx::query(UPSERT_HEALTH)
            .bind(component)
            .bind(instance)
            .bind(report.state.as_str())
            .bind(report.attempts)
            .bind(report.last_error.as_deref())
            .bind(now)
            .execute(p)
            .await
            .map(|_| ())?);
        Ok(())
    }

    /// Every reported component, ordered by component and instance.
    ///
    /// # Errors
    /// Store errors.
    pub async fn health(&self) -> Result<Vec<ComponentHealth>> {
        type Row = (String, String, String, i64, Option<String>, i64, i64);
        let rows: Vec<Row> = on_pool!(self, p => sqlx::query_as(
            "SELECT component, instance, state, attempts, last_error, since, updated_at FROM component_health \
             ORDER BY component, instance",
        )
        .fetch_all(p)
        .await?);
        rows.into_iter()
            .map(|(component, instance, state, attempts, last_error, since, updated_at)| {
                Ok(ComponentHealth {
                    component,
                    instance,
                    state: HealthState::parse(&state)?,
                    attempts,
                    last_error,
                    since: ms_to_datetime(since),
                    updated_at: ms_to_datetime(updated_at),
                })
            })
            .collect()
    }

    /// Removes every row `instance` reported (a process calls it when it shuts down cleanly). Returns the number
    /// of rows removed.
    ///
    /// # Errors
    /// Store errors.
    pub async fn health_forget(&self, instance: &str) -> Result<u64> {
        Ok(on_pool!(self, p => sqlx::query("DELETE FROM component_health WHERE instance = $1")
            .bind(instance)
            .execute(p)
            .await?
            .rows_affected()))
    }
}
