//! Pieces shared by the flows: a handler failure classified as retryable or permanent ([`Fault`]), carried through
//! [`crate::Ctx::step`]'s boxed error ([`boxed`]) and turned into the engine's [`Outcome`].

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use kommo_api::{CompanyId, ContactId, LeadId, ListParams, UserId, companies::Company, contacts::Contact, leads::Lead};

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

/// Writes `items` in chunks of `size`, one `batch` request per chunk (the chunks at once), one result per item in
/// order. A chunk that fails for a reason worth retrying fails each of its items with that fault (each event is
/// retried on its own); a chunk the vendor refuses otherwise (it writes a chunk all or nothing, or does not say
/// what it applied) is written again item by item with `one`, so only the refused item fails. `one` must be safe to
/// repeat for an item the refused request may have applied (an update by id, not a create).
pub(crate) async fn write_chunks<'a, I, E, B, BF, O, OF>(
    items: &'a [I],
    size: usize,
    what: &str,
    batch: B,
    one: O,
) -> Vec<Result<(), Fault>>
where
    E: Into<Fault> + std::fmt::Display,
    B: Fn(&'a [I]) -> BF,
    BF: std::future::Future<Output = Result<(), E>>,
    O: Fn(&'a I) -> OF + Copy,
    OF: std::future::Future<Output = Result<(), E>>,
{
    let chunks = items.chunks(size.max(1)).map(|chunk| {
        let batch = &batch;
        async move {
            let e = match batch(chunk).await {
                Ok(()) => return chunk.iter().map(|_| Ok(())).collect::<Vec<_>>(),
                Err(e) => e,
            };
            let shown = e.to_string();
            let f: Fault = e.into();
            if matches!(f, Fault::Retry(..)) || chunk.len() == 1 {
                return chunk.iter().map(|_| Err(f.clone())).collect();
            }
            tracing::warn!(error = %shown, what, "a batch write was refused: writing it item by item");
            futures::future::join_all(chunk.iter().map(|item| async move { one(item).await.map_err(Into::into) })).await
        }
    });
    futures::future::join_all(chunks).await.into_iter().flatten().collect()
}

/// Batching of Kommo lead events (see the flow's module docs, "Batches"); the `[batch]` table of the kommo-airtable
/// and kommo-customerio configs.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Batch {
    /// Most lead events handled together: 1 to 250 (Kommo's most ids in one `filter[id][]` GET); 1 turns batching
    /// off. Default 250.
    #[serde(default = "default_batch_max")]
    pub max_events: usize,
}

impl Default for Batch {
    fn default() -> Self {
        Self { max_events: default_batch_max() }
    }
}

fn default_batch_max() -> usize {
    250
}

/// Kommo's page size for reads by id: one `GET` per this many ids (`filter[id][]`).
fn ids_per_get() -> usize {
    usize::try_from(kommo_api::hal::MAX_LIMIT).unwrap_or(250)
}

/// The leads of `ids` (with the `with` relations), one GET per 250 ids (`filter[id][]`), for a batch of lead
/// events; a lead Kommo does not return no longer exists.
pub(crate) async fn leads_by_id(
    kommo: &kommo_api::Client,
    ids: &[LeadId],
    with: &[&str],
) -> Result<HashMap<LeadId, Lead>, Fault> {
    let mut leads = HashMap::with_capacity(ids.len());
    for chunk in ids.chunks(ids_per_get()) {
        let params =
            ListParams::new().ids(chunk.iter().copied()).with(with.iter().copied()).limit(kommo_api::hal::MAX_LIMIT);
        for lead in kommo.leads().all(params).await? {
            leads.insert(lead.id, lead);
        }
    }
    Ok(leads)
}

/// What a batch of leads points at, read once for the batch: responsible users' names, contacts, companies.
#[derive(Debug, Default)]
pub(crate) struct LeadLookups {
    pub(crate) users: HashMap<UserId, String>,
    pub(crate) contacts: HashMap<ContactId, Contact>,
    pub(crate) companies: HashMap<CompanyId, Company>,
}

impl LeadLookups {
    /// Reads them, concurrently: users one GET each (a batch has few; a deleted user is named by its id, as the
    /// one-at-a-time paths do), contacts and companies one GET per 250 ids (`filter[id][]`).
    pub(crate) async fn read(
        kommo: &kommo_api::Client,
        users: BTreeSet<UserId>,
        contacts: BTreeSet<ContactId>,
        companies: BTreeSet<CompanyId>,
    ) -> Result<Self, Fault> {
        let users_fut = futures::future::join_all(users.into_iter().map(|u| async move {
            match kommo.users().get(u).await {
                Ok(user) => Ok((u, user.name)),
                Err(e) if e.is_not_found() => Ok((u, u.to_string())),
                Err(e) => Err(Fault::from(e)),
            }
        }));
        let contacts: Vec<_> = contacts.into_iter().collect();
        let companies: Vec<_> = companies.into_iter().collect();
        let contacts_fut = async {
            let mut all = Vec::new();
            for chunk in contacts.chunks(ids_per_get()) {
                let params = ListParams::new().ids(chunk.iter().copied()).limit(kommo_api::hal::MAX_LIMIT);
                all.extend(kommo.contacts().all(params).await?);
            }
            Ok::<_, Fault>(all)
        };
        let companies_fut = async {
            let mut all = Vec::new();
            for chunk in companies.chunks(ids_per_get()) {
                let params = ListParams::new().ids(chunk.iter().copied()).limit(kommo_api::hal::MAX_LIMIT);
                all.extend(kommo.companies().all(params).await?);
            }
            Ok::<_, Fault>(all)
        };
        let (users, contacts, companies) = tokio::join!(users_fut, contacts_fut, companies_fut);
        Ok(Self {
            users: users.into_iter().collect::<Result<_, _>>()?,
            contacts: contacts?.into_iter().map(|c| (c.id, c)).collect(),
            companies: companies?.into_iter().map(|c| (c.id, c)).collect(),
        })
    }
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
