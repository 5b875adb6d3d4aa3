//! The per-second progress line: rewritten in place on a terminal, one plain line per second
//! otherwise (logs, CI).

use std::io::{IsTerminal, Write};

use crate::recorder::Second;

/// Where and how progress is shown (always on stderr, so stdout stays the summary).
#[derive(Debug)]
pub struct Progress {
    enabled: bool,
    terminal: bool,
    line_open: bool,
}

impl Progress {
    /// Progress on stderr, in place when stderr is a terminal; `enabled = false` is silent.
    pub fn new(enabled: bool) -> Self {
        Self {
            enabled,
            terminal: std::io::stderr().is_terminal(),
            line_open: false,
        }
    }

    /// Shows one second: `(workload name, intended rate, window)` per workload.
    pub fn tick(&mut self, elapsed_s: f64, windows: &[(&str, f64, Second)]) {
        if !self.enabled {
            return;
        }
        let line = format_line(elapsed_s, windows);
        let mut stderr = std::io::stderr().lock();
        // Progress is best effort: a closed stderr must not stop the run.
        let _ = if self.terminal {
            self.line_open = true;
            write!(stderr, "\r\x1b[2K{line}").and_then(|()| stderr.flush())
        } else {
            writeln!(stderr, "{line}")
        };
    }

    /// Ends an in-place line so the summary starts on its own line.
    pub fn finish(&mut self) {
        if self.line_open {
            let _ = writeln!(std::io::stderr());
            self.line_open = false;
        }
    }
}

/// `[  3s] heartbeat 200/s (target 200/s) p50 0.21ms p99 0.48ms errors 0 | dns …`
pub fn format_line(elapsed_s: f64, windows: &[(&str, f64, Second)]) -> String {
    let parts: Vec<String> = windows
        .iter()
        .map(|(name, target, second)| {
            format!(
                "{name} {:.0}/s (target {:.0}/s) p50 {:.2}ms p99 {:.2}ms errors {}",
                second.rate, target, second.p50_ms, second.p99_ms, second.errors
            )
        })
        .collect();
    format!("[{elapsed_s:>4.0}s] {}", parts.join(" | "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_line_shows_rate_target_percentiles_and_errors_per_workload() {
        let second = Second {
            elapsed_s: 3.0,
            target_rate: 200.0,
            completed: 199,
            errors: 2,
            rate: 199.0,
            p50_ms: 0.214,
            p99_ms: 0.481,
            max_ms: 1.0,
        };
        let line = format_line(
            3.0,
            &[("heartbeat", 200.0, second.clone()), ("dns", 50.0, second)],
        );
        assert_eq!(
            line,
            "[   3s] heartbeat 199/s (target 200/s) p50 0.21ms p99 0.48ms errors 2 \
             | dns 199/s (target 50/s) p50 0.21ms p99 0.48ms errors 2"
        );
    }
}
