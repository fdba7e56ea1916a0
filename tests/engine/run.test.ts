// A basic run's outcomes, in-process: the dry-run, --apply, batches,
// --user, --json, bad settings and rejected credentials.
import assert from "node:assert/strict";
import {
  auditLogs,
  byMoodleId,
  forumState,
  lastLog,
  runInProcess,
  writes,
} from "../support/world.ts";
import { columns, moodleUsers, withWorld } from "../support/basicWorld.ts";

Deno.test("a dry-run shows the changes, writes nothing, and logs one row per user", async () => {
  await withWorld({}, async (world) => {
    const before = forumState(world);
    const result = await world.engine(["--all"]);
    assert.equal(result.code, 1, result.stderr); // the collision is an ERROR
    assert.equal(forumState(world), before);
    assert.equal(writes(world).length, 0);

    const { header, rows } = await lastLog(world);
    assert.deepEqual(header, columns);
    assert.equal(rows.length, moodleUsers().length);
    const logs = await auditLogs(world.dir);
    assert.match(logs[0], /sync_log_test_dryrun_\d{8}_\d{6}\.csv$/);

    const row = byMoodleId(rows);
    assert.equal(row.get(1)?.status, "EXCLUDED"); // guest
    assert.equal(row.get(7)?.status, "EXCLUDED"); // test*
    assert.match(row.get(7)?.message ?? "", /test\*/);
    assert.equal(row.get(8)?.status, "EXCLUDED"); // suspended
    assert.equal(row.get(5)?.action, "ERROR"); // collision
    assert.match(row.get(5)?.message ?? "", /ana_garcia/);
    assert.equal(row.get(6)?.action, "ERROR");
    assert.equal(row.get(9)?.action, "CREATE");
    assert.equal(row.get(9)?.status, "DRY_RUN");
    assert.equal(row.get(10)?.status, "EXISTS");
    assert.equal(row.get(3)?.status, "DRY_RUN");
    assert.equal(row.get(3)?.normalized_username, "jose.nunez");
    assert.equal(row.get(3)?.fields, "name;location;bio");
    assert.deepEqual(JSON.parse(row.get(3)?.after ?? "{}"), {
      name: "José Núñez",
      location: "Buenos Aires, AR",
      bio: "Profesor de **física**",
    });
    assert.match(
      row.get(3)?.timestamp ?? "",
      /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?[+-]\d\d:\d\d$/,
    );

    assert.match(result.stdout, /name: 'Jose Nunez' → 'José Núñez'/);
    assert.match(result.stdout, /Next batch|list is finished/);
  });
});

Deno.test("--apply writes exactly the diff, verifies it, and a second run finds every user up to date", async () => {
  await withWorld({}, async (world) => {
    const first = await world.engine(["--all", "--apply"]);
    assert.equal(first.code, 1, first.stderr); // collisions stay errors
    const jose = world.discourse.userByUsername("jose.nunez");
    assert.equal(jose?.name, "José Núñez");
    assert.equal(jose?.location, "Buenos Aires, AR");
    assert.equal(jose?.bio_raw, "Profesor de **física**");
    const margherita = world.discourse.userByUsername("margherita_cospe");
    assert.equal(margherita?.location, "Firenze, IT");
    assert.equal(margherita?.bio_raw ?? "", "");

    // Each changed user costs exactly one profile write, carrying only its changes.
    const puts = writes(world).filter((r) => /^\/u\/[^/]+\.json$/.test(r.path));
    const putFor = (name: string) =>
      puts.filter((r) => decodeURIComponent(r.path) === `/u/${name}.json`);
    assert.equal(putFor("jose.nunez").length, 1);
    assert.deepEqual(
      Object.keys(JSON.parse(putFor("jose.nunez")[0].body)).sort(),
      [
        "bio_raw",
        "location",
        "name",
      ],
    );
    assert.equal(putFor("up.to.date").length, 0);
    // Colliding users are never written.
    assert.equal(putFor("ana_garcia").length, 0);
    assert.equal(world.discourse.userByUsername("ana_garcia")?.name, "Ana");
    // Excluded users are never written.
    assert.equal(putFor("test.student").length, 0);

    assert.deepEqual(world.discourse.emailChangeRequests, [
      { username: "email.changer", email: "new-address@uni.example" },
    ]);
    const applied = byMoodleId((await lastLog(world)).rows);
    assert.equal(applied.get(3)?.status, "SUCCESS");
    assert.equal(applied.get(9)?.status, "SKIPPED");
    assert.equal(applied.get(11)?.status, "SUCCESS");
    assert.match(applied.get(11)?.message ?? "", /confirmation/);

    const writesAfterFirst = writes(world).length;
    // --full reads every profile again (the first run left a state store
    // that would skip them): the pending check is what holds the email back.
    const second = await world.engine(["--all", "--apply", "--full"]);
    assert.equal(second.code, 1);
    const again = byMoodleId((await lastLog(world)).rows);
    for (const id of [2, 3, 4, 10, 12]) {
      assert.equal(again.get(id)?.status, "EXISTS", `user ${id}`);
    }
    // The pending email change is not requested again.
    assert.equal(again.get(11)?.status, "EXISTS");
    assert.match(again.get(11)?.message ?? "", /awaiting/);
    assert.equal(writes(world).length, writesAfterFirst);
  });
});

Deno.test("batches tile the Moodle list exactly once and name the next offset", async () => {
  await withWorld({}, async (world) => {
    const seen: number[] = [];
    const offsets = [0, 5, 10];
    for (const offset of offsets) {
      const result = await world.engine([
        "--batch-size",
        "5",
        "--offset",
        String(offset),
        "--json",
      ]);
      const lines = result.stdout.trim().split("\n").map((l) => JSON.parse(l));
      const summary = lines.pop();
      assert.equal(summary.type, "summary");
      assert.equal(summary.next_offset, offset + 5 < 12 ? offset + 5 : null);
      seen.push(...lines.map((row) => Number(row.moodle_id)));
    }
    assert.deepEqual(seen.sort((a, b) => a - b), [
      1,
      2,
      3,
      4,
      5,
      6,
      7,
      8,
      9,
      10,
      11,
      12,
    ]);
  });
});

Deno.test("--user processes one user, and an unknown user is a clear error", async () => {
  await withWorld({}, async (world) => {
    const one = await world.engine(["--user", "josé.núñez", "--apply"]);
    assert.equal(one.code, 0, one.stderr);
    assert.equal(
      world.discourse.userByUsername("jose.nunez")?.name,
      "José Núñez",
    );
    const { rows } = await lastLog(world);
    assert.equal(rows.length, 1);

    const missing = await world.engine(["--user", "nobody.here"]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /nobody\.here/);
  });
});

Deno.test("--json prints only JSON on stdout", async () => {
  await withWorld({}, async (world) => {
    const result = await world.engine(["--all", "--json"]);
    const lines = result.stdout.trim().split("\n");
    assert.equal(lines.length, moodleUsers().length + 1);
    for (const line of lines) JSON.parse(line);
    const first = JSON.parse(lines[0]);
    assert.deepEqual(Object.keys(first), columns);
  });
});

Deno.test("bad settings exit 2 naming the key, and contact nothing", async () => {
  await withWorld(
    { settings: { batchSize: "lots", concurrency: 0 } },
    async (world) => {
      const result = await world.engine([]);
      assert.equal(result.code, 2);
      assert.match(result.stderr, /batchSize/);
      assert.match(result.stderr, /concurrency/);
      assert.equal(world.moodle.requests.length, 0);
      assert.equal(world.discourse.requests.length, 0);
    },
  );
});

Deno.test("a rejected API key aborts with exit 3, writes nothing and prints no secret", async () => {
  await withWorld({}, async (world) => {
    const result = await runInProcess([
      "--settings",
      world.settingsPath,
      "--all",
      "--apply",
    ], {
      env: { ...world.env, DISCOURSE_API_KEY: "wrong-key-secret-5150" },
    });
    assert.equal(result.code, 3, result.stderr);
    assert.equal(writes(world).length, 0);
    assert.match(result.stderr + result.stdout, /DISCOURSE_API_KEY|apiKey/);
    for (const text of [result.stdout, result.stderr]) {
      assert.ok(!text.includes("wrong-key-secret-5150"));
      assert.ok(!text.includes("moodle-token-3f9a"));
    }
  });
});

Deno.test("a bad Moodle token aborts with exit 3 and says what to check", async () => {
  await withWorld({}, async (world) => {
    const result = await runInProcess(["--settings", world.settingsPath], {
      env: { ...world.env, MOODLE_TOKEN: "bad-token-9911" },
    });
    assert.equal(result.code, 3);
    assert.match(result.stderr, /MOODLE_TOKEN|moodle\.token/);
    assert.ok(!result.stderr.includes("bad-token-9911"));
  });
});

Deno.test("--user refuses every collision a full run refuses, from either side, in one Moodle request", async () => {
  await withWorld({}, async (world) => {
    const forumBefore = forumState(world);
    for (
      const [username, other] of [["ana garcia", "ana_garcia"], [
        "ana_garcia",
        "ana garcia",
      ]]
    ) {
      const moodleBefore = world.moodle.requests.length;
      const result = await world.engine(["--user", username, "--apply"]);
      assert.equal(result.code, 1, result.stderr);
      const { rows } = await lastLog(world);
      assert.equal(rows.length, 1);
      assert.equal(rows[0].original_username, username);
      assert.equal(rows[0].action, "ERROR");
      assert.ok(rows[0].message.includes(`"${other}"`), rows[0].message);
      assert.match(rows[0].message, /collision/);
      // Moodle's whole list, once: the only way to see every colliding user.
      const moodleRequests = world.moodle.requests.slice(moodleBefore);
      assert.equal(moodleRequests.length, 1);
      assert.match(moodleRequests[0].body, /core_user_get_users\b(?!_by)/);
    }
    assert.equal(writes(world).length, 0);
    assert.equal(forumState(world), forumBefore);
  });
});
