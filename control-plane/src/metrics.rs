//! The control plane's Prometheus metrics, registered into the registry it is given.

use prometheus::{IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};

/// Metric handles.
#[derive(Clone)]
pub struct Metrics {
    /// `skyrelay_control_plane_http_requests_total{route,status}`.
    pub http_requests: IntCounterVec,
    /// `skyrelay_control_plane_nodes_healthy{role,region}`.
    pub nodes_healthy: IntGaugeVec,
    /// `skyrelay_control_plane_live_channels`.
    pub live_channels: IntGauge,
}

impl Metrics {
    /// Creates and registers the metrics.
    pub fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let http_requests = IntCounterVec::new(
            Opts::new("skyrelay_control_plane_http_requests_total", "HTTP requests by route and status"),
            &["route", "status"],
        )?;
        let nodes_healthy = IntGaugeVec::new(
            Opts::new("skyrelay_control_plane_nodes_healthy", "Nodes with recent heartbeats"),
            &["role", "region"],
        )?;
        let live_channels = IntGauge::new("skyrelay_control_plane_live_channels", "Channels currently live")?;
        registry.register(Box::new(http_requests.clone()))?;
        registry.register(Box::new(nodes_healthy.clone()))?;
        registry.register(Box::new(live_channels.clone()))?;
        Ok(Metrics { http_requests, nodes_healthy, live_channels })
    }
}
