//! Counters for the request path that HTTP threads update without sharing a cache line.
//!
//! Every response updates a few counters: requests by kind and status, body bytes, active
//! requests, bytes sent with `sendfile`. As plain Prometheus atomics they are written by every
//! HTTP thread, so their cache lines move between cores on every request, a cost paid by
//! each of them several times per response. Here a thread adds to a slot of its own (threads
//! take the [`SLOTS`] slots in turn), and a scrape first moves the slots' sum into the
//! Prometheus metric ([`Flushing`]): names, types and values are those of the plain metrics,
//! read through the registry as before.

use std::cell::Cell;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{IntCounter, IntGauge};

/// Slots per value; threads past this many share slots (still correct, only shared again).
pub const SLOTS: usize = 8;

/// One slot on a cache line of its own (two lines: adjacent-line prefetch pairs them).
#[repr(align(128))]
#[derive(Default)]
struct Slot(AtomicI64);

/// A value added to from many threads, each in its own slot.
#[derive(Default)]
pub struct Sharded {
    slots: [Slot; SLOTS],
}

impl Sharded {
    pub fn add(&self, n: i64) {
        self.slots[slot()].0.fetch_add(n, Ordering::Relaxed);
    }

    /// The sum of every slot: exact once the adding threads are done, else a value the
    /// count passed through or will (each slot only grows, or for a gauge returns to it).
    pub fn sum(&self) -> i64 {
        self.slots.iter().fold(0i64, |sum, s| sum.wrapping_add(s.0.load(Ordering::Relaxed)))
    }
}

/// This thread's slot, taken in turn on its first use.
fn slot() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static SLOT: Cell<usize> = const { Cell::new(usize::MAX) };
    }
    SLOT.with(|s| {
        let mut i = s.get();
        if i == usize::MAX {
            i = NEXT.fetch_add(1, Ordering::Relaxed) % SLOTS;
            s.set(i);
        }
        i
    })
}

/// A counter kept in slots and moved into `target` when collected.
pub struct ShardedCounter {
    shards: Sharded,
    target: IntCounter,
    /// What `target` has been given so far.
    flushed: Mutex<i64>,
}

impl ShardedCounter {
    pub fn new(target: IntCounter) -> Self {
        ShardedCounter { shards: Sharded::default(), target, flushed: Mutex::new(0) }
    }

    pub fn inc(&self) {
        self.shards.add(1);
    }

    pub fn inc_by(&self, n: u64) {
        self.shards.add(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// What was counted so far (flushed or not).
    pub fn get(&self) -> u64 {
        u64::try_from(self.shards.sum()).unwrap_or(0)
    }

    /// Adds to `target` what was counted since the last flush.
    pub fn flush(&self) {
        let sum = self.shards.sum();
        let mut flushed = self.flushed.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if sum > *flushed {
            self.target.inc_by(u64::try_from(sum - *flushed).unwrap_or(0));
            *flushed = sum;
        }
    }
}

/// A gauge kept in slots (a thread may add and another subtract) and set on `target` when
/// collected.
pub struct ShardedGauge {
    shards: Sharded,
    target: IntGauge,
}

impl ShardedGauge {
    pub fn new(target: IntGauge) -> Self {
        ShardedGauge { shards: Sharded::default(), target }
    }

    pub fn add(&self, n: i64) {
        self.shards.add(n);
    }

    pub fn flush(&self) {
        self.target.set(self.shards.sum());
    }
}

/// Registers `inner` (the Prometheus metrics) and runs `flush` before each collection.
pub struct Flushing<F> {
    /// The metrics as registered.
    pub inner: Vec<Box<dyn Collector>>,
    /// Brings `inner` up to date.
    pub flush: F,
}

impl<F: Fn() + Send + Sync> Collector for Flushing<F> {
    fn desc(&self) -> Vec<&Desc> {
        self.inner.iter().flat_map(|c| c.desc()).collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        (self.flush)();
        self.inner.iter().flat_map(|c| c.collect()).collect()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use prometheus::Registry;

    use super::*;

    fn value(registry: &Registry, name: &str) -> f64 {
        let families = registry.gather();
        let family = families.iter().find(|f| f.name() == name).expect("metric registered");
        let m = &family.get_metric()[0];
        m.get_counter().get_value() + m.get_gauge().get_value()
    }

    #[test]
    fn counts_from_many_threads_reach_the_registry_once_each() {
        let counter = IntCounter::new("t_requests_total", "test").unwrap();
        let gauge = IntGauge::new("t_active", "test").unwrap();
        let c = Arc::new(ShardedCounter::new(counter.clone()));
        let g = Arc::new(ShardedGauge::new(gauge.clone()));
        let registry = Registry::new();
        let (fc, fg) = (c.clone(), g.clone());
        let flushing = Flushing {
            inner: vec![Box::new(counter), Box::new(gauge)],
            flush: move || {
                fc.flush();
                fg.flush();
            },
        };
        registry.register(Box::new(flushing)).unwrap();
        let threads: Vec<_> = (0..SLOTS + 3)
            .map(|_| {
                let (c, g) = (c.clone(), g.clone());
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        c.inc();
                        g.add(1);
                    }
                    c.inc_by(5);
                    g.add(-999);
                })
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        let n = (SLOTS + 3) as f64;
        assert_eq!(value(&registry, "t_requests_total"), n * 1005.0);
        assert_eq!(value(&registry, "t_active"), n, "a gauge is the sum of what every thread added");
        assert_eq!(value(&registry, "t_requests_total"), n * 1005.0, "a second scrape adds nothing twice");
        // A gauge decremented on another thread than the one that raised it.
        std::thread::spawn(move || g.add(-((SLOTS + 3) as i64))).join().unwrap();
        assert_eq!(value(&registry, "t_active"), 0.0);
    }
}
