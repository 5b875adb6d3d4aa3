//! The real `prism-server` binary as a child process: a command that inherits no `PRISM_*`
//! settings, a start that waits for the announced addresses, signals, and a bounded stop.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

/// Longest the binary may take to announce its addresses.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest a dropped process gets to exit after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// How often an exiting process is looked at.
const EXIT_POLL: Duration = Duration::from_millis(20);
/// The start-up line that names the registration address.
const REGISTRATION_LINE: &str = "prism-server listening for registrations on ";
/// The start-up line that names the REST API address.
const API_LINE: &str = "prism-server serving the REST API on ";
/// The start-up line that names the DNS address.
const DNS_LINE: &str = "prism-server answering DNS on ";

/// The arguments of a `serve` on loopback with every port chosen by the system (add
/// `PRISM_DNS_PORT=0` too, or DNS takes its default port).
pub const SERVE_ON_LOOPBACK: [&str; 7] = [
    "serve",
    "--host",
    "127.0.0.1",
    "--tcp-port",
    "0",
    "--api-port",
    "0",
];

/// `binary` run in `dir`, without the `PRISM_*` variables of the test's environment.
pub fn prism_command(binary: &str, dir: &Path) -> Command {
    let mut command = Command::new(binary);
    command.current_dir(dir);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("PRISM_") {
            command.env_remove(name);
        }
    }
    command
}

/// A running `prism-server serve`; stopped with SIGTERM (then SIGKILL) when dropped.
pub struct ServerProcess {
    /// The process.
    child: Child,
    /// Where it listens for registrations.
    registration: SocketAddr,
    /// Where it serves the REST API.
    api: SocketAddr,
    /// Where it answers DNS, when it was started with [`ServerProcess::start_with_dns`].
    dns: Option<SocketAddr>,
    /// Every line it has written on stdout so far.
    stdout: Arc<Mutex<Vec<String>>>,
}

impl ServerProcess {
    /// Spawns `command` (a `serve`) and waits until it has announced its registration and
    /// API addresses on stdout; fails the test (and kills it) when it does not within 30 s.
    pub fn start(command: &mut Command) -> Self {
        Self::start_expecting(command, false)
    }

    /// Like [`ServerProcess::start`], and also waits for the DNS address (DNS enabled).
    pub fn start_with_dns(command: &mut Command) -> Self {
        Self::start_expecting(command, true)
    }

    fn start_expecting(command: &mut Command, with_dns: bool) -> Self {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn prism-server");
        let stdout = child.stdout.take().expect("prism-server's stdout");
        let (lines, received) = mpsc::channel();
        let written = Arc::new(Mutex::new(Vec::new()));
        let kept = Arc::clone(&written);
        std::thread::spawn(move || {
            // Reads to the end, so later lines never meet a closed pipe.
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                kept.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(line.clone());
                let _ = lines.send(line);
            }
        });
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        let (mut registration, mut api, mut dns) = (None, None, None);
        while registration.is_none() || api.is_none() || (with_dns && dns.is_none()) {
            let Ok(line) =
                received.recv_timeout(deadline.saturating_duration_since(Instant::now()))
            else {
                let exited = child.try_wait().ok().flatten();
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "prism-server did not announce its addresses (registration {registration:?}, \
                     API {api:?}, DNS {dns:?}); exited: {exited:?}"
                );
            };
            if let Some(addr) = line.strip_prefix(REGISTRATION_LINE) {
                registration = Some(parse_addr(addr));
            } else if let Some(addr) = line.strip_prefix(API_LINE) {
                api = Some(parse_addr(addr));
            } else if let Some(addr) = line.strip_prefix(DNS_LINE) {
                dns = Some(parse_addr(addr));
            }
        }
        Self {
            child,
            registration: registration.expect("announced"),
            api: api.expect("announced"),
            dns,
            stdout: written,
        }
    }

    /// Every line the process has written on stdout so far (the start-up lines included).
    pub fn stdout_lines(&self) -> Vec<String> {
        self.stdout
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Where the process listens for registrations.
    pub fn registration_addr(&self) -> SocketAddr {
        self.registration
    }

    /// Where the process serves the REST API.
    pub fn api_addr(&self) -> SocketAddr {
        self.api
    }

    /// Where the process answers DNS; fails the test unless it was started with
    /// [`ServerProcess::start_with_dns`].
    pub fn dns_addr(&self) -> SocketAddr {
        self.dns.expect("started with start_with_dns")
    }

    /// The process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Sends signal `name` (e.g. `HUP`, `TERM`).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -{name} {}", self.child.id());
    }

    /// Kills the process with SIGKILL (no shutdown code runs) and reaps it.
    pub fn kill(mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reap prism-server");
    }

    /// Waits at most `limit` for the process to exit; its exit status, or `None` when it is
    /// still running.
    pub async fn exit_within(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("poll prism-server") {
                return Some(status);
            }
            if tokio::time::Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(EXIT_POLL).await;
        }
    }
}

fn parse_addr(text: &str) -> SocketAddr {
    text.trim()
        .parse()
        .unwrap_or_else(|err| panic!("{text:?} is not a socket address: {err}"))
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        // Already reaped (`kill`): its pid may belong to another process by now.
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(EXIT_POLL);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
