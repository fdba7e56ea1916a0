// Interruptions, crashes and overlapping runs: what only a process shows
// (signals, kill -9, two processes on one lock), through the CLI as cron
// runs it. The faults a single run meets are in tests/engine/.
import assert from "node:assert/strict";
import os from "node:os";
import { auditLogs, readLog, writeSettings } from "../support/world.ts";
import {
  forumState,
  lockFiles,
  oneRowPerUser,
  referenceRun,
  rowsOfEveryUserConsidered,
  spawnCli,
  waitUntil,
  withWorld,
  type World,
  writes,
} from "../support/reliability.ts";

Deno.test("credentials revoked mid-run: exit 3 at once, no write after, every user started has its row", async () => {
  await withWorld(
    { settings: { discourse: { requestsPerMinute: 300 } } },
    async (world) => {
      const run = world.spawn(["--all", "--apply"]);
      await waitUntil(
        "a first write",
        () => writes(world.discourse).length > 0,
      );
      world.discourseScenario.apiKey = "revoked-key";
      const revokedAt = world.discourse.requests.length;
      const result = await run.done;
      assert.equal(result.code, 3, result.stderr + result.stdout);
      assert.match(
        result.stderr + result.stdout,
        /rejected the API credentials/,
      );
      const after = world.discourse.requests.slice(revokedAt);
      // Only requests already on their way when the key died: no new user.
      assert.ok(after.length <= 4, `${after.length} requests after revocation`);
      const rows = await rowsOfEveryUserConsidered(world, result.stdout);
      assert.ok(rows.length < 10, "the run stopped early");
      assert.match(result.stdout, /users? not reached/);
      assert.deepEqual(lockFiles(world), []);
    },
  );
});

/** Users the forum saw any request about, by username. */
const touchedUsers = (world: World) =>
  new Set(
    world.discourse.requests.flatMap((r) => {
      const match = /^\/u\/([^/]+?)(?:\.json|\/)/.exec(r.path);
      return match ? [decodeURIComponent(match[1])] : [];
    }),
  );

for (const signal of ["SIGINT", "SIGTERM"] as const) {
  Deno.test(`${signal} mid-run: no new user, the write in flight finishes and is logged, summary, exit 130, lock released`, async () => {
    const expected = await referenceRun();
    await withWorld(
      { settings: { discourse: { requestsPerMinute: 300 } } },
      async (world) => {
        // One user's write is slow, so the signal lands while it is in flight.
        world.discourse.inject({
          kind: "slow",
          count: 2,
          delayMs: 300,
          path: /^\/u\/bio\.filler\.json$/,
        });
        // Two at a time: when the slow write arrives, three users are unstarted.
        const run = world.spawn(["--all", "--apply", "--concurrency", "2"]);
        await waitUntil(
          "the slow write to arrive",
          () =>
            writes(world.discourse).some((r) =>
              r.path === "/u/bio.filler.json"
            ),
        );
        run.kill(signal);
        const result = await run.done;
        assert.equal(result.code, 130, result.stderr + result.stdout);
        assert.match(result.stderr, /Stopping/);
        assert.match(result.stdout, /Summary \(apply\)/);
        assert.match(result.stdout, /interrupted/);
        const rows = await rowsOfEveryUserConsidered(world, result.stdout);
        const byName = new Map(rows.map((r) => [r.normalized_username, r]));
        assert.equal(byName.get("bio.filler")?.status, "SUCCESS");
        assert.ok(rows.length < 10, "users after the signal were not started");
        // Every user the forum heard about was finished and logged.
        for (const username of touchedUsers(world)) {
          assert.ok(
            byName.has(username),
            `${username} was started but has no row`,
          );
        }
        // What was logged as written is what the forum holds.
        const forum = new Map(
          forumState(world.discourse).map((u) => [u.username, u]),
        );
        const reference = new Map(expected.forum.map((u) => [u.username, u]));
        for (const row of rows.filter((r) => r.status === "SUCCESS")) {
          assert.deepEqual(
            forum.get(row.normalized_username),
            reference.get(row.normalized_username),
          );
        }
        assert.deepEqual(lockFiles(world), []);
      },
    );
  });
}

Deno.test("kill -9 mid-run leaves a log that parses with every finished user; the next run takes the lock over and says so", async () => {
  await withWorld(
    { settings: { discourse: { requestsPerMinute: 300 } } },
    async (world) => {
      const run = world.spawn(["--all", "--apply"]);
      await waitUntil("two rows on disk", async () => {
        const logs = await auditLogs(world.dir);
        if (logs.length === 0) return false;
        const text = await Deno.readTextFile(logs[0]);
        return text.split("\r\n").length >= 4;
      });
      run.kill("SIGKILL");
      const killed = await run.done;
      assert.notEqual(killed.code, 0);
      const [log] = await auditLogs(world.dir);
      const text = await Deno.readTextFile(log);
      assert.ok(text.endsWith("\r\n"), "the last row is complete");
      const { header, rows } = await readLog(log);
      assert.equal(header.length, 13);
      assert.ok(rows.length >= 2);
      oneRowPerUser(rows);
      const expected = await referenceRun();
      const forum = new Map(
        forumState(world.discourse).map((u) => [u.username, u]),
      );
      const reference = new Map(expected.forum.map((u) => [u.username, u]));
      for (const row of rows.filter((r) => r.status === "SUCCESS")) {
        assert.deepEqual(
          forum.get(row.normalized_username),
          reference.get(row.normalized_username),
        );
      }

      // The lock file outlived the process, but not its lock.
      assert.equal(lockFiles(world).length, 1);
      const next = await world.engine(["--all", "--apply"]);
      assert.equal(next.code, 0, next.stderr);
      assert.match(
        next.stderr,
        new RegExp(`took over the lock .* left by pid ${run.pid} on `),
      );
      assert.deepEqual(forumState(world.discourse), expected.forum);
      assert.deepEqual(lockFiles(world), []);
    },
  );
});

Deno.test("two --apply runs against one forum: the second exits 3 naming the holder; dry-runs need no lock", async () => {
  await withWorld(
    { settings: { discourse: { requestsPerMinute: 300 } } },
    async (world) => {
      const first = world.spawn(["--all", "--apply"]);
      await waitUntil(
        "the first run to hold the lock",
        () =>
          lockFiles(world).length === 1 &&
          world.discourse.requests.length > 0,
      );
      const moodleCalls = world.moodle.requestCount();

      // Another settings file, another spelling of the same forum.
      const otherDir = await Deno.makeTempDir({ prefix: "sync-rel-other-" });
      try {
        const otherSettings = await writeSettings(otherDir, {
          env: "other",
          logDir: otherDir,
          lockDir: world.lockDir,
          moodle: { endpoint: world.moodle.endpoint, token: "x" },
          discourse: { url: "http://placeholder.invalid", apiKey: "x" },
        });
        const second = spawnCli([
          "--settings",
          otherSettings,
          "--all",
          "--apply",
        ], {
          ...world.env,
          DISCOURSE_URL: `${world.discourse.url.replace("http", "HTTP")}/`,
        });
        const refused = await second.done;
        assert.equal(refused.code, 3, refused.stderr);
        assert.match(
          refused.stderr,
          new RegExp(`pid ${first.pid} on ${os.hostname()}`),
        );
        assert.match(refused.stderr, /started \d{4}-\d\d-\d\dT/);
        assert.match(refused.stderr, /wrote nothing/);
        assert.equal(
          world.moodle.requestCount(),
          moodleCalls,
          "the second run contacted nothing",
        );
        assert.deepEqual(await auditLogs(otherDir), []);

        const dryRun = await world.engine(["--all"]);
        assert.equal(dryRun.code, 0, dryRun.stderr);
      } finally {
        await Deno.remove(otherDir, { recursive: true });
      }
      const done = await first.done;
      assert.equal(done.code, 0, done.stderr);
      assert.deepEqual(lockFiles(world), []);
      const again = await world.engine(["--all", "--apply"]);
      assert.equal(again.code, 0, again.stderr);
      assert.doesNotMatch(again.stderr, /took over/);
    },
  );
});
