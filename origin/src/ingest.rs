//! The RTMP listener: the thin tokio layer around [`crate::rtmp::ServerSession`].
//!
//! Each connection owns its session and loops read → `handle_input` → act on events →
//! write output. A publishing connection feeds its channel's packager and applies the
//! packager's events to the channel's live window in the hub. Errors close only the
//! offending connection, with a logged reason and a metric.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use skyrelay_common::cpapi::ControlPlaneClient;
use skyrelay_common::hub::{Hub, Rendition};
use skyrelay_common::media::MediaEvent;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::backoff::backoff;
use crate::config::{OriginConfig, valid_channel_name};
use crate::keys::PublishAuthority;
use crate::metrics::OriginMetrics;
use crate::publishers::{Claim, Publishers};
use crate::recorder::Recorder;
use crate::rtmp::{ServerSession, SessionConfig, SessionEvent, StreamMetadata};

/// The rendition name of a channel's published stream.
pub const SOURCE_RENDITION: &str = "source";

/// Everything a connection needs.
pub struct IngestContext {
    pub cfg: Arc<OriginConfig>,
    pub hub: Arc<Hub>,
    pub auth: Arc<dyn PublishAuthority>,
    pub publishers: Arc<Publishers>,
    pub metrics: OriginMetrics,
    /// Gets every applied event too, when recording is enabled.
    pub recorder: Option<Arc<Recorder>>,
    /// Tells the control plane which channels are live here, when one is configured.
    pub live_reports: Option<LiveReports>,
}

/// Reports channels live and ended to the control plane, in the background (a slow or
/// absent control plane never holds up a publisher). A report that fails is retried with
/// backoff (up to [`REPORT_ATTEMPTS`] times) until a newer report for the same channel
/// replaces it: edges find a channel only once the control plane knows it is live.
#[derive(Clone)]
pub struct LiveReports {
    client: ControlPlaneClient,
    node: String,
    /// The newest report per channel still being delivered, by number.
    pending: Arc<Mutex<HashMap<String, u64>>>,
    next: Arc<AtomicU64>,
}

/// Most tries of one report (about five minutes with the backoff capped at 10 s).
pub const REPORT_ATTEMPTS: u32 = 32;
const REPORT_BACKOFF_MAX: Duration = Duration::from_secs(10);

impl LiveReports {
    /// Reports for origin `node` through `client`.
    pub fn new(client: ControlPlaneClient, node: String) -> Self {
        LiveReports { client, node, pending: Arc::default(), next: Arc::default() }
    }

    fn report(&self, channel: &str, live: bool) {
        let number = self.next.fetch_add(1, Ordering::Relaxed);
        self.pending.lock().unwrap_or_else(PoisonError::into_inner).insert(channel.to_owned(), number);
        let (this, channel) = (self.clone(), channel.to_owned());
        tokio::spawn(async move {
            for attempt in 1..=REPORT_ATTEMPTS {
                if !this.is_newest(&channel, number) {
                    return;
                }
                let result = if live {
                    this.client.report_live(&channel, &this.node).await
                } else {
                    this.client.report_ended(&channel, &this.node).await
                };
                let e = match result {
                    Ok(_) => {
                        if attempt > 1 {
                            info!(%channel, live, attempt, "channel state reported to the control plane");
                        }
                        return this.finish(&channel, number);
                    }
                    Err(e) => e,
                };
                if attempt == REPORT_ATTEMPTS {
                    warn!(%channel, live, attempts = attempt, error = %e, "gave up reporting the channel state to the control plane");
                    return this.finish(&channel, number);
                }
                let wait = backoff(attempt, REPORT_BACKOFF_MAX);
                warn!(%channel, live, attempt, retry_in_ms = wait.as_millis() as u64, error = %e,
                    "could not report the channel state to the control plane; retrying");
                tokio::time::sleep(wait).await;
            }
        });
    }

    fn is_newest(&self, channel: &str, number: u64) -> bool {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner).get(channel) == Some(&number)
    }

    /// Forgets report `number` of `channel`, unless a newer one took its place.
    fn finish(&self, channel: &str, number: u64) {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        if pending.get(channel) == Some(&number) {
            pending.remove(channel);
        }
    }
}

/// Accepts RTMP connections until `shutdown` is cancelled, then waits for the
/// connections (which end their publishing cleanly) to finish.
pub async fn serve(listener: TcpListener, ctx: Arc<IngestContext>, shutdown: CancellationToken) {
    let limit = Arc::new(Semaphore::new(ctx.cfg.rtmp.max_connections));
    let tracker = TaskTracker::new();
    loop {
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    warn!(error = %e, "rtmp accept failed");
                    continue;
                }
            },
        };
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            warn!(%peer, limit = ctx.cfg.rtmp.max_connections, "rtmp connection refused: connection limit reached");
            ctx.metrics.rtmp_errors.with_label_values(&["connection_limit"]).inc();
            continue;
        };
        let ctx = ctx.clone();
        let shutdown = shutdown.clone();
        tracker.spawn(
            async move {
                ctx.metrics.rtmp_connections.inc();
                let mut conn = Connection::new(&ctx, peer);
                conn.run(stream, &shutdown).await;
                conn.finish();
                ctx.metrics.rtmp_connections.dec();
                drop(permit);
            }
            .instrument(info_span!("rtmp", %peer)),
        );
    }
    tracker.close();
    tracker.wait().await;
}

fn now_unix_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// A channel being published by this connection.
struct Publishing {
    claim: Claim,
    rendition: Arc<Rendition>,
    /// Whether this session goes to the recorder (the grant's setting, when it has one).
    record: bool,
    bytes_since: u64,
    bitrate_since: Instant,
}

impl Publishing {
    /// The recorder this session's events go to, if it is recorded.
    fn recorder<'a>(&self, ctx: &'a IngestContext) -> Option<&'a Recorder> {
        ctx.recorder.as_deref().filter(|_| self.record)
    }
}

/// Why a connection ended (for the log line).
enum End {
    PeerClosed,
    Shutdown,
    Replaced,
    Timeout(&'static str),
    Error(&'static str, String),
}

struct Connection<'a> {
    ctx: &'a IngestContext,
    peer: SocketAddr,
    session: ServerSession,
    publishing: Option<Publishing>,
    /// Set when the session asked to close after a refusal was sent.
    closing: Option<End>,
    /// Whether a publish was ever accepted on this connection.
    published_once: bool,
}

impl<'a> Connection<'a> {
    fn new(ctx: &'a IngestContext, peer: SocketAddr) -> Self {
        let cfg = &ctx.cfg.rtmp;
        let session = ServerSession::new(SessionConfig {
            max_chunk_size: cfg.max_chunk_size,
            max_message_size: cfg.max_message_size,
            ..SessionConfig::default()
        });
        Connection { ctx, peer, session, publishing: None, closing: None, published_once: false }
    }

    async fn run(&mut self, mut stream: TcpStream, shutdown: &CancellationToken) {
        let _ = stream.set_nodelay(true);
        let cfg = &self.ctx.cfg.rtmp;
        let handshake_deadline = Instant::now() + Duration::from_secs(cfg.handshake_timeout_seconds);
        let idle = Duration::from_secs(cfg.idle_timeout_seconds);
        let mut buf = vec![0u8; 64 * 1024];
        let end = loop {
            // The handshake deadline bounds the time to the first accepted publish only; a
            // publisher that unpublished may linger until its idle timeout.
            let in_handshake = !self.published_once;
            let deadline = if in_handshake {
                handshake_deadline.min(Instant::now() + idle)
            } else {
                Instant::now() + idle
            };
            let replaced = self.publishing.as_ref().map(|p| p.claim.replaced.clone());
            let read = tokio::select! {
                _ = shutdown.cancelled() => break End::Shutdown,
                _ = async { match &replaced { Some(t) => t.cancelled().await, None => std::future::pending().await } } => {
                    break End::Replaced
                }
                read = tokio::time::timeout_at(deadline, stream.read(&mut buf)) => read,
            };
            let n = match read {
                Err(_) if in_handshake => break End::Timeout("handshake"),
                Err(_) => break End::Timeout("idle"),
                Ok(Err(e)) => break End::Error("io", e.to_string()),
                Ok(Ok(0)) => break End::PeerClosed,
                Ok(Ok(n)) => n,
            };
            let result = self.session.handle_input(&buf[..n]);
            self.count_bytes(n);
            // Events decoded before an error still count (nothing accepted is lost).
            self.drain_events().await;
            if let Err(e) = flush(&mut self.session, &mut stream).await {
                break End::Error("io", e.to_string());
            }
            if let Err(e) = result {
                break End::Error(e.kind(), e.to_string());
            }
            if let Some(end) = self.closing.take() {
                break end;
            }
            if self.session.is_closing() {
                break End::Error("protocol", "the session ended the connection".into());
            }
        };
        let _ = stream.shutdown().await;
        match end {
            End::PeerClosed => debug!("connection closed by peer"),
            End::Shutdown => info!("connection closed: origin shutting down"),
            End::Replaced => info!("publisher replaced by a newer one for the same channel"),
            End::Timeout(what) => {
                self.ctx.metrics.rtmp_errors.with_label_values(&[&format!("{what}_timeout")]).inc();
                warn!(timeout = what, "connection closed: {what} timeout");
            }
            End::Error(kind, reason) => {
                self.ctx.metrics.rtmp_errors.with_label_values(&[kind]).inc();
                warn!(kind, %reason, "connection closed on error");
            }
        }
    }

    fn count_bytes(&mut self, n: usize) {
        let Some(p) = &mut self.publishing else { return };
        self.ctx.metrics.ingest_bytes.with_label_values(&[&p.claim.channel]).inc_by(n as u64);
        p.bytes_since += n as u64;
        let elapsed = p.bitrate_since.elapsed();
        if elapsed >= Duration::from_secs(1) {
            let bps = (p.bytes_since as f64 * 8.0 / elapsed.as_secs_f64()) as i64;
            self.ctx.metrics.ingest_bitrate.with_label_values(&[&p.claim.channel]).set(bps);
            p.bytes_since = 0;
            p.bitrate_since = Instant::now();
        }
    }

    async fn drain_events(&mut self) {
        while let Some(event) = self.session.poll_event() {
            if self.closing.is_some() {
                return;
            }
            match event {
                SessionEvent::Connected { app, .. } => debug!(%app, "rtmp connect"),
                SessionEvent::PublishRequested { app, stream_key, .. } => {
                    self.on_publish(&app, &stream_key).await
                }
                SessionEvent::Metadata(meta) => {
                    if let Some(p) = &self.publishing {
                        let (has_video, has_audio, bitrate) = metadata_hints(&meta);
                        p.claim.packaging.with_packager(p.claim.id, |packager| {
                            packager.set_metadata_hint(has_video, has_audio, bitrate)
                        });
                    }
                }
                SessionEvent::Video { timestamp, data } => self.on_media(true, timestamp, data),
                SessionEvent::Audio { timestamp, data } => self.on_media(false, timestamp, data),
                SessionEvent::Unpublished => {
                    self.stop_publishing();
                }
                SessionEvent::PlayRefused { stream } => {
                    info!(stream = %stream, "play refused: this is an ingest endpoint");
                }
            }
        }
    }

    async fn on_publish(&mut self, app: &str, stream_key: &str) {
        let refuse = |this: &mut Self, reason: &'static str, description: &str| {
            this.ctx.metrics.publish_refused.with_label_values(&[reason]).inc();
            this.session.reject_publish("NetStream.Publish.BadName", description);
            this.closing = Some(End::Error("publish_refused", format!("{reason}: {description}")));
        };
        if self.publishing.is_some() {
            return refuse(self, "already_publishing", "this connection is already publishing");
        }
        if app != "live" {
            return refuse(
                self,
                "unknown_app",
                "unknown application: publish to rtmp://<host>/live/<stream key>",
            );
        }
        // Some encoders append `?params` to the key.
        let key = stream_key.split('?').next().unwrap_or_default();
        let grant = match self.ctx.auth.authorize(key).await {
            Ok(grant) => grant,
            Err(e) => return refuse(self, e.kind(), &e.to_string()),
        };
        if !valid_channel_name(&grant.channel) {
            return refuse(self, "bad_channel", "the key maps to an invalid channel name");
        }
        let claim = match self.ctx.publishers.claim(&grant.channel) {
            Ok(claim) => claim,
            Err(e) => return refuse(self, "conflict", &e.to_string()),
        };
        let rendition = match self.ctx.hub.open(&grant.channel, SOURCE_RENDITION) {
            Ok(r) => r,
            Err(e) => {
                self.ctx.publishers.release(&claim);
                return refuse(self, "hub", &e.to_string());
            }
        };
        claim.packaging.with_packager(claim.id, |p| p.start_session());
        self.session.accept_publish();
        self.published_once = true;
        self.ctx.metrics.publishers.set(self.ctx.publishers.live_count() as i64);
        info!(channel = %grant.channel, peer = %self.peer, "publish started");
        if let Some(reports) = &self.ctx.live_reports {
            reports.report(&grant.channel, true);
        }
        let record = self.ctx.recorder.is_some() && grant.record.unwrap_or(true);
        if self.ctx.recorder.is_some() && !record {
            debug!(channel = %grant.channel, "recording is off for this channel");
        }
        self.publishing =
            Some(Publishing { claim, rendition, record, bytes_since: 0, bitrate_since: Instant::now() });
    }

    fn on_media(&mut self, video: bool, timestamp: u32, data: bytes::Bytes) {
        let Some(p) = &self.publishing else {
            return; // media before publish is ignored
        };
        let metrics = &self.ctx.metrics;
        let pushed = p.claim.packaging.with_packager(p.claim.id, |packager| {
            let pushed = if video {
                packager.push_video(timestamp, data)
            } else {
                packager.push_audio(timestamp, data)
            };
            apply_events(packager, &p.rendition, &p.claim.channel, metrics, p.recorder(self.ctx));
            pushed
        });
        match pushed {
            None => self.closing = Some(End::Replaced),
            Some(Err(e)) => {
                self.closing = Some(End::Error("media", e.to_string()));
            }
            Some(Ok(())) => {}
        }
    }

    fn stop_publishing(&mut self) {
        let Some(p) = self.publishing.take() else { return };
        let metrics = &self.ctx.metrics;
        p.claim.packaging.with_packager(p.claim.id, |packager| {
            packager.end_session();
            apply_events(packager, &p.rendition, &p.claim.channel, metrics, p.recorder(self.ctx));
        });
        // False when a newer publisher replaced this one: the channel stays live.
        let still_live_here = self.ctx.publishers.release(&p.claim);
        metrics.forget_channel(&p.claim.channel);
        metrics.publishers.set(self.ctx.publishers.live_count() as i64);
        info!(channel = %p.claim.channel, "publish ended");
        if let Some(reports) = &self.ctx.live_reports
            && still_live_here
        {
            reports.report(&p.claim.channel, false);
        }
    }

    /// Ends publishing when the connection goes away.
    fn finish(&mut self) {
        self.stop_publishing();
    }
}

/// What `onMetaData` says about the tracks and the bitrate. Encoders list a codec id only
/// for the tracks they send, so one present codec id makes the other's absence meaningful.
fn metadata_hints(meta: &StreamMetadata) -> (Option<bool>, Option<bool>, Option<u64>) {
    let declared = meta.videocodecid.is_some() || meta.audiocodecid.is_some();
    let (has_video, has_audio) = if declared {
        (Some(meta.videocodecid.is_some()), Some(meta.audiocodecid.is_some()))
    } else {
        (None, None)
    };
    let kbps = meta.videodatarate.unwrap_or(0.0) + meta.audiodatarate.unwrap_or(0.0);
    let bitrate = (kbps.is_finite() && kbps > 0.0).then_some((kbps * 1000.0) as u64);
    (has_video, has_audio, bitrate)
}

/// Moves the packager's pending events into the channel's live window.
fn apply_events(
    packager: &mut crate::packager::Packager,
    rendition: &Rendition,
    channel: &str,
    metrics: &OriginMetrics,
    recorder: Option<&Recorder>,
) {
    while let Some(event) = packager.poll_event() {
        if let MediaEvent::PartEnd { ends_segment, .. } = &event {
            metrics.parts.with_label_values(&[channel]).inc();
            if *ends_segment {
                metrics.segments.with_label_values(&[channel]).inc();
            }
        }
        let for_recorder = recorder.map(|r| (r, event.clone()));
        match rendition.apply(event, now_unix_ms()) {
            Ok(()) => {
                if let Some((r, event)) = &for_recorder {
                    r.on_event(rendition, event);
                }
            }
            Err(e) => warn!(%channel, error = %e, "live window rejected a packager event"),
        }
    }
}

async fn flush(session: &mut ServerSession, stream: &mut TcpStream) -> std::io::Result<()> {
    while let Some(out) = session.poll_output() {
        stream.write_all(&out).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncBufReadExt, BufReader};

    use super::*;

    /// Request lines a fake control plane received, in order.
    type Seen = Arc<Mutex<Vec<String>>>;

    fn count(seen: &Seen, path: &str) -> usize {
        seen.lock().unwrap().iter().filter(|l| l.split(' ').nth(1) == Some(path)).count()
    }

    /// A control plane that answers the first `failures` requests with 500 and the rest with
    /// a channel's location; keeps every request line.
    async fn flaky_control_plane(failures: usize) -> (String, Seen) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let seen = Seen::default();
        let counted = seen.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let seen = counted.clone();
                tokio::spawn(async move {
                    let mut io = BufReader::new(stream);
                    loop {
                        let mut length = 0usize;
                        let mut request_line = None;
                        loop {
                            let mut line = String::new();
                            if io.read_line(&mut line).await.unwrap_or(0) == 0 {
                                return;
                            }
                            request_line.get_or_insert_with(|| line.trim_end().to_owned());
                            let lower = line.to_ascii_lowercase();
                            if let Some(v) = lower.strip_prefix("content-length:") {
                                length = v.trim().parse().unwrap_or(0);
                            }
                            if line == "\r\n" {
                                break;
                            }
                        }
                        let mut body = vec![0; length];
                        if io.read_exact(&mut body).await.is_err() {
                            return;
                        }
                        let n = {
                            let mut seen = seen.lock().unwrap();
                            seen.push(request_line.unwrap_or_default());
                            seen.len() - 1
                        };
                        let (status, text) = if n < failures {
                            ("500 Internal Server Error", r#"{"error":"internal error"}"#)
                        } else {
                            ("200 OK", r#"{"channel":"c","origin":null,"version":1}"#)
                        };
                        let resp = format!(
                            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{text}",
                            text.len()
                        );
                        if io.get_mut().write_all(resp.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        (base, seen)
    }

    /// Waits (polling, with a deadline) until `done` holds.
    async fn until(what: &str, mut done: impl FnMut() -> bool) {
        let check = || std::future::ready(done().then_some(()));
        skyrelay_testkit::poll_for(what, Duration::from_secs(10), Duration::from_millis(20), check).await
    }

    #[tokio::test]
    async fn a_failed_report_is_retried_until_the_control_plane_takes_it() {
        let (base, seen) = flaky_control_plane(2).await;
        let reports = LiveReports::new(ControlPlaneClient::new(&base, "secret"), "origin-1".into());
        reports.report("c", true);
        until("the report to be done", || reports.pending.lock().unwrap().is_empty()).await;
        assert_eq!(count(&seen, "/v1/live"), 3, "two failures, then the one taken, then no more");
    }

    #[tokio::test]
    async fn a_newer_report_replaces_one_being_retried() {
        let (base, seen) = flaky_control_plane(usize::MAX).await;
        let reports = LiveReports::new(ControlPlaneClient::new(&base, "secret"), "origin-1".into());
        reports.report("c", true);
        until("the first attempt", || count(&seen, "/v1/live") == 1).await;
        reports.report("c", false);
        // By the third try of the newer report, the older one has woken from its first
        // backoff (at most 250 ms) and found itself replaced.
        until("three tries of the ended report", || count(&seen, "/v1/live/ended") >= 3).await;
        assert_eq!(count(&seen, "/v1/live"), 1, "the live report stopped once replaced");
    }
}
