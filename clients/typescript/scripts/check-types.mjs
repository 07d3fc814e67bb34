// Fails when src/schema.d.ts is not what openapi-typescript generates from the API's schema
// (specs/001-backend-api-data/contracts/tasks.openapi.yaml, itself checked against /v1/schema by
// tasks/tests/test_schema.py). Fix: `npm run generate`, then commit src/schema.d.ts.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const schema = path.resolve(root, "../../specs/001-backend-api-data/contracts/tasks.openapi.yaml");
const committed = path.join(root, "src/schema.d.ts");
const dir = mkdtempSync(path.join(tmpdir(), "tasks-client-types-"));
try {
  const fresh = path.join(dir, "schema.d.ts");
  execFileSync(path.join(root, "node_modules/.bin/openapi-typescript"), [schema, "-o", fresh], {
    stdio: ["ignore", "ignore", "inherit"],
  });
  const want = readFileSync(fresh, "utf8");
  const have = readFileSync(committed, "utf8");
  if (want !== have) {
    const a = have.split("\n");
    const b = want.split("\n");
    const line = a.findIndex((l, i) => l !== b[i]);
    console.error(
      `src/schema.d.ts has drifted from ${path.relative(root, schema)} (first difference at line ${line + 1}):\n` +
        `  committed: ${JSON.stringify(a[line] ?? "<end of file>")}\n` +
        `  generated: ${JSON.stringify(b[line] ?? "<end of file>")}\n` +
        "Run `npm run generate` in clients/typescript and commit src/schema.d.ts.",
    );
    process.exit(1);
  }
  console.log("src/schema.d.ts matches the schema");
} finally {
  rmSync(dir, { recursive: true, force: true });
}
