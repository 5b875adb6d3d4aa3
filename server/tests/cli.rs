//! The binary as an operator first meets it: the flags, their help and their exit codes.

use std::path::Path;
use std::process::{Command, Output};

use prism_testkit::process::prism_command;

const BINARY: &str = env!("CARGO_BIN_EXE_prism-server");
fn prism(dir: &Path) -> Command {
    prism_command(BINARY, dir)
}

fn run(command: &mut Command) -> Output {
    command.output().expect("run prism-server")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
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
