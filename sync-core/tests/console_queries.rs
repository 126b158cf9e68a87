//! The operator console's read-only queries (`Store::source_figures`, `Store::dead_letters`,
//! `Store::budget_states`), on SQLite and (with `SYNC_TEST_POSTGRES_URL`) PostgreSQL.
#![allow(missing_docs, clippy::print_stdout)]

mod common;

behaviour_suite!(figures_per_source_and_dead_letters_with_payload, budget_states_show_holds_in_force);

mod cases {
    use std::sync::Arc;
    use std::time::Duration;

    use api_core::RateBudget as _;
    use sync_core::{Fence, ManualClock, NewEvent, SharedClock, State};

    use crate::common::Harness;

    const LEASE: Duration = Duration::from_secs(60);

    pub async fn figures_per_source_and_dead_letters_with_payload(h: &Harness) {
        let clock = Arc::new(ManualClock::starting_now());
        let shared: SharedClock = clock.clone();
        let store = h.open(shared).await;
        let claim = |source: &'static str| {
            let store = store.clone();
            async move { store.claim("w", &[source.to_owned()], 1, LEASE).await.unwrap().remove(0) }
        };

        // kommo: one done two hours ago (outside the one-hour window), one skipped now, one retrying, one queued
        store.ingest(&NewEvent::new("kommo", "old", "a=1")).await.unwrap();
        assert_eq!(store.complete(&claim("kommo").await.lease).await.unwrap(), Fence::Applied);
        clock.advance(Duration::from_secs(2 * 3600));
        store.ingest(&NewEvent::new("kommo", "skip", "a=2")).await.unwrap();
        assert_eq!(store.skip(&claim("kommo").await.lease, "not watched").await.unwrap(), Fence::Applied);
        store.ingest(&NewEvent::new("kommo", "retry", "a=3")).await.unwrap();
        assert_eq!(
            store.retry(&claim("kommo").await.lease, Duration::from_secs(30), "HTTP 503").await.unwrap(),
            Fence::Applied
        );
        clock.advance(Duration::from_secs(10));
        store.ingest(&NewEvent::new("kommo", "queued", "a=4")).await.unwrap();
        clock.advance(Duration::from_secs(5));

        // calendly: a dead letter with headers, and one running
        let mut dead = NewEvent::new("calendly", "d1", r#"{"event":"invitee.created"}"#);
        dead.headers.insert("calendly-webhook-signature".into(), "t=1,v1=ab".into());
        store.ingest(&dead).await.unwrap();
        let d = claim("calendly").await;
        assert_eq!(store.fail(&d.lease, "Kommo: 400").await.unwrap(), Fence::Applied);
        store.ingest(&NewEvent::new("calendly", "r1", "{}")).await.unwrap();
        let _running = claim("calendly").await;

        let figures = store.source_figures(Duration::from_secs(3600)).await.unwrap();
        let k = &figures["kommo"];
        assert_eq!((k.queued, k.retrying, k.running, k.done, k.skipped, k.dead), (2, 1, 0, 2, 1, 0));
        assert_eq!(k.finished_in_window, 1, "the skipped one; the done one is two hours old");
        // the oldest queued row is the retrying one, received 15 s ago
        assert_eq!(k.oldest_queued_age, Some(Duration::from_secs(15)));
        let c = &figures["calendly"];
        assert_eq!((c.queued, c.running, c.dead, c.finished_in_window), (0, 1, 1, 1));
        assert_eq!(c.oldest_queued_age, None);
        // the same totals as `status`
        let status = store.status().await.unwrap();
        assert_eq!(status.dead, c.dead + k.dead);
        assert_eq!(status.depth[&("kommo".to_owned(), State::Queued)], k.queued);

        let letters = store.dead_letters(10).await.unwrap();
        assert_eq!(letters.len(), 1);
        let l = &letters[0];
        assert_eq!((l.row.id, l.row.state, l.row.last_error.as_deref()), (d.id, State::Dead, Some("Kommo: 400")));
        assert_eq!(&l.payload[..], br#"{"event":"invitee.created"}"#);
        assert_eq!(l.headers["calendly-webhook-signature"], "t=1,v1=ab");
        // replayed: no longer listed
        assert!(store.replay(d.id).await.unwrap());
        assert!(store.dead_letters(10).await.unwrap().is_empty());
        store.close().await;
    }

    pub async fn budget_states_show_holds_in_force(h: &Harness) {
        let clock = Arc::new(ManualClock::starting_now());
        let shared: SharedClock = clock.clone();
        let store = h.open(shared).await;
        assert!(store.budget_states().await.unwrap().is_empty());
        let kommo = store.rate_budget("kommo", Duration::from_millis(150));
        let airtable = store.rate_budget("airtable", Duration::from_millis(200));
        let _ = kommo.reserve("acme.kommo.com").await.unwrap();
        let _ = airtable.reserve("appBASE").await.unwrap();
        airtable.pause("appBASE", Duration::from_secs(30)).await.unwrap();
        let states = store.budget_states().await.unwrap();
        let keys: Vec<&str> = states.iter().map(|b| b.key.as_str()).collect();
        assert_eq!(keys, ["airtable:appBASE", "kommo:acme.kommo.com"]);
        let now = sync_core::clock::ms_to_datetime(sync_core::Clock::now_ms(clock.as_ref()));
        assert_eq!(states[0].paused_until, Some(now + chrono::Duration::seconds(30)), "Airtable's 30 s hold");
        assert_eq!(states[1].paused_until, None);
        assert_eq!(states[1].next_at, now + chrono::Duration::milliseconds(150));
        clock.advance(Duration::from_secs(31));
        assert!(store.budget_states().await.unwrap().iter().all(|b| b.paused_until.is_none()), "the hold is over");
        store.close().await;
    }
}
