//! Packager throughput: MB/s of FLV tag bodies in -> CMAF chunks out, on one core.
//!
//! `cargo bench -p skyrelay-origin --bench packager`
//!
//! Input: a 20 s 1080p30 H.264 (6 Mbit/s, 2 s GOP) + AAC FLV made by ffmpeg, cached at
//! `target/packager-bench-1080p.flv`. Every run feeds all its tags through a fresh
//! packager (draining events as they come) until at least `RUN_SECS` passed; the figure
//! printed is the median of the runs.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use skyrelay_origin::flv::{FlvReader, FlvTag, TagKind};
use skyrelay_origin::packager::{Packager, PackagerConfig};

const RUNS: usize = 7;
const RUN_SECS: f64 = 0.7;

fn input() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let path = target.join("packager-bench-1080p.flv");
    if path.exists() {
        return path;
    }
    std::fs::create_dir_all(&target).expect("target dir");
    let tmp = target.join("packager-bench-1080p.flv.part");
    eprintln!("encoding {} with ffmpeg (once)...", path.display());
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-y"])
        .args(["-f", "lavfi", "-i", "testsrc2=size=1920x1080:rate=30"])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
        .args(["-t", "20", "-c:v", "libx264", "-preset", "superfast", "-pix_fmt", "yuv420p"])
        .args(["-b:v", "6M", "-minrate", "6M", "-maxrate", "6M", "-bufsize", "6M"])
        .args(["-g", "60", "-c:a", "aac", "-b:a", "128k", "-f", "flv"])
        .arg(&tmp)
        .status()
        .expect("ffmpeg is installed");
    assert!(status.success(), "ffmpeg failed");
    std::fs::rename(&tmp, &path).expect("rename");
    path
}

fn load(path: &PathBuf) -> Vec<FlvTag> {
    let data = std::fs::read(path).expect("read input");
    let mut reader = FlvReader::new(16 << 20);
    let mut tags = Vec::new();
    let mut rest: &[u8] = &data;
    while !rest.is_empty() {
        let n = reader.feed(rest);
        rest = &rest[n..];
        while let Some(tag) = reader.next_tag().expect("valid FLV") {
            tags.push(tag);
        }
    }
    tags.retain(|t| matches!(t.kind, TagKind::Audio | TagKind::Video));
    tags
}

/// Feeds every tag once; returns (bytes in, bytes out, events).
fn pass(tags: &[FlvTag]) -> (u64, u64, u64) {
    let mut p = Packager::new(PackagerConfig::default());
    let mut events = 0u64;
    for t in tags {
        let r = match t.kind {
            TagKind::Video => p.push_video(t.timestamp_ms, t.body.clone()),
            _ => p.push_audio(t.timestamp_ms, t.body.clone()),
        };
        r.expect("valid tag");
        while let Some(e) = p.poll_event() {
            std::hint::black_box(&e);
            events += 1;
        }
    }
    p.end_session();
    while p.poll_event().is_some() {
        events += 1;
    }
    let st = p.stats();
    (st.bytes_in, st.bytes_out, events)
}

fn main() {
    let path = input();
    let tags = load(&path);
    let (bytes_in, bytes_out, events) = pass(&tags);
    println!(
        "input: {} ({} tags, {:.1} MB of tag bodies) -> {:.1} MB CMAF, {events} events per pass",
        path.display(),
        tags.len(),
        bytes_in as f64 / 1e6,
        bytes_out as f64 / 1e6
    );
    let mut rates = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let start = Instant::now();
        let mut total = 0u64;
        let mut passes = 0u32;
        while start.elapsed() < Duration::from_secs_f64(RUN_SECS) {
            total += pass(&tags).0;
            passes += 1;
        }
        let secs = start.elapsed().as_secs_f64();
        let rate = total as f64 / secs / 1e6;
        println!("run: {passes} passes, {rate:.0} MB/s");
        rates.push(rate);
    }
    rates.sort_by(f64::total_cmp);
    let median = rates[rates.len() / 2];
    let streams = median * 1e6 * 8.0 / 6e6;
    println!("packager: median {median:.0} MB/s of FLV in on one core (~{streams:.0} streams at 6 Mbit/s)");
}
