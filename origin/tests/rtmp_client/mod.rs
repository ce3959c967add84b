//! A scripted RTMP client for the session tests: builds the bytes a publisher (ffmpeg,
//! OBS, GStreamer) sends and decodes what the server answers.

#![allow(dead_code)]

use bytes::{BufMut, BytesMut};
use skyrelay_origin::rtmp::amf0::{self, Amf0Value};
use skyrelay_origin::rtmp::chunk::{ChunkDecoder, DecoderLimits, RawMessage};
use skyrelay_origin::rtmp::handshake::PACKET_LEN;
use skyrelay_origin::rtmp::message;
use skyrelay_origin::rtmp::writer::{ChunkEncoder, basic_header};
use skyrelay_origin::rtmp::{RtmpError, ServerSession, SessionConfig, SessionEvent};

/// C0 + C1 as librtmp sends it (version 3, time, zero, filler).
pub fn c0c1() -> Vec<u8> {
    let mut v = vec![3u8];
    v.extend((0..PACKET_LEN).map(|i| (i * 31 % 251) as u8));
    v
}

pub fn c2() -> Vec<u8> {
    vec![0x5a; PACKET_LEN]
}

/// Hand-built chunk: basic header, the message header fields of `fmt` (timestamp or delta,
/// length, type, stream id), optional extended timestamp, payload.
pub fn chunk(fmt: u8, csid: u32, fields: (u32, u32, u8, u32), ext: Option<u32>, payload: &[u8]) -> Vec<u8> {
    let (ts, len, type_id, sid) = fields;
    let mut b = BytesMut::new();
    basic_header(fmt, csid, &mut b);
    if fmt <= 2 {
        b.put_uint(u64::from(ts), 3);
    }
    if fmt <= 1 {
        b.put_uint(u64::from(len), 3);
        b.put_u8(type_id);
    }
    if fmt == 0 {
        b.put_u32_le(sid);
    }
    if let Some(e) = ext {
        b.put_u32(e);
    }
    b.put_slice(payload);
    b.to_vec()
}

pub fn s(v: &str) -> Amf0Value {
    Amf0Value::string(v)
}

pub fn n(v: f64) -> Amf0Value {
    Amf0Value::Number(v)
}

/// Client side: an encoder for what it sends, a decoder for what the server answers.
pub struct Client {
    pub enc: ChunkEncoder,
    pub wire: Vec<u8>,
    dec: ChunkDecoder,
    server_bytes: usize,
    pending: BytesMut,
}

impl Default for Client {
    fn default() -> Self {
        Self::new()
    }
}

impl Client {
    /// A client whose wire already holds C0, C1 and C2.
    pub fn new() -> Self {
        let mut wire = c0c1();
        wire.extend(c2());
        Client {
            enc: ChunkEncoder::new(),
            wire,
            dec: ChunkDecoder::new(DecoderLimits {
                max_chunk_size: 1 << 24,
                max_message_size: 1 << 24,
                max_chunk_streams: 64,
            }),
            server_bytes: 0,
            pending: BytesMut::new(),
        }
    }

    pub fn message(&mut self, csid: u32, ts: u32, type_id: u8, sid: u32, payload: &[u8]) {
        let mut b = BytesMut::new();
        self.enc.encode(csid, ts, type_id, sid, payload, &mut b);
        self.wire.extend_from_slice(&b);
    }

    pub fn raw(&mut self, bytes: &[u8]) {
        self.wire.extend_from_slice(bytes);
    }

    /// Sends Set Chunk Size and uses the new size from then on.
    pub fn set_chunk_size(&mut self, size: u32) {
        self.message(2, 0, message::SET_CHUNK_SIZE, 0, &size.to_be_bytes());
        self.enc.set_chunk_size(size);
    }

    pub fn command(&mut self, sid: u32, values: &[Amf0Value]) {
        let payload = amf0::encode_all(values);
        self.message(if sid == 0 { 3 } else { 8 }, 0, message::COMMAND_AMF0, sid, &payload);
    }

    pub fn connect(&mut self, app: &str) {
        self.command(
            0,
            &[
                s("connect"),
                n(1.0),
                Amf0Value::object([
                    ("app", s(app)),
                    ("type", s("nonprivate")),
                    ("flashVer", s("FMLE/3.0 (compatible; FMSc/1.0)")),
                    ("tcUrl", s(&format!("rtmp://127.0.0.1:1935/{app}"))),
                ]),
            ],
        );
    }

    /// releaseStream, FCPublish, createStream, publish (stream 1), without waiting for
    /// replies, as librtmp pipelines them.
    pub fn publish(&mut self, key: &str) {
        self.command(0, &[s("releaseStream"), n(2.0), Amf0Value::Null, s(key)]);
        self.command(0, &[s("FCPublish"), n(3.0), Amf0Value::Null, s(key)]);
        self.command(0, &[s("createStream"), n(4.0), Amf0Value::Null]);
        self.command(1, &[s("publish"), n(5.0), Amf0Value::Null, s(key), s("live")]);
    }

    pub fn take(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.wire)
    }

    /// Decodes server output: skips S0/S1/S2, follows the server's Set Chunk Size.
    pub fn read(&mut self, bytes: &[u8]) -> Vec<RawMessage> {
        let hs = 1 + 2 * PACKET_LEN;
        let skip = hs.saturating_sub(self.server_bytes).min(bytes.len());
        self.server_bytes += bytes.len();
        self.pending.extend_from_slice(&bytes[skip..]);
        let mut out = Vec::new();
        while let Some(m) = self.dec.decode(&mut self.pending).expect("server output decodes") {
            if m.type_id == message::SET_CHUNK_SIZE {
                let size = u32::from_be_bytes([m.payload[0], m.payload[1], m.payload[2], m.payload[3]]);
                self.dec.set_chunk_size(size).expect("server chunk size");
            }
            out.push(m);
        }
        out
    }
}

/// A server session with its client; `pump` moves the client's bytes over in pieces.
pub struct Harness {
    pub session: ServerSession,
    pub client: Client,
    pub replies: Vec<RawMessage>,
    pub events: Vec<SessionEvent>,
}

impl Harness {
    pub fn new(cfg: SessionConfig) -> Self {
        Harness {
            session: ServerSession::new(cfg),
            client: Client::new(),
            replies: Vec::new(),
            events: Vec::new(),
        }
    }

    /// Feeds the client's pending bytes in pieces of `piece` bytes, draining after each.
    pub fn pump_by(&mut self, piece: usize) -> Result<(), RtmpError> {
        let wire = self.client.take();
        for part in wire.chunks(piece.max(1)) {
            let r = self.session.handle_input(part);
            self.drain();
            r?;
        }
        Ok(())
    }

    pub fn pump(&mut self) -> Result<(), RtmpError> {
        self.pump_by(usize::MAX)
    }

    pub fn drain(&mut self) {
        while let Some(out) = self.session.poll_output() {
            let msgs = self.client.read(&out);
            self.replies.extend(msgs);
        }
        while let Some(ev) = self.session.poll_event() {
            self.events.push(ev);
        }
    }

    /// Connects, publishes `key` and accepts it; clears replies and events.
    pub fn publishing(cfg: SessionConfig, key: &str) -> Self {
        let mut h = Harness::new(cfg);
        h.client.connect("live");
        h.client.publish(key);
        h.pump().expect("publish script");
        h.session.accept_publish();
        h.drain();
        h.replies.clear();
        h.events.clear();
        h
    }

    /// Command replies as (name, values after the name).
    pub fn commands(&self) -> Vec<(String, Vec<Amf0Value>)> {
        self.replies
            .iter()
            .filter(|m| m.type_id == message::COMMAND_AMF0)
            .map(|m| {
                let mut v = amf0::decode_all(&m.payload, 16).expect("reply decodes");
                let name = v.remove(0).as_str().unwrap_or_default().to_owned();
                (name, v)
            })
            .collect()
    }
}

/// The `code` of an `onStatus`/`_result` info object (the last value).
pub fn code(values: &[Amf0Value]) -> Option<&str> {
    values.last()?.get("code")?.as_str()
}
