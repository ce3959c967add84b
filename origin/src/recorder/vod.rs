//! What a finished recording publishes besides its media: the VOD playlist (`index.m3u8`)
//! and the `recording.json` manifest. Pure functions, no IO.

use std::fmt::Write;

use serde::Serialize;
use skyrelay_common::playlist::write_date_time;

use super::spool::{init_name, segment_name};

/// One segment of a recording, as the playlist names it.
#[derive(Debug, Clone, PartialEq)]
pub struct VodSegment {
    pub msn: u64,
    /// Seconds.
    pub duration: f64,
    pub init_id: u32,
    /// Starts after a reconnect, a lost segment or a new init.
    pub discontinuity: bool,
    pub pdt_unix_ms: u64,
}

/// An HLS VOD playlist: `EXT-X-PLAYLIST-TYPE:VOD`, an `EXT-X-MAP` at the start and wherever
/// the init segment changes, `EXT-X-DISCONTINUITY` where the recording was interrupted or
/// the init changes, `EXT-X-ENDLIST`. URIs are relative (the objects sit beside it).
pub fn write_vod_playlist(segments: &[VodSegment]) -> String {
    let longest = segments.iter().map(|s| s.duration).fold(0.0_f64, f64::max);
    // A little tolerance for float sums (2.0000001 s is a 2 s segment).
    let target = ((longest - 0.001).ceil().max(1.0)) as u64;
    let mut out = String::with_capacity(128 + segments.len() * 64);
    out.push_str("#EXTM3U\n#EXT-X-VERSION:7\n");
    let _ = writeln!(out, "#EXT-X-TARGETDURATION:{target}");
    out.push_str("#EXT-X-PLAYLIST-TYPE:VOD\n#EXT-X-MEDIA-SEQUENCE:0\n#EXT-X-INDEPENDENT-SEGMENTS\n");
    let mut init = None;
    for (i, s) in segments.iter().enumerate() {
        let new_init = init != Some(s.init_id);
        if i > 0 && (s.discontinuity || new_init) {
            out.push_str("#EXT-X-DISCONTINUITY\n");
        }
        if new_init {
            let _ = writeln!(out, "#EXT-X-MAP:URI=\"{}\"", init_name(s.init_id));
            init = Some(s.init_id);
        }
        if i == 0 || s.discontinuity || new_init {
            out.push_str("#EXT-X-PROGRAM-DATE-TIME:");
            write_date_time(&mut out, s.pdt_unix_ms);
            out.push('\n');
        }
        let _ = writeln!(out, "#EXTINF:{:.5},\n{}", s.duration, segment_name(s.msn));
    }
    out.push_str("#EXT-X-ENDLIST\n");
    out
}

/// Where a recording is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordingStatus {
    /// The publisher is live (or may still reconnect within the gap).
    Recording,
    /// Ended; objects are still being uploaded.
    Uploading,
    /// Every captured segment is stored with its playlist.
    Complete,
    /// Stored, but something is missing (see the reason).
    Partial,
}

impl RecordingStatus {
    /// The label used in the manifest and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            RecordingStatus::Recording => "recording",
            RecordingStatus::Uploading => "uploading",
            RecordingStatus::Complete => "complete",
            RecordingStatus::Partial => "partial",
        }
    }
}

/// `recording.json`, uploaded after the playlist.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Manifest {
    pub channel: String,
    pub recording: String,
    /// ISO 8601 UTC.
    pub started: String,
    pub ended: String,
    pub duration_seconds: f64,
    /// Bytes of media (segments and init segments).
    pub bytes: u64,
    pub segment_count: usize,
    pub status: RecordingStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The playlist's object key.
    pub playlist: String,
    /// Where the objects are.
    pub location: String,
}

/// An ISO 8601 UTC date-time with milliseconds.
pub fn date_time(unix_ms: u64) -> String {
    let mut s = String::with_capacity(24);
    write_date_time(&mut s, unix_ms);
    s
}

/// A recording id from its start time: `YYYYMMDDTHHMMSSZ` (sorts by time).
pub fn recording_id(started_unix_ms: u64) -> String {
    let full = date_time(started_unix_ms); // 2026-11-24T15:13:00.123Z
    let mut id: String = full.chars().take(19).filter(|c| *c != '-' && *c != ':').collect();
    id.push('Z');
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(msn: u64, init_id: u32, discontinuity: bool) -> VodSegment {
        VodSegment { msn, duration: 2.0, init_id, discontinuity, pdt_unix_ms: 1_000 * msn }
    }

    #[test]
    fn vod_playlist_marks_init_changes_and_reconnects() {
        let text =
            write_vod_playlist(&[seg(0, 1, false), seg(1, 1, false), seg(2, 1, true), seg(3, 2, false)]);
        let pl = match m3u8_rs::parse_playlist_res(text.as_bytes()) {
            Ok(m3u8_rs::Playlist::MediaPlaylist(p)) => p,
            other => panic!("not a media playlist: {other:?}\n{text}"),
        };
        assert!(pl.end_list);
        assert_eq!(pl.playlist_type, Some(m3u8_rs::MediaPlaylistType::Vod));
        assert_eq!(pl.target_duration, 2);
        let uris: Vec<_> = pl.segments.iter().map(|s| s.uri.as_str()).collect();
        assert_eq!(uris, ["seg-0.m4s", "seg-1.m4s", "seg-2.m4s", "seg-3.m4s"]);
        let disc: Vec<_> = pl.segments.iter().map(|s| s.discontinuity).collect();
        assert_eq!(disc, [false, false, true, true]);
        let maps: Vec<_> = pl.segments.iter().filter_map(|s| s.map.as_ref().map(|m| m.uri.clone())).collect();
        assert_eq!(maps, ["init-1.mp4", "init-2.mp4"]);
    }

    #[test]
    fn recording_ids_sort_by_time() {
        assert_eq!(recording_id(0), "19700101T000000Z");
        assert_eq!(recording_id(1_795_964_000_123), "20261129T145320Z");
        assert!(recording_id(1_000) < recording_id(2_000_000));
    }
}
