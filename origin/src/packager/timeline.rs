//! The 64-bit media timeline: FLV's 32-bit millisecond timestamps, unwrapped and re-based.
//!
//! Each timestamp is placed relative to the previous one by their signed 32-bit difference,
//! so a wrap at 2^32 ms (about 49.7 days) keeps time moving forward and a small step back
//! stays a step back (the tracks clamp it). After [`Timeline::rebase`] the next timestamp
//! maps to the given instant, which keeps decode time increasing across publishers.

/// Unwraps 32-bit millisecond timestamps into a 64-bit timeline.
#[derive(Debug, Default, Clone)]
pub(crate) struct Timeline {
    last: Option<(u32, i64)>,
    rebase_to: Option<i64>,
}

impl Timeline {
    /// Maps a raw timestamp onto the timeline (milliseconds).
    pub(crate) fn unwrap(&mut self, ts: u32) -> i64 {
        let ext = match self.last {
            Some((raw, ext)) => ext + i64::from(ts.wrapping_sub(raw) as i32),
            None => self.rebase_to.take().unwrap_or(i64::from(ts)),
        };
        self.last = Some((ts, ext));
        ext
    }

    /// The next timestamp seen maps to `to_ms`, whatever its raw value.
    pub(crate) fn rebase(&mut self, to_ms: i64) {
        self.last = None;
        self.rebase_to = Some(to_ms);
    }

    /// The last position handed out, if any.
    pub(crate) fn last_ms(&self) -> Option<i64> {
        self.last.map(|(_, ext)| ext)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wraps_and_steps_back() {
        let mut t = Timeline::default();
        assert_eq!(t.unwrap(u32::MAX - 10), i64::from(u32::MAX) - 10);
        assert_eq!(t.unwrap(5), i64::from(u32::MAX) + 6);
        assert_eq!(t.unwrap(3), i64::from(u32::MAX) + 4);
        t.rebase(100);
        assert_eq!(t.unwrap(0), 100);
        assert_eq!(t.unwrap(40), 140);
        assert_eq!(t.last_ms(), Some(140));
    }
}
