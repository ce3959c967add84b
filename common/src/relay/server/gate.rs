//! The history gate of a connection: a fresh subscriber's history is pushed only when no
//! fetch of the same connection is being sent (until the subscriber acknowledged the whole
//! segment), and not before the control messages that arrived with the subscribe are
//! handled.
//!
//! An edge asked for a segment of a channel it does not carry sends the subscribe and a
//! fetch of that segment in one flight. Without the gate the history (a megabyte or more)
//! would start first and reach the wire before the fetch is even read; the viewer's segment
//! would then queue behind it at both ends. Sent right behind the fetch, it would still take
//! the CPU at both ends (about a millisecond per 300 KB each way) while the viewer's first
//! bytes are on their way. Once the gate opens, a subscription whose fetch came in its flight
//! waits `RelayServerConfig::history_after_fetch` more (in `push`), while its subscriber
//! hands the segment to viewers.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

/// Holds of the gate (fetches being queued, a control flight being read); history waits
/// while any is held.
#[derive(Debug)]
pub(super) struct HistoryGate(watch::Sender<usize>);

impl HistoryGate {
    pub(super) fn new() -> Arc<Self> {
        Arc::new(Self(watch::channel(0).0))
    }

    /// Closes the gate until the returned hold drops.
    pub(super) fn hold(self: &Arc<Self>) -> GateHold {
        self.0.send_modify(|n| *n += 1);
        GateHold(self.clone())
    }

    /// Waits until no hold is left, at most `limit`.
    pub(super) async fn open(&self, limit: Duration) {
        // The usual case, an open gate, costs no receiver.
        if *self.0.borrow() == 0 {
            return;
        }
        let mut rx = self.0.subscribe();
        let _ = tokio::time::timeout(limit, rx.wait_for(|n| *n == 0)).await;
    }

    #[cfg(test)]
    fn holds(&self) -> usize {
        *self.0.borrow()
    }
}

/// One hold of a [`HistoryGate`]; released on drop.
#[derive(Debug)]
pub(super) struct GateHold(Arc<HistoryGate>);

impl Drop for GateHold {
    fn drop(&mut self) {
        self.0.0.send_modify(|n| *n = n.saturating_sub(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn history_waits_for_every_hold() {
        let gate = HistoryGate::new();
        let (a, b) = (gate.hold(), gate.hold());
        let waiter = tokio::spawn({
            let gate = gate.clone();
            async move { gate.open(Duration::from_secs(60)).await }
        });
        drop(a);
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert!(!waiter.is_finished(), "opened with a hold left");
        drop(b);
        tokio::time::timeout(Duration::from_secs(1), waiter).await.unwrap().unwrap();
        assert_eq!(gate.holds(), 0);
    }

    #[tokio::test]
    async fn a_stuck_hold_delays_history_only_up_to_the_limit() {
        let gate = HistoryGate::new();
        let _stuck = gate.hold();
        let t0 = std::time::Instant::now();
        tokio::time::timeout(Duration::from_secs(30), gate.open(Duration::from_millis(50)))
            .await
            .expect("the limit ends the wait");
        assert!(t0.elapsed() >= Duration::from_millis(50));
        assert_eq!(gate.holds(), 1);
    }
}
