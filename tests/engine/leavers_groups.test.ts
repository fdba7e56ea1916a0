// The one removal threshold over both removing stages: group removals and
// suspensions are counted together, held together, let through together.
import assert from "node:assert/strict";
import { discourseUser, moodleUser } from "../doubles/scenarios.ts";
import { withCampus } from "../support/groupWorld.ts";
import { newestRows, suspendedInForum } from "../support/leavers.ts";
import { writes } from "../support/world.ts";

/** The campus (two membership removals due) and Fred, who left Moodle. */
const campusWithLeaver = {
  extraMoodleUsers: [moodleUser(7, "fred", { suspended: true })],
  extraForumUsers: [discourseUser(17, "fred")],
  settings: {
    deprovision: { suspendedInMoodle: "suspend" },
    safety: { maxRemovals: 2 },
  },
};

Deno.test("threshold: group removals and suspensions count together; past it neither stage removes anything", async () => {
  await withCampus(campusWithLeaver, async (world) => {
    const held = await world.engine(["--apply"]);
    assert.equal(held.code, 5, held.stdout + held.stderr);
    assert.match(
      held.stdout,
      /3 removals \(2 group memberships and 1 suspension\), more than safety\.maxRemovals \(2\)/,
    );
    assert.ok(!suspendedInForum(world, 17));
    assert.ok(
      !writes(world).some((r) =>
        r.method === "DELETE" || r.path.endsWith("/suspend.json")
      ),
      "no membership removed, nobody suspended",
    );
    const rows = await newestRows(world, "apply");
    assert.equal(
      rows.find((r) => r.action === "SUSPEND")?.status,
      "DRY_RUN",
    );

    const allowed = await world.engine(["--apply", "--allow-removals", "3"]);
    assert.equal(allowed.code, 0, allowed.stdout + allowed.stderr);
    assert.ok(suspendedInForum(world, 17));
    assert.ok(writes(world).some((r) => r.method === "DELETE"));
  });
});
