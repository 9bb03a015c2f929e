// A Socket.IO 4 echo server for bench/fallback/bench.mjs: every 'm' event is
// emitted back to its sender unchanged. Long-polling and WebSocket are both
// allowed; the client picks (bench.mjs forces one). No compression either
// way (httpCompression off, perMessageDeflate off: loopback gains nothing
// from it and duplex compresses nothing on a session), so this is Socket.IO
// at its cheapest.
//
// usage: node bench/fallback/sio_server.mjs --port P
import { createServer } from 'node:http';
import { Server } from 'socket.io';

const args = process.argv.slice(2);
const port = Number(args[args.indexOf('--port') + 1] || 0);

const http = createServer();
const io = new Server(http, {
  transports: ['polling', 'websocket'],
  httpCompression: false,
  perMessageDeflate: false,
  serveClient: false,
  cors: { origin: '*' },
});
io.on('connection', (socket) => {
  socket.on('m', (data) => socket.emit('m', data));
});
http.listen(port, '127.0.0.1', () => {
  console.log(`listening ${http.address().port}`);
});
const stop = () => { io.close(); http.close(); process.exit(0); };
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
