// A webhook receiver for the tests: verifies every delivery with the independent
// Standard Webhooks implementation (the `standardwebhooks` npm package, pinned in
// tools/package.json), not with tmai-pay's own code.
//
// Each path /<name> is an endpoint with its own secret and mode:
//   up   verify; 200 when the signature verifies, 400 otherwise
//   down 503 (the receiver is "down")
//   gone 410 (the endpoint no longer exists)
// Control (JSON): POST /_control {name, secret?, mode?}, POST /_clock {offset_ms} (the
// verifier's clock follows the service's test clock, or the chaos campaign's moved chain
// time; kept in the durable log too), GET /_state.
// Prints "listening <port>" once ready.
//
// Options (the chaos campaign uses them; the integration tests use none):
//   --port N      listen on a fixed port (default: any free one)
//   --log FILE    durable log: every control change and every verified delivery is
//                 appended as one JSON line (fsynced before the 200 is sent) and the file
//                 is replayed at start, so the receiver can be killed, stay down for
//                 minutes, come back, and still answer /_state with everything it got.
import fs from "node:fs";
import http from "node:http";
import { createRequire } from "node:module";

const require = createRequire(new URL("../../tools/package.json", import.meta.url));
const { Webhook } = require("standardwebhooks");

const realNow = Date.now.bind(Date);
let offsetMs = 0;
Date.now = () => realNow() + offsetMs;

const arg = (name) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : undefined;
};
const port = Number(arg("--port") ?? 0);
const logPath = arg("--log");

const endpoints = new Map();
function endpoint(name) {
  if (!endpoints.has(name)) endpoints.set(name, { secret: null, mode: "up", received: [], attempts: [], rejected: 0 });
  return endpoints.get(name);
}

let logFd = null;
function durable(entry) {
  if (logFd === null) return;
  fs.writeSync(logFd, JSON.stringify(entry) + "\n");
  fs.fsyncSync(logFd);
}
if (logPath) {
  if (fs.existsSync(logPath)) {
    for (const line of fs.readFileSync(logPath, "utf8").split("\n")) {
      if (!line.trim()) continue;
      let entry;
      try {
        entry = JSON.parse(line);
      } catch {
        continue; // a line cut by a kill mid-write
      }
      if (entry.clock !== undefined) {
        offsetMs = entry.clock.offset_ms;
        continue;
      }
      const e = endpoint(entry.name);
      if (entry.control) {
        if (entry.control.secret !== undefined) e.secret = entry.control.secret;
        if (entry.control.mode !== undefined) e.mode = entry.control.mode;
      } else if (entry.received) {
        e.received.push(entry.received);
      }
    }
  }
  logFd = fs.openSync(logPath, "a");
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    req.on("error", reject);
  });
}

function reply(res, status, body) {
  res.writeHead(status, { "content-type": typeof body === "string" ? "text/plain" : "application/json" });
  res.end(typeof body === "string" ? body : JSON.stringify(body));
}

const server = http.createServer(async (req, res) => {
  const body = await readBody(req);
  const path = new URL(req.url, "http://x").pathname;
  if (path === "/_control" && req.method === "POST") {
    const c = JSON.parse(body);
    const e = endpoint(c.name);
    if (c.secret !== undefined) e.secret = c.secret;
    if (c.mode !== undefined) e.mode = c.mode;
    durable({ name: c.name, control: { secret: c.secret, mode: c.mode } });
    return reply(res, 200, { ok: true });
  }
  if (path === "/_clock" && req.method === "POST") {
    offsetMs = JSON.parse(body).offset_ms;
    durable({ clock: { offset_ms: offsetMs } });
    return reply(res, 200, { ok: true });
  }
  if (path === "/_state" && req.method === "GET") {
    return reply(res, 200, Object.fromEntries(endpoints));
  }
  const e = endpoint(path.slice(1));
  e.attempts.push({ id: req.headers["webhook-id"], timestamp: req.headers["webhook-timestamp"], at: Date.now() });
  if (e.mode === "down") return reply(res, 503, "down for maintenance");
  if (e.mode === "gone") return reply(res, 410, "gone");
  try {
    const payload = new Webhook(e.secret).verify(body, req.headers);
    const received = { id: req.headers["webhook-id"], timestamp: Number(req.headers["webhook-timestamp"]), type: payload.type, body: payload };
    durable({ name: path.slice(1), received });
    e.received.push(received);
    return reply(res, 200, "ok");
  } catch (error) {
    e.rejected += 1;
    return reply(res, 400, `signature rejected: ${error.message}`);
  }
});

server.keepAliveTimeout = 60_000;
server.listen(port, "127.0.0.1", () => {
  process.stdout.write(`listening ${server.address().port}\n`);
});
