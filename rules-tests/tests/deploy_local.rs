//! `scripts/deploy-monitoring.sh local` without Docker starts Prometheus and Alertmanager,
//! Prometheus scrapes every Prism node it was given as its own target, the URLs it prints
//! answer, its Grafana import command loads the dashboard, and `stop` tears everything down.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use prism_rules_tests::{deploy_script, find_tool};

const FAKE_PRISM_METRICS: &str = "# HELP prism_build_info Build information.\n\
# TYPE prism_build_info gauge\n\
prism_build_info{version=\"test\"} 1\n\
# HELP prism_tcp_active_connections Open registration connections.\n\
# TYPE prism_tcp_active_connections gauge\n\
prism_tcp_active_connections 0\n";

/// One HTTP request as a fake server received it.
struct Request {
    head: String,
    body: String,
}

/// Reads one HTTP/1.x request (head and a `Content-Length` body).
fn read_request(stream: &TcpStream) -> Request {
    let mut reader = BufReader::new(stream.try_clone().expect("clone stream"));
    let mut head = String::new();
    let mut line = String::new();
    while reader.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
        if line == "\r\n" || line == "\n" {
            break;
        }
        head.push_str(&line);
        line.clear();
    }
    let length = head
        .lines()
        .find_map(|header| {
            let (name, value) = header.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    let mut body = vec![0; length];
    let _ = reader.read_exact(&mut body);
    Request {
        head,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

fn respond(mut stream: TcpStream, content_type: &str, body: &str) {
    let response = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes());
}

/// A stand-in for a Prism node's REST port that answers every request with a small exposition.
fn start_fake_prism() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind fake Prism");
    let address = listener
        .local_addr()
        .expect("fake Prism address")
        .to_string();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            read_request(&stream);
            respond(stream, "text/plain; version=0.0.4", FAKE_PRISM_METRICS);
        }
    });
    address
}

/// A stand-in for Grafana's HTTP API that hands every request it receives to the test.
fn start_fake_grafana() -> (String, mpsc::Receiver<Request>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind fake Grafana");
    let address = listener.local_addr().expect("fake Grafana address");
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let request = read_request(&stream);
            respond(
                stream,
                "application/json",
                r#"{"status":"success","uid":"prism-overview"}"#,
            );
            if sender.send(request).is_err() {
                break;
            }
        }
    });
    (format!("http://{address}"), receiver)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("find a free loopback port")
        .port()
}

/// Status code and body of a GET to `url` (`http://127.0.0.1:PORT/path`).
fn http_get(url: &str) -> Option<(u16, String)> {
    let rest = url.strip_prefix("http://")?;
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let mut stream = TcpStream::connect(authority).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let path = if path.is_empty() { "/" } else { path };
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())?;
    Some((status, body))
}

/// Runs the deploy script with this test's ports and state dir.
struct Deployment {
    state_dir: tempfile::TempDir,
    prism_targets: Vec<String>,
    prometheus_port: u16,
    alertmanager_port: u16,
    node_exporter_port: u16,
}

impl Deployment {
    fn run(&self, command: &str) -> Output {
        deploy_script()
            .arg(command)
            .arg("--native")
            .env("PRISM_MONITORING_DIR", self.state_dir.path())
            .env("PRISM_TARGETS", self.prism_targets.join(","))
            .env("PRISM_PROMETHEUS_PORT", self.prometheus_port.to_string())
            .env(
                "PRISM_ALERTMANAGER_PORT",
                self.alertmanager_port.to_string(),
            )
            .env(
                "PRISM_NODE_EXPORTER_PORT",
                self.node_exporter_port.to_string(),
            )
            .env("PRISM_SCRAPE_INTERVAL", "1s")
            .env("PRISM_MONITORING_READY_TIMEOUT", "30")
            .output()
            .expect("run scripts/deploy-monitoring.sh")
    }

    fn pid_files(&self) -> Vec<PathBuf> {
        ["prometheus", "alertmanager", "node-exporter"]
            .iter()
            .map(|name| self.state_dir.path().join(format!("pids/{name}.pid")))
            .filter(|path| path.exists())
            .collect()
    }
}

/// Tears the stack down even when an assertion fails.
impl Drop for Deployment {
    fn drop(&mut self) {
        let _ = self.run("stop");
    }
}

fn process_running(pid: &str) -> bool {
    std::fs::read_to_string(Path::new("/proc").join(pid).join("stat"))
        .map(|stat| stat.split_whitespace().nth(2) != Some("Z"))
        .unwrap_or(false)
}

/// The health Prometheus reports for each `prism` target, by instance.
fn prism_target_health(prometheus_port: u16) -> Vec<(String, String)> {
    let Some((200, body)) = http_get(&format!(
        "http://127.0.0.1:{prometheus_port}/api/v1/targets"
    )) else {
        return Vec::new();
    };
    let json: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    let mut health: Vec<(String, String)> = json["data"]["activeTargets"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter(|target| target["labels"]["job"] == "prism")
        .map(|target| {
            (
                target["labels"]["instance"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                target["health"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    health.sort();
    health
}

/// The URL the script printed on the line starting with `label`.
fn printed_url(output: &str, label: &str) -> String {
    output
        .lines()
        .find_map(|line| line.trim_start().strip_prefix(label))
        .map(|rest| {
            rest.split_whitespace()
                .next()
                .unwrap_or_default()
                .to_owned()
        })
        .unwrap_or_else(|| panic!("no `{label}` line in the output:\n{output}"))
}

/// Runs the Grafana import command the script printed against a fake Grafana and returns
/// the request Grafana received.
fn run_printed_grafana_import(output: &str) -> Request {
    let command = output
        .lines()
        .find(|line| line.contains("/api/dashboards/db"))
        .unwrap_or_else(|| panic!("no Grafana import command in the output:\n{output}"));
    let (grafana_url, requests) = start_fake_grafana();
    let import = Command::new("bash")
        .arg("-c")
        .arg(command)
        .env("GRAFANA_URL", &grafana_url)
        .env("GRAFANA_TOKEN", "test-token")
        .output()
        .expect("run the import command");
    assert!(
        import.status.success(),
        "the printed import command failed: {command}\n{}",
        String::from_utf8_lossy(&import.stderr)
    );
    requests
        .recv_timeout(Duration::from_secs(5))
        .expect("the fake Grafana received the import")
}

#[test]
fn local_deploy_without_docker_scrapes_every_node_prints_working_urls_and_stop_tears_it_down() {
    for tool in ["prometheus", "prometheus-alertmanager"] {
        find_tool(tool).unwrap_or_else(|problem| panic!("{problem}"));
    }
    let deployment = Deployment {
        state_dir: tempfile::tempdir().expect("state dir"),
        prism_targets: vec![start_fake_prism(), start_fake_prism()],
        prometheus_port: free_port(),
        alertmanager_port: free_port(),
        node_exporter_port: free_port(),
    };

    let started = deployment.run("local");
    let output = String::from_utf8_lossy(&started.stdout).into_owned();
    assert!(
        started.status.success(),
        "deploy-monitoring.sh local failed:\n{output}{}",
        String::from_utf8_lossy(&started.stderr)
    );
    for label in ["Prometheus", "Targets", "Alerts", "Alertmanager"] {
        let url = printed_url(&output, label);
        let status = http_get(&url).map(|(status, _)| status);
        assert_eq!(
            status,
            Some(200),
            "the printed {label} URL {url} does not answer 200:\n{output}"
        );
    }
    assert!(
        printed_url(&output, "Targets")
            .starts_with(&format!("http://127.0.0.1:{}/", deployment.prometheus_port)),
        "{output}"
    );
    assert!(
        output.contains("Grafana: not started") && output.contains("no Grafana"),
        "the output does not say plainly that no Grafana runs:\n{output}"
    );

    let deadline = Instant::now() + Duration::from_secs(30);
    let mut wanted: Vec<(String, String)> = deployment
        .prism_targets
        .iter()
        .map(|target| (target.clone(), "up".to_owned()))
        .collect();
    wanted.sort();
    let mut health = Vec::new();
    while Instant::now() < deadline {
        health = prism_target_health(deployment.prometheus_port);
        if health == wanted {
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    assert_eq!(
        health, wanted,
        "Prometheus did not report every Prism node as its own `up` target within 30 s"
    );

    let import = run_printed_grafana_import(&output);
    assert!(
        import.head.starts_with("POST /api/dashboards/db "),
        "{}",
        import.head
    );
    assert!(
        import
            .head
            .to_ascii_lowercase()
            .contains("authorization: bearer test-token"),
        "{}",
        import.head
    );
    let payload: serde_json::Value =
        serde_json::from_str(&import.body).expect("the import body is JSON");
    assert_eq!(payload["overwrite"], true);
    assert_eq!(payload["dashboard"]["title"], "Prism DNS Overview");

    let pids: Vec<String> = deployment
        .pid_files()
        .iter()
        .map(|path| {
            std::fs::read_to_string(path)
                .expect("read pid file")
                .trim()
                .to_owned()
        })
        .collect();
    assert!(
        pids.len() >= 2,
        "expected pid files for Prometheus and Alertmanager, got {pids:?}"
    );

    let stopped = deployment.run("stop");
    assert!(
        stopped.status.success(),
        "deploy-monitoring.sh stop failed:\n{}",
        String::from_utf8_lossy(&stopped.stderr)
    );
    let survivors: Vec<&String> = pids.iter().filter(|pid| process_running(pid)).collect();
    assert!(
        survivors.is_empty(),
        "still running after stop: {survivors:?}"
    );
    assert!(
        deployment.pid_files().is_empty(),
        "stop left pid files behind"
    );
}
