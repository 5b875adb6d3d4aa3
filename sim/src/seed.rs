//! Seeds: one from `PRISM_SIM_SEED`, a sweep of `PRISM_SIM_SEEDS`, and the replay command.

/// The seed used when `PRISM_SIM_SEED` is not set.
pub const DEFAULT_SEED: u64 = 20_261_126;

/// The seeds a scenario test runs: `PRISM_SIM_SEED` (or the default), then, when
/// `PRISM_SIM_SEEDS=N` is set, N consecutive seeds from there.
///
/// # Panics
/// When either variable is set but is not a number (`PRISM_SIM_SEEDS` must be at least 1):
/// a mistyped seed must not silently run the default one.
pub fn seeds() -> Vec<u64> {
    let seed = std::env::var("PRISM_SIM_SEED").ok();
    let count = std::env::var("PRISM_SIM_SEEDS").ok();
    seeds_from(seed.as_deref(), count.as_deref()).unwrap_or_else(|problem| panic!("{problem}"))
}

/// [`seeds`] from the values of `PRISM_SIM_SEED` and `PRISM_SIM_SEEDS` (`None` when unset).
pub fn seeds_from(seed: Option<&str>, count: Option<&str>) -> Result<Vec<u64>, String> {
    let base = match seed {
        None => DEFAULT_SEED,
        Some(text) => text.trim().parse().map_err(|_| {
            format!("PRISM_SIM_SEED={text:?} is not a seed: use an unsigned integer, e.g. PRISM_SIM_SEED=42")
        })?,
    };
    let count = match count {
        None => 1,
        Some(text) => text
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|count| *count > 0)
            .ok_or_else(|| {
                format!("PRISM_SIM_SEEDS={text:?} is not a number of seeds: use an integer of at least 1, e.g. PRISM_SIM_SEEDS=20")
            })?,
    };
    Ok((0..count).map(|offset| base.wrapping_add(offset)).collect())
}

/// The command that replays `scenario` with `seed`.
pub fn replay_command(scenario: &str, seed: u64) -> String {
    format!("PRISM_SIM_SEED={seed} cargo test -p prism-sim --test scenarios -- --exact {scenario}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unset_variables_give_the_default_seed_once() {
        assert_eq!(seeds_from(None, None), Ok(vec![DEFAULT_SEED]));
    }

    #[test]
    fn a_seed_and_a_count_give_consecutive_seeds() {
        assert_eq!(seeds_from(Some(" 42 "), Some("3")), Ok(vec![42, 43, 44]));
    }

    #[test]
    fn a_seed_that_is_not_a_number_is_an_error_not_the_default() {
        let problem = seeds_from(Some("abc"), None).expect_err("abc is not a seed");
        assert!(problem.contains("PRISM_SIM_SEED=\"abc\""), "{problem}");
        assert!(seeds_from(Some(""), None).is_err());
        assert!(seeds_from(Some("-1"), None).is_err());
    }

    #[test]
    fn a_count_that_is_not_a_positive_number_is_an_error() {
        for count in ["0", "ten", ""] {
            let problem = seeds_from(None, Some(count)).expect_err("not a count");
            assert!(problem.contains("PRISM_SIM_SEEDS"), "{problem}");
        }
    }
}
