//! Property tests: random and mutated input into the RTMP session, the chunk decoder and
//! the AMF0 decoder never panics, and what the session holds stays bounded.

mod rtmp_client;

use bytes::BytesMut;
use proptest::prelude::*;
use rtmp_client::Harness;
use skyrelay_origin::rtmp::amf0::{self, Amf0Value};
use skyrelay_origin::rtmp::chunk::{ChunkDecoder, DecoderLimits};
use skyrelay_origin::rtmp::message;
use skyrelay_origin::rtmp::session::MAX_PENDING_OUTPUT;
use skyrelay_origin::rtmp::writer::ChunkEncoder;
use skyrelay_origin::rtmp::{ServerSession, SessionConfig};

mod rtmp_proptest {
    use super::*;

    fn small_cfg() -> SessionConfig {
        SessionConfig {
            max_chunk_size: 4096,
            max_message_size: 64 * 1024,
            max_chunk_streams: 8,
            ..SessionConfig::default()
        }
    }

    /// What a session may hold: one incomplete chunk, partial messages within the
    /// reassembly budget, queued output.
    fn bound(cfg: &SessionConfig) -> usize {
        cfg.max_chunk_size as usize + 18 + 2 * cfg.max_message_size as usize + MAX_PENDING_OUTPUT
    }

    /// A full publish script with metadata and media, as one byte string.
    fn script() -> Vec<u8> {
        let mut h = Harness::new(small_cfg());
        h.client.connect("live");
        h.client.publish("key");
        h.client.set_chunk_size(100);
        let meta = amf0::encode_all(&[
            Amf0Value::string("@setDataFrame"),
            Amf0Value::string("onMetaData"),
            Amf0Value::EcmaArray(vec![("width".into(), Amf0Value::Number(640.0))]),
        ]);
        h.client.message(4, 0, message::DATA_AMF0, 1, &meta);
        for i in 0..6u32 {
            h.client.message(6, i * 0x00A0_0000, message::VIDEO, 1, &vec![i as u8; 250]);
            h.client.message(4, i * 20, message::AUDIO, 1, &[0xaf, 1, 2, 3]);
        }
        h.client.take()
    }

    fn feed(cfg: SessionConfig, data: &[u8], piece: usize) {
        let limit = bound(&cfg);
        let mut session = ServerSession::new(cfg);
        for part in data.chunks(piece.max(1)) {
            let r = session.handle_input(part);
            // Accept any publish so media paths are exercised too.
            while let Some(ev) = session.poll_event() {
                if matches!(ev, skyrelay_origin::rtmp::SessionEvent::PublishRequested { .. }) {
                    session.accept_publish();
                }
            }
            assert!(session.stats().buffered_bytes <= limit);
            let _ = session.poll_output();
            if r.is_err() {
                assert!(session.is_closing());
                break;
            }
        }
    }

    #[derive(Debug, Clone)]
    enum Mutation {
        Flip(usize, u8),
        Insert(usize, Vec<u8>),
        Delete(usize, usize),
    }

    fn mutation() -> impl Strategy<Value = Mutation> {
        prop_oneof![
            (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Flip(i, b)),
            (any::<usize>(), proptest::collection::vec(any::<u8>(), 1..16))
                .prop_map(|(i, v)| Mutation::Insert(i, v)),
            (any::<usize>(), 1usize..32).prop_map(|(i, n)| Mutation::Delete(i, n)),
        ]
    }

    fn apply(mut data: Vec<u8>, muts: &[Mutation]) -> Vec<u8> {
        for m in muts {
            if data.is_empty() {
                break;
            }
            match m {
                Mutation::Flip(i, b) => {
                    let i = i % data.len();
                    data[i] ^= b | 1;
                }
                Mutation::Insert(i, v) => {
                    let i = i % data.len();
                    data.splice(i..i, v.iter().copied());
                }
                Mutation::Delete(i, n) => {
                    let i = i % data.len();
                    let end = (i + n).min(data.len());
                    data.drain(i..end);
                }
            }
        }
        data
    }

    fn amf_value() -> impl Strategy<Value = Amf0Value> {
        let leaf = prop_oneof![
            any::<f64>().prop_filter("NaN breaks equality", |f| !f.is_nan()).prop_map(Amf0Value::Number),
            any::<bool>().prop_map(Amf0Value::Boolean),
            ".{0,12}".prop_map(Amf0Value::String),
            Just(Amf0Value::Null),
            Just(Amf0Value::Undefined),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(("[a-z]{1,6}", inner.clone()), 0..6).prop_map(Amf0Value::Object),
                proptest::collection::vec(("[a-z]{1,6}", inner.clone()), 0..6).prop_map(Amf0Value::EcmaArray),
                proptest::collection::vec(inner, 0..6).prop_map(Amf0Value::StrictArray),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn session_survives_random_bytes(data in proptest::collection::vec(any::<u8>(), 0..4096), piece in 1usize..600) {
            feed(small_cfg(), &data, piece);
        }

        #[test]
        fn session_survives_random_chunks_after_handshake(data in proptest::collection::vec(any::<u8>(), 0..4096), piece in 1usize..600) {
            let mut input = rtmp_client::Client::new().take();
            input.extend_from_slice(&data);
            feed(small_cfg(), &input, piece);
        }

        #[test]
        fn session_survives_mutated_scripts(muts in proptest::collection::vec(mutation(), 1..6), piece in 1usize..2000) {
            let data = apply(script(), &muts);
            feed(small_cfg(), &data, piece);
        }

        #[test]
        fn chunk_decoder_survives_random_input(data in proptest::collection::vec(any::<u8>(), 0..8192)) {
            let mut dec = ChunkDecoder::new(DecoderLimits { max_chunk_size: 4096, max_message_size: 4096, max_chunk_streams: 4 });
            let mut buf = BytesMut::from(&data[..]);
            while let Ok(Some(_)) = dec.decode(&mut buf) {}
            prop_assert!(dec.buffered() <= 2 * 4096);
        }

        #[test]
        fn chunk_round_trip_any_size_any_split(
            msgs in proptest::collection::vec((2u32..400, any::<u32>(), 8u8..10, proptest::collection::vec(any::<u8>(), 0..3000)), 1..12),
            chunk_size in 1u32..5000,
            piece in 1usize..7000,
        ) {
            let mut enc = ChunkEncoder::new();
            enc.set_chunk_size(chunk_size);
            let mut wire = BytesMut::new();
            for (csid, ts, type_id, payload) in &msgs {
                enc.encode(*csid, *ts, *type_id, 1, payload, &mut wire);
            }
            let mut dec = ChunkDecoder::new(DecoderLimits { max_chunk_size: 5000, max_message_size: 4096, max_chunk_streams: 400 });
            dec.set_chunk_size(chunk_size).unwrap();
            let mut buf = BytesMut::new();
            let mut got = Vec::new();
            for part in wire.chunks(piece) {
                buf.extend_from_slice(part);
                while let Some(m) = dec.decode(&mut buf).unwrap() {
                    got.push((m.csid, m.timestamp, m.type_id, m.payload.to_vec()));
                }
            }
            prop_assert!(buf.is_empty());
            prop_assert_eq!(got, msgs);
        }

        #[test]
        fn amf0_decoder_survives_random_input(data in proptest::collection::vec(any::<u8>(), 0..2048), depth in 0usize..100) {
            let _ = amf0::decode_all(&data, depth);
        }

        #[test]
        fn amf0_round_trips_and_survives_mutation(values in proptest::collection::vec(amf_value(), 1..4), muts in proptest::collection::vec(mutation(), 0..4)) {
            let bytes = amf0::encode_all(&values);
            prop_assert_eq!(amf0::decode_all(&bytes, 16).unwrap(), values);
            let _ = amf0::decode_all(&apply(bytes.to_vec(), &muts), 16);
        }
    }

    #[test]
    fn unmutated_script_publishes() {
        let mut session = ServerSession::new(small_cfg());
        session.handle_input(&script()).unwrap();
        let mut media = 0;
        while let Some(ev) = session.poll_event() {
            match ev {
                skyrelay_origin::rtmp::SessionEvent::PublishRequested { .. } => session.accept_publish(),
                skyrelay_origin::rtmp::SessionEvent::Video { .. }
                | skyrelay_origin::rtmp::SessionEvent::Audio { .. } => media += 1,
                _ => {}
            }
        }
        // Media arrived in the same write as publish, before the accept: dropped.
        assert_eq!(media, 0);
        assert_eq!(session.stats().dropped_messages, 12);
    }
}
