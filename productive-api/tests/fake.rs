//! The fake, exercised through the real client.
#![cfg(feature = "fake")]

use std::{sync::Arc, time::Duration};

use api_core::{FixedClock, fake::Fault};
use productive_api::{
    BillingType, Error, EventId, Query, ServiceUnit,
    fake::{CopyResponse, FakeConfig, FakeProductive},
    jsonapi::{Filter, LogicalOp},
    resources::{
        assignments::Assigned,
        companies::{CompanyAttributes, NewCompany},
        deals::{DealAttributes, DealKind, NewDeal},
        projects::{CopyWait, NewProject, ProjectAttributes, ProjectCopy},
        services::NewService,
        tasks::TaskAttributes,
        webhooks::NewWebhook,
    },
    types::DuplicationStatus,
    webhook::{Delivery, Verifier, WebhookEvent},
};
use serde_json::json;

#[tokio::test]
async fn kommo_to_productive_saga_against_the_fake() {
    let fake = FakeProductive::start().await.unwrap();
    let pm = fake.seed_person("Pat", "Manager", "PM@agency.io");
    let dev = fake.seed_person("Dee", "Dev", "dev@agency.io");
    let design = fake.seed_service_type("Design");
    let template = fake.seed_template_project("Onboarding template", &pm, &["Kick-off", "Handover"]);
    let client = fake.client();

    // lookups the flow uses
    assert_eq!(client.find_person_by_email("pm@agency.io").await.unwrap().unwrap().typed_id(), pm);
    assert!(client.find_person_by_email("nobody@x.io").await.unwrap().is_none());
    assert!(client.find_company_by_name("Acme").await.unwrap().is_none());
    let company = client.create_company(&NewCompany::new("Acme")).await.unwrap();
    assert_eq!(client.find_company_by_name("Acme").await.unwrap().unwrap().id, company.id);

    // project from the template, with the background copy
    let mut copy = ProjectCopy::from_template(template.clone(), "Acme onboarding");
    copy.company_id = Some(company.typed_id());
    copy.project_manager_id = Some(pm.clone());
    let started = client.copy_project(&copy).await.unwrap();
    assert_eq!(started.attributes.duplication_status, Some(DuplicationStatus::InProgress));
    // The fake finishes the copy after a number of GETs, not after a time: the deadline (10 s) only bounds a hang.
    // It was 5 ms, which a loaded CI machine overran before the fake's polls were done (a flaky failure).
    let project = client
        .wait_for_project_copy(&started.typed_id(), CopyWait::polls(Duration::from_millis(5), 2_000))
        .await
        .unwrap();
    assert_eq!(project.attributes.duplication_status, Some(DuplicationStatus::Idle));
    let tasks: Vec<_> =
        fake.all::<TaskAttributes>().into_iter().filter(|t| t.project_id() == Some(project.typed_id())).collect();
    assert_eq!(tasks.len(), 2, "open tasks copied when the job finished");
    let with_company = client.get_project(&project.typed_id(), &Query::new().include(["company"])).await.unwrap();
    let c = with_company.related::<_, CompanyAttributes>(&with_company.data, "company").unwrap().unwrap();
    assert_eq!(c.attributes.name, "Acme");
    // templates are hidden from plain lists
    let listed = client.list_projects(&Query::new()).await.unwrap();
    assert_eq!(listed.data.len(), 1);
    assert_eq!(
        client.find_project_by_name("Acme onboarding", Some(&company.typed_id())).await.unwrap().unwrap().id,
        project.id
    );

    // budget + service + assignments
    let budget = NewDeal::budget("Acme onboarding", company.typed_id(), project.typed_id())
        .currency("EUR")
        .responsible(pm.clone());
    let budget = client.create_budget(&budget).await.unwrap();
    assert!(budget.is_budget());
    assert_eq!(client.deals_of_project(&project.typed_id(), Some(DealKind::Budget)).await.unwrap().len(), 1);
    assert!(client.deals_of_project(&project.typed_id(), Some(DealKind::Deal)).await.unwrap().is_empty());
    let mut svc =
        NewService::new("Design", budget.typed_id(), design, ServiceUnit::Hour, BillingType::TimeAndMaterials);
    svc.price = Some("10000".into());
    svc.quantity = Some(3.into());
    let svc = client.create_service(&svc).await.unwrap();
    let b = client.get_deal(&budget.typed_id(), &Query::new()).await.unwrap().data;
    assert_eq!(b.attributes.budget_total.unwrap().as_f64(), Some(30000.0), "budget_total = Σ price × quantity");
    assert_eq!(client.services_of_deal(&budget.typed_id()).await.unwrap()[0].id, svc.id);
    // pm was copied as a member; assigning again is an ignorable duplicate
    let again = client.assign_person_to_project(&project.typed_id(), &pm).await.unwrap();
    assert!(matches!(again, Assigned::AlreadyAssigned(_)));
    assert!(client.assign_person_to_project(&project.typed_id(), &dev).await.unwrap().is_created());
    assert!(client.assign_person_to_service(&svc.typed_id(), &dev).await.unwrap().is_created());
    assert_eq!(client.project_assignments(&project.typed_id()).await.unwrap().len(), 2);

    // inspection
    let deals = fake.all::<DealAttributes>();
    assert_eq!(deals[0].company_id(), Some(company.typed_id()));
    assert_eq!(fake.get::<ProjectAttributes>(&project.typed_id()).unwrap().company_id(), Some(company.typed_id()));
}

#[tokio::test]
async fn validation_errors_and_unknown_filters() {
    let fake = FakeProductive::start().await.unwrap();
    let client = fake.client();
    let err = client.create_company(&NewCompany::new("")).await.unwrap_err();
    assert_eq!(err.status().unwrap().as_u16(), 422);
    let e = &err.error_document().unwrap().errors[0];
    assert_eq!(e.source.as_ref().unwrap().pointer.as_deref(), Some("/data/attributes/name"));
    let err = client.list_companies(&Query::new().filter("nmae", "x")).await.unwrap_err();
    assert_eq!(err.error_document().unwrap().errors[0].title.as_deref(), Some("Unsupported Filter"));
    let err = client.list_companies(&Query::new().include(["userz"])).await.unwrap_err();
    assert_eq!(err.error_document().unwrap().errors[0].title.as_deref(), Some("Unsupported Include"));
    let err = client.create_project(&NewProject::client("P", "999999".into(), "999998".into())).await.unwrap_err();
    assert_eq!(err.status().unwrap().as_u16(), 422);
    assert!(client.get_company(&"424242".into()).await.unwrap_err().is_not_found());
}

#[tokio::test]
async fn pagination_filters_and_groups() {
    let fake = FakeProductive::start().await.unwrap();
    for i in 0..7 {
        fake.seed_company(&format!("Company {i}"));
    }
    let client = fake.client();
    let page = client.list_companies(&Query::new().page(2, 3)).await.unwrap();
    let meta = page.meta.clone().unwrap();
    assert_eq!((meta.current_page, meta.total_pages, meta.total_count), (Some(2), Some(3), Some(7)));
    assert_eq!(page.data.len(), 3);
    let all = client.all::<CompanyAttributes>("/companies", Query::new().page_size(3)).await.unwrap();
    assert_eq!(all.len(), 7);
    assert_eq!(fake.server.log.count(&http::Method::GET, "/api/v2/companies"), 1 + 3);
    let either = client
        .list_companies(
            &Query::new()
                .filter_group(LogicalOp::Or, [Filter::eq("name", "Company 1"), Filter::eq("name", "Company 5")]),
        )
        .await
        .unwrap();
    assert_eq!(either.data.len(), 2);
    let contains = client
        .list_companies(&Query::new().filter_op("name", productive_api::jsonapi::FilterOp::Contains, "pany 6"))
        .await
        .unwrap();
    assert_eq!(contains.data.len(), 1);
}

#[tokio::test]
async fn auth_content_type_rate_limit_and_faults() {
    let fake = FakeProductive::start_with(FakeConfig { per_10s: Some(3), ..FakeConfig::default() }).await.unwrap();
    let bad = fake.client_builder().token(productive_api::Token::new("wrong")).build().unwrap();
    assert_eq!(bad.list_companies(&Query::new()).await.unwrap_err().class(), api_core::ErrorClass::Auth);
    let no_retry = fake.client_builder().retry_policy(api_core::RetryPolicy::none()).build().unwrap();
    let mut saw_429 = false;
    for _ in 0..5 {
        if let Err(e) = no_retry.list_companies(&Query::new()).await {
            assert_eq!(e.status().unwrap().as_u16(), 429);
            assert_eq!(e.retry_after(), Some(Duration::from_secs(10)));
            saw_429 = true;
        }
    }
    assert!(saw_429);

    let fake = FakeProductive::start().await.unwrap();
    let client = fake.client();
    // a wrong content type is a 415 that names the cause
    let raw = api_core::Request::post("/companies")
        .body(api_core::Body::json(&json!({"data": {"type": "companies", "attributes": {"name": "X"}}})).unwrap());
    assert!(matches!(client.send(raw).await.unwrap_err(), Error::UnsupportedMediaType(_)));
    // injected 503 on GET is retried; on POST it is returned
    fake.server.faults.inject(Some(http::Method::GET), "/api/v2/companies", Fault::json(503, &json!({})), 1);
    client.list_companies(&Query::new()).await.unwrap();
    fake.server.faults.inject(Some(http::Method::POST), "/api/v2/companies", Fault::json(503, &json!({})), 1);
    let e = client.create_company(&NewCompany::new("Y")).await.unwrap_err();
    assert!(e.may_have_been_sent());
    // drop after commit: the company exists although the client saw an error
    fake.server.faults.inject(Some(http::Method::POST), "/api/v2/companies", Fault::DropAfterCommit, 1);
    let e = client.create_company(&NewCompany::new("Z")).await.unwrap_err();
    assert!(e.may_have_been_sent());
    assert!(client.find_company_by_name("Z").await.unwrap().is_some());
}

#[tokio::test]
async fn webhooks_are_signed_and_parse() {
    use wiremock::{Mock, MockServer, ResponseTemplate, matchers};
    let receiver = MockServer::start().await;
    Mock::given(matchers::method("POST"))
        .and(matchers::path("/hooks/productive"))
        .and(matchers::header_exists("productive-signature"))
        .respond_with(ResponseTemplate::new(200))
        .expect(2)
        .mount(&receiver)
        .await;
    let clock = FixedClock::at_unix(1_790_000_000);
    let fake = FakeProductive::start_with(FakeConfig { clock: Arc::new(clock.clone()), ..FakeConfig::default() })
        .await
        .unwrap();
    let client = fake.client();
    let url = format!("{}/hooks/productive", receiver.uri());
    let task_hook = client.create_webhook(&NewWebhook::new(EventId::TaskUpdated, &url)).await.unwrap();
    let budget_hook = client.create_webhook(&NewWebhook::new(EventId::BudgetUpdated, &url)).await.unwrap();
    assert_eq!(client.all_webhooks(Query::new()).await.unwrap().len(), 2);
    let task_token = task_hook.attributes.signature_token.clone().unwrap();
    let budget_token = budget_hook.attributes.signature_token.clone().unwrap();

    let pm = fake.seed_person("Pat", "M", "pm@x.io");
    let company = fake.seed_company("Acme");
    let template = fake.seed_template_project("T", &pm, &["Kick-off"]);
    let task = fake.all::<TaskAttributes>().into_iter().find(|t| t.project_id() == Some(template.clone())).unwrap();
    let sent = fake.complete_task(&task.typed_id()).await;
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].status, Some(200));
    let v = Verifier::new(task_token).clock(Arc::new(clock.clone()));
    let d = v.verify(Some(&sent[0].signature), &sent[0].body).unwrap();
    match d.typed().unwrap() {
        WebhookEvent::Task { completed, task: t, .. } => {
            assert!(completed);
            assert_eq!(t.id, task.id);
        }
        other => panic!("{other:?}"),
    }

    let budget =
        client.create_budget(&NewDeal::budget("B", company, template).currency("EUR").responsible(pm)).await.unwrap();
    let sent =
        fake.update_deal(&budget.typed_id(), &serde_json::from_value(json!({"budget_total": "5000.0"})).unwrap()).await;
    assert_eq!(sent.len(), 1);
    let d = Verifier::new(budget_token).clock(Arc::new(clock)).verify(Some(&sent[0].signature), &sent[0].body).unwrap();
    assert_eq!(d.event, "update_budget");
    assert!(matches!(d.typed().unwrap(), WebhookEvent::Deal { is_budget: true, .. }));
    let raw: Delivery = Delivery::parse(&receiver.received_requests().await.unwrap()[0].body).unwrap();
    assert_eq!(raw.event, "update_task");
    client.delete_webhook(&task_hook.typed_id()).await.unwrap();
    assert_eq!(client.all_webhooks(Query::new()).await.unwrap().len(), 1);
}

#[tokio::test]
async fn api_writes_emit_webhooks_when_enabled() {
    use wiremock::{Mock, MockServer, ResponseTemplate, matchers};
    let receiver = MockServer::start().await;
    Mock::given(matchers::method("POST")).respond_with(ResponseTemplate::new(500)).mount(&receiver).await;
    let fake =
        FakeProductive::start_with(FakeConfig { emit_on_api_writes: true, ..FakeConfig::default() }).await.unwrap();
    let client = fake.client();
    let hook =
        client.create_webhook(&NewWebhook::new(EventId::TaskUpdated, format!("{}/h", receiver.uri()))).await.unwrap();
    let pm = fake.seed_person("P", "M", "pm@x.io");
    let template = fake.seed_template_project("T", &pm, &["One"]);
    let task = fake.all::<TaskAttributes>().into_iter().find(|t| t.project_id() == Some(template.clone())).unwrap();
    let updated =
        client.update_task(&task.typed_id(), &serde_json::from_value(json!({"closed": true})).unwrap()).await.unwrap();
    assert!(updated.attributes.closed);
    let mut deliveries = Vec::new();
    for _ in 0..200 {
        deliveries = fake.deliveries();
        if !deliveries.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(deliveries.len(), 1);
    assert_eq!(deliveries[0].status, Some(500), "a failing receiver is recorded");
    assert_eq!(deliveries[0].webhook_id, hook.id);
    let token = fake.webhook_token(&hook.id).unwrap();
    let d = Verifier::new(token).verify(Some(&deliveries[0].signature), &deliveries[0].body).unwrap();
    assert!(matches!(d.typed().unwrap(), WebhookEvent::Task { completed: true, .. }));
}

#[tokio::test]
async fn duplicate_service_assignment_sort_and_body_produced_without_sending() {
    let fake = FakeProductive::start().await.unwrap();
    let client = fake.client();
    let pm = fake.seed_person("P", "M", "pm@x.io");
    let st = fake.seed_service_type("Dev");
    let c = fake.seed_company("B company");
    fake.seed_company("A company");
    let project = fake.seed_template_project("T", &pm, &[]);
    let budget =
        client.create_budget(&NewDeal::budget("B", c, project).currency("EUR").responsible(pm.clone())).await.unwrap();
    let svc = client
        .create_service(&NewService::new("Dev", budget.typed_id(), st, ServiceUnit::Day, BillingType::Fixed))
        .await
        .unwrap();
    assert!(client.assign_person_to_service(&svc.typed_id(), &pm).await.unwrap().is_created());
    assert!(!client.assign_person_to_service(&svc.typed_id(), &pm).await.unwrap().is_created());
    let sorted = client.list_companies(&Query::new().sort("name")).await.unwrap();
    assert_eq!(sorted.data[0].attributes.name, "A company");
    let sorted = client.list_companies(&Query::new().sort("-name")).await.unwrap();
    assert_eq!(sorted.data[0].attributes.name, "B company");
    let body = fake.webhook_body(EventId::BudgetUpdated, "deals", &budget.id).unwrap();
    let d = Delivery::parse(&body).unwrap();
    assert_eq!(
        (d.event.as_str(), d.item_type.as_str(), d.item_id.as_str()),
        ("update_budget", "deal", budget.id.as_str())
    );
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert!(v["item_id"].is_number(), "item_id is a JSON number, like Productive's");
    assert_eq!(v["object"]["data"]["relationships"]["company"]["data"]["type"], "companies");
    assert!(fake.deliveries().is_empty(), "webhook_body does not send");
}

/// api-notes/productive.md §4 Deals and budgets: name, date, responsible, company, `deal_type_id`, probability and
/// currency are required on create (withone's copy of the docs); §2 Errors: a 422 is a JSON:API errors array with
/// `status` as a JSON number and (presumably) `source.pointer`. The fake enforces the list the client sends.
#[tokio::test]
async fn deal_create_missing_a_required_attribute_is_a_422() {
    let fake = FakeProductive::start().await.unwrap();
    let client = fake.client();
    let pm = fake.seed_person("P", "M", "pm@x.io");
    let company = fake.seed_company("Acme");
    let project = fake.seed_template_project("T", &pm, &[]);
    let full = NewDeal::budget("B", company.clone(), project.clone()).currency("EUR").responsible(pm.clone());
    let created = client.create_budget(&full).await.unwrap();
    let stored = fake.get::<DealAttributes>(&created.typed_id()).unwrap();
    assert_eq!(stored.attributes.currency.as_deref(), Some("EUR"));
    assert_eq!(stored.attributes.probability, Some(100));
    assert!(stored.attributes.date.is_some() && stored.attributes.deal_type_id.is_some());
    assert_eq!(stored.relationship("responsible").and_then(|r| r.one()).map(|i| i.id.clone()), Some(pm.to_string()));

    for (attr, pointer) in [
        ("date", "/data/attributes/date"),
        ("currency", "/data/attributes/currency"),
        ("probability", "/data/attributes/probability"),
        ("deal_type_id", "/data/attributes/deal_type_id"),
    ] {
        let mut doc = full.to_document().unwrap();
        doc.data.attributes.remove(attr);
        let e = client.post_document::<serde_json::Value>("/deals", &doc).await.unwrap_err();
        assert_eq!(e.status().map(|s| s.as_u16()), Some(422), "{attr}");
        let err = &e.error_document().unwrap().errors[0];
        assert_eq!(err.source.as_ref().unwrap().pointer.as_deref(), Some(pointer));
        let raw: serde_json::Value = serde_json::from_slice(&e.http_parts().unwrap().body).unwrap();
        assert_eq!(raw["errors"][0]["status"], json!(422), "status as a JSON number, like Productive");
    }
    let mut doc = full.to_document().unwrap();
    doc.data.relationships.remove("responsible");
    let e = client.post_document::<serde_json::Value>("/deals", &doc).await.unwrap_err();
    assert_eq!(
        e.error_document().unwrap().errors[0].source.as_ref().unwrap().pointer.as_deref(),
        Some("/data/relationships/responsible")
    );
    // the client refuses before sending
    let before = fake.server.log.count(&http::Method::POST, "/api/v2/deals");
    let e = client.create_budget(&NewDeal::budget("B", company, project).currency("EUR")).await.unwrap_err();
    assert!(matches!(e, Error::InvalidRequest(_)), "{e}");
    assert_eq!(fake.server.log.count(&http::Method::POST, "/api/v2/deals"), before);
}

/// api-notes/productive.md §4 "Project copy": the copy runs as a background job tracked by the new project's
/// `duplication_status` ("idle" at rest, P-old projects.html), and what the POST returns while it runs is
/// **UNVERIFIED**. The fake keeps the copy unfinished for the first `copy_polls` reads; each case below was taken as
/// finished (or failed to decode) by the old wait, which trusted an absent status and the POST's id.
async fn copy_rig(copy_polls: u32, copy_response: CopyResponse) -> (FakeProductive, ProjectCopy) {
    let fake =
        FakeProductive::start_with(FakeConfig { copy_polls, copy_response, ..FakeConfig::default() }).await.unwrap();
    let pm = fake.seed_person("Pat", "Manager", "pm@agency.io");
    let template = fake.seed_template_project("Onboarding template", &pm, &["Kick-off", "Handover"]);
    let company = fake.seed_company("Acme");
    let mut copy = ProjectCopy::from_template(template, "Acme onboarding");
    copy.company_id = Some(company);
    (fake, copy)
}

fn copied_tasks(fake: &FakeProductive, project: &productive_api::ProjectId) -> usize {
    fake.all::<TaskAttributes>().into_iter().filter(|t| t.project_id().as_ref() == Some(project)).count()
}

#[tokio::test(start_paused = true)]
async fn copy_is_polled_until_the_job_reports_idle_in_virtual_time() {
    for response in [CopyResponse::NewProject, CopyResponse::NewProjectWithoutStatus, CopyResponse::Accepted] {
        let (fake, copy) = copy_rig(3, response).await;
        let client = fake.in_process_client();
        let t0 = tokio::time::Instant::now();
        let wait = CopyWait::new(Duration::from_secs(5), Duration::from_secs(60));
        let p = client.copy_project_and_wait(&copy, wait).await.unwrap();
        assert_eq!(p.attributes.duplication_status, Some(DuplicationStatus::Idle), "{response:?}");
        assert_eq!(p.attributes.name, "Acme onboarding");
        assert_eq!(copied_tasks(&fake, &p.typed_id()), 2, "{response:?}: returned only after the job finished");
        // reads 1 and 2 see "in_progress", read 3 finishes: two pauses
        assert_eq!(t0.elapsed(), Duration::from_secs(10), "{response:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_copy_that_never_finishes_times_out_at_the_deadline() {
    for response in [CopyResponse::NewProject, CopyResponse::NewProjectWithoutStatus] {
        let (fake, copy) = copy_rig(1_000, response).await;
        let client = fake.in_process_client();
        let t0 = tokio::time::Instant::now();
        let wait = CopyWait::new(Duration::from_secs(5), Duration::from_secs(30));
        let e = client.copy_project_and_wait(&copy, wait).await.unwrap_err();
        match &e {
            Error::JobTimeout { polls, waited, last_state, .. } => {
                assert_eq!(*polls, 7, "reads at 0, 5, …, 30 s");
                assert_eq!(*waited, Duration::from_secs(30));
                assert!(last_state.contains("InProgress"), "{last_state}");
            }
            other => panic!("{other:?}"),
        }
        assert!(e.is_retryable());
        assert_eq!(t0.elapsed(), Duration::from_secs(30));
    }
    // the wait alone: a project whose status never appears is not taken as finished
    let (fake, copy) = copy_rig(0, CopyResponse::NewProject).await;
    let id = fake.in_process_client().copy_project(&copy).await.unwrap().typed_id();
    assert!(fake.set_attributes(
        "projects",
        id.as_str(),
        &serde_json::from_value(json!({"duplication_status": null})).unwrap()
    ));
    let e = fake
        .in_process_client()
        .wait_for_project_copy(&id, CopyWait::new(Duration::from_secs(1), Duration::from_secs(3)))
        .await
        .unwrap_err();
    assert!(matches!(&e, Error::JobTimeout { last_state, .. } if last_state == "absent"), "{e}");
}
