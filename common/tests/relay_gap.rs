//! The client fills a GAP with a FETCH: a hand-driven upstream skips part 0.1, announces the
//! gap, and answers the client's fetch; the edge window ends up with the whole segment.

mod relay_support;

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use relay_support::*;
use skyrelay_common::relay::codec::{
    ControlMessage, FetchHeader, InitSegment, PartHeader, PartTrailer, Position, StreamFrame, decode_control,
    encode_control, encode_stream_frame,
};
use skyrelay_common::relay::server::RelayServerConfig;
use skyrelay_common::relay::tls;

fn part_frames(sub: u64, part: u32, last: bool) -> Vec<StreamFrame> {
    let header = PartHeader {
        subscription: sub,
        msn: 0,
        part,
        independent: part == 0,
        origin_ms: now_ms(),
        init_id: 7,
    };
    vec![
        StreamFrame::PartHeader(header),
        StreamFrame::Chunk(chunk(0, part, 0)),
        StreamFrame::Chunk(chunk(0, part, 1)),
        StreamFrame::PartTrailer(PartTrailer { duration: 0.5, ends_segment: last }),
    ]
}

fn encode_frames(frames: &[StreamFrame]) -> Bytes {
    let mut b = BytesMut::new();
    for f in frames {
        encode_stream_frame(f, &mut b).unwrap();
    }
    b.freeze()
}

async fn send_ctl(send: &mut quinn::SendStream, m: ControlMessage) {
    let mut b = BytesMut::new();
    encode_control(&m, &mut b).unwrap();
    send.write_all(&b).await.unwrap();
}

async fn read_ctl(recv: &mut quinn::RecvStream, buf: &mut BytesMut) -> ControlMessage {
    loop {
        if let Some(m) = decode_control(buf).unwrap() {
            return m;
        }
        let c = recv.read_chunk(65536, true).await.unwrap().expect("control stream open");
        buf.extend_from_slice(&c.bytes);
    }
}

async fn push(conn: &quinn::Connection, bytes: Bytes) {
    let mut s = conn.open_uni().await.unwrap();
    s.write_all(&bytes).await.unwrap();
    s.finish().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_gap_is_filled_by_fetch() {
    let pki = pki();
    let mut sc = tls::server_config(&pki.server).unwrap();
    sc.transport_config(Arc::new(RelayServerConfig::default().transport()));
    let ep = quinn::Endpoint::server(sc, "127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = ep.local_addr().unwrap();

    let upstream = tokio::spawn(async move {
        let conn = ep.accept().await.unwrap().await.unwrap();
        let (mut send, mut recv) = conn.accept_bi().await.unwrap();
        let mut buf = BytesMut::new();
        let ControlMessage::Subscribe { id, .. } = read_ctl(&mut recv, &mut buf).await else {
            panic!("subscribe")
        };
        let init = InitSegment { id: 7, info: info(), bytes: Bytes::from_static(b"init") };
        let ok = ControlMessage::SubscribeOk {
            id,
            init: Some(init),
            start_msn: 0,
            latest: Some(Position { msn: 0, part: 0 }),
            target_duration: 2.0,
            part_target: 0.5,
        };
        send_ctl(&mut send, ok).await;
        push(&conn, encode_frames(&part_frames(id, 0, false))).await;
        let missing = Position { msn: 0, part: 1 };
        send_ctl(&mut send, ControlMessage::Gap { subscription: id, first: missing, last: missing }).await;
        push(&conn, encode_frames(&part_frames(id, 2, true))).await;

        let ControlMessage::Fetch { id: fid, subscription, msn: 0 } = read_ctl(&mut recv, &mut buf).await
        else {
            panic!("expected a fetch of segment 0")
        };
        assert_eq!(subscription, id);
        let mut frames = vec![StreamFrame::FetchHeader(FetchHeader { request: fid, msn: 0, parts: 3 })];
        for p in 0..3 {
            frames.extend(part_frames(id, p, p == 2));
        }
        push(&conn, encode_frames(&frames)).await;
        conn.closed().await;
    });

    let edge = hub();
    let (client, _) = client(&pki, addr, edge.clone());
    let sub = client.subscribe("ch", "source").await.unwrap();
    let seg = wait_window(sub.rendition(), "segment 0 filled by the fetch", |w| w.segment(0)).await;
    assert_eq!(seg.part_count, 3);
    let expected: Vec<Bytes> = (0..3).flat_map(|p| [chunk(0, p, 0), chunk(0, p, 1)]).collect();
    assert_eq!(seg.chunks, expected);
    drop(sub);
    drop(client);
    tokio::time::timeout(DEADLINE, upstream).await.expect("upstream done").unwrap();
}
