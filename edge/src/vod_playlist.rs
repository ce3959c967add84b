//! A recording's VOD playlist as served to one viewer: with a playback token, every URI
//! (segments and `EXT-X-MAP`) carries `token=` so players that resolve relative URIs keep
//! it. Pure text rewriting.

use skyrelay_common::delivery::encode_query_value;

/// `playlist` with `?token=…` added to every URI.
pub fn with_token(playlist: &str, token: &str) -> String {
    let query = format!("?token={}", encode_query_value(token));
    let mut out = String::with_capacity(playlist.len() + playlist.lines().count() * query.len());
    for line in playlist.lines() {
        if let Some(rest) = line.strip_prefix("#EXT-X-MAP:URI=\"")
            && let Some((uri, tail)) = rest.split_once('"')
        {
            out.push_str("#EXT-X-MAP:URI=\"");
            out.push_str(uri);
            out.push_str(&query);
            out.push('"');
            out.push_str(tail);
        } else if !line.is_empty() && !line.starts_with('#') {
            out.push_str(line);
            out.push_str(&query);
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_uri_carries_the_token() {
        let text = "#EXTM3U\n#EXT-X-MAP:URI=\"init-1.mp4\"\n#EXTINF:2.00000,\nseg-0.m4s\n\
                    #EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI=\"init-2.mp4\"\n#EXTINF:2.00000,\nseg-1.m4s\n#EXT-X-ENDLIST\n";
        let out = with_token(text, "a.b/c");
        assert!(out.contains("#EXT-X-MAP:URI=\"init-1.mp4?token=a.b%2Fc\"\n"), "{out}");
        assert!(out.contains("#EXT-X-MAP:URI=\"init-2.mp4?token=a.b%2Fc\"\n"), "{out}");
        assert!(out.contains("\nseg-0.m4s?token=a.b%2Fc\n"), "{out}");
        assert!(out.contains("\nseg-1.m4s?token=a.b%2Fc\n"), "{out}");
        assert!(out.contains("#EXTINF:2.00000,\n") && out.ends_with("#EXT-X-ENDLIST\n"), "{out}");
    }
}
