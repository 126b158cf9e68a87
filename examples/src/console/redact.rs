//! Redaction of what the console shows of a dead letter: the headers kept with it (the vendors' signature
//! headers: `x-airtable-content-mac`, `productive-signature`, `calendly-webhook-signature`, `x-cio-signature`) and
//! secrets inside the payload (JSON or form-encoded, as Kommo sends its webhooks).
//!
//! A header or field is redacted when its name contains one of [`SENSITIVE`] (case-insensitive), e.g.
//! `mac_secret_base64`, `access_token`, `signing_key`, `password`, `authorization`.

/// What a redacted value is shown as.
pub const REDACTED: &str = "[redacted]";

/// Name fragments that mark a header or payload field as secret.
pub const SENSITIVE: &[&str] = &[
    "signature",
    "secret",
    "token",
    "password",
    "passwd",
    "authorization",
    "cookie",
    "api_key",
    "apikey",
    "api-key",
    "signing_key",
    "-mac",
    "hmac",
    "credential",
];

/// Most payload bytes shown (the rest is cut, with a note).
pub const MAX_SHOWN: usize = 16 * 1024;

/// Whether a header or field named `name` is secret.
#[must_use]
pub fn is_sensitive(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    SENSITIVE.iter().any(|s| n.contains(s)) || n == "mac" || n.ends_with("_mac")
}

/// The headers, with secret values replaced by [`REDACTED`].
#[must_use]
pub fn headers(headers: &sync_core::Headers) -> Vec<(String, String)> {
    headers.iter().map(|(k, v)| (k.clone(), if is_sensitive(k) { REDACTED.to_owned() } else { v.clone() })).collect()
}

/// The payload as text for people: JSON pretty-printed with secret fields redacted; a form-encoded body as one
/// `name = value` line per field, secret fields redacted; other UTF-8 text as is; binary as its length. Cut at
/// [`MAX_SHOWN`] bytes.
#[must_use]
pub fn payload(body: &[u8]) -> String {
    let text = if let Ok(mut json) = serde_json::from_slice::<serde_json::Value>(body) {
        redact_json(&mut json);
        serde_json::to_string_pretty(&json).unwrap_or_default()
    } else if let Ok(s) = std::str::from_utf8(body) {
        if looks_form_encoded(s) {
            url::form_urlencoded::parse(s.as_bytes())
                .map(|(k, v)| format!("{k} = {}", if is_sensitive(&k) { REDACTED } else { &v }))
                .collect::<Vec<_>>()
                .join("\n")
        } else {
            s.to_owned()
        }
    } else {
        return format!("<{} bytes, not UTF-8>", body.len());
    };
    cut(text)
}

fn looks_form_encoded(s: &str) -> bool {
    !s.is_empty()
        && s.contains('=')
        && !s.contains(char::is_whitespace)
        && s.split('&').all(|pair| pair.split_once('=').is_some_and(|(k, _)| !k.is_empty()))
}

fn redact_json(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                if is_sensitive(k) && !v.is_null() {
                    *v = serde_json::Value::String(REDACTED.to_owned());
                } else {
                    redact_json(v);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(redact_json),
        _ => {}
    }
}

fn cut(mut text: String) -> String {
    if text.len() > MAX_SHOWN {
        let mut end = MAX_SHOWN;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        let total = text.len();
        text.truncate(end);
        text.push_str(&format!("\n… ({total} bytes in all; cut)"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_headers_are_redacted() {
        let mut h = sync_core::Headers::new();
        for (k, v) in [
            ("x-airtable-content-mac", "hmac-sha256=abc"),
            ("productive-signature", "deadbeef"),
            ("calendly-webhook-signature", "t=1,v1=ff"),
            ("x-cio-signature", "00ff"),
            ("x-cio-timestamp", "1700000000"),
            ("content-type", "application/json"),
        ] {
            h.insert(k.to_owned(), v.to_owned());
        }
        let shown: std::collections::BTreeMap<_, _> = headers(&h).into_iter().collect();
        assert_eq!(shown["x-airtable-content-mac"], REDACTED);
        assert_eq!(shown["productive-signature"], REDACTED);
        assert_eq!(shown["calendly-webhook-signature"], REDACTED);
        assert_eq!(shown["x-cio-signature"], REDACTED);
        assert_eq!(shown["x-cio-timestamp"], "1700000000");
        assert_eq!(shown["content-type"], "application/json");
    }

    #[test]
    fn json_secrets_are_redacted_at_any_depth() {
        let body = br#"{"id":"w1","macSecretBase64":"c2VjcmV0","nested":[{"access_token":"at","name":"Ada"}],"signing_key":null}"#;
        let text = payload(body);
        assert!(!text.contains("c2VjcmV0") && !text.contains("\"at\""), "{text}");
        assert!(text.contains("Ada") && text.contains("w1"), "{text}");
        assert_eq!(text.matches(REDACTED).count(), 2, "{text}");
    }

    #[test]
    fn form_encoded_kommo_bodies_are_shown_per_field() {
        // Kommo webhooks are form-encoded (api-notes/kommo.md, "5. Webhooks as delivered to a receiver")
        let body = b"leads%5Bstatus%5D%5B0%5D%5Bid%5D=42&account%5Bsubdomain%5D=acme&api_token=xyz";
        let text = payload(body);
        assert!(text.contains("leads[status][0][id] = 42"), "{text}");
        assert!(text.contains("api_token = [redacted]") && !text.contains("xyz"), "{text}");
    }

    #[test]
    fn long_and_binary_payloads() {
        let long = "x".repeat(MAX_SHOWN + 10);
        assert!(payload(long.as_bytes()).ends_with("bytes in all; cut)"));
        assert_eq!(payload(&[0xff, 0xfe, 0x00]), "<3 bytes, not UTF-8>");
    }
}
