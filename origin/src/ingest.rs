//! The RTMP listener: the thin tokio layer around [`crate::rtmp::ServerSession`].
//!
//! Each connection owns its session and loops read → `handle_input` → act on events →
//! write output. A publishing connection feeds its channel's packager and applies the
//! packager's events to the channel's live window in the hub. Errors close only the
//! offending connection, with a logged reason and a metric.

use std::net::SocketAddr;
use std::sync::Arc;
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
/// absent control plane never holds up a publisher).
#[derive(Clone)]
pub struct LiveReports {
    pub client: ControlPlaneClient,
    pub node: String,
}

impl LiveReports {
    fn report(&self, channel: &str, live: bool) {
        let (client, node, channel) = (self.client.clone(), self.node.clone(), channel.to_owned());
        tokio::spawn(async move {
            let result = if live {
                client.report_live(&channel, &node).await
            } else {
                client.report_ended(&channel, &node).await
            };
            if let Err(e) = result {
                warn!(%channel, live, error = %e, "could not report the channel state to the control plane");
            }
        });
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
