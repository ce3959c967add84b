//! Consistent hashing with bounded loads: a pure, deterministic module.
//!
//! [`HashRing`] places every member at `vnodes` points on a 64-bit ring (a stable hash of
//! `"{member}#{i}"`); a key's [`HashRing::walk`] visits the distinct members clockwise from
//! the key's point. [`BoundedAssigner`] assigns keys (channels) to members along that walk,
//! skipping members whose load has reached `ceil(c × (assigned + 1) / members)` — the
//! "consistent hashing with bounded loads" rule, so no member carries more than about c ×
//! the mean while most keys keep their first choice (cache affinity).
//!
//! The hash is FNV-1a 64 followed by a SplitMix64 finaliser: stable across versions,
//! platforms and processes, so every control plane (and a future edge computing its shield)
//! agrees on the ring. No IO, no clock.

use std::collections::HashMap;

/// Stable 64-bit hash of `bytes`.
pub fn stable_hash(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    // SplitMix64 finaliser: spreads FNV's weak low bits over the whole word.
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// A hash ring over named members.
#[derive(Debug, Clone)]
pub struct HashRing {
    members: Vec<String>,
    /// (point, member index), sorted by point.
    points: Vec<(u64, usize)>,
}

impl HashRing {
    /// Default number of points per member.
    pub const DEFAULT_VNODES: usize = 160;

    /// A ring over `members` (duplicates are ignored) with `vnodes` points each.
    pub fn new<S: AsRef<str>>(members: &[S], vnodes: usize) -> Self {
        let mut names: Vec<String> = members.iter().map(|m| m.as_ref().to_string()).collect();
        names.sort();
        names.dedup();
        let vnodes = vnodes.max(1);
        let mut points = Vec::with_capacity(names.len() * vnodes);
        for (idx, name) in names.iter().enumerate() {
            for i in 0..vnodes {
                points.push((stable_hash(format!("{name}#{i}").as_bytes()), idx));
            }
        }
        points.sort_unstable();
        HashRing { members: names, points }
    }

    /// The members, sorted.
    pub fn members(&self) -> &[String] {
        &self.members
    }

    /// Whether the ring has no member.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// The distinct members clockwise from `key`'s point: the preference order for `key`.
    pub fn walk<'a>(&'a self, key: &str) -> impl Iterator<Item = &'a str> + 'a {
        let start = self.points.partition_point(|&(p, _)| p < stable_hash(key.as_bytes()));
        let mut seen = vec![false; self.members.len()];
        let n = self.points.len();
        (0..n).filter_map(move |i| {
            let (_, idx) = self.points[(start + i) % n];
            if seen[idx] {
                return None;
            }
            seen[idx] = true;
            Some(self.members[idx].as_str())
        })
    }

    /// The first member for `key` (no load bound): e.g. a channel's shield edge.
    pub fn first(&self, key: &str) -> Option<&str> {
        self.walk(key).next()
    }
}

/// Assigns keys to ring members with bounded loads, remembering assignments (sticky).
#[derive(Debug, Clone)]
pub struct BoundedAssigner {
    ring: HashRing,
    c: f64,
    load: HashMap<String, usize>,
    assigned: HashMap<String, String>,
}

impl BoundedAssigner {
    /// An assigner over `ring` with load factor `c` (≥ 1; 1.25 by default).
    pub fn new(ring: HashRing, c: f64) -> Self {
        let c = if c.is_finite() { c.max(1.0) } else { 1.25 };
        BoundedAssigner { ring, c, load: HashMap::new(), assigned: HashMap::new() }
    }

    /// The ring.
    pub fn ring(&self) -> &HashRing {
        &self.ring
    }

    /// Number of keys currently assigned.
    pub fn len(&self) -> usize {
        self.assigned.len()
    }

    /// Whether nothing is assigned.
    pub fn is_empty(&self) -> bool {
        self.assigned.is_empty()
    }

    /// The load bound for the next assignment.
    fn capacity(&self) -> usize {
        let n = self.ring.members().len().max(1) as f64;
        ((self.c * (self.assigned.len() + 1) as f64) / n).ceil() as usize
    }

    /// The member for `key`: its existing assignment, else the first member along its walk
    /// below the load bound. `None` only when the ring is empty.
    pub fn assign(&mut self, key: &str) -> Option<&str> {
        if self.assigned.contains_key(key) {
            return self.assigned.get(key).map(String::as_str);
        }
        let cap = self.capacity();
        let chosen = self
            .ring
            .walk(key)
            .find(|m| self.load.get(*m).copied().unwrap_or(0) < cap)
            .or_else(|| self.ring.first(key))?
            .to_string();
        *self.load.entry(chosen.clone()).or_insert(0) += 1;
        self.assigned.insert(key.to_string(), chosen);
        self.assigned.get(key).map(String::as_str)
    }

    /// Forgets `key`'s assignment (e.g. the channel ended).
    pub fn release(&mut self, key: &str) {
        if let Some(m) = self.assigned.remove(key)
            && let Some(l) = self.load.get_mut(&m)
        {
            *l = l.saturating_sub(1);
        }
    }

    /// Keys per member.
    pub fn loads(&self) -> &HashMap<String, usize> {
        &self.load
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edges(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("edge-{i}")).collect()
    }

    const GOLDEN_SKYRELAY: u64 = 6_215_235_295_621_501_012;

    #[test]
    fn hash_is_stable() {
        // Golden values: changing the hash moves every channel's edge.
        assert_eq!(stable_hash(b"skyrelay"), GOLDEN_SKYRELAY);
        let ring = HashRing::new(&edges(4), 64);
        let picks: Vec<&str> = ["a", "b", "c", "d", "e"].iter().filter_map(|k| ring.first(k)).collect();
        let again = HashRing::new(&edges(4), 64);
        let picks2: Vec<&str> = ["a", "b", "c", "d", "e"].iter().filter_map(|k| again.first(k)).collect();
        assert_eq!(picks, picks2);
    }

    #[test]
    fn walk_visits_every_member_once() {
        let ring = HashRing::new(&edges(7), 32);
        let w: Vec<&str> = ring.walk("channel-x").collect();
        assert_eq!(w.len(), 7);
        let mut s = w.clone();
        s.sort();
        s.dedup();
        assert_eq!(s.len(), 7);
        assert!(HashRing::new::<String>(&[], 8).walk("x").next().is_none());
    }

    #[test]
    fn removing_a_member_moves_only_its_keys() {
        let all = HashRing::new(&edges(10), 160);
        let fewer = HashRing::new(&edges(10)[1..], 160);
        for k in 0..2000 {
            let key = format!("ch{k}");
            let before = all.first(&key).unwrap();
            if before != "edge-0" {
                assert_eq!(fewer.first(&key), Some(before), "{key} moved");
            }
        }
    }

    #[test]
    fn bounded_loads_hold_for_10_edges_and_10000_channels() {
        let mut a = BoundedAssigner::new(HashRing::new(&edges(10), HashRing::DEFAULT_VNODES), 1.25);
        for k in 0..10_000 {
            assert!(a.assign(&format!("channel-{k}")).is_some());
        }
        let max = *a.loads().values().max().unwrap();
        let mean = 10_000.0 / 10.0;
        println!("10 edges, 10000 channels: busiest {max}, mean {mean}");
        assert!(max as f64 <= 1.25 * mean, "busiest {max} > 1.25 × {mean}");
        // Sticky: asking again gives the same member.
        let first = a.assign("channel-42").unwrap().to_string();
        assert_eq!(a.assign("channel-42").unwrap(), first);
        a.release("channel-42");
        assert_eq!(a.len(), 9_999);
    }
}
