//! Uploading a file into an attachment cell: `POST https://content.airtable.com/v0/{baseId}/{recordId}/
//! {attachmentFieldIdOrName}/uploadAttachment` with `{"contentType", "file" (base64), "filename"}`.
//!
//! Source: OFFICIAL upload-attachment (<https://airtable.com/developers/web/api/upload-attachment>): "Upload an
//! attachment up to 5 MB to an attachment cell via the file bytes directly"; scope `data.records:write`; the answer
//! is the record `{id, createdTime, fields}` with "cell values keyed by field ID"; api-notes airtable.md B.7 and
//! pyairtable `Table.upload_attachment` (same host). Note: the page's Markdown variant shows `api.airtable.com` as
//! the host while its HTML page and pyairtable use `content.airtable.com`; this crate follows the latter
//! ([`crate::client::DEFAULT_CONTENT_URL`], overridable with [`crate::ClientBuilder::content_url`]).

use api_core::Request;
use base64::Engine as _;
use serde::Serialize;

use crate::{
    Client, Error,
    cell::Record,
    client::encode_segment,
    error::Operation,
    ids::{BaseId, RecordId},
    records::Table,
};

/// The largest file the endpoint takes: "up to 5 MB". Whether Airtable means 10^6 or 2^20 bytes is not documented;
/// the client refuses only what is above both readings (5 MiB), and Airtable's answer decides in between.
pub const MAX_UPLOAD_BYTES: usize = 5 * 1024 * 1024;

/// A file to upload.
#[derive(Clone, PartialEq, Eq)]
pub struct Upload {
    /// MIME type, e.g. `image/jpeg`.
    pub content_type: String,
    /// File name, e.g. `foo.jpg`.
    pub filename: String,
    /// The file's bytes (sent base64-encoded).
    pub bytes: Vec<u8>,
}

impl std::fmt::Debug for Upload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upload")
            .field("content_type", &self.content_type)
            .field("filename", &self.filename)
            .field("bytes", &self.bytes.len())
            .finish()
    }
}

impl Upload {
    /// A file.
    #[must_use]
    pub fn new(content_type: impl Into<String>, filename: impl Into<String>, bytes: impl Into<Vec<u8>>) -> Self {
        Self { content_type: content_type.into(), filename: filename.into(), bytes: bytes.into() }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct UploadBody<'a> {
    content_type: &'a str,
    file: String,
    filename: &'a str,
}

impl Client {
    /// Appends a file to a record's attachment cell (`uploadAttachment` on the content host; the field by
    /// [`crate::FieldId`] or name). Answers the record
    /// with its fields keyed by field id. Not retried once it may have been sent (a second attempt would attach the
    /// file twice). Counts against the base's rate limit.
    ///
    /// # Errors
    /// [`Error::InvalidRequest`] for a file above [`MAX_UPLOAD_BYTES`] or without content type or name (nothing is
    /// sent); [`Error`] otherwise.
    pub async fn upload_attachment(
        &self,
        base: &BaseId,
        record: &RecordId,
        attachment_field_id_or_name: impl AsRef<str>,
        upload: &Upload,
    ) -> Result<Record, Error> {
        if upload.bytes.len() > MAX_UPLOAD_BYTES {
            return Err(Error::InvalidRequest(format!(
                "uploadAttachment takes files up to 5 MB; this one has {} bytes (attach larger files by URL)",
                upload.bytes.len()
            )));
        }
        if upload.content_type.trim().is_empty() || upload.filename.trim().is_empty() {
            return Err(Error::InvalidRequest("uploadAttachment needs a content type and a file name".into()));
        }
        let url = self
            .inner
            .content_url
            .join(&format!(
                "{}/{}/{}/uploadAttachment",
                encode_segment(base.as_str()),
                encode_segment(record.as_str()),
                encode_segment(attachment_field_id_or_name.as_ref())
            ))
            .map_err(|e| Error::InvalidRequest(format!("upload URL: {e}")))?;
        let body = UploadBody {
            content_type: &upload.content_type,
            file: base64::engine::general_purpose::STANDARD.encode(&upload.bytes),
            filename: &upload.filename,
        };
        let r = Request::post(url.as_str()).json(&body)?.rate_key(base.as_str());
        self.send_json(r, Operation::Other).await
    }
}

impl Table {
    /// [`Client::upload_attachment`] for a record of this table's base.
    ///
    /// # Errors
    /// As [`Client::upload_attachment`].
    pub async fn upload_attachment(
        &self,
        record: &RecordId,
        attachment_field_id_or_name: impl AsRef<str>,
        upload: &Upload,
    ) -> Result<Record, Error> {
        self.client().upload_attachment(self.base(), record, attachment_field_id_or_name, upload).await
    }
}
