// The Node.js baseline for bench/web/compare.sh: a `ws` echo server on one port, with the same
// /broadcast endpoint as athanor-hello (GET /broadcast?text=X sends X to every client that joined
// with ?join=1). Run: NODE_PATH=tests/web/js/node_modules node bench/web/ws_echo_server.js PORT
'use strict';
const http = require('http');
const { WebSocketServer } = require('ws');

const port = Number(process.argv[2] || 4001);
const members = new Set();
const server = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://x');
  if (url.pathname === '/broadcast') {
    const text = url.searchParams.get('text') || 'ping';
    for (const ws of members) ws.send(text);
    res.end(String(members.size));
    return;
  }
  res.statusCode = 404;
  res.end('Not Found');
});
const wss = new WebSocketServer({ server, perMessageDeflate: false });
wss.on('connection', (ws, req) => {
  if (new URL(req.url, 'http://x').searchParams.get('join') === '1') members.add(ws);
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  ws.on('close', () => members.delete(ws));
});
server.listen(port, '127.0.0.1', () => console.error('node ws echo server on ' + port));
