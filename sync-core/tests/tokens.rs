//! OAuth token sets in the store (`StoreTokenStore`), on SQLite and (with `SYNC_TEST_POSTGRES_URL`) PostgreSQL.
//! "Two processes" are two `Store` handles (two pools) on one SQLite file or PostgreSQL schema.
#![allow(missing_docs, clippy::print_stdout)]

mod common;

behaviour_suite!(
    tokens_save_load_round_trip,
    tokens_seed_never_overwrites,
    tokens_save_if_is_compare_and_swap,
    tokens_claim_has_one_winner_and_expires,
    tokens_two_sessions_spend_each_refresh_token_once,
);

mod cases {
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use api_core::oauth::{AuthError, OAuthSession, Refresher, TokenSet, TokenStore};
    use api_core::{FixedClock, Token};
    use futures::future::BoxFuture;
    use sync_core::{ManualClock, SharedClock, StoreTokenStore, SystemClock};

    use crate::common::Harness;

    fn set(access: &str, refresh: Option<&str>, expires_at: Option<i64>) -> TokenSet {
        TokenSet { access_token: Token::new(access), refresh_token: refresh.map(Token::new), expires_at }
    }

    /// `(access, refresh, expires_at)` of a loaded set, for comparisons.
    fn plain(s: &TokenSet) -> (String, Option<String>, Option<i64>) {
        (s.access_token.expose().to_owned(), s.refresh_token.as_ref().map(|t| t.expose().to_owned()), s.expires_at)
    }

    async fn loaded(store: &StoreTokenStore) -> Option<(String, Option<String>, Option<i64>)> {
        store.load().await.expect("load").map(|s| plain(&s))
    }

    fn owned(a: &str, r: Option<&str>, e: Option<i64>) -> Option<(String, Option<String>, Option<i64>)> {
        Some((a.to_owned(), r.map(str::to_owned), e))
    }

    pub async fn tokens_save_load_round_trip(h: &Harness) {
        let clock: SharedClock = Arc::new(SystemClock);
        let store = h.open(clock.clone()).await;
        let other_process = h.open(clock).await;
        let a = store.token_store("kommo");
        assert_eq!(a.key(), "kommo");
        assert!(a.load().await.expect("load").is_none(), "nothing stored yet");

        a.save(&set("secret-access-1", Some("secret-refresh-1"), Some(1_800_000_000))).await.expect("save");
        assert_eq!(loaded(&a).await, owned("secret-access-1", Some("secret-refresh-1"), Some(1_800_000_000)));
        // another process sees it; another key does not
        let b = other_process.token_store("kommo");
        assert_eq!(loaded(&b).await, owned("secret-access-1", Some("secret-refresh-1"), Some(1_800_000_000)));
        assert!(other_process.token_store("calendly").load().await.expect("load").is_none());

        // save replaces unconditionally, also with no refresh token and no expiry
        b.save(&set("secret-access-2", None, None)).await.expect("save");
        assert_eq!(loaded(&a).await, owned("secret-access-2", None, None));

        // secrets never show in Debug
        let shown = format!("{a:?} {:?}", a.load().await.expect("load"));
        assert!(!shown.contains("secret-"), "{shown}");
        assert!(shown.contains("kommo"), "{shown}");
        store.close().await;
        other_process.close().await;
    }

    /// `seed` writes only into an empty key: a second process seeding the same (by then spent) refresh token
    /// after the first has refreshed does not put it back.
    pub async fn tokens_seed_never_overwrites(h: &Harness) {
        let clock: SharedClock = Arc::new(SystemClock);
        let store = h.open(clock.clone()).await;
        let other_process = h.open(clock).await;
        let a = store.token_store("kommo:acme");
        let b = other_process.token_store("kommo:acme");
        assert!(a.seed(&set("", Some("env-refresh"), Some(0))).await.expect("seed"), "empty key: seeded");
        assert_eq!(loaded(&b).await, owned("", Some("env-refresh"), Some(0)));
        assert!(b.save_if(&Token::new("env-refresh"), &set("a1", Some("r1"), Some(100))).await.expect("save_if"));
        assert!(!b.seed(&set("", Some("env-refresh"), Some(0))).await.expect("seed"), "already stored: not seeded");
        assert_eq!(loaded(&a).await, owned("a1", Some("r1"), Some(100)), "the refreshed pair stays");
        assert!(store.token_store("kommo:other").seed(&set("x", None, None)).await.expect("seed"), "per key");
        store.close().await;
        other_process.close().await;
    }

    pub async fn tokens_save_if_is_compare_and_swap(h: &Harness) {
        let clock: SharedClock = Arc::new(SystemClock);
        let store = h.open(clock.clone()).await;
        let other_process = h.open(clock).await;
        let a = store.token_store("kommo");
        let b = other_process.token_store("kommo");

        // nothing stored: the contract says the store does not hold `expected`, so nothing is written
        assert!(!a.save_if(&Token::new("r0"), &set("a1", Some("r1"), Some(1))).await.expect("save_if"));
        assert!(a.load().await.expect("load").is_none());

        a.save(&set("a1", Some("r1"), Some(100))).await.expect("save");
        // a stale expected token is refused and nothing changes
        assert!(!b.save_if(&Token::new("r0"), &set("a2", Some("r2"), Some(200))).await.expect("save_if"));
        assert_eq!(loaded(&a).await, owned("a1", Some("r1"), Some(100)));
        // the right one is accepted
        assert!(b.save_if(&Token::new("r1"), &set("a2", Some("r2"), Some(200))).await.expect("save_if"));
        assert_eq!(loaded(&a).await, owned("a2", Some("r2"), Some(200)));
        // r1 is spent: a second swap from it is refused
        assert!(!a.save_if(&Token::new("r1"), &set("a2x", Some("r2x"), Some(300))).await.expect("save_if"));
        assert_eq!(loaded(&b).await, owned("a2", Some("r2"), Some(200)));

        // two processes racing to swap from the same token: exactly one wins, and its pair is what is stored
        for round in 0..10 {
            let expected = format!("r{}", round + 2);
            let (na, nb) = (format!("ra{round}"), format!("rb{round}"));
            let sa = set("access-a", Some(&na), None);
            let sb = set("access-b", Some(&nb), None);
            let exp = Token::new(expected);
            let (wa, wb) = tokio::join!(a.save_if(&exp, &sa), b.save_if(&exp, &sb));
            let (wa, wb) = (wa.expect("save_if a"), wb.expect("save_if b"));
            assert!(wa ^ wb, "round {round}: exactly one swap wins (a: {wa}, b: {wb})");
            let stored = a.load().await.expect("load").expect("stored");
            let winner = if wa { &na } else { &nb };
            assert!(
                stored.has_refresh_token(&Token::new(winner.clone())),
                "round {round}: the winner's pair is stored"
            );
            // the next round swaps from a known token again
            a.save(&set("a", Some(&format!("r{}", round + 3)), None)).await.expect("save");
        }
        store.close().await;
        other_process.close().await;
    }

    pub async fn tokens_claim_has_one_winner_and_expires(h: &Harness) {
        let manual = ManualClock::starting_now();
        let clock: SharedClock = Arc::new(manual.clone());
        let store = h.open(clock.clone()).await;
        let other_process = h.open(clock).await;
        let a = store.token_store("kommo");
        let b = other_process.token_store("kommo");
        let r1 = Token::new("r1");

        // nothing stored: nothing to claim
        assert!(!a.claim_refresh(&r1, "p1", 0, 30).await.expect("claim"));
        a.save(&set("a1", Some("r1"), None)).await.expect("save");

        // many claimants in two processes at once: exactly one wins
        let claims = (0..8).map(|i| {
            let (s, r1) = (if i % 2 == 0 { a.clone() } else { b.clone() }, r1.clone());
            async move { s.claim_refresh(&r1, &format!("holder{i}"), 0, 30).await.expect("claim") }
        });
        let won: Vec<bool> = futures::future::join_all(claims).await;
        assert_eq!(won.iter().filter(|w| **w).count(), 1, "exactly one claim wins: {won:?}");
        let winner = format!("holder{}", won.iter().position(|w| *w).unwrap_or_default());

        // the holder may renew; others are refused while the lease lives (whatever their own clocks say)
        assert!(b.claim_refresh(&r1, &winner, 0, 30).await.expect("renew"));
        assert!(!a.claim_refresh(&r1, "late", 1_000_000, 1_000_030).await.expect("claim"));
        // a stale refresh token is never claimed
        assert!(!a.claim_refresh(&Token::new("r0"), "late", 0, 30).await.expect("claim"));

        // the lease expires on the store's clock
        manual.advance(Duration::from_secs(29));
        assert!(!a.claim_refresh(&r1, "late", 0, 30).await.expect("claim"));
        manual.advance(Duration::from_secs(2));
        assert!(a.claim_refresh(&r1, "late", 0, 30).await.expect("claim after expiry"));
        assert!(!b.claim_refresh(&r1, &winner, 0, 30).await.expect("the old holder lost it"));

        // a save ends the claim: the new token is free at once
        assert!(a.save_if(&r1, &set("a2", Some("r2"), None)).await.expect("save_if"));
        assert!(!b.claim_refresh(&r1, &winner, 0, 30).await.expect("spent token"));
        assert!(b.claim_refresh(&Token::new("r2"), &winner, 0, 30).await.expect("claim r2"));
        a.save(&set("a3", Some("r3"), None)).await.expect("save");
        assert!(a.claim_refresh(&Token::new("r3"), "late", 0, 30).await.expect("claim after save"));
        store.close().await;
        other_process.close().await;
    }

    /// A token endpoint whose refresh tokens are single use: it records every refresh token it is sent.
    #[derive(Debug)]
    struct SingleUseRefresher {
        clock: FixedClock,
        state: Mutex<RefresherState>,
    }

    #[derive(Debug, Default)]
    struct RefresherState {
        live: String,
        seen: Vec<String>,
        rejected: usize,
        issued: usize,
        latest_access: String,
    }

    impl Refresher for SingleUseRefresher {
        fn refresh<'a>(&'a self, refresh_token: &'a Token) -> BoxFuture<'a, Result<TokenSet, AuthError>> {
            Box::pin(async move {
                let answer = {
                    let mut st = self.state.lock().unwrap();
                    st.seen.push(refresh_token.expose().to_owned());
                    if refresh_token.expose() == st.live {
                        st.issued += 1;
                        let n = st.issued;
                        st.live = format!("refresh{n}");
                        st.latest_access = format!("access{n}");
                        Ok(set(
                            &format!("access{n}"),
                            Some(&format!("refresh{n}")),
                            Some(self.clock.unix_seconds() + 3600),
                        ))
                    } else {
                        st.rejected += 1;
                        Err(AuthError::Revoked("invalid_grant".into()))
                    }
                };
                // a slow token endpoint widens the window for a second refresh
                tokio::time::sleep(Duration::from_millis(30)).await;
                answer
            })
        }
    }

    use api_core::Clock as _;

    pub async fn tokens_two_sessions_spend_each_refresh_token_once(h: &Harness) {
        let clock: SharedClock = Arc::new(SystemClock);
        let process_a = h.open(clock.clone()).await;
        let process_b = h.open(clock).await;
        let session_clock = FixedClock::at_unix(1_800_000_000);
        let refresher = Arc::new(SingleUseRefresher {
            clock: session_clock.clone(),
            state: Mutex::new(RefresherState { live: "refresh0".into(), ..RefresherState::default() }),
        });
        let session = |store: &sync_core::Store| {
            Arc::new(
                OAuthSession::new(Arc::new(store.token_store("kommo")), refresher.clone())
                    .with_clock(Arc::new(session_clock.clone())),
            )
        };
        let (sa, sb) = (session(&process_a), session(&process_b));
        // expired at once: every round below needs a refresh before any token can be handed out
        sa.install(set("access0", Some("refresh0"), Some(session_clock.unix_seconds()))).await.expect("install");

        for round in 1..=5 {
            let calls = (0..6).map(|i| {
                let s = if i % 2 == 0 { sa.clone() } else { sb.clone() };
                async move { s.access_token().await.map(|t| t.expose().to_owned()) }
            });
            let got: Vec<_> = futures::future::join_all(calls).await;
            let latest = refresher.state.lock().unwrap().latest_access.clone();
            assert_eq!(latest, format!("access{round}"), "round {round}: one refresh per round");
            for g in &got {
                assert_eq!(g.as_deref().ok(), Some(latest.as_str()), "round {round}: every caller gets the new token");
            }
            // both processes' store agrees
            let stored = process_b.token_store("kommo").load().await.expect("load").expect("stored");
            assert_eq!(stored.access_token.expose(), latest);
            session_clock.advance(Duration::from_secs(3600)); // the new pair expires too
        }

        let (seen, rejected) = {
            let st = refresher.state.lock().unwrap();
            (st.seen.clone(), st.rejected)
        };
        let expected: Vec<String> = (0..5).map(|n| format!("refresh{n}")).collect();
        assert_eq!(seen, expected, "each refresh token sent exactly once, in order");
        assert_eq!(rejected, 0);
        process_a.close().await;
        process_b.close().await;
    }
}
