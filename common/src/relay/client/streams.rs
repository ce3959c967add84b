//! One task per incoming unidirectional stream: decodes its frames and forwards them to
//! the driver through a bounded queue (so a slow driver slows the streams, never memory).

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use quinn::RecvStream;
use tokio::sync::mpsc;

use crate::relay::codec::{CodecError, PartHeader, PartTrailer, Position, StreamDecoder, StreamFrame};
use crate::relay::io::{self, StreamError};
use crate::relay::metrics::RelayClientMetrics;

/// What a stream reader reports. `token` names the stream (a delivery).
#[derive(Debug)]
pub(super) enum Event {
    Header {
        token: u64,
        header: PartHeader,
        /// The fetch request this part answers (a fetch stream), if any.
        fetch: Option<u64>,
    },
    Chunk {
        token: u64,
        sub: u64,
        pos: Position,
        bytes: Bytes,
    },
    Trailer {
        token: u64,
        sub: u64,
        pos: Position,
        trailer: PartTrailer,
    },
    /// The delivery of a part stopped before its trailer.
    Abort {
        token: u64,
        sub: u64,
        pos: Position,
    },
    /// A fetch stream ended, complete or not.
    FetchDone {
        request: u64,
        ok: bool,
    },
    /// The stream broke the protocol: the connection must be closed.
    Malformed(CodecError),
}

fn now_unix_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// Reads stream `token` to its end.
pub(super) async fn read_stream(
    mut recv: RecvStream,
    token: u64,
    tx: mpsc::Sender<Event>,
    metrics: RelayClientMetrics,
) {
    let mut dec = StreamDecoder::new();
    let mut buf = BytesMut::new();
    let mut current: Option<(u64, Position)> = None;
    let mut fetch: Option<u64> = None;
    let mut first_chunk: Option<u64> = None;
    loop {
        let ev = match io::read_frame(&mut recv, &mut dec, &mut buf).await {
            Ok(Some(StreamFrame::FetchHeader(h))) => {
                fetch = Some(h.request);
                continue;
            }
            Ok(Some(StreamFrame::PartHeader(header))) => {
                current = Some((header.subscription, Position { msn: header.msn, part: header.part }));
                // Delay is measured on pushed parts only (fetched ones are old on purpose).
                first_chunk = fetch.is_none().then_some(header.origin_ms);
                Event::Header { token, header, fetch }
            }
            Ok(Some(StreamFrame::Chunk(bytes))) => {
                let Some((sub, pos)) = current else { continue };
                metrics.upstream_bytes.inc_by(bytes.len() as u64);
                if let Some(origin_ms) = first_chunk.take() {
                    metrics.part_delay.observe(now_unix_ms().saturating_sub(origin_ms) as f64 / 1000.0);
                }
                Event::Chunk { token, sub, pos, bytes }
            }
            Ok(Some(StreamFrame::PartTrailer(trailer))) => {
                let Some((sub, pos)) = current.take() else { continue };
                metrics.upstream_objects.inc();
                Event::Trailer { token, sub, pos, trailer }
            }
            Ok(None) => {
                if let Some(request) = fetch {
                    let _ = tx.send(Event::FetchDone { request, ok: true }).await;
                }
                return;
            }
            Err(e) => {
                if let StreamError::Codec(e) = e {
                    let _ = tx.send(Event::Malformed(e)).await;
                    return;
                }
                if let Some((sub, pos)) = current {
                    let _ = tx.send(Event::Abort { token, sub, pos }).await;
                }
                if let Some(request) = fetch {
                    let _ = tx.send(Event::FetchDone { request, ok: false }).await;
                }
                return;
            }
        };
        if tx.send(ev).await.is_err() {
            return;
        }
    }
}
