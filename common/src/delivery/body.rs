//! Response bodies: a whole buffer, a list of chunks (a segment or a complete part, no
//! copy), or a stream that follows a part while it is written.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::Stream;
use http_body::{Body, Frame, SizeHint};

use super::idle::InProgress;
use super::metrics::{ActiveGuard, BodyBytes};

/// Why a streamed body stopped before its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    /// The part left the window (dropped or evicted) before it was complete.
    #[error("part disappeared while streaming")]
    PartGone,
    /// No new chunk came within the hold deadline.
    #[error("part stalled")]
    Stalled,
    /// A segment fetched upstream did not arrive whole.
    #[error(transparent)]
    Fetch(#[from] crate::hub::ArrivalError),
}

type ChunkStream = Pin<Box<dyn Stream<Item = Result<Bytes, BodyError>> + Send>>;

enum Inner {
    Empty,
    /// One buffer: a single frame.
    Full(Option<Bytes>),
    Chunks {
        chunks: std::vec::IntoIter<Bytes>,
        remaining: u64,
    },
    Stream(ChunkStream),
}

/// The body of every delivery response. Counts the bytes it yields and keeps the request
/// counted as active (and its connection as busy) until it is dropped.
pub struct DeliveryBody {
    inner: Inner,
    sent: Option<BodyBytes>,
    _active: Option<ActiveGuard>,
    _in_progress: Option<InProgress>,
    /// The response's fields are the media template's and its own (see
    /// `Delivery::answer`).
    media_fields: bool,
}

impl std::fmt::Debug for DeliveryBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeliveryBody").finish_non_exhaustive()
    }
}

impl DeliveryBody {
    fn new(inner: Inner) -> Self {
        DeliveryBody { inner, sent: None, _active: None, _in_progress: None, media_fields: false }
    }

    /// No body.
    pub fn empty() -> Self {
        Self::new(Inner::Empty)
    }

    /// One buffer, sent as a single frame.
    pub fn full(bytes: impl Into<Bytes>) -> Self {
        let bytes = bytes.into();
        Self::new(Inner::Full((!bytes.is_empty()).then_some(bytes)))
    }

    /// Buffers sent in order, without copying.
    pub fn chunks(chunks: Vec<Bytes>) -> Self {
        let remaining = chunks.iter().map(|c| c.len() as u64).sum();
        Self::new(Inner::Chunks { chunks: chunks.into_iter(), remaining })
    }

    /// A body that yields whatever `stream` yields.
    pub fn stream(stream: impl Stream<Item = Result<Bytes, BodyError>> + Send + 'static) -> Self {
        Self::new(Inner::Stream(Box::pin(stream)))
    }

    pub(crate) fn counted(mut self, sent: BodyBytes, active: ActiveGuard) -> Self {
        self.sent = Some(sent);
        self._active = Some(active);
        self
    }

    /// Marks the response as carrying the media template's fields.
    pub(crate) fn with_media_fields(mut self) -> Self {
        self.media_fields = true;
        self
    }

    pub(crate) fn has_media_fields(&self) -> bool {
        self.media_fields
    }

    /// Keeps the request's connection busy until the body is dropped (see `super::idle`).
    pub(crate) fn hold_connection(&mut self, request: InProgress) {
        self._in_progress = Some(request);
    }

    /// Exact length when known (not for streams).
    pub fn exact_len(&self) -> Option<u64> {
        match &self.inner {
            Inner::Empty => Some(0),
            Inner::Full(b) => Some(b.as_ref().map_or(0, |b| b.len() as u64)),
            Inner::Chunks { remaining, .. } => Some(*remaining),
            Inner::Stream(_) => None,
        }
    }

    fn count(&self, n: usize) {
        if let Some(c) = &self.sent {
            c.inc_by(n as u64);
        }
    }
}

impl Body for DeliveryBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = &mut *self;
        let next = match &mut this.inner {
            Inner::Empty => None,
            Inner::Full(b) => b.take().map(Ok),
            Inner::Chunks { chunks, remaining } => chunks.next().map(|c| {
                *remaining -= c.len() as u64;
                Ok(c)
            }),
            Inner::Stream(s) => match s.as_mut().poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(item) => item,
            },
        };
        if let Some(Ok(c)) = &next {
            this.count(c.len());
        }
        Poll::Ready(next.map(|r| r.map(Frame::data)))
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Inner::Empty => true,
            Inner::Full(b) => b.is_none(),
            Inner::Chunks { remaining, chunks } => *remaining == 0 && chunks.len() == 0,
            Inner::Stream(_) => false,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self.exact_len() {
            Some(n) => SizeHint::with_exact(n),
            None => SizeHint::default(),
        }
    }
}
