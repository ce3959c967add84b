//! Final numbers of a run, computed from a [`Collector`]: percentiles per group, a merged
//! total, a latency timeline and a distribution for plots.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::stats::{Agg, Collector};

/// Percentiles of a distribution, in milliseconds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Dist {
    /// Samples.
    pub count: u64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Maximum.
    pub max: f64,
    /// Mean.
    pub mean: f64,
}

impl Dist {
    fn of_us(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Self::default();
        }
        let ms = |v: u64| v as f64 / 1000.0;
        Self {
            count: h.len(),
            p50: ms(h.value_at_quantile(0.5)),
            p90: ms(h.value_at_quantile(0.9)),
            p99: ms(h.value_at_quantile(0.99)),
            max: ms(h.max()),
            mean: h.mean() / 1000.0,
        }
    }
}

/// One timeline bucket (latency in ms).
#[derive(Debug, Clone, Serialize)]
pub struct TimePoint {
    /// Seconds since the run started (bucket start).
    pub t: f64,
    /// Samples.
    pub count: u64,
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Maximum.
    pub max: f64,
}

/// Final numbers of one group.
#[derive(Debug, Clone, Serialize)]
pub struct GroupSummary {
    /// Group name.
    pub name: String,
    /// Viewer mode.
    pub mode: String,
    /// Region label.
    pub region: Option<String>,
    /// Viewers configured.
    pub viewers: usize,
    /// Viewers that received media.
    pub started: u64,
    /// Viewers that never received media.
    pub never_started: u64,
    /// Frame latency (stamp to receipt).
    pub latency_ms: Dist,
    /// Startup time (first request to first media byte).
    pub startup_ms: Dist,
    /// Stalls (no new media for more than two target durations).
    pub stalls: u64,
    /// Total stalled time (s).
    pub stall_s: f64,
    /// Errors by kind.
    pub errors: BTreeMap<String, u64>,
    /// Requests by kind.
    pub requests: BTreeMap<String, u64>,
    /// Bytes received.
    pub bytes: u64,
    /// Stamps newer than the receive time (clock skew), counted as 0 ms.
    pub negative_latency: u64,
    /// Frames stamped before their viewer's first request (not in `latency_ms`).
    pub backlog_frames: u64,
    /// Latency over time.
    pub timeline: Vec<TimePoint>,
    /// Latency distribution: (bucket upper bound ms, samples), for plots.
    #[serde(skip)]
    pub histogram: Vec<(f64, u64)>,
}

impl GroupSummary {
    /// Total errors.
    pub fn error_total(&self) -> u64 {
        self.errors.values().sum()
    }
}

impl Collector {
    /// Summaries of all groups plus a merged `total` (first when there are several groups).
    pub fn summaries(&self) -> Vec<GroupSummary> {
        let mut out = Vec::new();
        let mut total: Option<Agg> = None;
        for g in &self.groups {
            let Ok(a) = g.agg.lock() else {
                continue;
            };
            out.push(self.summarize(&g.name, &g.mode, g.region.clone(), g.viewers, &a));
            match &mut total {
                None => total = Some(a.clone()),
                Some(t) => {
                    let _ = t.latency_us.add(&a.latency_us);
                    let _ = t.startup_us.add(&a.startup_us);
                    if t.timeline.len() < a.timeline.len() {
                        t.timeline.resize_with(a.timeline.len(), || None);
                    }
                    for (i, h) in a.timeline.iter().enumerate() {
                        if let Some(h) = h {
                            match &mut t.timeline[i] {
                                Some(th) => {
                                    let _ = th.add(h);
                                }
                                slot => *slot = Some(h.clone()),
                            }
                        }
                    }
                    t.stalls += a.stalls;
                    t.stall_us += a.stall_us;
                    for (k, v) in &a.errors {
                        *t.errors.entry(k.clone()).or_default() += v;
                    }
                    for (k, v) in &a.requests {
                        *t.requests.entry(k).or_default() += v;
                    }
                    t.bytes += a.bytes;
                    t.negative += a.negative;
                    t.backlog += a.backlog;
                    t.started += a.started;
                    t.never_started += a.never_started;
                }
            }
        }
        if out.len() > 1
            && let Some(t) = total
        {
            let viewers = self.groups.iter().map(|g| g.viewers).sum();
            let s = self.summarize("total", "mixed", None, viewers, &t);
            out.insert(0, s);
        }
        out
    }

    fn summarize(
        &self,
        name: &str,
        mode: &str,
        region: Option<String>,
        viewers: usize,
        a: &Agg,
    ) -> GroupSummary {
        let width = self.bucket.as_secs_f64();
        let timeline = a
            .timeline
            .iter()
            .enumerate()
            .filter_map(|(i, h)| {
                let h = h.as_ref()?;
                Some(TimePoint {
                    t: i as f64 * width,
                    count: h.len(),
                    p50: h.value_at_quantile(0.5) as f64,
                    p99: h.value_at_quantile(0.99) as f64,
                    max: h.max() as f64,
                })
            })
            .collect();
        let mut histogram = Vec::new();
        if !a.latency_us.is_empty() {
            let step = (a.latency_us.value_at_quantile(0.999) / 60).max(1000);
            for v in a.latency_us.iter_linear(step) {
                histogram.push((v.value_iterated_to() as f64 / 1000.0, v.count_since_last_iteration()));
            }
        }
        GroupSummary {
            name: name.to_owned(),
            mode: mode.to_owned(),
            region,
            viewers,
            started: a.started,
            never_started: a.never_started,
            latency_ms: Dist::of_us(&a.latency_us),
            startup_ms: Dist::of_us(&a.startup_us),
            stalls: a.stalls,
            stall_s: a.stall_us as f64 / 1e6,
            errors: a.errors.clone(),
            requests: a.requests.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect(),
            bytes: a.bytes,
            negative_latency: a.negative,
            backlog_frames: a.backlog,
            timeline,
            histogram,
        }
    }
}
