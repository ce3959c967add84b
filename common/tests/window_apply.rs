//! LiveWindow: ordering rules, bounds, eviction, discontinuities, views.

use bytes::Bytes;
use skyrelay_common::media::{MediaEvent, RenditionInfo};
use skyrelay_common::window::{ChunkAt, LiveWindow, PartRef, WindowConfig, WindowError};

fn info() -> RenditionInfo {
    RenditionInfo {
        name: "source".into(),
        codecs: "avc1.64001f,mp4a.40.2".into(),
        bandwidth: 1_500_000,
        resolution: Some((640, 360)),
        frame_rate: Some(30.0),
        has_video: true,
        has_audio: true,
    }
}

fn init(tag: &'static [u8]) -> MediaEvent {
    MediaEvent::Init { info: info(), bytes: Bytes::from_static(tag) }
}

fn chunk(msn: u64, part: u32, bytes: &'static [u8]) -> MediaEvent {
    MediaEvent::Chunk { msn, part, independent: part == 0, bytes: Bytes::from_static(bytes) }
}

fn end(msn: u64, part: u32, last: bool) -> MediaEvent {
    MediaEvent::PartEnd { msn, part, duration: 0.5, ends_segment: last }
}

/// Applies a whole segment of `parts` parts with one chunk each.
fn segment(w: &mut LiveWindow, msn: u64, parts: u32, now: u64) {
    for p in 0..parts {
        w.apply(chunk(msn, p, b"x"), now).unwrap();
        w.apply(end(msn, p, p + 1 == parts), now).unwrap();
    }
}

#[test]
fn chunks_parts_and_segments_in_order() {
    let mut w = LiveWindow::new(WindowConfig::default());
    assert_eq!(w.apply(chunk(0, 0, b"a"), 1), Err(WindowError::NoInit));
    w.apply(init(b"init"), 1).unwrap();
    let id = w.current_init_id().unwrap();
    assert_eq!(w.init(id).unwrap(), Bytes::from_static(b"init"));
    assert_eq!(w.info().unwrap().name, "source");

    w.apply(chunk(10, 0, b"ab"), 1000).unwrap();
    w.apply(chunk(10, 0, b"cd"), 1001).unwrap();
    assert_eq!(w.open_part(), Some(PartRef { msn: 10, part: 0 }));
    assert_eq!(w.preload_hint(), Some(PartRef { msn: 10, part: 0 }));
    assert_eq!(w.next_part(), Some(PartRef { msn: 10, part: 1 }));
    let p = w.part(10, 0).unwrap();
    assert!(!p.complete);
    assert_eq!(p.chunks, vec![Bytes::from_static(b"ab"), Bytes::from_static(b"cd")]);
    assert_eq!(w.chunk_at(10, 0, 2), ChunkAt::Pending);

    w.apply(end(10, 0, false), 1002).unwrap();
    assert_eq!(w.chunk_at(10, 0, 2), ChunkAt::Done);
    assert_eq!(w.last_complete_part(), Some(PartRef { msn: 10, part: 0 }));
    assert_eq!(w.open_part(), None);
    assert_eq!(w.preload_hint(), Some(PartRef { msn: 10, part: 1 }));
    assert!(w.segment(10).is_none(), "open segment is not served whole");

    w.apply(chunk(10, 1, b"ef"), 1003).unwrap();
    w.apply(end(10, 1, true), 1004).unwrap();
    let s = w.segment(10).unwrap();
    assert_eq!(s.chunks.concat(), b"abcdef");
    assert_eq!(s.duration, 1.0);
    assert_eq!(s.program_date_time_unix_ms, 1000);
    assert_eq!(s.part_count, 2);
    assert!(!s.discontinuity);
    assert_eq!(w.next_part(), Some(PartRef { msn: 11, part: 0 }));
    assert_eq!(w.last_complete_msn(), Some(10));
    assert_eq!(w.chunk_at(99, 0, 0), ChunkAt::Missing);
}

#[test]
fn out_of_order_events_are_rejected_without_change() {
    let mut w = LiveWindow::new(WindowConfig::default());
    w.apply(init(b"i"), 0).unwrap();
    w.apply(chunk(5, 0, b"a"), 0).unwrap();
    let before = (w.version(), w.part(5, 0));
    let bad = [
        chunk(5, 1, b"b"), // part 0 still open
        chunk(6, 0, b"b"), // segment 5 open
        end(5, 1, false),  // not the open part
        MediaEvent::PartEnd { msn: 5, part: 0, duration: f64::NAN, ends_segment: false },
        MediaEvent::PartEnd { msn: 5, part: 0, duration: -1.0, ends_segment: false },
        init(b"j"), // segment open
    ];
    for ev in bad {
        assert!(w.apply(ev.clone(), 0).is_err(), "{ev:?} accepted");
        assert_eq!((w.version(), w.part(5, 0)), before, "{ev:?} changed the window");
    }
    w.apply(end(5, 0, true), 0).unwrap();
    assert_eq!(w.apply(chunk(5, 0, b"a"), 0), Err(WindowError::StaleSegment { msn: 5, last: 5 }));
    assert_eq!(w.apply(chunk(6, 1, b"a"), 0), Err(WindowError::UnexpectedChunk { msn: 6, part: 1 }));
    assert!(matches!(w.apply(end(5, 0, true), 0), Err(WindowError::UnexpectedPartEnd { .. })));
}

#[test]
fn bounds_are_enforced() {
    let cfg = WindowConfig {
        max_part_bytes: 4,
        max_chunks_per_part: 2,
        max_parts_per_segment: 2,
        max_init_bytes: 3,
        ..Default::default()
    };
    let mut w = LiveWindow::new(cfg);
    assert_eq!(w.apply(init(b"long"), 0), Err(WindowError::InitTooLarge { limit: 3 }));
    w.apply(init(b"ok"), 0).unwrap();
    assert_eq!(w.apply(chunk(0, 0, b"12345"), 0), Err(WindowError::PartTooLarge { limit: 4 }));
    w.apply(chunk(0, 0, b"12"), 0).unwrap();
    assert_eq!(w.apply(chunk(0, 0, b"345"), 0), Err(WindowError::PartTooLarge { limit: 4 }));
    w.apply(chunk(0, 0, b"3"), 0).unwrap();
    assert_eq!(w.apply(chunk(0, 0, b"4"), 0), Err(WindowError::TooManyChunks { limit: 2 }));
    w.apply(end(0, 0, false), 0).unwrap();
    w.apply(chunk(0, 1, b"a"), 0).unwrap();
    w.apply(end(0, 1, false), 0).unwrap();
    assert_eq!(w.apply(chunk(0, 2, b"a"), 0), Err(WindowError::TooManyParts { limit: 2 }));
}

#[test]
fn keeps_last_segments_and_referenced_inits() {
    let mut w = LiveWindow::new(WindowConfig { max_segments: 3, ..Default::default() });
    w.apply(init(b"first"), 0).unwrap();
    let first = w.current_init_id().unwrap();
    segment(&mut w, 0, 2, 0);
    segment(&mut w, 1, 2, 0);
    w.apply(init(b"second"), 0).unwrap();
    let second = w.current_init_id().unwrap();
    assert_ne!(first, second);
    for msn in 2..6 {
        segment(&mut w, msn, 2, 0);
    }
    assert_eq!(w.oldest_msn(), Some(3));
    assert_eq!(w.latest_msn(), Some(5));
    assert!(w.segment(2).is_none());
    assert!(w.init(first).is_none(), "unreferenced init is dropped");
    assert!(w.init(second).is_some());
    // Segment 2 (the discontinuous one) left the window.
    let pl = w.media_playlist(None).unwrap();
    assert!(pl.contains("#EXT-X-DISCONTINUITY-SEQUENCE:1\n"), "{pl}");
    assert!(!pl.contains("#EXT-X-DISCONTINUITY\n"), "{pl}");
}

#[test]
fn init_ids_are_stable_across_windows() {
    let mut a = LiveWindow::new(WindowConfig::default());
    let mut b = LiveWindow::new(WindowConfig::default());
    a.apply(init(b"same"), 0).unwrap();
    b.apply(init(b"same"), 99).unwrap();
    assert_eq!(a.current_init_id(), b.current_init_id());
}

#[test]
fn new_init_and_end_mark_discontinuities() {
    let mut w = LiveWindow::new(WindowConfig::default());
    w.apply(init(b"a"), 0).unwrap();
    segment(&mut w, 0, 1, 0);
    w.apply(init(b"b"), 0).unwrap();
    segment(&mut w, 1, 1, 0);
    assert!(!w.segment(0).unwrap().discontinuity);
    assert!(w.segment(1).unwrap().discontinuity);

    // End with an open part: the incomplete part is dropped, the segment closes.
    w.apply(chunk(2, 0, b"p0"), 0).unwrap();
    w.apply(end(2, 0, false), 0).unwrap();
    w.apply(chunk(2, 1, b"partial"), 0).unwrap();
    w.apply(MediaEvent::End, 0).unwrap();
    assert!(w.ended());
    assert_eq!(w.preload_hint(), None);
    assert_eq!(w.segment(2).unwrap().chunks.concat(), b"p0");
    assert!(w.media_playlist(None).unwrap().ends_with("#EXT-X-ENDLIST\n"));

    // A later chunk re-opens, discontinuous.
    segment(&mut w, 3, 1, 0);
    assert!(!w.ended());
    assert!(w.segment(3).unwrap().discontinuity);
}

#[test]
fn a_gap_restarts_the_window_discontinuous() {
    let mut w = LiveWindow::new(WindowConfig::default());
    w.apply(init(b"a"), 0).unwrap();
    segment(&mut w, 0, 1, 0);
    segment(&mut w, 1, 1, 0);
    segment(&mut w, 7, 1, 0);
    assert_eq!(w.oldest_msn(), Some(7));
    assert!(w.segment(7).unwrap().discontinuity);
}

#[test]
fn abandon_open_and_replay() {
    let mut w = LiveWindow::new(WindowConfig::default());
    w.apply(init(b"a"), 0).unwrap();
    segment(&mut w, 0, 3, 0);
    w.apply(chunk(1, 0, b"x"), 0).unwrap();
    w.abandon_open();
    assert_eq!(w.latest_msn(), Some(0));
    w.apply(chunk(1, 0, b"y"), 0).unwrap();

    let mut copy = LiveWindow::new(WindowConfig::default());
    copy.apply(init(b"a"), 0).unwrap();
    for ev in w.replay_segment(0).unwrap() {
        copy.apply(ev, 0).unwrap();
    }
    assert_eq!(copy.segment(0).unwrap().chunks, w.segment(0).unwrap().chunks);
    assert_eq!(copy.segment(0).unwrap().part_count, 3);
}

#[test]
fn targets_follow_the_longest_seen() {
    let mut w =
        LiveWindow::new(WindowConfig { part_target_ms: 334, segment_target_ms: 2000, ..Default::default() });
    assert_eq!(w.target_duration_secs(), 2);
    w.apply(init(b"a"), 0).unwrap();
    w.apply(chunk(0, 0, b"x"), 0).unwrap();
    w.apply(MediaEvent::PartEnd { msn: 0, part: 0, duration: 2.5, ends_segment: true }, 0).unwrap();
    assert_eq!(w.target_duration_secs(), 3);
    assert_eq!(w.part_target_secs(), 2.5);
}

#[test]
fn byte_bound_evicts_oldest_complete_segments_then_refuses() {
    // Segments of 2 parts of one 1-byte chunk: 2 bytes each; the window holds 5 bytes.
    let mut w = LiveWindow::new(WindowConfig { max_bytes: 5, ..Default::default() });
    w.apply(init(b"i"), 0).unwrap();
    for msn in 0..4 {
        segment(&mut w, msn, 2, 0);
        assert!(w.media_bytes() <= 5, "{} bytes held", w.media_bytes());
    }
    // 2 complete segments (4 bytes) fit; the third pushed the oldest out.
    assert_eq!((w.oldest_msn(), w.latest_msn()), (Some(2), Some(3)));
    assert_eq!(w.media_bytes(), 4);
    // An open segment growing past what is left evicts complete segments, oldest first.
    w.apply(chunk(4, 0, b"abc"), 0).unwrap();
    assert_eq!((w.oldest_msn(), w.media_bytes()), (Some(3), 5));
    w.apply(chunk(4, 0, b"d"), 0).unwrap();
    assert_eq!((w.oldest_msn(), w.media_bytes()), (Some(4), 4));
    // Nothing left to evict: refused, and the window is unchanged.
    let version = w.version();
    assert_eq!(w.apply(chunk(4, 0, b"ef"), 0), Err(WindowError::WindowFull { limit: 5 }));
    assert_eq!((w.version(), w.media_bytes()), (version, 4));
    // Abandoning the open segment gives its bytes back.
    w.abandon_open();
    assert_eq!(w.media_bytes(), 0);
}
