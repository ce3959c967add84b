//! Prometheus metrics of the relay server and client, registered into a node's registry
//! under a name prefix (e.g. `skyrelay_edge`).

use prometheus::{Histogram, HistogramOpts, IntCounter, IntGauge, Registry};

fn counter(reg: &Registry, prefix: &str, name: &str, help: &str) -> Result<IntCounter, prometheus::Error> {
    let c = IntCounter::new(format!("{prefix}_{name}"), help)?;
    reg.register(Box::new(c.clone()))?;
    Ok(c)
}

fn gauge(reg: &Registry, prefix: &str, name: &str, help: &str) -> Result<IntGauge, prometheus::Error> {
    let g = IntGauge::new(format!("{prefix}_{name}"), help)?;
    reg.register(Box::new(g.clone()))?;
    Ok(g)
}

/// Metrics of a relay server (publisher side).
#[derive(Debug, Clone)]
pub struct RelayServerMetrics {
    /// `<prefix>_relay_connections`: open relay connections.
    pub connections: IntGauge,
    /// `<prefix>_relay_subscriptions`: active downstream subscriptions.
    pub subscriptions: IntGauge,
    /// `<prefix>_relay_parts_sent_total`: parts fully written.
    pub parts_sent: IntCounter,
    /// `<prefix>_relay_sent_bytes_total`: media frame bytes written.
    pub bytes_sent: IntCounter,
    /// `<prefix>_relay_parts_dropped_total`: parts reset because a subscriber fell behind.
    pub parts_dropped: IntCounter,
    /// `<prefix>_relay_protocol_errors_total`: connections closed for malformed frames.
    pub protocol_errors: IntCounter,
}

impl RelayServerMetrics {
    /// Registers the metrics into `reg` with names starting with `prefix`.
    pub fn new(reg: &Registry, prefix: &str) -> Result<Self, prometheus::Error> {
        Ok(Self {
            connections: gauge(reg, prefix, "relay_connections", "Open relay connections")?,
            subscriptions: gauge(
                reg,
                prefix,
                "relay_subscriptions",
                "Active downstream relay subscriptions",
            )?,
            parts_sent: counter(reg, prefix, "relay_parts_sent_total", "Parts pushed to subscribers")?,
            bytes_sent: counter(reg, prefix, "relay_sent_bytes_total", "Media bytes pushed to subscribers")?,
            parts_dropped: counter(
                reg,
                prefix,
                "relay_parts_dropped_total",
                "Parts dropped for slow subscribers",
            )?,
            protocol_errors: counter(
                reg,
                prefix,
                "relay_protocol_errors_total",
                "Connections closed for malformed frames",
            )?,
        })
    }

    /// Metrics registered nowhere (tests, tools).
    pub fn unregistered() -> Self {
        Self::new(&Registry::new(), "unregistered").unwrap_or_else(|_| unreachable!("fresh registry"))
    }
}

/// Metrics of a relay client (subscriber side).
#[derive(Debug, Clone)]
pub struct RelayClientMetrics {
    /// `<prefix>_upstream_bytes_total`: media bytes received.
    pub upstream_bytes: IntCounter,
    /// `<prefix>_upstream_objects_total`: parts received complete.
    pub upstream_objects: IntCounter,
    /// `<prefix>_upstream_subscriptions`: active upstream subscriptions.
    pub subscriptions: IntGauge,
    /// `<prefix>_upstream_reconnects_total`: connections re-established after a loss.
    pub reconnects: IntCounter,
    /// `<prefix>_part_delay_seconds`: origin timestamp of a part to its first chunk here.
    pub part_delay: Histogram,
}

impl RelayClientMetrics {
    /// Registers the metrics into `reg` with names starting with `prefix`.
    pub fn new(reg: &Registry, prefix: &str) -> Result<Self, prometheus::Error> {
        let part_delay = Histogram::with_opts(
            HistogramOpts::new(
                format!("{prefix}_part_delay_seconds"),
                "Origin timestamp of a part to its first chunk here",
            )
            .buckets(vec![0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0]),
        )?;
        reg.register(Box::new(part_delay.clone()))?;
        Ok(Self {
            upstream_bytes: counter(
                reg,
                prefix,
                "upstream_bytes_total",
                "Media bytes received from upstream",
            )?,
            upstream_objects: counter(reg, prefix, "upstream_objects_total", "Parts received from upstream")?,
            subscriptions: gauge(reg, prefix, "upstream_subscriptions", "Active upstream subscriptions")?,
            reconnects: counter(reg, prefix, "upstream_reconnects_total", "Upstream reconnections")?,
            part_delay,
        })
    }

    /// Metrics registered nowhere (tests, tools).
    pub fn unregistered() -> Self {
        Self::new(&Registry::new(), "unregistered").unwrap_or_else(|_| unreachable!("fresh registry"))
    }
}
