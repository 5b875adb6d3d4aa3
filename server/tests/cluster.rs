//! Several real `prism-server` processes on one throwaway PostgreSQL: every node answers DNS
//! for every host, the database arbitrates ownership, one node sweeps and another takes over
//! when it dies, nothing acknowledged is lost when a node or the database goes away, and a
//! revoked token stops working on every node.

use std::collections::BTreeSet;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hickory_proto::rr::RecordType;
use prism_server::core::protocol::{Response, Status};
use prism_testkit::dns::{answer_addresses, query, udp_client};
use prism_testkit::exposition::sample;
use prism_testkit::http::HttpClient;
use prism_testkit::postgres::TestPostgres;
use prism_testkit::process::{SERVE_ON_LOOPBACK, ServerProcess, prism_command};
use prism_testkit::protocol::{Client, registration};
use tempfile::TempDir;

const BINARY: &str = env!("CARGO_BIN_EXE_prism-server");
const ZONE: &str = "managed.prism.local.";
const LOOPBACK: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
/// Longest a change committed on one node may take to show on another in these tests (the
/// change feed delivers in milliseconds; this only bounds a slow, shared test machine).
const CONVERGE: Duration = Duration::from_secs(10);
/// How often a condition that must become true is looked at again.
const POLL: Duration = Duration::from_millis(50);

/// One PostgreSQL database and the directory the nodes run in.
struct Cluster {
    postgres: TestPostgres,
    url: String,
    dir: TempDir,
}

/// A node's settings beyond the cluster's own.
type Settings<'a> = &'a [(&'a str, &'a str)];

impl Cluster {
    fn start() -> Self {
        let postgres = TestPostgres::start();
        let url = postgres.create_database("prism");
        Self {
            postgres,
            url,
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    /// `prism-server` pointed at the cluster's database, and nothing else.
    fn command(&self) -> Command {
        let mut command = prism_command(BINARY, self.dir.path());
        command.env("PRISM_DATABASE_URL", &self.url);
        command
    }

    /// Starts node `name`: every port chosen by the system, no rate limits (the tests send
    /// bursts from one address), its log in `<dir>/<name>.log`.
    fn node(&self, name: &str, settings: Settings) -> ServerProcess {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join(format!("{name}.log")))
            .expect("node log file");
        let mut command = self.command();
        command
            .args(SERVE_ON_LOOPBACK)
            .args(["--rate-limit", "0"])
            .env("PRISM_CLUSTER_NODE_NAME", name)
            .env("PRISM_DNS_PORT", "0")
            .env("PRISM_DNS_RRL_RESPONSES_PER_SECOND", "0")
            .env("PRISM_LOGGING_LEVEL", "warn")
            .envs(settings.iter().copied())
            .stderr(Stdio::from(log));
        ServerProcess::start_with_dns(&mut command)
    }

    /// Runs a CLI subcommand against the cluster's database; its stdout and stderr.
    fn cli(&self, args: &[&str]) -> (String, String) {
        let output = self.command().args(args).output().expect("run the CLI");
        assert!(output.status.success(), "{args:?} failed: {output:?}");
        (
            String::from_utf8_lossy(&output.stdout).trim().to_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }

    /// A new token for `owner` (`admin` sees every host) and its id.
    fn token(&self, owner: &str, admin: bool) -> (String, i64) {
        let mut args = vec!["token", "create", "--owner", owner];
        if admin {
            args.push("--admin");
        }
        let (token, told) = self.cli(&args);
        let id = told
            .split_whitespace()
            .skip_while(|word| *word != "token")
            .nth(1)
            .and_then(|id| id.parse().ok())
            .unwrap_or_else(|| panic!("no token id in {told:?}"));
        (token, id)
    }

    /// Hostname and owner of every host in the database.
    fn stored_hosts(&self) -> BTreeSet<(String, String)> {
        self.postgres
            .psql("prism", "SELECT hostname, owner FROM hosts")
            .lines()
            .filter_map(|line| line.split_once('|'))
            .map(|(name, owner)| (name.to_owned(), owner.to_owned()))
            .collect()
    }
}

/// Registers `name` with `token` on `node` over a new connection.
async fn register(node: SocketAddr, name: &str, token: &str) -> Response {
    Client::connect(node)
        .await
        .call(&registration(name, Some(token)))
        .await
}

/// The names a node lists through its API (`admin` token), online and offline.
async fn listed(api: &HttpClient, admin: &str) -> BTreeSet<String> {
    let (status, body) = api.get_json("/api/hosts?per_page=1000", Some(admin)).await;
    assert_eq!(status, 200, "{body}");
    body["hosts"]
        .as_array()
        .expect("a host list")
        .iter()
        .filter_map(|host| host["hostname"].as_str().map(str::to_owned))
        .collect()
}

/// The addresses `node`'s DNS answers for `host` (A).
async fn resolve(dns: SocketAddr, host: &str) -> Vec<IpAddr> {
    let name = format!("{host}.{ZONE}");
    let response = query(&mut udp_client(dns), &name, RecordType::A).await;
    answer_addresses(&response)
}

/// Waits until `check` gives `Ok`, looking every [`POLL`]; fails the test with `what` and the
/// last thing `check` saw (its `Err`) after `limit`.
async fn eventually<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + limit;
    loop {
        match check().await {
            Ok(found) => return found,
            Err(seen) => assert!(
                Instant::now() < deadline,
                "not within {limit:?}: {what}; last seen: {seen}"
            ),
        }
        tokio::time::sleep(POLL).await;
    }
}

/// `Ok` when `holds`, else what was seen instead.
fn seen(holds: bool, instead: impl std::fmt::Debug) -> Result<(), String> {
    if holds {
        Ok(())
    } else {
        Err(format!("{instead:?}"))
    }
}

/// `prism_cluster_leader` on `api`.
async fn leads(api: &HttpClient) -> bool {
    sample(&api.scrape().await, "prism_cluster_leader") == Some(1.0)
}

#[tokio::test]
async fn a_host_registered_on_one_node_is_answered_by_every_node() {
    let cluster = Cluster::start();
    let (token, _) = cluster.token("alice", false);
    let a = cluster.node("a", &[]);
    register(a.registration_addr(), "web-01", &token).await;
    // Started after the registration, with nothing but the database URL: it loads the host.
    let b = cluster.node("b", &[]);
    let c = cluster.node("c", &[]);
    register(a.registration_addr(), "web-02", &token).await;

    for node in [&b, &c] {
        for host in ["web-01", "web-02"] {
            eventually(
                CONVERGE,
                &format!("{host} on {}", node.dns_addr()),
                || async {
                    let answer = resolve(node.dns_addr(), host).await;
                    seen(answer == vec![LOOPBACK], answer)
                },
            )
            .await;
        }
    }
    let dig = Command::new("dig")
        .args([
            "@127.0.0.1",
            "-p",
            &b.dns_addr().port().to_string(),
            "+short",
        ])
        .arg(format!("web-01.{ZONE}"))
        .output()
        .expect("run dig");
    assert_eq!(
        String::from_utf8_lossy(&dig.stdout).trim(),
        "127.0.0.1",
        "{dig:?}"
    );
}

#[tokio::test]
async fn two_owners_racing_for_one_name_on_two_nodes_end_with_exactly_one_owner() {
    let cluster = Cluster::start();
    let (alice, _) = cluster.token("alice", false);
    let (bob, _) = cluster.token("bob", false);
    let (admin, _) = cluster.token("ops", true);
    let (a, b) = (cluster.node("a", &[]), cluster.node("b", &[]));
    let (a_api, b_api) = (HttpClient::new(a.api_addr()), HttpClient::new(b.api_addr()));

    for round in 0..50 {
        let name = format!("contested-{round}");
        let (mut on_a, mut on_b) = (
            Client::connect(a.registration_addr()).await,
            Client::connect(b.registration_addr()).await,
        );
        let (for_alice, for_bob) = (
            registration(&name, Some(&alice)),
            registration(&name, Some(&bob)),
        );
        let (alices, bobs) = tokio::join!(on_a.call(&for_alice), on_b.call(&for_bob));
        let winners: Vec<&str> = [("alice", &alices), ("bob", &bobs)]
            .iter()
            .filter(|(_, response)| response.status == Status::Success)
            .map(|(owner, _)| *owner)
            .collect();
        assert_eq!(winners.len(), 1, "round {round}: {alices:?} {bobs:?}");
        let loser = if winners[0] == "alice" {
            &bobs
        } else {
            &alices
        };
        assert!(
            loser.message.contains("registered to another owner"),
            "round {round}: the loser is told why: {loser:?}"
        );
        assert!(
            cluster
                .stored_hosts()
                .contains(&(name.clone(), winners[0].to_owned())),
            "round {round}: the database holds the winner"
        );
        for (node, api) in [("a", &a_api), ("b", &b_api)] {
            eventually(
                CONVERGE,
                &format!("{name} owned by {} on node {node}", winners[0]),
                || async {
                    let (status, body) = api
                        .get_json(&format!("/api/hosts/{name}"), Some(&admin))
                        .await;
                    seen(status == 200 && body["owner"] == winners[0], (status, body))
                },
            )
            .await;
        }
    }
}

#[tokio::test]
async fn when_the_sweeping_node_is_killed_another_takes_over_offline_detection() {
    let cluster = Cluster::start();
    let (token, _) = cluster.token("alice", false);
    let (admin, _) = cluster.token("ops", true);
    // Offline after 1 s without a heartbeat; a sweep every second.
    let fast: Settings = &[
        ("PRISM_HEARTBEAT_INTERVAL", "1"),
        ("PRISM_HEARTBEAT_TIMEOUT_MULTIPLIER", "1"),
        ("PRISM_HEARTBEAT_GRACE_PERIOD", "0"),
        ("PRISM_HEARTBEAT_CHECK_INTERVAL", "1"),
    ];
    let mut nodes: Vec<Option<ServerProcess>> = ["a", "b", "c"]
        .iter()
        .map(|name| Some(cluster.node(name, fast)))
        .collect();
    let apis: Vec<HttpClient> = nodes
        .iter()
        .flatten()
        .map(|node| HttpClient::new(node.api_addr()))
        .collect();
    let leader = eventually(CONVERGE, "one node leads", || async {
        let mut leading = Vec::new();
        for (index, api) in apis.iter().enumerate() {
            if leads(api).await {
                leading.push(index);
            }
        }
        seen(leading.len() == 1, &leading).map(|()| leading[0])
    })
    .await;

    nodes[leader].take().expect("running").kill();
    let survivors: Vec<usize> = (0..3).filter(|index| *index != leader).collect();
    let registered_at = Instant::now();
    for (n, index) in survivors.iter().enumerate() {
        let node = nodes[*index].as_ref().expect("running");
        let response = register(node.registration_addr(), &format!("silent-{n}"), &token).await;
        assert_eq!(response.status, Status::Success, "{response:?}");
    }

    // Deadline 1 s after registering, then check_interval (1 s) + 5 s.
    let limit = Duration::from_secs(1 + 1 + 5);
    for index in &survivors {
        for n in 0..survivors.len() {
            let name = format!("silent-{n}");
            eventually(
                limit,
                &format!("{name} offline on survivor {index}"),
                || async {
                    let (status, body) = apis[*index]
                        .get_json(&format!("/api/hosts/{name}"), Some(&admin))
                        .await;
                    seen(status == 200 && body["status"] == "offline", (status, body))
                },
            )
            .await;
        }
    }
    eprintln!(
        "offline on every survivor {:?} after registering",
        registered_at.elapsed()
    );
    let mut leading = Vec::new();
    for index in &survivors {
        if leads(&apis[*index]).await {
            leading.push(*index);
        }
    }
    assert_eq!(leading.len(), 1, "exactly one survivor leads: {leading:?}");
}

#[tokio::test]
async fn a_node_killed_in_a_burst_loses_no_acknowledged_registration() {
    let cluster = Cluster::start();
    let (token, _) = cluster.token("fleet", false);
    let (admin, _) = cluster.token("ops", true);
    let a = cluster.node("a", &[]);
    let b = cluster.node("b", &[]);
    let c = cluster.node("c", &[]);
    let victim_acks = Arc::new(AtomicUsize::new(0));

    let mut workers = Vec::new();
    for (node, addr) in [
        ("a", a.registration_addr()),
        ("b", b.registration_addr()),
        ("c", c.registration_addr()),
    ] {
        for worker in 0..2 {
            let (token, victim_acks) = (token.clone(), Arc::clone(&victim_acks));
            workers.push(tokio::spawn(async move {
                let mut acknowledged = Vec::new();
                let Some(mut client) = Client::try_connect(addr).await else {
                    return acknowledged;
                };
                for i in 0..150 {
                    let name = format!("burst-{node}-{worker}-{i}");
                    match client.try_call(&registration(&name, Some(&token))).await {
                        Some(response) if response.status == Status::Success => {
                            if node == "b" {
                                victim_acks.fetch_add(1, Ordering::Relaxed);
                            }
                            acknowledged.push(name);
                        }
                        Some(response) => panic!("{name} refused: {response:?}"),
                        // The node died: what it acknowledged is what counts.
                        None => break,
                    }
                }
                acknowledged
            }));
        }
    }
    eventually(CONVERGE, "node b acknowledged 40 registrations", || async {
        let acks = victim_acks.load(Ordering::Relaxed);
        seen(acks >= 40, acks)
    })
    .await;
    b.kill();
    let mut acknowledged = BTreeSet::new();
    for worker in workers {
        acknowledged.extend(worker.await.expect("worker"));
    }
    let from_victim = acknowledged
        .iter()
        .filter(|name| name.starts_with("burst-b-"))
        .count();
    assert!(
        from_victim < 300,
        "b was killed before it finished its burst"
    );
    eprintln!(
        "{} acknowledged, {from_victim} of them by the killed node",
        acknowledged.len()
    );

    let stored: BTreeSet<String> = cluster
        .stored_hosts()
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    let lost: Vec<&String> = acknowledged.difference(&stored).collect();
    assert!(
        lost.is_empty(),
        "acknowledged but not in the database: {lost:?}"
    );
    let restarted = cluster.node("b", &[]);
    for node in [&a, &c, &restarted] {
        let api = HttpClient::new(node.api_addr());
        eventually(
            CONVERGE,
            "every acknowledged host on every node",
            || async {
                let listed = listed(&api, &admin).await;
                let missing: Vec<_> = acknowledged.difference(&listed).collect();
                seen(missing.is_empty(), missing)
            },
        )
        .await;
    }
}

#[tokio::test]
async fn losing_the_database_degrades_health_keeps_dns_and_loses_nothing() {
    let cluster = Cluster::start();
    let (token, _) = cluster.token("alice", false);
    let (admin, _) = cluster.token("ops", true);
    let (a, b) = (cluster.node("a", &[]), cluster.node("b", &[]));
    let nodes = [&a, &b];
    let apis = [HttpClient::new(a.api_addr()), HttpClient::new(b.api_addr())];
    let mut acknowledged = BTreeSet::new();
    for (n, node) in nodes.iter().enumerate() {
        let name = format!("before-{n}");
        assert_eq!(
            register(node.registration_addr(), &name, &token)
                .await
                .status,
            Status::Success
        );
        acknowledged.insert(name);
    }

    for api in &apis {
        eventually(CONVERGE, "both nodes see both hosts", || async {
            let listed = listed(api, &admin).await;
            seen(listed == acknowledged, listed)
        })
        .await;
    }

    cluster.postgres.stop();
    for api in &apis {
        eventually(CONVERGE, "health 503 without the database", || async {
            let (status, body) = api.get_json("/api/health", None).await;
            seen(status == 503 && body["database"] == "error", (status, body))
        })
        .await;
    }
    let refused = register(a.registration_addr(), "during", &token).await;
    assert_eq!(refused.status, Status::Error, "{refused:?}");
    assert!(
        refused.message.contains("not saved"),
        "says why: {refused:?}"
    );
    assert_eq!(
        resolve(b.dns_addr(), "before-0").await,
        vec![LOOPBACK],
        "DNS keeps answering from the last view"
    );

    cluster.postgres.restart();
    for api in &apis {
        eventually(
            Duration::from_secs(30),
            "health 200 with the database back",
            || async {
                let (status, body) = api.get_json("/api/health", None).await;
                seen(status == 200, (status, body))
            },
        )
        .await;
    }
    for (n, node) in nodes.iter().enumerate() {
        let name = format!("after-{n}");
        let response = register(node.registration_addr(), &name, &token).await;
        assert_eq!(response.status, Status::Success, "{response:?}");
        acknowledged.insert(name);
    }

    let stored: BTreeSet<String> = cluster
        .stored_hosts()
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    assert_eq!(
        stored, acknowledged,
        "the database holds exactly what was acknowledged"
    );
    for api in &apis {
        eventually(CONVERGE, "both views equal the database", || async {
            let listed = listed(api, &admin).await;
            seen(listed == acknowledged, listed)
        })
        .await;
    }
}

#[tokio::test]
async fn a_token_revoked_through_one_node_is_refused_on_another_within_two_seconds() {
    let cluster = Cluster::start();
    let (token, id) = cluster.token("carol", false);
    let (_a, c) = (cluster.node("a", &[]), cluster.node("c", &[]));
    assert_eq!(
        register(c.registration_addr(), "before", &token)
            .await
            .status,
        Status::Success
    );

    cluster.cli(&["token", "revoke", &id.to_string()]);
    let revoked_at = Instant::now();

    let mut attempt = 0;
    eventually(
        Duration::from_secs(2),
        "the revoked token refused on node c",
        || {
            attempt += 1;
            let name = format!("after-{attempt}");
            let (addr, token) = (c.registration_addr(), token.clone());
            async move {
                let response = register(addr, &name, &token).await;
                seen(response.status == Status::Error, response)
            }
        },
    )
    .await;
    eprintln!(
        "refused on node c {:?} after the revocation",
        revoked_at.elapsed()
    );
    assert_eq!(
        register(c.registration_addr(), "before", &token)
            .await
            .status,
        Status::Error,
        "the revoked token's existing host cannot heartbeat with it either"
    );
}
