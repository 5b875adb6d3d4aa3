//! Registration protocol v1.0 messages: request parsing and validation, response encoding.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use super::hostname::{Hostname, HostnameError};

/// The only protocol version this server speaks.
pub const PROTOCOL_VERSION: &str = "1.0";
/// The only request type of v1.0; a heartbeat is a repeated registration.
pub const REGISTRATION: &str = "registration";

/// A validated registration request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The lowercase hostname the client registers.
    pub hostname: Hostname,
    /// The bearer token, if the client sent one.
    pub auth_token: Option<String>,
}

/// Why a frame's payload is not a usable request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The payload is not UTF-8: a framing error.
    #[error("frame payload is not valid UTF-8")]
    NotUtf8,
    /// The payload is not JSON: a framing error.
    #[error("frame payload is not valid JSON: {0}")]
    NotJson(String),
    /// Valid JSON, but not an object.
    #[error("message must be a JSON object")]
    NotAnObject,
    /// A required field is absent or null.
    #[error("missing required field '{0}'")]
    MissingField(&'static str),
    /// A field has the wrong JSON type.
    #[error("field '{0}' must be a string")]
    NotAString(&'static str),
    /// Another shape problem, such as a duplicated field.
    #[error("message does not match the registration format: {0}")]
    InvalidShape(String),
    /// `version` is not "1.0".
    #[error("unsupported protocol version '{0}'; this server speaks version 1.0")]
    UnsupportedVersion(String),
    /// `type` is not "registration".
    #[error("unknown message type '{0}'; version 1.0 accepts only 'registration'")]
    UnknownType(String),
    /// The hostname breaks RFC 1123.
    #[error("invalid hostname: {0}")]
    InvalidHostname(#[from] HostnameError),
}

impl ParseError {
    /// Framing errors are answered once and then the connection is closed.
    pub fn closes_connection(&self) -> bool {
        matches!(self, Self::NotUtf8 | Self::NotJson(_))
    }
}

/// Field names of the request, for error messages.
const REQUIRED_STRING_FIELDS: [&str; 3] = ["version", "type", "hostname"];
const OPTIONAL_STRING_FIELDS: [&str; 2] = ["auth_token", "timestamp"];

/// The request as it arrives; unknown fields such as `client_ip` are ignored.
#[derive(Deserialize)]
struct WireRequest<'a> {
    #[serde(borrow)]
    version: Option<Cow<'a, str>>,
    #[serde(borrow, rename = "type")]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow)]
    hostname: Option<Cow<'a, str>>,
    #[serde(borrow)]
    auth_token: Option<Cow<'a, str>>,
    /// Sent by every client but never trusted: the server stamps its own time.
    #[serde(borrow, rename = "timestamp")]
    _timestamp: Option<Cow<'a, str>>,
}

impl Request {
    /// Parses and validates one frame payload.
    pub fn parse(payload: &[u8]) -> Result<Self, ParseError> {
        let text = std::str::from_utf8(payload).map_err(|_| ParseError::NotUtf8)?;
        let wire: WireRequest<'_> = match serde_json::from_str(text) {
            Ok(wire) => wire,
            Err(err) if err.is_data() => return Err(explain_shape_error(text, &err)),
            Err(err) => return Err(ParseError::NotJson(err.to_string())),
        };
        let version = wire.version.ok_or(ParseError::MissingField("version"))?;
        if version != PROTOCOL_VERSION {
            return Err(ParseError::UnsupportedVersion(truncated(&version)));
        }
        let kind = wire.kind.ok_or(ParseError::MissingField("type"))?;
        if kind != REGISTRATION {
            return Err(ParseError::UnknownType(truncated(&kind)));
        }
        let hostname = wire.hostname.ok_or(ParseError::MissingField("hostname"))?;
        Ok(Self {
            hostname: Hostname::parse(&hostname)?,
            auth_token: wire.auth_token.map(Cow::into_owned),
        })
    }
}

/// The slow path for a well-formed JSON document of the wrong shape: name the offending field.
fn explain_shape_error(text: &str, err: &serde_json::Error) -> ParseError {
    // serde reports a shape error as soon as the first token has the wrong type (`[1,2`
    // fails at `[`), before it would have found that the document is not even JSON.
    let fields = match serde_json::from_str::<serde_json::Value>(text) {
        Ok(serde_json::Value::Object(fields)) => fields,
        Ok(_) => return ParseError::NotAnObject,
        Err(not_json) => return ParseError::NotJson(not_json.to_string()),
    };
    REQUIRED_STRING_FIELDS
        .iter()
        .chain(OPTIONAL_STRING_FIELDS.iter())
        .find(|name| {
            fields
                .get(**name)
                .is_some_and(|value| !value.is_string() && !value.is_null())
        })
        .map_or_else(
            || ParseError::InvalidShape(err.to_string()),
            |name| ParseError::NotAString(name),
        )
}

/// Client-supplied text quoted in an error message is cut short, never echoed whole.
fn truncated(text: &str) -> String {
    const QUOTE_LIMIT: usize = 32;
    match text.char_indices().nth(QUOTE_LIMIT) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

/// Outcome of a request, as sent on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// The registration or heartbeat was accepted.
    Success,
    /// The request was refused; `message` says why.
    Error,
}

/// A response frame: `{"version":"1.0","type":"response","status":…,"message":…,"timestamp":…}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response {
    /// Always "1.0".
    pub version: Cow<'static, str>,
    /// Always "response".
    #[serde(rename = "type")]
    pub kind: Cow<'static, str>,
    /// Success or error.
    pub status: Status,
    /// Human-readable outcome.
    pub message: String,
    /// Server time in RFC 3339 UTC.
    pub timestamp: String,
}

impl Response {
    /// A response with the given status, message and timestamp.
    pub fn new(status: Status, message: impl Into<String>, timestamp: String) -> Self {
        Self {
            version: Cow::Borrowed(PROTOCOL_VERSION),
            kind: Cow::Borrowed("response"),
            status,
            message: message.into(),
            timestamp,
        }
    }

    /// The JSON payload of this response.
    pub fn to_json(&self) -> Vec<u8> {
        // Serializing a struct of strings into a Vec cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Request, ParseError> {
        Request::parse(text.as_bytes())
    }

    #[test]
    fn accepts_compact_and_python_spaced_forms_with_client_ip() {
        let compact = r#"{"version":"1.0","type":"registration","timestamp":"2026-11-26T10:00:00","hostname":"Web-01","auth_token":"t","client_ip":"10.0.0.9"}"#;
        let spaced = r#"{"version": "1.0", "type": "registration", "timestamp": "2026-11-26T10:00:00.123456", "hostname": "web-01", "auth_token": "t", "client_ip": "10.0.0.9"}"#;
        for text in [compact, spaced] {
            let request = parse(text).expect("deployed client form must parse");
            assert_eq!(request.hostname.as_str(), "web-01");
            assert_eq!(request.auth_token.as_deref(), Some("t"));
        }
    }

    #[test]
    fn decodes_escaped_strings() {
        let request = parse(r#"{"version":"1.0","type":"registration","hostname":"web\u002d01"}"#)
            .expect("escapes are valid JSON");
        assert_eq!(request.hostname.as_str(), "web-01");
    }

    #[test]
    fn classifies_each_bad_input() {
        assert_eq!(Request::parse(b"\xff\xfe"), Err(ParseError::NotUtf8));
        assert!(matches!(parse("{not json"), Err(ParseError::NotJson(_))));
        assert_eq!(parse("[1,2]"), Err(ParseError::NotAnObject));
        for unfinished in ["[1,2", r#"{"version":1,"#, r#"{"version":"1.0","type":7"#] {
            assert!(
                matches!(parse(unfinished), Err(ParseError::NotJson(_))),
                "{unfinished} is not JSON, a framing error: {:?}",
                parse(unfinished)
            );
        }
        assert_eq!(
            parse(r#"{"type":"registration","hostname":"a"}"#),
            Err(ParseError::MissingField("version"))
        );
        assert_eq!(
            parse(r#"{"version":"1.0","type":"registration"}"#),
            Err(ParseError::MissingField("hostname"))
        );
        assert_eq!(
            parse(r#"{"version":"1.0","type":"registration","hostname":7}"#),
            Err(ParseError::NotAString("hostname"))
        );
        assert_eq!(
            parse(r#"{"version":"2.0","type":"registration","hostname":"a"}"#),
            Err(ParseError::UnsupportedVersion("2.0".into()))
        );
        assert_eq!(
            parse(r#"{"version":"1.0","type":"query","hostname":"a"}"#),
            Err(ParseError::UnknownType("query".into()))
        );
        assert!(matches!(
            parse(r#"{"version":"1.0","type":"registration","hostname":"a_b"}"#),
            Err(ParseError::InvalidHostname(_))
        ));
    }

    #[test]
    fn only_framing_errors_close_the_connection() {
        assert!(ParseError::NotUtf8.closes_connection());
        assert!(ParseError::NotJson(String::new()).closes_connection());
        assert!(!ParseError::MissingField("hostname").closes_connection());
    }

    #[test]
    fn response_serializes_fields_in_protocol_order() {
        let json =
            Response::new(Status::Success, "ok", "2026-11-26T10:00:00.000Z".into()).to_json();
        assert_eq!(
            String::from_utf8(json).expect("utf8"),
            r#"{"version":"1.0","type":"response","status":"success","message":"ok","timestamp":"2026-11-26T10:00:00.000Z"}"#
        );
    }

    #[test]
    fn long_values_are_quoted_truncated() {
        let text = format!(
            r#"{{"version":"{}","type":"registration","hostname":"a"}}"#,
            "9".repeat(1000)
        );
        let Err(ParseError::UnsupportedVersion(quoted)) = parse(&text) else {
            panic!("expected an unsupported version error");
        };
        assert!(quoted.chars().count() <= 33, "quoted {quoted}");
    }
}
