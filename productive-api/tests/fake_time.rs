//! The fake's time entries and bookings (issue 23), exercised through the real client: creation with the
//! documented required fields, the 422s with `source.pointer`, filters, member actions, and Productive's rate
//! limit (100 requests / 10 s, sliding window, no slack) on these resources too.
#![cfg(feature = "fake")]
#![allow(missing_docs)]

use chrono::NaiveDate;
use futures::TryStreamExt as _;
use productive_api::{
    Client, Error, Query,
    fake::FakeProductive,
    jsonapi::WriteDocument,
    resources::{
        bookings::{Allocation, BookingAttributes, BookingTarget, NewBooking},
        companies::NewCompany,
        deals::NewDeal,
        projects::NewProject,
        services::NewService,
        time_entries::{NewTimeEntry, TimeEntryAttributes},
    },
    types::{BillingType, PersonId, ServiceId, ServiceUnit},
};
use serde_json::{Map, json};

fn d(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

/// A person and a service on a budget (company → project → budget → service), made through the client.
async fn person_and_service(fake: &FakeProductive, client: &Client) -> (PersonId, ServiceId) {
    let pm = fake.seed_person("Pat", "Manager", "pm@agency.io");
    let design = fake.seed_service_type("Design");
    let company = client.create_company(&NewCompany::new("Acme")).await.unwrap();
    let project =
        client.create_project(&NewProject::client("Acme site", company.typed_id(), pm.clone())).await.unwrap();
    let budget = client
        .create_budget(
            &NewDeal::budget("Acme site", company.typed_id(), project.typed_id())
                .currency("EUR")
                .responsible(pm.clone()),
        )
        .await
        .unwrap();
    let service = client
        .create_service(&NewService::new(
            "Design",
            budget.typed_id(),
            design,
            ServiceUnit::Hour,
            BillingType::TimeAndMaterials,
        ))
        .await
        .unwrap();
    (pm, service.typed_id())
}

fn pointer(e: &Error) -> Option<String> {
    let Error::Api(api) = e else { return None };
    api.document.as_ref()?.errors.first()?.source.as_ref()?.pointer.clone()
}

/// Time entries: date, person and service are required (withone "Create a Time Entry"); `after`/`before` bound
/// `date`; update and delete.
#[tokio::test]
async fn time_entries_are_created_filtered_updated_and_deleted() {
    let fake = FakeProductive::start().await.unwrap();
    let client = fake.client();
    let (pm, service) = person_and_service(&fake, &client).await;
    for (day, minutes) in [("2026-01-05", 60), ("2026-01-20", 90), ("2026-02-03", 30)] {
        client.create_time_entry(&NewTimeEntry::new(pm.clone(), service.clone(), d(day), minutes)).await.unwrap();
    }
    let january: Vec<_> = client
        .stream_time_entries(
            Query::new()
                .filter("person_id", &pm)
                .filter("after", "2026-01-01")
                .filter("before", "2026-01-31")
                .include(["service"]),
        )
        .try_collect()
        .await
        .unwrap();
    assert_eq!(january.iter().map(|e| e.attributes.time.unwrap()).sum::<u64>(), 150);
    assert_eq!(january[0].service_id(), Some(service.clone()), "linkage when asked for with include");

    // no service → 422 pointing at the relationship; nothing stored
    let doc = WriteDocument::create("time_entries")
        .attribute("date", "2026-01-05")
        .attribute("time", 60)
        .relate("person", "people", &pm);
    let e = client.post_document::<TimeEntryAttributes>("/time_entries", &doc).await.unwrap_err();
    assert_eq!(e.status().unwrap().as_u16(), 422);
    assert_eq!(pointer(&e).as_deref(), Some("/data/relationships/service"));
    // a dangling service → 422 as well
    let dangling = NewTimeEntry::new(pm.clone(), "999999".into(), d("2026-01-05"), 60);
    assert_eq!(client.create_time_entry(&dangling).await.unwrap_err().status().unwrap().as_u16(), 422);
    assert_eq!(fake.all::<TimeEntryAttributes>().len(), 3);

    let first = january[0].typed_id();
    let mut patch = Map::new();
    patch.insert("time".into(), json!(75));
    assert_eq!(client.update_time_entry(&first, &patch).await.unwrap().attributes.time, Some(75));
    client.delete_time_entry(&first).await.unwrap();
    assert!(client.get_time_entry(&first, &Query::new()).await.unwrap_err().is_not_found());
    // unknown filters are refused like Productive does (400 Unsupported Filter)
    let e = client.list_time_entries(&Query::new().filter("colour", "red")).await.unwrap_err();
    assert_eq!(e.status().unwrap().as_u16(), 400);
}

/// Bookings: the method's amount, a service xor an event, and a date range in order are enforced (422 with
/// `source.pointer`); `after`/`before` select overlapping bookings.
#[tokio::test]
async fn bookings_enforce_method_target_and_dates() {
    let fake = FakeProductive::start().await.unwrap();
    let client = fake.client();
    let (pm, service) = person_and_service(&fake, &client).await;
    let week = NewBooking::new(
        pm.clone(),
        BookingTarget::Service(service.clone()),
        d("2026-02-02"),
        d("2026-02-06"),
        Allocation::MinutesPerDay(240),
    );
    let b = client.create_booking(&week).await.unwrap();
    assert_eq!(b.attributes.draft, Some(false));
    let holiday = NewBooking::new(
        pm.clone(),
        BookingTarget::Absence("3".into()),
        d("2026-03-02"),
        d("2026-03-03"),
        Allocation::Percentage(100),
    );
    client.create_booking(&holiday).await.unwrap();

    let overlapping: Vec<_> = client
        .stream_bookings(Query::new().filter("after", "2026-02-05").filter("before", "2026-02-28"))
        .try_collect()
        .await
        .unwrap();
    assert_eq!(overlapping.iter().map(|x| x.id.as_str()).collect::<Vec<_>>(), [b.id.as_str()]);

    // bodies the typed builder never produces, sent raw: the fake is as strict as the docs
    let base = || {
        WriteDocument::create("bookings")
            .attribute("started_on", "2026-02-02")
            .attribute("ended_on", "2026-02-06")
            .relate("person", "people", &pm)
    };
    let cases = [
        (base().attribute("booking_method_id", 1).relate("service", "services", &service), "/data/attributes/time"),
        (base().attribute("booking_method_id", 3).attribute("total_time", 600), "/data/relationships/service"),
        (
            base()
                .attribute("booking_method_id", 1)
                .attribute("time", 60)
                .relate("service", "services", &service)
                .relate("event", "events", "3"),
            "/data/relationships/service",
        ),
        (
            base()
                .attribute("booking_method_id", 1)
                .attribute("time", 60)
                .attribute("ended_on", "2026-01-01")
                .relate("service", "services", &service),
            "/data/attributes/ended_on",
        ),
        (
            base().attribute("booking_method_id", 7).relate("service", "services", &service),
            "/data/attributes/booking_method_id",
        ),
    ];
    for (doc, want) in cases {
        let e = client.post_document::<BookingAttributes>("/bookings", &doc).await.unwrap_err();
        assert_eq!(e.status().unwrap().as_u16(), 422, "{want}");
        assert_eq!(pointer(&e).as_deref(), Some(want));
    }
    assert_eq!(fake.all::<BookingAttributes>().len(), 2);
    client.delete_booking(&b.typed_id()).await.unwrap();
    assert_eq!(fake.all::<BookingAttributes>().len(), 1);
}

/// The member actions the fake serves: archive/restore (`archived_at`, and `filter[status]=2` finds archived
/// companies) and deal close with `delivered_on` (P-old faq.html).
#[tokio::test]
async fn archive_restore_and_close() {
    let fake = FakeProductive::start().await.unwrap();
    let client = fake.client();
    let acme = client.create_company(&NewCompany::new("Acme")).await.unwrap();
    let archived = client.archive_company(&acme.typed_id()).await.unwrap();
    assert!(archived.attributes.archived_at.is_some());
    assert_eq!(client.list_companies(&Query::new().filter("status", 2)).await.unwrap().data.len(), 1);
    let back = client.restore_company(&acme.typed_id()).await.unwrap();
    assert!(back.attributes.archived_at.is_none());
    assert!(client.archive_company(&"424242".into()).await.unwrap_err().is_not_found());

    let pm = fake.seed_person("Pat", "Manager", "pm@agency.io");
    let p = client.create_project(&NewProject::client("Site", acme.typed_id(), pm.clone())).await.unwrap();
    let budget = client
        .create_budget(&NewDeal::budget("Site", acme.typed_id(), p.typed_id()).currency("EUR").responsible(pm))
        .await
        .unwrap();
    let closed = client.close_deal(&budget.typed_id(), Some(d("2024-03-14"))).await.unwrap();
    assert_eq!(closed.attributes.delivered_on, Some(d("2024-03-14")));
}

/// Productive's limit (100 requests / 10 s per token and organization, api-notes productive.md §3) holds on time
/// entries and bookings as on every path: with the client's own budget lifted, request 101 inside the window is a
/// 429, and the client reports the documented 10 s wait.
#[tokio::test]
async fn time_entries_and_bookings_share_the_strict_rate_limit() {
    let fake = FakeProductive::start().await.unwrap();
    let client = fake
        .client_builder()
        .rate_budget(api_core::RateLimiter::unlimited())
        .retry_policy(api_core::RetryPolicy::none())
        .build()
        .unwrap();
    for i in 0..100 {
        let r = if i % 2 == 0 {
            client.list_time_entries(&Query::new()).await.map(drop)
        } else {
            client.list_bookings(&Query::new()).await.map(drop)
        };
        r.unwrap_or_else(|e| panic!("request {i}: {e}"));
    }
    let e = client.list_bookings(&Query::new()).await.unwrap_err();
    assert_eq!(e.status().unwrap().as_u16(), 429);
    assert_eq!(e.retry_after(), Some(std::time::Duration::from_secs(10)));
    let e = client.list_time_entries(&Query::new()).await.unwrap_err();
    assert_eq!(e.status().unwrap().as_u16(), 429);
}

/// The seed helpers make time data a user's test can read at once; `filter[project_id]` follows the service's
/// budget to its project (time_entries.html, community OpenAPI `/bookings`).
#[tokio::test]
async fn seeded_time_entries_and_bookings_and_the_project_filter() {
    let fake = FakeProductive::start().await.unwrap();
    let client = fake.client();
    let dev = fake.seed_person("Dee", "Dev", "dev@agency.io");
    let (_budget, seeded_service) = fake.seed_service("Support");
    let entry = fake.seed_time_entry(&dev, &seeded_service, "2026-01-07", 45);
    let booking = fake.seed_booking(&dev, &seeded_service, "2026-01-05", "2026-01-09", 120);
    let got = client.get_time_entry(&entry, &Query::new().include(["person", "service"])).await.unwrap();
    assert_eq!(got.data.attributes.time, Some(45));
    assert_eq!(got.data.person_id(), Some(dev.clone()));
    assert_eq!(client.get_booking(&booking, &Query::new()).await.unwrap().data.attributes.time, Some(120));

    // a second service on a budget of a project: only its entries match filter[project_id]
    let (_pm, service) = person_and_service(&fake, &client).await;
    client.create_time_entry(&NewTimeEntry::new(dev.clone(), service.clone(), d("2026-01-08"), 30)).await.unwrap();
    let project = client.list_projects(&Query::new()).await.unwrap().data[0].typed_id();
    let on_project: Vec<_> =
        client.stream_time_entries(Query::new().filter("project_id", &project)).try_collect().await.unwrap();
    assert_eq!(on_project.len(), 1);
    assert_eq!(on_project[0].attributes.time, Some(30));
    let bookings: Vec<_> =
        client.stream_bookings(Query::new().filter("project_id", &project)).try_collect().await.unwrap();
    assert!(bookings.is_empty(), "the seeded booking's budget has no project");
}

/// The fake's approval actions and the booking update rules (an update must leave a valid booking).
#[tokio::test]
async fn approval_and_booking_updates_stay_valid() {
    let fake = FakeProductive::start().await.unwrap();
    let client = fake.client();
    let dev = fake.seed_person("Dee", "Dev", "dev@agency.io");
    let (_budget, service) = fake.seed_service("Support");
    let entry = fake.seed_time_entry(&dev, &service, "2026-01-07", 45);
    let approved = client.approve_time_entry(&entry).await.unwrap();
    assert_eq!(approved.attributes.approved, Some(true));
    assert!(approved.attributes.approved_at.is_some());
    let rejected = client.reject_time_entry(&entry, Some("wrong service")).await.unwrap();
    assert_eq!(rejected.attributes.rejected, Some(true));
    assert_eq!(rejected.attributes.rejected_reason.as_deref(), Some("wrong service"));

    let booking = fake.seed_booking(&dev, &service, "2026-01-05", "2026-01-09", 120);
    let mut to_percentage = Map::new();
    to_percentage.insert("booking_method_id".into(), json!(2));
    let e = client.update_booking(&booking, &to_percentage).await.unwrap_err();
    assert_eq!(pointer(&e).as_deref(), Some("/data/attributes/percentage"));
    to_percentage.insert("percentage".into(), json!(50));
    let b = client.update_booking(&booking, &to_percentage).await.unwrap();
    assert_eq!(b.attributes.percentage, Some(50));
}
