//! A DNS resolver host: queries the server's zone over simulated UDP and checks every answer
//! against the server's registry at that moment.

use std::cell::RefCell;
use std::net::IpAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Message, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use prism_server::Node;
use prism_server::core::registry::HostStatus;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::adapters::sim_now;
use crate::fleet::SERVER;
use crate::invariants::Breach;
use crate::ledger::Ledger;

/// DNS port of the simulated server.
pub const DNS_PORT: u16 = 5353;
/// Longest the resolver waits for an answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(2);

/// What the resolver needs from the world.
pub struct ResolverSetup {
    /// Hostnames to ask for (known ones and a few that never exist).
    pub hostnames: Vec<String>,
    /// The running server, to compare answers with its registry.
    pub server: Rc<RefCell<Option<Arc<Node>>>>,
    /// Where breaches and events go.
    pub ledger: Ledger,
    /// Seed of the query order.
    pub seed: u64,
    /// When to stop.
    pub end: Duration,
}

/// Asks for a random hostname every `interval` until `end`.
pub async fn run(setup: ResolverSetup, interval: Duration) -> turmoil::Result {
    let socket = turmoil::net::UdpSocket::bind(("0.0.0.0", 0)).await?;
    let mut rng = StdRng::seed_from_u64(setup.seed);
    let zone = Name::from_ascii("managed.prism.local.")?;
    let mut id: u16 = 0;
    while sim_now() < setup.end {
        tokio::time::sleep(interval).await;
        let hostname = &setup.hostnames[rng.random_range(0..setup.hostnames.len())];
        let name = Name::from_ascii(hostname)?.append_domain(&zone)?;
        id = id.wrapping_add(1);
        let mut query = Message::query();
        query.metadata.id = id;
        query.add_query(Query::query(name, RecordType::A));
        let before = generation(&setup.server);
        socket.send_to(&query.to_vec()?, (SERVER, DNS_PORT)).await?;
        let mut buf = [0u8; 4096];
        let Ok(Ok((len, _))) =
            tokio::time::timeout(ANSWER_TIMEOUT, socket.recv_from(&mut buf)).await
        else {
            continue;
        };
        let Ok(answer) = Message::from_vec(&buf[..len]) else {
            setup.ledger.breach(Breach {
                host: hostname.clone(),
                message: "DNS answer does not parse".into(),
            });
            continue;
        };
        // Only judge answers given while the zone did not change under the query.
        let server = setup.server.borrow().clone();
        let (Some(core), Some(before)) = (server, before) else {
            continue;
        };
        if core.registry().generation() != before || answer.metadata.id != id {
            continue;
        }
        setup.ledger.dns_answer_checked();
        if let Some(problem) = mismatch(&core, hostname, &answer) {
            setup.ledger.breach(Breach {
                host: hostname.clone(),
                message: problem,
            });
        }
    }
    Ok(())
}

fn generation(server: &Rc<RefCell<Option<Arc<Node>>>>) -> Option<u64> {
    server
        .borrow()
        .as_ref()
        .map(|core| core.registry().generation())
}

/// How the answer disagrees with the registry, if it does.
fn mismatch(core: &Node, hostname: &str, answer: &Message) -> Option<String> {
    let rcode = answer.metadata.response_code;
    let addresses: Vec<IpAddr> = answer
        .answers
        .iter()
        .filter_map(|record| match &record.data {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            _ => None,
        })
        .collect();
    match core.registry().get(hostname) {
        Some(host) if host.status == HostStatus::Online && host.address.is_ipv4() => {
            (rcode != ResponseCode::NoError || addresses != [host.address]).then(|| {
                format!(
                    "DNS answered {rcode} {addresses:?} for an online host at {}",
                    host.address
                )
            })
        }
        Some(host) if host.status == HostStatus::Online => (rcode != ResponseCode::NoError
            || !addresses.is_empty())
        .then(|| format!("DNS answered {rcode} {addresses:?} to A for an IPv6-only host")),
        _ => (rcode != ResponseCode::NXDomain || !addresses.is_empty())
            .then(|| format!("DNS answered {rcode} {addresses:?} for an offline or unknown host")),
    }
}
