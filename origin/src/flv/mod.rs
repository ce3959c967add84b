//! FLV tag bodies (as carried by RTMP audio/video messages and FLV files).
//!
//! - this module: [`parse_video`] and [`parse_audio`] turn one tag body into a typed view
//!   whose payloads are zero-copy slices of the input [`Bytes`].
//! - [`file`]: a sans-IO reader for FLV files (header, then tags), for replaying recordings.
//!
//! Only H.264 (codec id 7) video and AAC (sound format 10) audio are supported; anything
//! else is an [`FlvError`], never a panic.

pub mod file;

pub use file::{FlvHeader, FlvReader, FlvTag, TagKind};

use bytes::Bytes;

/// Why a tag body (or an FLV file) could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlvError {
    /// The body is shorter than its fixed header.
    #[error("truncated {what}: need {need} bytes, have {have}")]
    Truncated {
        /// Which structure was cut short.
        what: &'static str,
        /// Bytes the structure needs.
        need: usize,
        /// Bytes present.
        have: usize,
    },
    /// Video codec other than AVC (7), or an enhanced-RTMP extended header.
    #[error("unsupported video codec id {0}")]
    UnsupportedVideoCodec(u8),
    /// Audio format other than AAC (10).
    #[error("unsupported audio sound format {0}")]
    UnsupportedAudioFormat(u8),
    /// A video frame type outside 1..=5.
    #[error("invalid video frame type {0}")]
    InvalidFrameType(u8),
    /// An AVCPacketType or AACPacketType this parser does not know.
    #[error("unknown packet type {0}")]
    UnknownPacketType(u8),
    /// The file does not start with the `FLV` signature.
    #[error("not an FLV file (bad signature)")]
    BadSignature,
    /// A tag's declared size exceeds the configured bound.
    #[error("tag of {size} bytes exceeds the limit of {max}")]
    TagTooLarge {
        /// Declared data size.
        size: usize,
        /// Configured maximum.
        max: usize,
    },
    /// A PreviousTagSize field disagrees with the tag before it (a tag lied about its size).
    #[error("previous tag size {found} does not match {expected}")]
    SizeMismatch {
        /// Size the previous tag actually had (header + data).
        expected: u32,
        /// Size the file claims.
        found: u32,
    },
    /// The FLV header declares a data offset smaller than the header itself.
    #[error("bad FLV header data offset {0}")]
    BadHeaderOffset(u32),
}

/// FLV video frame type (upper nibble of the first byte).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameType {
    /// 1: key frame (for AVC, a seekable frame).
    Key,
    /// 2: inter frame.
    Inter,
    /// 3: disposable inter frame (H.263 only, treated as inter).
    DisposableInter,
    /// 4: generated key frame (server use).
    GeneratedKey,
    /// 5: video info / command frame (carries no picture).
    Command,
}

impl FrameType {
    fn from_nibble(v: u8) -> Result<Self, FlvError> {
        Ok(match v {
            1 => Self::Key,
            2 => Self::Inter,
            3 => Self::DisposableInter,
            4 => Self::GeneratedKey,
            5 => Self::Command,
            other => return Err(FlvError::InvalidFrameType(other)),
        })
    }

    /// Whether a frame of this type starts a decodable sequence.
    pub fn is_key(self) -> bool {
        matches!(self, Self::Key | Self::GeneratedKey)
    }
}

/// The AVC part of a video tag body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AvcPacket {
    /// AVCPacketType 0: an AVCDecoderConfigurationRecord.
    SequenceHeader(Bytes),
    /// AVCPacketType 1: length-prefixed NAL units of one frame.
    Nalus {
        /// Composition time offset in milliseconds (SI24, may be negative).
        composition_time_ms: i32,
        /// NAL units, each prefixed by its length (size given by the avcC).
        data: Bytes,
    },
    /// AVCPacketType 2: end of sequence.
    EndOfSequence,
    /// Frame type 5 (command frame): nothing to decode.
    Command,
}

/// A parsed video tag body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoTag {
    /// The frame type nibble.
    pub frame_type: FrameType,
    /// The AVC payload.
    pub packet: AvcPacket,
}

/// Parses an FLV VIDEODATA body (codec id 7 only).
pub fn parse_video(body: &Bytes) -> Result<VideoTag, FlvError> {
    let first = *body.first().ok_or(FlvError::Truncated { what: "video tag", need: 1, have: 0 })?;
    if first & 0x80 != 0 {
        // Enhanced RTMP (IsExHeader): HEVC/AV1/VP9 FourCC codecs.
        return Err(FlvError::UnsupportedVideoCodec(first & 0x0f));
    }
    let frame_type = FrameType::from_nibble(first >> 4)?;
    let codec = first & 0x0f;
    if codec != 7 {
        return Err(FlvError::UnsupportedVideoCodec(codec));
    }
    if frame_type == FrameType::Command {
        return Ok(VideoTag { frame_type, packet: AvcPacket::Command });
    }
    if body.len() < 5 {
        return Err(FlvError::Truncated { what: "AVC video tag", need: 5, have: body.len() });
    }
    let raw = u32::from_be_bytes([body[2], body[3], body[4], 0]) as i32;
    let composition_time_ms = raw >> 8; // sign-extends the 24-bit value
    let packet = match body[1] {
        0 => AvcPacket::SequenceHeader(body.slice(5..)),
        1 => AvcPacket::Nalus { composition_time_ms, data: body.slice(5..) },
        2 => AvcPacket::EndOfSequence,
        other => return Err(FlvError::UnknownPacketType(other)),
    };
    Ok(VideoTag { frame_type, packet })
}

/// The AAC part of an audio tag body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AacPacket {
    /// AACPacketType 0: an AudioSpecificConfig.
    SequenceHeader(Bytes),
    /// AACPacketType 1: one raw AAC frame.
    Raw(Bytes),
}

/// A parsed audio tag body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioTag {
    /// The AAC payload (the FLV rate/size/type bits are meaningless for AAC).
    pub packet: AacPacket,
}

/// Parses an FLV AUDIODATA body (sound format 10 only).
pub fn parse_audio(body: &Bytes) -> Result<AudioTag, FlvError> {
    let first = *body.first().ok_or(FlvError::Truncated { what: "audio tag", need: 1, have: 0 })?;
    let format = first >> 4;
    if format != 10 {
        return Err(FlvError::UnsupportedAudioFormat(format));
    }
    let kind =
        *body.get(1).ok_or(FlvError::Truncated { what: "AAC audio tag", need: 2, have: body.len() })?;
    let packet = match kind {
        0 => AacPacket::SequenceHeader(body.slice(2..)),
        1 => AacPacket::Raw(body.slice(2..)),
        other => return Err(FlvError::UnknownPacketType(other)),
    };
    Ok(AudioTag { packet })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn video_nalus_with_negative_composition_time() {
        let body = Bytes::from_static(&[0x17, 1, 0xff, 0xff, 0xfe, 0, 0, 0, 1, 0x65]);
        let tag = parse_video(&body).unwrap();
        assert!(tag.frame_type.is_key());
        match tag.packet {
            AvcPacket::Nalus { composition_time_ms, data } => {
                assert_eq!(composition_time_ms, -2);
                assert_eq!(&data[..], &[0, 0, 0, 1, 0x65]);
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn video_sequence_header_and_errors() {
        let seq = parse_video(&Bytes::from_static(&[0x17, 0, 0, 0, 0, 1, 2])).unwrap();
        assert_eq!(seq.packet, AvcPacket::SequenceHeader(Bytes::from_static(&[1, 2])));
        let inter = parse_video(&Bytes::from_static(&[0x27, 2, 0, 0, 0])).unwrap();
        assert_eq!(inter.packet, AvcPacket::EndOfSequence);
        assert!(!inter.frame_type.is_key());
        assert_eq!(
            parse_video(&Bytes::from_static(&[0x12, 1, 0, 0, 0])),
            Err(FlvError::UnsupportedVideoCodec(2))
        );
        assert!(matches!(parse_video(&Bytes::from_static(&[0x17, 1, 0])), Err(FlvError::Truncated { .. })));
        assert!(parse_video(&Bytes::new()).is_err());
        assert_eq!(parse_video(&Bytes::from_static(&[0x07, 1, 0, 0, 0])), Err(FlvError::InvalidFrameType(0)));
        assert_eq!(
            parse_video(&Bytes::from_static(&[0x17, 9, 0, 0, 0])),
            Err(FlvError::UnknownPacketType(9))
        );
        assert!(parse_video(&Bytes::from_static(&[0x97, 0, 0, 0, 0])).is_err());
        assert_eq!(parse_video(&Bytes::from_static(&[0x57, 0])).unwrap().packet, AvcPacket::Command);
    }

    #[test]
    fn audio_bodies() {
        let seq = parse_audio(&Bytes::from_static(&[0xaf, 0, 0x12, 0x10])).unwrap();
        assert_eq!(seq.packet, AacPacket::SequenceHeader(Bytes::from_static(&[0x12, 0x10])));
        let raw = parse_audio(&Bytes::from_static(&[0xaf, 1, 9])).unwrap();
        assert_eq!(raw.packet, AacPacket::Raw(Bytes::from_static(&[9])));
        assert_eq!(parse_audio(&Bytes::from_static(&[0x2f, 1])), Err(FlvError::UnsupportedAudioFormat(2)));
        assert!(parse_audio(&Bytes::from_static(&[0xaf])).is_err());
        assert!(parse_audio(&Bytes::new()).is_err());
        assert_eq!(parse_audio(&Bytes::from_static(&[0xaf, 7])), Err(FlvError::UnknownPacketType(7)));
    }
}
