//! The origin's Prometheus metrics (`skyrelay_origin_*`), registered into the node registry.

use prometheus::{IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};

/// Metrics of RTMP ingest and packaging.
#[derive(Clone)]
pub struct OriginMetrics {
    /// Channels with a live publisher.
    pub publishers: IntGauge,
    /// Open RTMP connections (publishing or not).
    pub rtmp_connections: IntGauge,
    /// RTMP bytes received, by channel.
    pub ingest_bytes: IntCounterVec,
    /// Ingest bitrate over the last second or so, by channel.
    pub ingest_bitrate: IntGaugeVec,
    /// Parts and segments produced, by channel.
    pub parts: IntCounterVec,
    pub segments: IntCounterVec,
    /// Connections closed because of an error, by kind.
    pub rtmp_errors: IntCounterVec,
    /// Publish attempts refused, by reason.
    pub publish_refused: IntCounterVec,
}

impl OriginMetrics {
    /// Creates the metrics and registers them into `registry`.
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let m = OriginMetrics {
            publishers: IntGauge::new("skyrelay_origin_publishers", "Channels with a live RTMP publisher")?,
            rtmp_connections: IntGauge::new("skyrelay_origin_rtmp_connections", "Open RTMP connections")?,
            ingest_bytes: IntCounterVec::new(
                Opts::new("skyrelay_origin_ingest_bytes_total", "RTMP bytes received from publishers"),
                &["channel"],
            )?,
            ingest_bitrate: IntGaugeVec::new(
                Opts::new("skyrelay_origin_ingest_bitrate_bps", "Ingest bitrate of a live channel, bits/s"),
                &["channel"],
            )?,
            parts: IntCounterVec::new(
                Opts::new("skyrelay_origin_parts_total", "LL-HLS parts produced"),
                &["channel"],
            )?,
            segments: IntCounterVec::new(
                Opts::new("skyrelay_origin_segments_total", "HLS segments produced"),
                &["channel"],
            )?,
            rtmp_errors: IntCounterVec::new(
                Opts::new(
                    "skyrelay_origin_rtmp_errors_total",
                    "RTMP connections closed on an error, by kind",
                ),
                &["kind"],
            )?,
            publish_refused: IntCounterVec::new(
                Opts::new("skyrelay_origin_publish_refused_total", "Publish attempts refused, by reason"),
                &["reason"],
            )?,
        };
        registry.register(Box::new(m.publishers.clone()))?;
        registry.register(Box::new(m.rtmp_connections.clone()))?;
        registry.register(Box::new(m.ingest_bytes.clone()))?;
        registry.register(Box::new(m.ingest_bitrate.clone()))?;
        registry.register(Box::new(m.parts.clone()))?;
        registry.register(Box::new(m.segments.clone()))?;
        registry.register(Box::new(m.rtmp_errors.clone()))?;
        registry.register(Box::new(m.publish_refused.clone()))?;
        Ok(m)
    }

    /// Drops the per-channel series of a channel that went offline.
    pub fn forget_channel(&self, channel: &str) {
        let _ = self.ingest_bitrate.remove_label_values(&[channel]);
    }
}
