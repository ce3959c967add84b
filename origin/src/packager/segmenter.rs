//! Frames in decode order -> CMAF chunks, parts and segments (one init generation's tracks,
//! numbering kept across generations).
//!
//! Each track holds its newest sample back until the next one arrives, which gives the held
//! sample's duration (`next.dts - dts`). The primary track (video when present, else audio)
//! drives the layout: every primary sample becomes one chunk, together with the audio
//! samples that start before it ends. Boundaries are decided when a primary sample arrives,
//! right after its predecessor was written:
//! - a keyframe ends the segment when the segment already lasts `segment_target`;
//! - otherwise the part ends when one more sample (of the last seen duration) would push
//!   it past `part_target`; a sample longer than estimated closes the part before it.
//!
//! Times are track ticks (90 kHz video, sample rate audio). Decode times never decrease:
//! each sample starts at least one tick after the previous one, and after a flush at the
//! previous sample's end.

use std::collections::VecDeque;

use bytes::Bytes;
use skyrelay_common::media::MediaEvent;

use super::PackagerStats;
use crate::cmaf::{
    self, AUDIO_TRACK_ID, FLAGS_NON_SYNC, FLAGS_SYNC, TrackRun, VIDEO_TIMESCALE, VIDEO_TRACK_ID,
};
use crate::codec::avc::write_nalus;

/// Longest duration given to one sample; a longer gap in timestamps becomes a gap in decode
/// time rather than a giant sample.
const MAX_SAMPLE_MS: u64 = 10_000;
/// Duration of a video frame before any frame duration was seen (1/30 s).
const DEFAULT_VIDEO_DURATION: u32 = VIDEO_TIMESCALE / 30;

pub(crate) fn ms_to_ticks(ms: i64, timescale: u32) -> u64 {
    (ms.max(0) as u64).saturating_mul(u64::from(timescale)) / 1000
}

/// A video frame as the segmenter takes it.
#[derive(Debug, Clone)]
pub(crate) struct VideoFrame {
    /// Decode time on the timeline, in milliseconds.
    pub(crate) ms: i64,
    pub(crate) key: bool,
    /// Composition offset in milliseconds.
    pub(crate) cts_ms: i32,
    /// Length-prefixed NAL units as received.
    pub(crate) data: Bytes,
    /// Size once written with 4-byte lengths.
    pub(crate) size: u32,
}

#[derive(Debug, Clone)]
struct Pending {
    dts: u64,
    cts: i32,
    key: bool,
    data: Bytes,
    /// Size once written (4-byte NAL lengths for video).
    size: u32,
}

#[derive(Debug, Clone)]
struct Ready {
    s: Pending,
    duration: u32,
}

#[derive(Debug)]
struct Track {
    timescale: u32,
    held: Option<Pending>,
    min_next: u64,
    last_duration: u32,
    max_duration: u64,
}

impl Track {
    fn new(timescale: u32, default_duration: u32, start_ms: u64) -> Self {
        Self {
            timescale,
            held: None,
            min_next: ms_to_ticks(start_ms as i64, timescale),
            last_duration: default_duration,
            max_duration: ms_to_ticks(MAX_SAMPLE_MS as i64, timescale),
        }
    }

    /// Holds `s` back (clamping its decode time) and returns the sample it completes.
    fn admit(&mut self, mut s: Pending) -> Option<Ready> {
        s.dts = s.dts.max(self.min_next);
        self.min_next = s.dts + 1;
        let next_dts = s.dts;
        let prev = self.held.replace(s)?;
        let duration = (next_dts - prev.dts).min(self.max_duration) as u32;
        self.last_duration = duration;
        Some(Ready { s: prev, duration })
    }

    /// Releases the held sample with the last seen duration.
    fn flush(&mut self) -> Option<Ready> {
        let s = self.held.take()?;
        self.min_next = s.dts + u64::from(self.last_duration);
        Some(Ready { s, duration: self.last_duration })
    }

    fn end_ms(&self) -> u64 {
        let end = match &self.held {
            Some(s) => s.dts + u64::from(self.last_duration),
            None => self.min_next,
        };
        end.saturating_mul(1000).div_ceil(u64::from(self.timescale))
    }
}

/// Cuts frames into chunks, parts and segments.
#[derive(Debug)]
pub(crate) struct Segmenter {
    part_target_ms: u64,
    segment_target_ms: u64,
    max_pending_bytes: usize,
    video: Option<Track>,
    nal_length_size: u8,
    audio: Option<Track>,
    audio_frame: u32,
    ready_audio: VecDeque<Ready>,
    ready_audio_bytes: usize,
    part_target: u64,
    segment_target: u64,
    next_msn: Option<u64>,
    msn: u64,
    part: u32,
    segment_open: bool,
    part_open: bool,
    part_duration: u64,
    segment_duration: u64,
    part_independent: bool,
    sequence: u32,
    /// Where the last generation's video and audio ended (ms): the next one starts there.
    video_end_ms: u64,
    audio_end_ms: u64,
    runs_v: Vec<cmaf::Sample>,
    runs_a: Vec<cmaf::Sample>,
    chunk_audio: Vec<Ready>,
}

impl Segmenter {
    pub(crate) fn new(part_target_ms: u32, segment_target_ms: u32, max_pending_bytes: usize) -> Self {
        Self {
            part_target_ms: u64::from(part_target_ms),
            segment_target_ms: u64::from(segment_target_ms.max(1)),
            max_pending_bytes,
            video: None,
            nal_length_size: 4,
            audio: None,
            audio_frame: 1024,
            ready_audio: VecDeque::new(),
            ready_audio_bytes: 0,
            part_target: 0,
            segment_target: 0,
            next_msn: None,
            msn: 0,
            part: 0,
            segment_open: false,
            part_open: false,
            part_duration: 0,
            segment_duration: 0,
            part_independent: false,
            sequence: 0,
            video_end_ms: 0,
            audio_end_ms: 0,
            runs_v: Vec::new(),
            runs_a: Vec::new(),
            chunk_audio: Vec::new(),
        }
    }

    /// Sets the tracks of a new init generation. Call [`Self::flush`] before.
    /// `video` is the NAL length size; `audio` is (sample rate, samples per frame).
    pub(crate) fn configure(&mut self, video: Option<u8>, audio: Option<(u32, u32)>) {
        let (v_start, a_start) = (self.video_end_ms, self.audio_end_ms);
        self.video = video.map(|_| Track::new(VIDEO_TIMESCALE, DEFAULT_VIDEO_DURATION, v_start));
        self.nal_length_size = video.unwrap_or(4);
        self.audio = audio.map(|(rate, frame)| Track::new(rate, frame, a_start));
        self.audio_frame = audio.map_or(1024, |a| a.1);
        self.ready_audio.clear();
        self.ready_audio_bytes = 0;
        let ts = self.primary_timescale();
        self.part_target = ms_to_ticks(self.part_target_ms as i64, ts);
        self.segment_target = ms_to_ticks(self.segment_target_ms as i64, ts);
    }

    fn primary_timescale(&self) -> u32 {
        match (&self.video, &self.audio) {
            (Some(v), _) | (None, Some(v)) => v.timescale,
            (None, None) => VIDEO_TIMESCALE,
        }
    }

    /// End of everything admitted so far, in timeline milliseconds.
    pub(crate) fn end_ms(&self) -> u64 {
        let tracks = self.video.iter().chain(self.audio.iter());
        let last = self.video_end_ms.max(self.audio_end_ms);
        tracks.map(Track::end_ms).fold(last, u64::max)
    }

    pub(crate) fn has_video(&self) -> bool {
        self.video.is_some()
    }

    pub(crate) fn has_audio(&self) -> bool {
        self.audio.is_some()
    }

    /// Bytes held in the segmenter (held-back samples and audio waiting for video).
    pub(crate) fn pending_bytes(&self) -> usize {
        let held = |t: &Option<Track>| t.as_ref().and_then(|t| t.held.as_ref()).map_or(0, |s| s.data.len());
        held(&self.video) + held(&self.audio) + self.ready_audio_bytes
    }

    pub(crate) fn push_video(
        &mut self,
        f: VideoFrame,
        ev: &mut VecDeque<MediaEvent>,
        stats: &mut PackagerStats,
    ) {
        let key = f.key;
        let Some(track) = self.video.as_mut() else {
            stats.dropped_frames += 1;
            return;
        };
        let s = Pending {
            dts: ms_to_ticks(f.ms, VIDEO_TIMESCALE),
            cts: f.cts_ms.saturating_mul(90),
            key,
            data: f.data,
            size: f.size,
        };
        let ready = track.admit(s);
        let estimate = u64::from(track.last_duration);
        if let Some(r) = ready {
            self.emit_primary(r, false, ev, stats);
        }
        self.boundary(key, estimate, ev, stats);
    }

    pub(crate) fn push_audio(
        &mut self,
        ext_ms: i64,
        data: Bytes,
        ev: &mut VecDeque<MediaEvent>,
        stats: &mut PackagerStats,
    ) {
        let frame = u64::from(self.audio_frame);
        let Some(track) = self.audio.as_mut() else {
            stats.dropped_frames += 1;
            return;
        };
        let expected = ms_to_ticks(ext_ms, track.timescale);
        let dts = match &track.held {
            Some(prev) if (prev.dts + frame).abs_diff(expected) <= frame => prev.dts + frame,
            _ => expected,
        };
        let size = data.len() as u32;
        let ready = track.admit(Pending { dts, cts: 0, key: true, data, size });
        let estimate = u64::from(track.last_duration);
        let Some(r) = ready else { return };
        if self.video.is_some() {
            self.ready_audio_bytes += r.s.data.len();
            self.ready_audio.push_back(r);
            while self.ready_audio_bytes > self.max_pending_bytes {
                let Some(old) = self.ready_audio.pop_front() else { break };
                self.ready_audio_bytes -= old.s.data.len();
                stats.dropped_frames += 1;
            }
        } else {
            self.emit_primary(r, false, ev, stats);
            self.boundary(true, estimate, ev, stats);
        }
    }

    /// Decides, as a primary sample arrives (after its predecessor was written), whether
    /// the open part or segment ends; `estimate` is the likely duration of the new sample.
    fn boundary(
        &mut self,
        key: bool,
        estimate: u64,
        ev: &mut VecDeque<MediaEvent>,
        stats: &mut PackagerStats,
    ) {
        if !self.part_open {
            return;
        }
        if key && self.segment_duration >= self.segment_target {
            self.close_part(true, ev, stats);
        } else if self.part_duration + estimate > self.part_target {
            self.close_part(false, ev, stats);
        }
    }

    fn emit_primary(
        &mut self,
        r: Ready,
        all_audio: bool,
        ev: &mut VecDeque<MediaEvent>,
        stats: &mut PackagerStats,
    ) {
        let ts = self.primary_timescale();
        if !self.segment_open {
            if !r.s.key {
                stats.dropped_frames += 1;
                return;
            }
            let dts_ms = r.s.dts.saturating_mul(1000) / u64::from(ts);
            self.msn = self.next_msn.unwrap_or(dts_ms / self.segment_target_ms);
            self.segment_open = true;
            self.segment_duration = 0;
            self.part = 0;
        }
        let duration = u64::from(r.duration);
        if self.part_open && self.part_duration > 0 && self.part_duration + duration > self.part_target {
            self.close_part(false, ev, stats);
        }
        if !self.part_open {
            self.part_open = true;
            self.part_duration = 0;
            self.part_independent = r.s.key;
        }
        let end = r.s.dts + duration;
        let bytes = if self.video.is_some() {
            self.chunk_audio.clear();
            let rate = u128::from(self.audio.as_ref().map_or(1, |a| a.timescale));
            while let Some(a) = self.ready_audio.front() {
                // a.dts / rate < end / 90000, without rounding.
                if !all_audio && u128::from(a.s.dts) * 90_000 >= u128::from(end) * rate {
                    break;
                }
                if let Some(a) = self.ready_audio.pop_front() {
                    self.ready_audio_bytes -= a.s.data.len();
                    self.chunk_audio.push(a);
                }
            }
            let audio = std::mem::take(&mut self.chunk_audio);
            let bytes = self.write_chunk(Some(&r), &audio);
            self.chunk_audio = audio;
            bytes
        } else {
            self.write_chunk(None, std::slice::from_ref(&r))
        };
        stats.chunks += 1;
        stats.bytes_out += bytes.len() as u64;
        ev.push_back(MediaEvent::Chunk {
            msn: self.msn,
            part: self.part,
            independent: self.part_independent,
            bytes,
        });
        self.part_duration += duration;
        self.segment_duration += duration;
    }

    fn write_chunk(&mut self, video: Option<&Ready>, audio: &[Ready]) -> Bytes {
        self.runs_v.clear();
        self.runs_a.clear();
        let mut payload = 0usize;
        if let Some(v) = video {
            payload += v.s.size as usize;
            self.runs_v.push(cmaf::Sample {
                duration: v.duration,
                size: v.s.size,
                flags: if v.s.key { FLAGS_SYNC } else { FLAGS_NON_SYNC },
                cts_offset: v.s.cts,
            });
        }
        for a in audio {
            payload += a.s.size as usize;
            self.runs_a.push(cmaf::Sample {
                duration: a.duration,
                size: a.s.size,
                flags: FLAGS_SYNC,
                cts_offset: 0,
            });
        }
        let runs = [
            TrackRun {
                track_id: VIDEO_TRACK_ID,
                base_decode_time: video.map_or(0, |v| v.s.dts),
                samples: &self.runs_v,
                per_sample_flags: true,
            },
            TrackRun {
                track_id: AUDIO_TRACK_ID,
                base_decode_time: audio.first().map_or(0, |a| a.s.dts),
                samples: &self.runs_a,
                per_sample_flags: false,
            },
        ];
        let hint = cmaf::fragment::moof_size_hint(2, self.runs_v.len() + self.runs_a.len());
        let mut out = Vec::with_capacity(hint + 8 + payload);
        self.sequence = self.sequence.wrapping_add(1);
        cmaf::write_moof(&mut out, self.sequence, &runs);
        cmaf::write_mdat_header(&mut out, payload);
        if let Some(v) = video {
            write_nalus(&v.s.data, self.nal_length_size, &mut out);
        }
        for a in audio {
            out.extend_from_slice(&a.s.data);
        }
        Bytes::from(out)
    }

    fn close_part(&mut self, ends_segment: bool, ev: &mut VecDeque<MediaEvent>, stats: &mut PackagerStats) {
        if !self.part_open {
            return;
        }
        let ts = f64::from(self.primary_timescale());
        ev.push_back(MediaEvent::PartEnd {
            msn: self.msn,
            part: self.part,
            duration: self.part_duration as f64 / ts,
            ends_segment,
        });
        stats.parts += 1;
        self.part_open = false;
        if ends_segment {
            stats.segments += 1;
            self.segment_open = false;
            self.next_msn = Some(self.msn + 1);
            self.part = 0;
        } else {
            self.part += 1;
        }
    }

    /// Writes out every held sample and closes the open part and segment.
    pub(crate) fn flush(&mut self, ev: &mut VecDeque<MediaEvent>, stats: &mut PackagerStats) {
        if let Some(a) = self.audio.as_mut().and_then(Track::flush) {
            if self.video.is_some() {
                self.ready_audio_bytes += a.s.data.len();
                self.ready_audio.push_back(a);
            } else {
                self.emit_primary(a, true, ev, stats);
            }
        }
        if let Some(v) = self.video.as_mut().and_then(Track::flush) {
            self.emit_primary(v, true, ev, stats);
        }
        if !self.ready_audio.is_empty() {
            // Audio past the last video frame: dropped (it has no part to go into that
            // would keep parts video-led); counted.
            stats.dropped_frames += self.ready_audio.len() as u64;
            self.ready_audio.clear();
            self.ready_audio_bytes = 0;
        }
        self.close_part(true, ev, stats);
        self.segment_open = false;
        if let Some(v) = &self.video {
            self.video_end_ms = self.video_end_ms.max(v.end_ms());
        }
        if let Some(a) = &self.audio {
            self.audio_end_ms = self.audio_end_ms.max(a.end_ms());
        }
        self.video = None;
        self.audio = None;
    }
}
