//! The uploader: moves spooled objects to storage, oldest first, verifies each one by
//! reading it back and comparing SHA-256 digests, and only then forgets the spool copy.
//! When a recording has ended and nothing of it is left in the spool, it uploads the VOD
//! playlist and then the manifest, and removes the recording's spool directory.
//!
//! Failures are retried forever with jittered exponential backoff (an outage only grows
//! the spool); each is counted by kind.

use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::digest::{SHA256, digest};
use bytes::Bytes;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::backoff::backoff;

use super::spool::{self, UPLOADED};
use super::state::{PendingObject, Phase, Shared};
use super::storage::{StorageError, recording_prefix};
use super::vod::{Manifest, RecordingStatus, date_time, write_vod_playlist};

/// Why one upload step failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum UploadError {
    /// The store failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The stored object differs from the spooled one.
    #[error("{0}: stored object does not match the spool (sha-256)")]
    Verify(String),
    /// The spool could not be read or updated.
    #[error("spool: {0}")]
    Io(#[from] std::io::Error),
}

impl UploadError {
    fn kind(&self) -> &'static str {
        match self {
            UploadError::Storage(e) => e.kind(),
            UploadError::Verify(_) => "verify",
            UploadError::Io(_) => "spool_io",
        }
    }
}

enum Work {
    Upload { key: String, prefix: String, object: PendingObject },
    Finalize { key: String },
    Idle,
}

fn next_work(shared: &Shared) -> Work {
    let st = shared.lock();
    // Oldest spooled object first, across recordings.
    let oldest = st
        .recs
        .iter()
        .filter_map(|(k, r)| r.pending.front().map(|p| (k, r, p)))
        .min_by_key(|(_, _, p)| p.spooled_at);
    if let Some((key, rec, object)) = oldest {
        return Work::Upload {
            key: key.clone(),
            prefix: recording_prefix(&rec.channel, &rec.id),
            object: object.clone(),
        };
    }
    match st.recs.iter().find(|(_, r)| matches!(r.phase, Phase::Ended { .. }) && r.pending.is_empty()) {
        Some((key, _)) => Work::Finalize { key: key.clone() },
        None => Work::Idle,
    }
}

/// Runs until `abort`, or until `drain` is cancelled and nothing is left to do.
pub(crate) async fn run(
    shared: Arc<Shared>,
    max_backoff: Duration,
    drain: CancellationToken,
    abort: CancellationToken,
) {
    let mut attempt = 0u32;
    loop {
        if abort.is_cancelled() {
            break;
        }
        let result = match next_work(&shared) {
            Work::Idle => {
                if drain.is_cancelled() && shared.lock().writer_done {
                    break;
                }
                tokio::select! {
                    _ = shared.notify.notified() => {}
                    _ = drain.cancelled(), if !drain.is_cancelled() => {}
                    _ = abort.cancelled() => break,
                }
                continue;
            }
            Work::Upload { key, prefix, object } => upload_object(&shared, &key, &prefix, &object).await,
            Work::Finalize { key } => finalize(&shared, &key).await,
        };
        {
            let st = shared.lock();
            shared.gauges(&st);
        }
        match result {
            Ok(()) => attempt = 0,
            Err(e) => {
                attempt = attempt.saturating_add(1);
                shared.metrics.failures.with_label_values(&[e.kind()]).inc();
                let delay = backoff(attempt, max_backoff);
                // Every failure is counted; the log says it on the first and every tenth.
                if attempt == 1 || attempt.is_multiple_of(10) {
                    warn!(error = %e, attempt, retry_in_ms = delay.as_millis() as u64, "recording upload failed");
                } else {
                    debug!(error = %e, attempt, "recording upload failed");
                }
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = abort.cancelled() => break,
                }
            }
        }
    }
}

/// Puts `body` at `key`, reads it back and compares digests.
async fn put_verified(
    shared: &Shared,
    key: &str,
    body: Bytes,
    content_type: &'static str,
) -> Result<(), UploadError> {
    let want = digest(&SHA256, &body);
    shared.storage.put(key, body, content_type).await?;
    let got = shared.storage.get(key).await?.ok_or_else(|| UploadError::Verify(key.into()))?;
    if digest(&SHA256, &got).as_ref() != want.as_ref() {
        return Err(UploadError::Verify(key.into()));
    }
    Ok(())
}

async fn upload_object(
    shared: &Shared,
    key: &str,
    prefix: &str,
    object: &PendingObject,
) -> Result<(), UploadError> {
    let path = object.path.clone();
    let body = tokio::task::spawn_blocking(move || std::fs::read(path))
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))??;
    let content_type = if object.kind == "init" { "video/mp4" } else { "video/iso.segment" };
    put_verified(shared, &format!("{prefix}{}", object.name), Bytes::from(body), content_type).await?;
    // Journal the upload before forgetting the spool copy: a crash in between only repeats
    // the (idempotent) upload.
    let (dir, name, path) =
        (object.path.parent().map(|p| p.to_path_buf()), object.name.clone(), object.path.clone());
    tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        if let Some(dir) = dir {
            spool::append_line(&dir.join(UPLOADED), &name)?;
        }
        std::fs::remove_file(&path)
    })
    .await
    .map_err(|e| std::io::Error::other(e.to_string()))??;
    let mut st = shared.lock();
    st.spool_bytes = st.spool_bytes.saturating_sub(object.bytes);
    if let Some(rec) = st.recs.get_mut(key)
        && rec.pending.front().is_some_and(|p| p.name == object.name)
    {
        rec.pending.pop_front();
    }
    shared.metrics.uploads.with_label_values(&[object.kind]).inc();
    Ok(())
}

/// Uploads the playlist, then the manifest, then removes the spool directory.
async fn finalize(shared: &Shared, key: &str) -> Result<(), UploadError> {
    let (manifest, playlist, prefix, dir, info) = {
        let st = shared.lock();
        let Some(rec) = st.recs.get(key) else { return Ok(()) };
        let Phase::Ended { ended_ms } = rec.phase else { return Ok(()) };
        let prefix = recording_prefix(&rec.channel, &rec.id);
        let mut reason = rec.reason();
        if rec.segments.is_empty() && reason.is_none() {
            reason = Some("no segment was captured".into());
        }
        let status = if reason.is_some() { RecordingStatus::Partial } else { RecordingStatus::Complete };
        let manifest = Manifest {
            channel: rec.channel.clone(),
            recording: rec.id.clone(),
            started: date_time(rec.started_ms),
            ended: date_time(ended_ms),
            duration_seconds: rec.segments.iter().map(|s| s.duration).sum(),
            bytes: rec.bytes,
            segment_count: rec.segments.len(),
            status,
            reason,
            playlist: format!("{prefix}index.m3u8"),
            location: shared.storage.location(),
        };
        let playlist = (!rec.segments.is_empty()).then(|| write_vod_playlist(&rec.segments));
        let mut info = rec.info();
        info.status = status;
        info.reason = manifest.reason.clone();
        (manifest, playlist, prefix, rec.dir.clone(), info)
    };
    if let Some(playlist) = playlist {
        put_verified(
            shared,
            &format!("{prefix}index.m3u8"),
            Bytes::from(playlist),
            "application/vnd.apple.mpegurl",
        )
        .await?;
        shared.metrics.uploads.with_label_values(&["playlist"]).inc();
    }
    let body = serde_json::to_vec_pretty(&manifest).map_err(std::io::Error::other)?;
    put_verified(shared, &format!("{prefix}recording.json"), Bytes::from(body), "application/json").await?;
    shared.metrics.uploads.with_label_values(&["manifest"]).inc();
    tokio::task::spawn_blocking(move || match std::fs::remove_dir_all(&dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    })
    .await
    .map_err(|e| std::io::Error::other(e.to_string()))??;
    info!(channel = %manifest.channel, recording = %manifest.recording, status = manifest.status.as_str(),
          segments = manifest.segment_count, duration_s = manifest.duration_seconds, "recording stored");
    let mut st = shared.lock();
    st.recs.remove(key);
    Shared::finished(&mut st, info);
    Ok(())
}
