//! The few whole segments a thread served last, in front of the object cache.
//!
//! A cached segment is looked up once per request. moka's lookup is safe from any thread and
//! keeps its policy up to date (recency, read buffers, the entry's reference count), and
//! every one of those writes lands on memory the other HTTP threads write too: the lookup
//! cost about as much user time as the rest of the request. An HTTP thread answers the same
//! few segments over and over, so it keeps the last [`FRONT_LEN`] it found and answers from
//! them without touching the shared cache.
//!
//! Why this stays right: an object never changes under its key (see the module docs of
//! `objects`), so a remembered one is never stale. What bounds it: each thread holds at most
//! [`FRONT_LEN`] objects, and forgets all of them once the cache has evicted or replaced
//! anything since they were found (the cache counts its removals), so a remembered object
//! is one the cache also holds, up to its next removal. What keeps the cache's policy
//! informed: every [`FORWARD_EVERY`]th answer of an object is also read from the cache, so
//! a segment served from the fronts still counts as recently used there.

use std::cell::RefCell;

use bytes::Bytes;

/// Objects one thread remembers per process (across caches).
pub(super) const FRONT_LEN: usize = 4;
/// One answer in this many from a front is also read from the cache (its recency).
pub(super) const FORWARD_EVERY: u32 = 32;

struct Remembered {
    /// Which cache (its id), and the key there.
    cache: u64,
    key: (u64, u64),
    bytes: Bytes,
    /// The cache's removal count when it was found.
    removals: u64,
    answers: u32,
}

thread_local! {
    static FRONT: RefCell<Vec<Remembered>> = const { RefCell::new(Vec::new()) };
}

/// What a front holds of `key` in cache `cache`, whose removal count is `removals` now:
/// the object, and whether this answer should also be read from the cache.
pub(super) fn find(cache: u64, key: (u64, u64), removals: u64) -> Option<(Bytes, bool)> {
    FRONT.with_borrow_mut(|front| {
        if front.iter().any(|r| r.cache == cache && r.removals != removals) {
            // The cache let something go since: forget what it may have been.
            front.retain(|r| r.cache != cache || r.removals == removals);
        }
        let r = front.iter_mut().find(|r| r.cache == cache && r.key == key)?;
        r.answers = r.answers.wrapping_add(1);
        Some((r.bytes.clone(), r.answers.is_multiple_of(FORWARD_EVERY)))
    })
}

/// Remembers `bytes`, found in cache `cache` under `key` when its removal count was
/// `removals`, in place of the oldest remembered object if the front is full.
pub(super) fn remember(cache: u64, key: (u64, u64), bytes: Bytes, removals: u64) {
    FRONT.with_borrow_mut(|front| {
        front.retain(|r| !(r.cache == cache && r.key == key));
        if front.len() >= FRONT_LEN {
            front.remove(0);
        }
        front.push(Remembered { cache, key, bytes, removals, answers: 0 });
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_front_forgets_its_objects_once_the_cache_removed_anything() {
        let seg = Bytes::from_static(b"segment");
        remember(7, (1, 10), seg.clone(), 0);
        let (found, _) = find(7, (1, 10), 0).expect("remembered");
        assert_eq!(found.as_ptr(), seg.as_ptr(), "the same buffer, not a copy");
        assert!(find(7, (1, 11), 0).is_none(), "another key");
        assert!(find(8, (1, 10), 0).is_none(), "another cache");
        assert!(find(7, (1, 10), 1).is_none(), "after a removal it is forgotten");
        assert!(find(7, (1, 10), 0).is_none(), "and stays forgotten");
    }

    #[test]
    fn a_front_holds_a_bounded_number_and_forwards_some_answers() {
        for msn in 0..(FRONT_LEN as u64 + 2) {
            remember(9, (2, msn), Bytes::from(vec![msn as u8; 8]), 0);
        }
        let held = FRONT.with_borrow(|f| f.iter().filter(|r| r.cache == 9).count());
        assert_eq!(held, FRONT_LEN);
        assert!(find(9, (2, 0), 0).is_none(), "the oldest went first");
        let last = FRONT_LEN as u64 + 1;
        let forwarded = (0..FORWARD_EVERY * 3).filter(|_| find(9, (2, last), 0).unwrap().1).count();
        assert_eq!(forwarded, 3, "one answer in {FORWARD_EVERY} is also read from the cache");
    }
}
