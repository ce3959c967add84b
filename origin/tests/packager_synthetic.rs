//! The packager on synthetic streams (real SPS, fake slices): timing edge cases, numbering,
//! bounds and errors, checked on the structure of the events and the CMAF boxes.

mod packager_support;

use bytes::Bytes;
use packager_support::*;
use skyrelay_common::media::MediaEvent;
use skyrelay_origin::packager::{Packager, PackagerConfig, PackagerError};

fn run(cfg: PackagerConfig, tags: &[(bool, u32, Bytes)]) -> (Vec<MediaEvent>, Packager) {
    let mut p = Packager::new(cfg);
    let mut events = Vec::new();
    feed_synthetic(&mut p, tags, &mut events);
    p.end_session();
    drain(&mut p, &mut events);
    (events, p)
}

fn chunks(events: &[MediaEvent]) -> Vec<(u64, u32, Vec<Traf>)> {
    events
        .iter()
        .filter_map(|e| match e {
            MediaEvent::Chunk { msn, part, bytes, .. } => Some((*msn, *part, parse_chunk(bytes))),
            _ => None,
        })
        .collect()
}

#[test]
fn wrap_at_2_pow_32_is_continuous() {
    let start = u32::MAX - 999; // wraps after 1 s
    let tags = synthetic(150, 30, 30, true, start);
    let (events, _) = run(config(), &tags);
    let dir = tempfile::tempdir().unwrap();
    check_events(&events, 0.333, 3.0, dir.path());
    let video: Vec<u64> = chunks(&events)
        .iter()
        .flat_map(|(_, _, t)| t.iter().filter(|t| t.track_id == 1).map(|t| t.tfdt).collect::<Vec<_>>())
        .collect();
    assert_eq!(video.len(), 150);
    for w in video.windows(2) {
        let d = w[1] - w[0];
        assert!((2970..=3060).contains(&d), "steady 30 fps (ms rounding) across the wrap: {d}");
    }
    assert_eq!(video[0], u64::from(start) * 90);
}

#[test]
fn non_monotonic_timestamps_are_clamped() {
    let mut tags = synthetic(90, 30, 30, true, 5000);
    // A video frame jumps 2 s back, an audio frame 500 ms back.
    for (i, t) in tags.iter_mut().enumerate() {
        if i == 40 && t.0 {
            t.1 -= 2000;
        }
        if i == 60 && !t.0 {
            t.1 -= 500;
        }
    }
    let tags: Vec<_> = tags;
    let (events, p) = run(config(), &tags);
    let dir = tempfile::tempdir().unwrap();
    check_events(&events, 0.333, 3.0, dir.path()); // tfdt increasing, durations > 0
    assert_eq!(p.stats().rejected_tags, 0);
}

#[test]
fn numbering_comes_from_media_time() {
    let tags = synthetic(200, 30, 30, false, 10_000);
    let (events, _) = run(config(), &tags);
    let msns: Vec<u64> = chunks(&events).iter().map(|c| c.0).collect();
    assert_eq!(msns[0], 5, "10 s / 2 s");
    assert_eq!(*msns.last().unwrap(), 8);
}

#[test]
fn part_targets_are_respected() {
    for target in [100, 200, 500, 1000] {
        let cfg = PackagerConfig { part_target_ms: target, segment_target_ms: 2000, ..config() };
        let tags = synthetic(300, 30, 60, true, 0);
        let (events, _) = run(cfg, &tags);
        let dir = tempfile::tempdir().unwrap();
        // 2 s GOP: segments are exactly 2 s.
        check_events(&events, f64::from(target) / 1000.0, 2.0, dir.path());
        let parts = events.iter().filter(|e| matches!(e, MediaEvent::PartEnd { .. })).count();
        assert!(parts >= 10_000 / target as usize / 2, "target {target}: {parts} parts");
    }
}

#[test]
fn nal_length_size_2_is_rewritten_to_4() {
    let mut tags = synthetic(30, 30, 30, false, 0);
    // avcC lengthSizeMinusOne = 1; frames with 2-byte lengths.
    let mut rec = tags[0].2.to_vec();
    rec[9] = 0xfd;
    tags[0].2 = Bytes::from(rec);
    for t in tags.iter_mut().skip(1) {
        let b = t.2.to_vec();
        let mut n = b[..5].to_vec();
        n.extend_from_slice(&[0, 4]);
        n.extend_from_slice(&b[9..]);
        t.2 = Bytes::from(n);
    }
    let (events, _) = run(config(), &tags);
    let init = match &events[0] {
        MediaEvent::Init { bytes, .. } => bytes.clone(),
        other => panic!("{other:?}"),
    };
    let pos = init.windows(4).position(|w| w == b"avcC").unwrap();
    assert_eq!(init[pos + 8] & 3, 3, "avcC says 4-byte lengths");
    let first = events.iter().find_map(|e| match e {
        MediaEvent::Chunk { bytes, .. } => Some(bytes.clone()),
        _ => None,
    });
    let first = first.unwrap();
    assert_eq!(&first[first.len() - 8..], &[0, 0, 0, 4, 0x65, 0x88, 0x84, 0]);
}

#[test]
fn audio_only_without_hint_starts_after_bounded_wait() {
    let tags: Vec<_> = synthetic(90, 30, 30, true, 0).into_iter().filter(|t| !t.0).collect();
    let mut p = Packager::new(config());
    let mut events = Vec::new();
    feed_synthetic(&mut p, &tags, &mut events);
    assert!(
        matches!(events.first(), Some(MediaEvent::Init { info, .. }) if !info.has_video && info.has_audio)
    );
    p.end_session();
    drain(&mut p, &mut events);
    let dir = tempfile::tempdir().unwrap();
    check_events(&events, 0.333, 2.1, dir.path());
    // Every audio frame made it (none dropped while waiting).
    let samples: usize = chunks(&events).iter().flat_map(|c| c.2.iter()).map(|t| t.samples.len()).sum();
    assert_eq!(samples, tags.len() - 1);
}

#[test]
fn identical_sequence_header_is_ignored_changed_one_cuts() {
    let mut tags = synthetic(90, 30, 30, true, 0);
    let seq = tags[0].clone();
    tags.insert(40, (true, 1200, seq.2.clone()));
    let (events, _) = run(config(), &tags);
    assert_eq!(events.iter().filter(|e| matches!(e, MediaEvent::Init { .. })).count(), 1);

    let mut changed = seq.2.to_vec();
    changed[8] = 0x1f; // level 3.1
    let mut tags = synthetic(90, 30, 30, true, 0);
    tags.insert(60, (true, 1500, Bytes::from(changed)));
    let (events, p) = run(config(), &tags);
    let inits: Vec<usize> = events
        .iter()
        .enumerate()
        .filter(|(_, e)| matches!(e, MediaEvent::Init { .. }))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(inits.len(), 2);
    assert!(matches!(events[inits[1] - 1], MediaEvent::PartEnd { ends_segment: true, .. }));
    let dir = tempfile::tempdir().unwrap();
    check_events(&events, 0.333, 3.0, dir.path());
    assert!(p.stats().dropped_frames > 0, "inter frames until the next keyframe are dropped");
}

#[test]
fn pending_bytes_are_bounded() {
    // Metadata promises audio that never comes: frames wait, within the bound.
    let tags: Vec<_> = synthetic(20, 30, 30, false, 0);
    let cfg = PackagerConfig { max_pending_bytes: 40, ..config() };
    let mut p = Packager::new(cfg);
    p.set_metadata_hint(Some(true), Some(true), None);
    let mut events = Vec::new();
    feed_synthetic(&mut p, &tags, &mut events);
    assert!(events.is_empty(), "still waiting for audio");
    assert!(p.stats().dropped_frames >= 15);
}

#[test]
fn bad_tags_are_rejected_and_the_stream_goes_on() {
    let tags = synthetic(60, 30, 30, false, 0);
    let mut p = Packager::new(config());
    let mut events = Vec::new();
    for (i, (_, ts, body)) in tags.iter().enumerate() {
        if i == 20 {
            // A NAL length that runs past the frame.
            let bad = Bytes::from_static(&[0x27, 1, 0, 0, 0, 0, 0, 9, 9, 1]);
            assert!(matches!(p.push_video(*ts, bad), Err(PackagerError::Codec(_))));
            let bad = Bytes::from_static(&[0x22, 1, 0, 0, 0]);
            assert!(matches!(p.push_video(*ts, bad), Err(PackagerError::Flv(_))));
            let bad = Bytes::from_static(&[0x2f, 1, 0, 0, 0]);
            assert!(matches!(p.push_audio(*ts, bad), Err(PackagerError::Flv(_))));
        }
        p.push_video(*ts, body.clone()).unwrap();
        drain(&mut p, &mut events);
    }
    p.end_session();
    drain(&mut p, &mut events);
    assert_eq!(p.stats().rejected_tags, 3);
    let dir = tempfile::tempdir().unwrap();
    check_events(&events, 0.333, 3.0, dir.path());
    let samples: usize = chunks(&events).iter().flat_map(|c| c.2.iter()).map(|t| t.samples.len()).sum();
    assert_eq!(samples, 60);
}

#[test]
fn session_restart_rebases_and_continues_numbering() {
    let tags = synthetic(90, 30, 30, true, 0);
    let mut p = Packager::new(config());
    let mut events = Vec::new();
    feed_synthetic(&mut p, &tags, &mut events);
    p.end_session();
    // Pushing after end_session starts a new session implicitly.
    feed_synthetic(&mut p, &tags, &mut events);
    p.end_session();
    drain(&mut p, &mut events);
    let dir = tempfile::tempdir().unwrap();
    check_events(&events, 0.333, 3.0, dir.path());
    let c = chunks(&events);
    let second_init = events.iter().rposition(|e| matches!(e, MediaEvent::Init { .. })).unwrap();
    let before = events[..second_init].iter().filter(|e| matches!(e, MediaEvent::Chunk { .. })).count();
    let v_tfdt = |t: &Vec<Traf>| t.iter().find(|t| t.track_id == 1).map(|t| t.tfdt);
    let t = v_tfdt(&c[before].2).unwrap();
    assert!((269_000..=271_000).contains(&t), "new session starts where the first ended: {t}");
    assert_eq!(c[before].0, c[before - 1].0 + 1);
}

#[test]
fn audio_time_follows_sample_counts_and_reanchors_on_gaps() {
    // Audio only, 48 kHz AAC: ms timestamps jitter by rounding; a 500 ms hole at frame 100.
    let mut tags = vec![(false, 0u32, Bytes::from_static(&[0xaf, 0, 0x11, 0x90]))];
    for n in 0..200u64 {
        let mut ms = n * 1024 * 1000 / 48000;
        if n >= 100 {
            ms += 500;
        }
        tags.push((false, ms as u32, Bytes::from_static(&[0xaf, 1, 0x21, 0x10, 0x05])));
    }
    let mut p = Packager::new(config());
    p.set_metadata_hint(Some(false), Some(true), None);
    let mut events = Vec::new();
    feed_synthetic(&mut p, &tags, &mut events);
    p.end_session();
    drain(&mut p, &mut events);
    let samples: Vec<(u64, u32)> = chunks(&events)
        .iter()
        .flat_map(|c| c.2.iter())
        .flat_map(|t| {
            let mut at = t.tfdt;
            t.samples
                .iter()
                .map(move |s| {
                    let r = (at, s.0);
                    at += u64::from(s.0);
                    r
                })
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(samples.len(), 200);
    for (i, (dts, dur)) in samples.iter().enumerate() {
        let expected = if i < 100 { i as u64 * 1024 } else { i as u64 * 1024 + 24_000 };
        assert!(dts.abs_diff(expected) <= 48, "sample {i}: dts {dts} vs {expected}");
        if i != 99 {
            assert_eq!(*dur, 1024, "sample {i}: exact frame durations");
        }
    }
}

#[test]
fn hostile_timestamp_jumps_do_not_overflow() {
    // Every tag jumps forward by almost 2^31 ms: the timeline grows huge but stays sane.
    let tags = synthetic(300, 30, 30, true, 0);
    let mut p = Packager::new(config());
    let mut events = Vec::new();
    for (i, (video, _, body)) in tags.iter().enumerate() {
        let ts = (i as u32).wrapping_mul(0x7fff_fff0);
        let _ = if *video { p.push_video(ts, body.clone()) } else { p.push_audio(ts, body.clone()) };
        drain(&mut p, &mut events);
    }
    p.end_session();
    drain(&mut p, &mut events);
    let dir = tempfile::tempdir().unwrap();
    // Samples are capped at 10 s: a part holding one such sample is that long, and a
    // 30-frame GOP lasts 300 s.
    check_events(&events, 10.0, 300.0, dir.path());
}
