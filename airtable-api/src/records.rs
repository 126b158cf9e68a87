//! Records: list (lazy stream, GET or `POST …/listRecords`), get, create, update (PATCH/PUT), upsert, delete.
//!
//! Every batch call is split into requests of at most [`MAX_RECORDS_PER_REQUEST`] records, sent one after another
//! (Airtable rejects more than 10 per request). When a later chunk fails, the earlier chunks are already committed:
//! the error is then [`Error::PartialBatch`] with the committed record ids, so a caller does not re-create them
//! (re-running an upsert is safe either way).

use api_core::{Page, Request, paginate};
use futures::Stream;
use serde::{Deserialize, Serialize};

use crate::{
    Client, Error,
    cell::{Fields, Record},
    client::encode_segment,
    error::Operation,
    ids::{BaseId, RecordId},
};

/// Records per create/update/upsert/delete request (Airtable's limit).
pub const MAX_RECORDS_PER_REQUEST: usize = 10;
/// Maximum `pageSize`.
pub const MAX_PAGE_SIZE: u32 = 100;
/// Airtable rejects URLs of 16,000 characters or more; longer list requests go to `POST …/listRecords`.
pub const MAX_URL_LENGTH: usize = 16_000;

/// A table of a base, addressed by id (`tbl…`, recommended) or name.
#[derive(Debug, Clone)]
pub struct Table {
    client: Client,
    base: BaseId,
    table: String,
}

/// Sort direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Ascending (default).
    #[default]
    Asc,
    /// Descending.
    Desc,
}

impl Direction {
    fn as_str(self) -> &'static str {
        match self {
            Self::Asc => "asc",
            Self::Desc => "desc",
        }
    }
}

/// One sort key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sort {
    /// Field name or id.
    pub field: String,
    /// Direction.
    pub direction: Direction,
}

/// `cellFormat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CellFormat {
    /// Typed JSON values (default).
    #[default]
    Json,
    /// User-facing strings (requires `timeZone` and `userLocale`).
    String,
}

impl CellFormat {
    fn as_str(self) -> &'static str {
        match self {
            Self::Json => "json",
            Self::String => "string",
        }
    }
}

/// `cellFormat=string` needs `timeZone` and `userLocale` (api-notes airtable.md B.1, OFFICIAL list-records: "both
/// required when `cellFormat=string`"); checked before anything is sent.
fn check_cell_format(
    cell_format: Option<&str>,
    time_zone: Option<&str>,
    user_locale: Option<&str>,
) -> Result<(), Error> {
    if cell_format == Some("string") && (time_zone.is_none_or(str::is_empty) || user_locale.is_none_or(str::is_empty)) {
        return Err(Error::InvalidRequest(
            "cellFormat=string requires timeZone and userLocale (Airtable rejects it otherwise)".into(),
        ));
    }
    Ok(())
}

/// Options of a single-record read (`GET …/{recordId}`): the read options of list-records that apply to one record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadOptions {
    /// `cellFormat`.
    pub cell_format: Option<CellFormat>,
    /// `timeZone` (required with [`CellFormat::String`]).
    pub time_zone: Option<String>,
    /// `userLocale` (required with [`CellFormat::String`]).
    pub user_locale: Option<String>,
    /// `returnFieldsByFieldId`.
    pub return_fields_by_field_id: Option<bool>,
}

impl ReadOptions {
    /// `cellFormat=string` with its required `timeZone` (e.g. `Europe/Berlin`) and `userLocale` (e.g. `en-gb`).
    #[must_use]
    pub fn string_cells(time_zone: impl Into<String>, user_locale: impl Into<String>) -> Self {
        Self {
            cell_format: Some(CellFormat::String),
            time_zone: Some(time_zone.into()),
            user_locale: Some(user_locale.into()),
            return_fields_by_field_id: None,
        }
    }

    /// Key `fields` by field id.
    #[must_use]
    pub fn return_fields_by_field_id(mut self, yes: bool) -> Self {
        self.return_fields_by_field_id = Some(yes);
        self
    }

    fn validate(&self) -> Result<(), Error> {
        check_cell_format(
            self.cell_format.map(CellFormat::as_str),
            self.time_zone.as_deref(),
            self.user_locale.as_deref(),
        )
    }

    fn to_query(&self) -> Vec<(&'static str, String)> {
        let mut q = Vec::new();
        if let Some(c) = self.cell_format {
            q.push(("cellFormat", c.as_str().to_owned()));
        }
        if let Some(t) = &self.time_zone {
            q.push(("timeZone", t.clone()));
        }
        if let Some(l) = &self.user_locale {
            q.push(("userLocale", l.clone()));
        }
        if let Some(b) = self.return_fields_by_field_id {
            q.push(("returnFieldsByFieldId", b.to_string()));
        }
        q
    }
}

/// Options for writes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteOptions {
    /// Let Airtable convert strings to cell values and create missing select options.
    pub typecast: bool,
    /// Key `fields` in the answer by field id.
    pub return_fields_by_field_id: bool,
}

impl WriteOptions {
    /// With `typecast: true`.
    #[must_use]
    pub fn typecast() -> Self {
        Self { typecast: true, ..Self::default() }
    }
}

/// One page of records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordPage {
    /// The records.
    pub records: Vec<Record>,
    /// The offset of the next page (absent on the last page).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<String>,
}

/// Answer of an upsert: all records, and which were created / updated (accumulated over the chunks).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct UpsertResult {
    /// The records as stored.
    pub records: Vec<Record>,
    /// Ids of created records.
    #[serde(rename = "createdRecords", default)]
    pub created_records: Vec<RecordId>,
    /// Ids of updated records.
    #[serde(rename = "updatedRecords", default)]
    pub updated_records: Vec<RecordId>,
}

/// An entry of a delete answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeletedRecord {
    /// The id.
    pub id: RecordId,
    /// Always `true`.
    pub deleted: bool,
}

/// A record to update: id + fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordUpdate {
    /// The record.
    pub id: RecordId,
    /// Fields to set (PATCH) or the full new content (PUT).
    pub fields: Fields,
}

#[derive(Deserialize)]
struct RecordsAnswer {
    records: Vec<Record>,
}

#[derive(Deserialize)]
struct DeletedAnswer {
    records: Vec<DeletedRecord>,
}

impl Client {
    /// A table handle.
    #[must_use]
    pub fn table(&self, base: impl Into<BaseId>, table: impl Into<String>) -> Table {
        Table { client: self.clone(), base: base.into(), table: table.into() }
    }
}

impl Table {
    /// The base.
    #[must_use]
    pub fn base(&self) -> &BaseId {
        &self.base
    }

    /// The table id or name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.table
    }

    /// The client this handle sends through.
    #[must_use]
    pub fn client(&self) -> &Client {
        &self.client
    }

    pub(crate) fn path(&self) -> String {
        format!("/{}/{}", encode_segment(self.base.as_str()), encode_segment(&self.table))
    }

    pub(crate) fn req(&self, r: Request) -> Request {
        r.rate_key(self.base.as_str())
    }

    /// A list request builder; `.stream()` pages lazily.
    #[must_use]
    pub fn list(&self) -> ListRecords {
        ListRecords { table: self.clone(), params: ListParams::default(), force_post: false }
    }

    /// Gets one record.
    ///
    /// # Errors
    /// [`Error`]; a missing record is a 404 `NOT_FOUND` (see [`Error::is_not_found`]).
    pub async fn get(&self, id: &RecordId) -> Result<Record, Error> {
        let r = self.req(Request::get(format!("{}/{}", self.path(), encode_segment(id.as_str()))));
        self.client.send_json(r, Operation::Other).await
    }

    /// Gets one record with fields keyed by field id.
    ///
    /// # Errors
    /// As [`Table::get`].
    pub async fn get_by_field_id(&self, id: &RecordId) -> Result<Record, Error> {
        self.get_with(id, &ReadOptions::default().return_fields_by_field_id(true)).await
    }

    /// Gets one record with read options (`GET …/{recordId}?cellFormat=…&timeZone=…&userLocale=…&
    /// returnFieldsByFieldId=…`; api-notes airtable.md B.2, OFFICIAL get-record).
    ///
    /// # Errors
    /// [`Error::InvalidRequest`] for `cellFormat=string` without `timeZone` and `userLocale` (checked before
    /// sending); as [`Table::get`] otherwise.
    pub async fn get_with(&self, id: &RecordId, opts: &ReadOptions) -> Result<Record, Error> {
        opts.validate()?;
        let mut r = self.req(Request::get(format!("{}/{}", self.path(), encode_segment(id.as_str()))));
        for (k, v) in opts.to_query() {
            r = r.query(k, v);
        }
        self.client.send_json(r, Operation::Other).await
    }

    /// The first record where `field` equals `value` (`filterByFormula` built with [`crate::field_eq`], so the
    /// value is escaped), or `None`; a find-one helper like pyairtable's `Table.first(formula=match(…))`.
    ///
    /// # Errors
    /// [`Error`].
    pub async fn find_first(&self, field: &str, value: &str) -> Result<Option<Record>, Error> {
        self.list().filter_by_formula(crate::formula::field_eq(field, value)).first().await
    }

    /// Creates records, 10 per request.
    ///
    /// # Errors
    /// [`Error`] from the first failing chunk (earlier chunks are committed).
    pub async fn create(&self, records: Vec<Fields>, opts: WriteOptions) -> Result<Vec<Record>, Error> {
        let mut out: Vec<Record> = Vec::with_capacity(records.len());
        for (i, chunk) in records.chunks(MAX_RECORDS_PER_REQUEST).enumerate() {
            let body = WriteBody {
                records: chunk.iter().map(|f| WriteRecord { id: None, fields: f }).collect(),
                typecast: opts.typecast.then_some(true),
                return_fields_by_field_id: opts.return_fields_by_field_id.then_some(true),
                perform_upsert: None,
            };
            // creating is not idempotent: never retried once it may have been sent
            let r = self.req(Request::post(self.path()).json(&body)?);
            let a: RecordsAnswer = self
                .client
                .send_json(r, Operation::Other)
                .await
                .map_err(|e| partial(e, i, out.iter().map(|r| r.id.clone())))?;
            out.extend(a.records);
        }
        Ok(out)
    }

    /// Creates one record.
    ///
    /// # Errors
    /// [`Error`].
    pub async fn create_one(&self, fields: Fields, opts: WriteOptions) -> Result<Record, Error> {
        self.create(vec![fields], opts)
            .await?
            .pop()
            .ok_or_else(|| Error::InvalidRequest("Airtable returned no record for a create".into()))
    }

    async fn write_by_id(
        &self,
        updates: &[RecordUpdate],
        opts: WriteOptions,
        replace: bool,
    ) -> Result<Vec<Record>, Error> {
        let mut out: Vec<Record> = Vec::with_capacity(updates.len());
        for (i, chunk) in updates.chunks(MAX_RECORDS_PER_REQUEST).enumerate() {
            let body = WriteBody {
                records: chunk.iter().map(|u| WriteRecord { id: Some(&u.id), fields: &u.fields }).collect(),
                typecast: opts.typecast.then_some(true),
                return_fields_by_field_id: opts.return_fields_by_field_id.then_some(true),
                perform_upsert: None,
            };
            let r = if replace { Request::put(self.path()) } else { Request::patch(self.path()) };
            // setting fields by record id is idempotent
            let r = self.req(r.json(&body)?.idempotent(true));
            let a: RecordsAnswer = self
                .client
                .send_json(r, Operation::Other)
                .await
                .map_err(|e| partial(e, i, out.iter().map(|r| r.id.clone())))?;
            out.extend(a.records);
        }
        Ok(out)
    }

    /// Updates records (PATCH: only the given fields change), 10 per request.
    ///
    /// # Errors
    /// [`Error`] from the first failing chunk.
    pub async fn update(&self, updates: &[RecordUpdate], opts: WriteOptions) -> Result<Vec<Record>, Error> {
        self.write_by_id(updates, opts, false).await
    }

    /// Replaces records (PUT: fields not given are cleared), 10 per request.
    ///
    /// # Errors
    /// [`Error`] from the first failing chunk.
    pub async fn replace(&self, updates: &[RecordUpdate], opts: WriteOptions) -> Result<Vec<Record>, Error> {
        self.write_by_id(updates, opts, true).await
    }

    /// Updates one record (PATCH `…/{recordId}` with `{"fields", "typecast"?, "returnFieldsByFieldId"?}`).
    ///
    /// # Errors
    /// [`Error`].
    pub async fn update_one(&self, id: &RecordId, fields: &Fields, opts: WriteOptions) -> Result<Record, Error> {
        let body = SingleWrite {
            fields,
            typecast: opts.typecast.then_some(true),
            return_fields_by_field_id: opts.return_fields_by_field_id.then_some(true),
        };
        let r = self.req(
            Request::patch(format!("{}/{}", self.path(), encode_segment(id.as_str()))).json(&body)?.idempotent(true),
        );
        self.client.send_json(r, Operation::Other).await
    }

    /// Upserts: records matching `fields_to_merge_on` (1–3 field names or ids) are updated, others created. PATCH
    /// (merge); see [`Table::upsert_replace`] for PUT. 10 per request; `createdRecords`/`updatedRecords` accumulate.
    ///
    /// Every record must carry all merge fields (checked before any request, so nothing is half-applied for that).
    ///
    /// # Errors
    /// [`Error::UpsertAmbiguous`] when more than one existing record matches; [`Error`] otherwise.
    pub async fn upsert(
        &self,
        records: &[Fields],
        fields_to_merge_on: &[&str],
        opts: WriteOptions,
    ) -> Result<UpsertResult, Error> {
        self.upsert_inner(records, fields_to_merge_on, opts, false).await
    }

    /// Upsert with PUT semantics (fields not given are cleared on matched records).
    ///
    /// # Errors
    /// As [`Table::upsert`].
    pub async fn upsert_replace(
        &self,
        records: &[Fields],
        fields_to_merge_on: &[&str],
        opts: WriteOptions,
    ) -> Result<UpsertResult, Error> {
        self.upsert_inner(records, fields_to_merge_on, opts, true).await
    }

    async fn upsert_inner(
        &self,
        records: &[Fields],
        merge_on: &[&str],
        opts: WriteOptions,
        replace: bool,
    ) -> Result<UpsertResult, Error> {
        if merge_on.is_empty() || merge_on.len() > 3 {
            return Err(Error::InvalidRequest("fieldsToMergeOn takes 1 to 3 fields".into()));
        }
        for (i, r) in records.iter().enumerate() {
            if let Some(missing) = merge_on.iter().find(|f| r.get(f).is_none()) {
                return Err(Error::InvalidRequest(format!("record {i} lacks merge field {missing:?}")));
            }
        }
        let mut out = UpsertResult::default();
        for (i, chunk) in records.chunks(MAX_RECORDS_PER_REQUEST).enumerate() {
            let body = WriteBody {
                records: chunk.iter().map(|f| WriteRecord { id: None, fields: f }).collect(),
                typecast: Some(opts.typecast),
                return_fields_by_field_id: opts.return_fields_by_field_id.then_some(true),
                perform_upsert: Some(PerformUpsert { fields_to_merge_on: merge_on }),
            };
            let r = if replace { Request::put(self.path()) } else { Request::patch(self.path()) };
            // an upsert keyed on merge fields converges when repeated
            let r = self.req(r.json(&body)?.idempotent(true));
            let a: UpsertResult = self
                .client
                .send_json(r, Operation::Upsert)
                .await
                .map_err(|e| partial(e, i, out.records.iter().map(|r| r.id.clone())))?;
            out.records.extend(a.records);
            out.created_records.extend(a.created_records);
            out.updated_records.extend(a.updated_records);
        }
        Ok(out)
    }

    /// Deletes records (`DELETE ?records[]=…`), 10 per request.
    ///
    /// # Errors
    /// [`Error`] from the first failing chunk.
    pub async fn delete(&self, ids: &[RecordId]) -> Result<Vec<DeletedRecord>, Error> {
        let mut out: Vec<DeletedRecord> = Vec::with_capacity(ids.len());
        for (i, chunk) in ids.chunks(MAX_RECORDS_PER_REQUEST).enumerate() {
            let mut r = Request::delete(self.path());
            for id in chunk {
                r = r.query("records[]", id);
            }
            let a: DeletedAnswer = self
                .client
                .send_json(self.req(r), Operation::Other)
                .await
                .map_err(|e| partial(e, i, out.iter().map(|r| r.id.clone())))?;
            out.extend(a.records);
        }
        Ok(out)
    }

    /// Deletes one record.
    ///
    /// # Errors
    /// [`Error`].
    pub async fn delete_one(&self, id: &RecordId) -> Result<DeletedRecord, Error> {
        let r = self.req(Request::delete(format!("{}/{}", self.path(), encode_segment(id.as_str()))));
        self.client.send_json(r, Operation::Other).await
    }
}

/// Wraps the failure of chunk `chunk` in [`Error::PartialBatch`] when earlier chunks committed something.
fn partial(e: Error, chunk: usize, committed: impl Iterator<Item = RecordId>) -> Error {
    let committed: Vec<RecordId> = committed.collect();
    if chunk == 0 || committed.is_empty() {
        return e;
    }
    tracing::warn!(chunk, committed = committed.len(), "airtable batch failed; earlier chunks are committed");
    Error::PartialBatch { failed_chunk: chunk, committed, source: Box::new(e) }
}

#[derive(Serialize)]
struct WriteRecord<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a RecordId>,
    fields: &'a Fields,
}

#[derive(Serialize)]
struct PerformUpsert<'a> {
    #[serde(rename = "fieldsToMergeOn")]
    fields_to_merge_on: &'a [&'a str],
}

#[derive(Serialize)]
struct WriteBody<'a> {
    #[serde(rename = "performUpsert", skip_serializing_if = "Option::is_none")]
    perform_upsert: Option<PerformUpsert<'a>>,
    records: Vec<WriteRecord<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    typecast: Option<bool>,
    #[serde(rename = "returnFieldsByFieldId", skip_serializing_if = "Option::is_none")]
    return_fields_by_field_id: Option<bool>,
}

#[derive(Serialize)]
struct SingleWrite<'a> {
    fields: &'a Fields,
    #[serde(skip_serializing_if = "Option::is_none")]
    typecast: Option<bool>,
    #[serde(rename = "returnFieldsByFieldId", skip_serializing_if = "Option::is_none")]
    return_fields_by_field_id: Option<bool>,
}

/// List parameters (also the JSON body of `POST …/listRecords`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListParams {
    /// View name or id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub view: Option<String>,
    /// Only these fields (names or ids).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<String>,
    /// A formula; records where it is truthy are returned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filter_by_formula: Option<String>,
    /// Sort keys.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sort: Vec<Sort>,
    /// `string` for user-facing strings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cell_format: Option<&'static str>,
    /// Time zone for `cellFormat=string`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    /// Locale for `cellFormat=string`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_locale: Option<String>,
    /// Key `fields` by field id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub return_fields_by_field_id: Option<bool>,
    /// Page size (≤ 100).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub page_size: Option<u32>,
    /// Stop after this many records in all.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_records: Option<u32>,
    /// `["commentCount"]` to add `commentCount`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub record_metadata: Vec<String>,
    /// The page offset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset: Option<String>,
}

impl ListParams {
    /// As GET query pairs.
    #[must_use]
    pub fn to_query(&self) -> Vec<(String, String)> {
        let mut q = Vec::new();
        let mut push = |k: &str, v: String| q.push((k.to_owned(), v));
        if let Some(v) = &self.view {
            push("view", v.clone());
        }
        for f in &self.fields {
            push("fields[]", f.clone());
        }
        if let Some(f) = &self.filter_by_formula {
            push("filterByFormula", f.clone());
        }
        for (i, s) in self.sort.iter().enumerate() {
            push(&format!("sort[{i}][field]"), s.field.clone());
            push(&format!("sort[{i}][direction]"), s.direction.as_str().to_owned());
        }
        if let Some(c) = self.cell_format {
            push("cellFormat", c.to_owned());
        }
        if let Some(t) = &self.time_zone {
            push("timeZone", t.clone());
        }
        if let Some(l) = &self.user_locale {
            push("userLocale", l.clone());
        }
        if let Some(b) = self.return_fields_by_field_id {
            push("returnFieldsByFieldId", b.to_string());
        }
        if let Some(n) = self.page_size {
            push("pageSize", n.to_string());
        }
        if let Some(n) = self.max_records {
            push("maxRecords", n.to_string());
        }
        for m in &self.record_metadata {
            push("recordMetadata[]", m.clone());
        }
        if let Some(o) = &self.offset {
            push("offset", o.clone());
        }
        q
    }
}

/// A list-records request. Build it, then [`ListRecords::stream`] (lazy), [`ListRecords::page`] or
/// [`ListRecords::all`].
#[derive(Debug, Clone)]
pub struct ListRecords {
    table: Table,
    params: ListParams,
    force_post: bool,
}

impl ListRecords {
    /// Records in this view's order and filter.
    #[must_use]
    pub fn view(mut self, view: impl Into<String>) -> Self {
        self.params.view = Some(view.into());
        self
    }

    /// Only these fields.
    #[must_use]
    pub fn fields<I: IntoIterator<Item = S>, S: Into<String>>(mut self, fields: I) -> Self {
        self.params.fields = fields.into_iter().map(Into::into).collect();
        self
    }

    /// `filterByFormula`.
    #[must_use]
    pub fn filter_by_formula(mut self, formula: impl Into<String>) -> Self {
        self.params.filter_by_formula = Some(formula.into());
        self
    }

    /// Adds a sort key.
    #[must_use]
    pub fn sort(mut self, field: impl Into<String>, direction: Direction) -> Self {
        self.params.sort.push(Sort { field: field.into(), direction });
        self
    }

    /// `cellFormat`; [`CellFormat::String`] requires [`ListRecords::time_zone`] and [`ListRecords::user_locale`]
    /// (checked before sending: [`Error::InvalidRequest`]).
    #[must_use]
    pub fn cell_format(mut self, f: CellFormat) -> Self {
        self.params.cell_format = Some(f.as_str());
        self
    }

    /// `timeZone`, e.g. `Europe/Berlin`.
    #[must_use]
    pub fn time_zone(mut self, tz: impl Into<String>) -> Self {
        self.params.time_zone = Some(tz.into());
        self
    }

    /// `userLocale`, e.g. `en-gb`.
    #[must_use]
    pub fn user_locale(mut self, l: impl Into<String>) -> Self {
        self.params.user_locale = Some(l.into());
        self
    }

    /// Key `fields` by field id (recommended: names change).
    #[must_use]
    pub fn return_fields_by_field_id(mut self, yes: bool) -> Self {
        self.params.return_fields_by_field_id = Some(yes);
        self
    }

    /// Page size, clamped to 1..=100.
    #[must_use]
    pub fn page_size(mut self, n: u32) -> Self {
        self.params.page_size = Some(n.clamp(1, MAX_PAGE_SIZE));
        self
    }

    /// Stop after this many records.
    #[must_use]
    pub fn max_records(mut self, n: u32) -> Self {
        self.params.max_records = Some(n);
        self
    }

    /// Include `commentCount`.
    #[must_use]
    pub fn comment_count(mut self) -> Self {
        self.params.record_metadata = vec!["commentCount".into()];
        self
    }

    /// Always use `POST …/listRecords` (it is chosen automatically when the URL would reach 16,000 characters).
    #[must_use]
    pub fn use_post(mut self, yes: bool) -> Self {
        self.force_post = yes;
        self
    }

    /// The parameters.
    #[must_use]
    pub fn params(&self) -> &ListParams {
        &self.params
    }

    fn needs_post(&self, params: &ListParams) -> bool {
        if self.force_post {
            return true;
        }
        let mut ser = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in params.to_query() {
            ser.append_pair(&k, &v);
        }
        let len = self.table.client.base_url().as_str().len() + self.table.path().len() + 1 + ser.finish().len();
        len >= MAX_URL_LENGTH
    }

    /// Fetches one page at `offset` (`None` for the first).
    ///
    /// # Errors
    /// [`Error::InvalidRequest`] for `cellFormat=string` without `timeZone` and `userLocale` (nothing is sent);
    /// [`Error::IteratorExpired`] when the offset timed out (restart from the first page); [`Error`] otherwise.
    pub async fn page(&self, offset: Option<String>) -> Result<RecordPage, Error> {
        check_cell_format(
            self.params.cell_format,
            self.params.time_zone.as_deref(),
            self.params.user_locale.as_deref(),
        )?;
        let mut params = self.params.clone();
        params.offset = offset;
        let req = if self.needs_post(&params) {
            // a read: safe to repeat
            Request::post(format!("{}/listRecords", self.table.path())).json(&params)?.idempotent(true)
        } else {
            let mut r = Request::get(self.table.path());
            for (k, v) in params.to_query() {
                r = r.query(k, v);
            }
            r
        };
        self.table.client.send_json(self.table.req(req), Operation::ListRecords).await
    }

    /// All records as a lazy stream: a page is fetched when the previous one is consumed; ends after the last page or
    /// the first error.
    pub fn stream(self) -> impl Stream<Item = Result<Record, Error>> + Send + 'static {
        paginate(None, move |offset: Option<String>| {
            let this = self.clone();
            async move {
                let p = this.page(offset).await?;
                Ok::<_, Error>(Page { items: p.records, next: p.offset })
            }
        })
    }

    /// The first record (in the view's or the sort's order), or `None`: one request with `maxRecords=1` and
    /// `pageSize=1` (pyairtable `Table.first`).
    ///
    /// # Errors
    /// As [`ListRecords::page`].
    pub async fn first(mut self) -> Result<Option<Record>, Error> {
        self.params.max_records = Some(1);
        self.params.page_size = Some(1);
        Ok(self.page(None).await?.records.into_iter().next())
    }

    /// Collects every record.
    ///
    /// # Errors
    /// The first page error.
    pub async fn all(self) -> Result<Vec<Record>, Error> {
        use futures::TryStreamExt as _;
        self.stream().try_collect().await
    }
}
