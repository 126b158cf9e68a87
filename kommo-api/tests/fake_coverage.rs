//! The fake serves unsorted leads and catalogs (issue 22) behind the same strict rate limit as every other route.
#![cfg(feature = "fake")]

use futures::TryStreamExt as _;
use kommo_api::{
    CatalogElementId, CustomFieldId, Error, FieldValueWrite, ListParams, UnsortedUid,
    catalogs::{CatalogType, CatalogWrite, ElementWrite},
    contacts::NewContact,
    fake::{FakeConfig, FakeKommo},
    leads::NewLead,
    unsorted::{FormMetadata, NewUnsortedForm, UnsortedCategory},
};

fn form(n: u32) -> NewUnsortedForm {
    NewUnsortedForm::new(
        format!("site-{n}"),
        "Website form",
        FormMetadata {
            form_id: Some("contact".into()),
            form_name: Some("Contact us".into()),
            form_page: Some("https://example.com/contact".into()),
            form_sent_at: Some(1_700_000_000),
            ..FormMetadata::default()
        },
    )
    .lead(NewLead::new(format!("Web lead {n}")).price(100))
    .contact(NewContact::new(format!("Visitor {n}")).email(format!("v{n}@example.com")))
}

/// A form lead waits in "Incoming leads" (status type 1) until accepted into the first regular stage; a declined
/// one is deleted with its lead.
#[tokio::test]
async fn unsorted_forms_accept_and_decline() {
    let fake = FakeKommo::start_with(FakeConfig { rate_limit: None, ..FakeConfig::default() }).await.unwrap();
    let c = fake.client();
    let made = c.unsorted().create_forms(&[form(1), form(2)]).await.unwrap();
    assert_eq!(made.len(), 2);
    assert_eq!(made[1].request_id.as_deref(), Some("1"));
    let lead1 = kommo_api::LeadId(made[0].embedded.leads[0].id);
    let incoming = fake.lead(lead1).unwrap().status_id.unwrap();
    let pipeline = fake.main_pipeline();
    assert!(!fake.stages(pipeline).contains(&incoming), "waits in the Incoming leads status");
    assert_eq!(
        fake.lead(lead1).unwrap().main_contact().map(kommo_api::ContactId::get),
        Some(made[0].embedded.contacts[0].id)
    );

    let listed: Vec<_> =
        c.unsorted().stream(ListParams::new().filter_in("category", "forms")).try_collect().await.unwrap();
    assert_eq!(listed.len(), 2);
    assert!(listed.iter().all(|u| u.category == Some(UnsortedCategory::Forms)));
    assert_eq!(c.unsorted().get(&made[0].uid).await.unwrap().source_uid.as_deref(), Some("site-1"));
    assert!(
        c.unsorted()
            .stream(ListParams::new().filter_in("category", "sip"))
            .try_collect::<Vec<_>>()
            .await
            .unwrap()
            .is_empty()
    );

    let a = c.unsorted().accept(&made[0].uid, None, None).await.unwrap();
    assert_eq!(a.embedded.leads[0].id, lead1.get());
    assert_eq!(fake.lead(lead1).unwrap().status_id, Some(fake.stages(pipeline)[0]));
    let lead2 = kommo_api::LeadId(made[1].embedded.leads[0].id);
    c.unsorted().decline(&made[1].uid, None).await.unwrap();
    assert!(fake.lead(lead2).is_none(), "a declined unsorted lead is gone");
    assert!(fake.unsorted().is_empty());
    let summary = c.unsorted().summary(&ListParams::new()).await.unwrap();
    assert_eq!((summary.total, summary.accepted, summary.declined), (Some(0), Some(1), Some(1)));
    // both are gone from the unsorted list: a second accept is a 404
    let e = c.unsorted().accept(&made[0].uid, None, None).await.unwrap_err();
    assert!(e.is_not_found(), "{e:?}");
    assert!(c.unsorted().get(&UnsortedUid::from("nope")).await.unwrap_err().is_not_found());
}

/// The fake validates like Kommo: required members missing give the problem+json `validation-errors`.
#[tokio::test]
async fn unsorted_and_catalog_validation() {
    let fake = FakeKommo::start_with(FakeConfig { rate_limit: None, ..FakeConfig::default() }).await.unwrap();
    let c = fake.client();
    let mut bad = form(1);
    bad.source_name = String::new();
    let e = c.unsorted().create_forms(&[bad]).await.unwrap_err();
    assert_eq!(e.validation_errors()[0].errors[0].path.as_deref(), Some("source_name"), "{e:?}");
    assert!(fake.unsorted().is_empty(), "nothing made");
    let catalogs = c.catalogs();
    let cat = catalogs.create(&[CatalogWrite::new("Products").kind(CatalogType::Products)]).await.unwrap()[0].id;
    let e = catalogs
        .elements(kommo_api::CatalogId(cat))
        .update(&[ElementWrite::update(CatalogElementId(999_999))])
        .await
        .unwrap_err();
    assert_eq!(e.validation_errors()[0].errors[0].path.as_deref(), Some("id"), "{e:?}");
}

/// Catalogs and elements round-trip; elements are found by `query` (name or field value).
#[tokio::test]
async fn catalogs_and_elements() {
    let fake = FakeKommo::start_with(FakeConfig { rate_limit: None, ..FakeConfig::default() }).await.unwrap();
    let c = fake.client();
    let id = kommo_api::CatalogId(
        c.catalogs().create(&[CatalogWrite::new("Products").kind(CatalogType::Products)]).await.unwrap()[0].id,
    );
    c.catalogs().update(&[CatalogWrite::update(id).name("Goods")]).await.unwrap();
    let cat = c.catalogs().get(id).await.unwrap();
    assert_eq!((cat.name.as_str(), cat.kind.clone()), ("Goods", Some(CatalogType::Products)));
    let els = c.catalogs().elements(id);
    let made = els
        .create(&[
            ElementWrite::new("Widget").field(FieldValueWrite::text(CustomFieldId(70), "sku-1")),
            ElementWrite::new("Gadget"),
        ])
        .await
        .unwrap();
    assert_eq!(made.len(), 2);
    let found = els.list(&ListParams::new().query("sku-1"), 1).await.unwrap();
    assert_eq!(found.items.iter().map(|e| e.name.as_str()).collect::<Vec<_>>(), ["Widget"]);
    els.update(&[ElementWrite::update(CatalogElementId(made[1].id)).name("Gadget 2")]).await.unwrap();
    assert_eq!(els.get(CatalogElementId(made[1].id)).await.unwrap().name, "Gadget 2");
    assert_eq!(fake.catalog_elements(id).len(), 2);
    assert!(els.get(CatalogElementId(1)).await.unwrap_err().is_not_found(), "unknown element: 204");
}

/// The new routes sit behind the same sliding-second limit (kommo.md §2: 7 requests per second): a burst is
/// refused with the HTML 429, a spaced client never is.
#[tokio::test]
async fn new_routes_share_the_strict_rate_limit() {
    let fake = FakeKommo::start().await.unwrap();
    let burst = fake.client_builder().rate_limit(0).build().unwrap();
    let mut refused = None;
    for _ in 0..10 {
        if let Err(e) = burst.catalogs().list(&ListParams::new(), 1).await {
            refused = Some(e);
            break;
        }
    }
    let e = refused.expect("a burst on /catalogs must be throttled");
    assert!(matches!(e, Error::Throttled { .. }), "{e:?}");
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let fake = FakeKommo::start().await.unwrap();
    let spaced = fake.client();
    for _ in 0..9 {
        spaced.unsorted().list(&ListParams::new(), 1).await.unwrap();
    }
}
