//! The shipped example configuration parses and matches the documented defaults.

use sync_core::flows::kommo_airtable::Config;

#[test]
fn example_config_parses() {
    let text = include_str!("../config/kommo-airtable.toml");
    let cfg = Config::from_toml(text).expect("examples/config/kommo-airtable.toml parses");
    assert_eq!(cfg.airtable.table, "Client Onboarding");
    assert_eq!(cfg.trigger.won_status_id, 142);
    assert_eq!(cfg.trigger.exclude_tags, vec!["test", "internal"]);
    assert_eq!(cfg.mapping.fields.len(), 8);
    assert!(cfg.airtable.notification_url.is_some());
    assert_eq!((cfg.kommo.requests_per_second, cfg.airtable.requests_per_second), (7, 5), "the vendors' limits");
}

#[test]
fn unknown_keys_are_rejected() {
    let err = Config::from_toml(
        "[kommo]\nbase_url = \"https://x.kommo.com\"\ntoken = \"nope\"\n[airtable]\nbase_id = \"app1\"\n",
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("token"), "{err}");
}
