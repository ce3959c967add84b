//! A whole segment that is still arriving from upstream, readable while it arrives.
//!
//! A cold edge fetches a segment upstream for the first request; without this, every
//! waiting request would get its first byte only after the last one arrived (for a 340 KB
//! segment, most of the fetch time). The relay client writes the fetched chunks into an
//! [`ArrivingWriter`] as they come off the wire; any number of [`Arriving`] readers follow
//! it from the first chunk, each at its own pace, and a reader that joins late starts from
//! the beginning. Chunks are shared, never copied; the whole segment exists once, bounded by
//! what the fetch may carry.
//!
//! The end is explicit: [`ArrivingWriter::finish`] when the upstream closed the stream
//! cleanly, [`ArrivingWriter::fail`] otherwise. A writer dropped without either (the
//! connection went away) fails its readers with [`ArrivalError::BrokeOff`].

use bytes::{Bytes, BytesMut};
use tokio::sync::watch;
use tokio::time::Instant;

/// Why an arriving segment did not arrive whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ArrivalError {
    /// The fetch stream broke off (or the connection carrying it went away).
    #[error("the segment's fetch broke off")]
    BrokeOff,
    /// The segment was larger than a fetch may carry.
    #[error("the segment is larger than a fetch may carry")]
    TooLarge,
    /// Nothing new arrived before the reader's deadline.
    #[error("the segment's fetch stalled")]
    Stalled,
}

#[derive(Debug, Default)]
struct State {
    chunks: Vec<Bytes>,
    len: usize,
    end: Option<Result<(), ArrivalError>>,
}

/// The writing side: the relay client's fetch. See the module docs.
#[derive(Debug)]
pub struct ArrivingWriter {
    tx: watch::Sender<State>,
}

/// A reader of an arriving segment; clones read independently from the first chunk.
#[derive(Debug, Clone)]
pub struct Arriving {
    rx: watch::Receiver<State>,
}

/// A new arriving segment: its writer and a first reader.
pub fn arriving() -> (ArrivingWriter, Arriving) {
    let (tx, rx) = watch::channel(State::default());
    (ArrivingWriter { tx }, Arriving { rx })
}

impl ArrivingWriter {
    /// Appends a chunk (ignored after the end).
    pub fn push(&self, chunk: Bytes) {
        if chunk.is_empty() {
            return;
        }
        self.tx.send_if_modified(|s| {
            if s.end.is_some() {
                return false;
            }
            s.len += chunk.len();
            s.chunks.push(chunk);
            true
        });
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.tx.borrow().len
    }

    /// Whether nothing has been written yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The segment is complete.
    pub fn finish(self) {
        self.end(Ok(()));
    }

    /// The segment will not complete.
    pub fn fail(self, e: ArrivalError) {
        self.end(Err(e));
    }

    fn end(&self, result: Result<(), ArrivalError>) {
        self.tx.send_if_modified(|s| {
            if s.end.is_some() {
                return false;
            }
            s.end = Some(result);
            true
        });
    }
}

impl Drop for ArrivingWriter {
    fn drop(&mut self) {
        self.end(Err(ArrivalError::BrokeOff));
    }
}

impl Arriving {
    /// A segment that has already arrived whole.
    pub fn complete(whole: Bytes) -> Self {
        let (w, r) = arriving();
        w.push(whole);
        w.finish();
        r
    }

    /// The whole segment's chunks when it has arrived, `None` while it is arriving, the
    /// error when it failed.
    pub fn arrived(&self) -> Option<Result<Vec<Bytes>, ArrivalError>> {
        let s = self.rx.borrow();
        s.end.map(|end| end.map(|()| s.chunks.clone()))
    }

    /// Waits until the first chunk is there or the segment ended: `Ok` when there is
    /// something to send, the error when it failed before any byte.
    pub async fn started(&mut self, deadline: Instant) -> Result<(), ArrivalError> {
        let wait = self.rx.wait_for(|s| !s.chunks.is_empty() || s.end.is_some());
        match tokio::time::timeout_at(deadline, wait).await {
            Ok(Ok(s)) if !s.chunks.is_empty() => Ok(()),
            Ok(Ok(s)) => Err(s.end.and_then(Result::err).unwrap_or(ArrivalError::BrokeOff)),
            // The sender always ends before it drops, so this is not reached in practice.
            Ok(Err(_)) => Err(ArrivalError::BrokeOff),
            Err(_) => Err(ArrivalError::Stalled),
        }
    }

    /// The whole segment as one buffer once it has arrived (waits up to `deadline`).
    pub async fn whole(self, deadline: Instant) -> Result<Bytes, ArrivalError> {
        Ok(super::objects::join(&self.chunks_when_whole(deadline).await?))
    }

    /// The segment's chunks once it has arrived whole (waits up to `deadline`).
    pub async fn chunks_when_whole(mut self, deadline: Instant) -> Result<Vec<Bytes>, ArrivalError> {
        let wait = self.rx.wait_for(|s| s.end.is_some());
        let s = match tokio::time::timeout_at(deadline, wait).await {
            Ok(Ok(s)) => s,
            Ok(Err(_)) => return Err(ArrivalError::BrokeOff),
            Err(_) => return Err(ArrivalError::Stalled),
        };
        s.end.unwrap_or(Err(ArrivalError::BrokeOff))?;
        Ok(s.chunks.clone())
    }

    /// A reader from chunk `next` on, for a response body: each item joins the chunks
    /// that are there (at most `max_join` bytes of them, one copy) or passes a single chunk
    /// as is; it fails when nothing new comes within `stall` of the last item.
    pub fn stream(
        self,
        stall: std::time::Duration,
        max_join: usize,
    ) -> impl futures_util::Stream<Item = Result<Bytes, ArrivalError>> + Send + 'static {
        futures_util::stream::unfold((self, 0usize, false), move |(mut me, next, done)| async move {
            if done {
                return None;
            }
            let deadline = Instant::now() + stall;
            let wait = me.rx.wait_for(|s| s.chunks.len() > next || s.end.is_some());
            let item = match tokio::time::timeout_at(deadline, wait).await {
                Ok(Ok(s)) if s.chunks.len() > next => {
                    let (item, taken) = take_ready(&s.chunks[next..], max_join);
                    Some((Ok(item), next + taken))
                }
                Ok(Ok(s)) => match s.end {
                    Some(Ok(())) => None,
                    Some(Err(e)) => Some((Err(e), next)),
                    None => Some((Err(ArrivalError::BrokeOff), next)),
                },
                Ok(Err(_)) => Some((Err(ArrivalError::BrokeOff), next)),
                Err(_) => Some((Err(ArrivalError::Stalled), next)),
            };
            item.map(|(r, next)| {
                let failed = r.is_err();
                (r, (me, next, failed))
            })
        })
    }
}

/// The first of `ready` as is when alone (or when the next would pass `max_join`), else as
/// many as fit in `max_join` bytes joined into one buffer; and how many were taken.
fn take_ready(ready: &[Bytes], max_join: usize) -> (Bytes, usize) {
    coalesce(ready[0].clone(), |i| ready.get(i).cloned(), max_join)
}

/// `first` and the chunks `more(1)`, `more(2)`, … yields while they fit in `max` bytes in
/// all, joined into one buffer (one copy); `first` alone is passed as it is. Returns the
/// buffer and how many chunks it holds. Readers that fell behind send what piled up as one
/// body frame instead of one each.
pub fn coalesce(first: Bytes, mut more: impl FnMut(usize) -> Option<Bytes>, max: usize) -> (Bytes, usize) {
    let Some(second) = more(1).filter(|s| first.len() + s.len() <= max) else { return (first, 1) };
    let mut joined = BytesMut::with_capacity(first.len() + second.len());
    joined.extend_from_slice(&first);
    joined.extend_from_slice(&second);
    let mut n = 2;
    while let Some(next) = more(n) {
        if joined.len() + next.len() > max {
            break;
        }
        joined.extend_from_slice(&next);
        n += 1;
    }
    (joined.freeze(), n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;
    use std::time::Duration;

    fn soon() -> Instant {
        Instant::now() + Duration::from_secs(5)
    }

    #[tokio::test]
    async fn a_reader_gets_the_chunks_as_they_come_and_a_late_one_from_the_start() {
        let (w, r) = arriving();
        let mut first = Box::pin(r.clone().stream(Duration::from_secs(5), 0));
        w.push(Bytes::from_static(b"ab"));
        assert_eq!(first.next().await.unwrap().unwrap(), &b"ab"[..], "the first chunk before the end");
        w.push(Bytes::from_static(b"cd"));
        let late = r.clone();
        w.push(Bytes::from_static(b"ef"));
        w.finish();
        assert_eq!(first.next().await.unwrap().unwrap(), &b"cd"[..]);
        assert_eq!(first.next().await.unwrap().unwrap(), &b"ef"[..]);
        assert!(first.next().await.is_none(), "ends after the last chunk");
        let all: Vec<Bytes> =
            late.stream(Duration::from_secs(5), 1 << 20).map(|c| c.unwrap()).collect().await;
        assert_eq!(all, vec![Bytes::from_static(b"abcdef")], "ready chunks joined into one item");
        assert_eq!(r.whole(soon()).await.unwrap(), &b"abcdef"[..]);
    }

    #[tokio::test]
    async fn a_single_ready_chunk_is_passed_without_a_copy() {
        let (w, r) = arriving();
        let chunk = Bytes::from(vec![7u8; 1000]);
        w.push(chunk.clone());
        let mut s = Box::pin(r.stream(Duration::from_secs(5), 1 << 20));
        let got = s.next().await.unwrap().unwrap();
        assert_eq!(got.as_ptr(), chunk.as_ptr(), "the same memory");
    }

    #[tokio::test]
    async fn joining_stops_at_the_limit() {
        let (w, r) = arriving();
        for _ in 0..5 {
            w.push(Bytes::from(vec![1u8; 100]));
        }
        w.finish();
        let lens: Vec<usize> =
            r.stream(Duration::from_secs(5), 250).map(|c| c.unwrap().len()).collect().await;
        assert_eq!(lens, vec![200, 200, 100]);
    }

    #[tokio::test]
    async fn a_writer_dropped_midway_fails_its_readers_after_what_arrived() {
        let (w, r) = arriving();
        w.push(Bytes::from_static(b"ab"));
        let mut s = Box::pin(r.clone().stream(Duration::from_secs(5), 0));
        drop(w);
        assert_eq!(s.next().await.unwrap().unwrap(), &b"ab"[..]);
        assert_eq!(s.next().await.unwrap().unwrap_err(), ArrivalError::BrokeOff);
        assert!(s.next().await.is_none(), "nothing after the error");
        assert_eq!(r.clone().whole(soon()).await.unwrap_err(), ArrivalError::BrokeOff);
        assert_eq!(r.arrived(), Some(Err(ArrivalError::BrokeOff)));
    }

    #[tokio::test]
    async fn started_waits_for_the_first_chunk_or_the_failure() {
        let (w, mut r) = arriving();
        let early = Instant::now() + Duration::from_millis(20);
        assert_eq!(r.started(early).await.unwrap_err(), ArrivalError::Stalled, "nothing yet");
        let (w2, mut r2) = arriving();
        w2.fail(ArrivalError::TooLarge);
        assert_eq!(r2.started(soon()).await.unwrap_err(), ArrivalError::TooLarge);
        let waiter = tokio::spawn(async move { r.started(soon()).await });
        w.push(Bytes::from_static(b"x"));
        assert_eq!(waiter.await.unwrap(), Ok(()));
    }

    #[tokio::test]
    async fn a_stalled_fetch_ends_the_reader_at_its_deadline() {
        let (w, r) = arriving();
        w.push(Bytes::from_static(b"ab"));
        let mut s = Box::pin(r.stream(Duration::from_millis(30), 0));
        assert!(s.next().await.unwrap().is_ok());
        assert_eq!(s.next().await.unwrap().unwrap_err(), ArrivalError::Stalled);
        w.finish();
    }

    #[tokio::test]
    async fn chunks_after_the_end_are_ignored_and_complete_is_whole_at_once() {
        let (w, r) = arriving();
        w.push(Bytes::from_static(b"ab"));
        w.end(Ok(()));
        w.push(Bytes::from_static(b"zz"));
        assert_eq!(w.len(), 2);
        assert_eq!(r.arrived().unwrap().unwrap(), vec![Bytes::from_static(b"ab")]);
        let c = Arriving::complete(Bytes::from_static(b"whole"));
        assert_eq!(c.arrived().unwrap().unwrap(), vec![Bytes::from_static(b"whole")]);
    }
}
