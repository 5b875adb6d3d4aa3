//! The listing index: host names in order, by owner and with their status, for the REST
//! API's pages, and the subtrees that dotted names make, for DNS. It has its own lock, which
//! the heartbeat path never takes (a heartbeat of an online host changes neither its name,
//! its owner nor its status), and readers scan it in bounded chunks, so a listing never
//! holds up registrations for longer than one chunk.

use std::collections::{BTreeMap, BTreeSet, HashMap};
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
    /// Dotted hostnames by their labels in reverse, for "does any host live below this name".
    subtrees: Subtrees,
}

/// Hostnames with more than one label, each stored with its labels reversed (`db.eu-west` as
/// `eu-west.db`), so the names below `eu-west` are exactly the keys that start with
/// `eu-west.`: one ordered lookup answers whether there are any. Single-label hostnames sit
/// below no name of their own and are not kept.
#[derive(Debug, Default)]
struct Subtrees {
    /// Every dotted host.
    all: BTreeSet<Box<str>>,
    /// Dotted hosts online.
    online: BTreeSet<Box<str>>,
}

impl Subtrees {
    fn insert(&mut self, name: &str, status: HostStatus) {
        if !name.contains('.') {
            return;
        }
        let key = reversed(name);
        if status == HostStatus::Online {
            self.online.insert(key.clone());
        }
        self.all.insert(key);
    }

    fn remove(&mut self, name: &str) {
        if !name.contains('.') {
            return;
        }
        let key = reversed(name);
        self.online.remove(&key);
        self.all.remove(&key);
    }

    /// Whether a host (an online one unless `include_offline`) is named `<labels>.<name>`.
    fn any_below(&self, name: &str, include_offline: bool) -> bool {
        let mut prefix = String::with_capacity(name.len() + 1);
        push_reversed(&mut prefix, name);
        prefix.push('.');
        let set = if include_offline {
            &self.all
        } else {
            &self.online
        };
        set.range::<str, _>((Bound::Included(prefix.as_str()), Bound::Unbounded))
            .next()
            .is_some_and(|key| key.starts_with(&prefix))
    }
}

/// `name` with its labels in reverse order.
fn reversed(name: &str) -> Box<str> {
    let mut out = String::with_capacity(name.len());
    push_reversed(&mut out, name);
    out.into_boxed_str()
}

fn push_reversed(out: &mut String, name: &str) {
    for (index, label) in name.rsplit('.').enumerate() {
        if index > 0 {
            out.push('.');
        }
        out.push_str(label);
    }
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
        self.subtrees.insert(name, status);
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
        self.subtrees.remove(name);
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

    /// Whether any host (any online one, unless `include_offline`) is named
    /// `<labels>.<name>`: `name` is then an empty non-terminal or a host with hosts below it.
    /// O(log n) in the dotted hosts.
    pub(super) fn any_below(&self, name: &str, include_offline: bool) -> bool {
        self.subtrees.any_below(name, include_offline)
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
    fn names_below_follow_registrations_status_and_removals() {
        let mut listing = Listing::default();
        let owner: Arc<str> = "o".into();
        let db: Arc<str> = "db.eu-west".into();
        listing.set(&db, &owner, HostStatus::Online);
        listing.set(&"eu-westish".into(), &owner, HostStatus::Online);
        listing.set(&"a.b.c".into(), &owner, HostStatus::Online);
        assert!(listing.any_below("eu-west", false));
        assert!(listing.any_below("c", false) && listing.any_below("b.c", false));
        assert!(
            !listing.any_below("a.b.c", false),
            "nothing below a host itself"
        );
        assert!(!listing.any_below("west", false), "labels, not suffixes");
        assert!(!listing.any_below("eu", false));
        assert!(!listing.any_below("db.eu-west", false));
        listing.set(&db, &owner, HostStatus::Offline);
        assert!(
            !listing.any_below("eu-west", false),
            "offline hosts are hidden"
        );
        assert!(
            listing.any_below("eu-west", true),
            "unless offline hosts are served"
        );
        listing.remove(&db);
        assert!(!listing.any_below("eu-west", true));
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
