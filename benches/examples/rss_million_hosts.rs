//! Registers 1 000 000 hosts through the full frame path into a node over the in-memory store
//! and prints the process's resident memory (`VmRSS`/`VmHWM` from `/proc/self/status`) before
//! and after. Run with `cargo run --release -p prism-benches --example rss_million_hosts`.
//!
//! The in-memory store keeps its own copy of every host record, so the figure is an upper
//! bound for the registry (the production SQLite store keeps its records on disk).

use std::time::Instant;

use prism_benches::filled_node;

/// Hosts registered.
const HOSTS: u32 = 1_000_000;

/// `field` (e.g. `VmRSS`) from `/proc/self/status`, in KiB.
fn status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
}

fn mib(kib: Option<u64>) -> String {
    kib.map_or_else(
        || "unknown".to_owned(),
        |kib| format!("{:.1} MiB", kib as f64 / 1024.0),
    )
}

fn main() {
    let before = status_kib("VmRSS");
    let started = Instant::now();
    let node = filled_node(HOSTS);
    let elapsed = started.elapsed();
    let counts = node.registry().counts();
    println!("registered hosts:   {}", counts.registered);
    println!("registration time:  {elapsed:.2?}");
    println!("VmRSS before:       {}", mib(before));
    println!("VmRSS after:        {}", mib(status_kib("VmRSS")));
    println!("VmHWM (peak):       {}", mib(status_kib("VmHWM")));
}
