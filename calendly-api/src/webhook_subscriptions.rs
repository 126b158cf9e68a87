//! Webhook subscriptions: create (with our own signing key), list by organization + scope, get, delete, sample data,
//! and [`Client::ensure_webhook_subscription`], the lifecycle helper. There is no update endpoint: changing a
//! subscription is delete + create.

use api_core::{Request, Token};
use chrono::{DateTime, Utc};
use futures::{Stream, StreamExt as _};
use serde::{Deserialize, Serialize};

use crate::{
    Client, Collection, Error,
    client::clamp_count,
    error::ApiErrorBody,
    uri::{GroupUri, OrganizationUri, UserUri, WebhookUri},
    webhook::{WebhookDelivery, WebhookEvent, parse},
};

api_core::open_enum!(
    /// `scope` of a subscription.
    WebhookScope {
        /// Every subscribed event in the organization (needs an admin/owner; the choice for a team-wide sync).
        Organization = "organization",
        /// Only events of one user.
        User = "user",
        /// Only events of one group.
        Group = "group",
    }
);

api_core::open_enum!(
    /// `state` of a subscription. Calendly disables a subscription after 24 h of failed deliveries.
    SubscriptionState {
        /// Delivering.
        Active = "active",
        /// Disabled after failures: delete and create again.
        Disabled = "disabled",
    }
);

/// A webhook subscription. Calendly never returns the signing key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookSubscription {
    /// The subscription URI.
    pub uri: WebhookUri,
    /// Where deliveries go.
    pub callback_url: String,
    /// Created at.
    #[serde(default)]
    pub created_at: Option<DateTime<Utc>>,
    /// Updated at.
    #[serde(default)]
    pub updated_at: Option<DateTime<Utc>>,
    /// Set while Calendly is retrying failed deliveries.
    #[serde(default)]
    pub retry_started_at: Option<DateTime<Utc>>,
    /// Active or disabled.
    pub state: SubscriptionState,
    /// Subscribed events.
    #[serde(default)]
    pub events: Vec<WebhookEvent>,
    /// Scope.
    pub scope: WebhookScope,
    /// Organization.
    pub organization: OrganizationUri,
    /// User (user scope).
    #[serde(default)]
    pub user: Option<UserUri>,
    /// Group (group scope).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<GroupUri>,
    /// Who created it (`created_by` of deliveries).
    #[serde(default)]
    pub creator: Option<UserUri>,
    /// Other fields, kept.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// `POST /webhook_subscriptions`.
#[derive(Debug, Clone)]
#[must_use]
pub struct CreateWebhookSubscription {
    /// Callback URL (HTTPS in production).
    pub url: String,
    /// Events (unique).
    pub events: Vec<WebhookEvent>,
    /// Organization.
    pub organization: OrganizationUri,
    /// Scope.
    pub scope: WebhookScope,
    /// User (required for user scope).
    pub user: Option<UserUri>,
    /// Group (required for group scope).
    pub group: Option<GroupUri>,
    /// Signing key shared with Calendly; store it, Calendly will not tell it again. `Debug` shows `[redacted]`.
    /// Not sent for [`KeyOwner::OAuthApp`].
    pub signing_key: Option<Token>,
    /// Who sets the subscription's signing key.
    pub key_owner: KeyOwner,
}

/// Who sets a subscription's signing key.
///
/// Calendly: "When you create an OAuth 2.0 app, a webhook signing key will automatically be generated for all
/// webhooks related to your application" and "if you create the subscription from an OAuth app, Calendly generates
/// the signing key instead" (api-notes/calendly.md, Webhooks). So with an OAuth token the key sent on create is not
/// the one deliveries are signed with: verify with the app's key from the developer portal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum KeyOwner {
    /// Personal access token: we generate the key, send it as `signing_key` and store it (the default).
    #[default]
    Us,
    /// OAuth app: Calendly signs with the app's key; none is sent, none is returned.
    OAuthApp,
}

impl CreateWebhookSubscription {
    /// A subscription of `url` to `events` at `scope` in `organization`.
    pub fn new(
        url: impl Into<String>,
        events: impl IntoIterator<Item = WebhookEvent>,
        organization: OrganizationUri,
        scope: WebhookScope,
    ) -> Self {
        let mut evs: Vec<WebhookEvent> = Vec::new();
        for e in events {
            if !evs.contains(&e) {
                evs.push(e);
            }
        }
        Self {
            url: url.into(),
            events: evs,
            organization,
            scope,
            user: None,
            group: None,
            signing_key: None,
            key_owner: KeyOwner::Us,
        }
    }

    /// For a client authenticated as an OAuth app: no `signing_key` is sent (Calendly signs with the app's key).
    pub fn oauth_app(mut self) -> Self {
        self.key_owner = KeyOwner::OAuthApp;
        self.signing_key = None;
        self
    }

    /// The user (user scope).
    pub fn user(mut self, user: UserUri) -> Self {
        self.user = Some(user);
        self
    }

    /// The group (group scope).
    pub fn group(mut self, group: GroupUri) -> Self {
        self.group = Some(group);
        self
    }

    /// The signing key (see [`generate_signing_key`]).
    pub fn signing_key(mut self, key: Token) -> Self {
        self.signing_key = Some(key);
        self
    }

    /// The JSON body.
    #[must_use]
    pub fn to_body(&self) -> serde_json::Value {
        let mut b = serde_json::json!({
            "url": self.url,
            "events": self.events,
            "organization": self.organization,
            "scope": self.scope,
        });
        if let Some(u) = &self.user {
            b["user"] = serde_json::json!(u);
        }
        if let Some(g) = &self.group {
            b["group"] = serde_json::json!(g);
        }
        if let Some(k) = self.signing_key.as_ref().filter(|_| self.key_owner == KeyOwner::Us) {
            b["signing_key"] = serde_json::json!(k.expose());
        }
        b
    }
}

/// A random signing key: 32 random bytes as 64 lowercase hex characters (what n8n generates).
#[must_use]
pub fn generate_signing_key() -> Token {
    Token::new(hex::encode(rand::random::<[u8; 32]>()))
}

/// The result of a create: created, or a 409 because the URL is already subscribed.
#[derive(Debug, Clone)]
#[must_use]
pub enum CreateOutcome {
    /// Created.
    Created(WebhookSubscription),
    /// 409 `Already Exists` ("Hook with this url already exists"): find it with
    /// [`Client::find_webhook_subscription`] and adopt it (its signing key is whatever was sent when it was created).
    AlreadyExists(ApiErrorBody),
}

/// `GET /webhook_subscriptions` filters: `organization` and `scope` are required.
#[derive(Debug, Clone, PartialEq)]
#[must_use]
pub struct ListWebhookSubscriptions {
    /// Organization.
    pub organization: OrganizationUri,
    /// Scope.
    pub scope: WebhookScope,
    /// User (user scope).
    pub user: Option<UserUri>,
    /// Group (group scope).
    pub group: Option<GroupUri>,
    /// Page size (1..=100; default 100).
    pub count: Option<u32>,
}

impl ListWebhookSubscriptions {
    /// Subscriptions of `organization` at `scope`.
    pub fn new(organization: OrganizationUri, scope: WebhookScope) -> Self {
        Self { organization, scope, user: None, group: None, count: None }
    }

    /// Filter by user.
    pub fn user(mut self, user: UserUri) -> Self {
        self.user = Some(user);
        self
    }

    /// Filter by group.
    pub fn group(mut self, group: GroupUri) -> Self {
        self.group = Some(group);
        self
    }

    /// The query parameters.
    #[must_use]
    pub fn to_query(&self) -> Vec<(String, String)> {
        let mut q = vec![
            ("organization".to_owned(), self.organization.to_string()),
            ("scope".to_owned(), self.scope.to_string()),
        ];
        if let Some(u) = &self.user {
            q.push(("user".to_owned(), u.to_string()));
        }
        if let Some(g) = &self.group {
            q.push(("group".to_owned(), g.to_string()));
        }
        q.push(("count".to_owned(), clamp_count(self.count).to_string()));
        q
    }
}

/// What [`Client::ensure_webhook_subscription`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum EnsureAction {
    /// An active subscription with the same URL and events existed: kept (use the key you stored).
    Kept,
    /// None existed: created with a new key.
    Created,
    /// One existed but was disabled or had other events: a new one was created (at the other of the two callback
    /// URLs, see [`alternate_callback_url`]) and then the old one deleted.
    Recreated,
    /// Our create was answered 409 (someone else created a subscription for the URL meanwhile): that one is in
    /// place, and its signing key is unknown to this call (whoever created it holds it).
    Adopted,
}

/// The result of [`Client::ensure_webhook_subscription`].
#[derive(Debug, Clone)]
pub struct EnsuredSubscription {
    /// The subscription now in place.
    pub subscription: WebhookSubscription,
    /// The new signing key to store, when this call created the subscription with its own key; `None` when kept
    /// (use the key you stored), adopted (the key is unknown) or for [`KeyOwner::OAuthApp`] (use the app's key).
    pub signing_key: Option<Token>,
    /// What happened.
    pub action: EnsureAction,
}

impl Client {
    /// Creates a subscription. A 409 (URL already subscribed) is [`CreateOutcome::AlreadyExists`], not an error.
    ///
    /// # Errors
    /// [`Error`] for any other failure (403 plan gate or missing admin rights, 400 invalid).
    pub async fn create_webhook_subscription(&self, req: &CreateWebhookSubscription) -> Result<CreateOutcome, Error> {
        let request = Request::post("/webhook_subscriptions")
            .json(&req.to_body())
            .map_err(|e| Error::InvalidRequest(e.to_string()))?;
        match self.resource(request).await {
            Ok(sub) => Ok(CreateOutcome::Created(sub)),
            Err(e) if e.is_already_exists() => Ok(CreateOutcome::AlreadyExists(e.body().cloned().unwrap_or_default())),
            Err(e) => Err(e),
        }
    }

    /// One page of webhook subscriptions (`page_token`: `None` for the first page, then
    /// `pagination.next_page_token`).
    ///
    /// # Errors
    /// [`Error`].
    pub async fn list_webhook_subscriptions(
        &self,
        query: &ListWebhookSubscriptions,
        page_token: Option<&str>,
    ) -> Result<Collection<WebhookSubscription>, Error> {
        self.page("/webhook_subscriptions", &query.to_query(), page_token).await
    }

    /// Every webhook subscription matching `query`, as a lazy stream over all pages.
    pub fn stream_webhook_subscriptions(
        &self,
        query: &ListWebhookSubscriptions,
    ) -> impl Stream<Item = Result<WebhookSubscription, Error>> + Send + 'static {
        self.stream("/webhook_subscriptions", query.to_query())
    }

    /// The subscription whose `callback_url` is `url`, if any.
    ///
    /// # Errors
    /// [`Error`].
    pub async fn find_webhook_subscription(
        &self,
        query: &ListWebhookSubscriptions,
        url: &str,
    ) -> Result<Option<WebhookSubscription>, Error> {
        let mut s = std::pin::pin!(self.stream_webhook_subscriptions(query));
        while let Some(sub) = s.next().await {
            let sub = sub?;
            if sub.callback_url == url {
                return Ok(Some(sub));
            }
        }
        Ok(None)
    }

    /// One subscription.
    ///
    /// # Errors
    /// [`Error`].
    pub async fn get_webhook_subscription(&self, uri: &WebhookUri) -> Result<WebhookSubscription, Error> {
        self.resource(Request::get(format!("/webhook_subscriptions/{}", uri.uuid()))).await
    }

    /// Deletes a subscription (204). A 404 (already gone) is `Ok(false)`.
    ///
    /// # Errors
    /// [`Error`].
    pub async fn delete_webhook_subscription(&self, uri: &WebhookUri) -> Result<bool, Error> {
        match self.send(Request::delete(format!("/webhook_subscriptions/{}", uri.uuid()))).await {
            Ok(_) => Ok(true),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// `GET /sample_webhook_data`: an example delivery body for `event` (unwrapped envelope).
    ///
    /// # Errors
    /// [`Error`]; a legacy-format sample decodes as an error.
    pub async fn sample_webhook_data(
        &self,
        event: &WebhookEvent,
        query: &ListWebhookSubscriptions,
    ) -> Result<WebhookDelivery, Error> {
        let mut req = Request::get("/sample_webhook_data").query("event", event);
        for (k, v) in query.to_query() {
            if k != "count" {
                req = req.query(k, v);
            }
        }
        let resp = self.send(req).await?;
        parse(&resp.body).map_err(|e| {
            Error::Decode(api_core::DecodeError {
                path: ".".into(),
                message: e.to_string(),
                excerpt: api_core::error::excerpt(&resp.body),
            })
        })
    }

    /// Makes sure `req.url` is subscribed to exactly `req.events` at `req.scope`:
    /// - an active subscription at that URL (or its [`alternate_callback_url`]) with the same events is kept
    ///   (`signing_key: None`: use your stored key);
    /// - a disabled one, or one with other events, is replaced: the new one is created first, at the other of the
    ///   two URLs (Calendly refuses a second subscription with the same URL), and only then the old one deleted, so
    ///   there is never a moment without a subscription;
    /// - none: created with a fresh key (or `req.signing_key` when given; none for [`KeyOwner::OAuthApp`]).
    ///
    /// A 409 race (someone created it meanwhile) adopts the existing subscription: [`EnsureAction::Adopted`], its
    /// key unknown. Store a returned key before relying on deliveries. Route both URLs to the same receiver (they
    /// differ only by a query parameter, which path routing ignores).
    ///
    /// # Errors
    /// [`Error`].
    pub async fn ensure_webhook_subscription(
        &self,
        req: &CreateWebhookSubscription,
    ) -> Result<EnsuredSubscription, Error> {
        let mut list = ListWebhookSubscriptions::new(req.organization.clone(), req.scope.clone());
        list.user = req.user.clone();
        list.group = req.group.clone();
        let alternate = alternate_callback_url(&req.url);
        let mut existing = None;
        {
            let mut s = std::pin::pin!(self.stream_webhook_subscriptions(&list));
            while let Some(sub) = s.next().await {
                let sub = sub?;
                if sub.callback_url == req.url || sub.callback_url == alternate {
                    existing = Some(sub);
                    break;
                }
            }
        }
        let mut create = req.clone();
        let mut replaces = None;
        if let Some(sub) = existing {
            let same_events = sub.events.len() == req.events.len() && req.events.iter().all(|e| sub.events.contains(e));
            if sub.state == SubscriptionState::Active && same_events {
                return Ok(EnsuredSubscription { subscription: sub, signing_key: None, action: EnsureAction::Kept });
            }
            tracing::info!(uri = %sub.uri, state = %sub.state, "replacing the Calendly webhook subscription");
            create.url = if sub.callback_url == req.url { alternate } else { req.url.clone() };
            replaces = Some(sub);
        }
        let key = match create.key_owner {
            KeyOwner::Us => Some(req.signing_key.clone().unwrap_or_else(generate_signing_key)),
            KeyOwner::OAuthApp => None,
        };
        create.signing_key = key.clone();
        match self.create_webhook_subscription(&create).await? {
            CreateOutcome::Created(subscription) => {
                let action = match replaces {
                    Some(old) => {
                        self.delete_webhook_subscription(&old.uri).await?;
                        EnsureAction::Recreated
                    }
                    None => EnsureAction::Created,
                };
                Ok(EnsuredSubscription { subscription, signing_key: key, action })
            }
            CreateOutcome::AlreadyExists(body) => match self.find_webhook_subscription(&list, &create.url).await? {
                Some(subscription) => {
                    tracing::warn!(uri = %subscription.uri, "Calendly answered 409: adopting a subscription whose signing key this call does not know");
                    Ok(EnsuredSubscription { subscription, signing_key: None, action: EnsureAction::Adopted })
                }
                None => Err(Error::InvalidRequest(format!(
                    "Calendly says the URL is already subscribed ({}) but it is not listed at scope {}",
                    body.message, req.scope
                ))),
            },
        }
    }
}

/// The other callback URL a subscription moves to when [`Client::ensure_webhook_subscription`] replaces it: `url`
/// with the query parameter `subscription_rev=1` added (and `url` itself for that one). Calendly allows one
/// subscription per URL, so a replacement is created at the other URL before the old one is deleted.
#[must_use]
pub fn alternate_callback_url(url: &str) -> String {
    const REV: &str = "subscription_rev=1";
    for sep in ['?', '&'] {
        if let Some(base) = url.strip_suffix(&format!("{sep}{REV}")) {
            return base.to_owned();
        }
    }
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{REV}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_alternate_callback_url_toggles() {
        let a = "https://x.example/hooks/calendly";
        assert_eq!(alternate_callback_url(a), "https://x.example/hooks/calendly?subscription_rev=1");
        assert_eq!(alternate_callback_url(&alternate_callback_url(a)), a);
        let q = "https://x.example/hooks/calendly?t=1";
        assert_eq!(alternate_callback_url(q), "https://x.example/hooks/calendly?t=1&subscription_rev=1");
        assert_eq!(alternate_callback_url(&alternate_callback_url(q)), q);
    }

    #[test]
    fn body_and_redaction() {
        let c = CreateWebhookSubscription::new(
            "https://example.com/hook",
            [WebhookEvent::InviteeCreated, WebhookEvent::InviteeCanceled, WebhookEvent::InviteeCreated],
            "https://api.calendly.com/organizations/O".into(),
            WebhookScope::User,
        )
        .user("https://api.calendly.com/users/U".into())
        .signing_key(Token::new("sekrit-key"));
        let b = c.to_body();
        assert_eq!(b["events"], serde_json::json!(["invitee.created", "invitee.canceled"]));
        assert_eq!(b["scope"], "user");
        assert_eq!(b["user"], "https://api.calendly.com/users/U");
        assert_eq!(b["signing_key"], "sekrit-key");
        assert!(!format!("{c:?}").contains("sekrit-key"));
        let k = generate_signing_key();
        assert_eq!(k.expose().len(), 64);
        assert_ne!(k.expose(), generate_signing_key().expose());
    }
}
