//! Sans-IO framing of the relay protocol (`docs/protocol.md`, sections 2–5).
//!
//! Every frame is `type:u8 length:varint payload`. Control frames travel on the control
//! stream ([`encode_control`] / [`decode_control`]); media frames on unidirectional streams
//! ([`encode_stream_frame`], [`encode_chunk_header`] / [`StreamDecoder`]). Decoders take a
//! `BytesMut` holding what has been read so far, consume one frame when it is complete and
//! return `Ok(None)` when more bytes are needed. A frame whose header shows an unknown type
//! or a length above its type's maximum is rejected before its payload arrives.

use bytes::{Buf, BufMut, Bytes, BytesMut};

mod types;
mod wire;

pub use types::{
    CloseCode, CodecError, ControlMessage, ErrorCode, FetchHeader, InitSegment, PartHeader, PartTrailer,
    Position, ResetCode, Start, StreamFrame,
};
use wire::Reader;
pub use wire::{read_varint, write_varint};

/// The ALPN of this protocol version.
pub const ALPN: &[u8] = b"skyrelay-relay/1";

/// Maximum length of a channel name.
pub const MAX_CHANNEL: usize = 128;
/// Maximum length of a rendition name.
pub const MAX_RENDITION: usize = 64;
/// Maximum length of a codecs string.
pub const MAX_CODECS: usize = 256;
/// Maximum length of an error message.
pub const MAX_ERROR_MESSAGE: usize = 512;
/// Maximum size of an init segment.
pub const MAX_INIT: usize = 4 << 20;
/// Maximum size of one chunk.
pub const MAX_CHUNK: usize = 8 << 20;
/// Maximum number of parts in one fetched segment.
pub const MAX_FETCH_PARTS: u32 = 1024;

/// Frame type bytes.
mod ty {
    pub const SUBSCRIBE: u8 = 0x01;
    pub const SUBSCRIBE_OK: u8 = 0x02;
    pub const ERROR: u8 = 0x03;
    pub const UNSUBSCRIBE: u8 = 0x04;
    pub const FETCH: u8 = 0x05;
    pub const ANNOUNCE: u8 = 0x06;
    pub const ENDED: u8 = 0x07;
    pub const GAP: u8 = 0x08;
    pub const PART_HEADER: u8 = 0x10;
    pub const CHUNK: u8 = 0x11;
    pub const PART_TRAILER: u8 = 0x12;
    pub const FETCH_HEADER: u8 = 0x13;
}

/// Maximum payload length of a frame type, `None` for an unknown type.
fn max_payload(t: u8) -> Option<usize> {
    Some(match t {
        ty::SUBSCRIBE => 512,
        ty::SUBSCRIBE_OK | ty::ANNOUNCE => MAX_INIT + 4096,
        ty::ERROR => 1024,
        ty::UNSUBSCRIBE => 16,
        ty::FETCH | ty::ENDED | ty::FETCH_HEADER => 32,
        ty::GAP => 48,
        ty::PART_HEADER => 64,
        ty::CHUNK => MAX_CHUNK,
        ty::PART_TRAILER => 16,
        _ => return None,
    })
}

/// Reads a complete frame from `buf`: `Ok(None)` when more bytes are needed.
fn take_frame(buf: &mut BytesMut) -> Result<Option<(u8, Bytes)>, CodecError> {
    let Some(&t) = buf.first() else { return Ok(None) };
    let max = max_payload(t).ok_or(CodecError::UnknownType(t))?;
    let Some((len, n)) = read_varint(&buf[1..]) else { return Ok(None) };
    if len > max as u64 {
        return Err(CodecError::TooLarge { ty: t, len, max });
    }
    let len = len as usize;
    if buf.len() < 1 + n + len {
        buf.reserve(1 + n + len - buf.len());
        return Ok(None);
    }
    buf.advance(1 + n);
    Ok(Some((t, buf.split_to(len).freeze())))
}

/// Appends a frame header and payload; errors if the payload exceeds the type's maximum.
fn put_frame(t: u8, payload: &[u8], out: &mut BytesMut) -> Result<(), CodecError> {
    let max = max_payload(t).ok_or(CodecError::UnknownType(t))?;
    if payload.len() > max {
        return Err(CodecError::TooLarge { ty: t, len: payload.len() as u64, max });
    }
    out.put_u8(t);
    write_varint(payload.len() as u64, out);
    out.put_slice(payload);
    Ok(())
}

/// Decodes one control message from `buf`, consuming it; `Ok(None)` when incomplete.
pub fn decode_control(buf: &mut BytesMut) -> Result<Option<ControlMessage>, CodecError> {
    let Some((t, payload)) = take_frame(buf)? else { return Ok(None) };
    let mut r = Reader::new(payload);
    let msg = match t {
        ty::SUBSCRIBE => {
            let id = r.varint()?;
            let channel = r.string(MAX_CHANNEL)?;
            let rendition = r.string(MAX_RENDITION)?;
            let start = match r.u8()? {
                0 => Start::Live { back: r.varint()? },
                1 => Start::FromMsn(r.varint()?),
                _ => return Err(CodecError::Malformed("start kind")),
            };
            ControlMessage::Subscribe { id, channel, rendition, start }
        }
        ty::SUBSCRIBE_OK => {
            let id = r.varint()?;
            let init = match r.u8()? {
                0 => None,
                1 => Some(r.init()?),
                _ => return Err(CodecError::Malformed("init presence")),
            };
            let start_msn = r.varint()?;
            let latest = match r.u8()? {
                0 => None,
                1 => Some(r.position()?),
                _ => return Err(CodecError::Malformed("latest presence")),
            };
            let target_duration = r.f64()?;
            let part_target = r.f64()?;
            ControlMessage::SubscribeOk { id, init, start_msn, latest, target_duration, part_target }
        }
        ty::ERROR => ControlMessage::Error {
            id: r.varint()?,
            code: ErrorCode::from_wire(r.varint()?),
            message: r.string(MAX_ERROR_MESSAGE)?,
        },
        ty::UNSUBSCRIBE => ControlMessage::Unsubscribe { id: r.varint()? },
        ty::FETCH => ControlMessage::Fetch { id: r.varint()?, subscription: r.varint()?, msn: r.varint()? },
        ty::ANNOUNCE => ControlMessage::Announce { subscription: r.varint()?, init: r.init()? },
        ty::ENDED => ControlMessage::Ended {
            subscription: r.varint()?,
            last: match r.u8()? {
                0 => None,
                1 => Some(r.position()?),
                _ => return Err(CodecError::Malformed("last presence")),
            },
        },
        ty::GAP => {
            ControlMessage::Gap { subscription: r.varint()?, first: r.position()?, last: r.position()? }
        }
        other => return Err(CodecError::UnknownType(other)),
    };
    r.end()?;
    Ok(Some(msg))
}

/// Appends the encoding of `msg` to `out`. Fails (leaving `out` unchanged) when a field is
/// above its maximum, so that nothing the peer would reject is ever sent.
pub fn encode_control(msg: &ControlMessage, out: &mut BytesMut) -> Result<(), CodecError> {
    let mut p = BytesMut::new();
    let t = match msg {
        ControlMessage::Subscribe { id, channel, rendition, start } => {
            write_varint(*id, &mut p);
            wire::put_string(channel, MAX_CHANNEL, &mut p)?;
            wire::put_string(rendition, MAX_RENDITION, &mut p)?;
            match start {
                Start::Live { back } => {
                    p.put_u8(0);
                    write_varint(*back, &mut p);
                }
                Start::FromMsn(msn) => {
                    p.put_u8(1);
                    write_varint(*msn, &mut p);
                }
            }
            ty::SUBSCRIBE
        }
        ControlMessage::SubscribeOk { id, init, start_msn, latest, target_duration, part_target } => {
            write_varint(*id, &mut p);
            match init {
                None => p.put_u8(0),
                Some(init) => {
                    p.put_u8(1);
                    wire::put_init(init, &mut p)?;
                }
            }
            write_varint(*start_msn, &mut p);
            match latest {
                None => p.put_u8(0),
                Some(pos) => {
                    p.put_u8(1);
                    wire::put_position(pos, &mut p);
                }
            }
            wire::put_f64(*target_duration, &mut p)?;
            wire::put_f64(*part_target, &mut p)?;
            ty::SUBSCRIBE_OK
        }
        ControlMessage::Error { id, code, message } => {
            write_varint(*id, &mut p);
            write_varint(code.to_wire(), &mut p);
            wire::put_string(message, MAX_ERROR_MESSAGE, &mut p)?;
            ty::ERROR
        }
        ControlMessage::Unsubscribe { id } => {
            write_varint(*id, &mut p);
            ty::UNSUBSCRIBE
        }
        ControlMessage::Fetch { id, subscription, msn } => {
            for v in [id, subscription, msn] {
                write_varint(*v, &mut p);
            }
            ty::FETCH
        }
        ControlMessage::Announce { subscription, init } => {
            write_varint(*subscription, &mut p);
            wire::put_init(init, &mut p)?;
            ty::ANNOUNCE
        }
        ControlMessage::Ended { subscription, last } => {
            write_varint(*subscription, &mut p);
            match last {
                None => p.put_u8(0),
                Some(pos) => {
                    p.put_u8(1);
                    wire::put_position(pos, &mut p);
                }
            }
            ty::ENDED
        }
        ControlMessage::Gap { subscription, first, last } => {
            write_varint(*subscription, &mut p);
            wire::put_position(first, &mut p);
            wire::put_position(last, &mut p);
            ty::GAP
        }
    };
    put_frame(t, &p, out)
}

/// Appends the header of a CHUNK frame of `len` bytes; the caller sends the bytes after it
/// (so chunks are never copied).
pub fn encode_chunk_header(len: usize, out: &mut BytesMut) -> Result<(), CodecError> {
    if len > MAX_CHUNK {
        return Err(CodecError::TooLarge { ty: ty::CHUNK, len: len as u64, max: MAX_CHUNK });
    }
    out.put_u8(ty::CHUNK);
    write_varint(len as u64, out);
    Ok(())
}

/// Appends a media stream frame (a CHUNK is copied: prefer [`encode_chunk_header`]).
pub fn encode_stream_frame(frame: &StreamFrame, out: &mut BytesMut) -> Result<(), CodecError> {
    let mut p = BytesMut::new();
    let t = match frame {
        StreamFrame::FetchHeader(h) => {
            write_varint(h.request, &mut p);
            write_varint(h.msn, &mut p);
            write_varint(u64::from(h.parts), &mut p);
            ty::FETCH_HEADER
        }
        StreamFrame::PartHeader(h) => {
            write_varint(h.subscription, &mut p);
            write_varint(h.msn, &mut p);
            write_varint(u64::from(h.part), &mut p);
            p.put_u8(u8::from(h.independent));
            write_varint(h.origin_ms, &mut p);
            write_varint(u64::from(h.init_id), &mut p);
            ty::PART_HEADER
        }
        StreamFrame::Chunk(bytes) => {
            encode_chunk_header(bytes.len(), out)?;
            out.put_slice(bytes);
            return Ok(());
        }
        StreamFrame::PartTrailer(t) => {
            wire::put_f64(t.duration, &mut p)?;
            p.put_u8(u8::from(t.ends_segment));
            ty::PART_TRAILER
        }
    };
    put_frame(t, &p, out)
}

/// Where a [`StreamDecoder`] is in the stream grammar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Start,
    /// Inside a part; `fetch` holds (msn, parts left after this one) in a fetch stream.
    InPart {
        fetch: Option<(u64, u32)>,
        part: u32,
    },
    /// Between parts of a fetch stream: the next part header must be `(msn, next)`.
    Between {
        msn: u64,
        next: u32,
        left: u32,
    },
    Done,
}

/// Decodes a unidirectional media stream and checks its grammar
/// (`PART_HEADER CHUNK* PART_TRAILER` or `FETCH_HEADER (PART_HEADER CHUNK* PART_TRAILER)+`).
#[derive(Debug, Clone)]
pub struct StreamDecoder {
    state: State,
}

impl Default for StreamDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl StreamDecoder {
    /// A decoder at the start of a stream.
    pub fn new() -> Self {
        Self { state: State::Start }
    }

    /// Decodes the next frame from `buf`, consuming it; `Ok(None)` when incomplete.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<StreamFrame>, CodecError> {
        let Some(&t) = buf.first() else { return Ok(None) };
        if !matches!(t, ty::PART_HEADER | ty::CHUNK | ty::PART_TRAILER | ty::FETCH_HEADER) {
            return Err(CodecError::UnknownType(t));
        }
        let Some((t, payload)) = take_frame(buf)? else { return Ok(None) };
        let frame = match t {
            ty::CHUNK => StreamFrame::Chunk(payload),
            _ => {
                let mut r = Reader::new(payload);
                let f = match t {
                    ty::FETCH_HEADER => StreamFrame::FetchHeader(FetchHeader {
                        request: r.varint()?,
                        msn: r.varint()?,
                        parts: r.u32()?,
                    }),
                    ty::PART_HEADER => StreamFrame::PartHeader(PartHeader {
                        subscription: r.varint()?,
                        msn: r.varint()?,
                        part: r.u32()?,
                        independent: r.flag()?,
                        origin_ms: r.varint()?,
                        init_id: r.u32()?,
                    }),
                    _ => {
                        StreamFrame::PartTrailer(PartTrailer { duration: r.f64()?, ends_segment: r.flag()? })
                    }
                };
                r.end()?;
                f
            }
        };
        self.advance(&frame)?;
        Ok(Some(frame))
    }

    fn advance(&mut self, frame: &StreamFrame) -> Result<(), CodecError> {
        self.state = match (self.state, frame) {
            (State::Start, StreamFrame::PartHeader(h)) => State::InPart { fetch: None, part: h.part },
            (State::Start, StreamFrame::FetchHeader(h)) => {
                if h.parts == 0 || h.parts > MAX_FETCH_PARTS {
                    return Err(CodecError::Malformed("fetch part count"));
                }
                State::Between { msn: h.msn, next: 0, left: h.parts }
            }
            (State::Between { msn, next, left }, StreamFrame::PartHeader(h)) => {
                if h.msn != msn || h.part != next {
                    return Err(CodecError::BadOrder("fetch part out of sequence"));
                }
                State::InPart { fetch: Some((msn, left - 1)), part: h.part }
            }
            (s @ State::InPart { .. }, StreamFrame::Chunk(_)) => s,
            (State::InPart { fetch: None, .. }, StreamFrame::PartTrailer(_)) => State::Done,
            (State::InPart { fetch: Some((msn, left)), part }, StreamFrame::PartTrailer(t)) => {
                match (left, t.ends_segment) {
                    (0, true) => State::Done,
                    (0, false) => return Err(CodecError::BadOrder("fetched segment does not end")),
                    (_, false) => State::Between { msn, next: part + 1, left },
                    (_, true) => return Err(CodecError::BadOrder("fetched segment ends early")),
                }
            }
            _ => return Err(CodecError::BadOrder("unexpected media frame")),
        };
        Ok(())
    }

    /// Whether the stream so far is complete (checked when the peer finishes the stream).
    pub fn finish(&self) -> Result<(), CodecError> {
        match self.state {
            State::Done => Ok(()),
            _ => Err(CodecError::BadOrder("stream finished early")),
        }
    }
}

#[cfg(test)]
mod tests;
