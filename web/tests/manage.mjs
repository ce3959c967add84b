// Drives the control plane's management page in headless Chromium (the system's, through
// playwright-core): logs in, creates a private channel, rotates its key and reads the key and
// publish URL the page shows, toggles recording on and off; the Rust browser test (tests/browser_up.rs) judges the output.
//
//   node web/tests/manage.mjs --url http://127.0.0.1:PORT --username admin --password P \
//     --channel NAME --screenshot out.png [--live-channel demo] [--timeout 30] [--chromium /usr/bin/chromium]
//
// Output (stdout), one line each:
//   manage-result key=value …   channel, private (1/0), stream_key, publish_url, session,
//                               recording_toggles (on and off: 2), recording (1/0),
//                               live_channel_status (the status shown for --live-channel)
//   manage-console JSON         console errors, uncaught page errors, failed requests
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
    'live-channel': { type: 'string' },
    screenshot: { type: 'string' },
    timeout: { type: 'string', default: '30' },
    chromium: { type: 'string', default: process.env.CHROMIUM || '/usr/bin/chromium' },
  },
});
if (!opts.url || !opts.username || !opts.password || !opts.channel || !opts.screenshot) {
  console.error('usage: manage.mjs --url URL --username U --password P --channel NAME --screenshot PATH');
  process.exit(2);
}
const timeout = Number(opts.timeout) * 1000;
const ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const hardStop = setTimeout(() => {
  console.error('manage.mjs: overall deadline passed');
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

  await page.fill('#new-name', opts.channel);
  await page.check('#new-private');
  await page.click('#create');
  const row = `tr[data-channel="${opts.channel}"]`;
  await page.waitForSelector(row);
  const isPrivate = await page.isChecked(`${row} input[data-field="private"]`);

  await page.click(`${row} button[data-action="rotate"]`);
  await page.waitForSelector('#key-box', { state: 'visible' });
  await page.waitForFunction(() => document.getElementById('key-url').textContent.length > 0);
  const streamKey = (await page.textContent('#key-value')).trim();
  const publishUrl = (await page.textContent('#key-url')).trim();
  // Recording on, then off again (PATCH both ways; the stream published next is not recorded).
  const recording = `${row} input[data-field="recording"]`;
  let recordingToggled = 0;
  for (const state of ['on', 'off']) {
    await page.click(recording);
    await page.waitForFunction(
      (text) => document.getElementById('message').textContent === text,
      `${opts.channel}: recording ${state}`,
    );
    recordingToggled += 1;
  }
  const session = await page.evaluate(() => sessionStorage.getItem('skyrelay-session') || '');

  let liveStatus = 'none';
  if (opts['live-channel']) {
    const cell = `tr[data-channel="${opts['live-channel']}"] td:nth-child(2) span`;
    await page.waitForSelector(cell);
    liveStatus = (await page.textContent(cell)).trim();
  }
  mkdirSync(dirname(opts.screenshot), { recursive: true });
  await page.screenshot({ path: opts.screenshot, fullPage: true });

  const fields = {
    channel: opts.channel,
    private: isPrivate ? 1 : 0,
    stream_key: streamKey,
    publish_url: publishUrl,
    session,
    recording_toggles: recordingToggled,
    recording: (await page.isChecked(recording)) ? 1 : 0,
    live_channel_status: liveStatus,
    console_errors: consoleLog.length,
  };
  console.log('manage-result ' + Object.entries(fields).map(([k, v]) => `${k}=${v}`).join(' '));
  console.log('manage-console ' + JSON.stringify(consoleLog));
  await browser.close();
  clearTimeout(hardStop);
} catch (e) {
  console.error('manage.mjs: ' + (e && e.stack ? e.stack : e));
  if (browser) await browser.close().catch(() => {});
  process.exit(2);
}
