//! Parsed media playlists shared by all viewers of a run. Blocking reloads make thousands
//! of viewers receive the same playlist text within milliseconds; each text is parsed once
//! and the viewers share the result (`Arc`), so the cost per viewer is one comparison of
//! the received bytes with the text last parsed for that URL.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::playlist::{MediaPlaylist, PlaylistError};

/// Most playlist URLs remembered (one entry per media playlist URL, query excluded); when
/// full, a new URL empties the cache.
pub const MAX_ENTRIES: usize = 1024;

/// The last text parsed for a URL, and its parse.
type Entry = (Arc<[u8]>, Arc<MediaPlaylist>);

/// URL → last text and its parse.
#[derive(Debug, Default)]
pub struct PlaylistCache {
    entries: Mutex<HashMap<String, Entry>>,
}

impl PlaylistCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// The parse of `text`, fetched from `url` (its query is ignored): shared when the
    /// text equals the last one parsed for that URL.
    pub fn parse(&self, url: &str, text: &[u8]) -> Result<Arc<MediaPlaylist>, PlaylistError> {
        let key = url.split('?').next().unwrap_or(url);
        if let Ok(map) = self.entries.lock()
            && let Some((t, pl)) = map.get(key)
            && **t == *text
        {
            return Ok(pl.clone());
        }
        let pl = Arc::new(MediaPlaylist::parse(&String::from_utf8_lossy(text))?);
        if let Ok(mut map) = self.entries.lock() {
            if map.len() >= MAX_ENTRIES && !map.contains_key(key) {
                map.clear();
            }
            map.insert(key.to_owned(), (Arc::from(text), pl.clone()));
        }
        Ok(pl)
    }

    /// URLs remembered.
    pub fn len(&self) -> usize {
        self.entries.lock().map_or(0, |m| m.len())
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXT-X-MEDIA-SEQUENCE:7\n#EXTINF:1,\ns7.ts\n";
    const B: &str = "#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXT-X-MEDIA-SEQUENCE:8\n#EXTINF:1,\ns8.ts\n";

    #[test]
    fn same_text_shares_one_parse() {
        let c = PlaylistCache::new();
        let a1 = c.parse("http://h/p.m3u8?_HLS_msn=1", A.as_bytes()).unwrap();
        let a2 = c.parse("http://h/p.m3u8?_HLS_msn=2", A.as_bytes()).unwrap();
        assert!(Arc::ptr_eq(&a1, &a2));
        let b = c.parse("http://h/p.m3u8", B.as_bytes()).unwrap();
        assert_eq!(b.media_sequence, 8);
        assert!(!Arc::ptr_eq(&a1, &b));
        assert_eq!(c.len(), 1);
        assert!(c.parse("http://h/q.m3u8", b"nope").is_err());
        assert_eq!(c.len(), 1);
    }
}
