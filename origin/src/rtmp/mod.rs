//! RTMP server protocol, sans-IO: bytes in, events and bytes out. No sockets, no clocks.
//!
//! Layout:
//! - [`handshake`]: the server side of the plain handshake (C0/C1 → S0/S1/S2, C2).
//! - [`chunk`]: the chunk stream decoder (reassembly, all header types, extended timestamps).
//! - [`writer`]: the chunk stream encoder for the server's own messages.
//! - [`amf0`]: bounded AMF0 decoder and encoder.
//! - [`message`]: protocol control, user control, command and data messages.
//! - [`session`]: [`ServerSession`], the per-connection state machine; its command
//!   handling lives in `commands`, its events in [`events`].
//! - [`error`]: [`RtmpError`] with a metric label per reason.
//!
//! An IO wrapper owns the socket and loops: read → [`ServerSession::handle_input`] → drain
//! [`ServerSession::poll_event`] and [`ServerSession::poll_output`] → act. Any error closes
//! that connection (and only that one).

pub mod amf0;
pub mod chunk;
mod commands;
pub mod error;
pub mod events;
pub mod handshake;
pub mod message;
pub mod session;
pub mod writer;

pub use error::RtmpError;
pub use events::{CodecId, SessionEvent, StreamMetadata};
pub use session::{ServerSession, SessionStats};

/// Limits and settings of one RTMP server session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionConfig {
    /// Largest chunk size a peer may set with Set Chunk Size (default 65536).
    pub max_chunk_size: u32,
    /// Largest message (e.g. one video frame) accepted, in bytes (default 8 MiB).
    pub max_message_size: u32,
    /// Most chunk stream ids a peer may use (default 64).
    pub max_chunk_streams: usize,
    /// Deepest AMF0 nesting accepted (default 16; values above 64 act as 64).
    pub max_amf_depth: usize,
    /// Chunk size the server announces and sends with (default 4096).
    pub out_chunk_size: u32,
    /// Window acknowledgement size announced to the peer, also used for our own
    /// acknowledgements until the peer announces its window (default 2 500 000).
    pub window_ack_size: u32,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            max_chunk_size: 65_536,
            max_message_size: 8 * 1024 * 1024,
            max_chunk_streams: 64,
            max_amf_depth: 16,
            out_chunk_size: 4096,
            window_ack_size: 2_500_000,
        }
    }
}
