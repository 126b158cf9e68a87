//! Time source for the engine. Every timestamp the store writes (receipt, leases, `run_after`, counters) comes from
//! a [`Clock`], so tests can move time forward with [`ManualClock`] instead of sleeping.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};

/// A source of wall-clock time in milliseconds since the Unix epoch.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64;

    /// The current time as a `DateTime<Utc>`.
    fn now(&self) -> DateTime<Utc> {
        ms_to_datetime(self.now_ms())
    }

    /// True when this clock reads the machine's own wall clock (which may be skewed from other machines'). On
    /// PostgreSQL the store then anchors it to the database server's clock, so that lease deadlines written by
    /// processes on different machines compare on one time base. Test clocks say false and are used as they are.
    fn is_wall_clock(&self) -> bool {
        false
    }
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        Utc::now().timestamp_millis()
    }

    fn is_wall_clock(&self) -> bool {
        true
    }
}

/// A wall clock shifted by a measured offset to a reference clock (the PostgreSQL server's, see
/// `Store::open_postgres`): `now = base + offset`. The offset is re-measured periodically.
#[derive(Debug)]
#[cfg_attr(not(feature = "postgres"), allow(dead_code))]
pub(crate) struct AnchoredClock {
    base: SharedClock,
    offset_ms: AtomicI64,
}

#[cfg_attr(not(feature = "postgres"), allow(dead_code))]
impl AnchoredClock {
    pub(crate) fn new(base: SharedClock) -> Self {
        Self { base, offset_ms: AtomicI64::new(0) }
    }

    /// The unshifted wall clock.
    pub(crate) fn base_ms(&self) -> i64 {
        self.base.now_ms()
    }

    pub(crate) fn set_offset(&self, offset_ms: i64) {
        self.offset_ms.store(offset_ms, Ordering::SeqCst);
    }
}

impl Clock for AnchoredClock {
    fn now_ms(&self) -> i64 {
        self.base.now_ms().saturating_add(self.offset_ms.load(Ordering::SeqCst))
    }
}

/// A clock that only moves when told to; cheap to clone (clones share the same time).
#[derive(Debug, Clone)]
pub struct ManualClock {
    ms: Arc<AtomicI64>,
}

impl ManualClock {
    /// A manual clock starting at `start`.
    #[must_use]
    pub fn new(start: DateTime<Utc>) -> Self {
        Self { ms: Arc::new(AtomicI64::new(start.timestamp_millis())) }
    }

    /// A manual clock starting at the current system time.
    #[must_use]
    pub fn starting_now() -> Self {
        Self::new(Utc::now())
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        self.ms.fetch_add(duration_ms(by), Ordering::SeqCst);
    }

    /// Sets the clock to `to`.
    pub fn set(&self, to: DateTime<Utc>) {
        self.ms.store(to.timestamp_millis(), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.ms.load(Ordering::SeqCst)
    }
}

/// A shared clock handle.
pub type SharedClock = Arc<dyn Clock>;

/// Converts milliseconds since the epoch to a `DateTime<Utc>` (saturating at the representable range).
#[must_use]
pub fn ms_to_datetime(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// A duration in whole milliseconds, saturating at `i64::MAX`.
#[must_use]
pub fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}
