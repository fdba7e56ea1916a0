// Group membership from Moodle cohorts and courses (issue 13), through the
// CLI against the doubles: additions, removals, the union of sources.
import assert from "node:assert/strict";
import { lastLog } from "./support/world.ts";
import {
  groupRequests,
  membershipRows,
  withCampus,
} from "./support/groupWorld.ts";

Deno.test("a dry-run shows each group's additions and removals; --apply makes them; the next run has nothing to do", async () => {
  await withCampus({}, async (world) => {
    const dry = await world.run([]);
    console.log(dry.stdout, dry.stderr);
    assert.equal(dry.code, 0, dry.stderr);
    const planned = membershipRows((await lastLog(world)).rows);
    assert.deepEqual(planned, [
      "GROUP_ADD DRY_RUN ben hist101",
      "GROUP_ADD DRY_RUN ben students_2026",
      "GROUP_ADD DRY_RUN carla students_2026",
      "GROUP_ADD DRY_RUN dario hist101",
      "GROUP_REMOVE DRY_RUN dario students_2026",
      "GROUP_REMOVE DRY_RUN visitor students_2026",
    ]);
    assert.equal(
      groupRequests(world).filter((r) => r.method !== "GET").length,
      0,
    );
    const applied = await world.run(["--apply"]);
    assert.equal(applied.code, 0, applied.stderr);
    assert.deepEqual(world.discourse.groupMembers("students_2026"), [
      "ana",
      "ben",
      "carla",
    ]);
    assert.deepEqual(world.discourse.groupMembers("hist101"), ["ben", "dario"]);
  });
});
