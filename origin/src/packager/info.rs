//! What an init generation looks like from outside: its init segment and [`RenditionInfo`].
//!
//! Bandwidth (peak bits per second for the master playlist): the metadata bitrate hint
//! × 1.2 when the publisher sent one; otherwise an estimate of 0.1 bit per pixel per frame
//! (30 fps when the SPS has no timing info; 3 Mbit/s when the size is unknown) plus
//! 128 kbit/s for audio.

use bytes::Bytes;
use skyrelay_common::media::RenditionInfo;

use crate::cmaf::{AudioTrack, VideoTrack, write_init};
use crate::codec::{AacConfig, AvcConfig};

const AUDIO_ESTIMATE_BPS: u64 = 128_000;
const VIDEO_FALLBACK_BPS: u64 = 3_000_000;

pub(crate) fn init_segment(
    video: Option<&AvcConfig>,
    audio: Option<&AacConfig>,
    bitrate_bps: Option<u64>,
) -> Bytes {
    let avcc = video.map(AvcConfig::record_for_mp4);
    let v = video.zip(avcc.as_ref()).map(|(c, avcc)| {
        let (width, height) = c.resolution.unwrap_or((0, 0));
        VideoTrack { width, height, avcc }
    });
    let a = audio.map(|c| AudioTrack {
        sample_rate: c.sample_rate,
        channels: c.channels,
        asc: c.asc(),
        bitrate: if video.is_none() { bitrate_bps.unwrap_or(0).min(u64::from(u32::MAX)) as u32 } else { 0 },
    });
    let mut out = Vec::with_capacity(1024);
    write_init(&mut out, v.as_ref(), a.as_ref());
    Bytes::from(out)
}

pub(crate) fn rendition_info(
    name: &str,
    video: Option<&AvcConfig>,
    audio: Option<&AacConfig>,
    bitrate_bps: Option<u64>,
) -> RenditionInfo {
    let codecs: Vec<String> =
        video.map(AvcConfig::codec_string).into_iter().chain(audio.map(AacConfig::codec_string)).collect();
    let bandwidth = match bitrate_bps {
        Some(b) if b > 0 => b.saturating_mul(6) / 5,
        _ => estimate(video, audio),
    };
    RenditionInfo {
        name: name.to_owned(),
        codecs: codecs.join(","),
        bandwidth,
        resolution: video.and_then(|v| v.resolution),
        frame_rate: video.and_then(|v| v.frame_rate),
        has_video: video.is_some(),
        has_audio: audio.is_some(),
    }
}

fn estimate(video: Option<&AvcConfig>, audio: Option<&AacConfig>) -> u64 {
    let v = video.map_or(0, |v| match v.resolution {
        Some((w, h)) => {
            let fps = v.frame_rate.unwrap_or(30.0);
            (f64::from(w) * f64::from(h) * fps * 0.1) as u64
        }
        None => VIDEO_FALLBACK_BPS,
    });
    let a = if audio.is_some() { AUDIO_ESTIMATE_BPS } else { 0 };
    v + a
}
