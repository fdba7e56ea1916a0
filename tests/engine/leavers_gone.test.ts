// Leavers gone from Moodle: the state store links each Moodle user to a
// forum account; one missing from two full lists in a row is suspended,
// never from a partial run, never past the shrink guard; through the CLI.
import assert from "node:assert/strict";
import { Effect } from "effect";
import { StateStore } from "../../src/state/Store.ts";
import { discourseUser, moodleUser, withGuest } from "../doubles/scenarios.ts";
import { readAll } from "../support/state.ts";
import {
  logsOf,
  newestRows,
  seedStore,
  storeOf,
  suspendedInForum,
} from "../support/leavers.ts";
import { withWorld, type World, type WorldOptions } from "../support/world.ts";

const applyRun = async (world: World, args: ReadonlyArray<string> = []) => {
  const result = await world.engine([
    "--all",
    "--apply",
    "--state",
    storeOf(world).path,
    ...args,
  ]);
  return { result, rows: await newestRows(world, "apply") };
};

/** Ana and Bob are in Moodle; Carl (Moodle id 4) left it. */
const carlLeft: WorldOptions = {
  moodleUsers: withGuest([moodleUser(2, "ana"), moodleUser(3, "bob")]),
  forumUsers: [
    discourseUser(12, "ana"),
    discourseUser(13, "bob"),
    discourseUser(14, "carl"),
  ],
  settings: { deprovision: { goneFromMoodle: "suspend", reactivate: true } },
};

const linkAll = (world: World) =>
  seedStore(world, [
    { moodleId: 2, forumId: 12, name: "ana" },
    { moodleId: 3, forumId: 13, name: "bob" },
    { moodleId: 4, forumId: 14, name: "carl" },
  ]);

Deno.test("gone: absent from one full list, nothing; from two, suspended, and the store marks it ours", async () => {
  await withWorld(carlLeft, async (world) => {
    await linkAll(world);
    const first = await applyRun(world);
    assert.equal(
      first.result.code,
      0,
      first.result.stdout + first.result.stderr,
    );
    assert.ok(!first.rows.some((r) => r.action === "SUSPEND"));
    assert.ok(!suspendedInForum(world, 14));

    const second = await applyRun(world);
    assert.equal(
      second.result.code,
      0,
      second.result.stdout + second.result.stderr,
    );
    const carl = second.rows.find((r) => r.action === "SUSPEND");
    assert.equal(carl?.status, "SUCCESS");
    assert.equal(carl?.moodle_id, "4");
    assert.equal(carl?.normalized_username, "carl");
    assert.equal(
      carl?.original_username,
      "carl",
      "the Moodle name the store kept",
    );
    assert.match(carl!.message, /^suspended: absent from/);
    assert.ok(suspendedInForum(world, 14));
    const stored = await readAll(storeOf(world));
    assert.ok(stored.get(4)?.suspendedByUsAt !== undefined);
    assert.equal(stored.get(2)?.suspendedByUsAt, undefined);

    // Undone, the mark goes too: the account is no longer ours to lift.
    const revert = await world.engine([
      "revert",
      (await logsOf(world, "apply")).at(-1)!,
      "--apply",
      "--state",
      storeOf(world).path,
    ]);
    assert.equal(revert.code, 0, revert.stdout + revert.stderr);
    assert.ok(!suspendedInForum(world, 14));
    assert.equal(
      (await readAll(storeOf(world))).get(4)?.suspendedByUsAt,
      undefined,
    );
  });
});

Deno.test("gone: never from --user or a batch, and said so", async () => {
  await withWorld(carlLeft, async (world) => {
    await linkAll(world);
    for (const args of [["--user", "ana"], ["--batch-size", "2"]]) {
      for (let run = 0; run < 3; run++) {
        const result = await world.engine([
          "--apply",
          "--state",
          storeOf(world).path,
          ...args,
        ]);
        assert.equal(result.code, 0, result.stdout + result.stderr);
        assert.match(
          result.stderr + result.stdout,
          /only looked for in runs over the whole Moodle list/,
        );
      }
    }
    assert.ok(!suspendedInForum(world, 14));
    const stored = await readAll(storeOf(world));
    assert.equal(
      stored.get(4)?.absentFullLists,
      0,
      "a partial list counts no absence",
    );
  });
});

Deno.test("gone: a Moodle list shrunk under 90% of the store suspends no one and exits 5", async () => {
  await withWorld(carlLeft, async (world) => {
    // The store knows seven users; Moodle lists three (guest, Ana, Bob).
    await seedStore(world, [
      { moodleId: 2, forumId: 12, name: "ana" },
      { moodleId: 3, forumId: 13, name: "bob" },
      ...[4, 5, 6, 7, 8].map((id) => ({
        moodleId: id,
        forumId: 10 + id,
        name: id === 4 ? "carl" : `gone${id}`,
      })),
    ]);
    for (let run = 0; run < 3; run++) {
      const { result, rows } = await applyRun(world);
      assert.equal(result.code, 5, result.stdout + result.stderr);
      assert.match(
        result.stderr + result.stdout,
        /the Moodle list holds 3 users, fewer than 90% of the 7 the state store knows/,
      );
      assert.ok(!rows.some((r) => r.action === "SUSPEND"));
    }
    assert.ok(!suspendedInForum(world, 14));
    assert.ok(
      !world.discourse.requests.some((r) => r.path.endsWith("/suspend.json")),
    );
  });
});

Deno.test("gone: configured without a usable store, said clearly, nobody suspended", async () => {
  await withWorld(carlLeft, async (world) => {
    const notAStore = `${world.dir}/not-a-store.sqlite`;
    await Deno.writeTextFile(
      notAStore,
      "these are not the rows you are looking for",
    );
    const result = await world.engine([
      "--all",
      "--apply",
      "--state",
      notAStore,
    ]);
    assert.equal(result.code, 0, result.stdout + result.stderr);
    assert.match(
      result.stderr + result.stdout,
      /goneFromMoodle is "suspend", but without the state store/,
    );
    assert.ok(
      !world.discourse.requests.some((r) => r.path.endsWith("/suspend.json")),
    );
  });
});

Deno.test("reactivate: a suspension the store marks as ours is lifted whatever its reason", async () => {
  const till = "3000-01-01T00:00:00.000Z";
  await withWorld({
    ...carlLeft,
    moodleUsers: withGuest([
      moodleUser(2, "ana"),
      moodleUser(3, "bob"),
      moodleUser(4, "carl"),
    ]),
    forumUsers: [
      discourseUser(12, "ana"),
      discourseUser(13, "bob"),
      // An admin edited the reason of the sync's suspension.
      discourseUser(14, "carl", {
        suspended_till: till,
        suspend_reason: "Left the school (Moodle)",
      }),
    ],
  }, async (world) => {
    await linkAll(world);
    await Effect.runPromise(
      Effect.flatMap(StateStore, (store) => store.recordSuspended(4)).pipe(
        Effect.provide(StateStore.layer(storeOf(world))),
      ),
    );
    const { result, rows } = await applyRun(world);
    assert.equal(result.code, 0, result.stdout + result.stderr);
    const carl = rows.find((r) => r.action === "UNSUSPEND");
    assert.equal(carl?.status, "SUCCESS");
    assert.ok(!suspendedInForum(world, 14));
    assert.equal(
      (await readAll(storeOf(world))).get(4)?.suspendedByUsAt,
      undefined,
    );
  });
});
