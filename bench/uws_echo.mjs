// uWebSockets echo server for the benchmark suite, through uWebSockets.js:
// the uWS C++ core (uSockets' epoll loop, uWS's parser) with Node bindings,
// from the npm package @trufflesuite/uws-js-unofficial, which ships the
// prebuilt add-on (the official uWebSockets.js is not on the npm registry).
// Each message costs a crossing into JavaScript and back, so this is the
// figure a Node user gets from uWS, not the C++ build's ceiling
// (bench/README.md, "Peers").
//
// usage: node uws_echo.mjs [--port P] [--deflate] [--broadcast]
//   --deflate    permessage-deflate with uWS's shared compressor (no
//                context takeover, as duplex's default)
//   --broadcast  publish every message to every open client (uWS pub/sub)
// Prints "listening PORT" once it listens on 127.0.0.1. Refuses to run on
// the package's pure-JavaScript fallback (that would be Node ws again).
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const args = process.argv.slice(2);
const opt = (name) => args.includes(name);
const pi = args.indexOf('--port');
const port = pi >= 0 ? Number(args[pi + 1]) : 9003;

const pkg = '@trufflesuite/uws-js-unofficial';
const addon = `${pkg}/binaries/uws_${process.platform}_${process.arch}_${process.versions.modules}.node`;
let uWS;
try {
  uWS = require(addon);
} catch (e) {
  console.error(`uws_echo: no native uWS add-on for this Node (${addon}): ${e.message.split('\n')[0]}`);
  process.exit(1);
}

const broadcast = opt('--broadcast');
const app = uWS.App();
app.ws('/*', {
  compression: opt('--deflate') ? uWS.SHARED_COMPRESSOR | uWS.SHARED_DECOMPRESSOR : uWS.DISABLED,
  maxPayloadLength: 16 * 1024 * 1024,
  maxBackpressure: 64 * 1024 * 1024,
  idleTimeout: 0,
  open: (ws) => { if (broadcast) ws.subscribe('all'); },
  message: (ws, data, isBinary) => {
    if (broadcast) app.publish('all', data, isBinary);
    else ws.send(data, isBinary, true);
  },
});
app.listen('127.0.0.1', port, (token) => {
  if (!token) {
    console.error(`uws_echo: cannot listen on 127.0.0.1:${port}`);
    process.exit(1);
  }
  console.log(`listening ${uWS.us_socket_local_port(token)}`);
  console.error(`uws_echo: uWebSockets.js native add-on ${addon}`);
});
process.on('SIGTERM', () => process.exit(0));
