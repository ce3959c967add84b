//! Synthetic media pushed straight into the origin's hub: every chunk is one "frame" whose
//! payload starts with a marker and the frame's number, so a client can tell which frame a
//! byte belongs to; the instant each frame was applied at the origin is recorded.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use skyrelay_common::hub::{Hub, Rendition};
use skyrelay_common::media::{MediaEvent, RenditionInfo};

/// Bytes that start every frame's payload, followed by the frame number (u64, LE).
pub const MARKER: &[u8; 10] = b"\xffSKYRBNCH\xff";
/// Marker plus frame number.
pub const STAMP_LEN: usize = MARKER.len() + 8;
/// 30 frames per second.
pub const FRAME: Duration = Duration::from_nanos(33_333_333);
pub const FRAMES_PER_PART: u32 = 6;
pub const PARTS_PER_SEGMENT: u32 = 5;
/// 30 frames of this size make a segment of about 340 KB (1 s at 2.7 Mbit/s).
pub const FRAME_BYTES: usize = 11_300;

/// When each frame was applied at the origin.
#[derive(Default)]
pub struct Stamps(Mutex<HashMap<u64, Instant>>);

impl Stamps {
    pub fn get(&self, id: u64) -> Option<Instant> {
        self.0.lock().ok()?.get(&id).copied()
    }

    fn put(&self, id: u64, at: Instant) {
        if let Ok(mut m) = self.0.lock() {
            m.insert(id, at);
        }
    }
}

pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

fn info() -> RenditionInfo {
    RenditionInfo {
        name: "source".into(),
        codecs: "avc1.64001f,mp4a.40.2".into(),
        bandwidth: 2_800_000,
        resolution: Some((1280, 720)),
        frame_rate: Some(30.0),
        has_video: true,
        has_audio: true,
    }
}

fn frame(id: u64) -> Vec<u8> {
    let mut v = vec![0u8; FRAME_BYTES];
    v[..MARKER.len()].copy_from_slice(MARKER);
    v[MARKER.len()..STAMP_LEN].copy_from_slice(&id.to_le_bytes());
    for (i, b) in v[STAMP_LEN..].iter_mut().enumerate() {
        *b = (i as u64 ^ id) as u8 & 0x7f;
    }
    v
}

fn apply(r: &Rendition, ev: MediaEvent) -> Result<(), String> {
    r.apply(ev, now_ms()).map_err(|e| format!("apply: {e}"))
}

/// Opens `channel/source` with an init segment.
pub fn open(hub: &Hub, channel: &str) -> Result<Arc<Rendition>, String> {
    let r = hub.open(channel, "source").map_err(|e| format!("open {channel}: {e}"))?;
    apply(&r, MediaEvent::Init { info: info(), bytes: b"ftyp....moov....".to_vec().into() })?;
    Ok(r)
}

/// Applies frame `id` as a chunk of part `part` of segment `msn`, closing the part (and the
/// segment) after its last frame.
fn push_frame(r: &Rendition, id: u64, stamps: Option<&Stamps>) -> Result<(), String> {
    let per_seg = u64::from(FRAMES_PER_PART * PARTS_PER_SEGMENT);
    let msn = id / per_seg;
    let in_seg = (id % per_seg) as u32;
    let part = in_seg / FRAMES_PER_PART;
    let bytes = frame(id).into();
    apply(r, MediaEvent::Chunk { msn, part, independent: part == 0, bytes })?;
    if let Some(s) = stamps {
        s.put(id, Instant::now());
    }
    if in_seg % FRAMES_PER_PART == FRAMES_PER_PART - 1 {
        let ends_segment = part == PARTS_PER_SEGMENT - 1;
        let duration = f64::from(FRAMES_PER_PART) * FRAME.as_secs_f64();
        apply(r, MediaEvent::PartEnd { msn, part, duration, ends_segment })?;
    }
    Ok(())
}

/// A channel with `segments` complete segments and nothing open (nothing more arrives).
pub fn static_channel(hub: &Hub, channel: &str, segments: u64) -> Result<(), String> {
    let r = open(hub, channel)?;
    for id in 0..segments * u64::from(FRAMES_PER_PART * PARTS_PER_SEGMENT) {
        push_frame(&r, id, None)?;
    }
    Ok(())
}

/// (segment, part) of the part that frame `id` belongs to.
pub fn part_of(id: u64) -> (u64, u32) {
    let per_seg = u64::from(FRAMES_PER_PART * PARTS_PER_SEGMENT);
    (id / per_seg, (id % per_seg) as u32 / FRAMES_PER_PART)
}

/// The part after `(msn, part)`.
pub fn next_part((msn, part): (u64, u32)) -> (u64, u32) {
    if part + 1 == PARTS_PER_SEGMENT { (msn + 1, 0) } else { (msn, part + 1) }
}

/// A live channel: one frame every [`FRAME`] until `until`. `latest` holds the number of
/// the last frame applied.
pub async fn live(
    r: Arc<Rendition>,
    stamps: Arc<Stamps>,
    latest: Arc<AtomicU64>,
    until: Instant,
) -> Result<(), String> {
    let mut tick = tokio::time::interval(FRAME);
    let mut id = 0u64;
    while Instant::now() < until {
        tick.tick().await;
        push_frame(&r, id, Some(&stamps))?;
        latest.store(id, Ordering::Release);
        id += 1;
    }
    apply(
        &r,
        MediaEvent::PartEnd {
            msn: part_of(id.saturating_sub(1)).0,
            part: part_of(id.saturating_sub(1)).1,
            duration: 0.1,
            ends_segment: true,
        },
    )
    .or(Ok(()))
}
