//! The relay server (publisher side): serves the renditions of a [`Hub`] to subscribers.
//!
//! One task per connection reads the control stream and dispatches; one task per
//! subscription follows its rendition's window and opens a stream per part
//! (`server/push.rs`); a writer task owns the control stream's send half, fed by a bounded
//! queue. A malformed frame closes that connection with an error code and nothing else.
//! Renditions come from a [`RenditionSource`] (a [`Hub`], or a wrapper that subscribes
//! upstream on demand).

mod gate;
mod push;

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bytes::BytesMut;
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use quinn::{Connection, Endpoint, VarInt};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::{AbortHandle, JoinSet};
use tracing::{debug, info, warn};

use super::codec::{CloseCode, ControlMessage, ErrorCode, InitSegment, Position, Start};
use super::io::{self, StreamError};
use super::metrics::RelayServerMetrics;
use super::tls::{self, NodeIdentity, TlsError};
use crate::hub::{Hub, Rendition};

/// Limits and timers of a relay server (`docs/protocol.md`, section 7).
#[derive(Debug, Clone)]
pub struct RelayServerConfig {
    /// Connections served at once; more are refused.
    pub max_connections: usize,
    /// Subscriptions per connection; more get `overloaded`.
    pub max_subscriptions_per_conn: usize,
    /// Part streams being written per subscription (K); the oldest is dropped beyond.
    pub max_parts_in_flight: usize,
    /// Fetches served at once per connection; more get `overloaded`.
    pub max_fetches_per_conn: usize,
    /// How long a fetch of an open segment waits for it to complete.
    pub fetch_wait: Duration,
    /// How long the history of a fresh subscription that came with a fetch waits after the
    /// subscriber has acknowledged the fetched segment: that subscriber is handing the
    /// segment to viewers now, and receiving a megabyte of history at the same time would
    /// take the CPU their first bytes need. Zero sends it at once.
    pub history_after_fetch: Duration,
    /// Control messages queued per connection.
    pub control_queue: usize,
    /// QUIC idle timeout.
    pub idle_timeout: Duration,
    /// QUIC keep-alive interval.
    pub keep_alive: Duration,
    /// How long shutdown waits for connections to close.
    pub drain_timeout: Duration,
}

impl Default for RelayServerConfig {
    fn default() -> Self {
        Self {
            max_connections: 1024,
            max_subscriptions_per_conn: 256,
            max_parts_in_flight: 8,
            max_fetches_per_conn: 4,
            fetch_wait: Duration::from_secs(10),
            history_after_fetch: Duration::from_millis(40),
            control_queue: 256,
            idle_timeout: Duration::from_secs(30),
            keep_alive: Duration::from_secs(5),
            drain_timeout: Duration::from_secs(2),
        }
    }
}

impl RelayServerConfig {
    /// The QUIC transport settings: one bidirectional stream from the subscriber, no
    /// unidirectional ones, keep-alive and idle timeout.
    pub fn transport(&self) -> quinn::TransportConfig {
        let mut t = quinn::TransportConfig::default();
        t.max_concurrent_bidi_streams(VarInt::from_u32(1));
        t.max_concurrent_uni_streams(VarInt::from_u32(0));
        t.keep_alive_interval(Some(self.keep_alive));
        t.max_idle_timeout(quinn::IdleTimeout::try_from(self.idle_timeout).ok());
        t
    }
}

/// Why a relay server endpoint could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The TLS configuration failed.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// Binding the UDP socket failed.
    #[error("bind {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
}

/// A QUIC endpoint bound to `addr` serving the relay ALPN with mutual TLS.
pub fn server_endpoint(
    addr: SocketAddr,
    id: &NodeIdentity,
    cfg: &RelayServerConfig,
) -> Result<Endpoint, ServerError> {
    let mut sc = tls::server_config(id)?;
    sc.transport_config(Arc::new(cfg.transport()));
    super::socket::endpoint(addr, Some(sc)).map_err(|source| ServerError::Bind { addr, source })
}

/// Where a relay server finds the rendition a subscriber asks for. A [`Hub`] answers from
/// what it holds; an edge can wrap its hub to subscribe upstream first when a lower-tier
/// edge asks for a channel it does not carry yet (edge → edge → origin).
pub trait RenditionSource: Send + Sync + 'static {
    /// The rendition, or the error code to answer with. May wait (bounded) for it.
    fn find<'a>(
        &'a self,
        channel: &'a str,
        rendition: &'a str,
    ) -> BoxFuture<'a, Result<Arc<Rendition>, ErrorCode>>;
}

impl RenditionSource for Hub {
    fn find<'a>(
        &'a self,
        channel: &'a str,
        rendition: &'a str,
    ) -> BoxFuture<'a, Result<Arc<Rendition>, ErrorCode>> {
        Box::pin(std::future::ready(self.rendition(channel, rendition).ok_or(ErrorCode::NotFound)))
    }
}

pub(crate) struct Shared {
    pub(crate) source: Arc<dyn RenditionSource>,
    pub(crate) cfg: RelayServerConfig,
    pub(crate) metrics: RelayServerMetrics,
}

/// Serves `hub` on `endpoint` until `shutdown` completes, then closes every connection
/// with `GOING_AWAY` and waits (bounded by `drain_timeout`) for them to go.
pub async fn serve(
    endpoint: Endpoint,
    hub: Arc<Hub>,
    cfg: RelayServerConfig,
    metrics: RelayServerMetrics,
    shutdown: impl Future<Output = ()>,
) {
    serve_source(endpoint, hub, cfg, metrics, shutdown).await
}

/// [`serve`] with renditions found through a [`RenditionSource`].
pub async fn serve_source(
    endpoint: Endpoint,
    source: Arc<dyn RenditionSource>,
    cfg: RelayServerConfig,
    metrics: RelayServerMetrics,
    shutdown: impl Future<Output = ()>,
) {
    let permits = Arc::new(Semaphore::new(cfg.max_connections.max(1)));
    let drain = cfg.drain_timeout;
    let shared = Arc::new(Shared { source, cfg, metrics });
    let mut conns = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            incoming = endpoint.accept() => {
                let Some(incoming) = incoming else { break };
                match permits.clone().try_acquire_owned() {
                    Ok(permit) => {
                        let shared = shared.clone();
                        conns.spawn(async move {
                            handle_incoming(incoming, shared).await;
                            drop(permit);
                        });
                    }
                    Err(_) => {
                        debug!(peer = %incoming.remote_address(), "relay connection refused: at capacity");
                        incoming.refuse();
                    }
                }
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    endpoint.close(VarInt::from_u32(CloseCode::GoingAway as u32), b"shutting down");
    conns.abort_all();
    let _ = tokio::time::timeout(drain, endpoint.wait_idle()).await;
}

async fn handle_incoming(incoming: quinn::Incoming, shared: Arc<Shared>) {
    let peer = incoming.remote_address();
    let conn = match incoming.await {
        Ok(c) => c,
        Err(e) => {
            info!(%peer, error = %e, "relay handshake failed");
            return;
        }
    };
    shared.metrics.connections.inc();
    debug!(%peer, "relay connection");
    let result = ConnTask::new(conn.clone(), shared.clone()).run().await;
    shared.metrics.connections.dec();
    match result {
        Ok(()) => conn.close(VarInt::from_u32(CloseCode::NoError as u32), b""),
        Err(StreamError::Codec(e)) => {
            warn!(%peer, error = %e, "closing relay connection: malformed frame");
            shared.metrics.protocol_errors.inc();
            conn.close(VarInt::from_u32(e.close_code() as u32), e.to_string().as_bytes());
        }
        Err(e) => debug!(%peer, error = %e, "relay connection ended"),
    }
}

/// One connection: the control stream and its subscriptions.
struct ConnTask {
    conn: Connection,
    shared: Arc<Shared>,
    /// Stream priorities grow with every part stream opened on the connection.
    prio: Arc<AtomicU64>,
    subs: HashMap<u64, (AbortHandle, Arc<Rendition>)>,
    tasks: JoinSet<u64>,
    fetches: Arc<Semaphore>,
    /// Fresh subscriptions' history waits on it (see [`gate`]).
    gate: Arc<gate::HistoryGate>,
    /// Held from a subscribe until the control messages that came with it are handled.
    flight: Option<gate::GateHold>,
    /// The subscriptions made in the current flight, each with whether a fetch for it came
    /// in the same flight (its history then waits `history_after_fetch` more).
    flight_subs: Vec<(u64, Arc<AtomicBool>)>,
}

impl ConnTask {
    fn new(conn: Connection, shared: Arc<Shared>) -> Self {
        let fetches = Arc::new(Semaphore::new(shared.cfg.max_fetches_per_conn.max(1)));
        Self {
            conn,
            shared,
            prio: Arc::new(AtomicU64::new(1)),
            subs: HashMap::new(),
            tasks: JoinSet::new(),
            fetches,
            gate: gate::HistoryGate::new(),
            flight: None,
            flight_subs: Vec::new(),
        }
    }

    async fn run(mut self) -> Result<(), StreamError> {
        let (mut send, mut recv) = match self.conn.accept_bi().await {
            Ok(s) => s,
            Err(e) => return Err(StreamError::Read(quinn::ReadError::ConnectionLost(e))),
        };
        // Control messages (subscribe-ok, gaps, errors) go before any media.
        let _ = send.set_priority(i32::MAX);
        let (ctl, mut ctl_rx) = mpsc::channel::<ControlMessage>(self.shared.cfg.control_queue.max(1));
        let writer = tokio::spawn(async move {
            while let Some(m) = ctl_rx.recv().await {
                if io::write_control(&mut send, &m).await.is_err() {
                    break;
                }
            }
        });
        let mut buf = BytesMut::new();
        let result = loop {
            if self.flight.is_some() {
                // What arrived in the same flight as a subscribe (a fetch) goes before its
                // history: handle it now, then open the gate.
                match io::read_control(&mut recv, &mut buf).now_or_never() {
                    Some(Ok(Some(m))) => {
                        if let Err(e) = self.dispatch(m, &ctl).await {
                            break Err(e);
                        }
                        continue;
                    }
                    Some(Ok(None)) => break Ok(()),
                    Some(Err(e)) => break Err(e),
                    None => {
                        self.flight = None;
                        self.flight_subs.clear();
                    }
                }
            }
            tokio::select! {
                msg = io::read_control(&mut recv, &mut buf) => match msg {
                    Ok(Some(m)) => if let Err(e) = self.dispatch(m, &ctl).await { break Err(e) },
                    Ok(None) => break Ok(()),
                    Err(e) => break Err(e),
                },
                Some(done) = self.tasks.join_next(), if !self.tasks.is_empty() => {
                    if let Ok(id) = done
                        && self.subs.remove(&id).is_some()
                    {
                        self.shared.metrics.subscriptions.dec();
                    }
                }
            }
        };
        self.shared.metrics.subscriptions.sub(self.subs.len() as i64);
        self.tasks.abort_all();
        writer.abort();
        result
    }

    async fn dispatch(
        &mut self,
        msg: ControlMessage,
        ctl: &mpsc::Sender<ControlMessage>,
    ) -> Result<(), StreamError> {
        let error =
            |id, code: ErrorCode, message: &str| ControlMessage::Error { id, code, message: message.into() };
        match msg {
            ControlMessage::Subscribe { id, channel, rendition, start } => {
                let reply = if self.subs.contains_key(&id) {
                    Some(error(id, ErrorCode::BadRequest, "subscription id in use"))
                } else if self.subs.len() >= self.shared.cfg.max_subscriptions_per_conn {
                    Some(error(id, ErrorCode::Overloaded, "too many subscriptions"))
                } else {
                    match self.shared.source.find(&channel, &rendition).await {
                        Err(code) => Some(error(id, code, "no such channel or rendition")),
                        Ok(r) => {
                            self.subscribe(id, r, start, ctl).await;
                            None
                        }
                    }
                };
                if let Some(reply) = reply {
                    debug!(id, %channel, %rendition, ?reply, "subscribe refused");
                    let _ = ctl.send(reply).await;
                }
            }
            ControlMessage::Unsubscribe { id } => {
                if let Some((task, _)) = self.subs.remove(&id) {
                    task.abort();
                    self.shared.metrics.subscriptions.dec();
                }
            }
            ControlMessage::Fetch { id, subscription, msn } => {
                if let Some((_, with_fetch)) = self.flight_subs.iter().find(|(s, _)| *s == subscription) {
                    with_fetch.store(true, Ordering::Relaxed);
                }
                if tracing::enabled!(tracing::Level::DEBUG) {
                    // The path's state explains a slow fetch (RTT, window, losses).
                    let path = self.conn.stats().path;
                    debug!(
                        id,
                        subscription,
                        msn,
                        rtt_us = path.rtt.as_micros() as u64,
                        cwnd = path.cwnd,
                        lost = path.lost_packets,
                        congestion_events = path.congestion_events,
                        mtu = path.current_mtu,
                        "fetch received"
                    );
                }
                let Some((_, rendition)) = self.subs.get(&subscription) else {
                    let _ = ctl.send(error(id, ErrorCode::BadRequest, "unknown subscription")).await;
                    return Ok(());
                };
                let Ok(permit) = self.fetches.clone().try_acquire_owned() else {
                    let _ = ctl.send(error(id, ErrorCode::Overloaded, "too many fetches")).await;
                    return Ok(());
                };
                let fetch = push::Fetch {
                    hold: Some(self.gate.hold()),
                    conn: self.conn.clone(),
                    rendition: rendition.clone(),
                    request: id,
                    subscription,
                    msn,
                    prio: push::priority(&self.prio, push::Class::Fetch),
                    ctl: ctl.clone(),
                    shared: self.shared.clone(),
                };
                tokio::spawn(async move {
                    fetch.run().await;
                    drop(permit);
                });
            }
            _ => {
                return Err(
                    super::codec::CodecError::BadOrder("message not allowed from a subscriber").into()
                );
            }
        }
        Ok(())
    }

    async fn subscribe(
        &mut self,
        id: u64,
        rendition: Arc<Rendition>,
        start: Start,
        ctl: &mpsc::Sender<ControlMessage>,
    ) {
        let (ok, next, announced) = rendition.read(|w| {
            let held = w.oldest_msn().zip(w.latest_msn());
            let start_msn = held.map(|(oldest, latest)| match start {
                Start::Live { back } => latest.saturating_sub(back).max(oldest),
                Start::FromMsn(m) => m.clamp(oldest, latest),
            });
            let init = w
                .current_init_id()
                .and_then(|id| Some(InitSegment { id, info: w.info()?.clone(), bytes: w.init(id)? }));
            let announced = init.as_ref().map(|i| i.id);
            let latest = w
                .open_part()
                .or_else(|| w.last_complete_part())
                .map(|p| Position { msn: p.msn, part: p.part });
            let ok = ControlMessage::SubscribeOk {
                id,
                init,
                start_msn: start_msn.unwrap_or(0),
                latest,
                target_duration: w.target_duration_secs() as f64,
                part_target: w.part_target_secs(),
            };
            (ok, start_msn.map(|msn| Position { msn, part: 0 }), announced)
        });
        if ctl.send(ok).await.is_err() {
            return;
        }
        if self.flight.is_none() {
            self.flight = Some(self.gate.hold());
        }
        let with_fetch = Arc::new(AtomicBool::new(false));
        self.flight_subs.push((id, with_fetch.clone()));
        let sub = push::Subscription {
            gate: self.gate.clone(),
            with_fetch,
            conn: self.conn.clone(),
            rendition: rendition.clone(),
            id,
            ctl: ctl.clone(),
            prio: self.prio.clone(),
            shared: self.shared.clone(),
        };
        let handle = self.tasks.spawn(async move {
            sub.run(next, announced).await;
            id
        });
        self.subs.insert(id, (handle, rendition));
        self.shared.metrics.subscriptions.inc();
    }
}
