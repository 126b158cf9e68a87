//! The engine's error type.

/// A boxed error, as returned by flow handlers and step closures.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Errors from the store and the engine.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The database reported an error.
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    /// Applying the embedded migrations failed.
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A JSON value could not be encoded or decoded.
    #[error("json error: {0}")]
    Json(#[from] serde_json::Error),
    /// An id-map write would map one remote id to two local keys (or the reverse).
    #[error(
        "id map conflict: {system}/{kind} remote id `{remote_id}` is already mapped to a different local key than `{local_key}`"
    )]
    IdConflict {
        /// System name.
        system: String,
        /// Entity kind.
        kind: String,
        /// Local key being written.
        local_key: String,
        /// Remote id being written.
        remote_id: String,
    },
    /// This worker's lease on the event was lost (the event was reclaimed by another attempt); the write was refused.
    #[error("lease lost: event {id} attempt {attempt_no} was reclaimed by another attempt")]
    Stale {
        /// Inbox id.
        id: i64,
        /// The stale attempt number.
        attempt_no: i64,
    },
    /// A grouped ingest failed (the message of the underlying error); nothing of the group was stored.
    #[error("ingest failed: {0}")]
    Ingest(String),
    /// A grouped outcome write of the worker pool failed (the message of the underlying error); none of the group
    /// was written, and their leases expire into new attempts.
    #[error("grouped completion failed: {0}")]
    Completion(String),
    /// Invalid configuration (store URL, flow registration, ...).
    #[error("configuration error: {0}")]
    Config(String),
    /// A step closure failed (its error text is kept; the step is not journaled and runs again on retry).
    #[error("step `{step}` failed: {source}")]
    Step {
        /// Step name.
        step: String,
        /// The closure's error.
        #[source]
        source: BoxError,
    },
}

/// Result alias for the engine.
pub type Result<T, E = Error> = std::result::Result<T, E>;
