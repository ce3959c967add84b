//! Whole segments as single contiguous buffers, in a cache weighed by bytes.
//!
//! The live window keeps a segment as its parts' chunks (what parts, the relay and streamed
//! requests need). A request for a whole segment is answered from one contiguous [`Bytes`]
//! made once per segment: one body frame with a known length, written with few syscalls,
//! shared by every client. The buffers live in a moka cache bounded by bytes (each entry
//! weighs its length, least recently used first out), so a segment stays servable for a
//! while after the window dropped it; concurrent misses for one segment build it once
//! (`try_get_with`: the others wait for that build and count as coalesced).
//!
//! A segment fetched upstream is served while it arrives ([`Arriving`]): concurrent misses
//! share one fetch and read it from its first byte; once whole it joins the cache (joined
//! once, off the requests' path), and requests that come after the fetch's end send that one
//! buffer as soon as it is there ([`ObjectCache::settled`]).
//!
//! A thread answers its most recent hits from a front of its own (`front`) without reading
//! the shared cache each time.
//!
//! Keys are (rendition id, msn): a [`Rendition`](crate::hub::Rendition) never numbers two
//! different complete segments alike (its window only accepts newer segments), and a
//! channel that is dropped and comes back gets a new rendition id.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use moka::future::Cache;
use moka::policy::EvictionPolicy;
use prometheus::{IntCounterVec, IntGauge, Opts, Registry};
use tokio::time::Instant;

use super::{Arriving, front};
use crate::sharded::{Flushing, ShardedCounter};
use crate::zero_copy;

/// Source of cache ids (for the threads' fronts): unique in the process.
static NEXT_CACHE_ID: AtomicU64 = AtomicU64::new(1);

/// An object nobody asked for in this long leaves the cache even when there is room.
const IDLE: Duration = Duration::from_secs(120);
/// Longest a fetched segment may take to arrive whole; past it, it is not cached.
const ARRIVAL_LIMIT: Duration = Duration::from_secs(60);
/// Fetches in flight at once that later requests can join.
const MAX_ARRIVING: u64 = 1024;
const RAN_NONE: u8 = 0;
const RAN_FETCH: u8 = 1;
const RAN_FOUND: u8 = 2;

/// How a request for a whole segment was answered (`outcome` label, logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectOutcome {
    /// Served from the cache.
    Hit,
    /// Not cached: this request built the object.
    Miss,
    /// Not cached, but another request was building it; this one waited for that build.
    Coalesced,
}

impl ObjectOutcome {
    /// Label value.
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectOutcome::Hit => "hit",
            ObjectOutcome::Miss => "miss",
            ObjectOutcome::Coalesced => "coalesced",
        }
    }

    const ALL: [ObjectOutcome; 3] = [ObjectOutcome::Hit, ObjectOutcome::Miss, ObjectOutcome::Coalesced];
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    rendition: u64,
    msn: u64,
}

/// The byte-weighed cache of whole segments. See the module docs.
pub struct ObjectCache {
    cache: Cache<Key, Bytes>,
    /// Segments being fetched upstream, until they are whole in `cache` (or failed).
    arriving: Cache<Key, Arriving>,
    /// Give large objects a file copy for zero-copy sends ([`crate::zero_copy`]).
    zero_copy: bool,
    outcomes: Arc<[ShardedCounter; 3]>,
    bytes: IntGauge,
    /// Identifies the cache in the threads' fronts.
    id: u64,
    /// Entries evicted, expired, invalidated or replaced so far (fronts forget theirs when
    /// it moves).
    removals: Arc<AtomicU64>,
}

impl std::fmt::Debug for ObjectCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectCache").field("capacity", &self.cache.policy().max_capacity()).finish()
    }
}

impl ObjectCache {
    /// A cache holding at most `capacity_bytes` of objects, with metrics
    /// `{prefix}_object_cache_requests_total{outcome}` and `{prefix}_object_cache_bytes`.
    pub fn new(capacity_bytes: u64, registry: &Registry, prefix: &str) -> Result<Self, prometheus::Error> {
        let requests = IntCounterVec::new(
            Opts::new(
                format!("{prefix}_object_cache_requests_total"),
                "Whole-segment requests by cache outcome",
            ),
            &["outcome"],
        )?;
        let bytes = IntGauge::new(
            format!("{prefix}_object_cache_bytes"),
            "Bytes held by the whole-segment cache (approximate between maintenance runs)",
        )?;
        let outcomes = Arc::new(
            ObjectOutcome::ALL.map(|o| ShardedCounter::new(requests.with_label_values(&[o.as_str()]))),
        );
        let flushed = outcomes.clone();
        let flush = move || flushed.iter().for_each(ShardedCounter::flush);
        registry.register(Box::new(Flushing { inner: vec![Box::new(requests)], flush }))?;
        registry.register(Box::new(bytes.clone()))?;
        let removals = Arc::new(AtomicU64::new(0));
        let counted = removals.clone();
        let cache = Cache::builder()
            .max_capacity(capacity_bytes)
            // A backed object holds its bytes twice (memory and its file).
            .weigher(|_: &Key, v: &Bytes| {
                let copies = if zero_copy::is_backed(v) { 2 } else { 1 };
                u32::try_from(v.len().saturating_mul(copies)).unwrap_or(u32::MAX)
            })
            .eviction_policy(EvictionPolicy::lru())
            .time_to_idle(IDLE)
            .eviction_listener(move |_, _, _| {
                counted.fetch_add(1, Ordering::Release);
            })
            .build();
        let arriving = Cache::builder().max_capacity(MAX_ARRIVING).time_to_live(ARRIVAL_LIMIT * 2).build();
        let id = NEXT_CACHE_ID.fetch_add(1, Ordering::Relaxed);
        Ok(ObjectCache { cache, arriving, zero_copy: false, outcomes, bytes, id, removals })
    }

    /// Objects made or fetched from now on get a file copy for zero-copy sends on plain-TCP
    /// connections (see [`crate::zero_copy`]); they weigh twice their length.
    pub fn with_zero_copy(mut self, on: bool) -> Self {
        self.zero_copy = on;
        self
    }

    fn count(&self, outcome: ObjectOutcome) {
        let i = ObjectOutcome::ALL.iter().position(|o| *o == outcome).unwrap_or(0);
        self.outcomes[i].inc();
    }

    /// The cached segment `msn` of rendition `rendition`, if any (counted as a hit).
    pub async fn get(&self, rendition: u64, msn: u64) -> Option<Bytes> {
        let key = Key { rendition, msn };
        let removals = self.removals.load(Ordering::Acquire);
        if let Some((bytes, forward)) = front::find(self.id, (rendition, msn), removals) {
            if forward {
                // Recency for the cache's policy (the object is the same either way).
                let _ = self.cache.get(&key).await;
            }
            self.count(ObjectOutcome::Hit);
            return Some(bytes);
        }
        let found = self.cache.get(&key).await;
        if let Some(bytes) = &found {
            self.count(ObjectOutcome::Hit);
            front::remember(self.id, (rendition, msn), bytes.clone(), removals);
        }
        found
    }

    /// The segment, made from `chunks` (its parts' chunks, in order) unless cached or being
    /// made by another request, whose result is then shared.
    pub async fn get_or_join(&self, rendition: u64, msn: u64, chunks: Vec<Bytes>) -> (ObjectOutcome, Bytes) {
        let key = Key { rendition, msn };
        let (bytes, built) = join_once(&self.cache, key, &chunks, self.zero_copy, &self.bytes).await;
        let outcome = if built { ObjectOutcome::Miss } else { ObjectOutcome::Coalesced };
        self.count(outcome);
        (outcome, bytes)
    }

    /// The segment, fetched by `fetch` unless cached or being fetched by another request
    /// (one upstream fetch for concurrent misses). The answer is an [`Arriving`] every
    /// waiter reads from the first byte while the rest arrives (already whole for a hit).
    /// When the fetch completes, the whole segment goes into the cache; a fetch that fails
    /// is not kept, and every waiter gets its error.
    pub async fn get_or_arrive<E: Send + Sync + 'static>(
        &self,
        rendition: u64,
        msn: u64,
        fetch: impl std::future::Future<Output = Result<Arriving, E>>,
    ) -> Result<(ObjectOutcome, Arriving), Arc<E>> {
        let key = Key { rendition, msn };
        if let Some(whole) = self.get(rendition, msn).await {
            return Ok((ObjectOutcome::Hit, Arriving::complete(whole)));
        }
        // Which request's future ran: this one fetched (miss), found the segment cached by
        // a fetch that completed since the lookup above (hit), or neither (it joined one).
        let ran = AtomicU8::new(RAN_NONE);
        let make = async {
            if let Some(whole) = self.cache.get(&key).await {
                ran.store(RAN_FOUND, Ordering::Relaxed);
                return Ok(Arriving::complete(whole));
            }
            ran.store(RAN_FETCH, Ordering::Relaxed);
            let arriving = fetch.await?;
            self.settle(key, arriving.clone());
            Ok(arriving)
        };
        let result = self.arriving.try_get_with(key, make).await;
        let outcome = match ran.load(Ordering::Relaxed) {
            RAN_FETCH => ObjectOutcome::Miss,
            RAN_FOUND => ObjectOutcome::Hit,
            _ => ObjectOutcome::Coalesced,
        };
        if outcome == ObjectOutcome::Hit {
            // Nothing to settle: the cached segment is the only copy kept.
            self.arriving.invalidate(&key).await;
        }
        if result.is_ok() {
            self.count(outcome);
        }
        result.map(|a| (outcome, a))
    }

    /// The cached whole segment if it is there, without counting a request: for a request
    /// already counted by [`get_or_arrive`](Self::get_or_arrive) whose fetch has ended. Once
    /// the fetch's settling has made the one buffer (and its zero-copy file), such a request
    /// sends that (one `sendfile`) rather than the fetch's chunks (a copy each); until then it
    /// sends the chunks instead of waiting for it.
    pub async fn settled(&self, rendition: u64, msn: u64) -> Option<Bytes> {
        self.cache.get(&Key { rendition, msn }).await
    }

    /// Once `arriving` is whole, caches it (with its zero-copy file, made off the requests'
    /// path) and forgets the fetch; a failed one is only forgotten.
    fn settle(&self, key: Key, arriving: Arriving) {
        let (cache, fetches, bytes, zero_copy) =
            (self.cache.clone(), self.arriving.clone(), self.bytes.clone(), self.zero_copy);
        tokio::spawn(async move {
            if let Ok(chunks) = arriving.chunks_when_whole(Instant::now() + ARRIVAL_LIMIT).await {
                join_once(&cache, key, &chunks, zero_copy, &bytes).await;
            }
            fetches.invalidate(&key).await;
        });
    }

    /// Bytes held now (approximate: moka applies inserts and evictions in batches).
    pub fn weighted_size(&self) -> u64 {
        self.cache.weighted_size()
    }

    /// Applies pending inserts and evictions (tests, metrics).
    pub async fn run_pending_tasks(&self) {
        self.cache.run_pending_tasks().await;
        self.bytes.set(i64::try_from(self.cache.weighted_size()).unwrap_or(i64::MAX));
    }
}

/// Segment `key`'s one cached buffer, joined from `chunks` (and given its zero-copy file)
/// unless it is there already or another caller is making it (then that one's); and whether
/// this call made it (the cache's byte gauge is then updated).
async fn join_once(
    cache: &Cache<Key, Bytes>,
    key: Key,
    chunks: &[Bytes],
    zero_copy: bool,
    bytes: &IntGauge,
) -> (Bytes, bool) {
    let built = AtomicBool::new(false);
    let make = async {
        built.store(true, Ordering::Relaxed);
        let whole = join(chunks);
        Ok::<_, std::convert::Infallible>(if zero_copy { zero_copy::back(whole) } else { whole })
    };
    // The init future cannot fail; fall back to a fresh copy rather than unwrap.
    let whole = cache.try_get_with(key, make).await.unwrap_or_else(|_| join(chunks));
    let built = built.load(Ordering::Relaxed);
    if built {
        bytes.set(i64::try_from(cache.weighted_size()).unwrap_or(i64::MAX));
    }
    (whole, built)
}

/// The chunks as one buffer: one copy, once per segment (or once per arrived fetch).
pub(super) fn join(chunks: &[Bytes]) -> Bytes {
    if let [one] = chunks {
        return one.clone();
    }
    let mut out = BytesMut::with_capacity(chunks.iter().map(Bytes::len).sum());
    for c in chunks {
        out.extend_from_slice(c);
    }
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::arriving;
    use std::sync::atomic::AtomicUsize;

    fn cache() -> ObjectCache {
        ObjectCache::new(16 << 20, &Registry::new(), "test").unwrap()
    }

    fn soon() -> Instant {
        Instant::now() + Duration::from_secs(5)
    }

    #[tokio::test]
    async fn concurrent_misses_share_one_fetch_read_it_while_it_arrives_and_then_hit() {
        let objects = Arc::new(cache());
        let (writer, reader) = arriving();
        let fetches = Arc::new(AtomicUsize::new(0));
        let mut waiters = Vec::new();
        let reader = std::sync::Mutex::new(Some(reader));
        for _ in 0..8 {
            let fetch = {
                let (fetches, r) = (fetches.clone(), reader.lock().unwrap().take());
                async move {
                    fetches.fetch_add(1, Ordering::Relaxed);
                    r.ok_or("fetched twice")
                }
            };
            let objects = objects.clone();
            waiters.push(tokio::spawn(async move { objects.get_or_arrive(1, 7, fetch).await }));
        }
        let mut outcomes = Vec::new();
        let mut readers = Vec::new();
        for w in waiters {
            let (outcome, a) = w.await.unwrap().unwrap();
            outcomes.push(outcome);
            readers.push(a);
        }
        assert_eq!(fetches.load(Ordering::Relaxed), 1, "one upstream fetch");
        assert_eq!(outcomes.iter().filter(|o| **o == ObjectOutcome::Miss).count(), 1);
        assert!(readers.iter().all(|a| a.arrived().is_none()), "nothing arrived yet");
        writer.push(Bytes::from_static(b"first"));
        for a in &mut readers {
            a.started(soon()).await.expect("the first bytes, before the end");
        }
        writer.push(Bytes::from_static(b"-second"));
        writer.finish();
        for a in readers {
            assert_eq!(a.whole(soon()).await.unwrap(), &b"first-second"[..]);
        }
        // The settling task caches the whole segment and forgets the fetch.
        let deadline = soon();
        while objects.cache.get(&Key { rendition: 1, msn: 7 }).await.is_none() {
            assert!(Instant::now() < deadline, "the whole segment was never cached");
            tokio::task::yield_now().await;
        }
        let unused = async { Err::<Arriving, &str>("no fetch on a hit") };
        let (outcome, a) = objects.get_or_arrive(1, 7, unused).await.unwrap();
        assert_eq!(outcome, ObjectOutcome::Hit);
        assert_eq!(a.arrived().unwrap().unwrap(), vec![Bytes::from_static(b"first-second")]);
    }

    #[tokio::test]
    async fn once_a_fetch_has_settled_its_one_buffer_is_there_for_requests_and_counted_once() {
        let objects = cache();
        let (writer, reader) = arriving();
        let (outcome, a) = objects.get_or_arrive(2, 9, async { Ok::<_, &str>(reader) }).await.unwrap();
        assert_eq!(outcome, ObjectOutcome::Miss);
        assert!(objects.settled(2, 9).await.is_none(), "nothing settled while it arrives");
        writer.push(Bytes::from_static(b"one-"));
        writer.push(Bytes::from_static(b"two"));
        writer.finish();
        let Some(Ok(chunks)) = a.arrived() else { panic!("the fetch has ended whole") };
        assert_eq!(chunks.len(), 2, "the fetch's chunks as they came");
        let deadline = soon();
        let whole = loop {
            if let Some(whole) = objects.settled(2, 9).await {
                break whole;
            }
            assert!(Instant::now() < deadline, "the fetch never settled");
            tokio::task::yield_now().await;
        };
        assert_eq!(whole, &b"one-two"[..], "the chunks joined");
        let again = objects.settled(2, 9).await.unwrap();
        assert_eq!(again.as_ptr(), whole.as_ptr(), "the same buffer for every request");
        let counted: Vec<u64> = objects.outcomes.iter().map(ShardedCounter::get).collect();
        assert_eq!(counted, vec![0, 1, 0], "only the fetching request was counted (a miss)");
    }

    #[tokio::test]
    async fn a_fetch_that_fails_is_not_kept() {
        let objects = cache();
        let err =
            objects.get_or_arrive(1, 3, async { Err::<Arriving, &str>("not found") }).await.unwrap_err();
        assert_eq!(*err, "not found");
        let (writer, reader) = arriving();
        drop(writer);
        let (outcome, a) = objects.get_or_arrive(1, 3, async { Ok::<_, &str>(reader) }).await.unwrap();
        assert_eq!(outcome, ObjectOutcome::Miss, "the failed fetch was not cached");
        assert_eq!(a.whole(soon()).await.unwrap_err(), crate::hub::ArrivalError::BrokeOff);
        let deadline = soon();
        while objects.arriving.get(&Key { rendition: 1, msn: 3 }).await.is_some() {
            assert!(Instant::now() < deadline, "the broken fetch was never forgotten");
            tokio::task::yield_now().await;
        }
        assert!(
            objects.cache.get(&Key { rendition: 1, msn: 3 }).await.is_none(),
            "nothing broken was cached"
        );
        let again = async { Ok::<_, &str>(Arriving::complete(Bytes::from_static(b"ok"))) };
        let (outcome, _) = objects.get_or_arrive(1, 3, again).await.unwrap();
        assert_eq!(outcome, ObjectOutcome::Miss, "a new fetch after the broken one");
    }
}
