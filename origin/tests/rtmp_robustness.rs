//! Hostile input to the RTMP server session: each case ends that session with an error of
//! the expected kind (or waits for more bytes), never panics and never buffers much.

mod rtmp_client;

use rtmp_client::{Harness, c0c1, chunk, n, s};
use skyrelay_origin::rtmp::amf0::{Amf0Value, AmfError};
use skyrelay_origin::rtmp::message;
use skyrelay_origin::rtmp::session::MAX_PENDING_EVENTS;
use skyrelay_origin::rtmp::{RtmpError, ServerSession, SessionConfig};

mod rtmp_robustness {
    use super::*;

    fn connected() -> Harness {
        let mut h = Harness::new(SessionConfig::default());
        h.client.connect("live");
        h.pump().unwrap();
        h
    }

    #[test]
    fn garbage_instead_of_a_handshake() {
        let mut session = ServerSession::new(SessionConfig::default());
        let err = session.handle_input(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap_err();
        assert_eq!(err, RtmpError::HandshakeVersion(b'G'));
        assert_eq!(err.kind(), "handshake");
        assert!(session.poll_output().is_none());
        assert!(session.is_closing());
        assert_eq!(session.handle_input(&c0c1()), Err(RtmpError::Closed));
    }

    #[test]
    fn garbage_after_the_handshake() {
        let mut h = Harness::new(SessionConfig::default());
        h.pump().unwrap();
        // A type-0 header on chunk stream 3 that announces 16 MiB: refused.
        let junk = [0x03u8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x14, 1, 2, 3, 4, 0xaa];
        let err = h.session.handle_input(&junk).unwrap_err();
        assert_eq!(err.kind(), "message_too_large");
    }

    #[test]
    fn truncated_handshake_waits_without_output() {
        let mut session = ServerSession::new(SessionConfig::default());
        session.handle_input(&c0c1()[..1000]).unwrap();
        assert!(session.poll_output().is_none());
        assert!(session.poll_event().is_none());
        assert_eq!(session.stats().buffered_bytes, 1000);
        // C0C1 complete, C2 truncated: S0S1S2 sent, nothing else happens.
        session.handle_input(&c0c1()[1000..]).unwrap();
        session.handle_input(&[0; 100]).unwrap();
        assert_eq!(session.poll_output().map(|b| b.len()), Some(3073));
        assert!(session.poll_event().is_none());
    }

    #[test]
    fn chunk_size_of_two_to_the_31_is_rejected() {
        let mut h = connected();
        h.client.message(2, 0, message::SET_CHUNK_SIZE, 0, &(1u32 << 31).to_be_bytes());
        let err = h.pump().unwrap_err();
        assert_eq!(err.kind(), "chunk_size");
        // Above the configured maximum too.
        let mut h = connected();
        h.client.message(2, 0, message::SET_CHUNK_SIZE, 0, &70_000u32.to_be_bytes());
        assert!(matches!(h.pump(), Err(RtmpError::ChunkSize { size: 70_000, .. })));
    }

    #[test]
    fn message_length_above_the_limit_fails_before_buffering() {
        let cfg = SessionConfig { max_message_size: 1 << 20, ..SessionConfig::default() };
        let mut h = Harness::new(cfg);
        h.client.connect("live");
        h.pump().unwrap();
        // Header only: 0xFFFFFF bytes announced.
        h.client.raw(&chunk(0, 6, (0, 0xFF_FFFF, message::VIDEO, 1), None, &[]));
        let err = h.pump().unwrap_err();
        assert_eq!(err, RtmpError::MessageTooLarge { len: 0xFF_FFFF, max: 1 << 20 });
        assert!(h.session.stats().buffered_bytes < 64);
    }

    #[test]
    fn absurd_amf_nesting_is_an_error() {
        let mut h = Harness::new(SessionConfig::default());
        // connect, 1.0, then 100 000 nested objects.
        let mut payload = vec![0x02, 0, 7];
        payload.extend_from_slice(b"connect");
        payload.extend_from_slice(&[0x00, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0]);
        for _ in 0..100_000 {
            payload.extend_from_slice(&[0x03, 0x00, 0x01, b'a']);
        }
        payload.push(0x05);
        h.client.message(3, 0, message::COMMAND_AMF0, 0, &payload);
        let err = h.pump().unwrap_err();
        assert_eq!(err, RtmpError::Amf(AmfError::TooDeep(16)));
        assert_eq!(err.kind(), "amf");
    }

    #[test]
    fn too_many_chunk_streams() {
        let mut h = connected();
        for csid in 10..100 {
            h.client.message(csid, 0, message::ACKNOWLEDGEMENT, 0, &[0, 0, 0, 1]);
        }
        assert_eq!(h.pump(), Err(RtmpError::TooManyChunkStreams(64)));
    }

    #[test]
    fn commands_before_connect_and_second_connect() {
        let mut h = Harness::new(SessionConfig::default());
        h.client.command(0, &[s("createStream"), n(2.0), Amf0Value::Null]);
        assert_eq!(h.pump().unwrap_err().kind(), "protocol");
        let mut h = connected();
        h.client.connect("again");
        assert_eq!(h.pump().unwrap_err().kind(), "protocol");
    }

    #[test]
    fn stream_creation_is_bounded() {
        let mut h = connected();
        for i in 0..20 {
            h.client.command(0, &[s("createStream"), n(f64::from(i + 2)), Amf0Value::Null]);
        }
        h.pump().unwrap();
        let errors = h.commands().iter().filter(|(name, _)| name == "_error").count();
        assert_eq!(errors, 12);
    }

    #[test]
    fn undrained_events_hit_the_backlog_limit() {
        let mut h = Harness::publishing(SessionConfig::default(), "key");
        for i in 0..=MAX_PENDING_EVENTS as u32 {
            h.client.message(4, i, message::AUDIO, 1, &[0xaf, 1, 2]);
        }
        let wire = h.client.take();
        let err = h.session.handle_input(&wire).unwrap_err();
        assert_eq!(err, RtmpError::Backlog("events"));
    }

    #[test]
    fn abort_message_and_zero_length_media() {
        let mut h = Harness::publishing(SessionConfig::default(), "key");
        h.client.raw(&chunk(0, 6, (0, 300, message::VIDEO, 1), None, &[1; 128]));
        h.client.message(2, 0, message::ABORT, 0, &6u32.to_be_bytes());
        h.client.message(6, 0, message::VIDEO, 1, &[]);
        h.client.message(6, 0, message::VIDEO, 1, &[9]);
        h.pump().unwrap();
        assert_eq!(h.events.len(), 1);
        assert_eq!(h.session.stats().dropped_messages, 1);
    }
}
