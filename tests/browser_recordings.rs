//! Recordings in the browser, on a network started by `skyrelay up`: ffmpeg publishes 12 s
//! to the demo channel (recorded to the data directory by default), and once the catalog has
//! it complete, headless Chromium logs in to the management page, opens the demo channel's
//! recordings (status and duration shown), presses Play, and the edge's watch page plays the
//! recording (`/vod/…`) with hls.js: currentTime advances, the media lasts about the 12 s
//! published, no player or console errors.
//!
//! `web/tests/recordings.mjs` drives the browser; its output and a screenshot are kept under
//! `target/test-artifacts/` (`up-recordings.*`). Needs Chromium and `web/node_modules`
//! (`scripts/test.sh` installs both).

mod support;

use std::path::Path;
use std::time::Duration;

use skyrelay_testkit::browser::{DriverResult, artifacts, check_prerequisites, drive};
use skyrelay_testkit::*;
use support::start_up_with_admin;

const PUBLISHED_S: u32 = 12;
const MIN_ADVANCE_S: f64 = 4.0;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_management_page_lists_and_plays_a_recording() {
    check_prerequisites();
    let dir = tempfile::tempdir().unwrap();
    let up = start_up_with_admin(dir.path()).await;
    let (info, cp, password) = (&up.info, up.control_plane.clone(), up.admin_password.clone());
    let recordings_dir = info["recordings_dir"].as_str().expect("up.json names the recordings directory");
    assert!(
        recordings_dir.starts_with(dir.path().canonicalize().unwrap().to_str().unwrap()),
        "{recordings_dir}"
    );

    let mut feed = ffmpeg_publish(info["demo"]["publish_url"].as_str().unwrap(), PUBLISHED_S);
    let exit = feed.wait_exit(Duration::from_secs(60)).await.expect("ffmpeg finishes");
    assert!(exit.success(), "ffmpeg publish failed: {exit}");
    let list_url = format!("{cp}/v1/channels/demo/recordings");
    let rec = wait_for("the demo recording complete in the catalog", Duration::from_secs(60), || async {
        let (status, list) = http_json("GET", &list_url, None, None).await;
        assert_eq!(status, 200, "{list}");
        list.as_array()?.iter().find(|r| r["status"] == "complete").cloned()
    })
    .await;
    let id = rec["id"].as_str().unwrap().to_string();
    let playlist = Path::new(recordings_dir).join(rec["playlist"].as_str().unwrap());
    assert!(playlist.is_file(), "the recording is in the data directory: {}", playlist.display());

    let shot = artifacts().join("up-recordings.png");
    let _ = std::fs::remove_file(&shot);
    // `--password=` keeps a generated password that starts with `-` from reading as an option.
    let password_arg = format!("--password={password}");
    let args = ["--url", &cp, "--username", "admin", &password_arg, "--channel", "demo"];
    let mut args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    args.extend(["--seconds".into(), MIN_ADVANCE_S.to_string(), "--screenshot".into()]);
    args.push(shot.display().to_string());
    let driven = drive("recordings.mjs", "up-recordings", &args, Duration::from_secs(120)).await;
    let r = DriverResult::parse(&driven, "recordings-result ");
    let report = r.report();
    assert!(r.number("recordings") >= 1.0, "{report}");
    assert_eq!((r.get("recording"), r.get("status")), (id.as_str(), "complete"), "{report}");
    assert!(r.get("duration").starts_with("0:00:1"), "duration shown: {report}");
    assert!(r.get("watch_url").contains(&format!("/watch/demo?vod={id}")), "{report}");
    assert_eq!((r.get("vod"), r.get("engine"), r.get("started")), (id.as_str(), "hls.js", "1"), "{report}");
    assert!(r.number("played_s") >= MIN_ADVANCE_S, "{report}");
    let media = r.number("media_duration_s");
    assert!((media - f64::from(PUBLISHED_S)).abs() <= 2.5, "media duration {media} s:\n{report}");
    assert_eq!((r.get("fatal_errors"), r.get("other_errors")), ("0", "0"), "{report}");
    assert_eq!(r.get("console_errors"), "0", "{report}");
    assert!(shot.is_file(), "no screenshot at {}", shot.display());
}
