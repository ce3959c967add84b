//! Code shared by every Skyrelay node.
//!
//! Layout:
//! - [`media`]: the media model (renditions, the events a packager emits).
//! - [`window`]: the sans-IO live window of one rendition (segments, parts, chunks).
//! - [`playlist`]: the LL-HLS media and master playlist writer.
//! - [`http_tls`]: TLS configuration of the viewer-facing HTTP listeners.
//! - [`hub`]: the tokio-side registry of live windows, with change notification.
//! - [`delivery`]: HTTP (hyper) serving of LL-HLS from a hub, used by origins and edges.
//! - [`relay`]: the QUIC relay protocol between nodes (codec, transport, cluster TLS).
//! - [`admin`]: the admin listener (`/metrics`, `/healthz`, `/readyz`).
//! - [`config`]: loading typed TOML + `SKYRELAY_` environment configuration.
//! - [`telemetry`]: logging setup.
//! - [`sharded`]: counters updated per thread on the request path, summed when scraped.
//! - [`zero_copy`]: `sendfile` of cached segments on plain-TCP connections.

pub mod admin;
pub mod config;
pub mod cpapi;
pub mod delivery;
pub mod http_tls;
pub mod hub;
pub mod media;
pub mod playlist;
pub mod relay;
pub mod sharded;
pub mod telemetry;
pub mod window;
pub mod zero_copy;
