//! Typed Airtable ids. Airtable ids are 17 characters: a 3-letter prefix (`app`, `tbl`, `fld`, `rec`, `viw`, `ach`,
//! `usr`) and 14 alphanumerics. The types do not validate the shape (documented examples mix lengths).

api_core::string_id!(
    /// A base id (`app…`).
    BaseId
);
api_core::string_id!(
    /// A table id (`tbl…`).
    TableId
);
api_core::string_id!(
    /// A field id (`fld…`).
    FieldId
);
api_core::string_id!(
    /// A record id (`rec…`).
    RecordId
);
api_core::string_id!(
    /// A view id (`viw…`).
    ViewId
);
api_core::string_id!(
    /// A webhook id (`ach…`).
    WebhookId
);
api_core::string_id!(
    /// A user id (`usr…`).
    UserId
);
api_core::string_id!(
    /// A record comment id (`com…`).
    CommentId
);
api_core::string_id!(
    /// A workspace id (`wsp…`).
    WorkspaceId
);
