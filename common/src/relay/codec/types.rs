//! The relay's message and frame types, error and close codes (`docs/protocol.md`).

use bytes::Bytes;

use crate::media::RenditionInfo;

/// QUIC application error codes used to close a relay connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum CloseCode {
    /// Normal close.
    NoError = 0x0,
    /// Malformed frame, bad frame order, or a message in the wrong direction.
    ProtocolViolation = 0x1,
    /// A frame length above its type's maximum.
    FrameTooLarge = 0x2,
    /// The closing side failed.
    Internal = 0x3,
    /// The server is shutting down.
    GoingAway = 0x4,
}

/// Stream reset codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum ResetCode {
    /// The part was dropped because the subscriber fell behind (a GAP follows).
    PartDropped = 0x10,
    /// The subscription ended.
    Cancelled = 0x11,
}

/// Codes carried by an ERROR message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// The channel or rendition (or the fetched segment) is not held.
    NotFound,
    /// The subscriber may not have it.
    Unauthorized,
    /// The request was invalid (for example a reused id).
    BadRequest,
    /// Too many subscriptions or fetches on this connection.
    Overloaded,
    /// The publisher side failed.
    Internal,
    /// A fetched segment did not complete in time.
    NotReady,
    /// The publisher side is shutting down.
    GoingAway,
}

impl ErrorCode {
    /// The wire value.
    pub fn to_wire(self) -> u64 {
        match self {
            ErrorCode::NotFound => 1,
            ErrorCode::Unauthorized => 2,
            ErrorCode::BadRequest => 3,
            ErrorCode::Overloaded => 4,
            ErrorCode::Internal => 5,
            ErrorCode::NotReady => 6,
            ErrorCode::GoingAway => 7,
        }
    }

    /// From a wire value; unknown codes read as [`ErrorCode::Internal`].
    pub fn from_wire(v: u64) -> Self {
        match v {
            1 => ErrorCode::NotFound,
            2 => ErrorCode::Unauthorized,
            3 => ErrorCode::BadRequest,
            4 => ErrorCode::Overloaded,
            6 => ErrorCode::NotReady,
            7 => ErrorCode::GoingAway,
            _ => ErrorCode::Internal,
        }
    }

    /// Name for logs and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::NotFound => "not_found",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::Overloaded => "overloaded",
            ErrorCode::Internal => "internal",
            ErrorCode::NotReady => "not_ready",
            ErrorCode::GoingAway => "going_away",
        }
    }
}

/// A part's position: segment sequence number and part index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    /// Media sequence number of the segment.
    pub msn: u64,
    /// Part index within the segment.
    pub part: u32,
}

/// Where a subscription starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// From part 0 of segment `newest msn - back` (clamped to the oldest held).
    Live {
        /// Number of segments before the newest one.
        back: u64,
    },
    /// From part 0 of segment `msn` (clamped to the oldest held).
    FromMsn(u64),
}

/// An init segment generation.
#[derive(Debug, Clone, PartialEq)]
pub struct InitSegment {
    /// Generation id (the `{id}` of `init-{id}.mp4`).
    pub id: u32,
    /// The rendition as described by the packager with this init.
    pub info: RenditionInfo,
    /// The init segment bytes.
    pub bytes: Bytes,
}

/// A control-stream message.
#[derive(Debug, Clone, PartialEq)]
pub enum ControlMessage {
    /// Subscribe to one rendition of one channel.
    Subscribe { id: u64, channel: String, rendition: String, start: Start },
    /// The subscription is accepted; parts follow.
    SubscribeOk {
        id: u64,
        init: Option<InitSegment>,
        start_msn: u64,
        latest: Option<Position>,
        target_duration: f64,
        part_target: f64,
    },
    /// Request `id` failed (or a live subscription ended with an error).
    Error { id: u64, code: ErrorCode, message: String },
    /// Stop a subscription.
    Unsubscribe { id: u64 },
    /// Fetch the complete segment `msn` of a subscription's rendition.
    Fetch { id: u64, subscription: u64, msn: u64 },
    /// A new init generation for a subscription.
    Announce { subscription: u64, init: InitSegment },
    /// The publisher left; `last` is the last part pushed (`None`: none was).
    Ended { subscription: u64, last: Option<Position> },
    /// Parts `first..=last` will not be pushed.
    Gap { subscription: u64, first: Position, last: Position },
}

/// The first frame of a part (and of each part in a fetch stream).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartHeader {
    pub subscription: u64,
    pub msn: u64,
    pub part: u32,
    /// The part starts with a sync sample.
    pub independent: bool,
    /// Unix time in ms when the part was opened at the origin.
    pub origin_ms: u64,
    /// Init generation the part uses.
    pub init_id: u32,
}

/// The last frame of a part.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PartTrailer {
    /// Duration in seconds.
    pub duration: f64,
    /// The segment ends with this part.
    pub ends_segment: bool,
}

/// The first frame of a fetch stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchHeader {
    pub request: u64,
    pub msn: u64,
    /// Number of parts that follow.
    pub parts: u32,
}

/// A frame of a unidirectional media stream.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamFrame {
    FetchHeader(FetchHeader),
    PartHeader(PartHeader),
    Chunk(Bytes),
    PartTrailer(PartTrailer),
}

/// Why bytes could not be decoded (or a message could not be encoded).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// A frame type this version does not know, or not allowed on this stream.
    #[error("unknown frame type 0x{0:02x}")]
    UnknownType(u8),
    /// A frame (or a field) longer than its maximum.
    #[error("frame type 0x{ty:02x} too large: {len} > {max}")]
    TooLarge { ty: u8, len: u64, max: usize },
    /// A payload whose fields do not parse.
    #[error("malformed frame: {0}")]
    Malformed(&'static str),
    /// A valid frame in a place the stream grammar does not allow.
    #[error("bad frame order: {0}")]
    BadOrder(&'static str),
}

impl CodecError {
    /// The connection close code for this error.
    pub fn close_code(&self) -> CloseCode {
        match self {
            CodecError::TooLarge { .. } => CloseCode::FrameTooLarge,
            _ => CloseCode::ProtocolViolation,
        }
    }
}
