//! The control-plane API as nodes see it.
//!
//! Layout:
//! - [`types`]: request and response bodies shared by the control plane and the nodes.
//! - [`net`]: CIDR networks (token claims, region tables, trusted proxies).
//! - [`token`]: playback tokens: the compact format, claims and verification against a
//!   published key set. Edges verify locally; only the control plane can sign.
//! - [`client`]: a small HTTP client nodes use (authorise a publish, report live/ended,
//!   register and heartbeat, long-poll where a channel is live, fetch the key set).
//! - [`node`]: the heartbeat loop, the key-set refresher and the edge's playback check.
//!
//! Nodes authenticate with `Authorization: Node <cluster node secret>`; users with
//! `Authorization: Bearer <session token>`. The two are never interchangeable.

pub mod client;
pub mod net;
pub mod node;
pub mod token;
pub mod types;

pub use client::{ClientError, ControlPlaneClient};
pub use net::Cidr;
pub use node::{check_playback, heartbeat_loop, spawn_key_refresher};
pub use token::{KeyRing, PlaybackClaims, TokenError};
pub use types::*;

/// The `Authorization` scheme nodes use towards the control plane.
pub const NODE_AUTH_SCHEME: &str = "Node";
/// The query parameter that carries a playback token in playback URLs.
pub const TOKEN_QUERY_PARAM: &str = "token";
/// The response header that names why a playback request was refused.
pub const TOKEN_REASON_HEADER: &str = "x-skyrelay-token-error";
