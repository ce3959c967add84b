//! The live window of one rendition, sans-IO.
//!
//! A [`LiveWindow`] applies the [`MediaEvent`]s a packager (or the relay) produces and keeps
//! what HTTP delivery and the relay serve: initialization segments by generation id, the
//! last `max_segments` complete segments plus the open one, each a list of parts, each a
//! list of chunks ([`Bytes`], so views are cheap clones, never copies).
//!
//! Layout:
//! - `config`: [`WindowConfig`] (bounds and playlist targets).
//! - this file: state and [`LiveWindow::apply`] (validation, then mutation).
//! - `view`: read side: [`PartView`], [`SegmentView`], positions, the playlist glue.
//!
//! Rules enforced by `apply` (a rejected event leaves the window unchanged):
//! - a `Chunk` goes to the open part, or opens the next part of the open segment, or
//!   (no segment open) opens part 0 of a segment numbered after every kept one;
//! - a `PartEnd` closes the open part; `ends_segment` closes its segment;
//! - an `Init` comes while no segment is open; every `Init` after the first marks the next
//!   segment discontinuous; so does the first `Chunk` after `End`;
//! - a segment numbered more than one past the previous one (a gap) drops the kept segments
//!   (the playlist numbering must stay contiguous) and starts discontinuous;
//! - the parts of all kept segments hold at most `max_bytes`: a chunk that would pass it
//!   evicts the oldest complete segments first, and is refused when even the open segment
//!   alone would not fit.
//!
//! No clock inside: the caller passes `now_unix_ms`, recorded as the program date-time of
//! a segment when its first chunk arrives.

mod config;
mod view;

use std::collections::VecDeque;

use bytes::Bytes;

pub use config::WindowConfig;
pub use view::{ChunkAt, PartRef, PartView, SegmentView};

use crate::media::{MediaEvent, RenditionInfo};

/// Why an event was rejected. The window is unchanged after any of these.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum WindowError {
    /// A chunk arrived before any initialization segment.
    #[error("chunk before any init segment")]
    NoInit,
    /// A chunk that is neither for the open part nor for the next part.
    #[error("unexpected chunk for part {msn}.{part}")]
    UnexpectedChunk { msn: u64, part: u32 },
    /// A chunk that would open a segment not numbered after the kept ones.
    #[error("segment {msn} does not follow segment {last}")]
    StaleSegment { msn: u64, last: u64 },
    /// A part end that does not match the open part.
    #[error("unexpected end of part {msn}.{part}")]
    UnexpectedPartEnd { msn: u64, part: u32 },
    /// A part duration that is not a finite number of seconds in (0, 3600].
    #[error("invalid part duration {0}")]
    InvalidDuration(f64),
    /// An init segment while a segment is open.
    #[error("init segment while segment {msn} is open")]
    InitWhileOpen { msn: u64 },
    /// The part would exceed `max_part_bytes`.
    #[error("part exceeds {limit} bytes")]
    PartTooLarge { limit: usize },
    /// The part would exceed `max_chunks_per_part`.
    #[error("part exceeds {limit} chunks")]
    TooManyChunks { limit: usize },
    /// The window would exceed `max_bytes` even without its complete segments.
    #[error("window exceeds {limit} bytes")]
    WindowFull { limit: u64 },
    /// The segment would exceed `max_parts_per_segment`.
    #[error("segment exceeds {limit} parts")]
    TooManyParts { limit: u32 },
    /// The init segment exceeds `max_init_bytes`.
    #[error("init segment exceeds {limit} bytes")]
    InitTooLarge { limit: usize },
}

#[derive(Debug, Clone)]
struct InitEntry {
    id: u32,
    bytes: Bytes,
    info: RenditionInfo,
}

#[derive(Debug, Clone)]
struct Part {
    chunks: Vec<Bytes>,
    bytes: usize,
    complete: bool,
    duration: f64,
    independent: bool,
    opened_unix_ms: u64,
}

#[derive(Debug, Clone)]
struct Segment {
    msn: u64,
    parts: Vec<Part>,
    complete: bool,
    duration: f64,
    init_id: u32,
    discontinuity: bool,
    pdt_unix_ms: u64,
}

/// One rendition's live window. See the module docs for the rules.
#[derive(Debug, Clone)]
pub struct LiveWindow {
    cfg: WindowConfig,
    inits: Vec<InitEntry>,
    current_init: Option<u32>,
    /// Complete segments, then at most one open segment at the back.
    segments: VecDeque<Segment>,
    version: u64,
    seen_init: bool,
    pending_discontinuity: bool,
    ended: bool,
    discontinuity_sequence: u64,
    max_segment_secs: f64,
    max_part_secs: f64,
    /// Bytes of the parts of every kept segment.
    media_bytes: u64,
}

impl LiveWindow {
    /// An empty window bounded by `cfg`.
    pub fn new(cfg: WindowConfig) -> Self {
        LiveWindow {
            cfg,
            inits: Vec::new(),
            current_init: None,
            segments: VecDeque::new(),
            version: 0,
            seen_init: false,
            pending_discontinuity: false,
            ended: false,
            discontinuity_sequence: 0,
            max_segment_secs: 0.0,
            max_part_secs: 0.0,
            media_bytes: 0,
        }
    }

    /// The window's configuration.
    pub fn config(&self) -> &WindowConfig {
        &self.cfg
    }

    /// Replaces the configured part and segment targets (an edge learns them from its
    /// upstream). Counts as a change.
    pub fn set_targets(&mut self, part_target_ms: u64, segment_target_ms: u64) {
        self.cfg.part_target_ms = part_target_ms.max(1);
        self.cfg.segment_target_ms = segment_target_ms.max(1);
        self.version += 1;
    }

    /// Applies one event. On error the window is unchanged and the version stays.
    pub fn apply(&mut self, ev: MediaEvent, now_unix_ms: u64) -> Result<(), WindowError> {
        match ev {
            MediaEvent::Init { info, bytes } => self.apply_init(info, bytes)?,
            MediaEvent::Chunk { msn, part, independent, bytes } => {
                self.apply_chunk(msn, part, independent, bytes, now_unix_ms)?
            }
            MediaEvent::PartEnd { msn, part, duration, ends_segment } => {
                self.apply_part_end(msn, part, duration, ends_segment)?
            }
            MediaEvent::End => self.apply_end(),
        }
        self.version += 1;
        Ok(())
    }

    /// Drops the open segment, if any (for a relay that lost some of its parts), so that
    /// the next chunk may open a later segment. Counts as a change when something was open.
    pub fn abandon_open(&mut self) {
        if self.segments.back().is_some_and(|s| !s.complete) {
            if let Some(open) = self.segments.pop_back() {
                self.media_bytes -= segment_bytes(&open);
            }
            self.prune_inits();
            self.version += 1;
        }
    }

    /// Bytes of media held: the parts of every kept segment (init segments not included).
    pub fn media_bytes(&self) -> u64 {
        self.media_bytes
    }

    /// Bumps on every successful change.
    pub fn version(&self) -> u64 {
        self.version
    }

    fn open_segment(&self) -> Option<&Segment> {
        self.segments.back().filter(|s| !s.complete)
    }

    fn apply_init(&mut self, info: RenditionInfo, bytes: Bytes) -> Result<(), WindowError> {
        if let Some(seg) = self.open_segment() {
            return Err(WindowError::InitWhileOpen { msn: seg.msn });
        }
        if bytes.len() > self.cfg.max_init_bytes {
            return Err(WindowError::InitTooLarge { limit: self.cfg.max_init_bytes });
        }
        // The id is a hash of the bytes, so every node that applies the same init names it
        // the same way (stable URLs across origins and edges).
        let mut id = fnv1a32(&bytes);
        loop {
            match self.inits.iter_mut().find(|e| e.id == id) {
                Some(entry) if entry.bytes == bytes => {
                    entry.info = info;
                    break;
                }
                Some(_) => id = id.wrapping_add(1),
                None => {
                    self.inits.push(InitEntry { id, bytes, info });
                    break;
                }
            }
        }
        if self.seen_init {
            self.pending_discontinuity = true;
        }
        self.seen_init = true;
        self.current_init = Some(id);
        self.prune_inits();
        Ok(())
    }

    fn apply_chunk(
        &mut self,
        msn: u64,
        part: u32,
        independent: bool,
        bytes: Bytes,
        now_unix_ms: u64,
    ) -> Result<(), WindowError> {
        let init_id = self.current_init.ok_or(WindowError::NoInit)?;
        let max_bytes = self.cfg.max_part_bytes;
        let unexpected = WindowError::UnexpectedChunk { msn, part };
        if let Some(seg) = self.segments.back_mut().filter(|s| !s.complete) {
            if seg.msn != msn {
                return Err(unexpected);
            }
            let n = seg.parts.len();
            match seg.parts.last_mut().filter(|p| !p.complete) {
                Some(open) => {
                    if part as usize + 1 != n {
                        return Err(unexpected);
                    }
                    if open.chunks.len() >= self.cfg.max_chunks_per_part {
                        return Err(WindowError::TooManyChunks { limit: self.cfg.max_chunks_per_part });
                    }
                    if open.bytes + bytes.len() > max_bytes {
                        return Err(WindowError::PartTooLarge { limit: max_bytes });
                    }
                    self.make_room(bytes.len())?;
                    // Re-borrow: make_room only removes complete segments from the front.
                    let seg = self.segments.back_mut().filter(|s| !s.complete).ok_or(unexpected.clone())?;
                    let open = seg.parts.last_mut().filter(|p| !p.complete).ok_or(unexpected)?;
                    open.bytes += bytes.len();
                    self.media_bytes += bytes.len() as u64;
                    open.chunks.push(bytes);
                }
                None => {
                    if part as usize != n {
                        return Err(unexpected);
                    }
                    if part >= self.cfg.max_parts_per_segment {
                        return Err(WindowError::TooManyParts { limit: self.cfg.max_parts_per_segment });
                    }
                    if bytes.len() > max_bytes {
                        return Err(WindowError::PartTooLarge { limit: max_bytes });
                    }
                    self.make_room(bytes.len())?;
                    let seg = self.segments.back_mut().filter(|s| !s.complete).ok_or(unexpected)?;
                    self.media_bytes += bytes.len() as u64;
                    seg.parts.push(new_part(bytes, independent, now_unix_ms));
                }
            }
            return Ok(());
        }
        // No segment open: this chunk opens part 0 of a new segment.
        if part != 0 {
            return Err(unexpected);
        }
        let last = self.segments.back().map(|s| s.msn);
        if let Some(last) = last
            && msn <= last
        {
            return Err(WindowError::StaleSegment { msn, last });
        }
        if bytes.len() > max_bytes {
            return Err(WindowError::PartTooLarge { limit: max_bytes });
        }
        self.make_room(bytes.len())?;
        let gap = last.is_some_and(|last| msn > last + 1);
        if gap {
            while let Some(old) = self.segments.pop_front() {
                self.discontinuity_sequence += u64::from(old.discontinuity);
                self.media_bytes -= segment_bytes(&old);
            }
        }
        self.media_bytes += bytes.len() as u64;
        let discontinuity = self.pending_discontinuity || gap;
        self.pending_discontinuity = false;
        self.ended = false;
        self.segments.push_back(Segment {
            msn,
            parts: vec![new_part(bytes, independent, now_unix_ms)],
            complete: false,
            duration: 0.0,
            init_id,
            discontinuity,
            pdt_unix_ms: now_unix_ms,
        });
        self.prune_inits();
        Ok(())
    }

    fn apply_part_end(
        &mut self,
        msn: u64,
        part: u32,
        duration: f64,
        ends_segment: bool,
    ) -> Result<(), WindowError> {
        if !(duration.is_finite() && duration > 0.0 && duration <= 3600.0) {
            return Err(WindowError::InvalidDuration(duration));
        }
        let unexpected = WindowError::UnexpectedPartEnd { msn, part };
        let seg = self.segments.back_mut().filter(|s| !s.complete).ok_or(unexpected.clone())?;
        let n = seg.parts.len();
        if seg.msn != msn || part as usize + 1 != n {
            return Err(unexpected);
        }
        let open = seg.parts.last_mut().filter(|p| !p.complete).ok_or(unexpected)?;
        open.complete = true;
        open.duration = duration;
        seg.duration += duration;
        self.max_part_secs = self.max_part_secs.max(duration);
        if ends_segment {
            seg.complete = true;
            let secs = seg.duration;
            self.max_segment_secs = self.max_segment_secs.max(secs);
            self.evict();
        }
        Ok(())
    }

    fn apply_end(&mut self) {
        if let Some(seg) = self.segments.back_mut().filter(|s| !s.complete) {
            if seg.parts.last().is_some_and(|p| !p.complete)
                && let Some(p) = seg.parts.pop()
            {
                self.media_bytes -= p.bytes as u64;
            }
            if seg.parts.is_empty() {
                self.segments.pop_back();
            } else {
                seg.complete = true;
                let secs = seg.duration;
                self.max_segment_secs = self.max_segment_secs.max(secs);
            }
            self.evict();
        }
        self.ended = true;
        self.pending_discontinuity = true;
    }

    /// Keeps at most `max_segments` complete segments (plus the open one).
    fn evict(&mut self) {
        let complete = self.segments.iter().filter(|s| s.complete).count();
        let excess = complete.saturating_sub(self.cfg.max_segments);
        for _ in 0..excess {
            self.evict_oldest();
        }
        self.prune_inits();
    }

    fn evict_oldest(&mut self) {
        if let Some(old) = self.segments.pop_front() {
            self.discontinuity_sequence += u64::from(old.discontinuity);
            self.media_bytes -= segment_bytes(&old);
        }
    }

    /// Evicts the oldest complete segments until `add` more bytes fit in `max_bytes`; when
    /// they would not fit even with every complete segment gone, changes nothing and fails.
    fn make_room(&mut self, add: usize) -> Result<(), WindowError> {
        let limit = self.cfg.max_bytes;
        let add = add as u64;
        if self.media_bytes + add <= limit {
            return Ok(());
        }
        let open = self.open_segment().map_or(0, segment_bytes);
        if open + add > limit {
            return Err(WindowError::WindowFull { limit });
        }
        while self.media_bytes + add > limit && self.segments.front().is_some_and(|s| s.complete) {
            self.evict_oldest();
        }
        self.prune_inits();
        Ok(())
    }

    /// Keeps only inits that are current or referenced by a kept segment.
    fn prune_inits(&mut self) {
        let current = self.current_init;
        let segments = &self.segments;
        self.inits.retain(|e| Some(e.id) == current || segments.iter().any(|s| s.init_id == e.id));
    }
}

fn segment_bytes(s: &Segment) -> u64 {
    s.parts.iter().map(|p| p.bytes as u64).sum()
}

fn new_part(bytes: Bytes, independent: bool, now_unix_ms: u64) -> Part {
    Part {
        bytes: bytes.len(),
        chunks: vec![bytes],
        complete: false,
        duration: 0.0,
        independent,
        opened_unix_ms: now_unix_ms,
    }
}

/// 32-bit FNV-1a: a stable, dependency-free name for an init segment.
fn fnv1a32(bytes: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in bytes {
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}
