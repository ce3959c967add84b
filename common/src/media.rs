//! The media model every node shares.
//!
//! A packager (origin) produces [`MediaEvent`]s for one rendition of a channel; the live
//! window ([`crate::window`]) applies them; the relay carries the same events to edges,
//! which apply them to their own windows. Only the packager and the playlist builder know
//! what the bytes mean: everything in between moves opaque, sequenced objects.
//!
//! Numbering: a segment has a media sequence number (`msn`), a part has an index within
//! its segment (`part`, from 0). Objects are named by these two numbers everywhere
//! (URLs, relay headers, cache keys).

use bytes::Bytes;

/// Describes one rendition, for the master playlist and the relay's subscribe-ok.
#[derive(Debug, Clone, PartialEq)]
pub struct RenditionInfo {
    /// Rendition name used in URLs (`source` for the published stream as is).
    pub name: String,
    /// RFC 6381 codecs string, e.g. `avc1.64001f,mp4a.40.2`.
    pub codecs: String,
    /// Peak bits per second (BANDWIDTH in the master playlist).
    pub bandwidth: u64,
    /// Video width and height in pixels, when the rendition has video.
    pub resolution: Option<(u32, u32)>,
    /// Video frames per second, when known.
    pub frame_rate: Option<f64>,
    /// Whether the rendition carries video and audio tracks.
    pub has_video: bool,
    pub has_audio: bool,
}

/// What a packager emits, in order, for one rendition.
#[derive(Debug, Clone, PartialEq)]
pub enum MediaEvent {
    /// A new initialization segment. Every segment opened after it uses it. Every `Init`
    /// after the first one of a window starts a discontinuity at the next segment. The
    /// packager always ends the open part with `ends_segment = true` before a new `Init`.
    Init { info: RenditionInfo, bytes: Bytes },
    /// CMAF chunk (one or more complete `moof`+`mdat` pairs) appended to part `part` of
    /// segment `msn`. The first chunk of a part opens it; the first chunk of part 0 opens
    /// the segment. `independent` is the part's flag (starts with a sync sample) and is the
    /// same on every chunk of a part.
    Chunk { msn: u64, part: u32, independent: bool, bytes: Bytes },
    /// The part is complete. `duration` is in seconds. When `ends_segment` is set, the
    /// segment is complete too and the next part is part 0 of segment `msn + 1`.
    PartEnd { msn: u64, part: u32, duration: f64, ends_segment: bool },
    /// The publisher went away. Any open part/segment is closed (the packager emits
    /// `PartEnd { ends_segment: true }` first when a part was open).
    End,
}
