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
    WebhookId
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
