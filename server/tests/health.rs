//! `/api/health` tells whether writes succeed: a full disk or a database file deleted while
//! the server runs reads as degraded (503), and the registrations those writes refused are
//! served nowhere.

use std::process::Command;

use prism_server::core::protocol::Status;
use prism_server::store::SqliteStore;
use prism_testkit::TestServer;
use prism_testkit::http::HttpClient;
use prism_testkit::process::{SERVE_ON_LOOPBACK, ServerProcess};
use prism_testkit::protocol::{Client, registration};
use prism_testkit::setup::open_config;

const BINARY: &str = env!("CARGO_BIN_EXE_prism-server");
/// Registrations tried before the small file system must have filled up.
const FILL_ATTEMPTS: usize = 5_000;

/// `prism-server` with its database on a 256 KiB tmpfs of its own: a private mount
/// namespace (`unshare`), so the test needs no privilege and leaves no mount behind.
fn server_on_a_tiny_disk(dir: &std::path::Path) -> Command {
    let disk = dir.join("disk");
    std::fs::create_dir_all(&disk).expect("mount point");
    let mut command = Command::new("unshare");
    command
        .args(["--map-root-user", "--mount", "sh", "-c"])
        .arg("mount -t tmpfs -o size=256k tmpfs \"$1\" && shift && exec \"$@\"")
        .arg("sh")
        .arg(&disk)
        .arg(BINARY)
        .args(SERVE_ON_LOOPBACK)
        .args(["--auth-mode", "open", "--rate-limit", "0"])
        .arg("--database-path")
        .arg(disk.join("prism.db"))
        .current_dir(dir);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("PRISM_") {
            command.env_remove(name);
        }
    }
    command.env("PRISM_DNS_PORT", "0");
    command
}

#[tokio::test]
async fn a_full_disk_reads_as_degraded_and_refused_hosts_are_served_nowhere() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = ServerProcess::start(&mut server_on_a_tiny_disk(dir.path()));
    let api = HttpClient::new(server.api_addr());
    assert_eq!(api.get_json("/api/health", None).await.0, 200);

    let mut client = Client::connect(server.registration_addr()).await;
    let mut refused = None;
    for n in 0..FILL_ATTEMPTS {
        let hostname = format!("filler-{n:05}.{}", vec!["x".repeat(60); 2].join("."));
        let response = client.call(&registration(&hostname, None)).await;
        if response.status == Status::Error {
            assert!(
                response.message.contains("full"),
                "refused for another reason: {response:?}"
            );
            refused = Some(hostname);
            break;
        }
    }
    let refused = refused
        .unwrap_or_else(|| panic!("{FILL_ATTEMPTS} registrations fit on a 256 KiB file system"));

    // At once (the failed commit marks the store degraded), and after the probe outcome
    // expires (the probe's own write fails).
    for wait_ms in [0, 1100] {
        tokio::time::sleep(std::time::Duration::from_millis(wait_ms)).await;
        let (status, health) = api.get_json("/api/health", None).await;
        assert_eq!(
            status, 503,
            "health {wait_ms} ms after the disk filled: {health}"
        );
        assert!(
            health["detail"]
                .as_str()
                .is_some_and(|d| d.contains("full")),
            "{health}"
        );
    }
    let (status, host) = api.get_json(&format!("/api/hosts/{refused}"), None).await;
    assert_eq!(
        status, 404,
        "a host whose write failed is served by the API: {host}"
    );
}

#[tokio::test]
async fn a_database_deleted_at_run_time_reads_as_degraded_and_refuses_writes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("prism.db");
    let store = SqliteStore::open(&path, None).expect("open the database");
    let server = TestServer::builder(open_config())
        .store(store)
        .api()
        .start()
        .await;
    server.register("before", None).await;
    assert_eq!(server.api().get_json("/api/health", None).await.0, 200);

    for file in ["prism.db", "prism.db-wal", "prism.db-shm"] {
        let _ = std::fs::remove_file(dir.path().join(file));
    }
    let response = server
        .connect()
        .await
        .call(&registration("after", None))
        .await;
    assert_eq!(
        response.status,
        Status::Error,
        "a write into the deleted file was acknowledged: {response:?}"
    );
    assert!(response.message.contains("deleted"), "{response:?}");
    // The probe outcome is reused for a second at most.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let (status, health) = server.api().get_json("/api/health", None).await;
    assert_eq!(status, 503, "{health}");
    assert!(server.node().registry().get("after").is_none());
    server.shutdown().await;
}
