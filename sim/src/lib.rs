//! prism-sim: the real Prism server under turmoil's deterministic network and clock.
//!
//! A [`world::World`] is one server host and fleets of client hosts on a simulated network;
//! scenarios ([`scenarios`]) are plain functions of a seed that script faults against it while
//! invariants are checked every simulated second. Each run yields a metrics
//! [`timeline::Timeline`] that converts to promtool `input_series`.

pub mod adapters;
pub mod database;
pub mod fleet;
pub mod invariants;
pub mod ledger;
pub mod resolver;
pub mod scenarios;
pub mod seed;
pub mod timeline;
pub mod world;
