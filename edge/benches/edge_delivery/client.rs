//! A minimal HTTP/1.1 client on a raw TCP stream (one request per connection), timing the
//! first byte of the response body and, optionally, the arrival of every frame marker.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;

use crate::feed::{MARKER, STAMP_LEN};

/// What one request saw.
#[derive(Debug, Default)]
pub struct Fetch {
    pub status: u16,
    /// From the caller's `start` to the first body byte.
    pub ttfb: Option<Duration>,
    /// The body with any chunked framing removed, so responses sent whole and responses
    /// streamed as they were written compare alike.
    pub body: Vec<u8>,
    /// (frame number, arrival) of every marker seen in the body.
    pub frames: Vec<(u64, Instant)>,
}

pub async fn connect(addr: SocketAddr) -> std::io::Result<TcpStream> {
    let s = TcpStream::connect(addr).await?;
    s.set_nodelay(true)?;
    Ok(s)
}

/// Read size once the first body byte is in.
const BULK_READ: usize = 64 * 1024;

/// Connects, then [`fetch_on`].
pub async fn fetch(addr: SocketAddr, path: &str, scan: bool, first: Option<oneshot::Sender<()>>) -> Fetch {
    let start = Instant::now();
    match connect(addr).await {
        Ok(s) => fetch_on(s, path, start, scan, first).await,
        Err(_) => Fetch::default(),
    }
}

/// Sends `GET path` on `s` and reads the response to its end (the server closes).
pub async fn fetch_on(
    mut s: TcpStream,
    path: &str,
    start: Instant,
    scan: bool,
    mut first: Option<oneshot::Sender<()>>,
) -> Fetch {
    let mut out = Fetch::default();
    let req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).await.is_err() {
        return out;
    }
    let mut head: Vec<u8> = Vec::new();
    let mut in_body = false;
    let mut carry: Vec<u8> = Vec::new();
    // Small reads until the first body byte, then large ones: the first byte's instant is
    // not to include copying a large first read, and once it is taken the task lets the
    // others take theirs before it reads the rest (hundreds of clients on two cores: a
    // client reading a whole 340 KB body first would charge that to the next one's figure).
    let mut buf = vec![0u8; 4 * 1024];
    let mut body = Dechunk::default();
    loop {
        if out.ttfb.is_some() && buf.len() < BULK_READ {
            buf.resize(BULK_READ, 0);
            tokio::task::yield_now().await;
        }
        let n = match tokio::time::timeout(Duration::from_secs(15), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(n)) => n,
        };
        let now = Instant::now();
        let mut data = &buf[..n];
        if !in_body {
            head.extend_from_slice(data);
            let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") else {
                if head.len() > 64 * 1024 {
                    break;
                }
                continue;
            };
            out.status = std::str::from_utf8(head.get(9..12).unwrap_or_default())
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            in_body = true;
            body.chunked =
                String::from_utf8_lossy(&head).to_ascii_lowercase().contains("transfer-encoding: chunked");
            let body_start = end + 4 - (head.len() - n);
            data = &buf[body_start.min(n)..n];
        }
        if data.is_empty() {
            continue;
        }
        if out.ttfb.is_none() {
            out.ttfb = Some(now - start);
            if let Some(tx) = first.take() {
                let _ = tx.send(());
            }
        }
        body.feed(data);
        if scan {
            carry.extend_from_slice(data);
            let mut i = 0;
            while i + STAMP_LEN <= carry.len() {
                if carry[i..i + MARKER.len()] == MARKER[..] {
                    let mut id = [0u8; 8];
                    id.copy_from_slice(&carry[i + MARKER.len()..i + STAMP_LEN]);
                    out.frames.push((u64::from_le_bytes(id), now));
                    i += STAMP_LEN;
                } else {
                    i += 1;
                }
            }
            let keep = carry.len().saturating_sub(STAMP_LEN - 1).max(i.min(carry.len()));
            carry.drain(..keep);
        }
    }
    out.body = body.body;
    out
}

/// Removes HTTP/1.1 chunked framing from a body fed piece by piece.
#[derive(Default)]
struct Dechunk {
    chunked: bool,
    /// Bytes left of the current chunk's data; `None` while reading a size line.
    left: Option<usize>,
    size_line: Vec<u8>,
    /// CR LF after a chunk's data still to skip.
    skip: usize,
    body: Vec<u8>,
}

impl Dechunk {
    fn take(&mut self, data: &[u8]) {
        self.body.extend_from_slice(data);
    }

    fn feed(&mut self, mut data: &[u8]) {
        if !self.chunked {
            self.take(data);
            return;
        }
        while !data.is_empty() {
            if self.skip > 0 {
                let n = self.skip.min(data.len());
                self.skip -= n;
                data = &data[n..];
                continue;
            }
            match self.left {
                Some(left) => {
                    let n = left.min(data.len());
                    self.take(&data[..n]);
                    data = &data[n..];
                    self.left = if left == n {
                        self.skip = 2;
                        None
                    } else {
                        Some(left - n)
                    };
                }
                None => {
                    let Some(nl) = data.iter().position(|b| *b == b'\n') else {
                        self.size_line.extend_from_slice(data);
                        return;
                    };
                    self.size_line.extend_from_slice(&data[..nl]);
                    data = &data[nl + 1..];
                    let line = String::from_utf8_lossy(&self.size_line).into_owned();
                    self.size_line.clear();
                    let hex = line.split(';').next().unwrap_or("").trim();
                    match usize::from_str_radix(hex, 16) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => self.left = Some(n),
                    }
                }
            }
        }
    }
}

/// The value at quantile `q` (0..=1) of sorted `v`.
pub fn quantile(v: &[f64], q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let i = ((v.len() - 1) as f64 * q).round() as usize;
    v[i.min(v.len() - 1)]
}

/// The median of `v`: the middle value, or the mean of the two middle ones for an even count
/// (NaN when empty).
pub fn median(v: &[f64]) -> f64 {
    let mut v: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}
