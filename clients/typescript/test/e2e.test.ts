// End to end: a real Better Auth server issues the JWT, the real API (gunicorn, JWKS mode) answers,
// and every call goes through the client. `./run-e2e.sh` starts both and sets
// TASKS_API_URL and BETTER_AUTH_URL; without them this test is skipped (unless REQUIRE_E2E=1).
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { before, describe, it } from "node:test";

import { TasksApiError, createTasksClient, type AllChanges, type TokenResult } from "../src/index.js";

const API = process.env.TASKS_API_URL;
const AUTH = process.env.BETTER_AUTH_URL;
const skip = !API || !AUTH;
if (skip && process.env.REQUIRE_E2E === "1") {
  throw new Error("REQUIRE_E2E=1 but TASKS_API_URL or BETTER_AUTH_URL is not set: run ./run-e2e.sh");
}

/** Sign up with Better Auth (email + password) as a browser would; return the session cookie. */
async function signUp(email: string): Promise<string> {
  const response = await fetch(`${AUTH}/api/auth/sign-up/email`, {
    method: "POST",
    // Better Auth refuses cookie-setting POSTs whose Origin is not trusted.
    headers: { "Content-Type": "application/json", Origin: AUTH! },
    body: JSON.stringify({ email, password: "correct horse battery staple", name: "Ada" }),
  });
  assert.equal(response.status, 200, await response.clone().text());
  const cookie = response.headers
    .getSetCookie()
    .map((c) => c.split(";")[0]!)
    .find((c) => c.startsWith("better-auth.session_token="));
  assert.ok(cookie, "sign-up set no session cookie");
  return cookie;
}

/** What `authClient.token()` does: GET /api/auth/token with the session, `{ data, error }`. */
function tokenSource(cookie: string) {
  const counter = { calls: 0 };
  const getToken = async (): Promise<TokenResult> => {
    counter.calls++;
    const response = await fetch(`${AUTH}/api/auth/token`, { headers: { Cookie: cookie } });
    if (!response.ok) return { data: null, error: { status: response.status } };
    return { data: (await response.json()) as { token: string }, error: null };
  };
  return { getToken, counter };
}

/** Follow the sync feed from `since` until `has_more` is false. */
async function syncAll(client: ReturnType<typeof createTasksClient>, since?: string) {
  const lists: AllChanges["lists"] = [];
  const tasks: AllChanges["tasks"] = [];
  let token = since;
  for (;;) {
    const { data } = await client.changes(token, { pageSize: 2 });
    lists.push(...data.lists);
    tasks.push(...data.tasks);
    token = data.next_since;
    if (!data.has_more) return { lists, tasks, since: token };
  }
}

describe("the client against Better Auth and the API", { skip: skip && "TASKS_API_URL / BETTER_AUTH_URL not set" }, () => {
  let cookie: string;
  before(async () => {
    cookie = await signUp(`ada-${randomUUID()}@example.com`);
  });

  it("creates a list, tasks and a subtask, syncs, and gets a typed 412 on a stale ETag", async () => {
    const { getToken, counter } = tokenSource(cookie);
    const tasks = createTasksClient({ baseUrl: API!, getToken });

    // A list, and tasks in it.
    const created = await tasks.createList({ title: "Groceries" });
    assert.equal(created.response.status, 201);
    assert.ok(created.etag);
    assert.match(created.response.headers.get("Location") ?? "", new RegExp(`/v1/lists/${created.data.id}$`));
    const list = created.data;
    assert.equal(list.is_default, false);

    const milk = await tasks.createTask({ title: "Milk", list_id: list.id, priority: "high" });
    const bread = await tasks.createTask({ title: "Bread", list_id: list.id, due_at: "2030-01-31" });
    const wholeWheat = await tasks.createTask({ title: "Whole wheat", parent_id: bread.data.id });
    assert.equal(wholeWheat.data.list_id, list.id, "a subtask is in its parent's list");
    assert.equal(wholeWheat.data.parent_id, bread.data.id);
    assert.ok(milk.etag);

    // Filters: the list's top level, and a task's subtasks.
    const top = await tasks.listTasks({ list: list.id, parent: "none", ordering: "position" });
    assert.deepEqual(new Set(top.data.results.map((t) => t.title)), new Set(["Milk", "Bread"]));
    const children = await tasks.listTasks({ parent: bread.data.id });
    assert.deepEqual(children.data.results.map((t) => t.id), [wholeWheat.data.id]);

    const lists = await tasks.listLists();
    assert.deepEqual(lists.data.results.map((l) => [l.title, l.is_default]), [["Tasks", true], ["Groceries", false]]);

    // Sync from scratch: everything, then nothing new.
    const first = await syncAll(tasks);
    assert.ok(first.lists.some((l) => l.id === list.id && !l.deleted));
    assert.deepEqual(
      new Set(first.tasks.map((t) => t.id)),
      new Set([milk.data.id, bread.data.id, wholeWheat.data.id]),
    );
    const quiet = await tasks.changes(first.since);
    assert.deepEqual([quiet.data.lists.length, quiet.data.tasks.length, quiet.data.has_more], [0, 0, false]);

    // Conditional writes: the current ETag works, the old one is a typed 412 and changes nothing.
    const renamed = await tasks.updateTask(milk.data.id, { title: "Oat milk" }, { etag: milk.etag });
    assert.equal(renamed.data.title, "Oat milk");
    assert.notEqual(renamed.etag, milk.etag);
    await assert.rejects(tasks.updateTask(milk.data.id, { title: "Cow milk" }, { etag: milk.etag }), (error: unknown) => {
      assert.ok(error instanceof TasksApiError, String(error));
      assert.equal(error.status, 412);
      assert.equal(error.type, "client_error");
      assert.equal(error.code, "precondition_failed");
      assert.equal(error.errors[0]!.attr, null);
      assert.ok(error.requestId, "X-Request-ID is on every answer");
      return true;
    });
    assert.equal((await tasks.getTask(milk.data.id)).data.title, "Oat milk");

    // Completing the parent completes its subtask; moving and deleting show up in the feed.
    const toggled = await tasks.toggleTask(bread.data.id, { etag: bread.etag });
    assert.equal(toggled.data.completed, true);
    await tasks.moveTask(milk.data.id, { after: bread.data.id });
    await tasks.deleteTask(milk.data.id, { etag: (await tasks.getTask(milk.data.id)).etag });
    const later = await syncAll(tasks, first.since);
    const byId = new Map(later.tasks.map((t) => [t.id, t]));
    assert.equal(byId.get(milk.data.id)?.deleted, true);
    const sub = byId.get(wholeWheat.data.id);
    assert.ok(sub && !sub.deleted && sub.completed === true, "the subtask was completed with its parent");

    // A retried create (same Idempotency-Key) is replayed, not created twice.
    const key = randomUUID();
    const once = await tasks.createTask({ title: "Eggs", list_id: list.id }, { idempotencyKey: key });
    const twice = await tasks.createTask({ title: "Eggs", list_id: list.id }, { idempotencyKey: key });
    assert.equal(twice.data.id, once.data.id);
    assert.equal(twice.response.headers.get("Idempotent-Replayed"), "true");

    // The raw typed client shares the token and the retries.
    const stats = await tasks.raw.GET("/v1/tasks/stats", { params: { query: { list: list.id } } });
    assert.equal(stats.response.status, 200);
    assert.equal(stats.data?.total, 3); // Bread, its subtask, Eggs (Milk was deleted)

    // About twenty calls, one token.
    assert.equal(counter.calls, 1);
  });

  it("replaces a token the API refuses and retries once", async () => {
    const real = tokenSource(cookie);
    let calls = 0;
    const tasks = createTasksClient({
      baseUrl: API!,
      // First a token the API cannot verify (as after a sign-out elsewhere), then a real one.
      getToken: async () => (++calls === 1 ? "not.a.jwt" : real.getToken()),
    });
    const { data } = await tasks.listLists();
    assert.ok(data.results.length >= 1);
    assert.equal(calls, 2);
  });

  it("surfaces a 401 as a typed error when no token works", async () => {
    const tasks = createTasksClient({ baseUrl: API!, getToken: () => "not.a.jwt" });
    await assert.rejects(tasks.listTasks(), (error: unknown) => {
      assert.ok(error instanceof TasksApiError);
      assert.equal(error.status, 401);
      assert.equal(error.code, "token_not_valid");
      return true;
    });
  });
});
