//! The open-file limit: the server raises a low soft limit at start so that every connection
//! its configuration allows — and the refusal of the next one — has a descriptor, and it
//! refuses to start when even the hard limit is too small.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use prism_server::shell::AT_CAPACITY;
use prism_testkit::process::{SERVE_ON_LOOPBACK, ServerProcess};
use prism_testkit::protocol::Client;

const BINARY: &str = env!("CARGO_BIN_EXE_prism-server");

/// `prism-server serve` on loopback port 0 (DNS too), open auth, started by `sh` after
/// `ulimit_args` (e.g. `-Sn 1024`).
fn under_ulimit(dir: &std::path::Path, ulimit_args: &str) -> Command {
    let mut command = Command::new("sh");
    command
        .current_dir(dir)
        .arg("-c")
        .arg(format!("ulimit {ulimit_args} && exec \"$0\" \"$@\""))
        .arg(BINARY)
        .args(SERVE_ON_LOOPBACK)
        .args(["--auth-mode", "open"]);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("PRISM_") {
            command.env_remove(name);
        }
    }
    command
        .env("PRISM_DNS_PORT", "0")
        .env("PRISM_DATABASE_PATH", dir.join("prism.db"));
    command
}

#[tokio::test]
async fn at_a_1024_soft_limit_every_connection_over_capacity_still_gets_the_capacity_message() {
    rlimit::increase_nofile_limit(4096).expect("raise the test's own open-file limit");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut command = under_ulimit(dir.path(), "-Sn 1024");
    // Every test connection comes from 127.0.0.1: only the total limit is under test.
    command.env("PRISM_SERVER_MAX_CONNECTIONS_PER_IP", "0");
    let server = ServerProcess::start(&mut command);
    let mut held = Vec::with_capacity(1000);
    for _ in 0..1000 {
        held.push(Client::connect(server.registration_addr()).await);
    }
    // Past connection ~1010 the old server had no descriptor left to accept with, so these
    // hung instead of being refused.
    for extra in 1..=40 {
        let mut refused = Client::connect(server.registration_addr()).await;
        let answer = tokio::time::timeout(Duration::from_secs(5), refused.recv())
            .await
            .unwrap_or_else(|_| panic!("connection 1000 + {extra} got no answer within 5 s"));
        let message = answer.map(|response| response.message);
        assert_eq!(
            message.as_deref(),
            Some(AT_CAPACITY),
            "connection 1000 + {extra}"
        );
    }
    drop(held);
}

#[test]
fn refuses_to_start_when_the_hard_limit_cannot_hold_the_configuration() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = under_ulimit(dir.path(), "-n 512")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run prism-server");
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().expect("poll prism-server") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("prism-server started (or hung) under a hard limit of 512 open files");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        pipe.read_to_string(&mut stderr).expect("read stderr");
    }
    assert_eq!(status.code(), Some(1), "it must not start: {stderr}");
    assert!(
        stderr.contains("the open-file limit is 512 (hard limit 512)")
            && stderr.contains("server.max_connections 1000")
            && stderr.contains("ulimit -n"),
        "{stderr}"
    );
}
