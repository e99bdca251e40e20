// Drives athanor-live's /counter with the OFFICIAL clients in Node, without a browser: the page's
// HTML (fetched from the server) in a jsdom window, and phoenix_live_view's LiveSocket (its cjs
// bundle) over phoenix's Socket (its cjs bundle), created as /assets/athanor_live.js creates it.
// Fast protocol-level checks of the join, the click events and their diffs, and the DOM patches.
//
//   node jsdom_live.js URL [--transport ws|jsdom|longpoll] [--timeout MS]
//
// URL is what athanor-live prints (http://HOST:PORT/); the page is URL + "counter".
//
// Transports (the Socket's `transport` option; Node 20 has no global WebSocket):
//   ws        the npm `ws` WebSocket (default)
//   jsdom     jsdom's own WebSocket (window.WebSocket), what phoenix picks by itself in the window
//   longpoll  phoenix's LongPoll over jsdom's XMLHttpRequest, at /live/longpoll
// The run checks that the connection it ran on is of that transport, and with a WebSocket, the
// frames themselves: the phx_join and its reply (the full rendered tree with the title and
// liveview_version), then each click's event push and the reply's diff.
//
// Prints one line per check that held and "ok" last; on failure "FAIL: <step>: <why>" followed by
// the container's HTML and the frames seen, exit 1 (exit 2 if the run outlived --timeout).
// Every wait is on a DOM mutation or a frame, bounded by the step timeout: nothing sleeps.
'use strict';
const { JSDOM, VirtualConsole } = require('jsdom');
const WS = require('ws');

// ---- arguments ----
const positional = [];
const opts = { transport: 'ws', timeout: 10000 };
for (let i = 2; i < process.argv.length; ++i) {
  const a = process.argv[i];
  if (a === '--transport') opts.transport = process.argv[++i];
  else if (a === '--timeout') opts.timeout = Number(process.argv[++i]);
  else if (a.startsWith('--')) usage('unknown option ' + a);
  else positional.push(a);
}
if (positional.length !== 1 || !['ws', 'jsdom', 'longpoll'].includes(opts.transport) || !(opts.timeout > 0)) usage('bad arguments');
function usage(why) {
  process.stderr.write(why + '\nusage: node jsdom_live.js URL [--transport ws|jsdom|longpoll] [--timeout MS]\n');
  process.exit(64);
}
const pageUrl = new URL('counter', positional[0]).href;
const stepTimeout = Math.max(1000, Math.floor(opts.timeout / 2));

// ---- output ----
let step = 'start', dom = null, liveSocket = null;
const log = [];      // the window's console and errors, and every frame
const frames = [];   // [direction, decoded message] of the WebSocket transports
function say(line) { process.stdout.write(line + '\n'); }
const clip = (s, n = 400) => (s.length > n ? s.slice(0, n) + `... (${s.length} chars)` : s);
function exit(code) {
  if (liveSocket) { try { liveSocket.disconnect(); } catch {} }
  if (dom) dom.window.close();
  process.stdout.write('', () => process.exit(code));
}
const watchdog = setTimeout(() => {
  say(`FAIL: ${step}: the run took more than ${opts.timeout} ms`);
  for (const l of log) say('   ' + l);
  exit(2);
}, opts.timeout);

// Resolves when `check()` holds, re-checking on each mutation of the document and each frame;
// rejects after the step timeout.
const waiters = new Set();
function until(what, check) {
  return new Promise((resolve, reject) => {
    const w = {
      poke() {
        let v;
        try { v = check(); } catch (e) { v = false; }
        if (v) { waiters.delete(w); observer.disconnect(); clearTimeout(t); resolve(v); }
      },
    };
    const observer = new dom.window.MutationObserver(() => w.poke());
    observer.observe(dom.window.document, { subtree: true, childList: true, attributes: true, characterData: true });
    const t = setTimeout(() => { waiters.delete(w); observer.disconnect(); reject(new Error('timed out waiting for ' + what)); }, stepTimeout);
    waiters.add(w);
    w.poke();
  });
}
function frameArrived() { for (const w of [...waiters]) w.poke(); }

// ---- the page ----
async function main() {
  step = 'GET ' + pageUrl;
  const res = await fetch(pageUrl);
  if (res.status !== 200) throw new Error('status ' + res.status);
  const html = await res.text();

  step = 'the window';
  const virtualConsole = new VirtualConsole();
  for (const level of ['log', 'info', 'warn', 'error', 'debug']) {
    virtualConsole.on(level, (...a) => log.push(`console.${level}: ${a.map(String).join(' ')}`));
  }
  virtualConsole.on('jsdomError', (e) => log.push('jsdom error: ' + (e && e.message)));
  // The page's own scripts are not run: this script does what they do.
  dom = new JSDOM(html, { url: pageUrl, pretendToBeVisual: true, virtualConsole });
  const w = dom.window;
  // The clients are written for a browser, whose globals they use bare (window, document,
  // location, history, HTMLElement, requestAnimationFrame...): the window's, where Node has none of
  // its own. phoenix reads `self`/`window` once, when it is loaded, so these come first.
  for (const k of Object.getOwnPropertyNames(w)) {
    if (k in globalThis) continue;
    try { globalThis[k] = w[k]; } catch {}
  }
  // jsdom has no CSS namespace; LiveView's rejoin (form recovery) uses CSS.escape: the CSSOM
  // spec's serialize-an-identifier.
  if (typeof globalThis.CSS === 'undefined') {
    globalThis.CSS = {
      escape(value) {
        const s = String(value);
        let out = '';
        for (let i = 0; i < s.length; ++i) {
          const c = s.charCodeAt(i);
          if (c === 0) out += '\uFFFD';
          else if ((c >= 0x1 && c <= 0x1f) || c === 0x7f || (i === 0 && c >= 0x30 && c <= 0x39) ||
                   (i === 1 && c >= 0x30 && c <= 0x39 && s.charCodeAt(0) === 0x2d)) out += '\\' + c.toString(16) + ' ';
          else if (i === 0 && s.length === 1 && c === 0x2d) out += '\\' + s[i];
          else if (c >= 0x80 || c === 0x2d || c === 0x5f || (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a)) out += s[i];
          else out += '\\' + s[i];
        }
        return out;
      },
    };
  }
  const { Socket, LongPoll } = require('phoenix');
  // Where Node has DOM classes of its own (Event, EventTarget, CustomEvent, FormData) LiveView
  // needs the window's (Node's cannot be dispatched to jsdom's elements nor built from its forms),
  // yet Node's stay global (jsdom's WebSocket is undici's, which dispatches Node's Events). And
  // phoenix_live_view's package.json says "type": "module", so Node reads its cjs bundle (.cjs.js,
  // not .cjs) as ESM and require() fails. So: the unchanged cjs bundle evaluated as the CommonJS
  // it is, in a scope that has the window's classes under those names.
  const scoped = { Event: w.Event, EventTarget: w.EventTarget, CustomEvent: w.CustomEvent, FormData: w.FormData };
  const lvModule = { exports: {} };
  new Function('module', 'exports', 'require', ...Object.keys(scoped), require('fs').readFileSync(require.resolve('phoenix_live_view'), 'utf8'))(
    lvModule, lvModule.exports, require, ...Object.values(scoped));
  const { LiveSocket } = lvModule.exports;

  // The transport asked for, with the WebSocket's frames recorded as they pass.
  const base = opts.transport === 'ws' ? WS.WebSocket : opts.transport === 'jsdom' ? w.WebSocket : LongPoll;
  let transport = base;
  if (opts.transport !== 'longpoll') {
    transport = class extends base {
      constructor(...a) {
        super(...a);
        this.addEventListener('message', (e) => record('S->C', e.data));
        this.addEventListener('close', (e) => log.push(`socket closed: ${e.code}`));
      }
      send(data) { record('C->S', data); super.send(data); }
    };
  }
  function record(dir, data) {
    const text = typeof data === 'string' ? data : Buffer.from(data).toString();
    log.push(`${dir} ${clip(text)}`);
    try { frames.push([dir, JSON.parse(text)]); } catch { frames.push([dir, text]); }
    frameArrived();
  }

  step = 'connect';
  // As /assets/athanor_live.js does, with the transport added.
  const meta = document.querySelector("meta[name='csrf-token']");
  liveSocket = new LiveSocket('/live', Socket, { params: { _csrf_token: meta && meta.getAttribute('content') }, transport });
  liveSocket.connect();
  const main = document.querySelector('[data-phx-main]');
  if (!main) throw new Error('no [data-phx-main] container in the page');
  const topic = 'lv:' + main.id;
  await until('the container to be phx-connected', () => main.classList.contains('phx-connected') && liveSocket.isConnected());
  const count = () => document.getElementById('count')?.textContent;
  if (count() !== '0' || document.title !== 'Count: 0') throw new Error(`connected with #count ${count()}, title "${document.title}"`);
  say(`connected: ${topic} phx-connected, #count 0, title "Count: 0"`);

  step = 'transport';
  const conn = liveSocket.socket.conn;
  if (opts.transport === 'jsdom' && new Socket('/live').transport !== w.WebSocket) throw new Error("phoenix would not pick the window's WebSocket by itself");
  if (!(conn instanceof base)) throw new Error(`the connection is a ${conn && conn.constructor && conn.constructor.name}, not ${opts.transport}`);
  const connUrl = new URL(opts.transport === 'longpoll' ? conn.pollEndpoint : conn.url);
  const wantPath = opts.transport === 'longpoll' ? '/live/longpoll' : '/live/websocket';
  if (connUrl.pathname !== wantPath || connUrl.searchParams.get('vsn') !== '2.0.0') throw new Error('the connection URL is ' + connUrl.href);
  say(`transport: ${opts.transport} (${opts.transport === 'ws' ? 'npm ws' : opts.transport === 'jsdom' ? "jsdom's window.WebSocket" : 'phoenix LongPoll'}) ${connUrl.origin}${connUrl.pathname} vsn=2.0.0`);

  if (opts.transport !== 'longpoll') {
    step = 'the join on the wire';
    const join = frames.find(([d, m]) => d === 'C->S' && m[2] === topic && m[3] === 'phx_join');
    if (!join) throw new Error('no phx_join for ' + topic);
    const p = join[1][4];
    if (p.url !== pageUrl || p.session !== main.getAttribute('data-phx-session') || p.params._csrf_token !== meta.getAttribute('content') ||
        p.params._mounts !== 0) {
      throw new Error('the join says ' + JSON.stringify(p));
    }
    const reply = frames.find(([d, m]) => d === 'S->C' && m[3] === 'phx_reply' && m[0] === join[1][0] && m[1] === join[1][1]);
    if (!reply) throw new Error('no reply to the join');
    const r = reply[1][4];
    if (r.status !== 'ok' || !r.response.rendered || !Array.isArray(r.response.rendered.s) || r.response.rendered['0'] !== '0' ||
        r.response.rendered.t !== 'Count: 0' || r.response.liveview_version !== '1.2.12') {
      throw new Error('the join reply is ' + JSON.stringify(r));
    }
    say(`join: reply ok with refs ${JSON.stringify(reply[1].slice(0, 2))}, rendered {"0":"0","s":[${r.response.rendered.s.length} statics],"t":"Count: 0"}, liveview_version 1.2.12`);
  }

  step = 'clicks';
  const seen = [];
  const click = async (id, want) => {
    const sentBefore = frames.length;
    document.getElementById(id).dispatchEvent(new w.MouseEvent('click', { bubbles: true, cancelable: true, view: w }));
    await until(`#count ${want} after ${id}`, () => count() === String(want) && document.title === 'Count: ' + want);
    seen.push(want);
    if (opts.transport !== 'longpoll') {
      const push = frames.slice(sentBefore).find(([d, m]) => d === 'C->S' && m[2] === topic && m[3] === 'event');
      if (!push || push[1][4].type !== 'click' || push[1][4].event !== id) throw new Error(`the ${id} push is ${JSON.stringify(push && push[1])}`);
      const reply = frames.slice(sentBefore).find(([d, m]) => d === 'S->C' && m[3] === 'phx_reply' && m[1] === push[1][1]);
      const diff = reply && reply[1][4].status === 'ok' && reply[1][4].response.diff;
      if (!diff || diff['0'] !== String(want) || diff.t !== 'Count: ' + want || 's' in diff) {
        throw new Error(`the ${id} reply is ${JSON.stringify(reply && reply[1])}`);
      }
      if (reply[1][0] !== push[1][0]) throw new Error(`the reply's join_ref ${reply[1][0]} is not the push's ${push[1][0]}`);
    }
  };
  for (const [id, want] of [['inc', 1], ['inc', 2], ['inc', 3], ['dec', 2]]) await click(id, want);
  say(`clicked: inc inc inc dec -> #count ${seen.join(' ')}, title "Count: 2"` +
      (opts.transport !== 'longpoll' ? ', each push answered with the diff {"0":"<n>","t":"Count: <n>"}' : ''));

  step = 'reconnect';
  // The connection drops under the client (closed by it, as a network loss would): phoenix
  // reconnects by itself, LiveView rejoins the same topic with params._mounts 1 and the server
  // mounts afresh: #count 0 again, and clicks count from there on the new connection.
  const framesBefore = frames.length, lost = liveSocket.socket.conn;
  lost.close(opts.transport === 'longpoll' ? 1006 : 4000, 'test: connection lost');
  await until('a new connection and the view connected again', () =>
    liveSocket.socket.conn && liveSocket.socket.conn !== lost && liveSocket.isConnected() && main.classList.contains('phx-connected') &&
    count() === '0' && document.title === 'Count: 0');
  if (opts.transport !== 'longpoll') {
    const rejoin = frames.slice(framesBefore).find(([d, m]) => d === 'C->S' && m[2] === topic && m[3] === 'phx_join');
    if (!rejoin || rejoin[1][4].params._mounts !== 1) throw new Error('the rejoin is ' + JSON.stringify(rejoin && rejoin[1]));
  }
  await click('inc', 1);
  say(`reconnected: a new connection, the view rejoined${opts.transport !== 'longpoll' ? ' (_mounts 1)' : ''} to a fresh mount (#count 0), then inc -> 1`);

  // Anything the window said on a passing run (console, jsdom's "not implemented"...).
  for (const l of log) if (/^(console|jsdom)/.test(l)) say('window: ' + l);

  step = 'disconnect';
  liveSocket.disconnect();
  liveSocket = null;
  say('ok');
}

// An exception thrown in a client's callback (a frame handler, a timer) fails the run at once.
process.on('uncaughtException', (e) => {
  clearTimeout(watchdog);
  say(`FAIL: ${step}: uncaught ${String(e && e.stack || e).split('\n').slice(0, 3).join(' | ')}`);
  for (const l of log) say('   ' + l);
  exit(1);
});

main().then(() => {
  clearTimeout(watchdog);
  exit(0);
}, (e) => {
  clearTimeout(watchdog);
  say(`FAIL: ${step}: ${String(e && e.stack || e).split('\n').slice(0, 3).join(' | ')}`);
  try {
    const main = dom && dom.window.document.querySelector('[data-phx-main]');
    if (main) say('   container: ' + clip(main.outerHTML, 3000));
  } catch {}
  for (const l of log) say('   ' + l);
  exit(1);
});
