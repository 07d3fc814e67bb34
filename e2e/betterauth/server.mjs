// A real Better Auth server (email + password, `jwt` plugin, SQLite) for the
// Tasks API end-to-end test. Loopback only. See README.md.
//
//   BETTER_AUTH_SECRET=<32+ chars> PORT=4100 node server.mjs
//
// Prints exactly one line to stdout, `ready http://127.0.0.1:PORT`, once it
// accepts requests; everything else goes to stderr. Exits 0 on SIGTERM/SIGINT.
import http from "node:http";
import os from "node:os";
import path from "node:path";
import Database from "better-sqlite3";
import { betterAuth } from "better-auth";
import { toNodeHandler } from "better-auth/node";
import { jwt } from "better-auth/plugins/jwt";

const KEY_PAIR_CONFIGS = {
  EdDSA: { alg: "EdDSA", crv: "Ed25519" },
  ES256: { alg: "ES256" },
  ES512: { alg: "ES512" },
  PS256: { alg: "PS256", modulusLength: 2048 },
  RS256: { alg: "RS256", modulusLength: 2048 },
};

function fail(message) {
  process.stderr.write(`betterauth-e2e: ${message}\n`);
  process.exit(2);
}

function optionalSeconds(name) {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return undefined;
  const value = Number(raw);
  if (!Number.isInteger(value) || value <= 0) fail(`${name} must be a positive integer (seconds), got ${JSON.stringify(raw)}`);
  return value;
}

const portArg = process.argv[2] ?? process.env.PORT ?? "4100";
const requestedPort = Number(portArg);
if (!Number.isInteger(requestedPort) || requestedPort < 0 || requestedPort > 65535) fail(`bad port ${JSON.stringify(portArg)}`);

const secret = process.env.BETTER_AUTH_SECRET ?? "";
if (secret.length < 32) fail("BETTER_AUTH_SECRET must be set and at least 32 characters long");

const alg = process.env.JWT_ALG || "EdDSA";
const keyPairConfig = KEY_PAIR_CONFIGS[alg];
if (!keyPairConfig) fail(`JWT_ALG must be one of ${Object.keys(KEY_PAIR_CONFIGS).join(", ")}, got ${JSON.stringify(alg)}`);

const dbPath = process.env.AUTH_DB || path.join(os.tmpdir(), "betterauth-e2e.db");
const allowRotate = process.env.E2E_ALLOW_ROTATE === "1";

// Bind first, so PORT=0 works (the real port goes into baseURL and the ready line).
// Requests that arrive before Better Auth is ready get a 503.
let handler = (_req, res) => {
  res.writeHead(503, { "content-type": "text/plain" }).end("starting\n");
};
const server = http.createServer((req, res) => handler(req, res));
await new Promise((resolve, reject) => {
  server.once("error", reject);
  server.listen(requestedPort, "127.0.0.1", resolve);
});
const port = server.address().port;
const baseURL = `http://127.0.0.1:${port}`;

const db = new Database(dbPath);
const jwtOptions = {
  jwks: {
    keyPairConfig,
    // Real Better Auth rotation knobs, passed through when set (seconds).
    rotationInterval: optionalSeconds("JWT_ROTATION_INTERVAL"),
    gracePeriod: optionalSeconds("JWT_GRACE_PERIOD"),
  },
  // Token lifetime (Better Auth's default is "15m"); the e2e test shortens it to see expiry.
  ...(process.env.JWT_EXPIRATION_TIME ? { jwt: { expirationTime: process.env.JWT_EXPIRATION_TIME } } : {}),
};
const auth = betterAuth({
  appName: "tasks-api-e2e",
  baseURL,
  secret,
  trustedOrigins: [baseURL, ...(process.env.TRUSTED_ORIGINS ?? "").split(",").map((s) => s.trim()).filter(Boolean)],
  database: db,
  emailAndPassword: { enabled: true },
  plugins: [jwt(jwtOptions)],
  rateLimit: { enabled: false },
  telemetry: { enabled: false },
});
const ctx = await auth.$context;
await ctx.runMigrations();

// Rotation, test-only: mark every live signing key as expired *now*. This is the
// state Better Auth's own `jwks.rotationInterval` reaches when a key's interval
// runs out; from there Better Auth's code does the rest: the next signature
// mints a new key, and /jwks keeps listing the expired one until
// expiresAt + gracePeriod (30 days by default). We then mint the new key right
// away through Better Auth's server-only signJWT so the response can name it.
async function rotateKeys() {
  const now = new Date();
  const keys = await ctx.adapter.findMany({ model: "jwks" });
  const expired = [];
  for (const key of keys) {
    if (key.expiresAt && key.expiresAt <= now) continue;
    await ctx.adapter.update({
      model: "jwks",
      where: [{ field: "id", value: key.id }],
      update: { expiresAt: new Date(now.getTime() - 1) },
    });
    expired.push(key.id);
  }
  const { token } = await auth.api.signJWT({ body: { payload: { sub: "e2e-key-rotation" } } });
  const header = JSON.parse(Buffer.from(token.split(".")[0], "base64url").toString("utf8"));
  return { expired_kids: expired, new_kid: header.kid, alg: header.alg };
}

const authHandler = toNodeHandler(auth);
handler = (req, res) => {
  if (req.url === "/e2e/rotate-key") {
    if (!allowRotate) {
      res.writeHead(404, { "content-type": "text/plain" }).end("not found\n");
      return;
    }
    if (req.method !== "POST") {
      res.writeHead(405, { allow: "POST", "content-type": "text/plain" }).end("method not allowed\n");
      return;
    }
    rotateKeys().then(
      (body) => res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(body)),
      (err) => {
        process.stderr.write(`betterauth-e2e: rotation failed: ${err?.stack ?? err}\n`);
        res.writeHead(500, { "content-type": "text/plain" }).end("rotation failed\n");
      },
    );
    return;
  }
  authHandler(req, res);
};

let stopping = false;
function shutdown(signal) {
  if (stopping) return;
  stopping = true;
  process.stderr.write(`betterauth-e2e: ${signal}, shutting down\n`);
  server.close(() => {
    db.close();
    process.exit(0);
  });
  server.closeAllConnections();
  setTimeout(() => process.exit(0), 3000).unref();
}
process.on("SIGTERM", () => shutdown("SIGTERM"));
process.on("SIGINT", () => shutdown("SIGINT"));

process.stderr.write(`betterauth-e2e: alg=${alg} db=${dbPath} rotate-endpoint=${allowRotate ? "on" : "off"}\n`);
process.stdout.write(`ready ${baseURL}\n`);
