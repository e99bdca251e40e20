// Drives Athanor's WebSocket server with the `ws` npm client, one scenario per run:
//   node ws_client.js <scenario> <url>
// Prints "OK <scenario>" and exits 0 on success; prints "FAIL <why>" and exits 1 otherwise.
// Every scenario has its own timeout, so a hung server fails the test instead of hanging it.
'use strict';
const WebSocket = require('ws');

const [scenario, url] = process.argv.slice(2);
const timer = setTimeout(() => fail('timeout'), 10000);

function fail(why) {
  console.log('FAIL ' + scenario + ': ' + why);
  process.exit(1);
}
function ok(detail) {
  clearTimeout(timer);
  console.log('OK ' + scenario + (detail ? ' ' + detail : ''));
  process.exit(0);
}
function open(options) {
  const ws = new WebSocket(url, Object.assign({ perMessageDeflate: false, rejectUnauthorized: false }, options || {}));
  ws.on('error', (e) => fail('error: ' + e.message));
  return ws;
}
// Sends `messages` one after the other and checks each echo.
function echoAll(ws, messages, done) {
  let i = 0;
  ws.on('message', (data, isBinary) => {
    const want = messages[i];
    const wantBinary = Buffer.isBuffer(want);
    if (isBinary !== wantBinary) fail('message ' + i + ': binary=' + isBinary);
    if (!Buffer.from(data).equals(Buffer.from(want))) fail('message ' + i + ' differs');
    if (++i === messages.length) done();
    else ws.send(messages[i]);
  });
  ws.send(messages[0]);
}

const scenarios = {
  // Text and binary echo, including sizes around the 16/64-bit length encodings.
  echo() {
    const ws = open();
    const big = Buffer.alloc(70000);
    for (let i = 0; i < big.length; i++) big[i] = i & 0xff;
    ws.on('open', () => echoAll(ws, ['hello', 'héllo wörld ✓', Buffer.from([0, 1, 2, 255]), 'x'.repeat(126), big], () => ok()));
  },
  // A message sent in three fragments comes back whole.
  fragments() {
    const ws = open();
    ws.on('open', () => {
      ws.send('frag-', { fin: false });
      ws.send('ment-', { fin: false });
      ws.send('ed', { fin: true });
    });
    ws.on('message', (data) => (data.toString() === 'frag-ment-ed' ? ok() : fail('got ' + data)));
  },
  // A ping gets a pong with the same payload, between data frames.
  ping() {
    const ws = open();
    ws.on('open', () => {
      ws.send('before');
      ws.ping('abc');
    });
    let got = 0;
    ws.on('message', () => got++);
    ws.on('pong', (data) => (data.toString() === 'abc' ? (got === 1 ? ok() : ws.once('message', () => ok())) : fail('pong ' + data)));
  },
  // The client closes with a code; the server echoes it.
  close_code() {
    const ws = open();
    ws.on('open', () => ws.close(4001, 'bye'));
    ws.on('close', (code) => (code === 4001 ? ok() : fail('close code ' + code)));
  },
  // Invalid UTF-8 in a text frame: the server closes with 1007.
  bad_utf8() {
    const ws = open();
    ws.on('open', () => ws.send(Buffer.from([0x68, 0xc3, 0x28]), { binary: false }));
    ws.on('close', (code) => (code === 1007 ? ok() : fail('close code ' + code)));
  },
  // A message over the route's limit: the server closes with 1009.
  too_big() {
    const ws = open();
    ws.on('open', () => ws.send('y'.repeat(5000)));
    ws.on('close', (code) => (code === 1009 ? ok() : fail('close code ' + code)));
  },
  // The server closes with a code of its own when asked.
  server_close() {
    const ws = open();
    ws.on('open', () => ws.send('close-please'));
    ws.on('close', (code, reason) => (code === 4002 && reason.toString() === 'as requested' ? ok() : fail('close ' + code + ' ' + reason)));
  },
  // permessage-deflate is negotiated and large compressible messages round-trip.
  deflate() {
    const ws = open({ perMessageDeflate: { threshold: 0 } });
    ws.on('open', () => {
      if (!/permessage-deflate/.test(ws.extensions)) fail('not negotiated: "' + ws.extensions + '"');
      const text = 'compress me please '.repeat(2000);
      echoAll(ws, [text, 'short', Buffer.from(text), text + '!'], () => ok(ws.extensions));
    });
  },
  // Echo over many messages in flight at once.
  burst() {
    const ws = open();
    const n = 1000;
    let got = 0;
    ws.on('open', () => {
      for (let i = 0; i < n; i++) ws.send('m' + i);
    });
    ws.on('message', (data) => {
      if (data.toString() !== 'm' + got) fail('out of order at ' + got);
      if (++got === n) ok();
    });
  },
};

if (!scenarios[scenario]) fail('unknown scenario');
scenarios[scenario]();
