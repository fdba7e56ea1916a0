// What only a process shows of a basic run: exit codes as the shell sees
// them, `--` before the flags, --help and --version. The run's outcomes are
// in tests/engine/run.test.ts.
import assert from "node:assert/strict";
import { runCli } from "../support/world.ts";
import { withWorld } from "../support/basicWorld.ts";

Deno.test("--check exits 4 on drift and 0 when in step; -- before flags is accepted", async () => {
  await withWorld(
    { settings: { exclude: { usernames: ["ana*", "test*"] } } },
    async (world) => {
      const drift = await world.run(["--check", "--all"]);
      assert.equal(drift.code, 4, drift.stderr);
      const apply = await runCli([
        "--",
        "--settings",
        world.settingsPath,
        "--all",
        "--apply",
      ], {
        env: world.env,
      });
      assert.equal(apply.code, 0, apply.stderr);
      const clean = await world.run(["--check", "--all"]);
      // The email change waits for the user's confirmation: not drift to act on.
      assert.equal(clean.code, 0, clean.stdout);
    },
  );
});

Deno.test("bad usage exits 2", async () => {
  await withWorld({}, async (world) => {
    assert.equal((await world.run(["--offset", "-3"])).code, 2);
    assert.equal((await world.run(["--check", "--apply"])).code, 2);
    assert.equal((await world.run(["--no-such-flag"])).code, 2);
    const interactive = await world.run(["--interactive"]);
    assert.equal(interactive.code, 2);
    assert.match(interactive.stderr, /terminal/);
  });
});

Deno.test("--help and --version work", async () => {
  const help = await runCli(["--help"]);
  assert.equal(help.code, 0);
  for (
    const flag of [
      "--apply",
      "--user",
      "--batch-size",
      "--offset",
      "--check",
      "--json",
    ]
  ) {
    assert.ok(help.stdout.includes(flag), flag);
  }
  const version = await runCli(["--version"]);
  assert.equal(version.code, 0);
  assert.match(version.stdout, /\d+\.\d+\.\d+/);
});
