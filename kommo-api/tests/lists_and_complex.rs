//! The page size lists and streams ask for, and the single `_embedded` object of `leads/complex` (issue 18).

use std::time::Duration;

use futures::TryStreamExt as _;
use kommo_api::{
    Client, ContactId, ListParams, TagRef,
    companies::NewCompany,
    contacts::NewContact,
    leads::{ComplexEmbedded, ComplexLead, NewLead},
};
use serde_json::json;
use wiremock::{
    Mock, MockServer, ResponseTemplate,
    matchers::{body_json, method, path, query_param},
};

fn client(server: &MockServer) -> Client {
    Client::builder()
        .base_url(server.uri())
        .long_lived_token("t")
        .rate_limit(0)
        .retry_policy(kommo_api::RetryPolicy { base_delay: Duration::from_millis(1), ..Default::default() })
        .build()
        .unwrap()
}

#[tokio::test]
async fn complex_lead_with_tags_sends_one_merged_embedded() {
    let server = MockServer::start().await;
    let expected = json!([{
        "name": "Deal",
        "price": 500,
        "request_id": "1",
        "_embedded": {
            "tags": [{"name": "vip"}, {"name": "web"}],
            "contacts": [{"name": "Ann", "custom_fields_values": [{"field_code": "EMAIL", "values": [{"value": "a@b.c", "enum_code": "WORK"}]}]}, {"id": 77}],
            "companies": [{"name": "Acme"}]
        }
    }]);
    Mock::given(method("POST"))
        .and(path("/api/v4/leads/complex"))
        .and(body_json(expected))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(
                json!([{"id": 1, "contact_id": 2, "company_id": 3, "request_id": ["1"], "merged": false}]),
            ),
        )
        .expect(1)
        .mount(&server)
        .await;
    let lead = ComplexLead {
        lead: NewLead::new("Deal").price(500).tag("vip").contact(ContactId(77)).request_id("1"),
        embedded: ComplexEmbedded {
            contacts: vec![NewContact::new("Ann").email("a@b.c")],
            companies: vec![NewCompany::new("Acme")],
            tags: vec![TagRef::from("web")],
        },
    };
    let r = client(&server).leads().create_complex(&[lead]).await.unwrap();
    assert_eq!(r[0].id.get(), 1);
    // PHP keeps the last of duplicate keys: the raw body must carry exactly one `_embedded` per lead
    let sent = server.received_requests().await.unwrap();
    let raw = String::from_utf8(sent[0].body.clone()).unwrap();
    assert_eq!(raw.matches("\"_embedded\"").count(), 1, "{raw}");
}

#[tokio::test]
async fn complex_lead_with_only_its_own_embedded_keeps_it() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/v4/leads/complex"))
        .and(body_json(json!([{"name": "Deal", "_embedded": {"tags": [{"name": "vip"}]}}])))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([{"id": 1, "request_id": ["0"]}])))
        .expect(1)
        .mount(&server)
        .await;
    let lead = ComplexLead { lead: NewLead::new("Deal").tag("vip"), embedded: ComplexEmbedded::default() };
    client(&server).leads().create_complex(&[lead]).await.unwrap();
}

#[tokio::test]
async fn lists_and_streams_ask_for_250_unless_told_otherwise() {
    let server = MockServer::start().await;
    // without `limit`, Kommo answers 50 per page; 250 is the documented maximum (api-notes/kommo.md §2, §3)
    Mock::given(method("GET"))
        .and(path("/api/v4/leads"))
        .and(query_param("limit", "250"))
        .and(query_param("page", "1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "_page": 1, "_links": {"next": {"href": "x"}}, "_embedded": {"leads": [{"id": 1}]}
        })))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v4/leads"))
        .and(query_param("limit", "250"))
        .and(query_param("page", "2"))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v4/contacts"))
        .and(query_param("limit", "250"))
        .and(query_param("query", "ann"))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v4/tasks"))
        .and(query_param("limit", "20"))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&server)
        .await;
    let c = client(&server);
    let leads: Vec<_> = c.leads().stream(ListParams::new()).try_collect().await.unwrap();
    assert_eq!(leads.len(), 1);
    let page = c.contacts().list(&ListParams::new().query("ann"), 1).await.unwrap();
    assert!(page.items.is_empty());
    let tasks: Vec<_> = c.tasks().stream(ListParams::new().limit(20)).try_collect().await.unwrap();
    assert!(tasks.is_empty());
}

#[cfg(feature = "fake")]
#[tokio::test]
async fn the_fake_serves_250_per_page_and_no_more() {
    use kommo_api::fake::{FakeConfig, FakeKommo, SeedLead};
    let fake = FakeKommo::start_with(FakeConfig { rate_limit: None, ..FakeConfig::default() }).await.unwrap();
    for i in 0..260 {
        fake.seed_lead(SeedLead::new(format!("L{i}")));
    }
    let c = fake.client();
    let all: Vec<_> = c.leads().stream(ListParams::new()).try_collect().await.unwrap();
    assert_eq!(all.len(), 260);
    let lists = fake.log().requests().into_iter().filter(|r| r.path == "/api/v4/leads").count();
    assert_eq!(lists, 2, "250 + 10");
    let page = c.leads().list(&ListParams::new().limit(250), 1).await.unwrap();
    assert_eq!(page.items.len(), 250);
    // above 250 the client refuses; the fake, like Kommo, never serves more than 250 even when asked
    assert!(c.leads().list(&ListParams::new().limit(251), 1).await.is_err());
    let raw = reqwest::Client::new()
        .get(fake.base_url().join("/api/v4/leads?limit=400").unwrap())
        .bearer_auth(fake.token())
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = raw.json().await.unwrap();
    assert!(body["_embedded"]["leads"].as_array().unwrap().len() <= 250);
}
