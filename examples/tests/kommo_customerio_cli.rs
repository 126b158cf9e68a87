//! The `kommo-customerio` binary end to end: `serve` as a real process, configured by the shipped example config
//! (pointed at the in-process fakes on 127.0.0.1, which enforce the vendors' rate limits) and env-var secrets.
#![allow(missing_docs, clippy::print_stdout, clippy::print_stderr)]

use customerio_api::fake::FakeCustomerIo;
use customerio_api::{Identifier, Metric};
use kommo_api::fake::{FakeKommo, SeedLead};
use kommo_api::{EntityType, FieldType};

mod common;
use common::{Cli, free_port, interrupt, lead_notes, post_webhook_to, wait_for};

const BIN: &str = env!("CARGO_BIN_EXE_kommo-customerio");
const SECRET: &str = "cli-test-secret";
const EMAIL: &str = "ada@client.example";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_identifies_tracks_and_notes_and_refuses_forged_reports() {
    let kommo = FakeKommo::start().await.unwrap();
    let cio = FakeCustomerIo::start().await.unwrap();
    let _ = kommo.seed_custom_field(EntityType::Contacts, "Email unsubscribed", FieldType::Checkbox, None, &[]);
    let user = kommo.seed_user("Rita Responsible", "rita@example.com");
    let contact = kommo.seed_contact("Ada Client", Some(EMAIL), Some("+1 555 0100"));
    let (pipeline, stages) = kommo.seed_pipeline("Sales", &["New", "In contact", "Proposal sent"]);

    let shipped = include_str!("../config/kommo-customerio.toml");
    let c = cio.config();
    let text = shipped
        .replace("https://yourcompany.kommo.com", kommo.base_url().as_str().trim_end_matches('/'))
        .replace("# account_id = 12345678", &format!("account_id = {}", kommo.account_id()))
        .replace("\"your-site-id\"", &format!("\"{}\"", c.site_id))
        .replace("[customerio]\n", &format!("[customerio]\nbase_url = \"{}\"\n", cio.base_url()));
    assert_ne!(text, shipped);
    let env = [
        ("KOMMO_TOKEN", "fake-kommo-token"),
        ("KOMMO_WEBHOOK_SECRET", SECRET),
        ("CUSTOMERIO_TRACK_API_KEY", c.track_api_key.as_str()),
        ("CUSTOMERIO_WEBHOOK_SIGNING_KEY", c.webhook_signing_key.as_str()),
    ];
    let cli = Cli::new(BIN, &text, &env);
    let port = free_port();
    let (child, log) = cli.serve(port, "serve.log").await;
    let http = reqwest::Client::new();

    // a deal moves stage in Kommo: the person is identified with the mapped attributes and the event tracked
    let lead = kommo.seed_lead(
        SeedLead::new("Annual plan").price(5_000).responsible(user).contact(contact).stage(pipeline, stages[0]),
    );
    kommo.update_lead(lead, &serde_json::json!({"status_id": stages[2].get()}));
    let body = kommo.webhook_for_lead_status(lead);
    for _ in 0..3 {
        assert_eq!(post_webhook_to(format!("http://127.0.0.1:{port}/hooks/kommo/{SECRET}"), body.clone()).await, 200);
    }
    let who = Identifier::email(EMAIL);
    wait_for("the identify and the tracked event", 60, async || {
        cio.person(&who).is_some() && !cio.events_for(&who).is_empty()
    })
    .await;
    let person = cio.person(&who).unwrap();
    let attrs = serde_json::to_value(&person).unwrap();
    assert!(attrs.to_string().contains("Proposal sent"), "stage attribute: {attrs}");
    assert!(attrs.to_string().contains(&lead.to_string()), "kommo_lead_id attribute: {attrs}");

    // a signed reporting webhook (email opened) becomes a note on the deal; a forged one is refused
    let url = reqwest::Url::parse(&format!("http://127.0.0.1:{port}/hooks/customerio")).unwrap();
    let opened = cio.webhook(&who, Metric::Opened).subject("Your proposal").build();
    let mut forged = http.post(url.clone()).body(opened.body.clone());
    for (k, v) in &opened.headers {
        let v = if k.eq_ignore_ascii_case("x-cio-signature") { "00".repeat(32) } else { v.clone() };
        forged = forged.header(k.as_str(), v);
    }
    assert_eq!(forged.send().await.unwrap().status().as_u16(), 401);
    assert_eq!(opened.deliver(&url).await.unwrap(), 200);
    assert_eq!(opened.deliver(&url).await.unwrap(), 200, "redelivery acknowledged");
    let notes = || lead_notes(&kommo, lead);
    wait_for("the opened note", 60, async || notes().iter().any(|n| n.contains("opened"))).await;

    // a metric the flow does not handle is acknowledged and shows in `status` as skipped
    let delivered = cio.webhook(&who, Metric::Delivered).build();
    assert_eq!(delivered.deliver(&url).await.unwrap(), 200);
    wait_for("the skipped event in status", 60, async || {
        String::from_utf8_lossy(&cli.run("status").await.stdout).contains("metric not handled")
    })
    .await;
    interrupt(child, &log).await;
    assert_eq!(notes().iter().filter(|n| n.contains("opened")).count(), 1, "one note for the redelivered open");
    let text = String::from_utf8_lossy(&cli.run("status").await.stdout).into_owned();
    assert!(text.contains("dead letters: 0"), "{text}");
    assert!(!text.contains("queued") && !text.contains("running"), "{text}");
}
