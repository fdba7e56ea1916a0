// A signal during the groups stage: the group in flight finishes and is
// logged, the next group is not started, exit 130; the next run does it.
import assert from "node:assert/strict";
import { waitUntil } from "../support/reliability.ts";
import {
  groupRequests,
  membershipRows,
  newestLog,
  withCampus,
} from "../support/groupWorld.ts";

Deno.test("SIGINT during a group's writes: that group finishes and is logged, the next one is not started, exit 130; the next run syncs it", async () => {
  await withCampus({}, async (world) => {
    // students_2026 (id 41) comes first in the map: an add, then a remove.
    world.discourse.inject({
      kind: "slow",
      count: 1,
      delayMs: 800,
      method: "PUT",
      path: /^\/groups\/41\/members\.json$/,
    });
    const writes = () =>
      groupRequests(world).filter((r) => r.method !== "GET").map((r) =>
        `${r.method} ${r.path}`
      );
    const run = world.spawn(["--apply"]);
    await waitUntil(
      "the first group's addition to arrive",
      () => writes().includes("PUT /groups/41/members.json"),
    );
    run.kill("SIGINT");
    const result = await run.done;
    assert.equal(result.code, 130, result.stdout + result.stderr);
    assert.deepEqual(writes(), [
      "PUT /groups/41/members.json",
      "DELETE /groups/41/members.json",
    ]);
    assert.match(
      result.stdout + result.stderr,
      /group "hist101" not synced: the run stopped before it; the next run syncs it/,
    );
    assert.deepEqual(membershipRows((await newestLog(world, "apply")).rows), [
      "GROUP_ADD SUCCESS ben students_2026",
      "GROUP_ADD SUCCESS carla students_2026",
      "GROUP_REMOVE SUCCESS dario students_2026",
      "GROUP_REMOVE SUCCESS visitor students_2026",
    ]);
    assert.deepEqual(world.discourse.groupMembers("hist101"), []);

    const next = await world.engine(["--apply"]);
    assert.equal(next.code, 0, next.stdout + next.stderr);
    assert.deepEqual(membershipRows((await newestLog(world, "apply")).rows), [
      "GROUP_ADD SUCCESS ben hist101",
      "GROUP_ADD SUCCESS dario hist101",
    ]);
  });
});
