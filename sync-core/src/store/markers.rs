//! Markers: what the engine records about a target system ("the target holds V", "the newest change applied to
//! this entity is from time T", "local key K is remote id R"), committed only with the journal entry of the step
//! whose confirmed write made them true.

use chrono::{DateTime, Utc};

/// One `written_hashes` entry: `(system, entity, field)` holds `value` because we wrote it (or synced it).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Written {
    pub(crate) system: String,
    pub(crate) entity: String,
    pub(crate) field: String,
    pub(crate) value: serde_json::Value,
}

/// One id map entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IdEntry {
    pub(crate) system: String,
    pub(crate) kind: String,
    pub(crate) local_key: String,
    pub(crate) remote_id: String,
}

/// A set of markers about target systems, recorded by [`crate::Ctx::step_marked`] in the same transaction as the
/// step's journal entry, after the step's write was confirmed; never before, and never for a failed attempt.
///
/// - [`Markers::written`]: the value now held by `(system, entity, field)`; an incoming change equal to it is our
///   own echo ([`crate::Ctx::is_echo`]). While the write is in flight, the markers passed as *pending* to
///   `step_marked` are already recognised as echoes, but only as long as the attempt is alive.
/// - [`Markers::watermark`]: the newest event time applied to an entity ([`crate::Ctx::watermark_check`]);
///   advanced only forwards.
/// - [`Markers::id`]: an id map entry (local key ↔ remote id).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Markers {
    pub(crate) written: Vec<Written>,
    pub(crate) watermarks: Vec<(String, i64)>,
    pub(crate) ids: Vec<IdEntry>,
}

impl Markers {
    /// No markers.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// `(system, entity, field)` holds `value`.
    #[must_use]
    pub fn written(
        mut self,
        system: impl Into<String>,
        entity: impl Into<String>,
        field: impl Into<String>,
        value: serde_json::Value,
    ) -> Self {
        self.written.push(Written { system: system.into(), entity: entity.into(), field: field.into(), value });
        self
    }

    /// The newest change applied to `entity` is from `time`.
    #[must_use]
    pub fn watermark(mut self, entity: impl Into<String>, time: DateTime<Utc>) -> Self {
        self.watermarks.push((entity.into(), time.timestamp_millis()));
        self
    }

    /// `local_key` ↔ `remote_id` in the id map of `(system, kind)`.
    #[must_use]
    pub fn id(
        mut self,
        system: impl Into<String>,
        kind: impl Into<String>,
        local_key: impl Into<String>,
        remote_id: impl Into<String>,
    ) -> Self {
        self.ids.push(IdEntry {
            system: system.into(),
            kind: kind.into(),
            local_key: local_key.into(),
            remote_id: remote_id.into(),
        });
        self
    }

    /// Adds all of `other`.
    #[must_use]
    pub fn with(mut self, other: Self) -> Self {
        self.written.extend(other.written);
        self.watermarks.extend(other.watermarks);
        self.ids.extend(other.ids);
        self
    }

    /// True when there is nothing to record.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.written.is_empty() && self.watermarks.is_empty() && self.ids.is_empty()
    }
}
