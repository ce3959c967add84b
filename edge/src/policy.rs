//! What the edge knows of each channel's access policy (private or public), as the control
//! plane last said, for at most [`POLICY_TTL`] before asking again.
//!
//! The first lookup of a channel waits for the control plane (concurrent first lookups share
//! one request); after that, a stale entry is still answered while one request refreshes it,
//! and kept when the control plane cannot be reached, so viewers keep playing through a
//! control-plane outage and a channel turned private is enforced within about the TTL.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use moka::future::Cache;
use tracing::debug;

/// How long an answer is used before the control plane is asked again.
pub const POLICY_TTL: Duration = Duration::from_secs(10);

struct Entry {
    /// `(private, learned at)`.
    known: Mutex<(bool, Instant)>,
    refreshing: AtomicBool,
}

impl Entry {
    fn new(private: bool) -> Arc<Entry> {
        Arc::new(Entry { known: Mutex::new((private, Instant::now())), refreshing: false.into() })
    }

    fn get(&self) -> (bool, Instant) {
        *self.known.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn learn(&self, private: bool) {
        *self.known.lock().unwrap_or_else(|e| e.into_inner()) = (private, Instant::now());
    }
}

/// Channel policies, bounded by count.
#[derive(Clone)]
pub struct ChannelPolicies {
    entries: Cache<String, Arc<Entry>>,
    ttl: Duration,
}

impl ChannelPolicies {
    pub fn new(max_channels: u64, ttl: Duration) -> Self {
        ChannelPolicies { entries: Cache::builder().max_capacity(max_channels).build(), ttl }
    }

    /// Records what the control plane just said (e.g. in a where-is answer).
    pub async fn set(&self, channel: &str, private: bool) {
        match self.entries.get(channel).await {
            Some(e) => e.learn(private),
            None => self.entries.insert(channel.to_owned(), Entry::new(private)).await,
        }
    }

    /// Whether `channel` is private; `ask` asks the control plane.
    pub async fn private<F, Fut>(&self, channel: &str, ask: F) -> Result<bool, String>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<bool, String>>,
    {
        let Some(entry) = self.entries.get(channel).await else {
            let entry = self
                .entries
                .try_get_with(channel.to_owned(), async move { Ok::<_, String>(Entry::new(ask().await?)) })
                .await
                .map_err(|e| e.as_ref().clone())?;
            return Ok(entry.get().0);
        };
        let (private, learned) = entry.get();
        if learned.elapsed() < self.ttl || entry.refreshing.swap(true, Ordering::AcqRel) {
            return Ok(private);
        }
        // This request refreshes; the others meanwhile get the stale answer.
        let result = match ask().await {
            Ok(now) => {
                entry.learn(now);
                now
            }
            Err(e) => {
                debug!(%channel, error = %e, "channel policy refresh failed; keeping the last answer");
                private
            }
        };
        entry.refreshing.store(false, Ordering::Release);
        Ok(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[tokio::test]
    async fn first_lookup_asks_then_answers_are_reused_within_the_ttl() {
        let policies = ChannelPolicies::new(16, Duration::from_secs(3600));
        let asked = AtomicUsize::new(0);
        let ask = || async {
            asked.fetch_add(1, Ordering::SeqCst);
            Ok(true)
        };
        assert_eq!(policies.private("a", ask).await, Ok(true));
        assert_eq!(policies.private("a", ask).await, Ok(true));
        assert_eq!(asked.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_stale_answer_is_refreshed_and_kept_when_the_control_plane_fails() {
        let policies = ChannelPolicies::new(16, Duration::ZERO);
        assert_eq!(policies.private("a", || async { Ok(false) }).await, Ok(false));
        // Turned private: the next lookup after the TTL sees it.
        assert_eq!(policies.private("a", || async { Ok(true) }).await, Ok(true));
        // The control plane is down: the last answer stands.
        assert_eq!(policies.private("a", || async { Err("down".to_string()) }).await, Ok(true));
        // Never known and the control plane is down: an error.
        assert!(policies.private("b", || async { Err("down".to_string()) }).await.is_err());
    }

    #[tokio::test]
    async fn set_overrides_what_was_known() {
        let policies = ChannelPolicies::new(16, Duration::from_secs(3600));
        assert_eq!(policies.private("a", || async { Ok(false) }).await, Ok(false));
        policies.set("a", true).await;
        assert_eq!(policies.private("a", || async { Ok(false) }).await, Ok(true));
    }
}
