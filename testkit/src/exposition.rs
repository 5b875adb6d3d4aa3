//! The Prometheus exposition text as a test reads it: single samples, sums over label
//! subsets, and what `promtool check metrics` says about it.

use std::io::Write;
use std::process::{Command, Stdio};

/// Host gauges whose `_total` suffix is documented (SPEC §8) although promtool lints it.
const ALLOWED_LINT: [&str; 3] = [
    "prism_registered_hosts_total",
    "prism_online_hosts_total",
    "prism_offline_hosts_total",
];

/// The value of the sample `series` (name with labels exactly as exposed) in `text`.
pub fn sample(text: &str, series: &str) -> Option<f64> {
    samples(text).find_map(|(name, value)| (name == series).then_some(value))
}

/// Sum of every sample of `name` whose labels contain all of `labels` (`key="value"` pairs).
pub fn sum(text: &str, name: &str, labels: &[&str]) -> f64 {
    samples(text)
        .filter(|(series, _)| {
            let (series_name, series_labels) = series.split_once('{').unwrap_or((series, ""));
            series_name == name && labels.iter().all(|label| series_labels.contains(label))
        })
        .map(|(_, value)| value)
        .sum()
}

/// Every `(series, value)` sample line of `text`.
fn samples(text: &str) -> impl Iterator<Item = (&str, f64)> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            Some((series, value.parse().ok()?))
        })
}

/// Runs `promtool check metrics` on `text` and returns its complaints, except the documented
/// `_total` suffix on the three host gauges. Fails the test when promtool is missing.
pub fn promtool_complaints(text: &str) -> Vec<String> {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect(
            "promtool must be installed (Debian: apt-get install --no-install-recommends prometheus)",
        );
    child
        .stdin
        .take()
        .expect("promtool's stdin")
        .write_all(text.as_bytes())
        .expect("feed promtool");
    let output = child.wait_with_output().expect("promtool runs");
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    // promtool exits non-zero for the allowed lint lines too, so its lines decide.
    all.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .filter(|line| !ALLOWED_LINT.iter().any(|name| line.starts_with(name)))
        .map(str::to_owned)
        .collect()
}
