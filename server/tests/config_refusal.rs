//! `check-config` and `serve` refuse the same invalid configurations with the same message:
//! a configuration `check-config` refuses never starts, and the operator reads the same
//! explanation from both. A configuration with several problems reports every one.

use std::path::Path;
use std::process::Stdio;
use std::sync::mpsc;
use std::time::Duration;

use prism_testkit::process::prism_command;

const BINARY: &str = env!("CARGO_BIN_EXE_prism-server");
/// What both commands print before the problems.
const REFUSAL: &str = "error: invalid configuration:";
/// Longest either command may take to refuse (a `serve` that starts instead fails the test).
const REFUSAL_TIMEOUT: Duration = Duration::from_secs(30);

/// One invalid configuration: keys over a valid loopback, port-0 file, and environment.
struct Invalid {
    /// What is wrong, for failure messages.
    what: &'static str,
    /// `(dotted key, YAML value)` added to or replacing the valid file's keys.
    keys: &'static [(&'static str, &'static str)],
    /// Environment variables set for both commands.
    env: &'static [(&'static str, &'static str)],
    /// Text the message must contain: each refused key (and where it came from).
    named: &'static [&'static str],
    /// How many problems the message lists.
    problems: usize,
}

impl Invalid {
    /// A file whose `keys` make one problem.
    const fn in_file(
        what: &'static str,
        keys: &'static [(&'static str, &'static str)],
        named: &'static [&'static str],
    ) -> Self {
        Self {
            what,
            keys,
            env: &[],
            named,
            problems: 1,
        }
    }
}

const INVALID: [Invalid; 9] = [
    Invalid::in_file(
        "a zone that is not a domain name",
        &[("dns.zone", "\"not a zone\"")],
        &["dns.zone", "\"not a zone\" is not a valid domain name"],
    ),
    Invalid::in_file(
        "a log level that names no level",
        &[("logging.level", "loud")],
        &["logging.level", "\"loud\"", "accepted: off, error"],
    ),
    Invalid::in_file(
        "a port out of range",
        &[("server.tcp_port", "70000")],
        &["server.tcp_port", "expected a port number 0–65535"],
    ),
    Invalid::in_file(
        "a check interval of zero",
        &[("heartbeat.check_interval", "0")],
        &["heartbeat.check_interval", "0.01 to 60"],
    ),
    Invalid::in_file(
        "an unknown key",
        &[("server.tcpport", "9000")],
        &["server.tcpport", "unknown key", " tcp_port"],
    ),
    Invalid {
        what: "an environment value of the wrong type",
        keys: &[],
        env: &[("PRISM_HEARTBEAT_INTERVAL", "soon")],
        named: &[
            "environment variable PRISM_HEARTBEAT_INTERVAL",
            "heartbeat.interval",
        ],
        problems: 1,
    },
    Invalid {
        what: "several values out of range at once",
        keys: &[
            ("dns.zone", "\"not a zone\""),
            ("logging.level", "loud"),
            ("heartbeat.check_interval", "0"),
            ("server.max_connections", "0"),
        ],
        env: &[],
        named: &[
            "dns.zone",
            "logging.level",
            "heartbeat.check_interval",
            "server.max_connections",
        ],
        problems: 4,
    },
    Invalid {
        what: "several unknown or mistyped keys at once, in the file and the environment",
        keys: &[
            ("server.tcp_port", "70000"),
            ("server.tcpport", "9000"),
            ("heartbeat.interval", "often"),
        ],
        env: &[("PRISM_DNS_TTL", "-1")],
        named: &[
            "server.tcp_port",
            "server.tcpport",
            "heartbeat.interval",
            "environment variable PRISM_DNS_TTL",
        ],
        problems: 4,
    },
    Invalid {
        what: "mistyped keys and values out of range in one file",
        keys: &[
            ("server.tcp_port", "70000"),
            ("server.tcpport", "9000"),
            ("dns.zone", "\"not a zone\""),
            ("logging.level", "loud"),
            ("heartbeat.check_interval", "0"),
        ],
        env: &[],
        named: &[
            "server.tcp_port",
            "server.tcpport",
            "dns.zone",
            "logging.level",
            "heartbeat.check_interval",
        ],
        problems: 5,
    },
];

/// A valid file serving on loopback with every port chosen by the system, with `keys`
/// added or replaced.
fn yaml(dir: &Path, keys: &[(&str, &str)]) -> String {
    let database = dir.join("prism.db").display().to_string();
    let mut entries: Vec<(&str, &str)> = vec![
        ("server.host", "127.0.0.1"),
        ("server.tcp_port", "0"),
        ("server.api_port", "0"),
        ("database.path", &database),
        ("dns.port", "0"),
    ];
    for &(key, value) in keys {
        match entries.iter_mut().find(|(existing, _)| *existing == key) {
            Some(entry) => entry.1 = value,
            None => entries.push((key, value)),
        }
    }
    let mut sections: Vec<(&str, String)> = Vec::new();
    for (dotted, value) in entries {
        let (section, key) = dotted.split_once('.').expect("a dotted key");
        let line = format!("  {key}: {value}\n");
        match sections.iter_mut().find(|(name, _)| *name == section) {
            Some((_, lines)) => lines.push_str(&line),
            None => sections.push((section, line)),
        }
    }
    sections
        .into_iter()
        .map(|(section, lines)| format!("{section}:\n{lines}"))
        .collect()
}

/// Runs the binary with `args` and `env` in `dir` and returns its exit code and stderr;
/// fails the test when it is still running after [`REFUSAL_TIMEOUT`].
fn refusal(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String) {
    let child = prism_command(BINARY, dir)
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn prism-server");
    let pid = child.id();
    let (done, finished) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(child.wait_with_output());
    });
    match finished.recv_timeout(REFUSAL_TIMEOUT) {
        Ok(output) => {
            let output = output.expect("prism-server runs");
            let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
            (output.status.code(), stderr)
        }
        Err(_) => {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            panic!("prism-server {args:?} was still running after {REFUSAL_TIMEOUT:?}");
        }
    }
}

#[test]
fn check_config_and_serve_refuse_each_invalid_configuration_with_the_same_message() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("invalid.yaml");
    let file_arg = file.to_str().expect("a UTF-8 path");
    for invalid in &INVALID {
        let what = invalid.what;
        std::fs::write(&file, yaml(dir.path(), invalid.keys)).expect("write the configuration");
        let mut messages = Vec::new();
        for command in ["check-config", "serve"] {
            let (code, stderr) = refusal(dir.path(), &[command, "--config", file_arg], invalid.env);
            assert_eq!(code, Some(1), "{command} with {what}: {stderr}");
            let Some((_, message)) = stderr.split_once(REFUSAL) else {
                panic!("{command} with {what} does not say {REFUSAL:?}: {stderr}");
            };
            messages.push(message.trim().to_owned());
        }
        let [checked, served] = messages.as_slice() else {
            unreachable!("one message per command");
        };
        assert_eq!(checked, served, "check-config and serve disagree on {what}");
        for part in invalid.named {
            assert!(checked.contains(part), "{what}: {part:?} in {checked}");
        }
        let lines = checked.lines().count();
        if invalid.problems == 1 {
            assert_eq!(lines, 1, "{what}: one problem, one line: {checked}");
        } else {
            let header = format!("{} problems:", invalid.problems);
            assert!(
                checked.starts_with(&header),
                "{what}: {header:?} in {checked}"
            );
            assert_eq!(
                lines,
                invalid.problems + 1,
                "{what}: a line per problem: {checked}"
            );
        }
    }
}
