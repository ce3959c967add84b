//! The end-of-run report: a JSON document and a plain-text table.

use std::fmt::Write as _;

use serde::Serialize;

use crate::prom::CounterDelta;
use crate::publish::PublishSummary;
use crate::stats::GroupSummary;

/// Where the run happened.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    /// Logical CPUs.
    pub cpus: usize,
    /// CPU model (from /proc/cpuinfo when readable).
    pub cpu_model: Option<String>,
    /// Operating system and architecture.
    pub os: String,
}

impl Machine {
    /// Describes this machine.
    pub fn detect() -> Self {
        let cpu_model = std::fs::read_to_string("/proc/cpuinfo").ok().and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        });
        Self {
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu_model,
            os: format!("{} {}", std::env::consts::OS, std::env::consts::ARCH),
        }
    }
}

/// Origin offload for one metrics target.
#[derive(Debug, Clone, Serialize)]
pub struct Offload {
    /// Metrics target name.
    pub target: String,
    /// Upstream bytes during the run.
    pub upstream_bytes: f64,
    /// Bytes the viewers of the target's region received.
    pub viewer_bytes: u64,
    /// `1 - upstream / viewer` bytes.
    pub offload: f64,
}

/// A whole run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Unix time (ms) at the start.
    pub started_unix_ms: u64,
    /// Measured duration (s), from the first viewer start to the end.
    pub duration_s: f64,
    /// The command line, when known.
    pub command: Option<String>,
    /// The machine.
    pub machine: Machine,
    /// Publisher totals.
    pub publishers: PublishSummary,
    /// Viewer groups (a merged `total` first when there are several).
    pub groups: Vec<GroupSummary>,
    /// Scraped counters.
    pub counters: Vec<CounterDelta>,
    /// Offload per metrics target that names an upstream counter.
    pub offload: Vec<Offload>,
}

fn fmt_ms(v: f64) -> String {
    if v >= 10_000.0 { format!("{:.1}s", v / 1000.0) } else { format!("{v:.0}") }
}

impl Report {
    /// The summary table printed at the end of a run.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{:<14} {:>7} {:>7} | {:>6} {:>6} {:>6} {:>6} | {:>7} {:>7} | {:>6} {:>7} {:>6} | {:>9} {:>8}",
            "group",
            "mode",
            "viewers",
            "p50",
            "p90",
            "p99",
            "max",
            "start50",
            "start99",
            "stalls",
            "stall_s",
            "errors",
            "Mbit/s",
            "req/s"
        );
        let _ = writeln!(
            s,
            "{:<14} {:>7} {:>7} | {:^27} | {:^15} |",
            "", "", "", "frame latency (ms)", "startup (ms)"
        );
        for g in &self.groups {
            let secs = self.duration_s.max(0.001);
            let reqs: u64 = g.requests.values().sum();
            let _ = writeln!(
                s,
                "{:<14} {:>7} {:>7} | {:>6} {:>6} {:>6} {:>6} | {:>7} {:>7} | {:>6} {:>7.1} {:>6} | {:>9.1} {:>8.0}",
                truncate(&g.name, 14),
                g.mode,
                format!("{}/{}", g.started, g.viewers),
                fmt_ms(g.latency_ms.p50),
                fmt_ms(g.latency_ms.p90),
                fmt_ms(g.latency_ms.p99),
                fmt_ms(g.latency_ms.max),
                fmt_ms(g.startup_ms.p50),
                fmt_ms(g.startup_ms.p99),
                g.stalls,
                g.stall_s,
                g.error_total(),
                g.bytes as f64 * 8.0 / secs / 1e6,
                reqs as f64 / secs,
            );
        }
        let p = &self.publishers;
        if p.publishers > 0 {
            let _ = writeln!(
                s,
                "publishers: {} ({} sessions), {} stamped frames, {:.1} MB sent, {} errors, max send lag {:.0} ms",
                p.publishers,
                p.sessions,
                p.frames,
                p.bytes as f64 / 1e6,
                p.errors,
                p.max_lag_ms
            );
        }
        for g in &self.groups {
            if !g.errors.is_empty() {
                let list: Vec<String> = g.errors.iter().map(|(k, v)| format!("{k}={v}")).collect();
                let _ = writeln!(s, "errors[{}]: {}", g.name, list.join(" "));
            }
        }
        for c in &self.counters {
            let show = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.0}"));
            let _ = writeln!(
                s,
                "counter {}/{}: start {} end {} delta {}",
                c.target,
                c.counter,
                show(c.start),
                show(c.end),
                show(c.delta)
            );
        }
        for o in &self.offload {
            let _ = writeln!(
                s,
                "offload {}: upstream {:.1} MB for {:.1} MB delivered = {:.1}% offload",
                o.target,
                o.upstream_bytes / 1e6,
                o.viewer_bytes as f64 / 1e6,
                o.offload * 100.0
            );
        }
        s
    }

    /// Writes the JSON report.
    pub fn write_json(&self, path: &std::path::Path) -> std::io::Result<()> {
        let text = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        std::fs::write(path, text)
    }
}

fn truncate(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}
