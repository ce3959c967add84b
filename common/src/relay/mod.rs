//! The QUIC relay between nodes (`docs/protocol.md`).
//!
//! Layout:
//! - [`codec`]: sans-IO framing of control and media frames, error codes.
//! - [`assembler`]: sans-IO ordering of received parts into window events.
//! - [`tls`]: the cluster CA, node certificates, quinn configs with mutual TLS.
//! - [`server`]: serves a hub's renditions to subscribers (publisher side).
//! - [`client`]: subscribes upstream and applies what it receives to a hub.
//! - [`metrics`]: Prometheus metrics of both sides.
//! - `io`: reading and writing frames on quinn streams.
//! - [`socket`]: the UDP socket under both sides, with large kernel buffers.

pub mod assembler;
pub mod client;
pub mod codec;
mod io;
pub mod metrics;
pub mod server;
pub mod socket;
pub mod tls;

pub use io::StreamError;
