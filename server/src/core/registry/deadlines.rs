//! The deadline index: hosts ordered by the instant their state next changes.
//!
//! Popping the due entries costs O(k log n) for k due hosts, so a sweep's cost follows the
//! hosts that expire, not the hosts that exist.

use std::collections::BTreeSet;
use std::sync::Arc;

use tokio::time::Instant;

/// Hostnames ordered by deadline; each host has at most one entry.
#[derive(Debug, Default)]
pub struct DeadlineQueue {
    entries: BTreeSet<(Instant, Arc<str>)>,
}

impl DeadlineQueue {
    /// Adds `host` with `deadline`.
    pub fn insert(&mut self, deadline: Instant, host: Arc<str>) {
        self.entries.insert((deadline, host));
    }

    /// Removes the entry of `host` at `deadline`.
    pub fn remove(&mut self, deadline: Instant, host: &Arc<str>) {
        self.entries.remove(&(deadline, Arc::clone(host)));
    }

    /// Removes and returns the earliest entry if it is due at `now`.
    pub fn pop_due(&mut self, now: Instant) -> Option<(Instant, Arc<str>)> {
        if self.entries.first()?.0 <= now {
            self.entries.pop_first()
        } else {
            None
        }
    }

    /// The earliest deadline.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.entries.first().map(|(deadline, _)| *deadline)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn pops_only_due_entries_in_deadline_order() {
        let start = Instant::now();
        let mut queue = DeadlineQueue::default();
        queue.insert(start + Duration::from_secs(2), "b".into());
        queue.insert(start + Duration::from_secs(1), "a".into());
        queue.insert(start + Duration::from_secs(9), "c".into());
        let now = start + Duration::from_secs(5);
        let due: Vec<_> = std::iter::from_fn(|| queue.pop_due(now))
            .map(|(_, host)| host.to_string())
            .collect();
        assert_eq!(due, ["a", "b"]);
        assert_eq!(queue.next_deadline(), Some(start + Duration::from_secs(9)));
    }

    #[test]
    fn remove_drops_exactly_one_entry() {
        let start = Instant::now();
        let mut queue = DeadlineQueue::default();
        let host: Arc<str> = "a".into();
        queue.insert(start, Arc::clone(&host));
        queue.remove(start, &host);
        assert_eq!(queue.next_deadline(), None);
    }
}
