//! Retention: compaction of the marker rows that can no longer matter.
//!
//! `written_hashes` (echo and "in sync" markers) and `watermarks` (the last applied change per entity) hold one row
//! per entity and field, so they grow with the number of entities ever synced, not with traffic. A row that has
//! not been written for longer than the retention period guards against nothing any more: echoes of our own
//! writes arrive within seconds, and a change older than the retention period can no longer arrive as a new event
//! (its dedup key, and any redelivery of it, have been purged with the done rows by then). Dropping such a row
//! costs at most one redundant write the next time the entity changes.

use std::time::Duration;

use super::{Backend, Store};
use crate::clock::duration_ms;
use crate::error::Result;

/// What [`Store::compact`] removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Compacted {
    /// `written_hashes` rows.
    pub hashes: u64,
    /// `watermarks` rows.
    pub watermarks: u64,
}

impl Store {
    /// Deletes echo/in-sync hashes and watermarks last written more than `older_than` ago (see the module docs;
    /// use the same period as [`Store::purge_done`]). The id map is never compacted: it links records that still
    /// exist.
    ///
    /// # Errors
    /// Store errors.
    pub async fn compact(&self, older_than: Duration) -> Result<Compacted> {
        let cutoff = self.now().saturating_sub(duration_ms(older_than));
        let out = in_tx!(self, tx => {
            let hashes = sqlx::query("DELETE FROM written_hashes WHERE written_at < $1")
                .bind(cutoff)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            let watermarks = sqlx::query("DELETE FROM watermarks WHERE updated_at < $1")
                .bind(cutoff)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            Compacted { hashes, watermarks }
        });
        Ok(out)
    }
}
