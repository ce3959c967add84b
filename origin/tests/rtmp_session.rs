//! The RTMP server session driven by a scripted publisher: handshake, connect, stream
//! creation, publish, metadata and media across chunk sizes and header types, and the
//! replies each client expects.

mod rtmp_client;

use bytes::Bytes;
use rtmp_client::{Harness, chunk, code, n, s};
use skyrelay_origin::rtmp::amf0::{self, Amf0Value};
use skyrelay_origin::rtmp::message;
use skyrelay_origin::rtmp::{RtmpError, SessionConfig, SessionEvent};

mod rtmp_session {
    use super::*;

    fn cfg() -> SessionConfig {
        SessionConfig::default()
    }

    #[test]
    fn connect_and_publish_replies_in_order() {
        let mut h = Harness::new(cfg());
        h.client.connect("live");
        h.pump_by(100).unwrap();
        let types: Vec<u8> = h.replies.iter().map(|m| m.type_id).collect();
        assert_eq!(types, vec![5, 6, 1, 4, 20], "WAS, SPB, SCS, StreamBegin, _result");
        assert_eq!(&h.replies[2].payload[..], &4096u32.to_be_bytes());
        let cmds = h.commands();
        assert_eq!(cmds[0].0, "_result");
        assert_eq!(cmds[0].1[0], n(1.0));
        assert_eq!(cmds[0].1[1].get("fmsVer").and_then(Amf0Value::as_str), Some("FMS/3,0,1,123"));
        assert_eq!(code(&cmds[0].1), Some("NetConnection.Connect.Success"));
        assert_eq!(
            h.events,
            vec![SessionEvent::Connected {
                app: "live".into(),
                tc_url: Some("rtmp://127.0.0.1:1935/live".into()),
            }]
        );

        h.replies.clear();
        h.events.clear();
        h.client.publish("sk_live_abc");
        h.pump().unwrap();
        let cmds = h.commands();
        let summary: Vec<(&str, Option<f64>)> =
            cmds.iter().map(|(name, v)| (name.as_str(), v[0].as_number())).collect();
        assert_eq!(
            summary,
            vec![
                ("_result", Some(2.0)),
                ("onFCPublish", Some(0.0)),
                ("_result", Some(3.0)),
                ("_result", Some(4.0)),
            ]
        );
        assert_eq!(cmds[3].1[2], n(1.0), "createStream returns stream 1");
        assert_eq!(
            h.events,
            vec![SessionEvent::PublishRequested {
                app: "live".into(),
                stream_key: "sk_live_abc".into(),
                stream_id: 1,
            }]
        );
        // Media before the publish is accepted is dropped.
        h.client.message(6, 0, message::VIDEO, 1, b"early");
        h.pump().unwrap();
        assert_eq!(h.events.len(), 1);
        assert_eq!(h.session.stats().dropped_messages, 1);

        h.replies.clear();
        h.session.accept_publish();
        h.drain();
        assert_eq!(h.replies[0].type_id, message::USER_CONTROL);
        assert_eq!(&h.replies[0].payload[..], &[0, 0, 0, 0, 0, 1]);
        let cmds = h.commands();
        assert_eq!(cmds[0].0, "onStatus");
        assert_eq!(code(&cmds[0].1), Some("NetStream.Publish.Start"));
        assert_eq!(h.replies[1].stream_id, 1);
    }

    /// Video and audio with several chunk sizes, type 0/1/2/3 headers, continuation chunks
    /// and extended timestamps.
    #[test]
    fn media_script_across_chunk_sizes() {
        let mut h = Harness::publishing(cfg(), "key");
        let mut expected = Vec::new();
        let frame = |i: u32, len: usize| -> Vec<u8> { (0..len).map(|j| (i as usize + j) as u8).collect() };
        // Metadata as ffmpeg sends it.
        let meta = amf0::encode_all(&[
            s("@setDataFrame"),
            s("onMetaData"),
            Amf0Value::EcmaArray(vec![
                ("width".into(), n(640.0)),
                ("height".into(), n(360.0)),
                ("framerate".into(), n(30.0)),
                ("videocodecid".into(), n(7.0)),
                ("encoder".into(), s("Lavf61")),
            ]),
        ]);
        h.client.message(4, 0, message::DATA_AMF0, 1, &meta);
        // Repeated identical metadata (GStreamer's flvmux does this) is reported once.
        h.client.message(4, 0, message::DATA_AMF0, 1, &meta);
        let mut ts = 0u32;
        for (round, size) in [128u32, 4096, 1, 65_536, 60].into_iter().enumerate() {
            h.client.set_chunk_size(size);
            for i in 0..5u32 {
                let v = frame(i, 100 + 1500 * i as usize);
                h.client.message(6, ts, message::VIDEO, 1, &v);
                expected.push(("v", ts, v));
                let a = frame(i + 7, 200);
                h.client.message(4, ts + 10, message::AUDIO, 1, &a);
                expected.push(("a", ts + 10, a));
                ts += 33;
            }
            // Pump with a different piece size every round.
            h.pump_by([1, 7, 1000, 4096, 65_536][round]).unwrap();
        }
        // Past 0xFFFFFF: extended timestamps on type 0 and on every continuation chunk.
        h.client.set_chunk_size(128);
        for ts in [0x00FF_FFFE, 0x00FF_FFFF, 0x0100_0010, u32::MAX - 3] {
            let v = frame(ts, 1000);
            h.client.message(6, ts, message::VIDEO, 1, &v);
            expected.push(("v", ts, v));
        }
        // Hand-built header types on chunk stream 7: type 0, type 2 (delta), type 3 (new
        // message, same delta), type 1 (new length), type 2 with an extended delta, then a type
        // 3 continuation that repeats the extended field.
        let base = 5000;
        let mut raw = chunk(0, 7, (base, 3, message::AUDIO, 1), None, b"aa0");
        raw.extend(chunk(2, 7, (21, 0, 0, 0), None, b"aa1"));
        raw.extend(chunk(3, 7, (0, 0, 0, 0), None, b"aa2"));
        raw.extend(chunk(1, 7, (22, 4, message::AUDIO, 0), None, b"aaa3"));
        let long: Vec<u8> = (0..200u8).collect();
        raw.extend(chunk(1, 7, (0xFF_FFFF, 200, message::AUDIO, 0), Some(0x0100_0000), &long[..128]));
        raw.extend(chunk(3, 7, (0, 0, 0, 0), Some(0x0100_0000), &long[128..]));
        h.client.raw(&raw);
        expected.push(("a", base, b"aa0".to_vec()));
        expected.push(("a", base + 21, b"aa1".to_vec()));
        expected.push(("a", base + 42, b"aa2".to_vec()));
        expected.push(("a", base + 64, b"aaa3".to_vec()));
        expected.push(("a", base + 64 + 0x0100_0000, long.clone()));
        h.pump_by(3).unwrap();

        let SessionEvent::Metadata(m) = &h.events[0] else {
            panic!("first event is metadata: {:?}", h.events[0]);
        };
        assert_eq!((m.width, m.height, m.framerate), (Some(640.0), Some(360.0), Some(30.0)));
        assert_eq!(m.encoder.as_deref(), Some("Lavf61"));
        let got: Vec<(&str, u32, Vec<u8>)> = h.events[1..]
            .iter()
            .map(|e| match e {
                SessionEvent::Video { timestamp, data } => ("v", *timestamp, data.to_vec()),
                SessionEvent::Audio { timestamp, data } => ("a", *timestamp, data.to_vec()),
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(got.len(), expected.len());
        assert_eq!(got, expected);
        let st = h.session.stats();
        assert_eq!(st.video_messages + st.audio_messages, expected.len() as u64);
        assert!(st.buffered_bytes < 300, "{st:?}");
    }

    #[test]
    fn acknowledgements_follow_the_peer_window() {
        let mut h = Harness::publishing(cfg(), "key");
        h.client.message(2, 0, message::WINDOW_ACK_SIZE, 0, &10_000u32.to_be_bytes());
        h.client.set_chunk_size(4096);
        for i in 0..10 {
            h.client.message(6, i * 40, message::VIDEO, 1, &[1; 3000]);
        }
        h.pump_by(1000).unwrap();
        let acks: Vec<u32> = h
            .replies
            .iter()
            .filter(|m| m.type_id == message::ACKNOWLEDGEMENT)
            .map(|m| u32::from_be_bytes([m.payload[0], m.payload[1], m.payload[2], m.payload[3]]))
            .collect();
        assert!(acks.len() >= 2, "{acks:?}");
        assert!(acks.windows(2).all(|w| w[1] - w[0] >= 10_000), "{acks:?}");
        assert!(u64::from(*acks.last().unwrap()) <= h.session.stats().bytes_in);
    }

    #[test]
    fn ping_request_gets_a_response() {
        let mut h = Harness::publishing(cfg(), "key");
        h.client.message(2, 0, message::USER_CONTROL, 0, &[0, 6, 0, 0, 0x12, 0x34]);
        h.pump().unwrap();
        assert_eq!(h.replies.len(), 1);
        assert_eq!(&h.replies[0].payload[..], &[0, 7, 0, 0, 0x12, 0x34]);
    }

    #[test]
    fn amf3_wrapped_commands_and_data() {
        let mut h = Harness::new(cfg());
        h.client.connect("live");
        h.client.command(0, &[s("createStream"), n(2.0), Amf0Value::Null]);
        let mut p = vec![0u8];
        p.extend_from_slice(&amf0::encode_all(&[s("publish"), n(0.0), Amf0Value::Null, s("k"), s("live")]));
        h.client.message(8, 0, message::COMMAND_AMF3, 1, &p);
        h.pump().unwrap();
        assert!(matches!(h.events.last(), Some(SessionEvent::PublishRequested { .. })));
        h.session.accept_publish();
        let mut p = vec![0u8];
        p.extend_from_slice(&amf0::encode_all(&[s("onMetaData"), Amf0Value::object([("width", n(1280.0))])]));
        h.client.message(4, 0, message::DATA_AMF3, 1, &p);
        h.pump().unwrap();
        assert!(matches!(h.events.last(), Some(SessionEvent::Metadata(m)) if m.width == Some(1280.0)));
    }

    #[test]
    fn unpublish_and_delete_stream() {
        let mut h = Harness::publishing(cfg(), "key");
        h.client.command(0, &[s("FCUnpublish"), n(6.0), Amf0Value::Null, s("key")]);
        h.client.command(0, &[s("deleteStream"), n(7.0), Amf0Value::Null, n(1.0)]);
        h.pump().unwrap();
        assert_eq!(h.events, vec![SessionEvent::Unpublished]);
        let cmds = h.commands();
        assert_eq!(cmds[0].0, "onStatus");
        assert_eq!(code(&cmds[0].1), Some("NetStream.Unpublish.Success"));
        // Media after unpublish is dropped; a new publish on a new stream works.
        h.client.message(6, 0, message::VIDEO, 1, b"late");
        h.client.command(0, &[s("createStream"), n(8.0), Amf0Value::Null]);
        h.client.command(2, &[s("publish"), n(0.0), Amf0Value::Null, s("key2")]);
        h.pump().unwrap();
        assert!(matches!(h.events.last(), Some(SessionEvent::PublishRequested { stream_id: 2, .. })));

        // deleteStream alone (ffmpeg's order) also ends the publish.
        let mut h = Harness::publishing(cfg(), "key");
        h.client.command(0, &[s("deleteStream"), n(6.0), Amf0Value::Null, n(1.0)]);
        h.pump().unwrap();
        assert_eq!(h.events, vec![SessionEvent::Unpublished]);
    }

    #[test]
    fn play_is_refused_with_a_clear_status() {
        let mut h = Harness::new(cfg());
        h.client.connect("live");
        h.client.command(0, &[s("createStream"), n(2.0), Amf0Value::Null]);
        h.client.command(1, &[s("play"), n(0.0), Amf0Value::Null, s("chan")]);
        h.pump().unwrap();
        assert_eq!(h.events.last(), Some(&SessionEvent::PlayRefused { stream: "chan".into() }));
        let (name, values) = h.commands().pop().unwrap();
        assert_eq!(name, "onStatus");
        assert_eq!(code(&values), Some("NetStream.Play.Failed"));
        let desc = values[2].get("description").and_then(Amf0Value::as_str).unwrap();
        assert!(desc.contains("ingest"), "{desc}");
    }

    #[test]
    fn unknown_command_with_transaction_gets_error() {
        let mut h = Harness::new(cfg());
        h.client.connect("live");
        h.client.command(0, &[s("getStreamLength"), n(9.0), Amf0Value::Null, s("x")]);
        h.client.command(0, &[s("someNotification"), n(0.0), Amf0Value::Null]);
        h.pump().unwrap();
        let cmds = h.commands();
        assert_eq!(cmds.len(), 2, "{cmds:?}");
        assert_eq!(cmds[1].0, "_error");
        assert_eq!(cmds[1].1[0], n(9.0));
    }

    #[test]
    fn rejected_publish_closes_the_session() {
        let mut h = Harness::new(cfg());
        h.client.connect("live");
        h.client.publish("wrong-key");
        h.pump().unwrap();
        h.replies.clear();
        h.session.reject_publish("NetStream.Publish.BadName", "unknown stream key");
        assert!(h.session.is_closing());
        h.drain();
        let cmds = h.commands();
        assert_eq!(cmds.len(), 1);
        assert_eq!(cmds[0].1[2].get("level").and_then(Amf0Value::as_str), Some("error"));
        assert_eq!(code(&cmds[0].1), Some("NetStream.Publish.BadName"));
        assert_eq!(h.session.handle_input(b"more"), Err(RtmpError::Closed));
    }

    #[test]
    fn second_publish_on_one_connection_is_refused() {
        let mut h = Harness::publishing(cfg(), "key");
        h.client.command(1, &[s("publish"), n(0.0), Amf0Value::Null, s("other")]);
        h.pump().unwrap();
        assert!(h.events.is_empty());
        assert_eq!(code(&h.commands()[0].1), Some("NetStream.Publish.BadConnection"));
    }

    #[test]
    fn whole_script_in_one_write_equals_byte_by_byte() {
        let run = |piece: usize| {
            let mut h = Harness::new(cfg());
            h.client.connect("live");
            h.client.publish("key");
            h.pump_by(piece).unwrap();
            h.session.accept_publish();
            h.client.message(6, 0, message::VIDEO, 1, &[7; 5000]);
            h.pump_by(piece).unwrap();
            (h.events, h.replies.len())
        };
        assert_eq!(run(1), run(usize::MAX));
        let (events, _) = run(1);
        assert!(matches!(&events[2], SessionEvent::Video { data, .. } if data[..] == [7u8; 5000][..]));
    }

    #[test]
    fn aggregate_messages_are_split() {
        let mut h = Harness::publishing(cfg(), "key");
        let mut body = Vec::new();
        for (t, ts, data) in [(9u8, 100u32, &b"vv"[..]), (8, 120, &b"aaa"[..])] {
            body.push(t);
            body.extend_from_slice(&(data.len() as u32).to_be_bytes()[1..]);
            body.extend_from_slice(&ts.to_be_bytes()[1..]);
            body.push((ts >> 24) as u8);
            body.extend_from_slice(&[0, 0, 0]);
            body.extend_from_slice(data);
            body.extend_from_slice(&(11 + data.len() as u32).to_be_bytes());
        }
        h.client.message(6, 3000, message::AGGREGATE, 1, &body);
        h.pump().unwrap();
        assert_eq!(
            h.events,
            vec![
                SessionEvent::Video { timestamp: 3000, data: Bytes::from_static(b"vv") },
                SessionEvent::Audio { timestamp: 3020, data: Bytes::from_static(b"aaa") },
            ]
        );
    }
}
