//! Where finished recordings live: a small object-store trait and its local-directory
//! implementation (the S3 one is in `s3.rs`).
//!
//! Keys are `/`-separated relative paths such as `recordings/demo/20261124T151300Z/seg-7.m4s`.
//! Every implementation replaces an object atomically (a reader never sees half an object).

use std::future::Future;
use std::path::{Component, Path, PathBuf};
use std::pin::Pin;

use bytes::Bytes;

/// The future every [`Storage`] method returns.
pub type StorageFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StorageError>> + Send + 'a>>;

/// Why a storage operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The store could not be reached or timed out (worth retrying).
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// The store answered with an error (credentials, missing bucket, ...).
    #[error("storage refused the request: {0}")]
    Refused(String),
    /// A key that is not a safe relative path.
    #[error("invalid object key {0:?}")]
    InvalidKey(String),
    /// A local file operation failed.
    #[error("storage io: {0}")]
    Io(#[from] std::io::Error),
}

impl StorageError {
    /// A short label for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            StorageError::Unavailable(_) => "unavailable",
            StorageError::Refused(_) => "refused",
            StorageError::InvalidKey(_) => "invalid_key",
            StorageError::Io(_) => "io",
        }
    }
}

/// An object store for recordings.
pub trait Storage: Send + Sync + 'static {
    /// Stores `body` at `key`, replacing any previous object.
    fn put<'a>(&'a self, key: &'a str, body: Bytes, content_type: &'static str) -> StorageFuture<'a, ()>;
    /// The object at `key`, or `None` when there is none.
    fn get<'a>(&'a self, key: &'a str) -> StorageFuture<'a, Option<Bytes>>;
    /// Every key that starts with `prefix`, sorted.
    fn list<'a>(&'a self, prefix: &'a str) -> StorageFuture<'a, Vec<String>>;
    /// Removes the object at `key` (no error when it does not exist).
    fn delete<'a>(&'a self, key: &'a str) -> StorageFuture<'a, ()>;
    /// Where objects go, for logs and manifests (`file:///...`, `s3://bucket`).
    fn location(&self) -> String;
}

/// The key prefix of one recording (ends with `/`).
pub fn recording_prefix(channel: &str, recording: &str) -> String {
    format!("recordings/{channel}/{recording}/")
}

/// Deletes every object of a recording; returns how many were removed.
pub async fn delete_recording(
    storage: &dyn Storage,
    channel: &str,
    recording: &str,
) -> Result<usize, StorageError> {
    if !crate::config::valid_channel_name(channel) || !valid_recording_id(recording) {
        return Err(StorageError::InvalidKey(recording_prefix(channel, recording)));
    }
    let prefix = recording_prefix(channel, recording);
    let keys = storage.list(&prefix).await?;
    // The playlist and the manifest go first, so a reader never finds a playlist naming
    // deleted segments.
    let (first, rest): (Vec<_>, Vec<_>) =
        keys.iter().partition(|k| k.ends_with("/index.m3u8") || k.ends_with("/recording.json"));
    for key in first.iter().chain(rest.iter()) {
        storage.delete(key).await?;
    }
    Ok(keys.len())
}

/// Recording ids are `YYYYMMDDTHHMMSSZ`, optionally followed by `-N`.
pub fn valid_recording_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 40 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// Objects in a local directory (the default; `skyrelay up` uses it).
#[derive(Debug, Clone)]
pub struct LocalStorage {
    root: PathBuf,
}

impl LocalStorage {
    /// Objects under `root` (created on first write).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        LocalStorage { root: root.into() }
    }

    fn path(&self, key: &str) -> Result<PathBuf, StorageError> {
        let rel = Path::new(key);
        let safe = !key.is_empty() && rel.components().all(|c| matches!(c, Component::Normal(_)));
        if !safe {
            return Err(StorageError::InvalidKey(key.into()));
        }
        Ok(self.root.join(rel))
    }
}

fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StorageError> + Send + 'static,
) -> StorageFuture<'static, T> {
    Box::pin(async move {
        tokio::task::spawn_blocking(f)
            .await
            .map_err(|e| StorageError::Io(std::io::Error::other(e.to_string())))?
    })
}

impl Storage for LocalStorage {
    fn put<'a>(&'a self, key: &'a str, body: Bytes, _content_type: &'static str) -> StorageFuture<'a, ()> {
        let path = self.path(key);
        blocking(move || Ok(super::spool::write_atomic(&path?, &[body])?))
    }

    fn get<'a>(&'a self, key: &'a str) -> StorageFuture<'a, Option<Bytes>> {
        let path = self.path(key);
        blocking(move || match std::fs::read(path?) {
            Ok(data) => Ok(Some(Bytes::from(data))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        })
    }

    fn list<'a>(&'a self, prefix: &'a str) -> StorageFuture<'a, Vec<String>> {
        let root = self.root.clone();
        let prefix = prefix.to_string();
        blocking(move || {
            // Walk the directory the prefix names (or its parent), then filter.
            let dir = prefix.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
            let mut out = Vec::new();
            let mut stack = vec![root.join(dir)];
            while let Some(d) = stack.pop() {
                let entries = match std::fs::read_dir(&d) {
                    Ok(e) => e,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(e.into()),
                };
                for entry in entries {
                    let entry = entry?;
                    let path = entry.path();
                    if entry.file_type()?.is_dir() {
                        stack.push(path);
                    } else if let Ok(rel) = path.strip_prefix(&root) {
                        let key = rel.to_string_lossy().replace('\\', "/");
                        if key.starts_with(&prefix) && !key.ends_with(".tmp") {
                            out.push(key);
                        }
                    }
                }
            }
            out.sort();
            Ok(out)
        })
    }

    fn delete<'a>(&'a self, key: &'a str) -> StorageFuture<'a, ()> {
        let path = self.path(key);
        let root = self.root.clone();
        blocking(move || {
            let path = path?;
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
            // Remove directories left empty, up to the root.
            let mut dir = path.parent().map(Path::to_path_buf);
            while let Some(d) = dir {
                if d == root || std::fs::remove_dir(&d).is_err() {
                    break;
                }
                dir = d.parent().map(Path::to_path_buf);
            }
            Ok(())
        })
    }

    fn location(&self) -> String {
        format!("file://{}", self.root.display())
    }
}
