//! The Skyrelay origin: RTMP ingest in, CMAF low-latency HLS out.
//!
//! Layout (sans-IO cores first, the thin tokio layer last):
//! - [`rtmp`]: RTMP server protocol (handshake, chunk stream, AMF0, session state machine).
//! - [`flv`]: FLV tag bodies (and FLV files) to codec-level frames.
//! - [`codec`]: H.264 (avcC, SPS) and AAC (AudioSpecificConfig) configuration records.
//! - [`cmaf`]: fMP4/CMAF box writing: init segments and fragments.
//! - [`packager`]: frames in, [`skyrelay_common::media::MediaEvent`]s out (parts, segments).
//!
//! The node (tokio):
//! - [`config`]: the typed origin configuration.
//! - [`keys`]: publish authorisation (stream key → channel).
//! - [`publishers`]: which connection publishes which channel; packagers that outlive a
//!   publisher so a reconnect continues the playlist.
//! - [`ingest`]: the RTMP listener and per-connection loop.
//! - [`metrics`]: `skyrelay_origin_*` Prometheus metrics.
//! - [`node`]: starts and stops everything.
//! - [`recorder`]: recordings: segments spooled to disk, uploaded to storage (local or S3).
//! - `backoff`: retry delays with jitter (uploads, reports to the control plane).

mod backoff;
pub mod cmaf;
pub mod codec;
pub mod config;
pub mod flv;
pub mod ingest;
pub mod keys;
pub mod metrics;
pub mod node;
pub mod packager;
pub mod publishers;
pub mod recorder;
pub mod rtmp;
