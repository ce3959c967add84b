//! The in-memory view of the recordings the spool holds, shared by the spool writer and
//! the uploader (one mutex, never held across an await), and its rebuilding from disk.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use tokio::sync::Notify;

use super::metrics::RecorderMetrics;
use super::spool::{Found, JournalEntry, init_name, segment_name};
use super::storage::Storage;
use super::vod::{RecordingStatus, VodSegment};

/// A snapshot of one recording, for status pages and the control plane's catalog.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordingInfo {
    pub channel: String,
    pub recording: String,
    pub status: RecordingStatus,
    pub started_unix_ms: u64,
    pub ended_unix_ms: Option<u64>,
    pub segments: usize,
    /// Total duration of the recorded segments.
    pub duration_ms: u64,
    pub bytes: u64,
    /// Objects still waiting in the spool.
    pub pending_objects: usize,
    /// Why the recording is partial.
    pub reason: Option<String>,
}

/// Finished recordings remembered for [`RecordingInfo`] snapshots.
const FINISHED_KEPT: usize = 64;

/// Where a recording is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Phase {
    /// The publisher is live.
    Live,
    /// The publisher left; a reconnect before `until` continues the recording.
    Gap { until: Instant },
    /// No more segments; the uploader finishes it.
    Ended { ended_ms: u64 },
}

/// An object in the spool waiting for upload.
#[derive(Debug, Clone)]
pub(crate) struct PendingObject {
    pub name: String,
    pub path: PathBuf,
    pub bytes: u64,
    pub spooled_at: Instant,
    /// `init` or `segment` (the uploads metric label).
    pub kind: &'static str,
}

/// One recording in the spool.
#[derive(Debug)]
pub(crate) struct Rec {
    pub channel: String,
    pub id: String,
    pub dir: PathBuf,
    pub started_ms: u64,
    pub meta_written: bool,
    /// Every segment captured, in playlist order.
    pub segments: Vec<VodSegment>,
    pub bytes: u64,
    pub inits: HashSet<u32>,
    pub pending: VecDeque<PendingObject>,
    pub lost: u64,
    pub reasons: Vec<String>,
    pub phase: Phase,
    /// The object number the next segment should get; the packager's numbering is kept
    /// unless it goes backwards (a new packager), then it is shifted.
    pub next_msn: Option<u64>,
    pub msn_offset: u64,
    pub pending_discontinuity: bool,
}

impl Rec {
    pub fn new(channel: String, id: String, dir: PathBuf, started_ms: u64) -> Self {
        Rec {
            channel,
            id,
            dir,
            started_ms,
            meta_written: false,
            segments: Vec::new(),
            bytes: 0,
            inits: HashSet::new(),
            pending: VecDeque::new(),
            lost: 0,
            reasons: Vec::new(),
            phase: Phase::Live,
            next_msn: None,
            msn_offset: 0,
            pending_discontinuity: false,
        }
    }

    /// Records a loss (once per distinct reason in the text).
    pub fn note_lost(&mut self, segments: u64, reason: &str) {
        self.lost += segments;
        if !self.reasons.iter().any(|r| r == reason) {
            self.reasons.push(reason.to_string());
        }
        self.pending_discontinuity = true;
    }

    pub fn reason(&self) -> Option<String> {
        if self.reasons.is_empty() {
            return None;
        }
        let mut r = self.reasons.join("; ");
        if self.lost > 0 {
            r.push_str(&format!(" ({} segment(s) lost)", self.lost));
        }
        Some(r)
    }

    pub fn status(&self) -> RecordingStatus {
        match self.phase {
            Phase::Live | Phase::Gap { .. } => RecordingStatus::Recording,
            Phase::Ended { .. } => RecordingStatus::Uploading,
        }
    }

    pub fn info(&self) -> RecordingInfo {
        RecordingInfo {
            channel: self.channel.clone(),
            recording: self.id.clone(),
            status: self.status(),
            started_unix_ms: self.started_ms,
            ended_unix_ms: match self.phase {
                Phase::Ended { ended_ms } => Some(ended_ms),
                _ => None,
            },
            segments: self.segments.len(),
            duration_ms: (self.segments.iter().map(|s| s.duration).sum::<f64>() * 1000.0).round() as u64,
            bytes: self.bytes,
            pending_objects: self.pending.len(),
            reason: self.reason(),
        }
    }

    /// Rebuilds a recording found in the spool at start. Returns it and, when the journal
    /// has no end (the origin died while recording), the end entry to append.
    pub fn recover(found: Found, now: Instant) -> (Rec, Option<JournalEntry>) {
        let Found { dir, meta, journal, uploaded } = found;
        let mut rec = Rec::new(meta.channel, meta.recording, dir, meta.started_ms);
        rec.meta_written = true;
        let mut ended = None;
        let mut last_end_ms = meta.started_ms;
        for entry in journal {
            match entry {
                JournalEntry::Init { id, bytes } => {
                    rec.inits.insert(id);
                    rec.bytes += bytes;
                    rec.queue_if_spooled(init_name(id), bytes, "init", &uploaded, now);
                }
                JournalEntry::Segment { msn, init, duration, discontinuity, pdt_ms, bytes } => {
                    let name = segment_name(msn);
                    if !uploaded.contains(&name) && !rec.dir.join(&name).exists() {
                        rec.note_lost(1, "a spooled segment was missing after a restart");
                        continue;
                    }
                    let discontinuity = discontinuity || std::mem::take(&mut rec.pending_discontinuity);
                    rec.segments.push(VodSegment {
                        msn,
                        duration,
                        init_id: init,
                        discontinuity,
                        pdt_unix_ms: pdt_ms,
                    });
                    rec.bytes += bytes;
                    rec.next_msn = Some(msn + 1);
                    last_end_ms = last_end_ms.max(pdt_ms + (duration * 1000.0) as u64);
                    rec.queue_if_spooled(name, bytes, "segment", &uploaded, now);
                }
                JournalEntry::Lost { segments, reason } => rec.note_lost(segments, &reason),
                JournalEntry::End { ended_ms } => ended = Some(ended_ms),
            }
        }
        let append = match ended {
            Some(ended_ms) => {
                rec.phase = Phase::Ended { ended_ms };
                None
            }
            None => {
                let last = rec.segments.last().map(|s| s.msn);
                let what = match last {
                    Some(msn) => format!("the origin stopped while recording; captured up to segment {msn}"),
                    None => "the origin stopped while recording; no segment was captured".to_string(),
                };
                if !rec.reasons.contains(&what) {
                    rec.reasons.push(what);
                }
                rec.phase = Phase::Ended { ended_ms: last_end_ms };
                Some(JournalEntry::End { ended_ms: last_end_ms })
            }
        };
        (rec, append)
    }

    fn queue_if_spooled(
        &mut self,
        name: String,
        bytes: u64,
        kind: &'static str,
        uploaded: &HashSet<String>,
        now: Instant,
    ) {
        let path = self.dir.join(&name);
        if uploaded.contains(&name) {
            // Verified but not removed before the stop.
            let _ = std::fs::remove_file(&path);
        } else if path.exists() {
            self.pending.push_back(PendingObject { name, path, bytes, spooled_at: now, kind });
        }
    }
}

/// Everything the writer and the uploader share.
pub(crate) struct State {
    /// By `channel/recording`.
    pub recs: BTreeMap<String, Rec>,
    /// Channel → its current (live or within the gap) recording.
    pub active: HashMap<String, String>,
    /// Bytes spooled and not yet uploaded (reserved before a write).
    pub spool_bytes: u64,
    pub finished: VecDeque<RecordingInfo>,
    pub warned_full: bool,
    /// The writer has ended every recording and stopped.
    pub writer_done: bool,
    /// Segments the ingest side could not queue, per channel.
    pub dropped: HashMap<String, u64>,
    /// Publisher ends the ingest side could not queue, per channel (unix ms).
    pub ends: HashMap<String, u64>,
}

pub(crate) struct Shared {
    pub state: Mutex<State>,
    /// Wakes the uploader (a permit is kept when it is busy, so no wake-up is lost).
    pub notify: Notify,
    pub metrics: RecorderMetrics,
    pub storage: Arc<dyn Storage>,
    pub spool_dir: PathBuf,
    pub max_spool_bytes: u64,
}

impl Shared {
    pub fn new(metrics: RecorderMetrics, storage: Arc<dyn Storage>, spool_dir: PathBuf, max: u64) -> Self {
        Shared {
            state: Mutex::new(State {
                recs: BTreeMap::new(),
                active: HashMap::new(),
                spool_bytes: 0,
                finished: VecDeque::new(),
                warned_full: false,
                writer_done: false,
                dropped: HashMap::new(),
                ends: HashMap::new(),
            }),
            notify: Notify::new(),
            metrics,
            storage,
            spool_dir,
            max_spool_bytes: max,
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Refreshes the spool gauges from `st`.
    pub fn gauges(&self, st: &State) {
        self.metrics.spool_bytes.set(i64::try_from(st.spool_bytes).unwrap_or(i64::MAX));
        let oldest = st.recs.values().filter_map(|r| r.pending.front()).map(|p| p.spooled_at).min();
        self.metrics.upload_lag_seconds.set(oldest.map_or(0.0, |t| t.elapsed().as_secs_f64()));
        let active = st.recs.values().filter(|r| !matches!(r.phase, Phase::Ended { .. })).count();
        self.metrics.active.set(i64::try_from(active).unwrap_or(i64::MAX));
    }

    /// Remembers a finished recording for snapshots.
    pub fn finished(st: &mut State, info: RecordingInfo) {
        if st.finished.len() == FINISHED_KEPT {
            st.finished.pop_front();
        }
        st.finished.push_back(info);
    }
}
