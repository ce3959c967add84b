//! The packager on real encoder output (ffmpeg-made FLV files): the CMAF it writes must be
//! decodable by ffmpeg with the right duration, and follow the part/segment rules.

mod packager_support;

use packager_support::*;
use skyrelay_common::media::MediaEvent;
use skyrelay_origin::packager::Packager;

fn init_info(events: &[MediaEvent]) -> Vec<&skyrelay_common::media::RenditionInfo> {
    events
        .iter()
        .filter_map(|e| match e {
            MediaEvent::Init { info, .. } => Some(info),
            _ => None,
        })
        .collect()
}

#[test]
fn audio_video_stream_is_decodable_cmaf() {
    let dir = tempfile::tempdir().unwrap();
    let flv = ffmpeg_flv(dir.path(), "av.flv", "640x360", 5, true, true);
    let tags = read_flv(&flv);
    let mut p = Packager::new(config());
    p.set_metadata_hint(Some(true), Some(true), Some(1_000_000));
    let mut events = Vec::new();
    feed(&mut p, &tags, 0, &mut events);
    p.end_session();
    drain(&mut p, &mut events);
    assert_eq!(events.last(), Some(&MediaEvent::End));

    let infos = init_info(&events);
    assert_eq!(infos.len(), 1);
    let info = infos[0];
    assert_eq!(info.codecs, "avc1.64001e,mp4a.40.2");
    assert_eq!(info.resolution, Some((640, 360)));
    assert_eq!(info.frame_rate, Some(30.0));
    assert_eq!(info.bandwidth, 1_200_000);
    assert!(info.has_video && info.has_audio);

    // 1 s GOP: segments of 2 s, within target + GOP.
    let files = check_events(&events, 0.333, 3.0, dir.path());
    let ends: Vec<f64> = segment_durations(&events);
    assert_eq!(ends.len(), 3, "{ends:?}");
    assert!((ends[0] - 2.0).abs() < 1e-6 && (ends[1] - 2.0).abs() < 1e-6, "{ends:?}");
    // Audio and video of a chunk start close together (sync within a few frames).
    for e in &events {
        if let MediaEvent::Chunk { bytes, .. } = e {
            let trafs = parse_chunk(bytes);
            let v = trafs.iter().find(|t| t.track_id == 1).map(|t| t.tfdt as f64 / 90_000.0);
            let a = trafs.iter().find(|t| t.track_id == 2).map(|t| t.tfdt as f64 / 48_000.0);
            if let (Some(v), Some(a)) = (v, a) {
                assert!((v - a).abs() < 0.1, "video {v} audio {a}");
            }
        }
    }
    let first_msn = first_msn(&events);
    assert_eq!(first_msn, 0, "first keyframe at 0 ms");
    let duration = decode_ok(&files[0]);
    assert!((duration - 5.0).abs() < 0.1, "duration {duration}");

    let st = p.stats();
    assert_eq!((st.inits, st.segments), (1, 3));
    assert!(st.bytes_out > st.bytes_in / 2);
    assert_eq!(st.rejected_tags, 0);
}

fn segment_durations(events: &[MediaEvent]) -> Vec<f64> {
    let mut out = Vec::new();
    let mut acc = 0.0;
    for e in events {
        if let MediaEvent::PartEnd { duration, ends_segment, .. } = e {
            acc += duration;
            if *ends_segment {
                out.push(acc);
                acc = 0.0;
            }
        }
    }
    out
}

fn first_msn(events: &[MediaEvent]) -> u64 {
    events
        .iter()
        .find_map(|e| match e {
            MediaEvent::Chunk { msn, .. } => Some(*msn),
            _ => None,
        })
        .expect("a chunk")
}

#[test]
fn video_only_and_audio_only() {
    let dir = tempfile::tempdir().unwrap();
    for (name, video, audio) in [("v.flv", true, false), ("a.flv", false, true)] {
        let flv = ffmpeg_flv(dir.path(), name, "320x240", 3, video, audio);
        let tags = read_flv(&flv);
        let mut p = Packager::new(config());
        p.set_metadata_hint(Some(video), Some(audio), None);
        let mut events = Vec::new();
        feed(&mut p, &tags, 0, &mut events);
        p.end_session();
        drain(&mut p, &mut events);
        let infos = init_info(&events);
        assert_eq!(infos.len(), 1, "{name}");
        assert_eq!((infos[0].has_video, infos[0].has_audio), (video, audio));
        let sub = dir.path().join(name.replace(".flv", ""));
        std::fs::create_dir_all(&sub).unwrap();
        let files = check_events(&events, 0.333, 3.0, &sub);
        let duration = decode_ok(&files[0]);
        assert!((duration - 3.0).abs() < 0.1, "{name}: duration {duration}");
    }
}

#[test]
fn audio_waits_for_metadata_announced_track_only_boundedly() {
    // Metadata announces audio but the stream has none: init comes after the bounded wait.
    let dir = tempfile::tempdir().unwrap();
    let flv = ffmpeg_flv(dir.path(), "v.flv", "320x240", 3, true, false);
    let tags = read_flv(&flv);
    let mut p = Packager::new(config());
    p.set_metadata_hint(Some(true), Some(true), None);
    let mut events = Vec::new();
    feed(&mut p, &tags, 0, &mut events);
    p.end_session();
    drain(&mut p, &mut events);
    let files = check_events(&events, 0.333, 3.0, dir.path());
    assert!(!init_info(&events)[0].has_audio);
    let duration = decode_ok(&files[0]);
    assert!((duration - 3.0).abs() < 0.1, "duration {duration}");
}

#[test]
fn timestamp_wrap_keeps_time_moving() {
    let dir = tempfile::tempdir().unwrap();
    let flv = ffmpeg_flv(dir.path(), "av.flv", "320x240", 4, true, true);
    let tags = read_flv(&flv);
    let offset = u32::MAX - 1500; // wraps 1.5 s in
    let mut p = Packager::new(config());
    let mut events = Vec::new();
    feed(&mut p, &tags, offset, &mut events);
    p.end_session();
    drain(&mut p, &mut events);
    let files = check_events(&events, 0.333, 3.0, dir.path());
    assert_eq!(first_msn(&events), u64::from(offset) / 2000);
    let duration = decode_ok(&files[0]);
    assert!((duration - 4.0).abs() < 0.1, "duration {duration}");
}

#[test]
fn sequence_header_change_and_new_publisher_start_new_inits() {
    let dir = tempfile::tempdir().unwrap();
    let a = read_flv(&ffmpeg_flv(dir.path(), "a.flv", "640x360", 3, true, true));
    let b = read_flv(&ffmpeg_flv(dir.path(), "b.flv", "320x240", 3, true, true));
    let mut p = Packager::new(config());
    let mut events = Vec::new();
    feed(&mut p, &a, 0, &mut events);
    // Same publisher switches resolution: timestamps continue.
    feed(&mut p, &b, 3000, &mut events);
    // Publisher leaves; a new one starts at timestamp 0 again.
    p.end_session();
    p.start_session();
    feed(&mut p, &a, 0, &mut events);
    p.end_session();
    drain(&mut p, &mut events);

    let infos = init_info(&events);
    assert_eq!(infos.len(), 3);
    assert_eq!(infos[1].resolution, Some((320, 240)));
    // An Init is always preceded by a segment end (or nothing).
    for (i, e) in events.iter().enumerate().skip(1) {
        if matches!(e, MediaEvent::Init { .. }) {
            assert!(matches!(
                events[i - 1],
                MediaEvent::PartEnd { ends_segment: true, .. } | MediaEvent::End
            ));
        }
    }
    let files = check_events(&events, 0.333, 3.0, dir.path());
    if let Ok(keep) = std::env::var("PACKAGER_TEST_KEEP") {
        for f in &files {
            std::fs::copy(f, std::path::Path::new(&keep).join(f.file_name().unwrap())).unwrap();
        }
    }
    assert_eq!(files.len(), 3);
    for f in &files {
        let d = decode_ok(f);
        assert!((d - 3.0).abs() < 0.15, "duration {d}");
    }
    assert_eq!(events.iter().filter(|e| **e == MediaEvent::End).count(), 2);
}

#[test]
fn same_input_same_events() {
    let dir = tempfile::tempdir().unwrap();
    let tags = read_flv(&ffmpeg_flv(dir.path(), "av.flv", "320x240", 3, true, true));
    let run = || {
        let mut p = Packager::new(config());
        let mut events = Vec::new();
        feed(&mut p, &tags[10..], 0, &mut events);
        p.end_session();
        drain(&mut p, &mut events);
        events
    };
    assert_eq!(run(), run());
}

#[test]
fn live_window_accepts_the_event_stream() {
    use skyrelay_common::window::{LiveWindow, WindowConfig};
    let dir = tempfile::tempdir().unwrap();
    let a = read_flv(&ffmpeg_flv(dir.path(), "a.flv", "320x240", 5, true, true));
    let mut p = Packager::new(config());
    let mut events = Vec::new();
    feed(&mut p, &a, 0, &mut events);
    p.end_session();
    p.start_session();
    feed(&mut p, &a, 0, &mut events);
    p.end_session();
    drain(&mut p, &mut events);
    let mut w = LiveWindow::new(WindowConfig {
        part_target_ms: 333,
        segment_target_ms: 2000,
        ..WindowConfig::default()
    });
    for (i, e) in events.into_iter().enumerate() {
        let desc = format!("{e:?}").chars().take(80).collect::<String>();
        w.apply(e, 1_000 + i as u64).unwrap_or_else(|err| panic!("event {i} {desc}: {err}"));
    }
    let playlist = w.media_playlist(None).expect("a playlist");
    assert!(playlist.contains("#EXT-X-DISCONTINUITY"), "{playlist}");
    assert!(w.ended());
}
