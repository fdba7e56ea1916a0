// --json: stdout holds JSON objects and nothing else, whatever the log level,
// and a run that fails still ends with a summary object saying why.
import assert from "node:assert/strict";
import { discourseUser, moodleUser } from "../doubles/scenarios.ts";
import { auditLogs, withWorld, type World } from "../support/world.ts";
import { auditColumns } from "../../src/audit/AuditLog.ts";

const withSmallWorld = (body: (world: World) => Promise<void>) =>
  withWorld({
    moodleUsers: [
      moodleUser(2, "ana", { city: "Lima", country: "PE" }),
      moodleUser(3, "bea", { city: "Quito", country: "EC" }),
    ],
    forumUsers: [discourseUser(2, "ana"), discourseUser(3, "bea")],
    tuning: { discourse: { retries: 2, retryDelaySeconds: 0.01 } },
  }, body);

/** Every stdout line as JSON: fails on any line that is not. */
const jsonLines = (stdout: string): Array<Record<string, unknown>> =>
  stdout.trim().split("\n").map((line) => {
    try {
      return JSON.parse(line);
    } catch {
      assert.fail(`not JSON on stdout: ${line}`);
    }
  });

Deno.test("--json --log-level debug: the debug lines go to stderr, stdout stays JSON", async () => {
  await withSmallWorld(async (world) => {
    // A retried 502 is what the client logs at debug level.
    world.discourse.inject({ kind: "5xx", count: 1, path: /^\/u\/ana\.json$/ });
    const result = await world.engine([
      "--all",
      "--json",
      "--log-level",
      "debug",
    ]);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stderr, /level=DEBUG/);
    const lines = jsonLines(result.stdout);
    assert.equal(lines.at(-1)?.type, "summary");
    assert.equal(lines.at(-1)?.exit_code, 0);
    assert.equal(lines.at(-1)?.error, null);
  });
});

Deno.test("a fatal run with --json still prints its summary object, with the error and the exit code", async () => {
  await withSmallWorld(async (world) => {
    // Moodle refuses the token: the run stops before any user.
    const moodle = await world.engine(["--all", "--json"], {
      MOODLE_TOKEN: "not-the-token",
    });
    assert.equal(moodle.code, 3, moodle.stderr);
    const [failed] = jsonLines(moodle.stdout);
    assert.equal(failed.type, "summary");
    assert.equal(failed.exit_code, 3);
    assert.match(String(failed.error), /Moodle/);
    assert.doesNotMatch(moodle.stdout, /not-the-token/);

    // The forum refuses the key: the run stops at its first user.
    const forum = await world.engine(["--all", "--json", "--apply"], {
      DISCOURSE_API_KEY: "not-the-key",
    });
    assert.equal(forum.code, 3, forum.stderr);
    const summary = jsonLines(forum.stdout).at(-1);
    assert.equal(summary?.type, "summary");
    assert.equal(summary?.exit_code, 3);
    assert.match(String(summary?.error), /key|credentials|rejected/i);

    // Usage errors too: nothing contacted, a summary all the same.
    const usage = await world.engine(["--all", "--json", "--offset", "-1"]);
    assert.equal(usage.code, 2, usage.stderr);
    assert.deepEqual(jsonLines(usage.stdout), [{
      type: "summary",
      error: "--offset must be 0 or more, not -1",
      exit_code: 2,
    }]);
  });
});

Deno.test("revert --json: one object a row with the log's columns, then a summary object like the sync's", async () => {
  await withSmallWorld(async (world) => {
    const applied = await world.engine(["--all", "--apply"]);
    assert.equal(applied.code, 0, applied.stderr);
    const log = (await auditLogs(world.dir)).find((p) =>
      /_apply_\d{8}_\d{6}\.csv$/.test(p)
    );
    assert.ok(log, "no apply log");

    const dry = await world.engine(["revert", log, "--json"]);
    assert.equal(dry.code, 0, dry.stderr);
    const lines = jsonLines(dry.stdout);
    const rows = lines.slice(0, -1);
    // Users finish in any order under load: the rows are compared as a set.
    assert.deepEqual(
      rows.map((r) => [r.original_username, r.status]).sort(),
      [["ana", "DRY_RUN"], ["bea", "DRY_RUN"]],
    );
    for (const row of rows) {
      assert.deepEqual(Object.keys(row), [...auditColumns]);
      assert.match(String(row.message), /^would put back /);
    }
    const summary = lines.at(-1);
    assert.equal(summary?.type, "summary");
    assert.equal(summary?.command, "revert");
    assert.equal(summary?.mode, "dryrun");
    assert.equal(summary?.rows, 2);
    assert.equal(summary?.considered, 2);
    assert.equal(summary?.pending_changes, 2);
    assert.deepEqual(summary?.counts, { "UPDATE/DRY_RUN": 2 });
    assert.equal(summary?.failures, 0);
    assert.equal(summary?.exit_code, 0);
    assert.equal(summary?.error, null);
    // The keys a script reads from a sync's summary are there too.
    const sync = jsonLines((await world.engine(["--all", "--json"])).stdout).at(
      -1,
    );
    for (
      const key of [
        "type",
        "mode",
        "considered",
        "not_reached",
        "counts",
        "pending_changes",
        "failures",
        "discourse_requests",
        "elapsed_ms",
        "log_path",
        "stopped_by",
        "error",
        "exit_code",
      ]
    ) {
      assert.ok(key in (sync ?? {}) && key in summary!, key);
    }

    const applyRevert = await world.engine([
      "revert",
      log,
      "--apply",
      "--json",
    ]);
    assert.equal(applyRevert.code, 0, applyRevert.stderr);
    const done = jsonLines(applyRevert.stdout);
    assert.deepEqual(done.slice(0, -1).map((r) => r.status), [
      "SUCCESS",
      "SUCCESS",
    ]);
    assert.equal(done.at(-1)?.mode, "apply");
    assert.equal(typeof done.at(-1)?.log_path, "string");
  });
});

Deno.test("revert --json with a log that is not one: a summary object with the reason and exit 2", async () => {
  await withSmallWorld(async (world) => {
    const path = `${world.dir}/not-a-log.csv`;
    await Deno.writeTextFile(path, "a,b\n1,2\n");
    const result = await world.engine(["revert", path, "--json"]);
    assert.equal(result.code, 2, result.stderr);
    const [failed] = jsonLines(result.stdout);
    assert.equal(failed?.type, "summary");
    assert.equal(failed?.exit_code, 2);
    assert.match(String(failed?.error), /not an audit log/);
  });
});
