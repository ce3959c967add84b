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

#[cfg(test)]
mod tests {
    use super::*;

    fn children(data: &[u8]) -> Vec<(&[u8], &[u8])> {
        let mut out = Vec::new();
        let mut pos = 0;
        while pos + 8 <= data.len() {
            let size = ::core::primitive::u32::from_be_bytes(data[pos..pos + 4].try_into().unwrap());
            let size = size as usize;
            assert!(size >= 8 && pos + size <= data.len());
            out.push((&data[pos + 4..pos + 8], &data[pos + 8..pos + size]));
            pos += size;
        }
        assert_eq!(pos, data.len());
        out
    }

    #[test]
    fn init_segment_layout() {
        let mut out = Vec::new();
        let v = VideoTrack { width: 640, height: 360, avcc: &[1, 0x64, 0, 0x1e, 0xff, 0xe0, 0] };
        let a = AudioTrack { sample_rate: 48000, channels: 2, asc: &[0x11, 0x90], bitrate: 0 };
        write_init(&mut out, Some(&v), Some(&a));
        let top = children(&out);
        assert_eq!(top.iter().map(|b| b.0).collect::<Vec<_>>(), [b"ftyp", b"moov"]);
        assert_eq!(&top[0].1[..4], b"iso6");
        let moov = children(top[1].1);
        let kinds: Vec<&[u8]> = moov.iter().map(|b| b.0).collect();
        assert_eq!(kinds, [&b"mvhd"[..], b"trak", b"trak", b"mvex"]);
        let mvex = children(moov[3].1);
        assert_eq!(mvex.len(), 2, "one trex per track");
        for trak in [moov[1].1, moov[2].1] {
            let mdia = children(trak).into_iter().find(|b| b.0 == b"mdia").unwrap().1;
            let minf = children(mdia).into_iter().find(|b| b.0 == b"minf").unwrap().1;
            let stbl = children(minf).into_iter().find(|b| b.0 == b"stbl").unwrap().1;
            let kinds: Vec<&[u8]> = children(stbl).iter().map(|b| b.0).collect();
            assert_eq!(kinds, [&b"stsd"[..], b"stts", b"stsc", b"stco", b"stsz"]);
        }
    }

    #[test]
    fn fragment_data_offsets_point_into_the_mdat() {
        let v = [Sample { duration: 3000, size: 5, flags: FLAGS_SYNC, cts_offset: -3000 }];
        let a = [
            Sample { duration: 1024, size: 2, flags: FLAGS_SYNC, cts_offset: 0 },
            Sample { duration: 1024, size: 3, flags: FLAGS_SYNC, cts_offset: 0 },
        ];
        let runs = [
            TrackRun { track_id: 1, base_decode_time: 90_000, samples: &v, per_sample_flags: true },
            TrackRun { track_id: 2, base_decode_time: 48_000, samples: &a, per_sample_flags: false },
        ];
        let mut out = Vec::new();
        write_moof(&mut out, 7, &runs);
        let moof_len = out.len();
        assert!(moof_len <= fragment::moof_size_hint(2, 3));
        write_mdat_header(&mut out, 10);
        out.extend_from_slice(&[0xaa; 5]);
        out.extend_from_slice(&[0xbb; 5]);
        let top = children(&out);
        assert_eq!(top[0].0, b"moof");
        let trafs: Vec<_> = children(top[0].1).into_iter().filter(|b| b.0 == b"traf").collect();
        let offsets: Vec<usize> = trafs
            .iter()
            .map(|t| {
                let trun = children(t.1).into_iter().find(|b| b.0 == b"trun").unwrap().1;
                ::core::primitive::u32::from_be_bytes(trun[8..12].try_into().unwrap()) as usize
            })
            .collect();
        assert_eq!(out[offsets[0]], 0xaa);
        assert_eq!(out[offsets[1]], 0xbb);
        assert_eq!(offsets[1] - offsets[0], 5);
    }
}
