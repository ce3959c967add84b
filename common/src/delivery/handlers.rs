//! Request handling: routing, access, lookup, and one function per kind of object.
//!
//! Waits (blocking playlist reload, a part that has not opened yet, a segment still being
//! written) go through [`Rendition::wait_for`] and end at the hold deadline. Nothing is
//! allocated for a request beyond its own response: an unknown channel is a 404 at once.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use http::header::{
    ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN,
    ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE, ACCESS_CONTROL_REQUEST_HEADERS, CACHE_CONTROL,
    CONTENT_LENGTH, CONTENT_TYPE, VARY,
};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use tokio::time::Instant;

use super::body::{BodyError, DeliveryBody};
use super::metrics::ReloadOutcome;
use super::routes::{Kind, Query, Route, parse_path, parse_query};
use super::web::WebState;
use super::{Delivery, Denied, SourceError};
use crate::hub::{Rendition, coalesce};
use crate::playlist::write_master_playlist;
use crate::window::{ChunkAt, LiveWindow, PartRef};

const PLAYLIST_TYPE: &str = "application/vnd.apple.mpegurl";
const INIT_TYPE: &str = "video/mp4";
const MEDIA_TYPE: &str = "video/iso.segment";
const NO_CACHE: &str = "no-cache";
/// Header naming why a request was refused.
pub const DENIED_HEADER: &str = "x-skyrelay-denied";
/// The request header fields the handlers read. A request on a connection served by `h1`
/// reaches them with these fields only: a handler that reads another adds it here.
pub(super) const READ_REQUEST_HEADERS: &[http::HeaderName] = &[ACCESS_CONTROL_REQUEST_HEADERS];

type Resp = Response<DeliveryBody>;

/// What the handlers read of a request: its method, path and query (of an origin-form
/// target) and the header fields of [`READ_REQUEST_HEADERS`].
#[derive(Clone, Copy)]
pub(super) struct Target<'a> {
    pub method: &'a Method,
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub headers: &'a HeaderMap,
}

impl<'a> Target<'a> {
    pub(super) fn of<B>(req: &'a Request<B>) -> Self {
        Target {
            method: req.method(),
            path: req.uri().path(),
            query: req.uri().query(),
            headers: req.headers(),
        }
    }
}

/// Most headers a delivery response carries (content type and length, cache control, CORS,
/// node and region, …): the map is made this large at once instead of growing and rehashing
/// once per response.
const RESPONSE_HEADERS: usize = 10;

fn response(body: DeliveryBody) -> Resp {
    let mut r = Response::new(body);
    *r.headers_mut() = http::HeaderMap::with_capacity(RESPONSE_HEADERS);
    r
}

pub(super) fn text(status: StatusCode, msg: impl Into<String>) -> Resp {
    let mut msg = msg.into();
    msg.push('\n');
    let mut r = response(DeliveryBody::full(msg));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static(NO_CACHE));
    r
}

pub(super) fn ok(body: DeliveryBody, content_type: &'static str, cache: HeaderValue) -> Resp {
    let mut r = response(body);
    r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r.headers_mut().insert(CACHE_CONTROL, cache);
    r
}

/// The headers every response carries: CORS (`cors_origin`), node and region.
fn add_common_headers(h: &mut HeaderMap, cors_origin: &HeaderValue, web: &WebState) {
    h.insert(ACCESS_CONTROL_ALLOW_ORIGIN, cors_origin.clone());
    h.insert(
        ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static(
            "Content-Length, Age, X-Skyrelay-Denied, X-Skyrelay-Node, X-Skyrelay-Region",
        ),
    );
    web.identify(h);
    if cors_origin != "*" {
        h.insert(VARY, HeaderValue::from_static("Origin"));
    }
}

/// The headers of every part and segment response, made once per [`Delivery`]: the media
/// type, `immutable` caching and the common headers.
pub(super) fn media_headers(immutable: &HeaderValue, cors_origin: &HeaderValue, web: &WebState) -> HeaderMap {
    let mut h = HeaderMap::with_capacity(RESPONSE_HEADERS);
    h.insert(CONTENT_TYPE, HeaderValue::from_static(MEDIA_TYPE));
    h.insert(CACHE_CONTROL, immutable.clone());
    add_common_headers(&mut h, cors_origin, web);
    h
}

fn denied(d: Denied) -> Resp {
    let mut r = text(d.status, format!("access denied: {}", d.reason));
    let reason: String = d.reason.chars().filter(|c| c.is_ascii_graphic() || *c == ' ').take(200).collect();
    if let Ok(v) = HeaderValue::from_str(&reason) {
        r.headers_mut().insert(DENIED_HEADER, v);
    }
    r
}

fn source_error(e: SourceError) -> Resp {
    match e {
        SourceError::NotFound => text(StatusCode::NOT_FOUND, "unknown channel"),
        SourceError::Unavailable(_) => text(StatusCode::BAD_GATEWAY, "channel source unavailable"),
        SourceError::Overloaded => text(StatusCode::SERVICE_UNAVAILABLE, "over capacity"),
    }
}

/// Whether a blocking reload for `msn` (and `part`) can be answered.
fn reload_satisfied(w: &LiveWindow, msn: u64, part: Option<u32>) -> bool {
    if w.ended() || w.oldest_msn().is_some_and(|o| msn < o) || w.last_complete_msn().is_some_and(|m| m >= msn)
    {
        return true;
    }
    part.is_some_and(|p| w.last_complete_part().is_some_and(|lp| lp >= PartRef { msn, part: p }))
}

enum PartState {
    Complete(Vec<Bytes>),
    Open,
    Wait,
    Missing,
}

/// `filled`: [`Rendition::is_filled`]; while a fresh subscription backfills, any part not
/// held yet may still come.
fn classify_part(w: &LiveWindow, msn: u64, part: u32, filled: bool) -> PartState {
    if let Some(p) = w.part(msn, part) {
        return if p.complete { PartState::Complete(p.chunks) } else { PartState::Open };
    }
    if w.ended() {
        return PartState::Missing;
    }
    if !filled {
        return PartState::Wait;
    }
    let target = PartRef { msn, part };
    let Some(next) = w.next_part() else {
        return PartState::Wait;
    };
    let soon = target == next
        || target == PartRef { msn: next.msn, part: next.part + 1 }
        || (next.part > 0 && target == PartRef { msn: next.msn + 1, part: 0 });
    if soon { PartState::Wait } else { PartState::Missing }
}

/// A plain playlist request is answered once the window lists a complete segment (or the
/// stream ended): players that ignore parts (ffmpeg, classic HLS) cannot start from a
/// playlist of parts only, as a freshly subscribed edge or a just-started stream has.
fn has_first_segment(w: &LiveWindow) -> Option<()> {
    (w.last_complete_msn().is_some() || (w.ended() && w.latest_msn().is_some())).then_some(())
}

/// Whether part `msn.part` can no longer appear.
fn part_impossible(w: &LiveWindow, msn: u64) -> bool {
    w.ended() || w.last_complete_msn().is_some_and(|m| m >= msn) || w.latest_msn().is_some_and(|m| m > msn)
}

impl Delivery {
    /// Answers one request. `client` is the peer address (for the access hook).
    pub async fn handle<B>(&self, req: Request<B>, client: IpAddr) -> Response<DeliveryBody> {
        let active = self.metrics.active_guard();
        let (kind, mut resp, media) = self.answer(Target::of(&req), client).await;
        if media {
            let own = std::mem::replace(resp.headers_mut(), self.media_headers.clone());
            resp.headers_mut().extend(own);
        }
        resp.map(|b| b.counted(self.metrics.body_bytes(kind), active))
    }

    /// [`handle`](Self::handle) without the counting of bytes and activity (the caller's),
    /// for an HTTP layer that writes the media fields itself: the response, its kind, and
    /// whether its fields are the media template's ([`media_fields`](Self::media_fields))
    /// followed by its own.
    pub(super) async fn answer(&self, req: Target<'_>, client: IpAddr) -> (Kind, Resp, bool) {
        let head = req.method == Method::HEAD;
        let (kind, mut resp) = self.route(req, client).await;
        self.metrics.request(kind, resp.status());
        let media = resp.body().has_media_fields();
        if !media {
            add_common_headers(resp.headers_mut(), &self.cors_origin, &self.web);
        }
        // hyper writes Content-Length itself from the body's exact size (HTTP/1.1 and
        // HTTP/2); a HEAD answer has no body to take it from.
        if head {
            if let Some(len) = resp.body().exact_len() {
                resp.headers_mut().insert(CONTENT_LENGTH, HeaderValue::from(len));
            }
            let (parts, _) = resp.into_parts();
            resp = Response::from_parts(parts, DeliveryBody::empty());
        }
        (kind, resp, media)
    }

    /// A part or segment: its fields are the media template's (type, immutable caching and
    /// the common headers, made once), added by whoever writes the head.
    fn media(&self, body: DeliveryBody) -> Resp {
        Response::new(body.with_media_fields())
    }

    /// The media template's fields as HTTP/1.1 header lines.
    pub(super) fn media_fields(&self) -> &[u8] {
        &self.media_fields
    }

    async fn route(&self, req: Target<'_>, client: IpAddr) -> (Kind, Resp) {
        match *req.method {
            Method::GET | Method::HEAD => {}
            Method::OPTIONS => return (Kind::Other, preflight(req.headers)),
            _ => return (Kind::Other, text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")),
        }
        let Some(route) = parse_path(req.path) else {
            return (Kind::Other, text(StatusCode::NOT_FOUND, "not found"));
        };
        let kind = route.kind();
        if let Route::Vod { id, file } = route {
            return (kind, self.vod(id, file, req.query, client).await);
        }
        let Some(channel) = route.channel() else {
            return (kind, self.public(route).await);
        };
        let query = match parse_query(req.query) {
            Ok(q) => q,
            Err(e) => {
                if kind == Kind::Playlist {
                    self.metrics.reload(ReloadOutcome::Rejected);
                }
                return (kind, text(StatusCode::BAD_REQUEST, e.to_string()));
            }
        };
        let token = match &self.access {
            Some(access) => match access.check(channel, query.token, client).await {
                Ok(t) => t,
                Err(d) => return (kind, denied(d)),
            },
            None => None,
        };
        let uri_query = token.map(|t| format!("token={}", super::encode_query_value(&t)));
        let uri_query = uri_query.as_deref();
        let resp = match route {
            Route::Health | Route::Watch { .. } | Route::Web(_) | Route::Vod { .. } => {
                self.public(route).await
            }
            Route::Master { channel } => self.master(channel, uri_query).await,
            Route::Playlist { channel, rendition } => match self.lookup(channel, rendition).await {
                Ok(r) => self.playlist(&r, &query, uri_query).await,
                Err(resp) => resp,
            },
            Route::Init { channel, rendition, id } => match self.lookup(channel, rendition).await {
                Ok(r) => match r.read(|w| w.init(id)) {
                    Some(b) => ok(DeliveryBody::full(b), INIT_TYPE, self.immutable.clone()),
                    None => text(StatusCode::NOT_FOUND, "unknown init segment"),
                },
                Err(resp) => resp,
            },
            Route::Segment { channel, rendition, msn } => {
                match self.lookup_for(channel, rendition, Some(msn)).await {
                    Ok(r) => self.segment(&r, msn).await,
                    Err(resp) => resp,
                }
            }
            Route::Part { channel, rendition, msn, part } => match self.lookup(channel, rendition).await {
                Ok(r) => self.part(r, msn, part).await,
                Err(resp) => resp,
            },
        };
        (kind, resp)
    }

    /// The rendition, asking the channel source first when the hub lacks the channel.
    async fn lookup(&self, channel: &str, rendition: &str) -> Result<Arc<Rendition>, Resp> {
        self.lookup_for(channel, rendition, None).await
    }

    /// [`lookup`](Self::lookup) for a request of `segment`, if any (see
    /// [`ChannelSource::ensure_for_segment`]).
    async fn lookup_for(
        &self,
        channel: &str,
        rendition: &str,
        segment: Option<u64>,
    ) -> Result<Arc<Rendition>, Resp> {
        if let Some(r) = self.hub.rendition(channel, rendition) {
            r.touch();
            return Ok(r);
        }
        match &self.source {
            Some(source) if !self.hub.contains(channel) => match segment {
                Some(msn) => source.ensure_for_segment(channel, rendition, msn).await,
                None => source.ensure(channel).await,
            }
            .map_err(source_error)?,
            _ => return Err(text(StatusCode::NOT_FOUND, "unknown channel or rendition")),
        }
        let r = self.hub.rendition(channel, rendition);
        let r = r.ok_or_else(|| text(StatusCode::NOT_FOUND, "unknown rendition"))?;
        r.touch();
        Ok(r)
    }

    fn hold(&self, r: &Rendition) -> Duration {
        if self.cfg.hold_deadline_ms > 0 {
            return Duration::from_millis(self.cfg.hold_deadline_ms);
        }
        Duration::from_secs(3 * r.read(|w| w.target_duration_secs()))
    }

    async fn master(&self, channel: &str, uri_query: Option<&str>) -> Resp {
        let mut renditions = self.hub.renditions(channel);
        if renditions.is_empty()
            && let Some(source) = &self.source
        {
            if let Err(e) = source.ensure(channel).await {
                return source_error(e);
            }
            renditions = self.hub.renditions(channel);
        }
        let Some(first) = renditions.first() else {
            return text(StatusCode::NOT_FOUND, "unknown channel");
        };
        let deadline = Instant::now() + self.hold(first);
        if first.wait_for_parts(deadline, |w| w.info().map(|_| ())).await.is_none() {
            return text(StatusCode::SERVICE_UNAVAILABLE, "no media yet");
        }
        let infos: Vec<_> = renditions
            .iter()
            .filter_map(|r| {
                r.touch();
                r.read(|w| w.info().cloned()).map(|mut info| {
                    info.name = r.name().to_owned();
                    info
                })
            })
            .collect();
        let body = write_master_playlist(&infos, uri_query);
        ok(DeliveryBody::full(body), PLAYLIST_TYPE, HeaderValue::from_static(NO_CACHE))
    }

    async fn playlist(&self, r: &Rendition, q: &Query<'_>, uri_query: Option<&str>) -> Resp {
        // Only for a wait: most requests are answered at once.
        let deadline = || Instant::now() + self.hold(r);
        if let Some(msn) = q.msn {
            let (too_far, max_parts) = r.read(|w| {
                (w.latest_msn().is_some_and(|l| msn > l.saturating_add(2)), w.config().max_parts_per_segment)
            });
            if too_far || q.part.is_some_and(|p| p >= max_parts) {
                self.metrics.reload(ReloadOutcome::Rejected);
                return text(StatusCode::BAD_REQUEST, "_HLS_msn/_HLS_part too far ahead of the playlist");
            }
            let part = q.part;
            let outcome = if r.read(|w| reload_satisfied(w, msn, part)) {
                ReloadOutcome::Immediate
            } else if r
                .wait_for_parts(deadline(), |w| reload_satisfied(w, msn, part).then_some(()))
                .await
                .is_some()
            {
                ReloadOutcome::Held
            } else {
                ReloadOutcome::Timeout
            };
            self.metrics.reload(outcome);
            if outcome == ReloadOutcome::Timeout {
                return text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "requested segment or part did not appear in time",
                );
            }
        } else if !(r.is_filled() && r.read(|w| has_first_segment(w).is_some())) {
            // A fresh edge: wait for the history too, so the first playlist lists it all;
            // past the deadline, any complete segment will do.
            let filled = |w: &LiveWindow| has_first_segment(w).filter(|()| r.is_filled());
            if r.wait_for_parts(deadline(), filled).await.is_none() && r.read(has_first_segment).is_none() {
                return text(StatusCode::SERVICE_UNAVAILABLE, "no complete segment yet; retry shortly");
            }
        }
        match r.media_playlist(uri_query) {
            Some(body) => ok(DeliveryBody::full(body), PLAYLIST_TYPE, HeaderValue::from_static(NO_CACHE)),
            None => text(StatusCode::SERVICE_UNAVAILABLE, "no media yet"),
        }
    }

    async fn segment(&self, r: &Rendition, msn: u64) -> Resp {
        if let Some(objects) = r.objects()
            && let Some(whole) = objects.get(r.id(), msn).await
        {
            return self.media(DeliveryBody::full(whole));
        }
        // Wait (bounded) for a segment that is being written or about to be: the open one,
        // the next two, or any while the window is still empty (an edge that has just
        // subscribed). Older segments that left the window are gone.
        let lookup = |w: &LiveWindow| match w.segment(msn) {
            Some(s) => Some(Some(s.chunks)),
            None if w.ended() => Some(None),
            // Backfilling: older segments are still on their way.
            None if !r.is_filled() => None,
            None if w.latest_msn().is_none_or(|latest| msn >= latest && msn <= latest + 2) => None,
            None => Some(None),
        };
        let found = match r.read(lookup) {
            Some(found) => found,
            // A fresh edge backfilling: fetch the segment upstream rather than wait for the
            // history to arrive oldest first.
            None if !r.is_filled() => match Box::pin(self.fetch_segment(r, msn)).await {
                Some(body) => return self.media(body),
                None => match r.wait_for_parts(Instant::now() + self.hold(r), lookup).await {
                    Some(found) => found,
                    None => return text(StatusCode::SERVICE_UNAVAILABLE, "segment not complete in time"),
                },
            },
            None => match r.wait_for_parts(Instant::now() + self.hold(r), lookup).await {
                Some(found) => found,
                None => return text(StatusCode::SERVICE_UNAVAILABLE, "segment not complete in time"),
            },
        };
        // Older than the window: the upstream may still hold it.
        if found.is_none()
            && r.read(|w| w.oldest_msn().is_some_and(|o| msn < o))
            && let Some(body) = Box::pin(self.fetch_segment(r, msn)).await
        {
            return self.media(body);
        }
        let body = match (found, r.objects()) {
            // One contiguous buffer, made once and shared: a single body frame.
            (Some(chunks), Some(objects)) => {
                // Boxed: a miss is rare, and its future is large (every request's state would
                // carry it otherwise).
                let (outcome, whole) = Box::pin(objects.get_or_join(r.id(), msn, chunks)).await;
                tracing::debug!(channel = r.channel(), msn, outcome = outcome.as_str(), "segment object");
                DeliveryBody::full(whole)
            }
            (Some(chunks), None) => DeliveryBody::chunks(chunks),
            (None, _) => return text(StatusCode::NOT_FOUND, "segment not in the live window"),
        };
        self.media(body)
    }

    /// Segment `msn` fetched upstream through the object cache (one fetch for concurrent
    /// requests), as a body that follows the segment while it arrives; `None` without a
    /// source or object cache, or when the fetch failed before its first byte (the
    /// upstream does not hold it, or the connection went away).
    async fn fetch_segment(&self, r: &Rendition, msn: u64) -> Option<DeliveryBody> {
        let (source, objects) = (self.source.as_ref()?, r.objects()?);
        let fetch = source.fetch_segment(r.channel(), r.name(), msn);
        let (outcome, mut arriving) = match objects.get_or_arrive(r.id(), msn, fetch).await {
            Ok(found) => found,
            Err(e) => {
                tracing::debug!(channel = r.channel(), msn, error = %e, "segment fetch failed");
                return None;
            }
        };
        tracing::debug!(channel = r.channel(), msn, outcome = outcome.as_str(), "segment fetched");
        if let Some(Ok(chunks)) = arriving.arrived() {
            return Some(match objects.settled(r.id(), msn).await {
                Some(whole) => DeliveryBody::full(whole),
                None => DeliveryBody::chunks(chunks),
            });
        }
        let hold = self.hold(r);
        if let Err(e) = arriving.started(Instant::now() + hold).await {
            tracing::debug!(channel = r.channel(), msn, error = %e, "segment fetch failed");
            return None;
        }
        // Chunks as they are (no joining): the many viewers of a cold burst read the same
        // buffers, and a copy each would cost more than the extra body frames (hyper writes
        // queued frames with one `writev`).
        let body = arriving.stream(hold, 0).map(|c| c.map_err(BodyError::from));
        Some(DeliveryBody::stream(body))
    }

    async fn part(&self, r: Arc<Rendition>, msn: u64, part: u32) -> Resp {
        let mut state = r.read(|w| classify_part(w, msn, part, r.is_filled()));
        if let PartState::Wait = state {
            let hold = self.hold(&r);
            let waited = r
                .wait_for_parts(Instant::now() + hold, |w| match classify_part(w, msn, part, r.is_filled()) {
                    PartState::Wait if r.is_filled() && part_impossible(w, msn) => Some(PartState::Missing),
                    PartState::Wait => None,
                    other => Some(other),
                })
                .await;
            match waited {
                Some(s) => state = s,
                None => return text(StatusCode::SERVICE_UNAVAILABLE, "part did not open in time"),
            }
        }
        match state {
            PartState::Complete(chunks) => self.media(DeliveryBody::chunks(chunks)),
            PartState::Open => {
                let hold = self.hold(&r);
                self.media(stream_part(r, msn, part, hold))
            }
            PartState::Wait | PartState::Missing => {
                text(StatusCode::NOT_FOUND, "part not in the live window")
            }
        }
    }
}

/// Most bytes of ready chunks joined into one body frame.
const COALESCE_BYTES: usize = 256 * 1024;

/// The chunks of part `msn.part` ready from `idx` on, joined into one buffer (at most
/// [`COALESCE_BYTES`]), and the index after them; when none is ready, what the window says
/// of chunk `idx` instead. One chunk is passed as it is; several (a reader that was not
/// scheduled for a while, or one that starts late) cost one body frame instead of one each,
/// so a busy server catches up instead of falling further behind.
fn ready_chunks(w: &LiveWindow, msn: u64, part: u32, idx: usize) -> Result<(Bytes, usize), ChunkAt> {
    match w.chunk_at(msn, part, idx) {
        ChunkAt::Ready(first) => {
            let more = |i| match w.chunk_at(msn, part, idx + i) {
                ChunkAt::Ready(c) => Some(c),
                _ => None,
            };
            let (joined, taken) = coalesce(first, more, COALESCE_BYTES);
            Ok((joined, idx + taken))
        }
        other => Err(other),
    }
}

/// A body that yields the part's chunks as they are written and ends when it completes.
/// Errors (the connection is reset, not ended cleanly) if the part disappears or stalls for
/// longer than `stall`.
fn stream_part(r: Arc<Rendition>, msn: u64, part: u32, stall: Duration) -> DeliveryBody {
    let rx = r.subscribe();
    let stream =
        futures_util::stream::unfold((r, rx, 0usize, false), move |(r, mut rx, idx, failed)| async move {
            if failed {
                return None;
            }
            loop {
                let error = match r.read(|w| ready_chunks(w, msn, part, idx)) {
                    Ok((bytes, next)) => return Some((Ok(bytes), (r, rx, next, false))),
                    Err(ChunkAt::Ready(_)) => unreachable!("ready chunks are returned"),
                    Err(ChunkAt::Done) => return None,
                    Err(ChunkAt::Missing) => BodyError::PartGone,
                    Err(ChunkAt::Pending) if r.is_closed() => BodyError::PartGone,
                    Err(ChunkAt::Pending) => match tokio::time::timeout(stall, rx.changed()).await {
                        Ok(Ok(())) => continue,
                        Ok(Err(_)) => BodyError::PartGone,
                        Err(_) => BodyError::Stalled,
                    },
                };
                return Some((Err(error), (r, rx, idx, true)));
            }
        });
    DeliveryBody::stream(stream)
}

fn preflight(headers: &HeaderMap) -> Resp {
    let mut r = Response::new(DeliveryBody::empty());
    *r.status_mut() = StatusCode::NO_CONTENT;
    let h = r.headers_mut();
    h.insert(ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("GET, HEAD, OPTIONS"));
    let allow = headers.get(ACCESS_CONTROL_REQUEST_HEADERS).cloned();
    h.insert(ACCESS_CONTROL_ALLOW_HEADERS, allow.unwrap_or_else(|| HeaderValue::from_static("Range")));
    h.insert(ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("86400"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::{MediaEvent, RenditionInfo};
    use crate::window::WindowConfig;

    fn video_only() -> RenditionInfo {
        RenditionInfo {
            name: "source".into(),
            codecs: "avc1.64001f".into(),
            bandwidth: 1_000_000,
            resolution: None,
            frame_rate: None,
            has_video: true,
            has_audio: false,
        }
    }

    fn window_with_open_part(chunks: &[&'static [u8]]) -> LiveWindow {
        let mut w = LiveWindow::new(WindowConfig::default());
        let info = video_only();
        w.apply(MediaEvent::Init { info, bytes: Bytes::from_static(b"init") }, 0).unwrap();
        for c in chunks {
            let ev = MediaEvent::Chunk { msn: 0, part: 0, independent: true, bytes: Bytes::from_static(c) };
            w.apply(ev, 0).unwrap();
        }
        w
    }

    #[test]
    fn ready_chunks_are_joined_into_one_frame() {
        let w = window_with_open_part(&[b"ab", b"cd", b"ef"]);
        assert_eq!(ready_chunks(&w, 0, 0, 0), Ok((Bytes::from_static(b"abcdef"), 3)));
        assert_eq!(ready_chunks(&w, 0, 0, 1), Ok((Bytes::from_static(b"cdef"), 3)));
        assert!(matches!(ready_chunks(&w, 0, 0, 3), Err(ChunkAt::Pending)), "nothing new yet");
    }

    #[test]
    fn a_single_ready_chunk_is_passed_without_a_copy() {
        let w = window_with_open_part(&[b"ab", b"cd"]);
        let (one, next) = ready_chunks(&w, 0, 0, 1).unwrap();
        assert_eq!(next, 2);
        let held = match w.chunk_at(0, 0, 1) {
            ChunkAt::Ready(b) => b,
            _ => unreachable!("chunk 1 is held"),
        };
        assert_eq!(one.as_ptr(), held.as_ptr(), "the window's own buffer");
    }

    /// Parts and segments (headers from the template) carry the same common headers as any
    /// other response: CORS (with `Vary` for a named origin), node and region.
    #[tokio::test]
    async fn media_responses_carry_the_common_headers() {
        let hub = Arc::new(crate::hub::Hub::new(WindowConfig::default()));
        let cfg = super::super::DeliveryConfig {
            node_name: "edge-eu-1".into(),
            region: "eu".into(),
            cors_allow_origin: "https://player.example".into(),
            ..Default::default()
        };
        let d = Delivery::new(hub.clone(), cfg, &prometheus::Registry::new(), "media_test").unwrap();
        let r = hub.open("ch", "source").unwrap();
        let info = video_only();
        r.apply(MediaEvent::Init { info, bytes: Bytes::from_static(b"init") }, 0).unwrap();
        for part in 0..2 {
            let bytes = Bytes::from_static(b"media");
            r.apply(MediaEvent::Chunk { msn: 0, part, independent: part == 0, bytes }, 0).unwrap();
            r.apply(MediaEvent::PartEnd { msn: 0, part, duration: 0.5, ends_segment: part == 1 }, 0).unwrap();
        }
        let ip = IpAddr::from([127, 0, 0, 1]);
        for path in
            ["/live/ch/source/seg-0.m4s", "/live/ch/source/part-0.1.m4s", "/live/ch/source/index.m3u8"]
        {
            let resp = d.handle(Request::get(path).body(()).unwrap(), ip).await;
            assert_eq!(resp.status(), StatusCode::OK, "{path}");
            let h = resp.headers();
            let get = |name: &str| h.get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
            assert_eq!(get("access-control-allow-origin"), "https://player.example", "{path}");
            assert_eq!(get("vary"), "Origin", "{path}");
            assert!(get("access-control-expose-headers").contains("X-Skyrelay-Node"), "{path}");
            assert_eq!((get("x-skyrelay-node"), get("x-skyrelay-region")), ("edge-eu-1".into(), "eu".into()));
            if path.ends_with(".m4s") {
                assert_eq!(get("content-type"), MEDIA_TYPE, "{path}");
                assert_eq!(get("cache-control"), "public, max-age=300, immutable", "{path}");
            }
        }
    }
}
