//! The types users need from `api-core` are reachable through `customerio_api`, so an application does not add `api-core`
//! (at the matching version) to its own dependencies.

use std::time::Duration;

use customerio_api::api_core::Clock as _;

#[test]
fn shared_types_are_named_through_the_crate() {
    let token = customerio_api::Token::new("s3cr3t-value");
    assert!(!format!("{token:?}").contains("s3cr3t-value"), "Debug must redact the secret");
    // the re-exported crate and the re-exported type are one type
    let same: customerio_api::api_core::Token = token;
    assert_eq!(same.expose(), "s3cr3t-value");

    let clock = customerio_api::FixedClock::at_unix(1_700_000_000);
    clock.advance(Duration::from_secs(5));
    assert_eq!(clock.unix_seconds(), 1_700_000_005);

    let policy = customerio_api::RetryPolicy { max_attempts: 1, ..customerio_api::RetryPolicy::default() };
    assert_eq!(policy.max_attempts, 1);
    assert_ne!(policy, customerio_api::api_core::RetryPolicy::default());
}

#[cfg(feature = "fake")]
#[test]
fn fault_is_named_through_the_crate() {
    let fault = customerio_api::Fault::json(503, &serde_json::json!({"error": "down"}));
    assert!(matches!(fault, customerio_api::Fault::Status { status: 503, ref body, .. } if body.contains("down")));
}
