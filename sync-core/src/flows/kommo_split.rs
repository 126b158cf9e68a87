//! Splitting a batched Kommo delivery into one inbox event per event it carries.
//!
//! Kommo batches changes of several leads into one form-encoded delivery (`leads[status][0]`, `leads[status][1]`,
//! ...). Stored as one inbox event, the delivery would be ordered by one lead only, so the other leads' work could
//! run beside another event for the same lead (two sagas for one lead: two projects, two notes). Split, every lead
//! is ordered (`lead:<id>`), retried and dead-lettered on its own.

use crate::flow::{KeyError, Part};

/// Parses a Kommo delivery for ingest, logging the events kommo-api left out because they did not parse
/// ([`kommo_api::webhook::WebhookPayload::rejected`]): the good events of the batch are still stored and the
/// delivery acknowledged (a rejected delivery is redelivered by Kommo, and a hook that keeps failing is disabled).
///
/// # Errors
/// [`KeyError`] when no event of the body parses.
pub(crate) fn parse_delivery(body: &[u8]) -> Result<kommo_api::webhook::WebhookPayload, KeyError> {
    let payload = kommo_api::webhook::parse(body).map_err(|e| KeyError(format!("not a Kommo webhook: {e}")))?;
    for (path, why) in &payload.rejected {
        tracing::warn!(%path, error = %why, "Kommo delivery: unparsable event left out, the others are kept");
    }
    Ok(payload)
}

/// One part per event of a Kommo delivery that carries more than one, each with the event's own body
/// ([`kommo_api::webhook::WebhookPayload::split_bodies`]), its own dedup key
/// ([`kommo_api::webhook::WebhookEvent::dedup_key`], the key a single-event delivery of the same change has) and,
/// for leads, the ordering key `lead:<id>`. `None` for a single-event delivery (stored as it is); a delivery with an
/// unparsable event is always split, so the stored body holds only the events that parse.
///
/// # Errors
/// [`KeyError`] when the body is not a Kommo webhook.
#[cfg_attr(not(any(feature = "kommo-productive", feature = "kommo-customerio")), allow(dead_code))]
pub(crate) fn split_by_event(body: &[u8]) -> Result<Option<Vec<Part>>, KeyError> {
    let payload = parse_delivery(body)?;
    if payload.events.len() < 2 && payload.rejected.is_empty() {
        return Ok(None);
    }
    let mut parts: std::collections::BTreeMap<String, Part> = std::collections::BTreeMap::new();
    for (ev, body) in payload.events.iter().zip(payload.split_bodies()) {
        let key = ev.dedup_key();
        parts.entry(key.clone()).or_insert_with(|| Part {
            dedup_key: key,
            ordering_key: ev.as_lead().map(|l| format!("lead:{}", l.id)),
            payload: bytes::Bytes::from(body),
        });
    }
    Ok(Some(parts.into_values().collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_lead_of_a_batch_is_its_own_ordered_part() {
        let body = kommo_api::webhook::encode_form(&[
            ("leads[status][0][id]", "11"),
            ("leads[status][0][status_id]", "142"),
            ("leads[status][1][id]", "12"),
            ("leads[status][1][status_id]", "142"),
            ("contacts[update][0][id]", "21"),
            ("account[id]", "99"),
        ]);
        let parts = split_by_event(body.as_bytes()).unwrap().unwrap();
        assert_eq!(parts.len(), 3);
        let mut orderings: Vec<Option<String>> = parts.iter().map(|p| p.ordering_key.clone()).collect();
        orderings.sort();
        assert_eq!(orderings, [None, Some("lead:11".to_owned()), Some("lead:12".to_owned())]);
        for p in &parts {
            let one = kommo_api::webhook::parse(&p.payload).unwrap();
            assert_eq!(one.events.len(), 1);
            assert_eq!(one.events[0].dedup_key(), p.dedup_key);
        }
        // a single-event delivery is stored as it is
        let single = kommo_api::webhook::encode_form(&[("leads[status][0][id]", "11"), ("account[id]", "99")]);
        assert!(split_by_event(single.as_bytes()).unwrap().is_none());
        assert!(split_by_event(b"not=kommo").is_err());
    }

    /// One bad event in a batch (issue 18): the good ones become parts, the bad one is left out (and logged),
    /// instead of the whole delivery being refused and redelivered by Kommo until it disables the hook.
    #[test]
    fn a_bad_event_is_left_out_and_the_good_ones_are_stored() {
        let body = kommo_api::webhook::encode_form(&[
            ("leads[status][0][id]", "11"),
            ("leads[status][0][status_id]", "142"),
            ("leads[status][1][name]", "no id"),
            ("account[id]", "99"),
        ]);
        let parts = split_by_event(body.as_bytes()).unwrap().expect("split so the bad event is not stored");
        assert_eq!(parts.len(), 1);
        assert_eq!(parts[0].ordering_key.as_deref(), Some("lead:11"));
        let one = kommo_api::webhook::parse(&parts[0].payload).unwrap();
        assert!(one.rejected.is_empty());
        assert_eq!(one.events[0].entity_id(), Some(11));
    }
}
