//! Configuration through the real binary: defaults, the YAML file, precedence
//! (flag > environment > file > default), error messages, `check-config` exit codes and SIGHUP
//! reload of reloadable keys.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use prism_testkit::TestServer;
use prism_testkit::exposition::sample;
use prism_testkit::http::HttpClient;
use prism_testkit::process::{ServerProcess, prism_command};

const BINARY: &str = env!("CARGO_BIN_EXE_prism-server");
/// How long a reload may take to show (polled every 100 ms).
const RELOAD_TIMEOUT: Duration = Duration::from_secs(10);
const RELOAD_POLL: Duration = Duration::from_millis(100);

/// The binary in `dir`, with no `PRISM_*` variables inherited from the test environment.
fn prism(dir: &Path) -> Command {
    prism_command(BINARY, dir)
}

fn run(command: &mut Command) -> Output {
    command.output().expect("prism-server runs")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write config");
    path
}

#[test]
fn check_config_accepts_the_defaults_and_prints_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let output = run(prism(dir.path()).args(["check-config", "--print"]));
    assert!(output.status.success(), "{}", stderr(&output));
    let printed = stdout(&output);
    for line in [
        "tcp_port: 8080",
        "api_port: 8081",
        "max_connections: 1000",
        "path: ./data/prism.db",
        "check_interval: 1.0",
        "timeout_multiplier: 2",
        "grace_period: 30",
        "cleanup_after_days: 30",
        "level: info",
        "mode: token",
    ] {
        assert!(printed.contains(line), "default {line:?} in:\n{printed}");
    }
}

#[test]
fn the_file_given_with_config_sets_values() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = write(
        dir.path(),
        "custom.yaml",
        "server:\n  tcp_port: 9000\nheartbeat:\n  check_interval: 0.5\n",
    );
    let output = run(prism(dir.path())
        .args(["check-config", "--print", "--config"])
        .arg(&file));
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stdout(&output).contains("tcp_port: 9000"));
    assert!(stdout(&output).contains("check_interval: 0.5"));
}

#[test]
fn prism_yaml_in_the_working_directory_is_read_by_default() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "prism.yaml", "server:\n  api_port: 9181\n");
    let output = run(prism(dir.path()).args(["check-config", "--print"]));
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stdout(&output).contains("api_port: 9181"));
    assert!(stderr(&output).contains("prism.yaml"));
}

#[test]
fn flag_overrides_env_which_overrides_file_which_overrides_default() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = write(
        dir.path(),
        "prism.yaml",
        "server:\n  tcp_port: 7001\n  api_port: 7002\n  max_connections: 10\n",
    );
    let output = run(prism(dir.path())
        .args(["check-config", "--print", "--max-connections", "30", "-c"])
        .arg(&file)
        .env("PRISM_SERVER_API_PORT", "7102")
        .env("PRISM_SERVER_MAX_CONNECTIONS", "20"));
    assert!(output.status.success(), "{}", stderr(&output));
    let printed = stdout(&output);
    assert!(
        printed.contains("tcp_port: 7001"),
        "file beats default:\n{printed}"
    );
    assert!(
        printed.contains("api_port: 7102"),
        "env beats file:\n{printed}"
    );
    assert!(
        printed.contains("max_connections: 30"),
        "flag beats env:\n{printed}"
    );
    assert!(
        printed.contains("idle_timeout_secs: 30"),
        "default stays:\n{printed}"
    );
}

#[test]
fn an_unknown_key_is_refused_naming_it_and_the_accepted_keys() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = write(dir.path(), "bad.yaml", "server:\n  tcpport: 9000\n");
    let output = run(prism(dir.path()).args(["check-config", "-c"]).arg(&file));
    assert_eq!(output.status.code(), Some(1));
    let message = stderr(&output);
    assert!(message.contains("server.tcpport"), "{message}");
    assert!(message.contains("unknown key"), "{message}");
    assert!(
        message.contains(" tcp_port"),
        "accepted keys listed: {message}"
    );
    let output = run(prism(dir.path())
        .args(["check-config"])
        .env("PRISM_SERVER_TCPPORT", "1"));
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("PRISM_SERVER_TCPPORT"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn bad_values_are_refused_with_the_key_and_accepted_values() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (yaml, expected) in [
        (
            "auth:\n  mode: sometimes\n",
            ["auth.mode", "expected token or open"],
        ),
        (
            "heartbeat:\n  check_interval: 0\n",
            ["heartbeat.check_interval", "0.01 to 60"],
        ),
        (
            "server:\n  tcp_port: 70000\n",
            ["server.tcp_port", "expected a port number 0–65535"],
        ),
        ("logging:\n  level: \"[[\"\n", ["logging.level", "accepted"]),
        ("unknown_section:\n  a: 1\n", ["unknown_section", "server"]),
    ] {
        let file = write(dir.path(), "bad.yaml", yaml);
        let output = run(prism(dir.path()).args(["check-config", "-c"]).arg(&file));
        assert_eq!(output.status.code(), Some(1), "{yaml}");
        let message = stderr(&output);
        for part in expected {
            assert!(message.contains(part), "{part:?} in {message}");
        }
    }
}

#[test]
fn a_missing_config_file_is_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let output = run(prism(dir.path()).args(["check-config", "-c", "absent.yaml"]));
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("absent.yaml"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn serve_refuses_to_start_with_an_invalid_configuration() {
    let dir = tempfile::tempdir().expect("tempdir");
    let output = run(prism(dir.path())
        .args(["serve", "--tcp-port", "0"])
        .env("PRISM_HEARTBEAT_INTERVAL", "soon"));
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("PRISM_HEARTBEAT_INTERVAL"),
        "{}",
        stderr(&output)
    );
}

/// `prism-server` serving `config` in `dir`.
fn start_server(dir: &Path, config: &Path) -> ServerProcess {
    ServerProcess::start(prism(dir).arg("--config").arg(config).stderr(Stdio::null()))
}

/// Polls the metrics until the sample `name` is `value` (at most 10 s).
async fn wait_for(api: SocketAddr, name: &str, value: f64) -> String {
    let api = HttpClient::new(api);
    let mut last = None;
    for _ in 0..RELOAD_TIMEOUT.as_millis() / RELOAD_POLL.as_millis() {
        let text = api.scrape().await;
        last = sample(&text, name);
        if last == Some(value) {
            return text;
        }
        tokio::time::sleep(RELOAD_POLL).await;
    }
    panic!("{name} never became {value} (last {last:?})");
}

/// Polls `/api/health` until `done` holds for its body (at most 10 s) and returns the body.
async fn wait_for_health(
    api: SocketAddr,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let api = HttpClient::new(api);
    let mut last = serde_json::Value::Null;
    for _ in 0..RELOAD_TIMEOUT.as_millis() / RELOAD_POLL.as_millis() {
        let (status, body) = api.get_json("/api/health", None).await;
        assert_eq!(status, 200, "{body}");
        if done(&body) {
            return body;
        }
        last = body;
        tokio::time::sleep(RELOAD_POLL).await;
    }
    panic!("/api/health never showed the reloaded value; last: {last}");
}

fn server_yaml(dir: &Path, maintenance: bool) -> String {
    server_yaml_with_message(dir, maintenance, "")
}

/// A configuration serving on loopback port 0, with `maintenance.*` as given.
fn server_yaml_with_message(dir: &Path, maintenance: bool, message: &str) -> String {
    format!(
        "server:\n  host: 127.0.0.1\n  tcp_port: 0\n  api_port: 0\n\
         database:\n  path: {}\n\
         dns:\n  enabled: false\n\
         maintenance:\n  enabled: {maintenance}\n  message: {message:?}\n",
        dir.join("prism.db").display()
    )
}

#[tokio::test]
async fn sighup_reloads_maintenance_mode_and_updates_the_reload_metrics() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write(dir.path(), "prism.yaml", &server_yaml(dir.path(), false));
    let server = start_server(dir.path(), &config);
    let api = server.api_addr();
    let before = wait_for(api, "prism_config_last_reload_successful", 1.0).await;
    assert_eq!(sample(&before, "prism_maintenance_mode"), Some(0.0));
    let hash_before = sample(&before, "prism_config_hash").expect("hash");

    write(dir.path(), "prism.yaml", &server_yaml(dir.path(), true));
    server.signal("HUP");
    let after = wait_for(api, "prism_maintenance_mode", 1.0).await;
    assert_eq!(
        sample(&after, "prism_config_last_reload_successful"),
        Some(1.0)
    );
    assert_ne!(sample(&after, "prism_config_hash"), Some(hash_before));
    assert!(
        sample(&after, "prism_config_last_reload_timestamp_seconds")
            >= sample(&before, "prism_config_last_reload_timestamp_seconds")
    );
    let (_, health) = HttpClient::new(api).get_json("/api/health", None).await;
    assert_eq!(health["maintenance"], true, "{health}");

    // A broken file is refused: the previous configuration stays and the failure is visible.
    write(dir.path(), "prism.yaml", "server: [unclosed\n");
    server.signal("HUP");
    let failed = wait_for(api, "prism_config_last_reload_successful", 0.0).await;
    assert_eq!(sample(&failed, "prism_maintenance_mode"), Some(1.0));
}

#[tokio::test]
async fn sighup_shows_the_new_maintenance_message_on_the_health_endpoint() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write(dir.path(), "prism.yaml", &server_yaml(dir.path(), false));
    let server = start_server(dir.path(), &config);
    let before = wait_for_health(server.api_addr(), |_| true).await;
    assert_eq!(before["maintenance"], false, "{before}");
    assert!(
        before.get("maintenance_message").is_none(),
        "no message while maintenance is off: {before}"
    );

    // Switched on with a message, then only the message changes.
    for message in [
        "database upgrade: ticket OPS-42",
        "extended until 14:00 UTC, \"really\"",
    ] {
        let yaml = server_yaml_with_message(dir.path(), true, message);
        write(dir.path(), "prism.yaml", &yaml);
        server.signal("HUP");
        let health = wait_for_health(server.api_addr(), |health| {
            health["maintenance_message"] == message
        })
        .await;
        assert_eq!(health["maintenance"], true, "{health}");
    }
}

#[tokio::test]
async fn reload_applies_rate_limit_and_reports_keys_that_need_a_restart() {
    use prism_server::config::ConfigSources;
    use prism_server::config::reload::Reloader;
    use std::sync::Arc;

    let dir = tempfile::tempdir().expect("tempdir");
    let file = write(
        dir.path(),
        "prism.yaml",
        "rate_limit:\n  registrations_per_minute: 10\n",
    );
    let sources = ConfigSources {
        file: Some(file),
        ..ConfigSources::default()
    };
    let core = TestServer::builder(sources.load().expect("valid"))
        .start_node()
        .await;
    let reloader = Reloader::new(
        core.config().clone(),
        sources,
        core.metrics().clone(),
        Arc::clone(core.clock()),
        Box::new(|_| Ok(())),
    );
    write(
        dir.path(),
        "prism.yaml",
        "rate_limit:\n  registrations_per_minute: 0\nserver:\n  tcp_port: 9999\nlogging:\n  level: debug\n",
    );
    let report = reloader.reload().expect("reload");
    assert_eq!(
        report.applied,
        ["logging.level", "rate_limit.registrations_per_minute"]
    );
    assert_eq!(report.needs_restart, ["server.tcp_port"]);
    let live = core.config().get();
    assert_eq!(live.rate_limit.registrations_per_minute, 0);
    assert_eq!(live.server.tcp_port, 8080, "not applied until restart");
}

#[test]
fn the_configuration_table_documents_every_key_and_its_environment_variable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let output = run(prism(dir.path()).args(["check-config", "--keys"]));
    assert!(output.status.success(), "{}", stderr(&output));
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/CONFIGURATION.md"
    ))
    .expect("docs/CONFIGURATION.md");
    let keys = stdout(&output);
    assert!(keys.lines().count() > 20, "{keys}");
    for line in keys.lines() {
        let mut fields = line.split('\t');
        let (Some(key), Some(env)) = (fields.next(), fields.next()) else {
            panic!("malformed --keys line {line:?}");
        };
        assert!(
            doc.contains(&format!("| `{key}` |")) && doc.contains(&format!("`{env}`")),
            "docs/CONFIGURATION.md lists {key} and {env}"
        );
    }
}
