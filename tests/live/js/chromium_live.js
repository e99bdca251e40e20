// Drives athanor-live's /counter in a real Chromium (Debian's /usr/bin/chromium, through the
// DevTools protocol of the pinned npm `playwright-core`): the page's own scripts (the official
// phoenix and phoenix_live_view clients the tool serves) connect its LiveSocket, and the page is
// clicked as a person would click it.
//
//   node chromium_live.js URL --scenario NAME [options]
//
// URL is what athanor-live prints (http://HOST:PORT/); the pages load URL + "counter".
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
//
// Options:
//   --timeout MS       bound of the whole run (default 45000); each step waits at most a third
//   --chromium PATH    the browser (default $CHROMIUM or /usr/bin/chromium)
//
// Prints one line per step that held and "ok" last; on failure "FAIL: <step>: <why>" followed by
// what each page showed (title, marker, the container's classes and HTML, the LiveSocket's state)
// and logged (console, page errors, WebSocket frames), exit 1 (exit 2 if the whole run outlived
// --timeout).
//
// Every wait is one of playwright's auto-waits (locator actions, page.waitForFunction) or an event,
// bounded by the step timeout: nothing here sleeps to synchronise.
'use strict';
const { chromium } = require('playwright-core');

// ---- arguments ----
const positional = [];
const opts = { scenario: '', timeout: 45000, chromium: process.env.CHROMIUM || '/usr/bin/chromium' };
for (let i = 2; i < process.argv.length; ++i) {
  const a = process.argv[i];
  if (a === '--scenario') opts.scenario = process.argv[++i];
  else if (a === '--timeout') opts.timeout = Number(process.argv[++i]);
  else if (a === '--chromium') opts.chromium = process.argv[++i];
  else if (a.startsWith('--')) usage('unknown option ' + a);
  else positional.push(a);
}
const scenarios = { counter, 'two-pages': twoPages, restart };
if (positional.length !== 1 || !scenarios[opts.scenario] || !(opts.timeout > 0)) usage('bad arguments');
function usage(why) {
  process.stderr.write(why + '\nusage: node chromium_live.js URL --scenario counter|two-pages|restart [--timeout MS] [--chromium PATH]\n');
  process.exit(64);
}
const pageUrl = new URL('counter', positional[0]).href;
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
          return {
            url: location.href,
            title: document.title,
            marker: window.__marker,
            count: document.getElementById('count')?.textContent,
            containerClass: main && main.className,
            liveSocket: ls ? { connected: ls.isConnected(), transport: sock.transport && sock.transport.name,
              conn: sock.conn && sock.conn.url, readyState: sock.conn && sock.conn.readyState } : null,
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
async function open(context, name) {
  const page = await context.newPage();
  page.setDefaultTimeout(stepTimeout);
  const p = { name, page, log: [], sockets: [], loads: 0, longpolls: 0 };
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
    ws.on('framesent', (f) => { s.sent.push(String(f.payload)); p.log.push(`ws ${n} C->S ${clip(String(f.payload))}`); });
    ws.on('framereceived', (f) => { s.received.push(String(f.payload)); p.log.push(`ws ${n} S->C ${clip(String(f.payload))}`); });
    ws.on('socketerror', (e) => p.log.push(`ws ${n} error: ${e}`));
    ws.on('close', () => { s.closed = true; p.log.push(`websocket ${n} closed`); });
  });
  pages.push(p);
  await page.goto(pageUrl);
  await connected(p);
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
  const base = new URL(pageUrl);
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
  // What the page's Phoenix socket goes through from here on, and each class its container takes.
  await p.page.evaluate(() => {
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
  await scenarios[opts.scenario](context);
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
