//! LL-HLS playlists written from a live window, parsed back with m3u8-rs.

use bytes::Bytes;
use m3u8_rs::{MasterPlaylist, MediaPlaylist};
use skyrelay_common::media::{MediaEvent, RenditionInfo};
use skyrelay_common::playlist::write_master_playlist;
use skyrelay_common::window::{LiveWindow, WindowConfig};

const T0: u64 = 1_795_000_000_000;

fn info(name: &str) -> RenditionInfo {
    RenditionInfo {
        name: name.into(),
        codecs: "avc1.64001f,mp4a.40.2".into(),
        bandwidth: 1_500_000,
        resolution: Some((640, 360)),
        frame_rate: Some(30.0),
        has_video: true,
        has_audio: true,
    }
}

/// Applies segment `msn` with `parts` parts of 0.5 s; leaves it open when `close` is false
/// (the last part then stays open too).
fn feed(w: &mut LiveWindow, msn: u64, parts: u32, close: bool) {
    for p in 0..parts {
        let now = T0 + msn * 2000 + u64::from(p) * 500;
        let bytes = Bytes::from(format!("{msn}.{p}"));
        w.apply(MediaEvent::Chunk { msn, part: p, independent: p % 2 == 0, bytes }, now).unwrap();
        let last = p + 1 == parts;
        if close || !last {
            w.apply(MediaEvent::PartEnd { msn, part: p, duration: 0.5, ends_segment: last && close }, now)
                .unwrap();
        }
    }
}

fn parse(text: &str) -> MediaPlaylist {
    m3u8_rs::parse_media_playlist_res(text.as_bytes()).unwrap_or_else(|e| panic!("{e:?}\n{text}"))
}

fn tags(seg: &m3u8_rs::MediaSegment, name: &str) -> Vec<String> {
    seg.unknown_tags.iter().filter(|t| t.tag == name).map(|t| t.rest.clone().unwrap_or_default()).collect()
}

fn window() -> LiveWindow {
    let mut w = LiveWindow::new(WindowConfig { max_segments: 5, part_target_ms: 500, ..Default::default() });
    w.apply(MediaEvent::Init { info: info("source"), bytes: Bytes::from_static(b"init-a") }, T0).unwrap();
    w
}

#[test]
fn live_playlist_has_ll_hls_tags() {
    let mut w = window();
    for msn in 100..106 {
        feed(&mut w, msn, 4, true);
    }
    feed(&mut w, 106, 3, false); // parts 0, 1 complete; part 2 open
    let text = w.media_playlist(None).unwrap();
    let init = w.current_init_id().unwrap();

    assert!(text.starts_with("#EXTM3U\n#EXT-X-VERSION:9\n"), "{text}");
    assert!(
        text.contains("#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=1.500,HOLD-BACK=6.000\n")
    );
    assert!(text.contains("#EXT-X-PART-INF:PART-TARGET=0.50000\n"));
    assert!(text.trim_end().ends_with("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"part-106.2.m4s\""), "{text}");
    assert!(!text.contains("ENDLIST"));

    let pl = parse(&text);
    assert_eq!(pl.version, Some(9));
    assert_eq!(pl.target_duration, 2);
    assert_eq!(pl.media_sequence, 101);
    assert_eq!(pl.discontinuity_sequence, 0);
    assert!(!pl.end_list);
    let uris: Vec<&str> = pl.segments.iter().map(|s| s.uri.as_str()).collect();
    assert_eq!(&uris[..5], ["seg-101.m4s", "seg-102.m4s", "seg-103.m4s", "seg-104.m4s", "seg-105.m4s"]);
    for s in &pl.segments[..5] {
        assert_eq!(s.duration, 2.0);
    }
    let first = &pl.segments[0];
    assert_eq!(first.map.as_ref().unwrap().uri, format!("init-{init}.mp4"));
    assert!(pl.segments[1].map.is_none(), "MAP only when the init changes");
    let pdt = first.program_date_time.unwrap();
    assert_eq!(pdt.timestamp_millis() as u64, T0 + 101 * 2000);

    // Parts are listed for the last 3 complete segments and the open one only.
    assert!(tags(&pl.segments[0], "X-PART").is_empty());
    assert!(tags(&pl.segments[1], "X-PART").is_empty());
    let parts = tags(&pl.segments[2], "X-PART");
    assert_eq!(parts.len(), 4);
    assert_eq!(parts[0], "DURATION=0.50000,URI=\"part-103.0.m4s\",INDEPENDENT=YES");
    assert_eq!(parts[1], "DURATION=0.50000,URI=\"part-103.1.m4s\"");
    let listed = text.matches("#EXT-X-PART:").count();
    assert_eq!(listed, 3 * 4 + 2, "{text}");
    assert!(text.contains("URI=\"part-106.1.m4s\""));
    assert!(!text.contains("URI=\"part-106.2.m4s\","), "the open part is only hinted");
}

#[test]
fn query_is_appended_to_every_uri() {
    let mut w = window();
    feed(&mut w, 0, 2, true);
    feed(&mut w, 1, 2, false);
    let text = w.media_playlist(Some("token=abc.def")).unwrap();
    let mut uris = 0;
    for line in text.lines() {
        if let Some(i) = line.find("URI=\"") {
            let uri = line[i + 5..].split('"').next().unwrap();
            assert!(uri.ends_with("?token=abc.def"), "{line}");
            uris += 1;
        } else if !line.starts_with('#') {
            assert!(line.ends_with("?token=abc.def"), "{line}");
            uris += 1;
        }
    }
    assert_eq!(uris, 1 + 3 + 1 + 1, "{text}"); // map, parts, segment, hint
    let pl = parse(&text);
    assert_eq!(pl.segments[0].uri, "seg-0.m4s?token=abc.def");
}

#[test]
fn discontinuity_map_and_endlist() {
    let mut w = window();
    feed(&mut w, 0, 2, true);
    w.apply(MediaEvent::Init { info: info("source"), bytes: Bytes::from_static(b"init-b") }, T0).unwrap();
    let second = w.current_init_id().unwrap();
    feed(&mut w, 1, 2, true);
    w.apply(MediaEvent::End, T0).unwrap();
    let text = w.media_playlist(None).unwrap();
    let pl = parse(&text);
    assert!(pl.end_list);
    assert!(!text.contains("PRELOAD-HINT"));
    assert_eq!(pl.segments.len(), 2);
    assert!(!pl.segments[0].discontinuity);
    assert!(pl.segments[1].discontinuity);
    assert_eq!(pl.segments[1].map.as_ref().unwrap().uri, format!("init-{second}.mp4"));
}

#[test]
fn target_duration_never_below_longest_segment() {
    let mut w = window();
    w.apply(MediaEvent::Chunk { msn: 0, part: 0, independent: true, bytes: Bytes::from_static(b"x") }, T0)
        .unwrap();
    w.apply(MediaEvent::PartEnd { msn: 0, part: 0, duration: 3.2, ends_segment: true }, T0).unwrap();
    let pl = parse(&w.media_playlist(None).unwrap());
    assert_eq!(pl.target_duration, 4);
    for s in &pl.segments {
        assert!(f64::from(s.duration).round() as u64 <= pl.target_duration);
    }
}

#[test]
fn no_playlist_before_media() {
    let w = window();
    assert!(w.media_playlist(None).is_none());
}

#[test]
fn master_playlist_lists_renditions() {
    let mut low = info("low");
    low.bandwidth = 800_000;
    low.resolution = Some((426, 240));
    low.frame_rate = Some(29.97);
    let text = write_master_playlist(&[info("source"), low], Some("token=t"));
    let pl: MasterPlaylist = m3u8_rs::parse_master_playlist_res(text.as_bytes()).unwrap();
    assert_eq!(pl.variants.len(), 2);
    let v = &pl.variants[0];
    assert_eq!(v.uri, "source/index.m3u8?token=t");
    assert_eq!(v.bandwidth, 1_500_000);
    assert_eq!(v.codecs.as_deref(), Some("avc1.64001f,mp4a.40.2"));
    let r = v.resolution.unwrap();
    assert_eq!((r.width, r.height), (640, 360));
    assert_eq!(v.frame_rate, Some(30.0));
    assert_eq!(pl.variants[1].frame_rate, Some(29.97));
    assert_eq!(pl.variants[1].uri, "low/index.m3u8?token=t");
}
