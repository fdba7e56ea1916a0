// Group membership from Moodle cohorts and courses (issue 13), through the
// CLI against the doubles: additions, removals, the union of sources,
// automatic and missing groups, members the profile sync refuses, --user,
// --check and --json, and no groups key at all.
import assert from "node:assert/strict";
import { discourseUser, moodleUser } from "../doubles/scenarios.ts";
import {
  groupRequests,
  membershipRows,
  newestLog,
  withCampus,
} from "../support/groupWorld.ts";

const groupWrites = (world: Parameters<typeof groupRequests>[0]) =>
  groupRequests(world).filter((r) => r.method !== "GET");

Deno.test("a dry-run shows each group's additions and removals; --apply makes them; the next run has nothing to do", async () => {
  await withCampus({}, async (world) => {
    const dry = await world.engine([]);
    assert.equal(dry.code, 0, dry.stderr);
    assert.deepEqual(membershipRows((await newestLog(world, "dryrun")).rows), [
      "GROUP_ADD DRY_RUN ben hist101",
      "GROUP_ADD DRY_RUN ben students_2026",
      "GROUP_ADD DRY_RUN carla students_2026",
      "GROUP_ADD DRY_RUN dario hist101",
      "GROUP_REMOVE DRY_RUN dario students_2026",
      "GROUP_REMOVE DRY_RUN visitor students_2026",
    ]);
    // The console groups the changes per group, with counts.
    assert.match(
      dry.stdout,
      /Group "students_2026": 2 additions, 2 removals \(dry-run\)\n.*ben GROUP_ADD\/DRY_RUN[^\n]*\n.*carla GROUP_ADD/,
    );
    assert.match(dry.stdout, /6 group memberships would change/);
    assert.equal(groupWrites(world).length, 0, "a dry-run writes nothing");

    const applied = await world.engine(["--apply"]);
    assert.equal(applied.code, 0, applied.stderr);
    assert.deepEqual(world.discourse.groupMembers("students_2026"), [
      "ana",
      "ben",
      "carla",
    ]);
    assert.deepEqual(world.discourse.groupMembers("hist101"), ["ben", "dario"]);
    const { rows } = await newestLog(world, "apply");
    assert.deepEqual(membershipRows(rows), [
      "GROUP_ADD SUCCESS ben hist101",
      "GROUP_ADD SUCCESS ben students_2026",
      "GROUP_ADD SUCCESS carla students_2026",
      "GROUP_ADD SUCCESS dario hist101",
      "GROUP_REMOVE SUCCESS dario students_2026",
      "GROUP_REMOVE SUCCESS visitor students_2026",
    ]);
    // One row per membership change, in the columns.
    const add = rows.find((r) =>
      r.action === "GROUP_ADD" && r.normalized_username === "carla"
    );
    assert.equal(add?.fields, "group");
    assert.equal(add?.before, "");
    assert.equal(add?.after, '{"group":"students_2026"}');
    assert.equal(add?.moodle_id, "4");
    assert.equal(add?.original_username, "carla");
    const forumOnly = rows.find((r) => r.normalized_username === "visitor");
    assert.equal(forumOnly?.moodle_id, "");
    assert.equal(forumOnly?.before, '{"group":"students_2026"}');
    assert.equal(forumOnly?.after, "");
    // One add and one remove call per group with changes, never one per member.
    assert.deepEqual(
      groupWrites(world).map((r) => `${r.method} ${r.path}`).sort(),
      [
        "DELETE /groups/41/members.json",
        "PUT /groups/41/members.json",
        "PUT /groups/42/members.json",
      ],
    );

    const again = await world.engine(["--apply"]);
    assert.equal(again.code, 0, again.stderr);
    assert.deepEqual(
      membershipRows((await newestLog(world, "apply")).rows),
      [],
    );
    assert.equal(groupWrites(world).length, 3, "nothing more to write");
  });
});

Deno.test("several sources feed one group: its members are their union", async () => {
  await withCampus({
    map: [
      { cohort: "students-2026", group: "students_2026" },
      { course: "HIST101", roles: ["editingteacher"], group: "students_2026" },
    ],
  }, async (world) => {
    const applied = await world.engine(["--apply"]);
    assert.equal(applied.code, 0, applied.stderr);
    // dario stays: the course's teacher; visitor goes: in neither source.
    assert.deepEqual(world.discourse.groupMembers("students_2026"), [
      "ana",
      "ben",
      "carla",
      "dario",
    ]);
  });
});

Deno.test("an automatic group in the map is a settings error: exit 2, nothing read", async () => {
  await withCampus({
    map: [{ cohort: "students-2026", group: "trust_level_1" }],
  }, async (world) => {
    const result = await world.engine(["--apply"]);
    assert.equal(result.code, 2);
    assert.match(result.stderr, /groups\.map\.0\.group/);
    assert.match(result.stderr, /automatic/);
    assert.equal(world.moodle.requests.length, 0);
    assert.equal(world.discourse.requests.length, 0);
  });
});

Deno.test("a mapped group the forum lacks: an ERROR row naming it, or created with groups.create", async () => {
  const map = [{ cohort: "students-2026", group: "class_of_2026" }];
  await withCampus({ map }, async (world) => {
    const result = await world.engine(["--apply"]);
    assert.equal(result.code, 1);
    const error = (await newestLog(world, "apply")).rows.find((r) =>
      r.action === "GROUP_REMOVE" && r.status === "ERROR"
    );
    assert.match(error?.message ?? "", /group "class_of_2026" does not exist/);
    assert.match(error?.message ?? "", /"groups\.create": true/);
    assert.equal(groupWrites(world).length, 0);
  });
  await withCampus(
    { map, groupsSettings: { create: true } },
    async (world) => {
      const dry = await world.engine([]);
      assert.equal(dry.code, 0, dry.stderr);
      assert.match(dry.stdout, /does not exist yet: --apply creates it/);
      assert.equal(groupWrites(world).length, 0);
      const result = await world.engine(["--apply"]);
      assert.equal(result.code, 0, result.stderr);
      const created = world.discourse.groupByName("class_of_2026");
      assert.equal(created?.visibility_level, 2, "visible to its members");
      assert.deepEqual(world.discourse.groupMembers("class_of_2026"), [
        "ana",
        "ben",
        "carla",
      ]);
      assert.deepEqual(
        groupWrites(world).map((r) => `${r.method} ${r.path}`),
        ["POST /admin/groups.json", `PUT /groups/${created?.id}/members.json`],
      );
    },
  );
});

Deno.test("members the profile sync would not write are not added, and the log says why; owners stay", async () => {
  await withCampus({
    // test.one is excluded by the world's "test*"; "fay lee" and "fay_lee"
    // both become fay_lee; owner.one owns the group, in no source.
    cohortMembers: ["ana", 20, 21, 22],
    extraMoodleUsers: [
      moodleUser(20, "test.one"),
      moodleUser(21, "fay lee"),
      moodleUser(22, "fay_lee"),
    ],
    extraForumUsers: [
      discourseUser(40, "test.one"),
      discourseUser(41, "fay_lee"),
    ],
    forumGroups: [
      {
        name: "students_2026",
        members: ["ana", "fay_lee"],
        owners: ["owner.one"],
      },
      { name: "hist101" },
    ],
  }, async (world) => {
    const result = await world.engine(["--apply"]);
    assert.equal(result.code, 1, "the collision is an ERROR row");
    const rows = (await newestLog(world, "apply")).rows.filter((r) =>
      r.action.startsWith("GROUP_")
    );
    const about = (name: string) =>
      rows.filter((r) => r.normalized_username === name);
    const [excluded] = about("test.one");
    assert.equal(excluded.action, "GROUP_ADD");
    assert.equal(excluded.status, "SKIPPED");
    assert.match(excluded.message, /not added: matches exclusion "test\*"/);
    // Both colliding users are refused; their account is neither added
    // for one of them nor removed for the other.
    assert.deepEqual(
      about("fay_lee").map((r) => `${r.action} ${r.status}`),
      ["GROUP_REMOVE SKIPPED"],
    );
    assert.match(about("fay_lee")[0].message, /username collision/);
    const [owner] = about("owner.one");
    assert.equal(owner.status, "SKIPPED");
    assert.match(owner.message, /owners are never removed/);
    assert.deepEqual(world.discourse.groupMembers("students_2026"), [
      "ana",
      "fay_lee",
      "owner.one",
    ]);
  });
});

Deno.test("--user changes only that user's memberships", async () => {
  await withCampus({}, async (world) => {
    const result = await world.engine(["--apply", "--user", "dario"]);
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(membershipRows((await newestLog(world, "apply")).rows), [
      "GROUP_ADD SUCCESS dario hist101",
      "GROUP_REMOVE SUCCESS dario students_2026",
    ]);
    assert.deepEqual(world.discourse.groupMembers("students_2026"), [
      "ana",
      "visitor",
    ]);
  });
});

Deno.test("a batch leaves forum-only members to full runs", async () => {
  await withCampus({}, async (world) => {
    const result = await world.engine(["--apply", "--batch-size", "3"]);
    assert.equal(result.code, 0, result.stderr);
    // The batch holds guest, ana and ben: only ben's memberships change.
    assert.deepEqual(membershipRows((await newestLog(world, "apply")).rows), [
      "GROUP_ADD SUCCESS ben hist101",
      "GROUP_ADD SUCCESS ben students_2026",
    ]);
  });
});

Deno.test("--check counts membership drift: exit 4 while a group differs, 0 once in step", async () => {
  await withCampus({}, async (world) => {
    assert.equal((await world.engine(["--check"])).code, 4);
    assert.equal((await world.engine(["--apply"])).code, 0);
    assert.equal((await world.engine(["--check"])).code, 0);
  });
});

Deno.test("--json emits the membership rows and the summary's membership count", async () => {
  await withCampus({}, async (world) => {
    const result = await world.engine(["--json"]);
    assert.equal(result.code, 0, result.stderr);
    const lines = result.stdout.trim().split("\n").map((l) => JSON.parse(l));
    const added = lines.filter((l) => l.action === "GROUP_ADD");
    assert.equal(added.length, 4);
    assert.equal(added[0].fields, "group");
    const summary = lines[lines.length - 1];
    assert.equal(summary.type, "summary");
    assert.equal(summary.membership_changes, 6);
    assert.equal(summary.removals_held, null);
    assert.doesNotMatch(result.stdout, /Group "/, "no headings in JSON");
  });
});

Deno.test("no groups key: nothing about groups is read or written", async () => {
  await withCampus({ settings: { groups: undefined } }, async (world) => {
    const result = await world.engine(["--apply"]);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(groupRequests(world).length, 0);
    assert.ok(
      world.moodle.requests.every((r) => !/cohort|course|enrol/.test(r.body)),
    );
    assert.deepEqual(
      membershipRows((await newestLog(world, "apply")).rows),
      [],
    );
  });
});
