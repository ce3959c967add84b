//! Read side of the live window: views of parts and segments (chunk lists, cheap clones),
//! positions, and the playlist glue.

use bytes::Bytes;

use super::{LiveWindow, Segment};
use crate::media::{MediaEvent, RenditionInfo};
use crate::playlist::{self, MediaPlaylist, PlaylistPart, PlaylistSegment};

/// Names one part: segment `msn`, part index `part`. Orders by segment, then part.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PartRef {
    pub msn: u64,
    pub part: u32,
}

/// A part as it is now: its chunks so far (cheap clones) and whether it is complete.
#[derive(Debug, Clone, PartialEq)]
pub struct PartView {
    pub msn: u64,
    pub part: u32,
    pub chunks: Vec<Bytes>,
    /// The part has ended; `chunks` is all of it.
    pub complete: bool,
    /// Seconds; 0 until complete.
    pub duration: f64,
    pub independent: bool,
    pub opened_unix_ms: u64,
    pub init_id: u32,
}

impl PartView {
    /// Total bytes of the chunks so far.
    pub fn len(&self) -> usize {
        self.chunks.iter().map(Bytes::len).sum()
    }

    /// No bytes yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A complete segment: every chunk of every part, in order (no copy).
#[derive(Debug, Clone, PartialEq)]
pub struct SegmentView {
    pub msn: u64,
    pub chunks: Vec<Bytes>,
    /// Seconds.
    pub duration: f64,
    pub init_id: u32,
    pub discontinuity: bool,
    pub program_date_time_unix_ms: u64,
    pub part_count: u32,
}

impl SegmentView {
    /// Total bytes.
    pub fn len(&self) -> usize {
        self.chunks.iter().map(Bytes::len).sum()
    }

    /// No bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One chunk of a part, for streaming a part as it is written.
#[derive(Debug, Clone, PartialEq)]
pub enum ChunkAt {
    /// The chunk at that index.
    Ready(Bytes),
    /// The part is open and has no chunk at that index yet.
    Pending,
    /// The part is complete and has fewer chunks: the stream is done.
    Done,
    /// The part is not in the window (never opened, dropped, or evicted).
    Missing,
}

impl LiveWindow {
    fn find(&self, msn: u64) -> Option<&Segment> {
        let first = self.segments.front()?.msn;
        let idx = usize::try_from(msn.checked_sub(first)?).ok()?;
        self.segments.get(idx).filter(|s| s.msn == msn)
    }

    /// The rendition described by the current init segment.
    pub fn info(&self) -> Option<&RenditionInfo> {
        let id = self.current_init?;
        self.inits.iter().find(|e| e.id == id).map(|e| &e.info)
    }

    /// The init segment with generation id `id`, while it is current or referenced.
    pub fn init(&self, id: u32) -> Option<Bytes> {
        self.inits.iter().find(|e| e.id == id).map(|e| e.bytes.clone())
    }

    /// The id of the init segment the next segment will use.
    pub fn current_init_id(&self) -> Option<u32> {
        self.current_init
    }

    /// A part, complete or open.
    pub fn part(&self, msn: u64, part: u32) -> Option<PartView> {
        let seg = self.find(msn)?;
        let p = seg.parts.get(part as usize)?;
        Some(PartView {
            msn,
            part,
            chunks: p.chunks.clone(),
            complete: p.complete,
            duration: p.duration,
            independent: p.independent,
            opened_unix_ms: p.opened_unix_ms,
            init_id: seg.init_id,
        })
    }

    /// Chunk `index` of a part, without cloning the others.
    pub fn chunk_at(&self, msn: u64, part: u32, index: usize) -> ChunkAt {
        let Some(p) = self.find(msn).and_then(|s| s.parts.get(part as usize)) else {
            return ChunkAt::Missing;
        };
        match p.chunks.get(index) {
            Some(c) => ChunkAt::Ready(c.clone()),
            None if p.complete => ChunkAt::Done,
            None => ChunkAt::Pending,
        }
    }

    /// A complete segment.
    pub fn segment(&self, msn: u64) -> Option<SegmentView> {
        let seg = self.find(msn).filter(|s| s.complete)?;
        Some(SegmentView {
            msn,
            chunks: seg.parts.iter().flat_map(|p| p.chunks.iter().cloned()).collect(),
            duration: seg.duration,
            init_id: seg.init_id,
            discontinuity: seg.discontinuity,
            program_date_time_unix_ms: seg.pdt_unix_ms,
            part_count: u32::try_from(seg.parts.len()).unwrap_or(u32::MAX),
        })
    }

    /// The events that rebuild complete segment `msn` elsewhere (chunks and part ends, no
    /// init): what a relay sends for a fetch.
    pub fn replay_segment(&self, msn: u64) -> Option<Vec<MediaEvent>> {
        let seg = self.find(msn).filter(|s| s.complete)?;
        let mut out = Vec::new();
        let last = seg.parts.len().saturating_sub(1);
        for (i, p) in seg.parts.iter().enumerate() {
            let part = u32::try_from(i).ok()?;
            for c in &p.chunks {
                out.push(MediaEvent::Chunk { msn, part, independent: p.independent, bytes: c.clone() });
            }
            out.push(MediaEvent::PartEnd { msn, part, duration: p.duration, ends_segment: i == last });
        }
        Some(out)
    }

    /// Oldest segment kept (complete or open).
    pub fn oldest_msn(&self) -> Option<u64> {
        self.segments.front().map(|s| s.msn)
    }

    /// Newest segment (open or complete).
    pub fn latest_msn(&self) -> Option<u64> {
        self.segments.back().map(|s| s.msn)
    }

    /// Newest complete segment.
    pub fn last_complete_msn(&self) -> Option<u64> {
        self.segments.iter().rev().find(|s| s.complete).map(|s| s.msn)
    }

    /// Whether segment `msn` is kept and complete.
    pub fn segment_complete(&self, msn: u64) -> bool {
        self.find(msn).is_some_and(|s| s.complete)
    }

    /// Newest complete part.
    pub fn last_complete_part(&self) -> Option<PartRef> {
        self.segments.iter().rev().find_map(|s| {
            let i = s.parts.iter().rposition(|p| p.complete)?;
            Some(PartRef { msn: s.msn, part: u32::try_from(i).ok()? })
        })
    }

    /// The part being written (opened, not complete).
    pub fn open_part(&self) -> Option<PartRef> {
        let seg = self.open_segment()?;
        seg.parts.last().filter(|p| !p.complete)?;
        Some(PartRef { msn: seg.msn, part: u32::try_from(seg.parts.len() - 1).ok()? })
    }

    /// The next part expected to open after the open one (if the segment goes on): the
    /// part after the open part, the next part of an open segment, or part 0 of the next
    /// segment. `None` before the first segment.
    pub fn next_part(&self) -> Option<PartRef> {
        let seg = self.segments.back()?;
        if seg.complete {
            return Some(PartRef { msn: seg.msn + 1, part: 0 });
        }
        Some(PartRef { msn: seg.msn, part: u32::try_from(seg.parts.len()).ok()? })
    }

    /// The part a playlist hints at (EXT-X-PRELOAD-HINT): the open part, else the next
    /// one. `None` when ended or empty.
    pub fn preload_hint(&self) -> Option<PartRef> {
        if self.ended {
            return None;
        }
        self.open_part().or_else(|| self.next_part())
    }

    /// The publisher went away (`End`) and nothing re-opened since.
    pub fn ended(&self) -> bool {
        self.ended
    }

    /// TARGETDURATION: ceiling of the longest segment seen, at least the configured target.
    pub fn target_duration_secs(&self) -> u64 {
        let configured = self.cfg.segment_target_ms.div_ceil(1000);
        // A little tolerance for float sums (2.0000001 s is a 2 s segment).
        let seen = (self.max_segment_secs - 0.001).ceil().max(0.0) as u64;
        configured.max(seen).max(1)
    }

    /// PART-TARGET in seconds: the configured target, or the longest part seen if longer.
    pub fn part_target_secs(&self) -> f64 {
        (self.cfg.part_target_ms as f64 / 1000.0).max(self.max_part_secs)
    }

    /// The LL-HLS media playlist of this window, with `uri_query` (e.g. `token=…`)
    /// appended to every URI. `None` until there is an init segment and a first part.
    pub fn media_playlist(&self, uri_query: Option<&str>) -> Option<String> {
        let first = self.segments.front()?;
        self.current_init?;
        let with_parts = self.cfg.playlist_part_segments;
        let open = usize::from(self.open_segment().is_some());
        let cutoff = self.segments.len().saturating_sub(with_parts + open);
        let segments = self
            .segments
            .iter()
            .enumerate()
            .map(|(i, s)| PlaylistSegment {
                msn: s.msn,
                duration: s.duration,
                complete: s.complete,
                init_id: s.init_id,
                discontinuity: s.discontinuity,
                program_date_time_unix_ms: s.pdt_unix_ms,
                parts: if i >= cutoff {
                    s.parts
                        .iter()
                        .filter(|p| p.complete)
                        .map(|p| PlaylistPart { duration: p.duration, independent: p.independent })
                        .collect()
                } else {
                    Vec::new()
                },
            })
            .collect();
        let pl = MediaPlaylist {
            target_duration: self.target_duration_secs(),
            part_target: self.part_target_secs(),
            media_sequence: first.msn,
            discontinuity_sequence: self.discontinuity_sequence,
            segments,
            preload_hint: self.preload_hint(),
            ended: self.ended,
            uri_query,
        };
        Some(playlist::write_media_playlist(&pl))
    }
}
