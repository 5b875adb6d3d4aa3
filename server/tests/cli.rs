//! The binary as an operator first meets it: which database `serve` and `token` use and how
//! to create the first token, and the flags with their help and exit codes.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use prism_server::core::protocol::Status;
use prism_testkit::process::{SERVE_ON_LOOPBACK, ServerProcess, prism_command};
use prism_testkit::protocol::{Client, registration};

const BINARY: &str = env!("CARGO_BIN_EXE_prism-server");
/// How long a token created with the CLI may take to reach the running server (its
/// `auth.refresh_ms` is 1 s).
const TOKEN_REACH: Duration = Duration::from_secs(5);

fn prism(dir: &Path) -> Command {
    prism_command(BINARY, dir)
}

fn run(command: &mut Command) -> Output {
    command.output().expect("run prism-server")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `serve` on loopback with every port chosen by the system and the database wherever the
/// working directory `dir` puts it.
fn serve(dir: &Path) -> Command {
    let mut command = prism(dir);
    command.args(SERVE_ON_LOOPBACK).env("PRISM_DNS_PORT", "0");
    command
}

fn absolute(dir: &Path, relative: &str) -> PathBuf {
    dir.canonicalize().expect("temp dir").join(relative)
}

/// Splits a printed command line into its words (single quotes as a shell reads them).
fn shell_words(line: &str) -> Vec<String> {
    let (mut words, mut word, mut quoted, mut started) = (Vec::new(), String::new(), false, false);
    for c in line.chars() {
        match c {
            '\'' => {
                quoted = !quoted;
                started = true;
            }
            ' ' if !quoted => {
                if started {
                    words.push(std::mem::take(&mut word));
                }
                started = false;
            }
            c => {
                word.push(c);
                started = true;
            }
        }
    }
    if started {
        words.push(word);
    }
    words
}

#[tokio::test]
async fn first_start_names_the_database_and_the_command_that_creates_a_token_for_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = ServerProcess::start(&mut serve(dir.path()));
    let stdout = server.stdout_lines();
    let database = absolute(dir.path(), "data/prism.db");
    assert!(
        stdout.contains(&format!(
            "prism-server using database {} (SQLite)",
            database.display()
        )),
        "the absolute database path on stdout: {stdout:#?}"
    );
    let hint = stdout
        .iter()
        .find_map(|line| line.trim().strip_prefix("prism-server token create"))
        .unwrap_or_else(|| panic!("no token create command on stdout: {stdout:#?}"));
    assert!(
        stdout
            .iter()
            .any(|line| line.contains("no registration token exists")),
        "{stdout:#?}"
    );
    // The printed command, run from elsewhere, reaches the same database.
    let mut words = shell_words(hint);
    for word in &mut words {
        if word == "OWNER" {
            *word = "ops".to_owned();
        }
    }
    let elsewhere = tempfile::tempdir().expect("another dir");
    let created = run(prism(elsewhere.path())
        .args(["token", "create"])
        .args(&words));
    assert!(created.status.success(), "{created:?}");
    let token = text(&created.stdout).trim().to_owned();
    assert!(
        token.starts_with("prism_") && !token.contains('\n'),
        "stdout of token create is the token alone: {token:?}"
    );
    assert!(
        text(&created.stderr).contains(&format!("using database {}", database.display())),
        "token create names its database on stderr: {}",
        text(&created.stderr)
    );
    let deadline = tokio::time::Instant::now() + TOKEN_REACH;
    loop {
        let mut client = Client::connect(server.registration_addr()).await;
        let response = client.call(&registration("first-host", Some(&token))).await;
        if response.status == Status::Success {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the token never reached the server: {response:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[test]
fn token_commands_name_the_database_they_used_on_stderr() {
    let dir = tempfile::tempdir().expect("temp dir");
    let listed = run(prism(dir.path()).args(["token", "list"]));
    assert!(listed.status.success(), "{listed:?}");
    let database = absolute(dir.path(), "data/prism.db");
    assert!(
        text(&listed.stderr).contains(&format!("using database {} (SQLite)", database.display())),
        "{}",
        text(&listed.stderr)
    );
    let url = format!("sqlite:{}", dir.path().join("other.db").display());
    let revoked = run(prism(dir.path()).args(["token", "revoke", "7", "--database-url", &url]));
    assert!(
        text(&revoked.stderr).contains(&format!(
            "using database {} (SQLite)",
            absolute(dir.path(), "other.db").display()
        )),
        "{}",
        text(&revoked.stderr)
    );
}

#[tokio::test]
async fn a_server_with_a_token_prints_no_token_hint() {
    let dir = tempfile::tempdir().expect("temp dir");
    let created = run(prism(dir.path()).args(["token", "create", "--owner", "ops"]));
    assert!(created.status.success(), "{created:?}");
    let server = ServerProcess::start(&mut serve(dir.path()));
    let stdout = server.stdout_lines();
    assert!(
        !stdout.iter().any(|line| line.contains("token create")),
        "{stdout:#?}"
    );
}

#[test]
fn the_new_flags_set_their_keys() {
    let dir = tempfile::tempdir().expect("temp dir");
    let output = run(prism(dir.path()).args([
        "check-config",
        "--print",
        "--dns-port",
        "5300",
        "--dns-zone",
        "dyn.example.test.",
        "--database-url",
        "postgres://prism@db.example.test:5432/prism",
        "--node-name",
        "edge-1",
    ]));
    assert!(output.status.success(), "{output:?}");
    let yaml: serde_json::Value =
        serde_norway::from_str(&text(&output.stdout)).expect("--print is YAML");
    assert_eq!(yaml["dns"]["port"], 5300);
    assert_eq!(yaml["dns"]["zone"], "dyn.example.test.");
    assert_eq!(
        yaml["database"]["url"],
        "postgres://prism@db.example.test:5432/prism"
    );
    assert_eq!(yaml["cluster"]["node_name"], "edge-1");
}

#[test]
fn a_flag_value_of_the_wrong_form_exits_2_and_a_refused_one_exits_1() {
    let dir = tempfile::tempdir().expect("temp dir");
    let unparsable = run(prism(dir.path()).args(["serve", "--dns-port", "fifty-three"]));
    assert_eq!(unparsable.status.code(), Some(2), "{unparsable:?}");
    assert!(
        text(&unparsable.stderr).contains("--dns-port"),
        "{}",
        text(&unparsable.stderr)
    );
    let refused = run(prism(dir.path()).args(["serve", "--dns-zone", "not a zone"]));
    assert_eq!(refused.status.code(), Some(1), "{refused:?}");
    let stderr = text(&refused.stderr);
    assert!(
        stderr.contains("flag --dns-zone") && stderr.contains("dns.zone"),
        "{stderr}"
    );
}

#[test]
fn help_shows_the_flags_examples_and_exit_codes() {
    let dir = tempfile::tempdir().expect("temp dir");
    for args in [&["--help"][..], &["serve", "--help"][..]] {
        let output = run(prism(dir.path()).args(args));
        assert!(output.status.success(), "{output:?}");
        let help = text(&output.stdout);
        for expected in [
            "--dns-port",
            "--dns-zone",
            "--database-url",
            "--node-name",
            "mDNS",
            "Examples:",
            "prism-server serve --dns-port 53",
            "Exit status:",
            "2  ",
        ] {
            assert!(
                help.contains(expected),
                "{args:?}: {expected:?} missing from\n{help}"
            );
        }
    }
}
