//! The crate's paths and serialized bodies checked against Customer.io's own Track spec
//! (`tests/fixtures/openapi/customerio-track.json`, vendor-published OpenAPI 3.1, copied from the workspace's
//! `shared/openapi`; see that folder's README).
//!
//! A small JSON Schema validator (the keywords the spec uses: `$ref`, `allOf`/`anyOf`/`oneOf`/`not`, `type`, `enum`,
//! `const`, `required`, `properties`, `additionalProperties`, `items`, min/max items/properties/length/value)
//! keeps this test free of a heavy dependency. `format` is not checked. The spec ships with the crate; a missing
//! file fails the tests.

use std::path::PathBuf;

use customerio_api::{Device, Event, EventId, EventType, Identifier, Identify, Operation, Platform};
use serde_json::{Map, Value, json};

fn spec() -> Option<Value> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/openapi/customerio-track.json");
    let bytes = std::fs::read(&p).unwrap_or_else(|e| panic!("the vendored spec {} is missing: {e}", p.display()));
    Some(serde_json::from_slice(&bytes).expect("spec parses"))
}

macro_rules! spec_or_skip {
    () => {
        match spec() {
            Some(s) => s,
            None => {
                eprintln!("customerio-track.json not found; skipping spec validation");
                return;
            }
        }
    };
}

struct Validator<'a> {
    root: &'a Value,
}

impl Validator<'_> {
    fn resolve<'b>(&'b self, mut s: &'b Value) -> &'b Value {
        while let Some(r) = s.get("$ref").and_then(Value::as_str) {
            let mut cur = self.root;
            for part in r.trim_start_matches("#/").split('/') {
                cur = &cur[part.replace("~1", "/").replace("~0", "~")];
            }
            assert!(!cur.is_null(), "unresolved $ref {r}");
            s = cur;
        }
        s
    }

    fn type_ok(t: &str, v: &Value) -> bool {
        match t {
            "object" => v.is_object(),
            "array" => v.is_array(),
            "string" => v.is_string(),
            "integer" => v.as_i64().is_some() || v.as_u64().is_some(),
            "number" => v.is_number(),
            "boolean" => v.is_boolean(),
            "null" => v.is_null(),
            _ => true,
        }
    }

    /// Errors (empty when valid), each with its JSON path.
    fn validate(&self, schema: &Value, v: &Value, at: &str) -> Vec<String> {
        let s = self.resolve(schema);
        let Some(obj) = s.as_object() else { return Vec::new() };
        let mut errs = Vec::new();
        if let Some(all) = obj.get("allOf").and_then(Value::as_array) {
            for sub in all {
                errs.extend(self.validate(sub, v, at));
            }
        }
        if let Some(any) = obj.get("anyOf").and_then(Value::as_array)
            && !any.iter().any(|sub| self.validate(sub, v, at).is_empty())
        {
            errs.push(format!("{at}: matches none of anyOf"));
        }
        // `oneOf` is checked as "at least one": several of the spec's `oneOf` lists overlap under JSON Schema
        // rules (e.g. merge's `{id}`/`{email}`/`{cio_id}` variants have no `required`, so `{"email": …}` matches
        // all three), and the spec's own examples would fail an exactly-one check.
        if let Some(one) = obj.get("oneOf").and_then(Value::as_array)
            && !one.iter().any(|sub| self.validate(sub, v, at).is_empty())
        {
            errs.push(format!("{at}: matches none of oneOf"));
        }
        if let Some(not) = obj.get("not")
            && self.validate(not, v, at).is_empty()
        {
            errs.push(format!("{at}: matches `not`"));
        }
        match obj.get("type") {
            Some(Value::String(t)) if !Self::type_ok(t, v) => errs.push(format!("{at}: not {t}: {v}")),
            Some(Value::Array(ts)) if !ts.iter().filter_map(Value::as_str).any(|t| Self::type_ok(t, v)) => {
                errs.push(format!("{at}: not any of {ts:?}"));
            }
            _ => {}
        }
        if let Some(e) = obj.get("enum").and_then(Value::as_array)
            && !e.contains(v)
        {
            errs.push(format!("{at}: {v} not in enum {e:?}"));
        }
        if let Some(c) = obj.get("const")
            && c != v
        {
            errs.push(format!("{at}: {v} != const {c}"));
        }
        if let Some(m) = v.as_object() {
            if let Some(req) = obj.get("required").and_then(Value::as_array) {
                for r in req.iter().filter_map(Value::as_str) {
                    if !m.contains_key(r) {
                        errs.push(format!("{at}: missing required `{r}`"));
                    }
                }
            }
            let props = obj.get("properties").and_then(Value::as_object);
            for (k, val) in m {
                let here = format!("{at}.{k}");
                if let Some(ps) = props.and_then(|p| p.get(k)) {
                    errs.extend(self.validate(ps, val, &here));
                } else {
                    match obj.get("additionalProperties") {
                        Some(Value::Bool(false)) => errs.push(format!("{here}: additional property not allowed")),
                        Some(ap @ Value::Object(_)) => errs.extend(self.validate(ap, val, &here)),
                        _ => {}
                    }
                }
            }
            let n = m.len() as u64;
            if obj.get("maxProperties").and_then(Value::as_u64).is_some_and(|x| n > x) {
                errs.push(format!("{at}: more than maxProperties"));
            }
            if obj.get("minProperties").and_then(Value::as_u64).is_some_and(|x| n < x) {
                errs.push(format!("{at}: fewer than minProperties"));
            }
        }
        if let Some(a) = v.as_array() {
            if let Some(items) = obj.get("items") {
                for (i, item) in a.iter().enumerate() {
                    errs.extend(self.validate(items, item, &format!("{at}[{i}]")));
                }
            }
            let n = a.len() as u64;
            if obj.get("maxItems").and_then(Value::as_u64).is_some_and(|x| n > x)
                || obj.get("minItems").and_then(Value::as_u64).is_some_and(|x| n < x)
            {
                errs.push(format!("{at}: item count out of bounds"));
            }
        }
        if let Some(st) = v.as_str() {
            let n = st.chars().count() as u64;
            if obj.get("maxLength").and_then(Value::as_u64).is_some_and(|x| n > x)
                || obj.get("minLength").and_then(Value::as_u64).is_some_and(|x| n < x)
            {
                errs.push(format!("{at}: string length out of bounds"));
            }
        }
        if let Some(x) = v.as_f64()
            && (obj.get("minimum").and_then(Value::as_f64).is_some_and(|m| x < m)
                || obj.get("maximum").and_then(Value::as_f64).is_some_and(|m| x > m))
        {
            errs.push(format!("{at}: number out of bounds"));
        }
        errs
    }
}

fn request_schema<'a>(spec: &'a Value, method: &str, path: &str) -> &'a Value {
    let op = &spec["paths"][path][method];
    assert!(op.is_object(), "{method} {path} not in the spec");
    &op["requestBody"]["content"]["application/json"]["schema"]
}

fn assert_valid(spec: &Value, method: &str, path: &str, body: &Value) {
    let v = Validator { root: spec };
    let errs = v.validate(request_schema(spec, method, path), body, "$");
    assert!(errs.is_empty(), "{method} {path} body {body} invalid:\n{}", errs.join("\n"));
}

fn assert_invalid(spec: &Value, method: &str, path: &str, body: &Value) {
    let v = Validator { root: spec };
    assert!(!v.validate(request_schema(spec, method, path), body, "$").is_empty(), "{body} should be invalid");
}

#[test]
fn every_path_and_method_the_client_calls_exists() {
    let spec = spec_or_skip!();
    for (m, p) in [
        ("get", "/api/v1/accounts/region"),
        ("put", "/api/v1/customers/{identifier}"),
        ("delete", "/api/v1/customers/{identifier}"),
        ("put", "/api/v1/customers/{identifier}/devices"),
        ("delete", "/api/v1/customers/{identifier}/devices/{device_id}"),
        ("post", "/api/v1/customers/{identifier}/suppress"),
        ("post", "/api/v1/customers/{identifier}/unsuppress"),
        ("post", "/api/v1/customers/{identifier}/events"),
        ("post", "/api/v1/events"),
        ("post", "/api/v1/merge_customers"),
        ("post", "/api/v1/segments/{segment_id}/add_customers"),
        ("post", "/api/v1/segments/{segment_id}/remove_customers"),
        ("post", "/api/v2/entity"),
        ("post", "/api/v2/batch"),
    ] {
        assert!(spec["paths"][p][m].is_object(), "{m} {p} missing from the spec");
    }
    let servers: Vec<&str> = spec["servers"].as_array().unwrap().iter().filter_map(|s| s["url"].as_str()).collect();
    assert!(servers.iter().any(|s| s.contains("track.customer.io")), "{servers:?}");
    assert!(servers.iter().any(|s| s.contains("track-eu.customer.io")), "{servers:?}");
}

#[test]
fn v1_bodies_match_the_spec() {
    let spec = spec_or_skip!();
    let identify = Identify::new()
        .email("customer@example.com")
        .created_at(1_361_205_308)
        .attr("first_name", "Bob")
        .attr("plan", "basic")
        .attr("seats", 3)
        .update_only()
        .timestamp(1_700_000_000)
        .anonymous_id("anon-1");
    assert_valid(&spec, "put", "/api/v1/customers/{identifier}", &serde_json::to_value(&identify).unwrap());

    let id: EventId = "01E4C4CT6YDC7Y5M7FE1GWWPQJ".parse().unwrap();
    let event = Event::new("purchase").id(id).timestamp(1_700_000_000).data("price", 23.45).data("product", "socks");
    assert_valid(&spec, "post", "/api/v1/customers/{identifier}/events", &serde_json::to_value(&event).unwrap());
    let page = Event::new("https://example.com/pricing").id(id).kind(EventType::Page);
    assert_valid(&spec, "post", "/api/v1/customers/{identifier}/events", &serde_json::to_value(&page).unwrap());
    let anon = Event::new("visited").id(id).anonymous_id("anon-1").data("x", 1);
    assert_valid(&spec, "post", "/api/v1/events", &serde_json::to_value(&anon).unwrap());

    let page = Event::page("https://example.com/").id(id);
    assert_valid(&spec, "post", "/api/v1/customers/{identifier}/events", &serde_json::to_value(&page).unwrap());
    let screen = Event::screen("Home").id(id).anonymous_id("anon-1");
    assert_valid(&spec, "post", "/api/v1/customers/{identifier}/events", &serde_json::to_value(&screen).unwrap());
    assert_valid(&spec, "post", "/api/v1/segments/{segment_id}/add_customers", &json!({"ids": ["a", "b"]}));
    let device = json!({"device": Device::new("tok", Platform::Android).last_used(5).attr("app_version", "1.0")});
    assert_valid(&spec, "put", "/api/v1/customers/{identifier}/devices", &device);

    let merge = json!({"primary": Identifier::id("42"), "secondary": Identifier::email("old@example.com")});
    assert_valid(&spec, "post", "/api/v1/merge_customers", &merge);
    let merge_cio = json!({"primary": Identifier::cio_id("a3000001"), "secondary": Identifier::id("7")});
    assert_valid(&spec, "post", "/api/v1/merge_customers", &merge_cio);
    // the validator does reject what the spec forbids
    assert_invalid(
        &spec,
        "post",
        "/api/v1/merge_customers",
        &json!({"primary": {"id": "1", "email": "a@b.c"}, "secondary": {"id": "2"}}),
    );
    assert_invalid(&spec, "post", "/api/v1/customers/{identifier}/events", &json!({"data": {}}));
}

fn m(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

#[test]
fn v2_operations_and_batch_match_the_spec() {
    let spec = spec_or_skip!();
    let who = Identifier::id("42");
    let id: EventId = "01E4C4CT6YDC7Y5M7FE1GWWPQJ".parse().unwrap();
    let ops = vec![
        Operation::identify(&who, m(json!({"first_name": "Jane", "plan": "premium"}))).with_timestamp(1_700_000_000),
        Operation::identify(&Identifier::email("jane@example.com"), m(json!({"_update": true, "plan": "pro"}))),
        Operation::event(&who, "purchase", id, Some(1_700_000_000), m(json!({"price": 5}))),
        Operation::delete(&who),
        Operation::suppress(&Identifier::cio_id("a3000001")),
        Operation::unsuppress(&who),
        Operation::merge(&who, &Identifier::email("old@example.com")),
        Operation::add_device(&who, "tok", &Platform::Ios, Some(5)),
        Operation::delete_device(&who, "tok"),
        Operation::identify_object("1", "acme", &m(json!({"name": "Acme Corp", "seats": 50}))),
    ];
    for op in &ops {
        assert_valid(&spec, "post", "/api/v2/entity", &serde_json::to_value(op).unwrap());
    }
    assert_valid(&spec, "post", "/api/v2/batch", &json!({"batch": ops}));
    // the spec's own batch example is accepted by Operation::raw and validates
    let example = request_schema(&spec, "post", "/api/v2/batch")["example"].clone();
    for op in example["batch"].as_array().unwrap() {
        Operation::raw(op.clone()).unwrap();
    }
    assert_valid(&spec, "post", "/api/v2/batch", &example);
    // and the validator rejects what the spec forbids (an unknown action, a missing type)
    assert_invalid(
        &spec,
        "post",
        "/api/v2/entity",
        &json!({"type": "person", "action": "fly", "identifiers": {"id": "1"}}),
    );
    assert_invalid(&spec, "post", "/api/v2/entity", &json!({"action": "delete", "identifiers": {"id": "1"}}));
}

/// Objects, relationships (both sides), page and screen (issue 23) against the Track spec's v2 schemas
/// (`object_identify`, `object_delete`, `object_add_relationships`, `object_delete_relationships`,
/// `person_add_relationships`, `person_delete_relationships`, `person_page`, `person_screen`).
#[test]
fn v2_objects_relationships_page_and_screen_match_the_spec() {
    use customerio_api::{ObjectRef, ObjectRelationship, PersonRelationship};
    let spec = spec_or_skip!();
    let who = Identifier::email("jane@example.com");
    let id: EventId = "01E4C4CT6YDC7Y5M7FE1GWWPQJ".parse().unwrap();
    let acme = ObjectRef::new("1", "acme");
    let admin = PersonRelationship::new(Identifier::id("42")).attr("role", "admin");
    let ops = vec![
        Operation::object_identify(
            &acme,
            m(json!({"name": "Acme Corp", "plan": "enterprise"})),
            std::slice::from_ref(&admin),
        ),
        Operation::object_identify(&ObjectRef::cio("c0ffee"), m(json!({"plan": ""})), &[]),
        Operation::object_delete(&acme),
        Operation::object_add_relationships(&acme, &[admin.clone(), PersonRelationship::new(Identifier::cio_id("a1"))]),
        Operation::object_delete_relationships(&acme, &[admin]),
        Operation::person_add_relationships(&who, &[ObjectRelationship::new(acme.clone()).attr("role", "owner")]),
        Operation::person_delete_relationships(&who, &[ObjectRelationship::new(ObjectRef::cio("c0ffee"))]),
        Operation::page(&who, "https://example.com/pricing", id, Some(1_700_000_000), m(json!({"referrer": "x"}))),
        Operation::screen(&who, "Home", id, None, m(json!({}))),
    ];
    for op in &ops {
        op.validate().unwrap();
        assert_valid(&spec, "post", "/api/v2/entity", &serde_json::to_value(op).unwrap());
    }
    assert_valid(&spec, "post", "/api/v2/batch", &json!({"batch": ops}));
}

/// Typed push and SMS bodies against the spec's `sendpush` / `sendsms` component schemas (the App API schemas the
/// Track spec file carries), and its own `sendsms` example through `SendSms`.
#[test]
fn transactional_push_and_sms_bodies_match_the_spec_schemas() {
    use customerio_api::{MessageRef, SendPush, SendSms};
    let spec = spec_or_skip!();
    let v = Validator { root: &spec };
    let push = SendPush::new(MessageRef::Id(44), Identifier::id("12345"))
        .to("last_used")
        .content("Hi", "Your order shipped")
        .data("password_reset_token", "abcde-12345-fghij-d888");
    let body = serde_json::to_value(&push).unwrap();
    let errs = v.validate(&spec["components"]["schemas"]["sendpush"], &body, "$");
    assert!(errs.is_empty(), "{body}: {errs:?}");
    // the spec's example: {"transactional_message_id":"confirmation code","to":"+15559876543","from":"+15551234567",
    // "identifiers":{"id":"123456"},"message_data":{"confirmation_code":"123456","account_name":"Jane Doe"}}
    let example = spec["components"]["schemas"]["sendsms"]["example"].clone();
    let sms = SendSms::new(MessageRef::Trigger("confirmation code".into()), Identifier::id("123456"), "+15559876543")
        .from("+15551234567")
        .data("confirmation_code", "123456")
        .data("account_name", "Jane Doe");
    assert_eq!(serde_json::to_value(&sms).unwrap(), example);
    let errs = v.validate(&spec["components"]["schemas"]["sendsms"], &example, "$");
    assert!(errs.is_empty(), "{errs:?}");
}

/// `CustomerFilter` JSON against the spec's `audienceFilter` (the filter `POST /v1/customers` and broadcast
/// `recipients` take).
#[test]
fn customer_filters_match_the_spec() {
    use customerio_api::CustomerFilter as F;
    let spec = spec_or_skip!();
    let v = Validator { root: &spec };
    for f in [
        F::segment(4u64),
        F::eq("first_name", "Ann"),
        F::and([F::segment(4u64), F::exists("email")]),
        F::or([F::segment(4u64), F::segment(7u64)]),
        F::not(F::segment(4u64)),
    ] {
        let body = f.to_json();
        let errs = v.validate(&spec["components"]["schemas"]["audienceFilter"], &body, "$");
        assert!(errs.is_empty(), "{body}: {errs:?}");
    }
}

/// Pipelines identify/track bodies against Customer.io's Pipelines spec (`tests/fixtures/openapi/
/// customerio-pipelines.json`, copied unchanged from `shared/openapi`): paths, and the `identify`/`track` request
/// schemas; the spec's own curl examples are what the builders produce.
#[test]
fn pipelines_identify_and_track_match_the_pipelines_spec() {
    use customerio_api::{PipelinesIdentify, PipelinesTrack, PipelinesUser};
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/openapi/customerio-pipelines.json");
    let spec: Value = serde_json::from_slice(&std::fs::read(&p).expect("the vendored Pipelines spec")).unwrap();
    let servers: Vec<&str> = spec["servers"].as_array().unwrap().iter().filter_map(|s| s["url"].as_str()).collect();
    assert_eq!(servers, ["https://cdp.customer.io/v1", "https://cdp-eu.customer.io/v1"]);
    // the identify curl example: {"userId":"97980cfea0067","traits":{"name":"Cool Person",
    // "email":"cool.person@example.com","likes_baseball":true,"games_attended":5}} (plus the required-by-us type)
    let identify = PipelinesIdentify::new(PipelinesUser::user("97980cfea0067"))
        .trait_("name", "Cool Person")
        .trait_("email", "cool.person@example.com")
        .trait_("likes_baseball", true)
        .trait_("games_attended", 5);
    let body = serde_json::to_value(&identify).unwrap();
    assert_eq!(
        body,
        json!({"type": "identify", "userId": "97980cfea0067", "traits": {"name": "Cool Person",
            "email": "cool.person@example.com", "likes_baseball": true, "games_attended": 5}})
    );
    let anon = PipelinesIdentify::new(PipelinesUser::anonymous("a-1")).timestamp("2015-12-12T19:11:01.249Z");
    let track = PipelinesTrack::new(PipelinesUser::user("97980cfea0067"), "Course Started")
        .property("title", "Intro to Customer.io");
    assert_eq!(
        serde_json::to_value(&track).unwrap(),
        json!({"type": "track", "userId": "97980cfea0067", "event": "Course Started",
            "properties": {"title": "Intro to Customer.io"}})
    );
    let anon_track = PipelinesTrack::new(PipelinesUser::anonymous("23adfd82"), "Viewed");
    for (path, body) in [
        ("/identify", body),
        ("/identify", serde_json::to_value(&anon).unwrap()),
        ("/track", serde_json::to_value(&track).unwrap()),
        ("/track", serde_json::to_value(&anon_track).unwrap()),
    ] {
        assert_valid(&spec, "post", path, &body);
    }
    // the validator rejects what the spec forbids: a track call without an event
    assert_invalid(&spec, "post", "/track", &json!({"type": "track", "userId": "1"}));
}
