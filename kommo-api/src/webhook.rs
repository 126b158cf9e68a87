//! Kommo webhooks as a receiver gets them: `application/x-www-form-urlencoded` bodies with PHP-style nested keys
//! (`leads[status][0][id]=…&account[subdomain]=…`), every value a string.
//!
//! [`parse`] turns a body into a [`WebhookPayload`]: the account and a list of typed [`WebhookEvent`]s (leads,
//! contacts, companies — which may arrive under `contacts[...]` with `type=company` —, tasks, notes, and
//! [`WebhookEvent::Unknown`] for anything else), each keeping every raw field. Malformed bodies give a
//! [`WebhookError`], never a panic.
//!
//! # Kommo signs nothing
//!
//! CRM webhooks carry **no signature** (only the Chats API signs, with `X-Signature`). Protect the endpoint with
//! a secret token in the destination URL (`https://me.example/hooks/kommo/<secret>`) checked with
//! [`verify_path_token`] (constant time), check the account with [`WebhookPayload::check_account`], and treat
//! the payload as a hint: re-read the entity through the API before acting on it.
//!
//! # Dedup and ordering
//!
//! Kommo retries a hook that did not get a 2xx and may deliver the same change twice; it may also drop hooks.
//! [`WebhookEvent::dedup_key`] identifies one change, not one second: entity, action, id, and the entity's
//! modification time (`updated_at`, or the older `last_modified`); for lead status changes also the new and the
//! old stage (`status_id@pipeline_id`, `old_status_id@old_pipeline_id`), since several moves can share one
//! second and status 142 exists in every pipeline. An event without any time (the reduced Digital Pipeline
//! payload) uses a hash of its own fields instead, so different changes get different keys and an exact
//! redelivery the same key. Reconcile with a periodic `filter[updated_at][from]` poll for what never arrives.

use std::collections::BTreeMap;
use std::fmt;
use std::fmt::Write as _;

use sha2::{Digest as _, Sha256};

use crate::{
    AccountId, ContactId, CustomFieldId, EntityType, EnumId, LeadId, PipelineId, StatusId, TaskId, UserId,
    ids::{CompanyId, NoteId},
    time::parse_kommo_time,
};

/// Default body size limit for [`parse`] (real bodies are a few KB; 30 linked leads are under 10 KB).
pub const DEFAULT_MAX_BODY: usize = 512 * 1024;
/// Maximum key nesting depth.
pub const MAX_DEPTH: usize = 12;

/// Why a webhook body could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WebhookError {
    /// The body exceeds the limit.
    #[error("webhook body of {len} bytes exceeds the limit of {max}")]
    TooLarge {
        /// Body length.
        len: usize,
        /// Limit.
        max: usize,
    },
    /// A key with unbalanced or misplaced brackets, or nested too deep.
    #[error("malformed webhook key {key:?}")]
    BadKey {
        /// The key.
        key: String,
    },
    /// A key used both as a value and as a container (`a[b]=1&a[b][c]=2`).
    #[error("conflicting webhook keys at {path:?}")]
    Conflict {
        /// The path.
        path: String,
    },
    /// An event without a required field (`id`).
    #[error("webhook event {path} has no {field}")]
    MissingField {
        /// The event path (`leads[status][0]`).
        path: String,
        /// The field.
        field: &'static str,
    },
    /// A field that must be numeric is not.
    #[error("webhook field {path} is not a number: {value:?}")]
    NotANumber {
        /// The field path.
        path: String,
        /// The value.
        value: String,
    },
    /// The body has no event at all.
    #[error("webhook body has no events")]
    NoEvents,
    /// The account in the body is not the expected one.
    #[error("webhook is for account {found:?}, expected {expected:?}")]
    WrongAccount {
        /// What the body says.
        found: String,
        /// What was expected.
        expected: String,
    },
}

/// A parsed form body: nested maps with string leaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FormNode {
    /// A value.
    Leaf(String),
    /// A container (`[key]` children; list indices are numeric keys).
    Map(BTreeMap<String, FormNode>),
}

impl FormNode {
    /// The child at `key`.
    #[must_use]
    pub fn get(&self, key: &str) -> Option<&FormNode> {
        match self {
            Self::Map(m) => m.get(key),
            Self::Leaf(_) => None,
        }
    }

    /// The leaf value at `key`.
    #[must_use]
    pub fn str(&self, key: &str) -> Option<&str> {
        match self.get(key)? {
            Self::Leaf(s) => Some(s),
            Self::Map(_) => None,
        }
    }

    /// A leaf value.
    #[must_use]
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::Leaf(s) => Some(s),
            Self::Map(_) => None,
        }
    }

    /// The children of a list-like map, ordered by numeric index (non-numeric keys after, by name).
    #[must_use]
    pub fn items(&self) -> Vec<(&str, &FormNode)> {
        let Self::Map(m) = self else { return Vec::new() };
        let mut v: Vec<(&str, &FormNode)> = m.iter().map(|(k, n)| (k.as_str(), n)).collect();
        v.sort_by_key(|(k, _)| (k.parse::<u64>().map_or((1, u64::MAX), |n| (0, n)), (*k).to_owned()));
        v
    }

    /// The map, if this is one.
    #[must_use]
    pub fn as_map(&self) -> Option<&BTreeMap<String, FormNode>> {
        match self {
            Self::Map(m) => Some(m),
            Self::Leaf(_) => None,
        }
    }

    /// Flattens back to `(key, value)` pairs in PHP bracket form (`root[a][0]`), in key order.
    #[must_use]
    pub fn to_pairs(&self, prefix: &str) -> Vec<(String, String)> {
        let mut out = Vec::new();
        self.flatten_into(prefix, &mut out);
        out
    }

    fn flatten_into(&self, prefix: &str, out: &mut Vec<(String, String)>) {
        match self {
            Self::Leaf(s) => out.push((prefix.to_owned(), s.clone())),
            Self::Map(_) => {
                for (k, child) in self.items() {
                    let key = if prefix.is_empty() { k.to_owned() } else { format!("{prefix}[{k}]") };
                    child.flatten_into(&key, out);
                }
            }
        }
    }
}

fn split_key(key: &str) -> Option<Vec<String>> {
    let (root, mut rest) = match key.find('[') {
        Some(i) => (&key[..i], &key[i..]),
        None => (key, ""),
    };
    if root.is_empty() || root.contains(']') {
        return None;
    }
    let mut segs = vec![root.to_owned()];
    while !rest.is_empty() {
        let inner = rest.strip_prefix('[')?;
        let close = inner.find(']')?;
        let seg = &inner[..close];
        if seg.contains('[') {
            return None;
        }
        segs.push(seg.to_owned());
        rest = &inner[close + 1..];
        if segs.len() > MAX_DEPTH {
            return None;
        }
    }
    Some(segs)
}

fn insert(
    root: &mut BTreeMap<String, FormNode>,
    segs: &[String],
    value: String,
    key: &str,
) -> Result<(), WebhookError> {
    let conflict = || WebhookError::Conflict { path: key.to_owned() };
    let mut map = root;
    for (i, seg) in segs.iter().enumerate() {
        let last = i + 1 == segs.len();
        // `[]` appends
        let seg = if seg.is_empty() { map.len().to_string() } else { seg.clone() };
        if last {
            match map.get(&seg) {
                Some(FormNode::Map(_)) => return Err(conflict()),
                _ => {
                    map.insert(seg, FormNode::Leaf(value));
                    return Ok(());
                }
            }
        }
        let entry = map.entry(seg).or_insert_with(|| FormNode::Map(BTreeMap::new()));
        match entry {
            FormNode::Map(m) => map = m,
            FormNode::Leaf(_) => return Err(conflict()),
        }
    }
    Ok(())
}

/// Parses a form body into a [`FormNode`] tree (no size limit; see [`parse`]).
///
/// # Errors
/// [`WebhookError::BadKey`], [`WebhookError::Conflict`].
pub fn parse_form(body: &[u8]) -> Result<FormNode, WebhookError> {
    let mut root = BTreeMap::new();
    for (k, v) in url::form_urlencoded::parse(body) {
        if k.is_empty() {
            continue;
        }
        let segs = split_key(&k).ok_or_else(|| WebhookError::BadKey { key: k.chars().take(200).collect() })?;
        insert(&mut root, &segs, v.into_owned(), &k)?;
    }
    Ok(FormNode::Map(root))
}

/// Serializes `(key, value)` pairs as a form body, the way Kommo sends it (brackets percent-encoded).
#[must_use]
pub fn encode_form<K: AsRef<str>, V: AsRef<str>>(pairs: &[(K, V)]) -> String {
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k.as_ref(), v.as_ref());
    }
    s.finish()
}

/// `account[...]` of a webhook.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WebhookAccount {
    /// `account[id]` (absent in pre-2020 hooks).
    pub id: Option<AccountId>,
    /// `account[subdomain]`.
    pub subdomain: Option<String>,
    /// `account[_links][self]` (Kommo accounts may still say `https://<sub>.amocrm.com`).
    pub self_link: Option<String>,
}

/// Where an event stood in the body as Kommo sent it: `root[action][index]`, e.g. `leads[status][0]` or
/// `contacts[add][1]` (kommo.md §5 "Key grammar"), so a receiver can log exactly what it was given. A note's place
/// is the outer one (`leads[note][0]`, its fields under `[note]`). Its `Display` is the wire form.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WirePath {
    /// The root key: `leads`, `contacts`, `companies`, `task`, `message`...
    pub root: String,
    /// The action key: `add`, `update`, `status`, `note`...
    pub action: String,
    /// The index key as sent (`0`, `1`, ...).
    pub index: String,
}

impl fmt::Display for WirePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}[{}][{}]", self.root, self.action, self.index)
    }
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum WebhookAction {
    /// `add`.
    Add,
    /// `update`.
    Update,
    /// `delete`.
    Delete,
    /// `restore`.
    Restore,
    /// `status` (leads: stage change).
    Status,
    /// `responsible` (responsible user changed).
    Responsible,
    /// `note` (a note was added).
    Note,
    /// Anything else, as sent.
    Other(String),
}

impl WebhookAction {
    /// Parses the action key.
    #[must_use]
    pub fn parse(s: &str) -> Self {
        match s {
            "add" => Self::Add,
            "update" => Self::Update,
            "delete" => Self::Delete,
            "restore" => Self::Restore,
            "status" => Self::Status,
            "responsible" => Self::Responsible,
            "note" => Self::Note,
            other => Self::Other(other.to_owned()),
        }
    }

    /// The action key.
    #[must_use]
    pub fn as_str(&self) -> &str {
        match self {
            Self::Add => "add",
            Self::Update => "update",
            Self::Delete => "delete",
            Self::Restore => "restore",
            Self::Status => "status",
            Self::Responsible => "responsible",
            Self::Note => "note",
            Self::Other(s) => s,
        }
    }
}

/// A tag in a webhook: `tags[n][id|name]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookTag {
    /// Id.
    pub id: Option<u64>,
    /// Name.
    pub name: String,
}

/// One value of a webhook custom field: `[values][j][value]` + `[enum]`, or a bare `[values][j]` (dates).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookFieldValue {
    /// The value as sent.
    pub value: String,
    /// `enum`: the option id (select-like and multitext fields).
    pub enum_id: Option<EnumId>,
}

/// A custom field in the old v2 shape: `custom_fields[i][id|name|code|values]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookCustomField {
    /// Field id.
    pub id: Option<CustomFieldId>,
    /// Name.
    pub name: Option<String>,
    /// Code (`PHONE`, `EMAIL`...).
    pub code: Option<String>,
    /// Values.
    pub values: Vec<WebhookFieldValue>,
}

impl WebhookCustomField {
    /// The first value.
    #[must_use]
    pub fn first(&self) -> Option<&str> {
        self.values.first().map(|v| v.value.as_str())
    }

    /// The first value as Unix seconds (date fields send a bare Unix string).
    #[must_use]
    pub fn as_unix(&self) -> Option<i64> {
        self.first().and_then(parse_kommo_time)
    }
}

fn parse_custom_fields(node: Option<&FormNode>) -> Vec<WebhookCustomField> {
    let Some(node) = node else { return Vec::new() };
    node.items()
        .into_iter()
        .map(|(_, f)| {
            let values = f
                .get("values")
                .map(|vals| {
                    vals.items()
                        .into_iter()
                        .map(|(_, v)| match v {
                            FormNode::Leaf(s) => WebhookFieldValue { value: s.clone(), enum_id: None },
                            FormNode::Map(_) => WebhookFieldValue {
                                value: v.str("value").unwrap_or_default().to_owned(),
                                enum_id: v.str("enum").and_then(|e| e.trim().parse().ok()).map(EnumId),
                            },
                        })
                        .collect()
                })
                .unwrap_or_default();
            WebhookCustomField {
                id: f.str("id").and_then(|s| s.trim().parse().ok()).map(CustomFieldId),
                name: f.str("name").map(str::to_owned),
                code: f.str("code").map(str::to_owned),
                values,
            }
        })
        .collect()
}

fn parse_tags(node: Option<&FormNode>) -> Vec<WebhookTag> {
    let Some(node) = node else { return Vec::new() };
    node.items()
        .into_iter()
        .map(|(_, t)| WebhookTag {
            id: t.str("id").and_then(|s| s.trim().parse().ok()),
            name: t.str("name").unwrap_or_default().to_owned(),
        })
        .collect()
}

#[allow(clippy::cast_possible_truncation)]
fn parse_price(s: &str) -> Option<i64> {
    s.trim().parse::<f64>().ok().filter(|f| f.is_finite() && f.abs() < 9.0e15).map(|f| f.round() as i64)
}

/// Field access on one event's map with the event path for errors.
struct Fields<'a> {
    node: &'a FormNode,
    path: String,
    wire: &'a WirePath,
}

impl Fields<'_> {
    fn required_id(&self) -> Result<u64, WebhookError> {
        let raw = self.node.str("id").ok_or(WebhookError::MissingField { path: self.path.clone(), field: "id" })?;
        raw.trim()
            .parse()
            .map_err(|_| WebhookError::NotANumber { path: format!("{}[id]", self.path), value: raw.to_owned() })
    }
    fn u64(&self, k: &str) -> Option<u64> {
        self.node.str(k).and_then(|s| s.trim().parse().ok())
    }
    fn i64(&self, k: &str) -> Option<i64> {
        self.node.str(k).and_then(|s| s.trim().parse().ok())
    }
    fn time(&self, k: &str) -> Option<i64> {
        self.node.str(k).and_then(parse_kommo_time)
    }
    fn string(&self, k: &str) -> Option<String> {
        self.node.str(k).map(str::to_owned)
    }
    fn raw(&self) -> BTreeMap<String, FormNode> {
        self.node.as_map().cloned().unwrap_or_default()
    }
}

/// A lead in a webhook (`leads[add|update|status|responsible|delete|restore][n]`). Fields use the v2 names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookLead {
    /// Id.
    pub id: LeadId,
    /// Name.
    pub name: Option<String>,
    /// Status now.
    pub status_id: Option<StatusId>,
    /// Status before (status and update hooks).
    pub old_status_id: Option<StatusId>,
    /// Pipeline now.
    pub pipeline_id: Option<PipelineId>,
    /// Pipeline before (newer status hooks).
    pub old_pipeline_id: Option<PipelineId>,
    /// Price.
    pub price: Option<i64>,
    /// Responsible user.
    pub responsible_user_id: Option<UserId>,
    /// Responsible user before (responsible hooks).
    pub old_responsible_user_id: Option<UserId>,
    /// `created_user_id`.
    pub created_user_id: Option<UserId>,
    /// `modified_user_id`.
    pub modified_user_id: Option<UserId>,
    /// `date_create` (Unix).
    pub date_create: Option<i64>,
    /// `last_modified` (Unix).
    pub last_modified: Option<i64>,
    /// `created_at` (newer hooks).
    pub created_at: Option<i64>,
    /// `updated_at` (newer hooks).
    pub updated_at: Option<i64>,
    /// `account_id`.
    pub account_id: Option<AccountId>,
    /// Tags.
    pub tags: Vec<WebhookTag>,
    /// Custom fields (v2 shape).
    pub custom_fields: Vec<WebhookCustomField>,
    /// Every field as sent, including the ones above.
    pub raw: BTreeMap<String, FormNode>,
    /// Where the event stood in the body (`leads[status][0]`).
    pub wire: WirePath,
}

impl WebhookLead {
    fn parse(f: &Fields<'_>) -> Result<Self, WebhookError> {
        Ok(Self {
            id: LeadId(f.required_id()?),
            name: f.string("name"),
            status_id: f.u64("status_id").map(StatusId),
            old_status_id: f.u64("old_status_id").map(StatusId),
            pipeline_id: f.u64("pipeline_id").map(PipelineId),
            old_pipeline_id: f.u64("old_pipeline_id").map(PipelineId),
            price: f.i64("price").or_else(|| f.node.str("price").and_then(parse_price)),
            responsible_user_id: f.u64("responsible_user_id").map(UserId),
            old_responsible_user_id: f.u64("old_responsible_user_id").map(UserId),
            created_user_id: f.u64("created_user_id").map(UserId),
            modified_user_id: f.u64("modified_user_id").map(UserId),
            date_create: f.time("date_create"),
            last_modified: f.time("last_modified"),
            created_at: f.time("created_at"),
            updated_at: f.time("updated_at"),
            account_id: f.u64("account_id").map(AccountId),
            tags: parse_tags(f.node.get("tags")),
            custom_fields: parse_custom_fields(f.node.get("custom_fields")),
            raw: f.raw(),
            wire: f.wire.clone(),
        })
    }

    /// The modification time: `updated_at`, else `last_modified`.
    #[must_use]
    pub fn modified_at(&self) -> Option<i64> {
        self.updated_at.or(self.last_modified)
    }

    crate::ids::closed_status_helpers!();

    /// The custom field with this id.
    #[must_use]
    pub fn custom_field(&self, id: CustomFieldId) -> Option<&WebhookCustomField> {
        self.custom_fields.iter().find(|f| f.id == Some(id))
    }
}

/// A contact or company in a webhook (`contacts[...]`, `companies[...]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookContact {
    /// Id (a contact id, or a company id when [`WebhookContact::is_company`]).
    pub id: u64,
    /// Name.
    pub name: Option<String>,
    /// `type`: `contact` or `company`.
    pub kind: Option<String>,
    /// Responsible user (may be 0).
    pub responsible_user_id: Option<UserId>,
    /// Responsible before.
    pub old_responsible_user_id: Option<UserId>,
    /// Group (may be -1).
    pub group_id: Option<i64>,
    /// `date_create`.
    pub date_create: Option<i64>,
    /// `last_modified`.
    pub last_modified: Option<i64>,
    /// `created_at`.
    pub created_at: Option<i64>,
    /// `updated_at`.
    pub updated_at: Option<i64>,
    /// `created_user_id`.
    pub created_user_id: Option<UserId>,
    /// `modified_user_id`.
    pub modified_user_id: Option<UserId>,
    /// `account_id`.
    pub account_id: Option<AccountId>,
    /// `company_name`.
    pub company_name: Option<String>,
    /// `linked_company_id`.
    pub linked_company_id: Option<CompanyId>,
    /// `linked_leads_id[<id>][ID]`.
    pub linked_leads: Vec<LeadId>,
    /// Tags.
    pub tags: Vec<WebhookTag>,
    /// Custom fields (`PHONE`, `EMAIL` by code).
    pub custom_fields: Vec<WebhookCustomField>,
    /// Every field as sent.
    pub raw: BTreeMap<String, FormNode>,
    /// Where the event stood in the body (`contacts[add][0]`).
    pub wire: WirePath,
}

impl WebhookContact {
    fn parse(f: &Fields<'_>) -> Result<Self, WebhookError> {
        let linked_leads = f
            .node
            .get("linked_leads_id")
            .map(|n| {
                n.items()
                    .into_iter()
                    .filter_map(|(k, v)| v.str("ID").or(v.as_str()).unwrap_or(k).trim().parse().ok().map(LeadId))
                    .collect()
            })
            .unwrap_or_default();
        Ok(Self {
            id: f.required_id()?,
            name: f.string("name"),
            kind: f.string("type"),
            responsible_user_id: f.u64("responsible_user_id").map(UserId),
            old_responsible_user_id: f.u64("old_responsible_user_id").map(UserId),
            group_id: f.i64("group_id"),
            date_create: f.time("date_create"),
            last_modified: f.time("last_modified"),
            created_at: f.time("created_at"),
            updated_at: f.time("updated_at"),
            created_user_id: f.u64("created_user_id").map(UserId),
            modified_user_id: f.u64("modified_user_id").map(UserId),
            account_id: f.u64("account_id").map(AccountId),
            company_name: f.string("company_name"),
            linked_company_id: f.u64("linked_company_id").filter(|&n| n != 0).map(CompanyId),
            linked_leads,
            tags: parse_tags(f.node.get("tags")),
            custom_fields: parse_custom_fields(f.node.get("custom_fields")),
            raw: f.raw(),
            wire: f.wire.clone(),
        })
    }

    /// Whether this is a company (`type=company`).
    #[must_use]
    pub fn is_company(&self) -> bool {
        self.kind.as_deref() == Some("company")
    }

    /// The contact id.
    #[must_use]
    pub fn contact_id(&self) -> ContactId {
        ContactId(self.id)
    }

    /// Values of the field with this code.
    #[must_use]
    pub fn values_by_code(&self, code: &str) -> Vec<String> {
        self.custom_fields
            .iter()
            .filter(|f| f.code.as_deref().is_some_and(|c| c.eq_ignore_ascii_case(code)))
            .flat_map(|f| f.values.iter().map(|v| v.value.clone()))
            .collect()
    }

    crate::ids::contact_point_helpers!();

    /// The modification time.
    #[must_use]
    pub fn modified_at(&self) -> Option<i64> {
        self.updated_at.or(self.last_modified)
    }
}

/// A task in a webhook (`task[add|update|delete|responsible][n]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookTask {
    /// Id.
    pub id: TaskId,
    /// `element_id`: the entity.
    pub element_id: Option<u64>,
    /// `element_type`: 1 contact, 2 lead, 3 company.
    pub element_type: Option<i64>,
    /// `task_type`.
    pub task_type: Option<i64>,
    /// `text`.
    pub text: Option<String>,
    /// `status` (1 = completed).
    pub status: Option<i64>,
    /// `complete_till` (Unix; may arrive formatted).
    pub complete_till: Option<i64>,
    /// `action_close`.
    pub action_close: Option<i64>,
    /// `result[text]`.
    pub result_text: Option<String>,
    /// `responsible_user_id`.
    pub responsible_user_id: Option<UserId>,
    /// `date_create`.
    pub date_create: Option<i64>,
    /// `last_modified`.
    pub last_modified: Option<i64>,
    /// `updated_at` (newer hooks).
    pub updated_at: Option<i64>,
    /// Every field as sent.
    pub raw: BTreeMap<String, FormNode>,
    /// Where the event stood in the body (`contacts[add][0]`).
    pub wire: WirePath,
}

impl WebhookTask {
    fn parse(f: &Fields<'_>) -> Result<Self, WebhookError> {
        Ok(Self {
            id: TaskId(f.required_id()?),
            element_id: f.u64("element_id"),
            element_type: f.i64("element_type"),
            task_type: f.i64("task_type"),
            text: f.string("text"),
            status: f.i64("status"),
            complete_till: f.time("complete_till"),
            action_close: f.i64("action_close"),
            result_text: f.node.get("result").and_then(|r| r.str("text")).map(str::to_owned),
            responsible_user_id: f.u64("responsible_user_id").map(UserId),
            date_create: f.time("date_create"),
            last_modified: f.time("last_modified"),
            updated_at: f.time("updated_at"),
            raw: f.raw(),
            wire: f.wire.clone(),
        })
    }

    /// The entity type from `element_type` (1 contact, 2 lead, 3 company).
    #[must_use]
    pub fn entity_type(&self) -> Option<EntityType> {
        match self.element_type? {
            1 => Some(EntityType::Contacts),
            2 => Some(EntityType::Leads),
            3 => Some(EntityType::Companies),
            12 => Some(EntityType::Customers),
            _ => None,
        }
    }
}

/// A note in a webhook (`leads[note][n][note][...]`, doubly nested).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookNote {
    /// Id.
    pub id: NoteId,
    /// `element_id`: the entity.
    pub element_id: Option<u64>,
    /// `element_type` (2 lead, 1 contact, 3 company).
    pub element_type: Option<i64>,
    /// `note_type`: the **numeric v2 code** (`4` = common).
    pub note_type: Option<String>,
    /// `text`.
    pub text: Option<String>,
    /// `date_create` (often formatted `"2020-09-28 00:26:51"`).
    pub date_create: Option<i64>,
    /// `created_at`.
    pub created_at: Option<i64>,
    /// `updated_at`.
    pub updated_at: Option<i64>,
    /// `created_by`.
    pub created_by: Option<UserId>,
    /// `account_id`.
    pub account_id: Option<AccountId>,
    /// Every field as sent.
    pub raw: BTreeMap<String, FormNode>,
    /// Where the event stood in the body (`contacts[add][0]`).
    pub wire: WirePath,
}

impl WebhookNote {
    fn parse(f: &Fields<'_>) -> Result<Self, WebhookError> {
        Ok(Self {
            id: NoteId(f.required_id()?),
            element_id: f.u64("element_id"),
            element_type: f.i64("element_type"),
            note_type: f.string("note_type"),
            text: f.string("text"),
            date_create: f.time("date_create"),
            created_at: f.time("created_at"),
            updated_at: f.time("updated_at"),
            created_by: f.u64("created_by").map(UserId),
            account_id: f.u64("account_id").map(AccountId),
            raw: f.raw(),
            wire: f.wire.clone(),
        })
    }

    /// Whether this is a common text note (`note_type` 4).
    #[must_use]
    pub fn is_common(&self) -> bool {
        self.note_type.as_deref() == Some("4")
    }
}

/// One event of a webhook body.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum WebhookEvent {
    /// `leads[<action>][n]`.
    Lead {
        /// What happened.
        action: WebhookAction,
        /// The lead.
        lead: WebhookLead,
    },
    /// `contacts[<action>][n]` with `type=contact` (or no type).
    Contact {
        /// What happened.
        action: WebhookAction,
        /// The contact.
        contact: WebhookContact,
    },
    /// `companies[<action>][n]`, or `contacts[<action>][n]` with `type=company`.
    Company {
        /// What happened.
        action: WebhookAction,
        /// The company.
        company: WebhookContact,
    },
    /// `task[<action>][n]` (also `tasks[...]`).
    Task {
        /// What happened.
        action: WebhookAction,
        /// The task.
        task: WebhookTask,
    },
    /// `<entity>[note][n][note][...]`.
    Note {
        /// The entity type the note is on.
        entity: EntityType,
        /// The note.
        note: WebhookNote,
    },
    /// Anything else (`message`, `talk`, `unsorted`, `catalogs`, `customers`...), kept raw.
    Unknown {
        /// Root key (`message`).
        entity: String,
        /// Action key (`add`).
        action: String,
        /// The event's fields.
        fields: FormNode,
        /// Where the event stood in the body (`message[add][0]`).
        wire: WirePath,
    },
}

impl WebhookEvent {
    /// Short entity name: `lead`, `contact`, `company`, `task`, `note`, or the unknown root.
    #[must_use]
    pub fn entity_name(&self) -> &str {
        match self {
            Self::Lead { .. } => "lead",
            Self::Contact { .. } => "contact",
            Self::Company { .. } => "company",
            Self::Task { .. } => "task",
            Self::Note { .. } => "note",
            Self::Unknown { entity, .. } => entity,
        }
    }

    /// The action name.
    #[must_use]
    pub fn action_name(&self) -> &str {
        match self {
            Self::Lead { action, .. }
            | Self::Contact { action, .. }
            | Self::Company { action, .. }
            | Self::Task { action, .. } => action.as_str(),
            Self::Note { .. } => "add",
            Self::Unknown { action, .. } => action,
        }
    }

    /// The entity id (lead, contact, company, task or note id).
    #[must_use]
    pub fn entity_id(&self) -> Option<u64> {
        match self {
            Self::Lead { lead, .. } => Some(lead.id.get()),
            Self::Contact { contact: c, .. } | Self::Company { company: c, .. } => Some(c.id),
            Self::Task { task, .. } => Some(task.id.get()),
            Self::Note { note, .. } => Some(note.id.get()),
            Self::Unknown { fields, .. } => fields.str("id").and_then(|s| s.trim().parse().ok()),
        }
    }

    /// When the change happened: the entity's `updated_at`, else `last_modified`, else its creation time.
    #[must_use]
    pub fn time(&self) -> Option<i64> {
        match self {
            Self::Lead { lead, .. } => lead.modified_at().or(lead.created_at).or(lead.date_create),
            Self::Contact { contact: c, .. } | Self::Company { company: c, .. } => {
                c.modified_at().or(c.created_at).or(c.date_create)
            }
            Self::Task { task, .. } => task.updated_at.or(task.last_modified).or(task.date_create),
            Self::Note { note, .. } => note.updated_at.or(note.created_at).or(note.date_create),
            Self::Unknown { fields, .. } => ["updated_at", "last_modified", "created_at", "date_create"]
                .iter()
                .find_map(|k| fields.str(k).and_then(parse_kommo_time)),
        }
    }

    /// A key identifying this change, for inbox dedup: `<entity>:<action>:<id>:<when>`, where `<when>` is the
    /// event's [`time`](Self::time) or, for an event that carries no time at all (the reduced Digital Pipeline
    /// payload), `h<16 hex>`: the start of a SHA-256 over the event's own fields ([`WebhookEvent::content_hash`]).
    /// Lead status changes add the new and, when sent, the old stage: `:<status>@<pipeline>:from:<old
    /// status>@<old pipeline>` (`?` for a missing id), because several moves can share one second (won,
    /// reopened and won again) and status 142 is "won" in every pipeline.
    ///
    /// The key is deterministic: an exact redelivery gives the same key. Two changes that agree on every part of
    /// the key (the same move of the same lead twice within one second, with nothing else in the payload
    /// differing) cannot be told apart from a redelivery; the periodic reconcile covers them. Prefix the key with
    /// the account id when one endpoint serves several accounts ([`WebhookPayload::dedup_keys`]).
    #[must_use]
    pub fn dedup_key(&self) -> String {
        let id = self.entity_id().map_or_else(|| "?".to_owned(), |i| i.to_string());
        let when = self.time().map_or_else(|| format!("h{}", &self.content_hash()[..16]), |t| t.to_string());
        let mut key = format!("{}:{}:{id}:{when}", self.entity_name(), self.action_name());
        if let Self::Lead { action: WebhookAction::Status, lead } = self {
            let opt = |v: Option<u64>| v.map_or_else(|| "?".to_owned(), |v| v.to_string());
            let _ = write!(
                key,
                ":{}@{}",
                opt(lead.status_id.map(StatusId::get)),
                opt(lead.pipeline_id.map(PipelineId::get))
            );
            if lead.old_status_id.is_some() || lead.old_pipeline_id.is_some() {
                let _ = write!(
                    key,
                    ":from:{}@{}",
                    opt(lead.old_status_id.map(StatusId::get)),
                    opt(lead.old_pipeline_id.map(PipelineId::get))
                );
            }
        }
        key
    }

    /// A SHA-256 (lower-case hex) over the event's entity and action names and every field as sent, in key order
    /// (each key and value length-prefixed, so no two different field sets hash the same input). The same event
    /// content always gives the same hash.
    #[must_use]
    pub fn content_hash(&self) -> String {
        let fields = match self {
            Self::Lead { lead, .. } => FormNode::Map(lead.raw.clone()),
            Self::Contact { contact: c, .. } | Self::Company { company: c, .. } => FormNode::Map(c.raw.clone()),
            Self::Task { task, .. } => FormNode::Map(task.raw.clone()),
            Self::Note { note, .. } => FormNode::Map(note.raw.clone()),
            Self::Unknown { fields, .. } => fields.clone(),
        };
        let mut h = Sha256::new();
        for part in [self.entity_name(), self.action_name()] {
            h.update((part.len() as u64).to_be_bytes());
            h.update(part.as_bytes());
        }
        for (k, v) in fields.to_pairs("") {
            h.update((k.len() as u64).to_be_bytes());
            h.update(k.as_bytes());
            h.update((v.len() as u64).to_be_bytes());
            h.update(v.as_bytes());
        }
        hex::encode(h.finalize())
    }

    /// Where the event stood in the body as Kommo sent it (`leads[status][0]`; for notes the outer
    /// `leads[note][0]`): log it with the event.
    #[must_use]
    pub fn wire(&self) -> &WirePath {
        match self {
            Self::Lead { lead, .. } => &lead.wire,
            Self::Contact { contact: c, .. } | Self::Company { company: c, .. } => &c.wire,
            Self::Task { task, .. } => &task.wire,
            Self::Note { note, .. } => &note.wire,
            Self::Unknown { wire, .. } => wire,
        }
    }

    /// Whether this is a lead event whose lead is now won (status 142): [`WebhookLead::is_won`].
    #[must_use]
    pub fn is_won(&self) -> bool {
        self.as_lead().is_some_and(WebhookLead::is_won)
    }

    /// Whether this is a lead event whose lead is now lost (status 143): [`WebhookLead::is_lost`].
    #[must_use]
    pub fn is_lost(&self) -> bool {
        self.as_lead().is_some_and(WebhookLead::is_lost)
    }

    /// The lead, for lead events.
    #[must_use]
    pub fn as_lead(&self) -> Option<&WebhookLead> {
        match self {
            Self::Lead { lead, .. } => Some(lead),
            _ => None,
        }
    }
}

/// A parsed webhook body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookPayload {
    /// `account[...]`.
    pub account: WebhookAccount,
    /// The events, ordered by root name, action name, then index (`leads[add][0]`, `leads[add][1]`,
    /// `leads[status][0]`...); Kommo gives no ordering between different roots or actions.
    pub events: Vec<WebhookEvent>,
    /// The events that did not parse, by path (`leads[status][1]`), with why. They are left out of [`Self::events`]
    /// and [`Self::split_bodies`] instead of failing the whole delivery: one bad event must not make the receiver
    /// reject the good ones, since Kommo redelivers a rejected delivery and disables a hook that keeps failing
    /// (../shared/api-notes/kommo.md §5, maintainer bessudnov in amocrm-api-php#226). Log them.
    pub rejected: Vec<(String, WebhookError)>,
    /// The whole body as a tree.
    pub raw: FormNode,
}

impl WebhookPayload {
    /// One form-encoded delivery per event, in the order of [`Self::events`]: the `account[...]` fields and that
    /// event alone, at its own place (`{root}[{action}][{index}]`, so its [`WebhookEvent::wire`] is kept), every
    /// field as sent. Parsing body `i`
    /// gives exactly `events[i]`; the [`Self::rejected`] events have no body. A receiver that stores each entity of a batched delivery as its own piece of
    /// work (ordered, retried and dead-lettered on its own) keeps these.
    #[must_use]
    pub fn split_bodies(&self) -> Vec<String> {
        let account = self.raw.get("account").map(|a| a.to_pairs("account")).unwrap_or_default();
        let mut out = Vec::with_capacity(self.events.len());
        // the same walk as `parse`, so the bodies line up with `events`
        for (root, actions) in self.raw.items() {
            if root == "account" {
                continue;
            }
            let FormNode::Map(actions_map) = actions else { continue };
            for (action, list) in actions_map {
                for (idx, item) in list.items() {
                    let path = format!("{root}[{action}][{idx}]");
                    if self.rejected.iter().any(|(p, _)| *p == path) {
                        continue;
                    }
                    let mut pairs = account.clone();
                    pairs.extend(item.to_pairs(&path));
                    out.push(encode_form(&pairs));
                }
            }
        }
        out
    }

    /// Dedup keys for every event, prefixed with the account (`<account id or subdomain>:<event key>`), for an
    /// endpoint that serves several accounts.
    #[must_use]
    pub fn dedup_keys(&self) -> Vec<String> {
        let account = self
            .account
            .id
            .map(|a| a.to_string())
            .or_else(|| self.account.subdomain.clone())
            .unwrap_or_else(|| "?".into());
        self.events.iter().map(|e| format!("{account}:{}", e.dedup_key())).collect()
    }

    /// Checks `account[id]` (when both sides have one) and `account[subdomain]` (when given).
    ///
    /// # Errors
    /// [`WebhookError::WrongAccount`].
    pub fn check_account(&self, id: Option<AccountId>, subdomain: Option<&str>) -> Result<(), WebhookError> {
        if let (Some(want), Some(got)) = (id, self.account.id)
            && want != got
        {
            return Err(WebhookError::WrongAccount { found: got.to_string(), expected: want.to_string() });
        }
        if let Some(want) = subdomain {
            let got = self.account.subdomain.as_deref().unwrap_or_default();
            if !got.eq_ignore_ascii_case(want) {
                return Err(WebhookError::WrongAccount { found: got.to_owned(), expected: want.to_owned() });
            }
        }
        Ok(())
    }
}

/// Parses a webhook body with the default size limit ([`DEFAULT_MAX_BODY`]).
///
/// An event that does not parse (no numeric `id`, ...) is reported in [`WebhookPayload::rejected`] and the others
/// are kept: Kommo batches several events in one delivery, and failing all of them for one would make the receiver
/// answer an error, so Kommo would redeliver the whole batch and eventually disable the hook.
///
/// # Errors
/// [`WebhookError`] for an oversized or malformed body, or when no event parses (the first event's error, or
/// [`WebhookError::NoEvents`] for a body without any).
pub fn parse(body: &[u8]) -> Result<WebhookPayload, WebhookError> {
    parse_with_limit(body, DEFAULT_MAX_BODY)
}

/// Parses a webhook body with a size limit.
///
/// # Errors
/// See [`parse`].
pub fn parse_with_limit(body: &[u8], max: usize) -> Result<WebhookPayload, WebhookError> {
    if body.len() > max {
        return Err(WebhookError::TooLarge { len: body.len(), max });
    }
    let raw = parse_form(body)?;
    let account = raw
        .get("account")
        .map(|a| WebhookAccount {
            id: a.str("id").and_then(|s| s.trim().parse().ok()).map(AccountId),
            subdomain: a.str("subdomain").map(str::to_owned),
            self_link: a.get("_links").and_then(|l| l.str("self")).map(str::to_owned),
        })
        .unwrap_or_default();
    let mut events = Vec::new();
    let mut rejected = Vec::new();
    for (root, actions) in raw.items() {
        if root == "account" {
            continue;
        }
        let FormNode::Map(actions_map) = actions else { continue };
        for (action, list) in actions_map {
            for (idx, item) in list.items() {
                let path = format!("{root}[{action}][{idx}]");
                match event(root, action, idx, item, path.clone()) {
                    Ok(ev) => events.push(ev),
                    Err(e) => rejected.push((path, e)),
                }
            }
        }
    }
    if events.is_empty() {
        return Err(rejected.into_iter().next().map_or(WebhookError::NoEvents, |(_, e)| e));
    }
    Ok(WebhookPayload { account, events, rejected, raw })
}

fn event(root: &str, action: &str, idx: &str, item: &FormNode, path: String) -> Result<WebhookEvent, WebhookError> {
    let wire = WirePath { root: root.to_owned(), action: action.to_owned(), index: idx.to_owned() };
    let wire = &wire;
    let act = WebhookAction::parse(action);
    if act == WebhookAction::Note {
        // `leads[note][0][note][...]`; tolerate a single nesting too
        let (node, path) = match item.get("note") {
            Some(n @ FormNode::Map(_)) => (n, format!("{path}[note]")),
            _ => (item, path),
        };
        let note = WebhookNote::parse(&Fields { node, path, wire })?;
        return Ok(WebhookEvent::Note { entity: EntityType::parse(root), note });
    }
    let f = Fields { node: item, path, wire };
    Ok(match root {
        "leads" => WebhookEvent::Lead { action: act, lead: WebhookLead::parse(&f)? },
        "contacts" => {
            let c = WebhookContact::parse(&f)?;
            if c.is_company() {
                WebhookEvent::Company { action: act, company: c }
            } else {
                WebhookEvent::Contact { action: act, contact: c }
            }
        }
        "companies" => WebhookEvent::Company { action: act, company: WebhookContact::parse(&f)? },
        "task" | "tasks" => WebhookEvent::Task { action: act, task: WebhookTask::parse(&f)? },
        other => WebhookEvent::Unknown {
            entity: other.to_owned(),
            action: action.to_owned(),
            fields: item.clone(),
            wire: wire.clone(),
        },
    })
}

/// Checks the secret token from the webhook URL path in constant time. An empty expected token never matches.
#[must_use]
pub fn verify_path_token(expected: &api_core::Token, presented: &str) -> bool {
    !expected.is_empty() && expected.ct_eq(presented)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_keys() {
        assert_eq!(split_key("leads[status][0][id]").unwrap(), ["leads", "status", "0", "id"]);
        assert_eq!(split_key("account").unwrap(), ["account"]);
        assert!(split_key("leads[status").is_none());
        assert!(split_key("leads]x[").is_none());
        assert!(split_key("[a]").is_none());
        assert!(split_key("a[b]c").is_none());
    }

    #[test]
    fn form_round_trip() {
        let pairs = [("leads[status][0][id]", "1"), ("account[subdomain]", "x y")];
        let body = encode_form(&pairs);
        assert!(body.contains("leads%5Bstatus%5D%5B0%5D%5Bid%5D=1"), "{body}");
        let tree = parse_form(body.as_bytes()).unwrap();
        assert_eq!(tree.get("account").and_then(|a| a.str("subdomain")), Some("x y"));
        let mut back = tree.to_pairs("");
        back.sort();
        assert_eq!(back[1], ("leads[status][0][id]".to_owned(), "1".to_owned()));
    }

    #[test]
    fn numeric_order_of_items() {
        let t = parse_form(b"a[10]=x&a[2]=y&a[1]=z").unwrap();
        let keys: Vec<&str> = t.get("a").unwrap().items().into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["1", "2", "10"]);
    }

    #[test]
    fn a_batched_delivery_splits_into_one_body_per_event() {
        // two leads' status changes, a lead add and a contact update in one delivery (Kommo batches them)
        let body = encode_form(&[
            ("leads[status][0][id]", "11"),
            ("leads[status][0][status_id]", "142"),
            ("leads[status][0][old_status_id]", "7"),
            ("leads[status][0][custom_fields][0][id]", "5"),
            ("leads[status][0][custom_fields][0][values][0][value]", "a"),
            ("leads[status][1][id]", "12"),
            ("leads[status][1][status_id]", "143"),
            ("leads[add][0][id]", "13"),
            ("contacts[update][0][id]", "21"),
            ("contacts[update][0][name]", "Ann"),
            ("account[id]", "99"),
            ("account[subdomain]", "acme"),
        ]);
        let payload = parse(body.as_bytes()).unwrap();
        let bodies = payload.split_bodies();
        assert_eq!(bodies.len(), payload.events.len());
        assert_eq!(bodies.len(), 4);
        for (b, ev) in bodies.iter().zip(&payload.events) {
            let one = parse(b.as_bytes()).unwrap();
            assert_eq!(one.events, vec![ev.clone()]);
            assert_eq!(one.account.id, Some(AccountId(99)));
            assert_eq!(one.account.subdomain.as_deref(), Some("acme"));
            assert_eq!(one.events[0].content_hash(), ev.content_hash());
        }
        let second: Vec<String> =
            parse_form(bodies[2].as_bytes()).unwrap().to_pairs("").into_iter().map(|p| p.0).collect();
        assert!(second.contains(&"leads[status][0][id]".to_owned()), "{second:?}");
    }

    #[test]
    fn path_token() {
        let t = api_core::Token::new("s3cret");
        assert!(verify_path_token(&t, "s3cret"));
        assert!(!verify_path_token(&t, "s3cret2"));
        assert!(!verify_path_token(&api_core::Token::new(""), ""));
    }
}
