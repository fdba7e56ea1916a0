// What a new operator meets when a run cannot do its work: the error comes
// first, and no empty audit log is left to be mistaken for a run.
import assert from "node:assert/strict";
import { discourseUser, moodleUser } from "../doubles/scenarios.ts";
import { auditLogs, lastLog, withWorld } from "../support/world.ts";

const forum = [
  discourseUser(-1, "system", { admin: true }),
  discourseUser(2, "ada", {}),
];

Deno.test("--user with an unknown username says so first, prints no run summary (with --json only the failure object) and leaves no log", async () => {
  await withWorld({
    moodleUsers: [moodleUser(2, "ada", {})],
    forumUsers: forum,
  }, async (world) => {
    for (const extra of [[], ["--json"], ["--apply"]]) {
      const result = await world.run(["--user", "nosuchuser", ...extra]);
      assert.equal(result.code, 1, result.stderr);
      assert.match(
        result.stderr,
        /^error: no Moodle user has the username "nosuchuser"/,
      );
      assert.match(result.stderr, /no log was written/);
      if (extra.includes("--json")) {
        // No run summary, only the failure object a script reads (issue 9).
        const failure = JSON.parse(result.stdout);
        assert.deepEqual(Object.keys(failure), ["type", "error", "exit_code"]);
        assert.equal(failure.exit_code, 1);
        assert.match(failure.error, /no Moodle user has the username/);
      } else {
        assert.doesNotMatch(result.stdout, /Summary|summary/);
      }
      assert.deepEqual(await auditLogs(world.dir), []);
      assert.equal(world.discourse.requests.length, 0);
    }
  });
});

Deno.test("a run stopped before its first user (Moodle refuses the token) leaves no header-only log", async () => {
  await withWorld({
    moodleUsers: [moodleUser(2, "ada", {})],
    forumUsers: forum,
  }, async (world) => {
    const result = await world.run(["--all", "--apply"], {
      MOODLE_TOKEN: "revoked-token-1",
    });
    assert.equal(result.code, 3, result.stderr);
    assert.match(result.stderr, /^error: .*rejected the token/);
    assert.deepEqual(await auditLogs(world.dir), []);
  });
});

Deno.test("a run stopped after some users names the log that holds them", async () => {
  await withWorld({
    moodleUsers: [moodleUser(2, "ada", {}), moodleUser(3, "test.bot", {})],
    forumUsers: forum,
  }, async (world) => {
    const result = await world.run(["--all", "--apply"], {
      DISCOURSE_API_KEY: "revoked-key-1",
    });
    assert.equal(result.code, 3, result.stderr);
    const logs = await auditLogs(world.dir);
    assert.equal(logs.length, 1);
    assert.ok(result.stdout.includes(logs[0]), result.stdout);
  });
});

Deno.test("Moodle listing no users at all is an error that points at the token's capabilities", async () => {
  await withWorld({
    // Moodle drops users whose email the token's user cannot see: with the
    // capability gone, that is every user, the guest included.
    moodleUsers: [
      moodleUser(1, "guest", { email: "" }),
      moodleUser(2, "ada", { email: "" }),
    ],
    forumUsers: forum,
  }, async (world) => {
    for (
      const args of [["--all"], ["--all", "--apply"], ["--check", "--all"]]
    ) {
      const result = await world.run(args);
      assert.equal(result.code, 1, `${args}: ${result.stderr}`);
      assert.match(result.stderr, /^error: Moodle returned no users at all/);
      assert.match(result.stderr, /lost a capability/);
      assert.match(result.stderr, /moodle\/course:useremail/);
      assert.deepEqual(await auditLogs(world.dir), []);
      assert.equal(world.discourse.requests.length, 0);
    }
  });
});

Deno.test("a Moodle record that cannot be read says which field, what was expected and what came, once each", async () => {
  await withWorld({
    moodleUsers: [
      moodleUser(2, "ada", {}),
      moodleUser(3, "odd.one", { fullname: undefined, suspended: "no" }),
    ],
    forumUsers: forum,
  }, async (world) => {
    const result = await world.run(["--all"]);
    assert.equal(result.code, 1, result.stderr);
    const line = result.stdout.split("\n").find((l) => l.includes("odd.one"));
    assert.ok(line, result.stdout);
    assert.match(line, /fullname: missing/);
    assert.match(line, /suspended: expected true or false, found "no"/);
    assert.equal(line.split("suspended").length, 2, line);
    assert.doesNotMatch(line, /Expected|is missing|undefined|Struct/);
    const { rows } = await lastLog(world);
    const row = rows.find((r) => r.original_username === "odd.one");
    assert.equal(row?.moodle_id, "3");
    assert.match(row?.message ?? "", /suspended: expected true or false/);
  });
});
