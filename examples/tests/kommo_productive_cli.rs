//! The `kommo-productive` binary end to end: `serve` as a real process with the shipped example config pointed at
//! the in-process fakes (which enforce the vendors' rate limits), secrets from the environment. `serve` creates
//! the Productive webhooks itself (`[serve] public_url`) and verifies their deliveries with the tokens it got.
#![allow(missing_docs, clippy::print_stdout, clippy::print_stderr)]

use api_core::fake::Fault;
use kommo_api::fake::{FakeKommo, SeedLead};
use kommo_api::{EntityType, FieldType, LeadId, StatusId};
use productive_api::fake::{DeliveryAttempt, FakeProductive};
use productive_api::resources::assignments::ProjectAssignmentAttributes;
use productive_api::resources::deals::DealAttributes;
use productive_api::resources::projects::ProjectAttributes;
use productive_api::resources::services::ServiceAttributes;
use productive_api::resources::webhooks::WebhookAttributes;
use productive_api::{ProjectId, Resource};

mod common;
use common::{Cli, PgSchema, component, free_port, interrupt, lead_notes, readyz, wait_components_ready, wait_for};

const BIN: &str = env!("CARGO_BIN_EXE_kommo-productive");
const SECRET: &str = "cli-test-secret";
const COMPONENTS: &[&str] = &["validation", "webhook:productive"];

struct World {
    kommo: FakeKommo,
    productive: FakeProductive,
    pipeline: kommo_api::PipelineId,
    stages: Vec<StatusId>,
    anna: kommo_api::UserId,
    field: kommo_api::CustomFieldId,
    cli: Cli,
}

impl World {
    /// The fakes with what the shipped config names, and that config pointed at them; Productive delivers to
    /// `http://127.0.0.1:<hook_port>/hooks/productive`.
    async fn start(hook_port: u16) -> World {
        let kommo = FakeKommo::start().await.unwrap();
        let (pipeline, stages) = kommo.seed_pipeline("Sales", &["Qualified", "Proposal sent"]);
        let anna = kommo.seed_user("Anna Sales", "sales.anna@agency.com");
        let field = kommo.seed_custom_field(
            EntityType::Leads,
            "Service type",
            FieldType::Select,
            None,
            &["Website", "Branding"],
        );
        let productive = FakeProductive::start().await.unwrap();
        let pm = productive.seed_person("Pat", "Manager", "pm@agency.com");
        productive.seed_person("Dee", "Developer", "dev@agency.com");
        productive.seed_person("Dana", "Designer", "design@agency.com");
        for t in ["Design", "Development", "Branding"] {
            productive.seed_service_type(t);
        }
        let template = productive.seed_template_project("Website template", &pm, &["Kick-off call", "Launch"]);

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
            .replace(
                "public_url = \"https://sync.example.com\"",
                &format!("public_url = \"http://127.0.0.1:{hook_port}\""),
            )
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
        World { kommo, productive, pipeline, stages, anna, field, cli }
    }

    /// A won "Website" deal of `company`.
    fn won_website_deal(&self, name: &str, company: &str) -> LeadId {
        let website = self.kommo.enum_id(self.field, "Website").unwrap();
        let lead = self.kommo.seed_lead(
            SeedLead::new(name)
                .price(12_000)
                .stage(self.pipeline, self.stages[0])
                .responsible(self.anna)
                .field(self.field, serde_json::json!({"enum_id": website.get()}))
                .company(self.kommo.seed_company(company)),
        );
        self.kommo.set_lead_status(lead, self.pipeline, StatusId::WON);
        lead
    }

    fn projects(&self) -> Vec<Resource<ProjectAttributes>> {
        self.productive.all::<ProjectAttributes>().into_iter().filter(|p| p.attributes.template != Some(true)).collect()
    }

    /// Checks, field by field, what one won "Website" deal of 12 000 by Anna must have produced: the project
    /// (named after company, deal and lead id), one budget with the deal value, the two Website services, the
    /// team (PM from the template, developer, designer) and the Kommo note with the project link.
    fn assert_kicked_off(&self, lead: LeadId, deal: &str, company: &str) -> ProjectId {
        let name = format!("{company}: {deal} (Kommo #{lead})");
        let projects: Vec<_> = self.projects().into_iter().filter(|p| p.attributes.name == name).collect();
        assert_eq!(projects.len(), 1, "one project named `{name}`: {:?}", self.projects());
        let project = projects[0].typed_id();
        let budgets: Vec<_> = self
            .productive
            .all::<DealAttributes>()
            .into_iter()
            .filter(|d| d.is_budget() && d.project_id() == Some(project.clone()))
            .collect();
        assert_eq!(budgets.len(), 1, "one budget on {project}: {budgets:?}");
        let b = &budgets[0].attributes;
        assert_eq!(b.name, deal);
        assert_eq!(b.currency.as_deref(), Some("EUR"));
        // Productive totals the services: Website design 40 h × 95 + Development for the deal value 12 000
        assert_eq!(b.budget_total.as_ref().and_then(productive_api::Amount::as_f64), Some(15_800.0), "{b:?}");
        assert_eq!(b.note.as_deref(), Some(format!("Kommo deal #{lead}: 12000 EUR").as_str()), "{b:?}");
        let budget = budgets[0].typed_id();
        let mut services: Vec<(String, Option<f64>, Option<f64>)> = self
            .productive
            .all::<ServiceAttributes>()
            .into_iter()
            .filter(|s| s.deal_id() == Some(budget.clone()))
            .map(|s| {
                (
                    s.attributes.name.clone(),
                    s.attributes.price.as_ref().and_then(productive_api::Amount::as_f64),
                    s.attributes.quantity.as_ref().and_then(productive_api::Amount::as_f64),
                )
            })
            .collect();
        services.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(services.len(), 2, "{services:?}");
        assert_eq!(services[0].0, "Development", "{services:?}");
        assert_eq!(services[1].0, "Website design", "{services:?}");
        assert_eq!((services[1].1, services[1].2), (Some(95.0), Some(40.0)), "Website design: 40 h × 95");
        let members = self
            .productive
            .all::<ProjectAssignmentAttributes>()
            .into_iter()
            .filter(|a| a.project_id() == Some(project.clone()))
            .count();
        assert_eq!(members, 3, "PM, developer and designer on {project}");
        let notes = lead_notes(&self.kommo, lead);
        let org = &self.productive.config().organization_id;
        let kickoff = format!(
            "Productive project created: {name}\nhttps://app.productive.io/{org}/projects/{project}\nBudget: 12000 EUR \
             · services: 2 · team: pm@agency.com, dev@agency.com, design@agency.com"
        );
        let kickoffs: Vec<_> = notes.iter().filter(|n| n.starts_with("Productive project created:")).collect();
        assert_eq!(kickoffs, vec![&kickoff], "one kick-off note: {notes:?}");
        project
    }
}

/// POSTs a Productive delivery, byte for byte with its signature, to `port`.
async fn redeliver(d: &DeliveryAttempt, port: u16) -> u16 {
    reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/hooks/productive"))
        .header("content-type", "application/json")
        .header("productive-signature", &d.signature)
        .body(d.body.clone())
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn post_kommo(port: u16, body: &str) -> u16 {
    kommo_api::fake::post_webhook(&format!("http://127.0.0.1:{port}/hooks/kommo/{SECRET}"), body)
        .await
        .unwrap()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_kicks_off_a_won_deal_and_notes_completed_tasks() {
    let port = free_port();
    let w = World::start(port).await;
    let (child, log) = w.cli.serve(port, "serve.log").await;
    wait_components_ready(port, child.id(), COMPONENTS).await;
    let hooks = w.productive.all::<WebhookAttributes>();
    assert_eq!(hooks.len(), 2, "serve created the task-updated and budget-updated webhooks: {hooks:?}");

    // a Website deal is won: one project (copied from the template), and a note with its link on the lead
    let lead = w.won_website_deal("Website relaunch", "Acme GmbH");
    let body = w.kommo.webhook_for_lead_status(lead);
    for _ in 0..2 {
        assert_eq!(post_kommo(port, &body).await, 200);
    }
    let notes = || lead_notes(&w.kommo, lead);
    wait_for("the kick-off note", 60, async || notes().iter().any(|n| n.contains("/projects/"))).await;
    let project = w.assert_kicked_off(lead, "Website relaunch", "Acme GmbH");

    // a task of the project is completed in Productive: the signed delivery reaches serve, a note follows
    let task = w.productive.seed_task(&project, None, "Sitemap");
    let deliveries = w.productive.complete_task(&task).await;
    assert!(!deliveries.is_empty(), "Productive delivered to serve");
    wait_for("the task note", 60, async || notes().iter().any(|n| n.contains("Productive task completed: Sitemap")))
        .await;
    interrupt(child, &log).await;
    assert_eq!(w.projects().len(), 1, "the redelivered webhook made no second project");
    let text = String::from_utf8_lossy(&w.cli.run("status").await.stdout).into_owned();
    assert!(text.contains("dead letters: 0"), "{text}");
    assert!(!text.contains("queued") && !text.contains("running"), "{text}");
    assert!(!text.contains("components:"), "a clean shutdown removes the process's health rows: {text}");
}

/// The receiver does not depend on the vendors: `serve` starts while Kommo and Productive answer every request
/// with 503. It listens at once and accepts the won deal's webhook (200); `/readyz` stays 200 and `status` shows
/// the failing components with their error; nothing is applied meanwhile. When the fakes recover, validation and
/// the webhook upkeep succeed, the workers start and the waiting event is applied, field by field; the webhooks'
/// tokens are then in the store, so a restart verifies Productive deliveries before Productive's API answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_accepts_webhooks_while_the_vendors_answer_503_and_applies_them_after() {
    let port = free_port();
    let w = World::start(port).await;
    let outage = |status: u16| Fault::json(status, &serde_json::json!({"errors": [{"status": status}]}));
    w.kommo.faults().inject(None, "/api", outage(503), u32::MAX);
    w.productive.server.faults.inject(None, "/api", outage(503), u32::MAX);

    let (child, log) = w.cli.serve(port, "serve.log").await;
    let lead = w.won_website_deal("Outage relaunch", "Down GmbH");
    let body = w.kommo.webhook_for_lead_status(lead);
    assert_eq!(post_kommo(port, &body).await, 200, "accepted while both vendors are down");

    // both components fail, are retried, and say why; the receiver stays ready
    let pid = child.id();
    wait_for("failing components in /readyz", 60, async || {
        let (status, body) = readyz(port).await;
        status == 200
            && COMPONENTS.iter().all(|c| {
                component(&body, c, pid).is_some_and(|v| v["state"] == "failing" && v["attempts"].as_i64() >= Some(1))
            })
    })
    .await;
    let (status, body) = readyz(port).await;
    assert_eq!(status, 200);
    assert_eq!(body["status"], "degraded", "{body}");
    let validation = component(&body, "validation", pid).unwrap();
    assert!(validation["last_error"].as_str().is_some_and(|e| e.contains("503")), "{validation}");
    let status_text = String::from_utf8_lossy(&w.cli.run("status").await.stdout).into_owned();
    let line = status_text.lines().find(|l| l.trim_start().starts_with("validation")).unwrap_or_default();
    assert!(line.contains("failing") && line.contains("attempts=") && line.contains("503"), "{status_text}");
    assert!(status_text.contains("webhook:productive"), "{status_text}");
    assert!(status_text.lines().any(|l| l.starts_with("kommo ") && l.contains("queued")), "{status_text}");
    assert!(w.projects().is_empty() && w.productive.all::<WebhookAttributes>().is_empty());
    assert!(lead_notes(&w.kommo, lead).is_empty());
    let logs = std::fs::read_to_string(&log).unwrap();
    assert!(logs.contains("WARN") && logs.contains("failed; retrying"), "{logs}");

    // the vendors recover: everything catches up without a restart
    w.kommo.faults().clear();
    w.productive.server.faults.clear();
    wait_components_ready(port, pid, COMPONENTS).await;
    assert_eq!(readyz(port).await.1["status"], "ready");
    let notes = || lead_notes(&w.kommo, lead);
    wait_for("the kick-off note", 60, async || notes().iter().any(|n| n.contains("/projects/"))).await;
    let project = w.assert_kicked_off(lead, "Outage relaunch", "Down GmbH");
    assert_eq!(w.productive.all::<WebhookAttributes>().len(), 2);
    interrupt(child, &log).await;

    // restarted while Productive's webhook API is down: a task completion delivered meanwhile is verified with the
    // tokens stored by the first run (200, not 401) and applied
    w.productive.server.faults.inject(None, "/api/v2/webhooks", outage(503), u32::MAX);
    let task = w.productive.seed_task(&project, None, "Sitemap");
    let (child, log) = w.cli.serve(port, "serve2.log").await;
    let sent = w.productive.complete_task(&task).await;
    assert_eq!(sent.iter().map(|d| d.status).collect::<Vec<_>>(), vec![Some(200)], "verified before upkeep");
    wait_for("the task note", 60, async || notes().iter().any(|n| n.contains("Productive task completed: Sitemap")))
        .await;
    let pid = child.id();
    wait_for("the failing webhook upkeep", 60, async || {
        component(&readyz(port).await.1, "webhook:productive", pid).is_some_and(|v| v["state"] == "failing")
    })
    .await;
    w.productive.server.faults.clear();
    interrupt(child, &log).await;
    assert_eq!(w.projects().len(), 1);
    assert_eq!(notes().iter().filter(|n| n.contains("Productive task completed: Sitemap")).count(), 1);
    let text = String::from_utf8_lossy(&w.cli.run("status").await.stdout).into_owned();
    assert!(text.contains("dead letters: 0"), "{text}");
    assert!(!text.contains("queued") && !text.contains("running"), "{text}");
}

/// Scale-out: three `serve` processes on one PostgreSQL schema. The first creates the two Productive webhooks,
/// the others adopt them (still two); every Kommo webhook and every Productive delivery is posted to all three
/// processes and applied once: one project per deal with its budget, services, team and one note, one task note.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_serve_processes_share_one_postgres() {
    let Some(pg) = PgSchema::create().await else { return };
    let ports = [free_port(), free_port(), free_port()];
    let mut w = World::start(ports[0]).await;
    // Kommo's 7 requests/s per account, split by hand while budgets are per process
    let text = std::fs::read_to_string(&w.cli.config).unwrap();
    std::fs::write(&w.cli.config, text.replace("kommo_requests_per_second = 7", "kommo_requests_per_second = 2"))
        .unwrap();
    w.cli.database = pg.database();
    let mut procs = Vec::new();
    for (i, port) in ports.iter().enumerate() {
        let (child, log) = w.cli.serve(*port, &format!("{i}.log")).await;
        wait_components_ready(*port, child.id(), COMPONENTS).await;
        procs.push((child, log));
    }
    let hooks = w.productive.all::<WebhookAttributes>();
    assert_eq!(hooks.len(), 2, "adopted, not duplicated: {hooks:?}");

    let deals: Vec<(LeadId, String, String)> = (0..4)
        .map(|i| {
            let (deal, company) = (format!("Scale-out {i}"), format!("Company {i}"));
            (w.won_website_deal(&deal, &company), deal, company)
        })
        .collect();
    for (lead, ..) in &deals {
        let body = w.kommo.webhook_for_lead_status(*lead);
        for port in ports {
            assert_eq!(post_kommo(port, &body).await, 200);
        }
    }
    wait_for("every kick-off note", 120, async || {
        deals.iter().all(|(lead, ..)| lead_notes(&w.kommo, *lead).iter().any(|n| n.contains("/projects/")))
    })
    .await;
    let mut projects = Vec::new();
    for (lead, deal, company) in &deals {
        projects.push(w.assert_kicked_off(*lead, deal, company));
    }

    // a task completion, delivered by Productive to the first process and by us to the other two
    let task = w.productive.seed_task(&projects[0], None, "Sitemap");
    let sent = w.productive.complete_task(&task).await;
    assert_eq!(sent.len(), 1, "one delivery (task updated): {sent:?}");
    assert_eq!(sent[0].status, Some(200));
    for port in &ports[1..] {
        assert_eq!(redeliver(&sent[0], *port).await, 200);
    }
    let lead0 = deals[0].0;
    wait_for("the task note", 60, async || {
        lead_notes(&w.kommo, lead0).iter().any(|n| n.contains("Productive task completed: Sitemap"))
    })
    .await;
    wait_for("an empty queue", 60, async || {
        let out = String::from_utf8_lossy(&w.cli.run("status").await.stdout).into_owned();
        !out.contains("queued") && !out.contains("running")
    })
    .await;
    for (child, log) in procs {
        interrupt(child, &log).await;
    }
    assert_eq!(w.projects().len(), deals.len(), "one project per deal");
    for (lead, deal, company) in &deals {
        w.assert_kicked_off(*lead, deal, company);
    }
    let task_notes = lead_notes(&w.kommo, lead0).iter().filter(|n| n.contains("task completed: Sitemap")).count();
    assert_eq!(task_notes, 1, "the delivery sent to three processes made one note");
    let stored = pg.count("SELECT count(*) FROM {s}.inbox WHERE source = 'productive'").await;
    assert_eq!(stored, 1, "the Productive delivery was stored once");
    let stored = pg.count("SELECT count(*) FROM {s}.inbox WHERE source = 'kommo'").await;
    assert_eq!(stored, i64::try_from(deals.len()).unwrap(), "each Kommo webhook was stored once");
    let text = String::from_utf8_lossy(&w.cli.run("status").await.stdout).into_owned();
    assert!(text.contains("dead letters: 0"), "{text}");
    pg.drop_schema().await;
}
