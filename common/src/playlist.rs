//! LL-HLS playlist writer (RFC 8216bis): media playlists with parts, preload hints and
//! server control for blocking reloads, and master playlists.
//!
//! The writer takes a plain description ([`MediaPlaylist`]) that the live window builds
//! (`LiveWindow::media_playlist`) and knows the URL scheme relative to the playlist:
//! `init-{id}.mp4`, `seg-{msn}.m4s`, `part-{msn}.{part}.m4s`, and `{rendition}/index.m3u8`
//! from the master playlist. An optional query (a playback token) is appended to every URI.

use std::fmt::Write;

use crate::media::RenditionInfo;
use crate::window::PartRef;

/// The protocol version the tags below need at most.
pub const VERSION: u32 = 9;

/// A media playlist to write.
#[derive(Debug, Clone, PartialEq)]
pub struct MediaPlaylist<'a> {
    /// EXT-X-TARGETDURATION, whole seconds.
    pub target_duration: u64,
    /// EXT-X-PART-INF PART-TARGET, seconds.
    pub part_target: f64,
    /// MSN of the first segment listed.
    pub media_sequence: u64,
    /// Discontinuities removed from the front of the playlist so far.
    pub discontinuity_sequence: u64,
    /// Oldest first; only the last one may be incomplete.
    pub segments: Vec<PlaylistSegment>,
    /// The part announced with EXT-X-PRELOAD-HINT.
    pub preload_hint: Option<PartRef>,
    /// Writes EXT-X-ENDLIST.
    pub ended: bool,
    /// Appended to every URI after `?` (e.g. `token=abc`).
    pub uri_query: Option<&'a str>,
}

/// One segment of a media playlist.
#[derive(Debug, Clone, PartialEq)]
pub struct PlaylistSegment {
    pub msn: u64,
    /// Seconds (meaningful when complete).
    pub duration: f64,
    /// Complete segments get EXTINF and a URI; an open one lists only its parts.
    pub complete: bool,
    pub init_id: u32,
    pub discontinuity: bool,
    pub program_date_time_unix_ms: u64,
    /// Parts to list as EXT-X-PART, from part 0 on (empty: not listed).
    pub parts: Vec<PlaylistPart>,
}

/// One complete part.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PlaylistPart {
    /// Seconds.
    pub duration: f64,
    pub independent: bool,
}

fn push_uri(out: &mut String, query: Option<&str>) {
    if let Some(q) = query.filter(|q| !q.is_empty()) {
        out.push('?');
        out.push_str(q);
    }
}

/// Writes a media playlist.
pub fn write_media_playlist(p: &MediaPlaylist<'_>) -> String {
    let q = p.uri_query;
    let mut out = String::with_capacity(256 + p.segments.len() * 160);
    let td = p.target_duration.max(1);
    let part_target = if p.part_target.is_finite() && p.part_target > 0.0 { p.part_target } else { 1.0 };
    // Infallible: writing to a String.
    let _ = write!(
        out,
        "#EXTM3U\n#EXT-X-VERSION:{VERSION}\n#EXT-X-TARGETDURATION:{td}\n#EXT-X-MEDIA-SEQUENCE:{}\n\
         #EXT-X-DISCONTINUITY-SEQUENCE:{}\n\
         #EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK={:.3},HOLD-BACK={:.3}\n\
         #EXT-X-PART-INF:PART-TARGET={:.5}\n",
        p.media_sequence,
        p.discontinuity_sequence,
        3.0 * part_target,
        3.0 * td as f64,
        part_target,
    );
    let mut last_init = None;
    for seg in &p.segments {
        if !seg.complete && seg.parts.is_empty() {
            // Nothing of the open segment to list yet; the preload hint names its part.
            continue;
        }
        if seg.discontinuity {
            out.push_str("#EXT-X-DISCONTINUITY\n");
        }
        if last_init != Some(seg.init_id) || seg.discontinuity {
            let _ = write!(out, "#EXT-X-MAP:URI=\"init-{}.mp4", seg.init_id);
            push_uri(&mut out, q);
            out.push_str("\"\n");
            last_init = Some(seg.init_id);
        }
        out.push_str("#EXT-X-PROGRAM-DATE-TIME:");
        write_date_time(&mut out, seg.program_date_time_unix_ms);
        out.push('\n');
        for (i, part) in seg.parts.iter().enumerate() {
            let _ = write!(out, "#EXT-X-PART:DURATION={:.5},URI=\"part-{}.{i}.m4s", part.duration, seg.msn);
            push_uri(&mut out, q);
            out.push('"');
            if part.independent {
                out.push_str(",INDEPENDENT=YES");
            }
            out.push('\n');
        }
        if seg.complete {
            let _ = write!(out, "#EXTINF:{:.5},\nseg-{}.m4s", seg.duration, seg.msn);
            push_uri(&mut out, q);
            out.push('\n');
        }
    }
    if let Some(hint) = p.preload_hint.filter(|_| !p.ended) {
        let _ = write!(out, "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"part-{}.{}.m4s", hint.msn, hint.part);
        push_uri(&mut out, q);
        out.push_str("\"\n");
    }
    if p.ended {
        out.push_str("#EXT-X-ENDLIST\n");
    }
    out
}

/// Writes a master playlist: one EXT-X-STREAM-INF per rendition, pointing at
/// `{name}/index.m3u8` (plus the query).
pub fn write_master_playlist(renditions: &[RenditionInfo], uri_query: Option<&str>) -> String {
    let mut out = String::with_capacity(64 + renditions.len() * 160);
    let _ = writeln!(out, "#EXTM3U\n#EXT-X-VERSION:{VERSION}\n#EXT-X-INDEPENDENT-SEGMENTS");
    for r in renditions {
        let _ = write!(out, "#EXT-X-STREAM-INF:BANDWIDTH={}", r.bandwidth.max(1));
        let codecs: String = r.codecs.chars().filter(|c| *c != '"' && !c.is_control()).collect();
        if !codecs.is_empty() {
            let _ = write!(out, ",CODECS=\"{codecs}\"");
        }
        if let Some((w, h)) = r.resolution {
            let _ = write!(out, ",RESOLUTION={w}x{h}");
        }
        if let Some(fps) = r.frame_rate.filter(|f| f.is_finite() && *f > 0.0) {
            let _ = write!(out, ",FRAME-RATE={fps:.3}");
        }
        let _ = write!(out, "\n{}/index.m3u8", r.name);
        push_uri(&mut out, uri_query);
        out.push('\n');
    }
    out
}

/// Writes `unix_ms` as an ISO 8601 UTC date-time with milliseconds.
pub fn write_date_time(out: &mut String, unix_ms: u64) {
    let secs = unix_ms / 1000;
    let ms = unix_ms % 1000;
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    let _ = write!(
        out,
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{ms:03}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    );
}

/// Days since 1970-01-01 to a proleptic Gregorian (year, month, day).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    // Shift the epoch to 0000-03-01 so that leap days fall at the end of a cycle year.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        let mut s = String::new();
        write_date_time(&mut s, 0);
        assert_eq!(s, "1970-01-01T00:00:00.000Z");
        s.clear();
        // 2000-02-29T12:34:56.789Z
        write_date_time(&mut s, 951_827_696_789);
        assert_eq!(s, "2000-02-29T12:34:56.789Z");
        s.clear();
        write_date_time(&mut s, 1_795_000_000_000);
        assert_eq!(s, "2026-11-18T11:06:40.000Z");
    }
}
