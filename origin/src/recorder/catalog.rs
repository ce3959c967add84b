//! Keeps the control plane's recordings catalog in step with the recorder, and carries out
//! the deletions users request there.
//!
//! One task per origin (only when a control plane is configured): every [`SYNC_INTERVAL`]
//! it reports each recording whose snapshot changed since its last accepted report
//! (`PUT /v1/recordings`), then asks for deleted recordings this origin stored, removes
//! their objects with [`delete_recording`] and confirms the purge. A failed call is simply
//! retried on the next round. On shutdown (after the recorder stopped) it syncs once more,
//! so the final states reach the catalog.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use skyrelay_common::cpapi::{self, ControlPlaneClient, RecordingReport};
use tracing::{info, warn};

use super::storage::{delete_recording, recording_prefix};
use super::vod::RecordingStatus;
use super::{Recorder, RecordingInfo};

/// How often the catalog is brought up to date.
pub const SYNC_INTERVAL: Duration = Duration::from_secs(2);

/// The longest the final sync at shutdown may take.
const FINAL_SYNC: Duration = Duration::from_secs(5);

/// The catalog report of `info`, stored by `node` in the storage at `location`.
pub fn report_of(info: &RecordingInfo, node: &str, location: &str) -> RecordingReport {
    let ms = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    RecordingReport {
        channel: info.channel.clone(),
        recording: info.recording.clone(),
        node: node.to_string(),
        started_ms: ms(info.started_unix_ms),
        ended_ms: info.ended_unix_ms.map(ms),
        duration_ms: ms(info.duration_ms),
        bytes: ms(info.bytes),
        segment_count: i64::try_from(info.segments).unwrap_or(i64::MAX),
        status: match info.status {
            RecordingStatus::Recording => cpapi::RecordingStatus::Recording,
            RecordingStatus::Uploading => cpapi::RecordingStatus::Uploading,
            RecordingStatus::Complete => cpapi::RecordingStatus::Complete,
            RecordingStatus::Partial => cpapi::RecordingStatus::Partial,
        },
        reason: info.reason.clone(),
        location: location.to_string(),
        playlist: format!("{}index.m3u8", recording_prefix(&info.channel, &info.recording)),
    }
}

/// The sync task's state: the last report the control plane accepted, per recording.
struct Sync {
    recorder: Arc<Recorder>,
    client: ControlPlaneClient,
    node: String,
    reported: HashMap<(String, String), RecordingReport>,
}

impl Sync {
    async fn round(&mut self) {
        self.report().await;
        self.purge().await;
    }

    /// Reports every changed recording; forgets those the recorder no longer lists (its
    /// snapshot list is bounded, so this map is too).
    async fn report(&mut self) {
        let location = self.recorder.storage().location();
        let infos = self.recorder.recordings();
        self.reported.retain(|k, _| infos.iter().any(|i| (&i.channel, &i.recording) == (&k.0, &k.1)));
        for info in &infos {
            let key = (info.channel.clone(), info.recording.clone());
            let report = report_of(info, &self.node, &location);
            if self.reported.get(&key) == Some(&report) {
                continue;
            }
            match self.client.report_recording(&report).await {
                Ok(_) => {
                    self.reported.insert(key, report);
                }
                Err(e) => {
                    warn!(channel = %info.channel, recording = %info.recording, error = %e,
                          "catalog report failed; retrying on the next round");
                    if !e.is_refusal() {
                        return;
                    }
                }
            }
        }
    }

    /// Removes the objects of recordings deleted in the catalog, then confirms.
    async fn purge(&mut self) {
        let deleted = match self.client.deleted_recordings(&self.node).await {
            Ok(d) => d,
            Err(e) => {
                warn!(error = %e, "could not fetch deleted recordings");
                return;
            }
        };
        let storage = self.recorder.storage();
        let location = storage.location();
        let busy = self.recorder.recordings();
        for rec in deleted {
            if rec.location != location {
                warn!(recording = %rec.id, location = %rec.location,
                      "deleted recording is in a storage this origin no longer uses: objects left in place");
                continue;
            }
            let in_flight = busy.iter().any(|i| {
                i.channel == rec.channel
                    && i.recording == rec.recording
                    && matches!(i.status, RecordingStatus::Recording | RecordingStatus::Uploading)
            });
            if in_flight {
                continue; // still uploading: deleting now would leave later objects behind
            }
            match delete_recording(storage.as_ref(), &rec.channel, &rec.recording).await {
                Ok(objects) => match self.client.recording_purged(&rec.id).await {
                    Ok(()) => info!(recording = %rec.id, objects, "deleted recording removed from storage"),
                    Err(e) => warn!(recording = %rec.id, error = %e, "could not confirm a purge"),
                },
                Err(e) => warn!(recording = %rec.id, error = %e, "could not remove a deleted recording"),
            }
        }
    }
}

/// Runs the catalog sync for `recorder` as origin `node` until `shutdown`, then syncs once
/// more (bounded by a short timeout).
pub async fn run(
    recorder: Arc<Recorder>,
    client: ControlPlaneClient,
    node: String,
    shutdown: impl Future<Output = ()> + Send,
) {
    let mut sync = Sync { recorder, client, node, reported: HashMap::new() };
    let mut tick = tokio::time::interval(SYNC_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            _ = tick.tick() => sync.round().await,
        }
    }
    let _ = tokio::time::timeout(FINAL_SYNC, sync.report()).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_carries_the_snapshot() {
        let info = RecordingInfo {
            channel: "news".into(),
            recording: "20261124T150000Z".into(),
            status: RecordingStatus::Partial,
            started_unix_ms: 1_000,
            ended_unix_ms: Some(31_000),
            segments: 15,
            duration_ms: 30_000,
            bytes: 4_000_000,
            pending_objects: 0,
            reason: Some("upload queue full".into()),
        };
        let r = report_of(&info, "o1", "s3://vod/");
        assert_eq!(r.playlist, "recordings/news/20261124T150000Z/index.m3u8");
        assert_eq!(r.status, cpapi::RecordingStatus::Partial);
        assert_eq!((r.started_ms, r.ended_ms, r.duration_ms), (1_000, Some(31_000), 30_000));
        assert_eq!((r.bytes, r.segment_count), (4_000_000, 15));
        assert_eq!(r.reason.as_deref(), Some("upload queue full"));
    }
}
