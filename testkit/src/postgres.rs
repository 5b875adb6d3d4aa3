//! A throwaway PostgreSQL server for one test: `initdb` in a temporary directory, a server on
//! a free loopback port, stopped (and its files removed) when the value is dropped — also
//! when the test fails.
//!
//! The server binaries (`initdb`, `pg_ctl`) come from `PRISM_TEST_PG_BINDIR`, else the newest
//! `/usr/lib/postgresql/<version>/bin` (where Debian's `postgresql` package puts them, off
//! PATH), else PATH. PostgreSQL refuses to run as root, so under root they run as the
//! `postgres` user through `runuser`.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tempfile::TempDir;

/// The database every test server starts with.
const MAINTENANCE_DB: &str = "postgres";
/// The superuser `initdb` creates (trust authentication on loopback: test only).
const SUPERUSER: &str = "postgres";
/// Attempts at finding a free port (another process may take the one just probed).
const START_ATTEMPTS: u32 = 5;

/// A running throwaway PostgreSQL server.
pub struct TestPostgres {
    /// Holds the data directory, the socket directory and the server log.
    dir: TempDir,
    /// Where `initdb`, `pg_ctl` and `psql` are.
    bindir: PathBuf,
    /// The loopback port it listens on.
    port: u16,
    /// Whether the binaries run as the `postgres` user (the test runs as root).
    as_postgres: bool,
}

impl TestPostgres {
    /// Creates and starts a server; fails the test with what to install when PostgreSQL's
    /// server binaries are not on this machine.
    pub fn start() -> Self {
        let bindir = server_bindir();
        let as_postgres = rustix::process::geteuid().is_root();
        let dir = tempfile::Builder::new()
            .prefix("prism-pg-")
            .tempdir()
            .expect("temporary directory for PostgreSQL");
        if as_postgres {
            hand_to_postgres(dir.path());
        }
        let data = dir.path().join("data");
        let mut server = Self {
            dir,
            bindir,
            port: 0,
            as_postgres,
        };
        let initdb = server.run_server_binary(
            "initdb",
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-U".as_ref(),
                SUPERUSER.as_ref(),
                "-A".as_ref(),
                "trust".as_ref(),
                "-E".as_ref(),
                "UTF8".as_ref(),
                "--locale=C".as_ref(),
                "--no-sync".as_ref(),
            ],
        );
        assert!(
            initdb.status.success(),
            "initdb failed: {}",
            describe(&initdb)
        );
        for attempt in 1..=START_ATTEMPTS {
            server.port = free_port();
            if server.try_start() {
                return server;
            }
            eprintln!(
                "PostgreSQL did not start on port {} (attempt {attempt}): {}",
                server.port,
                server.log_tail()
            );
        }
        panic!("PostgreSQL did not start: {}", server.log_tail());
    }

    /// The loopback port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL of database `name` (which [`TestPostgres::create_database`] creates).
    pub fn url(&self, name: &str) -> String {
        format!("postgres://{SUPERUSER}@127.0.0.1:{}/{name}", self.port)
    }

    /// Creates database `name` and returns its URL.
    pub fn create_database(&self, name: &str) -> String {
        self.psql(MAINTENANCE_DB, &format!("CREATE DATABASE \"{name}\""));
        self.url(name)
    }

    /// Runs `sql` in database `name` with `psql` and returns its unaligned, tuples-only output
    /// (one row a line, columns separated by `|`); fails the test when `psql` fails.
    pub fn psql(&self, name: &str, sql: &str) -> String {
        let output = Command::new(self.bindir.join("psql"))
            .args([
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                "127.0.0.1",
            ])
            .args([
                "-p",
                &self.port.to_string(),
                "-U",
                SUPERUSER,
                "-d",
                name,
                "-c",
                sql,
            ])
            .output()
            .expect("run psql");
        assert!(
            output.status.success(),
            "psql {sql:?}: {}",
            describe(&output)
        );
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }

    /// Stops the server (fast shutdown: clients are disconnected, everything committed stays).
    pub fn stop(&self) {
        let stopped = self.pg_ctl(&["stop", "-m", "fast", "-w"]);
        assert!(
            stopped.status.success(),
            "pg_ctl stop: {}",
            describe(&stopped)
        );
    }

    /// Starts the stopped server again on the same port.
    pub fn restart(&self) {
        assert!(
            self.try_start(),
            "PostgreSQL did not start again on port {}: {}",
            self.port,
            self.log_tail()
        );
    }

    /// `pg_ctl start` on the current port; whether the server came up.
    fn try_start(&self) -> bool {
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {} -c fsync=off -c max_connections=200",
            self.port,
            self.dir.path().display()
        );
        self.pg_ctl(&["start", "-w", "-t", "30", "-o", &options])
            .status
            .success()
    }

    fn pg_ctl(&self, args: &[&str]) -> Output {
        let data = self.dir.path().join("data");
        let log = self.dir.path().join("server.log");
        let mut all: Vec<&std::ffi::OsStr> = vec![
            "-D".as_ref(),
            data.as_os_str(),
            "-l".as_ref(),
            log.as_os_str(),
        ];
        all.extend(args.iter().map(|arg| std::ffi::OsStr::new(*arg)));
        self.run_server_binary("pg_ctl", &all)
    }

    /// Runs one of the server binaries, as `postgres` when the test runs as root.
    fn run_server_binary(&self, name: &str, args: &[&std::ffi::OsStr]) -> Output {
        let binary = self.bindir.join(name);
        let mut command = if self.as_postgres {
            let mut command = Command::new("runuser");
            command.args(["-u", SUPERUSER, "--"]).arg(&binary);
            command
        } else {
            Command::new(&binary)
        };
        command
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .unwrap_or_else(|err| panic!("cannot run {}: {err}", binary.display()))
    }

    /// The end of the server log, for failure messages.
    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for TestPostgres {
    fn drop(&mut self) {
        // Immediate: nothing to keep, and the test may be unwinding from a failure.
        let _ = self.pg_ctl(&["stop", "-m", "immediate", "-w"]);
    }
}

/// Where PostgreSQL's server binaries are; fails the test with what to install otherwise.
fn server_bindir() -> PathBuf {
    if let Some(dir) = std::env::var_os("PRISM_TEST_PG_BINDIR") {
        return PathBuf::from(dir);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return bin;
    }
    if let Some(dir) = std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .find(|dir| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file())
    {
        return dir;
    }
    panic!(
        "PostgreSQL's server binaries (initdb, pg_ctl) were not found in /usr/lib/postgresql/*/bin \
         or on PATH: install the `postgresql` package (scripts/test does) or set \
         PRISM_TEST_PG_BINDIR"
    );
}

/// Gives the temporary directory to the `postgres` user, which runs the server under root.
fn hand_to_postgres(dir: &Path) {
    let status = Command::new("chown")
        .arg(SUPERUSER)
        .arg(dir)
        .status()
        .expect("run chown");
    assert!(status.success(), "chown {SUPERUSER} {}", dir.display());
}

/// A loopback port nobody listens on right now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("probe a free loopback port")
}

fn describe(output: &Output) -> String {
    format!(
        "{}\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}
