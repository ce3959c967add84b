// Drives the management page's recordings list in headless Chromium (the system's, through
// playwright-core): logs in, opens a channel's recordings, reads the first one's status and
// duration, presses Play and lets the edge's watch page play the recording for a while; the
// Rust browser test (tests/browser_recordings.rs) judges the output.
//
//   node web/tests/recordings.mjs --url http://127.0.0.1:PORT --username admin --password P \
//     --channel NAME --screenshot out.png [--seconds 4] [--timeout 40] [--chromium /usr/bin/chromium]
//
// Output (stdout), one line each:
//   recordings-result key=value …   recordings (rows listed), recording (id), status, duration
//                                   (as shown), watch_url, vod (the page's stats.vod), engine,
//                                   state, started (1/0), played_s, media_duration_s,
//                                   fatal_errors, other_errors, console_errors
//   recordings-console JSON         console errors, uncaught page errors, failed requests
// Exit status: 0 when every step completed, 2 otherwise.
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { parseArgs } from 'node:util';

import { chromium } from 'playwright-core';

const { values: opts } = parseArgs({
  options: {
    url: { type: 'string' },
    username: { type: 'string' },
    password: { type: 'string' },
    channel: { type: 'string' },
    screenshot: { type: 'string' },
    seconds: { type: 'string', default: '4' },
    timeout: { type: 'string', default: '40' },
    chromium: { type: 'string', default: process.env.CHROMIUM || '/usr/bin/chromium' },
  },
});
if (!opts.url || !opts.username || !opts.password || !opts.channel || !opts.screenshot) {
  console.error('usage: recordings.mjs --url URL --username U --password P --channel NAME --screenshot PATH');
  process.exit(2);
}
const timeout = Number(opts.timeout) * 1000;
const wantSeconds = Number(opts.seconds);
const ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--autoplay-policy=no-user-gesture-required', '--mute-audio'];
const hardStop = setTimeout(() => {
  console.error('recordings.mjs: overall deadline passed');
  process.exit(2);
}, timeout + 60000);

let browser;
try {
  browser = await chromium.launch({ executablePath: opts.chromium, headless: true, args: ARGS });
  const page = await browser.newPage({ viewport: { width: 1000, height: 720 } });
  page.setDefaultTimeout(timeout);
  const consoleLog = [];
  page.on('console', (m) => {
    if (m.type() === 'error') consoleLog.push({ kind: 'console', text: m.text() });
  });
  page.on('pageerror', (e) => consoleLog.push({ kind: 'pageerror', text: String(e) }));
  page.on('response', (resp) => {
    if (resp.status() >= 400) consoleLog.push({ kind: 'http', status: resp.status(), url: resp.url() });
  });

  await page.goto(opts.url + '/manage', { waitUntil: 'load' });
  await page.fill('#username', opts.username);
  await page.fill('#password', opts.password);
  await page.click('#login');
  await page.waitForSelector('#channels', { state: 'visible' });

  const row = `tr[data-channel="${opts.channel}"]`;
  await page.click(`${row} button[data-action="recordings"]`);
  const first = `tr[data-recordings-of="${opts.channel}"] tr[data-recording]`;
  await page.waitForSelector(first);
  const listed = await page.locator(`tr[data-recordings-of="${opts.channel}"] tr[data-recording]`).count();
  const id = await page.getAttribute(first, 'data-recording');
  const status = (await page.textContent(`${first} td:nth-child(2)`)).trim();
  const duration = (await page.textContent(`${first} td:nth-child(3)`)).trim();

  await Promise.all([
    page.waitForURL((u) => u.pathname.startsWith('/watch/')),
    page.click(`${first} button[data-action="play"]`),
  ]);
  const watchUrl = page.url();
  await page.waitForFunction(() => window.skyrelayStats && window.skyrelayStats.playing);
  const start = await page.evaluate(() => window.skyrelayStats.currentTime);
  await page.waitForFunction(
    ([from, want]) => window.skyrelayStats.currentTime - from >= want,
    [start, wantSeconds],
  );
  const stats = await page.evaluate(() => {
    const s = window.skyrelayStats;
    const v = document.getElementById('video');
    return { ...s, duration: v.duration };
  });
  mkdirSync(dirname(opts.screenshot), { recursive: true });
  await page.screenshot({ path: opts.screenshot, fullPage: true });

  const fields = {
    recordings: listed,
    recording: id,
    status,
    duration,
    watch_url: watchUrl,
    vod: stats.vod,
    engine: stats.engine,
    state: stats.state,
    started: stats.playing ? 1 : 0,
    played_s: (stats.currentTime - start).toFixed(2),
    media_duration_s: Number(stats.duration).toFixed(2),
    fatal_errors: stats.errors.filter((e) => e.fatal).length,
    other_errors: stats.errors.filter((e) => !e.fatal).length,
    console_errors: consoleLog.length,
  };
  console.log('recordings-result ' + Object.entries(fields).map(([k, v]) => `${k}=${v}`).join(' '));
  console.log('recordings-console ' + JSON.stringify(consoleLog));
  await browser.close();
  clearTimeout(hardStop);
} catch (e) {
  console.error('recordings.mjs: ' + (e && e.stack ? e.stack : e));
  if (browser) await browser.close().catch(() => {});
  process.exit(2);
}
