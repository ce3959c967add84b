//! Recordings: every completed segment of a recorded channel is spooled to local disk
//! (fsync'd) and uploaded to storage in the background, with a VOD playlist and a manifest
//! uploaded last.
//!
//! Layout:
//! - this file: [`Recorder`], the handle ingest calls ([`Recorder::on_event`]) and the node
//!   starts and stops.
//! - `writer`: the spool writer task (recordings start, continue after a reconnect within
//!   `recording.reconnect_gap_seconds`, end).
//! - `uploader`: the uploader task (verify by read-back, retry with jittered backoff,
//!   playlist and manifest last).
//! - `spool`: the on-disk spool format and its crash recovery.
//! - `state`: the in-memory view of the spool shared by both tasks.
//! - [`storage`] holds the [`Storage`] trait, [`LocalStorage`] and [`delete_recording`];
//!   [`s3`] holds [`S3Storage`].
//! - [`vod`] writes the VOD playlist and the `recording.json` manifest (pure).
//! - [`playback`] serves recordings read-only from storage at `/vod/{id}/{file}` (edges
//!   fetch VOD there).
//! - [`catalog`] reports recordings to the control plane's catalog and carries out the
//!   deletions requested there (only with a control plane).
//! - [`metrics`] registers `skyrelay_origin_recording_*`.
//!
//! Objects: `recordings/{channel}/{recording}/init-{id}.mp4`, `seg-{msn}.m4s`, `index.m3u8`,
//! `recording.json`. The recording id is its start time, `YYYYMMDDTHHMMSSZ` (UTC).

pub mod catalog;
pub mod metrics;
pub mod playback;
pub mod s3;
mod spool;
mod state;
pub mod storage;
mod uploader;
pub mod vod;
mod writer;

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use prometheus::Registry;
use skyrelay_common::hub::Rendition;
use skyrelay_common::media::MediaEvent;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

pub use metrics::RecorderMetrics;
pub use s3::S3Storage;
pub use state::RecordingInfo;
pub use storage::{LocalStorage, Storage, StorageError, delete_recording, recording_prefix};
pub use vod::{Manifest, RecordingStatus};

use crate::config::{RecordingSettings, StorageSettings};
use crate::ingest::SOURCE_RENDITION;
use state::{Rec, Shared};
use writer::Job;

/// Segments queued between ingest and the spool writer (each holds one segment's chunks).
const QUEUE_SEGMENTS: usize = 64;

/// Why the recorder could not start.
#[derive(Debug, thiserror::Error)]
pub enum RecorderError {
    /// The spool directory could not be created or read.
    #[error("recording.spool_dir {path}: {source}")]
    Spool { path: String, source: std::io::Error },
    /// Metrics could not be registered (a name clash: a bug).
    #[error("metrics registration: {0}")]
    Metrics(#[from] prometheus::Error),
}

/// Records channels: see the module docs.
pub struct Recorder {
    shared: Arc<Shared>,
    tx: mpsc::Sender<Job>,
    channels: Vec<String>,
    stop_writer: CancellationToken,
    drain: CancellationToken,
    abort: CancellationToken,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

/// Builds the storage `settings` name.
pub async fn open_storage(settings: &StorageSettings) -> Arc<dyn Storage> {
    match settings {
        StorageSettings::Local { dir } => Arc::new(LocalStorage::new(dir.clone())),
        StorageSettings::S3(s3) => Arc::new(S3Storage::new(s3).await),
    }
}

impl Recorder {
    /// Opens the configured storage, recovers the spool (recordings left by a previous run
    /// are ended and uploaded) and starts the writer and the uploader.
    pub async fn start(cfg: &RecordingSettings, registry: &Registry) -> Result<Arc<Recorder>, RecorderError> {
        let storage = open_storage(&cfg.storage).await;
        Self::start_with_storage(cfg, storage, registry).await
    }

    /// [`Recorder::start`] with a given storage.
    pub async fn start_with_storage(
        cfg: &RecordingSettings,
        storage: Arc<dyn Storage>,
        registry: &Registry,
    ) -> Result<Arc<Recorder>, RecorderError> {
        let metrics = RecorderMetrics::register(registry)?;
        metrics.spool_limit_bytes.set(i64::try_from(cfg.max_spool_bytes).unwrap_or(i64::MAX));
        let spool_dir = cfg.spool_dir.clone();
        let spool_err = |source| RecorderError::Spool { path: cfg.spool_dir.display().to_string(), source };
        std::fs::create_dir_all(&spool_dir).map_err(spool_err)?;
        let found = {
            let dir = spool_dir.clone();
            tokio::task::spawn_blocking(move || spool::scan(&dir))
                .await
                .map_err(|e| spool_err(std::io::Error::other(e.to_string())))?
                .map_err(spool_err)?
        };
        let shared = Arc::new(Shared::new(metrics, storage, spool_dir, cfg.max_spool_bytes));
        {
            let now = std::time::Instant::now();
            let mut recovered = Vec::new();
            for f in found {
                let (rec, end) = Rec::recover(f, now);
                if let Some(end) = end {
                    spool::append_journal(&rec.dir, &end).map_err(spool_err)?;
                }
                recovered.push(rec);
            }
            let mut st = shared.lock();
            for rec in recovered {
                info!(channel = %rec.channel, recording = %rec.id, pending = rec.pending.len(),
                      reason = rec.reason().unwrap_or_default(), "recording found in the spool: resuming its upload");
                st.spool_bytes += rec.pending.iter().map(|p| p.bytes).sum::<u64>();
                st.recs.insert(format!("{}/{}", rec.channel, rec.id), rec);
            }
            shared.gauges(&st);
        }
        let (tx, rx) = mpsc::channel(QUEUE_SEGMENTS);
        let stop_writer = CancellationToken::new();
        let drain = CancellationToken::new();
        let abort = CancellationToken::new();
        let gap = Duration::from_secs(cfg.reconnect_gap_seconds);
        let backoff = Duration::from_secs(cfg.max_retry_backoff_seconds);
        let tasks = vec![
            tokio::spawn(writer::run(shared.clone(), rx, gap, stop_writer.clone())),
            tokio::spawn(uploader::run(shared.clone(), backoff, drain.clone(), abort.clone())),
        ];
        info!(spool = %cfg.spool_dir.display(), storage = %shared.storage.location(), "recorder started");
        Ok(Arc::new(Recorder {
            shared,
            tx,
            channels: cfg.channels.clone(),
            stop_writer,
            drain,
            abort,
            tasks: Mutex::new(tasks),
        }))
    }

    /// Whether `channel` is recorded (`recording.channels` empty means every channel).
    pub fn records(&self, channel: &str) -> bool {
        self.channels.is_empty() || self.channels.iter().any(|c| c == channel)
    }

    /// Call after `event` was applied to `rendition`'s window: a completed segment is queued
    /// for the spool, an `End` starts the reconnect gap. Never blocks; a full queue drops
    /// the segment (counted, logged, and noted in the recording as partial).
    pub fn on_event(&self, rendition: &Rendition, event: &MediaEvent) {
        if rendition.name() != SOURCE_RENDITION || !self.records(rendition.channel()) {
            return;
        }
        let channel = rendition.channel();
        let job = match event {
            MediaEvent::PartEnd { msn, ends_segment: true, .. } => {
                let found = rendition.read(|w| {
                    let segment = w.segment(*msn)?;
                    let init = w.init(segment.init_id)?;
                    Some((segment, init))
                });
                let Some((segment, init)) = found else {
                    warn!(%channel, msn, "completed segment not in the window: not recorded");
                    self.shared.metrics.failures.with_label_values(&["window"]).inc();
                    *self.shared.lock().dropped.entry(channel.to_string()).or_default() += 1;
                    return;
                };
                Job::Segment { channel: channel.to_string(), segment, init }
            }
            MediaEvent::End => Job::End { channel: channel.to_string(), at_ms: writer::now_unix_ms() },
            _ => return,
        };
        match self.tx.try_send(job) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(Job::End { channel, at_ms })) => {
                self.shared.lock().ends.insert(channel, at_ms);
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                error!(%channel, "recorder queue full (the spool disk is too slow): segment not recorded");
                self.shared.metrics.failures.with_label_values(&["queue_full"]).inc();
                *self.shared.lock().dropped.entry(channel.to_string()).or_default() += 1;
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }

    /// Recordings in the spool, then the last finished ones.
    pub fn recordings(&self) -> Vec<RecordingInfo> {
        let st = self.shared.lock();
        st.recs.values().map(Rec::info).chain(st.finished.iter().cloned()).collect()
    }

    /// The storage recordings go to.
    pub fn storage(&self) -> Arc<dyn Storage> {
        self.shared.storage.clone()
    }

    /// Ends every recording (call after ingest stopped), then lets the uploader finish
    /// for at most `drain`; what is left stays in the spool for the next start.
    pub async fn stop(&self, drain: Duration) {
        let deadline = tokio::time::Instant::now() + drain;
        self.stop_writer.cancel();
        self.drain.cancel();
        self.shared.notify.notify_one();
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(PoisonError::into_inner));
        for task in tasks {
            if tokio::time::timeout_at(deadline, task).await.is_err() {
                self.abort.cancel();
            }
        }
        self.abort.cancel();
        let left: usize = self.shared.lock().recs.values().map(|r| r.pending.len() + 1).sum();
        if left > 0 {
            warn!(objects = left, "recordings left in the spool: they are uploaded on the next start");
        }
    }
}
