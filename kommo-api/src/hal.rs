//! HAL list envelopes (`_page`, `_links`, `_embedded`), Kommo's 204 rule, and list parameters.

use api_core::{RawResponse, Request};
use http::StatusCode;
use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::error::Error;

/// Kommo's maximum page size ("limit – 250" on the v4 list pages; maintainer: "api/v4 возвращает не более 250
/// записей на одной странице"). It is also the page size sent when the caller sets none: without `limit` Kommo
/// answers 50 per page, five times the requests against a 7 requests/second budget.
pub const MAX_LIMIT: u32 = 250;

/// One page of a list.
#[derive(Debug, Clone, PartialEq)]
pub struct ListPage<T> {
    /// The items (empty for a 204).
    pub items: Vec<T>,
    /// The page number that was requested.
    pub page: u32,
    /// Whether the response carried `_links.next` (Kommo keeps it even when the next page is empty; that page
    /// then answers 204).
    pub has_next: bool,
    /// `_total_items` when Kommo sends it (pipelines, statuses, webhooks; never leads or contacts).
    pub total_items: Option<u64>,
}

impl<T> ListPage<T> {
    fn empty(page: u32) -> Self {
        Self { items: Vec::new(), page, has_next: false, total_items: None }
    }
}

/// A HAL link.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    /// The URL.
    #[serde(default)]
    pub href: String,
}

/// `_links` of an entity or a page.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Links {
    /// `self`.
    #[serde(default, rename = "self", skip_serializing_if = "Option::is_none")]
    pub self_: Option<Link>,
    /// `next`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<Link>,
    /// `prev`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prev: Option<Link>,
}

#[derive(Deserialize)]
struct Envelope {
    #[serde(default, deserialize_with = "crate::de::object_or_default")]
    _links: Option<Links>,
    #[serde(default, deserialize_with = "crate::de::object_or_default")]
    _embedded: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(default, deserialize_with = "crate::de::opt_i64")]
    _total_items: Option<i64>,
}

/// Decodes a list response: 204 or an empty body is an empty last page; otherwise `_embedded.<key>`.
pub(crate) fn decode_list<T: DeserializeOwned>(resp: &RawResponse, key: &str, page: u32) -> Result<ListPage<T>, Error> {
    if resp.status == StatusCode::NO_CONTENT || resp.body.iter().all(u8::is_ascii_whitespace) {
        return Ok(ListPage::empty(page));
    }
    let env: Envelope = resp.json()?;
    let has_next = env._links.as_ref().is_some_and(|l| l.next.is_some());
    let items = match env._embedded.and_then(|mut m| m.remove(key)) {
        None | Some(serde_json::Value::Null) => Vec::new(),
        Some(v) => decode_at(v, &format!("_embedded.{key}"), &resp.body)?,
    };
    let total_items = env._total_items.and_then(|n| u64::try_from(n).ok());
    Ok(ListPage { items, page, has_next, total_items })
}

/// Decodes `value` reporting failures with `prefix` prepended to the JSON path.
pub(crate) fn decode_at<T: DeserializeOwned>(value: serde_json::Value, prefix: &str, body: &[u8]) -> Result<T, Error> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let inner = e.path().to_string();
        let path = if inner == "." {
            prefix.to_owned()
        } else {
            format!("{prefix}{}{inner}", if inner.starts_with('[') { "" } else { "." })
        };
        Error::Decode(api_core::DecodeError {
            path,
            message: e.inner().to_string(),
            excerpt: api_core::error::excerpt(body),
        })
    })
}

/// Sort direction for `order[field]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// `asc`.
    Asc,
    /// `desc`.
    Desc,
}

impl Order {
    fn as_str(self) -> &'static str {
        match self {
            Self::Asc => "asc",
            Self::Desc => "desc",
        }
    }
}

/// Parameters of a list call: `page`, `limit` (≤ 250), `with`, `query`, `filter[...]`, `order[...]`.
///
/// Filters use the indexed PHP form (`filter[id][0]=1&filter[id][1]=2`), as the official library sends them.
///
/// ```
/// use kommo_api::{ListParams, Order, PipelineId, StatusId};
/// let p = ListParams::new()
///     .limit(250)
///     .with(["contacts"])
///     .status(PipelineId(9217056), StatusId::WON)
///     .updated_between(Some(1_700_000_000), None)
///     .order("updated_at", Order::Asc);
/// assert!(p.pairs().iter().any(|(k, v)| k == "filter[statuses][0][status_id]" && v == "142"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[must_use]
pub struct ListParams {
    pairs: Vec<(String, String)>,
    with: Vec<String>,
    limit: Option<u32>,
    page: Option<u32>,
    statuses: usize,
    indexed: std::collections::HashMap<String, usize>,
}

impl ListParams {
    /// No parameters.
    pub fn new() -> Self {
        Self::default()
    }

    /// Page size (Kommo allows at most 250; larger values fail with [`Error::InvalidRequest`]). When unset, lists
    /// and streams ask for [`MAX_LIMIT`] (250) rather than Kommo's default of 50.
    pub fn limit(mut self, limit: u32) -> Self {
        self.limit = Some(limit);
        self
    }

    /// The first page to fetch (1-based).
    pub fn page(mut self, page: u32) -> Self {
        self.page = Some(page.max(1));
        self
    }

    /// `with=` values (comma-joined), e.g. `contacts`, `companies`, `leads`, `only_deleted`.
    pub fn with<I, S>(mut self, values: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        for v in values {
            let v = v.into();
            if !self.with.contains(&v) {
                self.with.push(v);
            }
        }
        self
    }

    /// `query=` full-text search (contacts: a phone or an email).
    pub fn query(mut self, q: impl Into<String>) -> Self {
        self.pairs.push(("query".into(), q.into()));
        self
    }

    /// `filter[<field>]=<value>` (a single value).
    #[allow(clippy::needless_pass_by_value)]
    pub fn filter(mut self, field: &str, value: impl ToString) -> Self {
        self.pairs.push((format!("filter[{field}]"), value.to_string()));
        self
    }

    /// `filter[<field>][<i>]=<value>`, indexed across calls (an "or" list).
    #[allow(clippy::needless_pass_by_value)]
    pub fn filter_in(mut self, field: &str, value: impl ToString) -> Self {
        let i = self.indexed.entry(field.to_owned()).or_insert(0);
        self.pairs.push((format!("filter[{field}][{i}]"), value.to_string()));
        *i += 1;
        self
    }

    /// A raw query pair, as is.
    pub fn raw(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.pairs.push((key.into(), value.into()));
        self
    }

    /// `filter[id][i]=...` for each id.
    pub fn ids<I>(mut self, ids: I) -> Self
    where
        I: IntoIterator,
        I::Item: crate::EntityKey,
    {
        for id in ids {
            self = self.filter_in("id", id);
        }
        self
    }

    /// `filter[statuses][i][pipeline_id]=..&filter[statuses][i][status_id]=..` (leads).
    pub fn status(mut self, pipeline: crate::PipelineId, status: crate::StatusId) -> Self {
        let i = self.statuses;
        self.statuses += 1;
        self.pairs.push((format!("filter[statuses][{i}][pipeline_id]"), pipeline.to_string()));
        self.pairs.push((format!("filter[statuses][{i}][status_id]"), status.to_string()));
        self
    }

    /// `filter[pipeline_id][i]=...` (leads).
    pub fn pipeline(self, pipeline: crate::PipelineId) -> Self {
        self.filter_in("pipeline_id", pipeline)
    }

    /// `filter[responsible_user_id][i]=...`.
    pub fn responsible_user(self, user: crate::UserId) -> Self {
        self.filter_in("responsible_user_id", user)
    }

    /// `filter[updated_at][from]` / `[to]` (Unix seconds, inclusive).
    pub fn updated_between(self, from: Option<i64>, to: Option<i64>) -> Self {
        self.range("updated_at", from, to)
    }

    /// `filter[created_at][from]` / `[to]`.
    pub fn created_between(self, from: Option<i64>, to: Option<i64>) -> Self {
        self.range("created_at", from, to)
    }

    /// `filter[<field>][from]` / `[to]`.
    pub fn range(mut self, field: &str, from: Option<i64>, to: Option<i64>) -> Self {
        if let Some(f) = from {
            self.pairs.push((format!("filter[{field}][from]"), f.to_string()));
        }
        if let Some(t) = to {
            self.pairs.push((format!("filter[{field}][to]"), t.to_string()));
        }
        self
    }

    /// `order[<field>]=asc|desc` (leads/contacts: `created_at`, `updated_at`, `id`; tasks: `complete_till`...).
    pub fn order(mut self, field: &str, order: Order) -> Self {
        self.pairs.push((format!("order[{field}]"), order.as_str().into()));
        self
    }

    /// Tasks: `filter[entity_type]=<leads|contacts|companies>&filter[entity_id][0]=<id>`.
    pub fn entity<K: crate::EntityKey>(self, id: K) -> Self {
        self.filter("entity_type", K::entity_type().as_str()).filter_in("entity_id", id)
    }

    /// Tasks: `filter[is_completed]=1|0`.
    pub fn completed(self, yes: bool) -> Self {
        self.filter("is_completed", u8::from(yes))
    }

    /// The query pairs other than `page`, `limit` and `with`.
    #[must_use]
    pub fn pairs(&self) -> &[(String, String)] {
        &self.pairs
    }

    pub(crate) fn start_page(&self) -> u32 {
        self.page.unwrap_or(1)
    }

    /// Adds the parameters for `page` to `req` (`limit` defaults to [`MAX_LIMIT`]).
    pub(crate) fn apply(&self, mut req: Request, page: u32) -> Result<Request, Error> {
        if let Some(l) = self.limit
            && (l == 0 || l > MAX_LIMIT)
        {
            return Err(Error::InvalidRequest(format!("limit must be 1..={MAX_LIMIT}, got {l}")));
        }
        if !self.with.is_empty() {
            req = req.query("with", self.with.join(","));
        }
        req = req.query("page", page);
        req = req.query("limit", self.limit.unwrap_or(MAX_LIMIT));
        for (k, v) in &self.pairs {
            req = req.query(k.clone(), v);
        }
        Ok(req)
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn resp(status: u16, body: &str) -> RawResponse {
        RawResponse {
            status: StatusCode::from_u16(status).unwrap(),
            headers: http::HeaderMap::new(),
            body: Bytes::from(body.to_owned()),
        }
    }

    #[derive(Debug, Deserialize, PartialEq)]
    struct Item {
        id: u64,
    }

    #[test]
    fn decodes_hal_and_204() {
        let p: ListPage<Item> = decode_list(
            &resp(200, r#"{"_page":1,"_links":{"self":{"href":"x"},"next":{"href":"y"}},"_embedded":{"contacts":[{"id":1},{"id":2}]}}"#),
            "contacts",
            1,
        )
        .unwrap();
        assert_eq!(p.items, vec![Item { id: 1 }, Item { id: 2 }]);
        assert!(p.has_next);
        let p: ListPage<Item> = decode_list(&resp(204, ""), "contacts", 3).unwrap();
        assert!(p.items.is_empty() && !p.has_next);
    }

    #[test]
    fn php_empty_arrays_are_empty_objects() {
        let p: ListPage<Item> =
            decode_list(&resp(200, r#"{"_page":1,"_links":[],"_embedded":[]}"#), "leads", 1).unwrap();
        assert!(p.items.is_empty() && !p.has_next);
        let l: crate::leads::Lead = serde_json::from_str(r#"{"id":1,"_embedded":[]}"#).unwrap();
        assert!(l.embedded.tags.is_empty());
    }

    #[test]
    fn decode_error_names_embedded_path() {
        let err = decode_list::<Item>(&resp(200, r#"{"_embedded":{"leads":[{"id":1},{"id":"x"}]}}"#), "leads", 1)
            .unwrap_err();
        let Error::Decode(d) = err else { panic!("{err:?}") };
        assert_eq!(d.path, "_embedded.leads[1].id");
    }

    #[test]
    fn limit_over_250_is_rejected() {
        assert!(ListParams::new().limit(251).apply(Request::get("/x"), 1).is_err());
        let r = ListParams::new().limit(250).with(["contacts", "companies"]).apply(Request::get("/x"), 2).unwrap();
        assert_eq!(
            r.query,
            vec![
                ("with".to_owned(), "contacts,companies".to_owned()),
                ("page".into(), "2".into()),
                ("limit".into(), "250".into())
            ]
        );
    }

    #[test]
    fn limit_defaults_to_the_maximum() {
        let r = ListParams::new().filter("id", 7).apply(Request::get("/x"), 1).unwrap();
        assert_eq!(
            r.query,
            vec![
                ("page".to_owned(), "1".to_owned()),
                ("limit".into(), "250".into()),
                ("filter[id]".into(), "7".into())
            ]
        );
        let r = ListParams::new().limit(10).apply(Request::get("/x"), 1).unwrap();
        assert!(r.query.contains(&("limit".into(), "10".into())));
    }
}
