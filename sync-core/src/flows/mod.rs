//! Ready-made integration flows, one module per integration, each behind its own cargo feature (which also enables
//! the `server` feature: every flow brings the webhook routes it needs).
//!
//! | module | feature | what it does |
//! |---|---|---|
//! | `kommo_airtable` | `kommo-airtable` | won Kommo deals → Airtable onboarding records; Airtable status → Kommo notes; fields both ways |
//! | `kommo_productive` | `kommo-productive` | won Kommo deals → Productive company, project, budget, services, assignments (a resumable saga) |
//! | `calendly_kommo` | `calendly-kommo` | Calendly bookings, cancellations, reschedules, no-shows → Kommo notes and tasks |
//! | `kommo_customerio` | `kommo-customerio` | Kommo leads → Customer.io people and events; reporting webhooks → Kommo notes and tasks |
//!
//! Every flow follows one pattern: a `Config` (serde, from TOML; no secrets), a flow struct built from the config
//! and the API clients that implements [`crate::Flow`], a start-up validation against the live systems that fails
//! fast naming the wrong field, and `routes()` giving the [`crate::server::SourceRoute`]s to mount.

#[cfg(feature = "calendly-kommo")]
#[cfg_attr(docsrs, doc(cfg(feature = "calendly-kommo")))]
pub mod calendly_kommo;
#[cfg(feature = "kommo-airtable")]
#[cfg_attr(docsrs, doc(cfg(feature = "kommo-airtable")))]
pub mod kommo_airtable;
#[cfg(feature = "kommo-customerio")]
#[cfg_attr(docsrs, doc(cfg(feature = "kommo-customerio")))]
pub mod kommo_customerio;
#[cfg(feature = "kommo-productive")]
#[cfg_attr(docsrs, doc(cfg(feature = "kommo-productive")))]
pub mod kommo_productive;
#[cfg(any(feature = "kommo-airtable", feature = "kommo-productive", feature = "kommo-customerio"))]
mod kommo_split;
#[cfg(any(feature = "kommo-airtable", feature = "kommo-customerio"))]
mod support;
