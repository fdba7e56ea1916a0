// `deno task demo` exits 0 when it showed what it was built to show, errors
// included, and says so; a demo that broke exits non-zero.
import assert from "node:assert/strict";
import { demoCases } from "../doubles/scenarios.ts";
import type { LogRow } from "../support/world.ts";
import { demoVerdict } from "../demo.ts";

const demoScript = new URL("../demo.ts", import.meta.url).pathname;
const configFile = new URL("../../deno.json", import.meta.url).pathname;

Deno.test("deno task demo: the planted errors are explained and the demo exits 0", async () => {
  const dir = await Deno.makeTempDir({ prefix: "sync-demo-" });
  try {
    const output = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--config",
        configFile,
        "--allow-net",
        "--allow-read",
        "--allow-write",
        "--allow-env",
        "--allow-run",
        "--allow-sys",
        demoScript,
      ],
      cwd: dir,
      env: { NO_COLOR: "1" },
      stdin: "null",
    }).output();
    const stdout = new TextDecoder().decode(output.stdout);
    const stderr = new TextDecoder().decode(output.stderr);
    assert.equal(output.code, 0, stdout + stderr);
    // The CLI itself reported errors: the demo says they are planted.
    assert.match(stdout, /ERROR\/ERROR: username collision/);
    assert.match(
      stderr,
      /The 4 errors above \(a username collision, .*\) are part of the demo/,
    );
    assert.match(stderr, /the demo ran as intended/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

const row = (
  username: string,
  action: string,
  status: string,
  changed: Record<string, [string, string]> = {},
): LogRow => ({
  original_username: username,
  moodle_id: "9",
  action,
  status,
  message: `${action} ${status}`,
  fields: Object.keys(changed).join(";"),
  before: JSON.stringify(
    Object.fromEntries(Object.entries(changed).map(([f, [b]]) => [f, b])),
  ),
  after: JSON.stringify(
    Object.fromEntries(Object.entries(changed).map(([f, [, a]]) => [f, a])),
  ),
});

const planted = [
  row(demoCases.collidingSpaces, "ERROR", "ERROR"),
  row(demoCases.collidingUnderscore, "ERROR", "ERROR"),
  row(demoCases.malformed, "ERROR", "ERROR"),
  row(demoCases.bioTooLong, "ERROR", "ERROR"),
];
const drift = row(demoCases.nameDiffers, "UPDATE", "DRY_RUN", {
  name: ["Emma Wilson", "Emma Wilson-Clarke"],
});

Deno.test("demoVerdict: planted errors and the exit code they call for are the demo as intended", () => {
  const asIntended = demoVerdict({
    args: [],
    code: 1,
    rows: [...planted, drift],
  });
  assert.equal(asIntended._tag, "AsIntended");
  assert.equal(
    demoVerdict({ args: ["--check"], code: 4, rows: [...planted, drift] })
      ._tag,
    "AsIntended",
  );
  // One user, no error: exit 0.
  assert.equal(
    demoVerdict({ args: ["--user", "emma.wilson"], code: 0, rows: [drift] })
      ._tag,
    "AsIntended",
  );
});

Deno.test("demoVerdict: an unplanted error, a missing planted one, or a wrong exit code is a broken demo", () => {
  const broke = (verdict: ReturnType<typeof demoVerdict>, pattern: RegExp) => {
    assert.equal(verdict._tag, "Broke");
    assert.match(verdict._tag === "Broke" ? verdict.problem : "", pattern);
  };
  broke(
    demoVerdict({
      args: [],
      code: 1,
      rows: [...planted, row(demoCases.nameDiffers, "ERROR", "EXCEPTION")],
    }),
    /did not plant: emma\.wilson/,
  );
  broke(
    demoVerdict({ args: [], code: 1, rows: planted.slice(1) }),
    /were not: ana garcia/,
  );
  broke(
    demoVerdict({ args: [], code: 3, rows: [...planted, drift] }),
    /exited 3, where its log calls for 1/,
  );
  broke(
    demoVerdict({ args: ["--check"], code: 1, rows: [...planted, drift] }),
    /exited 1, where its log calls for 4/,
  );
  broke(demoVerdict({ args: [], code: 1, rows: undefined }), /no log/);
  // A usage error is the CLI's to explain; its code is passed on.
  assert.deepEqual(
    demoVerdict({ args: ["--offset", "-1"], code: 2, rows: [] }),
    {
      _tag: "Usage",
      code: 2,
    },
  );
});
