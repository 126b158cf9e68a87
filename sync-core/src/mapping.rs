//! Declarative field mapping between two systems, loaded from TOML and validated at start-up against the live
//! schemas (Airtable metadata, Kommo custom fields), so a wrong field name fails fast with a message that names the
//! field and the fix instead of failing at the first event.
//!
//! ```
//! use sync_core::mapping::{FieldKind, FieldSchema, Mapping, Schema};
//!
//! let mapping = Mapping::from_toml(r#"
//!     [[fields]]
//!     source = "price"
//!     target = "Deal Value"
//!     convert = { type = "money", currency = "USD" }
//!
//!     [[fields]]
//!     source = "status"
//!     target = "Stage"
//!     direction = "two-way"
//!     convert = { type = "select", values = { won = "Closed Won", lost = "Closed Lost" } }
//! "#).unwrap();
//!
//! let kommo = Schema::new("kommo", vec![FieldSchema::new("price", FieldKind::Number), FieldSchema::new("status", FieldKind::Text)]);
//! let airtable = Schema::new("airtable", vec![
//!     FieldSchema::new("Deal Value", FieldKind::Currency),
//!     FieldSchema::select("Stage", ["Closed Won", "Closed Lost"]),
//! ]);
//! mapping.validate(&kommo, &airtable).unwrap();
//!
//! let out = mapping.forward(&serde_json::json!({"price": 1200, "status": "won"}), &mut |_, _, _| None).unwrap();
//! assert_eq!(out["Stage"], "Closed Won");
//! ```

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A set of field mappings from a source system to a target system.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mapping {
    /// The field mappings.
    pub fields: Vec<FieldMap>,
}

/// One source field ↔ target field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldMap {
    /// Field name in the source system.
    pub source: String,
    /// Field name in the target system.
    pub target: String,
    /// One-way (source → target) or two-way.
    #[serde(default)]
    pub direction: Direction,
    /// Value conversion.
    #[serde(default)]
    pub convert: Converter,
}

/// Sync direction of a field.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Direction {
    /// Source → target only.
    #[default]
    OneWay,
    /// Both ways (the reverse conversion must exist).
    TwoWay,
}

/// How a value is converted.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Converter {
    /// Any scalar as a string.
    #[default]
    String,
    /// A number (strings are parsed).
    Number,
    /// A calendar date, written as `YYYY-MM-DD`. Accepts dates, RFC 3339 datetimes and Unix seconds (which are
    /// converted to the date in `tz`, default UTC).
    Date {
        /// IANA time zone used when the input is an instant.
        #[serde(default)]
        tz: Option<String>,
    },
    /// An instant, written as RFC 3339 in UTC. Accepts RFC 3339, Unix seconds, and naive `YYYY-MM-DD HH:MM[:SS]`
    /// / `YYYY-MM-DDTHH:MM[:SS]`, which are read in `tz`.
    Datetime {
        /// IANA time zone for naive inputs (e.g. `Europe/Berlin`).
        tz: String,
    },
    /// A single select: source value → target option.
    Select {
        /// Value map (source → target).
        values: BTreeMap<String, String>,
        /// Target option for unmapped source values (else a conversion error).
        #[serde(default)]
        default: Option<String>,
    },
    /// A money amount as a number; `minor_units` means the source holds cents.
    Money {
        /// ISO 4217 currency code (documentation and validation).
        currency: String,
        /// The source value is in minor units (cents).
        #[serde(default)]
        minor_units: bool,
    },
    /// A list of ids, translated through the id map of `(system, kind)`.
    LinkedIds {
        /// Id map system.
        system: String,
        /// Id map kind.
        kind: String,
    },
}

/// Field types a schema can report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum FieldKind {
    /// Text of any kind.
    Text,
    /// Numbers.
    Number,
    /// Currency amount.
    Currency,
    /// Date without time.
    Date,
    /// Date and time.
    DateTime,
    /// Single select with options.
    SingleSelect,
    /// Links to other records.
    LinkedRecords,
    /// Anything else (accepted by the string converter only).
    Other,
}

/// A field of a schema.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldSchema {
    /// Field name.
    pub name: String,
    /// Type.
    pub kind: FieldKind,
    /// Options of a single select.
    #[serde(default)]
    pub options: Vec<String>,
    /// The system rejects writes to this field (formula, computed).
    #[serde(default)]
    pub read_only: bool,
}

impl FieldSchema {
    /// A field.
    pub fn new(name: impl Into<String>, kind: FieldKind) -> Self {
        Self { name: name.into(), kind, options: Vec::new(), read_only: false }
    }

    /// A single select with `options`.
    pub fn select<I, S>(name: impl Into<String>, options: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            name: name.into(),
            kind: FieldKind::SingleSelect,
            options: options.into_iter().map(Into::into).collect(),
            read_only: false,
        }
    }
}

/// The fields of one system (supplied by the flows from the vendor's metadata API).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schema {
    /// System name, used in messages.
    pub system: String,
    /// Fields.
    pub fields: Vec<FieldSchema>,
}

impl Schema {
    /// A schema.
    pub fn new(system: impl Into<String>, fields: Vec<FieldSchema>) -> Self {
        Self { system: system.into(), fields }
    }

    /// The field named `name`.
    #[must_use]
    pub fn field(&self, name: &str) -> Option<&FieldSchema> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// The field name closest to `name` (case-insensitive match, else the nearest by edit distance), for "did you
    /// mean" messages.
    #[must_use]
    pub fn closest(&self, name: &str) -> Option<&str> {
        let lower = name.to_lowercase();
        self.fields
            .iter()
            .map(|f| (levenshtein(&lower, &f.name.to_lowercase()), f.name.as_str()))
            .filter(|(d, n)| *d <= (n.chars().count() / 3).max(2))
            .min_by_key(|(d, _)| *d)
            .map(|(_, n)| n)
    }
}

/// A mapping problem found by [`Mapping::validate`]: the field, what is wrong, and the fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationError {
    /// Index into `fields`.
    pub index: usize,
    /// The offending field name.
    pub field: String,
    /// What is wrong.
    pub problem: String,
    /// How to fix it.
    pub fix: String,
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "fields[{}] `{}`: {}; fix: {}", self.index, self.field, self.problem, self.fix)
    }
}

/// All problems of a mapping.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} mapping problem(s):\n{}", .0.len(), .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
pub struct ValidationErrors(pub Vec<ValidationError>);

/// A mapping file could not be parsed.
#[derive(Debug, thiserror::Error)]
#[error("invalid mapping TOML: {0}")]
pub struct ParseError(#[from] toml::de::Error);

/// A value could not be converted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("field `{field}`: {message}")]
pub struct ConvertError {
    /// Field (source name going forward, target name going back).
    pub field: String,
    /// What went wrong.
    pub message: String,
}

/// Resolves a linked id through the id map: `(system, kind, id) -> mapped id` (flows prefetch with
/// [`Ctx::id_get`](crate::Ctx::id_get)).
pub type LinkLookup<'a> = dyn FnMut(&str, &str, &str) -> Option<String> + 'a;

impl Mapping {
    /// Parses TOML (`[[fields]]` tables).
    pub fn from_toml(s: &str) -> Result<Self, ParseError> {
        Ok(toml::from_str(s)?)
    }

    /// Checks the mapping against both schemas: fields exist (suggesting the closest name), types fit the
    /// converter, select values are options of the target (and invertible for two-way), time zones exist, targets
    /// are writable, and no target is mapped twice.
    pub fn validate(&self, source: &Schema, target: &Schema) -> Result<(), ValidationErrors> {
        let mut errors = Vec::new();
        let mut seen_targets: BTreeMap<&str, usize> = BTreeMap::new();
        for (index, fm) in self.fields.iter().enumerate() {
            let mut err = |field: &str, problem: String, fix: String| {
                errors.push(ValidationError { index, field: field.to_owned(), problem, fix });
            };
            if let Some(first) = seen_targets.insert(fm.target.as_str(), index) {
                err(
                    &fm.target,
                    format!("target is also mapped by fields[{first}]"),
                    "map each target field once".into(),
                );
            }
            let src = source.field(&fm.source);
            let dst = target.field(&fm.target);
            for (name, found, schema) in [(&fm.source, src, source), (&fm.target, dst, target)] {
                if found.is_none() {
                    let fix = match schema.closest(name) {
                        Some(c) => format!("did you mean `{c}`?"),
                        None => format!(
                            "use one of the {} fields: {}",
                            schema.system,
                            schema.fields.iter().map(|f| format!("`{}`", f.name)).collect::<Vec<_>>().join(", ")
                        ),
                    };
                    err(name, format!("no field named `{name}` in {}", schema.system), fix);
                }
            }
            if let Some(d) = dst
                && d.read_only
            {
                err(
                    &fm.target,
                    format!("`{}` is read-only in {}", d.name, target.system),
                    "map to a writable field".into(),
                );
            }
            if fm.direction == Direction::TwoWay
                && let Some(s) = src
                && s.read_only
            {
                err(
                    &fm.source,
                    format!("two-way, but `{}` is read-only in {}", s.name, source.system),
                    "make it one-way".into(),
                );
            }
            let (Some(_), Some(dst)) = (src, dst) else { continue };
            match &fm.convert {
                Converter::String => {}
                Converter::Number | Converter::Money { .. } => {
                    if !matches!(dst.kind, FieldKind::Number | FieldKind::Currency | FieldKind::Text) {
                        err(
                            &fm.target,
                            format!("is {:?}, not a number", dst.kind),
                            "use a number/currency target or the string converter".into(),
                        );
                    }
                    if let Converter::Money { currency, .. } = &fm.convert
                        && (currency.len() != 3 || !currency.chars().all(|c| c.is_ascii_uppercase()))
                    {
                        err(
                            &fm.source,
                            format!("currency `{currency}` is not an ISO 4217 code"),
                            "use e.g. \"USD\" or \"EUR\"".into(),
                        );
                    }
                }
                Converter::Date { tz } => {
                    if !matches!(dst.kind, FieldKind::Date | FieldKind::DateTime | FieldKind::Text) {
                        err(&fm.target, format!("is {:?}, not a date", dst.kind), "map dates to a date field".into());
                    }
                    if let Some(tz) = tz
                        && tz.parse::<chrono_tz::Tz>().is_err()
                    {
                        err(
                            &fm.source,
                            format!("unknown time zone `{tz}`"),
                            "use an IANA name such as \"Europe/Berlin\"".into(),
                        );
                    }
                }
                Converter::Datetime { tz } => {
                    if !matches!(dst.kind, FieldKind::DateTime | FieldKind::Text) {
                        err(
                            &fm.target,
                            format!("is {:?}, not a date-time", dst.kind),
                            "use a date-time target or the date converter".into(),
                        );
                    }
                    if tz.parse::<chrono_tz::Tz>().is_err() {
                        err(
                            &fm.source,
                            format!("unknown time zone `{tz}`"),
                            "use an IANA name such as \"Europe/Berlin\"".into(),
                        );
                    }
                }
                Converter::Select { values, default } => {
                    if dst.kind == FieldKind::SingleSelect {
                        for option in values.values().chain(default.iter()) {
                            if !dst.options.iter().any(|o| o == option) {
                                let fix = match closest_str(option, &dst.options) {
                                    Some(c) => format!("did you mean `{c}`?"),
                                    None => {
                                        format!("add `{option}` to the field's options or use one of {:?}", dst.options)
                                    }
                                };
                                err(
                                    &fm.target,
                                    format!("select value `{option}` is not an option of `{}`", dst.name),
                                    fix,
                                );
                            }
                        }
                    } else if dst.kind != FieldKind::Text {
                        err(
                            &fm.target,
                            format!("is {:?}, not a single select", dst.kind),
                            "map selects to a single select or text field".into(),
                        );
                    }
                    if fm.direction == Direction::TwoWay {
                        let mut inverse: BTreeMap<&str, &str> = BTreeMap::new();
                        for (from, to) in values {
                            if let Some(prev) = inverse.insert(to, from) {
                                err(
                                    &fm.source,
                                    format!("two-way, but `{prev}` and `{from}` both map to `{to}`"),
                                    "make the value map one-to-one or the field one-way".into(),
                                );
                            }
                        }
                    }
                }
                Converter::LinkedIds { .. } => {
                    if !matches!(dst.kind, FieldKind::LinkedRecords | FieldKind::Text) {
                        err(
                            &fm.target,
                            format!("is {:?}, not a link field", dst.kind),
                            "map linked ids to a linked-records field".into(),
                        );
                    }
                }
            }
        }
        if errors.is_empty() { Ok(()) } else { Err(ValidationErrors(errors)) }
    }

    /// Converts a source record (a JSON object) to the target fields. Missing or null source fields are skipped.
    pub fn forward(&self, record: &Value, links: &mut LinkLookup<'_>) -> Result<Map<String, Value>, ConvertError> {
        let mut out = Map::new();
        for fm in &self.fields {
            if let Some(v) = record.get(&fm.source).filter(|v| !v.is_null()) {
                out.insert(fm.target.clone(), fm.convert.forward(&fm.source, v, links)?);
            }
        }
        Ok(out)
    }

    /// Converts a target record back to source fields, for two-way fields only.
    pub fn reverse(&self, record: &Value, links: &mut LinkLookup<'_>) -> Result<Map<String, Value>, ConvertError> {
        let mut out = Map::new();
        for fm in self.fields.iter().filter(|f| f.direction == Direction::TwoWay) {
            if let Some(v) = record.get(&fm.target).filter(|v| !v.is_null()) {
                out.insert(fm.source.clone(), fm.convert.reverse(&fm.target, v, links)?);
            }
        }
        Ok(out)
    }
}

fn cerr(field: &str, message: impl Into<String>) -> ConvertError {
    ConvertError { field: field.to_owned(), message: message.into() }
}

fn as_string(field: &str, v: &Value) -> Result<String, ConvertError> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        other => Err(cerr(field, format!("expected a scalar, got {other}"))),
    }
}

fn as_f64(field: &str, v: &Value) -> Result<f64, ConvertError> {
    match v {
        Value::Number(n) => n.as_f64().ok_or_else(|| cerr(field, "number out of range")),
        Value::String(s) => {
            s.trim().replace(',', "").parse().map_err(|_| cerr(field, format!("`{s}` is not a number")))
        }
        other => Err(cerr(field, format!("expected a number, got {other}"))),
    }
}

fn number(field: &str, x: f64) -> Result<Value, ConvertError> {
    serde_json::Number::from_f64(x).map(Value::Number).ok_or_else(|| cerr(field, "not a finite number"))
}

fn tz_of(field: &str, tz: Option<&str>) -> Result<chrono_tz::Tz, ConvertError> {
    match tz {
        None => Ok(chrono_tz::UTC),
        Some(tz) => tz.parse().map_err(|_| cerr(field, format!("unknown time zone `{tz}`"))),
    }
}

/// Parses an instant: RFC 3339, Unix seconds, or a naive date-time read in `tz`.
fn parse_instant(field: &str, v: &Value, tz: chrono_tz::Tz) -> Result<DateTime<Utc>, ConvertError> {
    if let Some(secs) = v.as_i64() {
        return DateTime::from_timestamp(secs, 0).ok_or_else(|| cerr(field, "timestamp out of range"));
    }
    let s = v.as_str().ok_or_else(|| cerr(field, format!("expected a date-time, got {v}")))?;
    if let Ok(dt) = DateTime::parse_from_rfc3339(s) {
        return Ok(dt.with_timezone(&Utc));
    }
    for fmt in ["%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M"] {
        if let Ok(naive) = NaiveDateTime::parse_from_str(s, fmt) {
            return tz
                .from_local_datetime(&naive)
                .earliest()
                .map(|d| d.with_timezone(&Utc))
                .ok_or_else(|| cerr(field, format!("`{s}` does not exist in {tz}")));
        }
    }
    Err(cerr(field, format!("`{s}` is not a date-time (RFC 3339, Unix seconds or YYYY-MM-DD HH:MM)")))
}

impl Converter {
    /// Converts a source value to the target representation.
    pub fn forward(&self, field: &str, v: &Value, links: &mut LinkLookup<'_>) -> Result<Value, ConvertError> {
        match self {
            Self::String => as_string(field, v).map(Value::String),
            Self::Number => number(field, as_f64(field, v)?),
            Self::Money { minor_units, .. } => {
                let x = as_f64(field, v)?;
                number(field, if *minor_units { x / 100.0 } else { x })
            }
            Self::Date { tz } => {
                if let Some(s) = v.as_str()
                    && let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d")
                {
                    return Ok(Value::String(d.format("%Y-%m-%d").to_string()));
                }
                let tz = tz_of(field, tz.as_deref())?;
                let instant = parse_instant(field, v, tz)?;
                Ok(Value::String(instant.with_timezone(&tz).date_naive().format("%Y-%m-%d").to_string()))
            }
            Self::Datetime { tz } => {
                let tz = tz_of(field, Some(tz))?;
                let instant = parse_instant(field, v, tz)?;
                Ok(Value::String(instant.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)))
            }
            Self::Select { values, default } => {
                let s = as_string(field, v)?;
                values.get(&s).or(default.as_ref()).map(|t| Value::String(t.clone())).ok_or_else(|| {
                    cerr(field, format!("select value `{s}` has no mapping (add it to `values` or set `default`)"))
                })
            }
            Self::LinkedIds { system, kind } => {
                let ids: Vec<String> = match v {
                    Value::Array(items) => items.iter().map(|i| as_string(field, i)).collect::<Result<_, _>>()?,
                    other => vec![as_string(field, other)?],
                };
                let mapped = ids
                    .iter()
                    .map(|id| {
                        links(system, kind, id)
                            .map(Value::String)
                            .ok_or_else(|| cerr(field, format!("no {system}/{kind} id mapped for `{id}`")))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(Value::Array(mapped))
            }
        }
    }

    /// Converts a target value back to the source representation (two-way fields). For linked ids, `links`
    /// receives `(system, kind, remote_id)` and must return the local key.
    pub fn reverse(&self, field: &str, v: &Value, links: &mut LinkLookup<'_>) -> Result<Value, ConvertError> {
        match self {
            Self::Select { values, .. } => {
                let s = as_string(field, v)?;
                values
                    .iter()
                    .find(|(_, to)| **to == s)
                    .map(|(from, _)| Value::String(from.clone()))
                    .ok_or_else(|| cerr(field, format!("option `{s}` has no source value")))
            }
            Self::Money { minor_units: true, .. } => number(field, (as_f64(field, v)? * 100.0).round()),
            Self::Datetime { .. } => {
                let instant = parse_instant(field, v, chrono_tz::UTC)?;
                Ok(Value::String(instant.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)))
            }
            Self::String | Self::Number | Self::Date { .. } | Self::Money { .. } | Self::LinkedIds { .. } => {
                self.forward(field, v, links)
            }
        }
    }
}

fn closest_str<'a>(name: &str, options: &'a [String]) -> Option<&'a str> {
    let lower = name.to_lowercase();
    options
        .iter()
        .map(|o| (levenshtein(&lower, &o.to_lowercase()), o.as_str()))
        .filter(|(d, o)| *d <= (o.chars().count() / 3).max(2))
        .min_by_key(|(d, _)| *d)
        .map(|(_, o)| o)
}

/// Edit distance (insertions, deletions, substitutions) between two strings, by characters.
#[must_use]
pub fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j + 1] + 1).min(cur[j] + 1).min(prev[j] + cost);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn none() -> impl FnMut(&str, &str, &str) -> Option<String> {
        |_, _, _| None
    }

    fn schemas() -> (Schema, Schema) {
        let kommo = Schema::new(
            "kommo",
            vec![
                FieldSchema::new("price", FieldKind::Number),
                FieldSchema::new("status", FieldKind::Text),
                FieldSchema::new("next_contact", FieldKind::Date),
                FieldSchema::new("closed_at", FieldKind::Number),
                FieldSchema::new("contacts", FieldKind::Other),
            ],
        );
        let airtable = Schema::new(
            "airtable",
            vec![
                FieldSchema::new("Deal Value", FieldKind::Currency),
                FieldSchema::select("Status", ["Onboarding", "Active", "Lost"]),
                FieldSchema::new("Next Contact Date", FieldKind::Date),
                FieldSchema::new("Closed At", FieldKind::DateTime),
                FieldSchema::new("Contacts", FieldKind::LinkedRecords),
                FieldSchema { read_only: true, ..FieldSchema::new("Days Open", FieldKind::Number) },
            ],
        );
        (kommo, airtable)
    }

    const GOOD: &str = r#"
        [[fields]]
        source = "price"
        target = "Deal Value"
        convert = { type = "money", currency = "USD", minor_units = true }

        [[fields]]
        source = "status"
        target = "Status"
        direction = "two-way"
        convert = { type = "select", values = { won = "Onboarding", active = "Active", lost = "Lost" } }

        [[fields]]
        source = "next_contact"
        target = "Next Contact Date"
        direction = "two-way"
        convert = { type = "date", tz = "Europe/Berlin" }

        [[fields]]
        source = "closed_at"
        target = "Closed At"
        convert = { type = "datetime", tz = "America/New_York" }

        [[fields]]
        source = "contacts"
        target = "Contacts"
        convert = { type = "linked_ids", system = "airtable", kind = "contact" }
    "#;

    #[test]
    fn parses_validates_and_converts() {
        let m = Mapping::from_toml(GOOD).unwrap();
        let (k, a) = schemas();
        m.validate(&k, &a).unwrap();
        let rec = json!({"price": 123_456, "status": "won", "next_contact": 1_767_222_000, "closed_at": "2026-03-01 09:30", "contacts": [7, 8]});
        let out = m
            .forward(&rec, &mut |sys, kind, id| (sys == "airtable" && kind == "contact").then(|| format!("rec{id}")))
            .unwrap();
        assert_eq!(out["Deal Value"], json!(1234.56));
        assert_eq!(out["Status"], "Onboarding");
        // 1767222000 = 2025-12-31T23:00:00Z = 2026-01-01 00:00 in Berlin
        assert_eq!(out["Next Contact Date"], "2026-01-01");
        assert_eq!(out["Closed At"], "2026-03-01T14:30:00Z");
        assert_eq!(out["Contacts"], json!(["rec7", "rec8"]));
        let back = m
            .reverse(&json!({"Status": "Lost", "Next Contact Date": "2026-02-03", "Deal Value": 5}), &mut none())
            .unwrap();
        assert_eq!(back["status"], "lost");
        assert_eq!(back["next_contact"], "2026-02-03");
        assert!(!back.contains_key("price"), "one-way fields are not reversed");
    }

    #[test]
    fn validation_names_field_and_fix() {
        let m = Mapping::from_toml(
            r#"
            [[fields]]
            source = "price"
            target = "Deal Valeu"

            [[fields]]
            source = "status"
            target = "Status"
            direction = "two-way"
            convert = { type = "select", values = { won = "Onbording", lost = "Lost", dead = "Lost" } }

            [[fields]]
            source = "closed_at"
            target = "Closed At"
            convert = { type = "datetime", tz = "Mars/Olympus" }

            [[fields]]
            source = "price"
            target = "Days Open"
            convert = { type = "number" }
        "#,
        )
        .unwrap();
        let (k, a) = schemas();
        let errs = m.validate(&k, &a).unwrap_err();
        let text = errs.to_string();
        assert!(text.contains("`Deal Valeu`") && text.contains("did you mean `Deal Value`?"), "{text}");
        assert!(text.contains("`Onbording` is not an option") && text.contains("did you mean `Onboarding`?"), "{text}");
        assert!(text.contains("both map to `Lost`"), "{text}");
        assert!(text.contains("unknown time zone `Mars/Olympus`"), "{text}");
        assert!(text.contains("read-only"), "{text}");
    }

    #[test]
    fn unknown_keys_and_select_misses_are_errors() {
        assert!(Mapping::from_toml("[[fields]]\nsource='a'\ntarget='b'\nconvrt={type='string'}").is_err());
        let c = Converter::Select { values: BTreeMap::from([("a".into(), "A".into())]), default: None };
        assert!(c.forward("f", &json!("z"), &mut none()).unwrap_err().to_string().contains("`z` has no mapping"));
        let c = Converter::Select { values: BTreeMap::new(), default: Some("Other".into()) };
        assert_eq!(c.forward("f", &json!("z"), &mut none()).unwrap(), "Other");
        assert!(Converter::Number.forward("n", &json!("1,200.5"), &mut none()).unwrap() == json!(1200.5));
        assert!(Converter::Number.forward("n", &json!("abc"), &mut none()).is_err());
        let dt = Converter::Datetime { tz: "UTC".into() };
        assert_eq!(dt.forward("d", &json!("2026-01-01T10:00:00+02:00"), &mut none()).unwrap(), "2026-01-01T08:00:00Z");
    }

    #[test]
    fn levenshtein_works() {
        assert_eq!(levenshtein("kitten", "sitting"), 3);
        assert_eq!(levenshtein("", "abc"), 3);
        assert_eq!(levenshtein("same", "same"), 0);
    }
}
