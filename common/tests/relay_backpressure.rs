//! A subscriber that does not read its part streams never makes the server buffer without
//! bound: beyond K parts in flight the oldest stream is reset with PART_DROPPED and a GAP
//! is sent on the control stream.

mod relay_support;

use std::sync::Arc;

use bytes::BytesMut;
use quinn::VarInt;
use relay_support::*;
use skyrelay_common::relay::client::RelayClientConfig;
use skyrelay_common::relay::codec::{ControlMessage, ResetCode, Start, decode_control, encode_control};
use skyrelay_common::relay::tls;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_slow_subscriber_gets_oldest_parts_dropped_and_a_gap() {
    let pki = pki();
    let origin = hub();
    let feed = Feeder::new(&origin, "ch");
    feed.segment(0, 1);
    let server = TestServer::start(origin.clone(), &pki.server, None);

    // A peer with tiny stream windows that never reads its part streams.
    let mut transport = RelayClientConfig::new(server.addr, "relay.test").transport();
    transport.stream_receive_window(VarInt::from_u32(64));
    let mut cc = tls::client_config(&pki.client).unwrap();
    cc.transport_config(Arc::new(transport));
    let ep = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    let conn = ep.connect_with(cc, server.addr, "relay.test").unwrap().await.unwrap();
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    let mut out = BytesMut::new();
    let msg = ControlMessage::Subscribe {
        id: 1,
        channel: "ch".into(),
        rendition: "source".into(),
        start: Start::Live { back: 0 },
    };
    encode_control(&msg, &mut out).unwrap();
    send.write_all(&out).await.unwrap();

    // 20 parts, far more than K = 8 in flight; each part's stream is accepted (so it has
    // been opened) but never read.
    let mut streams = Vec::new();
    for p in 0..20 {
        feed.part(1, p, 2, p == 19);
        let s = tokio::time::timeout(DEADLINE, conn.accept_uni()).await.expect("part stream").unwrap();
        streams.push(s);
    }
    let mut buf = BytesMut::new();
    let gap = tokio::time::timeout(DEADLINE, async {
        loop {
            match decode_control(&mut buf).unwrap() {
                Some(ControlMessage::Gap { subscription: 1, first, last }) => return (first, last),
                Some(_) => continue,
                None => {}
            }
            let c = recv.read_chunk(65536, true).await.unwrap().unwrap();
            buf.extend_from_slice(&c.bytes);
        }
    })
    .await
    .expect("a GAP message");
    assert_eq!(gap.0, gap.1);
    assert!(server.metrics.parts_dropped.get() >= 1);

    // The oldest part streams were reset with PART_DROPPED; the newest are still going.
    let first = streams.remove(0);
    let mut first = first;
    match tokio::time::timeout(DEADLINE, first.read_to_end(1 << 20)).await.expect("reset") {
        Err(quinn::ReadToEndError::Read(quinn::ReadError::Reset(code))) => {
            assert_eq!(code.into_inner(), ResetCode::PartDropped as u64)
        }
        other => panic!("oldest part not dropped: {other:?}"),
    }
    assert!(server.metrics.parts_dropped.get() >= 12, "dropped {}", server.metrics.parts_dropped.get());
    // The newest part is complete once read.
    let mut last = streams.pop().unwrap();
    let data = tokio::time::timeout(DEADLINE, last.read_to_end(1 << 20)).await.unwrap().unwrap();
    assert!(data.len() > 64);
}
