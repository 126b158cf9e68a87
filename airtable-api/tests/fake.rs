//! The fake, exercised through the client.
#![cfg(feature = "fake")]

use std::time::Duration;

use airtable_client::{
    Error, ErrorType, Fields, RecordId, RecordUpdate, WriteOptions,
    fake::{FakeAirtable, FakeConfig, FakeUser, FieldSpec},
    webhook::{ActionSource, ChangeKind, CreateWebhook, WebhookSpecification, verify_mac},
};
use api_core::{RetryPolicy, fake::Fault};
use axum::http::Method;
use futures::TryStreamExt as _;
use serde_json::json;

async fn setup() -> (FakeAirtable, airtable_client::TableId) {
    // functional tests: no server-side rate limit (see `rate_limit_429_and_client_spacing` for it)
    let fake = FakeAirtable::start_with(FakeConfig::unlimited()).await.unwrap();
    let t = fake.add_table_with(
        "Contacts",
        vec![
            FieldSpec::new("Email", "email"),
            FieldSpec::new("Name", "singleLineText"),
            FieldSpec::single_select("Status", &["Lead", "Customer"]),
            FieldSpec::new("Score", "number"),
            FieldSpec::new("Vip", "checkbox"),
        ],
    );
    (fake, t)
}

#[tokio::test]
async fn crud_pagination_filter_and_checkbox() {
    let (fake, _t) = setup().await;
    let client = fake.client_builder().requests_per_second_per_base(None).build().unwrap();
    let table = client.table(fake.id(), "Contacts");
    let recs: Vec<Fields> = (0..25)
        .map(|i| {
            Fields::new().with("Email", format!("u{i}@x.io")).with("Name", format!("U{i}")).with("Score", i64::from(i))
        })
        .collect();
    let created = table.create(recs, WriteOptions::default()).await.unwrap();
    assert_eq!(created.len(), 25);
    assert!(created[0].id.as_str().starts_with("rec"));
    assert_eq!(fake.count(&Method::POST, &format!("/v0/{}/Contacts", fake.id())), 3, "10/10/5");

    let all: Vec<_> = table.list().page_size(10).stream().try_collect().await.unwrap();
    assert_eq!(all.len(), 25);
    assert!(!all[0].get_bool("Vip"), "absent checkbox reads false");

    let hit = table.list().filter_by_formula("{Email}='u7@x.io'").all().await.unwrap();
    assert_eq!(hit.len(), 1);
    assert_eq!(hit[0].get_f64("Score"), Some(7.0));

    let sorted = table.list().sort("Score", airtable_client::Direction::Desc).max_records(3).all().await.unwrap();
    assert_eq!(sorted.iter().map(|r| r.get_f64("Score").unwrap()).collect::<Vec<_>>(), [24.0, 23.0, 22.0]);

    // long formula -> POST listRecords
    let long = format!("OR({})", (0..800).map(|i| format!("{{Email}}='u{i}@x.io'")).collect::<Vec<_>>().join(","));
    let many = table.list().filter_by_formula(long).all().await.unwrap();
    assert_eq!(many.len(), 25);
    assert!(fake.count(&Method::POST, &format!("/v0/{}/Contacts/listRecords", fake.id())) >= 1);

    let id = created[3].id.clone();
    let upd = table
        .update(&[RecordUpdate { id: id.clone(), fields: Fields::new().with("Vip", true) }], WriteOptions::default())
        .await
        .unwrap();
    assert!(upd[0].get_bool("Vip"));
    assert_eq!(upd[0].get_str("Name"), Some("U3"), "PATCH keeps other fields");
    let put = table
        .replace(
            &[RecordUpdate { id: id.clone(), fields: Fields::new().with("Email", "new@x.io") }],
            WriteOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(put[0].get_str("Name"), None, "PUT clears other fields");
    let del = table.delete(std::slice::from_ref(&id)).await.unwrap();
    assert!(del[0].deleted);
    let e = table.get(&id).await.unwrap_err();
    assert!(e.is_not_found(), "{e}");
    assert_eq!(fake.records("Contacts").len(), 24);
}

#[tokio::test]
async fn upsert_semantics_and_typed_errors() {
    let (fake, _t) = setup().await;
    let client = fake.client_builder().requests_per_second_per_base(None).build().unwrap();
    let table = client.table(fake.id(), "Contacts");
    fake.seed("Contacts", &[json!({"Email": "a@x.io", "Name": "A"})]).unwrap();
    let r = table
        .upsert(
            &[
                Fields::new().with("Email", "a@x.io").with("Name", "A2"),
                Fields::new().with("Email", "b@x.io").with("Name", "B"),
            ],
            &["Email"],
            WriteOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(r.updated_records.len(), 1);
    assert_eq!(r.created_records.len(), 1);
    assert_eq!(fake.find("Contacts", "Email", "a@x.io")[0].get_str("Name"), Some("A2"));

    // numeric merge keys match whatever the JSON representation (7 vs 7.0)
    let seeded = fake.seed("Contacts", &[json!({"Email": "n@x.io", "Score": 7})]).unwrap();
    let r = table
        .upsert(&[Fields::new().with("Score", 7.0).with("Name", "N")], &["Score"], WriteOptions::default())
        .await
        .unwrap();
    assert_eq!(r.updated_records, seeded);

    // ambiguity
    fake.seed("Contacts", &[json!({"Email": "dup@x.io"}), json!({"Email": "dup@x.io"})]).unwrap();
    let e = table
        .upsert(&[Fields::new().with("Email", "dup@x.io")], &["Email"], WriteOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(e, Error::UpsertAmbiguous(_)), "{e:?}");

    // unknown select option without typecast, then with typecast
    let e = table.create(vec![Fields::new().with("Status", "Churned")], WriteOptions::default()).await.unwrap_err();
    assert_eq!(e.error_type(), Some(&ErrorType::InvalidMultipleChoiceOptions));
    assert_eq!(e.status().map(|s| s.as_u16()), Some(422));
    let ok = table.create(vec![Fields::new().with("Status", "Churned")], WriteOptions::typecast()).await.unwrap();
    assert_eq!(ok[0].get_str("Status"), Some("Churned"));
    let schema = client.base_schema(&fake.id()).await.unwrap();
    let status = schema.table("Contacts").unwrap().field("Status").unwrap();
    assert!(status.choices().iter().any(|c| c.name == "Churned"));

    // unknown field name
    let e = table.create(vec![Fields::new().with("Nope", "x")], WriteOptions::default()).await.unwrap_err();
    assert_eq!(e.error_type(), Some(&ErrorType::UnknownFieldName));

    // unreachable base: 403 INVALID_PERMISSIONS_OR_MODEL_NOT_FOUND
    let e = client.table("appNOPE", "Contacts").list().all().await.unwrap_err();
    assert_eq!(e.error_type(), Some(&ErrorType::InvalidPermissionsOrModelNotFound));
    assert!(e.is_not_found());
}

#[tokio::test]
async fn expired_offset_is_typed() {
    let (fake, _t) = setup().await;
    let client = fake.client_builder().requests_per_second_per_base(None).build().unwrap();
    let table = client.table(fake.id(), "Contacts");
    fake.seed("Contacts", &(0..5).map(|i| json!({"Email": format!("{i}@x.io")})).collect::<Vec<_>>()).unwrap();
    let list = table.list().page_size(2);
    let p1 = list.page(None).await.unwrap();
    assert!(p1.offset.is_some());
    fake.expire_list_iterators();
    let e = list.page(p1.offset).await.unwrap_err();
    assert!(matches!(e, Error::IteratorExpired(_)), "{e:?}");
}

#[tokio::test]
async fn webhooks_payload_sources_feed_and_signed_pings() {
    let (fake, t) = setup().await;
    // a receiver for pings
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(Option<String>, bytes::Bytes)>();
    let router = axum::Router::new().route(
        "/ping",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: bytes::Bytes| {
            let tx = tx.clone();
            async move {
                let mac = headers.get("x-airtable-content-mac").and_then(|v| v.to_str().ok()).map(str::to_owned);
                let _ = tx.send((mac, body));
                axum::http::StatusCode::NO_CONTENT
            }
        }),
    );
    let receiver = api_core::fake::FakeServer::start(router).await.unwrap();

    let client = fake.client_builder().requests_per_second_per_base(None).build().unwrap();
    let base = fake.id();
    let hook = client
        .create_webhook(
            &base,
            &CreateWebhook {
                notification_url: Some(format!("{}ping", receiver.base_url)),
                specification: WebhookSpecification::table_data(t.as_str()),
            },
        )
        .await
        .unwrap();
    assert!(hook.id.as_str().starts_with("ach"));
    assert!(hook.expiration_time.is_some());

    let table = client.table(base.clone(), t.as_str());
    let rec = table
        .create_one(Fields::new().with("Email", "p@x.io").with("Status", "Lead"), WriteOptions::default())
        .await
        .unwrap();
    fake.user_edit("Contacts", &rec.id, json!({"Status": "Customer"}), &FakeUser::with_email("sam@x.io")).unwrap();

    let (mac, body) = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await.unwrap().unwrap();
    verify_mac(&hook.mac_secret_base64, &body, mac.as_deref()).unwrap();
    let ping =
        airtable_client::WebhookNotification::from_request(&hook.mac_secret_base64, &body, mac.as_deref()).unwrap();
    assert_eq!(ping.webhook.id, hook.id);

    let (payloads, cursor) = client.payload_feed(&base, &hook.id, 1).collect_all().await.unwrap();
    assert_eq!(payloads.len(), 2);
    assert_eq!(cursor, 3);
    assert_eq!(payloads[0].cursor, 1);
    assert_eq!(payloads[0].payload.source(), Some(&ActionSource::PublicApi));
    assert_eq!(payloads[1].payload.source(), Some(&ActionSource::Client));
    assert_eq!(payloads[1].payload.user().unwrap().email.as_deref(), Some("sam@x.io"));
    let changes = payloads[1].payload.record_changes();
    assert_eq!(changes[0].kind, ChangeKind::Updated);
    let status_fld = fake.field_id("Contacts", "Status").unwrap();
    let ch = &changes[0].fields[&status_fld];
    assert_eq!(ch.current.as_ref().unwrap().choice_name(), Some("Customer"), "V2 select object");
    assert_eq!(ch.previous.value().unwrap().choice_name(), Some("Lead"));

    // resuming from the final cursor yields nothing new
    let (again, c2) = client.payload_feed(&base, &hook.id, cursor).collect_all().await.unwrap();
    assert!(again.is_empty());
    assert_eq!(c2, 3);

    let listed = client.list_webhooks(&base).await.unwrap();
    assert_eq!(listed[0].cursor_for_next_payload, 3);
    client.refresh_webhook(&base, &hook.id).await.unwrap();
    client.set_webhook_notifications(&base, &hook.id, false).await.unwrap();
    assert!(!client.list_webhooks(&base).await.unwrap()[0].are_notifications_enabled);
    client.delete_webhook(&base, &hook.id).await.unwrap();
    assert!(fake.webhooks().is_empty());
}

#[tokio::test]
async fn rate_limit_429_and_client_spacing() {
    let fake =
        FakeAirtable::start_with(FakeConfig { penalty_after_429: Duration::from_millis(300), ..FakeConfig::default() })
            .await
            .unwrap();
    let _ = fake.add_table("T", &[("Name", "singleLineText")]);
    // no client-side limiter, no retries: the fake answers 429
    let raw =
        fake.client_builder().requests_per_second_per_base(None).retry_policy(RetryPolicy::none()).build().unwrap();
    let t = raw.table(fake.id(), "T");
    let mut saw = None;
    for _ in 0..8 {
        if let Err(e) = t.list().all().await {
            saw = Some(e);
            break;
        }
    }
    let e = saw.expect("a 429");
    assert_eq!(e.status().map(|s| s.as_u16()), Some(429));
    assert_eq!(e.retry_after(), Some(Duration::from_secs(30)));
    assert!(!e.may_have_been_sent());
    assert!(fake.throttled_count() >= 1);

    // with the client's 5/s limiter: 12 requests, no 429
    fake.reset_rate_limit();
    let before = fake.throttled_count();
    let good = fake.client_builder().build().unwrap();
    let t = good.table(fake.id(), "T");
    for _ in 0..12 {
        t.list().all().await.unwrap();
    }
    assert_eq!(fake.throttled_count(), before);
}

#[tokio::test]
async fn injected_faults_are_retried_for_reads() {
    let (fake, _t) = setup().await;
    let client = fake
        .client_builder()
        .requests_per_second_per_base(None)
        .retry_policy(RetryPolicy { base_delay: Duration::from_millis(1), ..RetryPolicy::default() })
        .build()
        .unwrap();
    let path = format!("/v0/{}/Contacts", fake.id());
    fake.faults().inject(
        Some(Method::GET),
        &path,
        Fault::json(503, &json!({"error": {"type": "SERVICE_UNAVAILABLE"}})),
        2,
    );
    client.table(fake.id(), "Contacts").list().all().await.unwrap();
    assert_eq!(fake.count(&Method::GET, &path), 3);
    // a create is not retried after a 503
    fake.faults().inject(Some(Method::POST), &path, Fault::json(503, &json!({"error": "SERVICE_UNAVAILABLE"})), 1);
    let e = client
        .table(fake.id(), "Contacts")
        .create(vec![Fields::new().with("Name", "x")], WriteOptions::default())
        .await;
    assert_eq!(e.unwrap_err().status().map(|s| s.as_u16()), Some(503));
    assert_eq!(fake.records("Contacts").len(), 0);
    let _ = RecordId::from("recX");
}

#[tokio::test]
async fn webhook_filters_links_and_error_payloads() {
    let fake = FakeAirtable::start_with(FakeConfig::unlimited()).await.unwrap();
    let companies = fake.add_table("Companies", &[("Name", "singleLineText")]);
    let people = fake.add_table_with(
        "People",
        vec![
            FieldSpec::new("Email", "email"),
            FieldSpec::new("Note", "multilineText"),
            FieldSpec::link("Company", &companies),
        ],
    );
    let acme = fake.seed("Companies", &[json!({"Name": "Acme"})]).unwrap().remove(0);
    let client = fake.client();
    let base = fake.id();
    let email_fld = fake.field_id("People", "Email").unwrap();
    // only UI changes, only the Email field
    let mut spec = WebhookSpecification::table_data(people.as_str());
    spec.options.filters.from_sources = vec![ActionSource::Client];
    spec.options.filters.watch_data_in_field_ids = vec![email_fld.clone()];
    let ui_only =
        client.create_webhook(&base, &CreateWebhook { notification_url: None, specification: spec }).await.unwrap();
    let all = client
        .create_webhook(
            &base,
            &CreateWebhook { notification_url: None, specification: WebhookSpecification::table_data(people.as_str()) },
        )
        .await
        .unwrap();

    let t = client.table(base.clone(), "People");
    let r = t
        .create_one(Fields::new().with("Email", "a@x.io").with("Company", vec![acme.clone()]), WriteOptions::default())
        .await
        .unwrap();
    fake.user_edit("People", &r.id, json!({"Note": "hello"}), &FakeUser::default()).unwrap();
    fake.user_edit("People", &r.id, json!({"Email": "b@x.io"}), &FakeUser::default()).unwrap();

    let ui = fake.payloads(&ui_only.id);
    assert_eq!(ui.len(), 1, "publicApi create and the Note edit are filtered out");
    assert_eq!(ui[0].record_changes()[0].fields.keys().collect::<Vec<_>>(), [&email_fld]);
    let every = fake.payloads(&all.id);
    assert_eq!(every.len(), 3);
    let created = &every[0].record_changes()[0];
    assert_eq!(created.kind, ChangeKind::Created);
    let link = created.fields[&fake.field_id("People", "Company").unwrap()].current.clone().unwrap();
    assert_eq!(link.ref_ids(), [acme.as_str()]);
    assert_eq!(link.ref_names(), ["Acme"], "V2 links carry the primary value");
    assert!(every.windows(2).all(|w| w[0].base_transaction_number < w[1].base_transaction_number));

    // an error payload comes through the feed typed
    fake.push_payload(
        &all.id,
        json!({"timestamp": "2022-02-01T21:25:05.663Z", "baseTransactionNumber": 99,
        "payloadFormat": "v0", "error": true, "code": "INVALID_FILTERS"}),
    );
    let (ps, cursor) = client.payload_feed(&base, &all.id, 3).collect_all().await.unwrap();
    assert_eq!(ps.len(), 2);
    assert!(ps[1].payload.is_error());
    assert_eq!(cursor, 5);

    // refresh extends, an expired hook cannot be refreshed
    let before = fake.webhooks().into_iter().find(|h| h.id == all.id).unwrap().expiration_time.unwrap();
    let after = client.refresh_webhook(&base, &all.id).await.unwrap().expiration_time.unwrap();
    assert!(after >= before);
    fake.expire_webhook(&all.id);
    assert!(client.refresh_webhook(&base, &all.id).await.is_err());
    assert!(!client.list_webhooks(&base).await.unwrap().iter().find(|h| h.id == all.id).unwrap().is_hook_enabled);
}

#[tokio::test]
async fn fake_enforces_batch_limit_and_auth() {
    let fake = FakeAirtable::start_with(FakeConfig::unlimited()).await.unwrap();
    let _ = fake.add_table("T", &[("Name", "singleLineText")]);
    let http = reqwest::Client::new();
    let url = format!("{}/{}/T", fake.base_url(), fake.id());
    let records: Vec<_> = (0..11).map(|i| json!({"fields": {"Name": format!("n{i}")}})).collect();
    let resp = http
        .post(&url)
        .bearer_auth(airtable_client::fake::FAKE_TOKEN)
        .json(&json!({"records": records}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 422);
    assert!(fake.records("T").is_empty(), "nothing applied");
    let resp = http.get(&url).bearer_auth("patWRONG").send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    let resp = http.get(format!("{url}/recNOPE")).bearer_auth(airtable_client::fake::FAKE_TOKEN).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 404);
    assert_eq!(resp.json::<serde_json::Value>().await.unwrap(), json!({"error": "NOT_FOUND"}));
}

#[tokio::test]
async fn no_ping_when_notifications_disabled() {
    let fake = FakeAirtable::start_with(FakeConfig::unlimited()).await.unwrap();
    let t = fake.add_table("T", &[("Name", "singleLineText")]);
    let client = fake.client();
    let hook = client
        .create_webhook(
            &fake.id(),
            &CreateWebhook {
                notification_url: Some("http://127.0.0.1:9/unreachable".into()),
                specification: WebhookSpecification::table_data(t.as_str()),
            },
        )
        .await
        .unwrap();
    client.set_webhook_notifications(&fake.id(), &hook.id, false).await.unwrap();
    client.table(fake.id(), "T").create_one(Fields::new().with("Name", "x"), WriteOptions::default()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(fake.pings().is_empty());
    assert_eq!(fake.payloads(&hook.id).len(), 1, "payloads still accumulate");
}

// ------------------------------------------------------------------------------------------------------------
// Airtable's rate limit, enforced strictly (api-notes/airtable.md C.4, OFFICIAL rate-limits: "5 requests per second
// per base … you will receive a 429 status code and will need to wait 30 seconds before subsequent requests will
// succeed"), on tokio's paused clock through the in-process transport: no wall-clock sleeps.

use airtable_client::fake::Latency;
use api_core::Request;
use tokio::time::Instant;

async fn probe(t: &dyn api_core::Transport, base: &airtable_client::BaseId) -> u16 {
    let url = url::Url::parse(&format!("http://airtable.fake.invalid/v0/{base}/T")).unwrap();
    let auth = http::HeaderValue::from_str(&format!("Bearer {}", airtable_client::fake::FAKE_TOKEN)).unwrap();
    t.send(url, Request::get("/").header(http::header::AUTHORIZATION, auth)).await.unwrap().status.as_u16()
}

#[tokio::test(start_paused = true)]
async fn strict_fake_sliding_second_on_arrival_then_30_s_hold() {
    let fake = FakeAirtable::start().await.unwrap();
    let _ = fake.add_table("T", &[("Name", "singleLineText")]);
    let t = fake.transport(Latency::default());
    let start = Instant::now();
    let at = |ms: u64| tokio::time::sleep_until(start + Duration::from_millis(ms));
    for i in 0..5 {
        at(i * 10).await;
        assert_eq!(probe(&*t, &fake.id()).await, 200);
    }
    // a 6th arrival exactly 1 s after the 1st is admitted: the 1st has left the window (now - t = 1 s)
    at(1000).await;
    assert_eq!(probe(&*t, &fake.id()).await, 200, "window is [now - 1 s, now): the 1st request left it");
    // 5 arrived within the last second (10, 20, 30, 40, 1000 ms): the next one before 1010 ms is refused — no slack
    at(1009).await;
    assert_eq!(probe(&*t, &fake.id()).await, 429);
    assert_eq!(fake.throttled_count(), 1);
    // and the base is held for 30 s from that 429, whatever the window says
    at(20_000).await;
    assert_eq!(probe(&*t, &fake.id()).await, 429);
    at(31_008).await;
    assert_eq!(probe(&*t, &fake.id()).await, 429);
    at(31_009).await;
    assert_eq!(probe(&*t, &fake.id()).await, 200);
    assert_eq!(fake.throttled_count(), 3);
}

/// The client against the strict fake with network jitter: 1,000 records upserted (100 requests of 10) never draw a
/// 429 and still run at ≥ 45 records/s (90 % of the 50/s ceiling) — sequentially with 50 ms + up to 60 ms one-way
/// latency each way (a round trip stays under the 220 ms spacing), and by 4 clones at once with up to 100 ms of
/// jitter (two arrivals up to 100 ms closer than their sends: the default margin's worth).
#[tokio::test(start_paused = true)]
async fn upsert_1000_records_against_the_strict_fake_with_jitter_draws_no_429() {
    let fake = FakeAirtable::start().await.unwrap();
    let _ = fake
        .add_table_with("Contacts", vec![FieldSpec::new("Email", "email"), FieldSpec::new("Name", "singleLineText")]);
    let records = |from: usize, n: usize| -> Vec<Fields> {
        (from..from + n)
            .map(|i| Fields::new().with("Email", format!("u{i}@example.com")).with("Name", format!("User {i}")))
            .collect()
    };
    let client = fake
        .in_process_client_builder(Latency::new(Duration::from_millis(50), Duration::from_millis(60), 7))
        .build()
        .unwrap();
    let table = client.table(fake.id(), "Contacts");
    let start = Instant::now();
    let r = table.upsert(&records(0, 1000), &["Email"], WriteOptions::default()).await.unwrap();
    let secs = (Instant::now() - start).as_secs_f64();
    assert_eq!(r.created_records.len(), 1000);
    assert_eq!(fake.throttled_count(), 0, "429s against the strict fake");
    assert!(1000.0 / secs >= 45.0, "{:.1} records/s", 1000.0 / secs);

    // four clones of one client writing at once share the budget
    let client = fake
        .in_process_client_builder(Latency::new(Duration::from_millis(50), Duration::from_millis(100), 11))
        .build()
        .unwrap();
    let table = client.table(fake.id(), "Contacts");
    let start = Instant::now();
    let mut tasks = Vec::new();
    for k in 0..4 {
        let table = table.clone();
        let batch = records(1000 + k * 250, 250);
        tasks.push(tokio::spawn(async move { table.upsert(&batch, &["Email"], WriteOptions::default()).await }));
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let secs = (Instant::now() - start).as_secs_f64();
    assert_eq!(fake.throttled_count(), 0, "429s with concurrent clones");
    assert!(1000.0 / secs >= 45.0, "{:.1} records/s", 1000.0 / secs);
    assert_eq!(fake.records("Contacts").len(), 2000);
}

/// "Payloads are deleted from Airtable's servers after 1 week whether or not the client has seen them. The cursor
/// value for the next payload is never reset" (api-notes/airtable.md A.8): a feed resumed from an older cursor must
/// report the lost payloads (`cursor - payloads.len() > requested cursor`) as a typed error, then go on.
#[tokio::test(start_paused = true)]
async fn payload_feed_reports_payloads_expired_unread_then_goes_on() {
    let fake = FakeAirtable::start_with(FakeConfig::unlimited()).await.unwrap();
    let t = fake.add_table("T", &[("Name", "singleLineText")]);
    let client = fake.in_process_client_builder(Latency::default()).build().unwrap();
    let base = fake.id();
    let hook = client
        .create_webhook(
            &base,
            &CreateWebhook { notification_url: None, specification: WebhookSpecification::table_data(t.as_str()) },
        )
        .await
        .unwrap();
    let table = client.table(base.clone(), t.as_str());
    for name in ["a", "b", "c"] {
        table.create_one(Fields::new().with("Name", name), WriteOptions::default()).await.unwrap();
    }
    // a week and a second later, the three payloads (cursors 1..=3) are gone; two new ones arrive
    tokio::time::advance(Duration::from_secs(7 * 24 * 3600 + 1)).await;
    for name in ["d", "e"] {
        table.create_one(Fields::new().with("Name", name), WriteOptions::default()).await.unwrap();
    }
    let mut feed = client.payload_feed(&base, &hook.id, 1);
    let gap = match feed.next().await {
        Some(Err(Error::PayloadsExpired(gap))) => gap,
        other => panic!("expected the gap first, got {other:?}"),
    };
    assert_eq!((gap.requested, gap.first_available, gap.lost()), (1, 4, 3));
    assert_eq!(gap.webhook, hook.id);
    assert_eq!(feed.cursor(), 4, "the feed's cursor is past the gap");
    let mut cursors = Vec::new();
    while let Some(p) = feed.next().await {
        cursors.push(p.unwrap().cursor);
    }
    assert_eq!(cursors, [4, 5]);
    assert_eq!(feed.cursor(), 6);

    // explicit expiry; a feed that is up to date sees no gap
    table.create_one(Fields::new().with("Name", "f"), WriteOptions::default()).await.unwrap();
    let (got, cursor) = client.payload_feed(&base, &hook.id, 6).collect_all().await.unwrap();
    assert_eq!((got.len(), cursor), (1, 7));
    table.create_one(Fields::new().with("Name", "g"), WriteOptions::default()).await.unwrap();
    fake.expire_payloads(&hook.id, 10);
    let e = client.payload_feed(&base, &hook.id, 7).collect_all().await.unwrap_err();
    assert_eq!(e.payload_gap().map(|g| (g.first_available, g.lost())), Some((8, 1)), "{e}");
    assert_eq!(client.list_webhooks(&base).await.unwrap()[0].cursor_for_next_payload, 8);
}
