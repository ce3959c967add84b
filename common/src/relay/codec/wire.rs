//! Field encodings of the relay codec: QUIC varints, strings, `f64`, positions, init
//! segments, and a bounds-checked payload reader.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::{CodecError, InitSegment, MAX_CODECS, MAX_INIT, MAX_RENDITION, Position};
use crate::media::RenditionInfo;

/// Largest value a QUIC varint holds.
pub const VARINT_MAX: u64 = (1 << 62) - 1;

/// Reads a QUIC varint from the start of `buf`: `(value, bytes used)`, or `None` when
/// `buf` is too short.
pub fn read_varint(buf: &[u8]) -> Option<(u64, usize)> {
    let first = *buf.first()?;
    let len = 1usize << (first >> 6);
    if buf.len() < len {
        return None;
    }
    let mut v = u64::from(first & 0x3f);
    for b in &buf[1..len] {
        v = (v << 8) | u64::from(*b);
    }
    Some((v, len))
}

/// Appends `v` as a QUIC varint in its shortest form. Values above [`VARINT_MAX`] are
/// clamped to it (no field of the protocol gets near it).
pub fn write_varint(v: u64, out: &mut BytesMut) {
    let v = v.min(VARINT_MAX);
    if v < 1 << 6 {
        out.put_u8(v as u8);
    } else if v < 1 << 14 {
        out.put_u16(0x4000 | v as u16);
    } else if v < 1 << 30 {
        out.put_u32(0x8000_0000 | v as u32);
    } else {
        out.put_u64(0xc000_0000_0000_0000 | v);
    }
}

pub(super) fn put_string(s: &str, max: usize, out: &mut BytesMut) -> Result<(), CodecError> {
    put_bytes(s.as_bytes(), max, out)
}

fn put_bytes(b: &[u8], max: usize, out: &mut BytesMut) -> Result<(), CodecError> {
    if b.len() > max {
        return Err(CodecError::TooLarge { ty: 0, len: b.len() as u64, max });
    }
    write_varint(b.len() as u64, out);
    out.put_slice(b);
    Ok(())
}

pub(super) fn put_f64(v: f64, out: &mut BytesMut) -> Result<(), CodecError> {
    if !v.is_finite() || v < 0.0 {
        return Err(CodecError::Malformed("f64 not finite or negative"));
    }
    out.put_u64(v.to_bits());
    Ok(())
}

pub(super) fn put_position(p: &Position, out: &mut BytesMut) {
    write_varint(p.msn, out);
    write_varint(u64::from(p.part), out);
}

pub(super) fn put_init(init: &InitSegment, out: &mut BytesMut) -> Result<(), CodecError> {
    write_varint(u64::from(init.id), out);
    let info = &init.info;
    put_string(&info.name, MAX_RENDITION, out)?;
    put_string(&info.codecs, MAX_CODECS, out)?;
    write_varint(info.bandwidth, out);
    let mut flags = 0u8;
    if info.has_video {
        flags |= 0x01;
    }
    if info.has_audio {
        flags |= 0x02;
    }
    if info.resolution.is_some() {
        flags |= 0x04;
    }
    if info.frame_rate.is_some() {
        flags |= 0x08;
    }
    out.put_u8(flags);
    if let Some((w, h)) = info.resolution {
        write_varint(u64::from(w), out);
        write_varint(u64::from(h), out);
    }
    if let Some(fr) = info.frame_rate {
        put_f64(fr, out)?;
    }
    put_bytes(&init.bytes, MAX_INIT, out)
}

/// Reads the fields of one frame payload, never past its end.
pub(super) struct Reader {
    buf: Bytes,
}

impl Reader {
    pub(super) fn new(buf: Bytes) -> Self {
        Self { buf }
    }

    pub(super) fn varint(&mut self) -> Result<u64, CodecError> {
        let (v, n) = read_varint(&self.buf).ok_or(CodecError::Malformed("truncated varint"))?;
        self.buf.advance(n);
        Ok(v)
    }

    pub(super) fn u32(&mut self) -> Result<u32, CodecError> {
        u32::try_from(self.varint()?).map_err(|_| CodecError::Malformed("value above u32"))
    }

    pub(super) fn u8(&mut self) -> Result<u8, CodecError> {
        if self.buf.is_empty() {
            return Err(CodecError::Malformed("truncated byte"));
        }
        Ok(self.buf.get_u8())
    }

    pub(super) fn flag(&mut self) -> Result<bool, CodecError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(CodecError::Malformed("flags")),
        }
    }

    pub(super) fn f64(&mut self) -> Result<f64, CodecError> {
        if self.buf.len() < 8 {
            return Err(CodecError::Malformed("truncated f64"));
        }
        let v = f64::from_bits(self.buf.get_u64());
        if !v.is_finite() || v < 0.0 {
            return Err(CodecError::Malformed("f64 not finite or negative"));
        }
        Ok(v)
    }

    fn bytes(&mut self, max: usize) -> Result<Bytes, CodecError> {
        let len = self.varint()?;
        if len > max as u64 {
            return Err(CodecError::TooLarge { ty: 0, len, max });
        }
        let len = len as usize;
        if self.buf.len() < len {
            return Err(CodecError::Malformed("truncated bytes"));
        }
        Ok(self.buf.split_to(len))
    }

    pub(super) fn string(&mut self, max: usize) -> Result<String, CodecError> {
        let b = self.bytes(max)?;
        String::from_utf8(b.to_vec()).map_err(|_| CodecError::Malformed("string not UTF-8"))
    }

    pub(super) fn position(&mut self) -> Result<Position, CodecError> {
        Ok(Position { msn: self.varint()?, part: self.u32()? })
    }

    pub(super) fn init(&mut self) -> Result<InitSegment, CodecError> {
        let id = self.u32()?;
        let name = self.string(MAX_RENDITION)?;
        let codecs = self.string(MAX_CODECS)?;
        let bandwidth = self.varint()?;
        let flags = self.u8()?;
        if flags & !0x0f != 0 {
            return Err(CodecError::Malformed("rendition flags"));
        }
        let resolution = if flags & 0x04 != 0 { Some((self.u32()?, self.u32()?)) } else { None };
        let frame_rate = if flags & 0x08 != 0 { Some(self.f64()?) } else { None };
        let info = RenditionInfo {
            name,
            codecs,
            bandwidth,
            resolution,
            frame_rate,
            has_video: flags & 0x01 != 0,
            has_audio: flags & 0x02 != 0,
        };
        Ok(InitSegment { id, info, bytes: self.bytes(MAX_INIT)? })
    }

    /// The payload must be fully consumed.
    pub(super) fn end(&self) -> Result<(), CodecError> {
        if self.buf.is_empty() { Ok(()) } else { Err(CodecError::Malformed("trailing bytes")) }
    }
}
