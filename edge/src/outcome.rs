//! How a request for a channel was satisfied, for logs and the
//! `skyrelay_edge_cache_requests_total{outcome}` metric.

/// The outcome of looking a channel up at the edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    /// The channel was already subscribed: served from the local window.
    Hit,
    /// Not held: this request subscribed upstream.
    Miss,
    /// Not held, but another request's upstream subscription was already under way and
    /// this one waited for it (one upstream copy for all).
    Coalesced,
    /// The upstream said "not found" a moment ago; answered 404 without asking again.
    NegativeHit,
    /// The upstream could not be reached or refused for another reason.
    Error,
}

impl CacheOutcome {
    /// Label value.
    pub fn as_str(self) -> &'static str {
        match self {
            CacheOutcome::Hit => "hit",
            CacheOutcome::Miss => "miss",
            CacheOutcome::Coalesced => "coalesced",
            CacheOutcome::NegativeHit => "negative_hit",
            CacheOutcome::Error => "error",
        }
    }
}
