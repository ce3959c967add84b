//! The packager: FLV audio/video tag bodies of one publisher in, [`MediaEvent`]s out.
//!
//! Sans-IO: no clock, no tasks. Time is the FLV media time.
//!
//! - this module: the public API, codec configuration tracking, and the start-up gate that
//!   decides which tracks the init segment has;
//! - [`segmenter`]: chunks, parts and segments;
//! - [`timeline`]: 32-bit timestamp unwrapping and re-basing between publishers;
//! - [`info`]: the init segment and `RenditionInfo` of an init generation.
//!
//! # Rules
//!
//! - **Init.** Emitted once the tracks are known: video needs its sequence header and a
//!   keyframe; audio is included when its AudioSpecificConfig arrived by then. When the
//!   metadata hint says there is audio but none arrived yet, the packager waits up to
//!   [`TRACK_WAIT_MS`] of media time after the keyframe. Audio without video starts when the
//!   hint says there is no video, or after [`TRACK_WAIT_MS`] without a keyframe.
//!   Frames that arrive while waiting are buffered (bounded by `max_pending_bytes`, the
//!   newest frame is dropped and counted beyond it). Video before the first keyframe, and
//!   audio older than it, are dropped and counted.
//! - **Changes.** A sequence header that differs from the current one (or a track that
//!   appears after the init was cut) closes the segment (`PartEnd { ends_segment: true }`)
//!   and a new `Init` follows once the new configuration can start (the next keyframe
//!   when there is video): a discontinuity. A repeated identical header is ignored.
//! - **Numbering.** The first segment of a packager gets
//!   `msn = floor(first keyframe time in ms / segment_target_ms)` (for audio-only streams,
//!   the first audio frame), where the time is the unwrapped FLV timestamp; every later
//!   segment, across discontinuities and publishers, is `msn + 1`. So the same input gives
//!   the same numbers on any origin.
//! - **Sessions.** [`Packager::end_session`] closes the open part and segment and emits
//!   `End`. [`Packager::start_session`] forgets the codec configurations (a new `Init` is
//!   required) and re-bases the new publisher's timestamps so that its first one lands where
//!   the previous publisher's media ended. A push after `end_session` starts a session
//!   implicitly.
//! - **Gaps.** A sample lasts until the next one starts, at most 10 s; a longer hole in
//!   the timestamps becomes a hole in decode time. A part is longer than the part target
//!   only when a single sample is (a frame rate below 1 / part target, or such a hole).
//! - **Bounds.** Held-back samples, audio waiting for video and the start-up buffer are each
//!   bounded by `max_pending_bytes`; beyond it frames are dropped and counted in
//!   [`PackagerStats::dropped_frames`]. Events queue until polled: poll after every push.
//! - **Errors.** A tag body that does not parse (unsupported codec, truncated, NAL lengths
//!   that lie, a bad configuration record) is rejected with an error and counted in
//!   [`PackagerStats::rejected_tags`]; the packager state is unchanged and the next tag can
//!   follow.

mod info;
mod segmenter;
mod timeline;

use std::collections::VecDeque;

use bytes::Bytes;
use skyrelay_common::config::{ConfigError, Validate, check_range};
use skyrelay_common::media::MediaEvent;

use crate::codec::avc::scan_nalus;
use crate::codec::{AacConfig, AvcConfig, CodecError};
use crate::flv::{self, AacPacket, AvcPacket, FlvError};
use segmenter::{Segmenter, VideoFrame};
use timeline::Timeline;

/// How long (media time) the start-up gate waits for a track the metadata announced.
pub const TRACK_WAIT_MS: i64 = 1000;

/// Packager settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackagerConfig {
    /// Rendition name (`source` for the published stream).
    pub rendition: String,
    /// Longest part, in milliseconds (100..=1000).
    pub part_target_ms: u32,
    /// Segment duration target in milliseconds; segments end on the first keyframe past it.
    pub segment_target_ms: u32,
    /// Bound on buffered frame bytes (start-up buffer, held samples, audio awaiting video).
    pub max_pending_bytes: usize,
}

impl Default for PackagerConfig {
    fn default() -> Self {
        Self {
            rendition: "source".to_owned(),
            part_target_ms: 333,
            segment_target_ms: 2000,
            max_pending_bytes: 8 * 1024 * 1024,
        }
    }
}

impl Validate for PackagerConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        check_range("part_target_ms", self.part_target_ms, 100, 1000)?;
        check_range("segment_target_ms", self.segment_target_ms, self.part_target_ms, 60_000)?;
        check_range("max_pending_bytes", self.max_pending_bytes, 64 * 1024, 1 << 30)?;
        Ok(())
    }
}

/// Why a tag was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PackagerError {
    /// The FLV tag body does not parse.
    #[error("FLV: {0}")]
    Flv(#[from] FlvError),
    /// A configuration record or a frame's NAL units are invalid.
    #[error("codec: {0}")]
    Codec(#[from] CodecError),
}

/// Counters, for the metrics layer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PackagerStats {
    /// Init segments emitted.
    pub inits: u64,
    /// Parts completed.
    pub parts: u64,
    /// Segments completed.
    pub segments: u64,
    /// CMAF chunks emitted.
    pub chunks: u64,
    /// Tag body bytes pushed.
    pub bytes_in: u64,
    /// Init and chunk bytes emitted.
    pub bytes_out: u64,
    /// Frames dropped (before a keyframe, without a configuration, or over a bound).
    pub dropped_frames: u64,
    /// Tag bodies rejected with an error.
    pub rejected_tags: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Collecting configurations and frames until the init can be cut.
    Waiting,
    Running,
    Ended,
}

#[derive(Debug)]
enum Frame {
    Video(VideoFrame),
    Audio { ms: i64, data: Bytes },
}

#[derive(Debug, Default, Clone, Copy)]
struct Hint {
    has_video: Option<bool>,
    has_audio: Option<bool>,
    bitrate_bps: Option<u64>,
}

/// One rendition's packager (see the module docs for the rules).
#[derive(Debug)]
pub struct Packager {
    cfg: PackagerConfig,
    hint: Hint,
    state: State,
    timeline: Timeline,
    video: Option<AvcConfig>,
    audio: Option<AacConfig>,
    pre: VecDeque<Frame>,
    pre_bytes: usize,
    first_key_ms: Option<i64>,
    first_audio_ms: Option<i64>,
    latest_ms: i64,
    seg: Segmenter,
    events: VecDeque<MediaEvent>,
    stats: PackagerStats,
}

impl Packager {
    /// A packager; out-of-range part targets are clamped to 100..=1000 ms.
    pub fn new(cfg: PackagerConfig) -> Self {
        let mut cfg = cfg;
        cfg.part_target_ms = cfg.part_target_ms.clamp(100, 1000);
        cfg.segment_target_ms = cfg.segment_target_ms.max(cfg.part_target_ms);
        Self {
            seg: Segmenter::new(cfg.part_target_ms, cfg.segment_target_ms, cfg.max_pending_bytes),
            cfg,
            hint: Hint::default(),
            state: State::Waiting,
            timeline: Timeline::default(),
            video: None,
            audio: None,
            pre: VecDeque::new(),
            pre_bytes: 0,
            first_key_ms: None,
            first_audio_ms: None,
            latest_ms: i64::MIN,
            events: VecDeque::new(),
            stats: PackagerStats::default(),
        }
    }

    /// What `onMetaData` said (`None` = not said). Used by the start-up gate and for the
    /// bandwidth of [`RenditionInfo`].
    pub fn set_metadata_hint(
        &mut self,
        has_video: Option<bool>,
        has_audio: Option<bool>,
        bitrate_bps: Option<u64>,
    ) {
        self.hint = Hint { has_video, has_audio, bitrate_bps };
    }

    /// Pushes a raw FLV video tag body with its tag timestamp.
    pub fn push_video(&mut self, timestamp_ms: u32, body: Bytes) -> Result<(), PackagerError> {
        self.stats.bytes_in += body.len() as u64;
        let res = self.video_inner(timestamp_ms, &body);
        if res.is_err() {
            self.stats.rejected_tags += 1;
        }
        res
    }

    /// Pushes a raw FLV audio tag body with its tag timestamp.
    pub fn push_audio(&mut self, timestamp_ms: u32, body: Bytes) -> Result<(), PackagerError> {
        self.stats.bytes_in += body.len() as u64;
        let res = self.audio_inner(timestamp_ms, &body);
        if res.is_err() {
            self.stats.rejected_tags += 1;
        }
        res
    }

    /// The next event, in order.
    pub fn poll_event(&mut self) -> Option<MediaEvent> {
        self.events.pop_front()
    }

    /// The publisher left: closes the open part and segment, then emits `End`.
    pub fn end_session(&mut self) {
        if self.state == State::Ended {
            return;
        }
        self.close_running();
        self.clear_waiting();
        self.state = State::Ended;
        self.events.push_back(MediaEvent::End);
    }

    /// A new publisher on the same channel: numbering continues, a new `Init` comes before
    /// the next segment, and timestamps are re-based to continue where media ended.
    pub fn start_session(&mut self) {
        self.close_running();
        self.clear_waiting();
        self.video = None;
        self.audio = None;
        if let Some(last) = self.timeline.last_ms() {
            let end = (self.seg.end_ms() as i64).max(last);
            self.timeline.rebase(end);
        }
        self.state = State::Waiting;
    }

    /// Counters so far.
    pub fn stats(&self) -> PackagerStats {
        self.stats
    }

    /// The configuration in use (after clamping).
    pub fn config(&self) -> &PackagerConfig {
        &self.cfg
    }

    fn video_inner(&mut self, ts: u32, body: &Bytes) -> Result<(), PackagerError> {
        let tag = flv::parse_video(body)?;
        match tag.packet {
            AvcPacket::SequenceHeader(record) => {
                let cfg = AvcConfig::parse(&record)?;
                self.resume();
                self.timeline.unwrap(ts);
                if self.video.as_ref().is_some_and(|c| c.record() == cfg.record()) {
                    return Ok(());
                }
                self.reconfigure();
                self.pre.retain(|f| matches!(f, Frame::Audio { .. }));
                self.pre_bytes = self.pre.iter().map(frame_len).sum();
                self.first_key_ms = None;
                self.video = Some(cfg);
                Ok(())
            }
            AvcPacket::Nalus { composition_time_ms, data } => {
                let Some(nal_size) = self.video.as_ref().map(|c| c.nal_length_size) else {
                    self.stats.dropped_frames += 1;
                    return Ok(());
                };
                let scan = scan_nalus(&data, nal_size)?;
                if scan.count == 0 || scan.out_len > u32::MAX as usize {
                    self.stats.dropped_frames += 1;
                    return Ok(());
                }
                self.resume();
                let ms = self.timeline.unwrap(ts);
                self.on_frame(Frame::Video(VideoFrame {
                    ms,
                    key: tag.frame_type.is_key(),
                    cts_ms: composition_time_ms,
                    data,
                    size: scan.out_len as u32,
                }));
                Ok(())
            }
            AvcPacket::EndOfSequence | AvcPacket::Command => Ok(()),
        }
    }

    fn audio_inner(&mut self, ts: u32, body: &Bytes) -> Result<(), PackagerError> {
        let tag = flv::parse_audio(body)?;
        match tag.packet {
            AacPacket::SequenceHeader(asc) => {
                let cfg = AacConfig::parse(&asc)?;
                self.resume();
                self.timeline.unwrap(ts);
                if self.audio.as_ref().is_some_and(|c| c.asc() == cfg.asc()) {
                    return Ok(());
                }
                self.reconfigure();
                self.pre.retain(|f| matches!(f, Frame::Video(_)));
                self.pre_bytes = self.pre.iter().map(frame_len).sum();
                self.first_audio_ms = None;
                self.audio = Some(cfg);
                Ok(())
            }
            AacPacket::Raw(data) => {
                if self.audio.is_none() || data.is_empty() {
                    self.stats.dropped_frames += 1;
                    return Ok(());
                }
                self.resume();
                let ms = self.timeline.unwrap(ts);
                self.on_frame(Frame::Audio { ms, data });
                Ok(())
            }
        }
    }

    /// A push after `end_session` starts a new session.
    fn resume(&mut self) {
        if self.state == State::Ended {
            self.start_session();
        }
    }

    /// A configuration changes: a running init generation ends here.
    fn reconfigure(&mut self) {
        if self.state == State::Running {
            self.close_running();
            self.state = State::Waiting;
        }
    }

    fn close_running(&mut self) {
        if self.state == State::Running {
            self.seg.flush(&mut self.events, &mut self.stats);
        }
    }

    fn clear_waiting(&mut self) {
        self.stats.dropped_frames += self.pre.len() as u64;
        self.pre.clear();
        self.pre_bytes = 0;
        self.first_key_ms = None;
        self.first_audio_ms = None;
        self.latest_ms = i64::MIN;
    }

    fn on_frame(&mut self, frame: Frame) {
        match self.state {
            State::Running => self.feed(frame),
            State::Waiting | State::Ended => self.gate(frame),
        }
    }

    fn feed(&mut self, frame: Frame) {
        let (ev, st) = (&mut self.events, &mut self.stats);
        match frame {
            Frame::Video(v) => {
                if !self.seg.has_video() {
                    // Video appeared in an audio-only generation: cut a new init on its
                    // first keyframe.
                    if v.key {
                        self.reconfigure();
                        self.gate(Frame::Video(v));
                    } else {
                        st.dropped_frames += 1;
                    }
                    return;
                }
                self.seg.push_video(v, ev, st);
            }
            Frame::Audio { ms, data } => {
                if !self.seg.has_audio() {
                    // Audio configured after a video-only init: starts a new generation at
                    // the next keyframe; until then it waits in the start-up buffer.
                    st.dropped_frames += 1;
                    return;
                }
                self.seg.push_audio(ms, data, ev, st);
            }
        }
        if self.seg.pending_bytes() > self.cfg.max_pending_bytes {
            // Only reachable with a single frame larger than the bound: start over.
            self.stats.dropped_frames += 1;
            self.seg.flush(&mut self.events, &mut self.stats);
            self.state = State::Waiting;
            self.first_key_ms = None;
        }
    }

    fn gate(&mut self, frame: Frame) {
        let len = frame_len(&frame);
        match &frame {
            Frame::Video(v) => {
                if self.first_key_ms.is_none() {
                    if !v.key {
                        self.stats.dropped_frames += 1;
                        return;
                    }
                    self.first_key_ms = Some(v.ms);
                }
                self.latest_ms = self.latest_ms.max(v.ms);
            }
            Frame::Audio { ms, .. } => {
                self.first_audio_ms.get_or_insert(*ms);
                self.latest_ms = self.latest_ms.max(*ms);
            }
        }
        if self.pre_bytes + len > self.cfg.max_pending_bytes {
            self.stats.dropped_frames += 1;
            return;
        }
        self.pre_bytes += len;
        self.pre.push_back(frame);
        self.try_start();
    }

    fn try_start(&mut self) {
        let (video, audio) = if let Some(key_ms) = self.first_key_ms {
            let audio_known = self.audio.is_some();
            let waited = self.latest_ms - key_ms >= TRACK_WAIT_MS;
            if !audio_known && self.hint.has_audio == Some(true) && !waited {
                return;
            }
            (true, audio_known)
        } else if let Some(audio_ms) = self.first_audio_ms {
            let waited = self.latest_ms - audio_ms >= TRACK_WAIT_MS;
            if self.hint.has_video != Some(false) && !waited {
                return;
            }
            (false, true)
        } else {
            return;
        };
        let v = if video { self.video.clone() } else { None };
        let a = if audio { self.audio.clone() } else { None };
        let bytes = info::init_segment(v.as_ref(), a.as_ref(), self.hint.bitrate_bps);
        let info = info::rendition_info(&self.cfg.rendition, v.as_ref(), a.as_ref(), self.hint.bitrate_bps);
        self.stats.inits += 1;
        self.stats.bytes_out += bytes.len() as u64;
        self.events.push_back(MediaEvent::Init { info, bytes });
        self.seg.configure(
            v.as_ref().map(|c| c.nal_length_size),
            a.as_ref().map(|c| (c.sample_rate, c.frame_samples)),
        );
        self.state = State::Running;
        let key_ms = self.first_key_ms;
        let frames = std::mem::take(&mut self.pre);
        self.clear_waiting();
        for f in frames {
            match &f {
                Frame::Video(_) if !video => self.stats.dropped_frames += 1,
                Frame::Audio { .. } if !audio => self.stats.dropped_frames += 1,
                Frame::Audio { ms, .. } if key_ms.is_some_and(|k| *ms < k) => {
                    self.stats.dropped_frames += 1;
                }
                _ => self.feed(f),
            }
        }
    }
}

fn frame_len(f: &Frame) -> usize {
    match f {
        Frame::Video(VideoFrame { data, .. }) | Frame::Audio { data, .. } => data.len(),
    }
}
