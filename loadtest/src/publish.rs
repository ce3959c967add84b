//! Publishers: replay an FLV recording in real time over RTMP, looped with rewritten
//! timestamps, stamping every video frame with its wall-clock send time (see [`crate::sei`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::{BufMut, BytesMut};
use serde::Serialize;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::flv::{FlvRecording, Tag};
use crate::rtmp::{RtmpPublisher, RtmpUrl};
use crate::sei;

/// Counters shared by all publishers of a run.
#[derive(Debug, Default)]
pub struct PublishCounters {
    /// Publish sessions that reached `NetStream.Publish.Start`.
    pub sessions: AtomicU64,
    /// Failed connects and broken sessions.
    pub errors: AtomicU64,
    /// Stamped video frames sent.
    pub frames: AtomicU64,
    /// Message body bytes sent.
    pub bytes: AtomicU64,
    /// Largest lateness of a send against its schedule, in microseconds.
    pub max_lag_us: AtomicU64,
}

/// A snapshot of [`PublishCounters`] for reports.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PublishSummary {
    /// Number of publishers configured.
    pub publishers: usize,
    /// Publish sessions started.
    pub sessions: u64,
    /// Errors (failed connects, broken sessions).
    pub errors: u64,
    /// Stamped video frames sent.
    pub frames: u64,
    /// Bytes sent.
    pub bytes: u64,
    /// Largest lateness of a send against its schedule (ms).
    pub max_lag_ms: f64,
}

impl PublishCounters {
    /// Snapshot for `publishers` configured publishers.
    pub fn summary(&self, publishers: usize) -> PublishSummary {
        PublishSummary {
            publishers,
            sessions: self.sessions.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            frames: self.frames.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
            max_lag_ms: self.max_lag_us.load(Ordering::Relaxed) as f64 / 1000.0,
        }
    }
}

/// Expands `{i}` in a URL template for publisher `i`.
pub fn expand(template: &str, i: usize) -> String {
    template.replace("{i}", &i.to_string())
}

/// The body to send for `tag`: video frames get a stamp SEI with the current time.
pub fn stamped_body(tag: &Tag, nal_length_size: usize) -> Option<bytes::Bytes> {
    if !tag.is_avc_frame() {
        return None;
    }
    let frame = sei::insert_stamp(&tag.body[5..], nal_length_size, sei::unix_now_us()).ok()?;
    let mut body = BytesMut::with_capacity(frame.len() + 5);
    body.put_slice(&tag.body[..5]);
    body.put_slice(&frame);
    Some(body.freeze())
}

/// Runs one publisher until `deadline` or cancellation, reconnecting (after 1 s) when a
/// session fails.
pub async fn run_publisher(
    url: RtmpUrl,
    rec: Arc<FlvRecording>,
    deadline: Instant,
    cancel: CancellationToken,
    counters: Arc<PublishCounters>,
) {
    while Instant::now() < deadline && !cancel.is_cancelled() {
        let session = tokio::select! {
            r = RtmpPublisher::connect(&url, Duration::from_secs(5)) => r,
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep_until(deadline) => return,
        };
        let mut publisher = match session {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(url = %url.tc_url(), key = %url.key, error = %e, "publish failed");
                counters.errors.fetch_add(1, Ordering::Relaxed);
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    _ = cancel.cancelled() => return,
                }
            }
        };
        counters.sessions.fetch_add(1, Ordering::Relaxed);
        let result = tokio::select! {
            r = replay(&mut publisher, &rec, deadline, &counters) => r,
            _ = cancel.cancelled() => Ok(()),
        };
        publisher.close().await;
        match result {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(key = %url.key, error = %e, "publish session broke");
                counters.errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

async fn replay(
    p: &mut RtmpPublisher,
    rec: &FlvRecording,
    deadline: Instant,
    counters: &PublishCounters,
) -> Result<(), crate::rtmp::RtmpError> {
    for h in &rec.headers {
        p.send(h.kind.message_type(), 0, &h.body).await?;
    }
    let start = Instant::now();
    for lap in 0u64.. {
        let offset = lap * u64::from(rec.loop_ms);
        for tag in &rec.media {
            let ts = offset + u64::from(tag.ts_ms);
            let due = start + Duration::from_millis(ts);
            if due >= deadline {
                return Ok(());
            }
            tokio::time::sleep_until(due).await;
            let lag = Instant::now().saturating_duration_since(due).as_micros() as u64;
            counters.max_lag_us.fetch_max(lag, Ordering::Relaxed);
            let ts32 = (ts & 0xffff_ffff) as u32;
            match stamped_body(tag, rec.nal_length_size) {
                Some(body) => {
                    p.send(9, ts32, &body).await?;
                    counters.frames.fetch_add(1, Ordering::Relaxed);
                    counters.bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
                }
                None => {
                    p.send(tag.kind.message_type(), ts32, &tag.body).await?;
                    counters.bytes.fetch_add(tag.body.len() as u64, Ordering::Relaxed);
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn video_frames_carry_a_fresh_stamp() {
        let rec = FlvRecording::parse(bytes::Bytes::from(crate::flv::tests::sample_flv())).unwrap();
        let before = sei::unix_now_us();
        let body = stamped_body(&rec.media[0], rec.nal_length_size).unwrap();
        assert_eq!(&body[..5], &rec.media[0].body[..5]);
        let stamps = sei::extract_stamps_avcc(&body[5..], 4).unwrap();
        assert_eq!(stamps.len(), 1);
        assert!(stamps[0] >= before && stamps[0] <= sei::unix_now_us());
        assert!(stamped_body(&rec.media[1], 4).is_none()); // audio
        assert_eq!(expand("rtmp://h/live/b{i}", 3), "rtmp://h/live/b3");
    }
}
