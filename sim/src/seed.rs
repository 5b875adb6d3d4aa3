//! Seeds: one from `PRISM_SIM_SEED`, a sweep of `PRISM_SIM_SEEDS`, and the replay command.

/// The seed used when `PRISM_SIM_SEED` is not set.
pub const DEFAULT_SEED: u64 = 20_261_126;

/// The seeds a scenario test runs: `PRISM_SIM_SEED` (or the default), then, when
/// `PRISM_SIM_SEEDS=N` is set, N consecutive seeds from there.
pub fn seeds() -> Vec<u64> {
    let base = std::env::var("PRISM_SIM_SEED")
        .ok()
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(DEFAULT_SEED);
    let count = std::env::var("PRISM_SIM_SEEDS")
        .ok()
        .and_then(|text| text.trim().parse::<u64>().ok())
        .filter(|count| *count > 0)
        .unwrap_or(1);
    (0..count).map(|offset| base.wrapping_add(offset)).collect()
}

/// The command that replays `scenario` with `seed`.
pub fn replay_command(scenario: &str, seed: u64) -> String {
    format!("PRISM_SIM_SEED={seed} cargo test -p prism-sim --test scenarios -- --exact {scenario}")
}
