//! Delivery metrics, registered under a caller-given prefix (`skyrelay_origin`,
//! `skyrelay_edge`).

use std::sync::{Arc, OnceLock};

use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts, Registry};

use super::routes::Kind;

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

/// The counters delivery updates.
#[derive(Clone)]
pub(crate) struct Metrics {
    requests: IntCounterVec,
    /// `requests` children by kind and common status, resolved on first use.
    resolved: Arc<Vec<[OnceLock<IntCounter>; COMMON_STATUSES.len()]>>,
    bytes: [IntCounter; Kind::ALL.len()],
    pub(crate) active: IntGauge,
    reloads: IntCounterVec,
    /// Body bytes sent with `sendfile` (`crate::zero_copy`).
    pub(crate) zero_copy_bytes: IntCounter,
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
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(bytes_vec.clone()))?;
        registry.register(Box::new(active.clone()))?;
        let zero_copy_bytes = IntCounter::new(
            format!("{prefix}_http_zero_copy_bytes_total"),
            "Response bytes sent with sendfile from a cached segment's file copy",
        )?;
        registry.register(Box::new(reloads.clone()))?;
        registry.register(Box::new(zero_copy_bytes.clone()))?;
        let bytes = Kind::ALL.map(|k| bytes_vec.with_label_values(&[k.as_str()]));
        let resolved = Arc::new(Kind::ALL.iter().map(|_| Default::default()).collect());
        Ok(Metrics { requests, resolved, bytes, active, reloads, zero_copy_bytes })
    }

    pub(crate) fn request(&self, kind: Kind, status: http::StatusCode) {
        let k = Kind::ALL.iter().position(|x| *x == kind);
        let s = COMMON_STATUSES.iter().position(|x| *x == status.as_u16());
        match k.zip(s).and_then(|(k, s)| Some(&self.resolved.get(k)?[s])) {
            Some(slot) => {
                slot.get_or_init(|| self.requests.with_label_values(&[kind.as_str(), status.as_str()])).inc()
            }
            None => self.requests.with_label_values(&[kind.as_str(), status.as_str()]).inc(),
        }
    }

    pub(crate) fn bytes(&self, kind: Kind) -> IntCounter {
        let i = Kind::ALL.iter().position(|k| *k == kind).unwrap_or(Kind::ALL.len() - 1);
        self.bytes[i].clone()
    }

    pub(crate) fn reload(&self, outcome: ReloadOutcome) {
        self.reloads.with_label_values(&[outcome.as_str()]).inc();
    }
}

/// Counts a request as active until dropped (held by the response body).
pub(crate) struct ActiveGuard(IntGauge);

impl ActiveGuard {
    pub(crate) fn new(gauge: &IntGauge) -> Self {
        gauge.inc();
        ActiveGuard(gauge.clone())
    }
}

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}
