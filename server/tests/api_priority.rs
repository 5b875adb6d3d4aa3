//! The REST API runs on threads of its own at a lower CPU priority than registrations and
//! DNS, so a busy API (listings of a large registry) cannot delay heartbeats.

use std::process::Stdio;

use prism_server::shell::api::API_NICE_INCREMENT;
use prism_testkit::process::{SERVE_ON_LOOPBACK, ServerProcess, prism_command};

const BINARY: &str = env!("CARGO_BIN_EXE_prism-server");

/// Name and nice value of every thread of process `pid` (from `/proc`).
fn threads(pid: u32) -> Vec<(String, i32)> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("the server's threads");
    tasks
        .filter_map(Result::ok)
        .filter_map(|task| {
            let stat = std::fs::read_to_string(task.path().join("stat")).ok()?;
            // `pid (comm) state ...`: the fields after the closing parenthesis; nice is
            // field 19 of the whole line, the 17th after the name.
            let (name, rest) = stat.split_once(" (")?.1.rsplit_once(") ")?;
            let nice = rest.split_whitespace().nth(16)?.parse().ok()?;
            Some((name.to_owned(), nice))
        })
        .collect()
}

#[test]
fn api_threads_run_at_a_lower_priority_than_the_rest_of_the_server() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = ServerProcess::start(
        prism_command(BINARY, dir.path())
            .args(SERVE_ON_LOOPBACK)
            .env("PRISM_DNS_PORT", "0")
            .env("PRISM_API_WORKER_THREADS", "2")
            .env("PRISM_LOGGING_LEVEL", "warn")
            .stderr(Stdio::inherit()),
    );
    let own_nice = threads(std::process::id())
        .first()
        .map(|(_, nice)| *nice)
        .expect("this test's own nice value");

    let threads = threads(server.id());

    let api: Vec<i32> = threads
        .iter()
        .filter(|(name, _)| name == "prism-api")
        .map(|(_, nice)| *nice)
        .collect();
    assert_eq!(api.len(), 2, "api.worker_threads API threads: {threads:?}");
    let expected = (own_nice + API_NICE_INCREMENT).min(19);
    assert!(api.iter().all(|nice| *nice == expected), "{threads:?}");
    let others: Vec<&(String, i32)> = threads
        .iter()
        .filter(|(name, _)| name != "prism-api")
        .collect();
    assert!(!others.is_empty());
    assert!(
        others.iter().all(|(_, nice)| *nice == own_nice),
        "only the API threads are lowered: {threads:?}"
    );
}
