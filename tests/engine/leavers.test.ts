// Leavers: forum accounts of users suspended in Moodle are suspended, our
// suspensions are lifted when the user is back, and the removal threshold
// holds a mass suspension back; through the CLI against the doubles.
import assert from "node:assert/strict";
import { discourseUser, moodleUser, withGuest } from "../doubles/scenarios.ts";
import { newestRows, suspendedInForum } from "../support/leavers.ts";
import {
  byMoodleId,
  lastLog,
  withWorld,
  type WorldOptions,
  writes,
} from "../support/world.ts";

const reason = "Account closed in Moodle";

const suspendOn = { suspendedInMoodle: "suspend", reactivate: true };

/** Ana active; Bob, Carol (a moderator), Dave (excluded), Erin suspended. */
const leavers = (settings: Record<string, unknown> = {}): WorldOptions => ({
  moodleUsers: withGuest([
    moodleUser(2, "ana"),
    moodleUser(3, "bob", { suspended: true }),
    moodleUser(4, "carol", { suspended: true }),
    moodleUser(5, "dave", { suspended: true }),
    moodleUser(6, "erin", { suspended: true }),
  ]),
  forumUsers: [
    discourseUser(12, "ana"),
    discourseUser(13, "bob"),
    discourseUser(14, "carol", { moderator: true }),
    discourseUser(15, "dave"),
  ],
  settings: {
    deprovision: suspendOn,
    exclude: { usernames: ["dave"] },
    ...settings,
  },
});

Deno.test("leavers: a dry-run shows the suspension and changes nothing", async () => {
  await withWorld(leavers(), async (world) => {
    const result = await world.engine(["--all"]);
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(writes(world), []);
    const rows = byMoodleId((await lastLog(world)).rows);
    const bob = rows.get(3)!;
    assert.equal(`${bob.action}/${bob.status}`, "SUSPEND/DRY_RUN");
    assert.equal(bob.message, "would suspend: suspended in Moodle");
    assert.equal(bob.fields, "suspended");
    assert.equal(bob.before, '{"suspended":false}');
    assert.equal(bob.after, '{"suspended":true}');

    const check = await world.engine(["--all", "--check"]);
    assert.equal(check.code, 4, "a planned suspension is drift");
  });
});

Deno.test("leavers: --apply suspends a Moodle-suspended user; staff, excluded and accountless users never", async () => {
  await withWorld(leavers(), async (world) => {
    const result = await world.engine(["--all", "--apply"]);
    assert.equal(result.code, 0, result.stdout + result.stderr);
    const rows = byMoodleId((await lastLog(world)).rows);
    const row = (id: number) => {
      const r = rows.get(id)!;
      return `${r.action}/${r.status}`;
    };
    assert.equal(row(2), "UPDATE/EXISTS");
    assert.equal(row(3), "SUSPEND/SUCCESS");
    assert.equal(rows.get(3)!.message, "suspended: suspended in Moodle");
    assert.equal(row(4), "SUSPEND/SKIPPED");
    assert.match(rows.get(4)!.message, /staff accounts/);
    assert.equal(row(5), "EXCLUDE/EXCLUDED");
    assert.equal(row(6), "EXCLUDE/EXCLUDED");
    assert.match(rows.get(6)!.message, /no forum account to suspend/);

    const bob = world.discourse.users.get(13)!;
    assert.ok(suspendedInForum(world, 13));
    assert.equal(bob.suspend_reason, reason);
    assert.ok(!suspendedInForum(world, 14));
    assert.ok(!suspendedInForum(world, 15));
    assert.deepEqual(
      writes(world).map((r) => `${r.method} ${r.path}`),
      ["PUT /admin/users/13/suspend.json"],
      "one request a suspension",
    );
    assert.deepEqual(world.discourse.suspensionEmails, [], "no email sent");

    // A second run finds it done.
    const again = await world.engine(["--all", "--apply"]);
    assert.equal(again.code, 0, again.stderr);
    const second = byMoodleId((await lastLog(world)).rows).get(3)!;
    assert.equal(`${second.action}/${second.status}`, "SUSPEND/SKIPPED");
    assert.match(second.message, /already suspended/);
  });
});

Deno.test("leavers: a 409 (suspended meanwhile) is already done, not an error", async () => {
  // Two Moodle leavers reach one account (by username, then by email): the
  // second suspension meets the first's.
  await withWorld({
    moodleUsers: withGuest([
      moodleUser(3, "bob", {
        suspended: true,
        email: "bob.other@campus.example",
      }),
      moodleUser(7, "robert", { suspended: true, email: "bob@campus.example" }),
    ]),
    forumUsers: [discourseUser(13, "bob")],
    settings: { deprovision: suspendOn, match: "auto" },
  }, async (world) => {
    const result = await world.engine(["--all", "--apply"]);
    assert.equal(result.code, 0, result.stdout + result.stderr);
    const rows = byMoodleId((await lastLog(world)).rows);
    assert.equal(
      `${rows.get(3)!.action}/${rows.get(3)!.status}`,
      "SUSPEND/SUCCESS",
    );
    const second = rows.get(7)!;
    assert.equal(`${second.action}/${second.status}`, "SUSPEND/SKIPPED");
    assert.match(second.message, /answered 409/);
    assert.equal(
      writes(world).filter((r) => r.path === "/admin/users/13/suspend.json")
        .length,
      2,
    );
  });
});

Deno.test("leavers: reactivate lifts our suspension of a user active again, never someone else's", async () => {
  const till = "3000-01-01T00:00:00.000Z";
  await withWorld({
    moodleUsers: withGuest([moodleUser(2, "ana"), moodleUser(3, "bob")]),
    forumUsers: [
      discourseUser(12, "ana", {
        suspended_till: till,
        suspend_reason: reason,
      }),
      discourseUser(13, "bob", {
        suspended_till: till,
        suspend_reason: "Spam, by a moderator",
      }),
    ],
    settings: { deprovision: { reactivate: true } },
  }, async (world) => {
    const dry = await world.engine(["--all"]);
    assert.equal(dry.code, 0, dry.stdout + dry.stderr);
    const planned = (await lastLog(world)).rows.filter((r) =>
      r.moodle_id === "2"
    ).map((r) => `${r.action}/${r.status}`);
    assert.deepEqual(planned, ["UPDATE/EXISTS", "UNSUSPEND/DRY_RUN"]);

    const result = await world.engine(["--all", "--apply"]);
    assert.equal(result.code, 0, result.stdout + result.stderr);
    const rows = await newestRows(world, "apply");
    const ana = rows.find((r) =>
      r.action === "UNSUSPEND" && r.moodle_id === "2"
    );
    assert.equal(ana?.status, "SUCCESS");
    assert.equal(ana?.message, "reactivated: active again in Moodle");
    assert.equal(ana?.before, '{"suspended":true}');
    const bob = rows.find((r) =>
      r.action === "UNSUSPEND" && r.moodle_id === "3"
    );
    assert.equal(bob?.status, "SKIPPED");
    assert.match(bob!.message, /suspended by someone else/);
    assert.ok(!suspendedInForum(world, 12));
    assert.ok(suspendedInForum(world, 13));
  });
});

/** Four leavers, a limit of two. */
const manyLeavers: WorldOptions = {
  moodleUsers: withGuest(
    [2, 3, 4, 5].map((id) =>
      moodleUser(id, `leaver${id}`, { suspended: true })
    ),
  ),
  forumUsers: [2, 3, 4, 5].map((id) => discourseUser(10 + id, `leaver${id}`)),
  settings: { deprovision: suspendOn, safety: { maxRemovals: 2 } },
};

Deno.test("leavers: past safety.maxRemovals nothing is suspended, each is a DRY_RUN row, exit 5; --allow-removals lets them through", async () => {
  await withWorld(manyLeavers, async (world) => {
    const held = await world.engine(["--all", "--apply"]);
    assert.equal(held.code, 5, held.stdout + held.stderr);
    assert.deepEqual(writes(world), [], "nothing suspended");
    assert.match(
      held.stdout + held.stderr,
      /4 removals \(4 suspensions\), more than safety\.maxRemovals \(2\).*--allow-removals 4/s,
    );
    const { rows } = await lastLog(world);
    const suspends = rows.filter((r) => r.action === "SUSPEND");
    assert.equal(suspends.length, 4);
    for (const row of suspends) {
      assert.equal(row.status, "DRY_RUN");
      assert.match(row.message, /held back/);
    }

    // A dry-run says so too, for the --apply it rehearses.
    const dry = await world.engine(["--all", "--json"]);
    assert.equal(dry.code, 5);
    const summary = JSON.parse(dry.stdout.trim().split("\n").at(-1)!);
    assert.match(summary.removals_held, /--allow-removals 4/);

    const tooFew = await world.engine([
      "--all",
      "--apply",
      "--allow-removals",
      "3",
    ]);
    assert.equal(tooFew.code, 5, "the operator's number is a limit too");
    assert.deepEqual(writes(world), []);

    const allowed = await world.engine([
      "--all",
      "--apply",
      "--allow-removals",
      "4",
    ]);
    assert.equal(allowed.code, 0, allowed.stdout + allowed.stderr);
    assert.equal(writes(world).length, 4);
    for (const id of [12, 13, 14, 15]) {
      assert.ok(suspendedInForum(world, id));
    }
  });
});

Deno.test("leavers: --allow-removals takes a whole number >= 0", async () => {
  await withWorld(manyLeavers, async (world) => {
    const result = await world.engine(["--allow-removals", "-1"]);
    assert.equal(result.code, 2);
    assert.match(result.stderr, /allow-removals/);
  });
});

Deno.test("leavers: settings name what is wrong in deprovision", async () => {
  await withWorld(
    leavers({
      deprovision: { suspendedInMoodle: "yes", reason: "x".repeat(301) },
    }),
    async (world) => {
      const result = await world.engine([]);
      assert.equal(result.code, 2);
      assert.match(
        result.stderr,
        /deprovision\.suspendedInMoodle: found "yes", expected "suspend" or "off"/,
      );
      assert.match(
        result.stderr,
        /deprovision\.reason: .*at most 300 characters/,
      );
    },
  );
});
