//! Durability and shutdown of the real binary: SIGKILL right after a burst of acknowledged
//! registrations loses nothing; SIGTERM flushes the write-behind batch and exits in time.

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Client, registration};
use prism_server::core::protocol::Status;

const BINARY: &str = env!("CARGO_BIN_EXE_prism-server");

/// A server process; killed on drop so a failing test leaves nothing behind.
struct ServerProcess {
    child: Child,
    addr: SocketAddr,
}

impl ServerProcess {
    fn start(database: &Path) -> Self {
        let mut child = Command::new(BINARY)
            .args([
                "serve",
                "--host",
                "127.0.0.1",
                "--tcp-port",
                "0",
                "--api-port",
                "0",
            ])
            .args(["--rate-limit", "0"])
            .env("PRISM_DNS_PORT", "0")
            .arg("--database-path")
            .arg(database)
            .env("PRISM_LOGGING_LEVEL", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start prism-server");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let addr = loop {
            let line = lines
                .next()
                .expect("prism-server printed its address before exiting")
                .expect("read stdout");
            if let Some(addr) = line.strip_prefix("prism-server listening for registrations on ") {
                break addr.parse().expect("a socket address");
            }
        };
        // Keep reading so later start-up lines never meet a closed pipe.
        std::thread::spawn(move || lines.for_each(drop));
        Self { child, addr }
    }

    fn kill(mut self) {
        // std's Child::kill sends SIGKILL: no shutdown code runs.
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reap");
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn cli(database: &Path, args: &[&str]) -> String {
    let output = Command::new(BINARY)
        .args(args)
        .arg("--database-path")
        .arg(database)
        .output()
        .expect("run prism-server CLI");
    assert!(output.status.success(), "{args:?} failed: {output:?}");
    String::from_utf8(output.stdout).expect("utf8")
}

/// Creates a token for `owner` with the CLI and returns it.
fn create_token(database: &Path, owner: &str) -> String {
    cli(database, &["token", "create", "--owner", owner])
        .trim()
        .to_owned()
}

#[tokio::test]
async fn sigkill_after_acknowledged_burst_loses_no_host_and_no_token() {
    let dir = tempfile::tempdir().expect("tempdir");
    let database = dir.path().join("prism.db");
    let token = create_token(&database, "fleet");
    let server = ServerProcess::start(&database);

    let late_token = create_token(&database, "late");
    let mut workers = Vec::new();
    for worker in 0..4 {
        let (addr, token) = (server.addr, token.clone());
        workers.push(tokio::spawn(async move {
            let mut client = Client::connect(addr).await;
            for i in 0..50 {
                let response = client
                    .call(&registration(&format!("burst-{worker}-{i}"), Some(&token)))
                    .await;
                assert_eq!(response.status, Status::Success, "{response:?}");
            }
        }));
    }
    let mut mover = Client::connect(server.addr).await;
    assert_eq!(
        mover
            .call(&registration("mover", Some(&token)))
            .await
            .status,
        Status::Success
    );
    let mut moved = Client::connect_from("127.0.0.2:0".parse().expect("addr"), server.addr).await;
    let response = moved.call(&registration("mover", Some(&token))).await;
    assert!(response.message.contains("changed"), "{response:?}");
    for worker in workers {
        worker.await.expect("burst worker");
    }
    server.kill();

    let restarted = ServerProcess::start(&database);
    // Every acknowledged host comes back known and online: a heartbeat, not a new host.
    let mut client = Client::connect(restarted.addr).await;
    for worker in 0..4 {
        for i in 0..50 {
            let hostname = format!("burst-{worker}-{i}");
            let response = client.call(&registration(&hostname, Some(&token))).await;
            assert!(
                response.message.starts_with("Heartbeat accepted"),
                "{hostname} was acknowledged before SIGKILL but is not known after restart: {response:?}"
            );
        }
    }
    let mut moved =
        Client::connect_from("127.0.0.2:0".parse().expect("addr"), restarted.addr).await;
    let response = moved.call(&registration("mover", Some(&token))).await;
    assert!(
        response.message.starts_with("Heartbeat accepted"),
        "the acknowledged move survived: {response:?}"
    );
    let late = client
        .call(&registration("late-host", Some(&late_token)))
        .await;
    assert_eq!(
        late.status,
        Status::Success,
        "token created while running survived: {late:?}"
    );
    let tokens = cli(&database, &["token", "list"]);
    assert!(
        tokens.contains("fleet") && tokens.contains("late"),
        "{tokens}"
    );
}

#[tokio::test]
async fn sigterm_flushes_heartbeat_freshness_and_exits_promptly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let database = dir.path().join("prism.db");
    let token = create_token(&database, "ops");
    let mut server = ServerProcess::start(&database);
    let mut client = Client::connect(server.addr).await;
    assert_eq!(
        client
            .call(&registration("hb-01", Some(&token)))
            .await
            .status,
        Status::Success
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let heartbeat_sent = std::time::SystemTime::now();
    assert_eq!(
        client
            .call(&registration("hb-01", Some(&token)))
            .await
            .status,
        Status::Success
    );

    let pid = server.child.id().to_string();
    let signalled = Instant::now();
    let status = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("send SIGTERM");
    assert!(status.success());
    let exit = loop {
        if let Some(exit) = server.child.try_wait().expect("poll child") {
            break exit;
        }
        assert!(
            signalled.elapsed() < Duration::from_secs(10),
            "did not exit within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(exit.success(), "clean exit: {exit:?}");

    let conn = rusqlite::Connection::open(&database).expect("open database");
    let last_seen_ms: i64 = conn
        .query_row(
            "SELECT last_seen_ms FROM hosts WHERE hostname = 'hb-01'",
            [],
            |row| row.get(0),
        )
        .expect("host stored");
    let heartbeat_ms = prism_server::core::clock::unix_millis(heartbeat_sent);
    assert!(
        last_seen_ms >= heartbeat_ms,
        "the heartbeat's freshness ({heartbeat_ms}) was flushed at shutdown; stored {last_seen_ms}"
    );
}
