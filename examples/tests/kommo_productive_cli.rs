//! The `kommo-productive` binary end to end: `serve` as a real process with the shipped example config pointed at
//! the in-process fakes (which enforce the vendors' rate limits), secrets from the environment. `serve` creates
//! the Productive webhooks itself (`[serve] public_url`) and verifies their deliveries with the tokens it got.
#![allow(missing_docs, clippy::print_stdout, clippy::print_stderr)]

use kommo_api::fake::{FakeKommo, SeedLead};
use kommo_api::{EntityType, FieldType, StatusId};
use productive_api::fake::FakeProductive;
use productive_api::resources::projects::ProjectAttributes;

mod common;
use common::{Cli, free_port, interrupt, lead_notes, wait_for};

const BIN: &str = env!("CARGO_BIN_EXE_kommo-productive");
const SECRET: &str = "cli-test-secret";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_kicks_off_a_won_deal_and_notes_completed_tasks() {
    let kommo = FakeKommo::start().await.unwrap();
    let (pipeline, stages) = kommo.seed_pipeline("Sales", &["Qualified", "Proposal sent"]);
    // the names the shipped config uses
    let anna = kommo.seed_user("Anna Sales", "sales.anna@agency.com");
    let field =
        kommo.seed_custom_field(EntityType::Leads, "Service type", FieldType::Select, None, &["Website", "Branding"]);
    let productive = FakeProductive::start().await.unwrap();
    let pm = productive.seed_person("Pat", "Manager", "pm@agency.com");
    productive.seed_person("Dee", "Developer", "dev@agency.com");
    productive.seed_person("Dana", "Designer", "design@agency.com");
    for t in ["Design", "Development", "Branding"] {
        productive.seed_service_type(t);
    }
    let template = productive.seed_template_project("Website template", &pm, &["Kick-off call", "Launch"]);

    let port = free_port();
    let shipped = include_str!("../config/kommo-productive.toml");
    let pc = productive.config();
    let text = shipped
        .replace(
            "kommo_base_url = \"https://yourcompany.kommo.com\"",
            &format!(
                "kommo_base_url = \"{}\"\nproductive_base_url = \"{}\"",
                kommo.base_url().as_str().trim_end_matches('/'),
                productive.base_url()
            ),
        )
        .replace("public_url = \"https://sync.example.com\"", &format!("public_url = \"http://127.0.0.1:{port}\""))
        .replace("pipeline_id = 1234567", &format!("pipeline_id = {pipeline}"))
        .replace("# account_id = 30739638", &format!("account_id = {}", kommo.account_id()))
        .replace("organization_id = \"12345\"", &format!("organization_id = \"{}\"", pc.organization_id))
        .replace("template_project_id = \"987654\"", &format!("template_project_id = \"{template}\""))
        .replace("copy_poll_interval_ms = 1000", "copy_poll_interval_ms = 50");
    assert_ne!(text, shipped);
    let env = [
        ("KOMMO_TOKEN", "fake-kommo-token"),
        ("PRODUCTIVE_TOKEN", pc.token.as_str()),
        ("KOMMO_WEBHOOK_SECRET", SECRET),
    ];
    let cli = Cli::new(BIN, &text, &env);
    let (child, log) = cli.serve(port, "serve.log").await;
    let hooks = productive.all::<productive_api::resources::webhooks::WebhookAttributes>();
    assert_eq!(hooks.len(), 2, "serve created the task-updated and budget-updated webhooks: {hooks:?}");

    // a Website deal is won: one project (copied from the template), and a note with its link on the lead
    let website = kommo.enum_id(field, "Website").unwrap();
    let lead = kommo.seed_lead(
        SeedLead::new("Website relaunch")
            .price(12_000)
            .stage(pipeline, stages[0])
            .responsible(anna)
            .field(field, serde_json::json!({"enum_id": website.get()}))
            .company(kommo.seed_company("Acme GmbH")),
    );
    kommo.set_lead_status(lead, pipeline, StatusId::WON);
    let url = format!("http://127.0.0.1:{port}/hooks/kommo/{SECRET}");
    let body = kommo.webhook_for_lead_status(lead);
    for _ in 0..2 {
        assert_eq!(kommo_api::fake::post_webhook(&url, &body).await.unwrap().as_u16(), 200);
    }
    let projects = || {
        productive
            .all::<ProjectAttributes>()
            .into_iter()
            .filter(|p| p.attributes.template != Some(true))
            .collect::<Vec<_>>()
    };
    let notes = || lead_notes(&kommo, lead);
    wait_for("the kick-off note", 60, async || notes().iter().any(|n| n.contains("/projects/"))).await;
    assert_eq!(projects().len(), 1);
    let project = projects()[0].typed_id();
    assert!(notes().iter().any(|n| n.contains(&format!("/projects/{project}"))), "{:?}", notes());

    // a task of the project is completed in Productive: the signed delivery reaches serve, a note follows
    let task = productive.seed_task(&project, None, "Sitemap");
    let deliveries = productive.complete_task(&task).await;
    assert!(!deliveries.is_empty(), "Productive delivered to serve");
    wait_for("the task note", 60, async || notes().iter().any(|n| n.contains("Productive task completed: Sitemap")))
        .await;
    interrupt(child, &log).await;
    assert_eq!(projects().len(), 1, "the redelivered webhook made no second project");
    let text = String::from_utf8_lossy(&cli.run("status").await.stdout).into_owned();
    assert!(text.contains("dead letters: 0"), "{text}");
    assert!(!text.contains("queued") && !text.contains("running"), "{text}");
}
