//! The QUIC relay between nodes (`docs/protocol.md`).
//!
//! Layout:
//! - [`codec`]: sans-IO framing of control and media frames, error codes.
//! - [`tls`]: the cluster CA, node certificates, quinn configs with mutual TLS.

pub mod assembler;
pub mod codec;
pub mod tls;
