//! Publisher-side tasks: follow a rendition's window and push each part on its own stream
//! as its chunks appear (bounded in flight, oldest dropped first), and answer fetches.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use quinn::{Connection, SendStream, VarInt};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tracing::debug;

use super::Shared;
use super::gate::{GateHold, HistoryGate};
use crate::hub::Rendition;
use crate::relay::codec::{
    ControlMessage, ErrorCode, FetchHeader, InitSegment, PartHeader, PartTrailer, Position, ResetCode,
    StreamFrame,
};
use crate::relay::io::{self, StreamError};
use crate::window::{ChunkAt, LiveWindow, PartView};

/// Longest wait of a backfill part (or of the first live part while history is still in
/// flight) for a free in-flight slot before the oldest part in flight is dropped as for a
/// subscriber that fell behind.
const BACKFILL_SLOT_WAIT: Duration = Duration::from_secs(2);

/// Longest wait of a history part for fetches of the same connection to be queued.
const HISTORY_GATE_WAIT: Duration = Duration::from_secs(1);

/// What a stream carries, for its send priority.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Class {
    /// A live part: above everything, newer ones first.
    Live,
    /// A fetched segment: a viewer (or a gap) waits for it now.
    Fetch,
    /// A part of the history a fresh subscriber asked for: only when nothing else waits,
    /// so it never delays a fetch or the live edge.
    History,
}

/// Priority steps per class before the order wraps (once every 2^30 streams).
const SPAN: u64 = 1 << 30;

/// The send priority of a connection's next stream of class `class` (quinn sends higher
/// first): live parts (newer first) above fetches above history (newer first).
pub(super) fn priority(counter: &AtomicU64, class: Class) -> i32 {
    let n = (counter.fetch_add(1, Ordering::Relaxed) % SPAN) as i32;
    match class {
        Class::Live => 1 + n,
        Class::Fetch => 0,
        Class::History => n - SPAN as i32 - 1,
    }
}

/// What a subscription does next, decided under the window lock.
enum Step {
    Push { header: PartHeader, announce: Option<InitSegment> },
    Move(Position),
    Gap { first: Position, last: Position, to: Position },
    Ended,
    Wait,
}

fn step(w: &LiveWindow, id: u64, next: Option<Position>, announced: Option<u32>) -> Step {
    let Some(oldest) = w.oldest_msn() else {
        return if w.ended() { Step::Ended } else { Step::Wait };
    };
    let Some(next) = next else { return Step::Move(Position { msn: oldest, part: 0 }) };
    if let Some(p) = w.part(next.msn, next.part) {
        let announce = (announced != Some(p.init_id))
            .then(|| Some(InitSegment { id: p.init_id, info: w.info()?.clone(), bytes: w.init(p.init_id)? }))
            .flatten();
        let header = PartHeader {
            subscription: id,
            msn: next.msn,
            part: next.part,
            independent: p.independent,
            origin_ms: p.opened_unix_ms,
            init_id: p.init_id,
        };
        return Step::Push { header, announce };
    }
    if w.segment_complete(next.msn) {
        return Step::Move(Position { msn: next.msn + 1, part: 0 });
    }
    if next.msn < oldest {
        let last = Position { msn: oldest - 1, part: u32::MAX };
        return Step::Gap { first: next, last, to: Position { msn: oldest, part: 0 } };
    }
    if w.ended() { Step::Ended } else { Step::Wait }
}

struct InFlight {
    pos: Position,
    /// Part of the history the subscription started with.
    backfill: bool,
    cancel: oneshot::Sender<ResetCode>,
    task: JoinHandle<()>,
}

/// One subscription on one connection.
pub(super) struct Subscription {
    /// History waits on it (fetches first).
    pub(super) gate: Arc<HistoryGate>,
    /// Whether a fetch came with the subscribe (final once the gate opens): the history
    /// then waits `history_after_fetch` more.
    pub(super) with_fetch: Arc<AtomicBool>,
    pub(super) conn: Connection,
    pub(super) rendition: Arc<Rendition>,
    pub(super) id: u64,
    pub(super) ctl: mpsc::Sender<ControlMessage>,
    pub(super) prio: Arc<AtomicU64>,
    pub(super) shared: Arc<Shared>,
}

impl Subscription {
    /// Follows the window from `next` (`None`: from the first part that appears) until the
    /// task is aborted, the connection goes, or the rendition is removed.
    pub(super) async fn run(self, mut next: Option<Position>, mut announced: Option<u32>) {
        let mut rx = self.rendition.subscribe();
        let mut in_flight: VecDeque<InFlight> = VecDeque::new();
        let mut last_pushed: Option<Position> = None;
        let mut ended_sent = false;
        let max = self.shared.cfg.max_parts_in_flight.max(1);
        // The backfill: parts already complete when the subscription started (the history
        // a fresh subscriber asked for). They are all there to be sent at once, so they wait
        // for a free slot instead of pushing each other out; live parts never wait.
        let backfill_end = self.rendition.read(|w| w.last_complete_part());
        loop {
            in_flight.retain(|f| !f.task.is_finished());
            match self.rendition.read(|w| step(w, self.id, next, announced)) {
                Step::Push { header, announce } => {
                    if let Some(init) = announce {
                        announced = Some(init.id);
                        self.send(ControlMessage::Announce { subscription: self.id, init }).await;
                    }
                    let backfill =
                        backfill_end.is_some_and(|end| (header.msn, header.part) <= (end.msn, end.part));
                    if backfill {
                        self.gate.open(HISTORY_GATE_WAIT).await;
                        if self.with_fetch.swap(false, Ordering::Relaxed) {
                            let settle = self.shared.cfg.history_after_fetch;
                            debug!(
                                id = self.id,
                                ?settle,
                                "history after the fetch that came with the subscribe"
                            );
                            tokio::select! {
                                _ = tokio::time::sleep(settle) => {}
                                _ = self.conn.closed() => return,
                            }
                        }
                    }
                    // A live part right after the history waits too, rather than push out
                    // history parts still on their way.
                    let oldest_is_backfill = in_flight.front().is_some_and(|f| f.backfill);
                    if (backfill || oldest_is_backfill) && in_flight.len() >= max {
                        let oldest = in_flight.front_mut().map(|f| &mut f.task);
                        if let Some(task) = oldest {
                            tokio::select! {
                                _ = tokio::time::timeout(BACKFILL_SLOT_WAIT, task) => {}
                                _ = self.conn.closed() => return,
                            }
                        }
                        in_flight.retain(|f| !f.task.is_finished());
                    }
                    while in_flight.len() >= max {
                        let Some(old) = in_flight.pop_front() else { break };
                        if !old.task.is_finished() {
                            let _ = old.cancel.send(ResetCode::PartDropped);
                            self.shared.metrics.parts_dropped.inc();
                            debug!(
                                id = self.id,
                                msn = old.pos.msn,
                                part = old.pos.part,
                                "subscriber behind: part dropped"
                            );
                            self.send(ControlMessage::Gap {
                                subscription: self.id,
                                first: old.pos,
                                last: old.pos,
                            })
                            .await;
                        }
                    }
                    let pos = Position { msn: header.msn, part: header.part };
                    let (cancel, cancelled) = oneshot::channel();
                    let part = PartPush {
                        conn: self.conn.clone(),
                        rendition: self.rendition.clone(),
                        header,
                        prio: priority(&self.prio, if backfill { Class::History } else { Class::Live }),
                        shared: self.shared.clone(),
                    };
                    let task = tokio::spawn(part.run(cancelled));
                    in_flight.push_back(InFlight { pos, backfill, cancel, task });
                    last_pushed = Some(pos);
                    ended_sent = false;
                    next = Some(Position { msn: pos.msn, part: pos.part + 1 });
                    continue;
                }
                Step::Move(to) => {
                    next = Some(to);
                    continue;
                }
                Step::Gap { first, last, to } => {
                    self.send(ControlMessage::Gap { subscription: self.id, first, last }).await;
                    next = Some(to);
                    continue;
                }
                Step::Ended if !ended_sent => {
                    ended_sent = true;
                    self.send(ControlMessage::Ended { subscription: self.id, last: last_pushed }).await;
                }
                Step::Ended | Step::Wait => {}
            }
            if self.rendition.is_closed() {
                let message = "rendition removed".into();
                self.send(ControlMessage::Error { id: self.id, code: ErrorCode::NotFound, message }).await;
                return;
            }
            tokio::select! {
                r = rx.changed() => if r.is_err() { return },
                _ = self.conn.closed() => return,
            }
        }
    }

    async fn send(&self, msg: ControlMessage) {
        let _ = self.ctl.send(msg).await;
    }
}

/// One part stream.
struct PartPush {
    conn: Connection,
    rendition: Arc<Rendition>,
    header: PartHeader,
    prio: i32,
    shared: Arc<Shared>,
}

/// Why a part stream stopped early.
#[derive(Debug)]
enum Stop {
    Stream(StreamError),
    /// The part left the window, or the rendition was removed.
    Gone,
}

impl PartPush {
    async fn run(self, mut cancelled: oneshot::Receiver<ResetCode>) {
        let mut send = tokio::select! {
            biased;
            _ = &mut cancelled => return,
            s = self.conn.open_uni() => match s { Ok(s) => s, Err(_) => return },
        };
        let _ = send.set_priority(self.prio);
        let result = tokio::select! {
            biased;
            code = &mut cancelled => Err(code.unwrap_or(ResetCode::Cancelled)),
            r = self.write(&mut send) => Ok(r),
        };
        match result {
            Ok(Ok(())) => {
                let _ = send.finish();
                self.shared.metrics.parts_sent.inc();
            }
            Err(code) => {
                let _ = send.reset(VarInt::from_u32(code as u32));
            }
            Ok(Err(stop)) => {
                let reason = match &stop {
                    Stop::Stream(e) => e.to_string(),
                    Stop::Gone => "part left the window".into(),
                };
                debug!(msn = self.header.msn, part = self.header.part, %reason, "part stream stopped");
                let _ = send.reset(VarInt::from_u32(ResetCode::Cancelled as u32));
            }
        }
    }

    async fn write(&self, send: &mut SendStream) -> Result<(), Stop> {
        let h = self.header;
        let metrics = &self.shared.metrics;
        let n = io::write_frame(send, &StreamFrame::PartHeader(h)).await.map_err(Stop::Stream)?;
        metrics.bytes_sent.inc_by(n as u64);
        let mut rx = self.rendition.subscribe();
        let mut index = 0;
        loop {
            match self.rendition.read(|w| w.chunk_at(h.msn, h.part, index)) {
                ChunkAt::Ready(bytes) => {
                    let n = io::write_frame(send, &StreamFrame::Chunk(bytes)).await.map_err(Stop::Stream)?;
                    metrics.bytes_sent.inc_by(n as u64);
                    index += 1;
                }
                ChunkAt::Pending => {
                    if self.rendition.is_closed() || rx.changed().await.is_err() {
                        return Err(Stop::Gone);
                    }
                }
                ChunkAt::Done => {
                    let trailer = self.rendition.read(|w| trailer(w, h.msn, h.part)).ok_or(Stop::Gone)?;
                    let n = io::write_frame(send, &StreamFrame::PartTrailer(trailer))
                        .await
                        .map_err(Stop::Stream)?;
                    metrics.bytes_sent.inc_by(n as u64);
                    return Ok(());
                }
                ChunkAt::Missing => return Err(Stop::Gone),
            }
        }
    }
}

/// The trailer of a complete part: the segment ends with it when the segment is complete
/// and has no later part.
fn trailer(w: &LiveWindow, msn: u64, part: u32) -> Option<PartTrailer> {
    let p = w.part(msn, part)?;
    let ends_segment = w.segment_complete(msn) && w.part(msn, part + 1).is_none();
    Some(PartTrailer { duration: p.duration, ends_segment })
}

/// One fetch request.
pub(super) struct Fetch {
    /// Holds the connection's history until this fetch is queued (released at once when
    /// the segment is not complete yet).
    pub(super) hold: Option<GateHold>,
    pub(super) conn: Connection,
    pub(super) rendition: Arc<Rendition>,
    pub(super) request: u64,
    pub(super) subscription: u64,
    pub(super) msn: u64,
    pub(super) prio: i32,
    pub(super) ctl: mpsc::Sender<ControlMessage>,
    pub(super) shared: Arc<Shared>,
}

impl Fetch {
    pub(super) async fn run(mut self) {
        let msn = self.msn;
        if !self.rendition.read(|w| w.segment_complete(msn)) {
            // Waiting for a segment still being written must not hold the history back.
            self.hold = None;
        }
        let deadline = tokio::time::Instant::now() + self.shared.cfg.fetch_wait;
        let found = self
            .rendition
            .wait_for(deadline, |w| {
                if w.segment_complete(msn) {
                    let count = w.segment(msn)?.part_count;
                    let parts: Option<Vec<PartView>> = (0..count).map(|i| w.part(msn, i)).collect();
                    return Some(parts.ok_or(ErrorCode::NotFound));
                }
                match w.oldest_msn() {
                    Some(oldest) if msn < oldest => Some(Err(ErrorCode::NotFound)),
                    _ => None,
                }
            })
            .await;
        let parts = match found {
            Some(Ok(parts)) if !parts.is_empty() => parts,
            other => {
                let code = match other {
                    None => ErrorCode::NotReady,
                    Some(Err(c)) => c,
                    Some(Ok(_)) => ErrorCode::NotFound,
                };
                let message = format!("segment {msn}: {}", code.as_str());
                let _ = self.ctl.send(ControlMessage::Error { id: self.request, code, message }).await;
                return;
            }
        };
        let Ok(mut send) = self.conn.open_uni().await else { return };
        let _ = send.set_priority(self.prio);
        match self.write(&mut send, parts).await {
            Ok(()) => {
                debug!(request = self.request, msn, "fetch queued");
                let _ = send.finish();
                // The history waits until the subscriber has the whole segment (the stream
                // is acknowledged): sent alongside, it would take the CPU at both ends while
                // the viewer's first bytes are on their way. The gate bounds the wait.
                if self.hold.is_some() {
                    let _ = tokio::time::timeout(HISTORY_GATE_WAIT, send.stopped()).await;
                    debug!(request = self.request, msn, "fetch acknowledged");
                }
            }
            Err(_) => {
                let _ = send.reset(VarInt::from_u32(ResetCode::Cancelled as u32));
            }
        }
    }

    async fn write(&self, send: &mut SendStream, parts: Vec<PartView>) -> Result<(), StreamError> {
        let count = u32::try_from(parts.len()).unwrap_or(u32::MAX);
        let header = FetchHeader { request: self.request, msn: self.msn, parts: count };
        let mut n = io::write_frame(send, &StreamFrame::FetchHeader(header)).await?;
        let last = parts.len() - 1;
        for (i, p) in parts.into_iter().enumerate() {
            let h = PartHeader {
                subscription: self.subscription,
                msn: p.msn,
                part: p.part,
                independent: p.independent,
                origin_ms: p.opened_unix_ms,
                init_id: p.init_id,
            };
            n += io::write_frame(send, &StreamFrame::PartHeader(h)).await?;
            for c in p.chunks {
                n += io::write_frame(send, &StreamFrame::Chunk(c)).await?;
            }
            let t = PartTrailer { duration: p.duration, ends_segment: i == last };
            n += io::write_frame(send, &StreamFrame::PartTrailer(t)).await?;
        }
        self.shared.metrics.bytes_sent.inc_by(n as u64);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_parts_go_before_fetches_before_history() {
        let counter = AtomicU64::new(1);
        let history_old = priority(&counter, Class::History);
        let live_old = priority(&counter, Class::Live);
        let fetch = priority(&counter, Class::Fetch);
        let history_new = priority(&counter, Class::History);
        let live_new = priority(&counter, Class::Live);
        assert!(live_new > live_old, "newer live parts first");
        assert!(live_old > fetch, "live before fetches");
        assert!(fetch > history_new, "fetches before history");
        assert!(history_new > history_old, "newer history first, as for live parts");
    }
}
