//! Vendor rate budgets in the store (`StoreBudget`), on SQLite and (with `SYNC_TEST_POSTGRES_URL`) PostgreSQL.
//! "Two processes" are two `Store` handles (two pools) on one SQLite file or PostgreSQL schema. The stores run on a
//! manual clock, so every reservation is made at the same store time and the waits it hands out are exact.
#![allow(missing_docs, clippy::print_stdout)]

mod common;

behaviour_suite!(
    budget_hands_out_each_slot_once_across_processes,
    budget_pause_is_shared_extends_only_and_voids_earlier_slots,
    budget_keys_and_namespaces_are_independent,
    budget_acquire_learns_another_process_hold_while_it_waits,
);

mod cases {
    use std::sync::Arc;
    use std::time::Duration;

    use api_core::RateBudget;
    use sync_core::{ManualClock, SharedClock, StoreBudget};

    use crate::common::Harness;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    pub async fn budget_hands_out_each_slot_once_across_processes(h: &Harness) {
        let clock = ManualClock::starting_now();
        let shared: SharedClock = Arc::new(clock.clone());
        let a = h.open(shared.clone()).await.rate_budget("kommo", ms(50));
        let b = h.open(shared).await.rate_budget("kommo", ms(50));
        // 40 concurrent reservations, half from each process
        let mut tasks = Vec::new();
        for i in 0..40 {
            let budget = if i % 2 == 0 { a.clone() } else { b.clone() };
            tasks.push(tokio::spawn(async move { budget.reserve("acme.kommo.com").await.expect("reserve") }));
        }
        let mut waits = Vec::new();
        for t in tasks {
            waits.push(t.await.expect("task"));
        }
        waits.sort();
        // every slot 50 ms after the previous one, none given twice, none skipped
        let expected: Vec<Duration> = (0..40).map(|i| ms(50 * i)).collect();
        assert_eq!(waits, expected);
        // after the queue drains, the next request goes at once, not at a burst-allowing credit
        clock.advance(Duration::from_secs(10));
        assert_eq!(a.reserve("acme.kommo.com").await.expect("reserve"), Duration::ZERO);
        assert_eq!(b.reserve("acme.kommo.com").await.expect("reserve"), ms(50));
    }

    pub async fn budget_pause_is_shared_extends_only_and_voids_earlier_slots(h: &Harness) {
        let clock = ManualClock::starting_now();
        let shared: SharedClock = Arc::new(clock.clone());
        let spacing = StoreBudget::per_second(5, ms(100));
        assert_eq!(spacing, ms(220));
        let a = h.open(shared.clone()).await.rate_budget("airtable", spacing);
        let b = h.open(shared).await.rate_budget("airtable", spacing);
        assert_eq!(a.spacing(), ms(220));
        assert_eq!(b.reserve("appBase").await.expect("reserve"), Duration::ZERO);
        assert_eq!(RateBudget::held(&b, "appBase").await.expect("held"), None);

        // process A gets a 429: A holds off at once; B's next slot is after the hold, and from that reservation
        // on B knows the hold too (`held` answers from what the last round trip returned)
        RateBudget::pause(&a, "appBase", Duration::from_secs(30)).await.expect("pause");
        assert_eq!(RateBudget::held(&a, "appBase").await.expect("held"), Some(Duration::from_secs(30)));
        assert_eq!(b.reserve("appBase").await.expect("reserve"), Duration::from_secs(30));
        assert_eq!(RateBudget::held(&b, "appBase").await.expect("held"), Some(Duration::from_secs(30)));
        // a shorter pause never shortens the hold
        RateBudget::pause(&b, "appBase", Duration::from_secs(5)).await.expect("pause");
        assert_eq!(RateBudget::held(&a, "appBase").await.expect("held"), Some(Duration::from_secs(30)));

        clock.advance(Duration::from_secs(10));
        assert_eq!(RateBudget::held(&a, "appBase").await.expect("held"), Some(Duration::from_secs(20)));
        clock.advance(Duration::from_secs(20));
        assert_eq!(RateBudget::held(&a, "appBase").await.expect("held"), None);
        // the slot B reserved at the hold's end was taken: the next one is 220 ms later
        assert_eq!(a.reserve("appBase").await.expect("reserve"), ms(220));
    }

    pub async fn budget_keys_and_namespaces_are_independent(h: &Harness) {
        let clock: SharedClock = Arc::new(ManualClock::starting_now());
        let store = h.open(clock).await;
        let kommo = store.rate_budget("kommo", ms(150));
        let airtable = store.rate_budget("airtable", ms(150));
        assert_eq!(kommo.reserve("k1").await.expect("reserve"), Duration::ZERO);
        assert_eq!(kommo.reserve("k1").await.expect("reserve"), ms(150));
        assert_eq!(kommo.reserve("k2").await.expect("reserve"), Duration::ZERO);
        assert_eq!(airtable.reserve("k1").await.expect("reserve"), Duration::ZERO);
        RateBudget::pause(&kommo, "k1", Duration::from_secs(60)).await.expect("pause");
        assert_eq!(RateBudget::held(&kommo, "k1").await.expect("held"), Some(Duration::from_secs(60)));
        assert_eq!(airtable.reserve("k1").await.expect("reserve"), ms(150), "another namespace: no hold");
        assert_eq!(RateBudget::held(&airtable, "k1").await.expect("held"), None);
        assert_eq!(RateBudget::held(&kommo, "k2").await.expect("held"), None);
        // a spacing that is not a whole millisecond is rounded up, never down
        assert_eq!(store.rate_budget("x", Duration::from_micros(142_857)).spacing(), ms(143));
    }

    /// A hold another process records while this one waits for its slot is read back before the slot: the
    /// client's check right before sending (`held`) sees it without a round trip of its own.
    pub async fn budget_acquire_learns_another_process_hold_while_it_waits(h: &Harness) {
        let clock: SharedClock = Arc::new(sync_core::SystemClock);
        let a = h.open(clock.clone()).await.rate_budget("kommo", ms(300));
        let b = h.open(clock).await.rate_budget("kommo", ms(300));
        RateBudget::acquire(&a, "acct").await.expect("first slot, at once");
        let waiting = {
            let a = a.clone();
            tokio::spawn(async move {
                RateBudget::acquire(&a, "acct").await.expect("second slot, 300 ms later");
                RateBudget::held(&a, "acct").await.expect("held")
            })
        };
        tokio::time::sleep(ms(100)).await;
        RateBudget::pause(&b, "acct", Duration::from_secs(60)).await.expect("pause");
        let held = waiting.await.expect("task").expect("A learnt B's hold before its slot");
        assert!(held > Duration::from_secs(59), "{held:?}");
    }
}
