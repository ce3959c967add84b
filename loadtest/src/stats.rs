//! Measurement collection shared by all viewers of a run.
//!
//! Viewers keep a small [`Recorder`] (a bounded batch of samples and counters) and flush it
//! into their group's aggregate after each response; the aggregate holds HDR histograms
//! (latency, startup) and a bounded latency timeline. [`LiveCounters`] feed the progress line.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

/// Largest latency or startup recorded (one hour, in microseconds); larger values saturate.
const MAX_US: u64 = 3_600_000_000;
/// Most timeline buckets kept per group.
pub const MAX_BUCKETS: usize = 600;
/// Samples a recorder batches before flushing.
const BATCH: usize = 64;

/// Live totals for the progress line.
#[derive(Debug, Default)]
pub struct LiveCounters {
    /// Viewers currently running.
    pub active: AtomicU64,
    /// Stamped frames received.
    pub frames: AtomicU64,
    /// Media and playlist bytes received.
    pub bytes: AtomicU64,
    /// Errors.
    pub errors: AtomicU64,
    /// Stalls.
    pub stalls: AtomicU64,
    /// Latency sum since the last progress tick (µs).
    pub tick_latency_us: AtomicU64,
    /// Latency samples since the last progress tick.
    pub tick_samples: AtomicU64,
}

#[derive(Debug)]
struct Agg {
    latency_us: Histogram<u64>,
    startup_us: Histogram<u64>,
    timeline: Vec<Option<Histogram<u32>>>,
    stalls: u64,
    stall_us: u64,
    errors: BTreeMap<String, u64>,
    requests: BTreeMap<&'static str, u64>,
    bytes: u64,
    negative: u64,
    started: u64,
    never_started: u64,
}

fn hist_us() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_US, 3).expect("constant histogram bounds are valid")
}

fn hist_ms() -> Histogram<u32> {
    Histogram::new_with_bounds(1, 600_000, 2).expect("constant histogram bounds are valid")
}

/// Measurements of one group of viewers (same URL set and mode).
#[derive(Debug)]
pub struct GroupStats {
    /// Group name.
    pub name: String,
    /// Viewer mode (`ll-hls` or `hls`).
    pub mode: String,
    /// Region label, for offload accounting.
    pub region: Option<String>,
    /// Viewers configured.
    pub viewers: usize,
    agg: Mutex<Agg>,
}

/// The whole run's collector.
#[derive(Debug)]
pub struct Collector {
    /// When the run started (timeline origin).
    pub start: Instant,
    /// Width of one timeline bucket.
    pub bucket: Duration,
    /// Per-group aggregates.
    pub groups: Vec<GroupStats>,
    /// Live counters.
    pub live: LiveCounters,
}

impl Collector {
    /// A collector for `groups` (name, mode, region, viewers) over a run of `duration`.
    pub fn new(groups: Vec<(String, String, Option<String>, usize)>, duration: Duration) -> Self {
        let secs = duration.as_secs().max(1);
        let bucket = Duration::from_secs(secs.div_ceil(MAX_BUCKETS as u64 - 10).max(1));
        Self {
            start: Instant::now(),
            bucket,
            groups: groups
                .into_iter()
                .map(|(name, mode, region, viewers)| GroupStats {
                    name,
                    mode,
                    region,
                    viewers,
                    agg: Mutex::new(Agg {
                        latency_us: hist_us(),
                        startup_us: hist_us(),
                        timeline: Vec::new(),
                        stalls: 0,
                        stall_us: 0,
                        errors: BTreeMap::new(),
                        requests: BTreeMap::new(),
                        bytes: 0,
                        negative: 0,
                        started: 0,
                        never_started: 0,
                    }),
                })
                .collect(),
            live: LiveCounters::default(),
        }
    }

    fn bucket_of(&self, at: Instant) -> usize {
        let since = at.saturating_duration_since(self.start).as_secs();
        ((since / self.bucket.as_secs().max(1)) as usize).min(MAX_BUCKETS - 1)
    }
}

/// Per-viewer measurement buffer; flushes into its group.
#[derive(Debug)]
pub struct Recorder<'a> {
    collector: &'a Collector,
    group: usize,
    samples: Vec<(u32, u64)>,
    negative: u64,
    bytes: u64,
    requests: Vec<(&'static str, u64)>,
    errors: Vec<(String, u64)>,
    /// Last stamp seen (frames are counted once, in order).
    pub last_stamp: u64,
}

impl<'a> Recorder<'a> {
    /// A recorder for a viewer of group `group`.
    pub fn new(collector: &'a Collector, group: usize) -> Self {
        Self {
            collector,
            group,
            samples: Vec::with_capacity(BATCH),
            negative: 0,
            bytes: 0,
            requests: Vec::new(),
            errors: Vec::new(),
            last_stamp: 0,
        }
    }

    /// The collector this recorder flushes into.
    pub fn collector(&self) -> &'a Collector {
        self.collector
    }

    /// The group index.
    pub fn group(&self) -> usize {
        self.group
    }

    /// Records a stamp received at `now_us` (unix µs), `at` (monotonic).
    pub fn stamp(&mut self, stamp_us: u64, now_us: u64, at: Instant) {
        if stamp_us <= self.last_stamp {
            return;
        }
        self.last_stamp = stamp_us;
        let lat = match now_us.checked_sub(stamp_us) {
            Some(l) => l,
            None => {
                self.negative += 1;
                0
            }
        };
        let live = &self.collector.live;
        live.frames.fetch_add(1, Ordering::Relaxed);
        live.tick_latency_us.fetch_add(lat, Ordering::Relaxed);
        live.tick_samples.fetch_add(1, Ordering::Relaxed);
        self.samples.push((self.collector.bucket_of(at) as u32, lat));
        if self.samples.len() >= BATCH {
            self.flush();
        }
    }

    /// Adds received bytes.
    pub fn bytes(&mut self, n: usize) {
        self.bytes += n as u64;
        self.collector.live.bytes.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Counts a request of `kind` (`playlist`, `part`, `segment`, ...).
    pub fn request(&mut self, kind: &'static str) {
        match self.requests.iter_mut().find(|(k, _)| *k == kind) {
            Some((_, n)) => *n += 1,
            None => self.requests.push((kind, 1)),
        }
    }

    /// Counts an error of `kind`.
    pub fn error(&mut self, kind: &str) {
        self.collector.live.errors.fetch_add(1, Ordering::Relaxed);
        if let Some((_, n)) = self.errors.iter_mut().find(|(k, _)| k == kind) {
            *n += 1;
        } else if self.errors.len() < 32 {
            self.errors.push((kind.to_owned(), 1));
        }
    }

    /// Records a stall of `gap`.
    pub fn stall(&mut self, gap: Duration) {
        self.collector.live.stalls.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut a) = self.collector.groups[self.group].agg.lock() {
            a.stalls += 1;
            a.stall_us += gap.as_micros() as u64;
        }
    }

    /// Records the startup time (first request to first media byte).
    pub fn startup(&mut self, d: Duration) {
        if let Ok(mut a) = self.collector.groups[self.group].agg.lock() {
            a.started += 1;
            let _ = a.startup_us.record((d.as_micros() as u64).clamp(1, MAX_US));
        }
    }

    /// Marks a viewer that ended without receiving media.
    pub fn never_started(&mut self) {
        if let Ok(mut a) = self.collector.groups[self.group].agg.lock() {
            a.never_started += 1;
        }
    }

    /// Moves the batch into the group aggregate.
    pub fn flush(&mut self) {
        let Ok(mut a) = self.collector.groups[self.group].agg.lock() else {
            return;
        };
        for (bucket, lat) in self.samples.drain(..) {
            let _ = a.latency_us.record(lat.clamp(1, MAX_US));
            let b = bucket as usize;
            if a.timeline.len() <= b {
                a.timeline.resize_with(b + 1, || None);
            }
            if let Some(slot) = a.timeline.get_mut(b) {
                let h = slot.get_or_insert_with(hist_ms);
                let _ = h.record((lat / 1000).clamp(1, 600_000));
            }
        }
        a.negative += std::mem::take(&mut self.negative);
        a.bytes += std::mem::take(&mut self.bytes);
        for (k, n) in self.requests.drain(..) {
            *a.requests.entry(k).or_default() += n;
        }
        for (k, n) in self.errors.drain(..) {
            *a.errors.entry(k).or_default() += n;
        }
    }
}

impl Drop for Recorder<'_> {
    fn drop(&mut self) {
        self.flush();
    }
}

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
            let Ok(a) = g.agg.lock() else { continue };
            out.push(self.summarize(&g.name, &g.mode, g.region.clone(), g.viewers, &a));
            match &mut total {
                None => {
                    total = Some(Agg {
                        latency_us: a.latency_us.clone(),
                        startup_us: a.startup_us.clone(),
                        timeline: a.timeline.clone(),
                        stalls: a.stalls,
                        stall_us: a.stall_us,
                        errors: a.errors.clone(),
                        requests: a.requests.clone(),
                        bytes: a.bytes,
                        negative: a.negative,
                        started: a.started,
                        never_started: a.never_started,
                    })
                }
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
            timeline,
            histogram,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorder_dedups_and_summarizes() {
        let c = Collector::new(
            vec![("a".into(), "ll-hls".into(), None, 1), ("b".into(), "hls".into(), None, 1)],
            Duration::from_secs(10),
        );
        {
            let mut r = Recorder::new(&c, 0);
            for i in 1..=100u64 {
                r.stamp(i * 1000, i * 1000 + 400_000, Instant::now());
                r.stamp(i * 1000, i * 1000 + 900_000, Instant::now()); // duplicate: ignored
            }
            r.bytes(10);
            r.request("part");
            r.error("http_404");
            r.startup(Duration::from_millis(250));
        }
        {
            let mut r = Recorder::new(&c, 1);
            r.stamp(5_000_000, 4_000_000, Instant::now()); // from the future
        }
        let s = c.summaries();
        assert_eq!(s.len(), 3);
        assert_eq!(s[0].name, "total");
        let a = &s[1];
        assert_eq!(a.latency_ms.count, 100);
        assert!((a.latency_ms.p50 - 400.0).abs() < 1.0, "{}", a.latency_ms.p50);
        assert!((a.startup_ms.p50 - 250.0).abs() < 1.0);
        assert_eq!(a.errors.get("http_404"), Some(&1));
        assert_eq!(a.requests.get("part"), Some(&1));
        assert_eq!(s[2].negative_latency, 1);
        assert_eq!(s[0].latency_ms.count, 101);
        assert_eq!(a.timeline.len(), 1);
        assert!(!a.histogram.is_empty());
    }
}
