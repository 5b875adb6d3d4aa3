//! The listing index: host names in order, by owner and with their status, for the REST
//! API's pages. It has its own lock, which the heartbeat path never takes (a heartbeat of
//! an online host changes neither its name, its owner nor its status), and readers scan it
//! in bounded chunks, so a listing never holds up registrations for longer than one chunk.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::Arc;

use super::HostStatus;

/// Names looked at per hold of the read lock.
pub(super) const SCAN_CHUNK: usize = 1024;

/// Every host's name, owner and status, indexed for listings.
#[derive(Debug, Default)]
pub(super) struct Listing {
    /// Every host in name order.
    all: BTreeMap<Arc<str>, Listed>,
    /// Each owner's hosts in name order, with its online count.
    owners: HashMap<Arc<str>, OwnerHosts>,
    /// Hosts online, in all.
    online: usize,
}

#[derive(Debug, Clone)]
struct Listed {
    owner: Arc<str>,
    status: HostStatus,
}

#[derive(Debug, Default)]
struct OwnerHosts {
    names: BTreeMap<Arc<str>, HostStatus>,
    online: usize,
}

impl Listing {
    /// Records `name` as `owner`'s, in `status` (a new host, a move, a status change).
    pub(super) fn set(&mut self, name: &Arc<str>, owner: &Arc<str>, status: HostStatus) {
        if let Some(old) = self.all.get(name)
            && (old.owner == *owner && old.status == status)
        {
            return;
        }
        self.remove(name);
        let online = usize::from(status == HostStatus::Online);
        self.online += online;
        let hosts = self.owners.entry(Arc::clone(owner)).or_default();
        hosts.names.insert(Arc::clone(name), status);
        hosts.online += online;
        self.all.insert(
            Arc::clone(name),
            Listed {
                owner: Arc::clone(owner),
                status,
            },
        );
    }

    /// Forgets `name`.
    pub(super) fn remove(&mut self, name: &Arc<str>) {
        let Some(old) = self.all.remove(name) else {
            return;
        };
        let online = usize::from(old.status == HostStatus::Online);
        self.online -= online;
        if let Some(hosts) = self.owners.get_mut(&old.owner) {
            hosts.names.remove(name);
            hosts.online -= online;
            if hosts.names.is_empty() {
                self.owners.remove(&old.owner);
            }
        }
    }

    /// How many hosts `owner` (or everyone) has in `status` (or in any status), without
    /// looking at them.
    pub(super) fn count(&self, owner: Option<&str>, status: Option<HostStatus>) -> usize {
        let (all, online) = match owner {
            None => (self.all.len(), self.online),
            Some(owner) => self
                .owners
                .get(owner)
                .map_or((0, 0), |hosts| (hosts.names.len(), hosts.online)),
        };
        match status {
            None => all,
            Some(HostStatus::Online) => online,
            Some(HostStatus::Offline) => all - online,
        }
    }

    /// Calls `visit` for up to [`SCAN_CHUNK`] hosts of `owner` (or everyone) after `after`
    /// in name order; returns the last name visited, `None` when there were no more.
    pub(super) fn scan_chunk(
        &self,
        owner: Option<&str>,
        after: Option<&str>,
        mut visit: impl FnMut(&Arc<str>, HostStatus),
    ) -> Option<Arc<str>> {
        let from = after.map_or(Bound::Unbounded, Bound::Excluded);
        let mut last = None;
        match owner {
            None => {
                for (name, listed) in self
                    .all
                    .range::<str, _>((from, Bound::Unbounded))
                    .take(SCAN_CHUNK)
                {
                    visit(name, listed.status);
                    last = Some(name);
                }
            }
            Some(owner) => {
                let hosts = self.owners.get(owner)?;
                for (name, status) in hosts
                    .names
                    .range::<str, _>((from, Bound::Unbounded))
                    .take(SCAN_CHUNK)
                {
                    visit(name, *status);
                    last = Some(name);
                }
            }
        }
        last.map(Arc::clone)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_follow_owners_and_status_changes() {
        let mut listing = Listing::default();
        let (alice, bob): (Arc<str>, Arc<str>) = ("alice".into(), "bob".into());
        listing.set(&"a".into(), &alice, HostStatus::Online);
        listing.set(&"b".into(), &alice, HostStatus::Online);
        listing.set(&"c".into(), &bob, HostStatus::Online);
        listing.set(&"b".into(), &alice, HostStatus::Offline);
        assert_eq!(listing.count(None, None), 3);
        assert_eq!(listing.count(Some("alice"), Some(HostStatus::Online)), 1);
        assert_eq!(listing.count(Some("alice"), Some(HostStatus::Offline)), 1);
        listing.remove(&"c".into());
        assert_eq!(listing.count(Some("bob"), None), 0);
        assert_eq!(listing.count(None, Some(HostStatus::Online)), 1);
    }

    #[test]
    fn chunks_resume_after_the_last_name_visited() {
        let mut listing = Listing::default();
        let owner: Arc<str> = "o".into();
        for n in 0..(SCAN_CHUNK + 10) {
            listing.set(&format!("h{n:05}").into(), &owner, HostStatus::Online);
        }
        let mut seen = Vec::new();
        let mut after: Option<Arc<str>> = None;
        while let Some(last) = listing.scan_chunk(Some("o"), after.as_deref(), |name, _| {
            seen.push(name.to_string())
        }) {
            after = Some(last);
        }
        assert_eq!(seen.len(), SCAN_CHUNK + 10);
        assert!(seen.windows(2).all(|pair| pair[0] < pair[1]));
    }
}
