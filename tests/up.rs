//! `skyrelay up` as a user runs it: the binary in a temp data dir (free ports), ffmpeg
//! publishes to the demo URL from up.json, ffmpeg plays from an edge of every region, the
//! watch page is served, Ctrl-C stops it cleanly, and a second run reuses the same state.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use skyrelay_testkit::*;
use support::start_up;

async fn read_up_json(dir: &Path) -> serde_json::Value {
    let path = dir.join("up.json");
    wait_for("up.json", Duration::from_secs(60), || async {
        std::fs::read(&path).ok().and_then(|b| serde_json::from_slice(&b).ok())
    })
    .await
}

async fn interrupt(up: &mut ChildGuard) {
    let pid = up.0.id().to_string();
    assert!(Command::new("kill").args(["-INT", &pid]).status().unwrap().success());
    let status = up.wait_exit(Duration::from_secs(30)).await.expect("skyrelay up stops after Ctrl-C");
    assert!(status.success(), "skyrelay up exited with {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_runs_a_two_region_network_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let mut up = start_up(dir.path());
    let info = read_up_json(dir.path()).await;
    let demo = &info["demo"];
    let publish_url = demo["publish_url"].as_str().unwrap().to_string();
    let stream_key = demo["stream_key"].as_str().unwrap().to_string();
    assert!(info["admin_token"].as_str().is_some_and(|t| t.len() > 20));
    let regions = info["regions"].as_array().unwrap();
    assert_eq!(regions.len(), 2);

    let _ffmpeg = ffmpeg_publish(&publish_url, 40);
    for region in regions {
        let edge = region["edges"][0].as_str().unwrap();
        let playlist = format!("{edge}/live/demo/source/index.m3u8");
        wait_for(
            &format!("region {} to serve the demo channel", region["name"]),
            Duration::from_secs(30),
            || async {
                let (status, text) = http_text(&playlist).await;
                (status == 200 && text.contains("#EXTINF")).then_some(())
            },
        )
        .await;
        let master = format!("{edge}/live/demo/master.m3u8");
        let (ok, _, err) = run(Command::new("ffmpeg").args([
            "-hide_banner",
            "-v",
            "error",
            "-i",
            &master,
            "-t",
            "3",
            "-f",
            "null",
            "-",
        ]));
        assert!(ok && err.trim().is_empty(), "decode from {edge}: {err}");
        let (status, page) = http_text(&format!("{edge}/watch/demo")).await;
        assert_eq!(status, 200);
        assert!(page.contains("<video"), "{page}");
    }
    interrupt(&mut up).await;
    assert!(!dir.path().join("up.json").exists(), "up.json must go away with the network");

    // A second run keeps the admin, the channel and its key.
    let mut again = start_up(dir.path());
    let info = read_up_json(dir.path()).await;
    assert_eq!(info["demo"]["stream_key"].as_str(), Some(stream_key.as_str()));
    interrupt(&mut again).await;
}
