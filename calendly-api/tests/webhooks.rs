//! Webhook deliveries: real example payloads (api-notes §3 capture, the 2023 OpenAPI examples), legacy rejection,
//! signature verification with an independently computed vector, dedup keys and reschedule pairing.

use std::sync::Arc;

use api_core::{FixedClock, SignatureError, Token};
use calendly_api::{
    Verifier, WebhookError, WebhookEvent, WebhookPayload,
    invitees::InviteeStatus,
    scheduled_events::{CancelerType, EventStatus, LocationType},
    webhook::{RescheduleSide, parse, sign},
};

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

#[test]
fn invitee_created_capture() {
    let d = parse(&fixture("webhook_invitee_created.json")).unwrap();
    assert_eq!(d.event, WebhookEvent::InviteeCreated);
    assert_eq!(d.created_by.as_ref().unwrap().uuid(), "USER-UUID");
    assert_eq!(d.created_at.unwrap().to_rfc3339(), "2026-06-24T22:30:45.105381+00:00");
    let inv = d.invitee().unwrap();
    assert_eq!(inv.uri.uuid(), "INVITEE-UUID");
    assert_eq!(inv.uri.event_uuid(), Some("EVENT-UUID"));
    assert_eq!(inv.email.as_deref(), Some("invitee@example.com"));
    assert_eq!(inv.name.as_deref(), Some("Jane Invitee"));
    assert_eq!(inv.first_name, None);
    assert_eq!(inv.status, InviteeStatus::Active);
    assert_eq!(inv.timezone.as_deref(), Some("America/Los_Angeles"));
    assert_eq!(inv.scheduling_method.as_deref(), Some("api"));
    assert_eq!(inv.questions_and_answers[0].question, "Company name?");
    assert_eq!(inv.questions_and_answers[0].answer, "Acme");
    assert_eq!(inv.tracking.as_ref().unwrap().utm_source, None);
    assert!(!inv.rescheduled);
    assert!(inv.cancellation.is_none() && inv.no_show.is_none());
    let se = inv.scheduled_event.as_ref().unwrap();
    assert_eq!(se.uri.uuid(), "EVENT-UUID");
    assert_eq!(se.name.as_deref(), Some("Intro call"));
    assert_eq!(se.status, EventStatus::Active);
    assert_eq!(se.start_time.to_rfc3339(), "2026-06-10T06:30:00+00:00");
    assert_eq!(se.event_type.as_ref().unwrap().uuid(), "EVENT-TYPE-UUID");
    let loc = se.location.as_ref().unwrap();
    assert_eq!(loc.kind, LocationType::Zoom);
    assert_eq!(loc.status.as_deref(), Some("pushed"));
    assert_eq!(loc.data.as_ref().unwrap()["id"], 10_000_000_001_u64, "zoom id is a number in deliveries");
    assert_eq!(se.event_memberships[0].user_email.as_deref(), Some("host@example.com"));
    assert_eq!(se.invitees_counter.unwrap().limit, 1);
    assert_eq!(inv.event_uri().unwrap(), se.uri);
    assert_eq!(
        d.dedup_key(),
        "invitee.created|https://api.calendly.com/scheduled_events/EVENT-UUID/invitees/INVITEE-UUID"
    );
    assert!(d.reschedule().is_none());
}

#[test]
fn spec_2023_examples_decode() {
    let d = parse(&fixture("webhook_invitee_created_spec2023.json")).unwrap();
    let inv = d.invitee().unwrap();
    assert!(inv.scheduled_event.is_none(), "the 2023 example has no embedded event");
    assert_eq!(inv.extra["canceled"], false, "unknown fields are kept");
    let c = parse(&fixture("webhook_invitee_canceled_spec2023.json")).unwrap();
    assert!(c.is_plain_cancellation());
    let canc = c.invitee().unwrap().cancellation.as_ref().unwrap();
    assert_eq!(canc.reason.as_deref(), Some("Meeting Conflict"));
    assert_eq!(canc.canceler_type, None, "the spec example omits canceler_type");
    let r = parse(&fixture("webhook_routing_form_submission_created.json")).unwrap();
    let WebhookPayload::RoutingFormSubmission(s) = &r.payload else { panic!("routing form") };
    assert_eq!(s.routing_form.as_ref().unwrap().uuid(), "AAAAAAAAAAAAAAAA");
    assert_eq!(s.questions_and_answers[0].answer, "IT & Software");
    assert_eq!(s.questions_and_answers[0].extra["question_uuid"], "123e4567-e89b-12d3-a456-426614174000");
    assert_eq!(s.submitter_type.as_deref(), Some("Invitee"));
    assert_eq!(
        r.dedup_key(),
        "routing_form_submission.created|https://api.calendly.com/routing_form_submissions/AAAAAAAAAAAAAAAA"
    );
}

#[test]
fn invitee_canceled_plain() {
    let d = parse(&fixture("webhook_invitee_canceled.json")).unwrap();
    assert_eq!(d.event, WebhookEvent::InviteeCanceled);
    assert!(d.is_plain_cancellation());
    assert!(d.reschedule().is_none());
    let inv = d.invitee().unwrap();
    assert_eq!(inv.status, InviteeStatus::Canceled);
    let c = inv.cancellation.as_ref().unwrap();
    assert_eq!(c.canceled_by.as_deref(), Some("Jane Invitee"));
    assert_eq!(c.canceler_type, Some(CancelerType::Invitee));
    assert_eq!(c.reason.as_deref(), Some("Conflict"));
    let se = inv.scheduled_event.as_ref().unwrap();
    assert_eq!(se.status, EventStatus::Canceled);
    assert_eq!(se.invitees_counter.unwrap().active, 0);
    assert_ne!(
        d.dedup_key(),
        parse(&fixture("webhook_invitee_created.json")).unwrap().dedup_key(),
        "created and canceled of one invitee are different events"
    );
}

#[test]
fn reschedule_pair_matches_in_either_order() {
    let canceled = parse(&fixture("webhook_invitee_canceled_rescheduled.json")).unwrap();
    let created = parse(&fixture("webhook_invitee_created_rescheduled.json")).unwrap();
    assert!(!canceled.is_plain_cancellation());
    let Some(RescheduleSide::Canceled(a)) = canceled.reschedule() else { panic!("canceled side") };
    let Some(RescheduleSide::Created(b)) = created.reschedule() else { panic!("created side") };
    assert_eq!(a, b);
    assert_eq!(a.old.uuid(), "INVITEE-UUID");
    assert_eq!(a.new.uuid(), "NEW-INVITEE-UUID");
    assert_eq!(canceled.invitee().unwrap().rescheduled_to(), Some(&a.new));
    assert_eq!(created.invitee().unwrap().rescheduled_from(), Some(&a.old));
}

#[test]
fn no_show_created() {
    let d = parse(&fixture("webhook_invitee_no_show_created.json")).unwrap();
    assert_eq!(d.event, WebhookEvent::InviteeNoShowCreated);
    let ns = d.invitee().unwrap().no_show.as_ref().unwrap();
    assert_eq!(ns.uri.uuid(), "NO-SHOW-UUID");
    assert_eq!(
        d.dedup_key(),
        "invitee_no_show.created|https://api.calendly.com/scheduled_events/EVENT-UUID/invitees/INVITEE-UUID|https://api.calendly.com/invitee_no_shows/NO-SHOW-UUID"
    );
}

#[test]
fn legacy_v1_bodies_are_rejected_clearly() {
    for f in ["webhook_legacy_v1.json", "webhook_article_003.json"] {
        let e = parse(&fixture(f)).unwrap_err();
        assert!(matches!(e, WebhookError::LegacyFormat), "{f}: {e:?}");
        assert!(e.to_string().contains("unsupported legacy format"), "{e}");
    }
}

#[test]
fn unknown_event_is_kept() {
    let body = br#"{"event":"contact.created","created_at":"2026-06-24T22:30:45.105381Z","created_by":"https://api.calendly.com/users/U","payload":{"uri":"https://api.calendly.com/contacts/C","email":"x@example.com"}}"#;
    let d = parse(body).unwrap();
    assert_eq!(d.event, WebhookEvent::Unknown("contact.created".into()));
    let WebhookPayload::Other(v) = &d.payload else { panic!("other") };
    assert_eq!(v["email"], "x@example.com");
    assert_eq!(serde_json::to_string(&d.event).unwrap(), "\"contact.created\"");
}

// Known-answer vector over the exact fixture bytes, computed independently:
// python3 -c 'import hmac,hashlib;print(hmac.new(b"whsec-calendly-test",b"1782340245."+open("webhook_invitee_created.json","rb").read(),hashlib.sha256).hexdigest())'
const KAT: &str = "a2b5e6b3424cee8acba63b160edeb11002180ef4b515a8c56a59cfd199f6918d";
const T: u64 = 1_782_340_245;

fn verifier(now: u64) -> Verifier {
    Verifier::new(Token::new("whsec-calendly-test")).clock(Arc::new(FixedClock::at_unix(now)))
}

#[test]
fn signature_known_answer_on_fixture() {
    let body = fixture("webhook_invitee_created.json");
    let header = format!("t={T},v1={KAT}");
    assert_eq!(sign(b"whsec-calendly-test", 1_782_340_245, &body), header);
    let d = verifier(T + 60).verify_and_parse(Some(&header), &body).unwrap();
    assert_eq!(d.event, WebhookEvent::InviteeCreated);
    // uppercase hex is accepted too
    verifier(T).verify(Some(&format!("t={T},v1={}", KAT.to_uppercase())), &body).unwrap();
}

#[test]
fn forged_stale_replayed_rejected() {
    let body = fixture("webhook_invitee_created.json");
    let header = format!("t={T},v1={KAT}");
    // tampered body (re-serialized JSON is a different byte string)
    let reserialized = serde_json::to_vec(&serde_json::from_slice::<serde_json::Value>(&body).unwrap()).unwrap();
    assert_eq!(verifier(T).verify(Some(&header), &reserialized), Err(SignatureError::Mismatch));
    // forged with another key
    let forged = sign(b"attacker", 1_782_340_245, &body);
    assert_eq!(verifier(T).verify(Some(&forged), &body), Err(SignatureError::Mismatch));
    // a signature moved to another timestamp
    assert_eq!(verifier(T).verify(Some(&format!("t={},v1={KAT}", T + 1)), &body), Err(SignatureError::Mismatch));
    // replayed one second after the window (Calendly's 24 h of retries and an hour)
    let e = verifier(T + calendly_api::webhook::DEFAULT_TOLERANCE.as_secs() + 1)
        .verify_and_parse(Some(&header), &body)
        .unwrap_err();
    assert!(matches!(e, WebhookError::Signature(SignatureError::Expired { .. })), "{e:?}");
    // missing header
    assert!(matches!(verifier(T).verify_and_parse(None, &body), Err(WebhookError::Signature(SignatureError::Missing))));
}
