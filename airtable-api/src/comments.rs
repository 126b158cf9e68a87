//! Record comments: list (one page, or a stream of every comment), create (optionally a threaded reply), update,
//! delete.
//!
//! Wire facts: Airtable's Web API reference, "Comments" (<https://airtable.com/developers/web/api/list-comments>,
//! `create-comment`, `update-comment`, `delete-comment`): `…/{baseId}/{tableIdOrName}/{recordId}/comments`, paged by
//! `pageSize` (≤ 100) and `offset`; scopes `data.recordComments:read` / `:write`. The comment object (`id`, `author`,
//! `text`, `createdTime`, `lastUpdatedTime: string | null`, `parentCommentId?`, `mentioned?`, `reactions?`) is the
//! create-comment response format; the community OpenAPI copy (`shared/openapi/airtable-community.yaml`,
//! `CommentList`, `deleteComment`) gives the list body `{comments, offset}` and the delete answer `{id, deleted}`.

use std::collections::BTreeMap;

use api_core::{Page, Request, paginate};
use futures::Stream;
use serde::{Deserialize, Serialize};

use crate::{
    Error,
    client::encode_segment,
    error::Operation,
    ids::{CommentId, RecordId, UserId},
    records::Table,
};

/// Maximum `pageSize` of the comments list.
pub const MAX_COMMENTS_PAGE_SIZE: u32 = 100;

api_core::open_enum! {
    /// What a mention in `mentioned` points at (OFFICIAL model "User mentioned").
    MentionType / Unknown {
        /// A user.
        User = "user",
        /// A user group.
        UserGroup = "userGroup",
    }
}

/// The author of a comment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommentAuthor {
    /// The user id.
    pub id: UserId,
    /// Email.
    pub email: String,
    /// Name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// A user or user group mentioned in the text (`@[usr…]` in `text`, detailed in `mentioned`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mention {
    /// `user` or `userGroup`.
    #[serde(rename = "type")]
    pub kind: MentionType,
    /// User or group id.
    pub id: String,
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Email (users).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

/// An emoji reaction on a comment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Reaction {
    /// `{"unicodeCharacter": "…"}`.
    pub emoji: Emoji,
    /// Who reacted.
    pub reacting_user: ReactingUser,
}

/// The emoji of a [`Reaction`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Emoji {
    /// The emoji's unicode code point(s), as Airtable spells them.
    pub unicode_character: String,
}

/// The user behind a [`Reaction`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReactingUser {
    /// The user id.
    pub user_id: UserId,
    /// Email.
    pub email: String,
    /// Name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// A comment on a record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Comment {
    /// Id (`com…`).
    pub id: CommentId,
    /// Who wrote it.
    pub author: CommentAuthor,
    /// The text; mentions appear as `@[usr…]`.
    pub text: String,
    /// When it was created (ISO 8601).
    pub created_time: String,
    /// When it was last edited; `None` when never.
    #[serde(default)]
    pub last_updated_time: Option<String>,
    /// The comment this one replies to (threads).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_comment_id: Option<CommentId>,
    /// The mentioned users and groups, by id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mentioned: Option<BTreeMap<String, Mention>>,
    /// Reactions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reactions: Vec<Reaction>,
}

/// One page of a record's comments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommentsPage {
    /// The comments of this page.
    pub comments: Vec<Comment>,
    /// The offset of the next page (absent or `null` on the last page).
    #[serde(default)]
    pub offset: Option<String>,
}

/// A new comment (`POST …/comments`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewComment {
    /// The text; mention a user with `@[usr…]` or `@[email]`.
    pub text: String,
    /// Reply in this comment's thread.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_comment_id: Option<CommentId>,
}

impl NewComment {
    /// A top-level comment.
    #[must_use]
    pub fn new(text: impl Into<String>) -> Self {
        Self { text: text.into(), parent_comment_id: None }
    }

    /// A reply to `parent`.
    #[must_use]
    pub fn reply_to(mut self, parent: CommentId) -> Self {
        self.parent_comment_id = Some(parent);
        self
    }
}

/// The answer of a delete.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeletedComment {
    /// The comment.
    pub id: CommentId,
    /// `true`.
    pub deleted: bool,
}

#[derive(Serialize)]
struct TextBody<'a> {
    text: &'a str,
}

fn check_text(text: &str) -> Result<(), Error> {
    if text.trim().is_empty() {
        return Err(Error::InvalidRequest("a comment needs a non-empty text".into()));
    }
    Ok(())
}

impl Table {
    fn comments_path(&self, record: &RecordId) -> String {
        format!("{}/{}/comments", self.path(), encode_segment(record.as_str()))
    }

    fn comment_path(&self, record: &RecordId, comment: &CommentId) -> String {
        format!("{}/{}", self.comments_path(record), encode_segment(comment.as_str()))
    }

    /// One page of a record's comments (`GET …/{recordId}/comments`), newest first; `offset` from the previous
    /// page (`None` for the first), `page_size` ≤ 100 (Airtable's default when `None`).
    ///
    /// # Errors
    /// [`Error::InvalidRequest`] for a page size outside 1..=100; [`Error`] otherwise.
    pub async fn list_comments(
        &self,
        record: &RecordId,
        page_size: Option<u32>,
        offset: Option<&str>,
    ) -> Result<CommentsPage, Error> {
        if let Some(n) = page_size
            && !(1..=MAX_COMMENTS_PAGE_SIZE).contains(&n)
        {
            return Err(Error::InvalidRequest(format!("comments pageSize must be 1..=100, got {n}")));
        }
        let r = self
            .req(Request::get(self.comments_path(record)).query_opt("pageSize", page_size).query_opt("offset", offset));
        self.client().send_json(r, Operation::Other).await
    }

    /// Every comment of a record, lazily across pages (a repeated offset is [`Error::RepeatedCursor`]).
    pub fn stream_comments(&self, record: &RecordId) -> impl Stream<Item = Result<Comment, Error>> + Send + 'static {
        let table = self.clone();
        let record = record.clone();
        paginate(None, move |offset: Option<String>| {
            let (table, record) = (table.clone(), record.clone());
            async move {
                let p = table.list_comments(&record, None, offset.as_deref()).await?;
                Ok::<_, Error>(Page { items: p.comments, next: p.offset })
            }
        })
    }

    /// Comments on a record (`POST …/{recordId}/comments` with `{"text", "parentCommentId"?}`). Not retried once it
    /// may have been sent (a second attempt would post the comment twice).
    ///
    /// # Errors
    /// [`Error::InvalidRequest`] for an empty text; [`Error`] otherwise.
    pub async fn create_comment(&self, record: &RecordId, comment: &NewComment) -> Result<Comment, Error> {
        check_text(&comment.text)?;
        let r = self.req(Request::post(self.comments_path(record)).json(comment)?);
        self.client().send_json(r, Operation::Other).await
    }

    /// Replaces a comment's text (`PATCH …/comments/{rowCommentId}` with `{"text"}`; only its author may).
    ///
    /// # Errors
    /// [`Error::InvalidRequest`] for an empty text; [`Error`] otherwise.
    pub async fn update_comment(&self, record: &RecordId, comment: &CommentId, text: &str) -> Result<Comment, Error> {
        check_text(text)?;
        let r = self.req(Request::patch(self.comment_path(record, comment)).json(&TextBody { text })?.idempotent(true));
        self.client().send_json(r, Operation::Other).await
    }

    /// Deletes a comment (`DELETE …/comments/{rowCommentId}`; only its author may).
    ///
    /// # Errors
    /// [`Error`].
    pub async fn delete_comment(&self, record: &RecordId, comment: &CommentId) -> Result<DeletedComment, Error> {
        let r = self.req(Request::delete(self.comment_path(record, comment)));
        self.client().send_json(r, Operation::Other).await
    }
}
