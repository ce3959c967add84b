//! The RTMP client and the replay loop, against an in-test RTMP server (no ffmpeg): two
//! publishers complete handshake, connect, createStream and publish; every video frame
//! they send carries exactly one stamp taken at send time; timestamps keep increasing
//! across loops of the recording; audio and sequence headers pass through unchanged.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::BytesMut;
use skyrelay_loadtest::rtmp::amf0::{self, Amf0};
use skyrelay_loadtest::rtmp::chunk::{ChunkDecoder, encode_message};
use skyrelay_loadtest::scenario::{self, PublisherGroup, RunOptions, Scenario};
use skyrelay_loadtest::sei::{extract_stamps_avcc, unix_now_us};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// (stream key, message type, timestamp, payload, unix µs at receipt)
type Received = (String, u8, u32, Vec<u8>, u64);

fn flv(tags: &[(u8, u32, Vec<u8>)]) -> Vec<u8> {
    let mut out = b"FLV\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00".to_vec();
    for (kind, ts, body) in tags {
        let size = body.len() as u32;
        out.push(*kind);
        out.extend_from_slice(&size.to_be_bytes()[1..]);
        out.extend_from_slice(&ts.to_be_bytes()[1..]);
        out.push((ts >> 24) as u8);
        out.extend_from_slice(&[0, 0, 0]);
        out.extend_from_slice(body);
        out.extend_from_slice(&(size + 11).to_be_bytes());
    }
    out
}

fn frame(key: bool, nal: u8) -> Vec<u8> {
    let mut b = vec![if key { 0x17 } else { 0x27 }, 1, 0, 0, 0];
    let payload = [&[nal][..], &[0x42u8; 5000][..]].concat(); // larger than one chunk
    b.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    b.extend_from_slice(&payload);
    b
}

async fn session(mut sock: TcpStream, tx: mpsc::Sender<Received>) -> Option<()> {
    let mut c0c1 = vec![0u8; 1537];
    sock.read_exact(&mut c0c1).await.ok()?;
    let mut s = vec![3u8];
    s.extend_from_slice(&[7u8; 1536]);
    s.extend_from_slice(&c0c1[1..]);
    sock.write_all(&s).await.ok()?;
    let mut c2 = vec![0u8; 1536];
    sock.read_exact(&mut c2).await.ok()?;
    let (mut dec, mut buf, mut key) = (ChunkDecoder::default(), BytesMut::new(), String::new());
    loop {
        let Some(msg) = dec.decode(&mut buf).ok()? else {
            if sock.read_buf(&mut buf).await.ok()? == 0 {
                return Some(());
            }
            continue;
        };
        if msg.type_id == 20 {
            let v = amf0::decode_all(&msg.payload).ok()?;
            let name = v[0].as_str()?.to_owned();
            let txn = v[1].as_number()?;
            let reply = match name.as_str() {
                "connect" => Some(amf0::command(
                    "_result",
                    txn,
                    &[
                        Amf0::Null,
                        Amf0::Object(vec![(
                            "code".into(),
                            Amf0::String("NetConnection.Connect.Success".into()),
                        )]),
                    ],
                )),
                "createStream" => Some(amf0::command("_result", txn, &[Amf0::Null, Amf0::Number(1.0)])),
                "publish" => {
                    key = v.get(3)?.as_str()?.to_owned();
                    Some(amf0::command(
                        "onStatus",
                        0.0,
                        &[
                            Amf0::Null,
                            Amf0::Object(vec![(
                                "code".into(),
                                Amf0::String("NetStream.Publish.Start".into()),
                            )]),
                        ],
                    ))
                }
                _ => None,
            };
            if let Some(body) = reply {
                let mut out = BytesMut::new();
                encode_message(&mut out, 3, (20, 0, 0), &body, 128);
                sock.write_all(&out).await.ok()?;
            }
        } else if msg.type_id == 8 || msg.type_id == 9 {
            let item = (key.clone(), msg.type_id, msg.timestamp, msg.payload.to_vec(), unix_now_us());
            tx.send(item).await.ok()?;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishers_send_stamped_frames_with_looped_timestamps() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rec.flv");
    let avcc = vec![0x17, 0, 0, 0, 0, 1, 0x64, 0, 0x1f, 0xff, 0xe1, 0, 0];
    let aac = vec![0xaf, 0, 0x11, 0x90];
    std::fs::write(
        &file,
        flv(&[
            (9, 1000, avcc.clone()),
            (8, 1000, aac.clone()),
            (9, 1000, frame(true, 0x65)),
            (8, 1010, vec![0xaf, 1, 0x21, 0x22]),
            (9, 1033, frame(false, 0x41)),
            (9, 1066, frame(false, 0x41)),
        ]),
    )
    .unwrap();

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, mut rx) = mpsc::channel(10_000);
    let server = tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            tokio::spawn(session(sock, tx.clone()));
        }
    });

    let before = unix_now_us();
    let s = Scenario {
        duration_s: 1,
        warmup_s: Some(0),
        ramp_up_s: 0,
        http2: false,
        http2_viewers_per_connection: 50,
        publishers: vec![PublisherGroup { url: format!("rtmp://{addr}/live/k{{i}}"), count: 2, file }],
        viewers: Vec::new(),
        metrics: Vec::new(),
    };
    let report = scenario::run(&s, RunOptions::default(), CancellationToken::new()).await.unwrap();
    server.abort();
    assert_eq!(report.publishers.sessions, 2);
    assert_eq!(report.publishers.errors, 0);

    let mut by_key: BTreeMap<String, Vec<Received>> = BTreeMap::new();
    // The sessions end when the publishers close their connections; drain until then.
    let drain = async {
        while let Some(m) = rx.recv().await {
            by_key.entry(m.0.clone()).or_default().push(m);
        }
    };
    tokio::time::timeout(Duration::from_secs(10), drain).await.expect("server sessions end");
    assert_eq!(by_key.keys().cloned().collect::<Vec<_>>(), vec!["k0", "k1"]);
    let mut frames = 0;
    for msgs in by_key.values() {
        // Sequence headers first, unchanged, at timestamp 0.
        assert_eq!((msgs[0].1, msgs[0].2, &msgs[0].3), (9, 0, &avcc));
        assert_eq!((msgs[1].1, msgs[1].2, &msgs[1].3), (8, 0, &aac));
        let video: Vec<&Received> = msgs[2..].iter().filter(|m| m.1 == 9).collect();
        // Loop of 99 ms: frames at 0, 33, 66, then 99, 132, ...
        for (i, m) in video.iter().enumerate() {
            assert_eq!(m.2, (i as u32 / 3) * 99 + (i as u32 % 3) * 33, "frame {i}");
            let stamps = extract_stamps_avcc(&m.3[5..], 4).unwrap();
            assert_eq!(stamps.len(), 1, "one stamp per frame");
            assert!(stamps[0] >= before && stamps[0] <= m.4, "stamp taken at send time");
            // Length prefix + 28-byte SEI NAL (+ up to 3 emulation-prevention bytes).
            let extra = m.3.len() - frame(false, 0).len();
            assert!((32..=35).contains(&extra), "frame plus one length-prefixed SEI: {extra}");
        }
        assert!(video.len() >= 6, "at least two loops: {}", video.len());
        frames += video.len() as u64;
        let audio: Vec<&Received> = msgs[2..].iter().filter(|m| m.1 == 8).collect();
        assert!(audio.iter().all(|m| m.3 == [0xaf, 1, 0x21, 0x22]));
        assert!(audio.windows(2).all(|w| w[1].2 > w[0].2));
    }
    assert_eq!(report.publishers.frames, frames);
}
