//! Webhook parsing from real-shaped bodies (tests/fixtures/webhooks, from kommo.md §5) and malformed ones.

use kommo_api::{
    AccountId, CustomFieldId, EntityType, EnumId, LeadId, StatusId, UserId,
    webhook::{self, WebhookAction, WebhookError, WebhookEvent, encode_form, verify_path_token},
};
use proptest::prelude::*;

/// Reads a `.form` fixture (decoded `key=value` lines, `#` comments) and encodes it as Kommo sends it.
fn form(name: &str) -> String {
    let text =
        std::fs::read_to_string(format!("{}/tests/fixtures/webhooks/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let pairs: Vec<(String, String)> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap();
            (k.to_owned(), v.to_owned())
        })
        .collect();
    encode_form(&pairs)
}

#[test]
fn lead_status_2018_capture() {
    let p = webhook::parse(form("lead_status_2018.form").as_bytes()).unwrap();
    assert_eq!(p.account.subdomain.as_deref(), Some("example"));
    assert_eq!(p.account.id, None, "2018 hooks carry no account[id]");
    assert_eq!(p.events.len(), 1);
    let WebhookEvent::Lead { action: WebhookAction::Status, lead } = &p.events[0] else { panic!("{:?}", p.events) };
    assert_eq!(lead.id, LeadId(10_701_093));
    assert_eq!(lead.status_id, Some(StatusId::WON));
    assert_eq!(lead.old_status_id, Some(StatusId(20_067_736)));
    assert_eq!(lead.price, Some(22_500));
    assert_eq!(lead.last_modified, Some(1_539_782_664));
    assert_eq!(lead.updated_at, None);
    assert_eq!(lead.tags[0].name, "python");
    // select with enum id
    let course = lead.custom_field(CustomFieldId(66_339)).unwrap();
    assert_eq!(course.values[0].value, "Python Basic");
    assert_eq!(course.values[0].enum_id, Some(EnumId(139_517)));
    // date as a bare [values][0]
    assert_eq!(lead.custom_field(CustomFieldId(72_333)).unwrap().as_unix(), Some(1_542_067_200));
    // checkbox
    assert_eq!(lead.custom_field(CustomFieldId(72_335)).unwrap().first(), Some("1"));
    assert_eq!(p.events[0].time(), Some(1_539_782_664));
    // the new stage and the old one are part of a status key (issue 17: a key identifies a change, not a second);
    // this 2018 capture sends `old_status_id` but no `old_pipeline_id` (kommo.md §5, capture 1), hence the `?`
    assert_eq!(p.events[0].dedup_key(), "lead:status:10701093:1539782664:142@9217056:from:20067736@?");
    assert_eq!(lead.raw.get("account_id").and_then(|n| n.as_str()), Some("17769199"), "raw fields kept");
}

#[test]
fn lead_add_2022_with_account_id() {
    let p = webhook::parse(form("lead_add_2022.form").as_bytes()).unwrap();
    assert_eq!(p.account.id, Some(AccountId(30_739_638)));
    assert_eq!(p.account.self_link.as_deref(), Some("https://example.amocrm.ru"));
    let lead = p.events[0].as_lead().unwrap();
    assert_eq!(p.events[0].action_name(), "add");
    assert_eq!(lead.updated_at, Some(1_671_091_200));
    assert_eq!(lead.responsible_user_id, Some(UserId(8_765_432)));
    assert!(p.check_account(Some(AccountId(30_739_638)), Some("example")).is_ok());
    assert!(matches!(p.check_account(Some(AccountId(1)), None), Err(WebhookError::WrongAccount { .. })));
    assert!(matches!(p.check_account(None, Some("other")), Err(WebhookError::WrongAccount { .. })));
}

#[test]
fn lead_update_with_custom_fields() {
    let p = webhook::parse(form("lead_update_custom_fields.form").as_bytes()).unwrap();
    let WebhookEvent::Lead { action: WebhookAction::Update, lead } = &p.events[0] else { panic!() };
    assert_eq!(lead.old_status_id, Some(StatusId(55_443_322)));
    assert_eq!(lead.custom_field(CustomFieldId(512_345)).unwrap().as_unix(), Some(1_671_235_200));
    let services = lead.custom_field(CustomFieldId(512_347)).unwrap();
    let picked: Vec<_> = services.values.iter().map(|v| (v.value.as_str(), v.enum_id)).collect();
    assert_eq!(picked, vec![("Design", Some(EnumId(1_364_110))), ("Development", Some(EnumId(1_364_111)))]);
    assert_eq!(p.events[0].dedup_key(), "lead:update:33269438:1671094800");
    assert_eq!(p.dedup_keys(), vec!["30739638:lead:update:33269438:1671094800".to_owned()]);
}

#[test]
fn contact_add_on_kommo_2026() {
    let p = webhook::parse(form("contact_add_kommo_2026.form").as_bytes()).unwrap();
    assert_eq!(p.account.self_link.as_deref(), Some("https://example.amocrm.com"), "Kommo still says amocrm.com");
    let WebhookEvent::Contact { action: WebhookAction::Add, contact } = &p.events[0] else { panic!("{:?}", p.events) };
    assert_eq!(contact.id, 21_480_512);
    assert_eq!(contact.group_id, Some(-1));
    assert_eq!(contact.responsible_user_id, Some(UserId(0)));
    assert_eq!(contact.phones(), vec!["+52 55 1234 5678".to_owned()]);
    assert_eq!(contact.emails(), vec!["maria@example.com".to_owned()]);
    assert_eq!(contact.linked_leads, vec![LeadId(35_144_366)]);
    assert!(!contact.is_company());
}

#[test]
fn company_arrives_as_contact_with_type_company() {
    let p = webhook::parse(form("company_as_contact_2016.form").as_bytes()).unwrap();
    let WebhookEvent::Company { action: WebhookAction::Add, company } = &p.events[0] else { panic!("{:?}", p.events) };
    assert_eq!(company.id, 9_876_543);
    assert_eq!(company.name.as_deref(), Some("ACME LLC"));
    assert_eq!(p.events[0].entity_name(), "company");
}

#[test]
fn note_on_lead_with_formatted_date() {
    let p = webhook::parse(form("note_lead_2020.form").as_bytes()).unwrap();
    let WebhookEvent::Note { entity, note } = &p.events[0] else { panic!("{:?}", p.events) };
    assert_eq!(*entity, EntityType::Leads);
    assert_eq!(note.id.get(), 144_503_245);
    assert_eq!(note.element_id, Some(26_411_859));
    assert!(note.is_common());
    assert_eq!(note.text.as_deref(), Some("Client asked for a callback"));
    // "2020-09-28 00:26:51" read as UTC
    assert_eq!(note.date_create, Some(1_601_252_811));
    assert_eq!(note.created_at, Some(1_601_242_011));
}

#[test]
fn responsible_task_reduced_and_unknown() {
    let p = webhook::parse(form("lead_responsible_2016.form").as_bytes()).unwrap();
    let lead = p.events[0].as_lead().unwrap();
    assert_eq!(lead.old_responsible_user_id, Some(UserId(102_525)));
    assert_eq!(p.events[0].action_name(), "responsible");

    let p = webhook::parse(form("task_add.form").as_bytes()).unwrap();
    let WebhookEvent::Task { action: WebhookAction::Add, task } = &p.events[0] else { panic!() };
    assert_eq!(task.entity_type(), Some(EntityType::Leads));
    assert_eq!(task.element_id, Some(33_269_438));
    assert_eq!(task.complete_till, Some(1_500_595_140)); // 2017-07-20 23:59:00 UTC
    assert_eq!(task.result_text.as_deref(), Some(""));

    let p = webhook::parse(form("lead_status_reduced.form").as_bytes()).unwrap();
    let lead = p.events[0].as_lead().unwrap();
    assert_eq!(lead.old_pipeline_id.map(kommo_api::PipelineId::get), Some(6_543_210));
    assert_eq!(lead.name, None);
    assert_eq!(p.events[0].time(), None);
    // no time in the reduced payload: a hash of the event's fields stands in for it (issue 17), plus both stages
    assert_eq!(p.events[0].dedup_key(), "lead:status:33269438:h7b4fdca0cd9c6609:142@6543210:from:55443323@6543210");

    let p = webhook::parse(form("message_add.form").as_bytes()).unwrap();
    let WebhookEvent::Unknown { entity, action, fields, .. } = &p.events[0] else { panic!() };
    assert_eq!((entity.as_str(), action.as_str()), ("message", "add"));
    assert_eq!(fields.get("author").and_then(|a| a.str("name")), Some("Maria"));
}

#[test]
fn percent_encoded_contact_update() {
    let raw =
        std::fs::read(format!("{}/tests/fixtures/webhooks/contact_update_2018.urlencoded", env!("CARGO_MANIFEST_DIR")))
            .unwrap();
    let p = webhook::parse(&raw).unwrap();
    let WebhookEvent::Contact { action: WebhookAction::Update, contact } = &p.events[0] else { panic!() };
    assert_eq!(contact.name.as_deref(), Some("Иван Петров"));
    assert_eq!(contact.phones(), vec!["+7 999 123-45-67".to_owned()]);
    assert_eq!(contact.linked_leads.len(), 3);
    assert_eq!(contact.linked_company_id.map(kommo_api::CompanyId::get), Some(9_982_710));
}

#[test]
fn several_events_in_one_body() {
    let body = "leads%5Badd%5D%5B0%5D%5Bid%5D=1&leads%5Badd%5D%5B1%5D%5Bid%5D=2&leads%5Bstatus%5D%5B0%5D%5Bid%5D=1&leads%5Bstatus%5D%5B0%5D%5Bstatus_id%5D=143&account%5Bsubdomain%5D=x";
    let p = webhook::parse(body.as_bytes()).unwrap();
    let ids: Vec<_> = p.events.iter().map(|e| (e.action_name().to_owned(), e.entity_id())).collect();
    assert_eq!(ids, vec![("add".into(), Some(1)), ("add".into(), Some(2)), ("status".into(), Some(1))]);
}

/// Kommo batches several events in one delivery (kommo.md §5, "One POST can hold several events and several
/// entities"), redelivers a delivery answered with a non-2xx and disables a hook that keeps failing (§5, bessudnov in
/// amocrm-api-php#226). One bad event must not reject the good ones: they are kept, the bad ones reported.
#[test]
fn one_bad_event_in_a_batch_keeps_the_others_and_is_reported() {
    let body = encode_form(&[
        // shaped like the 2018 status capture (kommo.md §5, capture 1)
        ("leads[status][0][id]", "10701093"),
        ("leads[status][0][status_id]", "142"),
        ("leads[status][0][old_status_id]", "20067736"),
        ("leads[status][0][last_modified]", "1539782664"),
        ("leads[status][1][name]", "no id"),
        ("leads[status][1][status_id]", "142"),
        ("leads[status][2][id]", "abc"),
        ("leads[status][3][id]", "10701094"),
        ("leads[status][3][status_id]", "143"),
        ("contacts[update][0][id]", "9982719"),
        ("contacts[update][0][type]", "contact"),
        ("account[subdomain]", "example"),
        ("account[id]", "17769199"),
    ]);
    let p = webhook::parse(body.as_bytes()).unwrap();
    let ids: Vec<_> = p.events.iter().map(|e| (e.entity_name().to_owned(), e.entity_id())).collect();
    assert_eq!(
        ids,
        [("contact".into(), Some(9_982_719)), ("lead".into(), Some(10_701_093)), ("lead".into(), Some(10_701_094))]
    );
    assert_eq!(
        p.rejected,
        vec![
            (
                "leads[status][1]".to_owned(),
                WebhookError::MissingField { path: "leads[status][1]".into(), field: "id" }
            ),
            (
                "leads[status][2]".to_owned(),
                WebhookError::NotANumber { path: "leads[status][2][id]".into(), value: "abc".into() }
            ),
        ]
    );
    // one body per good event, aligned with `events`; the bad ones have none
    let bodies = p.split_bodies();
    assert_eq!(bodies.len(), p.events.len());
    for (b, ev) in bodies.iter().zip(&p.events) {
        let one = webhook::parse(b.as_bytes()).unwrap();
        assert_eq!(one.events, vec![ev.clone()]);
        assert!(one.rejected.is_empty());
        assert_eq!(one.account.id, Some(AccountId(17_769_199)));
    }
    assert_eq!(p.dedup_keys().len(), 3);
    // only when no event parses is the body an error (the first event's)
    let all_bad = encode_form(&[("leads[status][0][name]", "x"), ("leads[status][1][id]", "y")]);
    assert_eq!(
        webhook::parse(all_bad.as_bytes()).unwrap_err(),
        WebhookError::MissingField { path: "leads[status][0]".into(), field: "id" }
    );
}

#[test]
fn malformed_bodies_are_typed_errors() {
    assert!(matches!(webhook::parse(b"leads[status][0[id]=1"), Err(WebhookError::BadKey { .. })));
    assert!(matches!(webhook::parse(b"leads]status[=1"), Err(WebhookError::BadKey { .. })));
    assert!(matches!(
        webhook::parse(b"leads[status][0][name]=x&account[subdomain]=y"),
        Err(WebhookError::MissingField { field: "id", .. })
    ));
    let err = webhook::parse(b"leads[status][0][id]=abc").unwrap_err();
    assert_eq!(err, WebhookError::NotANumber { path: "leads[status][0][id]".into(), value: "abc".into() });
    assert!(matches!(webhook::parse(b"leads[status][0]=1&leads[status][0][id]=2"), Err(WebhookError::Conflict { .. })));
    assert!(matches!(webhook::parse(b"account[subdomain]=x"), Err(WebhookError::NoEvents)));
    assert!(matches!(webhook::parse(b""), Err(WebhookError::NoEvents)));
    let big = format!("leads[add][0][id]=1&leads[add][0][name]={}", "x".repeat(1024 * 1024));
    assert!(matches!(webhook::parse(big.as_bytes()), Err(WebhookError::TooLarge { .. })));
    let deep = format!("a{}=1", "[x]".repeat(50));
    assert!(matches!(webhook::parse(deep.as_bytes()), Err(WebhookError::BadKey { .. })));
}

#[test]
fn secret_path_token_is_checked_in_constant_time() {
    let secret = kommo_api::Token::new("9f1c2e");
    assert!(verify_path_token(&secret, "9f1c2e"));
    assert!(!verify_path_token(&secret, "9f1c2f"));
    assert!(!verify_path_token(&secret, ""));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]
    #[test]
    fn random_bodies_never_panic(body in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = webhook::parse(&body);
    }

    #[test]
    fn random_bracket_keys_never_panic(keys in proptest::collection::vec("[a-z\\[\\]0-9]{0,20}", 0..8), vals in proptest::collection::vec("[ -~]{0,8}", 8)) {
        let pairs: Vec<(String, String)> = keys.into_iter().zip(vals).collect();
        let _ = webhook::parse(encode_form(&pairs).as_bytes());
    }
}

/// The body of one `leads[status][0]` event (kommo.md §5, "Key grammar": a status hook carries `status_id`,
/// `pipeline_id`, `old_status_id` and, in newer payloads, `old_pipeline_id`; `updated_at`/`last_modified` are Unix
/// seconds). `time: None` is the reduced Digital Pipeline payload (kommo.md §5, "Transport": only
/// `id|status_id|pipeline_id|old_status_id|old_pipeline_id` plus `account[id|subdomain]`, no time at all).
fn status_body(lead: u64, from: (u64, u64), to: (u64, u64), time: Option<i64>) -> String {
    let mut pairs = vec![
        ("leads[status][0][id]".to_owned(), lead.to_string()),
        ("leads[status][0][old_pipeline_id]".to_owned(), from.0.to_string()),
        ("leads[status][0][old_status_id]".to_owned(), from.1.to_string()),
        ("leads[status][0][pipeline_id]".to_owned(), to.0.to_string()),
        ("leads[status][0][status_id]".to_owned(), to.1.to_string()),
    ];
    if let Some(t) = time {
        pairs.push(("leads[status][0][updated_at]".to_owned(), t.to_string()));
        pairs.push(("leads[status][0][last_modified]".to_owned(), t.to_string()));
    }
    pairs.push(("account[id]".to_owned(), "30739638".to_owned()));
    pairs.push(("account[subdomain]".to_owned(), "example".to_owned()));
    encode_form(&pairs)
}

fn key_of(body: &str) -> String {
    let p = webhook::parse(body.as_bytes()).unwrap();
    assert_eq!(p.events.len(), 1);
    p.events[0].dedup_key()
}

/// Issue 17: a dedup key identifies a change, not a second. Won (Qualified → 142), reopened (142 → Proposal) and
/// won again (Proposal → 142) within one second are three changes: three keys. An exact redelivery of any of them
/// is the same change: the same key.
#[test]
fn status_keys_identify_the_change_not_the_second() {
    const P: u64 = 6_543_210;
    const QUALIFIED: u64 = 55_443_321;
    const PROPOSAL: u64 = 55_443_323;
    for time in [Some(1_700_000_000), None] {
        let won = status_body(33_269_438, (P, QUALIFIED), (P, 142), time);
        let reopened = status_body(33_269_438, (P, 142), (P, PROPOSAL), time);
        let won_again = status_body(33_269_438, (P, PROPOSAL), (P, 142), time);
        let keys = [key_of(&won), key_of(&reopened), key_of(&won_again)];
        let distinct: std::collections::BTreeSet<&String> = keys.iter().collect();
        assert_eq!(distinct.len(), 3, "time {time:?}: {keys:?}");
        assert_eq!(key_of(&won), keys[0], "exact redelivery, time {time:?}");
        assert_eq!(key_of(&won_again), keys[2], "exact redelivery, time {time:?}");
    }
}

/// Status 142 is "Closed - won" in every pipeline (kommo.md §4, "System statuses"), so a lead moved from won in one
/// pipeline to won in another within the same second is a different change: the pipeline is part of the key.
#[test]
fn status_keys_include_the_pipeline() {
    let t = Some(1_700_000_000);
    let a = key_of(&status_body(7, (100, 142), (200, 142), t));
    let b = key_of(&status_body(7, (200, 142), (100, 142), t));
    assert_ne!(a, b);
}

/// Without a timestamp the key falls back to a hash of the event's own fields: two different changes give two
/// keys, the same change (an exact redelivery) one key. Keys are deterministic: the expected value is fixed here so
/// a change of the hashing is visible.
#[test]
fn keys_without_a_timestamp_hash_the_event_content() {
    // two `leads[update]` events for one lead without any time field that differ only in price
    let update = |price: &str| {
        encode_form(&[("leads[update][0][id]", "42"), ("leads[update][0][price]", price), ("account[id]", "1")])
    };
    let k100 = key_of(&update("100"));
    let k200 = key_of(&update("200"));
    assert_ne!(k100, k200);
    assert_eq!(key_of(&update("100")), k100, "redelivery");
    // the reduced fixture (kommo.md §5): the content hash stands in for the time
    let p = webhook::parse(form("lead_status_reduced.form").as_bytes()).unwrap();
    let key = p.events[0].dedup_key();
    assert_eq!(key, "lead:status:33269438:h7b4fdca0cd9c6609:142@6543210:from:55443323@6543210");
    assert_eq!(key, webhook::parse(form("lead_status_reduced.form").as_bytes()).unwrap().events[0].dedup_key());
    // the account prefix of the payload-level keys
    assert_eq!(p.dedup_keys(), vec![format!("30739638:{key}")]);
}
