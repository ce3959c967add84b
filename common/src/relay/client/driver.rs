//! The client's driver task: connection, reconnect with backoff, control stream, and the
//! per-subscription assemblers that apply received parts to the local hub.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::BytesMut;
use quinn::{Connection, Endpoint, SendStream, VarInt};
use rand::Rng;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::streams::{self, Event};
use super::{Accepted, Command, FetchReply, RelayClientConfig, RelayError};
use crate::hub::{ArrivalError, ArrivingWriter, Hub, Rendition, arriving};
use crate::media::MediaEvent;
use crate::relay::assembler::{Action, Assembler};
use crate::relay::codec::{CloseCode, CodecError, ControlMessage, Position, Start};
use crate::relay::io::{self, StreamError};
use crate::relay::metrics::RelayClientMetrics;

/// Segments fetched at most for one gap; a larger gap is given up.
const MAX_GAP_FETCH: u64 = 4;

/// Largest segment a detached fetch collects (a larger one fails).
const MAX_DETACHED_BYTES: usize = 256 << 20;

/// Detached fetches (segments returned to the caller, not applied) in flight at once.
const MAX_DETACHED: usize = 16;

/// A fetch whose segment goes back to the caller instead of into the window: the reply
/// until its stream starts, then the writer its bytes go to as they arrive.
struct Detached {
    reply: Option<FetchReply>,
    writer: Option<ArrivingWriter>,
}

type Reply = oneshot::Sender<Result<Accepted, RelayError>>;

struct Sub {
    channel: String,
    rendition: String,
    local: Arc<Rendition>,
    asm: Assembler,
    reply: Option<Reply>,
    fetching: HashSet<u64>,
    active: Arc<AtomicBool>,
    /// A fresh window's history ends with this part (the upstream's newest when it
    /// accepted); the rendition counts as filled once it is here.
    backfill: Option<Position>,
}

impl Sub {
    /// Marks the rendition filled once the history has arrived (or the stream went on past
    /// it, or ended).
    fn check_filled(&mut self) {
        let Some(target) = self.backfill else { return };
        let reached = self.local.read(|w| {
            w.ended()
                || w.part(target.msn, target.part).is_some()
                || w.latest_msn().is_some_and(|m| m > target.msn)
        });
        if reached {
            self.backfill = None;
            self.local.set_filled(true);
        }
    }
}

impl Drop for Sub {
    fn drop(&mut self) {
        self.active.store(false, Ordering::Relaxed);
    }
}

/// How the driver talks with its [`RelayClient`](super::RelayClient) and subscriptions.
pub(super) struct Links {
    pub(super) cmd_rx: mpsc::Receiver<Command>,
    /// Changes (closes) when the client is dropped.
    pub(super) stop: watch::Receiver<()>,
    pub(super) connected: Arc<AtomicBool>,
}

pub(super) struct Driver {
    endpoint: Endpoint,
    client_config: quinn::ClientConfig,
    cfg: RelayClientConfig,
    hub: Arc<Hub>,
    metrics: RelayClientMetrics,
    cmd_rx: mpsc::Receiver<Command>,
    stop: watch::Receiver<()>,
    connected: Arc<AtomicBool>,
    subs: HashMap<u64, Sub>,
    /// Fetch request id -> (subscription, msn).
    fetches: HashMap<u64, (u64, u64)>,
    /// Detached fetches by request id, and the streams answering them (token -> request).
    detached: HashMap<u64, Detached>,
    detached_streams: HashMap<u64, u64>,
    next_id: u64,
    next_token: u64,
    stopped: bool,
}

/// Why a session ended early: the connection is unusable.
struct Broken;

impl From<StreamError> for Broken {
    fn from(_: StreamError) -> Self {
        Broken
    }
}

impl Driver {
    pub(super) fn new(
        endpoint: Endpoint,
        client_config: quinn::ClientConfig,
        cfg: RelayClientConfig,
        hub: Arc<Hub>,
        metrics: RelayClientMetrics,
        links: Links,
    ) -> Self {
        let Links { cmd_rx, stop, connected } = links;
        Self {
            endpoint,
            client_config,
            cfg,
            hub,
            metrics,
            cmd_rx,
            stop,
            connected,
            subs: HashMap::new(),
            fetches: HashMap::new(),
            detached: HashMap::new(),
            detached_streams: HashMap::new(),
            next_id: 1,
            next_token: 0,
            stopped: false,
        }
    }

    pub(super) async fn run(mut self) {
        let mut backoff = self.cfg.backoff_initial;
        let mut had_connection = false;
        loop {
            if let Some(conn) = self.connect().await {
                if had_connection {
                    self.metrics.reconnects.inc();
                }
                had_connection = true;
                let started = Instant::now();
                let worked = self.session(conn).await;
                if self.stopped {
                    break;
                }
                if worked || started.elapsed() >= self.cfg.backoff_max {
                    backoff = self.cfg.backoff_initial;
                }
            }
            if self.stopped {
                break;
            }
            let delay = backoff.mul_f64(rand::rng().random_range(0.5..1.5));
            backoff = (backoff * 2).min(self.cfg.backoff_max);
            debug!(upstream = %self.cfg.upstream, ?delay, "relay reconnect in");
            let sleep = tokio::time::sleep(delay);
            tokio::pin!(sleep);
            loop {
                tokio::select! {
                    _ = &mut sleep => break,
                    _ = self.stop.changed() => { self.stopped = true; break; }
                    c = self.cmd_rx.recv() => match c {
                        Some(c) => { let _ = self.command(c, None).await; }
                        None => { self.stopped = true; break; }
                    },
                }
            }
            if self.stopped {
                break;
            }
        }
        self.metrics.subscriptions.sub(self.subs.len() as i64);
        self.endpoint.close(VarInt::from_u32(CloseCode::NoError as u32), b"");
    }

    async fn connect(&mut self) -> Option<Connection> {
        let (addr, name) = (self.cfg.upstream, self.cfg.server_name.clone());
        let connecting = match self.endpoint.connect_with(self.client_config.clone(), addr, &name) {
            Ok(c) => c,
            Err(e) => {
                warn!(upstream = %addr, error = %e, "relay connect");
                return None;
            }
        };
        let attempt = tokio::select! {
            r = tokio::time::timeout(self.cfg.connect_timeout, connecting) => r,
            _ = self.stop.changed() => {
                self.stopped = true;
                return None;
            }
        };
        match attempt {
            Ok(Ok(conn)) => Some(conn),
            Ok(Err(e)) => {
                info!(upstream = %addr, error = %e, "relay connect failed");
                None
            }
            Err(_) => {
                info!(upstream = %addr, "relay connect timed out");
                None
            }
        }
    }

    /// Runs one connection until it breaks or the client stops. Returns whether anything
    /// was received (the connection worked).
    async fn session(&mut self, conn: Connection) -> bool {
        let Ok((mut send, mut recv)) = conn.open_bi().await else { return false };
        // Control messages (subscribe, fetch) go before any media.
        let _ = send.set_priority(i32::MAX);
        self.connected.store(true, Ordering::Relaxed);
        info!(upstream = %self.cfg.upstream, "relay connected");
        let (tx, mut rx) = mpsc::channel::<Event>(1024);
        let mut worked = false;
        let ids: Vec<u64> = self.subs.keys().copied().collect();
        let mut ok = true;
        for id in ids {
            if self.send_subscribe(&mut send, id).await.is_err() {
                ok = false;
                break;
            }
        }
        let mut buf = BytesMut::new();
        while ok {
            let step: Result<(), Broken> = tokio::select! {
                _ = self.stop.changed() => {
                    self.stopped = true;
                    Err(Broken)
                }
                c = self.cmd_rx.recv() => match c {
                    Some(c) => self.command(c, Some(&mut send)).await,
                    None => {
                        self.stopped = true;
                        Err(Broken)
                    }
                },
                m = io::read_control(&mut recv, &mut buf) => {
                    worked = true;
                    match m {
                        Ok(Some(m)) if is_subscriber_message(&m) => {
                            Err(close_malformed(&conn, CodecError::BadOrder("subscriber message from upstream")))
                        }
                        Ok(Some(m)) => self.control(m, &mut send).await,
                        Ok(None) => Err(Broken),
                        Err(StreamError::Codec(e)) => Err(close_malformed(&conn, e)),
                        Err(_) => Err(Broken),
                    }
                }
                s = conn.accept_uni() => match s {
                    Ok(recv) => {
                        self.next_token += 1;
                        tokio::spawn(streams::read_stream(recv, self.next_token, tx.clone(), self.metrics.clone()));
                        Ok(())
                    }
                    Err(_) => Err(Broken),
                },
                Some(ev) = rx.recv() => match ev {
                    Event::Malformed(e) => Err(close_malformed(&conn, e)),
                    ev => self.frame(ev, &mut send).await,
                },
            };
            ok = step.is_ok();
        }
        // Closing (a no-op if already closed) also ends this connection's stream readers.
        conn.close(VarInt::from_u32(CloseCode::NoError as u32), b"");
        self.connected.store(false, Ordering::Relaxed);
        info!(upstream = %self.cfg.upstream, reason = ?conn.close_reason(), "relay connection lost");
        for sub in self.subs.values_mut() {
            sub.asm.abort_deliveries();
            sub.fetching.clear();
        }
        self.fetches.clear();
        // Dropping the replies tells the callers (stopped).
        self.detached.clear();
        self.detached_streams.clear();
        worked
    }

    async fn send_subscribe(&mut self, send: &mut SendStream, id: u64) -> Result<(), StreamError> {
        let Some(sub) = self.subs.get(&id) else { return Ok(()) };
        let start = match sub.asm.resume_msn() {
            Some(msn) => Start::FromMsn(msn),
            None => Start::Live { back: self.cfg.history_segments },
        };
        let msg = ControlMessage::Subscribe {
            id,
            channel: sub.channel.clone(),
            rendition: sub.rendition.clone(),
            start,
        };
        io::write_control(send, &msg).await
    }

    async fn command(&mut self, c: Command, send: Option<&mut SendStream>) -> Result<(), Broken> {
        match c {
            Command::Subscribe { channel, rendition, reply, fetch } => {
                let local = match self.hub.open(&channel, &rendition) {
                    Ok(r) => r,
                    Err(e) => {
                        let _ = reply.send(Err(e.into()));
                        return Ok(());
                    }
                };
                // Continue after what the local window holds complete.
                local.update(|w| w.abandon_open());
                let (init, resume) = local.read(|w| (w.current_init_id(), w.last_complete_msn()));
                if local.read(|w| w.latest_msn().is_none()) {
                    // A fresh window: not filled until the history arrives (subscribe-ok
                    // says up to where).
                    local.set_filled(false);
                }
                let mut asm = Assembler::new(self.cfg.max_buffered_parts, init);
                if let Some(last) = resume {
                    asm.resume_at(last + 1);
                }
                let id = self.next_id;
                self.next_id += 1;
                let active = Arc::new(AtomicBool::new(true));
                let fetching = HashSet::new();
                let reply = Some(reply);
                let sub = Sub { channel, rendition, local, asm, reply, fetching, active, backfill: None };
                self.subs.insert(id, sub);
                self.metrics.subscriptions.inc();
                if let Some(send) = send {
                    self.send_subscribe(send, id).await?;
                    // Without a connection (or over the fetch limit) the reply drops: the
                    // caller fetches later.
                    if let Some((msn, reply)) = fetch
                        && self.detached.len() < MAX_DETACHED
                    {
                        self.send_fetch(send, id, msn, reply).await?;
                    }
                }
            }
            Command::Fetch { subscription, msn, reply } => {
                let Some(send) = send else {
                    let _ = reply.send(Err(RelayError::Timeout));
                    return Ok(());
                };
                if !self.subs.contains_key(&subscription) || self.detached.len() >= MAX_DETACHED {
                    let _ = reply.send(Err(RelayError::Fetch("no such subscription, or too many fetches")));
                    return Ok(());
                }
                self.send_fetch(send, subscription, msn, reply).await?;
            }
            Command::Unsubscribe { id } => {
                if self.subs.remove(&id).is_some() {
                    self.metrics.subscriptions.dec();
                    if let Some(send) = send {
                        io::write_control(send, &ControlMessage::Unsubscribe { id }).await?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Sends a fetch whose segment goes back to `reply` (a detached fetch).
    async fn send_fetch(
        &mut self,
        send: &mut SendStream,
        subscription: u64,
        msn: u64,
        reply: FetchReply,
    ) -> Result<(), Broken> {
        let id = self.next_id;
        self.next_id += 1;
        self.detached.insert(id, Detached { reply: Some(reply), writer: None });
        debug!(id, subscription, msn, "fetch sent");
        io::write_control(send, &ControlMessage::Fetch { id, subscription, msn }).await?;
        Ok(())
    }

    async fn control(&mut self, m: ControlMessage, send: &mut SendStream) -> Result<(), Broken> {
        let mut out = Vec::new();
        match m {
            ControlMessage::SubscribeOk { id, init, start_msn, latest, target_duration, part_target } => {
                let Some(sub) = self.subs.get_mut(&id) else { return Ok(()) };
                debug!(id, start_msn, "subscribe-ok");
                if let Some(init) = init {
                    sub.asm.on_init(init, &mut out);
                }
                if target_duration > 0.0 && part_target > 0.0 {
                    let (part_ms, seg_ms) =
                        ((part_target * 1000.0).round() as u64, (target_duration * 1000.0) as u64);
                    sub.local.update(|w| w.set_targets(part_ms, seg_ms));
                }
                sub.asm.on_start(latest.map(|_| start_msn), &mut out);
                if !sub.local.is_filled() {
                    match latest {
                        Some(p) => sub.backfill = Some(p),
                        None => sub.local.set_filled(true),
                    }
                }
                apply(sub, out);
                let accepted = Accepted { id, local: sub.local.clone(), active: sub.active.clone(), latest };
                if let Some(reply) = sub.reply.take()
                    && reply.send(Ok(accepted)).is_err()
                {
                    // The caller gave up waiting.
                    self.subs.remove(&id);
                    self.metrics.subscriptions.dec();
                    io::write_control(send, &ControlMessage::Unsubscribe { id }).await?;
                }
            }
            ControlMessage::Error { id, code, message } => {
                if let Some(d) = self.detached.remove(&id) {
                    if let Some(reply) = d.reply {
                        let _ = reply.send(Err(RelayError::Refused { code, message }));
                    }
                } else if let Some((sid, msn)) = self.fetches.remove(&id) {
                    debug!(sid, msn, code = code.as_str(), %message, "fetch failed");
                    if let Some(sub) = self.subs.get_mut(&sid) {
                        sub.fetching.remove(&msn);
                        sub.asm.give_up(msn, &mut out);
                        apply(sub, out);
                    }
                } else if let Some(mut sub) = self.subs.remove(&id) {
                    self.metrics.subscriptions.dec();
                    warn!(channel = %sub.channel, rendition = %sub.rendition, code = code.as_str(), %message, "upstream ended subscription");
                    if let Some(reply) = sub.reply.take() {
                        let _ = reply.send(Err(RelayError::Refused { code, message }));
                    }
                }
            }
            ControlMessage::Announce { subscription, init } => {
                if let Some(sub) = self.subs.get_mut(&subscription) {
                    sub.asm.on_init(init, &mut out);
                    apply(sub, out);
                }
            }
            ControlMessage::Ended { subscription, last } => {
                if let Some(sub) = self.subs.get_mut(&subscription) {
                    sub.asm.on_ended(last, &mut out);
                    apply(sub, out);
                }
            }
            ControlMessage::Gap { subscription, first, last } => {
                self.gap(subscription, first.msn, last.msn, last.part == u32::MAX, send).await?;
            }
            ControlMessage::Subscribe { .. }
            | ControlMessage::Unsubscribe { .. }
            | ControlMessage::Fetch { .. } => return Err(Broken),
        }
        Ok(())
    }

    /// Segments `first..=last` miss parts: fetch them, or give them up when the upstream
    /// no longer holds them (`gone`) or the gap is too long.
    async fn gap(
        &mut self,
        sid: u64,
        first: u64,
        last: u64,
        gone: bool,
        send: &mut SendStream,
    ) -> Result<(), Broken> {
        let Some(sub) = self.subs.get_mut(&sid) else { return Ok(()) };
        let mut out = Vec::new();
        if gone || last.saturating_sub(first) >= MAX_GAP_FETCH {
            for msn in first..=last.min(first + 64) {
                sub.asm.give_up(msn, &mut out);
            }
            apply(sub, out);
            return Ok(());
        }
        for msn in first..=last {
            if !sub.fetching.insert(msn) {
                continue;
            }
            let id = self.next_id;
            self.next_id += 1;
            self.fetches.insert(id, (sid, msn));
            io::write_control(send, &ControlMessage::Fetch { id, subscription: sid, msn }).await?;
        }
        Ok(())
    }

    async fn frame(&mut self, ev: Event, send: &mut SendStream) -> Result<(), Broken> {
        let mut out = Vec::new();
        match ev {
            Event::Header { token, fetch: Some(request), .. } if self.detached.contains_key(&request) => {
                self.detached_streams.insert(token, request);
                if let Some(d) = self.detached.get_mut(&request)
                    && d.writer.is_none()
                {
                    let (writer, reader) = arriving();
                    debug!(request, "fetch started");
                    if let Some(reply) = d.reply.take() {
                        // A caller that gave up drops the reader; the bytes still arrive.
                        let _ = reply.send(Ok(reader));
                    }
                    d.writer = Some(writer);
                }
            }
            Event::Chunk { token, bytes, .. } if self.detached_streams.contains_key(&token) => {
                let request = self.detached_streams[&token];
                if let Some(d) = self.detached.get_mut(&request)
                    && let Some(w) = &d.writer
                {
                    if w.len() + bytes.len() > MAX_DETACHED_BYTES {
                        if let Some(w) = d.writer.take() {
                            w.fail(ArrivalError::TooLarge);
                        }
                    } else {
                        w.push(bytes);
                    }
                }
            }
            Event::Trailer { token, .. } | Event::Abort { token, .. }
                if self.detached_streams.contains_key(&token) => {}
            Event::FetchDone { request, ok } if self.detached.contains_key(&request) => {
                self.detached_streams.retain(|_, r| *r != request);
                if let Some(d) = self.detached.remove(&request) {
                    debug!(request, ok, bytes = d.writer.as_ref().map_or(0, |w| w.len()), "fetch done");
                    match (d.writer, ok) {
                        (Some(w), true) => w.finish(),
                        // Dropping the writer fails its readers.
                        (Some(_), false) => {}
                        (None, _) => {
                            if let Some(reply) = d.reply {
                                let _ = reply.send(Err(RelayError::Fetch("fetch stream broke off")));
                            }
                        }
                    }
                }
            }
            Event::Header { token, header, .. } => {
                let sid = header.subscription;
                let Some(sub) = self.subs.get_mut(&sid) else { return Ok(()) };
                if let Err(e) = sub.asm.on_header(token, header, &mut out) {
                    warn!(channel = %sub.channel, error = %e, "resubscribing");
                    apply(sub, out);
                    io::write_control(send, &ControlMessage::Unsubscribe { id: sid }).await?;
                    return Ok(self.send_subscribe(send, sid).await?);
                }
                apply(sub, out);
            }
            Event::Chunk { token, sub, pos, bytes } => {
                if let Some(sub) = self.subs.get_mut(&sub) {
                    sub.asm.on_chunk(token, pos, bytes, &mut out);
                    apply(sub, out);
                }
            }
            Event::Trailer { token, sub, pos, trailer } => {
                if let Some(sub) = self.subs.get_mut(&sub) {
                    sub.asm.on_trailer(token, pos, trailer, &mut out);
                    apply(sub, out);
                }
            }
            Event::Abort { token, sub, pos } => {
                if let Some(sub) = self.subs.get_mut(&sub) {
                    sub.asm.on_abort(token, pos);
                }
            }
            Event::FetchDone { request, ok } => {
                if let Some((sid, msn)) = self.fetches.remove(&request)
                    && let Some(sub) = self.subs.get_mut(&sid)
                {
                    sub.fetching.remove(&msn);
                    if !ok {
                        sub.asm.give_up(msn, &mut out);
                        apply(sub, out);
                    }
                }
            }
            Event::Malformed(_) => {}
        }
        Ok(())
    }
}

fn is_subscriber_message(m: &ControlMessage) -> bool {
    matches!(
        m,
        ControlMessage::Subscribe { .. } | ControlMessage::Unsubscribe { .. } | ControlMessage::Fetch { .. }
    )
}

fn close_malformed(conn: &Connection, e: CodecError) -> Broken {
    warn!(peer = %conn.remote_address(), error = %e, "closing relay connection: malformed frame");
    conn.close(VarInt::from_u32(e.close_code() as u32), e.to_string().as_bytes());
    Broken
}

/// Applies the assembler's output to the local window. An event the window rejects (the
/// two sides disagree, e.g. after a restart upstream) abandons the window's open segment
/// and gives that segment up, so the next segment starts clean.
fn apply(sub: &mut Sub, actions: Vec<Action>) {
    apply_actions(sub, actions);
    sub.check_filled();
}

fn apply_actions(sub: &mut Sub, actions: Vec<Action>) {
    let mut actions = actions;
    for _ in 0..4 {
        let mut failed: Option<u64> = None;
        for a in actions {
            match a {
                Action::Apply(ev, now_ms) => {
                    let msn = match &ev {
                        MediaEvent::Chunk { msn, .. } | MediaEvent::PartEnd { msn, .. } => Some(*msn),
                        _ => None,
                    };
                    if let Err(e) = sub.local.apply(ev, now_ms) {
                        if failed.is_none() {
                            warn!(channel = %sub.channel, rendition = %sub.rendition, error = %e, "relayed event rejected");
                            sub.local.update(|w| w.abandon_open());
                        }
                        failed = failed.or(msn);
                    }
                }
                Action::AbandonOpen => sub.local.update(|w| w.abandon_open()),
            }
        }
        let Some(msn) = failed else { return };
        let mut out = Vec::new();
        sub.asm.give_up(msn, &mut out);
        if out.is_empty() {
            return;
        }
        actions = out;
    }
}
