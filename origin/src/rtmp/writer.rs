//! Chunk stream encoder for the messages the server sends.
//!
//! Every message starts with a type-0 header and continues with type-3 chunks; timestamps
//! at or above 0xFFFFFF use the extended field, repeated on every continuation chunk.

use bytes::{BufMut, BytesMut};

use super::chunk::{DEFAULT_CHUNK_SIZE, EXTENDED_TIMESTAMP};

/// Chunk stream encoder (us to peer).
#[derive(Debug)]
pub struct ChunkEncoder {
    chunk_size: usize,
}

impl Default for ChunkEncoder {
    fn default() -> Self {
        Self::new()
    }
}

impl ChunkEncoder {
    pub fn new() -> Self {
        ChunkEncoder { chunk_size: DEFAULT_CHUNK_SIZE as usize }
    }

    /// Uses `size` for later messages (after a Set Chunk Size was queued); at least 1.
    pub fn set_chunk_size(&mut self, size: u32) {
        self.chunk_size = (size as usize).max(1);
    }

    /// Appends one message as chunks on chunk stream `csid` (2..=65599) to `out`.
    pub fn encode(
        &self,
        csid: u32,
        timestamp: u32,
        type_id: u8,
        stream_id: u32,
        payload: &[u8],
        out: &mut BytesMut,
    ) {
        let extended = timestamp >= EXTENDED_TIMESTAMP;
        let chunks = payload.len().div_ceil(self.chunk_size).max(1);
        out.reserve(payload.len() + 18 + chunks * 7);
        basic_header(0, csid, out);
        let field = timestamp.min(EXTENDED_TIMESTAMP);
        out.put_uint(u64::from(field), 3);
        out.put_uint(payload.len() as u64, 3);
        out.put_u8(type_id);
        out.put_u32_le(stream_id);
        if extended {
            out.put_u32(timestamp);
        }
        let mut rest = payload;
        let mut first = true;
        loop {
            if !first {
                basic_header(3, csid, out);
                if extended {
                    out.put_u32(timestamp);
                }
            }
            first = false;
            let n = rest.len().min(self.chunk_size);
            out.put_slice(&rest[..n]);
            rest = &rest[n..];
            if rest.is_empty() {
                break;
            }
        }
    }
}

/// Writes a basic header for chunk stream `csid` (clamped to 2..=65599).
pub fn basic_header(fmt: u8, csid: u32, out: &mut BytesMut) {
    let csid = csid.clamp(2, 65_599);
    let fmt = fmt << 6;
    if csid < 64 {
        out.put_u8(fmt | csid as u8);
    } else if csid < 320 {
        out.put_u8(fmt);
        out.put_u8((csid - 64) as u8);
    } else {
        let v = csid - 64;
        out.put_u8(fmt | 1);
        out.put_u8((v & 0xff) as u8);
        out.put_u8((v >> 8) as u8);
    }
}
