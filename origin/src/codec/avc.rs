//! H.264: the avcC record, SPS facts, and NAL unit length walking.
//!
//! FLV carries frames as NAL units prefixed by a 1-, 2- or 4-byte length (the avcC's
//! `lengthSizeMinusOne`). CMAF output always uses 4-byte lengths: [`scan_nalus`] checks a
//! frame and says how long it becomes, [`write_nalus`] writes it (a plain copy when the
//! input already uses 4-byte lengths).

use bytes::Bytes;
use h264_reader::nal::sps::SeqParameterSet;
use h264_reader::rbsp::{BitReader, decode_nal};

use super::CodecError;

/// A parsed AVCDecoderConfigurationRecord plus what its first SPS says.
#[derive(Debug, Clone, PartialEq)]
pub struct AvcConfig {
    /// AVCProfileIndication.
    pub profile: u8,
    /// profile_compatibility (constraint flags).
    pub compat: u8,
    /// AVCLevelIndication.
    pub level: u8,
    /// Bytes per NAL length prefix in frames (1, 2 or 4).
    pub nal_length_size: u8,
    /// Sequence parameter sets (NAL units, with header byte).
    pub sps: Vec<Bytes>,
    /// Picture parameter sets.
    pub pps: Vec<Bytes>,
    /// Display width and height from the first SPS (cropping applied), when it parses.
    pub resolution: Option<(u32, u32)>,
    /// Frames per second from the SPS VUI timing info, when present.
    pub frame_rate: Option<f64>,
    record: Bytes,
}

fn take<'a>(data: &mut &'a [u8], n: usize, what: &'static str) -> Result<&'a [u8], CodecError> {
    if data.len() < n {
        return Err(CodecError::Truncated(what));
    }
    let (head, rest) = data.split_at(n);
    *data = rest;
    Ok(head)
}

impl AvcConfig {
    /// Parses an AVCDecoderConfigurationRecord (the body of an AVC sequence header tag).
    pub fn parse(record: &Bytes) -> Result<Self, CodecError> {
        let mut d: &[u8] = record;
        let fixed = take(&mut d, 6, "avcC header")?;
        if fixed[0] != 1 {
            return Err(CodecError::AvcVersion(fixed[0]));
        }
        let nal_length_size = (fixed[4] & 0x03) + 1;
        if nal_length_size == 3 {
            return Err(CodecError::NalLengthSize(3));
        }
        let mut sps = Vec::new();
        for _ in 0..(fixed[5] & 0x1f) {
            let len = take(&mut d, 2, "avcC SPS length")?;
            let len = u16::from_be_bytes([len[0], len[1]]) as usize;
            let start = record.len() - d.len();
            take(&mut d, len, "avcC SPS")?;
            sps.push(record.slice(start..start + len));
        }
        let n_pps = take(&mut d, 1, "avcC PPS count")?[0];
        let mut pps = Vec::new();
        for _ in 0..n_pps {
            let len = take(&mut d, 2, "avcC PPS length")?;
            let len = u16::from_be_bytes([len[0], len[1]]) as usize;
            let start = record.len() - d.len();
            take(&mut d, len, "avcC PPS")?;
            pps.push(record.slice(start..start + len));
        }
        if sps.is_empty() || pps.is_empty() || sps[0].is_empty() {
            return Err(CodecError::MissingParameterSets);
        }
        let parsed = parse_sps(&sps[0]);
        Ok(Self {
            profile: fixed[1],
            compat: fixed[2],
            level: fixed[3],
            nal_length_size,
            resolution: parsed.as_ref().and_then(|s| s.pixel_dimensions().ok()),
            frame_rate: parsed
                .as_ref()
                .and_then(|s| s.fps())
                .filter(|f| f.is_finite() && *f > 0.0 && *f <= 1000.0),
            sps,
            pps,
            record: record.clone(),
        })
    }

    /// RFC 6381 codec string, `avc1.PPCCLL`.
    pub fn codec_string(&self) -> String {
        format!("avc1.{:02x}{:02x}{:02x}", self.profile, self.compat, self.level)
    }

    /// The record as received.
    pub fn record(&self) -> &Bytes {
        &self.record
    }

    /// The record to put in an `avcC` box: as received, with `lengthSizeMinusOne` set to 3
    /// (output frames always use 4-byte NAL lengths).
    pub fn record_for_mp4(&self) -> Bytes {
        if self.nal_length_size == 4 {
            return self.record.clone();
        }
        let mut v = self.record.to_vec();
        v[4] |= 0x03;
        Bytes::from(v)
    }
}

fn parse_sps(nal: &[u8]) -> Option<SeqParameterSet> {
    let rbsp = decode_nal(nal).ok()?;
    SeqParameterSet::from_bits(BitReader::new(&rbsp[..])).ok()
}

/// What [`scan_nalus`] learned about a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NalScan {
    /// Number of NAL units.
    pub count: usize,
    /// Size of the frame once rewritten with 4-byte lengths.
    pub out_len: usize,
}

/// Walks the length-prefixed NAL units of a frame, checking that no length lies.
pub fn scan_nalus(data: &[u8], length_size: u8) -> Result<NalScan, CodecError> {
    let ls = length_size as usize;
    if !matches!(ls, 1 | 2 | 4) {
        return Err(CodecError::NalLengthSize(length_size));
    }
    let mut pos = 0usize;
    let mut count = 0usize;
    while pos < data.len() {
        let remaining = data.len() - pos;
        if remaining < ls {
            return Err(CodecError::Truncated("NAL length prefix"));
        }
        let len = read_len(&data[pos..pos + ls]);
        pos += ls;
        if len > data.len() - pos {
            return Err(CodecError::NalOverrun { len, remaining: data.len() - pos });
        }
        pos += len;
        count += 1;
    }
    Ok(NalScan { count, out_len: data.len() + count * (4 - ls) })
}

fn read_len(b: &[u8]) -> usize {
    b.iter().fold(0usize, |acc, &x| (acc << 8) | x as usize)
}

/// Appends the frame to `out` with 4-byte NAL lengths. The frame must have passed
/// [`scan_nalus`] with the same `length_size`; anything left over is copied as is.
pub fn write_nalus(data: &[u8], length_size: u8, out: &mut Vec<u8>) {
    let ls = length_size as usize;
    if ls == 4 {
        out.extend_from_slice(data);
        return;
    }
    let mut pos = 0usize;
    while pos + ls <= data.len() {
        let len = read_len(&data[pos..pos + ls]);
        pos += ls;
        let end = (pos + len).min(data.len());
        out.extend_from_slice(&((end - pos) as u32).to_be_bytes());
        out.extend_from_slice(&data[pos..end]);
        pos = end;
    }
    if pos < data.len() {
        out.extend_from_slice(&data[pos..]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SPS of a 640x360 High profile stream at 30 fps (x264).
    pub(crate) const SPS: &[u8] = &[
        0x67, 0x64, 0x00, 0x1e, 0xac, 0xd9, 0x40, 0xa0, 0x2f, 0xf9, 0x70, 0x11, 0x00, 0x00, 0x03, 0x00, 0x01,
        0x00, 0x00, 0x03, 0x00, 0x3c, 0x0f, 0x16, 0x2d, 0x96,
    ];

    fn record(length_size_minus_one: u8) -> Bytes {
        let mut r = vec![1, 0x64, 0x00, 0x1e, 0xfc | length_size_minus_one, 0xe1];
        r.extend_from_slice(&(SPS.len() as u16).to_be_bytes());
        r.extend_from_slice(SPS);
        r.extend_from_slice(&[1, 0, 6, 0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0]);
        Bytes::from(r)
    }

    #[test]
    fn parses_record_and_sps() {
        let c = AvcConfig::parse(&record(3)).unwrap();
        assert_eq!(c.codec_string(), "avc1.64001e");
        assert_eq!(c.nal_length_size, 4);
        assert_eq!(c.sps.len(), 1);
        assert_eq!(c.pps.len(), 1);
        assert_eq!(c.resolution, Some((640, 360)));
        assert_eq!(c.frame_rate, Some(30.0));
        assert_eq!(c.record_for_mp4(), record(3));
    }

    #[test]
    fn rewrites_length_size() {
        let c = AvcConfig::parse(&record(1)).unwrap();
        assert_eq!(c.nal_length_size, 2);
        assert_eq!(c.record_for_mp4()[4] & 3, 3);
        let frame = [0u8, 2, 0x65, 0x88, 0, 1, 0x06];
        let scan = scan_nalus(&frame, 2).unwrap();
        assert_eq!(scan, NalScan { count: 2, out_len: 11 });
        let mut out = Vec::new();
        write_nalus(&frame, 2, &mut out);
        assert_eq!(out, vec![0, 0, 0, 2, 0x65, 0x88, 0, 0, 0, 1, 0x06]);
    }

    #[test]
    fn rejects_bad_input() {
        assert!(AvcConfig::parse(&Bytes::from_static(&[1, 2, 3])).is_err());
        assert!(AvcConfig::parse(&Bytes::from_static(&[2, 0x64, 0, 0x1e, 0xff, 0xe1])).is_err());
        assert_eq!(
            AvcConfig::parse(&Bytes::from_static(&[1, 0x64, 0, 0x1e, 0xff, 0xe0, 0])),
            Err(CodecError::MissingParameterSets)
        );
        assert!(AvcConfig::parse(&Bytes::from_static(&[1, 0x64, 0, 0x1e, 0xff, 0xe1, 0, 9, 1])).is_err());
        assert!(matches!(scan_nalus(&[0, 0, 0, 9, 1], 4), Err(CodecError::NalOverrun { .. })));
        assert!(scan_nalus(&[0, 0], 4).is_err());
        assert!(scan_nalus(&[0], 3).is_err());
    }
}
