//! Hostile input on the RTMP port: each bad connection is closed with a logged reason and a
//! metric, while a real ffmpeg publisher on the same origin keeps streaming.

mod support;

use std::time::Duration;

use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A hand-built RTMP client speaking just enough to reach each failure.
struct RawClient {
    stream: TcpStream,
}

fn amf_string(out: &mut Vec<u8>, s: &str) {
    out.push(0x02);
    out.extend_from_slice(&(s.len() as u16).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn amf_number(out: &mut Vec<u8>, n: f64) {
    out.push(0x00);
    out.extend_from_slice(&n.to_be_bytes());
}

fn amf_key(out: &mut Vec<u8>, k: &str) {
    out.extend_from_slice(&(k.len() as u16).to_be_bytes());
    out.extend_from_slice(k.as_bytes());
}

impl RawClient {
    async fn connect(addr: std::net::SocketAddr) -> Self {
        RawClient { stream: TcpStream::connect(addr).await.unwrap() }
    }

    async fn handshake(&mut self) {
        let mut c0c1 = vec![3u8];
        c0c1.extend_from_slice(&[0u8; 1536]);
        self.stream.write_all(&c0c1).await.unwrap();
        let mut s = vec![0u8; 1 + 1536 + 1536];
        self.stream.read_exact(&mut s).await.unwrap();
        self.stream.write_all(&s[1..1537]).await.unwrap(); // C2 = S1
    }

    /// Sends one message as chunks of 128 bytes on chunk stream 3.
    async fn message(&mut self, type_id: u8, stream_id: u32, timestamp: u32, payload: &[u8]) {
        let mut out = vec![0x03];
        out.extend_from_slice(&timestamp.to_be_bytes()[1..]);
        out.extend_from_slice(&(payload.len() as u32).to_be_bytes()[1..]);
        out.push(type_id);
        out.extend_from_slice(&stream_id.to_le_bytes());
        for (i, chunk) in payload.chunks(128).enumerate() {
            if i > 0 {
                out.push(0xC3);
            }
            out.extend_from_slice(chunk);
        }
        let _ = self.stream.write_all(&out).await;
    }

    async fn command(&mut self, stream_id: u32, name: &str, tx: f64, args: impl FnOnce(&mut Vec<u8>)) {
        let mut p = Vec::new();
        amf_string(&mut p, name);
        amf_number(&mut p, tx);
        args(&mut p);
        self.message(20, stream_id, 0, &p).await;
    }

    async fn connect_and_publish(&mut self, key: &str) {
        self.handshake().await;
        self.command(0, "connect", 1.0, |p| {
            p.push(0x03);
            amf_key(p, "app");
            amf_string(p, "live");
            amf_key(p, "tcUrl");
            amf_string(p, "rtmp://127.0.0.1/live");
            p.extend_from_slice(&[0, 0, 9]);
        })
        .await;
        self.command(0, "createStream", 2.0, |p| p.push(0x05)).await;
        self.command(1, "publish", 3.0, |p| {
            p.push(0x05);
            amf_string(p, key);
            amf_string(p, "live");
        })
        .await;
    }

    /// Reads the server's replies until `needle` shows up (e.g. the publish status), so
    /// media is sent only once the publish is accepted, as real encoders do.
    async fn read_until(&mut self, needle: &[u8]) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let mut seen = Vec::new();
        let mut buf = vec![0u8; 65536];
        while !seen.windows(needle.len()).any(|w| w == needle) {
            match tokio::time::timeout_at(deadline, self.stream.read(&mut buf)).await {
                Ok(Ok(n)) if n > 0 => seen.extend_from_slice(&buf[..n]),
                other => panic!("no {:?} from the server: {other:?}", String::from_utf8_lossy(needle)),
            }
        }
    }

    /// True when the server closes the connection within the deadline (reading whatever
    /// it sends first).
    async fn closed_by_server(&mut self) -> bool {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let mut buf = vec![0u8; 65536];
        loop {
            match tokio::time::timeout_at(deadline, self.stream.read(&mut buf)).await {
                Err(_) => return false,
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(_)) => continue,
            }
        }
    }
}

/// The value of the metric line starting with `series` (name and labels), or 0.
async fn metric(origin: &skyrelay_origin::node::OriginNode, series: &str) -> f64 {
    let (_, metrics) = http_text(&http_url(origin.admin_addr, "/metrics")).await;
    metrics
        .lines()
        .find(|l| l.starts_with(series))
        .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_connections_close_alone_while_a_publisher_streams() {
    let mut cfg = origin_config();
    cfg.rtmp.handshake_timeout_seconds = 2;
    let origin = start_origin(cfg).await;
    let playlist_url = http_url(origin.http_addr, &format!("/live/{CHANNEL}/source/index.m3u8"));
    let _ffmpeg = ffmpeg_publish(&publish_url(&origin, KEY), 40);
    let start = wait_for("the good publisher's first segment", Duration::from_secs(20), || async {
        let (status, text) = http_text(&playlist_url).await;
        let p = parse_media_playlist(&text);
        (status == 200 && !p.segments.is_empty()).then_some(p)
    })
    .await;

    let mut cases: Vec<(&str, &str, RawClient)> = Vec::new();

    // 1. Garbage instead of a handshake.
    let mut c = RawClient::connect(origin.rtmp_addr).await;
    c.stream.write_all(&[0x47u8; 4000]).await.unwrap();
    cases.push(("garbage bytes", "skyrelay_origin_rtmp_errors_total{kind=\"handshake\"}", c));

    // 2. A truncated handshake (then silence): the handshake timeout closes it.
    let mut c = RawClient::connect(origin.rtmp_addr).await;
    c.stream.write_all(&[3u8; 700]).await.unwrap();
    cases.push(("truncated handshake", "skyrelay_origin_rtmp_errors_total{kind=\"handshake_timeout\"}", c));

    // 3. Set Chunk Size 2^31.
    let mut c = RawClient::connect(origin.rtmp_addr).await;
    c.handshake().await;
    c.message(1, 0, 0, &0x8000_0000u32.to_be_bytes()).await;
    cases.push(("chunk size 2^31", "skyrelay_origin_rtmp_errors_total{kind=\"chunk_size\"}", c));

    // 4. A message longer than the limit (16 MiB - 1 > 8 MiB).
    let mut c = RawClient::connect(origin.rtmp_addr).await;
    c.handshake().await;
    let header = [0x03, 0, 0, 0, 0xFF, 0xFF, 0xFF, 20, 0, 0, 0, 0];
    c.stream.write_all(&header).await.unwrap();
    c.stream.write_all(&[0u8; 128]).await.unwrap();
    cases.push((
        "message beyond the limit",
        "skyrelay_origin_rtmp_errors_total{kind=\"message_too_large\"}",
        c,
    ));

    // 5. AMF0 with absurd nesting.
    let mut c = RawClient::connect(origin.rtmp_addr).await;
    c.handshake().await;
    c.command(0, "connect", 1.0, |p| {
        for _ in 0..20_000 {
            p.push(0x03);
            amf_key(p, "a");
        }
        p.push(0x05);
    })
    .await;
    cases.push(("absurd AMF0 nesting", "skyrelay_origin_rtmp_errors_total{kind=\"amf\"}", c));

    // 6. A publisher whose FLV video tag lies about its NAL unit size.
    let mut c = RawClient::connect(origin.rtmp_addr).await;
    c.connect_and_publish("second-stream-key-02").await;
    c.read_until(b"NetStream.Publish.Start").await;
    let mut avc_config = vec![0x17, 0x00, 0, 0, 0];
    avc_config
        .extend_from_slice(&[1, 0x64, 0, 0x1f, 0xFF, 0xE1, 0, 4, 0x67, 0x64, 0, 0x1f, 1, 0, 2, 0x68, 0xee]);
    c.message(9, 1, 0, &avc_config).await;
    let mut lying = vec![0x17, 0x01, 0, 0, 0];
    lying.extend_from_slice(&100_000u32.to_be_bytes()); // NAL length far beyond the tag
    lying.extend_from_slice(&[0x65, 1, 2, 3, 4, 5, 6, 7]);
    for ts in 0..3u32 {
        c.message(9, 1, ts * 33, &lying).await;
    }
    cases.push(("FLV tag lying about its size", "skyrelay_origin_rtmp_errors_total{kind=\"media\"}", c));

    // 7. An unknown stream key.
    let mut c = RawClient::connect(origin.rtmp_addr).await;
    c.connect_and_publish("not-a-configured-key").await;
    cases.push(("unknown stream key", "skyrelay_origin_publish_refused_total{reason=\"unknown_key\"}", c));

    // Each bad connection is closed, and counted under its own reason.
    for (what, series, mut client) in cases {
        assert!(client.closed_by_server().await, "{what}: the server did not close the connection");
        let count = wait_for(&format!("{what}: the metric {series}"), Duration::from_secs(5), || async {
            let v = metric(&origin, series).await;
            (v >= 1.0).then_some(v)
        })
        .await;
        assert!(count >= 1.0);
    }

    // The good publisher never noticed.
    wait_for("the good stream to keep advancing", Duration::from_secs(15), || async {
        let (_, text) = http_text(&playlist_url).await;
        let p = parse_media_playlist(&text);
        (p.media_sequence + p.segments.len() as u64 > start.media_sequence + start.segments.len() as u64 + 1
            && !p.ended)
            .then_some(())
    })
    .await;
    origin.stop().await;
}
