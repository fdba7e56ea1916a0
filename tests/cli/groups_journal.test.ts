// No membership write without its record (issue 13): a run killed while a
// group's add request is on the wire leaves its intents in the journal; the
// next --apply run checks them against the group and logs them first.
import assert from "node:assert/strict";
import { waitUntil } from "../support/reliability.ts";
import { newestLog, withCampus } from "../support/groupWorld.ts";

Deno.test("kill -9 during a membership write: the next run logs what arrived, recovered from the journal", async () => {
  await withCampus({
    map: [{ cohort: "students-2026", group: "students_2026" }],
    settings: { discourse: { requestsPerMinute: 300, timeoutSeconds: 30 } },
  }, async (world) => {
    world.discourse.inject({
      kind: "slow",
      count: 1,
      delayMs: 1500,
      method: "PUT",
      path: /^\/groups\/\d+\/members\.json$/,
    });
    const run = world.spawn(["--apply"]);
    await waitUntil(
      "the held membership write",
      () =>
        world.discourse.requests.some((r) =>
          r.method === "PUT" && r.path.startsWith("/groups/")
        ),
    );
    run.kill("SIGKILL");
    await run.done;
    // The held write lands after the kill.
    await waitUntil(
      "the write to land",
      () => world.discourse.groupMembers("students_2026").includes("carla"),
    );
    const next = await world.engine(["--apply"]);
    assert.equal(next.code, 0, next.stderr);
    const rows = (await newestLog(world, "apply")).rows;
    const recovered = rows.filter((r) => r.message.startsWith("recovered"));
    assert.deepEqual(
      recovered.map((r) => `${r.action} ${r.status} ${r.normalized_username}`)
        .sort(),
      ["GROUP_ADD SUCCESS ben", "GROUP_ADD SUCCESS carla"],
    );
    assert.equal(recovered[0].after, '{"group":"students_2026"}');
  });
});
