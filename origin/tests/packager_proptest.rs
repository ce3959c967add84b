//! Property tests: random and mutated FLV input never panics the FLV parsers, the FLV file
//! reader or the packager, and whatever the packager emits still follows the event rules.

mod packager_support;

use bytes::Bytes;
use packager_support::*;
use proptest::prelude::*;
use skyrelay_common::media::MediaEvent;
use skyrelay_origin::codec::{AacConfig, AvcConfig};
use skyrelay_origin::flv::{self, FlvReader};
use skyrelay_origin::packager::Packager;

fn mutate(body: &Bytes, flips: &[(usize, u8)], cut: Option<usize>) -> Bytes {
    let mut v = body.to_vec();
    for &(i, x) in flips {
        if !v.is_empty() {
            let n = v.len();
            v[i % n] ^= x;
        }
    }
    if let Some(c) = cut {
        v.truncate(c % (v.len() + 1));
    }
    Bytes::from(v)
}

/// Loose event-order checks that hold for any input.
fn sane(events: &[MediaEvent]) {
    let mut open: Option<(u64, u32)> = None;
    for e in events {
        match e {
            MediaEvent::Init { .. } => assert!(open.is_none()),
            MediaEvent::Chunk { msn, part, bytes, .. } => {
                if let Some(o) = open {
                    assert_eq!(o, (*msn, *part));
                }
                open = Some((*msn, *part));
                parse_chunk(bytes);
            }
            MediaEvent::PartEnd { msn, part, duration, .. } => {
                assert_eq!(open, Some((*msn, *part)));
                assert!(duration.is_finite() && *duration >= 0.0);
                open = None;
            }
            MediaEvent::End => assert!(open.is_none()),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_bodies_never_panic(
        tags in prop::collection::vec((any::<bool>(), any::<u32>(), prop::collection::vec(any::<u8>(), 0..64)), 0..64)
    ) {
        let mut p = Packager::new(config());
        let mut events = Vec::new();
        for (video, ts, body) in tags {
            let body = Bytes::from(body);
            let _ = flv::parse_video(&body);
            let _ = flv::parse_audio(&body);
            let _ = if video { p.push_video(ts, body) } else { p.push_audio(ts, body) };
            drain(&mut p, &mut events);
        }
        p.end_session();
        drain(&mut p, &mut events);
        sane(&events);
    }

    #[test]
    fn mutated_stream_never_panics(
        muts in prop::collection::vec((0usize..400, prop::collection::vec((any::<usize>(), 1u8..), 1..4), prop::option::of(any::<usize>()), -3000i64..3000), 0..12),
        restart_at in prop::option::of(0usize..400),
    ) {
        let mut tags = synthetic(120, 30, 30, true, 1000);
        for (at, flips, cut, shift) in &muts {
            let n = tags.len();
            let t = &mut tags[at % n];
            t.2 = mutate(&t.2, flips, *cut);
            t.1 = (i64::from(t.1) + shift).max(0) as u32;
        }
        let mut p = Packager::new(config());
        p.set_metadata_hint(Some(true), Some(true), None);
        let mut events = Vec::new();
        for (i, (video, ts, body)) in tags.into_iter().enumerate() {
            if Some(i) == restart_at {
                p.start_session();
            }
            let _ = if video { p.push_video(ts, body) } else { p.push_audio(ts, body) };
            drain(&mut p, &mut events);
        }
        p.end_session();
        drain(&mut p, &mut events);
        sane(&events);
    }

    #[test]
    fn flv_reader_never_panics(
        data in prop::collection::vec(any::<u8>(), 0..512),
        flips in prop::collection::vec((any::<usize>(), 1u8..), 0..6),
        step in 1usize..64,
    ) {
        // A valid file, mutated, and random bytes after a valid header.
        let mut file = b"FLV\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00".to_vec();
        let mut prev = 0u32;
        for (video, ts, body) in synthetic(10, 30, 30, true, 0) {
            if prev > 0 {
                file.extend_from_slice(&prev.to_be_bytes());
            }
            file.push(if video { 9 } else { 8 });
            file.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
            file.extend_from_slice(&ts.to_be_bytes()[1..]);
            file.extend_from_slice(&[0, 0, 0, 0]);
            file.extend_from_slice(&body);
            prev = 11 + body.len() as u32;
        }
        let file = mutate(&Bytes::from(file), &flips, None).to_vec();
        let mut random = b"FLV\x01\x05\x00\x00\x00\x09".to_vec();
        random.extend_from_slice(&data);
        for input in [file, random, data] {
            let mut r = FlvReader::new(1024);
            for piece in input.chunks(step) {
                let mut rest = piece;
                while !rest.is_empty() {
                    let n = r.feed(rest);
                    rest = &rest[n..];
                    while let Ok(Some(_)) = r.next_tag() {}
                    if n == 0 {
                        break;
                    }
                }
            }
            let _ = r.finish();
        }
    }

    #[test]
    fn config_records_never_panic(
        sps in prop::collection::vec(any::<u8>(), 0..64),
        flips in prop::collection::vec((any::<usize>(), 1u8..), 0..4),
        asc in prop::collection::vec(any::<u8>(), 0..8),
    ) {
        const REAL_SPS: &[u8] = &[
            0x67, 0x64, 0x00, 0x1e, 0xac, 0xd9, 0x40, 0xa0, 0x2f, 0xf9, 0x70, 0x11, 0x00, 0x00,
            0x03, 0x00, 0x01, 0x00, 0x00, 0x03, 0x00, 0x3c, 0x0f, 0x16, 0x2d, 0x96,
        ];
        let mutated = mutate(&Bytes::from_static(REAL_SPS), &flips, None);
        let mut random = vec![0x67];
        random.extend_from_slice(&sps);
        for sps in [mutated.to_vec(), random] {
            let mut rec = vec![1, 0x64, 0, 0x1e, 0xff, 0xe1];
            rec.extend_from_slice(&(sps.len() as u16).to_be_bytes());
            rec.extend_from_slice(&sps);
            rec.extend_from_slice(&[1, 0, 1, 0x68]);
            let _ = AvcConfig::parse(&Bytes::from(rec));
        }
        let _ = AacConfig::parse(&Bytes::from(asc));
    }
}
