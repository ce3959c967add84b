// Opens a Skyrelay watch page in headless Chromium (the system's, driven by playwright-core)
// and reports what the player did; the Rust browser tests run it and judge the figures.
//
//   node web/tests/watch.mjs --url http://127.0.0.1:PORT/watch/demo --screenshot out.png \
//     [--offline-url http://…/watch/nothing] [--native-url http://…/watch/demo?player=native]
//     [--cut-seconds 4] [--seconds 6] [--timeout 60] [--chromium /usr/bin/chromium]
//
// Output (stdout), one line each:
//   watch-result key=value …     figures (seconds as decimals), see `result` below
//   watch-errors JSON            player errors recorded by the page (window.skyrelayStats.errors)
//   watch-console JSON           console errors, uncaught page errors, failed requests
//   watch-timeline JSON          samples while playing: [s, currentTime, latency, target, buffer ahead, rate]
// Exit status: 0 when the run completed (whatever the figures), 2 when it could not run.
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { parseArgs } from 'node:util';

import { chromium } from 'playwright-core';

const { values: opts } = parseArgs({
  options: {
    url: { type: 'string' },
    screenshot: { type: 'string' },
    'offline-url': { type: 'string' },
    'native-url': { type: 'string' },
    'cut-seconds': { type: 'string' },
    seconds: { type: 'string', default: '6' },
    timeout: { type: 'string', default: '60' },
    chromium: { type: 'string', default: process.env.CHROMIUM || '/usr/bin/chromium' },
  },
});
if (!opts.url || !opts.screenshot) {
  console.error('usage: watch.mjs --url URL --screenshot PATH [--offline-url URL] [--seconds N] [--timeout S]');
  process.exit(2);
}
const wantSeconds = Number(opts.seconds);
const timeoutMs = Number(opts.timeout) * 1000;

// Flags for headless Chromium as root on a closed network (see shared testing notes);
// playwright adds --headless and a fresh --user-data-dir itself.
const ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--autoplay-policy=no-user-gesture-required',
];

// Never left hanging: the whole run is bounded.
const hardStop = setTimeout(() => {
  console.error('watch.mjs: overall deadline passed');
  process.exit(2);
}, timeoutMs + 120000);

// Samples of the player while it plays, and a gap between two that counts as a freeze.
const SAMPLE_MS = 250;
const FREEZE_MS = 2000;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const snapshot = (page) => page.evaluate(() => JSON.parse(JSON.stringify(window.skyrelayStats || null)));
const fmt = (x) => (!isFinite(x) ? 'none' : Number.isInteger(x) ? String(x) : x.toFixed(3));

// hls.js events of running short of media and getting past it.
const STALL = ['bufferStalledError', 'bufferNudgeOnStall', 'bufferSeekOverHole'];
// How soon after such an event a cancelled request belongs to the recovery.
const RECOVERY_MS = 3000;

// A predicate over player errors and console entries: true for a request the player aborted
// itself (hls.js's non-fatal `aborted`, Chromium's net::ERR_ABORTED) within RECOVERY_MS after
// a stall event, as when it seeks over a hole and drops the load it was waiting on. One stall
// is within bounds for the tests, and so is this part of getting over it; an abort at any
// other time still counts as an error.
function recoveryAbort(errors) {
  const stalls = errors.filter((e) => STALL.includes(e.details)).map((e) => e.at);
  const soonAfterStall = (at) => typeof at === 'number' && stalls.some((s) => at >= s && at - s <= RECOVERY_MS);
  return (e) => {
    const aborted = (e.source === 'hls.js' && e.details === 'aborted' && !e.fatal) ||
      (e.kind === 'requestfailed' && e.text === 'net::ERR_ABORTED');
    return aborted && soonAfterStall(e.at);
  };
}

function median(xs) {
  if (xs.length === 0) return null;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

async function watch(browser, consoleLog) {
  const page = await browser.newPage({ viewport: { width: 1000, height: 720 } });
  page.on('console', (m) => {
    if (m.type() === 'error') consoleLog.push({ kind: 'console', text: m.text(), url: m.location().url });
  });
  page.on('pageerror', (e) => consoleLog.push({ kind: 'pageerror', text: String(e) }));
  const token = new URL(opts.url).searchParams.get('token');
  const masters = [];
  page.on('request', (req) => {
    if (new URL(req.url()).pathname.endsWith('/master.m3u8')) masters.push(req.url());
  });
  page.on('response', (resp) => {
    if (resp.status() >= 400) consoleLog.push({ kind: 'http', status: resp.status(), url: resp.url() });
  });
  page.on('requestfailed', (r) => {
    const text = r.failure() ? r.failure().errorText : '';
    consoleLog.push({ kind: 'requestfailed', url: r.url(), text, at: Date.now() });
  });
  const start = Date.now();
  const deadline = start + timeoutMs;
  await page.goto(opts.url, { waitUntil: 'load', timeout: timeoutMs });

  // played_s sums the sampled currentTime steps, leaving out jumps to the live edge (a step
  // larger than twice the wall time that passed); advance_s is the plain difference.
  const r = { started: 0, live_after_s: null, played_s: 0, advance_s: 0, wall_s: 0, samples: 0 };
  const latencies = [];
  const steady = [];
  const timeline = [];
  let first = null;
  let prev = null;
  let stats = null;
  let stallSeen = 0;
  let lastStallAt = -Infinity;
  // A gap between samples far beyond the 250 ms pace means the browser (or the whole machine)
  // was starved: the page's clock ran while its video could not, and the player may not have
  // reported the stall yet. Latency is judged only once steady again, as after a stall.
  let lastSampleAt = null;
  r.freezes = 0;
  while (Date.now() < deadline) {
    stats = await snapshot(page);
    const now = Date.now();
    if (lastSampleAt !== null && now - lastSampleAt > FREEZE_MS) {
      r.freezes += 1;
      lastStallAt = now;
    }
    lastSampleAt = now;
    if (stats && stats.stalls > stallSeen) {
      stallSeen = stats.stalls;
      lastStallAt = now;
    }
    if (stats && stats.state === 'live' && stats.playing) {
      if (first === null) {
        first = { wall: now, currentTime: stats.currentTime };
        r.started = 1;
        r.live_after_s = (first.wall - start) / 1000;
      }
      if (prev !== null) {
        const step = stats.currentTime - prev.currentTime;
        if (step > 0 && step <= (2 * (now - prev.wall)) / 1000 + 0.1) r.played_s += step;
      }
      prev = { wall: now, currentTime: stats.currentTime };
      if (stats.latency !== null) {
        latencies.push(stats.latency);
        // Steady: past the first second of playback (hls.js's latency estimate can be off
        // while its first playlist's timing settles) and no stall in the last 5 s.
        if (now - first.wall >= 1000 && now - lastStallAt > 5000) steady.push(stats.latency);
      }
      const round = (x) => (typeof x === 'number' ? Math.round(x * 100) / 100 : null);
      timeline.push([round((now - first.wall) / 1000), round(stats.currentTime), round(stats.latency),
        round(stats.targetLatency), round(stats.bufferAhead), stats.playbackRate]);
      r.advance_s = stats.currentTime - first.currentTime;
      r.wall_s = (now - first.wall) / 1000;
      // After a stall, go on until playback has been steady for a while again.
      if (r.played_s >= wantSeconds && now - lastStallAt > 8000) break;
    }
    await sleep(SAMPLE_MS);
  }
  await page.screenshot({ path: opts.screenshot });
  stats = await snapshot(page);

  r.samples = latencies.length;
  r.latency_min = latencies.length ? Math.min(...latencies) : null;
  r.latency_median = median(latencies);
  r.latency_max = latencies.length ? Math.max(...latencies) : null;
  r.steady_samples = steady.length;
  r.latency_max_steady = steady.length ? Math.max(...steady) : null;
  r.latency_last = stats ? stats.latency : null;
  r.target_latency = stats ? stats.targetLatency : null;
  r.state = stats ? stats.state : 'nostats';
  r.engine = (stats && stats.engine) || 'none';
  r.node = (stats && stats.node) || 'none';
  r.region = (stats && stats.region) || 'none';
  r.stalls = stats ? stats.stalls : 0;
  r.live_jumps = stats ? stats.liveJumps : 0;
  r.player_errors = stats ? stats.errors.length : 0;
  // Everything but running short of media for a moment (counted in `stalls`) and the request
  // the player itself cancels while it recovers from that (see `recoveryAbort`).
  const errors = stats ? stats.errors : [];
  const recovering = recoveryAbort(errors);
  r.other_errors = errors.filter((e) => !STALL.includes(e.details) && !recovering(e)).length;
  r.fatal_errors = errors.filter((e) => e.fatal).length;
  r.recovery_aborts = errors.filter(recovering).length + consoleLog.filter(recovering).length;
  r.hls_version = await page.evaluate(() => (window.Hls ? window.Hls.version : 'none'));
  r.master_requests = masters.length;
  if (token) {
    const carried = masters.filter((u) => new URL(u).searchParams.get('token') === token).length;
    r.token_carried = masters.length > 0 && carried === masters.length ? 1 : 0;
  }
  r.overlay = await page.evaluate(() => document.getElementById('status').textContent.replace(/\s+/g, '_'));
  // Counted before the network cut, whose failed requests are expected.
  r.console_errors = consoleLog.filter((e) => !recovering(e)).length;
  if (opts['cut-seconds']) Object.assign(r, await networkCut(page, Number(opts['cut-seconds'])));
  await page.close();
  return { r, errors, timeline };
}

// The browser loses the network for a while (after the figures above are taken): the page
// must get back to live playback near the live edge by itself once it returns.
async function networkCut(page, seconds) {
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Network.enable');
  const conditions = (offline) => ({ offline, latency: 0, downloadThroughput: -1, uploadThroughput: -1 });
  const before = await snapshot(page);
  await cdp.send('Network.emulateNetworkConditions', conditions(true));
  await sleep(seconds * 1000);
  const during = await snapshot(page);
  await cdp.send('Network.emulateNetworkConditions', conditions(false));
  const back = Date.now();
  const deadline = back + 30000;
  let stats = during;
  let recovered = null;
  let steadySince = null;
  while (Date.now() < deadline) {
    stats = await snapshot(page);
    // Within a second of the player's own target latency (hls.js raises its target by a
    // second after a stall, so a fixed bound would sit right at the target).
    const target = stats.targetLatency !== null && stats.targetLatency > 0 ? stats.targetLatency : 2;
    const near = stats.state === 'live' && stats.playing && stats.latency !== null && stats.latency > 0 &&
      stats.latency < target + 1;
    if (near && steadySince === null) steadySince = Date.now();
    if (!near) steadySince = null;
    // Near the live edge for 2 s in a row.
    if (steadySince !== null && Date.now() - steadySince >= 2000) {
      recovered = (steadySince - back) / 1000;
      break;
    }
    await sleep(250);
  }
  await cdp.detach();
  return {
    cut_stalled: during.stalls > before.stalls || during.state !== 'live' ? 1 : 0,
    cut_recovered_s: recovered,
    cut_latency: stats.latency,
    cut_target_latency: stats.targetLatency,
    cut_jumps: stats.liveJumps - before.liveJumps,
    cut_restarts: stats.attempts - before.attempts,
    cut_fatal_errors: stats.errors.filter((e) => e.fatal).length,
  };
}

// A channel nobody publishes: the page says offline and keeps retrying.
async function offline(browser, url) {
  const page = await browser.newPage();
  await page.goto(url, { waitUntil: 'load', timeout: timeoutMs });
  const deadline = Date.now() + 20000;
  let stats = null;
  while (Date.now() < deadline) {
    stats = await snapshot(page);
    if (stats && stats.state === 'offline' && stats.attempts >= 2) break;
    await sleep(200);
  }
  const badge = await page.evaluate(() => document.getElementById('status').textContent);
  await page.close();
  return { offline_state: stats ? stats.state : 'nostats', offline_attempts: stats ? stats.attempts : 0,
    offline_badge: badge.replace(/\s+/g, '_') };
}

// The same page with the browser's own HLS instead of hls.js.
async function nativePlayback(browser, url) {
  const page = await browser.newPage();
  await page.goto(url, { waitUntil: 'load', timeout: timeoutMs });
  const deadline = Date.now() + 30000;
  let first = null;
  let stats = null;
  let advance = 0;
  while (Date.now() < deadline) {
    stats = await snapshot(page);
    if (stats && stats.state === 'live' && stats.playing) {
      if (first === null) first = stats.currentTime;
      advance = stats.currentTime - first;
      if (advance >= 3) break;
    }
    await sleep(250);
  }
  await page.close();
  return { native_engine: (stats && stats.engine) || 'none', native_advance_s: advance,
    native_errors: stats ? stats.errors.length : 0 };
}

let browser;
try {
  mkdirSync(dirname(opts.screenshot), { recursive: true });
  browser = await chromium.launch({ executablePath: opts.chromium, headless: true, args: ARGS });
  const consoleLog = [];
  const { r, errors, timeline } = await watch(browser, consoleLog);
  if (opts['offline-url']) Object.assign(r, await offline(browser, opts['offline-url']));
  if (opts['native-url']) Object.assign(r, await nativePlayback(browser, opts['native-url']));
  r.browser = browser.version();
  const line = Object.entries(r).map(([k, v]) => `${k}=${typeof v === 'number' ? fmt(v) : v ?? 'none'}`);
  console.log(`watch-result ${line.join(' ')}`);
  console.log(`watch-errors ${JSON.stringify(errors)}`);
  console.log(`watch-console ${JSON.stringify(consoleLog.slice(0, 50))}`);
  console.log(`watch-timeline ${JSON.stringify(timeline)}`);
  await browser.close();
  clearTimeout(hardStop);
} catch (e) {
  console.error(`watch.mjs: ${e && e.stack ? e.stack : e}`);
  if (browser) await browser.close().catch(() => {});
  process.exit(2);
}
