//! The tokio-side registry of live windows: channel -> rendition -> [`Rendition`].
//!
//! A [`Rendition`] wraps one [`LiveWindow`] in a std mutex (every critical section is a
//! short, non-async read or apply) and publishes its version on a `tokio::sync::watch`, so
//! HTTP requests can wait for a part or segment without polling ([`Rendition::wait_for`]).
//! The [`Hub`] bounds the number of channels and renditions, and records when each
//! channel was last requested (edges unsubscribe idle channels).
//!
//! A hub may carry an [`ObjectCache`] (`objects`): whole segments as single buffers in a
//! cache weighed by bytes, shared by its renditions (an edge's delivery serves segments from
//! it). A segment fetched upstream enters it as an [`Arriving`] (`arriving`): readable from
//! its first chunk while the rest comes, cached once whole.

mod arriving;
mod front;
mod objects;

pub use arriving::{ArrivalError, Arriving, ArrivingWriter, arriving, coalesce};
pub use objects::{ObjectCache, ObjectOutcome};

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Source of rendition ids: unique in the process, never reused.
static NEXT_RENDITION_ID: AtomicU64 = AtomicU64::new(1);
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::media::MediaEvent;
use crate::window::{ChunkAt, LiveWindow, WindowConfig, WindowError};

/// Longest a rendition counts as not filled ([`Rendition::is_filled`]): a history that has
/// not arrived by then (the upstream dropped it, or the stream stalled) is not waited for.
pub const BACKFILL_LIMIT: Duration = Duration::from_secs(5);

/// Longest channel or rendition name.
pub const MAX_NAME_LEN: usize = 64;

/// Bounds of a hub.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HubLimits {
    pub max_channels: usize,
    pub max_renditions_per_channel: usize,
    /// Bytes the live windows may hold together: each rendition reserves its window's
    /// `max_bytes` when opened, and a rendition that would pass this is refused.
    pub max_window_bytes: u64,
}

impl Default for HubLimits {
    fn default() -> Self {
        HubLimits { max_channels: 10_000, max_renditions_per_channel: 16, max_window_bytes: u64::MAX }
    }
}

/// Why a rendition could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HubError {
    /// The name is empty, longer than [`MAX_NAME_LEN`], or has characters other than
    /// ASCII letters, digits, `-`, `_` and `.` (or starts with `.`).
    #[error("invalid name {0:?}")]
    InvalidName(String),
    /// The hub already holds `max_channels` channels.
    #[error("too many channels (limit {0})")]
    TooManyChannels(usize),
    /// The channel already holds `max_renditions_per_channel` renditions.
    #[error("too many renditions in channel (limit {0})")]
    TooManyRenditions(usize),
    /// Another window would pass `max_window_bytes`.
    #[error("live windows would exceed their byte budget ({0} bytes)")]
    OverBudget(u64),
}

/// Whether `name` is usable as a channel or rendition name (and so in a URL path).
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && !name.starts_with('.')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

struct Channel {
    renditions: Vec<Arc<Rendition>>,
    last_access: Arc<AtomicU64>,
}

/// All live windows of a node.
pub struct Hub {
    cfg: WindowConfig,
    limits: HubLimits,
    epoch: Instant,
    channels: RwLock<HashMap<String, Channel>>,
    objects: Option<Arc<ObjectCache>>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub").field("limits", &self.limits).finish_non_exhaustive()
    }
}

impl Hub {
    /// A hub whose windows use `cfg`, with default limits.
    pub fn new(cfg: WindowConfig) -> Self {
        Self::with_limits(cfg, HubLimits::default())
    }

    /// A hub whose windows use `cfg`, bounded by `limits`.
    pub fn with_limits(cfg: WindowConfig, limits: HubLimits) -> Self {
        Hub { cfg, limits, epoch: Instant::now(), channels: RwLock::new(HashMap::new()), objects: None }
    }

    /// Renditions opened from now on keep whole segments in `objects`.
    pub fn with_objects(mut self, objects: ObjectCache) -> Self {
        self.objects = Some(Arc::new(objects));
        self
    }

    /// The whole-segment cache, if any.
    pub fn objects(&self) -> Option<&Arc<ObjectCache>> {
        self.objects.as_ref()
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// The rendition, if the channel and rendition exist.
    pub fn rendition(&self, channel: &str, rendition: &str) -> Option<Arc<Rendition>> {
        let map = self.channels.read().unwrap_or_else(PoisonError::into_inner);
        map.get(channel)?.renditions.iter().find(|r| r.name == rendition).cloned()
    }

    /// Gets or creates a rendition (for writers: the packager, the relay client).
    pub fn open(&self, channel: &str, rendition: &str) -> Result<Arc<Rendition>, HubError> {
        if let Some(r) = self.rendition(channel, rendition) {
            return Ok(r);
        }
        for name in [channel, rendition] {
            if !valid_name(name) {
                return Err(HubError::InvalidName(name.chars().take(MAX_NAME_LEN).collect()));
            }
        }
        let now = self.now_ms();
        let mut map = self.channels.write().unwrap_or_else(PoisonError::into_inner);
        if !map.contains_key(channel) && map.len() >= self.limits.max_channels {
            return Err(HubError::TooManyChannels(self.limits.max_channels));
        }
        let ch = map.entry(channel.to_owned()).or_insert_with(|| Channel {
            renditions: Vec::new(),
            last_access: Arc::new(AtomicU64::new(now)),
        });
        if let Some(r) = ch.renditions.iter().find(|r| r.name == rendition) {
            return Ok(r.clone());
        }
        if ch.renditions.len() >= self.limits.max_renditions_per_channel {
            return Err(HubError::TooManyRenditions(self.limits.max_renditions_per_channel));
        }
        let open = map.values().map(|c| c.renditions.len() as u64).sum::<u64>();
        if (open + 1).saturating_mul(self.cfg.max_bytes) > self.limits.max_window_bytes {
            // Do not leave an empty channel behind.
            if map.get(channel).is_some_and(|c| c.renditions.is_empty()) {
                map.remove(channel);
            }
            return Err(HubError::OverBudget(self.limits.max_window_bytes));
        }
        let Some(ch) = map.get_mut(channel) else {
            return Err(HubError::TooManyChannels(self.limits.max_channels));
        };
        let mut r = Rendition::new(
            channel.to_owned(),
            rendition.to_owned(),
            LiveWindow::new(self.cfg.clone()),
            ch.last_access.clone(),
            self.epoch,
        );
        r.objects = self.objects.clone();
        let r = Arc::new(r);
        ch.renditions.push(r.clone());
        Ok(r)
    }

    /// The renditions of a channel, in the order they were opened.
    pub fn renditions(&self, channel: &str) -> Vec<Arc<Rendition>> {
        let map = self.channels.read().unwrap_or_else(PoisonError::into_inner);
        map.get(channel).map(|c| c.renditions.clone()).unwrap_or_default()
    }

    /// Whether the channel exists.
    pub fn contains(&self, channel: &str) -> bool {
        self.channels.read().unwrap_or_else(PoisonError::into_inner).contains_key(channel)
    }

    /// Removes a channel. Its renditions are closed: waiters give up, streams end.
    pub fn remove(&self, channel: &str) {
        let removed = self.channels.write().unwrap_or_else(PoisonError::into_inner).remove(channel);
        for r in removed.into_iter().flat_map(|c| c.renditions) {
            r.close();
        }
    }

    /// Removes one rendition of a channel (and the channel when it was the last one).
    pub fn remove_rendition(&self, channel: &str, rendition: &str) {
        let mut map = self.channels.write().unwrap_or_else(PoisonError::into_inner);
        let Some(ch) = map.get_mut(channel) else { return };
        if let Some(i) = ch.renditions.iter().position(|r| r.name == rendition) {
            ch.renditions.remove(i).close();
        }
        if ch.renditions.is_empty() {
            map.remove(channel);
        }
    }

    /// Names of all channels.
    pub fn channels(&self) -> Vec<String> {
        self.channels.read().unwrap_or_else(PoisonError::into_inner).keys().cloned().collect()
    }

    /// Marks a channel as requested now.
    pub fn touch(&self, channel: &str) {
        let map = self.channels.read().unwrap_or_else(PoisonError::into_inner);
        if let Some(c) = map.get(channel) {
            c.last_access.store(self.now_ms(), Ordering::Relaxed);
        }
    }

    /// When the channel was last requested (or created).
    pub fn last_access(&self, channel: &str) -> Option<Instant> {
        let map = self.channels.read().unwrap_or_else(PoisonError::into_inner);
        let ms = map.get(channel)?.last_access.load(Ordering::Relaxed);
        Some(self.epoch + Duration::from_millis(ms))
    }

    /// Channels not requested for at least `idle`.
    pub fn idle_channels(&self, idle: Duration) -> Vec<String> {
        let now = self.now_ms();
        let idle = u64::try_from(idle.as_millis()).unwrap_or(u64::MAX);
        let map = self.channels.read().unwrap_or_else(PoisonError::into_inner);
        map.iter()
            .filter(|(_, c)| now.saturating_sub(c.last_access.load(Ordering::Relaxed)) >= idle)
            .map(|(k, _)| k.clone())
            .collect()
    }
}

/// One rendition's live window, shared between its writer and its readers.
pub struct Rendition {
    id: u64,
    channel: String,
    name: String,
    window: Mutex<LiveWindow>,
    /// Every change of the window (a chunk appended included).
    tx: watch::Sender<u64>,
    /// Changes of its parts and segments: one opens or completes, an init, the end, the
    /// fill state; not a chunk appended to a part already open. Waiters that look at parts
    /// (blocking playlist reloads, a part or segment not there yet) sleep through the
    /// chunks of a part, about 30 a second each.
    parts_tx: watch::Sender<u64>,
    closed: AtomicBool,
    /// False while a fresh relay subscription is still receiving the history it asked for.
    filled: AtomicBool,
    /// When `filled` was cleared (ms since `epoch`).
    unfilled_at_ms: AtomicU64,
    last_access: Arc<AtomicU64>,
    epoch: Instant,
    /// The playlist without a URI query, for the version it was built at.
    playlist_cache: Mutex<Option<(u64, Bytes)>>,
    objects: Option<Arc<ObjectCache>>,
}

impl std::fmt::Debug for Rendition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rendition")
            .field("channel", &self.channel)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Rendition {
    fn new(
        channel: String,
        name: String,
        window: LiveWindow,
        last_access: Arc<AtomicU64>,
        epoch: Instant,
    ) -> Self {
        let (tx, _) = watch::channel(window.version());
        let (parts_tx, _) = watch::channel(window.version());
        Rendition {
            id: NEXT_RENDITION_ID.fetch_add(1, Ordering::Relaxed),
            channel,
            name,
            window: Mutex::new(window),
            tx,
            parts_tx,
            closed: AtomicBool::new(false),
            filled: AtomicBool::new(true),
            unfilled_at_ms: AtomicU64::new(0),
            last_access,
            epoch,
            playlist_cache: Mutex::new(None),
            objects: None,
        }
    }

    /// A rendition outside any hub (tests, tools).
    pub fn standalone(channel: &str, name: &str, cfg: WindowConfig) -> Self {
        Self::new(
            channel.into(),
            name.into(),
            LiveWindow::new(cfg),
            Arc::new(AtomicU64::new(0)),
            Instant::now(),
        )
    }

    /// Unique in the process and never reused: a channel dropped and opened again gets a
    /// new id (the key of cached objects).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The hub's whole-segment cache, if it has one.
    pub fn objects(&self) -> Option<&ObjectCache> {
        self.objects.as_deref()
    }

    /// Channel name.
    pub fn channel(&self) -> &str {
        &self.channel
    }

    /// Rendition name.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn lock(&self) -> MutexGuard<'_, LiveWindow> {
        self.window.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Applies an event to the window and wakes waiters on success.
    pub fn apply(&self, ev: MediaEvent, now_unix_ms: u64) -> Result<(), WindowError> {
        let (version, appended) = {
            let mut w = self.lock();
            // A chunk for a part that already has one changes no part's state.
            let appended = matches!(&ev, MediaEvent::Chunk { msn, part, .. }
                if matches!(w.chunk_at(*msn, *part, 0), ChunkAt::Ready(_)));
            w.apply(ev, now_unix_ms)?;
            (w.version(), appended)
        };
        self.tx.send_replace(version);
        if !appended {
            self.parts_tx.send_replace(version);
        }
        Ok(())
    }

    /// Changes the window under the lock (e.g. `set_targets`, `abandon_open`) and wakes
    /// waiters.
    pub fn update<R>(&self, f: impl FnOnce(&mut LiveWindow) -> R) -> R {
        let (r, version) = {
            let mut w = self.lock();
            let r = f(&mut w);
            (r, w.version())
        };
        self.tx.send_replace(version);
        self.parts_tx.send_replace(version);
        r
    }

    /// Reads the window under the lock. Keep `f` short.
    pub fn read<R>(&self, f: impl FnOnce(&LiveWindow) -> R) -> R {
        f(&self.lock())
    }

    /// Waits until `f` returns `Some`, the deadline passes, or the rendition is closed
    /// (both `None`). `f` runs under the lock once now and once per change.
    pub async fn wait_for<R>(&self, deadline: Instant, f: impl FnMut(&LiveWindow) -> Option<R>) -> Option<R> {
        self.wait_on(self.tx.subscribe(), deadline, f).await
    }

    /// [`wait_for`](Self::wait_for) for a condition on parts and segments only (one that a
    /// chunk appended to an open part cannot make true): `f` runs once now and once per
    /// part or segment change, not per chunk.
    pub async fn wait_for_parts<R>(
        &self,
        deadline: Instant,
        f: impl FnMut(&LiveWindow) -> Option<R>,
    ) -> Option<R> {
        self.wait_on(self.parts_tx.subscribe(), deadline, f).await
    }

    async fn wait_on<R>(
        &self,
        mut rx: watch::Receiver<u64>,
        deadline: Instant,
        mut f: impl FnMut(&LiveWindow) -> Option<R>,
    ) -> Option<R> {
        loop {
            if self.is_closed() {
                return None;
            }
            if let Some(r) = self.read(&mut f) {
                return Some(r);
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => {}
                _ => return None,
            }
        }
    }

    /// Version changes of the window.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.tx.subscribe()
    }

    /// Closed by [`Hub::remove`]: no more changes will come.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.tx.send_modify(|v| *v = v.wrapping_add(1));
        self.parts_tx.send_modify(|v| *v = v.wrapping_add(1));
    }

    /// Whether the window holds the history its writer meant it to have. True unless a
    /// fresh relay subscription is still backfilling (for at most [`BACKFILL_LIMIT`]):
    /// delivery then waits for objects it does not hold yet instead of answering 404, and a
    /// plain playlist waits for the history (bounded), so a player's first playlist lists
    /// the whole window.
    pub fn is_filled(&self) -> bool {
        self.filled.load(Ordering::Acquire)
            || self.now_ms().saturating_sub(self.unfilled_at_ms.load(Ordering::Acquire))
                >= BACKFILL_LIMIT.as_millis() as u64
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Waits until [`Rendition::is_filled`], at most `timeout`; returns whether it is.
    pub async fn wait_filled(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        self.wait_for_parts(deadline, |_| self.is_filled().then_some(())).await.is_some()
    }

    /// Sets [`Rendition::is_filled`] and wakes waiters.
    pub fn set_filled(&self, filled: bool) {
        if !filled {
            self.unfilled_at_ms.store(self.now_ms(), Ordering::Release);
        }
        self.filled.store(filled, Ordering::Release);
        self.tx.send_modify(|v| *v = v.wrapping_add(1));
        self.parts_tx.send_modify(|v| *v = v.wrapping_add(1));
    }

    /// Marks the channel as requested now.
    pub fn touch(&self) {
        let now = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        // Written only when it changes (at most once a millisecond): a write per request
        // would move the cache line between the cores serving the channel every time.
        if self.last_access.load(Ordering::Relaxed) != now {
            self.last_access.store(now, Ordering::Relaxed);
        }
    }

    /// The media playlist, with `uri_query` appended to every URI. Without a query the
    /// text is cached per window version, so many clients woken by one change share it.
    pub fn media_playlist(&self, uri_query: Option<&str>) -> Option<Bytes> {
        if uri_query.is_some() {
            return self.read(|w| w.media_playlist(uri_query)).map(Bytes::from);
        }
        let mut cache = self.playlist_cache.lock().unwrap_or_else(PoisonError::into_inner);
        let (version, text) = {
            let w = self.lock();
            if let Some((v, text)) = cache.as_ref()
                && *v == w.version()
            {
                return Some(text.clone());
            }
            (w.version(), w.media_playlist(None).map(Bytes::from)?)
        };
        *cache = Some((version, text.clone()));
        Some(text)
    }
}
