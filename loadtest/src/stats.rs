//! Measurement collection shared by all viewers of a run.
//!
//! Viewers keep a small [`Recorder`] (a bounded batch of samples and counters) and flush it
//! into their group's aggregate after each response; the aggregate holds HDR histograms
//! (latency, startup) and a bounded latency timeline. [`LiveCounters`] feed the progress line.
//! The final numbers are in [`crate::summary`].

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

pub use crate::summary::{Dist, GroupSummary, TimePoint};

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

#[derive(Debug, Clone)]
pub(crate) struct Agg {
    pub(crate) latency_us: Histogram<u64>,
    pub(crate) startup_us: Histogram<u64>,
    pub(crate) timeline: Vec<Option<Histogram<u32>>>,
    pub(crate) stalls: u64,
    pub(crate) stall_us: u64,
    pub(crate) errors: BTreeMap<String, u64>,
    pub(crate) requests: BTreeMap<&'static str, u64>,
    pub(crate) bytes: u64,
    pub(crate) negative: u64,
    pub(crate) backlog: u64,
    pub(crate) started: u64,
    pub(crate) never_started: u64,
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
    pub(crate) agg: Mutex<Agg>,
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
                        backlog: 0,
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
    backlog: u64,
    /// Frames stamped before this unix time (µs) are backlog, not latency samples.
    pub since_us: u64,
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
            samples: Vec::new(),
            negative: 0,
            backlog: 0,
            since_us: 0,
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

    /// Records a stamp received at `now_us` (unix µs), `at` (monotonic). Frames stamped
    /// before [`Recorder::since_us`] (the viewer joined after they were sent) only count as
    /// backlog: their latency says when the viewer joined, not how fast media is delivered.
    pub fn stamp(&mut self, stamp_us: u64, now_us: u64, at: Instant) {
        if stamp_us <= self.last_stamp {
            return;
        }
        self.last_stamp = stamp_us;
        if stamp_us < self.since_us {
            self.backlog += 1;
            return;
        }
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
        a.backlog += std::mem::take(&mut self.backlog);
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

    #[test]
    fn frames_sent_before_the_viewer_joined_are_backlog() {
        let c = Collector::new(vec![("a".into(), "hls".into(), None, 1)], Duration::from_secs(5));
        {
            let mut r = Recorder::new(&c, 0);
            r.since_us = 10_000_000;
            r.stamp(9_000_000, 11_000_000, Instant::now()); // 2 s old at join: backlog
            r.stamp(10_500_000, 10_600_000, Instant::now());
        }
        let s = &c.summaries()[0];
        assert_eq!(s.backlog_frames, 1);
        assert_eq!(s.latency_ms.count, 1);
        assert!((s.latency_ms.p50 - 100.0).abs() < 0.5);
    }
}
