//! The Skyrelay edge: serves viewers LL-HLS from a local hub that it fills, on demand,
//! from an upstream relay (an origin, or a shield edge of its region).
//!
//! Layout:
//! - [`access`]: playback-token checks for private channels; [`policy`]: each channel's
//!   private flag as the control plane last said (refreshed every 10 s, kept through an
//!   outage).
//! - [`config`]: the typed edge configuration.
//! - [`upstream`]: [`upstream::UpstreamSource`], the delivery hook that subscribes to a
//!   channel upstream on its first request (coalesced per channel, misses remembered
//!   briefly) and fetches segments its window lacks, and the idle reaper that unsubscribes
//!   channels nobody watches.
//! - Media memory ([`config::EdgeCacheConfig`]): live windows reserved within a byte
//!   budget, whole segments in the hub's byte-weighed object cache
//!   (`docs/decisions/0008-edge-media-memory.md`).
//! - [`vod`]: recordings played back at `/vod/{recording}/…`: catalog lookup, the live
//!   playback check, a byte-bounded cache of files fetched from origins
//!   ([`vod_origin`]), per-viewer token in the playlist ([`vod_playlist`]).
//! - [`outcome`]: the cache outcome enum used in logs and metric labels.
//! - [`node`]: starts and stops the edge: HTTP delivery, relay client, relay server for
//!   lower-tier edges, admin listener.
//!
//! The edge never looks inside the media: the relay fills hub windows with opaque parts,
//! and the shared delivery code builds playlists from them.

pub mod access;
pub mod config;
pub mod node;
pub mod outcome;
pub mod policy;
pub mod upstream;
pub mod vod;
pub mod vod_origin;
pub mod vod_playlist;
