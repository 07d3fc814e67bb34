// The client's own behaviour against a scripted fetch: token caching, 401 refresh, retries,
// idempotency keys, If-Match and typed errors. No server needed.
import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { TasksApiError, TokenUnavailableError, createTasksClient, isSafeToRetry, parseRetryAfter } from "../src/index.js";

const API = "http://api.test";

function jwt(claims: Record<string, unknown>): string {
  const part = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url");
  return `${part({ alg: "EdDSA", kid: "k" })}.${part(claims)}.c2lnbmF0dXJl`;
}

function tokenValidFor(seconds: number, sub = "user_a"): string {
  const now = Math.floor(Date.now() / 1000);
  return jwt({ sub, iat: now, exp: now + seconds, name: "Zoë" });
}

const TASK = {
  id: "0f8fad5b-d9cb-469f-a165-70867728950e",
  user_id: "user_a",
  title: "Buy milk",
  details: "",
  completed: false,
  created_at: "2026-01-09T10:00:00.123456Z",
  updated_at: "2026-01-09T10:00:00.123456Z",
  completed_at: null,
  position: "a0",
};

function json(status: number, body: unknown, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), { status, headers: { "Content-Type": "application/json", ...headers } });
}

function apiError(status: number, code: string, headers: Record<string, string> = {}): Response {
  const type = status === 422 ? "validation_error" : status >= 500 ? "server_error" : "client_error";
  return json(status, { type, errors: [{ code, detail: `detail of ${code}`, attr: null }] }, headers);
}

interface Seen {
  method: string;
  url: string;
  headers: Headers;
  body: string;
}

/** A fetch that answers from `script` in turn and records what it was sent. */
function scripted(...script: Array<Response | ((request: Request) => Response)>) {
  const seen: Seen[] = [];
  const fetch = async (request: Request): Promise<Response> => {
    seen.push({ method: request.method, url: request.url, headers: request.headers, body: await request.text() });
    const next = script.shift();
    assert.ok(next, `unexpected request ${request.method} ${request.url}`);
    return typeof next === "function" ? next(request) : next;
  };
  return { fetch, seen };
}

function counter(...tokens: string[]) {
  const state = { calls: 0 };
  const getToken = async () => {
    state.calls++;
    await new Promise((resolve) => setTimeout(resolve, 5));
    return tokens[Math.min(state.calls, tokens.length) - 1]!;
  };
  return { getToken, state };
}

describe("tokens", () => {
  it("fetches one token for concurrent calls and reuses it until shortly before exp", async () => {
    const token = tokenValidFor(900);
    const { getToken, state } = counter(token);
    const { fetch, seen } = scripted(
      ...Array.from({ length: 6 }, () => json(200, { results: [], next: null, previous: null })),
    );
    const client = createTasksClient({ baseUrl: API, getToken, fetch });
    await Promise.all([client.listTasks(), client.listTasks(), client.listTasks(), client.listLists()]);
    await client.listTasks();
    await client.listLists();
    assert.equal(state.calls, 1);
    assert.ok(seen.every((s) => s.headers.get("Authorization") === `Bearer ${token}`));
  });

  it("reuses a short-lived token for half its lifetime", async () => {
    const { getToken, state } = counter(tokenValidFor(20), tokenValidFor(900));
    const { fetch } = scripted(
      ...Array.from({ length: 2 }, () => json(200, { results: [], next: null, previous: null })),
    );
    const client = createTasksClient({ baseUrl: API, getToken, fetch, refreshMarginSeconds: 30 });
    // A 20 s token: the margin is capped at half its lifetime, so it is reused for ~10 s.
    await client.listTasks();
    await client.listTasks();
    assert.equal(state.calls, 1);
  });

  it("refreshes a token that expires within the margin", async () => {
    const now = Math.floor(Date.now() / 1000);
    // Issued 15 minutes ago, expires in 20 s: inside the 30 s margin, so never reused.
    const old = jwt({ sub: "u", iat: now - 880, exp: now + 20 });
    const { getToken, state } = counter(old, old, tokenValidFor(900));
    const { fetch } = scripted(
      ...Array.from({ length: 4 }, () => json(200, { results: [], next: null, previous: null })),
    );
    const client = createTasksClient({ baseUrl: API, getToken, fetch });
    await client.listTasks();
    await client.listTasks();
    await client.listTasks();
    await client.listTasks();
    assert.equal(state.calls, 3);
  });

  it("on a 401 drops the token and retries once with a fresh one", async () => {
    const stale = tokenValidFor(900, "old");
    const fresh = tokenValidFor(900, "new");
    const { getToken, state } = counter(stale, fresh);
    const { fetch, seen } = scripted(apiError(401, "token_not_valid"), json(201, TASK, { ETag: '"1"' }));
    const client = createTasksClient({ baseUrl: API, getToken, fetch });
    const { data, etag } = await client.createTask({ title: "Buy milk" });
    assert.equal(data.id, TASK.id);
    assert.equal(etag, '"1"');
    assert.equal(state.calls, 2);
    assert.deepEqual(
      seen.map((s) => s.headers.get("Authorization")),
      [`Bearer ${stale}`, `Bearer ${fresh}`],
    );
    // The create's key is the same on the retry.
    assert.ok(seen[0]!.headers.get("Idempotency-Key"));
    assert.equal(seen[0]!.headers.get("Idempotency-Key"), seen[1]!.headers.get("Idempotency-Key"));
    assert.equal(seen[1]!.body, JSON.stringify({ title: "Buy milk" }));
  });

  it("a second 401 is thrown as a typed error", async () => {
    const { getToken, state } = counter(tokenValidFor(900));
    const { fetch, seen } = scripted(apiError(401, "token_not_valid"), apiError(401, "token_not_valid"));
    const client = createTasksClient({ baseUrl: API, getToken, fetch });
    await assert.rejects(client.listTasks(), (error: unknown) => {
      assert.ok(error instanceof TasksApiError);
      assert.equal(error.status, 401);
      assert.equal(error.code, "token_not_valid");
      return true;
    });
    assert.equal(seen.length, 2);
    assert.equal(state.calls, 2);
  });

  it("accepts Better Auth's { data: { token } } and says when there is no session", async () => {
    const token = tokenValidFor(900);
    const { fetch, seen } = scripted(json(200, { results: [], next: null, previous: null }));
    const client = createTasksClient({ baseUrl: API, getToken: async () => ({ data: { token }, error: null }), fetch });
    await client.listTasks();
    assert.equal(seen[0]!.headers.get("Authorization"), `Bearer ${token}`);

    const signedOut = createTasksClient({
      baseUrl: API,
      getToken: async () => ({ data: null, error: { status: 401, message: "Unauthorized" } }),
      fetch,
    });
    await assert.rejects(signedOut.listTasks(), TokenUnavailableError);
  });

  it("clearToken() forgets the cached token", async () => {
    const { getToken, state } = counter(tokenValidFor(900), tokenValidFor(900, "b"));
    const { fetch } = scripted(
      json(200, { results: [], next: null, previous: null }),
      json(200, { results: [], next: null, previous: null }),
    );
    const client = createTasksClient({ baseUrl: API, getToken, fetch });
    await client.listTasks();
    client.clearToken();
    await client.listTasks();
    assert.equal(state.calls, 2);
  });

  it("a refresh in flight when clearToken() is called is not cached", async () => {
    let release!: (token: string) => void;
    let calls = 0;
    const getToken = () => {
      calls++;
      return calls === 1 ? new Promise<string>((resolve) => (release = resolve)) : tokenValidFor(900, "bob");
    };
    const { fetch, seen } = scripted(
      json(200, { results: [], next: null, previous: null }),
      json(200, { results: [], next: null, previous: null }),
    );
    const client = createTasksClient({ baseUrl: API, getToken, fetch });
    const first = client.listTasks();
    await new Promise((resolve) => setTimeout(resolve, 5));
    client.clearToken(); // signed out while alice's token was on its way
    release(tokenValidFor(900, "alice"));
    await first;
    await client.listTasks();
    assert.equal(calls, 2);
    assert.notEqual(seen[0]!.headers.get("Authorization"), seen[1]!.headers.get("Authorization"));
  });
});

describe("retries", () => {
  it("retries a 429 after Retry-After, with the same Idempotency-Key", async () => {
    const { getToken } = counter(tokenValidFor(900));
    const { fetch, seen } = scripted(
      apiError(429, "throttled", { "Retry-After": "0" }),
      apiError(503, "write_outcome_unknown", { "Retry-After": "0" }),
      json(201, { ...TASK, id: "5d1c9b2f-0000-4000-8000-000000000001", title: "Groceries", is_default: false }, { ETag: '"1"' }),
    );
    const retries: number[] = [];
    const client = createTasksClient({ baseUrl: API, getToken, fetch, onRetry: ({ attempt }) => retries.push(attempt) });
    const { data } = await client.createList({ title: "Groceries" });
    assert.equal(data.title, "Groceries");
    const keys = seen.map((s) => s.headers.get("Idempotency-Key"));
    assert.equal(new Set(keys).size, 1);
    assert.match(keys[0]!, /^[0-9a-f-]{36}$/);
    assert.deepEqual(retries, [1, 2]);
  });

  it("uses the caller's Idempotency-Key", async () => {
    const { getToken } = counter(tokenValidFor(900));
    const { fetch, seen } = scripted(json(201, TASK));
    const client = createTasksClient({ baseUrl: API, getToken, fetch });
    await client.createTask({ title: "Buy milk" }, { idempotencyKey: "draft-42" });
    assert.equal(seen[0]!.headers.get("Idempotency-Key"), "draft-42");
  });

  it("gives up after maxAttempts and surfaces retryAfter", async () => {
    const { getToken } = counter(tokenValidFor(900));
    const { fetch, seen } = scripted(
      apiError(503, "database_unavailable", { "Retry-After": "0" }),
      apiError(503, "database_unavailable", { "Retry-After": "0" }),
      apiError(503, "database_unavailable", { "Retry-After": "0" }),
    );
    const client = createTasksClient({ baseUrl: API, getToken, fetch });
    await assert.rejects(client.getTask(TASK.id), (error: unknown) => {
      assert.ok(error instanceof TasksApiError);
      assert.equal(error.status, 503);
      assert.equal(error.type, "server_error");
      assert.equal(error.code, "database_unavailable");
      assert.equal(error.retryAfter, 0);
      return true;
    });
    assert.equal(seen.length, 3);
  });

  it("never retries a toggle whose outcome is unknown, retries one that was not applied", async () => {
    const { getToken } = counter(tokenValidFor(900));
    const unknown = scripted(apiError(503, "write_outcome_unknown", { "Retry-After": "0" }));
    const client = createTasksClient({ baseUrl: API, getToken, fetch: unknown.fetch });
    await assert.rejects(client.toggleTask(TASK.id), (e: unknown) => e instanceof TasksApiError && e.code === "write_outcome_unknown");
    assert.equal(unknown.seen.length, 1);

    const notApplied = scripted(
      apiError(503, "database_unavailable", { "Retry-After": "0" }),
      apiError(429, "throttled", { "Retry-After": "0" }),
      json(200, { ...TASK, completed: true }, { ETag: '"2"' }),
    );
    const again = createTasksClient({ baseUrl: API, getToken, fetch: notApplied.fetch });
    const { data, etag } = await again.toggleTask(TASK.id, { etag: '"1"' });
    assert.equal(data.completed, true);
    assert.equal(etag, '"2"');
    assert.deepEqual(notApplied.seen.map((s) => s.headers.get("If-Match")), ['"1"', '"1"', '"1"']);
    assert.equal(notApplied.seen[0]!.headers.get("Idempotency-Key"), null);
  });

  it("never retries other statuses, nor a Retry-After longer than allowed", async () => {
    const { getToken } = counter(tokenValidFor(900));
    const { fetch, seen } = scripted(
      apiError(500, "error"),
      apiError(429, "throttled", { "Retry-After": "45" }),
    );
    const client = createTasksClient({ baseUrl: API, getToken, fetch, maxRetryDelaySeconds: 30 });
    await assert.rejects(client.listTasks(), (e: unknown) => e instanceof TasksApiError && e.status === 500);
    await assert.rejects(client.listTasks(), (e: unknown) => e instanceof TasksApiError && e.retryAfter === 45);
    assert.equal(seen.length, 2);
  });

  it("stops waiting when the caller aborts", async () => {
    const { getToken } = counter(tokenValidFor(900));
    const { fetch } = scripted(apiError(429, "throttled", { "Retry-After": "10" }));
    const client = createTasksClient({ baseUrl: API, getToken, fetch });
    const controller = new AbortController();
    const started = Date.now();
    setTimeout(() => controller.abort(new Error("left the page")), 20);
    await assert.rejects(client.listTasks({}, { signal: controller.signal }), /left the page/);
    assert.ok(Date.now() - started < 2000);
  });

  it("knows which requests are safe to repeat", () => {
    assert.equal(isSafeToRetry("GET", false, null), true);
    assert.equal(isSafeToRetry("PATCH", false, "write_outcome_unknown"), false);
    assert.equal(isSafeToRetry("PATCH", false, "database_unavailable"), true);
    assert.equal(isSafeToRetry("POST", true, "write_outcome_unknown"), true);
    assert.equal(isSafeToRetry("POST", false, null), false);
    assert.equal(parseRetryAfter("5"), 5);
    assert.equal(parseRetryAfter(null), null);
    assert.equal(parseRetryAfter(new Date(Date.now() - 1000).toUTCString()), 0);
  });
});

describe("requests and errors", () => {
  it("serialises the list filters and sends If-Match", async () => {
    const { getToken } = counter(tokenValidFor(900));
    const { fetch, seen } = scripted(
      json(200, { results: [TASK], next: null, previous: null }),
      apiError(412, "precondition_failed"),
    );
    const client = createTasksClient({ baseUrl: `${API}/`, getToken, fetch });
    const listId = "5d1c9b2f-0000-4000-8000-000000000001";
    await client.listTasks({ list: listId, parent: "none", ordering: "position", priority: ["high", "low"] });
    const url = new URL(seen[0]!.url);
    assert.equal(url.pathname, "/v1/tasks");
    assert.equal(url.searchParams.get("list"), listId);
    assert.equal(url.searchParams.get("parent"), "none");
    assert.deepEqual(url.searchParams.getAll("priority"), ["high", "low"]);

    await assert.rejects(client.updateTask(TASK.id, { title: "x" }, { etag: '"7"' }), (error: unknown) => {
      assert.ok(error instanceof TasksApiError);
      assert.equal(error.status, 412);
      assert.equal(error.type, "client_error");
      assert.ok(error.hasCode("precondition_failed"));
      assert.deepEqual(error.errors, [{ code: "precondition_failed", detail: "detail of precondition_failed", attr: null }]);
      return true;
    });
    assert.equal(seen[1]!.method, "PATCH");
    assert.equal(seen[1]!.headers.get("If-Match"), '"7"');
    assert.equal(seen[1]!.headers.get("Content-Type"), "application/json");
  });

  it("wraps an error that is not the API's shape", async () => {
    const { getToken } = counter(tokenValidFor(900));
    const { fetch } = scripted(new Response("<html>Bad gateway</html>", { status: 502 }));
    const client = createTasksClient({ baseUrl: API, getToken, fetch });
    await assert.rejects(client.deleteTask(TASK.id), (error: unknown) => {
      assert.ok(error instanceof TasksApiError);
      assert.equal(error.type, "server_error");
      assert.equal(error.code, "http_502");
      return true;
    });
  });

  it("deleteTask resolves on 204; the raw client shares auth and retries", async () => {
    const token = tokenValidFor(900);
    const { getToken, state } = counter(token);
    const { fetch, seen } = scripted(
      new Response(null, { status: 204 }),
      apiError(503, "database_unavailable", { "Retry-After": "0" }),
      json(200, { total: 1, open: 1, completed: 0, overdue: 0, due_today: 0, by_priority: {} }),
    );
    const client = createTasksClient({ baseUrl: API, getToken, fetch });
    const deleted = await client.deleteTask(TASK.id);
    assert.equal(deleted.response.status, 204);
    const { data, error } = await client.raw.GET("/v1/tasks/stats", { params: { query: {} } });
    assert.equal(error, undefined);
    assert.equal(data?.total, 1);
    assert.equal(state.calls, 1);
    assert.equal(seen[2]!.headers.get("Authorization"), `Bearer ${token}`);
  });
});
