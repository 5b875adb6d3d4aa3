//! Process plumbing for the live end-to-end alert test: free loopback ports, child processes
//! that are killed when dropped, readiness polling, and the generated Prometheus/Alertmanager
//! configuration (including the fast test copy of the alert rules).
//!
//! Everything listens on 127.0.0.1 only. Every wait is bounded by a deadline.

use std::fs::File;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_norway::Value;

/// A loopback port that was free a moment ago (bound to port 0, then released).
pub fn free_loopback_port() -> Result<u16, String> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .map_err(|e| format!("binding a loopback port to find a free one: {e}"))?;
    listener
        .local_addr()
        .map(|addr| addr.port())
        .map_err(|e| format!("reading the free port: {e}"))
}

/// A child process that is killed (and reaped) when the guard is dropped, so a failing test
/// never leaves Prometheus or Alertmanager behind. Its stdout and stderr go to a log file
/// whose tail is quoted in failure messages.
#[derive(Debug)]
pub struct ChildGuard {
    /// Short name for messages (`prometheus`, `alertmanager`).
    name: String,
    /// The running process.
    child: Child,
    /// Where its output goes.
    log: PathBuf,
}

impl ChildGuard {
    /// Starts `tool` (found on `PATH`) with `args`, logging into `log_dir/<name>.log`.
    pub fn spawn(name: &str, tool: &str, args: &[String], log_dir: &Path) -> Result<Self, String> {
        let program = crate::find_tool(tool)?;
        let log = log_dir.join(format!("{name}.log"));
        let stdout = File::create(&log).map_err(|e| format!("creating {}: {e}", log.display()))?;
        let stderr = stdout
            .try_clone()
            .map_err(|e| format!("sharing {}: {e}", log.display()))?;
        let child = Command::new(&program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .map_err(|e| format!("starting {}: {e}", program.display()))?;
        Ok(Self {
            name: name.to_owned(),
            child,
            log,
        })
    }

    /// The last `lines` lines the process logged, for failure messages.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        let start = all.len().saturating_sub(lines);
        format!(
            "--- last {} lines of {} ({}) ---\n{}",
            all.len() - start,
            self.name,
            self.log.display(),
            all[start..].join("\n")
        )
    }

    /// Waits until the process accepts TCP connections on `addr`, failing early if it exits.
    pub fn wait_listening(&mut self, addr: SocketAddr, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!(
                    "{} exited with {status} before listening on {addr}\n{}",
                    self.name,
                    self.log_tail(30)
                ));
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(format!(
            "{} did not listen on {addr} within {timeout:?}\n{}",
            self.name,
            self.log_tail(30)
        ))
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Replaces every range window such as `[5m]` or `[1h]` in a PromQL expression by `[window]`.
/// Subquery windows (`[5m:1m]`) are left alone.
pub fn shorten_range_windows(expr: &str, window: &str) -> String {
    let mut out = String::with_capacity(expr.len());
    let mut rest = expr;
    while let Some(open) = rest.find('[') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.find(']') {
            Some(close)
                if !after[..close].is_empty()
                    && after[..close].chars().all(|c| c.is_ascii_alphanumeric()) =>
            {
                out.push('[');
                out.push_str(window);
                out.push(']');
                rest = &after[close + 1..];
            }
            _ => {
                out.push('[');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// A test copy of a Prometheus rules document: every alert's `for` becomes `for_duration`
/// and every range window becomes `window`; thresholds, labels and everything else stay.
pub fn fast_rules(rules: &Value, for_duration: &str, window: &str) -> Result<Value, String> {
    let mut copy = rules.clone();
    let groups = copy
        .get_mut("groups")
        .and_then(Value::as_sequence_mut)
        .ok_or("the rules file has no `groups` list")?;
    for group in groups {
        let rules = group
            .get_mut("rules")
            .and_then(Value::as_sequence_mut)
            .ok_or("a rule group has no `rules` list")?;
        for rule in rules {
            let rule = rule.as_mapping_mut().ok_or("a rule is not a mapping")?;
            if rule.contains_key("for") {
                rule.insert("for".into(), for_duration.into());
            }
            let expr = rule
                .get("expr")
                .and_then(Value::as_str)
                .ok_or("a rule has no string `expr`")?;
            let shortened = shorten_range_windows(expr, window);
            rule.insert("expr".into(), shortened.into());
        }
    }
    Ok(copy)
}

/// A Prometheus configuration that scrapes `prism_target` (job `prism`) every second,
/// evaluates `rules_file` every second and sends alerts to `alertmanager`.
pub fn prometheus_config(
    prism_target: SocketAddr,
    rules_file: &Path,
    alertmanager: SocketAddr,
) -> Result<String, String> {
    let config = serde_json::json!({
        "global": { "scrape_interval": "1s", "evaluation_interval": "1s" },
        "rule_files": [rules_file.to_string_lossy()],
        "alerting": { "alertmanagers": [
            { "static_configs": [{ "targets": [alertmanager.to_string()] }] }
        ] },
        "scrape_configs": [{
            "job_name": "prism",
            "scrape_interval": "1s",
            "static_configs": [{ "targets": [prism_target.to_string()] }]
        }]
    });
    serde_norway::to_string(&config).map_err(|e| format!("writing the Prometheus config: {e}"))
}

/// An Alertmanager configuration that delivers every alert, grouped by name, to one webhook
/// after one second (no inhibition, so simultaneous alerts are all delivered).
pub fn alertmanager_config(webhook_url: &str) -> Result<String, String> {
    let config = serde_json::json!({
        "route": {
            "receiver": "test-webhook",
            "group_by": ["alertname"],
            "group_wait": "1s",
            "group_interval": "1s",
            "repeat_interval": "1h"
        },
        "receivers": [{
            "name": "test-webhook",
            "webhook_configs": [{ "url": webhook_url, "send_resolved": false }]
        }]
    });
    serde_norway::to_string(&config).map_err(|e| format!("writing the Alertmanager config: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shortens_range_windows_but_not_subqueries_or_label_matchers() {
        assert_eq!(
            shorten_range_windows(r#"rate(x{a=~"5.."}[5m]) / rate(y[1h30m])"#, "30s"),
            r#"rate(x{a=~"5.."}[30s]) / rate(y[30s])"#
        );
        assert_eq!(
            shorten_range_windows("max_over_time(x[5m:1m])", "30s"),
            "max_over_time(x[5m:1m])"
        );
    }

    #[test]
    fn fast_rules_shorten_for_and_windows_and_keep_thresholds() {
        let rules: Value = serde_norway::from_str(
            "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: rate(x[5m]) > 0.1\n    for: 2m\n  - alert: B\n    expr: y > 900\n",
        )
        .expect("yaml");
        let fast = fast_rules(&rules, "5s", "30s").expect("fast rules");
        let rules = &fast["groups"][0]["rules"];
        assert_eq!(rules[0]["for"].as_str(), Some("5s"));
        assert_eq!(rules[0]["expr"].as_str(), Some("rate(x[30s]) > 0.1"));
        assert_eq!(rules[1]["expr"].as_str(), Some("y > 900"));
        assert!(rules[1].get("for").is_none());
    }
}
