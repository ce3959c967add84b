//! The spool writer: takes completed segments from ingest (a bounded queue), writes them
//! to the spool with fsync, and decides when a recording starts, continues after a
//! reconnect, and ends.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use skyrelay_common::window::SegmentView;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use super::spool::{self, JournalEntry, Meta, init_name, segment_name};
use super::state::{PendingObject, Phase, Rec, Shared};
use super::vod::{VodSegment, recording_id};

/// What ingest hands the writer.
pub(crate) enum Job {
    /// A completed segment of `channel` and the init segment it uses.
    Segment { channel: String, segment: SegmentView, init: Bytes },
    /// The publisher of `channel` went away.
    End { channel: String, at_ms: u64 },
}

pub(crate) fn now_unix_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// Runs until `stop` is cancelled; then drains the queue, ends every recording and
/// tells the uploader it may finish.
pub(crate) async fn run(
    shared: Arc<Shared>,
    mut rx: mpsc::Receiver<Job>,
    gap: Duration,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            job = rx.recv() => match job {
                Some(job) => handle(&shared, job, gap).await,
                None => break,
            },
            _ = tick.tick() => expire(&shared, gap).await,
            _ = stop.cancelled() => break,
        }
    }
    while let Ok(job) = rx.try_recv() {
        handle(&shared, job, gap).await;
    }
    let open: Vec<String> = shared.lock().active.values().cloned().collect();
    for key in open {
        end(&shared, &key, now_unix_ms()).await;
    }
    shared.lock().writer_done = true;
    shared.notify.notify_one();
}

async fn handle(shared: &Shared, job: Job, gap: Duration) {
    match job {
        Job::Segment { channel, segment, init } => spool_segment(shared, channel, segment, init).await,
        Job::End { channel, at_ms } => publisher_gone(shared, &channel, at_ms, gap).await,
    }
}

async fn publisher_gone(shared: &Shared, channel: &str, at_ms: u64, gap: Duration) {
    let key = {
        let mut st = shared.lock();
        let Some(key) = st.active.get(channel).cloned() else { return };
        if let Some(rec) = st.recs.get_mut(&key) {
            rec.phase = Phase::Gap { until: Instant::now() + gap };
            rec.pending_discontinuity = true;
        }
        key
    };
    if gap.is_zero() {
        end(shared, &key, at_ms).await;
    }
}

/// Ends recordings whose reconnect gap is over, and handles ends ingest could not queue.
async fn expire(shared: &Shared, gap: Duration) {
    let ends: Vec<(String, u64)> = shared.lock().ends.drain().collect();
    for (channel, at_ms) in ends {
        publisher_gone(shared, &channel, at_ms, gap).await;
    }
    let now = Instant::now();
    let due: Vec<String> = {
        let st = shared.lock();
        st.active
            .values()
            .filter(|k| {
                st.recs.get(*k).is_some_and(|r| matches!(r.phase, Phase::Gap { until } if until <= now))
            })
            .cloned()
            .collect()
    };
    for key in due {
        end(shared, &key, now_unix_ms()).await;
    }
    let st = shared.lock();
    shared.gauges(&st);
}

/// Journals the end of a recording and hands it to the uploader.
async fn end(shared: &Shared, key: &str, ended_ms: u64) {
    let dir = {
        let mut st = shared.lock();
        let Some(rec) = st.recs.get(key) else { return };
        let (channel, dir, on_disk) = (rec.channel.clone(), rec.dir.clone(), rec.meta_written);
        if st.active.get(&channel).is_some_and(|k| k == key) {
            st.active.remove(&channel);
        }
        // Nothing reached the disk (every segment dropped): nothing to journal.
        on_disk.then_some(dir)
    };
    let entry = JournalEntry::End { ended_ms };
    let written = match dir {
        Some(dir) => blocking(move || spool::append_journal(&dir, &entry)).await,
        None => Ok(()),
    };
    let mut st = shared.lock();
    if let Some(rec) = st.recs.get_mut(key) {
        if let Err(e) = written {
            // The uploader still finishes it; after a crash it would be marked partial.
            error!(channel = %rec.channel, recording = %rec.id, error = %e, "could not journal the end of a recording");
            shared.metrics.failures.with_label_values(&["spool_io"]).inc();
        }
        rec.phase = Phase::Ended { ended_ms };
        info!(channel = %rec.channel, recording = %rec.id, segments = rec.segments.len(), "recording ended");
    }
    shared.gauges(&st);
    drop(st);
    shared.notify.notify_one();
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> std::io::Result<T> {
    tokio::task::spawn_blocking(f).await.map_err(|e| std::io::Error::other(e.to_string()))?
}

/// What one segment write does, planned under the lock.
struct Plan {
    key: String,
    dir: PathBuf,
    meta: Option<Meta>,
    init: Option<(u32, Bytes)>,
    entry: VodSegment,
    size: u64,
}

async fn spool_segment(shared: &Shared, channel: String, segment: SegmentView, init: Bytes) {
    let Some(plan) = plan(shared, &channel, &segment, init) else { return };
    let Plan { key, dir, meta, init, entry, size } = plan;
    let seg_bytes = segment.len() as u64;
    let write = {
        let (dir, meta, init, entry) = (dir.clone(), meta.clone(), init.clone(), entry.clone());
        blocking(move || {
            if let Some(meta) = &meta {
                let text = serde_json::to_vec(meta).map_err(std::io::Error::other)?;
                spool::write_atomic(&dir.join(spool::META), &[Bytes::from(text)])?;
            }
            if let Some((id, bytes)) = &init {
                spool::write_atomic(&dir.join(init_name(*id)), std::slice::from_ref(bytes))?;
                spool::append_journal(&dir, &JournalEntry::Init { id: *id, bytes: bytes.len() as u64 })?;
            }
            spool::write_atomic(&dir.join(segment_name(entry.msn)), &segment.chunks)?;
            spool::append_journal(
                &dir,
                &JournalEntry::Segment {
                    msn: entry.msn,
                    init: entry.init_id,
                    duration: entry.duration,
                    discontinuity: entry.discontinuity,
                    pdt_ms: entry.pdt_unix_ms,
                    bytes: seg_bytes,
                },
            )
        })
        .await
    };
    let mut st = shared.lock();
    let Some(rec) = st.recs.get_mut(&key) else { return };
    match write {
        Ok(()) => {
            let now = Instant::now();
            rec.meta_written = true;
            if let Some((id, bytes)) = init {
                rec.inits.insert(id);
                let path = dir.join(init_name(id));
                let len = bytes.len() as u64;
                rec.pending.push_back(PendingObject {
                    name: init_name(id),
                    path,
                    bytes: len,
                    spooled_at: now,
                    kind: "init",
                });
            }
            let name = segment_name(entry.msn);
            rec.pending.push_back(PendingObject {
                path: dir.join(&name),
                name,
                bytes: seg_bytes,
                spooled_at: now,
                kind: "segment",
            });
            rec.next_msn = Some(entry.msn + 1);
            rec.pending_discontinuity = false;
            rec.bytes += size;
            rec.segments.push(entry);
            shared.metrics.segments.with_label_values(&[&channel]).inc();
        }
        Err(e) => {
            error!(%channel, recording = %rec.id, error = %e, "could not write a segment to the recording spool");
            rec.note_lost(1, "the spool could not be written");
            st.spool_bytes = st.spool_bytes.saturating_sub(size);
            shared.metrics.failures.with_label_values(&["spool_io"]).inc();
        }
    }
    shared.gauges(&st);
    drop(st);
    shared.notify.notify_one();
}

/// Finds or starts the channel's recording and reserves spool space; `None` when the
/// segment is dropped (spool full).
fn plan(shared: &Shared, channel: &str, segment: &SegmentView, init: Bytes) -> Option<Plan> {
    let mut st = shared.lock();
    let dropped = st.dropped.remove(channel).unwrap_or(0);
    let key = match st.active.get(channel) {
        Some(key) => key.clone(),
        None => {
            let base = recording_id(segment.program_date_time_unix_ms);
            let mut id = base.clone();
            let mut n = 1;
            let dir = |id: &str| shared.spool_dir.join(channel).join(id);
            while st.recs.contains_key(&format!("{channel}/{id}")) || dir(&id).exists() {
                id = format!("{base}-{n}");
                n += 1;
            }
            let key = format!("{channel}/{id}");
            let rec = Rec::new(channel.to_string(), id.clone(), dir(&id), segment.program_date_time_unix_ms);
            info!(%channel, recording = %id, "recording started");
            st.recs.insert(key.clone(), rec);
            st.active.insert(channel.to_string(), key.clone());
            key
        }
    };
    let spool_bytes = st.spool_bytes;
    let max = shared.max_spool_bytes;
    let rec = st.recs.get_mut(&key)?;
    if dropped > 0 {
        rec.note_lost(dropped, "the recorder queue was full");
    }
    if matches!(rec.phase, Phase::Gap { .. }) {
        info!(%channel, recording = %rec.id, "publisher back within the reconnect gap: recording continues");
    }
    rec.phase = Phase::Live;
    let mut msn = segment.msn.wrapping_add(rec.msn_offset);
    let mut discontinuity = false;
    if let Some(next) = rec.next_msn {
        if msn < next {
            rec.msn_offset = next - segment.msn;
            msn = next;
        }
        discontinuity = segment.discontinuity || rec.pending_discontinuity || msn != next;
    }
    let new_init = !rec.inits.contains(&segment.init_id);
    let size = segment.len() as u64 + if new_init { init.len() as u64 } else { 0 };
    if spool_bytes + size > max {
        rec.note_lost(1, "the spool was full (storage unreachable for too long)");
        let id = rec.id.clone();
        shared.metrics.failures.with_label_values(&["spool_full"]).inc();
        error!(%channel, recording = %id, spool_bytes, max, "recording spool full: segment dropped");
        return None;
    }
    let plan = Plan {
        key: key.clone(),
        dir: rec.dir.clone(),
        meta: (!rec.meta_written).then(|| Meta {
            channel: channel.to_string(),
            recording: rec.id.clone(),
            started_ms: rec.started_ms,
        }),
        init: new_init.then_some((segment.init_id, init)),
        entry: VodSegment {
            msn,
            duration: segment.duration,
            init_id: segment.init_id,
            discontinuity,
            pdt_unix_ms: segment.program_date_time_unix_ms,
        },
        size,
    };
    st.spool_bytes += size;
    let used = st.spool_bytes;
    if used.saturating_mul(10) >= max.saturating_mul(8) {
        if !st.warned_full {
            st.warned_full = true;
            error!(
                spool_bytes = used,
                max_spool_bytes = max,
                "recording spool above 80% of recording.max_spool_bytes: \
                   storage is not keeping up; segments will be dropped when it is full"
            );
        }
    } else if used.saturating_mul(10) < max.saturating_mul(7) && st.warned_full {
        st.warned_full = false;
        warn!(spool_bytes = used, "recording spool back below 70%");
    }
    Some(plan)
}
