//! A hand-written SVG of a send run: the latency distribution (percentiles on a
//! "nines" scale, where tail latency lives) and the rate over time.
//!
//! Written by hand because two line charts do not justify a plotting crate.

use std::fmt::Write;

use crate::send::Report;

const WIDTH: f64 = 900.0;
const PANEL_H: f64 = 260.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 20.0;

/// The whole chart for a report.
pub fn report_svg(report: &Report, title: &str) -> String {
    let height = 2.0 * PANEL_H + 150.0;
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = write!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = write!(
        svg,
        r#"<text x="{LEFT}" y="24" font-size="16">{}</text>"#,
        escape(title)
    );
    latency_panel(&mut svg, report, 50.0);
    rate_panel(&mut svg, report, 50.0 + PANEL_H + 60.0);
    svg.push_str("</svg>\n");
    svg
}

/// A plotting area and its value ranges.
struct Panel {
    top: f64,
    x_max: f64,
    y_max: f64,
}

impl Panel {
    fn x(&self, v: f64) -> f64 {
        LEFT + (v / self.x_max).clamp(0.0, 1.0) * (WIDTH - LEFT - RIGHT)
    }

    fn y(&self, v: f64) -> f64 {
        self.top + PANEL_H - (v / self.y_max).clamp(0.0, 1.0) * PANEL_H
    }

    /// Frame, horizontal grid with labels, and axis titles.
    fn frame(&self, svg: &mut String, title: &str, y_label: &str) {
        let _ = write!(
            svg,
            r##"<text x="{LEFT}" y="{}" font-size="14">{}</text><rect x="{LEFT}" y="{}" width="{}" height="{PANEL_H}" fill="none" stroke="#888"/>"##,
            self.top - 8.0,
            escape(title),
            self.top,
            WIDTH - LEFT - RIGHT
        );
        for tick in ticks(self.y_max) {
            let y = self.y(tick);
            let _ = write!(
                svg,
                r##"<line x1="{LEFT}" x2="{}" y1="{y:.1}" y2="{y:.1}" stroke="#eee"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
                WIDTH - RIGHT,
                LEFT - 6.0,
                y + 4.0,
                number(tick)
            );
        }
        let _ = write!(
            svg,
            r#"<text transform="translate(16,{:.1}) rotate(-90)" text-anchor="middle">{}</text>"#,
            self.top + PANEL_H / 2.0,
            escape(y_label)
        );
    }

    /// A polyline through `(x, y)` data points.
    fn line(&self, svg: &mut String, points: &[(f64, f64)], color: &str) {
        if points.is_empty() {
            return;
        }
        let path: Vec<String> = points
            .iter()
            .map(|&(x, y)| format!("{:.1},{:.1}", self.x(x), self.y(y)))
            .collect();
        let _ = write!(
            svg,
            r#"<polyline fill="none" stroke="{color}" stroke-width="2" points="{}"/>"#,
            path.join(" ")
        );
    }
}

/// Latency by percentile; x is the number of nines (0 = p0, 1 = p90, 2 = p99 ...).
fn latency_panel(svg: &mut String, report: &Report, top: f64) {
    let total = report.latency_ms.count.max(1) as f64;
    let max_nines = total.log10().clamp(1.0, 6.0);
    let points: Vec<(f64, f64)> = report
        .latency_cdf
        .iter()
        .map(|&(ms, share)| {
            let below = (1.0 - share).max(1.0 / (10.0 * total));
            ((-below.log10()).min(max_nines), ms)
        })
        .collect();
    let y_max = nice(points.iter().map(|p| p.1).fold(0.0, f64::max));
    let panel = Panel {
        top,
        x_max: max_nines,
        y_max,
    };
    panel.frame(
        svg,
        "Latency by percentile (accepted messages)",
        "latency (ms)",
    );
    for nines in 0..=(max_nines as usize) {
        let label = match nines {
            0 => "p0".to_string(),
            1 => "p90".to_string(),
            2 => "p99".to_string(),
            n => format!("p99.{}", "9".repeat(n - 2)),
        };
        let x = panel.x(nines as f64);
        let _ = write!(
            svg,
            r##"<line x1="{x:.1}" x2="{x:.1}" y1="{top}" y2="{}" stroke="#eee"/><text x="{x:.1}" y="{}" text-anchor="middle">{label}</text>"##,
            top + PANEL_H,
            top + PANEL_H + 16.0
        );
    }
    panel.line(svg, &points, "#1f77b4");
}

/// Accepted and failed messages per second.
fn rate_panel(svg: &mut String, report: &Report, top: f64) {
    let accepted: Vec<(f64, f64)> = report
        .timeline
        .iter()
        .map(|s| (s.second as f64 + 0.5, s.accepted as f64))
        .collect();
    let failed: Vec<(f64, f64)> = report
        .timeline
        .iter()
        .map(|s| (s.second as f64 + 0.5, s.failed as f64))
        .collect();
    let y_max = nice(
        accepted
            .iter()
            .chain(&failed)
            .map(|p| p.1)
            .fold(0.0, f64::max),
    );
    let x_max = (report.timeline.len() as f64).max(1.0);
    let panel = Panel { top, x_max, y_max };
    panel.frame(
        svg,
        "Messages per second (blue accepted, red not accepted)",
        "messages/s",
    );
    for tick in ticks(x_max) {
        let x = panel.x(tick);
        let _ = write!(
            svg,
            r#"<text x="{x:.1}" y="{}" text-anchor="middle">{}s</text>"#,
            top + PANEL_H + 16.0,
            number(tick)
        );
    }
    panel.line(svg, &accepted, "#1f77b4");
    if failed.iter().any(|p| p.1 > 0.0) {
        panel.line(svg, &failed, "#d62728");
    }
}

/// The next "round" number at or above `v` (1, 2, 5 × 10ⁿ).
fn nice(v: f64) -> f64 {
    if v <= 0.0 {
        return 1.0;
    }
    let magnitude = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|c| *c >= v)
        .unwrap_or(10.0 * magnitude)
}

/// About five round tick values from 0 to `max`.
fn ticks(max: f64) -> Vec<f64> {
    let step = nice(max / 5.0);
    (0..=10)
        .map(|i| i as f64 * step)
        .take_while(|t| *t <= max * 1.0001)
        .collect()
}

/// A short label for a tick.
fn number(v: f64) -> String {
    if v >= 1000.0 || v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

/// XML-escapes text.
fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::send::Second;

    #[test]
    fn chart_is_well_formed_svg() {
        let report = Report {
            latency_cdf: vec![(1.0, 0.5), (2.0, 0.99), (9.0, 1.0)],
            timeline: vec![Second {
                second: 0,
                accepted: 10,
                failed: 1,
            }],
            ..Report::default()
        };
        let svg = report_svg(&report, "a < b");
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
        assert!(svg.contains("a &lt; b"));
        assert_eq!(svg.matches("<polyline").count(), 3);
    }

    #[test]
    fn nice_rounds_up() {
        assert_eq!(nice(3.2), 5.0);
        assert_eq!(nice(120.0), 200.0);
        assert_eq!(ticks(10.0), vec![0.0, 2.0, 4.0, 6.0, 8.0, 10.0]);
    }
}
