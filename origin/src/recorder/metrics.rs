//! `skyrelay_origin_recording_*` metrics, registered into the origin's registry.

use prometheus::{Gauge, IntCounterVec, IntGauge, Opts, Registry};

/// Metrics of the spool and the uploader.
#[derive(Clone)]
pub struct RecorderMetrics {
    /// Bytes in the spool waiting for upload.
    pub spool_bytes: IntGauge,
    /// The configured spool bound (for alerting on `spool_bytes / spool_limit_bytes`).
    pub spool_limit_bytes: IntGauge,
    /// Age of the oldest object waiting for upload, seconds (0 when none waits).
    pub upload_lag_seconds: Gauge,
    /// Objects uploaded and verified, by kind (`init`, `segment`, `playlist`, `manifest`).
    pub uploads: IntCounterVec,
    /// Failures by kind (`unavailable`, `refused`, `verify`, `io`, `spool_full`,
    /// `queue_full`, `spool_io`, ...).
    pub failures: IntCounterVec,
    /// Recordings in progress (live or within the reconnect gap).
    pub active: IntGauge,
    /// Segments spooled.
    pub segments: IntCounterVec,
}

impl RecorderMetrics {
    /// Creates the metrics and registers them into `registry`.
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let m = RecorderMetrics {
            spool_bytes: IntGauge::new(
                "skyrelay_origin_recording_spool_bytes",
                "Bytes of recordings in the local spool waiting for upload",
            )?,
            spool_limit_bytes: IntGauge::new(
                "skyrelay_origin_recording_spool_limit_bytes",
                "Configured bound of the recording spool (recording.max_spool_bytes)",
            )?,
            upload_lag_seconds: Gauge::new(
                "skyrelay_origin_recording_upload_lag_seconds",
                "Age of the oldest spooled object not yet uploaded",
            )?,
            uploads: IntCounterVec::new(
                Opts::new(
                    "skyrelay_origin_recording_uploads_total",
                    "Recording objects uploaded and verified",
                ),
                &["kind"],
            )?,
            failures: IntCounterVec::new(
                Opts::new("skyrelay_origin_recording_failures_total", "Recording failures, by kind"),
                &["kind"],
            )?,
            active: IntGauge::new("skyrelay_origin_recording_active", "Recordings in progress")?,
            segments: IntCounterVec::new(
                Opts::new("skyrelay_origin_recording_segments_total", "Segments written to the spool"),
                &["channel"],
            )?,
        };
        registry.register(Box::new(m.spool_bytes.clone()))?;
        registry.register(Box::new(m.spool_limit_bytes.clone()))?;
        registry.register(Box::new(m.upload_lag_seconds.clone()))?;
        registry.register(Box::new(m.uploads.clone()))?;
        registry.register(Box::new(m.failures.clone()))?;
        registry.register(Box::new(m.active.clone()))?;
        registry.register(Box::new(m.segments.clone()))?;
        Ok(m)
    }
}
