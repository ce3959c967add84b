//! The relay's UDP socket, bound with large kernel buffers.
//!
//! A fresh subscription's history and a fetch arrive as a burst of a megabyte or more. With
//! the kernel's default receive buffer (about 200 KiB) the receiver's socket overflows before
//! the QUIC stack reads it; every dropped datagram then costs a loss detection, a
//! retransmission and a smaller congestion window, which turned a 340 KB fetch on loopback
//! into 5–9 ms instead of about 1.

use quinn::{Endpoint, EndpointConfig, ServerConfig};
use rustix::net::sockopt;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use tracing::{debug, warn};

/// Receive and send buffer asked of the kernel for each relay socket.
pub const SOCKET_BUFFER: usize = 4 << 20;

/// A quinn endpoint on a UDP socket bound to `addr` with [`SOCKET_BUFFER`]-sized buffers;
/// a server when `server` is given.
pub fn endpoint(addr: SocketAddr, server: Option<ServerConfig>) -> io::Result<Endpoint> {
    let socket = UdpSocket::bind(addr)?;
    grow_buffers(&socket, SOCKET_BUFFER);
    let runtime = quinn::default_runtime().ok_or_else(|| io::Error::other("no async runtime found"))?;
    Endpoint::new(EndpointConfig::default(), server, socket, runtime)
}

/// Asks for `want` bytes of receive and send buffer: beyond `net.core.rmem_max` /
/// `wmem_max` when the process may (root), else up to them. Warns when the kernel grants
/// less than half (Linux reports twice what it was asked, for its own bookkeeping).
pub fn grow_buffers(socket: &UdpSocket, want: usize) {
    let recv = sockopt::set_socket_recv_buffer_size_force(socket, want)
        .or_else(|_| sockopt::set_socket_recv_buffer_size(socket, want))
        .and_then(|()| sockopt::socket_recv_buffer_size(socket));
    let send = sockopt::set_socket_send_buffer_size_force(socket, want)
        .or_else(|_| sockopt::set_socket_send_buffer_size(socket, want))
        .and_then(|()| sockopt::socket_send_buffer_size(socket));
    match (recv, send) {
        (Ok(r), Ok(s)) if r >= want && s >= want => debug!(recv = r, send = s, "relay socket buffers"),
        (r, s) => warn!(
            wanted = want,
            recv = ?r.ok(),
            send = ?s.ok(),
            "relay socket buffers are smaller than wanted: bursts may be dropped; raise the \
             sysctls net.core.rmem_max and net.core.wmem_max to at least {want}"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_grow_beyond_the_default() {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let before = sockopt::socket_recv_buffer_size(&socket).unwrap();
        grow_buffers(&socket, SOCKET_BUFFER);
        let after = sockopt::socket_recv_buffer_size(&socket).unwrap();
        // Without privilege the kernel caps at rmem_max, which may equal the default.
        let cap = std::fs::read_to_string("/proc/sys/net/core/rmem_max")
            .ok()
            .and_then(|s| s.trim().parse::<usize>().ok())
            .unwrap_or(0);
        assert!(after >= before, "{after} < {before}");
        let least = SOCKET_BUFFER.min(cap);
        assert!(after >= least, "receive buffer {after} < {least}");
    }
}
