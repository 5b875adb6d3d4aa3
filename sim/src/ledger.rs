//! What the clients know: when each host last tried to heartbeat and when it was last
//! acknowledged. Invariants compare it with the server's registry.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

use crate::invariants::Breach;

/// Client-side facts about one simulated host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostFacts {
    /// Last time a registration was sent (it may or may not have reached the server).
    pub last_attempt: Option<Duration>,
    /// Last time a success response arrived.
    pub last_ack: Option<Duration>,
    /// Whether the server ever acknowledged this host (it must then survive crashes).
    pub acknowledged: bool,
}

/// Shared by the client hosts and the driver; the simulation runs on one thread.
#[derive(Debug, Clone, Default)]
pub struct Ledger {
    hosts: Rc<RefCell<BTreeMap<String, HostFacts>>>,
    events: Rc<RefCell<Vec<String>>>,
    /// The first breach a client host noticed (e.g. a wrong DNS answer), for the driver.
    breach: Rc<RefCell<Option<Breach>>>,
    /// DNS answers compared with the registry (so a test can tell the check was not vacuous).
    dns_answers_checked: Rc<RefCell<u64>>,
}

impl Ledger {
    /// Records that `host` sent a registration at `at`.
    pub fn attempted(&self, host: &str, at: Duration) {
        self.hosts
            .borrow_mut()
            .entry(host.to_owned())
            .or_default()
            .last_attempt = Some(at);
    }

    /// Records that `host` was acknowledged at `at`.
    pub fn acknowledged(&self, host: &str, at: Duration) {
        let mut hosts = self.hosts.borrow_mut();
        let facts = hosts.entry(host.to_owned()).or_default();
        if !facts.acknowledged {
            self.log(at, format!("ack-first {host}"));
        }
        facts.last_ack = Some(at);
        facts.acknowledged = true;
    }

    /// Calls `visit` for every host in name order; stops at and returns the first error.
    pub fn try_for_each<E>(
        &self,
        mut visit: impl FnMut(&str, &HostFacts) -> Result<(), E>,
    ) -> Result<(), E> {
        self.hosts
            .borrow()
            .iter()
            .try_for_each(|(host, facts)| visit(host, facts))
    }

    /// Appends a line to the event log (compared byte for byte by the determinism test).
    pub fn log(&self, at: Duration, event: String) {
        self.events
            .borrow_mut()
            .push(format!("{:>10.3} {event}", at.as_secs_f64()));
    }

    /// Reports a breach seen by a client host; the first one is kept.
    pub fn breach(&self, breach: Breach) {
        self.breach.borrow_mut().get_or_insert(breach);
    }

    /// The first breach reported by a client host, if any.
    pub fn take_breach(&self) -> Option<Breach> {
        self.breach.borrow_mut().take()
    }

    /// Counts one DNS answer compared with the registry.
    pub fn dns_answer_checked(&self) {
        *self.dns_answers_checked.borrow_mut() += 1;
    }

    /// DNS answers compared with the registry so far.
    pub fn dns_answers_checked(&self) -> u64 {
        *self.dns_answers_checked.borrow()
    }

    /// The event log so far.
    pub fn events(&self) -> Vec<String> {
        self.events.borrow().clone()
    }
}
