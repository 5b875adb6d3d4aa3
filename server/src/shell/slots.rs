//! Connection slots: a total limit and a per-source-address limit, shared by one listener's
//! connections. A slot is held for the life of a connection and returned when it is dropped.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Why a connection got no slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoSlot {
    /// Every slot of the listener is taken.
    AtCapacity,
    /// This source address holds its share already.
    PerAddress {
        /// The per-address limit.
        limit: usize,
    },
}

/// The slots of one listener.
#[derive(Debug)]
pub struct Slots {
    /// Connections open now, in all and per source address.
    open: Mutex<Open>,
    /// Most connections at once.
    max_total: usize,
    /// Most connections at once from one address (0: no per-address limit).
    max_per_address: usize,
}

#[derive(Debug, Default)]
struct Open {
    total: usize,
    by_address: HashMap<IpAddr, usize>,
}

/// A held slot; dropping it frees the slot.
#[derive(Debug)]
pub struct Slot {
    slots: Arc<Slots>,
    address: IpAddr,
}

impl Slots {
    /// Slots for `max_total` connections, at most `max_per_address` from one address.
    pub fn new(max_total: usize, max_per_address: usize) -> Arc<Self> {
        Arc::new(Self {
            open: Mutex::default(),
            max_total,
            max_per_address,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Open> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes a slot for a connection from `address`.
    pub fn acquire(self: &Arc<Self>, address: IpAddr) -> Result<Slot, NoSlot> {
        let address = address.to_canonical();
        let mut open = self.lock();
        if open.total >= self.max_total {
            return Err(NoSlot::AtCapacity);
        }
        let from_address = open.by_address.entry(address).or_default();
        if self.max_per_address > 0 && *from_address >= self.max_per_address {
            return Err(NoSlot::PerAddress {
                limit: self.max_per_address,
            });
        }
        *from_address += 1;
        open.total += 1;
        Ok(Slot {
            slots: Arc::clone(self),
            address,
        })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.lock().total
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.slots.lock();
        open.total = open.total.saturating_sub(1);
        if let Some(count) = open.by_address.get_mut(&self.address) {
            *count -= 1;
            if *count == 0 {
                open.by_address.remove(&self.address);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_address_gets_its_share_and_others_the_rest() {
        let slots = Slots::new(3, 2);
        let (a, b) = (IpAddr::from([192, 0, 2, 1]), IpAddr::from([192, 0, 2, 2]));
        let first = slots.acquire(a).expect("first");
        let _second = slots.acquire(a).expect("second");
        assert_eq!(
            slots.acquire(a).err(),
            Some(NoSlot::PerAddress { limit: 2 })
        );
        let _other = slots.acquire(b).expect("another address");
        assert_eq!(slots.acquire(b).err(), Some(NoSlot::AtCapacity));
        drop(first);
        assert!(slots.acquire(a).is_ok(), "a freed slot is reusable");
    }

    #[test]
    fn a_v4_mapped_address_counts_as_its_v4_address() {
        let slots = Slots::new(10, 1);
        let _v4 = slots.acquire(IpAddr::from([192, 0, 2, 1])).expect("v4");
        let mapped = "::ffff:192.0.2.1".parse().expect("mapped");
        assert!(slots.acquire(mapped).is_err());
    }
}
