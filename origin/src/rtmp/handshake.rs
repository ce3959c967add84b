//! Server side of the plain ("simple") RTMP handshake.
//!
//! C0+C1 in, S0+S1+S2 out, then C2 in. S1 carries zero in bytes 4..8, which tells clients
//! that try the digest scheme (librtmp, ffmpeg) to fall back to the simple one; S2 echoes C1.
//! C2 is read and not checked (clients differ in what they put there). The random part of
//! S1 is derived from C1, so a session is deterministic for a given input.

use bytes::{Buf, BufMut, BytesMut};

use super::RtmpError;

/// Size of C1, C2, S1 and S2.
pub const PACKET_LEN: usize = 1536;
/// The only supported version byte (plain RTMP).
pub const VERSION: u8 = 3;

/// Where the handshake stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    WaitC0C1,
    WaitC2,
    Done,
}

/// Server handshake state machine.
#[derive(Debug)]
pub struct Handshake {
    state: State,
}

impl Default for Handshake {
    fn default() -> Self {
        Self::new()
    }
}

impl Handshake {
    pub fn new() -> Self {
        Handshake { state: State::WaitC0C1 }
    }

    /// Whether C2 was received.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Consumes what it can from `input`, appends replies to `out`. Returns `Ok(true)` once
    /// the handshake is complete (bytes after C2 are left in `input`). A bad version byte is
    /// rejected as soon as it arrives.
    pub fn process(&mut self, input: &mut BytesMut, out: &mut BytesMut) -> Result<bool, RtmpError> {
        loop {
            match self.state {
                State::WaitC0C1 => {
                    let Some(&version) = input.first() else {
                        return Ok(false);
                    };
                    if version != VERSION {
                        return Err(RtmpError::HandshakeVersion(version));
                    }
                    if input.len() < 1 + PACKET_LEN {
                        return Ok(false);
                    }
                    input.advance(1);
                    let c1 = input.split_to(PACKET_LEN);
                    out.reserve(1 + 2 * PACKET_LEN);
                    out.put_u8(VERSION);
                    write_s1(&c1, out);
                    out.put_slice(&c1);
                    self.state = State::WaitC2;
                }
                State::WaitC2 => {
                    if input.len() < PACKET_LEN {
                        return Ok(false);
                    }
                    input.advance(PACKET_LEN);
                    self.state = State::Done;
                }
                State::Done => return Ok(true),
            }
        }
    }
}

/// S1: time 0, four zero bytes, 1528 pseudo-random bytes (xorshift seeded from C1).
fn write_s1(c1: &[u8], out: &mut BytesMut) {
    out.put_u32(0);
    out.put_u32(0);
    let mut seed =
        c1.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
            | 1;
    for _ in 0..(PACKET_LEN - 8) / 8 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        out.put_u64(seed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c0c1() -> Vec<u8> {
        let mut v = vec![VERSION];
        v.extend((0..PACKET_LEN).map(|i| (i * 7) as u8));
        v
    }

    #[test]
    fn full_handshake_in_pieces() {
        let mut hs = Handshake::new();
        let mut input = BytesMut::new();
        let mut out = BytesMut::new();
        let c = c0c1();
        input.extend_from_slice(&c[..100]);
        assert!(!hs.process(&mut input, &mut out).unwrap());
        assert!(out.is_empty());
        input.extend_from_slice(&c[100..]);
        assert!(!hs.process(&mut input, &mut out).unwrap());
        assert_eq!(out.len(), 1 + 2 * PACKET_LEN);
        assert_eq!(out[0], VERSION);
        assert_eq!(&out[5..9], &[0, 0, 0, 0]);
        assert_eq!(&out[1 + PACKET_LEN..], &c[1..]);
        input.extend_from_slice(&[9u8; PACKET_LEN]);
        input.extend_from_slice(b"rest");
        assert!(hs.process(&mut input, &mut out).unwrap());
        assert!(hs.is_done());
        assert_eq!(&input[..], b"rest");
    }

    #[test]
    fn rejects_other_versions_immediately() {
        for v in [0u8, 6, 0x16, b'G'] {
            let mut hs = Handshake::new();
            let mut input = BytesMut::from(&[v][..]);
            assert_eq!(hs.process(&mut input, &mut BytesMut::new()), Err(RtmpError::HandshakeVersion(v)));
        }
    }
}
