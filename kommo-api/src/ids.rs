//! Typed ids. Every id deserializes from a JSON number or a numeric string (webhooks send strings).

api_core::int_id!(
    /// A lead (deal) id.
    LeadId
);
api_core::int_id!(
    /// A contact id.
    ContactId
);
api_core::int_id!(
    /// A company id.
    CompanyId
);
api_core::int_id!(
    /// A note id.
    NoteId
);
api_core::int_id!(
    /// A task id.
    TaskId
);
api_core::int_id!(
    /// A user id.
    UserId
);
api_core::int_id!(
    /// A pipeline id.
    PipelineId
);
api_core::int_id!(
    /// A pipeline status (stage) id. See [`StatusId::WON`] and [`StatusId::LOST`].
    StatusId
);
api_core::int_id!(
    /// A custom field id.
    CustomFieldId
);
api_core::int_id!(
    /// A custom field enum (option) id.
    EnumId
);
api_core::int_id!(
    /// An account id.
    AccountId
);
api_core::int_id!(
    /// A tag id.
    TagId
);
api_core::int_id!(
    /// A users group id.
    GroupId
);
api_core::int_id!(
    /// A loss reason id.
    LossReasonId
);
api_core::int_id!(
    /// A webhook subscription id.
    WebhookId
);

api_core::int_id!(
    /// A task type id (see [`TaskTypeId::FOLLOW_UP`], [`TaskTypeId::MEETING`]; custom types from `GET /api/v4/account?with=task_types`).
    TaskTypeId
);
api_core::int_id!(
    /// A catalog (list) id.
    CatalogId
);
api_core::int_id!(
    /// A catalog element id.
    CatalogElementId
);
api_core::int_id!(
    /// A lead source id.
    SourceId
);
api_core::int_id!(
    /// A user role id.
    RoleId
);
api_core::int_id!(
    /// A customer id.
    CustomerId
);
api_core::int_id!(
    /// A customer transaction (purchase) id.
    TransactionId
);
api_core::int_id!(
    /// A customer segment id.
    SegmentId
);
api_core::int_id!(
    /// A customer status id.
    CustomerStatusId
);
api_core::int_id!(
    /// A call id.
    CallId
);
api_core::string_id!(
    /// The uid of an unsorted (incoming) lead, e.g. `"a1fee9a9e3c3cbb10c30c4b6a67a1b2c"`.
    UnsortedUid
);
api_core::string_id!(
    /// A custom field group id, e.g. `"leads_16761579411681"` (a string in Kommo).
    FieldGroupId
);

macro_rules! default_zero {
    ($($t:ident),*) => {$(
        impl From<$t> for u64 {
            fn from(id: $t) -> u64 {
                id.0
            }
        }
        impl Default for $t {
            /// `0` (Kommo uses 0 for "none"/"robot" in a few places); only useful as a builder placeholder.
            fn default() -> Self {
                Self(0)
            }
        }
    )*};
}
default_zero!(
    LeadId,
    ContactId,
    CompanyId,
    NoteId,
    TaskId,
    UserId,
    PipelineId,
    StatusId,
    CustomFieldId,
    EnumId,
    AccountId,
    TagId,
    GroupId,
    LossReasonId,
    WebhookId,
    TaskTypeId,
    CatalogId,
    CatalogElementId,
    SourceId,
    RoleId,
    CustomerId,
    TransactionId,
    SegmentId,
    CustomerStatusId,
    CallId
);

mod sealed {
    pub trait Sealed {}
}

/// The id of an entity that notes, tasks and links attach to: [`LeadId`], [`ContactId`] or [`CompanyId`]. It knows
/// its entity type, so `NewTask::new(..).on(lead)` or `client.entity(..).link(lead, ..)` take the typed id, never a
/// bare number that could belong to any entity.
pub trait EntityKey: Copy + Into<u64> + std::fmt::Display + sealed::Sealed {
    /// The entity type this id belongs to.
    fn entity_type() -> crate::EntityType;
}

macro_rules! entity_key {
    ($($t:ident => $e:ident),*) => {$(
        impl sealed::Sealed for $t {}
        impl EntityKey for $t {
            fn entity_type() -> crate::EntityType {
                crate::EntityType::$e
            }
        }
    )*};
}
entity_key!(LeadId => Leads, ContactId => Contacts, CompanyId => Companies);

/// `is_won()` / `is_lost()` on a type with a `status_id: Option<StatusId>` (a lead as read, a lead in a webhook).
macro_rules! closed_status_helpers {
    () => {
        /// Whether the lead is (now) in the system "Closed - won" status: `status_id` 142, in every pipeline
        /// (kommo.md §4 Leads, "System statuses"; PHP lib `LeadModel::WON_STATUS_ID`).
        #[must_use]
        pub fn is_won(&self) -> bool {
            self.status_id == Some($crate::StatusId::WON)
        }

        /// Whether the lead is (now) in the system "Closed - lost" status: `status_id` 143, in every pipeline.
        #[must_use]
        pub fn is_lost(&self) -> bool {
            self.status_id == Some($crate::StatusId::LOST)
        }
    };
}
pub(crate) use closed_status_helpers;

/// `emails()` / `phones()` on a type with `values_by_code` (a contact as read, a contact in a webhook).
macro_rules! contact_point_helpers {
    () => {
        /// Every email (the values of the `EMAIL` field).
        #[must_use]
        pub fn emails(&self) -> Vec<String> {
            self.values_by_code("EMAIL")
        }

        /// Every phone (the values of the `PHONE` field).
        #[must_use]
        pub fn phones(&self) -> Vec<String> {
            self.values_by_code("PHONE")
        }
    };
}
pub(crate) use contact_point_helpers;

impl TaskTypeId {
    /// Task type 1: "Follow-up" in Kommo (the Russian docs call it "Звонок", a call; kommo.md §4 Tasks).
    pub const FOLLOW_UP: Self = Self(1);
    /// Task type 2: "Meeting".
    pub const MEETING: Self = Self(2);
}

impl StatusId {
    /// The system "Closed - won" status, present in every pipeline (`142`).
    pub const WON: Self = Self(142);
    /// The system "Closed - lost" status, present in every pipeline (`143`).
    pub const LOST: Self = Self(143);

    /// Whether this is the won (142) or lost (143) system status.
    #[must_use]
    pub fn is_closed(self) -> bool {
        self == Self::WON || self == Self::LOST
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_accept_numbers_and_strings() {
        let a: LeadId = serde_json::from_str("10701093").unwrap();
        let b: LeadId = serde_json::from_str("\"10701093\"").unwrap();
        assert_eq!(a, b);
        assert_eq!(serde_json::to_string(&a).unwrap(), "10701093");
        assert!(serde_json::from_str::<LeadId>("\"abc\"").is_err());
    }

    #[test]
    fn won_lost_constants() {
        assert_eq!(StatusId::WON.get(), 142);
        assert_eq!(StatusId::LOST.get(), 143);
        assert!(StatusId(142).is_closed());
        assert!(!StatusId(20_067_736).is_closed());
    }
}
