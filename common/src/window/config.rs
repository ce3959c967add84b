//! Limits and targets of a live window.

use serde::Deserialize;

use crate::config::{ConfigError, Validate, check_range};

/// Bounds and playlist targets of one rendition's live window.
///
/// Every buffer the window holds is bounded by these values: `max_segments` complete
/// segments plus the open one, each of at most `max_parts_per_segment` parts of at most
/// `max_part_bytes` bytes in at most `max_chunks_per_part` chunks, all parts together at
/// most `max_bytes` (init segments come on top, each at most `max_init_bytes`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WindowConfig {
    /// Complete segments kept (the open segment comes on top).
    pub max_segments: usize,
    /// Most bytes of media the window holds (the parts of every kept segment): older
    /// complete segments leave first; a chunk that would not fit even then is refused.
    pub max_bytes: u64,
    /// Largest part, in bytes.
    pub max_part_bytes: usize,
    /// Most chunks in one part.
    pub max_chunks_per_part: usize,
    /// Most parts in one segment.
    pub max_parts_per_segment: u32,
    /// Largest initialization segment, in bytes.
    pub max_init_bytes: usize,
    /// Configured part target duration (PART-TARGET), in milliseconds. The playlist
    /// advertises the larger of this and the longest part seen.
    pub part_target_ms: u64,
    /// Configured segment target duration, in milliseconds. TARGETDURATION is the ceiling
    /// of the larger of this and the longest segment seen.
    pub segment_target_ms: u64,
    /// How many of the newest segments list their parts (EXT-X-PART) in the playlist.
    pub playlist_part_segments: usize,
}

impl Default for WindowConfig {
    fn default() -> Self {
        WindowConfig {
            max_segments: 8,
            max_bytes: 1 << 30,
            max_part_bytes: 8 << 20,
            max_chunks_per_part: 512,
            max_parts_per_segment: 64,
            max_init_bytes: 1 << 20,
            part_target_ms: 334,
            segment_target_ms: 2000,
            playlist_part_segments: 3,
        }
    }
}

impl Validate for WindowConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        check_range("max_segments", self.max_segments, 1, 10_000)?;
        check_range("max_bytes", self.max_bytes, 1, 1 << 40)?;
        check_range("max_part_bytes", self.max_part_bytes, 1, 1 << 30)?;
        check_range("max_chunks_per_part", self.max_chunks_per_part, 1, 1 << 20)?;
        check_range("max_parts_per_segment", self.max_parts_per_segment, 1, 10_000)?;
        check_range("max_init_bytes", self.max_init_bytes, 1, 1 << 28)?;
        check_range("part_target_ms", self.part_target_ms, 10, 60_000)?;
        check_range("segment_target_ms", self.segment_target_ms, 100, 600_000)?;
        check_range("playlist_part_segments", self.playlist_part_segments, 1, 100)?;
        if self.part_target_ms > self.segment_target_ms {
            return Err(ConfigError::invalid(
                "part_target_ms",
                format!("{} exceeds segment_target_ms {}", self.part_target_ms, self.segment_target_ms),
            ));
        }
        Ok(())
    }
}
