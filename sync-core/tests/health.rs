//! Component health (`Store::set_health` / `Store::health` / `Store::health_forget`), on SQLite and (with
//! `SYNC_TEST_POSTGRES_URL`) PostgreSQL. "Two processes" are two `Store` handles (two pools) on one database.
#![allow(missing_docs, clippy::print_stdout)]

mod common;

behaviour_suite!(health_round_trip_keeps_since_while_the_state_holds, health_per_instance_and_forget);

mod cases {
    use std::sync::Arc;
    use std::time::Duration;

    use sync_core::clock::ms_to_datetime;
    use sync_core::{Clock as _, HealthReport, HealthState, ManualClock, SharedClock};

    use crate::common::Harness;

    pub async fn health_round_trip_keeps_since_while_the_state_holds(h: &Harness) {
        let clock = Arc::new(ManualClock::starting_now());
        let shared: SharedClock = clock.clone();
        let store = h.open(shared.clone()).await;
        let status_process = h.open(shared).await;
        assert!(store.health().await.unwrap().is_empty());

        let t0 = ms_to_datetime(clock.now_ms());
        store.set_health("validation", "a:1", &HealthReport::starting()).await.unwrap();
        clock.advance(Duration::from_secs(5));
        let t1 = ms_to_datetime(clock.now_ms());
        store
            .set_health("validation", "a:1", &HealthReport::failing(1, "Kommo: 503 Service Unavailable"))
            .await
            .unwrap();
        clock.advance(Duration::from_secs(5));
        let t2 = ms_to_datetime(clock.now_ms());
        store.set_health("validation", "a:1", &HealthReport::failing(2, "Airtable: 503")).await.unwrap();

        // another process reads it
        let rows = status_process.health().await.unwrap();
        assert_eq!(rows.len(), 1, "{rows:?}");
        let r = &rows[0];
        assert_eq!((r.component.as_str(), r.instance.as_str()), ("validation", "a:1"));
        assert_eq!(r.state, HealthState::Failing);
        assert_eq!(r.attempts, 2);
        assert_eq!(r.last_error.as_deref(), Some("Airtable: 503"));
        assert_eq!(r.since, t1, "since is when it started failing, not the last report");
        assert_eq!(r.updated_at, t2);
        assert!(r.since > t0);

        clock.advance(Duration::from_secs(5));
        let t3 = ms_to_datetime(clock.now_ms());
        store.set_health("validation", "a:1", &HealthReport::ready()).await.unwrap();
        let r = status_process.health().await.unwrap().remove(0);
        assert_eq!(r.state, HealthState::Ready);
        assert_eq!((r.attempts, r.last_error), (0, None), "ready clears the attempts and the error");
        assert_eq!((r.since, r.updated_at), (t3, t3));
        store.close().await;
        status_process.close().await;
    }

    pub async fn health_per_instance_and_forget(h: &Harness) {
        let clock: SharedClock = Arc::new(ManualClock::starting_now());
        let a = h.open(clock.clone()).await;
        let b = h.open(clock).await;
        a.set_health("webhook:productive", "a:1", &HealthReport::ready()).await.unwrap();
        b.set_health("webhook:productive", "b:2", &HealthReport::failing(4, "timeout")).await.unwrap();
        a.set_health("validation", "a:1", &HealthReport::ready()).await.unwrap();
        let rows = b.health().await.unwrap();
        let seen: Vec<(&str, &str, HealthState, i64)> =
            rows.iter().map(|r| (r.component.as_str(), r.instance.as_str(), r.state, r.attempts)).collect();
        assert_eq!(
            seen,
            vec![
                ("validation", "a:1", HealthState::Ready, 0),
                ("webhook:productive", "a:1", HealthState::Ready, 0),
                ("webhook:productive", "b:2", HealthState::Failing, 4),
            ],
            "one row per component and instance, in order; b did not overwrite a"
        );
        assert_eq!(a.health_forget("a:1").await.unwrap(), 2);
        let rows = b.health().await.unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].instance, "b:2");
        assert_eq!(a.health_forget("a:1").await.unwrap(), 0);
        a.close().await;
        b.close().await;
    }
}
