//! Wall-clock stamps carried in H.264 SEI messages.
//!
//! A publisher inserts, into every video access unit it sends, one SEI NAL unit (type 6)
//! holding a `user_data_unregistered` message (payload type 5): the 16-byte [`STAMP_UUID`]
//! followed by the send time as unix microseconds (u64, big endian). The RBSP is escaped
//! with emulation-prevention bytes like any NAL unit, so the stream stays valid H.264.
//!
//! Viewers find stamps with [`StampScanner`], a streaming matcher that needs no container
//! parsing: it works on fMP4 `mdat` payloads (length-prefixed NAL units) and on the payloads
//! of MPEG-TS packets of one PID (Annex B) alike, holds a few bytes of state, and never
//! buffers media. [`extract_stamps_avcc`] is the exact (NAL-walking) reader used in tests.

use bytes::{BufMut, Bytes, BytesMut};

/// The UUID that marks a Skyrelay stamp (ASCII, no zero bytes, so it never needs escaping).
pub const STAMP_UUID: [u8; 16] = *b"SkyrelayStamp-v1";

/// NAL unit type of an SEI message.
const NAL_SEI: u8 = 6;
/// NAL unit type of an access unit delimiter.
const NAL_AUD: u8 = 9;
/// SEI payload type `user_data_unregistered`.
const PAYLOAD_USER_DATA_UNREGISTERED: u8 = 5;

/// Why a stamp could not be inserted into a frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SeiError {
    /// The NAL length size is not 1, 2 or 4 bytes.
    #[error("unsupported NAL length size {0}")]
    BadLengthSize(usize),
    /// A NAL length prefix points past the end of the frame.
    #[error("NAL unit at offset {offset} overruns the frame")]
    Truncated {
        /// Offset of the length prefix.
        offset: usize,
    },
}

/// The escaped SEI NAL unit (header byte included, no length prefix) carrying `unix_us`.
pub fn sei_nal(unix_us: u64) -> Vec<u8> {
    let mut rbsp = Vec::with_capacity(27);
    rbsp.push(PAYLOAD_USER_DATA_UNREGISTERED);
    rbsp.push(24); // payload size: uuid + u64
    rbsp.extend_from_slice(&STAMP_UUID);
    rbsp.extend_from_slice(&unix_us.to_be_bytes());
    rbsp.push(0x80); // rbsp_trailing_bits
    let mut nal = Vec::with_capacity(32);
    nal.push(NAL_SEI); // forbidden_zero 0, nal_ref_idc 0, type 6
    let mut zeros = 0;
    for b in rbsp {
        if zeros >= 2 && b <= 3 {
            nal.push(3);
            zeros = 0;
        }
        nal.push(b);
        zeros = if b == 0 { zeros + 1 } else { 0 };
    }
    nal
}

fn read_len(frame: &[u8], at: usize, size: usize) -> Option<usize> {
    let bytes = frame.get(at..at + size)?;
    Some(bytes.iter().fold(0usize, |acc, b| (acc << 8) | usize::from(*b)))
}

/// Inserts a stamp SEI into one AVCC frame (length-prefixed NAL units with `length_size`
/// byte prefixes): after a leading access unit delimiter if there is one, else first.
pub fn insert_stamp(frame: &[u8], length_size: usize, unix_us: u64) -> Result<Bytes, SeiError> {
    if !matches!(length_size, 1 | 2 | 4) {
        return Err(SeiError::BadLengthSize(length_size));
    }
    let nal = sei_nal(unix_us);
    // Position after an AUD, if the first NAL unit is one.
    let mut insert_at = 0;
    if let Some(len) = read_len(frame, 0, length_size) {
        let end = length_size + len;
        if end > frame.len() {
            return Err(SeiError::Truncated { offset: 0 });
        }
        if frame.get(length_size).map(|h| h & 0x1f) == Some(NAL_AUD) {
            insert_at = end;
        }
    }
    let mut out = BytesMut::with_capacity(frame.len() + nal.len() + length_size);
    out.extend_from_slice(&frame[..insert_at]);
    let len = nal.len() as u64;
    for i in (0..length_size).rev() {
        out.put_u8((len >> (8 * i)) as u8);
    }
    out.extend_from_slice(&nal);
    out.extend_from_slice(&frame[insert_at..]);
    Ok(out.freeze())
}

/// Removes emulation-prevention bytes from a NAL unit payload.
fn unescape(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    let mut zeros = 0;
    for &b in data {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        out.push(b);
        zeros = if b == 0 { zeros + 1 } else { 0 };
    }
    out
}

/// Reads every stamp of an AVCC frame by walking its NAL units and SEI messages exactly.
pub fn extract_stamps_avcc(frame: &[u8], length_size: usize) -> Result<Vec<u64>, SeiError> {
    if !matches!(length_size, 1 | 2 | 4) {
        return Err(SeiError::BadLengthSize(length_size));
    }
    let mut stamps = Vec::new();
    let mut at = 0;
    while at < frame.len() {
        let len = read_len(frame, at, length_size).ok_or(SeiError::Truncated { offset: at })?;
        let start = at + length_size;
        let nal = frame.get(start..start + len).ok_or(SeiError::Truncated { offset: at })?;
        if nal.first().map(|h| h & 0x1f) == Some(NAL_SEI) {
            stamps.extend(stamps_in_sei_rbsp(&unescape(&nal[1..])));
        }
        at = start + len;
    }
    Ok(stamps)
}

/// Walks the SEI messages of one RBSP and returns the stamps among them.
fn stamps_in_sei_rbsp(rbsp: &[u8]) -> Vec<u64> {
    let mut out = Vec::new();
    let mut i = 0;
    // Stop at the trailing bits (0x80) or when a header runs out.
    while i < rbsp.len() && rbsp[i] != 0x80 {
        let mut read_ff = || {
            let mut v = 0usize;
            while let Some(&b) = rbsp.get(i) {
                i += 1;
                v += usize::from(b);
                if b != 0xff {
                    return Some(v);
                }
            }
            None
        };
        let (Some(kind), Some(size)) = (read_ff(), read_ff()) else {
            break;
        };
        let Some(payload) = rbsp.get(i..i + size) else {
            break;
        };
        if kind == usize::from(PAYLOAD_USER_DATA_UNREGISTERED) && size >= 24 && payload[..16] == STAMP_UUID {
            let mut ts = [0u8; 8];
            ts.copy_from_slice(&payload[16..24]);
            out.push(u64::from_be_bytes(ts));
        }
        i += size;
    }
    out
}

/// Streaming stamp finder: feed arbitrary slices of one elementary byte stream.
///
/// Matches [`STAMP_UUID`] with a KMP automaton (skipping with `memchr` to candidate first
/// bytes), then reads the next 8 bytes of the escaped stream, dropping emulation-prevention
/// bytes. State is a few bytes; nothing is buffered.
#[derive(Debug, Clone)]
pub struct StampScanner {
    matched: usize,
    reading: Option<(u64, u8, u8)>, // (value so far, bytes read, zero run)
    fail: [usize; 16],
}

impl Default for StampScanner {
    fn default() -> Self {
        Self::new()
    }
}

impl StampScanner {
    /// A scanner at the start of a stream.
    pub fn new() -> Self {
        let mut fail = [0usize; 16];
        let mut k = 0;
        for i in 1..16 {
            while k > 0 && STAMP_UUID[i] != STAMP_UUID[k] {
                k = fail[k - 1];
            }
            if STAMP_UUID[i] == STAMP_UUID[k] {
                k += 1;
            }
            fail[i] = k;
        }
        Self { matched: 0, reading: None, fail }
    }

    /// Scans `data`, calling `on_stamp` with each complete stamp (unix microseconds).
    pub fn feed(&mut self, data: &[u8], mut on_stamp: impl FnMut(u64)) {
        let mut i = 0;
        while i < data.len() {
            if self.matched == 0 && self.reading.is_none() {
                // Between matches, skip straight to the next byte that can start the UUID
                // (most media bytes are not it).
                match memchr::memchr(STAMP_UUID[0], &data[i..]) {
                    Some(k) => i += k,
                    None => return,
                }
            }
            let b = data[i];
            i += 1;
            if let Some((value, count, zeros)) = self.reading {
                if zeros >= 2 && b == 3 {
                    self.reading = Some((value, count, 0));
                    continue;
                }
                let value = (value << 8) | u64::from(b);
                let zeros = if b == 0 { zeros + 1 } else { 0 };
                if count + 1 == 8 {
                    on_stamp(value);
                    self.reading = None;
                } else {
                    self.reading = Some((value, count + 1, zeros));
                }
                continue;
            }
            while self.matched > 0 && b != STAMP_UUID[self.matched] {
                self.matched = self.fail[self.matched - 1];
            }
            if b == STAMP_UUID[self.matched] {
                self.matched += 1;
                if self.matched == STAMP_UUID.len() {
                    self.matched = 0;
                    self.reading = Some((0, 0, 0));
                }
            }
        }
    }
}

/// Finds stamps in an MPEG-TS byte stream: one [`StampScanner`] per PID (bounded), fed
/// with packet payloads so that TS headers never split a match.
#[derive(Debug, Default)]
pub struct TsStampScanner {
    pending: Vec<u8>,
    pids: Vec<(u16, StampScanner)>,
}

/// Most PIDs tracked by one [`TsStampScanner`].
const MAX_PIDS: usize = 16;
const TS_PACKET: usize = 188;

impl TsStampScanner {
    /// Scans `data` (any slicing of the TS stream).
    pub fn feed(&mut self, mut data: &[u8], mut on_stamp: impl FnMut(u64)) {
        while !data.is_empty() {
            if self.pending.is_empty() && data.len() >= TS_PACKET && data[0] == 0x47 {
                let (pkt, rest) = data.split_at(TS_PACKET);
                self.packet(pkt, &mut on_stamp);
                data = rest;
                continue;
            }
            if self.pending.is_empty() && data[0] != 0x47 {
                data = &data[1..]; // resynchronise on the sync byte
                continue;
            }
            let take = (TS_PACKET - self.pending.len()).min(data.len());
            self.pending.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.pending.len() == TS_PACKET {
                let pkt = std::mem::take(&mut self.pending);
                self.packet(&pkt, &mut on_stamp);
                self.pending = pkt;
                self.pending.clear();
            }
        }
    }

    fn packet(&mut self, pkt: &[u8], on_stamp: &mut impl FnMut(u64)) {
        let pid = (u16::from(pkt[1] & 0x1f) << 8) | u16::from(pkt[2]);
        let afc = (pkt[3] >> 4) & 3;
        if afc & 1 == 0 || pid == 0x1fff {
            return;
        }
        let start = if afc & 2 != 0 { 5 + usize::from(pkt[4]) } else { 4 };
        let Some(payload) = pkt.get(start..) else {
            return;
        };
        let idx = match self.pids.iter().position(|(p, _)| *p == pid) {
            Some(i) => i,
            None if self.pids.len() < MAX_PIDS => {
                self.pids.push((pid, StampScanner::new()));
                self.pids.len() - 1
            }
            None => return,
        };
        self.pids[idx].1.feed(payload, &mut *on_stamp);
    }
}

/// The current wall-clock time in unix microseconds.
pub fn unix_now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn avcc(nals: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for n in nals {
            out.extend_from_slice(&(n.len() as u32).to_be_bytes());
            out.extend_from_slice(n);
        }
        out
    }

    #[test]
    fn round_trip_after_aud_and_escaping() {
        // Values whose bytes contain 00 00 0x runs need emulation prevention.
        for ts in [0u64, 1, 0x0000_0300_0001_0000, 1_764_000_000_123_456, u64::MAX] {
            let frame = avcc(&[&[0x09, 0xf0], &[0x65, 1, 2, 3]]);
            let stamped = insert_stamp(&frame, 4, ts).unwrap();
            assert_eq!(extract_stamps_avcc(&stamped, 4).unwrap(), vec![ts]);
            // The AUD stays first.
            assert_eq!(&stamped[..6], &frame[..6]);
            let mut found = Vec::new();
            StampScanner::new().feed(&stamped, |v| found.push(v));
            assert_eq!(found, vec![ts]);
            // Escaped NAL never holds 00 00 0x (x <= 3) except via the escape itself.
            let nal = sei_nal(ts);
            assert!(!nal.windows(3).any(|w| w[0] == 0 && w[1] == 0 && w[2] < 3));
        }
    }

    #[test]
    fn scanner_handles_any_split_and_overlaps() {
        let ts = 0x0000_0000_0300_0000u64;
        let mut stream = b"SkyrelaySkyrelayStamp".to_vec(); // overlapping partial match
        stream.extend_from_slice(&insert_stamp(&avcc(&[&[0x41, 9]]), 2, ts).unwrap());
        stream.extend_from_slice(b"SkyrelaySkyrelayStamp-v1");
        stream.extend_from_slice(&7u64.to_be_bytes()[..]); // 00 00 00 ... 07: unescaped here
        for split in 0..stream.len() {
            let mut s = StampScanner::new();
            let mut found = Vec::new();
            s.feed(&stream[..split], |v| found.push(v));
            s.feed(&stream[split..], |v| found.push(v));
            assert_eq!(found.first(), Some(&ts), "split at {split}");
            assert_eq!(found.len(), 2);
        }
    }

    #[test]
    fn frames_without_aud_and_errors() {
        let frame = avcc(&[&[0x65, 1]]);
        let stamped = insert_stamp(&frame, 4, 42).unwrap();
        assert_eq!(stamped[4] & 0x1f, NAL_SEI);
        assert_eq!(insert_stamp(&frame, 3, 1), Err(SeiError::BadLengthSize(3)));
        assert!(insert_stamp(&[0, 0, 0, 9, 0x65], 4, 1).is_err());
        assert!(extract_stamps_avcc(&[0, 0, 0, 9, 0x65], 4).is_err());
        assert_eq!(extract_stamps_avcc(&frame, 4).unwrap(), Vec::<u64>::new());
    }

    #[test]
    fn ts_scanner_reads_stamps_split_across_packets() {
        let ts = 1_700_000_000_000_000u64;
        let mut es = vec![0, 0, 0, 1];
        es.extend_from_slice(&sei_nal(ts));
        es.extend_from_slice(&[0, 0, 0, 1, 0x65]);
        es.extend(std::iter::repeat_n(0xaa, 300));
        // Packetise at PID 0x100, 10-byte payloads (adaptation field stuffing), interleaving
        // audio packets at PID 0x101 that contain a decoy UUID prefix.
        let mut stream = Vec::new();
        for chunk in es.chunks(10) {
            let mut pkt = vec![0x47, 0x01, 0x00, 0x30, (183 - chunk.len()) as u8, 0];
            pkt.resize(5 + 183 - chunk.len(), 0xff);
            pkt.extend_from_slice(chunk);
            assert_eq!(pkt.len(), 188);
            stream.extend_from_slice(&pkt);
            let mut audio = vec![0x47, 0x01, 0x01, 0x10];
            audio.extend_from_slice(b"Skyrelay");
            audio.resize(188, 0x11);
            stream.extend_from_slice(&audio);
        }
        let mut found = Vec::new();
        let mut s = TsStampScanner::default();
        s.feed(&[0x00, 0x12], |v| found.push(v)); // garbage before sync
        for piece in stream.chunks(77) {
            s.feed(piece, |v| found.push(v));
        }
        assert_eq!(found, vec![ts]);
    }
}
