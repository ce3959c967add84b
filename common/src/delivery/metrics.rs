//! Delivery metrics, registered under a caller-given prefix (`skyrelay_origin`,
//! `skyrelay_edge`).

use std::ops::Deref;
use std::sync::{Arc, OnceLock};

use prometheus::{IntCounterVec, IntGauge, Opts, Registry};

use super::routes::Kind;
use crate::sharded::{Flushing, ShardedCounter, ShardedGauge};

/// Outcome of a blocking playlist reload (`outcome` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReloadOutcome {
    /// Already satisfied when the request came.
    Immediate,
    /// Satisfied after waiting.
    Held,
    /// The deadline passed (503).
    Timeout,
    /// Too far ahead or malformed (400).
    Rejected,
}

impl ReloadOutcome {
    /// Label value.
    pub fn as_str(self) -> &'static str {
        match self {
            ReloadOutcome::Immediate => "immediate",
            ReloadOutcome::Held => "held",
            ReloadOutcome::Timeout => "timeout",
            ReloadOutcome::Rejected => "rejected",
        }
    }
}

/// Statuses whose request counters are resolved once and kept (no label lookup per
/// request); others go through the label lookup.
const COMMON_STATUSES: [u16; 8] = [200, 204, 400, 403, 404, 500, 502, 503];

/// `requests` children by kind and common status, made on first use.
type Resolved = Vec<[OnceLock<ShardedCounter>; COMMON_STATUSES.len()]>;

/// The counters delivery updates. Those of every response are kept per thread
/// ([`crate::sharded`]) and reach the registry when it is gathered.
#[derive(Clone)]
pub(crate) struct Metrics {
    requests: IntCounterVec,
    resolved: Arc<Resolved>,
    bytes: Arc<[ShardedCounter; Kind::ALL.len()]>,
    active: Arc<ShardedGauge>,
    reloads: IntCounterVec,
    /// Body bytes sent with `sendfile` (`crate::zero_copy`).
    pub(crate) zero_copy_bytes: Arc<ShardedCounter>,
}

impl Metrics {
    pub(crate) fn register(registry: &Registry, prefix: &str) -> Result<Self, prometheus::Error> {
        let requests = IntCounterVec::new(
            Opts::new(format!("{prefix}_http_requests_total"), "HTTP requests by kind and status"),
            &["kind", "status"],
        )?;
        let bytes_vec = IntCounterVec::new(
            Opts::new(format!("{prefix}_http_response_bytes_total"), "Response body bytes sent by kind"),
            &["kind"],
        )?;
        let active = IntGauge::new(format!("{prefix}_http_active_requests"), "Requests being answered")?;
        let reloads = IntCounterVec::new(
            Opts::new(
                format!("{prefix}_http_blocking_reloads_total"),
                "Blocking playlist reloads by outcome",
            ),
            &["outcome"],
        )?;
        let zero_copy = prometheus::IntCounter::new(
            format!("{prefix}_http_zero_copy_bytes_total"),
            "Response bytes sent with sendfile from a cached segment's file copy",
        )?;
        let bytes =
            Arc::new(Kind::ALL.map(|k| ShardedCounter::new(bytes_vec.with_label_values(&[k.as_str()]))));
        let resolved: Arc<Resolved> = Arc::new(Kind::ALL.iter().map(|_| Default::default()).collect());
        let metrics = Metrics {
            requests: requests.clone(),
            resolved,
            bytes,
            active: Arc::new(ShardedGauge::new(active.clone())),
            reloads: reloads.clone(),
            zero_copy_bytes: Arc::new(ShardedCounter::new(zero_copy.clone())),
        };
        let m = metrics.clone();
        let flush = move || {
            m.resolved.iter().flatten().filter_map(OnceLock::get).for_each(ShardedCounter::flush);
            m.bytes.iter().for_each(ShardedCounter::flush);
            m.active.flush();
            m.zero_copy_bytes.flush();
        };
        let inner: Vec<Box<dyn prometheus::core::Collector>> =
            vec![Box::new(requests), Box::new(bytes_vec), Box::new(active), Box::new(zero_copy)];
        registry.register(Box::new(Flushing { inner, flush }))?;
        registry.register(Box::new(reloads))?;
        Ok(metrics)
    }

    pub(crate) fn request(&self, kind: Kind, status: http::StatusCode) {
        let k = Kind::ALL.iter().position(|x| *x == kind);
        let s = COMMON_STATUSES.iter().position(|x| *x == status.as_u16());
        match k.zip(s).and_then(|(k, s)| Some(&self.resolved.get(k)?[s])) {
            Some(slot) => slot
                .get_or_init(|| {
                    ShardedCounter::new(self.requests.with_label_values(&[kind.as_str(), status.as_str()]))
                })
                .inc(),
            None => self.requests.with_label_values(&[kind.as_str(), status.as_str()]).inc(),
        }
    }

    /// The body bytes counter of `kind`.
    pub(crate) fn bytes(&self, kind: Kind) -> &ShardedCounter {
        &self.bytes[kind_index(kind)]
    }

    /// [`bytes`](Self::bytes) for a body that outlives the borrow.
    pub(crate) fn body_bytes(&self, kind: Kind) -> BodyBytes {
        BodyBytes { all: self.bytes.clone(), index: kind_index(kind) }
    }

    /// Counts a request as active for as long as the guard lives.
    pub(crate) fn active(&self) -> Active<&ShardedGauge> {
        self.active.add(1);
        Active(&self.active)
    }

    /// [`active`](Self::active) for a body that outlives the borrow.
    pub(crate) fn active_guard(&self) -> ActiveGuard {
        self.active.add(1);
        Active(self.active.clone())
    }

    pub(crate) fn reload(&self, outcome: ReloadOutcome) {
        self.reloads.with_label_values(&[outcome.as_str()]).inc();
    }
}

fn kind_index(kind: Kind) -> usize {
    Kind::ALL.iter().position(|k| *k == kind).unwrap_or(Kind::ALL.len() - 1)
}

/// A body's bytes counter (see [`Metrics::body_bytes`]).
pub(crate) struct BodyBytes {
    all: Arc<[ShardedCounter; Kind::ALL.len()]>,
    index: usize,
}

impl BodyBytes {
    pub(crate) fn inc_by(&self, n: u64) {
        self.all[self.index].inc_by(n);
    }
}

/// Counts a request as active until dropped: borrowing the gauge (see [`Metrics::active`]),
/// or owning a reference to it for a body that outlives the borrow ([`ActiveGuard`]).
pub(crate) struct Active<G: Deref<Target = ShardedGauge>>(G);

/// [`Active`] held by a response body.
pub(crate) type ActiveGuard = Active<Arc<ShardedGauge>>;

impl<G: Deref<Target = ShardedGauge>> Drop for Active<G> {
    fn drop(&mut self) {
        self.0.add(-1);
    }
}
