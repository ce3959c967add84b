//! Closing connections that carry no request: one that never sends one, a kept-alive one
//! whose client went quiet, and one whose request headers trickle in (they count only once
//! complete). A connection with a request in progress (a held playlist reload, a part
//! streamed as it is written) is never idle.
//!
//! One coarse check per connection every quarter of the limit, instead of a timer armed and
//! cancelled around every request's headers: on a busy kept-alive connection that timer is
//! a good part of the cost of a small response.
//!
//! [`IdleCheck`] decides (no clock inside); [`Activity`] is what the requests of one
//! connection update; [`close_when_idle`] runs the checks.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::task::AbortHandle;

/// Checks per limit: a connection is closed after between the limit and 1.5× the limit
/// without a request.
const CHECKS_PER_LIMIT: u32 = 4;
/// Consecutive idle checks that close a connection. One more than [`CHECKS_PER_LIMIT`]: the
/// first check after a request ends may still see it as new.
const IDLE_CHECKS: u32 = CHECKS_PER_LIMIT + 1;

/// The requests of one connection: how many have started, how many are in progress.
#[derive(Debug, Default)]
pub(crate) struct Activity {
    started: AtomicU64,
    /// Requests whose response body has not been dropped yet.
    in_progress: AtomicU64,
}

impl Activity {
    /// Counts a request as started and in progress until the guard is dropped.
    pub(crate) fn request(self: &Arc<Self>) -> InProgress {
        self.started.fetch_add(1, Ordering::Relaxed);
        self.in_progress.fetch_add(1, Ordering::Relaxed);
        InProgress(self.clone())
    }

    fn snapshot(&self) -> (u64, bool) {
        (self.started.load(Ordering::Relaxed), self.in_progress.load(Ordering::Relaxed) > 0)
    }
}

/// A request in progress (held by its response body).
#[derive(Debug)]
pub(crate) struct InProgress(Arc<Activity>);

impl Drop for InProgress {
    fn drop(&mut self) {
        self.0.in_progress.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Counts consecutive checks that found no request in progress and none started since the
/// check before.
#[derive(Debug, Default)]
pub(crate) struct IdleCheck {
    last_started: u64,
    idle_checks: u32,
}

impl IdleCheck {
    /// One check of `started` (requests so far) and `in_progress`; `true`: close.
    pub(crate) fn check(&mut self, started: u64, in_progress: bool) -> bool {
        if in_progress || started != self.last_started {
            self.last_started = started;
            self.idle_checks = 0;
            return false;
        }
        self.idle_checks += 1;
        self.idle_checks >= IDLE_CHECKS
    }
}

/// Watches the connection task `connection`: aborts it once it has had no request for
/// `limit` (at most 1.5 × `limit`), and returns at the first check after it ended. A task of
/// its own, so that the connection's many wake-ups never poll this timer.
pub(crate) async fn close_when_idle(activity: Arc<Activity>, limit: Duration, connection: AbortHandle) {
    let step = (limit / CHECKS_PER_LIMIT).max(Duration::from_millis(1));
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + step, step);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut idle = IdleCheck::default();
    loop {
        ticks.tick().await;
        if connection.is_finished() {
            return;
        }
        let (started, in_progress) = activity.snapshot();
        if idle.check(started, in_progress) {
            tracing::debug!("closing a connection without a request");
            connection.abort();
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_without_requests_closes_after_the_limit() {
        let mut c = IdleCheck::default();
        let closes_at = (1..=10).find(|_| c.check(0, false)).unwrap();
        assert_eq!(closes_at, IDLE_CHECKS);
    }

    #[test]
    fn a_request_in_progress_keeps_the_connection() {
        let mut c = IdleCheck::default();
        for _ in 0..100 {
            assert!(!c.check(1, true));
        }
        // Ended: the full count of idle checks from here.
        for _ in 1..IDLE_CHECKS {
            assert!(!c.check(1, false));
        }
        assert!(c.check(1, false));
    }

    #[test]
    fn a_new_request_between_checks_restarts_the_count() {
        let mut c = IdleCheck::default();
        for _ in 1..IDLE_CHECKS {
            assert!(!c.check(0, false));
        }
        assert!(!c.check(1, false), "a request started and ended since the last check");
        for _ in 1..IDLE_CHECKS {
            assert!(!c.check(1, false));
        }
        assert!(c.check(1, false));
    }

    #[test]
    fn guards_count_requests_in_progress() {
        let a = Arc::new(Activity::default());
        let (g1, g2) = (a.request(), a.request());
        assert_eq!(a.snapshot(), (2, true));
        drop(g1);
        assert_eq!(a.snapshot(), (2, true));
        drop(g2);
        assert_eq!(a.snapshot(), (2, false));
    }
}
