//! The fake's issue-22 resources through the client: record comments, schema writes (base, table, field) and
//! `uploadAttachment` — and the same strict rate limit on them as on records (api-notes/airtable.md C.4: 5 requests
//! per second per base, counted on arrival, then 30 s of 429s).
#![cfg(feature = "fake")]

use std::time::Duration;

use airtable_client::{
    Error, ErrorType, FieldConfig, FieldType, Fields, NewComment, RecordId, TableConfig, UpdateField, UpdateTable,
    Upload, WriteOptions,
    fake::{FakeAirtable, FakeConfig, FieldSpec, Latency},
    metadata::CreateBase,
};
use api_core::RetryPolicy;
use futures::TryStreamExt as _;
use http::StatusCode;
use serde_json::json;
use tokio::time::Instant;

async fn setup() -> (FakeAirtable, RecordId) {
    let fake = FakeAirtable::start_with(FakeConfig::unlimited()).await.unwrap();
    let _ = fake.add_table_with(
        "Contacts",
        vec![FieldSpec::new("Name", "singleLineText"), FieldSpec::new("Photos", "multipleAttachments")],
    );
    let ids = fake.seed("Contacts", &[json!({"Name": "Ada"})]).unwrap();
    (fake, ids[0].clone())
}

#[tokio::test]
async fn comments_are_served_paged_newest_first_and_counted() {
    let (fake, rec) = setup().await;
    let client = fake.client();
    let t = client.table(fake.id(), "Contacts");
    let first = t.create_comment(&rec, &NewComment::new("first")).await.unwrap();
    assert_eq!(first.author.id.as_str(), fake.api_user().id);
    assert_eq!(first.last_updated_time, None);
    let reply = t.create_comment(&rec, &NewComment::new("reply").reply_to(first.id.clone())).await.unwrap();
    assert_eq!(reply.parent_comment_id.as_ref(), Some(&first.id));
    let third = t.create_comment(&rec, &NewComment::new("third")).await.unwrap();

    // newest first, one per page, the offset carries on
    let p1 = t.list_comments(&rec, Some(1), None).await.unwrap();
    assert_eq!(p1.comments[0].id, third.id);
    let p2 = t.list_comments(&rec, Some(1), p1.offset.as_deref()).await.unwrap();
    assert_eq!(p2.comments[0].id, reply.id);
    let all: Vec<_> = t.stream_comments(&rec).try_collect().await.unwrap();
    assert_eq!(all.iter().map(|c| c.text.as_str()).collect::<Vec<_>>(), ["third", "reply", "first"]);

    // recordMetadata=commentCount on list
    let listed = t.list().comment_count().all().await.unwrap();
    assert_eq!(listed[0].comment_count, Some(3));

    let edited = t.update_comment(&rec, &first.id, "first, edited").await.unwrap();
    assert!(edited.last_updated_time.is_some());
    assert!(t.delete_comment(&rec, &third.id).await.unwrap().deleted);
    let kept = fake.comments("Contacts", &rec);
    assert_eq!(kept.iter().map(|c| c.text.as_str()).collect::<Vec<_>>(), ["reply", "first, edited"]);

    // a reply to a comment of another record, an unknown comment, an unknown record
    let e = t.create_comment(&rec, &NewComment::new("x").reply_to("comNOPE".into())).await.unwrap_err();
    assert_eq!(e.status(), Some(StatusCode::UNPROCESSABLE_ENTITY));
    let e = t.update_comment(&rec, &"comNOPE".into(), "y").await.unwrap_err();
    assert_eq!(e.error_type(), Some(&ErrorType::NotFound));
    let e = t.list_comments(&"recNOPE".into(), None, None).await.unwrap_err();
    assert_eq!(e.error_type(), Some(&ErrorType::NotFound));

    // a person's comment: listed with its author, and the token may neither edit nor delete it (403)
    let person = airtable_client::fake::FakeUser::with_email("pm@example.com");
    let theirs = fake.user_comment("Contacts", &rec, "from the UI", &person).unwrap();
    let newest = t.list_comments(&rec, Some(1), None).await.unwrap().comments.remove(0);
    assert_eq!((newest.id.clone(), newest.author.email.as_str()), (theirs.clone(), "pm@example.com"));
    let e = t.update_comment(&rec, &theirs, "hijack").await.unwrap_err();
    assert_eq!((e.status(), e.error_type()), (Some(StatusCode::FORBIDDEN), Some(&ErrorType::InvalidPermissions)));
    assert!(t.delete_comment(&rec, &theirs).await.is_err());
    assert_eq!(fake.comments("Contacts", &rec)[0].text, "from the UI");

    // deleting the record drops its comments
    t.delete_one(&rec).await.unwrap();
    assert!(fake.comments("Contacts", &rec).is_empty());
}

#[tokio::test]
async fn tables_and_fields_are_created_validated_and_usable() {
    let (fake, _) = setup().await;
    let client = fake.client();
    let base = fake.id();
    let cfg = TableConfig {
        name: "Deals".into(),
        description: Some("Won deals".into()),
        fields: vec![
            FieldConfig::new("Title", FieldType::SingleLineText),
            FieldConfig::new("Stage", FieldType::SingleSelect).options(json!({"choices": [{"name": "Won"}]})),
        ],
    };
    let t = client.create_table(&base, &cfg).await.unwrap();
    assert_eq!(t.primary_field_id, t.fields[0].id, "the first field is the primary field");
    assert_eq!(t.views[0].name, "Grid view");
    assert!(t.field("Stage").unwrap().choices()[0].id.as_deref().is_some_and(|i| i.starts_with("sel")));
    let schema = client.base_schema(&base).await.unwrap();
    assert!(schema.table("Deals").is_some());

    // the same name twice (case-insensitively) is refused by the fake
    let mut again = cfg.clone();
    again.name = "deals".into();
    let e = client.create_table(&base, &again).await.unwrap_err();
    assert_eq!(e.status(), Some(StatusCode::UNPROCESSABLE_ENTITY));

    let f = client
        .create_field(&base, &t.id, &FieldConfig::new("Amount", FieldType::Currency).description("EUR"))
        .await
        .unwrap();
    assert_eq!(f.description.as_deref(), Some("EUR"));
    let e = client.create_field(&base, &t.id, &FieldConfig::new("amount", FieldType::Number)).await.unwrap_err();
    assert_eq!(e.status(), Some(StatusCode::UNPROCESSABLE_ENTITY));
    let e = client.create_field(&base, &t.id, &FieldConfig::new("Sum", FieldType::Formula)).await.unwrap_err();
    assert_eq!(e.status(), Some(StatusCode::UNPROCESSABLE_ENTITY), "computed types are not created via the API");
    let link = FieldConfig::new("Owner", FieldType::MultipleRecordLinks).options(json!({"linkedTableId": "tblNOPE"}));
    assert!(client.create_field(&base, &t.id, &link).await.is_err());

    let renamed = client
        .update_field(&base, &t.id, &f.id, &UpdateField { name: Some("Value".into()), description: None })
        .await
        .unwrap();
    assert_eq!((renamed.name.as_str(), renamed.description.as_deref()), ("Value", Some("EUR")));
    let t2 = client
        .update_table(&base, "Deals", &UpdateTable { name: Some("Won deals".into()), description: None })
        .await
        .unwrap();
    assert_eq!(t2.name, "Won deals");
    let e = client.update_table(&base, "tblNOPE", &UpdateTable { name: Some("x".into()), description: None }).await;
    assert!(e.unwrap_err().is_not_found());

    // the new table takes records under its new field names
    let deals = client.table(base.clone(), t.id.as_str());
    let r = deals
        .create_one(
            Fields::new().with("Title", "Acme").with("Stage", "Won").with("Value", 1200),
            WriteOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(r.fields.get_f64("Value"), Some(1200.0));

    // a new base, listed afterwards
    let created = client
        .create_base(&CreateBase { name: "CRM".into(), workspace_id: "wspmhESAta6clCCwF".into(), tables: vec![cfg] })
        .await
        .unwrap();
    assert_eq!(created.tables[0].name, "Deals");
    let bases: Vec<_> = client.stream_bases().try_collect().await.unwrap();
    assert!(bases.iter().any(|b| b.id == created.id && b.name == "CRM"));
}

#[tokio::test]
async fn upload_attachment_appends_to_the_cell() {
    let (fake, rec) = setup().await;
    let client = fake.client();
    let t = client.table(fake.id(), "Contacts");
    let r =
        t.upload_attachment(&rec, "Photos", &Upload::new("text/plain", "sample.txt", b"Hello world".to_vec())).await;
    let r = r.unwrap();
    let photos = fake.field_id("Contacts", "Photos").unwrap();
    assert!(r.fields.get(photos.as_str()).is_some(), "answered keyed by field id");
    t.upload_attachment(&rec, &photos, &Upload::new("image/png", "b.png", vec![1, 2, 3])).await.unwrap();
    let stored = fake.record("Contacts", &rec).unwrap();
    match stored.fields.get("Photos").unwrap() {
        airtable_client::CellValue::Attachments(a) => {
            assert_eq!(a.len(), 2);
            assert_eq!((a[0].filename.as_deref(), a[0].size), (Some("sample.txt"), Some(11)));
        }
        other => panic!("{other:?}"),
    }
    let e = t.upload_attachment(&rec, "Name", &Upload::new("text/plain", "a.txt", b"x".to_vec())).await.unwrap_err();
    assert_eq!(e.status(), Some(StatusCode::UNPROCESSABLE_ENTITY), "not an attachment field");
}

/// The strict limit covers the new routes: 5 arrivals in a second on one base pass, the 6th (a table creation) is
/// 429 `RATE_LIMIT_REACHED`, and comments on that base stay refused for 30 s (`Error::retry_after` = 30 s).
#[tokio::test(start_paused = true)]
async fn comments_and_schema_writes_share_the_strict_base_limit() {
    let fake = FakeAirtable::start().await.unwrap();
    let _ = fake.add_table("T", &[("Name", "singleLineText")]);
    let rec = fake.seed("T", &[json!({"Name": "a"})]).unwrap().remove(0);
    // no client-side spacing and no retries: the fake alone decides
    let client = fake
        .in_process_client_builder(Latency::default())
        .requests_per_second_per_base(None)
        .retry_policy(RetryPolicy::none())
        .build()
        .unwrap();
    let t = client.table(fake.id(), "T");
    for i in 0..5 {
        t.create_comment(&rec, &NewComment::new(format!("c{i}"))).await.unwrap();
    }
    let cfg =
        TableConfig { name: "U".into(), description: None, fields: vec![FieldConfig::new("N", FieldType::Email)] };
    let e = client.create_table(&fake.id(), &cfg).await.unwrap_err();
    assert_eq!(e.error_type(), Some(&ErrorType::RateLimitReached));
    assert_eq!(e.retry_after(), Some(Duration::from_secs(30)));
    let start = Instant::now();
    tokio::time::sleep(Duration::from_secs(29)).await;
    // a client that has not seen the 429 (this one holds the base itself): the fake still refuses
    let other = fake
        .in_process_client_builder(Latency::default())
        .requests_per_second_per_base(None)
        .retry_policy(RetryPolicy::none())
        .build()
        .unwrap();
    let t = other.table(fake.id(), "T");
    let e = t.list_comments(&rec, None, None).await.unwrap_err();
    assert!(matches!(&e, Error::Api(a) if a.status() == StatusCode::TOO_MANY_REQUESTS));
    tokio::time::sleep_until(start + Duration::from_millis(30_001)).await;
    assert_eq!(t.list_comments(&rec, None, None).await.unwrap().comments.len(), 5);
    assert_eq!(fake.throttled_count(), 2);
}

/// The single-record read options on the fake: `returnFieldsByFieldId`, and `cellFormat=string` only with `timeZone`
/// and `userLocale` (api-notes airtable.md B.1/B.2) — the fake refuses it otherwise, as Airtable does (the client
/// refuses first; a raw request shows the fake's own check).
#[tokio::test]
async fn single_record_read_options() {
    let (fake, rec) = setup().await;
    let client = fake.client();
    let t = client.table(fake.id(), "Contacts");
    let name = fake.field_id("Contacts", "Name").unwrap();
    let r = t.get_by_field_id(&rec).await.unwrap();
    assert_eq!(r.fields.get_str(name.as_str()), Some("Ada"));
    let r = t.get_with(&rec, &airtable_client::ReadOptions::string_cells("Europe/Berlin", "en-gb")).await.unwrap();
    assert_eq!(r.fields.get_str("Name"), Some("Ada"));
    let raw = api_core::Request::get(format!("/{}/Contacts/{}", fake.id(), rec)).query("cellFormat", "string");
    let e = client.send(raw.rate_key(fake.id().as_str())).await.unwrap_err();
    assert_eq!(e.status(), Some(StatusCode::UNPROCESSABLE_ENTITY));
}

/// Schema writes reach the webhooks watching them, in the documented payload shapes (api-notes airtable.md A.9,
/// OFFICIAL webhooks-table-changed): `createdFieldsById`, `changedFieldsById` with `previous` under
/// `includePreviousFieldDefinitions`, `changedMetadata`, `createdTablesById`; a `tableData` hook sees none of them.
#[tokio::test]
async fn schema_writes_make_schema_payloads() {
    use airtable_client::webhook::{CreateWebhook, DataType, Filters, Includes, SpecOptions, WebhookSpecification};
    let (fake, _) = setup().await;
    let client = fake.client();
    let base = fake.id();
    let table = fake.table_id("Contacts").unwrap();
    let schema_spec = WebhookSpecification {
        options: SpecOptions {
            filters: Filters { data_types: vec![DataType::TableFields, DataType::TableMetadata], ..Filters::default() },
            includes: Some(Includes { include_previous_field_definitions: Some(true), ..Includes::default() }),
        },
    };
    let schema_hook = client
        .create_webhook(&base, &CreateWebhook { notification_url: None, specification: schema_spec })
        .await
        .unwrap();
    let data_hook = client
        .create_webhook(
            &base,
            &CreateWebhook { notification_url: None, specification: WebhookSpecification::table_data(table.as_str()) },
        )
        .await
        .unwrap();

    let f = client.create_field(&base, &table, &FieldConfig::new("Phone", FieldType::PhoneNumber)).await.unwrap();
    client
        .update_field(&base, &table, &f.id, &UpdateField { name: Some("Mobile".into()), description: None })
        .await
        .unwrap();
    client.update_table(&base, &table, &UpdateTable { name: Some("People".into()), description: None }).await.unwrap();
    let cfg = TableConfig {
        name: "Deals".into(),
        description: None,
        fields: vec![FieldConfig::new("T", FieldType::SingleLineText)],
    };
    let deals = client.create_table(&base, &cfg).await.unwrap();

    let (payloads, _) = client.payload_feed(&base, &schema_hook.id, 1).collect_all().await.unwrap();
    assert_eq!(payloads.len(), 4);
    let changed = |i: usize| payloads[i].payload.changed_tables_by_id[&table].clone();
    assert_eq!(changed(0).created_fields_by_id[&f.id].name.as_deref(), Some("Phone"));
    assert_eq!(changed(0).created_fields_by_id[&f.id].kind.as_deref(), Some("phoneNumber"));
    let renamed = &changed(1).changed_fields_by_id[&f.id];
    assert_eq!(
        (renamed.current.name.as_deref(), renamed.previous.as_ref().and_then(|p| p.name.as_deref())),
        (Some("Mobile"), Some("Phone"))
    );
    let meta = changed(2).changed_metadata.unwrap();
    assert_eq!(
        (meta["current"]["name"].as_str(), meta["previous"]["name"].as_str()),
        (Some("People"), Some("Contacts"))
    );
    let created = &payloads[3].payload.created_tables_by_id[&deals.id];
    assert_eq!(created["metadata"]["name"], "Deals");
    assert!(payloads.iter().all(|p| p.payload.source() == Some(&airtable_client::ActionSource::PublicApi)));

    let (data, _) = client.payload_feed(&base, &data_hook.id, 1).collect_all().await.unwrap();
    assert!(data.is_empty(), "a tableData hook gets no schema payloads");
}
