//! Cold-miss bursts: C clients, each on its own HTTP/1.1 connection opened in advance,
//! request one object at the same instant; the report gives each client's time to first
//! byte (and to last byte) from that instant, and the statuses.
//!
//! The object is chosen at a reference node (the origin): its media playlist, or the newest
//! complete segment in it; the burst asks the target (an edge, or an nginx cache) for the
//! same path. Before the burst one client fetches the object from the reference three
//! times: the median is the origin fetch time a cache miss cannot beat.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http::Uri;
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::http::{self as fetch, FetchError};
use crate::playlist::{self, MediaPlaylist};
use crate::summary::Dist;

/// Most clients in one burst.
pub const MAX_CLIENTS: usize = 4096;
/// Most response bytes read per client (the rest of a larger body is not read).
pub const MAX_RESPONSE: usize = 256 << 20;
/// Largest response head accepted.
const MAX_HEAD: usize = 16 << 10;

/// What a burst requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum BurstObject {
    /// The media playlist (a plain, non-blocking request).
    Playlist,
    /// The newest complete segment of the media playlist.
    Segment,
}

/// Burst settings.
#[derive(Debug, Clone)]
pub struct BurstOptions {
    /// Clients (1..=[`MAX_CLIENTS`]).
    pub clients: usize,
    /// Limit for each client's whole exchange.
    pub timeout: Duration,
}

/// Why a burst could not run.
#[derive(Debug, thiserror::Error)]
pub enum BurstError {
    /// A URL is not `http://host:port/...`.
    #[error("bad URL `{0}`")]
    BadUrl(String),
    /// Client count out of range.
    #[error("clients must be 1..={MAX_CLIENTS}, got {0}")]
    Clients(usize),
    /// The reference playlist could not be read.
    #[error("reference playlist: {0}")]
    Reference(#[from] FetchError),
    /// The reference playlist has no complete segment yet.
    #[error("the reference playlist has no complete segment")]
    NoSegment,
    /// Stopped before the burst.
    #[error("cancelled")]
    Cancelled,
}

/// One client's outcome.
#[derive(Debug, Clone, Default)]
struct Outcome {
    status: Option<u16>,
    error: Option<&'static str>,
    ttfb: Option<Duration>,
    ttlb: Option<Duration>,
    bytes: usize,
}

/// The result of a burst.
#[derive(Debug, Clone, Serialize)]
pub struct BurstResult {
    /// URL requested by every client.
    pub url: String,
    /// The same object at the reference.
    pub reference_url: String,
    /// What was requested.
    pub object: BurstObject,
    /// Clients.
    pub clients: usize,
    /// Clients that got a 2xx response read to its end.
    pub ok: usize,
    /// Responses by status, and failures by kind (`connect`, `timeout`, `io`, `bad_response`).
    pub outcomes: BTreeMap<String, u64>,
    /// Time to first response byte from the burst instant, over clients that got a response.
    pub ttfb_ms: Dist,
    /// Time to the last byte, over the clients counted in `ok`.
    pub ttlb_ms: Dist,
    /// Smallest and largest response (head + body) among `ok` clients.
    pub bytes_min: usize,
    /// See `bytes_min`.
    pub bytes_max: usize,
    /// Median time to first byte of one client fetching the object from the reference.
    pub reference_ttfb_ms: Option<f64>,
}

impl BurstResult {
    /// A short table.
    pub fn table(&self) -> String {
        let d = |d: &Dist| format!("p50 {:.1} / p99 {:.1} / max {:.1} ms", d.p50, d.p99, d.max);
        let mut s = format!("burst: {} clients, {:?} {}\n", self.clients, self.object, self.url);
        s += &format!("  ok {} / {}   outcomes {:?}\n", self.ok, self.clients, self.outcomes);
        s += &format!("  time to first byte  {}\n", d(&self.ttfb_ms));
        s += &format!("  time to last byte   {}\n", d(&self.ttlb_ms));
        if let Some(r) = self.reference_ttfb_ms {
            s += &format!("  reference fetch (1 client) time to first byte {r:.2} ms\n");
        }
        s
    }

    /// Writes the JSON report.
    pub fn write_json(&self, path: &std::path::Path) -> std::io::Result<()> {
        std::fs::write(path, serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?)
    }
}

/// The HTTP status of a response head, once its status line is complete.
pub fn parse_status(head: &[u8]) -> Option<Result<u16, ()>> {
    let end = head.windows(2).position(|w| w == b"\r\n")?;
    let line = std::str::from_utf8(&head[..end]).map_err(|_| ());
    Some(line.and_then(|l| {
        let mut it = l.split(' ');
        match (it.next(), it.next()) {
            (Some(v), Some(code)) if v.starts_with("HTTP/1.") => code.parse().map_err(|_| ()),
            _ => Err(()),
        }
    }))
}

/// Percentiles (ms) of durations.
pub fn dist(mut v: Vec<Duration>) -> Dist {
    if v.is_empty() {
        return Dist::default();
    }
    v.sort_unstable();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let at = |q: f64| ms(v[((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1]);
    Dist {
        count: v.len() as u64,
        p50: at(0.5),
        p90: at(0.9),
        p99: at(0.99),
        max: ms(v[v.len() - 1]),
        mean: v.iter().map(|d| ms(*d)).sum::<f64>() / v.len() as f64,
    }
}

/// `(host:port, path and query)` of an `http://` URL.
fn split(url: &str) -> Result<(String, String), BurstError> {
    let uri: Uri = url.parse().map_err(|_| BurstError::BadUrl(url.to_owned()))?;
    let (Some("http"), Some(auth)) = (uri.scheme_str(), uri.authority()) else {
        return Err(BurstError::BadUrl(url.to_owned()));
    };
    let host = format!("{}:{}", auth.host(), auth.port_u16().unwrap_or(80));
    let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
    Ok((host, path))
}

/// The object's URL at the reference.
async fn reference_object(reference: &str, object: BurstObject) -> Result<String, BurstError> {
    let client = fetch::client(false);
    let timeout = Duration::from_secs(10);
    let text = fetch::get_text(&client, reference, timeout).await?;
    let media_url = if playlist::is_media_playlist(&text) {
        reference.to_owned()
    } else {
        let v = playlist::first_variant(&text).map_err(|_| FetchError::BadPlaylist(reference.into()))?;
        fetch::resolve(reference, v)?
    };
    if object == BurstObject::Playlist {
        return Ok(media_url);
    }
    let text = fetch::get_text(&client, &media_url, timeout).await?;
    let pl = MediaPlaylist::parse(&text).map_err(|_| FetchError::BadPlaylist(media_url.clone()))?;
    let uri = pl.complete().last().and_then(|s| s.uri.clone()).ok_or(BurstError::NoSegment)?;
    Ok(fetch::resolve(&media_url, &uri)?)
}

/// Sends `request` on `stream` once `go` carries the burst instant, and reads the response.
async fn exchange(
    mut stream: TcpStream,
    request: Arc<[u8]>,
    mut go: watch::Receiver<Option<Instant>>,
    waiting: Arc<AtomicUsize>,
    timeout: Duration,
) -> Outcome {
    waiting.fetch_add(1, Ordering::Release);
    let t0 = loop {
        if let Some(t) = *go.borrow_and_update() {
            break t;
        }
        if go.changed().await.is_err() {
            return Outcome { error: Some("cancelled"), ..Outcome::default() };
        }
    };
    let mut out = Outcome::default();
    let io = async {
        stream.write_all(&request).await?;
        let mut buf = vec![0u8; 16 << 10];
        let mut head = Vec::new();
        loop {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            let now = Instant::now();
            let first = out.ttfb.is_none();
            out.ttfb.get_or_insert(now - t0);
            out.bytes += n;
            if out.status.is_none() {
                head.extend_from_slice(&buf[..n.min(MAX_HEAD)]);
                match parse_status(&head) {
                    Some(Ok(s)) => out.status = Some(s),
                    Some(Err(())) => return Ok(Some("bad_response")),
                    None if head.len() >= MAX_HEAD => return Ok(Some("bad_response")),
                    None => {}
                }
            }
            if out.bytes >= MAX_RESPONSE {
                break;
            }
            if first {
                // Let the other clients take their first bytes before this one reads the
                // rest: with hundreds of clients on a few cores, reading a whole body first
                // would be counted in the next client's time to first byte.
                tokio::task::yield_now().await;
            }
        }
        out.ttlb = Some(Instant::now() - t0);
        Ok::<_, std::io::Error>(None)
    };
    match tokio::time::timeout(timeout, io).await {
        Ok(Ok(None)) if out.status.is_none() => out.error = Some("bad_response"),
        Ok(Ok(None)) => {}
        Ok(Ok(Some(e))) => out.error = Some(e),
        Ok(Err(_)) => out.error = Some("io"),
        Err(_) => out.error = Some("timeout"),
    }
    out
}

/// Runs one burst: chooses the object at `reference`, measures the reference fetch, opens
/// `clients` connections to `target` and requests the object on all of them at once.
pub async fn run(
    target: &str,
    reference: &str,
    object: BurstObject,
    opts: &BurstOptions,
    cancel: CancellationToken,
) -> Result<BurstResult, BurstError> {
    if opts.clients == 0 || opts.clients > MAX_CLIENTS {
        return Err(BurstError::Clients(opts.clients));
    }
    let reference_url = reference_object(reference, object).await?;
    let (ref_host, path) = split(&reference_url)?;
    let (host, _) = split(target)?;
    let url = format!("http://{host}{path}");
    let request = |host: &str| -> Arc<[u8]> {
        format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: skyrelay-loadtest\r\nConnection: close\r\n\r\n")
            .into_bytes()
            .into()
    };

    // The origin fetch: one client, three times, median.
    let mut reference_ttfb = Vec::new();
    for _ in 0..3 {
        let (tx, rx) = watch::channel(None);
        if let Ok(s) = TcpStream::connect(&ref_host).await {
            let _ = s.set_nodelay(true);
            let waiting = Arc::new(AtomicUsize::new(0));
            let task = tokio::spawn(exchange(s, request(&ref_host), rx, waiting, opts.timeout));
            let _ = tx.send(Some(Instant::now()));
            if let Ok(o) = task.await
                && o.status.is_some_and(|s| (200..300).contains(&s))
            {
                reference_ttfb.extend(o.ttfb);
            }
        }
    }
    let reference_ttfb_ms = (!reference_ttfb.is_empty()).then(|| dist(reference_ttfb).p50);

    // Connect everything first.
    let mut outcomes: BTreeMap<String, u64> = BTreeMap::new();
    let mut connects = tokio::task::JoinSet::new();
    for _ in 0..opts.clients {
        let host = host.clone();
        connects.spawn(async move {
            let s = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(host)).await;
            s.ok().and_then(Result::ok)
        });
    }
    let mut streams = Vec::with_capacity(opts.clients);
    while let Some(r) = connects.join_next().await {
        match r.ok().flatten() {
            Some(s) => {
                let _ = s.set_nodelay(true);
                streams.push(s);
            }
            None => *outcomes.entry("connect".into()).or_default() += 1,
        }
    }
    let (go_tx, go_rx) = watch::channel(None);
    let waiting = Arc::new(AtomicUsize::new(0));
    let req = request(&host);
    let n = streams.len();
    let mut tasks = tokio::task::JoinSet::new();
    for s in streams {
        tasks.spawn(exchange(s, req.clone(), go_rx.clone(), waiting.clone(), opts.timeout));
    }
    drop(go_rx);
    let ready_by = Instant::now() + Duration::from_secs(5);
    while waiting.load(Ordering::Acquire) < n && Instant::now() < ready_by {
        if cancel.is_cancelled() {
            return Err(BurstError::Cancelled);
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let _ = go_tx.send(Some(Instant::now()));

    let (mut ttfb, mut ttlb, mut sizes) = (Vec::new(), Vec::new(), Vec::new());
    let mut ok = 0;
    while let Some(r) = tasks.join_next().await {
        let o = r.unwrap_or_else(|_| Outcome { error: Some("panic"), ..Outcome::default() });
        ttfb.extend(o.ttfb.filter(|_| o.status.is_some()));
        let key = match (o.error, o.status) {
            (Some(e), _) => e.to_owned(),
            (None, Some(s)) => s.to_string(),
            (None, None) => "bad_response".to_owned(),
        };
        if o.error.is_none() && o.status.is_some_and(|s| (200..300).contains(&s)) {
            ok += 1;
            ttlb.extend(o.ttlb);
            sizes.push(o.bytes);
        }
        *outcomes.entry(key).or_default() += 1;
    }
    Ok(BurstResult {
        url,
        reference_url,
        object,
        clients: opts.clients,
        ok,
        outcomes,
        ttfb_ms: dist(ttfb),
        ttlb_ms: dist(ttlb),
        bytes_min: sizes.iter().copied().min().unwrap_or(0),
        bytes_max: sizes.iter().copied().max().unwrap_or(0),
        reference_ttfb_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_line() {
        assert_eq!(parse_status(b"HTTP/1.1 200 OK\r\n"), Some(Ok(200)));
        assert_eq!(parse_status(b"HTTP/1.0 404 Not Found\r\nx"), Some(Ok(404)));
        assert_eq!(parse_status(b"HTTP/1.1 20"), None);
        assert_eq!(parse_status(b"SSH-2.0\r\n"), Some(Err(())));
    }

    #[test]
    fn percentiles_of_durations() {
        let d = dist((1..=100).map(Duration::from_millis).collect());
        assert_eq!(d.count, 100);
        assert!((d.p50 - 50.0).abs() < 1e-9 && (d.p99 - 99.0).abs() < 1e-9 && (d.max - 100.0).abs() < 1e-9);
        assert_eq!(dist(Vec::new()).count, 0);
        assert_eq!(split("http://127.0.0.1:81/a/b?x=1").unwrap(), ("127.0.0.1:81".into(), "/a/b?x=1".into()));
        assert!(split("https://x/").is_err());
    }
}
