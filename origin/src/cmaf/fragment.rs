//! A CMAF chunk: `moof` (`mfhd`, one `traf` per track: `tfhd`, `tfdt`, `trun`) + `mdat`.
//!
//! [`write_moof`] lays out data offsets assuming the `mdat` follows the `moof` directly and
//! holds each run's samples in run order; [`write_mdat_header`] then opens that `mdat` and
//! the caller appends the payloads.

use super::{FLAGS_SYNC, close, open, open_full, u32, u64};

/// One sample of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// Duration in track timescale ticks.
    pub duration: u32,
    /// Payload size in bytes (as written into the `mdat`).
    pub size: u32,
    /// Sample flags ([`super::FLAGS_SYNC`] / [`super::FLAGS_NON_SYNC`]).
    pub flags: u32,
    /// Composition time offset in ticks (pts - dts, may be negative).
    pub cts_offset: i32,
}

/// The samples of one track in a chunk.
#[derive(Debug, Clone, Copy)]
pub struct TrackRun<'a> {
    /// Track id (as in the init segment).
    pub track_id: u32,
    /// Decode time of the first sample, in track timescale ticks (`tfdt`).
    pub base_decode_time: u64,
    /// The samples, in decode order.
    pub samples: &'a [Sample],
    /// Write per-sample flags and composition offsets (video). Without it, every sample is
    /// a sync sample with no composition offset (audio).
    pub per_sample_flags: bool,
}

const TFHD_DEFAULT_BASE_IS_MOOF: u32 = 0x02_0000;
const TFHD_DEFAULT_FLAGS: u32 = 0x20;
const TRUN_DATA_OFFSET: u32 = 0x1;
const TRUN_DURATION: u32 = 0x100;
const TRUN_SIZE: u32 = 0x200;
const TRUN_FLAGS: u32 = 0x400;
const TRUN_CTS: u32 = 0x800;

/// Upper bound of the `moof` size for runs holding `samples` samples in total.
pub fn moof_size_hint(runs: usize, samples: usize) -> usize {
    24 + runs * 80 + samples * 16
}

/// Appends a `moof` for `runs` (empty runs are skipped). `sequence` is the `mfhd` number.
pub fn write_moof(out: &mut Vec<u8>, sequence: u32, runs: &[TrackRun<'_>]) {
    let moof = open(out, b"moof");
    let mfhd = open_full(out, b"mfhd", 0, 0);
    u32(out, sequence);
    close(out, mfhd);
    // Positions of the trun data_offset fields, with the offset of each run in the mdat.
    let mut patches: [(usize, u64); 2] = [(0, 0); 2];
    let mut n_patches = 0usize;
    let mut mdat_offset = 0u64;
    for run in runs.iter().filter(|r| !r.samples.is_empty()) {
        let traf = open(out, b"traf");
        let mut tf_flags = TFHD_DEFAULT_BASE_IS_MOOF;
        if !run.per_sample_flags {
            tf_flags |= TFHD_DEFAULT_FLAGS;
        }
        let tfhd = open_full(out, b"tfhd", 0, tf_flags);
        u32(out, run.track_id);
        if !run.per_sample_flags {
            u32(out, FLAGS_SYNC);
        }
        close(out, tfhd);
        let tfdt = open_full(out, b"tfdt", 1, 0);
        u64(out, run.base_decode_time);
        close(out, tfdt);
        let (version, flags) = if run.per_sample_flags {
            (1, TRUN_DATA_OFFSET | TRUN_DURATION | TRUN_SIZE | TRUN_FLAGS | TRUN_CTS)
        } else {
            (0, TRUN_DATA_OFFSET | TRUN_DURATION | TRUN_SIZE)
        };
        let trun = open_full(out, b"trun", version, flags);
        u32(out, run.samples.len() as u32);
        if n_patches < patches.len() {
            patches[n_patches] = (out.len(), mdat_offset);
            n_patches += 1;
        }
        u32(out, 0); // data_offset, patched below
        for s in run.samples {
            u32(out, s.duration);
            u32(out, s.size);
            mdat_offset += u64::from(s.size);
            if run.per_sample_flags {
                u32(out, s.flags);
                out.extend_from_slice(&s.cts_offset.to_be_bytes());
            }
        }
        close(out, trun);
        close(out, traf);
    }
    close(out, moof);
    let moof_size = (out.len() - moof) as u64;
    for &(pos, offset) in &patches[..n_patches] {
        let v = (moof_size + 8 + offset).min(i32::MAX as u64) as u32;
        out[pos..pos + 4].copy_from_slice(&v.to_be_bytes());
    }
}

/// Appends the header of an `mdat` holding `payload_len` bytes.
pub fn write_mdat_header(out: &mut Vec<u8>, payload_len: usize) {
    u32(out, (payload_len + 8) as u32);
    out.extend_from_slice(b"mdat");
}
