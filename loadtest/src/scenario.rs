//! Scenarios: publishers and viewer groups from a TOML file (or built by the `publish` and
//! `play` commands), run together in one tokio runtime and summarised in a [`Report`].
//!
//! ```toml
//! duration_s = 60      # measured time, after warm-up
//! warmup_s = 3         # publishers only (default 3 when there are publishers)
//! ramp_up_s = 10       # viewers start evenly over this time
//! http2 = false        # HTTP/2 prior knowledge instead of HTTP/1.1
//! http2_viewers_per_connection = 50
//!
//! [[publishers]]
//! url = "rtmp://127.0.0.1:1935/live/bench{i}"   # {i}: publisher index
//! count = 1
//! file = "testsrc.flv"
//!
//! [[viewers]]
//! name = "eu"
//! url = "http://127.0.0.1:8080/live/bench0/master.m3u8"
//! count = 1000
//! mode = "ll-hls"      # or "hls"
//! region = "eu"
//!
//! [[metrics]]
//! name = "edge-eu"
//! url = "http://127.0.0.1:9100/metrics"
//! counters = ['skyrelay_edge_cache_total{outcome="hit"}']
//! upstream_bytes = "skyrelay_edge_upstream_bytes_total"
//! region = "eu"
//! ```

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde::Deserialize;
use skyrelay_common::config::{ConfigError, Validate, check_range};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::flv::{FlvError, FlvRecording};
use crate::http::{self, HttpClient};
use crate::plcache::PlaylistCache;
use crate::prom::{self, CounterDelta};
use crate::publish::{self, PublishCounters};
use crate::report::{Machine, Offload, Report};
use crate::rtmp::{RtmpError, RtmpUrl};
use crate::stats::Collector;
use crate::viewer::{self, Mode, ViewerSpec};

/// Most viewers in one run.
pub const MAX_VIEWERS: usize = 100_000;
/// Most publishers in one run.
pub const MAX_PUBLISHERS: usize = 1_000;

/// A scenario file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Measured duration (s), 1..=86400.
    #[serde(default = "default_duration")]
    pub duration_s: u64,
    /// Publisher-only warm-up before viewers start (s).
    #[serde(default)]
    pub warmup_s: Option<u64>,
    /// Viewers start evenly spread over this time (s).
    #[serde(default)]
    pub ramp_up_s: u64,
    /// Use HTTP/2 with prior knowledge.
    #[serde(default)]
    pub http2: bool,
    /// With HTTP/2: viewers sharing one connection (each group of viewers gets its own
    /// client pool, so streams per connection stay under the server's limit).
    #[serde(default = "default_per_connection")]
    pub http2_viewers_per_connection: usize,
    /// Publisher groups.
    #[serde(default)]
    pub publishers: Vec<PublisherGroup>,
    /// Viewer groups.
    #[serde(default)]
    pub viewers: Vec<ViewerGroup>,
    /// Prometheus endpoints scraped at start and end.
    #[serde(default)]
    pub metrics: Vec<MetricsTarget>,
}

fn default_duration() -> u64 {
    30
}

fn default_per_connection() -> usize {
    50
}

fn default_count() -> usize {
    1
}

fn default_mode() -> Mode {
    Mode::LlHls
}

/// Publishers replaying one file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublisherGroup {
    /// `rtmp://host[:port]/app/key`, `{i}` replaced by the publisher index.
    pub url: String,
    /// How many publishers.
    #[serde(default = "default_count")]
    pub count: usize,
    /// The FLV recording.
    pub file: PathBuf,
}

/// Viewers of one URL.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ViewerGroup {
    /// Name in reports (default: mode and index).
    #[serde(default)]
    pub name: Option<String>,
    /// Master or media playlist URL (`http://`).
    pub url: String,
    /// How many viewers.
    #[serde(default = "default_count")]
    pub count: usize,
    /// `ll-hls` or `hls`.
    #[serde(default = "default_mode")]
    pub mode: Mode,
    /// Region label for offload accounting.
    #[serde(default)]
    pub region: Option<String>,
}

/// A Prometheus endpoint.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsTarget {
    /// Name in reports.
    pub name: String,
    /// `http://host:port/metrics`.
    pub url: String,
    /// Counters to report (`name` or `name{label="value"}`; samples are summed).
    #[serde(default)]
    pub counters: Vec<String>,
    /// Counter of bytes fetched upstream, for the offload figure.
    #[serde(default)]
    pub upstream_bytes: Option<String>,
    /// Region whose viewers this node serves (default: all viewers).
    #[serde(default)]
    pub region: Option<String>,
}

impl Validate for Scenario {
    fn validate(&self) -> Result<(), ConfigError> {
        check_range("duration_s", self.duration_s, 1, 86_400)?;
        check_range("ramp_up_s", self.ramp_up_s, 0, self.duration_s)?;
        check_range("warmup_s", self.warmup_s.unwrap_or(0), 0, 600)?;
        check_range("http2_viewers_per_connection", self.http2_viewers_per_connection, 1, 10_000)?;
        let viewers: usize = self.viewers.iter().map(|v| v.count).sum();
        check_range("viewers.count (total)", viewers, 0, MAX_VIEWERS)?;
        let publishers: usize = self.publishers.iter().map(|p| p.count).sum();
        check_range("publishers.count (total)", publishers, 0, MAX_PUBLISHERS)?;
        if viewers + publishers == 0 {
            return Err(ConfigError::invalid("viewers", "no publishers and no viewers"));
        }
        for (i, p) in self.publishers.iter().enumerate() {
            RtmpUrl::parse(&publish::expand(&p.url, 0))
                .map_err(|e| ConfigError::invalid(format!("publishers[{i}].url"), e.to_string()))?;
            if p.count > 1 && !p.url.contains("{i}") {
                return Err(ConfigError::invalid(
                    format!("publishers[{i}].url"),
                    "several publishers need `{i}` in the URL (one key each)",
                ));
            }
        }
        for (i, v) in self.viewers.iter().enumerate() {
            http::resolve(&v.url, "").ok().filter(|u| u.starts_with("http://")).ok_or_else(|| {
                ConfigError::invalid(
                    format!("viewers[{i}].url"),
                    format!("`{}` is not an http:// URL", v.url),
                )
            })?;
        }
        for (i, m) in self.metrics.iter().enumerate() {
            http::resolve(&m.url, "")
                .map_err(|e| ConfigError::invalid(format!("metrics[{i}].url"), e.to_string()))?;
            check_range(&format!("metrics[{i}].counters"), m.counters.len(), 0, 64)?;
        }
        Ok(())
    }
}

impl Scenario {
    /// Parses and validates scenario TOML.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        skyrelay_common::config::from_toml(text)
    }

    fn warmup(&self) -> Duration {
        let default = if self.publishers.is_empty() { 0 } else { 3 };
        Duration::from_secs(self.warmup_s.unwrap_or(default))
    }
}

/// Why a run could not start.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The scenario is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A recording could not be loaded.
    #[error(transparent)]
    Flv(#[from] FlvError),
    /// A publisher URL is invalid.
    #[error(transparent)]
    Rtmp(#[from] RtmpError),
}

/// Run options that are not part of the scenario.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Show the live progress line.
    pub progress: bool,
    /// Command line to record in the report.
    pub command: Option<String>,
}

async fn scrape_all(
    clients: &mut HashMap<String, HttpClient>,
    targets: &[MetricsTarget],
    http2: bool,
) -> Vec<Option<String>> {
    let mut out = Vec::new();
    for t in targets {
        let c = client_for(clients, &t.url, http2);
        out.push(prom::scrape(&c, &t.url).await.ok());
    }
    out
}

fn client_for(clients: &mut HashMap<String, HttpClient>, url: &str, http2: bool) -> HttpClient {
    client_for_slot(clients, url, http2, 0)
}

/// The pooled client for a target authority (and, with HTTP/2, a connection slot).
fn client_for_slot(
    clients: &mut HashMap<String, HttpClient>,
    url: &str,
    http2: bool,
    slot: usize,
) -> HttpClient {
    let authority = url
        .parse::<::http::Uri>()
        .ok()
        .and_then(|u| u.authority().map(|a| a.to_string()))
        .unwrap_or_default();
    let key = format!("{authority}#{slot}");
    clients.entry(key).or_insert_with(|| http::client(http2)).clone()
}

/// Runs a scenario to its end (or until `cancel`), returning the report.
pub async fn run(s: &Scenario, opts: RunOptions, cancel: CancellationToken) -> Result<Report, RunError> {
    s.validate()?;
    let mut recordings: HashMap<PathBuf, Arc<FlvRecording>> = HashMap::new();
    for p in &s.publishers {
        if !recordings.contains_key(&p.file) {
            recordings.insert(p.file.clone(), Arc::new(FlvRecording::open(&p.file)?));
        }
    }
    let mut clients: HashMap<String, HttpClient> = HashMap::new();
    let before = scrape_all(&mut clients, &s.metrics, s.http2).await;

    let started_unix_ms = crate::sei::unix_now_us() / 1000;
    let warmup = s.warmup();
    let duration = Duration::from_secs(s.duration_s);
    let t0 = Instant::now();
    let deadline = t0 + warmup + duration;
    let publish_counters = Arc::new(PublishCounters::default());
    let mut tasks = JoinSet::new();
    let mut n_publishers = 0;
    for p in &s.publishers {
        let rec = recordings[&p.file].clone();
        for i in 0..p.count {
            let url = RtmpUrl::parse(&publish::expand(&p.url, n_publishers + i))?;
            tasks.spawn(publish::run_publisher(
                url,
                rec.clone(),
                deadline,
                cancel.clone(),
                publish_counters.clone(),
            ));
        }
        n_publishers += p.count;
    }

    let groups = s
        .viewers
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let name = v.name.clone().unwrap_or_else(|| format!("{}-{i}", v.mode.as_str()));
            (name, v.mode.as_str().to_owned(), v.region.clone(), v.count)
        })
        .collect();
    let collector = Arc::new(Collector::new(groups, duration + warmup));
    let total_viewers: usize = s.viewers.iter().map(|v| v.count).sum();
    let stop_progress = CancellationToken::new();
    let progress = opts.progress.then(|| {
        spawn_progress(
            collector.clone(),
            publish_counters.clone(),
            (t0, warmup + duration),
            stop_progress.clone(),
        )
    });

    // Viewers start after the warm-up, evenly over the ramp-up.
    let ramp = Duration::from_secs(s.ramp_up_s);
    let playlists = Arc::new(PlaylistCache::new());
    let mut k = 0usize;
    for (gi, v) in s.viewers.iter().enumerate() {
        for n in 0..v.count {
            let slot = if s.http2 { n / s.http2_viewers_per_connection } else { 0 };
            let client = client_for_slot(&mut clients, &v.url, s.http2, slot);
            let at = t0 + warmup + ramp.mul_f64(k as f64 / total_viewers.max(1) as f64);
            k += 1;
            let spec = ViewerSpec { url: v.url.clone(), mode: v.mode, group: gi };
            let (client, collector, cancel) = (client.clone(), collector.clone(), cancel.clone());
            let playlists = playlists.clone();
            tasks.spawn(async move {
                tokio::select! {
                    _ = tokio::time::sleep_until(at) => {}
                    _ = cancel.cancelled() => return,
                }
                viewer::run_viewer(client, playlists, spec, collector, deadline, cancel).await;
            });
        }
    }

    // Everything stops by the deadline; give stragglers a short grace, then abort them.
    let grace = deadline + Duration::from_secs(5);
    loop {
        tokio::select! {
            next = tasks.join_next() => if next.is_none() { break },
            _ = tokio::time::sleep_until(grace) => { tasks.abort_all(); break }
        }
    }
    while tasks.join_next().await.is_some() {}
    stop_progress.cancel();
    if let Some(p) = progress {
        let _ = p.await;
    }
    let elapsed = Instant::now().saturating_duration_since(t0 + warmup).min(duration);

    let after = scrape_all(&mut clients, &s.metrics, s.http2).await;
    let summaries = collector.summaries();
    let mut counters = Vec::new();
    let mut offload = Vec::new();
    for (i, m) in s.metrics.iter().enumerate() {
        let read = |texts: &[Option<String>], c: &str| texts[i].as_deref().and_then(|t| prom::sum(t, c));
        let delta = |c: &str| {
            let (a, b) = (read(&before, c), read(&after, c));
            let d = match (a, b) {
                (Some(a), Some(b)) => Some(b - a),
                (None, Some(b)) if before[i].is_some() => Some(b),
                _ => None,
            };
            CounterDelta { target: m.name.clone(), counter: c.to_owned(), start: a, end: b, delta: d }
        };
        for c in &m.counters {
            counters.push(delta(c));
        }
        if let Some(up) = &m.upstream_bytes {
            let d = delta(up);
            let viewer_bytes: u64 = summaries
                .iter()
                .filter(|g| g.name != "total" || summaries.len() == 1)
                .filter(|g| m.region.is_none() || g.region == m.region)
                .map(|g| g.bytes)
                .sum();
            if let Some(upstream) = d.delta {
                offload.push(Offload {
                    target: m.name.clone(),
                    upstream_bytes: upstream,
                    viewer_bytes,
                    offload: if viewer_bytes > 0 { 1.0 - upstream / viewer_bytes as f64 } else { 0.0 },
                });
            }
            counters.push(d);
        }
    }
    Ok(Report {
        started_unix_ms,
        duration_s: elapsed.as_secs_f64(),
        command: opts.command,
        machine: Machine::detect(),
        publishers: publish_counters.summary(n_publishers),
        groups: summaries,
        counters,
        offload,
    })
}

fn spawn_progress(
    c: Arc<Collector>,
    p: Arc<PublishCounters>,
    (t0, total): (Instant, Duration),
    stop: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let bar = indicatif::ProgressBar::new(total.as_secs());
        bar.set_style(
            indicatif::ProgressStyle::with_template("{elapsed_precise} [{bar:20}] {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        let mut last_bytes = 0u64;
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.cancelled() => {
                    bar.finish_and_clear();
                    return;
                }
            }
            let l = &c.live;
            let bytes = l.bytes.load(Ordering::Relaxed);
            let sum = l.tick_latency_us.swap(0, Ordering::Relaxed);
            let n = l.tick_samples.swap(0, Ordering::Relaxed);
            let lat = if n > 0 { format!("{:.0} ms", sum as f64 / n as f64 / 1000.0) } else { "-".into() };
            bar.set_position(t0.elapsed().as_secs().min(total.as_secs()));
            bar.set_message(format!(
                "viewers {} | frames {} | latency {} | {:.1} Mbit/s | stalls {} | errors {} | pub frames {} err {}",
                l.active.load(Ordering::Relaxed),
                l.frames.load(Ordering::Relaxed),
                lat,
                (bytes - last_bytes) as f64 * 16.0 / 1e6,
                l.stalls.load(Ordering::Relaxed),
                l.errors.load(Ordering::Relaxed),
                p.frames.load(Ordering::Relaxed),
                p.errors.load(Ordering::Relaxed),
            ));
            last_bytes = bytes;
        }
    })
}
