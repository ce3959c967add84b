//! Helpers shared by the packager tests: FLV input (ffmpeg-made or synthetic), running a
//! packager, checking the event stream, and reading back the CMAF it wrote.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use bytes::Bytes;
use skyrelay_common::media::MediaEvent;
use skyrelay_origin::flv::{FlvReader, FlvTag, TagKind};
use skyrelay_origin::packager::{Packager, PackagerConfig};

/// Encodes an FLV with ffmpeg. `video`/`audio` select the inputs.
pub fn ffmpeg_flv(dir: &Path, name: &str, size: &str, secs: u32, video: bool, audio: bool) -> PathBuf {
    let out = dir.join(name);
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-v", "error", "-y"]);
    if video {
        cmd.args(["-f", "lavfi", "-i", &format!("testsrc2=size={size}:rate=30")]);
    }
    if audio {
        cmd.args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"]);
    }
    cmd.args(["-t", &secs.to_string()]);
    if video {
        cmd.args(["-c:v", "libx264", "-g", "30", "-pix_fmt", "yuv420p"]);
    }
    if audio {
        cmd.args(["-c:a", "aac", "-b:a", "96k"]);
    }
    cmd.args(["-f", "flv"]).arg(&out);
    let status = cmd.status().expect("ffmpeg runs (the test command installs it)");
    assert!(status.success(), "ffmpeg failed");
    out
}

/// Reads every tag of an FLV file through the sans-IO reader, in 4 KiB reads.
pub fn read_flv(path: &Path) -> Vec<FlvTag> {
    let data = std::fs::read(path).expect("read flv");
    let mut r = FlvReader::new(16 << 20);
    let mut tags = Vec::new();
    let mut rest: &[u8] = &data;
    loop {
        let n = r.feed(&rest[..rest.len().min(4096)]);
        rest = &rest[n..];
        while let Some(t) = r.next_tag().expect("valid flv") {
            tags.push(t);
        }
        if rest.is_empty() {
            break;
        }
    }
    r.finish().expect("file ends on a tag boundary");
    tags
}

pub fn config() -> PackagerConfig {
    PackagerConfig {
        rendition: "source".into(),
        part_target_ms: 333,
        segment_target_ms: 2000,
        max_pending_bytes: 16 << 20,
    }
}

/// Pushes tags (timestamps shifted by `offset`, wrapping) and drains events.
pub fn feed(p: &mut Packager, tags: &[FlvTag], offset: u32, events: &mut Vec<MediaEvent>) {
    for t in tags {
        let ts = t.timestamp_ms.wrapping_add(offset);
        match t.kind {
            TagKind::Video => p.push_video(ts, t.body.clone()).expect("video tag"),
            TagKind::Audio => p.push_audio(ts, t.body.clone()).expect("audio tag"),
            _ => {}
        }
        while let Some(e) = p.poll_event() {
            events.push(e);
        }
    }
}

pub fn drain(p: &mut Packager, events: &mut Vec<MediaEvent>) {
    while let Some(e) = p.poll_event() {
        events.push(e);
    }
}

/// One traf of a chunk.
#[derive(Debug, Clone)]
pub struct Traf {
    pub track_id: u32,
    pub tfdt: u64,
    /// (duration, size, flags, cts offset); flags/cto are the tfhd default (or 0) when absent.
    pub samples: Vec<(u32, u32, u32, i32)>,
}

fn boxes(data: &[u8]) -> Vec<([u8; 4], &[u8])> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos + 8 <= data.len() {
        let size = u32::from_be_bytes(data[pos..pos + 4].try_into().unwrap()) as usize;
        assert!(size >= 8 && pos + size <= data.len(), "box size in bounds");
        let kind: [u8; 4] = data[pos + 4..pos + 8].try_into().unwrap();
        out.push((kind, &data[pos + 8..pos + size]));
        pos += size;
    }
    assert_eq!(pos, data.len(), "boxes fill the buffer");
    out
}

fn be32(d: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(d[at..at + 4].try_into().unwrap())
}

/// Parses a chunk (moof + mdat pairs) and checks the data offsets land in the mdat.
pub fn parse_chunk(chunk: &[u8]) -> Vec<Traf> {
    let top = boxes(chunk);
    assert!(top.len() >= 2 && top.len().is_multiple_of(2));
    let mut trafs = Vec::new();
    for pair in top.chunks(2) {
        assert_eq!(&pair[0].0, b"moof");
        assert_eq!(&pair[1].0, b"mdat");
        let moof_size = pair[0].1.len() + 8;
        let mdat_len = pair[1].1.len();
        for (kind, body) in boxes(pair[0].1) {
            if &kind != b"traf" {
                continue;
            }
            let mut t = Traf { track_id: 0, tfdt: 0, samples: Vec::new() };
            let mut default_flags = 0;
            for (k, b) in boxes(body) {
                match &k {
                    b"tfhd" => {
                        let flags = be32(b, 0) & 0xff_ffff;
                        assert!(flags & 0x02_0000 != 0, "default-base-is-moof");
                        t.track_id = be32(b, 4);
                        if flags & 0x20 != 0 {
                            default_flags = be32(b, 8);
                        }
                    }
                    b"tfdt" => {
                        assert_eq!(b[0], 1, "tfdt v1");
                        t.tfdt = u64::from_be_bytes(b[4..12].try_into().unwrap());
                    }
                    b"trun" => {
                        let flags = be32(b, 0) & 0xff_ffff;
                        let n = be32(b, 4) as usize;
                        let off = be32(b, 8) as usize;
                        assert!(off >= moof_size + 8 && off <= moof_size + 8 + mdat_len);
                        let mut p = 12;
                        for _ in 0..n {
                            let d = be32(b, p);
                            let s = be32(b, p + 4);
                            p += 8;
                            let (mut f, mut c) = (default_flags, 0);
                            if flags & 0x400 != 0 {
                                f = be32(b, p);
                                p += 4;
                            }
                            if flags & 0x800 != 0 {
                                c = be32(b, p) as i32;
                                p += 4;
                            }
                            t.samples.push((d, s, f, c));
                        }
                    }
                    _ => {}
                }
            }
            trafs.push(t);
        }
    }
    trafs
}

/// Checks the structural rules of an event stream; returns per-generation MP4 files
/// (init + its chunks) written into `dir`.
pub fn check_events(events: &[MediaEvent], part_target: f64, max_segment: f64, dir: &Path) -> Vec<PathBuf> {
    assert!(matches!(events.first(), Some(MediaEvent::Init { .. })), "Init first");
    let mut files: Vec<Vec<u8>> = Vec::new();
    let mut open: Option<(u64, u32, bool)> = None; // msn, part, independent
    let mut last_msn: Option<u64> = None;
    let mut seg_duration = 0.0;
    let mut last_tfdt: std::collections::HashMap<u32, (u64, u64)> = Default::default();
    let mut segment_open = false;
    for e in events {
        let mut first_of_segment = false;
        match e {
            MediaEvent::Init { bytes, .. } => {
                assert!(open.is_none(), "no part open across an Init");
                assert!(!segment_open, "no segment open across an Init");
                files.push(bytes.to_vec());
            }
            MediaEvent::Chunk { msn, part, independent, bytes } => {
                match open {
                    Some((m, p, i)) => {
                        assert_eq!((m, p, i), (*msn, *part, *independent), "chunk joins the open part");
                    }
                    None => {
                        if *part == 0 {
                            assert!(!segment_open);
                            first_of_segment = true;
                            if let Some(l) = last_msn {
                                assert_eq!(*msn, l + 1, "msn consecutive");
                            }
                            last_msn = Some(*msn);
                            segment_open = true;
                            seg_duration = 0.0;
                            assert!(*independent, "first part of a segment is independent");
                        } else {
                            assert!(segment_open);
                            assert_eq!(Some(*msn), last_msn);
                        }
                        open = Some((*msn, *part, *independent));
                    }
                }
                let trafs = parse_chunk(bytes);
                for t in &trafs {
                    if let Some((prev_tfdt, prev_end)) = last_tfdt.get(&t.track_id) {
                        assert!(t.tfdt > *prev_tfdt, "tfdt increases");
                        assert!(t.tfdt >= *prev_end, "no overlap: {} < {}", t.tfdt, prev_end);
                    }
                    let dur: u64 = t.samples.iter().map(|s| u64::from(s.0)).sum();
                    assert!(t.samples.iter().all(|s| s.0 > 0), "positive durations");
                    last_tfdt.insert(t.track_id, (t.tfdt, t.tfdt + dur));
                }
                if first_of_segment {
                    // first chunk of a segment with video: starts with a sync sample.
                    if let Some(v) = trafs.iter().find(|t| t.track_id == 1) {
                        assert_eq!(v.samples[0].2 & 0x0001_0000, 0);
                    }
                }
                files.last_mut().expect("init before chunks").extend_from_slice(bytes);
            }
            MediaEvent::PartEnd { msn, part, duration, ends_segment } => {
                assert_eq!(
                    open,
                    Some((*msn, *part, open.is_some_and(|o| o.2))),
                    "PartEnd closes the open part"
                );
                assert!(*duration <= part_target + 1e-9, "part {duration} <= target {part_target}");
                assert!(*duration > 0.0);
                seg_duration += duration;
                open = None;
                if *ends_segment {
                    assert!(seg_duration <= max_segment + 1e-6, "segment {seg_duration} <= {max_segment}");
                    segment_open = false;
                }
            }
            MediaEvent::End => {
                assert!(open.is_none() && !segment_open, "End after closing");
            }
        }
    }
    files
        .into_iter()
        .enumerate()
        .map(|(i, bytes)| {
            let p = dir.join(format!("gen{i}.mp4"));
            std::fs::write(&p, bytes).unwrap();
            p
        })
        .collect()
}

/// Decodes a file with ffmpeg: no errors allowed. Returns the probed duration in seconds.
pub fn decode_ok(path: &Path) -> f64 {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-f", "null", "-"])
        .output()
        .expect("ffmpeg runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "ffmpeg decode errors in {}: {stderr}",
        path.display()
    );
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-show_entries", "format=duration,start_time", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .expect("ffprobe runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && stderr.trim().is_empty(), "ffprobe errors: {stderr}");
    let text = String::from_utf8_lossy(&out.stdout);
    let v: Vec<f64> = text.trim().split(',').map(|x| x.parse().expect("number")).collect();
    v[1] - v[0]
}

/// A synthetic stream (fake NAL payloads, real SPS/PPS): (is_video, ts, body).
pub fn synthetic(frames: u32, fps: u32, gop: u32, audio: bool, start_ts: u32) -> Vec<(bool, u32, Bytes)> {
    const SPS: &[u8] = &[
        0x67, 0x64, 0x00, 0x1e, 0xac, 0xd9, 0x40, 0xa0, 0x2f, 0xf9, 0x70, 0x11, 0x00, 0x00, 0x03, 0x00, 0x01,
        0x00, 0x00, 0x03, 0x00, 0x3c, 0x0f, 0x16, 0x2d, 0x96,
    ];
    let mut out = Vec::new();
    let mut rec = vec![0x17, 0, 0, 0, 0, 1, 0x64, 0x00, 0x1e, 0xff, 0xe1];
    rec.extend_from_slice(&(SPS.len() as u16).to_be_bytes());
    rec.extend_from_slice(SPS);
    rec.extend_from_slice(&[1, 0, 6, 0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0]);
    out.push((true, start_ts, Bytes::from(rec)));
    if audio {
        out.push((false, start_ts, Bytes::from_static(&[0xaf, 0, 0x11, 0x90])));
    }
    let mut audio_n = 0u64;
    for i in 0..frames {
        let ts_ms = u64::from(i) * 1000 / u64::from(fps);
        while audio && audio_n * 1024 * 1000 / 48000 <= ts_ms {
            let ats = (audio_n * 1024 * 1000 / 48000) as u32;
            out.push((false, start_ts.wrapping_add(ats), Bytes::from(vec![0xaf, 1, 0x21, 0x10, 0x05, 0x00])));
            audio_n += 1;
        }
        let key = i % gop == 0;
        let mut b = vec![if key { 0x17 } else { 0x27 }, 1, 0, 0, 0, 0, 0, 0, 4];
        b.extend_from_slice(&[if key { 0x65 } else { 0x41 }, 0x88, 0x84, i as u8]);
        out.push((true, start_ts.wrapping_add(ts_ms as u32), Bytes::from(b)));
    }
    out
}

pub fn feed_synthetic(p: &mut Packager, tags: &[(bool, u32, Bytes)], events: &mut Vec<MediaEvent>) {
    for (video, ts, body) in tags {
        if *video {
            p.push_video(*ts, body.clone()).expect("video");
        } else {
            p.push_audio(*ts, body.clone()).expect("audio");
        }
        drain(p, events);
    }
}
