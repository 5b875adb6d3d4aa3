//! Registration rate limits as a NAT'ed site and an abuser see them: many known hosts behind
//! one address heartbeat freely, while a flood of new names from one address and a host
//! heartbeating far too fast are refused, said so, and counted by reason.

use std::time::{Duration, SystemTime};

use prism_server::config::AuthMode;
use prism_server::core::metrics::REFUSAL_REASONS;
use prism_server::core::protocol::{Response, Status};
use prism_server::{Config, TokioClock};
use prism_testkit::TestServer;
use prism_testkit::protocol::{Client, registration};

/// Hosts behind the one address.
const FLEET: usize = 1000;
/// Connections the site's NAT gateway spreads them over.
const GATEWAY_CONNECTIONS: usize = 10;

/// The shipped defaults (rate limits included) in open auth mode.
fn defaults() -> Config {
    let mut config = Config::default();
    config.auth.mode = AuthMode::Open;
    config
}

fn paused_clock() -> TokioClock {
    TokioClock::starting_at(SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000))
}

fn refused(server: &TestServer, reason: &str) -> u64 {
    server
        .node()
        .metrics()
        .registrations_refused
        .with_label_values(&[reason])
        .get()
}

/// Every host of the fleet registers (or heartbeats) once, over fresh connections from
/// 127.0.0.1; the responses that were not a success.
async fn fleet_round(server: &TestServer) -> Vec<(String, Response)> {
    let mut failures = Vec::new();
    let mut gateway = Vec::new();
    for _ in 0..GATEWAY_CONNECTIONS {
        gateway.push(server.connect().await);
    }
    for host in 0..FLEET {
        let hostname = format!("site-{host:04}");
        let client: &mut Client = &mut gateway[host % GATEWAY_CONNECTIONS];
        let response = client.call(&registration(&hostname, None)).await;
        if response.status != Status::Success {
            failures.push((hostname, response));
        }
    }
    failures
}

#[tokio::test(start_paused = true)]
async fn a_thousand_hosts_behind_one_address_heartbeating_are_never_refused() {
    let server = TestServer::builder(defaults())
        .clock(paused_clock())
        .start()
        .await;
    // Deployed clients time each heartbeat from the previous answer, so they drift a little
    // early of the configured 60 s: 1000 hosts make a bit more than 1000 heartbeats a minute.
    for round in 0..6 {
        let failures = fleet_round(&server).await;
        assert!(
            failures.is_empty(),
            "round {round}: {} of {FLEET} refused, first {:?}",
            failures.len(),
            failures.first()
        );
        tokio::time::advance(Duration::from_secs(59)).await;
    }
    for reason in REFUSAL_REASONS {
        assert_eq!(refused(&server, reason), 0, "refused for {reason}");
    }
    assert_eq!(server.node().registry().counts().online, FLEET);
    server.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_flood_of_new_names_from_one_address_is_refused_and_counted_by_reason() {
    let mut config = defaults();
    config.rate_limit.registrations_per_minute = 60;
    config.rate_limit.burst = 10;
    let server = TestServer::builder(config)
        .clock(paused_clock())
        .start()
        .await;
    let text = server.node().metrics().encode().expect("metrics");
    for reason in REFUSAL_REASONS {
        let series = format!("prism_registrations_refused_total{{reason=\"{reason}\"}} 0");
        assert!(
            text.contains(&series),
            "{series} missing from a fresh server"
        );
    }
    let mut client = server.connect().await;
    let mut refusals = Vec::new();
    for n in 0..25 {
        let response = client
            .call(&registration(&format!("flood-{n}"), None))
            .await;
        if response.status == Status::Error {
            refusals.push(response.message);
        }
    }
    assert_eq!(
        refusals.len(),
        15,
        "a burst of 10 new names, then none: {refusals:?}"
    );
    assert!(
        refusals[0].contains("rate limit exceeded for 127.0.0.1")
            && refusals[0].contains("at most 60 new hostnames per minute")
            && refusals[0].contains("retry in"),
        "{}",
        refusals[0]
    );
    assert_eq!(refused(&server, "new_names_rate"), 15);
    assert_eq!(refused(&server, "heartbeat_too_fast"), 0);
    assert!(server.node().registry().get("flood-10").is_none());
    // The address's budget of new names is spent, yet its known hosts still heartbeat.
    let heartbeat = client.call(&registration("flood-0", None)).await;
    assert_eq!(heartbeat.status, Status::Success, "{heartbeat:?}");
    tokio::time::advance(Duration::from_secs(1)).await;
    let later = server
        .connect()
        .await
        .call(&registration("flood-10", None))
        .await;
    assert_eq!(
        later.status,
        Status::Success,
        "one new name a second again: {later:?}"
    );
    server.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_host_heartbeating_far_too_fast_is_refused_and_counted_by_reason() {
    let server = TestServer::builder(defaults())
        .clock(paused_clock())
        .start()
        .await;
    let mut client = server.connect().await;
    let mut outcomes = Vec::new();
    for _ in 0..6 {
        outcomes.push(client.call(&registration("chatty", None)).await);
    }
    let accepted = outcomes
        .iter()
        .take_while(|r| r.status == Status::Success)
        .count();
    assert_eq!(
        accepted, 3,
        "a burst of 3 (the registration included), then the pace: {outcomes:?}"
    );
    let refusal = &outcomes[3];
    assert_eq!(refusal.status, Status::Error);
    assert!(
        refusal
            .message
            .contains("rate limit exceeded for 'chatty': heartbeats at most every 15.0 s"),
        "{refusal:?}"
    );
    assert!(outcomes[3..].iter().all(|r| r.status == Status::Error));
    assert_eq!(refused(&server, "heartbeat_too_fast"), 3);
    assert_eq!(refused(&server, "new_names_rate"), 0);
    tokio::time::advance(Duration::from_secs(15)).await;
    let paced = server
        .connect()
        .await
        .call(&registration("chatty", None))
        .await;
    assert_eq!(paced.status, Status::Success, "{paced:?}");
    server.shutdown().await;
}
