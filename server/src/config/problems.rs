//! Problems of a configuration's shape, said in the operator's terms: unknown sections and
//! keys (with the accepted ones), and values of the wrong type (what was given, what the key
//! accepts), every one of them at once.

use serde_json::{Map, Value};

use super::Config;
use super::loader::set;

/// Every unknown section or key, and every value of the wrong type, in `tree`: each key is
/// deserialized on its own (over the defaults), so one bad key never hides the next.
pub(super) fn shape_problems(
    defaults: &Map<String, Value>,
    tree: &Map<String, Value>,
) -> Vec<(String, String)> {
    let mut problems = Vec::new();
    for (section, keys) in tree {
        let Some(section_defaults) = defaults.get(section).and_then(Value::as_object) else {
            let sections: Vec<_> = defaults.keys().cloned().collect();
            problems.push((
                section.clone(),
                format!(
                    "unknown section; accepted sections: {}",
                    sections.join(", ")
                ),
            ));
            continue;
        };
        let keys = match keys {
            Value::Object(keys) => keys,
            Value::Null => continue,
            other => {
                problems.push((
                    section.clone(),
                    format!(
                        "{} is not accepted; expected a mapping of keys",
                        compact(other)
                    ),
                ));
                continue;
            }
        };
        for (key, value) in keys {
            let dotted = format!("{section}.{key}");
            let Some(default) = section_defaults.get(key) else {
                problems.push((
                    dotted,
                    format!(
                        "unknown key; keys of section `{section}`: {}",
                        keys_of(defaults, section)
                    ),
                ));
                continue;
            };
            let mut single = Map::new();
            set(&mut single, section, key, value.clone());
            if let Err(err) = serde_path_to_error::deserialize::<_, Config>(Value::Object(single)) {
                let path = err.path().to_string();
                let serde_message = err.inner().to_string();
                let reason = if path.starts_with(&dotted) && path != dotted {
                    // Inside a list or mapping: serde's own words name what is wrong there.
                    serde_message.replace('`', "")
                } else {
                    user_terms(&dotted, value, default, &serde_message)
                };
                let path = if path.starts_with(&dotted) {
                    path
                } else {
                    dotted.clone()
                };
                problems.push((path, reason));
            }
        }
    }
    problems
}

/// A value as it reads in YAML, short enough to quote in a message.
fn compact(value: &Value) -> String {
    let text = match value {
        Value::String(text) => format!("{text:?}"),
        other => other.to_string(),
    };
    if text.chars().count() > 60 {
        format!("{}…", text.chars().take(60).collect::<String>())
    } else {
        text
    }
}

/// serde's message for a refused value, said in the operator's terms: what was given and what
/// the key accepts (`expected a port number 0–65535`, never `expected u16`).
fn user_terms(dotted: &str, value: &Value, default: &Value, serde_message: &str) -> String {
    let given = compact(value);
    let from_serde = serde_message
        .split_once("expected ")
        .map(|(_, expected)| expected.replace('`', ""));
    let expected = match (dotted, from_serde.as_deref().map(str::trim)) {
        ("server.host", _) => "an IPv4 or IPv6 address".to_owned(),
        (key, Some("u16")) if key.ends_with("port") => "a port number 0–65535".to_owned(),
        (_, Some("u16")) => "a whole number 0–65535".to_owned(),
        (_, Some("u8")) => "a whole number 0–255".to_owned(),
        (_, Some("u32")) => "a whole number 0–4294967295".to_owned(),
        (_, Some("u64" | "usize")) => "a whole number 0 or more".to_owned(),
        (_, Some("f64" | "f32")) => "a number".to_owned(),
        (_, Some("a boolean")) => "true or false".to_owned(),
        (_, Some("a string")) => "text".to_owned(),
        (_, Some("a sequence")) => "a list".to_owned(),
        (_, Some(other)) => other.to_owned(),
        (_, None) => match default {
            Value::Bool(_) => "true or false".to_owned(),
            Value::Number(_) => "a number".to_owned(),
            Value::String(_) => "text".to_owned(),
            Value::Array(_) => "a list".to_owned(),
            _ => serde_message.to_owned(),
        },
    };
    let default = match default {
        Value::String(text) if text.is_empty() => String::new(),
        Value::Array(items) if items.is_empty() => String::new(),
        other => format!(" (default {})", compact(other)),
    };
    format!("{given} is not accepted; expected {expected}{default}")
}

pub(super) fn keys_of(defaults: &Map<String, Value>, section: &str) -> String {
    defaults
        .get(section)
        .and_then(Value::as_object)
        .map(|keys| keys.keys().cloned().collect::<Vec<_>>().join(", "))
        .unwrap_or_default()
}
