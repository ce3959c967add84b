//! Viewers: LL-HLS players (blocking playlist reloads, parts, preload hints, as hls.js
//! plays) and classic HLS players (playlist polling, whole segments). Each one streams the
//! media it receives through a stamp scanner and records latency, startup, stalls, errors
//! and bytes; no body is kept.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::http::{self, FetchError, HttpClient};
use crate::playlist::{self, MediaPlaylist, Resolved};
use crate::plcache::PlaylistCache;
use crate::sei::{StampScanner, TsStampScanner, unix_now_us};
use crate::stats::{Collector, Recorder};

/// How a viewer plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
pub enum Mode {
    /// Low-latency HLS: blocking reloads, parts, preload hints (falls back to `hls` when the
    /// playlist has no parts).
    #[serde(rename = "ll-hls")]
    #[value(name = "ll-hls")]
    LlHls,
    /// Classic HLS: poll every half target duration, fetch whole segments.
    #[serde(rename = "hls")]
    #[value(name = "hls")]
    Hls,
}

impl Mode {
    /// The label used in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::LlHls => "ll-hls",
            Mode::Hls => "hls",
        }
    }
}

/// One viewer's assignment.
#[derive(Debug, Clone)]
pub struct ViewerSpec {
    /// Master (or media) playlist URL.
    pub url: String,
    /// Playing mode.
    pub mode: Mode,
    /// Group index in the collector.
    pub group: usize,
}

enum Scan {
    Plain(StampScanner),
    Ts(TsStampScanner),
}

impl Scan {
    fn for_url(url: &str) -> Self {
        let path = url.split('?').next().unwrap_or(url);
        if path.ends_with(".ts") {
            Scan::Ts(TsStampScanner::default())
        } else {
            Scan::Plain(StampScanner::new())
        }
    }
}

struct Session<'a> {
    rec: Recorder<'a>,
    t0: Instant,
    started: bool,
    last_media: Option<Instant>,
    stall_after: Duration,
}

impl Session<'_> {
    fn on_media(&mut self, data: &[u8], scan: &mut Scan) {
        let now = Instant::now();
        if !self.started {
            self.started = true;
            self.rec.startup(now - self.t0);
        }
        if let Some(last) = self.last_media {
            let gap = now - last;
            if gap > self.stall_after {
                self.rec.stall(gap);
            }
        }
        self.last_media = Some(now);
        self.rec.bytes(data.len());
        let std_now = std::time::Instant::now();
        let rec = &mut self.rec;
        let mut on = |stamp| rec.stamp(stamp, unix_now_us(), std_now);
        match scan {
            Scan::Plain(s) => s.feed(data, &mut on),
            Scan::Ts(s) => s.feed(data, &mut on),
        }
    }

    fn finish(mut self) {
        match self.last_media {
            None => self.rec.never_started(),
            Some(last) => {
                let gap = Instant::now() - last;
                if gap > self.stall_after {
                    self.rec.stall(gap);
                }
            }
        }
        self.rec.flush();
    }
}

struct Ctx<'c> {
    client: &'c HttpClient,
    playlists: &'c PlaylistCache,
    media_url: http::Resolver,
    init_url: Option<String>,
}

impl Ctx<'_> {
    async fn playlist(
        &self,
        sess: &mut Session<'_>,
        query: Option<String>,
        timeout: Duration,
    ) -> Result<Arc<MediaPlaylist>, FetchError> {
        let blocking = query.is_some();
        let url = match query {
            Some(q) => http::with_query(self.media_url.base(), &q),
            None => self.media_url.base().to_owned(),
        };
        sess.rec.request(if blocking { "playlist_blocking" } else { "playlist" });
        let text = http::get_small(self.client, &url, timeout).await?;
        sess.rec.bytes(text.len());
        let pl = self.playlists.parse(&url, &text).map_err(|_| FetchError::BadPlaylist(url))?;
        sess.stall_after = Duration::from_secs_f64(pl.target_duration.clamp(0.1, 60.0) * 2.0);
        Ok(pl)
    }

    /// Fetches the init segment when the playlist's map changed.
    async fn ensure_init(&mut self, sess: &mut Session<'_>, pl: &MediaPlaylist) {
        let Some(map) = &pl.map_uri else { return };
        let Ok(url) = self.media_url.resolve(map) else {
            sess.rec.error("out_of_scope");
            return;
        };
        if self.init_url.as_deref() == Some(url.as_str()) {
            return;
        }
        sess.rec.request("init");
        let mut n = 0;
        match http::get_stream(self.client, &url, Duration::from_secs(10), |c| {
            n += c.len();
            Ok(())
        })
        .await
        {
            Ok(_) => {
                sess.rec.bytes(n);
                self.init_url = Some(url);
            }
            Err(e) => sess.rec.error(&e.kind()),
        }
    }

    async fn media(
        &self,
        sess: &mut Session<'_>,
        kind: &'static str,
        uri: &str,
        timeout: Duration,
    ) -> Result<(), FetchError> {
        let url = self.media_url.resolve(uri)?;
        sess.rec.request(kind);
        let mut scan = Scan::for_url(&url);
        http::get_stream(self.client, &url, timeout, |c| {
            sess.on_media(c, &mut scan);
            Ok(())
        })
        .await?;
        sess.rec.flush();
        Ok(())
    }
}

/// Resolves the media playlist URL (following a master playlist); retried by the caller.
async fn media_url(client: &HttpClient, url: &str) -> Result<String, FetchError> {
    let text = http::get_text(client, url, Duration::from_secs(10)).await?;
    if playlist::is_media_playlist(&text) {
        return Ok(url.to_owned());
    }
    let variant = playlist::first_variant(&text).map_err(|_| FetchError::BadPlaylist(url.to_owned()))?;
    http::resolve(url, variant)
}

/// Runs one viewer until `deadline` or cancellation; `playlists` is shared by all viewers
/// of the run.
pub async fn run_viewer(
    client: HttpClient,
    playlists: Arc<PlaylistCache>,
    spec: ViewerSpec,
    collector: Arc<Collector>,
    deadline: Instant,
    cancel: CancellationToken,
) {
    collector.live.active.fetch_add(1, Ordering::Relaxed);
    let mut sess = Session {
        rec: Recorder::new(&collector, spec.group),
        t0: Instant::now(),
        started: false,
        last_media: None,
        stall_after: Duration::from_secs(2),
    };
    tokio::select! {
        _ = play(&client, &playlists, &spec, &mut sess) => {}
        _ = tokio::time::sleep_until(deadline) => {}
        _ = cancel.cancelled() => {}
    }
    sess.finish();
    collector.live.active.fetch_sub(1, Ordering::Relaxed);
}

async fn play(client: &HttpClient, playlists: &PlaylistCache, spec: &ViewerSpec, sess: &mut Session<'_>) {
    // Startup: retry until the stream exists; startup time counts from the attempt that
    // succeeds.
    let media_url = loop {
        sess.t0 = Instant::now();
        sess.rec.since_us = unix_now_us();
        sess.rec.request("master");
        match media_url(client, &spec.url).await {
            Ok(u) => break u,
            Err(FetchError::OutOfScope(_) | FetchError::BadUrl(_)) => {
                sess.rec.error("bad_url");
                return;
            }
            Err(_) => {
                sess.rec.request("startup_retry");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    };
    let media_url = match http::Resolver::new(media_url) {
        Ok(r) => r,
        Err(e) => {
            sess.rec.error(&e.kind());
            return;
        }
    };
    let mut ctx = Ctx { client, playlists, media_url, init_url: None };
    let first = loop {
        match ctx.playlist(sess, None, Duration::from_secs(10)).await {
            Ok(pl) if !pl.segments.is_empty() => break pl,
            Ok(_) => sess.rec.request("startup_retry"),
            Err(e) => sess.rec.error(&e.kind()),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    ctx.ensure_init(sess, &first).await;
    if spec.mode == Mode::LlHls && first.part_target.is_some() {
        play_ll(&mut ctx, sess, first).await
    } else {
        play_classic(&mut ctx, sess, first).await
    }
}

async fn play_ll(ctx: &mut Ctx<'_>, sess: &mut Session<'_>, mut pl: Arc<MediaPlaylist>) {
    let part_target = Duration::from_secs_f64(pl.part_target.unwrap_or(1.0).clamp(0.05, 10.0));
    let target = Duration::from_secs_f64(pl.target_duration.clamp(0.1, 60.0));
    let wait_timeout = target * 3 + Duration::from_secs(2);
    let mut want = pl.live_start().unwrap_or((pl.media_sequence, 0));
    let mut last_wait = None;
    loop {
        let resolved = pl.resolve(want);
        if !matches!(resolved, Resolved::Wait(_)) {
            last_wait = None;
        }
        let next = match resolved {
            Resolved::Part(pos, part) => {
                let uri = part.uri.clone();
                if let Err(e) = ctx.media(sess, "part", &uri, wait_timeout).await {
                    sess.rec.error(&e.kind());
                    tokio::time::sleep(part_target).await;
                }
                want = (pos.0, pos.1 + 1);
                continue;
            }
            Resolved::Hint(pos) => {
                let hint = pl.preload_hint.clone().unwrap_or_default();
                let after = (pos.0, pos.1 + 1);
                // The blocking reload asks for the hinted part itself (as hls.js does): it
                // returns when that part completes, with the next part as the new hint. Asking
                // for the part after it would return a part later, and that part would then be
                // fetched whole instead of streamed (a part duration of latency every other part).
                let query = format!("_HLS_msn={}&_HLS_part={}", pos.0, pos.1);
                let reload_sess_rec = &ctx;
                // The hinted part and the blocking reload for it run together.
                let mut side = Session {
                    rec: Recorder::new(sess.rec.collector(), sess.rec.group()),
                    t0: sess.t0,
                    started: true,
                    last_media: None,
                    stall_after: Duration::MAX,
                };
                let (media, reload) = tokio::join!(
                    reload_sess_rec.media(sess, "hint", &hint, wait_timeout),
                    reload_sess_rec.playlist(&mut side, Some(query), wait_timeout),
                );
                side.rec.flush();
                if let Err(e) = media {
                    sess.rec.error(&e.kind());
                }
                want = after;
                reload
            }
            Resolved::Wait(pos) => {
                // A server that cannot block (or answered early twice) is polled instead.
                if !pl.can_block_reload || last_wait == Some(pos) {
                    tokio::time::sleep(part_target).await;
                }
                last_wait = Some(pos);
                let query = format!("_HLS_msn={}&_HLS_part={}", pos.0, pos.1);
                ctx.playlist(sess, Some(query), wait_timeout).await
            }
            Resolved::Behind => {
                sess.rec.error("behind_live_window");
                want = pl.live_start().unwrap_or((pl.media_sequence, 0));
                continue;
            }
        };
        match next {
            Ok(p) => {
                pl = p;
                ctx.ensure_init(sess, &pl).await;
            }
            Err(e) => {
                sess.rec.error(&e.kind());
                tokio::time::sleep(part_target).await;
                if let Ok(p) = ctx.playlist(sess, None, wait_timeout).await {
                    pl = p;
                }
            }
        }
    }
}

async fn play_classic(ctx: &mut Ctx<'_>, sess: &mut Session<'_>, mut pl: Arc<MediaPlaylist>) {
    let start = |pl: &MediaPlaylist| {
        let complete: Vec<u64> = pl.complete().map(|s| s.msn).collect();
        complete.get(complete.len().saturating_sub(3)).copied().unwrap_or(pl.media_sequence)
    };
    let mut next = start(&pl);
    loop {
        let target = Duration::from_secs_f64(pl.target_duration.clamp(0.1, 60.0));
        let uri = pl.segment(next).and_then(|s| s.uri.clone());
        if let Some(uri) = uri {
            if let Err(e) = ctx.media(sess, "segment", &uri, target * 4 + Duration::from_secs(5)).await {
                sess.rec.error(&e.kind());
            }
            next += 1;
            continue;
        }
        if pl.segments.first().is_some_and(|s| next < s.msn) {
            sess.rec.error("behind_live_window");
            next = start(&pl);
            continue;
        }
        tokio::time::sleep(target / 2).await;
        match ctx.playlist(sess, None, target * 2 + Duration::from_secs(5)).await {
            Ok(p) => {
                pl = p;
                ctx.ensure_init(sess, &pl).await;
            }
            Err(e) => sess.rec.error(&e.kind()),
        }
    }
}
