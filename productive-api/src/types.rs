//! Typed ids, Productive's integer enums and lenient amounts.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use crate::jsonapi::Resource;

api_core::string_id!(
    /// A company id (JSON:API ids are strings: `"804"`).
    CompanyId
);
api_core::string_id!(
    /// A person id.
    PersonId
);
api_core::string_id!(
    /// A project id.
    ProjectId
);
api_core::string_id!(
    /// A deal or budget id (one resource: `deals`).
    DealId
);
api_core::string_id!(
    /// A service id.
    ServiceId
);
api_core::string_id!(
    /// A service type id.
    ServiceTypeId
);
api_core::string_id!(
    /// A project assignment (membership) id.
    ProjectAssignmentId
);
api_core::string_id!(
    /// A service assignment id.
    ServiceAssignmentId
);
api_core::string_id!(
    /// A task id.
    TaskId
);
api_core::string_id!(
    /// A task list id.
    TaskListId
);
api_core::string_id!(
    /// A workflow id.
    WorkflowId
);
api_core::string_id!(
    /// A deal status id.
    DealStatusId
);
api_core::string_id!(
    /// A webhook (subscription) id.
    WebhookId
);
api_core::string_id!(
    /// A comment id.
    CommentId
);
api_core::string_id!(
    /// A time entry id (`time_entries`).
    TimeEntryId
);
api_core::string_id!(
    /// A booking id (`bookings`).
    BookingId
);
api_core::string_id!(
    /// An absence event id (`events`: Productive's time-off / remote-work catalogue, not webhook events).
    AbsenceEventId
);
api_core::string_id!(
    /// An expense id (`expenses`).
    ExpenseId
);
api_core::string_id!(
    /// An invoice id (`invoices`).
    InvoiceId
);
api_core::string_id!(
    /// An invoice line item id (`line_items`).
    LineItemId
);
api_core::string_id!(
    /// A workflow status id (`workflow_statuses`).
    WorkflowStatusId
);
api_core::string_id!(
    /// A custom field id (`custom_fields`).
    CustomFieldId
);
api_core::string_id!(
    /// A custom field option id (`custom_field_options`).
    CustomFieldOptionId
);
api_core::string_id!(
    /// An organization membership id (`organization_memberships`).
    OrganizationMembershipId
);
api_core::string_id!(
    /// A webhook delivery log id (`webhook_logs`).
    WebhookLogId
);

/// Ties an attributes type to its JSON:API `type` and its typed id.
pub trait ResourceType {
    /// The JSON:API type (`companies`).
    const TYPE: &'static str;
    /// The typed id.
    type Id: From<String> + fmt::Display;
}

impl<A: ResourceType> Resource<A> {
    /// The id as its typed id.
    #[must_use]
    pub fn typed_id(&self) -> A::Id {
        A::Id::from(self.id.clone())
    }
}

/// Deserializes `null` as `T::default()` (for attributes declared as a plain `String`, `Vec` or `bool`: the notes
/// promise no attribute is non-null, and one `null` must not fail a whole page). The shared helper from api-core.
pub use api_core::de::null_as_default;

/// The typed id of relationship `name`, when linkage was sent.
pub(crate) fn rel_id<A, I: From<String>>(r: &Resource<A>, name: &str) -> Option<I> {
    r.related_id(name).map(|i| I::from(i.id.clone()))
}

macro_rules! int_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $value:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
            /// A value this crate does not know yet (kept as sent).
            Other(u64),
        }

        impl $name {
            /// The wire value.
            #[must_use]
            pub fn value(self) -> u64 {
                match self {
                    $(Self::$variant => $value,)+
                    Self::Other(v) => v,
                }
            }
        }

        impl From<u64> for $name {
            fn from(v: u64) -> Self {
                match v {
                    $($value => Self::$variant,)+
                    other => Self::Other(other),
                }
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_u64(self.value())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                api_core::ids::deserialize_u64_lenient(d).map(Self::from)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.value())
            }
        }
    };
}

int_enum!(
    /// `project_type_id`.
    ProjectType {
        /// 1: internal.
        Internal = 1,
        /// 2: client.
        Client = 2,
    }
);

int_enum!(
    /// `deal_type_id` ("deals can only be client type, budgets can be both").
    DealType {
        /// 1: internal.
        Internal = 1,
        /// 2: client.
        Client = 2,
    }
);

int_enum!(
    /// A service's `unit_id`.
    ServiceUnit {
        /// 1: hour.
        Hour = 1,
        /// 2: piece (the only unit expenses can be tracked on).
        Piece = 2,
        /// 3: day.
        Day = 3,
    }
);

int_enum!(
    /// A service's `billing_type_id`.
    BillingType {
        /// 1: fixed price.
        Fixed = 1,
        /// 2: time and materials (actuals).
        TimeAndMaterials = 2,
        /// 3: none (not billable).
        NotBillable = 3,
    }
);

int_enum!(
    /// A webhook's `state_id`.
    WebhookState {
        /// 1: working.
        Working = 1,
        /// 2: issues.
        Issues = 2,
        /// 3: waiting.
        Waiting = 3,
    }
);

int_enum!(
    /// A webhook's `type_id`.
    WebhookType {
        /// 1: plain webhook.
        Webhook = 1,
        /// 2: Zapier.
        Zapier = 2,
    }
);

int_enum!(
    /// A webhook's `event_id` (P-old webhooks.html; one webhook per event).
    EventId {
        /// 1: new task.
        TaskCreated = 1,
        /// 24: task updated (also fires when a task is closed).
        TaskUpdated = 24,
        /// 25: task deleted.
        TaskDeleted = 25,
        /// 2: new invoice.
        InvoiceCreated = 2,
        /// 14: invoice updated.
        InvoiceUpdated = 14,
        /// 15: invoice deleted.
        InvoiceDeleted = 15,
        /// 3: new deal.
        DealCreated = 3,
        /// 12: deal updated.
        DealUpdated = 12,
        /// 13: deal deleted.
        DealDeleted = 13,
        /// 4: new budget.
        BudgetCreated = 4,
        /// 16: budget updated.
        BudgetUpdated = 16,
        /// 20: budget deleted.
        BudgetDeleted = 20,
        /// 5: new project.
        ProjectCreated = 5,
        /// 10: project updated.
        ProjectUpdated = 10,
        /// 11: project deleted.
        ProjectDeleted = 11,
        /// 7: new time entry.
        TimeEntryCreated = 7,
        /// 8: time entry updated.
        TimeEntryUpdated = 8,
        /// 9: time entry deleted.
        TimeEntryDeleted = 9,
        /// 17: new booking.
        BookingCreated = 17,
        /// 18: booking updated.
        BookingUpdated = 18,
        /// 19: booking deleted.
        BookingDeleted = 19,
        /// 21: new expense.
        ExpenseCreated = 21,
        /// 22: expense updated.
        ExpenseUpdated = 22,
        /// 23: expense deleted.
        ExpenseDeleted = 23,
        /// 26: new person.
        PersonCreated = 26,
        /// 27: person updated.
        PersonUpdated = 27,
        /// 28: person archived.
        PersonArchived = 28,
        /// 29: new company.
        CompanyCreated = 29,
        /// 30: company updated.
        CompanyUpdated = 30,
        /// 31: company archived.
        CompanyArchived = 31,
        /// 32: new payment.
        PaymentCreated = 32,
        /// 33: payment updated.
        PaymentUpdated = 33,
        /// 34: payment deleted.
        PaymentDeleted = 34,
    }
);

int_enum!(
    /// A booking's `booking_method_id` (developer.productive.io/bookings.html; withone "Create a Booking").
    BookingMethod {
        /// 1: hours per day (needs `time`, minutes per day).
        PerDay = 1,
        /// 2: percentage of the person's working time (needs `percentage`).
        Percentage = 2,
        /// 3: total time over the period (needs `total_time`, minutes).
        TotalTime = 3,
    }
);

int_enum!(
    /// An absence event's `event_type_id` (developer.productive.io/events.html).
    AbsencePayType {
        /// 1: paid.
        Paid = 1,
        /// 2: unpaid (always, for remote work).
        Unpaid = 2,
    }
);

int_enum!(
    /// A time entry's `track_method_id` as sent (1 is the value in the documented sample; the meaning of the
    /// values is **unverified**, so none is named beyond it).
    TrackMethod {
        /// 1: the value of the documented sample (withone "Get a Time Entry", a copy of P-old).
        Manual = 1,
    }
);

int_enum!(
    /// A deal status's `status_id` (the pipeline stage kind; api-notes productive.md §4 Deals: `stage_status_id`
    /// 1 open, 2 won, 3 lost).
    DealStage {
        /// 1: open.
        Open = 1,
        /// 2: won.
        Won = 2,
        /// 3: lost.
        Lost = 3,
    }
);

int_enum!(
    /// A workflow status's `category_id` (`filter[category_id]` "1: not started, 2: started, 3: closed", community
    /// OpenAPI `/workflow_statuses`, scraped from developer.productive.io).
    WorkflowStatusCategory {
        /// 1: not started.
        NotStarted = 1,
        /// 2: started.
        Started = 2,
        /// 3: closed.
        Closed = 3,
    }
);

/// A decimal amount exactly as Productive sent it: a JSON number (`10000`) or a decimal string (`"100000.0"`).
/// Productive most likely stores money in cents (**unverified**); this type does not guess.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Amount(pub String);

impl Amount {
    /// The amount as `f64`, when it parses.
    #[must_use]
    pub fn as_f64(&self) -> Option<f64> {
        self.0.trim().parse().ok()
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for Amount {
    fn from(s: &str) -> Self {
        Self(s.to_owned())
    }
}

impl From<u64> for Amount {
    fn from(v: u64) -> Self {
        Self(v.to_string())
    }
}

impl From<f64> for Amount {
    fn from(v: f64) -> Self {
        Self(format!("{v:?}"))
    }
}

impl Serialize for Amount {
    /// Sent as a decimal string, like the documented service example (`"price": "100000.0"`).
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Amount {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::String(s) => Ok(Self(s)),
            Value::Number(n) => Ok(Self(n.to_string())),
            other => Err(serde::de::Error::custom(format!("expected an amount, got {other}"))),
        }
    }
}

api_core::open_enum!(
    /// A project's `duplication_status`. `"idle"` is documented (P-old sample); the values while a copy runs are
    /// **unverified** — any value other than idle/failed is treated as "still copying".
    DuplicationStatus {
        /// No copy running (the documented resting value).
        Idle = "idle",
        /// A copy is running (the fake uses this value).
        InProgress = "in_progress",
        /// The copy failed.
        Failed = "failed",
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn int_enums_round_trip_unknown_values() {
        let u: ServiceUnit = serde_json::from_str("2").unwrap();
        assert_eq!(u, ServiceUnit::Piece);
        let u: ServiceUnit = serde_json::from_str("\"3\"").unwrap();
        assert_eq!(u, ServiceUnit::Day);
        let x: BillingType = serde_json::from_str("9").unwrap();
        assert_eq!(x, BillingType::Other(9));
        assert_eq!(serde_json::to_string(&x).unwrap(), "9");
        assert_eq!(EventId::from(24), EventId::TaskUpdated);
        assert_eq!(EventId::from(35), EventId::Other(35));
    }

    #[test]
    fn string_enum_round_trips_unknown() {
        let d: DuplicationStatus = serde_json::from_str("\"copying_tasks\"").unwrap();
        assert_eq!(d, DuplicationStatus::Unknown("copying_tasks".into()));
        assert_eq!(serde_json::to_string(&d).unwrap(), "\"copying_tasks\"");
        assert_eq!(serde_json::from_str::<DuplicationStatus>("\"idle\"").unwrap(), DuplicationStatus::Idle);
    }

    #[test]
    fn amounts_from_number_or_string() {
        let a: Amount = serde_json::from_str("10000").unwrap();
        assert_eq!(a.as_f64(), Some(10000.0));
        let a: Amount = serde_json::from_str("\"100000.0\"").unwrap();
        assert_eq!(a.0, "100000.0");
        assert_eq!(serde_json::to_string(&a).unwrap(), "\"100000.0\"");
        assert!(serde_json::from_str::<Amount>("true").is_err());
    }
}
