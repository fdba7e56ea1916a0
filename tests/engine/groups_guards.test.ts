// The guards that keep a group sync from removing everyone (issue 13): an
// empty source, a failed Moodle call, the removal threshold; and the cost
// of a large change: 1000 members a request.
import assert from "node:assert/strict";
import { discourseUser } from "../doubles/scenarios.ts";
import {
  groupRequests,
  membershipRows,
  newestLog,
  withCampus,
} from "../support/groupWorld.ts";

Deno.test("a source that comes back empty removes no one unless --allow-empty-groups", async () => {
  await withCampus({ cohortMembers: [] }, async (world) => {
    const held = await world.engine(["--apply"]);
    assert.equal(held.code, 1, held.stderr);
    const rows = (await newestLog(world, "apply")).rows;
    const error = rows.find((r) => r.status === "ERROR");
    assert.match(
      error?.message ?? "",
      /cohort "students-2026" came back empty/,
    );
    assert.match(error?.message ?? "", /--allow-empty-groups/);
    assert.deepEqual(world.discourse.groupMembers("students_2026"), [
      "ana",
      "dario",
      "visitor",
    ]);
    // The other group is not held back.
    assert.deepEqual(world.discourse.groupMembers("hist101"), ["ben", "dario"]);

    const allowed = await world.engine(["--apply", "--allow-empty-groups"]);
    assert.equal(allowed.code, 0, allowed.stderr);
    assert.deepEqual(world.discourse.groupMembers("students_2026"), []);
  });
});

Deno.test("a Moodle call that fails is never read as empty: the group's removals are held, its other sources still add", async () => {
  await withCampus({
    map: [
      { cohort: "students-2026", group: "students_2026" },
      { course: "HIST101", group: "students_2026" },
    ],
    // onlyactive needs moodle/course:enrolreview: the course read fails.
    moodle: { withoutCapabilities: ["moodle/course:enrolreview"] },
  }, async (world) => {
    const result = await world.engine(["--apply"]);
    assert.equal(result.code, 1, result.stderr);
    const rows = (await newestLog(world, "apply")).rows;
    const error = rows.find((r) => r.status === "ERROR");
    assert.match(
      error?.message ?? "",
      /no member removed because course "HIST101" could not be read \(.*nopermissions/,
    );
    assert.deepEqual(world.discourse.groupMembers("students_2026"), [
      "ana",
      "ben",
      "carla",
      "dario",
      "visitor",
    ]);
    const held = rows.find((r) => r.normalized_username === "visitor");
    assert.match(
      held?.message ?? "",
      /^not removed from group "students_2026": held back/,
    );
    assert.deepEqual(
      membershipRows(rows).filter((r) => r.includes("REMOVE")),
      [
        "GROUP_REMOVE SKIPPED dario students_2026",
        "GROUP_REMOVE SKIPPED visitor students_2026",
      ],
    );
  });
});

Deno.test("the removal threshold: over safety.maxRemovals nothing is removed, every removal is a DRY_RUN row, exit 5; --allow-removals lets them through", async () => {
  await withCampus(
    { settings: { safety: { maxRemovals: 1 } } },
    async (world) => {
      const held = await world.engine(["--apply"]);
      assert.equal(held.code, 5, held.stderr);
      const rows = (await newestLog(world, "apply")).rows;
      assert.deepEqual(membershipRows(rows), [
        "GROUP_ADD SUCCESS ben hist101",
        "GROUP_ADD SUCCESS ben students_2026",
        "GROUP_ADD SUCCESS carla students_2026",
        "GROUP_ADD SUCCESS dario hist101",
        "GROUP_REMOVE DRY_RUN dario students_2026",
        "GROUP_REMOVE DRY_RUN visitor students_2026",
      ]);
      const removal = rows.find((r) => r.action === "GROUP_REMOVE");
      assert.match(
        removal?.message ?? "",
        /^not removed from group "students_2026": .*safety\.maxRemovals \(1\)/,
      );
      assert.match(removal?.message ?? "", /--allow-removals 2/);
      assert.match(held.stdout, /Removals held back \(exit 5\)/);
      assert.ok(
        world.discourse.groupMembers("students_2026").includes("visitor"),
      );
      assert.equal(
        groupRequests(world).filter((r) => r.method === "DELETE").length,
        0,
      );
      // The dry-run says the same before anything is written.
      assert.equal((await world.engine([])).code, 5);

      const allowed = await world.engine(["--apply", "--allow-removals", "2"]);
      assert.equal(allowed.code, 0, allowed.stderr);
      assert.deepEqual(world.discourse.groupMembers("students_2026"), [
        "ana",
        "ben",
        "carla",
      ]);
    },
  );
});

Deno.test("--allow-removals below zero is refused before anything is read", async () => {
  await withCampus({}, async (world) => {
    const result = await world.engine(["--allow-removals", "-1"]);
    assert.equal(result.code, 2);
    assert.equal(world.moodle.requests.length, 0);
  });
});

Deno.test("2,500 changes in one group cost three calls, not 2,500", async () => {
  // 2,500 forum-only members no source wants: removals, which a full run
  // makes, need no Moodle users (so no profile reads) to set up.
  const count = 2500;
  const leavers = Array.from({ length: count }, (_, i) => `left${1000 + i}`);
  await withCampus({
    extraForumUsers: leavers.map((name, i) => discourseUser(1000 + i, name)),
    forumGroups: [{ name: "students_2026", members: leavers }, {
      name: "hist101",
    }],
    map: [{ cohort: "students-2026", group: "students_2026" }],
  }, async (world) => {
    const result = await world.engine(["--apply", "--allow-removals", "2500"]);
    assert.equal(result.code, 0, result.stderr);
    const calls = groupRequests(world).filter((r) => r.method === "DELETE");
    assert.deepEqual(
      calls.map((r) => JSON.parse(r.body).usernames.split(",").length),
      [1000, 1000, 500],
    );
    // The members were read 1000 a page: three reads.
    assert.equal(
      groupRequests(world).filter((r) =>
        r.path.endsWith("/members.json") &&
        r.method === "GET"
      ).length,
      3,
    );
    assert.deepEqual(world.discourse.groupMembers("students_2026"), [
      "ana",
      "ben",
      "carla",
    ]);
  });
});
