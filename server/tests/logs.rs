//! Logs of the real binary when they do not go to a terminal: plain text without colour
//! codes, or one JSON object per line with `logging.format: json`.

use std::fs::File;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use prism_server::core::protocol::Status;
use prism_testkit::process::{SERVE_ON_LOOPBACK, ServerProcess, prism_command};
use prism_testkit::protocol::{Client, registration};

const BINARY: &str = env!("CARGO_BIN_EXE_prism-server");

fn prism(dir: &Path) -> Command {
    prism_command(BINARY, dir)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn run(command: &mut Command) -> Output {
    command.output().expect("run prism-server")
}

/// `serve` in open auth mode on loopback, every port chosen by the system.
fn serve(dir: &Path) -> Command {
    let mut command = prism(dir);
    command
        .args(SERVE_ON_LOOPBACK)
        .args(["--auth-mode", "open"])
        .env("PRISM_DNS_PORT", "0");
    command
}

/// Starts `serve` with its logs (stderr) going to a file, registers a host so there is more
/// to log than the start-up, stops it and returns what was logged.
async fn logs_written_to_a_file(format: Option<&str>) -> Vec<u8> {
    let dir = tempfile::tempdir().expect("temp dir");
    let log_path = dir.path().join("prism.log");
    let log = File::create(&log_path).expect("log file");
    let mut command = serve(dir.path());
    command.stderr(log);
    if let Some(format) = format {
        command.env("PRISM_LOGGING_FORMAT", format);
    }
    let mut server = ServerProcess::start(&mut command);
    let mut client = Client::connect(server.registration_addr()).await;
    let response = client.call(&registration("logged-host", None)).await;
    assert_eq!(response.status, Status::Success, "{response:?}");
    server.signal("TERM");
    assert!(
        server.exit_within(Duration::from_secs(10)).await.is_some(),
        "the server did not stop"
    );
    std::fs::read(&log_path).expect("read the log")
}

#[tokio::test]
async fn logs_to_a_file_carry_no_colour_codes() {
    let logged = logs_written_to_a_file(None).await;
    let text = text(&logged);
    assert!(text.contains("host registered"), "{text}");
    assert!(
        !logged.contains(&0x1b),
        "ESC (0x1b) in logs that are not on a terminal: {text:?}"
    );
}

#[tokio::test]
async fn json_logs_are_one_json_object_per_line() {
    let logged = logs_written_to_a_file(Some("json")).await;
    let text = text(&logged);
    let lines: Vec<&str> = text.lines().filter(|line| !line.is_empty()).collect();
    assert!(lines.len() >= 3, "{text}");
    for line in &lines {
        let parsed: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|err| panic!("not a JSON line ({err}): {line:?}"));
        assert!(parsed.get("level").is_some(), "{line}");
    }
    assert!(
        lines
            .iter()
            .any(|line| line.contains("\"hostname\":\"logged-host\"")),
        "fields are JSON fields: {text}"
    );
    assert!(!logged.contains(&0x1b), "{text:?}");
}

#[test]
fn check_config_refuses_an_unknown_log_format_naming_the_accepted_ones() {
    let dir = tempfile::tempdir().expect("temp dir");
    let output = run(prism(dir.path())
        .arg("check-config")
        .env("PRISM_LOGGING_FORMAT", "xml"));
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("logging.format")
            && stderr.contains("\"xml\"")
            && stderr.contains("text or json"),
        "{stderr}"
    );
}
