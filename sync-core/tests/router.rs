//! The ingest router: 401, 413, 400, 404, duplicate 200 with one row, health probes, counters.
#![cfg(feature = "server")]
#![allow(missing_docs, clippy::print_stdout)]

use std::sync::Arc;
use std::sync::atomic::Ordering;

use async_trait::async_trait;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use sha2::Digest;
use sync_core::server::{FnVerifier, PathToken, SourceRoute, VerifyRequest, router};
use sync_core::{BoxError, Ctx, Engine, Event, Flow, KeyError, Outcome, RawEvent, State, Store, SystemClock};
use tower::ServiceExt;

#[derive(Debug)]
struct JsonFlow;

#[async_trait]
impl Flow for JsonFlow {
    fn name(&self) -> &str {
        "json"
    }
    fn sources(&self) -> Vec<String> {
        vec!["signed".into(), "kommo".into()]
    }
    fn dedup_key(&self, e: &RawEvent<'_>) -> Result<String, KeyError> {
        let v: serde_json::Value =
            serde_json::from_slice(e.body).map_err(|err| KeyError(format!("invalid JSON: {err}")))?;
        v.get("id")
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| KeyError("missing `id`".into()))
    }
    async fn handle(&self, _: &Ctx, _: &Event) -> Result<Outcome, BoxError> {
        Ok(Outcome::Done)
    }
}

fn sign(body: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest([b"secret".as_slice(), body].concat()))
}

fn signature_check(r: &VerifyRequest<'_>) -> Result<(), String> {
    let got = r.headers.get("x-signature").ok_or("missing x-signature")?;
    if sync_core::server::constant_time_eq(got.as_bytes(), sign(r.body).as_bytes()) {
        Ok(())
    } else {
        Err("bad signature".into())
    }
}

async fn setup() -> (axum::Router, Arc<sync_core::server::ServerStats>, Store) {
    let store = Store::memory(Arc::new(SystemClock)).await.unwrap();
    let engine = Engine::new(store.clone(), vec![Arc::new(JsonFlow)]).unwrap();
    let (r, stats) = router(
        engine,
        vec![
            SourceRoute::new("signed", FnVerifier(signature_check)).body_limit(256).keep_headers(["x-signature"]),
            SourceRoute::new("kommo", PathToken::new("tok-123")),
        ],
    )
    .unwrap();
    (r, stats, store)
}

async fn send(r: &axum::Router, uri: &str, body: &[u8], sig: Option<&str>) -> (StatusCode, String) {
    let mut req = Request::post(uri).header("content-type", "application/json");
    if let Some(sig) = sig {
        req = req.header("x-signature", sig);
    }
    let resp = r.clone().oneshot(req.body(Body::from(body.to_vec())).unwrap()).await.unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

async fn rows(store: &Store) -> i64 {
    store.status().await.unwrap().depth.values().sum()
}

#[tokio::test]
async fn signed_source() {
    let (r, stats, store) = setup().await;
    let body = br#"{"id":"evt_1","x":1}"#;
    let (s, b) = send(&r, "/hooks/signed", body, Some(&sign(body))).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert!(b.contains("accepted"));
    let (s, b) = send(&r, "/hooks/signed", body, Some(&sign(body))).await;
    assert_eq!(s, StatusCode::OK);
    assert!(b.contains("duplicate"), "{b}");
    assert_eq!(rows(&store).await, 1, "duplicate stored once");

    let (s, _) = send(&r, "/hooks/signed", br#"{"id":"evt_2"}"#, Some(&sign(body))).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "signature of another body");
    let (s, _) = send(&r, "/hooks/signed", br#"{"id":"evt_2"}"#, None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let big = format!(r#"{{"id":"evt_3","pad":"{}"}}"#, "x".repeat(300));
    let (s, _) = send(&r, "/hooks/signed", big.as_bytes(), Some(&sign(big.as_bytes()))).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
    let (s, b) = send(&r, "/hooks/signed", b"{not json", Some(&sign(b"{not json"))).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(b.contains("invalid JSON"), "{b}");
    let (s, _) = send(&r, "/hooks/nope", body, None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(rows(&store).await, 1, "nothing written by rejected requests");

    assert_eq!(stats.accepted.load(Ordering::Relaxed), 1);
    assert_eq!(stats.duplicates.load(Ordering::Relaxed), 1);
    assert_eq!(stats.unauthorized.load(Ordering::Relaxed), 2);
    assert_eq!(stats.too_large.load(Ordering::Relaxed), 1);
    assert_eq!(stats.malformed.load(Ordering::Relaxed), 1);
    assert_eq!(stats.unknown_source.load(Ordering::Relaxed), 1);

    let ev = store.claim("w", &["signed".to_owned()], 1, std::time::Duration::from_secs(10)).await.unwrap();
    assert_eq!(ev[0].headers.get("x-signature").map(String::as_str), Some(sign(body).as_str()), "kept header");
    assert_eq!(ev[0].payload.as_ref(), body.as_slice(), "raw body stored byte for byte");
}

#[tokio::test]
async fn path_token_source() {
    let (r, stats, store) = setup().await;
    let body = br#"{"id":"lead-1"}"#;
    assert_eq!(send(&r, "/hooks/kommo", body, None).await.0, StatusCode::UNAUTHORIZED, "token missing");
    assert_eq!(send(&r, "/hooks/kommo/wrong", body, None).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(send(&r, "/hooks/kommo/tok-123", body, None).await.0, StatusCode::OK);
    assert_eq!(rows(&store).await, 1);
    assert_eq!(stats.unauthorized.load(Ordering::Relaxed), 2);
    assert_eq!(store.list(State::Queued, 10).await.unwrap()[0].source, "kommo");
}

#[tokio::test]
async fn health_probes() {
    let (r, _, store) = setup().await;
    let get = |uri: &'static str| {
        let r = r.clone();
        async move { r.oneshot(Request::get(uri).body(Body::empty()).unwrap()).await.unwrap().status() }
    };
    assert_eq!(get("/healthz").await, StatusCode::OK);
    assert_eq!(get("/readyz").await, StatusCode::OK);
    store.close().await;
    assert_eq!(get("/readyz").await, StatusCode::SERVICE_UNAVAILABLE);
}

/// `/readyz` stays 200 while the database answers and lists the components' health in its body: `starting`
/// until every component is ready, `degraded` while one fails, `ready` when all are.
#[tokio::test]
async fn readyz_lists_component_health_and_stays_200() {
    use sync_core::HealthReport;
    let (r, _, store) = setup().await;
    let get = || {
        let r = r.clone();
        async move {
            let resp = r.oneshot(Request::get("/readyz").body(Body::empty()).unwrap()).await.unwrap();
            let status = resp.status();
            let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20).await.unwrap();
            (status, serde_json::from_slice::<serde_json::Value>(&bytes).unwrap())
        }
    };
    let (status, body) = get().await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "ready", "{body}");
    assert_eq!(body["components"].as_array().unwrap().len(), 0, "{body}");

    store.set_health("validation", "host:1", &HealthReport::starting()).await.unwrap();
    store.set_health("webhook:productive", "host:1", &HealthReport::ready()).await.unwrap();
    let (status, body) = get().await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "starting", "{body}");

    store.set_health("validation", "host:1", &HealthReport::failing(2, "Kommo answered 503")).await.unwrap();
    let (status, body) = get().await;
    assert_eq!(status, StatusCode::OK, "a failing vendor does not make the receiver unready");
    assert_eq!(body["status"], "degraded", "{body}");
    assert_eq!(body["database"], "ok", "{body}");
    let v = &body["components"][0];
    assert_eq!(v["component"], "validation", "{body}");
    assert_eq!(v["instance"], "host:1", "{body}");
    assert_eq!(v["state"], "failing", "{body}");
    assert_eq!(v["attempts"], 2, "{body}");
    assert_eq!(v["last_error"], "Kommo answered 503", "{body}");
    assert!(v["since"].as_str().unwrap().ends_with('Z'), "{body}");
    assert_eq!(body["components"][1]["state"], "ready", "{body}");

    store.set_health("validation", "host:1", &HealthReport::ready()).await.unwrap();
    let (_, body) = get().await;
    assert_eq!(body["status"], "ready", "{body}");
    assert_eq!(body["components"][0]["last_error"], serde_json::Value::Null, "{body}");

    store.close().await;
    let (status, body) = get().await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["status"], "unavailable", "{body}");
}

#[test]
fn route_for_unknown_source_is_refused() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let store = Store::memory(Arc::new(SystemClock)).await.unwrap();
        let engine = Engine::new(store, vec![Arc::new(JsonFlow)]).unwrap();
        assert!(router(engine, vec![SourceRoute::new("other", PathToken::new("x"))]).is_err());
    });
}
