//! Builds the [`Config`] from its sources — defaults, the YAML file, `PRISM_<SECTION>_<KEY>`
//! environment variables, command-line flags (each overriding the one before) — and validates it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::Config;
use super::problems::{keys_of, shape_problems};
use super::validate::validate;

/// The file read when `--config` is not given, if it exists in the working directory.
pub const DEFAULT_CONFIG_FILE: &str = "prism.yaml";
/// Prefix of every configuration environment variable.
pub const ENV_PREFIX: &str = "PRISM_";

/// One refused key: where its value came from and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Where the value came from: the file, an environment variable or a flag.
    pub origin: String,
    /// The dotted key, e.g. `server.tcp_port`.
    pub key: String,
    /// What is wrong and what is accepted.
    pub reason: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}: {}", self.origin, self.key, self.reason)
    }
}

/// Why a configuration was refused. Every message names the key and what it accepts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read configuration file {path}: {reason}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The operating system's reason.
        reason: String,
    },
    /// The file is not YAML, or not a mapping of sections.
    #[error("{origin}: not a valid configuration document: {reason}")]
    Syntax {
        /// The file.
        origin: String,
        /// What the parser said.
        reason: String,
    },
    /// Keys are unknown or their values are not accepted: every such key, not only the first.
    #[error("{}", render_problems(.0))]
    Invalid(Vec<Problem>),
}

impl ConfigError {
    /// The refused keys (empty for read and syntax errors).
    pub fn problems(&self) -> &[Problem] {
        match self {
            Self::Invalid(problems) => problems,
            _ => &[],
        }
    }
}

fn render_problems(problems: &[Problem]) -> String {
    let lines: Vec<String> = problems.iter().map(Problem::to_string).collect();
    match lines.as_slice() {
        [one] => one.clone(),
        _ => format!("{} problems:\n  {}", lines.len(), lines.join("\n  ")),
    }
}

/// Where the configuration comes from. Kept for the life of the process, so a SIGHUP reload
/// reads the same file and applies the same environment and flags again.
#[derive(Debug, Clone, Default)]
pub struct ConfigSources {
    /// The YAML file, if any.
    pub file: Option<PathBuf>,
    /// `PRISM_*` environment variables (name, value), captured when the process started.
    pub env: Vec<(String, String)>,
    /// Command-line flag values as (dotted key, flag name, value): the highest precedence.
    pub flags: Vec<(String, String, Value)>,
}

impl ConfigSources {
    /// The sources of this process: `explicit_file` (from `--config`), else `prism.yaml` in the
    /// working directory if it exists; and the process's `PRISM_*` environment.
    pub fn from_process(explicit_file: Option<PathBuf>) -> Self {
        let file = explicit_file.or_else(|| {
            let default = PathBuf::from(DEFAULT_CONFIG_FILE);
            default.is_file().then_some(default)
        });
        let env = std::env::vars_os()
            .filter_map(|(name, value)| Some((name.into_string().ok()?, value.into_string().ok()?)))
            .filter(|(name, _)| name.starts_with(ENV_PREFIX))
            .collect();
        Self {
            file,
            env,
            flags: Vec::new(),
        }
    }

    /// Adds a flag value for `key`, e.g. `("server.tcp_port", "--tcp-port", 9000)`.
    pub fn flag(&mut self, key: &str, flag: &str, value: impl Into<Value>) {
        self.flags
            .push((key.to_owned(), flag.to_owned(), value.into()));
    }

    /// Loads, merges and validates the configuration. Every refused key is reported at once.
    pub fn load(&self) -> Result<Config, ConfigError> {
        let defaults = defaults_tree();
        let mut tree = match &self.file {
            Some(path) => read_file(path)?,
            None => Map::new(),
        };
        let file_origin = self
            .file
            .as_ref()
            .map_or_else(|| "defaults".to_owned(), |path| path.display().to_string());
        // Which source set each overridden key, so a bad value is reported where it came from.
        let mut origins: BTreeMap<String, String> = BTreeMap::new();
        let mut problems = Vec::new();
        for (name, raw) in &self.env {
            let Some((section, key)) = env_target(&defaults, name) else {
                continue;
            };
            let dotted = format!("{section}.{key}");
            let origin = format!("environment variable {name}");
            let Some(default) = defaults.get(&section).and_then(|s| s.get(&key)) else {
                problems.push(Problem {
                    origin,
                    key: dotted,
                    reason: format!(
                        "unknown key; keys of section `{section}`: {}",
                        keys_of(&defaults, &section)
                    ),
                });
                continue;
            };
            match env_value(raw, default) {
                Ok(value) => {
                    set(&mut tree, &section, &key, value);
                    origins.insert(dotted, origin);
                }
                Err(reason) => problems.push(Problem {
                    origin,
                    key: dotted,
                    reason,
                }),
            }
        }
        for (dotted, flag, value) in &self.flags {
            if let Some((section, key)) = dotted.split_once('.') {
                set(&mut tree, section, key, value.clone());
                origins.insert(dotted.clone(), format!("flag {flag}"));
            }
        }
        let origin_of = |key: &str| {
            // A nested path such as `dns.nameservers[0].name` came from its top-level key.
            let top: String = key.split(['[', '.']).take(2).collect::<Vec<_>>().join(".");
            origins
                .get(key)
                .or_else(|| origins.get(&top))
                .cloned()
                .unwrap_or_else(|| file_origin.clone())
        };
        for (key, reason) in shape_problems(&defaults, &tree) {
            // Leave the refused value out, so the rest is still validated and every problem
            // of the file is reported in one go.
            remove(&mut tree, &key);
            problems.push(Problem {
                origin: origin_of(&key),
                key,
                reason,
            });
        }
        let config: Config = serde_path_to_error::deserialize(Value::Object(tree)).map_err(
            |err: serde_path_to_error::Error<serde_json::Error>| {
                let key = err.path().to_string();
                ConfigError::Invalid(vec![Problem {
                    origin: origin_of(&key),
                    reason: err.inner().to_string(),
                    key,
                }])
            },
        )?;
        problems.extend(validate(&config).into_iter().map(|(key, reason)| Problem {
            origin: origin_of(&key),
            key,
            reason,
        }));
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError::Invalid(problems))
        }
    }
}

/// The defaults as a tree of sections, used to type environment values and list valid keys.
fn defaults_tree() -> Map<String, Value> {
    match serde_json::to_value(Config::default()) {
        Ok(Value::Object(sections)) => sections,
        _ => Map::new(),
    }
}

fn read_file(path: &Path) -> Result<Map<String, Value>, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|err| ConfigError::Read {
        path: path.to_path_buf(),
        reason: err.to_string(),
    })?;
    let origin = path.display().to_string();
    match serde_norway::from_str::<Value>(&text) {
        Ok(Value::Object(sections)) => Ok(sections),
        Ok(Value::Null) => Ok(Map::new()),
        Ok(_) => Err(ConfigError::Syntax {
            origin,
            reason: "the top level must be a mapping of sections (server:, database:, …)".into(),
        }),
        Err(err) => Err(ConfigError::Syntax {
            origin,
            reason: err.to_string(),
        }),
    }
}

/// The (section, key) an environment variable names, if its name starts with
/// `PRISM_<SECTION>_` for a known section. The longest matching section wins, so
/// `PRISM_RATE_LIMIT_BURST` is `rate_limit.burst`.
fn env_target(defaults: &Map<String, Value>, name: &str) -> Option<(String, String)> {
    let rest = name.strip_prefix(ENV_PREFIX)?;
    defaults
        .keys()
        .filter_map(|section| {
            let prefix = format!("{}_", section.to_ascii_uppercase());
            let key = rest.strip_prefix(&prefix)?;
            (!key.is_empty()).then(|| (section.clone(), key.to_ascii_lowercase()))
        })
        .max_by_key(|(section, _)| section.len())
}

/// Converts an environment value to the type of the key's default.
fn env_value(raw: &str, default: &Value) -> Result<Value, String> {
    let trimmed = raw.trim();
    match default {
        Value::String(_) => Ok(Value::String(raw.to_owned())),
        Value::Bool(_) => match trimmed.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(Value::Bool(true)),
            "false" | "0" | "no" | "off" => Ok(Value::Bool(false)),
            _ => Err(format!("{raw:?} is not a boolean; accepted: true, false")),
        },
        Value::Number(_) => {
            if let Ok(n) = trimmed.parse::<u64>() {
                Ok(Value::from(n))
            } else if let Ok(n) = trimmed.parse::<i64>() {
                Ok(Value::from(n))
            } else {
                trimmed
                    .parse::<f64>()
                    .ok()
                    .and_then(serde_json::Number::from_f64)
                    .map(Value::Number)
                    .ok_or_else(|| format!("{raw:?} is not a number"))
            }
        }
        Value::Array(_) if !trimmed.starts_with('[') => Ok(Value::Array(
            trimmed
                .split(',')
                .map(str::trim)
                .filter(|item| !item.is_empty())
                .map(|item| Value::String(item.to_owned()))
                .collect(),
        )),
        _ => serde_norway::from_str(raw).map_err(|err| err.to_string()),
    }
}

pub(super) fn set(tree: &mut Map<String, Value>, section: &str, key: &str, value: Value) {
    let entry = tree
        .entry(section.to_owned())
        .or_insert_with(|| Value::Object(Map::new()));
    if entry.is_null() {
        *entry = Value::Object(Map::new());
    }
    // A section that is not a mapping is left alone: deserialization reports it.
    if let Value::Object(keys) = entry {
        keys.insert(key.to_owned(), value);
    }
}

/// Removes the value at `dotted` (a section, or `section.key` possibly followed by a nested
/// path, of which the top-level key goes).
fn remove(tree: &mut Map<String, Value>, dotted: &str) {
    let mut parts = dotted.split(['.', '[']);
    let (Some(section), key) = (parts.next(), parts.next()) else {
        return;
    };
    match key {
        None => {
            tree.remove(section);
        }
        Some(key) => {
            if let Some(Value::Object(keys)) = tree.get_mut(section) {
                keys.remove(key);
            } else {
                tree.remove(section);
            }
        }
    }
}

/// Every key as (dotted key, environment variable, default rendered as YAML), in file order,
/// for `check-config --keys` and the documentation table.
pub fn key_table() -> Vec<(String, String, String)> {
    let mut rows = Vec::new();
    for (section, keys) in defaults_tree() {
        let Value::Object(keys) = keys else { continue };
        for (key, default) in keys {
            let rendered = serde_json::to_string(&default).unwrap_or_default();
            rows.push((
                format!("{section}.{key}"),
                format!(
                    "{ENV_PREFIX}{}_{}",
                    section.to_uppercase(),
                    key.to_uppercase()
                ),
                rendered,
            ));
        }
    }
    rows
}

#[cfg(test)]
#[path = "loader_tests.rs"]
mod tests;
