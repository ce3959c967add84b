//! The relay client (subscriber side): one QUIC connection to an upstream relay server,
//! shared by every subscription, applying what it receives to a local [`Hub`] so the node
//! serves it over HTTP and re-serves it with its own relay server (edge → edge → origin).
//!
//! A single driver task (`client/driver.rs`) owns the connection, the control stream and
//! the per-subscription [`Assembler`](super::assembler::Assembler)s; one small task per
//! incoming stream decodes frames into a bounded queue. On a lost connection the driver
//! reconnects with jittered exponential backoff (reset after a connection that worked) and
//! resubscribes every subscription from the segment it was in.

mod driver;
mod streams;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use quinn::{Endpoint, VarInt};
use tokio::sync::{mpsc, oneshot, watch};

use super::codec::{ErrorCode, Position};
use super::metrics::RelayClientMetrics;
use super::tls::{self, NodeIdentity, TlsError};
use crate::hub::{ArrivalError, Arriving, Hub, HubError, Rendition};

/// Upstream address, timers and limits of a relay client.
#[derive(Debug, Clone)]
pub struct RelayClientConfig {
    /// The upstream relay server.
    pub upstream: SocketAddr,
    /// The name its certificate carries (a DNS SAN).
    pub server_name: String,
    /// QUIC keep-alive interval.
    pub keep_alive: Duration,
    /// QUIC idle timeout.
    pub idle_timeout: Duration,
    /// Limit on one connection attempt (handshake included).
    pub connect_timeout: Duration,
    /// How long `subscribe` waits for the upstream's answer.
    pub request_timeout: Duration,
    /// First reconnect delay.
    pub backoff_initial: Duration,
    /// Largest reconnect delay.
    pub backoff_max: Duration,
    /// Parts buffered per subscription while waiting for an earlier one.
    pub max_buffered_parts: usize,
    /// Unidirectional streams the upstream may have open at once.
    pub max_uni_streams: u32,
    /// Complete segments to start with on a fresh subscription (history for players).
    pub history_segments: u64,
}

impl RelayClientConfig {
    /// Defaults for an upstream at `upstream` whose certificate names `server_name`.
    pub fn new(upstream: SocketAddr, server_name: impl Into<String>) -> Self {
        Self {
            upstream,
            server_name: server_name.into(),
            keep_alive: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_secs(10),
            max_buffered_parts: 64,
            max_uni_streams: 256,
            history_segments: 3,
        }
    }

    /// The QUIC transport settings of the client side.
    pub fn transport(&self) -> quinn::TransportConfig {
        let mut t = quinn::TransportConfig::default();
        t.max_concurrent_bidi_streams(VarInt::from_u32(0));
        t.max_concurrent_uni_streams(VarInt::from_u32(self.max_uni_streams.max(1)));
        t.keep_alive_interval(Some(self.keep_alive));
        t.max_idle_timeout(quinn::IdleTimeout::try_from(self.idle_timeout).ok());
        t
    }
}

/// Why a relay client could not be made or a subscription failed.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// The TLS configuration failed.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The local UDP socket could not be bound.
    #[error("bind: {0}")]
    Bind(std::io::Error),
    /// The local hub refused the rendition (bad name, too many channels).
    #[error(transparent)]
    Hub(#[from] HubError),
    /// The upstream answered with an error.
    #[error("upstream refused: {} ({message})", code.as_str())]
    Refused { code: ErrorCode, message: String },
    /// No answer within `request_timeout` (the upstream may be unreachable).
    #[error("no answer from upstream in time")]
    Timeout,
    /// The client has stopped.
    #[error("relay client stopped")]
    Stopped,
    /// A fetched segment broke off, or was larger than a fetch may be.
    #[error("fetch failed: {0}")]
    Fetch(&'static str),
}

impl RelayError {
    /// The upstream's error code, when it refused.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            RelayError::Refused { code, .. } => Some(*code),
            _ => None,
        }
    }
}

/// What the driver hands back for an accepted subscription.
pub(crate) struct Accepted {
    id: u64,
    local: Arc<Rendition>,
    active: Arc<AtomicBool>,
    /// The newest part the upstream held when it accepted.
    latest: Option<Position>,
}

pub(crate) enum Command {
    Subscribe {
        channel: String,
        rendition: String,
        reply: oneshot::Sender<Result<Accepted, RelayError>>,
        /// A fetch sent right behind the subscribe (see [`RelayClient::subscribe_fetching`]).
        fetch: Option<(u64, FetchReply)>,
    },
    Unsubscribe {
        id: u64,
    },
    Fetch {
        subscription: u64,
        msn: u64,
        reply: FetchReply,
    },
}

/// Where a detached fetch's segment goes once its stream starts (or why it did not).
pub(crate) type FetchReply = oneshot::Sender<Result<Arriving, RelayError>>;

/// A fetch sent with a subscribe: its segment and where its answer arrives.
type Prefetch = (u64, oneshot::Receiver<Result<Arriving, RelayError>>);

/// A connection to one upstream, shared by its subscriptions. Dropping it stops the driver,
/// which closes the connection (its subscriptions end; what they applied stays in the hub).
#[derive(Debug)]
pub struct RelayClient {
    cmd: mpsc::Sender<Command>,
    connected: Arc<AtomicBool>,
    request_timeout: Duration,
    /// Dropped with the client: tells the driver to stop.
    _stop: watch::Sender<()>,
}

impl RelayClient {
    /// A client with its own UDP endpoint, presenting `identity` to the upstream.
    pub fn new(
        identity: &NodeIdentity,
        cfg: RelayClientConfig,
        hub: Arc<Hub>,
        metrics: RelayClientMetrics,
    ) -> Result<Self, RelayError> {
        let mut cc = tls::client_config(identity)?;
        cc.transport_config(Arc::new(cfg.transport()));
        let bind: SocketAddr = if cfg.upstream.is_ipv4() {
            SocketAddr::from(([0, 0, 0, 0], 0))
        } else {
            SocketAddr::from(([0u16; 8], 0))
        };
        let endpoint = super::socket::endpoint(bind, None).map_err(RelayError::Bind)?;
        Ok(Self::with_endpoint(endpoint, cc, cfg, hub, metrics))
    }

    /// A client using `endpoint` and `client_config` (whose transport should come from
    /// [`RelayClientConfig::transport`]).
    pub fn with_endpoint(
        endpoint: Endpoint,
        client_config: quinn::ClientConfig,
        cfg: RelayClientConfig,
        hub: Arc<Hub>,
        metrics: RelayClientMetrics,
    ) -> Self {
        let (cmd, cmd_rx) = mpsc::channel(64);
        let connected = Arc::new(AtomicBool::new(false));
        let request_timeout = cfg.request_timeout;
        let (stop, stop_rx) = watch::channel(());
        let links = driver::Links { cmd_rx, stop: stop_rx, connected: connected.clone() };
        let d = driver::Driver::new(endpoint, client_config, cfg, hub, metrics, links);
        tokio::spawn(d.run());
        Self { cmd, connected, request_timeout, _stop: stop }
    }

    /// Whether a connection to the upstream is up now.
    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }

    /// Subscribes to `rendition` of `channel`. Returns once the upstream accepted
    /// (parts then flow into the local hub's rendition) or refused.
    pub async fn subscribe(&self, channel: &str, rendition: &str) -> Result<Subscription, RelayError> {
        self.subscribe_fetching(channel, rendition, None).await
    }

    /// [`subscribe`](Self::subscribe), and when `fetch` names a segment, a fetch of it sent in
    /// the same flight as the subscribe: the upstream then queues the segment ahead of the
    /// history it pushes, instead of behind what it pushed in the round trip before a later
    /// fetch arrives (a cold edge asked for a segment). The segment is then taken with
    /// [`Subscription::fetch_arriving`].
    pub async fn subscribe_fetching(
        &self,
        channel: &str,
        rendition: &str,
        fetch: Option<u64>,
    ) -> Result<Subscription, RelayError> {
        let (reply, rx) = oneshot::channel();
        let (fetch, prefetch) = match fetch {
            Some(msn) => {
                let (tx, rx) = oneshot::channel();
                (Some((msn, tx)), Some((msn, rx)))
            }
            None => (None, None),
        };
        let cmd = Command::Subscribe { channel: channel.into(), rendition: rendition.into(), reply, fetch };
        self.cmd.send(cmd).await.map_err(|_| RelayError::Stopped)?;
        let Accepted { id, local, active, latest } =
            match tokio::time::timeout(self.request_timeout, rx).await {
                Ok(Ok(r)) => r?,
                Ok(Err(_)) => return Err(RelayError::Stopped),
                Err(_) => return Err(RelayError::Timeout),
            };
        let prefetch = std::sync::Mutex::new(prefetch);
        Ok(Subscription { id, local, active, latest, prefetch, cmd: self.cmd.clone() })
    }
}

/// A live subscription. Dropping it unsubscribes.
#[derive(Debug)]
pub struct Subscription {
    id: u64,
    local: Arc<Rendition>,
    active: Arc<AtomicBool>,
    latest: Option<Position>,
    /// The answer to a fetch sent with the subscribe, until taken.
    prefetch: std::sync::Mutex<Option<Prefetch>>,
    cmd: mpsc::Sender<Command>,
}

impl Subscription {
    /// The subscription's request id on the relay connection.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The local hub rendition the subscription fills.
    pub fn rendition(&self) -> &Arc<Rendition> {
        &self.local
    }

    /// False once the upstream ended the subscription with an error (for example the
    /// rendition was removed there) or the client stopped; the caller may subscribe again.
    pub fn is_active(&self) -> bool {
        self.active.load(Ordering::Relaxed)
    }

    /// Waits (at most `timeout`) until the local window holds the part that was the
    /// upstream's newest when it accepted, so that the history asked for
    /// (`history_segments`) has arrived. Returns whether it did; `true` at once when the
    /// upstream held nothing. (The rendition is marked filled,
    /// [`Rendition::is_filled`], at the same point.)
    pub async fn caught_up(&self, timeout: Duration) -> bool {
        let Some(latest) = self.latest else { return true };
        let deadline = tokio::time::Instant::now() + timeout;
        let reached = |w: &crate::window::LiveWindow| {
            (w.part(latest.msn, latest.part).is_some() || w.latest_msn().is_some_and(|m| m > latest.msn))
                .then_some(())
        };
        self.local.wait_for(deadline, reached).await.is_some()
    }

    /// Fetches complete segment `msn` of the subscribed rendition as one buffer (its parts'
    /// bytes in order), without applying it to the local window. See
    /// [`fetch_arriving`](Self::fetch_arriving); `timeout` bounds the whole transfer.
    pub async fn fetch_segment(&self, msn: u64, timeout: Duration) -> Result<Bytes, RelayError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let arriving = self.fetch_arriving(msn, timeout).await?;
        arriving.whole(deadline).await.map_err(|e| match e {
            ArrivalError::Stalled => RelayError::Timeout,
            ArrivalError::TooLarge => RelayError::Fetch("segment larger than a fetch may be"),
            ArrivalError::BrokeOff => RelayError::Fetch("fetch stream broke off"),
        })
    }

    /// Fetches complete segment `msn` of the subscribed rendition without applying it to
    /// the local window: for an object the window does not hold (older than it, or not
    /// arrived yet while the history is backfilled). Returns once the upstream started
    /// sending it (within `timeout`); the segment's bytes (its parts' bytes in order) are
    /// then readable as they arrive. The upstream waits (bounded) for a segment it is still
    /// writing.
    pub async fn fetch_arriving(&self, msn: u64, timeout: Duration) -> Result<Arriving, RelayError> {
        let prefetched = {
            let mut slot = self.prefetch.lock().unwrap_or_else(|e| e.into_inner());
            match slot.take() {
                Some((m, rx)) if m == msn => Some(rx),
                other => {
                    *slot = other;
                    None
                }
            }
        };
        if let Some(rx) = prefetched {
            match tokio::time::timeout(timeout, rx).await {
                Ok(Ok(Ok(arriving))) => return Ok(arriving),
                Ok(Ok(Err(e))) if e.code() == Some(ErrorCode::NotFound) => return Err(e),
                Err(_) => return Err(RelayError::Timeout),
                // Lost with a connection, or refused for another reason: ask again.
                Ok(_) => {}
            }
        }
        let (reply, rx) = oneshot::channel();
        let cmd = Command::Fetch { subscription: self.id, msn, reply };
        self.cmd.send(cmd).await.map_err(|_| RelayError::Stopped)?;
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(RelayError::Stopped),
            Err(_) => Err(RelayError::Timeout),
        }
    }

    /// Stops the subscription.
    pub async fn unsubscribe(self) {
        // Drop sends the command.
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let _ = self.cmd.try_send(Command::Unsubscribe { id: self.id });
    }
}
