//! `scripts/deploy-monitoring.sh local` without Docker starts Prometheus and Alertmanager, Prometheus scrapes a Prism target as up, and `stop` tears everything down.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use prism_rules_tests::{find_tool, repo_root};

const FAKE_PRISM_METRICS: &str = "# HELP prism_build_info Build information.\n\
# TYPE prism_build_info gauge\n\
prism_build_info{version=\"test\"} 1\n\
# HELP prism_tcp_active_connections Open registration connections.\n\
# TYPE prism_tcp_active_connections gauge\n\
prism_tcp_active_connections 0\n";

/// A stand-in for Prism's REST port that answers every request with a small exposition.
fn start_fake_prism() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind fake Prism");
    let address = listener
        .local_addr()
        .expect("fake Prism address")
        .to_string();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            answer_with_metrics(stream);
        }
    });
    address
}

fn answer_with_metrics(mut stream: TcpStream) {
    let mut reader = BufReader::new(stream.try_clone().expect("clone stream"));
    let mut line = String::new();
    // Read the request head; the body of a GET is empty.
    while reader.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
        if line == "\r\n" || line == "\n" {
            break;
        }
        line.clear();
    }
    let response = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{FAKE_PRISM_METRICS}",
        FAKE_PRISM_METRICS.len()
    );
    let _ = stream.write_all(response.as_bytes());
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("find a free loopback port")
        .port()
}

fn http_get(port: u16, path: &str) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
}

/// Runs the deploy script with this test's ports and state dir.
struct Deployment {
    state_dir: tempfile::TempDir,
    prism_target: String,
    prometheus_port: u16,
    alertmanager_port: u16,
    node_exporter_port: u16,
}

impl Deployment {
    fn run(&self, command: &str) -> Output {
        Command::new(repo_root().join("scripts/deploy-monitoring.sh"))
            .arg(command)
            .arg("--native")
            .env("PRISM_MONITORING_DIR", self.state_dir.path())
            .env("PRISM_TARGET", &self.prism_target)
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

fn prism_target_health(prometheus_port: u16) -> Option<String> {
    let body = http_get(prometheus_port, "/api/v1/targets")?;
    let json: serde_json::Value = serde_json::from_str(&body).ok()?;
    json["data"]["activeTargets"]
        .as_array()?
        .iter()
        .find(|target| target["labels"]["job"] == "prism")
        .and_then(|target| target["health"].as_str().map(str::to_owned))
}

#[test]
fn local_deploy_without_docker_scrapes_prism_and_stop_tears_it_down() {
    for tool in ["prometheus", "prometheus-alertmanager"] {
        find_tool(tool).unwrap_or_else(|problem| panic!("{problem}"));
    }
    let deployment = Deployment {
        state_dir: tempfile::tempdir().expect("state dir"),
        prism_target: start_fake_prism(),
        prometheus_port: free_port(),
        alertmanager_port: free_port(),
        node_exporter_port: free_port(),
    };

    let started = deployment.run("local");
    assert!(
        started.status.success(),
        "deploy-monitoring.sh local failed:\n{}{}",
        String::from_utf8_lossy(&started.stdout),
        String::from_utf8_lossy(&started.stderr)
    );
    let access_points = String::from_utf8_lossy(&started.stdout);
    assert!(
        access_points.contains(&format!("http://127.0.0.1:{}", deployment.prometheus_port)),
        "access points not printed:\n{access_points}"
    );
    assert!(
        http_get(deployment.alertmanager_port, "/-/ready").is_some(),
        "Alertmanager does not answer on its port"
    );

    let deadline = Instant::now() + Duration::from_secs(30);
    let mut health = None;
    while Instant::now() < deadline {
        health = prism_target_health(deployment.prometheus_port);
        if health.as_deref() == Some("up") {
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    assert_eq!(
        health.as_deref(),
        Some("up"),
        "Prometheus never reported the Prism target up within 30 s"
    );

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
