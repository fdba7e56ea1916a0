// `revert` of the leavers' rows: a suspension is lifted and a reactivation
// suspended again, only while the account is as the sync left it.
import assert from "node:assert/strict";
import { discourseUser, moodleUser, withGuest } from "../doubles/scenarios.ts";
import { logsOf, newestRows, suspendedInForum } from "../support/leavers.ts";
import { withWorld, type World, type WorldOptions } from "../support/world.ts";

const reason = "Account closed in Moodle";
const till = "3000-01-01T00:00:00.000Z";

/** Bob left Moodle; Ana, whom the sync had suspended, is back. */
const comings: WorldOptions = {
  moodleUsers: withGuest([
    moodleUser(2, "ana"),
    moodleUser(3, "bob", { suspended: true }),
  ]),
  forumUsers: [
    discourseUser(12, "ana", { suspended_till: till, suspend_reason: reason }),
    discourseUser(13, "bob"),
  ],
  settings: {
    deprovision: { suspendedInMoodle: "suspend", reactivate: true },
  },
};

/** Runs the sync with --apply and gives its log's path. */
const syncApplied = async (world: World): Promise<string> => {
  const result = await world.engine(["--all", "--apply"]);
  assert.equal(result.code, 0, result.stdout + result.stderr);
  return (await logsOf(world, "apply")).at(-1)!;
};

const revertRows = async (world: World, mode: "apply" | "dryrun") =>
  new Map(
    (await newestRows(world, `revert_${mode}`)).map((
      r,
    ) => [r.normalized_username, `${r.action}/${r.status}`]),
  );

Deno.test("revert: lifts the sync's suspension and suspends again what it reactivated", async () => {
  await withWorld(comings, async (world) => {
    const log = await syncApplied(world);
    assert.ok(!suspendedInForum(world, 12));
    assert.ok(suspendedInForum(world, 13));

    const dry = await world.engine(["revert", log]);
    assert.equal(dry.code, 0, dry.stdout + dry.stderr);
    assert.deepEqual(
      await revertRows(world, "dryrun"),
      new Map([["ana", "SUSPEND/DRY_RUN"], ["bob", "UNSUSPEND/DRY_RUN"]]),
    );
    assert.ok(
      suspendedInForum(world, 13),
      "a dry-run writes nothing",
    );

    const result = await world.engine(["revert", log, "--apply"]);
    assert.equal(result.code, 0, result.stdout + result.stderr);
    assert.deepEqual(
      await revertRows(world, "apply"),
      new Map([["ana", "SUSPEND/SUCCESS"], ["bob", "UNSUSPEND/SUCCESS"]]),
    );
    assert.ok(suspendedInForum(world, 12));
    assert.equal(world.discourse.users.get(12)?.suspend_reason, reason);
    assert.ok(!suspendedInForum(world, 13));
  });
});

Deno.test("revert: an account changed since the sync is left alone", async () => {
  await withWorld(comings, async (world) => {
    const log = await syncApplied(world);
    // Since the sync: a moderator suspended Ana for spam, and lifted
    // Bob's suspension, then suspended him for a reason of their own.
    Object.assign(world.discourse.users.get(12)!, {
      suspended_till: till,
      suspend_reason: "Spam",
    });
    Object.assign(world.discourse.users.get(13)!, {
      suspended_till: till,
      suspend_reason: "Harassment",
    });
    const before = JSON.stringify([...world.discourse.users.values()]);

    const result = await world.engine(["revert", log, "--apply"]);
    assert.equal(result.code, 0, result.stdout + result.stderr);
    assert.deepEqual(
      await revertRows(world, "apply"),
      new Map([["ana", "SUSPEND/SKIPPED"], ["bob", "UNSUSPEND/SKIPPED"]]),
    );
    assert.equal(JSON.stringify([...world.discourse.users.values()]), before);
  });
});
