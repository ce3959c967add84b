//! [`ServerSession`]: one RTMP connection, server side, as a sans-IO state machine.
//!
//! Bytes from the socket go into [`ServerSession::handle_input`]; the application then
//! drains [`ServerSession::poll_event`] and [`ServerSession::poll_output`] (bytes to write).
//! Input is consumed as it arrives: the session keeps at most one incomplete handshake
//! packet or chunk, plus partially received messages (bounded by the chunk decoder).
//! Pending events and output are bounded too ([`MAX_PENDING_EVENTS`],
//! [`MAX_PENDING_OUTPUT`]): a caller that does not drain them gets [`RtmpError::Backlog`].
//!
//! Closing: after [`ServerSession::reject_publish`] (or a publish without a name) the
//! session is closing: [`ServerSession::is_closing`] turns true, the error status is in
//! the output, and every later `handle_input` returns [`RtmpError::Closed`]. The caller
//! flushes the output and closes the connection. After any error from `handle_input` the
//! session is dead the same way.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};

use super::chunk::{ChunkDecoder, DecoderLimits, RawMessage};
use super::events::{SessionEvent, StreamMetadata};
use super::handshake::Handshake;
use super::message::{self, Message, Outgoing};
use super::writer::ChunkEncoder;
use super::{RtmpError, SessionConfig};
use crate::rtmp::amf0::Amf0Value;

/// Most events queued between two drains.
pub const MAX_PENDING_EVENTS: usize = 65_536;
/// Most output bytes queued between two drains.
pub const MAX_PENDING_OUTPUT: usize = 1024 * 1024;
/// Most streams one connection may create.
pub const MAX_STREAMS: usize = 8;

/// Counters of one session, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SessionStats {
    /// Bytes received (handshake included).
    pub bytes_in: u64,
    /// Bytes handed out by `poll_output`.
    pub bytes_out: u64,
    /// Complete messages received.
    pub messages_in: u64,
    /// Messages queued for sending.
    pub messages_out: u64,
    pub video_messages: u64,
    pub audio_messages: u64,
    /// Payload bytes of delivered audio and video events.
    pub media_bytes: u64,
    /// Audio/video messages dropped (not publishing yet, or empty).
    pub dropped_messages: u64,
    /// Messages of types or commands the server ignores.
    pub ignored_messages: u64,
    /// Acknowledgements sent.
    pub acks_sent: u64,
    /// Chunk stream ids in use.
    pub chunk_streams: usize,
    /// Bytes held inside the session (incomplete input, partial messages, pending output).
    pub buffered_bytes: usize,
}

/// Publish state of the connection (one publish at a time).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Publish {
    Idle,
    Pending { stream_id: u32 },
    Publishing { stream_id: u32 },
}

/// The server side of one RTMP connection.
pub struct ServerSession {
    pub(super) cfg: SessionConfig,
    handshake: Handshake,
    input: BytesMut,
    output: BytesMut,
    events: VecDeque<SessionEvent>,
    decoder: ChunkDecoder,
    pub(super) encoder: ChunkEncoder,
    /// `Some` once connected.
    pub(super) app: Option<String>,
    pub(super) streams: Vec<u32>,
    pub(super) next_stream_id: u32,
    pub(super) publish: Publish,
    pub(super) closing: bool,
    failed: bool,
    pub(super) stats: SessionStats,
    peer_window: Option<u32>,
    /// Metadata last reported for the current publish (repeats are not reported again).
    pub(super) last_metadata: Option<StreamMetadata>,
    acked_at: u64,
}

impl std::fmt::Debug for ServerSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerSession")
            .field("app", &self.app)
            .field("publish", &self.publish)
            .field("closing", &self.is_closing())
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl ServerSession {
    pub fn new(cfg: SessionConfig) -> Self {
        let decoder = ChunkDecoder::new(DecoderLimits {
            max_chunk_size: cfg.max_chunk_size,
            max_message_size: cfg.max_message_size,
            max_chunk_streams: cfg.max_chunk_streams,
        });
        ServerSession {
            cfg,
            handshake: Handshake::new(),
            input: BytesMut::new(),
            output: BytesMut::new(),
            events: VecDeque::new(),
            decoder,
            encoder: ChunkEncoder::new(),
            app: None,
            streams: Vec::new(),
            next_stream_id: 1,
            publish: Publish::Idle,
            closing: false,
            failed: false,
            stats: SessionStats::default(),
            peer_window: None,
            last_metadata: None,
            acked_at: 0,
        }
    }

    /// Feeds bytes read from the socket (handshake first, then chunks). An error means the
    /// connection must be closed; the session stays dead afterwards.
    pub fn handle_input(&mut self, bytes: &[u8]) -> Result<(), RtmpError> {
        if self.failed || self.closing {
            return Err(RtmpError::Closed);
        }
        let result = self.process(bytes);
        if result.is_err() {
            self.failed = true;
            self.input = BytesMut::new();
        }
        result
    }

    /// Next event for the application, if any.
    pub fn poll_event(&mut self) -> Option<SessionEvent> {
        self.events.pop_front()
    }

    /// All bytes pending for the socket, or `None` when there are none.
    pub fn poll_output(&mut self) -> Option<Bytes> {
        if self.output.is_empty() {
            return None;
        }
        let out = self.output.split().freeze();
        self.stats.bytes_out += out.len() as u64;
        Some(out)
    }

    /// Whether the connection should be closed once the output is flushed (publish
    /// rejected, or a previous error).
    pub fn is_closing(&self) -> bool {
        self.closing || self.failed
    }

    /// Accepts the pending publish: sends StreamBegin and `NetStream.Publish.Start`; media
    /// events flow from now on. Does nothing when no publish is pending.
    pub fn accept_publish(&mut self) {
        if let Publish::Pending { stream_id } = self.publish {
            self.publish = Publish::Publishing { stream_id };
            let r = self.send(message::user_control(message::UC_STREAM_BEGIN, stream_id)).and_then(|()| {
                self.on_status(stream_id, "status", "NetStream.Publish.Start", "Publishing started.")
            });
            self.fail_on(r);
        }
    }

    /// Refuses the pending (or current) publish with an error status `code` (e.g.
    /// `NetStream.Publish.BadName`) and marks the session closing.
    pub fn reject_publish(&mut self, code: &str, description: &str) {
        let stream_id = match self.publish {
            Publish::Pending { stream_id } | Publish::Publishing { stream_id } => Some(stream_id),
            Publish::Idle => None,
        };
        self.publish = Publish::Idle;
        if let Some(stream_id) = stream_id {
            let r = self.on_status(stream_id, "error", code, description);
            self.fail_on(r);
        }
        self.closing = true;
    }

    /// Counters so far.
    pub fn stats(&self) -> SessionStats {
        SessionStats {
            chunk_streams: self.decoder.chunk_streams(),
            buffered_bytes: self.input.len() + self.output.len() + self.decoder.buffered(),
            ..self.stats
        }
    }

    fn fail_on(&mut self, r: Result<(), RtmpError>) {
        if r.is_err() {
            self.failed = true;
        }
    }

    fn process(&mut self, bytes: &[u8]) -> Result<(), RtmpError> {
        self.stats.bytes_in += bytes.len() as u64;
        self.input.extend_from_slice(bytes);
        if !self.handshake.is_done() {
            let mut out = BytesMut::new();
            let done = self.handshake.process(&mut self.input, &mut out)?;
            self.output.extend_from_slice(&out);
            if !done {
                return Ok(());
            }
        }
        while !self.closing {
            let Some(raw) = self.decoder.decode(&mut self.input)? else {
                break;
            };
            self.stats.messages_in += 1;
            self.on_message(raw)?;
        }
        self.maybe_ack()
    }

    /// Acknowledges when a window's worth of bytes arrived since the last acknowledgement.
    fn maybe_ack(&mut self) -> Result<(), RtmpError> {
        let window = u64::from(self.peer_window.unwrap_or(self.cfg.window_ack_size).max(1));
        if self.stats.bytes_in - self.acked_at >= window {
            self.acked_at = self.stats.bytes_in;
            // The sequence number wraps like every RTMP counter.
            self.send(message::acknowledgement(self.stats.bytes_in as u32))?;
            self.stats.acks_sent += 1;
        }
        Ok(())
    }

    fn on_message(&mut self, raw: RawMessage) -> Result<(), RtmpError> {
        match message::parse(&raw, self.cfg.max_amf_depth)? {
            Message::SetChunkSize(size) => self.decoder.set_chunk_size(size)?,
            Message::Abort { csid } => self.decoder.abort(csid),
            Message::Acknowledgement(_) | Message::SetPeerBandwidth { .. } => {}
            Message::WindowAckSize(size) => self.peer_window = Some(size.max(1)),
            Message::UserControl { event: message::UC_PING_REQUEST, value } => {
                self.send(message::user_control(message::UC_PING_RESPONSE, value))?
            }
            Message::UserControl { .. } => {}
            Message::Audio(data) => self.media(message::AUDIO, raw.timestamp, data)?,
            Message::Video(data) => self.media(message::VIDEO, raw.timestamp, data)?,
            Message::Aggregate(body) => {
                for sub in message::split_aggregate(&body, raw.timestamp)? {
                    self.media(sub.type_id, sub.timestamp, sub.payload)?;
                }
            }
            Message::Command(values) => self.on_command(raw.stream_id, values)?,
            Message::Data(values) => self.on_data(values)?,
            Message::Other(_) => self.stats.ignored_messages += 1,
        }
        Ok(())
    }

    fn media(&mut self, type_id: u8, timestamp: u32, data: Bytes) -> Result<(), RtmpError> {
        let publishing = matches!(self.publish, Publish::Publishing { .. });
        if !publishing || data.is_empty() {
            self.stats.dropped_messages += 1;
            return Ok(());
        }
        self.stats.media_bytes += data.len() as u64;
        let event = match type_id {
            message::VIDEO => {
                self.stats.video_messages += 1;
                SessionEvent::Video { timestamp, data }
            }
            message::AUDIO => {
                self.stats.audio_messages += 1;
                SessionEvent::Audio { timestamp, data }
            }
            _ => {
                self.stats.ignored_messages += 1;
                return Ok(());
            }
        };
        self.push_event(event)
    }

    /// `onMetaData`, possibly behind `@setDataFrame`; other data messages are ignored.
    fn on_data(&mut self, values: Vec<Amf0Value>) -> Result<(), RtmpError> {
        let mut rest = &values[..];
        if rest.first().and_then(Amf0Value::as_str) == Some("@setDataFrame") {
            rest = &rest[1..];
        }
        let publishing = matches!(self.publish, Publish::Publishing { .. });
        match rest {
            [name, meta, ..]
                if publishing && name.as_str() == Some("onMetaData") && meta.properties().is_some() =>
            {
                let meta = StreamMetadata::from_amf(meta);
                if self.last_metadata.as_ref() == Some(&meta) {
                    return Ok(());
                }
                self.last_metadata = Some(meta.clone());
                self.push_event(SessionEvent::Metadata(meta))
            }
            _ => {
                self.stats.ignored_messages += 1;
                Ok(())
            }
        }
    }

    pub(super) fn push_event(&mut self, event: SessionEvent) -> Result<(), RtmpError> {
        if self.events.len() >= MAX_PENDING_EVENTS {
            return Err(RtmpError::Backlog("events"));
        }
        self.events.push_back(event);
        Ok(())
    }

    /// Queues one message for the peer (timestamp 0).
    pub(super) fn send(&mut self, m: Outgoing) -> Result<(), RtmpError> {
        if self.output.len() + m.payload.len() > MAX_PENDING_OUTPUT {
            return Err(RtmpError::Backlog("output"));
        }
        self.encoder.encode(m.csid, 0, m.type_id, m.stream_id, &m.payload, &mut self.output);
        self.stats.messages_out += 1;
        Ok(())
    }
}
