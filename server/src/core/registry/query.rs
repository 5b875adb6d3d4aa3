//! Paginated, filtered reads of the registry for the REST API.

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
    /// with the total number of matches. Only the returned hosts are copied.
    pub fn page(&self, query: &HostQuery<'_>, offset: usize, limit: usize) -> HostPage {
        let state = self.lock();
        let mut total = 0;
        let mut hosts = Vec::with_capacity(limit.min(1024));
        let matching = state.sorted().filter(|(name, host)| {
            query.owner.is_none_or(|owner| *host.owner == *owner)
                && query.status.is_none_or(|status| host.status == status)
                && query.search.is_none_or(|search| name.contains(search))
        });
        for (name, host) in matching {
            if total >= offset && hosts.len() < limit {
                hosts.push(view(name, host));
            }
            total += 1;
        }
        HostPage { total, hosts }
    }
}
