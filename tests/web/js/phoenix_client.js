// Drives an Athanor Channels server with the OFFICIAL npm `phoenix` client (pinned in package.json),
// one scenario per run, so a C++ test can run it as a child process:
//
//   node phoenix_client.js connect   <url> [options]
//   node phoenix_client.js join      <url> TOPIC PARAMS_JSON [options]
//   node phoenix_client.js push      <url> TOPIC PARAMS_JSON EVENT PAYLOAD_JSON [options]
//   node phoenix_client.js heartbeat <url> [options]
//
// <url> is the socket endpoint as a browser app passes it to `new Socket(...)`, e.g.
// ws://127.0.0.1:4000/socket (the client appends /websocket or /longpoll and ?vsn=2.0.0 itself).
//
// Every observed event is printed as one JSON line on stdout, e.g.
//   {"event":"transport","name":"WebSocket"}   {"event":"join_ok","topic":"room:a","reply":{}}
// Exit 0 once the scenario completed; exit 1 with {"event":"error",...} on timeout or failure.
//
// Options:
//   --longpoll            use the client's LongPoll transport instead of the `ws` WebSocket
//   --timeout MS          overall bound of the run (default 10000)
//   --params JSON         socket connect params (sent as query parameters)
//   --auth-token TOKEN    the client's authToken option (sent as the `phoenix` subprotocol + token)
//   --origin URL          Origin header of the WebSocket handshake (ws sends none by default)
//   --heartbeat MS        heartbeatIntervalMs (default 30000; 200 in the heartbeat scenario)
//   --expect N[:EVENT]    push: wait for N server pushes on the topic (of event EVENT only, when
//                         given, e.g. 2:new_msg) before exiting (default 0)
//   --expect-joins N      push: wait for N join_ok, e.g. 2 to see the rejoin after a channel crash
//   --no-reply            push: do not wait for the reply (it is still printed if it arrives)
//   --binary              push: send PAYLOAD (a JSON string) as the UTF-8 bytes of a binary payload
//   --presence USERS      push/join: track the official Presence object and wait until its list
//                         has held exactly the comma-separated USERS (use "" for none) once; push
//                         only then, so that clients of a multi-client test push once all joined
//   --then-presence USERS push: once the --presence list was seen and the push done, also wait
//                         until the list is exactly USERS (e.g. after another client left)
//   --trace               print every decoded message the socket receives as {"event":"recv",...}
'use strict';
const WS = require('ws');
const { Socket, LongPoll, Presence } = require('phoenix');

// ---- output ----
let timer = null, socket = null, scenario = null, exiting = false;
function emit(obj) { if (!exiting) process.stdout.write(JSON.stringify(obj) + '\n'); }
function finish(code) {
  if (exiting) return;
  exiting = true;
  clearTimeout(timer);
  if (socket) socket.disconnect();
  // stdout may be a pipe: let the write drain before exiting
  process.stdout.write('', () => process.exit(code));
}
function fail(reason, extra) {
  emit(Object.assign({ event: 'error', scenario, reason }, extra || {}));   // before finish() mutes emit
  finish(1);
}
function parseJson(text, what) {
  try { return JSON.parse(text); } catch (e) { return fail('bad JSON for ' + what + ': ' + e.message); }
}
// JSON.stringify cannot show an ArrayBuffer (binary payloads): print it as base64
function printable(payload) {
  if (payload instanceof ArrayBuffer) return { binary_base64: Buffer.from(payload).toString('base64') };
  if (payload && payload.response instanceof ArrayBuffer) return Object.assign({}, payload, { response: printable(payload.response) });
  return payload;
}
process.on('uncaughtException', (e) => fail('exception: ' + e.message));

// ---- arguments ----
const argv = process.argv.slice(2);
const opts = { timeout: 10000, expect: 0, expectJoins: 1, params: {} };
const positional = [];
for (let i = 0; i < argv.length; i++) {
  const a = argv[i];
  const next = () => (i + 1 < argv.length ? argv[++i] : undefined);
  switch (a) {
    case '--longpoll': opts.longpoll = true; break;
    case '--timeout': opts.timeout = Number(next()); break;
    case '--params': opts.params = parseJson(next(), a); break;
    case '--auth-token': opts.authToken = next(); break;
    case '--origin': opts.origin = next(); break;
    case '--heartbeat': opts.heartbeat = Number(next()); break;
    case '--expect': [opts.expect, opts.expectName] = (next() || '').split(':'); opts.expect = Number(opts.expect); break;
    case '--expect-joins': opts.expectJoins = Number(next()); break;
    case '--no-reply': opts.noReply = true; break;
    case '--binary': opts.binary = true; break;
    case '--presence': opts.presence = (next() || '').split(',').filter((s) => s !== '').sort(); break;
    case '--then-presence': opts.thenPresence = (next() || '').split(',').filter((s) => s !== '').sort(); break;
    case '--trace': opts.trace = true; break;
    default:
      if (a.startsWith('--')) opts.bad = 'unknown option ' + a;
      positional.push(a);
  }
}
const [, url, topic, paramsJson, pushEvent, payloadJson] = positional;
scenario = positional[0];
timer = setTimeout(() => fail('timeout', { timeout_ms: opts.timeout }), opts.timeout);

// ---- the socket ----
// Node 20 has no global WebSocket, and the client would then silently fall back to LongPoll,
// so the transport is always explicit. With --origin we subclass ws to pass the header; the class
// keeps the name WebSocket, which is what the client reports as the transport name.
let transport = WS;
if (opts.longpoll) transport = LongPoll;
else if (opts.origin) {
  const origin = opts.origin;
  transport = class WebSocket extends WS {
    constructor(address, protocols) { super(address, protocols, { origin }); }
  };
}
const socketOpts = { transport, params: opts.params, timeout: opts.timeout };
if (opts.authToken) socketOpts.authToken = opts.authToken;
if (opts.heartbeat || scenario === 'heartbeat') socketOpts.heartbeatIntervalMs = opts.heartbeat || 200;

// ---- scenarios ----
const scenarios = {
  // Connect only: exit 0 on open, or on a socket error (e.g. a refused connect), printed first.
  connect() {
    socket.onOpen(() => finish(0));
    socket.onError(() => finish(0));
  },

  // Wait for one heartbeat reply. LongPoll skips the periodic heartbeat (skipHeartbeat), so
  // there we send the client's own ping(), which is the same "heartbeat" message.
  heartbeat() {
    socket.onMessage((m) => {
      if (m.topic === 'phoenix' && m.event === 'phx_reply') {
        emit({ event: 'heartbeat', ref: m.ref, reply: m.payload });
        finish(0);
      }
    });
    if (opts.longpoll) socket.onOpen(() => socket.ping(() => {}));
  },

  // Join, print join_ok or join_error, leave after join_ok (and the --presence list), exit.
  join() { joinAndRun(false); },
  // Join, push once, print the reply and the server pushes; exit when all expectations are met.
  push() { joinAndRun(true); },
};

function joinAndRun(withPush) {
  if (!topic || paramsJson === undefined) return fail('join needs TOPIC PARAMS_JSON');
  if (withPush && (!pushEvent || payloadJson === undefined)) return fail('push needs TOPIC PARAMS_JSON EVENT PAYLOAD_JSON');
  const joinParams = parseJson(paramsJson, 'PARAMS_JSON');
  let payload = withPush ? parseJson(payloadJson, 'PAYLOAD_JSON') : null;
  if (exiting) return;
  if (opts.binary) {
    if (typeof payload !== 'string') return fail('--binary wants PAYLOAD_JSON to be a JSON string');
    const bytes = Buffer.from(payload, 'utf8');
    payload = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
  }

  const channel = socket.channel(topic, joinParams);
  const presence = opts.presence ? new Presence(channel) : null;
  let joins = 0, pushes = 0, pushed = false, leaving = false;
  let replied = !withPush || !!opts.noReply;

  let presenceSeen = !presence;   // latched: others may leave once they are done
  const presenceDone = () => presenceSeen || (presenceSeen =
    JSON.stringify(presence.list((key) => key).sort()) === JSON.stringify(opts.presence));
  const check = () => {
    if (joins === 0 || !presenceDone()) return;
    if (withPush) {
      if (!pushed) {   // push once, after the first join, not again on a rejoin
        pushed = true;
        channel.push(pushEvent, payload)
          .receive('ok', (resp) => onReply('ok', resp))
          .receive('error', (resp) => onReply('error', resp))
          .receive('timeout', () => { if (!opts.noReply) fail('push reply timeout', { name: pushEvent }); });
      }
      const thenDone = !opts.thenPresence || !presence ||
        JSON.stringify(presence.list((key) => key).sort()) === JSON.stringify(opts.thenPresence);
      if (joins >= opts.expectJoins && pushes >= opts.expect && replied && thenDone) finish(0);
    } else if (joins >= opts.expectJoins && !leaving) {
      leaving = true;
      channel.leave()
        .receive('ok', (resp) => { emit({ event: 'left', topic, reply: resp }); finish(0); })
        .receive('timeout', () => fail('leave timeout', { topic }));
    }
  };

  // Every message for the topic without a ref, other than the client's own control events,
  // is a server push or broadcast. onMessage is the client's documented hook for all of them.
  channel.onMessage = (event, payload, ref, joinRef) => {
    if (ref == null && event !== 'phx_error' && event !== 'phx_close' && !event.startsWith('chan_reply_')) {
      if (!opts.expectName || event === opts.expectName) pushes++;
      emit({ event: 'push', topic, name: event, join_ref: joinRef || null, payload: printable(payload) });
      setImmediate(check);   // after the client's own bindings (e.g. Presence) ran
    }
    return payload;
  };
  channel.onError((reason) => emit({ event: 'channel_error', topic, reason: reason || null }));
  channel.onClose(() => emit({ event: 'channel_close', topic }));
  if (presence) {
    presence.onSync(() => {
      const users = {};
      presence.list((key, { metas }) => { users[key] = metas; });
      emit({ event: 'presence', users });
      check();
    });
  }

  const onReply = (status, response) => {
    emit({ event: 'reply', topic, name: pushEvent, status, response: printable(response) });
    replied = true;
    check();
  };
  channel.join()
    .receive('ok', (reply) => {
      joins++;
      emit({ event: 'join_ok', topic, join_ref: channel.joinRef(), reply: printable(reply) });
      check();
    })
    .receive('error', (reply) => {
      emit({ event: 'join_error', topic, reply: printable(reply) });
      if (withPush) fail('join refused', { topic });
      else finish(0);
    })
    .receive('timeout', () => fail('join timeout', { topic }));
}

// ---- run ----
if (opts.bad) fail(opts.bad);
else if (!scenario || !url || !scenarios[scenario]) fail('usage: phoenix_client.js <connect|join|push|heartbeat> <url> [args] [options]');
else {
  socket = new Socket(url, socketOpts);
  socket.onOpen(() => emit({ event: 'transport', name: socket.transportName(socket.transport), url: socket.endPointURL() }));
  socket.onError((error) => emit({ event: 'socket_error', reason: (error && (error.message || error.type)) || String(error) }));
  socket.onClose((e) => emit({ event: 'socket_close', code: e && e.code }));
  if (opts.trace) {
    socket.onMessage((m) => emit({ event: 'recv', join_ref: m.join_ref, ref: m.ref, topic: m.topic, name: m.event, payload: printable(m.payload) }));
  }
  scenarios[scenario]();
  if (!exiting) socket.connect();
}
