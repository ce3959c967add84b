//! The URL scheme: path and query parsing, no allocation beyond borrowing the request.
//!
//! ```text
//! /live/{channel}/master.m3u8
//! /live/{channel}/{rendition}/index.m3u8     ?_HLS_msn=&_HLS_part=&_HLS_skip=&token=
//! /live/{channel}/{rendition}/init-{id}.mp4
//! /live/{channel}/{rendition}/seg-{msn}.m4s
//! /live/{channel}/{rendition}/part-{msn}.{part}.m4s
//! /vod/{recording}/index.m3u8                ?token=  a recording (see `vod`)
//! /vod/{recording}/init-{id}.mp4 | seg-{msn}.m4s
//! /healthz
//! /watch/{channel}                           the watch page (see `web`)
//! /web/watch.js | watch.css | hls.min.js | info
//! ```

use crate::hub::valid_name;

/// What a request asks for (also the `kind` metric label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Master,
    Playlist,
    Init,
    Part,
    Segment,
    /// A recording's playlist or object (`/vod/...`).
    Vod,
    Other,
}

impl Kind {
    /// Label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Master => "master",
            Kind::Playlist => "playlist",
            Kind::Init => "init",
            Kind::Part => "part",
            Kind::Segment => "segment",
            Kind::Vod => "vod",
            Kind::Other => "other",
        }
    }

    pub(crate) const ALL: [Kind; 7] =
        [Kind::Master, Kind::Playlist, Kind::Init, Kind::Part, Kind::Segment, Kind::Vod, Kind::Other];
}

/// A file of the web UI under `/web/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebFile {
    /// `watch.js`: the watch page's script.
    Script,
    /// `watch.css`: the watch page's style sheet.
    Style,
    /// `hls.min.js`: the player library, read from the web assets directory.
    Player,
    /// `info`: JSON naming the node and region serving the request.
    Info,
}

/// A parsed request path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route<'a> {
    Health,
    /// The watch page of a channel (public: the playlists it loads are access-checked).
    Watch {
        channel: &'a str,
    },
    Web(WebFile),
    Master {
        channel: &'a str,
    },
    Playlist {
        channel: &'a str,
        rendition: &'a str,
    },
    Init {
        channel: &'a str,
        rendition: &'a str,
        id: u32,
    },
    Segment {
        channel: &'a str,
        rendition: &'a str,
        msn: u64,
    },
    Part {
        channel: &'a str,
        rendition: &'a str,
        msn: u64,
        part: u32,
    },
    /// A file of a recording: `index.m3u8`, `init-{id}.mp4` or `seg-{msn}.m4s` (checked by
    /// [`valid_vod_file`]); `id` is the catalog id (a plain name).
    Vod {
        id: &'a str,
        file: &'a str,
    },
}

impl Route<'_> {
    /// The metric kind of this route.
    pub fn kind(&self) -> Kind {
        match self {
            Route::Health | Route::Watch { .. } | Route::Web(_) => Kind::Other,
            Route::Master { .. } => Kind::Master,
            Route::Playlist { .. } => Kind::Playlist,
            Route::Init { .. } => Kind::Init,
            Route::Segment { .. } => Kind::Segment,
            Route::Part { .. } => Kind::Part,
            Route::Vod { .. } => Kind::Vod,
        }
    }

    /// The channel whose media is asked for, if any (the watch page names a channel but
    /// serves no media, so it has none here and is not access-checked; a recording's
    /// channel is known only to its [`VodSource`](super::VodSource), which checks access).
    pub fn channel(&self) -> Option<&str> {
        match *self {
            Route::Health | Route::Watch { .. } | Route::Web(_) | Route::Vod { .. } => None,
            Route::Master { channel }
            | Route::Playlist { channel, .. }
            | Route::Init { channel, .. }
            | Route::Segment { channel, .. }
            | Route::Part { channel, .. } => Some(channel),
        }
    }
}

/// Parses a request path; `None` for anything outside the scheme.
pub fn parse_path(path: &str) -> Option<Route<'_>> {
    if path == "/healthz" {
        return Some(Route::Health);
    }
    if let Some(channel) = path.strip_prefix("/watch/") {
        return valid_name(channel).then_some(Route::Watch { channel });
    }
    if let Some(file) = path.strip_prefix("/web/") {
        let file = match file {
            "watch.js" => WebFile::Script,
            "watch.css" => WebFile::Style,
            "hls.min.js" => WebFile::Player,
            "info" => WebFile::Info,
            _ => return None,
        };
        return Some(Route::Web(file));
    }
    if let Some(rest) = path.strip_prefix("/vod/") {
        let (id, file) = rest.split_once('/')?;
        return (valid_name(id) && valid_vod_file(file)).then_some(Route::Vod { id, file });
    }
    let rest = path.strip_prefix("/live/")?;
    let mut it = rest.split('/');
    let channel = it.next().filter(|c| valid_name(c))?;
    let second = it.next()?;
    let Some(file) = it.next() else {
        return (second == "master.m3u8").then_some(Route::Master { channel });
    };
    if it.next().is_some() || !valid_name(second) {
        return None;
    }
    let rendition = second;
    if file == "index.m3u8" {
        return Some(Route::Playlist { channel, rendition });
    }
    if let Some(id) = file.strip_prefix("init-").and_then(|f| f.strip_suffix(".mp4")) {
        return Some(Route::Init { channel, rendition, id: number(id)? });
    }
    if let Some(msn) = file.strip_prefix("seg-").and_then(|f| f.strip_suffix(".m4s")) {
        return Some(Route::Segment { channel, rendition, msn: number(msn)? });
    }
    let name = file.strip_prefix("part-")?.strip_suffix(".m4s")?;
    let (msn, part) = name.split_once('.')?;
    Some(Route::Part { channel, rendition, msn: number(msn)?, part: number(part)? })
}

/// Whether `file` names a recording object: `index.m3u8`, `init-{id}.mp4` or
/// `seg-{msn}.m4s` with strict decimals (so it is always a safe object name).
pub fn valid_vod_file(file: &str) -> bool {
    if file == "index.m3u8" {
        return true;
    }
    if let Some(id) = file.strip_prefix("init-").and_then(|f| f.strip_suffix(".mp4")) {
        return number::<u32>(id).is_some();
    }
    file.strip_prefix("seg-").and_then(|f| f.strip_suffix(".m4s")).and_then(number::<u64>).is_some()
}

/// Strict decimal: digits only (no sign, no spaces), no overflow.
fn number<T: std::str::FromStr>(s: &str) -> Option<T> {
    if s.is_empty() || s.len() > 20 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// The query parameters delivery understands.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Query<'a> {
    pub msn: Option<u64>,
    pub part: Option<u32>,
    /// A playback token (`token=`), passed to the access hook as is.
    pub token: Option<&'a str>,
}

/// Why a query is refused (400).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// `_HLS_msn` or `_HLS_part` is not a decimal number.
    #[error("_HLS_msn and _HLS_part must be decimal integers")]
    NotANumber,
    /// `_HLS_part` without `_HLS_msn`.
    #[error("_HLS_part requires _HLS_msn")]
    PartWithoutMsn,
}

/// Parses the query string (unknown parameters are ignored, `_HLS_skip` too: delta updates
/// are not advertised).
pub fn parse_query(query: Option<&str>) -> Result<Query<'_>, QueryError> {
    let mut q = Query::default();
    for pair in query.unwrap_or("").split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "_HLS_msn" => q.msn = Some(number(value).ok_or(QueryError::NotANumber)?),
            "_HLS_part" => q.part = Some(number(value).ok_or(QueryError::NotANumber)?),
            "token" if !value.is_empty() => q.token = Some(value),
            _ => {}
        }
    }
    if q.part.is_some() && q.msn.is_none() {
        return Err(QueryError::PartWithoutMsn);
    }
    Ok(q)
}

/// Percent-encodes a token for a URI query (unreserved characters pass).
pub fn encode_query_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(parse_path("/live/a/master.m3u8"), Some(Route::Master { channel: "a" }));
        assert_eq!(
            parse_path("/live/a/source/index.m3u8"),
            Some(Route::Playlist { channel: "a", rendition: "source" })
        );
        assert_eq!(
            parse_path("/live/a/source/part-12.3.m4s"),
            Some(Route::Part { channel: "a", rendition: "source", msn: 12, part: 3 })
        );
        assert_eq!(
            parse_path("/live/a/source/seg-7.m4s"),
            Some(Route::Segment { channel: "a", rendition: "source", msn: 7 })
        );
        assert_eq!(
            parse_path("/live/a/source/init-9.mp4"),
            Some(Route::Init { channel: "a", rendition: "source", id: 9 })
        );
        assert_eq!(parse_path("/watch/demo"), Some(Route::Watch { channel: "demo" }));
        assert_eq!(parse_path("/web/hls.min.js"), Some(Route::Web(WebFile::Player)));
        assert_eq!(parse_path("/web/info"), Some(Route::Web(WebFile::Info)));
        assert_eq!(
            parse_path("/vod/demo-20261124T151300Z/index.m3u8"),
            Some(Route::Vod { id: "demo-20261124T151300Z", file: "index.m3u8" })
        );
        assert_eq!(parse_path("/vod/a-1/seg-12.m4s"), Some(Route::Vod { id: "a-1", file: "seg-12.m4s" }));
        assert_eq!(parse_path("/vod/a-1/init-3.mp4"), Some(Route::Vod { id: "a-1", file: "init-3.mp4" }));
        for bad in [
            "/vod/a-1/",
            "/vod/a-1",
            "/vod/../index.m3u8",
            "/vod/.hidden/index.m3u8",
            "/vod/a-1/../../etc/passwd",
            "/vod/a-1/recording.json",
            "/vod/a-1/seg-1.m4s/x",
            "/vod/a-1/seg-+1.m4s",
            "/vod/a%2F..%2Fb/index.m3u8",
        ] {
            assert_eq!(parse_path(bad), None, "{bad}");
        }
        for bad in [
            "/watch/",
            "/watch/a/b",
            "/watch/..",
            "/web/../Cargo.toml",
            "/web/hls.js",
            "/live/a/source/part-1.m4s",
            "/live/a/source/seg--1.m4s",
            "/live/../source/index.m3u8",
            "/live/a/source/x/index.m3u8",
            "/live/a/index.m3u8",
            "/live/a/source/init-99999999999.mp4",
            "/other",
        ] {
            assert_eq!(parse_path(bad), None, "{bad}");
        }
    }

    #[test]
    fn queries() {
        let q = parse_query(Some("_HLS_msn=5&_HLS_part=2&token=abc&x=1")).unwrap();
        assert_eq!((q.msn, q.part, q.token), (Some(5), Some(2), Some("abc")));
        assert_eq!(parse_query(Some("_HLS_part=2")), Err(QueryError::PartWithoutMsn));
        assert_eq!(parse_query(Some("_HLS_msn=-1")), Err(QueryError::NotANumber));
        assert_eq!(parse_query(None).unwrap(), Query::default());
    }
}
