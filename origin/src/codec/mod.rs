//! Codec configuration records.
//!
//! - [`avc`]: H.264 `AVCDecoderConfigurationRecord` (avcC), SPS facts (size, frame rate),
//!   NAL length walking/rewriting to 4-byte lengths.
//! - [`aac`]: AAC `AudioSpecificConfig`.
//!
//! Both give RFC 6381 codec strings for the master playlist.

pub mod aac;
pub mod avc;

pub use aac::AacConfig;
pub use avc::AvcConfig;

/// Why a configuration record or a frame payload is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// The record is shorter than its fields say.
    #[error("truncated {0}")]
    Truncated(&'static str),
    /// The avcC configurationVersion is not 1.
    #[error("unsupported avcC version {0}")]
    AvcVersion(u8),
    /// The avcC has no SPS or no PPS.
    #[error("avcC without SPS or PPS")]
    MissingParameterSets,
    /// lengthSizeMinusOne gives 3 bytes, which has no valid use.
    #[error("unsupported NAL length size {0}")]
    NalLengthSize(u8),
    /// A NAL unit length runs past the end of the frame.
    #[error("NAL unit length {len} exceeds the {remaining} bytes left in the frame")]
    NalOverrun {
        /// Declared NAL length.
        len: usize,
        /// Bytes left.
        remaining: usize,
    },
    /// An AudioSpecificConfig value this packager cannot carry.
    #[error("unsupported AudioSpecificConfig: {0}")]
    UnsupportedAudio(&'static str),
}
