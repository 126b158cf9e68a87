//! Checks the paths, methods and `filter[...]` names this crate uses against the community OpenAPI description
//! (`shared/openapi/productive-community.yaml`, scraped from Productive's HTML docs: reliable for paths, methods
//! and filter names, not for bodies — see its README). The file is parsed as text (no YAML dependency): path keys
//! are at two spaces, methods at four, parameters as `- name: filter[...]`.

use std::collections::{BTreeMap, BTreeSet};

fn spec() -> Option<String> {
    let p = format!("{}/tests/fixtures/openapi/productive-community.yaml", env!("CARGO_MANIFEST_DIR"));
    Some(std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("the vendored spec {p} is missing: {e}")))
}

/// path → (methods, filter names)
fn index(spec: &str) -> BTreeMap<String, (BTreeSet<String>, BTreeSet<String>)> {
    let mut out: BTreeMap<String, (BTreeSet<String>, BTreeSet<String>)> = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in spec.lines() {
        if let Some(rest) = line.strip_prefix("  /api/v2/") {
            let p = format!("/{}", rest.trim_end_matches(':'));
            out.entry(p.clone()).or_default();
            current = Some(p);
        } else if !line.starts_with("  ") && !line.is_empty() {
            current = None;
        } else if let Some(p) = &current {
            let t = line.trim();
            if line.starts_with("    ") && !line.starts_with("     ") {
                let m = t.trim_end_matches(':');
                if ["get", "post", "patch", "put", "delete"].contains(&m) {
                    out.get_mut(p).expect("entry").0.insert(m.to_owned());
                }
            }
            if let Some(name) = t.strip_prefix("- name: filter[") {
                out.get_mut(p).expect("entry").1.insert(name.trim_end_matches(']').to_owned());
            }
        }
    }
    out
}

#[test]
fn paths_methods_and_filters_exist_in_the_spec() {
    let Some(spec) = spec() else {
        eprintln!("skipping: the OpenAPI file is not next to the workspace");
        return;
    };
    let idx = index(&spec);
    // (method, path, filters the crate or its fake uses on it)
    let used: &[(&str, &str, &[&str])] = &[
        ("get", "/companies", &["name"]),
        ("post", "/companies", &[]),
        ("get", "/companies/{id}", &[]),
        ("get", "/people", &["email", "status"]),
        ("get", "/people/{id}", &[]),
        ("get", "/projects", &["company_id"]),
        ("post", "/projects", &[]),
        ("post", "/projects/copy", &[]),
        ("get", "/projects/{id}", &[]),
        ("get", "/deals", &["project_id", "type"]),
        ("post", "/deals", &[]),
        ("get", "/deals/{id}", &[]),
        ("patch", "/deals/{id}", &[]),
        ("get", "/services", &["deal_id"]),
        ("post", "/services", &[]),
        ("get", "/services/{id}", &[]),
        ("get", "/service_types", &["name"]),
        ("post", "/service_types", &[]),
        ("get", "/project_assignments", &["project_id"]),
        ("post", "/project_assignments", &[]),
        ("delete", "/project_assignments/{id}", &[]),
        ("post", "/service_assignments", &[]),
        ("get", "/tasks", &["project_id", "status"]),
        ("post", "/tasks", &[]),
        ("get", "/tasks/{id}", &[]),
        ("get", "/task_lists", &["project_id"]),
        ("post", "/task_lists", &[]),
        ("get", "/comments", &["task_id"]),
        ("post", "/comments", &[]),
        ("get", "/webhooks", &["event_id", "state_id", "type_id"]),
        ("post", "/webhooks", &[]),
        ("get", "/webhooks/{id}", &[]),
        ("delete", "/webhooks/{id}", &[]),
        // issue 23
        ("get", "/time_entries", &["person_id", "service_id", "task_id", "project_id", "after", "before", "status"]),
        ("post", "/time_entries", &[]),
        ("get", "/time_entries/{id}", &[]),
        ("patch", "/time_entries/{id}", &[]),
        ("delete", "/time_entries/{id}", &[]),
        ("patch", "/time_entries/{id}/approve", &[]),
        ("patch", "/time_entries/{id}/unapprove", &[]),
        ("patch", "/time_entries/{id}/reject", &[]),
        ("get", "/bookings", &["person_id", "event_id", "after", "before", "draft", "started_on", "ended_on"]),
        ("post", "/bookings", &[]),
        ("get", "/bookings/{id}", &[]),
        ("patch", "/bookings/{id}", &[]),
        ("delete", "/bookings/{id}", &[]),
        ("get", "/expenses", &["service_id", "person_id", "status"]),
        ("post", "/expenses", &[]),
        ("get", "/expenses/{id}", &[]),
        ("patch", "/expenses/{id}", &[]),
        ("delete", "/expenses/{id}", &[]),
        ("get", "/invoices", &["company_id", "deal_id", "project_id"]),
        ("get", "/invoices/{id}", &[]),
        ("get", "/line_items", &["invoice_id", "service_id"]),
        ("get", "/line_items/{id}", &[]),
        ("get", "/workflows", &["name", "archived"]),
        ("get", "/workflows/{id}", &[]),
        ("get", "/workflow_statuses", &["workflow_id", "category_id"]),
        ("get", "/workflow_statuses/{id}", &[]),
        ("get", "/deal_statuses", &[]),
        ("get", "/deal_statuses/{id}", &[]),
        ("get", "/custom_fields", &["customizable_type", "name"]),
        ("get", "/custom_fields/{id}", &[]),
        ("get", "/custom_field_options", &["custom_field_id"]),
        ("get", "/custom_field_options/{id}", &[]),
        ("get", "/organization_memberships", &[]),
        ("get", "/organization_memberships/{id}", &[]),
        ("get", "/webhook_logs", &["webhook_id", "after", "before", "retry_attempt"]),
        ("patch", "/companies/{id}", &[]),
        ("patch", "/companies/{id}/archive", &[]),
        ("patch", "/companies/{id}/restore", &[]),
        ("patch", "/projects/{id}", &[]),
        ("patch", "/projects/{id}/archive", &[]),
        ("patch", "/projects/{id}/restore", &[]),
        ("post", "/people", &[]),
        ("patch", "/people/{id}", &[]),
        ("patch", "/people/{id}/archive", &[]),
        ("patch", "/people/{id}/restore", &[]),
        ("patch", "/deals/{id}/close", &[]),
        ("patch", "/deals/{id}/open", &[]),
        ("delete", "/tasks/{id}", &[]),
        ("delete", "/services/{id}", &[]),
        ("patch", "/services/{id}", &[]),
        ("delete", "/projects/{id}", &[]),
        ("delete", "/deals/{id}", &[]),
        ("delete", "/service_assignments/{id}", &[]),
        ("get", "/events", &[]),
        ("get", "/events/{id}", &[]),
        ("get", "/timers", &["person_id"]),
        ("post", "/timers", &[]),
        ("get", "/timers/{id}", &[]),
    ];
    for (m, p, filters) in used {
        let (methods, known) = idx.get(*p).unwrap_or_else(|| panic!("{p} not in the spec"));
        assert!(methods.contains(*m), "{m} {p} not in the spec (has {methods:?})");
        for f in *filters {
            assert!(known.contains(*f), "filter[{f}] not documented on {p} (has {known:?})");
        }
    }
    // Known gap of the community spec: `filter[name]` on /projects is documented by P-old projects.html and the
    // official reference (smeta generated.ts) but missing from the scraped file. This assertion fails when the
    // file gains it, so the exception is revisited.
    assert!(
        !idx["/projects"].1.contains("name"),
        "the spec now documents filter[name] on /projects: drop this exception"
    );
}
