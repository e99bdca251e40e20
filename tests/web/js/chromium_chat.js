// Drives athanor-chat's page in a real Chromium (Debian's /usr/bin/chromium, through the DevTools
// protocol of the pinned npm `playwright-core`), as two people would: two pages load the page,
// each joins the same room under its own name by filling the form and clicking Join, ann sends a
// message and bob answers; both pages must show both messages and both names in their Presence
// list; then bob's page is closed and ann's list must drop him.
//
//   node chromium_chat.js URL_A [URL_B] [options]
//
// URL_A is the page athanor-chat prints (http://HOST:PORT/); ann's page loads it, and bob's loads
// URL_B when given (another node of the same cluster), URL_A otherwise.
//
// Options:
//   --room NAME        the room both join (default "lobby"; the page's input is filled with it)
//   --timeout MS       bound of the whole run (default 45000); each step waits at most a third
//   --chromium PATH    the browser (default $CHROMIUM or /usr/bin/chromium)
//
// Prints one line per step that held ("transport ...", "presence ...", "message ...") and "ok"
// last; on failure, "FAIL: <step>: <why>" followed by what each page showed and logged, exit 1
// (exit 2 if the whole run outlived --timeout).
//
// Every wait is one of playwright's auto-waits on the page's DOM (locator.waitFor,
// page.waitForFunction), bounded by the step timeout: nothing here sleeps to synchronise.
'use strict';
const { chromium } = require('playwright-core');

// ---- arguments ----
const positional = [];
const opts = { room: 'lobby', timeout: 45000, chromium: process.env.CHROMIUM || '/usr/bin/chromium' };
for (let i = 2; i < process.argv.length; ++i) {
  const a = process.argv[i];
  if (a === '--room') opts.room = process.argv[++i];
  else if (a === '--timeout') opts.timeout = Number(process.argv[++i]);
  else if (a === '--chromium') opts.chromium = process.argv[++i];
  else if (a.startsWith('--')) usage('unknown option ' + a);
  else positional.push(a);
}
if (positional.length < 1 || positional.length > 2 || !(opts.timeout > 0) || !opts.room) usage('bad arguments');
function usage(why) {
  process.stderr.write(why + '\nusage: node chromium_chat.js URL_A [URL_B] [--room NAME] [--timeout MS] [--chromium PATH]\n');
  process.exit(64);
}
const urlA = positional[0], urlB = positional[1] || positional[0];
const stepTimeout = Math.max(1000, Math.floor(opts.timeout / 3));

// ---- output ----
let step = 'start', browser = null;
const people = [];   // { name, page, log: [] }
function say(line) { process.stdout.write(line + '\n'); }
// What each page shows and what its console said: the diagnostic of a failed step.
async function describe() {
  for (const p of people) {
    say(`-- ${p.name}'s page (${p.url}):`);
    if (!p.page.isClosed()) {
      try {
        const shown = await p.page.evaluate(() => ({
          title: document.title,
          status: document.getElementById('status')?.textContent,
          people: document.getElementById('people')?.textContent,
          messages: [...document.querySelectorAll('#messages .msg')].map((m) => m.textContent),
        }));
        say('   shows ' + JSON.stringify(shown));
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
  for (const p of people) for (const l of p.log) say(`   ${p.name}'s page: ${l}`);
  exit(2);
}, opts.timeout);

// ---- the page, as a person uses it ----
async function open(context, name, url) {
  const page = await context.newPage();
  page.setDefaultTimeout(stepTimeout);
  const p = { name, url, page, log: [], sockets: [], longpolls: 0 };
  page.on('console', (m) => p.log.push(`console.${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => p.log.push('page error: ' + e.message));
  page.on('requestfailed', (r) => p.log.push(`request failed: ${r.url()} (${r.failure() && r.failure().errorText})`));
  // What the browser itself opened, whatever the page's script says: the transport evidence.
  page.on('websocket', (ws) => {
    p.sockets.push(ws.url());
    ws.on('close', () => p.log.push('websocket closed: ' + ws.url()));
  });
  page.on('request', (r) => { if (r.url().includes('/longpoll')) ++p.longpolls; });
  people.push(p);
  await page.goto(url);
  await page.locator('#user').fill(name);
  await page.locator('#room').fill(opts.room);
  await page.getByRole('button', { name: 'Join' }).click();
  await page.locator('#status').filter({ hasText: `In room ${opts.room} as ${name}` }).waitFor();
  return p;
}

async function send(p, body) {
  await p.page.locator('#body').fill(body);
  await p.page.getByRole('button', { name: 'Send' }).click();
}

// Waits until the page lists exactly `names` as present (in any order).
function presence(p, names) {
  return p.page.waitForFunction((want) => {
    const shown = document.getElementById('people').dataset.people;
    return shown !== undefined && shown.split(',').filter(Boolean).sort().join(',') === want;
  }, [...names].sort().join(','));
}

// Waits until the page shows the line `user` `body` (the name in bold, then the text).
function shows(p, user, body) {
  return p.page.waitForFunction(([user, body]) =>
    [...document.querySelectorAll('#messages .msg')].some((m) => {
      const who = m.querySelector('b');
      return who && who.textContent === user && m.textContent === user + body;
    }), [user, body]);
}

// Which transport the page's Phoenix.Socket runs: its connection object, read from the page's own
// global `socket` (a top-level const of the page's script), and what the browser opened.
async function transport(p) {
  const conn = await p.page.evaluate(() => ({
    websocket: socket.conn instanceof WebSocket,
    longpoll: socket.conn instanceof Phoenix.LongPoll,
    url: socket.conn && socket.conn.url,
    open: socket.isConnected(),
  }));
  if (!conn.websocket || conn.longpoll || !conn.open) throw new Error('the page\'s socket is ' + JSON.stringify(conn));
  if (p.longpolls) throw new Error(`the page made ${p.longpolls} long-poll request(s)`);
  if (!p.sockets.some((u) => u === conn.url)) throw new Error(`the browser opened ${JSON.stringify(p.sockets)}, not ${conn.url}`);
  return conn.url;
}

async function main() {
  step = 'launch ' + opts.chromium;
  browser = await chromium.launch({
    executablePath: opts.chromium,
    headless: true,
    timeout: stepTimeout,
    // As root in a container: no user namespaces for the sandbox, a small /dev/shm, no GPU.
    args: ['--headless=new', '--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu'],
  });
  say(`browser: chromium ${browser.version()}`);
  // A context each: two people, two browsers' worth of state, as in two windows of two users.
  const annContext = await browser.newContext(), bobContext = await browser.newContext();

  step = 'ann joins';
  const ann = await open(annContext, 'ann', urlA);
  step = 'bob joins';
  const bob = await open(bobContext, 'bob', urlB);
  say(`joined: ann on ${urlA}, bob on ${urlB}, room ${opts.room}`);

  step = 'transport';
  for (const p of [ann, bob]) say(`transport: ${p.name} websocket ${await transport(p)}`);

  step = 'presence of both';
  await Promise.all([presence(ann, ['ann', 'bob']), presence(bob, ['ann', 'bob'])]);
  say('presence: ann and bob on both pages');

  step = 'ann\'s message';
  await send(ann, 'hello from ann');
  await Promise.all([shows(ann, 'ann', 'hello from ann'), shows(bob, 'ann', 'hello from ann')]);
  say('message: ann "hello from ann" on both pages');
  step = 'bob\'s answer';
  await send(bob, 'hi ann');
  await Promise.all([shows(ann, 'bob', 'hi ann'), shows(bob, 'bob', 'hi ann')]);
  say('message: bob "hi ann" on both pages');

  step = 'bob leaves';
  await bob.page.close();
  await presence(ann, ['ann']);
  say('presence: ann alone once bob\'s page closed');

  step = 'close';
  await browser.close();
  browser = null;
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
