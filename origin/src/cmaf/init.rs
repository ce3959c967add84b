//! The CMAF initialization segment: `ftyp` + `moov` (`mvhd`, one `trak` per track, `mvex`).
//!
//! Sample tables are empty (all samples live in fragments); every track gets a `trex` with
//! neutral defaults, since each `trun` carries explicit values.

use super::{AUDIO_TRACK_ID, VIDEO_TIMESCALE, VIDEO_TRACK_ID, close, open, open_full, u16, u32, u64, zeros};

/// The video track of an init segment.
#[derive(Debug, Clone, Copy)]
pub struct VideoTrack<'a> {
    /// Coded width in pixels.
    pub width: u32,
    /// Coded height in pixels.
    pub height: u32,
    /// AVCDecoderConfigurationRecord with 4-byte NAL lengths.
    pub avcc: &'a [u8],
}

/// The audio track of an init segment.
#[derive(Debug, Clone, Copy)]
pub struct AudioTrack<'a> {
    /// Sample rate in Hz (also the track timescale).
    pub sample_rate: u32,
    /// Channel count.
    pub channels: u16,
    /// AudioSpecificConfig.
    pub asc: &'a [u8],
    /// Average bitrate for the `esds` (0 when unknown).
    pub bitrate: u32,
}

const MATRIX: [u32; 9] = [0x0001_0000, 0, 0, 0, 0x0001_0000, 0, 0, 0, 0x4000_0000];

/// Appends an init segment for the given tracks (at least one should be present).
pub fn write_init(out: &mut Vec<u8>, video: Option<&VideoTrack<'_>>, audio: Option<&AudioTrack<'_>>) {
    let ftyp = open(out, b"ftyp");
    out.extend_from_slice(b"iso6");
    u32(out, 0);
    for brand in [b"iso6", b"cmfc", b"isom", b"mp41"] {
        out.extend_from_slice(brand);
    }
    close(out, ftyp);

    let moov = open(out, b"moov");
    let mvhd = open_full(out, b"mvhd", 0, 0);
    u32(out, 0); // creation time
    u32(out, 0); // modification time
    u32(out, 1000); // timescale
    u32(out, 0); // duration
    u32(out, 0x0001_0000); // rate
    u16(out, 0x0100); // volume
    zeros(out, 10);
    MATRIX.iter().for_each(|&m| u32(out, m));
    zeros(out, 24); // pre_defined
    u32(out, AUDIO_TRACK_ID.max(VIDEO_TRACK_ID) + 1); // next_track_ID
    close(out, mvhd);

    if let Some(v) = video {
        trak(out, VIDEO_TRACK_ID, VIDEO_TIMESCALE, Kind::Video(v));
    }
    if let Some(a) = audio {
        trak(out, AUDIO_TRACK_ID, a.sample_rate, Kind::Audio(a));
    }

    let mvex = open(out, b"mvex");
    for id in video.map(|_| VIDEO_TRACK_ID).into_iter().chain(audio.map(|_| AUDIO_TRACK_ID)) {
        let trex = open_full(out, b"trex", 0, 0);
        u32(out, id);
        u32(out, 1); // default_sample_description_index
        u32(out, 0); // default_sample_duration
        u32(out, 0); // default_sample_size
        u32(out, 0); // default_sample_flags
        close(out, trex);
    }
    close(out, mvex);
    close(out, moov);
}

enum Kind<'a, 'b> {
    Video(&'b VideoTrack<'a>),
    Audio(&'b AudioTrack<'a>),
}

fn trak(out: &mut Vec<u8>, id: u32, timescale: u32, kind: Kind<'_, '_>) {
    let trak = open(out, b"trak");
    let tkhd = open_full(out, b"tkhd", 0, 0x3); // enabled | in movie
    u32(out, 0);
    u32(out, 0);
    u32(out, id);
    u32(out, 0); // reserved
    u32(out, 0); // duration
    zeros(out, 8);
    u16(out, 0); // layer
    u16(out, 0); // alternate group
    u16(out, if matches!(kind, Kind::Audio(_)) { 0x0100 } else { 0 });
    u16(out, 0);
    MATRIX.iter().for_each(|&m| u32(out, m));
    let (w, h) = match &kind {
        Kind::Video(v) => (v.width, v.height),
        Kind::Audio(_) => (0, 0),
    };
    u32(out, w.min(0xffff) << 16);
    u32(out, h.min(0xffff) << 16);
    close(out, tkhd);

    let mdia = open(out, b"mdia");
    let mdhd = open_full(out, b"mdhd", 1, 0);
    u64(out, 0);
    u64(out, 0);
    u32(out, timescale);
    u64(out, 0);
    u16(out, 0x55c4); // 'und'
    u16(out, 0);
    close(out, mdhd);
    let hdlr = open_full(out, b"hdlr", 0, 0);
    u32(out, 0);
    let (handler, name): (&[u8; 4], &[u8]) = match kind {
        Kind::Video(_) => (b"vide", b"Skyrelay video\0"),
        Kind::Audio(_) => (b"soun", b"Skyrelay audio\0"),
    };
    out.extend_from_slice(handler);
    zeros(out, 12);
    out.extend_from_slice(name);
    close(out, hdlr);

    let minf = open(out, b"minf");
    match kind {
        Kind::Video(_) => {
            let vmhd = open_full(out, b"vmhd", 0, 1);
            zeros(out, 8);
            close(out, vmhd);
        }
        Kind::Audio(_) => {
            let smhd = open_full(out, b"smhd", 0, 0);
            zeros(out, 4);
            close(out, smhd);
        }
    }
    let dinf = open(out, b"dinf");
    let dref = open_full(out, b"dref", 0, 0);
    u32(out, 1);
    let url = open_full(out, b"url ", 0, 1); // self-contained
    close(out, url);
    close(out, dref);
    close(out, dinf);

    let stbl = open(out, b"stbl");
    let stsd = open_full(out, b"stsd", 0, 0);
    u32(out, 1);
    match kind {
        Kind::Video(v) => avc1(out, v),
        Kind::Audio(a) => mp4a(out, a),
    }
    close(out, stsd);
    for kind in [b"stts", b"stsc", b"stco"] {
        let b = open_full(out, kind, 0, 0);
        u32(out, 0);
        close(out, b);
    }
    let stsz = open_full(out, b"stsz", 0, 0);
    u32(out, 0);
    u32(out, 0);
    close(out, stsz);
    close(out, stbl);
    close(out, minf);
    close(out, mdia);
    close(out, trak);
}

fn avc1(out: &mut Vec<u8>, v: &VideoTrack<'_>) {
    let entry = open(out, b"avc1");
    zeros(out, 6);
    u16(out, 1); // data_reference_index
    zeros(out, 16); // pre_defined + reserved
    u16(out, v.width.min(0xffff) as u16);
    u16(out, v.height.min(0xffff) as u16);
    u32(out, 0x0048_0000);
    u32(out, 0x0048_0000);
    u32(out, 0);
    u16(out, 1); // frame_count
    zeros(out, 32); // compressorname
    u16(out, 0x0018);
    u16(out, 0xffff);
    let avcc = open(out, b"avcC");
    out.extend_from_slice(v.avcc);
    close(out, avcc);
    close(out, entry);
}

fn descriptor(out: &mut Vec<u8>, tag: u8, len: usize) {
    out.push(tag);
    // Always the 4-byte size form: simple, and accepted everywhere.
    let len = len as u32;
    out.extend_from_slice(&[
        0x80 | ((len >> 21) & 0x7f) as u8,
        0x80 | ((len >> 14) & 0x7f) as u8,
        0x80 | ((len >> 7) & 0x7f) as u8,
        (len & 0x7f) as u8,
    ]);
}

fn mp4a(out: &mut Vec<u8>, a: &AudioTrack<'_>) {
    let entry = open(out, b"mp4a");
    zeros(out, 6);
    u16(out, 1);
    zeros(out, 8);
    u16(out, a.channels);
    u16(out, 16); // sample size
    zeros(out, 4);
    u32(out, a.sample_rate.min(0xffff) << 16);
    let esds = open_full(out, b"esds", 0, 0);
    let dsi_len = a.asc.len();
    let dcd_len = 13 + 5 + dsi_len;
    let es_len = 3 + 5 + dcd_len + 5 + 1;
    descriptor(out, 0x03, es_len);
    u16(out, AUDIO_TRACK_ID as u16);
    out.push(0); // flags
    descriptor(out, 0x04, dcd_len);
    out.push(0x40); // Audio ISO/IEC 14496-3
    out.push(0x15); // audio stream
    out.extend_from_slice(&[0, 0, 0]); // bufferSizeDB
    u32(out, a.bitrate);
    u32(out, a.bitrate);
    descriptor(out, 0x05, dsi_len);
    out.extend_from_slice(a.asc);
    descriptor(out, 0x06, 1);
    out.push(0x02);
    close(out, esds);
    close(out, entry);
}
