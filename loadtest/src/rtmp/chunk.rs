//! RTMP chunk stream, sans-IO: [`encode_message`] splits one message into chunks, and
//! [`ChunkDecoder`] reassembles the server's messages from whatever bytes arrived
//! (it says "need more" by returning `Ok(None)` and consumes only whole chunks).

use std::collections::HashMap;

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::RtmpError;

/// Largest message the decoder accepts from a server.
pub const MAX_MESSAGE: usize = 1 << 20;
/// Most chunk streams the decoder tracks.
const MAX_CHUNK_STREAMS: usize = 64;
const EXTENDED: u32 = 0xff_ffff;

/// One complete RTMP message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Message type id.
    pub type_id: u8,
    /// Message stream id.
    pub stream_id: u32,
    /// Timestamp (ms).
    pub timestamp: u32,
    /// Payload.
    pub payload: Bytes,
}

/// Appends `payload` as chunks of at most `chunk_size` bytes on chunk stream `csid`
/// (2..=63): a type-0 header first, type-3 headers after, extended timestamps when needed.
pub fn encode_message(out: &mut BytesMut, csid: u8, msg: (u8, u32, u32), payload: &[u8], chunk_size: usize) {
    let (type_id, stream_id, timestamp) = msg;
    let ext = timestamp >= EXTENDED;
    out.reserve(payload.len() + 16 + payload.len() / chunk_size.max(1) * 5);
    out.put_u8(csid & 0x3f);
    let ts_field = if ext { EXTENDED } else { timestamp };
    out.put_slice(&ts_field.to_be_bytes()[1..]);
    out.put_slice(&(payload.len() as u32).to_be_bytes()[1..]);
    out.put_u8(type_id);
    out.put_u32_le(stream_id);
    if ext {
        out.put_u32(timestamp);
    }
    let mut chunks = payload.chunks(chunk_size.max(1));
    if let Some(first) = chunks.next() {
        out.put_slice(first);
    }
    for c in chunks {
        out.put_u8(0xc0 | (csid & 0x3f));
        if ext {
            out.put_u32(timestamp);
        }
        out.put_slice(c);
    }
}

#[derive(Debug, Default, Clone)]
struct StreamState {
    timestamp: u32,
    delta: u32,
    length: usize,
    type_id: u8,
    stream_id: u32,
    extended: bool,
    partial: BytesMut,
}

/// Reassembles messages from the peer's chunk stream.
#[derive(Debug)]
pub struct ChunkDecoder {
    chunk_size: usize,
    streams: HashMap<u32, StreamState>,
}

impl Default for ChunkDecoder {
    fn default() -> Self {
        Self { chunk_size: 128, streams: HashMap::new() }
    }
}

impl ChunkDecoder {
    /// Sets the peer's chunk size (from its Set Chunk Size message).
    pub fn set_chunk_size(&mut self, size: usize) {
        self.chunk_size = size.clamp(1, MAX_MESSAGE);
    }

    /// Consumes whole chunks from `buf`; returns the first message that completes.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Message>, RtmpError> {
        loop {
            let Some((consumed, done)) = self.chunk(buf)? else {
                return Ok(None);
            };
            buf.advance(consumed);
            if let Some(msg) = done {
                if msg.type_id == 1 && msg.payload.len() >= 4 {
                    let size =
                        u32::from_be_bytes([msg.payload[0], msg.payload[1], msg.payload[2], msg.payload[3]]);
                    self.set_chunk_size((size & 0x7fff_ffff) as usize);
                }
                return Ok(Some(msg));
            }
        }
    }

    /// Parses one chunk if `buf` holds it whole: (bytes used, completed message).
    #[allow(clippy::type_complexity)]
    fn chunk(&mut self, buf: &[u8]) -> Result<Option<(usize, Option<Message>)>, RtmpError> {
        let Some(&b0) = buf.first() else {
            return Ok(None);
        };
        let fmt = b0 >> 6;
        let (csid, mut at) = match b0 & 0x3f {
            0 => match buf.get(1) {
                Some(b) => (u32::from(*b) + 64, 2),
                None => return Ok(None),
            },
            1 => match buf.get(1..3) {
                Some(b) => (u32::from(b[1]) * 256 + u32::from(b[0]) + 64, 3),
                None => return Ok(None),
            },
            n => (u32::from(n), 1),
        };
        let header_len = [11, 7, 3, 0][usize::from(fmt)];
        let Some(h) = buf.get(at..at + header_len) else {
            return Ok(None);
        };
        if !self.streams.contains_key(&csid) && self.streams.len() >= MAX_CHUNK_STREAMS {
            return Err(RtmpError::Protocol("too many chunk streams"));
        }
        let mut st = self.streams.get(&csid).cloned().unwrap_or_default();
        let be24 = |b: &[u8]| u32::from_be_bytes([0, b[0], b[1], b[2]]);
        let starts_message = st.partial.is_empty();
        if fmt <= 2 {
            let ts = be24(&h[0..3]);
            st.extended = ts == EXTENDED;
            if fmt <= 1 {
                st.length = be24(&h[3..6]) as usize;
                st.type_id = h[6];
            }
            if fmt == 0 {
                st.stream_id = u32::from_le_bytes([h[7], h[8], h[9], h[10]]);
            }
            st.delta = ts;
        }
        at += header_len;
        let mut ts_value = st.delta;
        if st.extended {
            let Some(e) = buf.get(at..at + 4) else {
                return Ok(None);
            };
            ts_value = u32::from_be_bytes([e[0], e[1], e[2], e[3]]);
            at += 4;
        }
        if st.length > MAX_MESSAGE {
            return Err(RtmpError::Protocol("message too large"));
        }
        let want = (st.length - st.partial.len()).min(self.chunk_size);
        let Some(data) = buf.get(at..at + want) else {
            return Ok(None);
        };
        if starts_message {
            st.timestamp = match fmt {
                0 => ts_value,
                1 | 2 => st.timestamp.wrapping_add(ts_value),
                _ => st.timestamp.wrapping_add(st.delta),
            };
            if fmt == 0 {
                st.delta = 0;
            } else if fmt <= 2 {
                st.delta = ts_value;
            }
        }
        st.partial.extend_from_slice(data);
        at += want;
        let done = if st.partial.len() >= st.length {
            Some(Message {
                type_id: st.type_id,
                stream_id: st.stream_id,
                timestamp: st.timestamp,
                payload: std::mem::take(&mut st.partial).freeze(),
            })
        } else {
            None
        };
        self.streams.insert(csid, st);
        Ok(Some((at, done)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_then_decode_across_chunks_and_splits() {
        let payload: Vec<u8> = (0..1000u32).map(|i| i as u8).collect();
        let mut wire = BytesMut::new();
        // Peer announces chunk size 300 first.
        encode_message(&mut wire, 2, (1, 0, 0), &300u32.to_be_bytes(), 128);
        encode_message(&mut wire, 6, (9, 1, 40), &payload, 300);
        encode_message(&mut wire, 6, (9, 1, 0x0100_0000), &payload[..10], 300);
        for split in [1usize, 7, 64, 500] {
            let mut dec = ChunkDecoder::default();
            let mut buf = BytesMut::new();
            let mut got = Vec::new();
            for piece in wire.chunks(split) {
                buf.extend_from_slice(piece);
                while let Some(m) = dec.decode(&mut buf).unwrap() {
                    got.push(m);
                }
            }
            assert_eq!(got.len(), 3, "split {split}");
            assert_eq!(got[1].payload, Bytes::from(payload.clone()));
            assert_eq!((got[1].type_id, got[1].stream_id, got[1].timestamp), (9, 1, 40));
            assert_eq!(got[2].timestamp, 0x0100_0000);
            assert!(buf.is_empty());
        }
    }

    #[test]
    fn relative_headers_and_limits() {
        // fmt 0 then a fmt 1 header (delta 10) then fmt 3 (delta repeats) on csid 5.
        let mut wire = BytesMut::new();
        wire.extend_from_slice(&[0x05, 0, 0, 100, 0, 0, 1, 8, 1, 0, 0, 0, 0xaa]);
        wire.extend_from_slice(&[0x45, 0, 0, 10, 0, 0, 1, 8, 0xbb]);
        wire.extend_from_slice(&[0xc5, 0xcc]);
        let mut dec = ChunkDecoder::default();
        let ts: Vec<u32> =
            std::iter::from_fn(|| dec.decode(&mut wire).unwrap()).map(|m| m.timestamp).collect();
        assert_eq!(ts, vec![100, 110, 120]);
        let mut huge = BytesMut::from(&[0x04u8, 0, 0, 0, 0x7f, 0xff, 0xff, 8, 1, 0, 0, 0][..]);
        assert!(ChunkDecoder::default().decode(&mut huge).is_err());
    }
}
