// Drives athanor-live's pages in a real Chromium (Debian's /usr/bin/chromium, through the
// DevTools protocol of the pinned npm `playwright-core`): the page's own scripts (the official
// phoenix and phoenix_live_view clients the tool serves) connect its LiveSocket, and the page is
// clicked and typed into as a person would.
//
//   node chromium_live.js URL --scenario NAME [options]
//
// URL is what athanor-live prints (http://HOST:PORT/); the pages load URL + "counter", URL + "form"
// or URL + "chat" (by scenario).
//
// Scenarios:
//   counter    one page: connects (phx-connected, #count 0, title "Count: 0") over a WebSocket at
//              /live/websocket (vsn=2.0.0), no long-poll; #inc three times and #dec once give 2,
//              title "Count: 2", without the page loading again.
//   two-pages  two tabs of one browser context: each keeps its own count (3 and -1), and a click
//              in one does not show in the other.
//   restart    one page counts to 2, then prints "restart: now" and waits for SIGUSR2, which the
//              caller sends once it has stopped the server (SIGTERM) and seen it exit. The page must
//              notice (no open socket, the container no longer phx-connected); the driver then
//              prints "restart: disconnected ..." and the caller starts the server again on the same
//              port. The page must reconnect and rejoin by itself, without loading again: a new
//              socket (opened after the old server was gone), a phx_join with params._mounts >= 1,
//              phx-connected again, #count 0 (a new mount) and clicks counting again.
//   form       /form, validated as the user types: a 1-letter name shows #name-error while the
//              untouched email shows none (the client sent user[_unused_email]); fixing the name
//              clears it; a bad email and a short password show their errors, and a submit of them
//              (phx-submit "save", every field sent as used) is refused with both errors still
//              shown and #result empty; a valid submit shows "Welcome, Ann!" in #result. One
//              socket, one join, no reload.
//   form-recovery
//              /form: a valid-looking name and email are typed (the server's render echoes both),
//              then the page's own client pushes "crash" to the main view
//              (liveSocket.execJS(main, '[["push",{"event":"crash"}]]')): the view's process throws,
//              the server sends phx_error, the container goes phx-error, and the client rejoins on
//              the same socket (phx_join _mounts 1, a fresh mount: the name rendered empty), sends
//              the form recovery (phx-change "validate" with the typed values, _target
//              user[name]), and the server's reply renders them back: the inputs still hold what
//              was typed, no error shows, and the recovered form then submits ("Welcome, Ann!").
//              No reload.
//   chat       /chat in two browser contexts: ann and bob join room "kitchen" (#user, #room,
//              #enter; #status "In room kitchen as ..."); ann's message and bob's answer show on
//              both pages, in order, once each.
//   chat-cluster
//              ann on a LiveView /chat page of URL (athanor-live, one node of a cluster) and bob on
//              athanor-chat's own page at --chat-url (another node) join room "lobby"; ann's
//              message and bob's answer cross between the two nodes and show on both pages.
//
// Options:
//   --chat-url URL     athanor-chat's page (http://HOST:PORT/), for chat-cluster
//   --timeout MS       bound of the whole run (default 45000); each step waits at most a third
//   --chromium PATH    the browser (default $CHROMIUM or /usr/bin/chromium)
//
// Prints one line per step that held and "ok" last; on failure "FAIL: <step>: <why>" followed by
// what each page showed (title, marker, its fields and messages, the container's classes and HTML,
// the LiveSocket's state) and logged (console, page errors, WebSocket frames), exit 1 (exit 2 if
// the whole run outlived --timeout).
//
// Every wait is one of playwright's auto-waits (locator actions, page.waitForFunction) or an event
// (a WebSocket frame the browser sent or received), bounded by the step timeout: nothing here
// sleeps to synchronise.
'use strict';
const { chromium } = require('playwright-core');

// ---- arguments ----
const positional = [];
const opts = { scenario: '', chatUrl: '', timeout: 45000, chromium: process.env.CHROMIUM || '/usr/bin/chromium' };
for (let i = 2; i < process.argv.length; ++i) {
  const a = process.argv[i];
  if (a === '--scenario') opts.scenario = process.argv[++i];
  else if (a === '--chat-url') opts.chatUrl = process.argv[++i];
  else if (a === '--timeout') opts.timeout = Number(process.argv[++i]);
  else if (a === '--chromium') opts.chromium = process.argv[++i];
  else if (a.startsWith('--')) usage('unknown option ' + a);
  else positional.push(a);
}
// Each scenario and the page of URL its pages load.
const scenarios = {
  counter: [counter, 'counter'], 'two-pages': [twoPages, 'counter'], restart: [restart, 'counter'],
  form: [form, 'form'], 'form-recovery': [formRecovery, 'form'], chat: [chat, 'chat'], 'chat-cluster': [chatCluster, 'chat'],
};
if (positional.length !== 1 || !scenarios[opts.scenario] || !(opts.timeout > 0) ||
    (opts.scenario === 'chat-cluster') !== !!opts.chatUrl) usage('bad arguments');
function usage(why) {
  process.stderr.write(why + '\nusage: node chromium_live.js URL --scenario ' + Object.keys(scenarios).join('|') +
                       ' [--chat-url URL (chat-cluster)] [--timeout MS] [--chromium PATH]\n');
  process.exit(64);
}
const pageUrl = new URL(scenarios[opts.scenario][1], positional[0]).href;
const stepTimeout = Math.max(1000, Math.floor(opts.timeout / 3));

// ---- output ----
let step = 'start', browser = null;
// How long each step took (printed before "ok"): where a slow run spent its time.
const timings = [];
let stepStart = Date.now();
function begin(name) {
  const now = Date.now();
  timings.push(`${step} ${now - stepStart}`);
  step = name;
  stepStart = now;
}
const pages = [];   // { name, page, log: [], sockets: [{url, sent: [], received: [], closed}], loads, longpolls }
function say(line) { process.stdout.write(line + '\n'); }
const clip = (s, n = 400) => (s.length > n ? s.slice(0, n) + `... (${s.length} chars)` : s);
// What each page shows and what it logged: the diagnostic of a failed step.
async function describe() {
  for (const p of pages) {
    say(`-- page ${p.name} (${p.loads} load(s)):`);
    if (!p.page.isClosed()) {
      try {
        const shown = await p.page.evaluate(() => {
          const main = document.querySelector('[data-phx-main]');
          const ls = window.liveSocket, sock = ls && ls.socket;
          // The fields of the pages' contracts, those this page has: an input's value, else the text.
          const fields = {};
          for (const id of ['count', 'name', 'email', 'name-error', 'email-error', 'password-error', 'result', 'status',
                            'user', 'room', 'people', 'body']) {
            const el = document.getElementById(id);
            if (el) fields[id] = el instanceof HTMLInputElement ? el.value : el.textContent;
          }
          // athanor-chat's page: its Phoenix.Socket is the top-level const `socket` of its script.
          const chatSocket = !main && typeof socket !== 'undefined' && socket && socket.conn
            ? { connected: socket.isConnected(), conn: socket.conn.url } : null;
          return {
            url: location.href,
            title: document.title,
            marker: window.__marker,
            fields,
            messages: [...document.querySelectorAll('#messages .msg')].map((m) => m.textContent),
            containerClass: main && main.className,
            liveSocket: ls ? { connected: ls.isConnected(), transport: sock.transport && sock.transport.name,
              conn: sock.conn && sock.conn.url, readyState: sock.conn && sock.conn.readyState } : null,
            chatSocket,
            lv: window.__lv && { opens: window.__lv.opens, closes: window.__lv.closes, classes: window.__lv.classes },
            container: main ? main.outerHTML : document.body && document.body.outerHTML,
          };
        });
        const { container, ...rest } = shown;
        say('   shows ' + JSON.stringify(rest));
        say('   container: ' + clip(String(container), 3000));
      } catch (e) {
        say('   (cannot read the page: ' + e.message.split('\n')[0] + ')');
      }
    } else {
      say('   (closed)');
    }
    for (const l of p.log) say('   ' + l);
  }
}
function exit(code) {
  // stdout may be a pipe: let the writes drain before exiting
  process.stdout.write('', () => process.exit(code));
}
// A bound on the whole run, launch included (a browser that never starts must not hang the test).
// Only what is already known is printed: a hung browser would not answer describe()'s questions.
const watchdog = setTimeout(() => {
  say(`FAIL: ${step}: the run took more than ${opts.timeout} ms`);
  for (const p of pages) for (const l of p.log) say(`   page ${p.name}: ${l}`);
  exit(2);
}, opts.timeout);

// ---- the page ----
// Opens a page of `context` at `url` (default: the scenario's page of athanor-live) and, for a
// LiveView page (`live`), waits until it has joined. athanor-chat's page (live false) has no
// LiveSocket: it is only loaded.
async function open(context, name, { url = pageUrl, live = true } = {}) {
  const page = await context.newPage();
  page.setDefaultTimeout(stepTimeout);
  // waiters: the pending frameOf() calls, each told of every frame.
  const p = { name, url, live, page, log: [], sockets: [], loads: 0, longpolls: 0, waiters: [] };
  page.on('console', (m) => p.log.push(`console.${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => p.log.push('page error: ' + e.message));
  page.on('requestfailed', (r) => p.log.push(`request failed: ${r.url()} (${r.failure() && r.failure().errorText})`));
  page.on('response', (r) => { if (r.status() >= 400) p.log.push(`response ${r.status()}: ${r.url()}`); });
  page.on('load', () => { ++p.loads; p.log.push('load: ' + page.url()); });
  page.on('request', (r) => { if (r.url().includes('/longpoll')) ++p.longpolls; });
  // What the browser itself opened and exchanged, whatever the page's script says: the transport
  // evidence, and the frames of the diagnostic.
  page.on('websocket', (ws) => {
    const s = { url: ws.url(), sent: [], received: [], closed: false };
    const n = p.sockets.push(s);
    p.log.push(`websocket ${n} opened: ${s.url}`);
    ws.on('framesent', (f) => {
      s.sent.push(String(f.payload));
      p.log.push(`ws ${n} C->S ${clip(String(f.payload))}`);
      for (const w of p.waiters.slice()) w();
    });
    ws.on('framereceived', (f) => {
      s.received.push(String(f.payload));
      p.log.push(`ws ${n} S->C ${clip(String(f.payload))}`);
      for (const w of p.waiters.slice()) w();
    });
    ws.on('socketerror', (e) => p.log.push(`ws ${n} error: ${e}`));
    ws.on('close', () => { s.closed = true; p.log.push(`websocket ${n} closed`); });
  });
  pages.push(p);
  await page.goto(url);
  if (live) await connected(p);
  // Set once the page has loaded: a reload (the client's reloadWithJitter, a stale join) drops it.
  await page.evaluate(() => { window.__marker = 1; });
  return p;
}

// Waits until the LiveView has joined: its container phx-connected and the LiveSocket's socket open.
function connected(p) {
  return p.page.waitForFunction(() => {
    const main = document.querySelector('[data-phx-main]');
    return main && main.classList.contains('phx-connected') && window.liveSocket && window.liveSocket.isConnected();
  });
}

// Waits until #count reads `n` (exactly) and the title is "Count: n". The page is brought to the
// front first: Chromium throttles the animation frames (playwright's polling, its actionability
// checks) of a tab behind another of the same window to about one a second.
async function shows(p, n) {
  await p.page.bringToFront();
  await p.page.waitForFunction((n) => document.getElementById('count')?.textContent === n, String(n));
  await p.page.waitForFunction((t) => document.title === t, 'Count: ' + n);
}

// Clicks the button `id` ("inc" or "dec") and waits for #count to read `expect`.
async function click(p, id, expect) {
  await p.page.bringToFront();
  await p.page.locator('#' + id).click();
  await shows(p, expect);
}

// The marker set after the first load is still there, and the page loaded once.
async function noReload(p) {
  const marker = await p.page.evaluate(() => window.__marker);
  if (marker !== 1 || p.loads !== 1) throw new Error(`the page reloaded (marker ${marker}, ${p.loads} loads)`);
}

// The page's LiveSocket runs on the browser's WebSocket at /live/websocket (protocol 2.0.0), which
// the browser itself opened, and no long-poll request was made.
async function transport(p) {
  const t = await p.page.evaluate(() => {
    const sock = window.liveSocket.socket;
    return {
      transportIsWebSocket: sock.transport === window.WebSocket,
      connIsWebSocket: sock.conn instanceof window.WebSocket,
      url: sock.conn && sock.conn.url,
      open: sock.isConnected(),
    };
  });
  if (!t.transportIsWebSocket || !t.connIsWebSocket || !t.open) throw new Error('the LiveSocket runs ' + JSON.stringify(t));
  const u = new URL(t.url);
  const base = new URL(p.url);
  if (u.protocol !== 'ws:' || u.host !== base.host || u.pathname !== '/live/websocket' || u.searchParams.get('vsn') !== '2.0.0') {
    throw new Error('the socket URL is ' + t.url);
  }
  if (!p.sockets.some((s) => s.url === t.url)) throw new Error(`the browser opened ${JSON.stringify(p.sockets.map((s) => s.url))}, not ${t.url}`);
  if (p.longpolls) throw new Error(`the page made ${p.longpolls} long-poll request(s)`);
  return t.url;
}

// The lv: phx_join frames a socket sent, decoded.
function joins(s) {
  return s.sent.map((f) => { try { return JSON.parse(f); } catch { return null; } })
    .filter((m) => Array.isArray(m) && m[3] === 'phx_join' && String(m[2]).startsWith('lv:'));
}

// What the page's Phoenix socket goes through from here on (window.__lv: opens, close codes), and
// each class its container takes (however briefly: a MutationObserver's record).
function watch(p) {
  return p.page.evaluate(() => {
    const lv = (window.__lv = { opens: 0, closes: [], classes: [] });
    const sock = window.liveSocket.socket;
    sock.onOpen(() => { ++lv.opens; });
    sock.onClose((e) => { lv.closes.push(e && e.code); });
    const main = document.querySelector('[data-phx-main]');
    lv.classes.push(main.className);
    new MutationObserver(() => {
      if (lv.classes[lv.classes.length - 1] !== main.className) lv.classes.push(main.className);
    }).observe(main, { attributes: true, attributeFilter: ['class'] });
  });
}

// Frames, decoded: [join_ref, ref, topic, event, payload], or null for what is not one.
const decode = (f) => { try { const m = JSON.parse(f); return Array.isArray(m) && m.length === 5 ? m : null; } catch { return null; } };
// The LiveView events named `name` a socket sent (phx-change, phx-submit, pushes), in order.
function lvEvents(s, name) {
  return s.sent.map(decode).filter((m) => m && m[3] === 'event' && String(m[2]).startsWith('lv:') && m[4].event === name);
}
// The server's reply to the message `m` on socket `s`, if it came.
function replyTo(s, m) {
  return s.received.map(decode).find((r) => r && r[3] === 'phx_reply' && r[1] === m[1] && r[2] === m[2]);
}
// The fields of a form event's urlencoded value ("user[name]" -> "Ann").
const formValue = (m) => Object.fromEntries(new URLSearchParams(m[4].value));

// Resolves with what `test(p)` returns once it is truthy: now, or at a later WebSocket frame of the
// page (sent or received, as the browser reports them); rejects after the step timeout.
function frameOf(p, what, test) {
  return new Promise((resolve, reject) => {
    let timer = null;
    const check = () => {
      const r = test(p);
      if (!r) return false;
      if (timer) clearTimeout(timer);
      p.waiters = p.waiters.filter((w) => w !== check);
      resolve(r);
      return true;
    };
    if (check()) return;
    timer = setTimeout(() => {
      p.waiters = p.waiters.filter((w) => w !== check);
      reject(new Error(`no frame: ${what} (after ${stepTimeout} ms)`));
    }, stepTimeout);
    p.waiters.push(check);
  });
}

// Waits until the element `id` reads `text` exactly: an input's value, another element's text.
function reads(p, id, text) {
  return p.page.waitForFunction(([id, text]) => {
    const el = document.getElementById(id);
    return !!el && (el instanceof HTMLInputElement ? el.value : el.textContent) === text;
  }, [id, text]);
}

// What the page shows of each field (an input's value, another element's text).
function fields(p, ids) {
  return p.page.evaluate((ids) => Object.fromEntries(ids.map((id) => {
    const el = document.getElementById(id);
    return [id, el ? (el instanceof HTMLInputElement ? el.value : el.textContent) : null];
  })), ids);
}

// Fails unless the page shows each field of `want` exactly as given.
async function expectFields(p, want) {
  const got = await fields(p, Object.keys(want));
  const wrong = Object.keys(want).filter((k) => got[k] !== want[k]);
  if (wrong.length) throw new Error(`the page shows ${JSON.stringify(got)}, expected ${JSON.stringify(want)}`);
}

// ---- the scenarios ----
async function counter(context) {
  begin('load and connect');
  const p = await open(context, 'a');
  await shows(p, 0);
  say('connected: phx-connected, #count 0, title "Count: 0"');
  begin('transport');
  say('transport: websocket ' + await transport(p));
  begin('clicks');
  await click(p, 'inc', 1);
  await click(p, 'inc', 2);
  await click(p, 'inc', 3);
  await click(p, 'dec', 2);
  await noReload(p);
  say('clicked: inc inc inc dec -> #count 1 2 3 2, title "Count: 2", same page (no reload)');
  // One socket for the whole run: the clicks went over the socket of the join.
  begin('one socket');
  if (p.sockets.length !== 1) throw new Error(`the page opened ${p.sockets.length} sockets`);
  const j = joins(p.sockets[0]);
  if (j.length !== 1) throw new Error(`the page joined ${j.length} times`);
  say(`joined once: ${j[0][2]} _mounts ${j[0][4].params._mounts}`);
}

async function twoPages(context) {
  begin('load and connect both');
  const a = await open(context, 'a');
  const b = await open(context, 'b');
  await Promise.all([shows(a, 0), shows(b, 0)]);
  const topics = await Promise.all([a, b].map((p) => p.page.evaluate(() => document.querySelector('[data-phx-main]').id)));
  if (topics[0] === topics[1]) throw new Error('both pages have the container id ' + topics[0]);
  say(`connected: two pages, containers ${topics[0]} and ${topics[1]}, both #count 0`);
  begin('count on a');
  await click(a, 'inc', 1);
  await click(a, 'inc', 2);
  await click(a, 'inc', 3);
  await shows(b, 0);
  begin('count on b');
  await click(b, 'dec', -1);
  await shows(a, 3);
  begin('count on a again');
  await click(a, 'dec', 2);
  await shows(b, -1);
  await noReload(a);
  await noReload(b);
  say('separate: a counts 1 2 3 2 while b stays 0 then counts -1; neither reloaded');
}

async function restart(context) {
  begin('load and connect');
  const p = await open(context, 'a');
  await shows(p, 0);
  begin('transport');
  say('transport: websocket ' + await transport(p));
  await watch(p);
  begin('clicks before the restart');
  await click(p, 'inc', 1);
  await click(p, 'inc', 2);
  await click(p, 'inc', 3);
  await click(p, 'dec', 2);
  say('clicked: #count 2 before the restart');

  begin('the server stops');
  // The caller stops the server, waits for it to exit and signals; only then can the page's state
  // be read as "no server at all".
  const stopped = new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('no SIGUSR2 from the caller')), stepTimeout);
    process.once('SIGUSR2', () => { clearTimeout(t); resolve(); });
  });
  say('restart: now');
  await stopped;
  begin('the page notices the server is gone');
  await p.page.waitForFunction(() => {
    const main = document.querySelector('[data-phx-main]');
    return window.__lv.closes.length > 0 && !window.liveSocket.isConnected() && !main.classList.contains('phx-connected');
  });
  const down = await p.page.evaluate(() => ({ opens: window.__lv.opens, closes: window.__lv.closes.slice(), cls: document.querySelector('[data-phx-main]').className }));
  const socketsBefore = p.sockets.length;
  // The server closed the page's socket on purpose: 1001 (going away), never 1000, after which
  // LiveView would reload the page.
  if (down.closes[0] !== 1001) throw new Error('the server closed the socket with ' + JSON.stringify(down.closes));
  say(`restart: disconnected (close codes ${JSON.stringify(down.closes)}, container class "${down.cls}")`);

  begin('the page reconnects and rejoins');
  // Every socket opened from here on is to the new server: the old one had exited before.
  await p.page.waitForFunction((opens) => {
    const main = document.querySelector('[data-phx-main]');
    return window.__lv.opens > opens && window.liveSocket.isConnected() && main.classList.contains('phx-connected');
  }, down.opens);
  await shows(p, 0);
  await noReload(p);
  const after = p.sockets.slice(socketsBefore);
  const rejoin = after.flatMap(joins);
  if (!rejoin.length) throw new Error(`no phx_join on the ${after.length} socket(s) opened after the restart`);
  const mounts = rejoin[rejoin.length - 1][4].params._mounts;
  if (!(mounts >= 1)) throw new Error('the rejoin says _mounts ' + JSON.stringify(mounts));
  const classes = await p.page.evaluate(() => window.__lv.classes);
  say(`rejoined: same page (no reload), phx-connected, #count 0 (a new mount), phx_join _mounts ${mounts}, ${after.length} socket(s) opened after the restart`);
  say('classes: ' + classes.map((c) => JSON.stringify(c)).join(' -> '));
  begin('transport after the restart');
  say('transport: websocket ' + await transport(p));

  begin('clicks after the restart');
  await click(p, 'inc', 1);
  await click(p, 'inc', 2);
  await click(p, 'dec', 1);
  await noReload(p);
  say('clicked: #count 1 2 1 after the restart, same page');
}

// /form, validated as the user types and on submit.
async function form(context) {
  begin('load and connect');
  const p = await open(context, 'a');
  await p.page.waitForFunction(() => document.title === 'Sign up');
  await expectFields(p, { name: '', email: '', 'name-error': '', 'email-error': '', 'password-error': '', result: '' });
  say('connected: /form phx-connected, title "Sign up", every field and error empty');
  begin('transport');
  say('transport: websocket ' + await transport(p));

  begin('a 1-letter name');
  await p.page.locator('#name').fill('A');
  await reads(p, 'name-error', 'must have at least 2 characters');
  // The reply that showed the name's error was the answer to the change that sent "A": the email,
  // never touched, went as user[_unused_email] and shows no error.
  await expectFields(p, { 'email-error': '', 'password-error': '' });
  const short = await frameOf(p, 'phx-change "validate" with user[name]=A',
    (p) => lvEvents(p.sockets[0], 'validate').find((m) => formValue(m)['user[name]'] === 'A'));
  const sent = formValue(short);
  if (!('user[_unused_email]' in sent) || '_unused_name' in sent || short[4].meta._target !== 'user[name]') {
    throw new Error('the change sent ' + JSON.stringify(short[4]));
  }
  say('short name: #name-error "must have at least 2 characters", #email-error empty (the untouched email went as user[_unused_email])');

  begin('the name fixed');
  await p.page.locator('#name').fill('Ann');
  await reads(p, 'name-error', '');
  await expectFields(p, { name: 'Ann', 'email-error': '', 'password-error': '' });
  say('name fixed: "Ann" clears #name-error');

  begin('a bad email and a short password');
  await p.page.locator('#email').fill('ann.example.com');
  await reads(p, 'email-error', 'must have an @ sign');
  await p.page.locator('#password').fill('short');
  await reads(p, 'password-error', 'must have at least 8 characters');
  say('as typed: #email-error "must have an @ sign", #password-error "must have at least 8 characters"');

  begin('the refused submit');
  const savesBefore = lvEvents(p.sockets[0], 'save').length;
  await p.page.locator('#save').click();
  // The client marks the form phx-submit-loading until the server's reply is applied.
  const save = await frameOf(p, 'phx-submit "save"', (p) => lvEvents(p.sockets[0], 'save')[savesBefore]);
  await frameOf(p, 'the reply to "save"', (p) => replyTo(p.sockets[0], save));
  await p.page.waitForFunction(() => !document.getElementById('signup').classList.contains('phx-submit-loading'));
  const submitted = formValue(save);
  if (submitted['user[name]'] !== 'Ann' || submitted['user[email]'] !== 'ann.example.com' || submitted['user[password]'] !== 'short' ||
      Object.keys(submitted).some((k) => k.includes('_unused_')) || save[4].type !== 'form') {
    throw new Error('the submit sent ' + JSON.stringify(save[4]));
  }
  await expectFields(p, { 'name-error': '', 'email-error': 'must have an @ sign', 'password-error': 'must have at least 8 characters', result: '' });
  say('refused submit: phx-submit "save" sent every field as used; #email-error and #password-error shown, #name-error and #result empty');

  begin('the valid submit');
  await p.page.locator('#email').fill('ann@example.com');
  await reads(p, 'email-error', '');
  await p.page.locator('#password').fill('correct horse');
  await reads(p, 'password-error', '');
  await p.page.locator('#save').click();
  await reads(p, 'result', 'Welcome, Ann!');
  await expectFields(p, { 'name-error': '', 'email-error': '', 'password-error': '' });
  await noReload(p);
  say('valid submit: #result "Welcome, Ann!", no error shown, same page (no reload)');

  begin('one socket');
  if (p.sockets.length !== 1) throw new Error(`the page opened ${p.sockets.length} sockets`);
  const j = joins(p.sockets[0]);
  if (j.length !== 1) throw new Error(`the page joined ${j.length} times`);
  say(`joined once: ${j[0][2]}, ${lvEvents(p.sockets[0], 'validate').length} validate and ${lvEvents(p.sockets[0], 'save').length} save events`);
}

// /form: the view's process dies; the client rejoins and recovers the form.
async function formRecovery(context) {
  begin('load and connect');
  const p = await open(context, 'a');
  await p.page.waitForFunction(() => document.title === 'Sign up');
  await watch(p);
  const socket = p.sockets[0];

  begin('type a name and an email');
  await p.page.locator('#name').fill('Ann');
  await p.page.locator('#email').fill('ann@example.com');
  // The server has both: its replies to the two changes render them back.
  const echoed = (field, key, value) => frameOf(p, `the reply that renders ${field} "${value}"`, () => {
    const change = lvEvents(socket, 'validate').find((m) => formValue(m)[field] === value);
    const reply = change && replyTo(socket, change);
    return reply && reply[4].status === 'ok' && reply[4].response.diff && reply[4].response.diff[key] === value && reply;
  });
  await echoed('user[name]', '0', 'Ann');
  await echoed('user[email]', '2', 'ann@example.com');
  await expectFields(p, { name: 'Ann', email: 'ann@example.com', 'name-error': '', 'email-error': '', 'password-error': '' });
  say('typed: name "Ann", email "ann@example.com", rendered back by the server, no error');

  begin('the view crashes');
  const joinsBefore = joins(socket).length;
  const topic = joins(socket)[0][2];
  // The page's own client pushes "crash" to the main view, whose handle_event throws.
  await p.page.evaluate(() => window.liveSocket.execJS(document.querySelector('[data-phx-main]'), '[["push",{"event":"crash"}]]'));
  const crash = await frameOf(p, 'the "crash" event', (p) => lvEvents(socket, 'crash')[0]);
  const error = await frameOf(p, 'phx_error on ' + topic, () => socket.received.map(decode).find((m) => m && m[3] === 'phx_error' && m[2] === topic));
  await p.page.waitForFunction(() => window.__lv.classes.some((c) => c.split(' ').includes('phx-error')));
  say(`crashed: pushed "crash" (type ${JSON.stringify(crash[4].type)}), the server sent phx_error ${JSON.stringify(error[4])}, the container went phx-error`);

  begin('the page rejoins');
  // phx-connected again after the error: the client marks the container connected once the join
  // is complete, which with a form to recover is after the recovery's reply was applied.
  await p.page.waitForFunction(() => {
    const main = document.querySelector('[data-phx-main]');
    const cls = window.__lv.classes, err = cls.findIndex((c) => c.split(' ').includes('phx-error'));
    return err >= 0 && cls.slice(err + 1).some((c) => c.split(' ').includes('phx-connected')) &&
           main.classList.contains('phx-connected') && !main.classList.contains('phx-error') && window.liveSocket.isConnected();
  });
  const rejoin = await frameOf(p, 'a phx_join after the crash', () => joins(socket)[joinsBefore]);
  const mounts = rejoin[4].params._mounts;
  if (rejoin[2] !== topic || !(mounts >= 1)) throw new Error('the rejoin was ' + JSON.stringify(rejoin));
  const joined = await frameOf(p, 'the reply to the rejoin', () => replyTo(socket, rejoin));
  if (joined[4].status !== 'ok') throw new Error('the rejoin was answered ' + JSON.stringify(joined[4]));
  // A fresh mount: the view's new process knows nothing of what was typed.
  const fresh = joined[4].response.rendered;
  if (fresh['0'] !== '' || fresh['2'] !== '') throw new Error('the new mount rendered name ' + JSON.stringify(fresh['0']) + ', email ' + JSON.stringify(fresh['2']));
  say(`rejoined: phx_join ${topic} _mounts ${mounts} on the same socket, a fresh mount (name and email rendered empty)`);

  begin('the form recovery');
  const recovery = await frameOf(p, 'the form recovery (phx-change "validate" after the rejoin)',
    () => lvEvents(socket, 'validate').find((m) => m[0] === rejoin[0]));
  const v = formValue(recovery);
  // What was typed, with what the user had touched: name and email used, the password not.
  if (v['user[name]'] !== 'Ann' || v['user[email]'] !== 'ann@example.com' || recovery[4].meta._target !== 'user[name]' ||
      'user[_unused_name]' in v || 'user[_unused_email]' in v || !('user[_unused_password]' in v)) {
    throw new Error('the recovery sent ' + JSON.stringify(recovery[4]));
  }
  // The new process validated it: the name and email rendered back, no error (holes 1, 3 and 4).
  const recovered = await frameOf(p, 'the reply to the recovery', () => replyTo(socket, recovery));
  const diff = recovered[4].response && recovered[4].response.diff;
  if (!diff || diff['0'] !== 'Ann' || diff['2'] !== 'ann@example.com' || diff['1'] || diff['3'] || diff['4']) {
    throw new Error('the recovery was answered ' + JSON.stringify(recovered[4]));
  }
  await expectFields(p, { name: 'Ann', email: 'ann@example.com', 'name-error': '', 'email-error': '', 'password-error': '', result: '' });
  await noReload(p);
  if (p.sockets.length !== 1) throw new Error(`the page opened ${p.sockets.length} sockets`);
  const classes = await p.page.evaluate(() => window.__lv.classes);
  say('recovered: phx-change "validate" sent user[name]=Ann, user[email]=ann@example.com (_target user[name], the password still unused); ' +
      'the server rendered them back without errors; ' +
      'the inputs hold "Ann" and "ann@example.com", no error, same page (no reload)');
  say('classes: ' + classes.map((c) => JSON.stringify(c)).join(' -> '));

  begin('the recovered form submits');
  await p.page.locator('#password').fill('correct horse');
  await p.page.locator('#save').click();
  await reads(p, 'result', 'Welcome, Ann!');
  await noReload(p);
  say('submitted: #result "Welcome, Ann!" from the new process, same page');
}

// Waits until the page shows exactly the messages `want` ([[user, text], ...]), in order: each
// line's name in bold, then its text (athanor-live's <b>ann</b> hello and athanor-chat's
// <b>ann</b>hello alike).
function transcript(p, want) {
  return p.page.waitForFunction((want) => JSON.stringify([...document.querySelectorAll('#messages .msg')].map((m) => {
    const who = m.querySelector('b');
    const user = who ? who.textContent : '';
    return [user, m.textContent.slice(user.length).trim()];
  })) === want, JSON.stringify(want));
}

// Joins `room` as `p.name` by the page's form: #user, #room, then #enter on the LiveView page, the
// "Join" button on athanor-chat's; waits for #status "In room ROOM as NAME".
async function enter(p, room) {
  await p.page.locator('#user').fill(p.name);
  await p.page.locator('#room').fill(room);
  await (p.live ? p.page.locator('#enter') : p.page.getByRole('button', { name: 'Join' })).click();
  await p.page.locator('#status').filter({ hasText: `In room ${room} as ${p.name}` }).waitFor();
  return (await p.page.locator('#status').textContent()).trim();
}

// Sends `body`: #body, then #send on the LiveView page, the "Send" button on athanor-chat's.
async function speak(p, body) {
  await p.page.locator('#body').fill(body);
  await (p.live ? p.page.locator('#send') : p.page.getByRole('button', { name: 'Send' })).click();
}

// /chat: two people, two browser contexts, one server.
async function chat(context, browser) {
  begin('ann joins');
  const ann = await open(context, 'ann');
  const annStatus = await enter(ann, 'kitchen');
  begin('bob joins');
  const bob = await open(await browser.newContext(), 'bob');
  const bobStatus = await enter(bob, 'kitchen');
  say(`joined: two contexts, #status "${annStatus}" and "${bobStatus}"`);

  begin('ann\'s message');
  await speak(ann, 'hello from ann');
  const first = [['ann', 'hello from ann']];
  await Promise.all([transcript(ann, first), transcript(bob, first)]);
  say('message: ann "hello from ann" on both pages');
  begin('bob\'s answer');
  await speak(bob, 'hi ann');
  const both = [...first, ['bob', 'hi ann']];
  await Promise.all([transcript(ann, both), transcript(bob, both)]);
  say('message: bob "hi ann" on both pages');
  await noReload(ann);
  await noReload(bob);
  say('transcript: both pages show ann\'s message then bob\'s, once each; neither reloaded');
}

// ann on a LiveView page of athanor-live (URL), bob on athanor-chat's page (--chat-url), the two
// servers clustered.
async function chatCluster(context, browser) {
  begin('ann joins on athanor-live');
  const ann = await open(context, 'ann');
  const annStatus = await enter(ann, 'lobby');
  begin('bob joins on athanor-chat');
  const bob = await open(await browser.newContext(), 'bob', { url: opts.chatUrl, live: false });
  const bobStatus = await enter(bob, 'lobby');
  say(`joined: ann on the LiveView page ${ann.url} (#status "${annStatus}"), bob on athanor-chat's page ${bob.url} (#status "${bobStatus}")`);
  begin('transport');
  say('transport: ann websocket ' + await transport(ann));
  const bobSocket = await bob.page.evaluate(() => socket.conn instanceof WebSocket && socket.isConnected() && socket.conn.url);
  if (!bobSocket || !bob.sockets.some((s) => s.url === bobSocket)) throw new Error('bob\'s page runs ' + JSON.stringify(bobSocket));
  say('transport: bob websocket ' + bobSocket);

  begin('ann\'s message crosses to athanor-chat');
  await speak(ann, 'hello from the live view');
  const first = [['ann', 'hello from the live view']];
  await Promise.all([transcript(ann, first), transcript(bob, first)]);
  say('message: ann (LiveView) "hello from the live view" on both pages');
  begin('bob\'s answer crosses to athanor-live');
  await speak(bob, 'hello from athanor-chat');
  const both = [...first, ['bob', 'hello from athanor-chat']];
  await Promise.all([transcript(ann, both), transcript(bob, both)]);
  say('message: bob (athanor-chat) "hello from athanor-chat" on both pages');
  await noReload(ann);
  await noReload(bob);
  say('transcript: both pages show ann\'s message then bob\'s, once each; neither reloaded');
}

async function main() {
  begin('launch ' + opts.chromium);
  browser = await chromium.launch({
    executablePath: opts.chromium,
    headless: true,
    timeout: stepTimeout,
    // As root in a container: no user namespaces for the sandbox, a small /dev/shm, no GPU.
    args: ['--headless=new', '--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu'],
  });
  say(`browser: chromium ${browser.version()}`);
  const context = await browser.newContext();
  await scenarios[opts.scenario][0](context, browser);
  begin('close');
  await browser.close();
  browser = null;
  begin('end');
  // What the pages said that a person would see in the DevTools console (errors, warnings,
  // failed responses) and any uncaught exception (which the caller fails on).
  for (const p of pages) {
    for (const l of p.log) if (/^(page error|console\.(error|warning)|response [45]|request failed)/.test(l)) say(`logged: page ${p.name}: ${clip(l, 300)}`);
  }
  say('timings (ms): ' + timings.slice(1).join(', '));
  say('ok');
}

main().then(() => {
  clearTimeout(watchdog);
  exit(0);
}, async (e) => {
  clearTimeout(watchdog);
  say(`FAIL: ${step}: ${String(e && e.message || e).split('\n')[0]}`);
  await describe();
  if (browser) await browser.close().catch(() => {});
  exit(1);
});
