//! Real publishers (ffmpeg, GStreamer's rtmp2sink) against the bare session over a
//! blocking loopback socket: handshake, commands, metadata and media all go through.
//! The full ingest path (packaging, HLS) is covered by the ingest end-to-end tests.

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use skyrelay_origin::rtmp::{ServerSession, SessionConfig, SessionEvent};

mod rtmp_clients {
    use super::*;

    /// Kills the child when the test ends, whatever happens.
    struct ChildGuard(Child);

    impl Drop for ChildGuard {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    #[derive(Debug, Default)]
    struct Outcome {
        app: Option<String>,
        key: Option<String>,
        metadata: bool,
        avc_header: bool,
        aac_header: bool,
        video: usize,
        audio: usize,
        last_video_ts: u32,
        /// Video or audio timestamps that went backwards.
        backwards: usize,
        last_audio_ts: u32,
        unpublished: bool,
        error: Option<String>,
    }

    fn accept(listener: &TcpListener, deadline: Instant) -> TcpStream {
        listener.set_nonblocking(true).unwrap();
        loop {
            match listener.accept() {
                Ok((s, _)) => {
                    s.set_nonblocking(false).unwrap();
                    return s;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    assert!(Instant::now() < deadline, "client never connected");
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(e) => panic!("accept: {e}"),
            }
        }
    }

    /// Serves one connection until the client closes it or the deadline passes.
    fn serve(listener: &TcpListener, timeout: Duration) -> Outcome {
        let deadline = Instant::now() + timeout;
        let mut stream = accept(listener, deadline);
        stream.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
        let mut session = ServerSession::new(SessionConfig::default());
        let mut out = Outcome::default();
        let mut buf = vec![0u8; 64 * 1024];
        while Instant::now() < deadline {
            let n = match stream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => continue,
                Err(_) => break,
            };
            if let Err(e) = session.handle_input(&buf[..n]) {
                out.error = Some(format!("{e} ({})", e.kind()));
                break;
            }
            while let Some(ev) = session.poll_event() {
                match ev {
                    SessionEvent::Connected { app, .. } => out.app = Some(app),
                    SessionEvent::PublishRequested { stream_key, .. } => {
                        out.key = Some(stream_key);
                        session.accept_publish();
                    }
                    SessionEvent::Metadata(_) => out.metadata = true,
                    SessionEvent::Video { timestamp, data } => {
                        out.video += 1;
                        out.backwards += usize::from(timestamp < out.last_video_ts);
                        out.last_video_ts = timestamp;
                        out.avc_header |= data.starts_with(&[0x17, 0x00]);
                    }
                    SessionEvent::Audio { timestamp, data } => {
                        out.audio += 1;
                        out.backwards += usize::from(timestamp < out.last_audio_ts);
                        out.last_audio_ts = timestamp;
                        out.aac_header |= data.len() >= 2 && data[0] >> 4 == 10 && data[1] == 0;
                    }
                    SessionEvent::Unpublished => out.unpublished = true,
                    SessionEvent::PlayRefused { .. } => {}
                }
            }
            while let Some(bytes) = session.poll_output() {
                if stream.write_all(&bytes).is_err() {
                    return out;
                }
            }
        }
        out
    }

    fn check(out: &Outcome, min_video: usize) {
        assert_eq!(out.error, None, "{out:?}");
        assert_eq!(out.app.as_deref(), Some("live"), "{out:?}");
        assert_eq!(out.key.as_deref(), Some("test-key"), "{out:?}");
        assert!(out.metadata && out.avc_header && out.aac_header, "{out:?}");
        assert!(out.video >= min_video && out.audio >= 50, "{out:?}");
        assert_eq!(out.backwards, 0, "{out:?}");
    }

    #[test]
    fn ffmpeg_publishes() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("rtmp://{}/live/test-key", listener.local_addr().unwrap());
        let child = Command::new("ffmpeg")
            .args(["-hide_banner", "-nostdin", "-v", "error"])
            .args(["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30"])
            .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
            .args(["-t", "3", "-c:v", "libx264", "-preset", "ultrafast", "-g", "30"])
            .args(["-pix_fmt", "yuv420p", "-c:a", "aac", "-f", "flv", &url])
            .stdout(Stdio::null())
            .spawn()
            .expect("ffmpeg runs (the test command installs it)");
        let _guard = ChildGuard(child);
        let out = serve(&listener, Duration::from_secs(60));
        check(&out, 85);
        assert!(out.unpublished, "{out:?}");
        assert!(out.last_video_ts >= 2900, "{out:?}");
    }

    /// GStreamer publishing through `sink` (`rtmp2sink`, its own client, or `rtmpsink`,
    /// which wraps librtmp like OBS's RTMP output).
    fn gstreamer_publishes(sink: &str) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("location=rtmp://{}/live/test-key", listener.local_addr().unwrap());
        let pipeline = "videotestsrc num-buffers=90 ! video/x-raw,width=320,height=240,framerate=30/1 \
             ! x264enc tune=zerolatency key-int-max=30 speed-preset=ultrafast ! h264parse ! queue ! mux. \
             audiotestsrc num-buffers=140 ! audio/x-raw,rate=48000,channels=2 ! avenc_aac ! aacparse \
             ! queue ! mux. flvmux name=mux streamable=true !";
        let mut args: Vec<&str> = vec!["-q"];
        args.extend(pipeline.split_whitespace());
        args.push(sink);
        args.push(&url);
        let child = Command::new("gst-launch-1.0")
            .args(&args)
            .stdout(Stdio::null())
            .spawn()
            .expect("gst-launch-1.0 runs (the test command installs it)");
        let _guard = ChildGuard(child);
        let out = serve(&listener, Duration::from_secs(60));
        check(&out, 80);
    }

    #[test]
    fn gstreamer_rtmp2sink_publishes() {
        gstreamer_publishes("rtmp2sink");
    }

    #[test]
    fn librtmp_rtmpsink_publishes() {
        gstreamer_publishes("rtmpsink");
    }
}
