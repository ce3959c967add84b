//! Malformed frames from a raw QUIC peer close only that connection, with the protocol's
//! error code; the server keeps serving a well-behaved subscriber. Also drives FETCH by
//! hand and checks the fetch stream's bytes.

mod relay_support;

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{BufMut, BytesMut};
use relay_support::*;
use skyrelay_common::relay::client::RelayClientConfig;
use skyrelay_common::relay::codec::{
    CloseCode, ControlMessage, Start, StreamDecoder, StreamFrame, decode_control, encode_control,
    write_varint,
};
use skyrelay_common::relay::tls;

/// A raw, correctly authenticated QUIC peer.
async fn raw_peer(pki: &Pki, addr: SocketAddr) -> (quinn::Endpoint, quinn::Connection) {
    let mut cc = tls::client_config(&pki.client).unwrap();
    cc.transport_config(Arc::new(RelayClientConfig::new(addr, "relay.test").transport()));
    let ep = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    let conn = ep.connect_with(cc, addr, "relay.test").unwrap().await.unwrap();
    (ep, conn)
}

/// Sends `bytes` on a new control stream and returns the close code the server used.
async fn close_code_for(pki: &Pki, addr: SocketAddr, bytes: &[u8]) -> u64 {
    let (_ep, conn) = raw_peer(pki, addr).await;
    let (mut send, _recv) = conn.open_bi().await.unwrap();
    send.write_all(bytes).await.unwrap();
    let reason = tokio::time::timeout(DEADLINE, conn.closed()).await.expect("server did not close");
    match reason {
        quinn::ConnectionError::ApplicationClosed(c) => c.error_code.into_inner(),
        other => panic!("unexpected close: {other}"),
    }
}

fn encode(msg: &ControlMessage) -> BytesMut {
    let mut b = BytesMut::new();
    encode_control(msg, &mut b).unwrap();
    b
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_malformed_frames_close_only_that_connection() {
    let pki = pki();
    let origin = hub();
    let feed = Feeder::new(&origin, "ch");
    feed.segment(0, 2);
    let server = TestServer::start(origin.clone(), &pki.server, None);

    let edge = hub();
    let (client, _) = client(&pki, server.addr, edge.clone());
    let sub = client.subscribe("ch", "source").await.unwrap();
    wait_window(sub.rendition(), "segment 0", |w| w.segment(0)).await;

    // Unknown frame type.
    assert_eq!(close_code_for(&pki, server.addr, &[0x7f, 0x00]).await, CloseCode::ProtocolViolation as u64);
    // A SUBSCRIBE longer than its maximum, rejected from its header.
    let mut big = BytesMut::new();
    big.put_u8(0x01);
    write_varint(1 << 20, &mut big);
    assert_eq!(close_code_for(&pki, server.addr, &big).await, CloseCode::FrameTooLarge as u64);
    // Bad UTF-8 in the channel name.
    assert_eq!(
        close_code_for(&pki, server.addr, &[0x01, 7, 1, 1, 0xff, 1, b'y', 0, 0]).await,
        CloseCode::ProtocolViolation as u64
    );
    // A publisher-side message sent by a subscriber.
    let wrong = encode(&ControlMessage::Ended { subscription: 1, last: None });
    assert_eq!(close_code_for(&pki, server.addr, &wrong).await, CloseCode::ProtocolViolation as u64);
    assert_eq!(server.metrics.protocol_errors.get(), 4);

    // The good subscriber is still served.
    feed.segment(1, 2);
    wait_window(sub.rendition(), "segment 1 after the bad peers", |w| w.segment(1)).await;
    assert!(client.is_connected());
    assert_same_parts(&origin.rendition("ch", "source").unwrap(), sub.rendition(), 0..=1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_fetch_returns_a_whole_segment_on_its_own_stream() {
    let pki = pki();
    let origin = hub();
    let feed = Feeder::new(&origin, "ch");
    feed.segment(4, 3);
    feed.segment(5, 2);
    let server = TestServer::start(origin.clone(), &pki.server, None);
    let (_ep, conn) = raw_peer(&pki, server.addr).await;
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    let sub = ControlMessage::Subscribe {
        id: 1,
        channel: "ch".into(),
        rendition: "source".into(),
        start: Start::Live { back: 0 },
    };
    send.write_all(&encode(&sub)).await.unwrap();
    let mut buf = BytesMut::new();
    let ok = loop {
        if let Some(m) = decode_control(&mut buf).unwrap() {
            break m;
        }
        let c = recv.read_chunk(65536, true).await.unwrap().unwrap();
        buf.extend_from_slice(&c.bytes);
    };
    assert!(matches!(ok, ControlMessage::SubscribeOk { id: 1, start_msn: 5, init: Some(_), .. }), "{ok:?}");
    send.write_all(&encode(&ControlMessage::Fetch { id: 2, subscription: 1, msn: 4 })).await.unwrap();
    // Unknown segments are refused on the control stream.
    send.write_all(&encode(&ControlMessage::Fetch { id: 3, subscription: 1, msn: 1 })).await.unwrap();

    // Pushed parts of segment 5 and the fetch stream arrive; find the fetch stream.
    let fetched = tokio::time::timeout(DEADLINE, async {
        loop {
            let mut s = conn.accept_uni().await.unwrap();
            let data = s.read_to_end(1 << 24).await.unwrap();
            let mut b = BytesMut::from(&data[..]);
            let mut dec = StreamDecoder::new();
            let mut frames = Vec::new();
            while let Some(f) = dec.decode(&mut b).unwrap() {
                frames.push(f);
            }
            dec.finish().unwrap();
            if matches!(frames.first(), Some(StreamFrame::FetchHeader(h)) if h.request == 2 && h.parts == 3) {
                return frames;
            }
        }
    })
    .await
    .expect("fetch stream");
    let chunks: Vec<_> = fetched
        .iter()
        .filter_map(|f| match f {
            StreamFrame::Chunk(b) => Some(b.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(chunks, origin.rendition("ch", "source").unwrap().read(|w| w.segment(4)).unwrap().chunks);

    let err = tokio::time::timeout(DEADLINE, async {
        loop {
            if let Some(m) = decode_control(&mut buf).unwrap() {
                break m;
            }
            let c = recv.read_chunk(65536, true).await.unwrap().unwrap();
            buf.extend_from_slice(&c.bytes);
        }
    })
    .await
    .unwrap();
    assert!(
        matches!(
            err,
            ControlMessage::Error { id: 3, code: skyrelay_common::relay::codec::ErrorCode::NotFound, .. }
        ),
        "{err:?}"
    );
}
