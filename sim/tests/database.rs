//! The simulated database host under two real nodes: a registration on one node reaches the
//! other through the change feed, exactly one node holds the sweeper lease, and when the
//! leader crashes the other takes it over within the lease.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use prism_server::config::AuthMode;
use prism_server::store::Store;
use prism_server::{Config, Listeners, Metrics, Node, serve};
use prism_sim::adapters::{SimClock, SimListener};
use prism_sim::database::{DATABASE, Database, DatabaseClient, LEAD_TIMEOUT, LEASE};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const PORT: u16 = 8080;
type Running = Rc<RefCell<BTreeMap<&'static str, Arc<Node>>>>;

fn config(name: &str) -> Config {
    let mut config = Config::default();
    config.auth.mode = AuthMode::Open;
    config.rate_limit.registrations_per_minute = 0;
    config.cluster.node_name = name.to_owned();
    config
}

fn add_node(sim: &mut turmoil::Sim<'_>, name: &'static str, running: &Running) {
    let running = Rc::clone(running);
    sim.host(name, move || {
        let running = Rc::clone(&running);
        async move {
            let listener = turmoil::net::TcpListener::bind(("0.0.0.0", PORT)).await?;
            let node = loop {
                let store = Arc::new(DatabaseClient::new(name, false)) as Arc<dyn Store>;
                match Node::start(config(name), store, Arc::new(SimClock), Metrics::new()?).await {
                    Ok(node) => break node,
                    Err(_) => tokio::time::sleep(Duration::from_secs(1)).await,
                }
            };
            running.borrow_mut().insert(name, Arc::clone(&node));
            let listeners = Listeners {
                registration: SimListener(listener),
                dns_udp: Vec::<prism_sim::adapters::SimUdp>::new(),
                dns_tcp: None,
                api: None,
                api_runtime: None,
            };
            serve(node, listeners, std::future::pending()).await;
            Ok(())
        }
    });
}

fn leaders(running: &Running) -> Vec<&'static str> {
    running
        .borrow()
        .iter()
        .filter(|(_, node)| node.metrics().cluster_leader.get() == 1)
        .map(|(name, _)| *name)
        .collect()
}

#[test]
fn two_nodes_share_the_database_and_one_sweeper() {
    let mut sim = turmoil::Builder::new()
        .simulation_duration(Duration::from_secs(120))
        .epoch(SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_225_600))
        .build();
    let database = Database::new(None);
    {
        let database = database.clone();
        sim.host(DATABASE, move || database.clone().serve());
    }
    let running: Running = Rc::default();
    add_node(&mut sim, "prism-a", &running);
    add_node(&mut sim, "prism-b", &running);
    sim.client("client", async {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let mut stream = turmoil::net::TcpStream::connect(("prism-a", PORT)).await?;
        let body =
            br#"{"version":"1.0","type":"registration","hostname":"web-1","auth_token":"x"}"#;
        let mut frame = (body.len() as u32).to_be_bytes().to_vec();
        frame.extend_from_slice(body);
        stream.write_all(&frame).await?;
        let mut header = [0u8; 4];
        stream.read_exact(&mut header).await?;
        let mut reply = vec![0u8; u32::from_be_bytes(header) as usize];
        stream.read_exact(&mut reply).await?;
        assert!(
            String::from_utf8_lossy(&reply).contains("success"),
            "{}",
            String::from_utf8_lossy(&reply)
        );
        Ok(())
    });
    let mut seen_on_b = None;
    while sim.elapsed() < Duration::from_secs(20) {
        sim.step().expect("simulation step");
        let node_b = running.borrow().get("prism-b").cloned();
        if seen_on_b.is_none() && node_b.is_some_and(|b| b.registry().get("web-1").is_some()) {
            seen_on_b = Some(sim.elapsed());
        }
    }
    let seen_on_b = seen_on_b.expect("web-1, registered on prism-a, never reached prism-b");
    assert!(
        seen_on_b < Duration::from_secs(3),
        "reached prism-b at {seen_on_b:?}"
    );
    assert!(
        database.store().host("web-1").is_some(),
        "web-1 was acknowledged but is not stored"
    );
    let before = leaders(&running);
    assert_eq!(before.len(), 1, "leaders {before:?}");
    let leader = before[0];
    sim.crash(leader);
    running.borrow_mut().remove(leader);
    let crashed = sim.elapsed();
    let mut took_over = None;
    while sim.elapsed() < crashed + Duration::from_secs(30) {
        sim.step().expect("simulation step");
        if took_over.is_none() && leaders(&running).len() == 1 {
            took_over = Some(sim.elapsed() - crashed);
        }
    }
    let took_over = took_over.expect("no node took the sweeper role over");
    assert!(
        took_over <= LEASE + LEAD_TIMEOUT + Duration::from_secs(2),
        "took over after {took_over:?}"
    );
    assert_eq!(database.take_breach(), None);
}
