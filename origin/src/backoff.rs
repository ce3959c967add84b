//! Retry delays shared by the origin's background work (recording uploads, reports to the
//! control plane).

use std::time::Duration;

use rand::Rng;

/// 250 ms doubling up to `max`, then a random 50–100 % of it (so many origins recovering
/// from the same outage do not retry in step). `attempt` counts from 1.
pub(crate) fn backoff(attempt: u32, max: Duration) -> Duration {
    let base = Duration::from_millis(250).saturating_mul(1 << attempt.saturating_sub(1).min(16)).min(max);
    base.mul_f64(rand::rng().random_range(0.5..=1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_the_cap_with_jitter() {
        let max = Duration::from_secs(4);
        for attempt in 1..40 {
            let d = backoff(attempt, max);
            let base = Duration::from_millis(250).saturating_mul(1 << (attempt - 1).min(16)).min(max);
            assert!(d >= base / 2 && d <= base, "attempt {attempt}: {d:?}");
        }
    }
}
