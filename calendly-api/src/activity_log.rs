//! The organization activity log (Enterprise plans): `GET /activity_log_entries` (OpenAPI `calendly.yaml`, "List
//! activity log entries", schema `ActivityLogEntry`). Array filters (`actor`, `sort`, `namespace`, `action`) are
//! sent as repeated keys (`action=Add&action=Remove`), OpenAPI's default `form`/`explode` style, which the spec does
//! not override. `count` goes up to 1000 here (the spec's maximum for this endpoint), not 100.

use api_core::Request;
use chrono::{DateTime, Utc};
use futures::Stream;
use serde::{Deserialize, Serialize};

use crate::{
    Client, Error, Pagination,
    scheduled_events::format_time,
    uri::{ActivityLogEntryUri, OrganizationUri, UserUri},
};

/// The largest `count` of `GET /activity_log_entries`.
pub const MAX_ACTIVITY_LOG_PAGE: u32 = 1000;

/// One activity log entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActivityLogEntry {
    /// The entry URI.
    pub uri: ActivityLogEntryUri,
    /// When it happened.
    pub occurred_at: DateTime<Utc>,
    /// The category, e.g. `User`.
    #[serde(default)]
    pub namespace: Option<String>,
    /// The action, e.g. `Add`.
    #[serde(default)]
    pub action: Option<String>,
    /// `namespace.action`, e.g. `User.Add`.
    #[serde(default)]
    pub fully_qualified_name: Option<String>,
    /// Who did it: `{uri, type, organization{uri, role}, group{uri, name, role}, display_name,
    /// alternative_identifier}`.
    #[serde(default)]
    pub actor: Option<serde_json::Value>,
    /// Action-specific details.
    #[serde(default)]
    pub details: Option<serde_json::Value>,
    /// The organization.
    #[serde(default)]
    pub organization: Option<OrganizationUri>,
    /// Other fields, kept.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// One page of the activity log: the collection, pagination, and the log's own totals.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActivityLogPage {
    /// The entries.
    pub collection: Vec<ActivityLogEntry>,
    /// Cursors.
    pub pagination: Pagination,
    /// The time of the most recent entry matching the filters.
    #[serde(default)]
    pub last_event_time: Option<DateTime<Utc>>,
    /// Entries matching the filters.
    #[serde(default)]
    pub total_count: Option<u64>,
    /// Whether `total_count` was capped.
    #[serde(default)]
    pub exceeds_max_total_count: Option<bool>,
}

/// `GET /activity_log_entries` filters; the organization is required.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct ListActivityLog {
    /// The organization.
    pub organization: OrganizationUri,
    /// Search term (`|` or, `+` and, `-` not, `"…"` phrase, `*` prefix; at most 300 characters).
    pub search_term: Option<String>,
    /// Only these actors.
    pub actor: Vec<UserUri>,
    /// Sort keys, e.g. `occurred_at:desc` (the default).
    pub sort: Vec<String>,
    /// Entries after.
    pub min_occurred_at: Option<DateTime<Utc>>,
    /// Entries before.
    pub max_occurred_at: Option<DateTime<Utc>>,
    /// Only these namespaces.
    pub namespace: Vec<String>,
    /// Only these actions.
    pub action: Vec<String>,
    /// Page size (1..=1000; default 100).
    pub count: Option<u32>,
}

impl ListActivityLog {
    /// The log of `organization`.
    pub fn new(organization: OrganizationUri) -> Self {
        Self {
            organization,
            search_term: None,
            actor: Vec::new(),
            sort: Vec::new(),
            min_occurred_at: None,
            max_occurred_at: None,
            namespace: Vec::new(),
            action: Vec::new(),
            count: None,
        }
    }

    /// Entries in `min..max`.
    pub fn occurred_between(mut self, min: Option<DateTime<Utc>>, max: Option<DateTime<Utc>>) -> Self {
        self.min_occurred_at = min;
        self.max_occurred_at = max;
        self
    }

    /// Adds an action filter.
    pub fn action(mut self, action: impl Into<String>) -> Self {
        self.action.push(action.into());
        self
    }

    /// Adds a namespace filter.
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace.push(namespace.into());
        self
    }

    /// Adds an actor filter.
    pub fn actor(mut self, actor: UserUri) -> Self {
        self.actor.push(actor);
        self
    }

    /// Adds a sort key.
    pub fn sort(mut self, key: impl Into<String>) -> Self {
        self.sort.push(key.into());
        self
    }

    /// Search term.
    pub fn search_term(mut self, term: impl Into<String>) -> Self {
        self.search_term = Some(term.into());
        self
    }

    /// Page size (clamped to 1..=1000).
    pub fn count(mut self, n: u32) -> Self {
        self.count = Some(n);
        self
    }

    /// Checks the documented limits (search term ≤ 300 characters).
    ///
    /// # Errors
    /// [`Error::InvalidRequest`].
    pub fn validate(&self) -> Result<(), Error> {
        if self.search_term.as_ref().is_some_and(|s| s.chars().count() > 300) {
            return Err(Error::InvalidRequest("search_term is longer than 300 characters".into()));
        }
        Ok(())
    }

    /// The query parameters (arrays as repeated keys).
    #[must_use]
    pub fn to_query(&self) -> Vec<(String, String)> {
        let mut q = vec![("organization".to_owned(), self.organization.to_string())];
        if let Some(s) = &self.search_term {
            q.push(("search_term".to_owned(), s.clone()));
        }
        q.extend(self.actor.iter().map(|a| ("actor".to_owned(), a.to_string())));
        q.extend(self.sort.iter().map(|s| ("sort".to_owned(), s.clone())));
        if let Some(t) = self.min_occurred_at {
            q.push(("min_occurred_at".to_owned(), format_time(t)));
        }
        if let Some(t) = self.max_occurred_at {
            q.push(("max_occurred_at".to_owned(), format_time(t)));
        }
        q.extend(self.namespace.iter().map(|s| ("namespace".to_owned(), s.clone())));
        q.extend(self.action.iter().map(|s| ("action".to_owned(), s.clone())));
        q.push(("count".to_owned(), self.count.unwrap_or(100).clamp(1, MAX_ACTIVITY_LOG_PAGE).to_string()));
        q
    }
}

impl Client {
    /// One page of the activity log (`page_token`: `None` first, then `pagination.next_page_token`). Enterprise
    /// only: other plans get 403 "Please upgrade your Calendly account to Enterprise" ([`Error::is_plan_gate`]).
    ///
    /// # Errors
    /// [`Error::InvalidRequest`] from [`ListActivityLog::validate`]; [`Error`].
    pub async fn list_activity_log(
        &self,
        query: &ListActivityLog,
        page_token: Option<&str>,
    ) -> Result<ActivityLogPage, Error> {
        query.validate()?;
        let mut req = Request::get("/activity_log_entries");
        for (k, v) in query.to_query() {
            req = req.query(k, v);
        }
        req = req.query_opt("page_token", page_token);
        self.json(req).await
    }

    /// Every activity log entry matching `query`, as a lazy stream over all pages.
    pub fn stream_activity_log(
        &self,
        query: &ListActivityLog,
    ) -> impl Stream<Item = Result<ActivityLogEntry, Error>> + Send + 'static {
        let client = self.clone();
        let query = query.clone();
        api_core::paginate(None, move |cursor: Option<String>| {
            let client = client.clone();
            let query = query.clone();
            async move {
                let page = client.list_activity_log(&query, cursor.as_deref()).await?;
                let next = page.pagination.next_page_token.filter(|t| !t.is_empty());
                Ok::<_, Error>(api_core::Page { items: page.collection, next })
            }
        })
    }
}
