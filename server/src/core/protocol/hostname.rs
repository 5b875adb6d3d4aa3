//! Hostname validation: RFC 1123 labels, compared and stored lowercase.

use std::fmt;
use std::sync::Arc;

/// Longest hostname accepted, in characters.
pub const MAX_HOSTNAME_LEN: usize = 253;
/// Longest label accepted, in characters.
pub const MAX_LABEL_LEN: usize = 63;

/// A validated, lowercase hostname such as `web-01` or `db.eu-west`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Hostname(Arc<str>);

/// Why a hostname was refused, phrased for the person who configured the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostnameError {
    /// Nothing was given.
    #[error("hostname is empty")]
    Empty,
    /// Longer than 253 characters.
    #[error("hostname is {0} characters long; the limit is 253")]
    TooLong(usize),
    /// Two dots in a row, or a leading or trailing dot.
    #[error("hostname has an empty label (leading, trailing or doubled dot)")]
    EmptyLabel,
    /// A label longer than 63 characters.
    #[error("label '{0}' is longer than 63 characters")]
    LabelTooLong(String),
    /// A character outside `[a-z0-9-]`.
    #[error("hostname contains {0:?}; only letters, digits, '-' and '.' are allowed")]
    InvalidCharacter(char),
    /// A label starting or ending with a hyphen.
    #[error("label '{0}' starts or ends with '-'")]
    HyphenAtEdge(String),
}

impl Hostname {
    /// Validates `raw` and lowercases it.
    pub fn parse(raw: &str) -> Result<Self, HostnameError> {
        if raw.is_empty() {
            return Err(HostnameError::Empty);
        }
        let chars = raw.chars().count();
        if chars > MAX_HOSTNAME_LEN {
            return Err(HostnameError::TooLong(chars));
        }
        if let Some(bad) = raw
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '.'))
        {
            return Err(HostnameError::InvalidCharacter(bad));
        }
        let lower = raw.to_ascii_lowercase();
        for label in lower.split('.') {
            if label.is_empty() {
                return Err(HostnameError::EmptyLabel);
            }
            if label.len() > MAX_LABEL_LEN {
                return Err(HostnameError::LabelTooLong(label.to_owned()));
            }
            if label.starts_with('-') || label.ends_with('-') {
                return Err(HostnameError::HyphenAtEdge(label.to_owned()));
            }
        }
        Ok(Self(lower.into()))
    }

    /// The lowercase name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The shared string, for cheap keys.
    pub fn as_arc(&self) -> &Arc<str> {
        &self.0
    }
}

impl fmt::Display for Hostname {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lowercases_valid_names() {
        assert_eq!(
            Hostname::parse("Web-01").map(|h| h.to_string()),
            Ok("web-01".into())
        );
        assert!(Hostname::parse("db.eu-west.1").is_ok());
        assert!(Hostname::parse(&"a".repeat(63)).is_ok());
    }

    #[test]
    fn refuses_each_kind_of_bad_name() {
        assert_eq!(Hostname::parse(""), Err(HostnameError::Empty));
        assert_eq!(Hostname::parse("a..b"), Err(HostnameError::EmptyLabel));
        assert_eq!(Hostname::parse("web-01."), Err(HostnameError::EmptyLabel));
        assert_eq!(
            Hostname::parse("-web"),
            Err(HostnameError::HyphenAtEdge("-web".into()))
        );
        assert_eq!(
            Hostname::parse("web_01"),
            Err(HostnameError::InvalidCharacter('_'))
        );
        assert_eq!(
            Hostname::parse("wéb"),
            Err(HostnameError::InvalidCharacter('é'))
        );
        assert!(matches!(
            Hostname::parse(&"a".repeat(64)),
            Err(HostnameError::LabelTooLong(_))
        ));
        let long = vec!["abcdefgh"; 30].join(".");
        assert_eq!(Hostname::parse(&long), Err(HostnameError::TooLong(269)));
    }
}
