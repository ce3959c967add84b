use bytes::{BufMut, Bytes, BytesMut};
use proptest::prelude::*;

use super::*;
use crate::media::RenditionInfo;

fn info() -> RenditionInfo {
    RenditionInfo {
        name: "source".into(),
        codecs: "avc1.64001f,mp4a.40.2".into(),
        bandwidth: 1_500_000,
        resolution: Some((640, 360)),
        frame_rate: Some(29.97),
        has_video: true,
        has_audio: true,
    }
}

fn all_messages() -> Vec<ControlMessage> {
    let init = InitSegment { id: 3, info: info(), bytes: Bytes::from_static(b"ftypmoov") };
    let bare = RenditionInfo { resolution: None, frame_rate: None, has_video: false, ..info() };
    vec![
        ControlMessage::Subscribe {
            id: 1,
            channel: "c".into(),
            rendition: "source".into(),
            start: Start::Live { back: 3 },
        },
        ControlMessage::Subscribe {
            id: 1 << 40,
            channel: "ü".into(),
            rendition: String::new(),
            start: Start::FromMsn(77),
        },
        ControlMessage::SubscribeOk {
            id: 1,
            init: Some(init.clone()),
            start_msn: 9,
            latest: Some(Position { msn: 12, part: 3 }),
            target_duration: 2.0,
            part_target: 0.333,
        },
        ControlMessage::SubscribeOk {
            id: 2,
            init: None,
            start_msn: 0,
            latest: None,
            target_duration: 0.0,
            part_target: 0.0,
        },
        ControlMessage::Error { id: 5, code: ErrorCode::NotFound, message: "no such channel".into() },
        ControlMessage::Unsubscribe { id: 5 },
        ControlMessage::Fetch { id: 6, subscription: 1, msn: 10 },
        ControlMessage::Announce { subscription: 1, init: InitSegment { info: bare, ..init } },
        ControlMessage::Ended { subscription: 1, last: Some(Position { msn: 13, part: 2 }) },
        ControlMessage::Ended { subscription: 1, last: None },
        ControlMessage::Gap {
            subscription: 1,
            first: Position { msn: 4, part: 1 },
            last: Position { msn: 5, part: 0 },
        },
    ]
}

#[test]
fn control_round_trip_whole_and_byte_by_byte() {
    for msg in all_messages() {
        let mut enc = BytesMut::new();
        encode_control(&msg, &mut enc).unwrap();
        let mut whole = enc.clone();
        assert_eq!(decode_control(&mut whole).unwrap(), Some(msg.clone()));
        assert!(whole.is_empty());

        let mut buf = BytesMut::new();
        let mut out = None;
        for b in enc.iter() {
            assert!(out.is_none(), "decoded before the last byte");
            buf.put_u8(*b);
            out = decode_control(&mut buf).unwrap();
        }
        assert_eq!(out, Some(msg));
    }
}

#[test]
fn error_codes_round_trip() {
    for c in [
        ErrorCode::NotFound,
        ErrorCode::Unauthorized,
        ErrorCode::BadRequest,
        ErrorCode::Overloaded,
        ErrorCode::Internal,
        ErrorCode::NotReady,
        ErrorCode::GoingAway,
    ] {
        assert_eq!(ErrorCode::from_wire(c.to_wire()), c);
    }
    assert_eq!(ErrorCode::from_wire(999), ErrorCode::Internal);
}

#[test]
fn oversized_frame_rejected_from_header() {
    let mut buf = BytesMut::new();
    buf.put_u8(0x01);
    write_varint(513, &mut buf);
    let err = decode_control(&mut buf).unwrap_err();
    assert!(matches!(err, CodecError::TooLarge { ty: 1, len: 513, .. }));
    assert_eq!(err.close_code(), CloseCode::FrameTooLarge);

    let mut buf = BytesMut::new();
    buf.put_u8(0x11);
    write_varint(MAX_CHUNK as u64 + 1, &mut buf);
    assert!(matches!(StreamDecoder::new().decode(&mut buf), Err(CodecError::TooLarge { .. })));
}

#[test]
fn encoder_refuses_oversized_fields() {
    let long = "x".repeat(MAX_CHANNEL + 1);
    let msg =
        ControlMessage::Subscribe { id: 1, channel: long, rendition: "r".into(), start: Start::FromMsn(0) };
    let mut out = BytesMut::new();
    assert!(encode_control(&msg, &mut out).is_err());
    assert!(out.is_empty());
    assert!(encode_chunk_header(MAX_CHUNK + 1, &mut out).is_err());
}

#[test]
fn wrong_type_and_trailing_bytes_are_errors() {
    let mut buf = BytesMut::from(&[0x10u8, 0][..]);
    assert_eq!(decode_control(&mut buf), Err(CodecError::UnknownType(0x10)));
    let mut buf = BytesMut::from(&[0x04u8, 2, 1, 0][..]);
    assert!(matches!(decode_control(&mut buf), Err(CodecError::Malformed(_))));
    let mut buf = BytesMut::from(&[0x01u8, 0][..]);
    assert_eq!(StreamDecoder::new().decode(&mut buf), Err(CodecError::UnknownType(1)));
}

fn header(msn: u64, part: u32) -> StreamFrame {
    StreamFrame::PartHeader(PartHeader {
        subscription: 7,
        msn,
        part,
        independent: part == 0,
        origin_ms: 1_700_000_000_000,
        init_id: 2,
    })
}

fn trailer(ends_segment: bool) -> StreamFrame {
    StreamFrame::PartTrailer(PartTrailer { duration: 0.3336, ends_segment })
}

fn decode_all(frames: &[StreamFrame]) -> Result<Vec<StreamFrame>, CodecError> {
    let mut buf = BytesMut::new();
    for f in frames {
        encode_stream_frame(f, &mut buf).unwrap();
    }
    let mut d = StreamDecoder::new();
    let mut out = Vec::new();
    while let Some(f) = d.decode(&mut buf)? {
        out.push(f);
    }
    d.finish()?;
    Ok(out)
}

#[test]
fn part_stream_round_trip() {
    let frames = vec![
        header(5, 1),
        StreamFrame::Chunk(Bytes::from_static(b"moofmdat1")),
        StreamFrame::Chunk(Bytes::new()),
        StreamFrame::Chunk(Bytes::from(vec![9u8; 100_000])),
        trailer(true),
    ];
    assert_eq!(decode_all(&frames).unwrap(), frames);
}

#[test]
fn fetch_stream_round_trip_and_grammar() {
    let fh = |parts| StreamFrame::FetchHeader(FetchHeader { request: 9, msn: 5, parts });
    let c = StreamFrame::Chunk(Bytes::from_static(b"x"));
    let ok = vec![fh(2), header(5, 0), c.clone(), trailer(false), header(5, 1), c.clone(), trailer(true)];
    assert_eq!(decode_all(&ok).unwrap(), ok);

    let bad: Vec<Vec<StreamFrame>> = vec![
        vec![fh(2), header(5, 0), trailer(false), header(5, 2), trailer(true)],
        vec![fh(1), header(5, 0), trailer(false)],
        vec![fh(2), header(5, 0), trailer(true)],
        vec![fh(1), header(6, 0), trailer(true)],
        vec![fh(0)],
        vec![header(5, 0), trailer(true), c.clone()],
        vec![c.clone()],
        vec![header(5, 0), header(5, 0)],
        vec![header(5, 0), c],
    ];
    for frames in bad {
        assert!(decode_all(&frames).is_err(), "{frames:?}");
    }
}

#[test]
fn varint_forms() {
    for v in [0u64, 63, 64, 16383, 16384, (1 << 30) - 1, 1 << 30, wire::VARINT_MAX] {
        let mut b = BytesMut::new();
        write_varint(v, &mut b);
        assert_eq!(read_varint(&b), Some((v, b.len())));
        assert_eq!(read_varint(&b[..b.len() - 1]), None);
    }
    // A non-shortest form is accepted.
    assert_eq!(read_varint(&[0x40, 0x05]), Some((5, 2)));
}

fn arb_info() -> impl Strategy<Value = RenditionInfo> {
    (
        "[a-z]{0,10}",
        ".{0,20}",
        0u64..(1 << 40),
        proptest::option::of((any::<u32>(), any::<u32>())),
        proptest::option::of(0.0f64..240.0),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(name, codecs, bandwidth, resolution, frame_rate, has_video, has_audio)| {
            RenditionInfo { name, codecs, bandwidth, resolution, frame_rate, has_video, has_audio }
        })
}

fn arb_pos() -> impl Strategy<Value = Position> {
    (0u64..(1 << 50), any::<u32>()).prop_map(|(msn, part)| Position { msn, part })
}

fn arb_init() -> impl Strategy<Value = InitSegment> {
    (any::<u32>(), arb_info(), proptest::collection::vec(any::<u8>(), 0..64))
        .prop_map(|(id, info, b)| InitSegment { id, info, bytes: Bytes::from(b) })
}

fn arb_message() -> impl Strategy<Value = ControlMessage> {
    let id = 0u64..(1 << 62);
    prop_oneof![
        (id.clone(), "[a-z0-9_-]{0,40}", "[a-z0-9]{0,20}", any::<bool>(), 0u64..(1 << 62)).prop_map(
            |(id, channel, rendition, live, n)| ControlMessage::Subscribe {
                id,
                channel,
                rendition,
                start: if live { Start::Live { back: n } } else { Start::FromMsn(n) },
            }
        ),
        (
            id.clone(),
            proptest::option::of(arb_init()),
            0u64..(1 << 62),
            proptest::option::of(arb_pos()),
            0.0f64..100.0,
            0.0f64..10.0
        )
            .prop_map(|(id, init, start_msn, latest, target_duration, part_target)| {
                ControlMessage::SubscribeOk { id, init, start_msn, latest, target_duration, part_target }
            }),
        (id.clone(), 1u64..8, ".{0,50}").prop_map(|(id, c, message)| ControlMessage::Error {
            id,
            code: ErrorCode::from_wire(c),
            message
        }),
        id.clone().prop_map(|id| ControlMessage::Unsubscribe { id }),
        (id.clone(), id.clone(), 0u64..(1 << 62)).prop_map(|(id, subscription, msn)| ControlMessage::Fetch {
            id,
            subscription,
            msn
        }),
        (id.clone(), arb_init())
            .prop_map(|(subscription, init)| ControlMessage::Announce { subscription, init }),
        (id.clone(), proptest::option::of(arb_pos()))
            .prop_map(|(subscription, last)| ControlMessage::Ended { subscription, last }),
        (id, arb_pos(), arb_pos()).prop_map(|(subscription, first, last)| ControlMessage::Gap {
            subscription,
            first,
            last
        }),
    ]
}

proptest! {
    #[test]
    fn random_control_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..600)) {
        let mut buf = BytesMut::from(&data[..]);
        for _ in 0..64 {
            match decode_control(&mut buf) {
                Ok(Some(_)) => {}
                _ => break,
            }
        }
    }

    #[test]
    fn random_stream_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..600)) {
        let mut buf = BytesMut::from(&data[..]);
        let mut d = StreamDecoder::new();
        for _ in 0..64 {
            match d.decode(&mut buf) {
                Ok(Some(_)) => {}
                _ => break,
            }
        }
        let _ = d.finish();
    }

    #[test]
    fn random_frames_with_valid_types_never_panic(t in 0u8..0x20, body in proptest::collection::vec(any::<u8>(), 0..80)) {
        let mut buf = BytesMut::new();
        buf.put_u8(t);
        write_varint(body.len() as u64, &mut buf);
        buf.put_slice(&body);
        let _ = decode_control(&mut buf.clone());
        let _ = StreamDecoder::new().decode(&mut buf);
    }

    #[test]
    fn control_round_trip(msg in arb_message()) {
        let mut enc = BytesMut::new();
        encode_control(&msg, &mut enc).unwrap();
        prop_assert_eq!(decode_control(&mut enc).unwrap(), Some(msg));
        prop_assert!(enc.is_empty());
    }
}
