use bytes::Bytes;

use super::*;
use crate::media::RenditionInfo;

fn init(id: u32) -> InitSegment {
    let info = RenditionInfo {
        name: "source".into(),
        codecs: "avc1.64001f".into(),
        bandwidth: 1,
        resolution: None,
        frame_rate: None,
        has_video: true,
        has_audio: false,
    };
    InitSegment { id, info, bytes: Bytes::from(vec![id as u8; 4]) }
}

fn h(msn: u64, part: u32) -> PartHeader {
    PartHeader {
        subscription: 1,
        msn,
        part,
        independent: part == 0,
        origin_ms: 1000 + msn * 10 + u64::from(part),
        init_id: 7,
    }
}

fn pos(msn: u64, part: u32) -> Position {
    Position { msn, part }
}

fn kinds(out: &[Action]) -> Vec<String> {
    out.iter()
        .map(|a| match a {
            Action::Apply(MediaEvent::Init { .. }, _) => "init".to_string(),
            Action::Apply(MediaEvent::Chunk { msn, part, bytes, .. }, _) => {
                format!("c{msn}.{part}:{}", bytes.len())
            }
            Action::Apply(MediaEvent::PartEnd { msn, part, ends_segment, .. }, _) => {
                format!("e{msn}.{part}{}", if *ends_segment { "!" } else { "" })
            }
            Action::Apply(MediaEvent::End, _) => "end".to_string(),
            Action::AbandonOpen => "abandon".to_string(),
        })
        .collect()
}

fn t(ends: bool) -> PartTrailer {
    PartTrailer { duration: 0.5, ends_segment: ends }
}

#[test]
fn in_order_streaming_and_reordering() {
    let mut a = Assembler::new(8, None);
    let mut out = Vec::new();
    a.on_start(Some(5), &mut out);
    a.on_init(init(7), &mut out);
    a.on_header(1, h(5, 0), &mut out).unwrap();
    a.on_chunk(1, pos(5, 0), Bytes::from_static(b"a"), &mut out);
    // Part 1 arrives complete before part 0 ends: it waits.
    a.on_header(2, h(5, 1), &mut out).unwrap();
    a.on_chunk(2, pos(5, 1), Bytes::from_static(b"bb"), &mut out);
    a.on_trailer(2, pos(5, 1), t(true), &mut out);
    assert_eq!(kinds(&out), ["init", "c5.0:1"]);
    a.on_chunk(1, pos(5, 0), Bytes::from_static(b"ccc"), &mut out);
    a.on_trailer(1, pos(5, 0), t(false), &mut out);
    assert_eq!(kinds(&out), ["init", "c5.0:1", "c5.0:3", "e5.0", "c5.1:2", "e5.1!"]);
    assert_eq!(a.next(), Some(pos(6, 0)));
    out.clear();
    a.on_ended(Some(pos(5, 1)), &mut out);
    assert_eq!(kinds(&out), ["end"]);
}

#[test]
fn redelivery_skips_emitted_chunks_and_abort_allows_refill() {
    let mut a = Assembler::new(8, Some(7));
    let mut out = Vec::new();
    a.on_start(Some(1), &mut out);
    a.on_header(1, h(1, 0), &mut out).unwrap();
    a.on_chunk(1, pos(1, 0), Bytes::from_static(b"x"), &mut out);
    a.on_abort(1, pos(1, 0));
    // A fetch brings the whole part again.
    a.on_header(9, h(1, 0), &mut out).unwrap();
    a.on_chunk(9, pos(1, 0), Bytes::from_static(b"x"), &mut out);
    a.on_chunk(9, pos(1, 0), Bytes::from_static(b"yy"), &mut out);
    a.on_trailer(9, pos(1, 0), t(true), &mut out);
    assert_eq!(kinds(&out), ["c1.0:1", "c1.0:2", "e1.0!"]);
}

#[test]
fn give_up_abandons_and_overflow_is_reported() {
    let mut a = Assembler::new(2, Some(7));
    let mut out = Vec::new();
    a.on_start(Some(3), &mut out);
    a.on_header(1, h(3, 0), &mut out).unwrap();
    a.on_trailer(1, pos(3, 0), t(false), &mut out);
    a.on_header(3, h(3, 2), &mut out).unwrap();
    a.on_header(4, h(4, 0), &mut out).unwrap();
    assert!(a.on_header(5, h(4, 1), &mut out).is_err());
    a.give_up(3, &mut out);
    assert_eq!(kinds(&out), ["e3.0", "abandon"]);
    assert_eq!(a.next(), Some(pos(4, 0)));
    assert_eq!(a.buffered(), 1);
}

#[test]
fn resubscribe_behind_the_window_abandons() {
    let mut a = Assembler::new(8, Some(7));
    let mut out = Vec::new();
    a.on_start(Some(3), &mut out);
    a.on_header(1, h(3, 0), &mut out).unwrap();
    a.on_trailer(1, pos(3, 0), t(false), &mut out);
    out.clear();
    a.on_start(Some(10), &mut out);
    assert_eq!(kinds(&out), ["abandon"]);
    assert_eq!(a.next(), Some(pos(10, 0)));
    // Old parts are ignored now.
    a.on_header(2, h(3, 1), &mut out).unwrap();
    assert_eq!(a.buffered(), 0);
}

#[test]
fn empty_upstream_after_restart_follows_its_first_part() {
    let mut a = Assembler::new(8, Some(7));
    let mut out = Vec::new();
    a.on_start(Some(3), &mut out);
    a.on_header(1, h(3, 0), &mut out).unwrap();
    a.on_trailer(1, pos(3, 0), t(false), &mut out);
    out.clear();
    a.on_start(None, &mut out);
    assert_eq!(kinds(&out), ["abandon"]);
    assert_eq!(a.next(), None);
    a.on_header(2, h(9, 0), &mut out).unwrap();
    a.on_trailer(2, pos(9, 0), t(true), &mut out);
    assert_eq!(kinds(&out), ["abandon", "e9.0!"]);
    assert_eq!(a.next(), Some(pos(10, 0)));
}

proptest::proptest! {
    /// Whole parts delivered in any order, some twice, come out once each, in order.
    #[test]
    fn any_delivery_order_yields_the_publishing_order(
        sizes in proptest::collection::vec(1usize..4, 1..8),
        order in proptest::collection::vec(0usize..100, 1..24),
    ) {
        let n = sizes.len();
        let mut a = Assembler::new(64, Some(7));
        let mut out = Vec::new();
        a.on_start(Some(2), &mut out);
        // Every part at least once, plus extra (duplicate) deliveries in random order.
        let mut deliveries: Vec<usize> = (0..n).collect();
        deliveries.extend(order.iter().map(|o| o % n));
        let len = deliveries.len();
        for (i, o) in order.iter().enumerate() {
            deliveries.swap(i % len, o % len);
        }
        for (token, &p) in deliveries.iter().enumerate() {
            let part = p as u32;
            let token = token as u64;
            a.on_header(token, h(2, part), &mut out).unwrap();
            for c in 0..sizes[p] {
                a.on_chunk(token, pos(2, part), Bytes::from(vec![p as u8; c + 1]), &mut out);
            }
            a.on_trailer(token, pos(2, part), t(p + 1 == n), &mut out);
        }
        let mut expected = Vec::new();
        for (p, size) in sizes.iter().enumerate() {
            for c in 0..*size {
                expected.push(format!("c2.{p}:{}", c + 1));
            }
            expected.push(format!("e2.{p}{}", if p + 1 == n { "!" } else { "" }));
        }
        proptest::prop_assert_eq!(kinds(&out), expected);
        proptest::prop_assert_eq!(a.next(), Some(pos(3, 0)));
        proptest::prop_assert_eq!(a.buffered(), 0);
    }
}
