//! Plain-TCP HTTP/1.1 connections, served without hyper's general path.
//!
//! A cached part or segment is a node's most repeated answer, and on a kept-alive connection
//! the HTTP layer around it costs more user time than the lookup itself: a full header map
//! built from every request and dropped after it, a response head encoded field by field.
//! Here a request head is parsed in place (`httparse`) and only the fields the handlers read
//! ([`super::handlers::READ_REQUEST_HEADERS`]) are kept; a response head is written in one
//! buffer and goes out in the same vectored write as the body's first bytes (or as its
//! `sendfile`, see [`crate::zero_copy`]).
//!
//! Everything else stays as it is: the same [`Delivery::handle`] answers every request
//! (tokens, metrics, HEAD, held reloads, parts streamed with chunked framing as they are
//! written), requests may be pipelined, and a connection that opens with the HTTP/2 preface
//! (prior knowledge) is handed to hyper with the bytes read so far ([`Rewind`]).
//!
//! Layout: `request` (request heads, sans-IO), `response` (response heads and chunked
//! framing, sans-IO), this file (the connection loop, `Date`, the hand-off), `rewind`.

mod request;
mod response;
mod rewind;

use std::io::IoSlice;
use std::net::IpAddr;
use std::sync::Arc;

use bytes::{Buf, Bytes, BytesMut};
use http::{Method, StatusCode};
use http_body_util::BodyExt;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;

pub(crate) use rewind::Rewind;

use self::request::{RequestBody, RequestHead};
pub(super) use self::response::field_lines;
use self::response::{CHUNK_END, Framing, LAST_CHUNK, chunk_size_line, write_head};
use super::body::DeliveryBody;
use super::handlers::Target;
use super::idle::Activity;
use super::metrics::Active;
use super::{Delivery, handlers};
use crate::sharded::{ShardedCounter, ShardedGauge};

/// What a connection's client sends first when it speaks HTTP/2 with prior knowledge.
const HTTP2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// Read buffer grown by this much when it runs short.
const READ_CHUNK: usize = 4096;
/// A request body up to this size is read and discarded (delivery takes none); a larger one,
/// or one with a transfer coding, is refused with 413 and the connection closed.
const MAX_DISCARDED_BODY: u64 = 64 * 1024;
/// Most buffers in one vectored write (a segment from the object cache is one buffer; a
/// part is a few).
const MAX_SLICES: usize = 16;

/// How a connection ended.
pub(crate) enum Served<S> {
    /// Closed by either side, or refused.
    Closed,
    /// It speaks HTTP/2: the stream, with what was read of it so far.
    Http2(Rewind<S>),
}

/// Serves HTTP/1.x requests on `io` until the client closes, a response closes the
/// connection, or `draining` turns true (then after the response in progress). `activity`
/// counts its requests for the idle check.
pub(crate) async fn serve_connection<S>(
    mut io: S,
    delivery: &Delivery,
    client: IpAddr,
    activity: &Arc<Activity>,
    draining: watch::Receiver<bool>,
) -> std::io::Result<Served<S>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    // One wait for the drain for the whole connection: made again for every request, its
    // registration and removal would be paid on every kept-alive wait.
    let mut drain_wait = draining.clone();
    let drained = async move {
        let _ = drain_wait.wait_for(|d| *d).await;
    };
    tokio::pin!(drained);
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    let mut out = Vec::with_capacity(512);
    let mut frames = Vec::new();
    // The request's path and query, kept past the head's bytes (read over by the next).
    let mut target = String::new();
    let mut first = true;
    loop {
        let head = loop {
            if first {
                let n = buf.len().min(HTTP2_PREFACE.len());
                if buf[..n] == HTTP2_PREFACE[..n] {
                    if n == HTTP2_PREFACE.len() {
                        return Ok(Served::Http2(Rewind::new(buf.freeze(), io)));
                    }
                } else {
                    first = false;
                }
            }
            if !first || buf.len() >= HTTP2_PREFACE.len() {
                match request::parse(&buf, handlers::READ_REQUEST_HEADERS) {
                    Ok(Some(head)) => break head,
                    Ok(None) => {}
                    Err(e) => {
                        tracing::debug!(%client, error = %e, "request head refused");
                        refuse(&mut io, &mut out, e.status(), &e.to_string()).await;
                        return Ok(Served::Closed);
                    }
                }
            }
            if buf.capacity() - buf.len() < READ_CHUNK / 4 {
                buf.reserve(READ_CHUNK);
            }
            let read = if buf.is_empty() {
                // Between requests: a drain closes the connection.
                tokio::select! {
                    biased;
                    n = io.read_buf(&mut buf) => n?,
                    () = &mut drained => return Ok(Served::Closed),
                }
            } else {
                io.read_buf(&mut buf).await?
            };
            if read == 0 {
                return Ok(Served::Closed);
            }
        };
        first = false;
        target.clear();
        target.push_str(head.target.path_and_query(&buf));
        buf.advance(head.len);
        let keep_alive = match head.body {
            RequestBody::None => head.keep_alive,
            RequestBody::Length(n) if n <= MAX_DISCARDED_BODY => {
                if !discard(&mut io, &mut buf, n).await? {
                    return Ok(Served::Closed);
                }
                head.keep_alive
            }
            RequestBody::Length(_) | RequestBody::Encoded => {
                refuse(&mut io, &mut out, StatusCode::PAYLOAD_TOO_LARGE, "request bodies are not accepted")
                    .await;
                return Ok(Served::Closed);
            }
        };
        let keep_alive = respond(
            &mut io,
            delivery,
            client,
            activity,
            (head, &target),
            keep_alive,
            &draining,
            &mut out,
            &mut frames,
        )
        .await?;
        if !keep_alive {
            let _ = io.shutdown().await;
            return Ok(Served::Closed);
        }
    }
}

/// Answers one request; returns whether the connection stays open.
#[allow(clippy::too_many_arguments)]
async fn respond<S>(
    io: &mut S,
    delivery: &Delivery,
    client: IpAddr,
    activity: &Arc<Activity>,
    (head, target): (RequestHead, &str),
    keep_alive: bool,
    draining: &watch::Receiver<bool>,
    out: &mut Vec<u8>,
    frames: &mut Vec<Bytes>,
) -> std::io::Result<bool>
where
    S: AsyncWrite + Unpin,
{
    let _in_progress = activity.request();
    let active = delivery.metrics.active();
    let (http10, is_head) = (head.http10, head.method == Method::HEAD);
    let (path, query) = match target.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (target, None),
    };
    let req = Target { method: &head.method, path, query, headers: &head.headers };
    let (kind, resp, media) = delivery.answer(req, client).await;
    let (parts, body) = resp.into_parts();
    let framing = Framing::of(parts.status, is_head, body.exact_len(), http10);
    let keep_alive = keep_alive && framing != Framing::UntilClose && !*draining.borrow();
    let fields = if media { delivery.media_fields() } else { &[] };
    out.clear();
    with_date(|date| {
        write_head(out, parts.status, fields, &parts.headers, framing, keep_alive, http10, date)
    });
    let counting = Counting { bytes: delivery.metrics.bytes(kind), _active: active };
    send_body(io, out, body, framing, frames, Some(counting)).await?;
    Ok(keep_alive)
}

/// A request's counting: its body bytes, and it as active until the guard drops.
struct Counting<'a> {
    bytes: &'a ShardedCounter,
    _active: Active<&'a ShardedGauge>,
}

/// Writes `head` and then `body` framed as `framing`. Buffers of a body of known length go
/// out together with the head, up to [`MAX_SLICES`] per write. The body is dropped (ending
/// the request's count as active) once its last buffer is taken, before the last write, as
/// hyper does: a client that has read the response never sees its request still active.
/// `counting` counts the body's bytes as they are taken and ends with the body.
async fn send_body<S>(
    io: &mut S,
    head: &[u8],
    body: DeliveryBody,
    framing: Framing,
    frames: &mut Vec<Bytes>,
    counting: Option<Counting<'_>>,
) -> std::io::Result<()>
where
    S: AsyncWrite + Unpin,
{
    match framing {
        Framing::NoBody => {
            drop((body, counting));
            io.write_all(head).await
        }
        Framing::Length(_) => {
            let mut body = body;
            frames.clear();
            while let Some(frame) = body.frame().await {
                if let Ok(data) = frame.map_err(std::io::Error::other)?.into_data() {
                    count(&counting, &data);
                    frames.push(data);
                }
            }
            drop((body, counting));
            let mut pieces = std::iter::once(head).chain(frames.iter().map(|b| &b[..]));
            let result = write_pieces(io, &mut pieces).await;
            frames.clear();
            result
        }
        Framing::Chunked | Framing::UntilClose => {
            let mut body = body;
            let chunked = framing == Framing::Chunked;
            let mut head = Some(head);
            while let Some(frame) = body.frame().await {
                let Ok(data) = frame.map_err(std::io::Error::other)?.into_data() else { continue };
                if data.is_empty() {
                    continue;
                }
                count(&counting, &data);
                let (line, n) = chunk_size_line(data.len());
                let framed: [&[u8]; 3] =
                    if chunked { [&line[..n], &data, CHUNK_END] } else { [&[], &data, &[]] };
                let mut pieces = head.take().into_iter().chain(framed);
                write_pieces(io, &mut pieces).await?;
            }
            drop((body, counting));
            let end: &[u8] = if chunked { LAST_CHUNK } else { &[] };
            let mut pieces = head.take().into_iter().chain([end]);
            write_pieces(io, &mut pieces).await
        }
    }
}

fn count(counting: &Option<Counting<'_>>, data: &[u8]) {
    if let Some(c) = counting {
        c.bytes.inc_by(data.len() as u64);
    }
}

/// Writes every buffer `pieces` yields, in order, with vectored writes.
async fn write_pieces<'a, S>(io: &mut S, pieces: &mut impl Iterator<Item = &'a [u8]>) -> std::io::Result<()>
where
    S: AsyncWrite + Unpin,
{
    let mut slots = [IoSlice::new(&[]); MAX_SLICES];
    loop {
        let mut used = 0;
        for piece in pieces.by_ref().filter(|p| !p.is_empty()) {
            slots[used] = IoSlice::new(piece);
            used += 1;
            if used == MAX_SLICES {
                break;
            }
        }
        if used == 0 {
            return Ok(());
        }
        let mut slices = &mut slots[..used];
        while !slices.is_empty() {
            let n = io.write_vectored(slices).await?;
            if n == 0 {
                return Err(std::io::ErrorKind::WriteZero.into());
            }
            IoSlice::advance_slices(&mut slices, n);
        }
    }
}

/// Reads and drops `len` body bytes (from `buf` first); `false` when the client closed.
async fn discard<S>(io: &mut S, buf: &mut BytesMut, len: u64) -> std::io::Result<bool>
where
    S: AsyncRead + Unpin,
{
    let mut left = len;
    loop {
        let take = left.min(buf.len() as u64) as usize;
        buf.advance(take);
        left -= take as u64;
        if left == 0 {
            return Ok(true);
        }
        buf.reserve(READ_CHUNK);
        if io.read_buf(buf).await? == 0 {
            return Ok(false);
        }
    }
}

/// Answers `status` with `message` as plain text (the handlers' own error response) and
/// closes (nothing else is read).
async fn refuse<S>(io: &mut S, out: &mut Vec<u8>, status: StatusCode, message: &str)
where
    S: AsyncWrite + Unpin,
{
    let (parts, body) = handlers::text(status, message).into_parts();
    let framing = Framing::of(parts.status, false, body.exact_len(), false);
    out.clear();
    with_date(|date| write_head(out, parts.status, &[], &parts.headers, framing, false, false, date));
    let _ = send_body(io, out, body, framing, &mut Vec::new(), None).await;
    let _ = io.shutdown().await;
}

/// Calls `f` with the current `Date` value, formatted once per second per thread.
fn with_date<R>(f: impl FnOnce(&[u8]) -> R) -> R {
    use std::cell::RefCell;
    use std::time::{SystemTime, UNIX_EPOCH};
    thread_local! {
        static DATE: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
    }
    let now = SystemTime::now();
    let second = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    DATE.with(|cell| {
        let mut cached = cell.borrow_mut();
        if cached.0 != second {
            *cached = (second, httpdate::fmt_http_date(now));
        }
        f(cached.1.as_bytes())
    })
}
