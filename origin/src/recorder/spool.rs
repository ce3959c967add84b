//! The on-disk spool: what a recording has captured and not yet stored, crash-safe.
//!
//! Layout, one directory per recording:
//!
//! ```text
//! {spool_dir}/{channel}/{recording}/
//!     meta.json       channel, recording id, start time (written once, atomically)
//!     journal.log     JSON lines, appended and fsync'd by the spool writer:
//!                     init / segment / lost / end
//!     uploaded.log    object names verified in storage, appended and fsync'd by the uploader
//!     init-{id}.mp4   objects not uploaded yet (written to `.tmp`, fsync'd, renamed)
//!     seg-{msn}.m4s
//! ```
//!
//! A segment counts as recorded once its file is renamed into place and its journal line
//! is on disk. After a crash, a torn last journal line is ignored, `.tmp` files are
//! removed, and a file without a journal line is an orphan (removed too).

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tracing::warn;

pub(crate) const META: &str = "meta.json";
pub(crate) const JOURNAL: &str = "journal.log";
pub(crate) const UPLOADED: &str = "uploaded.log";

/// One line of `journal.log`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub(crate) enum JournalEntry {
    /// `init-{id}.mp4` was spooled.
    Init { id: u32, bytes: u64 },
    /// `seg-{msn}.m4s` was spooled (`msn` is the object's number in the recording).
    Segment { msn: u64, init: u32, duration: f64, discontinuity: bool, pdt_ms: u64, bytes: u64 },
    /// Segments that could not be spooled.
    Lost { segments: u64, reason: String },
    /// The recording ended (publisher gone past the reconnect gap, or shutdown).
    End { ended_ms: u64 },
}

/// `meta.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Meta {
    pub channel: String,
    pub recording: String,
    pub started_ms: u64,
}

pub(crate) fn init_name(id: u32) -> String {
    format!("init-{id}.mp4")
}

pub(crate) fn segment_name(msn: u64) -> String {
    format!("seg-{msn}.m4s")
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Writes `parts` to `path` through a `.tmp` file: fsync, rename, fsync the directory.
pub(crate) fn write_atomic(path: &Path, parts: &[Bytes]) -> io::Result<()> {
    let dir = path.parent().ok_or_else(|| io::Error::other("path without a directory"))?;
    fs::create_dir_all(dir)?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut file = File::create(&tmp)?;
    for part in parts {
        file.write_all(part)?;
    }
    file.sync_all()?;
    drop(file);
    fs::rename(&tmp, path)?;
    sync_dir(dir)
}

/// Appends one line to `path` and fsyncs it.
pub(crate) fn append_line(path: &Path, line: &str) -> io::Result<()> {
    let created = !path.exists();
    let mut file = OpenOptions::new().create(true).append(true).open(path)?;
    let mut buf = String::with_capacity(line.len() + 1);
    buf.push_str(line);
    buf.push('\n');
    file.write_all(buf.as_bytes())?;
    file.sync_data()?;
    if created && let Some(dir) = path.parent() {
        sync_dir(dir)?;
    }
    Ok(())
}

/// Appends a journal entry.
pub(crate) fn append_journal(dir: &Path, entry: &JournalEntry) -> io::Result<()> {
    let line = serde_json::to_string(entry).map_err(io::Error::other)?;
    append_line(&dir.join(JOURNAL), &line)
}

/// Reads the journal; unreadable lines (a torn last write) are skipped.
pub(crate) fn read_journal(dir: &Path) -> io::Result<Vec<JournalEntry>> {
    let text = match fs::read(dir.join(JOURNAL)) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for line in text.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        match serde_json::from_slice(line) {
            Ok(entry) => out.push(entry),
            Err(e) => warn!(dir = %dir.display(), error = %e, "skipping an unreadable journal line"),
        }
    }
    Ok(out)
}

/// Object names the uploader verified in storage.
pub(crate) fn read_uploaded(dir: &Path) -> io::Result<HashSet<String>> {
    match fs::read_to_string(dir.join(UPLOADED)) {
        Ok(text) => Ok(text.lines().filter(|l| !l.is_empty()).map(str::to_string).collect()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(HashSet::new()),
        Err(e) => Err(e),
    }
}

/// A recording directory found in the spool at start.
#[derive(Debug)]
pub(crate) struct Found {
    pub dir: PathBuf,
    pub meta: Meta,
    pub journal: Vec<JournalEntry>,
    pub uploaded: HashSet<String>,
}

/// Finds every recording left in the spool, removing `.tmp` files and orphans (files
/// without a journal line). Directories without a readable `meta.json` are left alone and
/// logged.
pub(crate) fn scan(spool: &Path) -> io::Result<Vec<Found>> {
    let mut found = Vec::new();
    let channels = match fs::read_dir(spool) {
        Ok(c) => c,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(found),
        Err(e) => return Err(e),
    };
    for channel in channels {
        let channel = channel?;
        if !channel.file_type()?.is_dir() {
            continue;
        }
        for rec in fs::read_dir(channel.path())? {
            let dir = rec?.path();
            if !dir.is_dir() {
                continue;
            }
            let meta: Meta = match fs::read(dir.join(META)).map(|b| serde_json::from_slice(&b)) {
                Ok(Ok(meta)) => meta,
                _ => {
                    // A recording that crashed before its meta.json reached the disk has
                    // no journal either: nothing was recorded.
                    if !dir.join(JOURNAL).exists() {
                        let _ = fs::remove_dir_all(&dir);
                    } else {
                        warn!(dir = %dir.display(), "spool directory without a readable meta.json: left alone");
                    }
                    continue;
                }
            };
            let journal = read_journal(&dir)?;
            let uploaded = read_uploaded(&dir)?;
            let known: HashSet<String> = journal
                .iter()
                .filter_map(|e| match e {
                    JournalEntry::Init { id, .. } => Some(init_name(*id)),
                    JournalEntry::Segment { msn, .. } => Some(segment_name(*msn)),
                    _ => None,
                })
                .collect();
            for file in fs::read_dir(&dir)? {
                let path = file?.path();
                let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                let is_object = name.ends_with(".mp4") || name.ends_with(".m4s");
                if name.ends_with(".tmp") || (is_object && !known.contains(&name)) {
                    fs::remove_file(&path)?;
                }
            }
            found.push(Found { dir, meta, journal, uploaded });
        }
    }
    found.sort_by(|a, b| (a.meta.started_ms, &a.meta.recording).cmp(&(b.meta.started_ms, &b.meta.recording)));
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn torn_journal_line_and_orphans_are_dropped() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("demo").join("20260101T000000Z");
        let meta = Meta { channel: "demo".into(), recording: "20260101T000000Z".into(), started_ms: 5 };
        write_atomic(&dir.join(META), &[Bytes::from(serde_json::to_vec(&meta).unwrap())]).unwrap();
        write_atomic(&dir.join(init_name(7)), &[Bytes::from_static(b"init")]).unwrap();
        append_journal(&dir, &JournalEntry::Init { id: 7, bytes: 4 }).unwrap();
        write_atomic(&dir.join(segment_name(0)), &[Bytes::from_static(b"seg0")]).unwrap();
        let seg = JournalEntry::Segment {
            msn: 0,
            init: 7,
            duration: 2.0,
            discontinuity: false,
            pdt_ms: 9,
            bytes: 4,
        };
        append_journal(&dir, &seg).unwrap();
        // A segment written but not journaled, a leftover .tmp, and a torn journal line.
        fs::write(dir.join(segment_name(1)), b"seg1").unwrap();
        fs::write(dir.join("seg-2.m4s.tmp"), b"se").unwrap();
        append_line(&dir.join(JOURNAL), "{\"t\":\"segment\",\"msn\":1,\"ini").unwrap();

        let found = scan(tmp.path()).unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].meta, meta);
        assert_eq!(found[0].journal, vec![JournalEntry::Init { id: 7, bytes: 4 }, seg]);
        assert!(dir.join(segment_name(0)).exists());
        assert!(!dir.join(segment_name(1)).exists());
        assert!(!dir.join("seg-2.m4s.tmp").exists());
    }
}
