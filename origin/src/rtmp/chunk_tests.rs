//! Unit tests of the chunk decoder (and, through round trips, the encoder).

use bytes::{BufMut, BytesMut};

use super::*;
use crate::rtmp::writer::{ChunkEncoder, basic_header};

fn limits() -> DecoderLimits {
    DecoderLimits { max_chunk_size: 65_536, max_message_size: 1 << 20, max_chunk_streams: 8 }
}

/// Hand-built chunk: basic header, the message header fields of `fmt`, optional extended
/// timestamp, payload.
fn chunk(fmt: u8, csid: u32, fields: (u32, u32, u8, u32), ext: Option<u32>, payload: &[u8]) -> Vec<u8> {
    let (ts, len, type_id, sid) = fields;
    let mut b = BytesMut::new();
    basic_header(fmt, csid, &mut b);
    if fmt <= 2 {
        b.put_uint(u64::from(ts), 3);
    }
    if fmt <= 1 {
        b.put_uint(u64::from(len), 3);
        b.put_u8(type_id);
    }
    if fmt == 0 {
        b.put_u32_le(sid);
    }
    if let Some(e) = ext {
        b.put_u32(e);
    }
    b.put_slice(payload);
    b.to_vec()
}

fn decode_all(dec: &mut ChunkDecoder, bytes: &[u8]) -> Result<Vec<RawMessage>, RtmpError> {
    let mut buf = BytesMut::from(bytes);
    let mut out = Vec::new();
    while let Some(m) = dec.decode(&mut buf)? {
        out.push(m);
    }
    assert!(buf.is_empty(), "{} bytes left", buf.len());
    Ok(out)
}

#[test]
fn header_types_and_timestamp_deltas() {
    let mut bytes = Vec::new();
    bytes.extend(chunk(0, 4, (1000, 2, 8, 1), None, b"a0"));
    bytes.extend(chunk(2, 4, (20, 0, 0, 0), None, b"a1")); // +20, same length/type
    bytes.extend(chunk(3, 4, (0, 0, 0, 0), None, b"a2")); // +20 again
    bytes.extend(chunk(1, 4, (5, 3, 9, 0), None, b"v00")); // +5, new length/type
    let msgs = decode_all(&mut ChunkDecoder::new(limits()), &bytes).unwrap();
    let got: Vec<_> = msgs.iter().map(|m| (m.timestamp, m.type_id, m.stream_id, &m.payload[..])).collect();
    assert_eq!(
        got,
        vec![
            (1000, 8, 1, &b"a0"[..]),
            (1020, 8, 1, &b"a1"[..]),
            (1040, 8, 1, &b"a2"[..]),
            (1045, 9, 1, &b"v00"[..]),
        ]
    );
}

#[test]
fn multi_chunk_message_with_extended_timestamp_on_continuations() {
    let payload: Vec<u8> = (0..300u32).map(|i| i as u8).collect();
    let ts = 0x0100_0000;
    let mut bytes = chunk(0, 6, (0xFF_FFFF, 300, 9, 1), Some(ts), &payload[..128]);
    bytes.extend(chunk(3, 6, (0, 0, 0, 0), Some(ts), &payload[128..256]));
    bytes.extend(chunk(3, 6, (0, 0, 0, 0), Some(ts), &payload[256..]));
    // Another chunk stream keeps its own state.
    bytes.extend(chunk(0, 7, (10, 1, 8, 1), None, b"x"));
    let msgs = decode_all(&mut ChunkDecoder::new(limits()), &bytes).unwrap();
    assert_eq!(msgs.len(), 2);
    assert_eq!(msgs[0].timestamp, ts);
    assert_eq!(&msgs[0].payload[..], &payload[..]);
    assert_eq!(msgs[1].timestamp, 10);
}

#[test]
fn extended_delta_then_type3_new_message() {
    let mut bytes = chunk(0, 4, (100, 1, 8, 1), None, b"a");
    bytes.extend(chunk(2, 4, (0xFF_FFFF, 0, 0, 0), Some(0x0100_0000), b"b"));
    bytes.extend(chunk(3, 4, (0, 0, 0, 0), Some(0x0100_0000), b"c"));
    let msgs = decode_all(&mut ChunkDecoder::new(limits()), &bytes).unwrap();
    let ts: Vec<u32> = msgs.iter().map(|m| m.timestamp).collect();
    assert_eq!(ts, vec![100, 100 + 0x0100_0000, 100 + 0x0200_0000]);
}

#[test]
fn timestamps_wrap() {
    let mut bytes = chunk(0, 4, (0xFF_FFFF, 1, 8, 1), Some(u32::MAX - 5), b"a");
    bytes.extend(chunk(2, 4, (10, 0, 0, 0), None, b"b"));
    let msgs = decode_all(&mut ChunkDecoder::new(limits()), &bytes).unwrap();
    assert_eq!(msgs[1].timestamp, 4);
}

#[test]
fn two_and_three_byte_basic_headers() {
    let mut bytes = chunk(0, 100, (1, 1, 8, 1), None, b"a");
    bytes.extend(chunk(0, 60_000, (2, 1, 9, 1), None, b"b"));
    let msgs = decode_all(&mut ChunkDecoder::new(limits()), &bytes).unwrap();
    assert_eq!((msgs[0].csid, msgs[1].csid), (100, 60_000));
}

#[test]
fn encoder_round_trip_across_chunk_sizes_and_byte_by_byte() {
    for size in [1u32, 7, 128, 4096] {
        let mut enc = ChunkEncoder::new();
        enc.set_chunk_size(size);
        let mut dec = ChunkDecoder::new(limits());
        dec.set_chunk_size(size).unwrap();
        let mut wire = BytesMut::new();
        let msgs: Vec<(u32, u32, Vec<u8>)> = vec![
            (3, 0, vec![]),
            (4, 40, vec![1; 500]),
            (5, 0x00FF_FFFF, vec![2; 300]),
            (300, u32::MAX, vec![3; 9000]),
        ];
        for (csid, ts, p) in &msgs {
            enc.encode(*csid, *ts, 9, 1, p, &mut wire);
        }
        // Feed one byte at a time: nothing may be consumed before a chunk is complete.
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for &b in wire.iter() {
            buf.put_u8(b);
            while let Some(m) = dec.decode(&mut buf).unwrap() {
                got.push((m.csid, m.timestamp, m.payload.to_vec()));
            }
        }
        assert_eq!(got, msgs, "chunk size {size}");
        assert!(buf.is_empty());
    }
}

#[test]
fn chunk_size_limits() {
    let mut dec = ChunkDecoder::new(limits());
    assert!(matches!(dec.set_chunk_size(1 << 31), Err(RtmpError::ChunkSize { .. })));
    assert!(dec.set_chunk_size(0).is_err());
    assert!(dec.set_chunk_size(65_537).is_err());
    assert!(dec.set_chunk_size(65_536).is_ok());
    assert_eq!(dec.chunk_size(), 65_536);
}

#[test]
fn oversized_message_rejected_from_its_header() {
    let mut dec = ChunkDecoder::new(limits());
    // Only the header: the error comes before any payload arrives.
    let mut buf = BytesMut::from(&chunk(0, 4, (0, 0xFF_FFFF, 9, 1), None, b"")[..]);
    assert!(matches!(dec.decode(&mut buf), Err(RtmpError::MessageTooLarge { len: 0xFF_FFFF, .. })));
}

#[test]
fn too_many_chunk_streams() {
    let mut dec = ChunkDecoder::new(limits());
    let mut bytes = Vec::new();
    for csid in 2..20 {
        bytes.extend(chunk(0, csid, (0, 1, 8, 1), None, b"a"));
    }
    assert_eq!(decode_all(&mut dec, &bytes).unwrap_err(), RtmpError::TooManyChunkStreams(8));
}

#[test]
fn reassembly_budget_across_streams() {
    let mut dec = ChunkDecoder::new(limits());
    let big = 1 << 20;
    let mut bytes = Vec::new();
    for csid in 3..6 {
        bytes.extend(chunk(0, csid, (0, big, 9, 1), None, &[0; 128]));
    }
    assert!(matches!(decode_all(&mut dec, &bytes), Err(RtmpError::ReassemblyBudget(_))));
}

#[test]
fn abort_drops_partial_message() {
    let mut dec = ChunkDecoder::new(limits());
    let mut bytes = chunk(0, 4, (0, 200, 9, 1), None, &[1; 128]);
    assert!(decode_all(&mut dec, &bytes).unwrap().is_empty());
    assert_eq!(dec.buffered(), 128);
    dec.abort(4);
    assert_eq!(dec.buffered(), 0);
    bytes = chunk(0, 4, (0, 1, 9, 1), None, b"z");
    assert_eq!(&decode_all(&mut dec, &bytes).unwrap()[0].payload[..], b"z");
}

#[test]
fn new_header_inside_unfinished_message_is_an_error() {
    let mut dec = ChunkDecoder::new(limits());
    let mut bytes = chunk(0, 4, (0, 200, 9, 1), None, &[1; 128]);
    bytes.extend(chunk(1, 4, (0, 10, 9, 1), None, &[1; 10]));
    assert!(matches!(decode_all(&mut dec, &bytes), Err(RtmpError::Protocol(_))));
}
