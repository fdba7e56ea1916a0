// `revert LOG.csv` for membership rows (issue 13): the added are removed,
// the removed re-added, each only while the group is as the sync left it.
import assert from "node:assert/strict";
import { membershipRows, withCampus } from "../support/groupWorld.ts";
import { auditLogs, readLog, type World } from "../support/world.ts";

const logsMatching = async (world: World, pattern: RegExp) =>
  (await auditLogs(world.dir)).filter((path) => pattern.test(path));

const syncApplyLog = async (world: World) =>
  (await logsMatching(world, /sync_log_test_apply_/))[0];

Deno.test("revert puts both directions back: the added leave, the removed return", async () => {
  await withCampus({}, async (world) => {
    const before = {
      students: world.discourse.groupMembers("students_2026"),
      hist: world.discourse.groupMembers("hist101"),
    };
    assert.equal((await world.engine(["--apply"])).code, 0);
    const log = await syncApplyLog(world);

    const dry = await world.engine(["revert", log]);
    assert.equal(dry.code, 0, dry.stderr);
    const [dryLog] = await logsMatching(world, /revert_dryrun/);
    assert.deepEqual(membershipRows((await readLog(dryLog)).rows), [
      "GROUP_ADD DRY_RUN dario students_2026",
      "GROUP_ADD DRY_RUN visitor students_2026",
      "GROUP_REMOVE DRY_RUN ben hist101",
      "GROUP_REMOVE DRY_RUN ben students_2026",
      "GROUP_REMOVE DRY_RUN carla students_2026",
      "GROUP_REMOVE DRY_RUN dario hist101",
    ]);
    assert.deepEqual(world.discourse.groupMembers("hist101"), ["ben", "dario"]);

    const result = await world.engine(["revert", log, "--apply"]);
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(
      world.discourse.groupMembers("students_2026"),
      before.students,
    );
    assert.deepEqual(world.discourse.groupMembers("hist101"), before.hist);
    const [revertLog] = await logsMatching(world, /revert_apply/);
    const rows = (await readLog(revertLog)).rows;
    assert.deepEqual(membershipRows(rows), [
      "GROUP_ADD SUCCESS dario students_2026",
      "GROUP_ADD SUCCESS visitor students_2026",
      "GROUP_REMOVE SUCCESS ben hist101",
      "GROUP_REMOVE SUCCESS ben students_2026",
      "GROUP_REMOVE SUCCESS carla students_2026",
      "GROUP_REMOVE SUCCESS dario hist101",
    ]);
    // The Moodle user's columns stay on the row; a forum-only one has none.
    const carla = rows.find((r) => r.normalized_username === "carla");
    assert.equal(carla?.moodle_id, "4");
    assert.equal(
      rows.find((r) => r.normalized_username === "visitor")?.moodle_id,
      "",
    );
  });
});

Deno.test("revert leaves a membership changed since the sync alone", async () => {
  await withCampus({}, async (world) => {
    assert.equal((await world.engine(["--apply"])).code, 0);
    const log = await syncApplyLog(world);
    // Since the sync: an admin removed carla, and re-added visitor.
    const students = world.discourse.groupByName("students_2026")!;
    students.memberIds.delete(14);
    students.memberIds.add(30);
    const result = await world.engine(["revert", log, "--apply"]);
    assert.equal(result.code, 0, result.stderr);
    const [revertLog] = await logsMatching(world, /revert_apply/);
    const rows = (await readLog(revertLog)).rows;
    const about = (name: string) =>
      rows.filter((r) =>
        r.normalized_username === name && r.message.includes("students_2026")
      );
    assert.equal(about("carla")[0]?.status, "SKIPPED");
    assert.match(about("carla")[0]?.message ?? "", /no longer a member/);
    assert.equal(about("visitor")[0]?.status, "SKIPPED");
    assert.match(about("visitor")[0]?.message ?? "", /a member again/);
    assert.deepEqual(world.discourse.groupMembers("students_2026"), [
      "ana",
      "dario",
      "visitor",
    ]);
  });
});

Deno.test("an apply log whose removals the threshold held is still revertable: its DRY_RUN rows changed nothing", async () => {
  await withCampus(
    { settings: { safety: { maxRemovals: 0 } } },
    async (world) => {
      assert.equal((await world.engine(["--apply"])).code, 5);
      const log = await syncApplyLog(world);
      const result = await world.engine(["revert", log, "--apply"]);
      assert.equal(result.code, 0, result.stderr);
      assert.deepEqual(world.discourse.groupMembers("hist101"), []);
      assert.deepEqual(world.discourse.groupMembers("students_2026"), [
        "ana",
        "dario",
        "visitor",
      ]);
    },
  );
});
