//! The tokio side of the RTMP client: one TCP connection per publisher.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::mpsc;

use super::amf0::{self, Amf0};
use super::chunk::{ChunkDecoder, Message, encode_message};
use super::{RtmpError, RtmpUrl};

/// Chunk size this client announces and uses for its own messages.
pub const CHUNK_SIZE: usize = 4096;
const HANDSHAKE: usize = 1536;
const CSID_CONTROL: u8 = 2;
const CSID_COMMAND: u8 = 3;
const CSID_AUDIO: u8 = 4;
const CSID_VIDEO: u8 = 6;
const CSID_STREAM_COMMAND: u8 = 8;

/// A connection that is publishing one stream.
#[derive(Debug)]
pub struct RtmpPublisher {
    writer: OwnedWriteHalf,
    out: BytesMut,
    stream_id: u32,
    pings: mpsc::Receiver<u32>,
    closed: Arc<AtomicBool>,
    drain: tokio::task::JoinHandle<()>,
}

struct Setup {
    sock: TcpStream,
    buf: BytesMut,
    dec: ChunkDecoder,
    out: BytesMut,
}

impl Setup {
    async fn flush(&mut self) -> Result<(), RtmpError> {
        self.sock.write_all(&self.out).await?;
        self.out.clear();
        Ok(())
    }

    fn command(&mut self, csid: u8, stream_id: u32, name: &str, txn: f64, args: &[Amf0]) {
        let body = amf0::command(name, txn, args);
        encode_message(&mut self.out, csid, (20, stream_id, 0), &body, CHUNK_SIZE);
    }

    async fn next_message(&mut self) -> Result<Message, RtmpError> {
        loop {
            if let Some(m) = self.dec.decode(&mut self.buf)? {
                return Ok(m);
            }
            if self.sock.read_buf(&mut self.buf).await? == 0 {
                return Err(RtmpError::Closed);
            }
        }
    }

    /// Reads until `done` returns a value for a command message; answers pings meanwhile.
    async fn until<T>(
        &mut self,
        mut done: impl FnMut(&str, f64, &[Amf0]) -> Option<Result<T, RtmpError>>,
    ) -> Result<T, RtmpError> {
        loop {
            let msg = self.next_message().await?;
            match msg.type_id {
                20 => {
                    let values = amf0::decode_all(&msg.payload)?;
                    let name = values.first().and_then(Amf0::as_str).unwrap_or("");
                    let txn = values.get(1).and_then(Amf0::as_number).unwrap_or(0.0);
                    if let Some(r) = done(name, txn, values.get(2..).unwrap_or(&[])) {
                        return r;
                    }
                }
                4 => {
                    if let Some(ts) = ping_request(&msg) {
                        pong(&mut self.out, ts);
                        self.flush().await?;
                    }
                }
                _ => {}
            }
        }
    }
}

fn ping_request(msg: &Message) -> Option<u32> {
    let p = &msg.payload;
    (msg.type_id == 4 && p.len() >= 6 && p[0] == 0 && p[1] == 6)
        .then(|| u32::from_be_bytes([p[2], p[3], p[4], p[5]]))
}

fn pong(out: &mut BytesMut, ts: u32) {
    let mut body = [0u8; 6];
    body[1] = 7;
    body[2..].copy_from_slice(&ts.to_be_bytes());
    encode_message(out, CSID_CONTROL, (4, 0, 0), &body, CHUNK_SIZE);
}

fn status_code(args: &[Amf0]) -> String {
    args.iter().find_map(|a| a.get("code").and_then(Amf0::as_str)).unwrap_or("").to_owned()
}

impl RtmpPublisher {
    /// Connects, handshakes and starts publishing `url.key`, within `timeout`.
    pub async fn connect(url: &RtmpUrl, timeout: Duration) -> Result<Self, RtmpError> {
        tokio::time::timeout(timeout, Self::connect_inner(url))
            .await
            .map_err(|_| RtmpError::Timeout("connect/publish"))?
    }

    async fn connect_inner(url: &RtmpUrl) -> Result<Self, RtmpError> {
        let mut sock = TcpStream::connect((url.host.as_str(), url.port)).await?;
        sock.set_nodelay(true)?;
        // Simple handshake: C0+C1, read S0+S1+S2, send C2 (echo of S1).
        let mut c0c1 = vec![0u8; 1 + HANDSHAKE];
        c0c1[0] = 3;
        for (i, b) in c0c1[9..].iter_mut().enumerate() {
            *b = (i as u32).wrapping_mul(2_654_435_761).to_be_bytes()[0];
        }
        sock.write_all(&c0c1).await?;
        let mut s = vec![0u8; 1 + 2 * HANDSHAKE];
        sock.read_exact(&mut s).await?;
        if s[0] != 3 {
            return Err(RtmpError::Protocol("unsupported RTMP version in S0"));
        }
        sock.write_all(&s[1..1 + HANDSHAKE]).await?;

        let mut st = Setup {
            sock,
            buf: BytesMut::with_capacity(8192),
            dec: ChunkDecoder::default(),
            out: BytesMut::with_capacity(8192),
        };
        encode_message(&mut st.out, CSID_CONTROL, (1, 0, 0), &(CHUNK_SIZE as u32).to_be_bytes(), 128);
        let obj = Amf0::Object(vec![
            ("app".into(), Amf0::String(url.app.clone())),
            ("type".into(), Amf0::String("nonprivate".into())),
            ("flashVer".into(), Amf0::String("FMLE/3.0 (compatible; skyrelay-loadtest)".into())),
            ("tcUrl".into(), Amf0::String(url.tc_url())),
        ]);
        st.command(CSID_COMMAND, 0, "connect", 1.0, &[obj]);
        st.flush().await?;
        st.until(|name, txn, args| match name {
            "_result" if txn == 1.0 => Some(Ok(())),
            "_error" if txn == 1.0 => {
                Some(Err(RtmpError::Refused { command: "connect", reason: status_code(args) }))
            }
            _ => None,
        })
        .await?;

        let key = Amf0::String(url.key.clone());
        st.command(CSID_COMMAND, 0, "releaseStream", 2.0, &[Amf0::Null, key.clone()]);
        st.command(CSID_COMMAND, 0, "FCPublish", 3.0, &[Amf0::Null, key.clone()]);
        st.command(CSID_COMMAND, 0, "createStream", 4.0, &[Amf0::Null]);
        st.flush().await?;
        let stream_id = st
            .until(|name, txn, args| match name {
                "_result" if txn == 4.0 => Some(
                    args.iter()
                        .find_map(Amf0::as_number)
                        .map(|n| n as u32)
                        .ok_or(RtmpError::Protocol("createStream result without stream id")),
                ),
                "_error" if txn == 4.0 => {
                    Some(Err(RtmpError::Refused { command: "createStream", reason: status_code(args) }))
                }
                _ => None,
            })
            .await?;

        st.command(
            CSID_STREAM_COMMAND,
            stream_id,
            "publish",
            5.0,
            &[Amf0::Null, key, Amf0::String("live".into())],
        );
        st.flush().await?;
        st.until(|name, txn, args| {
            let code = status_code(args);
            match name {
                "onStatus" if code == "NetStream.Publish.Start" => Some(Ok(())),
                "onStatus" if code.contains("Publish") || code.contains("Error") => {
                    Some(Err(RtmpError::Refused { command: "publish", reason: code }))
                }
                "_error" if txn == 5.0 => Some(Err(RtmpError::Refused { command: "publish", reason: code })),
                _ => None,
            }
        })
        .await?;

        let Setup { sock, buf, dec, out, .. } = st;
        let (mut reader, writer) = sock.into_split();
        let (ping_tx, pings) = mpsc::channel(4);
        let closed = Arc::new(AtomicBool::new(false));
        let closed_flag = closed.clone();
        let drain = tokio::spawn(async move {
            let (mut buf, mut dec) = (buf, dec);
            loop {
                match dec.decode(&mut buf) {
                    Ok(Some(msg)) => {
                        if let Some(ts) = ping_request(&msg) {
                            let _ = ping_tx.try_send(ts);
                        }
                        continue;
                    }
                    Ok(None) => {}
                    Err(_) => break,
                }
                match reader.read_buf(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
            closed_flag.store(true, Ordering::Relaxed);
        });
        Ok(Self { writer, out, stream_id, pings, closed, drain })
    }

    /// Sends one audio (type 8), video (9) or data (18) message with timestamp `ts_ms`.
    pub async fn send(&mut self, type_id: u8, ts_ms: u32, body: &[u8]) -> Result<(), RtmpError> {
        if self.closed.load(Ordering::Relaxed) {
            return Err(RtmpError::Closed);
        }
        while let Ok(ts) = self.pings.try_recv() {
            pong(&mut self.out, ts);
        }
        let csid = match type_id {
            8 => CSID_AUDIO,
            9 => CSID_VIDEO,
            _ => CSID_STREAM_COMMAND,
        };
        encode_message(&mut self.out, csid, (type_id, self.stream_id, ts_ms), body, CHUNK_SIZE);
        self.writer.write_all(&self.out).await?;
        self.out.clear();
        Ok(())
    }

    /// Sends `deleteStream` and closes the connection.
    pub async fn close(mut self) {
        let body = amf0::command("deleteStream", 6.0, &[Amf0::Null, Amf0::Number(f64::from(self.stream_id))]);
        let mut out = BytesMut::new();
        encode_message(&mut out, CSID_COMMAND, (20, 0, 0), &body, CHUNK_SIZE);
        let _ = tokio::time::timeout(Duration::from_secs(1), self.writer.write_all(&out)).await;
        let _ = self.writer.shutdown().await;
        self.drain.abort();
    }
}
