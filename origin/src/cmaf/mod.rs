//! CMAF (fragmented MP4) box writing, straight into a caller's `Vec<u8>`.
//!
//! - this module: the box writer primitives (open a box, write fields, patch its size).
//! - [`init`]: the initialization segment (`ftyp` + `moov` with `mvex`).
//! - [`fragment`]: a CMAF chunk's `moof` (+ the `mdat` header); the caller appends the
//!   sample payloads.
//!
//! Nothing here allocates per box: boxes are written in place and their sizes patched when
//! they close.

pub mod fragment;
pub mod init;

pub use fragment::{Sample, TrackRun, write_mdat_header, write_moof};
pub use init::{AudioTrack, VideoTrack, write_init};

/// Track id of the video track.
pub const VIDEO_TRACK_ID: u32 = 1;
/// Track id of the audio track.
pub const AUDIO_TRACK_ID: u32 = 2;
/// Timescale of the video track (ticks per second).
pub const VIDEO_TIMESCALE: u32 = 90_000;

/// Sample flags of a sync sample (depends on no other sample).
pub const FLAGS_SYNC: u32 = 0x0200_0000;
/// Sample flags of a non-sync sample (depends on others, `sample_is_non_sync_sample`).
pub const FLAGS_NON_SYNC: u32 = 0x0101_0000;

/// Starts a box: writes a size placeholder and the type; returns where it starts.
pub(crate) fn open(out: &mut Vec<u8>, kind: &[u8; 4]) -> usize {
    let start = out.len();
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(kind);
    start
}

/// Starts a full box (version + flags).
pub(crate) fn open_full(out: &mut Vec<u8>, kind: &[u8; 4], version: u8, flags: u32) -> usize {
    let start = open(out, kind);
    out.extend_from_slice(&((u32::from(version) << 24) | (flags & 0x00ff_ffff)).to_be_bytes());
    start
}

/// Closes the box opened at `start` by patching its size.
pub(crate) fn close(out: &mut [u8], start: usize) {
    let size = (out.len() - start) as u32;
    out[start..start + 4].copy_from_slice(&size.to_be_bytes());
}

pub(crate) fn u16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_be_bytes());
}

pub(crate) fn u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_be_bytes());
}

pub(crate) fn u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_be_bytes());
}

pub(crate) fn zeros(out: &mut Vec<u8>, n: usize) {
    out.resize(out.len() + n, 0);
}
