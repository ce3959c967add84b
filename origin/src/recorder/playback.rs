//! Recordings served read-only from storage at `/vod/{id}/{file}`, for edges to fetch (and
//! cache) as VOD. The catalog id `{channel}-{recording}` maps to the storage prefix
//! `recordings/{channel}/{recording}/`; only the playlist and the media objects it names are
//! served (never `recording.json`), and both halves of the id are validated, so no request
//! reaches a key outside that prefix.
//!
//! No access check here: origins are not viewer-facing, and edges check playback tokens
//! before they fetch.

use std::sync::Arc;

use prometheus::{IntCounterVec, Opts, Registry};
use skyrelay_common::delivery::{BoxFuture, VodError, VodObject, VodRequest, VodSource, vod_content_type};
use tracing::warn;

use super::storage::{Storage, recording_prefix, valid_recording_id};
use crate::config::valid_channel_name;

/// Splits a catalog id into channel and recording. Recording ids are
/// `YYYYMMDDTHHMMSSZ` optionally followed by `-N`, which never contains a second such
/// timestamp, so at most one split fits even when the channel name has dashes.
pub fn split_catalog_id(id: &str) -> Option<(&str, &str)> {
    id.match_indices('-').map(|(i, _)| (&id[..i], &id[i + 1..])).find(|(channel, recording)| {
        is_recording_id(recording) && valid_channel_name(channel) && valid_recording_id(recording)
    })
}

/// `YYYYMMDDTHHMMSSZ` or `YYYYMMDDTHHMMSSZ-N`.
fn is_recording_id(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() < 16 {
        return false;
    }
    let stamp = b[..8].iter().all(u8::is_ascii_digit)
        && b[8] == b'T'
        && b[9..15].iter().all(u8::is_ascii_digit)
        && b[15] == b'Z';
    let suffix = &b[16..];
    stamp
        && (suffix.is_empty()
            || (suffix.len() >= 2
                && suffix.len() <= 7
                && suffix[0] == b'-'
                && suffix[1..].iter().all(u8::is_ascii_digit)))
}

/// Whether `file` is one a recording publishes for playback.
fn servable(file: &str) -> bool {
    let number = |s: &str| !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit());
    file == "index.m3u8"
        || file.strip_prefix("init-").and_then(|f| f.strip_suffix(".mp4")).is_some_and(number)
        || file.strip_prefix("seg-").and_then(|f| f.strip_suffix(".m4s")).is_some_and(number)
}

/// The origin's [`VodSource`]: reads from the recorder's storage.
pub struct StorageVod {
    storage: Arc<dyn Storage>,
    requests: IntCounterVec,
}

impl StorageVod {
    /// Serves `storage`; registers `skyrelay_origin_vod_requests_total{result}`.
    pub fn new(storage: Arc<dyn Storage>, registry: &Registry) -> Result<Self, prometheus::Error> {
        let requests = IntCounterVec::new(
            Opts::new(
                "skyrelay_origin_vod_requests_total",
                "Recording files asked for at /vod, by result (ok, not_found, error).",
            ),
            &["result"],
        )?;
        registry.register(Box::new(requests.clone()))?;
        for r in ["ok", "not_found", "error"] {
            requests.with_label_values(&[r]);
        }
        Ok(StorageVod { storage, requests })
    }

    async fn read(&self, req: VodRequest<'_>) -> Result<VodObject, VodError> {
        let Some((channel, recording)) = split_catalog_id(req.id) else {
            return Err(VodError::not_found(format!("unknown recording {:?}", req.id)));
        };
        if !servable(req.file) {
            return Err(VodError::not_found(format!("recordings have no file {:?}", req.file)));
        }
        let key = format!("{}{}", recording_prefix(channel, recording), req.file);
        match self.storage.get(&key).await {
            Ok(Some(body)) => Ok(VodObject { body, content_type: vod_content_type(req.file) }),
            Ok(None) if req.is_playlist() => Err(VodError::not_found(format!(
                "recording {} has no playlist here (unknown, deleted or not finished)",
                req.id
            ))),
            Ok(None) => Err(VodError::not_found(format!("recording {} has no {}", req.id, req.file))),
            Err(e) => {
                warn!(key, error = %e, "recording object could not be read");
                Err(VodError::unavailable(format!("recording storage unavailable ({})", e.kind())))
            }
        }
    }
}

impl VodSource for StorageVod {
    fn get<'a>(&'a self, req: VodRequest<'a>) -> BoxFuture<'a, Result<VodObject, VodError>> {
        Box::pin(async move {
            let result = self.read(req).await;
            let label = match &result {
                Ok(_) => "ok",
                Err(e) if e.status.as_u16() == 404 => "not_found",
                Err(_) => "error",
            };
            self.requests.with_label_values(&[label]).inc();
            result
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_ids_split_at_the_recording() {
        assert_eq!(split_catalog_id("demo-20261124T151300Z"), Some(("demo", "20261124T151300Z")));
        assert_eq!(split_catalog_id("my-show-20261124T151300Z-2"), Some(("my-show", "20261124T151300Z-2")));
        assert_eq!(
            split_catalog_id("a-20261124T151300Z-20261124T151300Z"),
            Some(("a-20261124T151300Z", "20261124T151300Z"))
        );
        for bad in ["demo", "demo-", "-20261124T151300Z", "demo-2026112T151300Z", "demo-20261124T151300Z-x"] {
            assert_eq!(split_catalog_id(bad), None, "{bad}");
        }
    }

    #[test]
    fn only_playback_files_are_served() {
        for ok in ["index.m3u8", "init-1.mp4", "seg-0.m4s", "seg-123.m4s"] {
            assert!(servable(ok), "{ok}");
        }
        for bad in ["recording.json", "seg-.m4s", "init-x.mp4", "../index.m3u8", "seg-1.m4s/x", ""] {
            assert!(!servable(bad), "{bad}");
        }
    }

    #[tokio::test]
    async fn serves_from_storage_and_404s_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let storage: Arc<dyn Storage> = Arc::new(super::super::LocalStorage::new(dir.path()));
        let prefix = recording_prefix("demo", "20261124T151300Z");
        storage.put(&format!("{prefix}index.m3u8"), "#EXTM3U\n".into(), "x").await.unwrap();
        storage.put(&format!("{prefix}recording.json"), "{}".into(), "x").await.unwrap();
        let vod = StorageVod::new(storage, &Registry::new()).unwrap();
        let req = |id, file| VodRequest { id, file, token: None, client: [127, 0, 0, 1].into() };
        let got = vod.get(req("demo-20261124T151300Z", "index.m3u8")).await.unwrap();
        assert_eq!(&got.body[..], b"#EXTM3U\n");
        assert_eq!(got.content_type, "application/vnd.apple.mpegurl");
        for (id, file) in [
            ("demo-20261124T151300Z", "recording.json"),
            ("demo-20261124T151300Z", "seg-1.m4s"),
            ("demo-20261124T151301Z", "index.m3u8"),
            ("nothing", "index.m3u8"),
        ] {
            let err = vod.get(req(id, file)).await.unwrap_err();
            assert_eq!(err.status.as_u16(), 404, "{id}/{file}");
            assert!(!err.message.is_empty());
        }
        assert_eq!(vod.requests.with_label_values(&["not_found"]).get(), 4);
    }
}
