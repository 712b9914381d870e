'use strict';
// Minimal Faye server for the interoperability tests.
//
//   node faye_server.js PORT [TIMEOUT_SECONDS]
//
// Listens on 127.0.0.1:PORT (0 picks a free port), serves Bayeux at /faye (long polling and
// websocket) and prints "LISTENING <port>" once ready. TIMEOUT_SECONDS (argv, else the
// FAYE_TIMEOUT environment variable, else 2) is how long a /meta/connect is held open.
// SIGTERM and SIGINT close every connection and exit with status 0. With WATCH_STDIN=1 the
// server also exits when its standard input closes, so it cannot outlive a killed test run.

const http = require('http');
const faye = require('faye');

const port = Number(process.argv[2] || 0);
const timeout = Number(process.argv[3] || process.env.FAYE_TIMEOUT || 2);

const bayeux = new faye.NodeAdapter({ mount: '/faye', timeout: timeout });
const server = http.createServer((request, response) => {
  response.writeHead(404, { 'Content-Type': 'text/plain' });
  response.end('not found\n');
});
bayeux.attach(server);

const sockets = new Set();
server.on('connection', (socket) => {
  sockets.add(socket);
  socket.on('close', () => sockets.delete(socket));
});

server.listen(port, '127.0.0.1', () => {
  process.stdout.write(`LISTENING ${server.address().port}\n`);
});

let closing = false;
function shutdown() {
  if (closing) return;
  closing = true;
  server.close(() => process.exit(0));
  for (const socket of sockets) socket.destroy();
  bayeux.close();
  setTimeout(() => process.exit(0), 1000).unref();
}

process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
if (process.env.WATCH_STDIN === '1') {
  process.stdin.on('end', shutdown);
  process.stdin.resume();
}
