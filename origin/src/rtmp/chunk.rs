//! Chunk stream decoder: chunks in, complete messages out.
//!
//! Handles basic headers of 1-3 bytes, message headers of type 0/1/2/3, extended
//! timestamps (including the rule that a type-3 chunk repeats the 4-byte extended field
//! when the header it continues had one), per-chunk-stream state and the peer's chunk size.
//!
//! Bounds: at most `max_chunk_streams` chunk stream ids; a message longer than
//! `max_message_size` is refused from its header, before any byte of it is buffered; the
//! partially received messages of all chunk streams together may not exceed twice
//! `max_message_size`. The decoder only consumes whole chunks, so a caller's buffer holds
//! at most one incomplete chunk between calls.

use std::collections::HashMap;

use bytes::{Buf, Bytes, BytesMut};

use super::RtmpError;

/// Chunk size at the start of a connection, in both directions.
pub const DEFAULT_CHUNK_SIZE: u32 = 128;
/// Timestamp field value that announces a 4-byte extended timestamp.
pub const EXTENDED_TIMESTAMP: u32 = 0x00FF_FFFF;

/// A reassembled RTMP message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawMessage {
    /// Chunk stream it arrived on.
    pub csid: u32,
    /// Absolute timestamp in milliseconds (wraps at 2^32).
    pub timestamp: u32,
    /// Message type id.
    pub type_id: u8,
    /// Message stream id.
    pub stream_id: u32,
    pub payload: Bytes,
}

/// Limits of a [`ChunkDecoder`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecoderLimits {
    /// Largest chunk size the peer may set.
    pub max_chunk_size: u32,
    /// Largest message length accepted.
    pub max_message_size: u32,
    /// Most distinct chunk stream ids.
    pub max_chunk_streams: usize,
}

#[derive(Debug, Default)]
struct StreamState {
    /// Timestamp of the current (or last) message.
    timestamp: u32,
    /// Last timestamp field after extension: absolute for type 0, a delta otherwise. A
    /// type-3 chunk that starts a message adds it again.
    delta: u32,
    length: u32,
    type_id: u8,
    stream_id: u32,
    /// Whether the last type 0/1/2 header used an extended timestamp.
    extended: bool,
    /// Bytes of the message being reassembled (`assembling`).
    partial: BytesMut,
    assembling: bool,
}

/// Chunk stream decoder (one per connection, peer to us).
#[derive(Debug)]
pub struct ChunkDecoder {
    limits: DecoderLimits,
    chunk_size: u32,
    streams: HashMap<u32, StreamState>,
    /// Sum of the announced lengths of messages being reassembled.
    in_flight: u64,
}

enum Step {
    NeedMore,
    Consumed,
    Message(RawMessage),
}

fn be24(b: &[u8]) -> u32 {
    u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2])
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

impl ChunkDecoder {
    pub fn new(limits: DecoderLimits) -> Self {
        ChunkDecoder { limits, chunk_size: DEFAULT_CHUNK_SIZE, streams: HashMap::new(), in_flight: 0 }
    }

    /// Current peer chunk size.
    pub fn chunk_size(&self) -> u32 {
        self.chunk_size
    }

    /// Number of chunk streams seen so far.
    pub fn chunk_streams(&self) -> usize {
        self.streams.len()
    }

    /// Bytes held in partially received messages.
    pub fn buffered(&self) -> usize {
        self.streams.values().map(|s| s.partial.len()).sum()
    }

    /// Applies a Set Chunk Size from the peer.
    pub fn set_chunk_size(&mut self, size: u32) -> Result<(), RtmpError> {
        if size == 0 || size & 0x8000_0000 != 0 || size > self.limits.max_chunk_size {
            return Err(RtmpError::ChunkSize { size, max: self.limits.max_chunk_size });
        }
        self.chunk_size = size;
        Ok(())
    }

    /// Applies an Abort Message: drops the partial message of `csid`.
    pub fn abort(&mut self, csid: u32) {
        if let Some(st) = self.streams.get_mut(&csid)
            && st.assembling
        {
            self.in_flight = self.in_flight.saturating_sub(u64::from(st.length));
            st.assembling = false;
            st.partial = BytesMut::new();
        }
    }

    /// Decodes chunks from the front of `buf` until a message is complete (`Some`) or no
    /// complete chunk is left (`None`; the incomplete chunk stays in `buf`).
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<RawMessage>, RtmpError> {
        loop {
            match self.decode_chunk(buf)? {
                Step::NeedMore => return Ok(None),
                Step::Consumed => {}
                Step::Message(m) => return Ok(Some(m)),
            }
        }
    }

    fn decode_chunk(&mut self, buf: &mut BytesMut) -> Result<Step, RtmpError> {
        let b = &buf[..];
        let Some(&first) = b.first() else {
            return Ok(Step::NeedMore);
        };
        let fmt = first >> 6;
        let (csid, mut pos) = match first & 0x3f {
            0 if b.len() >= 2 => (64 + u32::from(b[1]), 2),
            1 if b.len() >= 3 => (64 + u32::from(b[1]) + 256 * u32::from(b[2]), 3),
            0 | 1 => return Ok(Step::NeedMore),
            n => (u32::from(n), 1),
        };
        let header_len = [11, 7, 3, 0][usize::from(fmt)];
        if b.len() < pos + header_len {
            return Ok(Step::NeedMore);
        }
        let h = &b[pos..pos + header_len];
        pos += header_len;

        let known = self.streams.get(&csid);
        if known.is_none() && self.streams.len() >= self.limits.max_chunk_streams {
            return Err(RtmpError::TooManyChunkStreams(self.limits.max_chunk_streams));
        }
        // A first chunk of type 1-3 on a new chunk stream starts from zeroed state.
        let (prev_delta, mut length, mut type_id, mut stream_id, prev_ext, assembling, have) = known
            .map_or((0, 0, 0, 0, false, false, 0), |s| {
                (s.delta, s.length, s.type_id, s.stream_id, s.extended, s.assembling, s.partial.len())
            });
        if assembling && fmt != 3 {
            return Err(RtmpError::Protocol("message header inside an unfinished message"));
        }
        let mut ts_field = prev_delta;
        if fmt <= 2 {
            ts_field = be24(&h[0..3]);
        }
        if fmt <= 1 {
            length = be24(&h[3..6]);
            type_id = h[6];
        }
        if fmt == 0 {
            stream_id = u32::from_le_bytes([h[7], h[8], h[9], h[10]]);
        }
        if !assembling && length > self.limits.max_message_size {
            return Err(RtmpError::MessageTooLarge { len: length, max: self.limits.max_message_size });
        }
        let extended = if fmt <= 2 { ts_field == EXTENDED_TIMESTAMP } else { prev_ext };
        if extended {
            if b.len() < pos + 4 {
                return Ok(Step::NeedMore);
            }
            let ext = be32(&b[pos..pos + 4]);
            pos += 4;
            if !assembling {
                ts_field = ext;
            }
        }
        let remaining = if assembling { length as usize - have } else { length as usize };
        let take = remaining.min(self.chunk_size as usize);
        if b.len() < pos + take {
            return Ok(Step::NeedMore);
        }
        if !assembling && take < remaining {
            let budget = 2 * u64::from(self.limits.max_message_size);
            let total = self.in_flight + u64::from(length);
            if total > budget {
                return Err(RtmpError::ReassemblyBudget(total));
            }
        }

        // Commit: the whole chunk is present.
        buf.advance(pos);
        let data = buf.split_to(take);
        let st = self.streams.entry(csid).or_default();
        if !assembling {
            st.timestamp = if fmt == 0 { ts_field } else { st.timestamp.wrapping_add(ts_field) };
            st.delta = ts_field;
            st.length = length;
            st.type_id = type_id;
            st.stream_id = stream_id;
            st.extended = extended;
            if take == remaining {
                return Ok(Step::Message(RawMessage {
                    csid,
                    timestamp: st.timestamp,
                    type_id,
                    stream_id,
                    payload: data.freeze(),
                }));
            }
            self.in_flight += u64::from(length);
            st.assembling = true;
            st.partial = BytesMut::with_capacity((length as usize).min(64 * 1024));
        }
        st.partial.extend_from_slice(&data);
        if st.partial.len() < st.length as usize {
            return Ok(Step::Consumed);
        }
        st.assembling = false;
        self.in_flight = self.in_flight.saturating_sub(u64::from(st.length));
        let payload = std::mem::take(&mut st.partial).freeze();
        Ok(Step::Message(RawMessage {
            csid,
            timestamp: st.timestamp,
            type_id: st.type_id,
            stream_id: st.stream_id,
            payload,
        }))
    }
}

#[cfg(test)]
#[path = "chunk_tests.rs"]
mod tests;
