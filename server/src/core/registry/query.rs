//! Paginated, filtered reads of the registry for the REST API.

use std::sync::Arc;

use super::{HostStatus, HostView, Registry, view};

/// Which hosts a listing wants. Every field narrows the result; `None` means "any".
#[derive(Debug, Clone, Copy, Default)]
pub struct HostQuery<'a> {
    /// Only hosts of this owner.
    pub owner: Option<&'a str>,
    /// Only hosts in this state.
    pub status: Option<HostStatus>,
    /// Only hostnames containing this lowercase substring.
    pub search: Option<&'a str>,
}

/// One page of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPage {
    /// Hosts matching the query on all pages.
    pub total: usize,
    /// The hosts of the requested page, in hostname order.
    pub hosts: Vec<HostView>,
}

impl Registry {
    /// Up to `limit` hosts matching `query`, skipping the first `offset`, in hostname order,
    /// with the total number of matches.
    ///
    /// Reads the listing index, never the lock the heartbeat path takes, in chunks of
    /// 1024 names per hold of its lock. Without `search` the total comes from the
    /// index's counts and the scan stops at the end of the page; with `search` every name of
    /// the owner (or of everyone) is looked at to count the matches. Only the returned hosts
    /// are copied, under one short hold of the registry lock.
    pub fn page(&self, query: &HostQuery<'_>, offset: usize, limit: usize) -> HostPage {
        let listing = || self.listing.read().unwrap_or_else(|p| p.into_inner());
        let counted = query
            .search
            .is_none()
            .then(|| listing().count(query.owner, query.status));
        let mut names: Vec<Arc<str>> = Vec::with_capacity(limit.min(1024));
        let mut matched = 0;
        let mut after: Option<Arc<str>> = None;
        loop {
            let last = listing().scan_chunk(query.owner, after.as_deref(), |name, status| {
                let matches = query.status.is_none_or(|wanted| status == wanted)
                    && query.search.is_none_or(|search| name.contains(search));
                if matches {
                    if matched >= offset && names.len() < limit {
                        names.push(Arc::clone(name));
                    }
                    matched += 1;
                }
            });
            let Some(last) = last else { break };
            if counted.is_some() && names.len() >= limit {
                break;
            }
            after = Some(last);
        }
        let state = self.lock();
        let hosts = names
            .iter()
            .filter_map(|name| {
                state
                    .hosts
                    .get_key_value(name)
                    .map(|(name, host)| view(name, host))
            })
            .collect();
        HostPage {
            total: counted.unwrap_or(matched),
            hosts,
        }
    }
}
