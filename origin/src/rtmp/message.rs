//! RTMP messages: parsing what the peer sends and building what the server sends.
//!
//! Protocol control messages (set chunk size, abort, acknowledgement, window ack size, set
//! peer bandwidth), user control events, audio/video, AMF0 command and data messages and
//! their AMF3-wrapped forms (types 17 and 15, whose body is one format byte, 0, followed by
//! AMF0), and aggregate messages (split into their audio/video sub-messages).

use bytes::{BufMut, Bytes, BytesMut};

use super::RtmpError;
use super::amf0::{self, Amf0Value};
use super::chunk::RawMessage;

pub const SET_CHUNK_SIZE: u8 = 1;
pub const ABORT: u8 = 2;
pub const ACKNOWLEDGEMENT: u8 = 3;
pub const USER_CONTROL: u8 = 4;
pub const WINDOW_ACK_SIZE: u8 = 5;
pub const SET_PEER_BANDWIDTH: u8 = 6;
pub const AUDIO: u8 = 8;
pub const VIDEO: u8 = 9;
pub const DATA_AMF3: u8 = 15;
pub const COMMAND_AMF3: u8 = 17;
pub const DATA_AMF0: u8 = 18;
pub const COMMAND_AMF0: u8 = 20;
pub const AGGREGATE: u8 = 22;

/// User control event types.
pub const UC_STREAM_BEGIN: u16 = 0;
pub const UC_STREAM_EOF: u16 = 1;
pub const UC_SET_BUFFER_LENGTH: u16 = 3;
pub const UC_PING_REQUEST: u16 = 6;
pub const UC_PING_RESPONSE: u16 = 7;

/// Chunk stream ids the server sends on.
pub const CSID_CONTROL: u32 = 2;
pub const CSID_COMMAND: u32 = 3;
pub const CSID_STREAM: u32 = 5;

/// A parsed incoming message.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    SetChunkSize(u32),
    Abort {
        csid: u32,
    },
    Acknowledgement(u32),
    /// A user control event: its type and first 4-byte argument (0 if absent).
    UserControl {
        event: u16,
        value: u32,
    },
    WindowAckSize(u32),
    SetPeerBandwidth {
        size: u32,
        limit: u8,
    },
    Audio(Bytes),
    Video(Bytes),
    /// Command message values (name, transaction id, command object, arguments...).
    Command(Vec<Amf0Value>),
    /// Data message values (e.g. `@setDataFrame`, `onMetaData`, object).
    Data(Vec<Amf0Value>),
    /// Aggregate message body (see [`split_aggregate`]).
    Aggregate(Bytes),
    /// Types the server ignores (shared objects, AMF3 shared objects, unknown ones).
    Other(u8),
}

fn u32_at(p: &[u8], what: &'static str) -> Result<u32, RtmpError> {
    match p {
        [a, b, c, d, ..] => Ok(u32::from_be_bytes([*a, *b, *c, *d])),
        _ => Err(RtmpError::Protocol(what)),
    }
}

/// Parses a reassembled message; AMF payloads are decoded with `max_depth`.
pub fn parse(raw: &RawMessage, max_depth: usize) -> Result<Message, RtmpError> {
    let p = &raw.payload[..];
    Ok(match raw.type_id {
        SET_CHUNK_SIZE => Message::SetChunkSize(u32_at(p, "short set chunk size")?),
        ABORT => Message::Abort { csid: u32_at(p, "short abort message")? },
        ACKNOWLEDGEMENT => Message::Acknowledgement(u32_at(p, "short acknowledgement")?),
        WINDOW_ACK_SIZE => Message::WindowAckSize(u32_at(p, "short window ack size")?),
        SET_PEER_BANDWIDTH => Message::SetPeerBandwidth {
            size: u32_at(p, "short set peer bandwidth")?,
            limit: p.get(4).copied().unwrap_or(2),
        },
        USER_CONTROL => {
            let [a, b, rest @ ..] = p else {
                return Err(RtmpError::Protocol("short user control message"));
            };
            Message::UserControl {
                event: u16::from_be_bytes([*a, *b]),
                value: u32_at(rest, "short user control message").unwrap_or(0),
            }
        }
        AUDIO => Message::Audio(raw.payload.clone()),
        VIDEO => Message::Video(raw.payload.clone()),
        COMMAND_AMF0 => Message::Command(amf0::decode_all(p, max_depth)?),
        DATA_AMF0 => Message::Data(amf0::decode_all(p, max_depth)?),
        COMMAND_AMF3 => Message::Command(amf0::decode_all(strip_amf3(p)?, max_depth)?),
        DATA_AMF3 => Message::Data(amf0::decode_all(strip_amf3(p)?, max_depth)?),
        AGGREGATE => Message::Aggregate(raw.payload.clone()),
        other => Message::Other(other),
    })
}

/// Body of an AMF3-typed command/data message: format byte 0, then AMF0.
fn strip_amf3(p: &[u8]) -> Result<&[u8], RtmpError> {
    match p {
        [0, rest @ ..] => Ok(rest),
        [] => Ok(p),
        _ => Err(RtmpError::Protocol("AMF3-encoded command body")),
    }
}

/// One audio or video message inside an aggregate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubMessage {
    pub type_id: u8,
    pub timestamp: u32,
    pub payload: Bytes,
}

/// Splits an aggregate body (FLV-tag-like records: type, 24-bit size, 24+8-bit timestamp,
/// 24-bit stream id, data, 32-bit back pointer). Sub-message timestamps are rebased so the
/// first one equals `timestamp` (the aggregate's own).
pub fn split_aggregate(body: &Bytes, timestamp: u32) -> Result<Vec<SubMessage>, RtmpError> {
    let mut out = Vec::new();
    let mut pos = 0usize;
    let mut first_ts = None;
    while pos < body.len() {
        let h = body.get(pos..pos + 11).ok_or(RtmpError::Protocol("truncated aggregate header"))?;
        let size = (usize::from(h[1]) << 16) | (usize::from(h[2]) << 8) | usize::from(h[3]);
        let ts = u32::from_be_bytes([h[7], h[4], h[5], h[6]]);
        let start = pos + 11;
        let end = start
            .checked_add(size)
            .filter(|&e| e <= body.len())
            .ok_or(RtmpError::Protocol("aggregate record beyond its message"))?;
        let base = *first_ts.get_or_insert(ts);
        out.push(SubMessage {
            type_id: h[0],
            timestamp: timestamp.wrapping_add(ts.wrapping_sub(base)),
            payload: body.slice(start..end),
        });
        pos = end.saturating_add(4);
    }
    Ok(out)
}

/// A message for the [`super::writer::ChunkEncoder`].
#[derive(Debug, Clone, PartialEq)]
pub struct Outgoing {
    pub csid: u32,
    pub type_id: u8,
    pub stream_id: u32,
    pub payload: Bytes,
}

fn control(type_id: u8, payload: &[u8]) -> Outgoing {
    Outgoing { csid: CSID_CONTROL, type_id, stream_id: 0, payload: Bytes::copy_from_slice(payload) }
}

pub fn set_chunk_size(size: u32) -> Outgoing {
    control(SET_CHUNK_SIZE, &(size & 0x7fff_ffff).to_be_bytes())
}

pub fn window_ack_size(size: u32) -> Outgoing {
    control(WINDOW_ACK_SIZE, &size.to_be_bytes())
}

pub fn acknowledgement(sequence: u32) -> Outgoing {
    control(ACKNOWLEDGEMENT, &sequence.to_be_bytes())
}

/// Set Peer Bandwidth with limit type `limit` (0 hard, 1 soft, 2 dynamic).
pub fn set_peer_bandwidth(size: u32, limit: u8) -> Outgoing {
    let mut p = size.to_be_bytes().to_vec();
    p.push(limit);
    control(SET_PEER_BANDWIDTH, &p)
}

pub fn user_control(event: u16, value: u32) -> Outgoing {
    let mut p = BytesMut::with_capacity(6);
    p.put_u16(event);
    p.put_u32(value);
    control(USER_CONTROL, &p)
}

/// An AMF0 command message on `stream_id` (command chunk stream for stream 0, the stream
/// chunk stream otherwise).
pub fn command(stream_id: u32, values: &[Amf0Value]) -> Outgoing {
    Outgoing {
        csid: if stream_id == 0 { CSID_COMMAND } else { CSID_STREAM },
        type_id: COMMAND_AMF0,
        stream_id,
        payload: amf0::encode_all(values).freeze(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(type_id: u8, payload: &[u8]) -> RawMessage {
        RawMessage { csid: 3, timestamp: 0, type_id, stream_id: 0, payload: Bytes::copy_from_slice(payload) }
    }

    #[test]
    fn parses_control_messages() {
        assert_eq!(parse(&raw(1, &[0, 0, 16, 0]), 4).unwrap(), Message::SetChunkSize(4096));
        assert_eq!(
            parse(&raw(4, &[0, 6, 0, 0, 0, 9]), 4).unwrap(),
            Message::UserControl { event: 6, value: 9 }
        );
        assert!(matches!(parse(&raw(1, &[0, 0]), 4), Err(RtmpError::Protocol(_))));
        assert!(matches!(parse(&raw(4, &[0]), 4), Err(RtmpError::Protocol(_))));
    }

    #[test]
    fn amf3_wrapped_command() {
        let mut p = vec![0u8];
        p.extend_from_slice(&amf0::encode_all(&[Amf0Value::string("publish")]));
        assert_eq!(
            parse(&raw(COMMAND_AMF3, &p), 4).unwrap(),
            Message::Command(vec![Amf0Value::string("publish")])
        );
        assert!(parse(&raw(COMMAND_AMF3, &[0x11, 0]), 4).is_err());
    }

    #[test]
    fn aggregate_split_and_rebased() {
        let mut body = BytesMut::new();
        for (t, ts) in [(9u8, 1000u32), (8, 1020)] {
            body.put_u8(t);
            body.put_uint(2, 3);
            body.put_uint(u64::from(ts & 0xff_ffff), 3);
            body.put_u8((ts >> 24) as u8);
            body.put_uint(0, 3);
            body.put_slice(&[t, t]);
            body.put_u32(13);
        }
        let subs = split_aggregate(&body.freeze(), 5000).unwrap();
        assert_eq!(subs.len(), 2);
        assert_eq!((subs[0].type_id, subs[0].timestamp), (9, 5000));
        assert_eq!((subs[1].type_id, subs[1].timestamp), (8, 5020));
        let bad = Bytes::from_static(&[9, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0]);
        assert!(split_aggregate(&bad, 0).is_err());
    }
}
