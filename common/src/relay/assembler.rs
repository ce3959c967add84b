//! Subscriber-side ordering, sans-IO.
//!
//! Parts arrive on separate streams (and again from fetches or after a resubscribe), so
//! they can arrive out of order or twice. The [`Assembler`] of one subscription buffers
//! them (bounded) and turns them into the [`MediaEvent`]s a window accepts, in order: the
//! chunks of the next expected part as soon as they arrive, later parts once it is done,
//! an `Init` before the first part of a new generation, `End` after the last part.
//! Chunks already emitted are skipped by count when a part is delivered again.

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;

use super::codec::{InitSegment, PartHeader, PartTrailer, Position};
use crate::media::MediaEvent;

/// Init generations kept for parts that still need them.
const MAX_INITS: usize = 8;

/// What the subscriber does next, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Apply the event with `now_unix_ms` = the part's origin timestamp (so every tier
    /// records the origin's time).
    Apply(MediaEvent, u64),
    /// Drop the open segment of the window: its missing parts will not come.
    AbandonOpen,
}

/// Why a part was not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AssembleError {
    /// More than `max_parts` parts are waiting.
    #[error("reorder buffer full ({0} parts)")]
    Overflow(usize),
}

#[derive(Debug)]
struct PartBuf {
    /// Which delivery (stream) fills this buffer; others are ignored.
    owner: u64,
    header: PartHeader,
    chunks: Vec<Bytes>,
    trailer: Option<PartTrailer>,
}

/// Orders the parts of one subscription. See the module docs.
#[derive(Debug)]
pub struct Assembler {
    max_parts: usize,
    next: Option<Position>,
    /// Chunks of `next` already emitted.
    emitted: usize,
    last_applied: Option<Position>,
    current_init: Option<u32>,
    inits: HashMap<u32, InitSegment>,
    parts: BTreeMap<Position, PartBuf>,
    ended: Option<Option<Position>>,
}

impl Assembler {
    /// An assembler buffering at most `max_parts` parts; `current_init` is the init id the
    /// local window uses already, if any.
    pub fn new(max_parts: usize, current_init: Option<u32>) -> Self {
        Self {
            max_parts: max_parts.max(1),
            next: None,
            emitted: 0,
            last_applied: None,
            current_init,
            inits: HashMap::new(),
            parts: BTreeMap::new(),
            ended: None,
        }
    }

    /// The next part expected, once known.
    pub fn next(&self) -> Option<Position> {
        self.next
    }

    /// The segment to resubscribe from: the one the next part belongs to.
    pub fn resume_msn(&self) -> Option<u64> {
        self.next.map(|p| p.msn)
    }

    /// Number of parts buffered.
    pub fn buffered(&self) -> usize {
        self.parts.len()
    }

    /// A subscribe-ok said the publisher pushes from part 0 of `start_msn` (`None`: the
    /// publisher holds nothing yet and will push from its first part). A subscription that
    /// was inside an earlier segment the publisher no longer holds abandons it; one whose
    /// publisher holds nothing (it restarted) follows the first part it pushes.
    pub fn on_start(&mut self, start_msn: Option<u64>, out: &mut Vec<Action>) {
        match (self.next, start_msn) {
            (None, s) => self.next = s.map(|msn| Position { msn, part: 0 }),
            (Some(n), None) => {
                if n.part > 0 || self.emitted > 0 {
                    out.push(Action::AbandonOpen);
                }
                self.next = None;
                self.emitted = 0;
                self.parts.clear();
            }
            (Some(n), Some(s)) if s > n.msn => {
                if n.part > 0 || self.emitted > 0 {
                    out.push(Action::AbandonOpen);
                }
                self.jump(Position { msn: s, part: 0 });
            }
            _ => {}
        }
        self.drain(out);
    }

    fn jump(&mut self, to: Position) {
        self.next = Some(to);
        self.emitted = 0;
        self.parts = self.parts.split_off(&to);
    }

    /// An init generation (from subscribe-ok or an announce).
    pub fn on_init(&mut self, init: InitSegment, out: &mut Vec<Action>) {
        if self.inits.len() >= MAX_INITS
            && let Some(old) = self.inits.keys().copied().find(|id| Some(*id) != self.current_init)
        {
            self.inits.remove(&old);
        }
        self.inits.insert(init.id, init);
        self.drain(out);
    }

    /// A part header from delivery `owner` (a stream). Parts already applied are ignored,
    /// as is a second delivery of a part whose first one is still going.
    pub fn on_header(
        &mut self,
        owner: u64,
        h: PartHeader,
        out: &mut Vec<Action>,
    ) -> Result<(), AssembleError> {
        let pos = Position { msn: h.msn, part: h.part };
        if self.next.is_some_and(|n| pos < n) {
            return Ok(());
        }
        if self.parts.contains_key(&pos) {
            return Ok(());
        }
        if self.parts.len() >= self.max_parts {
            return Err(AssembleError::Overflow(self.max_parts));
        }
        self.parts.insert(pos, PartBuf { owner, header: h, chunks: Vec::new(), trailer: None });
        if self.next.is_none()
            && let Some(first) = self.parts.keys().find(|p| p.part == 0).copied()
        {
            self.next = Some(first);
        }
        self.drain(out);
        Ok(())
    }

    fn buf(&mut self, owner: u64, pos: Position) -> Option<&mut PartBuf> {
        self.parts.get_mut(&pos).filter(|b| b.owner == owner && b.trailer.is_none())
    }

    /// A chunk of part `pos` from delivery `owner`.
    pub fn on_chunk(&mut self, owner: u64, pos: Position, bytes: Bytes, out: &mut Vec<Action>) {
        if let Some(b) = self.buf(owner, pos) {
            b.chunks.push(bytes);
            if self.next == Some(pos) {
                self.drain(out);
            }
        }
    }

    /// The trailer of part `pos` from delivery `owner`.
    pub fn on_trailer(&mut self, owner: u64, pos: Position, t: PartTrailer, out: &mut Vec<Action>) {
        if let Some(b) = self.buf(owner, pos) {
            b.trailer = Some(t);
            self.drain(out);
        }
    }

    /// Delivery `owner` of part `pos` stopped before its trailer (reset or broken stream).
    /// A later delivery (a fetch) may bring it again.
    pub fn on_abort(&mut self, owner: u64, pos: Position) {
        if self.buf(owner, pos).is_some() {
            self.parts.remove(&pos);
        }
    }

    /// Where a fresh subscription continues when the local window already holds complete
    /// segments up to `msn - 1`.
    pub fn resume_at(&mut self, msn: u64) {
        self.jump(Position { msn, part: 0 });
    }

    /// The connection was lost: every delivery that had not finished is dropped (complete
    /// parts stay buffered).
    pub fn abort_deliveries(&mut self) {
        self.parts.retain(|_, b| b.trailer.is_some());
    }

    /// Segment `msn` cannot be had (a fetch failed): if the next part is in it, abandon the
    /// open segment and go on with the next segment.
    pub fn give_up(&mut self, msn: u64, out: &mut Vec<Action>) {
        if let Some(n) = self.next
            && n.msn == msn
        {
            if n.part > 0 || self.emitted > 0 {
                out.push(Action::AbandonOpen);
            }
            self.jump(Position { msn: msn + 1, part: 0 });
            self.drain(out);
        }
    }

    /// The publisher ended after pushing `last`.
    pub fn on_ended(&mut self, last: Option<Position>, out: &mut Vec<Action>) {
        self.ended = Some(last);
        self.drain(out);
    }

    /// Emits everything that can be applied now.
    fn drain(&mut self, out: &mut Vec<Action>) {
        while let Some(next) = self.next {
            let Some(b) = self.parts.get(&next) else { break };
            let h = b.header;
            if self.current_init != Some(h.init_id) {
                if next.part != 0 {
                    // A generation only changes at a segment start; trust the window's.
                    self.current_init = Some(h.init_id);
                } else {
                    let Some(init) = self.inits.get(&h.init_id) else { break };
                    out.push(Action::Apply(
                        MediaEvent::Init { info: init.info.clone(), bytes: init.bytes.clone() },
                        h.origin_ms,
                    ));
                    self.current_init = Some(h.init_id);
                }
            }
            for c in b.chunks.iter().skip(self.emitted) {
                out.push(Action::Apply(
                    MediaEvent::Chunk {
                        msn: next.msn,
                        part: next.part,
                        independent: h.independent,
                        bytes: c.clone(),
                    },
                    h.origin_ms,
                ));
            }
            self.emitted = self.emitted.max(b.chunks.len());
            let Some(t) = b.trailer else { break };
            out.push(Action::Apply(
                MediaEvent::PartEnd {
                    msn: next.msn,
                    part: next.part,
                    duration: t.duration,
                    ends_segment: t.ends_segment,
                },
                h.origin_ms,
            ));
            self.parts.remove(&next);
            self.last_applied = Some(next);
            self.next = Some(if t.ends_segment {
                Position { msn: next.msn + 1, part: 0 }
            } else {
                Position { msn: next.msn, part: next.part + 1 }
            });
            self.emitted = 0;
        }
        if let Some(last) = self.ended
            && (last.is_none() || last <= self.last_applied)
        {
            self.ended = None;
            out.push(Action::Apply(MediaEvent::End, 0));
            // What follows a restart opens a new segment.
            if let Some(n) = self.next
                && n.part > 0
            {
                self.jump(Position { msn: n.msn + 1, part: 0 });
            }
        }
    }
}

#[cfg(test)]
mod tests;
