// Skyrelay management page: sign up / log in against the control plane's /v1 API, list the
// user's channels with a live flag, create channels, rotate stream keys (shown once, with
// the full publish URL for OBS), toggle private and recording, open a channel's watch page,
// list a channel's recordings (status, duration) and play one through an edge.
// The session token is kept in sessionStorage under `skyrelay-session`.
'use strict';

(function () {
  const SESSION = 'skyrelay-session';
  const $ = (id) => document.getElementById(id);

  function say(text, ok) {
    $('message').textContent = text;
    $('message').className = ok ? 'ok' : '';
  }

  async function api(method, path, body) {
    const headers = {};
    const token = sessionStorage.getItem(SESSION);
    if (token) headers.Authorization = 'Bearer ' + token;
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const resp = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    const data = resp.status === 204 ? null : await resp.json().catch(() => null);
    if (resp.status === 401 && token) signedOut();
    if (!resp.ok) throw new Error((data && data.error) || 'HTTP ' + resp.status);
    return data;
  }

  function signedOut() {
    sessionStorage.removeItem(SESSION);
    $('auth').hidden = false;
    $('channels').hidden = true;
    $('logout').hidden = true;
    $('who').textContent = '';
  }

  async function signedIn() {
    const me = await api('GET', '/v1/me');
    $('who').textContent = me.username + (me.role === 'admin' ? ' (admin)' : '');
    $('auth').hidden = true;
    $('channels').hidden = false;
    $('logout').hidden = false;
    await refresh();
  }

  function cell(row, content) {
    const td = document.createElement('td');
    if (typeof content === 'string') td.textContent = content;
    else td.append(content);
    row.append(td);
    return td;
  }

  function toggle(ch, field) {
    const box = document.createElement('input');
    box.type = 'checkbox';
    box.checked = ch[field];
    box.dataset.channel = ch.name;
    box.dataset.field = field;
    box.addEventListener('change', async () => {
      try {
        await api('PATCH', '/v1/channels/' + encodeURIComponent(ch.name), { [field]: box.checked });
        say(ch.name + ': ' + field + ' ' + (box.checked ? 'on' : 'off'), true);
      } catch (e) {
        box.checked = !box.checked;
        say(e.message);
      }
    });
    return box;
  }

  function button(label, action, name) {
    const b = document.createElement('button');
    b.type = 'button';
    b.textContent = label;
    b.dataset.action = action;
    b.dataset.channel = name;
    return b;
  }

  async function refresh() {
    const list = await api('GET', '/v1/channels');
    const channels = Array.isArray(list) ? list : list.channels || [];
    const rows = $('channel-rows');
    rows.replaceChildren();
    for (const ch of channels) {
      const row = document.createElement('tr');
      row.dataset.channel = ch.name;
      cell(row, ch.name);
      const status = cell(row, '…');
      cell(row, toggle(ch, 'private'));
      cell(row, toggle(ch, 'recording'));
      const actions = document.createElement('span');
      actions.append(button('Rotate key', 'rotate', ch.name), ' ', button('Watch', 'watch', ch.name), ' ',
        button('Recordings', 'recordings', ch.name));
      cell(row, actions);
      rows.append(row);
      api('GET', '/manage/live/' + encodeURIComponent(ch.name)).then(
        (l) => {
          status.innerHTML = '';
          const tag = document.createElement('span');
          tag.className = l.live ? 'live' : 'offline';
          tag.textContent = l.live ? 'live' : 'offline';
          status.append(tag);
        },
        () => { status.textContent = 'unknown'; },
      );
    }
  }

  function duration(ms) {
    const s = Math.round(ms / 1000);
    const pad = (n) => String(n).padStart(2, '0');
    return Math.floor(s / 3600) + ':' + pad(Math.floor(s / 60) % 60) + ':' + pad(s % 60);
  }

  // Toggles a row under the channel listing its recordings, newest first.
  async function recordings(name) {
    const row = document.querySelector('tr[data-channel="' + CSS.escape(name) + '"]');
    const next = row.nextElementSibling;
    if (next && next.classList.contains('recordings')) {
      next.remove();
      return;
    }
    const list = await api('GET', '/v1/channels/' + encodeURIComponent(name) + '/recordings');
    const holder = document.createElement('tr');
    holder.className = 'recordings';
    holder.dataset.recordingsOf = name;
    const td = document.createElement('td');
    td.colSpan = 5;
    holder.append(td);
    if (list.length === 0) {
      td.textContent = 'No recordings of ' + name + ' yet.';
    } else {
      const table = document.createElement('table');
      const head = document.createElement('tr');
      for (const h of ['Started', 'Status', 'Duration', 'Size', '']) {
        const th = document.createElement('th');
        th.textContent = h;
        head.append(th);
      }
      table.append(head);
      for (const r of list) {
        const tr = document.createElement('tr');
        tr.dataset.recording = r.id;
        cell(tr, new Date(r.started_ms).toLocaleString());
        cell(tr, r.status + (r.reason ? ' (' + r.reason + ')' : ''));
        cell(tr, duration(r.duration_ms));
        cell(tr, (r.bytes / 1e6).toFixed(1) + ' MB');
        const playable = r.status === 'complete' || r.status === 'partial';
        const play = button('Play', 'play', name);
        play.dataset.recording = r.id;
        play.disabled = !playable;
        cell(tr, play);
        table.append(tr);
      }
      td.append(table);
    }
    row.after(holder);
  }

  // Plays a recording on the watch page of the edge the control plane picks.
  async function playRecording(name, id) {
    const route = await api('GET', '/v1/route/play/' + encodeURIComponent(name));
    const edge = route.url.split('/live/')[0];
    location.href = edge + '/watch/' + encodeURIComponent(route.channel) + '?vod=' + encodeURIComponent(id) +
      (route.token ? '&token=' + encodeURIComponent(route.token) : '');
  }

  async function rotate(name) {
    const key = await api('POST', '/v1/channels/' + encodeURIComponent(name) + '/stream-key');
    let server = '';
    try {
      server = (await api('GET', '/v1/route/ingest')).url.replace(/\/+$/, '');
    } catch (e) {
      say('key rotated, but no ingest route: ' + e.message);
    }
    $('key-channel').textContent = key.channel;
    $('key-server').textContent = server;
    $('key-value').textContent = key.stream_key;
    $('key-url').textContent = server ? server + '/' + key.stream_key : '';
    $('key-box').hidden = false;
    if (server) say('New key for ' + key.channel + '; earlier keys no longer work.', true);
  }

  async function watch(name) {
    const route = await api('GET', '/v1/route/play/' + encodeURIComponent(name));
    const edge = route.url.split('/live/')[0];
    location.href = edge + '/watch/' + encodeURIComponent(route.channel) +
      (route.token ? '?token=' + encodeURIComponent(route.token) : '');
  }

  async function authenticate(signUp) {
    const username = $('username').value;
    const password = $('password').value;
    try {
      if (signUp) await api('POST', '/v1/users', { username, password });
      const s = await api('POST', '/v1/sessions', { username, password });
      sessionStorage.setItem(SESSION, s.token);
      $('password').value = '';
      say(signUp ? 'Account created.' : 'Logged in.', true);
      await signedIn();
    } catch (e) {
      say(e.message);
    }
  }

  $('auth-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    authenticate(false);
  });
  $('signup').addEventListener('click', () => authenticate(true));
  $('logout').addEventListener('click', async () => {
    try { await api('DELETE', '/v1/sessions'); } catch (e) { /* signed out either way */ }
    signedOut();
    say('Logged out.', true);
  });
  $('create-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    try {
      const ch = await api('POST', '/v1/channels', {
        name: $('new-name').value,
        private: $('new-private').checked,
        recording: $('new-recording').checked,
      });
      $('new-name').value = '';
      say('Channel ' + ch.name + ' created.', true);
      await refresh();
    } catch (e) {
      say(e.message);
    }
  });
  $('channel-rows').addEventListener('click', (ev) => {
    const b = ev.target.closest('button');
    if (!b) return;
    const actions = { rotate, watch, recordings, play: (name) => playRecording(name, b.dataset.recording) };
    const run = actions[b.dataset.action];
    if (run) run(b.dataset.channel).catch((e) => say(e.message));
  });

  if (sessionStorage.getItem(SESSION)) signedIn().catch((e) => { signedOut(); say(e.message); });
  else signedOut();
})();
