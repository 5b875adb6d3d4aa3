//! Helpers that let the rules-tests check Prism's monitoring files: repository paths, the external tools (promtool, amtool), YAML loading.
//!
//! The checks themselves live in [`coverage`] (every alert has its three promtool cases),
//! [`docs`] (relative Markdown links resolve),
//! [`metric_names`] (rules and dashboard only name metrics the server exports) and [`series`]
//! (a fresh server exports every series they select); [`live`]
//! holds the process plumbing of the live end-to-end alert test (`tests/live_alerts.rs`).

pub mod coverage;
pub mod docs;
pub mod live;
pub mod metric_names;
pub mod series;

use std::path::{Path, PathBuf};
use std::process::Command;

/// Debian packages that provide the tools these tests run.
pub const APT_PACKAGES: &str = "prometheus prometheus-alertmanager prometheus-node-exporter";

/// The workspace root (the directory holding `monitoring/` and `rules-tests/`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(".."))
}

/// `monitoring/rules/prism-alerts.yml`.
pub fn alert_rules_path() -> PathBuf {
    repo_root().join("monitoring/rules/prism-alerts.yml")
}

/// `monitoring/grafana/dashboards/prism-overview.json`.
pub fn dashboard_path() -> PathBuf {
    repo_root().join("monitoring/grafana/dashboards/prism-overview.json")
}

/// The alerting rules of `monitoring/rules/prism-alerts.yml`.
pub fn load_alert_rules() -> Result<Vec<coverage::AlertRule>, String> {
    coverage::alert_rules(&load_yaml(&alert_rules_path())?)
}

/// The dashboard JSON of [`dashboard_path`].
pub fn load_dashboard() -> Result<serde_json::Value, String> {
    let path = dashboard_path();
    let text =
        std::fs::read_to_string(&path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("parsing {}: {e}", path.display()))
}

/// Every hand-written promtool unit test file, `rules-tests/*.test.yml`, sorted.
pub fn unit_test_files() -> Result<Vec<PathBuf>, String> {
    test_files_in(&repo_root().join("rules-tests"))
}

/// Every promtool test generated from a simulator timeline, `rules-tests/generated/*.test.yml`
/// (written by `PRISM_SIM_WRITE_GENERATED=1 cargo test -p prism-sim`), sorted.
pub fn generated_test_files() -> Result<Vec<PathBuf>, String> {
    test_files_in(&repo_root().join("rules-tests/generated"))
}

fn test_files_in(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("reading {}: {e}", dir.display()))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.to_string_lossy().ends_with(".test.yml"))
        .collect();
    files.sort();
    Ok(files)
}

/// Finds `tool` on `PATH`, or explains how to install it.
pub fn find_tool(tool: &str) -> Result<PathBuf, String> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(tool))
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| {
            format!(
                "`{tool}` is not installed, so Prism's monitoring files cannot be checked. \
                 Run scripts/test (it installs it) or: \
                 apt-get update && apt-get install -y --no-install-recommends {APT_PACKAGES}"
            )
        })
}

/// Output of one external tool run: whether it succeeded and everything it printed.
#[derive(Debug)]
pub struct ToolRun {
    /// Exit status was zero.
    pub success: bool,
    /// stdout followed by stderr, for failure messages.
    pub output: String,
}

/// Runs `tool args…` from the repository root.
pub fn run_tool(tool: &str, args: &[&std::ffi::OsStr]) -> Result<ToolRun, String> {
    let program = find_tool(tool)?;
    let output = Command::new(&program)
        .args(args)
        .current_dir(repo_root())
        .output()
        .map_err(|e| format!("running {}: {e}", program.display()))?;
    Ok(ToolRun {
        success: output.status.success(),
        output: format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    })
}

/// `scripts/deploy-monitoring.sh` as a command run from the repository root, without any
/// `PRISM_*` setting of the calling environment (receivers, targets, ports), so a test sees
/// only what it sets.
pub fn deploy_script() -> Command {
    let mut command = Command::new(repo_root().join("scripts/deploy-monitoring.sh"));
    command.current_dir(repo_root());
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("PRISM_") {
            command.env_remove(key);
        }
    }
    command
}

/// Reads and parses a YAML file.
pub fn load_yaml(path: &Path) -> Result<serde_norway::Value, String> {
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    serde_norway::from_str(&text).map_err(|e| format!("parsing {}: {e}", path.display()))
}

/// Parses a Prometheus duration such as `90s`, `15m` or `1h30m` into seconds.
pub fn parse_duration_seconds(text: &str) -> Result<u64, String> {
    let mut total = 0u64;
    let mut digits = String::new();
    for c in text.trim().chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'w' => 604_800,
            _ => return Err(format!("duration `{text}`: unknown unit `{c}`")),
        };
        let value: u64 = digits
            .parse()
            .map_err(|_| format!("duration `{text}`: missing number before `{c}`"))?;
        total += value * unit;
        digits.clear();
    }
    if !digits.is_empty() {
        return Err(format!("duration `{text}`: number without unit"));
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::parse_duration_seconds;

    #[test]
    fn parses_prometheus_durations() {
        assert_eq!(parse_duration_seconds("90s"), Ok(90));
        assert_eq!(parse_duration_seconds("15m"), Ok(900));
        assert_eq!(parse_duration_seconds("1h30m"), Ok(5400));
        assert_eq!(parse_duration_seconds("0s"), Ok(0));
        assert!(parse_duration_seconds("5").is_err());
    }
}
