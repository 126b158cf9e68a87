//! Comments (`/comments`). The notes do not document the comment body; the field names here (`body`,
//! relationship `task`) follow the community OpenAPI paths and the web app and are **unverified**.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{
    Client, Error,
    jsonapi::{Query, Resource, WriteDocument},
    types::{CommentId, ResourceType, TaskId},
};

/// A comment's attributes.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct CommentAttributes {
    /// Body (HTML).
    #[serde(deserialize_with = "crate::types::null_as_default")]
    pub body: String,
    /// Creation time.
    pub created_at: Option<String>,
    /// Unknown attributes.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ResourceType for CommentAttributes {
    const TYPE: &'static str = "comments";
    type Id = CommentId;
}

/// A comment resource.
pub type Comment = Resource<CommentAttributes>;

super::collection!(
    list_comments,
    stream_comments,
    "/comments",
    CommentAttributes,
    "comments",
    "Filters: `task_id`, … (community OpenAPI `/comments`)."
);

impl Client {
    /// `POST /comments` on a task (**unverified** body shape: `body` + relationship `task`).
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn comment_on_task(&self, task: &TaskId, body: &str) -> Result<Comment, Error> {
        let doc = WriteDocument::create(CommentAttributes::TYPE).attribute("body", body).relate("task", "tasks", task);
        Ok(self.post_document("/comments", &doc).await?.data)
    }

    /// Comments of a task (`filter[task_id]`), all pages.
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn comments_of_task(&self, task: &TaskId) -> Result<Vec<Comment>, Error> {
        self.all("/comments", Query::new().filter("task_id", task)).await
    }
}
