//! Typed resource URIs. Every cross-reference in the Calendly API is a full URI
//! (`https://api.calendly.com/users/AAAA…`); path parameters take the UUID, the last segment ([`UserUri::uuid`]).

resource_uri!(
    /// A user: `https://api.calendly.com/users/{uuid}`.
    UserUri, "users"
);
resource_uri!(
    /// An organization: `https://api.calendly.com/organizations/{uuid}`.
    OrganizationUri, "organizations"
);
resource_uri!(
    /// A scheduled event (a meeting): `https://api.calendly.com/scheduled_events/{uuid}`.
    EventUri, "scheduled_events"
);
resource_uri!(
    /// An event type (a booking page): `https://api.calendly.com/event_types/{uuid}`.
    EventTypeUri, "event_types"
);
resource_uri!(
    /// A webhook subscription: `https://api.calendly.com/webhook_subscriptions/{uuid}`.
    WebhookUri, "webhook_subscriptions"
);
resource_uri!(
    /// A no-show mark: `https://api.calendly.com/invitee_no_shows/{uuid}`.
    NoShowUri, "invitee_no_shows"
);
resource_uri!(
    /// A group: `https://api.calendly.com/groups/{uuid}`.
    GroupUri, "groups"
);
resource_uri!(
    /// An organization membership: `https://api.calendly.com/organization_memberships/{uuid}`.
    MembershipUri, "organization_memberships"
);
resource_uri!(
    /// A routing form: `https://api.calendly.com/routing_forms/{uuid}`.
    RoutingFormUri, "routing_forms"
);
resource_uri!(
    /// A routing form submission: `https://api.calendly.com/routing_form_submissions/{uuid}`.
    RoutingFormSubmissionUri, "routing_form_submissions"
);

resource_uri!(
    /// A group relationship (a membership or an admin role in a group):
    /// `https://api.calendly.com/group_relationships/{uuid}`.
    GroupRelationshipUri, "group_relationships"
);
resource_uri!(
    /// A user availability schedule: `https://api.calendly.com/user_availability_schedules/{uuid}` (the documented
    /// example spells the collection `user_availability_schedule`; only the last segment is used).
    AvailabilityScheduleUri, "user_availability_schedules"
);
resource_uri!(
    /// An activity log entry: `https://api.calendly.com/activity_log_entries/{uuid}`.
    ActivityLogEntryUri, "activity_log_entries"
);

api_core::string_id!(
    /// An organization invitation: `https://api.calendly.com/organizations/{org_uuid}/invitations/{uuid}`.
    InvitationUri
);

impl InvitationUri {
    /// The invitation UUID (last path segment).
    #[must_use]
    pub fn uuid(&self) -> &str {
        last_segment(&self.0)
    }

    /// The UUID of the organization (the segment after `organizations/`), if present.
    #[must_use]
    pub fn organization_uuid(&self) -> Option<&str> {
        let mut it = self.0.split('/');
        it.by_ref().find(|s| *s == "organizations")?;
        it.next().filter(|s| !s.is_empty())
    }

    /// The URI of invitation `uuid` of `organization`.
    #[must_use]
    pub fn of_organization(organization: &OrganizationUri, uuid: &str) -> Self {
        Self(format!("{}/invitations/{uuid}", organization.as_str().trim_end_matches('/')))
    }
}

api_core::string_id!(
    /// An invitee: `https://api.calendly.com/scheduled_events/{event_uuid}/invitees/{uuid}`.
    InviteeUri
);

impl InviteeUri {
    /// The invitee UUID (last path segment).
    #[must_use]
    pub fn uuid(&self) -> &str {
        last_segment(&self.0)
    }

    /// The UUID of the scheduled event the invitee belongs to (the segment after `scheduled_events/`), if present.
    #[must_use]
    pub fn event_uuid(&self) -> Option<&str> {
        let mut it = self.0.split('/');
        it.by_ref().find(|s| *s == "scheduled_events")?;
        it.next().filter(|s| !s.is_empty())
    }

    /// The URI of the scheduled event the invitee belongs to (everything before `/invitees/`).
    #[must_use]
    pub fn event_uri(&self) -> Option<EventUri> {
        self.0.rsplit_once("/invitees/").map(|(ev, _)| EventUri(ev.to_owned()))
    }

    /// The URI of invitee `uuid` of `event`.
    #[must_use]
    pub fn of_event(event: &EventUri, uuid: &str) -> Self {
        Self(format!("{}/invitees/{uuid}", event.as_str().trim_end_matches('/')))
    }
}

/// The last non-empty path segment of a URI (ignoring a query or fragment).
pub(crate) fn last_segment(uri: &str) -> &str {
    let end = uri.find(['?', '#']).unwrap_or(uri.len());
    uri[..end].trim_end_matches('/').rsplit('/').next().unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids() {
        let u = UserUri::from("https://api.calendly.com/users/AAAAAAAAAAAAAAAA");
        assert_eq!(u.uuid(), "AAAAAAAAAAAAAAAA");
        let e = EventUri::from("https://api.calendly.com/scheduled_events/5f443a67-564e-4e90-a900-b0e92c02ec25/");
        assert_eq!(e.uuid(), "5f443a67-564e-4e90-a900-b0e92c02ec25");
        let i = InviteeUri::from("https://api.calendly.com/scheduled_events/EV1/invitees/INV1");
        assert_eq!(i.uuid(), "INV1");
        assert_eq!(i.event_uuid(), Some("EV1"));
        assert_eq!(i.event_uri().unwrap().as_str(), "https://api.calendly.com/scheduled_events/EV1");
        assert_eq!(
            InviteeUri::of_event(&EventUri::from("https://x/scheduled_events/E"), "I").as_str(),
            "https://x/scheduled_events/E/invitees/I"
        );
        let base: url::Url = "https://api.calendly.com/".parse().unwrap();
        assert_eq!(WebhookUri::from_uuid(&base, "W1").as_str(), "https://api.calendly.com/webhook_subscriptions/W1");
        assert_eq!(last_segment("https://a/b/c?x=1"), "c");
        let inv = InvitationUri::from("https://api.calendly.com/organizations/ORG/invitations/INV");
        assert_eq!((inv.organization_uuid(), inv.uuid()), (Some("ORG"), "INV"));
        assert_eq!(
            InvitationUri::of_organization(&"https://x/organizations/O".into(), "I").as_str(),
            "https://x/organizations/O/invitations/I"
        );
    }

    #[test]
    fn serde_transparent() {
        let u: OrganizationUri = serde_json::from_str("\"https://api.calendly.com/organizations/O\"").unwrap();
        assert_eq!(u.uuid(), "O");
        assert_eq!(serde_json::to_string(&u).unwrap(), "\"https://api.calendly.com/organizations/O\"");
    }
}
