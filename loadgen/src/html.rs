//! The self-contained HTML report: the report's numbers in tables and hand-drawn inline SVG
//! charts (latency over time, throughput). No scripts, no external resources.

use std::fmt::Write as _;

use crate::recorder;
use crate::report::{Report, Summary, TargetReport, WorkloadReport};

/// How values map onto a chart's vertical axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scale {
    /// Zero at the bottom, round steps.
    Linear,
    /// Decades, so one spike does not flatten everything else.
    Log,
}

/// Quantiles of the percentile-distribution chart.
const DISTRIBUTION: [f64; 11] = [
    0.0, 0.5, 0.75, 0.9, 0.95, 0.99, 0.995, 0.999, 0.9995, 0.9999, 0.99999,
];

const WIDTH: f64 = 760.0;
const HEIGHT: f64 = 260.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 28.0;
const BOTTOM: f64 = 40.0;
const GRID_LINES: usize = 5;

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2em;color:#222}\
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;\
padding:.25em .6em;text-align:right}th{background:#f4f4f4;text-align:left}\
.fail{color:#b00;font-weight:bold}.pass{color:#070}svg{display:block;margin:.5em 0 1.5em}";

/// Escapes text for HTML and SVG.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Renders the whole report as one HTML document.
pub fn render(report: &Report) -> String {
    let mut html = String::new();
    let verdict = if report.passed { "pass" } else { "fail" };
    let _ = write!(
        html,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>prism-loadgen report {started}</title><style>{STYLE}</style></head><body>\
         <h1>prism-loadgen report</h1><p>Started {started} · prism-loadgen {version} · \
         thresholds: <span class=\"{verdict}\">{verdict}</span></p>\
         <p>Command line: <code>{command}</code></p>",
        started = escape(&report.started_at),
        version = escape(&report.tool_version),
        command = escape(&report.command_line.join(" ")),
    );
    if !report.merged_from.is_empty() {
        let _ = write!(
            html,
            "<p>Merged from: <code>{}</code></p>",
            escape(&report.merged_from.join(" "))
        );
    }
    if !report.thresholds.is_empty() {
        html.push_str(
            "<h2>Thresholds</h2><table><tr><th>threshold</th><th>actual</th><th>result</th></tr>",
        );
        for threshold in &report.thresholds {
            let verdict = if threshold.passed { "pass" } else { "fail" };
            let _ = write!(
                html,
                "<tr><td>{}</td><td>{}{}</td><td class=\"{verdict}\">{verdict}</td></tr>",
                escape(&threshold.expression),
                threshold.actual,
                escape(&threshold.unit)
            );
        }
        html.push_str("</table>");
    }
    if report.workloads.len() > 1 {
        html.push_str("<h2>Total (all workloads)</h2>");
        summary_table(&mut html, &report.total);
    }
    for workload in &report.workloads {
        workload_section(&mut html, workload);
    }
    html.push_str("</body></html>\n");
    html
}

fn workload_section(html: &mut String, workload: &WorkloadReport) {
    let _ = write!(
        html,
        "<h2>{} <small>({} → {})</small></h2>",
        escape(&workload.name),
        escape(&workload.kind),
        escape(&workload.target)
    );
    summary_table(html, &workload.summary);
    let extras = workload
        .faults_sent
        .iter()
        .map(|(kind, count)| (format!("faults sent: {kind}"), *count))
        .chain(
            workload
                .held_connections
                .iter()
                .map(|(kind, count)| (format!("held connections (peak): {kind}"), *count)),
        );
    html.push_str("<table>");
    for (label, count) in extras {
        let _ = write!(html, "<tr><th>{}</th><td>{count}</td></tr>", escape(&label));
    }
    html.push_str("</table>");
    if workload.targets.len() > 1 {
        targets_table(html, &workload.targets);
    }
    let seconds: Vec<f64> = workload.timeline.iter().map(|s| s.elapsed_s).collect();
    html.push_str(&line_chart(
        "Latency over time (ms per second, log scale)",
        Scale::Log,
        &seconds,
        &[],
        &[
            (
                "p50",
                "#1f77b4",
                workload.timeline.iter().map(|s| s.p50_ms).collect(),
            ),
            (
                "p99",
                "#ff7f0e",
                workload.timeline.iter().map(|s| s.p99_ms).collect(),
            ),
            (
                "max",
                "#d62728",
                workload.timeline.iter().map(|s| s.max_ms).collect(),
            ),
        ],
    ));
    html.push_str(&line_chart(
        "Throughput (requests per second: target, answered, failed)",
        Scale::Linear,
        &seconds,
        &[],
        &[
            (
                "target",
                "#7f7f7f",
                workload.timeline.iter().map(|s| s.target_rate).collect(),
            ),
            (
                "achieved",
                "#2ca02c",
                workload.timeline.iter().map(|s| s.rate).collect(),
            ),
            (
                "errors",
                "#d62728",
                workload.timeline.iter().map(|s| s.errors as f64).collect(),
            ),
        ],
    ));
    html.push_str(&distribution_chart(workload));
}

/// Latency by percentile over the whole run (HdrHistogram's percentile plot): the x axis
/// spreads the tail (log of 1 / (1 − q)), the y axis is logarithmic.
fn distribution_chart(workload: &WorkloadReport) -> String {
    let latency = recorder::decode(&workload.histograms.latency_us);
    let position = |quantile: f64| (1.0 / (1.0 - quantile).max(1e-9)).log10();
    let (xs, values): (Vec<f64>, Vec<f64>) = DISTRIBUTION
        .iter()
        .filter(|quantile| {
            !latency.is_empty() && (1.0 - **quantile) * latency.len() as f64 >= 1.0
                || **quantile == 0.0
        })
        .map(|quantile| {
            (
                position(*quantile),
                recorder::millis(latency.value_at_quantile(*quantile)),
            )
        })
        .unzip();
    let ticks: Vec<(f64, String)> = [
        (0.0, "0%"),
        (0.5, "50%"),
        (0.9, "90%"),
        (0.99, "99%"),
        (0.999, "99.9%"),
        (0.9999, "99.99%"),
        (0.99999, "99.999%"),
    ]
    .into_iter()
    .map(|(quantile, label)| (position(quantile), label.to_owned()))
    .filter(|(x, _)| *x <= xs.last().copied().unwrap_or(0.0) + 1e-9)
    .collect();
    line_chart(
        "Latency by percentile (ms, log scale, whole run)",
        Scale::Log,
        &xs,
        &ticks,
        &[("latency", "#9467bd", values)],
    )
}

fn targets_table(html: &mut String, targets: &[TargetReport]) {
    html.push_str(
        "<table><tr><th>target</th><th>address</th><th>sent</th><th>ok</th><th>errors</th>\
         <th>rate (/s)</th><th>p50 (ms)</th><th>p99 (ms)</th><th>max (ms)</th></tr>",
    );
    for target in targets {
        let _ = write!(
            html,
            "<tr><th>{}</th><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
             <td>{}</td><td>{}</td></tr>",
            escape(&target.target),
            escape(&target.address),
            target.sent,
            target.ok,
            target.errors,
            target.achieved_rate,
            target.latency_ms.p50,
            target.latency_ms.p99,
            target.latency_ms.max
        );
    }
    html.push_str("</table>");
}

fn summary_table(html: &mut String, summary: &Summary) {
    let latency = &summary.latency_ms;
    let rows: [(&str, String); 10] = [
        ("target rate (/s)", summary.target_rate.to_string()),
        ("achieved rate (/s)", summary.achieved_rate.to_string()),
        ("duration (s)", summary.duration_s.to_string()),
        ("scheduled", summary.scheduled.to_string()),
        ("sent", summary.sent.to_string()),
        ("dropped", summary.dropped.to_string()),
        ("completed", summary.completed.to_string()),
        ("ok", summary.ok.to_string()),
        ("errors", summary.errors.to_string()),
        ("error %", summary.error_percent.to_string()),
    ];
    html.push_str("<table>");
    for (label, value) in rows {
        let _ = write!(html, "<tr><th>{label}</th><td>{value}</td></tr>");
    }
    for (kind, count) in &summary.errors_by_kind {
        let _ = write!(
            html,
            "<tr><th>errors: {}</th><td>{count}</td></tr>",
            escape(kind)
        );
    }
    html.push_str("</table><table><tr><th>latency (ms)</th>");
    for label in ["p50", "p90", "p95", "p99", "p99.9", "max", "mean"] {
        let _ = write!(html, "<th>{label}</th>");
    }
    html.push_str("</tr>");
    for (label, values) in [
        ("from intended send", latency),
        ("from actual send", &summary.service_latency_ms),
        ("schedule lag", &summary.schedule_lag_ms),
    ] {
        let _ = write!(html, "<tr><th>{label}</th>");
        for value in [
            values.p50,
            values.p90,
            values.p95,
            values.p99,
            values.p999,
            values.max,
            values.mean,
        ] {
            let _ = write!(html, "<td>{value}</td>");
        }
        html.push_str("</tr>");
    }
    html.push_str("</table>");
}

/// A round step for about `GRID_LINES` gridlines up to `max`.
fn nice_step(max: f64) -> f64 {
    let raw = (max / GRID_LINES as f64).max(1e-9);
    let magnitude = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 2.5, 5.0, 10.0]
        .into_iter()
        .map(|factor| factor * magnitude)
        .find(|step| *step >= raw)
        .unwrap_or(10.0 * magnitude)
}

/// The vertical axis: where a value sits (0 bottom … 1 top) and the gridlines.
struct VerticalAxis {
    scale: Scale,
    low: f64,
    high: f64,
    ticks: Vec<(f64, String)>,
}

impl VerticalAxis {
    fn new(scale: Scale, values: impl Iterator<Item = f64> + Clone) -> Self {
        let peak = values.clone().filter(|v| v.is_finite()).fold(0.0, f64::max);
        match scale {
            Scale::Linear => {
                let step = nice_step(if peak > 0.0 { peak } else { 1.0 });
                let high = (peak / step).ceil().max(1.0) * step;
                let ticks = (0..)
                    .map(|n| f64::from(n) * step)
                    .take_while(|tick| *tick <= high + step / 2.0)
                    .map(|tick| (tick, ((tick * 1000.0).round() / 1000.0).to_string()))
                    .collect();
                Self {
                    scale,
                    low: 0.0,
                    high,
                    ticks,
                }
            }
            Scale::Log => {
                let lowest = values
                    .filter(|v| v.is_finite() && *v > 0.0)
                    .fold(f64::INFINITY, f64::min);
                let low = if lowest.is_finite() {
                    lowest.log10().floor()
                } else {
                    -3.0
                };
                let high = if peak > 0.0 {
                    peak.log10().ceil().max(low + 1.0)
                } else {
                    low + 1.0
                };
                let ticks = (low as i32..=high as i32)
                    .map(|exponent| {
                        let value = 10f64.powi(exponent);
                        (
                            f64::from(exponent),
                            format!("{}", (value * 1e6).round() / 1e6),
                        )
                    })
                    .collect();
                Self {
                    scale,
                    low,
                    high,
                    ticks,
                }
            }
        }
    }

    /// A value's height as a share of the plot (values at or below zero sit at the bottom of
    /// a log axis).
    fn share(&self, value: f64) -> f64 {
        let position = match self.scale {
            Scale::Linear => value,
            Scale::Log if value > 0.0 => value.log10(),
            Scale::Log => self.low,
        };
        ((position - self.low) / (self.high - self.low).max(1e-9)).clamp(0.0, 1.0)
    }
}

/// A line chart of `series` (label, colour, values) over `xs`, as inline SVG. `x_ticks`
/// labels the horizontal axis; when empty it is seconds in round steps.
fn line_chart(
    title: &str,
    scale: Scale,
    xs: &[f64],
    x_ticks: &[(f64, String)],
    series: &[(&str, &str, Vec<f64>)],
) -> String {
    let x_max = xs.iter().copied().fold(1.0, f64::max);
    let axis = VerticalAxis::new(
        scale,
        series
            .iter()
            .flat_map(|(_, _, values)| values.iter().copied()),
    );
    let plot_width = WIDTH - LEFT - RIGHT;
    let plot_height = HEIGHT - TOP - BOTTOM;
    let x_at = |x: f64| LEFT + x / x_max * plot_width;
    let y_at = |y: f64| TOP + plot_height - axis.share(y) * plot_height;
    let mut svg = String::new();
    let _ = write!(
        svg,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{HEIGHT}\" \
         viewBox=\"0 0 {WIDTH} {HEIGHT}\" role=\"img\" aria-label=\"{t}\" font-size=\"11\">\
         <text x=\"{LEFT}\" y=\"16\" font-size=\"13\" font-weight=\"bold\">{t}</text>",
        t = escape(title)
    );
    for (position, label) in &axis.ticks {
        let y = TOP + plot_height
            - ((position - axis.low) / (axis.high - axis.low).max(1e-9)) * plot_height;
        let _ = write!(
            svg,
            "<line x1=\"{LEFT}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#e5e5e5\"/>\
             <text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{label}</text>",
            WIDTH - RIGHT,
            LEFT - 6.0,
            y + 4.0,
        );
    }
    let seconds: Vec<(f64, String)>;
    let x_ticks = if x_ticks.is_empty() {
        let x_step = nice_step(x_max);
        seconds = (0..)
            .map(|n| f64::from(n) * x_step)
            .take_while(|tick| *tick <= x_max + x_step / 2.0)
            .map(|tick| (tick, format!("{}s", (tick * 10.0).round() / 10.0)))
            .collect();
        &seconds
    } else {
        x_ticks
    };
    for (tick, label) in x_ticks {
        let _ = write!(
            svg,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
            x_at(*tick),
            HEIGHT - BOTTOM + 16.0,
            escape(label)
        );
    }
    let _ = write!(
        svg,
        "<line x1=\"{LEFT}\" x2=\"{LEFT}\" y1=\"{TOP}\" y2=\"{b}\" stroke=\"#444\"/>\
         <line x1=\"{LEFT}\" x2=\"{r}\" y1=\"{b}\" y2=\"{b}\" stroke=\"#444\"/>",
        b = TOP + plot_height,
        r = WIDTH - RIGHT
    );
    for (position, (label, colour, values)) in series.iter().enumerate() {
        let points: Vec<String> = xs
            .iter()
            .zip(values)
            .filter(|(_, value)| value.is_finite())
            .map(|(x, value)| format!("{:.1},{:.1}", x_at(*x), y_at(*value)))
            .collect();
        let _ = write!(
            svg,
            "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"1.8\" points=\"{}\"/>",
            points.join(" ")
        );
        // Short runs have few points; dots keep a one-second run visible.
        if points.len() <= 30 {
            for point in &points {
                if let Some((x, y)) = point.split_once(',') {
                    let _ = write!(
                        svg,
                        "<circle cx=\"{x}\" cy=\"{y}\" r=\"2.5\" fill=\"{colour}\"/>"
                    );
                }
            }
        }
        let legend_x = LEFT + 10.0 + position as f64 * 90.0;
        let legend_y = HEIGHT - 8.0;
        let _ = write!(
            svg,
            "<rect x=\"{legend_x}\" y=\"{}\" width=\"12\" height=\"4\" fill=\"{colour}\"/>\
             <text x=\"{}\" y=\"{legend_y}\">{}</text>",
            legend_y - 5.0,
            legend_x + 16.0,
            escape(label)
        );
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chart_text_is_escaped_and_axes_use_round_steps() {
        assert_eq!(escape("p99<5ms & \"x\""), "p99&lt;5ms &amp; &quot;x&quot;");
        assert_eq!(nice_step(10.0), 2.0);
        assert_eq!(nice_step(1000.0), 200.0);
        assert_eq!(nice_step(0.9), 0.2);
        let svg = line_chart(
            "a<b",
            Scale::Linear,
            &[1.0, 2.0],
            &[],
            &[("p99", "#000", vec![0.5, 1.5])],
        );
        assert!(svg.contains("a&lt;b") && svg.contains("<polyline"));
        assert!(!svg.contains("NaN"));
    }

    #[test]
    fn chart_of_an_empty_timeline_is_still_valid_svg() {
        for scale in [Scale::Linear, Scale::Log] {
            let svg = line_chart("empty", scale, &[], &[], &[("p99", "#000", Vec::new())]);
            assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
            assert!(!svg.contains("NaN") && !svg.contains("inf"));
        }
    }

    #[test]
    fn log_axis_gives_each_decade_the_same_height_so_a_spike_does_not_flatten_the_rest() {
        let axis = VerticalAxis::new(Scale::Log, [0.2, 3.0, 4000.0].into_iter());
        assert_eq!((axis.low, axis.high), (-1.0, 4.0));
        let labels: Vec<&str> = axis.ticks.iter().map(|(_, label)| label.as_str()).collect();
        assert_eq!(labels, ["0.1", "1", "10", "100", "1000", "10000"]);
        assert!((axis.share(1.0) - 0.2).abs() < 1e-9);
        assert!((axis.share(10.0) - axis.share(1.0) - 0.2).abs() < 1e-9);
        // On a linear axis the 3 ms request would sit at 0.075 % of the height.
        let linear = VerticalAxis::new(Scale::Linear, [0.2, 3.0, 4000.0].into_iter());
        assert!(linear.share(3.0) < 0.001 && axis.share(3.0) > 0.2);
    }
}
