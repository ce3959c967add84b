// Skyrelay watch page: plays /live/{channel}/master.m3u8 from the node that served the page,
// with hls.js in low-latency mode (or the browser's own HLS when hls.js cannot run there).
// With `?vod={recording}` it plays that recording instead (/vod/{recording}/index.m3u8,
// hls.js in its normal mode, no retries: a recording does not come back online).
//
// A `token` query parameter of the page is passed on to the playlist (private channels; the
// node then carries it into every URI it serves). While the channel is offline the page
// retries with a growing delay. `window.skyrelayStats` exposes what the player does, for
// people and for the browser tests. `?player=native` skips hls.js (to try the fallback).
(function () {
  'use strict';

  const RETRY_FIRST_MS = 1000;
  const RETRY_MAX_MS = 15000;
  const TICK_MS = 250;
  const MAX_ERRORS = 100;
  // After a stall, hls.js stays behind for good once it is more than a target duration late
  // (it takes that for DVR playback); past this much beyond its target, jump back to live.
  const JUMP_BEHIND_S = 1.5;
  const JUMP_EVERY_MS = 2000;

  const $ = (id) => document.getElementById(id);
  const video = $('video');
  const segments = location.pathname.split('/');
  const channel = decodeURIComponent(segments[2] || '');
  const params = new URLSearchParams(location.search);
  const token = params.get('token');
  const preferNative = params.get('player') === 'native';
  const vod = params.get('vod');
  const src = (vod ? '/vod/' + encodeURIComponent(vod) + '/index.m3u8' :
    '/live/' + encodeURIComponent(channel) + '/master.m3u8') +
    (token ? '?token=' + encodeURIComponent(token) : '');

  const stats = {
    channel: channel,
    vod: vod,
    // starting | connecting | live | offline | denied | error | ended (recordings: `live`
    // while playing)
    state: 'starting',
    message: '',
    engine: null,
    playing: false,
    currentTime: 0,
    latency: null,
    targetLatency: null,
    errors: [],
    attempts: 0,
    stalls: 0,
    liveJumps: 0,
    bufferAhead: 0,
    playbackRate: 1,
    nextRetryMs: null,
    node: null,
    region: null,
  };
  window.skyrelayStats = stats;

  let hls = null;
  let native = false;
  let retryTimer = null;
  let retryDelay = RETRY_FIRST_MS;
  let mediaRecoveries = 0;
  let behindAfterStall = false;
  let lastJump = 0;

  function recordError(source, type, details, fatal) {
    if (stats.errors.length >= MAX_ERRORS) stats.errors.shift();
    stats.errors.push({ at: Date.now(), source: source, type: String(type), details: String(details), fatal: fatal });
  }

  function setState(state, message) {
    stats.state = state;
    stats.message = message || '';
    render();
  }

  function finite(x) {
    return typeof x === 'number' && isFinite(x) ? x : null;
  }

  function render() {
    const badge = $('status');
    const labels = { starting: 'connecting', connecting: 'connecting', live: vod ? 'replay' : 'live',
      offline: 'offline', denied: 'access denied', error: 'error', ended: 'ended' };
    badge.textContent = labels[stats.state] || stats.state;
    badge.className = 'badge badge-' + stats.state;
    const overlay = $('overlay');
    let text = '';
    if (stats.state === 'offline') {
      text = 'Offline: nobody is publishing to this channel.' +
        (stats.nextRetryMs ? ' Retrying in ' + Math.round(stats.nextRetryMs / 1000) + ' s.' : '');
    } else if (stats.state === 'denied') {
      text = 'Access denied: this channel needs a valid playback link.';
    } else if (stats.state === 'error') {
      text = stats.message;
    } else if (stats.state === 'ended') {
      text = 'End of the recording.';
    } else if (stats.state !== 'live') {
      text = 'Connecting…';
    }
    overlay.textContent = text;
    overlay.hidden = text === '';
    $('message').textContent = stats.state === 'live' || stats.state === 'error' ? '' : stats.message;
    if (stats.latency === null) {
      $('latency').textContent = '–';
    } else {
      $('latency').textContent = stats.latency.toFixed(2) + ' s' +
        (stats.targetLatency !== null ? ' (target ' + stats.targetLatency.toFixed(2) + ' s)' : '');
    }
    const where = [stats.node, stats.region].filter(Boolean).join(' · ');
    $('node').textContent = where || location.host;
    $('engine').textContent = stats.engine === 'hls.js' ? (vod ? 'hls.js' : 'hls.js (low latency)') :
      stats.engine === 'native' ? 'native HLS' : '–';
  }

  function teardown() {
    if (hls) {
      hls.destroy();
      hls = null;
    }
    if (native) {
      video.removeAttribute('src');
      video.load();
      native = false;
    }
    stats.playing = false;
    stats.latency = null;
    stats.targetLatency = null;
  }

  function scheduleRetry(reason) {
    teardown();
    clearTimeout(retryTimer);
    stats.nextRetryMs = retryDelay;
    setState('offline', reason);
    retryTimer = setTimeout(start, retryDelay);
    retryDelay = Math.min(retryDelay * 2, RETRY_MAX_MS);
  }

  // Whether the channel is live before a player is built for it: 'ok', 'denied' or 'offline'
  // (nothing published, or only the end of a stream that has stopped).
  async function probe() {
    try {
      const r = await fetch(src, { cache: 'no-store' });
      if (r.status === 401 || r.status === 403) {
        return { outcome: 'denied', reason: r.headers.get('X-Skyrelay-Denied') || 'HTTP ' + r.status };
      }
      if (vod) {
        if (r.ok) return { outcome: 'ok' };
        return { outcome: 'missing', reason: (await r.text()).trim() || 'HTTP ' + r.status };
      }
      if (!r.ok) return { outcome: 'offline', reason: 'HTTP ' + r.status };
      const master = await r.text();
      const first = master.split('\n').map((l) => l.trim()).find((l) => l && !l.startsWith('#'));
      if (!first) return { outcome: 'offline', reason: 'no renditions' };
      const media = await fetch(new URL(first, new URL(src, location.href)), { cache: 'no-store' });
      if (!media.ok) return { outcome: 'offline', reason: 'HTTP ' + media.status };
      if ((await media.text()).includes('#EXT-X-ENDLIST')) return { outcome: 'offline', reason: 'the stream ended' };
      return { outcome: 'ok' };
    } catch (e) {
      return { outcome: 'offline', reason: 'network error' };
    }
  }

  function play() {
    const p = video.play();
    if (p && p.catch) {
      p.catch((e) => {
        recordError('video', 'play', e && e.name, false);
        setState(stats.state, 'Press play to start.');
      });
    }
  }

  function startHls() {
    stats.engine = 'hls.js';
    mediaRecoveries = 0;
    behindAfterStall = false;
    hls = new window.Hls(vod ? { backBufferLength: 30 } : {
      lowLatencyMode: true,
      backBufferLength: 30,
      liveDurationInfinity: true,
      maxLiveSyncPlaybackRate: 1.5,
    });
    hls.on(window.Hls.Events.ERROR, (_event, data) => {
      if (data.details === window.Hls.ErrorDetails.BUFFER_STALLED_ERROR) {
        stats.stalls += 1;
        behindAfterStall = true;
      }
      recordError('hls.js', data.type, data.details, !!data.fatal);
      if (!data.fatal) return;
      if (data.type === window.Hls.ErrorTypes.MEDIA_ERROR && mediaRecoveries < 2) {
        mediaRecoveries += 1;
        hls.recoverMediaError();
        return;
      }
      if (vod) {
        teardown();
        setState('error', 'Playback failed: ' + data.details);
        return;
      }
      scheduleRetry(data.details);
    });
    hls.on(window.Hls.Events.MANIFEST_PARSED, play);
    hls.loadSource(src);
    hls.attachMedia(video);
  }

  function startNative() {
    stats.engine = 'native';
    native = true;
    video.src = src;
    play();
  }

  async function start() {
    retryTimer = null;
    stats.nextRetryMs = null;
    stats.attempts += 1;
    setState('connecting', '');
    const p = await probe();
    if (p.outcome === 'denied') {
      setState('denied', p.reason);
      return;
    }
    if (p.outcome === 'missing') {
      setState('error', 'This recording cannot be played: ' + p.reason);
      return;
    }
    if (p.outcome !== 'ok') {
      scheduleRetry(p.reason);
      return;
    }
    if (window.Hls && window.Hls.isSupported() && !preferNative) {
      startHls();
    } else if (video.canPlayType('application/vnd.apple.mpegurl')) {
      startNative();
    } else {
      setState('error', window.Hls ? 'This browser cannot play HLS.' :
        'The player library did not load (the server needs `npm ci --prefix web`), and this browser has no native HLS.');
    }
  }

  video.addEventListener('playing', () => {
    retryDelay = RETRY_FIRST_MS;
    setState('live', '');
  });
  video.addEventListener('ended', () => (vod ? setState('ended', '') : scheduleRetry('the stream ended')));
  video.addEventListener('error', () => {
    const err = video.error;
    if (!hls && !native) return; // teardown clears the source
    recordError('video', 'media', err ? err.code + ' ' + err.message : 'unknown', true);
    if (native && vod) setState('error', 'media error');
    else if (native) scheduleRetry('media error');
  });

  // Back to the live edge once playback resumes after a stall left it far behind.
  function catchUp() {
    if (vod || !behindAfterStall || !stats.playing || stats.latency === null || stats.targetLatency === null) return;
    if (stats.latency <= stats.targetLatency + JUMP_BEHIND_S) {
      behindAfterStall = false;
      return;
    }
    const live = finite(hls.liveSyncPosition);
    if (live !== null && live > video.currentTime && Date.now() - lastJump > JUMP_EVERY_MS) {
      lastJump = Date.now();
      stats.liveJumps += 1;
      video.currentTime = live;
    }
  }

  function bufferAhead() {
    const b = video.buffered;
    for (let i = 0; i < b.length; i++) {
      if (b.start(i) <= video.currentTime + 0.1 && video.currentTime < b.end(i)) return b.end(i) - video.currentTime;
    }
    return 0;
  }

  setInterval(() => {
    stats.currentTime = video.currentTime;
    stats.playing = !video.paused && !video.ended && video.readyState > 2;
    stats.bufferAhead = bufferAhead();
    stats.playbackRate = video.playbackRate;
    if (vod) {
      // A recording has no live edge: no latency to show.
    } else if (hls) {
      stats.latency = finite(hls.latency);
      stats.targetLatency = finite(hls.targetLatency);
      catchUp();
    } else if (native && video.seekable.length > 0) {
      stats.latency = finite(video.seekable.end(video.seekable.length - 1) - video.currentTime);
    }
    render();
  }, TICK_MS);

  document.title = channel + (vod ? ' (recording)' : '') + ' · Skyrelay';
  $('channel').textContent = channel + (vod ? ' · recording ' + vod : '');
  fetch('/web/info', { cache: 'no-store' })
    .then((r) => (r.ok ? r.json() : {}))
    .then((info) => {
      stats.node = info.node || null;
      stats.region = info.region || null;
      render();
    })
    .catch(() => {});
  start();
})();
