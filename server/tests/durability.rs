//! Durability and shutdown of the real binary: SIGKILL right after a burst of acknowledged
//! registrations loses nothing; SIGTERM flushes the write-behind batch and exits in time.

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use prism_server::core::protocol::Status;
use prism_testkit::process::{SERVE_ON_LOOPBACK, ServerProcess, prism_command};
use prism_testkit::protocol::{Client, registration};

const BINARY: &str = env!("CARGO_BIN_EXE_prism-server");
/// A second loopback address, for a host that moves.
const OTHER_HOST: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

/// The binary, run beside `database`.
fn prism(database: &Path) -> Command {
    prism_command(
        BINARY,
        database.parent().expect("the database is in a directory"),
    )
}

/// `prism-server serve` on `database`, every port chosen by the system.
fn start_server(database: &Path) -> ServerProcess {
    ServerProcess::start(
        prism(database)
            .args(SERVE_ON_LOOPBACK)
            .args(["--rate-limit", "0"])
            .env("PRISM_DNS_PORT", "0")
            .arg("--database-path")
            .arg(database)
            .env("PRISM_LOGGING_LEVEL", "warn")
            .stderr(Stdio::inherit()),
    )
}

fn cli(database: &Path, args: &[&str]) -> String {
    let output = prism(database)
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
    let server = start_server(&database);

    let late_token = create_token(&database, "late");
    let mut workers = Vec::new();
    for worker in 0..4 {
        let (addr, token) = (server.registration_addr(), token.clone());
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
    let mut mover = Client::connect(server.registration_addr()).await;
    assert_eq!(
        mover
            .call(&registration("mover", Some(&token)))
            .await
            .status,
        Status::Success
    );
    let mut moved = Client::connect_from(OTHER_HOST, server.registration_addr()).await;
    let response = moved.call(&registration("mover", Some(&token))).await;
    assert!(response.message.contains("changed"), "{response:?}");
    for worker in workers {
        worker.await.expect("burst worker");
    }
    server.kill();

    let restarted = start_server(&database);
    // Every acknowledged host comes back known and online: a heartbeat, not a new host.
    let mut client = Client::connect(restarted.registration_addr()).await;
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
    let mut moved = Client::connect_from(OTHER_HOST, restarted.registration_addr()).await;
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
    let mut server = start_server(&database);
    let mut client = Client::connect(server.registration_addr()).await;
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

    server.signal("TERM");
    let exit = server
        .exit_within(Duration::from_secs(10))
        .await
        .expect("did not exit within 10 s");
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
