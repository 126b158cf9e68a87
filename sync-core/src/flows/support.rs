//! Pieces shared by the flows: a handler failure classified as retryable or permanent ([`Fault`]), carried through
//! [`crate::Ctx::step`]'s boxed error ([`boxed`]) and turned into the engine's [`Outcome`].

use std::time::Duration;

use crate::{BoxError, Outcome};

/// A handler failure, classified.
#[derive(Clone)]
pub(crate) enum Fault {
    /// Worth retrying, after the hint if there is one.
    Retry(Option<Duration>, String),
    /// Permanent: dead letter.
    Fail(String),
}

impl From<kommo_api::Error> for Fault {
    fn from(e: kommo_api::Error) -> Self {
        if e.class().is_retryable() {
            Self::Retry(e.retry_after(), format!("Kommo: {e}"))
        } else {
            Self::Fail(format!("Kommo: {e}"))
        }
    }
}

impl From<crate::Error> for Fault {
    fn from(e: crate::Error) -> Self {
        match e {
            crate::Error::Step { step, source } => match source.downcast::<StepFault>() {
                Ok(f) => match *f {
                    StepFault(Self::Retry(after, why)) => Self::Retry(after, format!("step {step}: {why}")),
                    StepFault(Self::Fail(why)) => Self::Fail(format!("step {step}: {why}")),
                },
                Err(other) => Self::Retry(None, format!("step {step}: {other}")),
            },
            other => Self::Retry(None, other.to_string()),
        }
    }
}

impl From<Fault> for Outcome {
    fn from(f: Fault) -> Self {
        match f {
            Fault::Retry(after, reason) => Outcome::Retry { after, reason },
            Fault::Fail(reason) => Outcome::Fail { reason },
        }
    }
}

/// A [`Fault`] carried through [`crate::Ctx::step`]'s boxed error.
struct StepFault(Fault);

impl std::fmt::Debug for StepFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Fault::Retry(_, w) | Fault::Fail(w) => f.write_str(w),
        }
    }
}
impl std::fmt::Display for StepFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self, f)
    }
}
impl std::error::Error for StepFault {}

/// Boxes a classified failure for a step closure; [`Fault`]'s `From<crate::Error>` unpacks it again.
pub(crate) fn boxed(f: impl Into<Fault>) -> BoxError {
    Box::new(StepFault(f.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// kommo-api fails fast while the account is held off after a 429 or the ban page (issue 18): the flows turn
    /// that into a retry scheduled after the remaining wait, not into the worker's generic backoff or a failure.
    #[test]
    fn a_kommo_hold_off_is_retried_after_the_remaining_wait() {
        for cause in [kommo_api::HoldCause::Throttled, kommo_api::HoldCause::Banned] {
            let e = kommo_api::Error::HeldOff { cause, retry_after: Duration::from_secs(600) };
            match Outcome::from(Fault::from(e)) {
                Outcome::Retry { after, .. } => assert_eq!(after, Some(Duration::from_secs(600))),
                other => panic!("{other:?}"),
            }
        }
    }
}
