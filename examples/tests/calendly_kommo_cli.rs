//! The `calendly-kommo` binary end to end: `serve` as a real process with the shipped example config pointed at
//! the in-process fakes, tokens from the environment. `serve` creates the Calendly webhook subscription itself
//! (with a signing key it generates and stores), and the fake Calendly delivers bookings to it as they happen.
#![allow(missing_docs, clippy::print_stdout, clippy::print_stderr)]

use calendly_api::fake::{Booking, DEFAULT_TOKEN, FakeCalendly, FakeConfig as CalConfig};
use kommo_api::EntityType;
use kommo_api::fake::{FakeKommo, SeedLead};
use kommo_api::tasks::TASK_TYPE_MEETING;

mod common;
use common::{Cli, free_port, interrupt, wait_for};

const BIN: &str = env!("CARGO_BIN_EXE_calendly-kommo");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_subscribes_and_turns_a_booking_into_a_meeting_task() {
    let kommo = FakeKommo::start().await.unwrap();
    let cal = FakeCalendly::start_with(CalConfig { auto_deliver: true, ..CalConfig::default() }).await.unwrap();
    let owner = kommo.seed_user("Mia Manager", "mia@agency.example");
    let contact = kommo.seed_contact("Ivan Petrov", Some("ivan@example.com"), None);
    let lead = kommo.seed_lead(SeedLead::new("Ivan's deal").contact(contact).responsible(owner));

    let port = free_port();
    let shipped = include_str!("../config/calendly-kommo.toml");
    let text = shipped
        .replace("https://yourcompany.kommo.com", kommo.base_url().as_str().trim_end_matches('/'))
        .replace(
            "[calendly]\n",
            &format!("[calendly]\nbase_url = \"{}\"\n", cal.base_url().as_str().trim_end_matches('/')),
        )
        .replace("https://sync.yourcompany.com/hooks/calendly", &format!("http://127.0.0.1:{port}/hooks/calendly"));
    assert_ne!(text, shipped);
    let env = [("KOMMO_TOKEN", "fake-kommo-token"), ("CALENDLY_TOKEN", DEFAULT_TOKEN)];
    let cli = Cli::new(BIN, &text, &env);
    let (child, log) = cli.serve(port, "serve.log").await;
    let subs = cal.subscriptions();
    assert_eq!(subs.len(), 1, "serve created the subscription");
    assert_eq!(subs[0].subscription.callback_url, format!("http://127.0.0.1:{port}/hooks/calendly"));

    // Ivan books: Calendly posts invitee.created to serve, a meeting task lands on his open deal
    let start = chrono::Utc::now() + chrono::Duration::hours(30);
    let booked = cal.book(Booking::new("ivan@example.com", "Ivan Petrov", start));
    let tasks = || kommo.tasks_for(EntityType::Leads, lead.get());
    wait_for("the meeting task", 60, async || !tasks().is_empty()).await;
    let task = &tasks()[0];
    assert_eq!(task.task_type_id, i64::try_from(TASK_TYPE_MEETING).ok(), "{task:?}");
    assert_eq!(task.responsible_user_id, Some(owner));
    assert!(task.text.contains("Ivan Petrov"), "{}", task.text);

    // a forged delivery (wrong key) is refused; a redelivery of the genuine one changes nothing
    let http = reqwest::Client::new();
    assert_eq!(booked.webhooks[0].forged().post(&http).await.unwrap(), 401);
    assert_eq!(cal.deliver(&booked.webhooks[0]).await.unwrap(), 200);
    wait_for("an empty queue", 30, async || {
        let out = String::from_utf8_lossy(&cli.run("status").await.stdout).into_owned();
        !out.contains("queued") && !out.contains("running")
    })
    .await;
    interrupt(child, &log).await;
    assert_eq!(tasks().len(), 1, "one task for one booking");
    let text = String::from_utf8_lossy(&cli.run("status").await.stdout).into_owned();
    assert!(text.contains("dead letters: 0"), "{text}");
}
