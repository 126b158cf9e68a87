//! Customer.io data centers ([`Region`]) and their hosts.

use url::Url;

/// The data center of a Customer.io workspace. Chosen explicitly: Customer.io redirects EU traffic sent to US hosts
/// (through US servers), fails US traffic sent to EU hosts, and a redirect would drop the credentials anyway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Region {
    /// United States: `track.customer.io`, `api.customer.io`.
    #[default]
    Us,
    /// European Union: `track-eu.customer.io`, `api-eu.customer.io`.
    Eu,
}

impl Region {
    /// The Track API base (`https://track.customer.io` / `https://track-eu.customer.io`); paths add `/api/v1/…`.
    #[must_use]
    pub fn track_base(self) -> Url {
        Url::parse(match self {
            Self::Us => "https://track.customer.io",
            Self::Eu => "https://track-eu.customer.io",
        })
        .expect("valid URL")
    }

    /// The App API base (`https://api.customer.io` / `https://api-eu.customer.io`); paths add `/v1/…`.
    #[must_use]
    pub fn app_base(self) -> Url {
        Url::parse(match self {
            Self::Us => "https://api.customer.io",
            Self::Eu => "https://api-eu.customer.io",
        })
        .expect("valid URL")
    }

    /// The Pipelines (CDP) API base (`https://cdp.customer.io` / `https://cdp-eu.customer.io`); paths add
    /// `/v1/…` (Pipelines spec `servers`: `https://cdp.customer.io/v1`, `https://cdp-eu.customer.io/v1`).
    #[must_use]
    pub fn pipelines_base(self) -> Url {
        let s = match self {
            Self::Us => "https://cdp.customer.io",
            Self::Eu => "https://cdp-eu.customer.io",
        };
        Url::parse(s).expect("static URL")
    }

    /// `"us"` or `"eu"`, as `GET /api/v1/accounts/region` reports it.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Us => "us",
            Self::Eu => "eu",
        }
    }

    /// Parses `"us"`/`"eu"` (any case).
    #[must_use]
    pub fn from_code(code: &str) -> Option<Self> {
        match code.to_ascii_lowercase().as_str() {
            "us" => Some(Self::Us),
            "eu" => Some(Self::Eu),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        assert_eq!(Region::Us.track_base().as_str(), "https://track.customer.io/");
        assert_eq!(Region::Eu.track_base().as_str(), "https://track-eu.customer.io/");
        assert_eq!(Region::Us.app_base().as_str(), "https://api.customer.io/");
        assert_eq!(Region::Eu.app_base().as_str(), "https://api-eu.customer.io/");
        assert_eq!(Region::Us.pipelines_base().as_str(), "https://cdp.customer.io/");
        assert_eq!(Region::Eu.pipelines_base().as_str(), "https://cdp-eu.customer.io/");
        assert_eq!(Region::from_code("EU"), Some(Region::Eu));
        assert_eq!(Region::from_code("ap"), None);
    }
}
