//! `skyrelay up` driven from a browser: the network runs in a temp data dir, ffmpeg publishes
//! the demo channel, headless Chromium (Debian's `chromium`, through playwright-core from
//! `web/`) opens the control plane's management page, logs in as the admin, creates a private
//! channel, toggles its recording on and off, rotates its key (read back from the page, with
//! the full publish URL), ffmpeg publishes to that URL, and the watch page plays the private
//! channel with a token from `/v1/route/play` and the public demo channel from up.json's watch
//! URL: currentTime advances by at least 5 s, no player errors, hls.js latency under 3 s. The
//! control plane's `/watch/{channel}` redirects to an edge's watch page (with a token only for
//! a session).
//!
//! `web/tests/manage.mjs` and `web/tests/watch.mjs` drive the browser and report figures;
//! screenshots and driver output are kept under `target/test-artifacts/` (`up-manage.png`,
//! `up-watch-private.png`, `up-watch-demo.png`). Needs Chromium and `web/node_modules`
//! (`scripts/test.sh` installs both).

mod support;

use std::time::Duration;

use skyrelay_testkit::browser::{DriverResult, artifacts, check_prerequisites, drive};
use skyrelay_testkit::*;
use support::start_up_with_admin;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const MIN_ADVANCE_S: f64 = 5.0;
const MAX_LATENCY_S: f64 = 3.0;
const PRIVATE: &str = "backstage";

/// Plays `url` in the watch page and judges the figures.
async fn watch(name: &str, url: &str) {
    let shot = artifacts().join(format!("{name}.png"));
    let _ = std::fs::remove_file(&shot);
    let args = ["--url", url, "--seconds", "6", "--timeout", "40", "--screenshot"].map(String::from);
    let mut args = args.to_vec();
    args.push(shot.display().to_string());
    let driven = drive("watch.mjs", name, &args, Duration::from_secs(120)).await;
    let r = DriverResult::parse(&driven, "watch-result ");
    let report = r.report();
    let get = |k: &str| r.get(k);
    assert_eq!(get("started"), "1", "{name}: the video never played:\n{report}");
    assert_eq!(get("engine"), "hls.js", "{report}");
    let played = r.number("played_s");
    assert!(played >= MIN_ADVANCE_S, "{name}: currentTime advanced {played:.2} s:\n{report}");
    assert_eq!(get("fatal_errors"), "0", "{name}: fatal player errors:\n{report}");
    // One stall is tolerated below, and with it the request the player cancels to get over
    // it (watch.mjs counts that as `recovery_aborts`, not in `other_errors`/`console_errors`).
    assert_eq!(get("other_errors"), "0", "{name}: player errors:\n{report}");
    assert_eq!(get("console_errors"), "0", "{name}: console errors or failed requests:\n{report}");
    assert!(r.number("stalls") <= 1.0, "{name}: stalls:\n{report}");
    for key in ["latency_max_steady", "latency_last"] {
        let latency = r.number(key);
        assert!(latency < MAX_LATENCY_S, "{name}: hls.js {key} {latency:.2} s:\n{report}");
    }
    assert!(shot.is_file(), "no screenshot at {}", shot.display());
}

/// The status and `Location` of `GET url` (HTTP/1.1, plain), with an optional bearer token.
async fn redirect_of(url: &str, bearer: Option<&str>) -> (u16, String) {
    let rest = url.strip_prefix("http://").expect("http URL");
    let (host, path) = rest.split_once('/').map_or((rest, "/".to_string()), |(h, p)| (h, format!("/{p}")));
    let mut stream = tokio::net::TcpStream::connect(host).await.expect("control plane reachable");
    let auth = bearer.map_or(String::new(), |t| format!("authorization: Bearer {t}\r\n"));
    let req = format!("GET {path} HTTP/1.1\r\nhost: {host}\r\n{auth}connection: close\r\n\r\n");
    stream.write_all(req.as_bytes()).await.expect("request sent");
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(15), stream.read_to_string(&mut answer))
        .await
        .expect("answer within 15 s")
        .expect("answer read");
    let status = answer.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let location = answer
        .lines()
        .find_map(|l| l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case("location")))
        .map_or(String::new(), |(_, v)| v.trim().to_string());
    (status, location)
}

async fn wait_for_playlist(edges: &[String], channel: &str, token: Option<&str>) {
    let query = token.map_or(String::new(), |t| format!("?token={t}"));
    for edge in edges {
        let playlist = format!("{edge}/live/{channel}/source/index.m3u8{query}");
        wait_for(&format!("{edge} to serve {channel}"), Duration::from_secs(30), || async {
            let (status, text) = http_text(&playlist).await;
            (status == 200 && text.matches("#EXTINF").count() >= 2).then_some(())
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_manages_and_watches_a_network_started_by_up() {
    check_prerequisites();
    let dir = tempfile::tempdir().unwrap();
    let up = start_up_with_admin(dir.path()).await;
    let (info, cp, password) = (&up.info, up.control_plane.clone(), up.admin_password.clone());
    let demo = &info["demo"];
    let demo_edge = demo["watch_url"].as_str().unwrap().split("/watch/").next().unwrap().to_string();

    let _demo_feed = ffmpeg_publish(demo["publish_url"].as_str().unwrap(), 90);
    wait_for_playlist(std::slice::from_ref(&demo_edge), "demo", None).await;

    // The management page: log in, create a private channel, rotate its key.
    let shot = artifacts().join("up-manage.png");
    let _ = std::fs::remove_file(&shot);
    // `--password=` keeps a generated password that starts with `-` from reading as an option.
    let password_arg = format!("--password={password}");
    let args = [
        "--url",
        &cp,
        "--username",
        "admin",
        &password_arg,
        "--channel",
        PRIVATE,
        "--live-channel",
        "demo",
        "--screenshot",
    ];
    let mut args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    args.push(shot.display().to_string());
    let driven = drive("manage.mjs", "up-manage", &args, Duration::from_secs(120)).await;
    let m = DriverResult::parse(&driven, "manage-result ");
    let report = m.report();
    let get = |k: &str| m.get(k).to_string();
    assert_eq!(get("private"), "1", "{report}");
    assert_eq!(get("live_channel_status"), "live", "the demo channel should show as live:\n{report}");
    assert_eq!(get("console_errors"), "0", "{report}");
    let key = get("stream_key");
    let publish_url = get("publish_url");
    let session = get("session");
    assert!(key.len() > 20 && publish_url.starts_with("rtmp://") && publish_url.ends_with(&key), "{report}");
    assert!(session.len() > 20, "no session in sessionStorage:\n{report}");
    assert!(shot.is_file(), "no screenshot at {}", shot.display());
    assert_eq!((get("recording_toggles"), get("recording")), ("2".into(), "0".into()), "{report}");
    let (status, ch) = http_json("GET", &format!("{cp}/v1/channels/{PRIVATE}"), Some(&session), None).await;
    assert_eq!(status, 200, "{ch}");
    assert_eq!((ch["private"].as_bool(), ch["recording"].as_bool()), (Some(true), Some(false)), "{ch}");

    // Publish with the key the page showed; play with a token from the session.
    let _private_feed = ffmpeg_publish(&publish_url, 60);
    let (status, route) =
        http_json("GET", &format!("{cp}/v1/route/play/{PRIVATE}"), Some(&session), None).await;
    assert_eq!(status, 200, "{route}");
    let token = route["token"].as_str().expect("a token for the private channel").to_string();
    let edge = route["url"].as_str().unwrap().split("/live/").next().unwrap().to_string();
    let (status, _) = http_json("GET", &format!("{cp}/v1/route/play/{PRIVATE}"), None, None).await;
    assert_eq!(status, 401, "a private channel needs a session");
    wait_for_playlist(std::slice::from_ref(&edge), PRIVATE, Some(&token)).await;

    // The control plane's /watch redirect.
    let (status, location) = redirect_of(&format!("{cp}/watch/demo"), None).await;
    assert_eq!(status, 302);
    assert!(location.ends_with("/watch/demo") && location.starts_with("http://"), "{location}");
    let (status, location) = redirect_of(&format!("{cp}/watch/{PRIVATE}"), Some(&session)).await;
    assert_eq!(status, 302);
    assert!(location.starts_with(&format!("{edge}/watch/{PRIVATE}?token=")), "{location}");
    let (status, _) = redirect_of(&format!("{cp}/watch/{PRIVATE}"), None).await;
    assert_eq!(status, 401);

    watch("up-watch-private", &format!("{edge}/watch/{PRIVATE}?token={token}")).await;
    watch("up-watch-demo", demo["watch_url"].as_str().unwrap()).await;
}
