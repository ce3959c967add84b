//! Port plan of `skyrelay up`: everything on 127.0.0.1.

use std::net::SocketAddr;

/// Which port each listener gets; base 0 means "any free port".
pub struct Ports {
    base: u16,
    rtmp: u16,
}

impl Ports {
    pub fn new(base: u16, rtmp: u16) -> Self {
        Ports { base, rtmp }
    }

    fn at(&self, base: u16, offset: u16) -> SocketAddr {
        let port = if base == 0 { 0 } else { base.saturating_add(offset) };
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    /// The control plane's HTTP API.
    pub fn control_plane(&self) -> SocketAddr {
        self.at(self.base, 0)
    }

    /// RTMP ingest of region `region`'s origin.
    pub fn rtmp(&self, region: usize) -> SocketAddr {
        self.at(self.rtmp, region as u16)
    }

    /// HTTP of node `node` (0 = origin, 1.. = edges) of region `region`.
    pub fn node_http(&self, region: usize, node: usize) -> SocketAddr {
        self.at(self.base, 100 * (region as u16 + 1) + node as u16)
    }

    /// Admin listener (metrics) of a node.
    pub fn node_admin(&self, region: usize, node: usize) -> SocketAddr {
        self.at(self.base, 100 * (region as u16 + 1) + 50 + node as u16)
    }

    /// Relay listener (UDP) of a node: the same number as its HTTP port.
    pub fn node_relay(&self, region: usize, node: usize) -> SocketAddr {
        self.node_http(region, node)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_is_distinct_per_node() {
        let p = Ports::new(8000, 1935);
        assert_eq!(p.control_plane().port(), 8000);
        assert_eq!(p.node_http(0, 0).port(), 8100);
        assert_eq!(p.node_http(1, 2).port(), 8202);
        assert_eq!(p.node_admin(1, 2).port(), 8252);
        assert_eq!(p.rtmp(1).port(), 1936);
        let zero = Ports::new(0, 0);
        assert_eq!(zero.node_http(3, 1).port(), 0);
        assert_eq!(zero.rtmp(2).port(), 0);
    }
}
