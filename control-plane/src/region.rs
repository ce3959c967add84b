//! Where a client is: its address (honouring `X-Forwarded-For` only from trusted proxies)
//! and its region (explicit hint, else the CIDR table, else the default). Pure.

use std::collections::BTreeMap;
use std::net::IpAddr;

use skyrelay_common::cpapi::Cidr;

use crate::config::ControlPlaneConfig;

/// Region lookup tables built from the configuration.
#[derive(Debug, Clone)]
pub struct RegionMap {
    default: String,
    names: Vec<String>,
    /// (network, region), longest prefix first.
    table: Vec<(Cidr, String)>,
    trusted: Vec<Cidr>,
    distances: BTreeMap<(String, String), u32>,
}

impl RegionMap {
    /// Tables from a validated configuration (invalid CIDRs are skipped).
    pub fn from_config(cfg: &ControlPlaneConfig) -> Self {
        let mut table: Vec<(Cidr, String)> = cfg
            .regions
            .iter()
            .flat_map(|r| r.cidrs.iter().filter_map(|c| c.parse().ok()).map(|c| (c, r.name.clone())))
            .collect();
        table.sort_by_key(|(c, _)| std::cmp::Reverse(c.prefix()));
        let mut distances = BTreeMap::new();
        for r in &cfg.regions {
            for (other, d) in &r.distances {
                distances.insert((r.name.clone(), other.clone()), *d);
                distances.entry((other.clone(), r.name.clone())).or_insert(*d);
            }
        }
        let mut names: Vec<String> = cfg.region_names().map(str::to_string).collect();
        names.sort();
        names.dedup();
        RegionMap {
            default: cfg.default_region.clone(),
            names,
            table,
            trusted: cfg.trusted_proxies.iter().filter_map(|c| c.parse().ok()).collect(),
            distances,
        }
    }

    /// The default region.
    pub fn default_region(&self) -> &str {
        &self.default
    }

    /// Whether `name` is a configured region.
    pub fn known(&self, name: &str) -> bool {
        self.names.iter().any(|n| n == name)
    }

    /// The client's address: the peer, or — when the peer is a trusted proxy — the
    /// rightmost untrusted address of `X-Forwarded-For`.
    pub fn client_ip(&self, peer: IpAddr, forwarded_for: Option<&str>) -> IpAddr {
        let trusted = |ip: IpAddr| self.trusted.iter().any(|c| c.contains(ip));
        if !trusted(peer) {
            return peer;
        }
        let Some(xff) = forwarded_for else { return peer };
        let mut client = peer;
        for hop in xff.rsplit(',').take(32) {
            match hop.trim().parse::<IpAddr>() {
                Ok(ip) => {
                    client = ip;
                    if !trusted(ip) {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
        client
    }

    /// The client's region: a known `hint`, else the CIDR table, else the default.
    pub fn region_of(&self, hint: Option<&str>, client: IpAddr) -> String {
        if let Some(h) = hint.filter(|h| self.known(h)) {
            return h.to_string();
        }
        self.table
            .iter()
            .find(|(c, _)| c.contains(client))
            .map(|(_, r)| r.clone())
            .unwrap_or_else(|| self.default.clone())
    }

    /// Every region ordered by distance from `from` (itself first, unknown distances last,
    /// ties by name).
    pub fn by_distance(&self, from: &str) -> Vec<String> {
        let mut all: Vec<(u64, String)> = self
            .names
            .iter()
            .map(|n| {
                let d = if n == from {
                    0
                } else {
                    self.distances.get(&(from.to_string(), n.clone())).map_or(u64::MAX, |&d| u64::from(d) + 1)
                };
                (d, n.clone())
            })
            .collect();
        if !self.known(from) {
            all.insert(0, (0, from.to_string()));
        }
        all.sort();
        all.into_iter().map(|(_, n)| n).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use skyrelay_common::config::from_toml;

    fn map() -> RegionMap {
        let cfg: ControlPlaneConfig = from_toml(
            r#"
            default_region = "local"
            trusted_proxies = ["192.0.2.0/24"]
            [[regions]]
            name = "eu"
            cidrs = ["10.1.0.0/16", "10.1.5.0/24"]
            distances = { us = 80, ap = 200 }
            [[regions]]
            name = "us"
            cidrs = ["10.2.0.0/16"]
            distances = { ap = 150 }
            [[regions]]
            name = "ap"
            cidrs = ["10.1.5.0/25"]
            "#,
        )
        .unwrap();
        RegionMap::from_config(&cfg)
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn region_from_hint_cidr_or_default() {
        let m = map();
        assert_eq!(m.region_of(Some("us"), ip("10.1.0.1")), "us", "hint wins");
        assert_eq!(m.region_of(Some("mars"), ip("10.1.0.1")), "eu", "unknown hint ignored");
        assert_eq!(m.region_of(None, ip("10.2.3.4")), "us");
        assert_eq!(m.region_of(None, ip("10.1.5.3")), "ap", "longest prefix wins");
        assert_eq!(m.region_of(None, ip("10.1.5.200")), "eu");
        assert_eq!(m.region_of(None, ip("8.8.8.8")), "local");
    }

    #[test]
    fn forwarded_for_only_from_trusted_proxies() {
        let m = map();
        let proxy = ip("192.0.2.10");
        assert_eq!(m.client_ip(proxy, Some("10.2.0.9")), ip("10.2.0.9"));
        assert_eq!(
            m.client_ip(proxy, Some("6.6.6.6, 10.2.0.9, 192.0.2.11")),
            ip("10.2.0.9"),
            "rightmost untrusted"
        );
        assert_eq!(
            m.client_ip(ip("10.1.0.1"), Some("10.2.0.9")),
            ip("10.1.0.1"),
            "untrusted peer: header ignored"
        );
        assert_eq!(m.client_ip(proxy, Some("garbage")), proxy);
        assert_eq!(m.client_ip(proxy, None), proxy);
    }

    #[test]
    fn regions_by_distance() {
        let m = map();
        assert_eq!(m.by_distance("eu"), vec!["eu", "us", "ap", "local"]);
        assert_eq!(m.by_distance("ap"), vec!["ap", "us", "eu", "local"], "distances are symmetric");
        assert_eq!(m.by_distance("local")[0], "local");
    }
}
