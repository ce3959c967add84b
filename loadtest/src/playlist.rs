//! Just enough HLS playlist parsing for players: the first variant of a master playlist,
//! and a media playlist's segments, LL-HLS parts, preload hint and map (sans-IO).

/// Why a playlist could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlaylistError {
    /// The text does not start with `#EXTM3U`.
    #[error("not an M3U8 playlist")]
    NotM3u8,
    /// A master playlist without any variant.
    #[error("master playlist has no variant")]
    NoVariant,
    /// A media playlist without `#EXT-X-TARGETDURATION`.
    #[error("media playlist has no target duration")]
    NoTargetDuration,
}

/// One partial segment.
#[derive(Debug, Clone, PartialEq)]
pub struct Part {
    /// URI (relative to the playlist).
    pub uri: String,
    /// Whether it starts with an independent frame.
    pub independent: bool,
}

/// One media segment (complete, or the in-progress one at the live edge).
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    /// Media sequence number.
    pub msn: u64,
    /// URI of the whole segment, `None` while it is in progress (parts only).
    pub uri: Option<String>,
    /// Its parts (LL-HLS).
    pub parts: Vec<Part>,
}

/// A parsed media playlist.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MediaPlaylist {
    /// `#EXT-X-TARGETDURATION` (s).
    pub target_duration: f64,
    /// `#EXT-X-PART-INF:PART-TARGET` (s), LL-HLS only.
    pub part_target: Option<f64>,
    /// `#EXT-X-MEDIA-SEQUENCE`.
    pub media_sequence: u64,
    /// Latest `#EXT-X-MAP` URI.
    pub map_uri: Option<String>,
    /// Segments in order; the last one may be in progress.
    pub segments: Vec<Segment>,
    /// `#EXT-X-PRELOAD-HINT:TYPE=PART` URI.
    pub preload_hint: Option<String>,
    /// `#EXT-X-ENDLIST` seen.
    pub ended: bool,
    /// `CAN-BLOCK-RELOAD=YES`.
    pub can_block_reload: bool,
}

/// Whether `text` is a media playlist (rather than a master playlist).
pub fn is_media_playlist(text: &str) -> bool {
    text.contains("#EXT-X-TARGETDURATION")
}

/// The URI of the first variant of a master playlist.
pub fn first_variant(text: &str) -> Result<&str, PlaylistError> {
    if !text.starts_with("#EXTM3U") {
        return Err(PlaylistError::NotM3u8);
    }
    let mut lines = text.lines().map(str::trim);
    while let Some(l) = lines.next() {
        if l.starts_with("#EXT-X-STREAM-INF") {
            return lines.find(|l| !l.is_empty() && !l.starts_with('#')).ok_or(PlaylistError::NoVariant);
        }
    }
    Err(PlaylistError::NoVariant)
}

/// The value of attribute `key` in an attribute list (quotes removed).
pub fn attr<'a>(list: &'a str, key: &str) -> Option<&'a str> {
    let mut rest = list;
    while !rest.is_empty() {
        let (k, after) = rest.split_once('=')?;
        let (value, next) = if let Some(q) = after.strip_prefix('"') {
            let end = q.find('"')?;
            (&q[..end], q[end + 1..].trim_start_matches(','))
        } else {
            match after.split_once(',') {
                Some((v, n)) => (v, n),
                None => (after, ""),
            }
        };
        if k.trim() == key {
            return Some(value);
        }
        rest = next;
    }
    None
}

impl MediaPlaylist {
    /// Parses a media playlist.
    pub fn parse(text: &str) -> Result<Self, PlaylistError> {
        if !text.starts_with("#EXTM3U") {
            return Err(PlaylistError::NotM3u8);
        }
        let mut pl = MediaPlaylist::default();
        let mut target = None;
        let mut msn = None::<u64>;
        let mut current = Vec::new();
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
            if let Some(v) = line.strip_prefix("#EXT-X-TARGETDURATION:") {
                target = v.parse::<f64>().ok();
            } else if let Some(v) = line.strip_prefix("#EXT-X-MEDIA-SEQUENCE:") {
                pl.media_sequence = v.parse().unwrap_or(0);
            } else if let Some(v) = line.strip_prefix("#EXT-X-PART-INF:") {
                pl.part_target = attr(v, "PART-TARGET").and_then(|t| t.parse().ok());
            } else if let Some(v) = line.strip_prefix("#EXT-X-SERVER-CONTROL:") {
                pl.can_block_reload = attr(v, "CAN-BLOCK-RELOAD") == Some("YES");
            } else if let Some(v) = line.strip_prefix("#EXT-X-MAP:") {
                pl.map_uri = attr(v, "URI").map(str::to_owned);
            } else if let Some(v) = line.strip_prefix("#EXT-X-SKIP:") {
                let skipped: u64 = attr(v, "SKIPPED-SEGMENTS").and_then(|n| n.parse().ok()).unwrap_or(0);
                msn = Some(msn.unwrap_or(pl.media_sequence) + skipped);
            } else if let Some(v) = line.strip_prefix("#EXT-X-PART:") {
                if let Some(uri) = attr(v, "URI") {
                    current.push(Part {
                        uri: uri.to_owned(),
                        independent: attr(v, "INDEPENDENT") == Some("YES"),
                    });
                }
            } else if let Some(v) = line.strip_prefix("#EXT-X-PRELOAD-HINT:") {
                if attr(v, "TYPE") == Some("PART") {
                    pl.preload_hint = attr(v, "URI").map(str::to_owned);
                }
            } else if line == "#EXT-X-ENDLIST" {
                pl.ended = true;
            } else if !line.starts_with('#') {
                let n = msn.unwrap_or(pl.media_sequence);
                pl.segments.push(Segment {
                    msn: n,
                    uri: Some(line.to_owned()),
                    parts: std::mem::take(&mut current),
                });
                msn = Some(n + 1);
            }
        }
        if !current.is_empty() {
            pl.segments.push(Segment { msn: msn.unwrap_or(pl.media_sequence), uri: None, parts: current });
        }
        pl.target_duration = target.ok_or(PlaylistError::NoTargetDuration)?;
        Ok(pl)
    }

    /// The segment with sequence number `msn`.
    pub fn segment(&self, msn: u64) -> Option<&Segment> {
        let first = self.segments.first()?.msn;
        self.segments.get(usize::try_from(msn.checked_sub(first)?).ok()?)
    }

    /// Complete segments only.
    pub fn complete(&self) -> impl Iterator<Item = &Segment> {
        self.segments.iter().filter(|s| s.uri.is_some())
    }

    /// The position of the preload-hinted part: the part after the last listed one.
    pub fn hint_position(&self) -> Option<(u64, usize)> {
        let last = self.segments.last()?;
        Some(if last.uri.is_some() { (last.msn + 1, 0) } else { (last.msn, last.parts.len()) })
    }

    /// Resolves the wanted part `(msn, part)`: the part itself if listed, or the first part
    /// of the next segment when segment `msn` completed with fewer parts.
    pub fn resolve(&self, mut want: (u64, usize)) -> Resolved<'_> {
        loop {
            let Some(first) = self.segments.first() else {
                return Resolved::Wait(want);
            };
            if want.0 < first.msn {
                return Resolved::Behind;
            }
            let Some(seg) = self.segment(want.0) else {
                return if Some(want) == self.hint_position() && self.preload_hint.is_some() {
                    Resolved::Hint(want)
                } else {
                    Resolved::Wait(want)
                };
            };
            if let Some(p) = seg.parts.get(want.1) {
                return Resolved::Part(want, p);
            }
            if seg.uri.is_some() {
                want = (want.0 + 1, 0);
                continue;
            }
            return if Some(want) == self.hint_position() && self.preload_hint.is_some() {
                Resolved::Hint(want)
            } else {
                Resolved::Wait(want)
            };
        }
    }

    /// Where an LL-HLS player starts: the latest independent part (else the first part of
    /// the last segment).
    pub fn live_start(&self) -> Option<(u64, usize)> {
        for seg in self.segments.iter().rev() {
            if let Some(i) = seg.parts.iter().rposition(|p| p.independent) {
                return Some((seg.msn, i));
            }
        }
        self.segments.last().map(|s| (s.msn, 0))
    }
}

/// What [`MediaPlaylist::resolve`] found.
#[derive(Debug, PartialEq)]
pub enum Resolved<'a> {
    /// The part is listed at this (normalised) position.
    Part((u64, usize), &'a Part),
    /// The part is the preload hint.
    Hint((u64, usize)),
    /// Not listed yet: reload (blocking) for this position.
    Wait((u64, usize)),
    /// Fell out of the window.
    Behind,
}

#[cfg(test)]
mod tests {
    use super::*;

    const LL: &str = "#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-TARGETDURATION:1\n\
#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=0.6\n#EXT-X-PART-INF:PART-TARGET=0.2\n\
#EXT-X-MEDIA-SEQUENCE:10\n#EXT-X-MAP:URI=\"init-0.mp4\"\n#EXTINF:1.0,\nseg-10.m4s\n\
#EXT-X-PART:DURATION=0.2,URI=\"part-11.0.m4s\",INDEPENDENT=YES\n#EXT-X-PART:DURATION=0.2,URI=\"part-11.1.m4s\"\n\
#EXTINF:0.4,\nseg-11.m4s\n#EXT-X-PART:DURATION=0.2,URI=\"part-12.0.m4s\",INDEPENDENT=YES\n\
#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"part-12.1.m4s\"\n";

    #[test]
    fn parses_ll_playlist_and_resolves_positions() {
        let pl = MediaPlaylist::parse(LL).unwrap();
        assert_eq!(pl.target_duration, 1.0);
        assert_eq!(pl.part_target, Some(0.2));
        assert!(pl.can_block_reload);
        assert_eq!(pl.map_uri.as_deref(), Some("init-0.mp4"));
        assert_eq!(pl.segments.len(), 3);
        assert_eq!(pl.segments[2].msn, 12);
        assert_eq!(pl.complete().count(), 2);
        assert_eq!(pl.hint_position(), Some((12, 1)));
        assert_eq!(pl.live_start(), Some((12, 0)));
        assert!(matches!(pl.resolve((11, 1)), Resolved::Part((11, 1), p) if p.uri == "part-11.1.m4s"));
        assert!(matches!(pl.resolve((11, 2)), Resolved::Part((12, 0), _)));
        assert_eq!(pl.resolve((12, 1)), Resolved::Hint((12, 1)));
        assert_eq!(pl.resolve((12, 2)), Resolved::Wait((12, 2)));
        assert_eq!(pl.resolve((9, 0)), Resolved::Behind);
        // Segment 10 has no parts listed: the player moves on to 11.
        assert!(matches!(pl.resolve((10, 0)), Resolved::Part((11, 0), _)));
    }

    #[test]
    fn master_attrs_and_errors() {
        let m =
            "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1,CODECS=\"avc1.64001f,mp4a.40.2\"\nsource/index.m3u8\n";
        assert_eq!(first_variant(m), Ok("source/index.m3u8"));
        assert!(!is_media_playlist(m));
        assert_eq!(first_variant("#EXTM3U\n"), Err(PlaylistError::NoVariant));
        assert_eq!(first_variant("x"), Err(PlaylistError::NotM3u8));
        assert_eq!(attr("A=\"x,y\",B=2", "B"), Some("2"));
        assert_eq!(attr("A=\"x,y\",B=2", "A"), Some("x,y"));
        assert_eq!(MediaPlaylist::parse("#EXTM3U\n"), Err(PlaylistError::NoTargetDuration));
        let classic =
            "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:3\n#EXTINF:2,\na.ts\n#EXTINF:2,\nb.ts\n";
        let pl = MediaPlaylist::parse(classic).unwrap();
        assert_eq!(pl.segment(4).and_then(|s| s.uri.as_deref()), Some("b.ts"));
        assert_eq!(pl.part_target, None);
    }
}
