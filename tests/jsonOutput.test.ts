// --json: stdout holds JSON objects and nothing else, whatever the log level,
// and a run that fails still ends with a summary object saying why.
import assert from "node:assert/strict";
import { discourseUser, moodleUser } from "./doubles/scenarios.ts";
import { withWorld, type World } from "./support/world.ts";

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
    const result = await world.run(["--all", "--json", "--log-level", "debug"]);
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
    const moodle = await world.run(["--all", "--json"], {
      MOODLE_TOKEN: "not-the-token",
    });
    assert.equal(moodle.code, 3, moodle.stderr);
    const [failed] = jsonLines(moodle.stdout);
    assert.equal(failed.type, "summary");
    assert.equal(failed.exit_code, 3);
    assert.match(String(failed.error), /Moodle/);
    assert.doesNotMatch(moodle.stdout, /not-the-token/);

    // The forum refuses the key: the run stops at its first user.
    const forum = await world.run(["--all", "--json", "--apply"], {
      DISCOURSE_API_KEY: "not-the-key",
    });
    assert.equal(forum.code, 3, forum.stderr);
    const summary = jsonLines(forum.stdout).at(-1);
    assert.equal(summary?.type, "summary");
    assert.equal(summary?.exit_code, 3);
    assert.match(String(summary?.error), /key|credentials|rejected/i);

    // Usage errors too: nothing contacted, a summary all the same.
    const usage = await world.run(["--all", "--json", "--offset", "-1"]);
    assert.equal(usage.code, 2, usage.stderr);
    assert.deepEqual(jsonLines(usage.stdout), [{
      type: "summary",
      error: "--offset must be 0 or more, not -1",
      exit_code: 2,
    }]);
  });
});
