//! The fake's schema writes (create base, create/update table, create/update field), record comments and
//! `uploadAttachment`. Every route here is admitted through the same per-base rate limit as the records routes
//! (5 requests per second per base over arrival times, 30 s after a 429: api-notes/airtable.md C.4); creating a base
//! counts against the token-wide `meta` key, as `GET /meta/bases` does.
//!
//! What is modelled, with its source:
//! - Tables/fields (OFFICIAL create-base / create-table / create-field, api-notes airtable.md D): "At least one table
//!   and field must be specified", the first field is the primary field, "Fields must have case-insensitive unique
//!   names within the table", a default "Grid view" per new table; select choices get `sel…` ids and colors; a link
//!   needs an existing `linkedTableId`; computed types (formula, rollup, …) are refused (Airtable creates only types
//!   with a documented write format). Updates change `name`/`description` only. The 422 error *types* for these
//!   validations are not documented: the fake answers `INVALID_REQUEST_UNKNOWN` (unverified) with a message.
//!   Each write appends a `publicApi` payload to the hooks watching `tableFields` / `tableMetadata`
//!   (`createdFieldsById`, `changedFieldsById`, `changedMetadata`, `createdTablesById`; see `schema_payloads`).
//! - Comments (OFFICIAL create-comment; community OpenAPI `listComments`/`deleteComment`): newest first, `pageSize`
//!   1..=100 (default 100, unverified), an opaque `offset`, `parentCommentId` must name a comment of the same record,
//!   `lastUpdatedTime` null until edited, delete answers `{id, deleted: true}`; the author is the token's user (or a
//!   person, [`super::FakeBase::user_comment`]), and only the author may edit or delete a comment (403). A
//!   missing record is 404 `{"error": "NOT_FOUND"}`, like `GET` of the record. Mentions and reactions are not modelled.
//! - `uploadAttachment` (OFFICIAL upload-attachment): `{contentType, file (base64), filename}` into an attachment
//!   field, up to 5 MB (413 `REQUEST_ENTITY_TOO_LARGE` above 5 MiB, the fake's reading), appended to the cell;
//!   answers `{id, createdTime, fields}` keyed by field id and records a `publicApi` webhook payload.

use std::collections::BTreeMap;

use axum::http::{Method, StatusCode};
use base64::Engine as _;
use serde_json::{Value, json};

use super::{
    ApiErr, BaseSt, COLORS, COMPUTED, Change, FieldSt, MacSecret, PendingPing, Reply, St, TableSt, err, field_json,
    find_table, not_found, not_found_or_forbidden, now_iso, record_payloads, spec_list, table_schema_json,
};

/// A schema change, for the webhooks watching `tableFields` / `tableMetadata`.
enum SchemaChange {
    /// A new field.
    FieldCreated { id: String, name: String, kind: String },
    /// A renamed field (its type cannot change through the API).
    FieldRenamed { id: String, before: String, after: String },
    /// A table's name or description changed.
    TableMetadata { before: (String, Option<String>), after: (String, Option<String>) },
    /// A new table.
    TableCreated(TableSt),
}

/// Appends a schema payload to every hook of the base that watches it, in the documented shapes (api-notes
/// airtable.md A.9, OFFICIAL webhooks-table-changed / webhooks-payload): `changedTablesById.{tbl}.createdFieldsById`
/// `{fld: {name, type}}`, `changedFieldsById` `{fld: {current, previous?}}` (previous with
/// `includePreviousFieldDefinitions`), `changedMetadata` `{current, previous}` (`tableMetadata`), and
/// `createdTablesById.{tbl}` `{metadata, fieldsById}`. Filters: `dataTypes` (`tableFields` for fields;
/// `tableMetadata` for a table's metadata; either for a new table — which of the two Airtable requires is
/// unverified), `recordChangeScope`, `changeTypes` (`add` / `update`), `fromSources`, `watchSchemasOfFieldIds`.
fn schema_payloads(st: &mut St, base_id: &str, table_id: &str, change: &SchemaChange) -> Vec<PendingPing> {
    let mut pings = Vec::new();
    let api_user = st.api_user.clone();
    let Ok(b) = st.base(base_id) else { return pings };
    b.transaction += 1;
    let txn = b.transaction;
    let views: Vec<String> = b
        .tables
        .iter()
        .find(|t| t.id == table_id)
        .map(|t| t.views.iter().map(|v| v.0.clone()).collect())
        .unwrap_or_default();
    let timestamp = now_iso();
    for hook in &mut b.hooks {
        if !hook.hook_enabled {
            continue;
        }
        let f = &hook.spec["options"]["filters"];
        let data_types = spec_list(f, &["dataTypes"]).unwrap_or_default();
        let wants_type = |t: &str| data_types.iter().any(|d| d == t);
        let (ok_type, change_type) = match change {
            SchemaChange::FieldCreated { .. } => (wants_type("tableFields"), "add"),
            SchemaChange::FieldRenamed { .. } => (wants_type("tableFields"), "update"),
            SchemaChange::TableMetadata { .. } => (wants_type("tableMetadata"), "update"),
            SchemaChange::TableCreated(_) => (wants_type("tableFields") || wants_type("tableMetadata"), "add"),
        };
        if !ok_type {
            continue;
        }
        if let Some(scope) = f.get("recordChangeScope").and_then(Value::as_str)
            && scope != table_id
            && !views.iter().any(|v| v == scope)
        {
            continue;
        }
        if spec_list(f, &["changeTypes"]).is_some_and(|c| !c.is_empty() && !c.iter().any(|x| x == change_type)) {
            continue;
        }
        if spec_list(f, &["fromSources"]).is_some_and(|c| !c.is_empty() && !c.iter().any(|x| x == "publicApi")) {
            continue;
        }
        let field_id = match change {
            SchemaChange::FieldCreated { id, .. } | SchemaChange::FieldRenamed { id, .. } => Some(id.as_str()),
            _ => None,
        };
        if let (Some(fid), Some(watch)) =
            (field_id, spec_list(f, &["watchSchemasOfFieldIds"]).filter(|w| !w.is_empty()))
            && !watch.iter().any(|w| w == fid)
        {
            continue;
        }
        let with_prev = hook.spec["options"]["includes"]
            .get("includePreviousFieldDefinitions")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let mut payload = json!({
            "timestamp": timestamp,
            "baseTransactionNumber": txn,
            "actionMetadata": {"source": "publicApi", "sourceMetadata": {"user": {
                "id": api_user.id, "email": api_user.email, "permissionLevel": "create", "name": api_user.name}}},
            "payloadFormat": "v0",
        });
        match change {
            SchemaChange::FieldCreated { id, name, kind } => {
                payload["changedTablesById"] =
                    json!({table_id: {"createdFieldsById": {id.as_str(): {"name": name, "type": kind}}}});
            }
            SchemaChange::FieldRenamed { id, before, after } => {
                let mut c = json!({"current": {"name": after}});
                if with_prev {
                    c["previous"] = json!({"name": before});
                }
                payload["changedTablesById"] = json!({table_id: {"changedFieldsById": {id.as_str(): c}}});
            }
            SchemaChange::TableMetadata { before, after } => {
                payload["changedTablesById"] = json!({table_id: {"changedMetadata": {
                    "current": {"name": after.0, "description": after.1},
                    "previous": {"name": before.0, "description": before.1}}}});
            }
            SchemaChange::TableCreated(t) => {
                let fields: serde_json::Map<String, Value> =
                    t.fields.iter().map(|f| (f.id.clone(), json!({"name": f.name, "type": f.kind}))).collect();
                payload["createdTablesById"] = json!({table_id: {
                    "metadata": {"name": t.name, "description": t.description}, "fieldsById": fields}});
            }
        }
        hook.payloads.push((tokio::time::Instant::now(), payload));
        if let Some(url) = &hook.notification_url
            && hook.notifications_enabled
        {
            let body = json!({"base": {"id": base_id}, "webhook": {"id": hook.id}, "timestamp": timestamp}).to_string();
            let mac = MacSecret::from_base64(hook.secret.clone()).sign(body.as_bytes()).unwrap_or_default();
            pings.push(PendingPing { url: url.clone(), body, mac, base: base_id.to_owned(), hook: hook.id.clone() });
        }
    }
    pings
}

/// A stored comment.
#[derive(Debug, Clone)]
pub(super) struct CommentSt {
    pub(super) id: String,
    pub(super) text: String,
    pub(super) created_time: String,
    pub(super) last_updated_time: Option<String>,
    pub(super) parent: Option<String>,
    /// Who wrote it: the token's user, or a person in the UI ([`super::FakeBase::user_comment`]).
    pub(super) author: super::FakeUser,
}

fn invalid(message: impl Into<String>) -> ApiErr {
    err(422, "INVALID_REQUEST_UNKNOWN", message)
}

/// Validates and builds one field of a create (base, table or field).
fn new_field(st: &mut St, base_tables: &[TableSt], existing: &[FieldSt], spec: &Value) -> Result<FieldSt, ApiErr> {
    let name = spec
        .get("name")
        .and_then(Value::as_str)
        .filter(|n| !n.trim().is_empty())
        .ok_or_else(|| err(422, "INVALID_REQUEST_MISSING_FIELDS", "Each field needs a name"))?;
    let kind = spec
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| err(422, "INVALID_REQUEST_MISSING_FIELDS", format!("Field {name:?} needs a type")))?;
    if matches!(crate::metadata::FieldType::parse(kind), crate::metadata::FieldType::Unknown(_)) {
        return Err(invalid(format!("Unknown field type {kind:?}")));
    }
    if COMPUTED.contains(&kind) {
        return Err(invalid(format!("Field type {kind:?} cannot be created through the API")));
    }
    if existing.iter().any(|f| f.name.eq_ignore_ascii_case(name)) {
        return Err(invalid(format!("Field names must be unique (case-insensitive): {name:?}")));
    }
    let mut options = spec.get("options").cloned().filter(|o| !o.is_null());
    if kind == "multipleRecordLinks" {
        let linked = options.as_ref().and_then(|o| o.get("linkedTableId")).and_then(Value::as_str);
        if !linked.is_some_and(|l| base_tables.iter().any(|t| t.id == l)) {
            return Err(invalid(format!("Field {name:?}: options.linkedTableId must name a table of this base")));
        }
    }
    if let Some(choices) = options.as_mut().and_then(|o| o.get_mut("choices")).and_then(Value::as_array_mut) {
        for (i, c) in choices.iter_mut().enumerate() {
            if c.get("name").and_then(Value::as_str).is_none() {
                return Err(invalid(format!("Field {name:?}: every choice needs a name")));
            }
            if c.get("id").is_none() {
                c["id"] = json!(st.new_id("sel"));
            }
            if c.get("color").is_none() {
                c["color"] = json!(COLORS[i % COLORS.len()]);
            }
        }
    }
    let description = spec.get("description").and_then(Value::as_str).map(str::to_owned);
    let f = FieldSt { id: st.new_id("fld"), name: name.to_owned(), kind: kind.to_owned(), options, description };
    Ok(f)
}

/// Validates and builds a table of a create (base or table).
fn new_table(st: &mut St, base_tables: &[TableSt], spec: &Value) -> Result<TableSt, ApiErr> {
    let name = spec
        .get("name")
        .and_then(Value::as_str)
        .filter(|n| !n.trim().is_empty())
        .ok_or_else(|| err(422, "INVALID_REQUEST_MISSING_FIELDS", "A table needs a name"))?;
    if base_tables.iter().any(|t| t.name.eq_ignore_ascii_case(name)) {
        return Err(invalid(format!("A table named {name:?} already exists")));
    }
    let specs =
        spec.get("fields").and_then(Value::as_array).filter(|f| !f.is_empty()).ok_or_else(|| {
            err(422, "INVALID_REQUEST_MISSING_FIELDS", "At least one table and field must be specified")
        })?;
    let mut fields: Vec<FieldSt> = Vec::new();
    for s in specs {
        let f = new_field(st, base_tables, &fields, s)?;
        fields.push(f);
    }
    Ok(TableSt {
        id: st.new_id("tbl"),
        name: name.to_owned(),
        description: spec.get("description").and_then(Value::as_str).map(str::to_owned),
        fields,
        views: vec![(st.new_id("viw"), "Grid view".to_owned())],
        records: Vec::new(),
        comments: BTreeMap::new(),
    })
}

/// `POST /meta/bases`.
pub(super) fn create_base(st: &mut St, body: &Value) -> Reply {
    let name = body
        .get("name")
        .and_then(Value::as_str)
        .filter(|n| !n.trim().is_empty())
        .ok_or_else(|| err(422, "INVALID_REQUEST_MISSING_FIELDS", "A base needs a name"))?
        .to_owned();
    if body.get("workspaceId").and_then(Value::as_str).is_none_or(|w| !w.starts_with("wsp")) {
        return Err(err(422, "INVALID_REQUEST_MISSING_FIELDS", "workspaceId is required"));
    }
    let specs =
        body.get("tables").and_then(Value::as_array).filter(|t| !t.is_empty()).ok_or_else(|| {
            err(422, "INVALID_REQUEST_MISSING_FIELDS", "At least one table and field must be specified")
        })?;
    let mut tables: Vec<TableSt> = Vec::new();
    for s in specs {
        let t = new_table(st, &tables, s)?;
        tables.push(t);
    }
    let id = st.new_id("app");
    let out = json!({"id": id, "tables": tables.iter().map(table_schema_json).collect::<Vec<_>>()});
    st.bases.push(BaseSt { id, name, tables, hooks: Vec::new(), transaction: 0 });
    Ok((StatusCode::OK, out))
}

/// `/meta/bases/{base}/tables[/{table}[/fields[/{field}]]]` writes.
pub(super) fn schema_route(
    st: &mut St,
    m: &Method,
    base: &str,
    rest: &[&str],
    body: &Value,
) -> Result<((StatusCode, Value), Vec<PendingPing>), ApiErr> {
    let tables = st.base(base)?.tables.clone();
    match (m.clone(), rest) {
        (Method::POST, []) => {
            let t = new_table(st, &tables, body)?;
            let out = table_schema_json(&t);
            let tid = t.id.clone();
            st.base(base)?.tables.push(t.clone());
            let pings = schema_payloads(st, base, &tid, &SchemaChange::TableCreated(t));
            Ok(((StatusCode::OK, out), pings))
        }
        (Method::PATCH, [table]) => {
            let (name, description) = update_body(body)?;
            let b = st.base(base)?;
            let idx = find_table(b, table)?.id.clone();
            if let Some(n) = &name
                && b.tables.iter().any(|t| t.id != idx && t.name.eq_ignore_ascii_case(n))
            {
                return Err(invalid(format!("A table named {n:?} already exists")));
            }
            let t = find_table(b, &idx)?;
            let before = (t.name.clone(), t.description.clone());
            if let Some(n) = name {
                t.name = n;
            }
            if let Some(d) = description {
                t.description = Some(d);
            }
            let out = table_schema_json(t);
            let after = (t.name.clone(), t.description.clone());
            let pings = schema_payloads(st, base, &idx, &SchemaChange::TableMetadata { before, after });
            Ok(((StatusCode::OK, out), pings))
        }
        (Method::POST, [table, "fields"]) => {
            let existing = find_table(st.base(base)?, table)?.fields.clone();
            let f = new_field(st, &tables, &existing, body)?;
            let out = field_json(&f);
            let change = SchemaChange::FieldCreated { id: f.id.clone(), name: f.name.clone(), kind: f.kind.clone() };
            let t = find_table(st.base(base)?, table)?;
            t.fields.push(f);
            let tid = t.id.clone();
            let pings = schema_payloads(st, base, &tid, &change);
            Ok(((StatusCode::OK, out), pings))
        }
        (Method::PATCH, [table, "fields", field]) => {
            let (name, description) = update_body(body)?;
            let t = find_table(st.base(base)?, table)?;
            let fid = t.fields.iter().find(|f| f.id == *field).map(|f| f.id.clone()).ok_or_else(not_found)?;
            if let Some(n) = &name
                && t.fields.iter().any(|f| f.id != fid && f.name.eq_ignore_ascii_case(n))
            {
                return Err(invalid(format!("Field names must be unique (case-insensitive): {n:?}")));
            }
            let tid = t.id.clone();
            let f = t.fields.iter_mut().find(|f| f.id == fid).ok_or_else(not_found)?;
            let before = f.name.clone();
            if let Some(n) = name {
                f.name = n;
            }
            if let Some(d) = description {
                f.description = Some(d);
            }
            let out = field_json(f);
            let pings = if before == f.name {
                Vec::new()
            } else {
                let change = SchemaChange::FieldRenamed { id: fid, before, after: f.name.clone() };
                schema_payloads(st, base, &tid, &change)
            };
            Ok(((StatusCode::OK, out), pings))
        }
        _ => Err(not_found()),
    }
}

fn update_body(body: &Value) -> Result<(Option<String>, Option<String>), ApiErr> {
    let name = body.get("name").and_then(Value::as_str).map(str::to_owned);
    let description = body.get("description").and_then(Value::as_str).map(str::to_owned);
    if name.is_none() && description.is_none() {
        return Err(invalid("Nothing to update: give a name or a description"));
    }
    if name.as_deref().is_some_and(|n| n.trim().is_empty()) {
        return Err(invalid("A name cannot be empty"));
    }
    Ok((name, description))
}

pub(super) fn comment_json(c: &CommentSt) -> Value {
    let user = &c.author;
    let mut v = json!({
        "id": c.id,
        "author": {"id": user.id, "email": user.email, "name": user.name},
        "text": c.text,
        "createdTime": c.created_time,
        "lastUpdatedTime": c.last_updated_time,
    });
    if let Some(p) = &c.parent {
        v["parentCommentId"] = json!(p);
    }
    v
}

/// `/{base}/{table}/{record}/comments[/{comment}]`.
pub(super) fn comments_route(
    st: &mut St,
    m: &Method,
    (base, table, record): (&str, &str, &str),
    comment: Option<&str>,
    query: &[(String, String)],
    body: &Value,
) -> Reply {
    let user = st.api_user.clone();
    let new_id = st.new_id("com");
    let t = find_table(st.base(base)?, table)?;
    if !t.records.iter().any(|r| r.id == record) {
        return Err(not_found());
    }
    let list = t.comments.entry(record.to_owned()).or_default();
    match (m.clone(), comment) {
        (Method::GET, None) => {
            let get = |k: &str| query.iter().find(|(a, _)| a == k).map(|(_, v)| v.as_str());
            let size = match get("pageSize") {
                None => 100,
                Some(v) => v
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=100).contains(n))
                    .ok_or_else(|| invalid("pageSize must be between 1 and 100"))?,
            };
            // newest first; the offset is the id of the next comment to show
            let ordered: Vec<&CommentSt> = list.iter().rev().collect();
            let start = match get("offset") {
                None => 0,
                Some(o) => ordered.iter().position(|c| c.id == o).ok_or_else(|| invalid("Invalid offset"))?,
            };
            let end = (start + size).min(ordered.len());
            let page: Vec<Value> = ordered[start..end].iter().map(|c| comment_json(c)).collect();
            let offset = ordered.get(end).map(|c| c.id.clone());
            Ok((StatusCode::OK, json!({"comments": page, "offset": offset})))
        }
        (Method::POST, None) => {
            let text = comment_text(body)?;
            let parent = body.get("parentCommentId").and_then(Value::as_str).map(str::to_owned);
            if let Some(p) = &parent
                && !list.iter().any(|c| &c.id == p)
            {
                return Err(invalid(format!("parentCommentId {p} is not a comment of this record")));
            }
            let c = CommentSt {
                id: new_id,
                text,
                created_time: now_iso(),
                last_updated_time: None,
                parent,
                author: user.clone(),
            };
            let out = comment_json(&c);
            list.push(c);
            Ok((StatusCode::OK, out))
        }
        (Method::PATCH, Some(cid)) => {
            let text = comment_text(body)?;
            let c = list.iter_mut().find(|c| c.id == cid).ok_or_else(not_found)?;
            if c.author.id != user.id {
                return Err(not_author());
            }
            c.text = text;
            c.last_updated_time = Some(now_iso());
            Ok((StatusCode::OK, comment_json(c)))
        }
        (Method::DELETE, Some(cid)) => {
            let idx = list.iter().position(|c| c.id == cid).ok_or_else(not_found)?;
            if list[idx].author.id != user.id {
                return Err(not_author());
            }
            list.remove(idx);
            Ok((StatusCode::OK, json!({"id": cid, "deleted": true})))
        }
        _ => Err(not_found()),
    }
}

/// "Only the author of the comment can update it" / "… delete it" (community OpenAPI `updateComment` /
/// `deleteComment`); the 403 type is the documented `INVALID_PERMISSIONS` (api-notes airtable.md C.2), the message
/// the fake's own.
fn not_author() -> ApiErr {
    err(403, "INVALID_PERMISSIONS", "You are not permitted to modify a comment written by someone else")
}

fn comment_text(body: &Value) -> Result<String, ApiErr> {
    body.get("text")
        .and_then(Value::as_str)
        .filter(|t| !t.trim().is_empty())
        .map(str::to_owned)
        .ok_or_else(|| err(422, "INVALID_REQUEST_MISSING_FIELDS", "text is required"))
}

/// The fake's reading of "up to 5 MB".
const MAX_UPLOAD: usize = 5 * 1024 * 1024;

/// `POST /{base}/{record}/{field}/uploadAttachment`.
pub(super) fn upload_attachment(
    st: &mut St,
    base: &str,
    record: &str,
    field: &str,
    body: &Value,
) -> Result<((StatusCode, Value), Vec<PendingPing>), ApiErr> {
    let s = |k: &str| body.get(k).and_then(Value::as_str).filter(|v| !v.is_empty());
    let (Some(content_type), Some(file), Some(filename)) = (s("contentType"), s("file"), s("filename")) else {
        return Err(err(422, "INVALID_REQUEST_MISSING_FIELDS", "contentType, file and filename are required"));
    };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(file)
        .map_err(|_| invalid("file must be a base64 encoded string"))?;
    if bytes.len() > MAX_UPLOAD {
        return Err(err(413, "REQUEST_ENTITY_TOO_LARGE", "Attachments uploaded this way are limited to 5 MB"));
    }
    let att_id = st.new_id("att");
    let api_user = st.api_user.clone();
    let b = st.base(base)?;
    let t = b.tables.iter_mut().find(|t| t.records.iter().any(|r| r.id == record)).ok_or_else(not_found)?;
    let f = t
        .field(field)
        .cloned()
        .ok_or_else(|| err(422, "UNKNOWN_FIELD_NAME", format!("Unknown field name: \"{field}\"")))?;
    if f.kind != "multipleAttachments" {
        return Err(invalid(format!("Field {:?} is not an attachment field", f.name)));
    }
    let tid = t.id.clone();
    let r = t.records.iter_mut().find(|r| r.id == record).ok_or_else(not_found_or_forbidden)?;
    let before = r.cells.clone();
    let att = json!({
        "id": att_id,
        "url": format!("https://v5.airtableusercontent.com/fake/{att_id}/{filename}"),
        "filename": filename,
        "size": bytes.len(),
        "type": content_type,
    });
    match r.cells.get_mut(&f.id).and_then(Value::as_array_mut) {
        Some(list) => list.push(att),
        None => {
            r.cells.insert(f.id.clone(), json!([att]));
        }
    }
    let after = r.cells.clone();
    let out = json!({"id": r.id, "createdTime": r.created_time,
        "fields": after.iter().map(|(k, v)| (k.clone(), v.clone())).collect::<serde_json::Map<_, _>>()});
    let change = Change::Updated { id: record.to_owned(), before, after };
    let pings = record_payloads(st, base, &tid, &[change], "publicApi", &api_user);
    Ok(((StatusCode::OK, out), pings))
}
