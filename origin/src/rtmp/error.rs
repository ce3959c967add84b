//! Why a session failed. Every error closes the connection it came from, and only that one.

use super::amf0::AmfError;

/// Reasons an RTMP session ends with an error. [`RtmpError::kind`] gives a stable label for
/// metrics and logs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RtmpError {
    /// The client's version byte (C0) is not 3 (plain RTMP); 6 (RTMPE) is not supported.
    #[error("unsupported RTMP handshake version {0}")]
    HandshakeVersion(u8),
    /// The peer asked for a chunk size of zero, with the reserved top bit, or above the limit.
    #[error("peer chunk size {size} not in 1..={max}")]
    ChunkSize { size: u32, max: u32 },
    /// A message header announced a length above the configured maximum.
    #[error("message of {len} bytes exceeds the limit of {max}")]
    MessageTooLarge { len: u32, max: u32 },
    /// Too many partially received messages at once (their total size is bounded).
    #[error("{0} bytes of partially received messages exceed the reassembly budget")]
    ReassemblyBudget(u64),
    /// The peer used more chunk stream ids than allowed.
    #[error("more than {0} chunk streams")]
    TooManyChunkStreams(usize),
    /// A command or data message did not decode as AMF0.
    #[error("bad AMF0 payload: {0}")]
    Amf(#[from] AmfError),
    /// The peer broke the protocol (malformed control message, command order, ...).
    #[error("protocol violation: {0}")]
    Protocol(&'static str),
    /// The application did not drain events/output and the bounded queues filled up.
    #[error("session backlog full ({0})")]
    Backlog(&'static str),
    /// The session already failed or was closed (publish rejected); the connection must close.
    #[error("session closed")]
    Closed,
}

impl RtmpError {
    /// Short stable label, e.g. for an `rtmp_errors_total{kind=...}` metric.
    pub fn kind(&self) -> &'static str {
        match self {
            RtmpError::HandshakeVersion(_) => "handshake",
            RtmpError::ChunkSize { .. } => "chunk_size",
            RtmpError::MessageTooLarge { .. } => "message_too_large",
            RtmpError::ReassemblyBudget(_) => "reassembly_budget",
            RtmpError::TooManyChunkStreams(_) => "too_many_chunk_streams",
            RtmpError::Amf(_) => "amf",
            RtmpError::Protocol(_) => "protocol",
            RtmpError::Backlog(_) => "backlog",
            RtmpError::Closed => "closed",
        }
    }
}
