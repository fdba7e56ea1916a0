// Leavers and interruptions: a signal between suspensions finishes the one
// in flight and starts no other; a kill -9 during one leaves its intent in
// the journal, which the next run logs before writing anything.
import assert from "node:assert/strict";
import { discourseUser, moodleUser, withGuest } from "../doubles/scenarios.ts";
import {
  logsOf,
  seedStore,
  storeOf,
  suspendedInForum,
} from "../support/leavers.ts";
import { readAll } from "../support/state.ts";
import { waitUntil } from "../support/reliability.ts";
import {
  readLog,
  withWorld,
  type World,
  type WorldOptions,
} from "../support/world.ts";

const leaverIds = [2, 3, 4, 5];

/** Four leavers; the suspension of the second is slow to answer. */
const fourLeavers: WorldOptions = {
  moodleUsers: withGuest(
    leaverIds.map((id) => moodleUser(id, `leaver${id}`, { suspended: true })),
  ),
  forumUsers: leaverIds.map((id) => discourseUser(10 + id, `leaver${id}`)),
  settings: { deprovision: { suspendedInMoodle: "suspend" } },
};

const suspensionsSent = (world: World) =>
  world.discourse.requests.filter((r) =>
    r.method === "PUT" && /^\/admin\/users\/\d+\/suspend\.json$/.test(r.path)
  ).map((r) => Number(r.path.split("/")[3]));

const slowSecondSuspension = (world: World) =>
  world.discourse.inject({
    kind: "slow",
    count: 1,
    delayMs: 600,
    method: "PUT",
    path: /^\/admin\/users\/13\/suspend\.json$/,
  });

Deno.test("SIGINT between suspensions: the one in flight finishes and is logged, no other starts, exit 130; the next run completes", async () => {
  await withWorld(fourLeavers, async (world) => {
    slowSecondSuspension(world);
    const run = world.spawn(["--all", "--apply"]);
    await waitUntil(
      "the slow suspension to arrive",
      () => suspensionsSent(world).includes(13),
    );
    run.kill("SIGINT");
    const result = await run.done;
    assert.equal(result.code, 130, result.stdout + result.stderr);
    assert.deepEqual(suspensionsSent(world), [12, 13], "none after the signal");

    const [log] = await logsOf(world, "apply");
    const { rows } = await readLog(log);
    const suspends = rows.filter((r) => r.action === "SUSPEND");
    // Every suspension sent has its row, and it says what the forum holds.
    assert.deepEqual(
      suspends.map((r) => `${r.moodle_id} ${r.status}`),
      ["2 SUCCESS", "3 SUCCESS"],
    );
    for (const id of [12, 13]) assert.ok(suspendedInForum(world, id));
    for (const id of [14, 15]) assert.ok(!suspendedInForum(world, id));

    const rest = await world.run(["--all", "--apply"]);
    assert.equal(rest.code, 0, rest.stdout + rest.stderr);
    const logs = await logsOf(world, "apply");
    const second = (await readLog(logs[logs.length - 1])).rows.filter((r) =>
      r.action === "SUSPEND"
    );
    assert.deepEqual(
      second.map((r) => `${r.moodle_id} ${r.status}`),
      ["2 SKIPPED", "3 SKIPPED", "4 SUCCESS", "5 SUCCESS"],
    );
    for (const id of [14, 15]) assert.ok(suspendedInForum(world, id));
  });
});

Deno.test("kill -9 during a suspension: the next --apply run logs it from the journal first", async () => {
  await withWorld(fourLeavers, async (world) => {
    slowSecondSuspension(world);
    const run = world.spawn(["--all", "--apply"]);
    await waitUntil(
      "the slow suspension to arrive",
      () => suspensionsSent(world).includes(13),
    );
    run.kill("SIGKILL");
    await run.done;
    const [killedLog] = await logsOf(world, "apply");
    const journal = await Deno.readTextFile(`${killedLog}.journal`);
    assert.match(journal, /"action":"SUSPEND"/);
    // The double finishes a request its client left: the suspension lands
    // with nobody to log it.
    await waitUntil(
      "the orphaned suspension to land",
      () => suspendedInForum(world, 13),
    );

    const next = await world.run(["--all", "--apply"]);
    assert.equal(next.code, 0, next.stdout + next.stderr);
    const logs = await logsOf(world, "apply");
    const { rows } = await readLog(logs[logs.length - 1]);
    const recovered = rows.find((r) => r.message.startsWith("recovered from"));
    assert.ok(recovered, "the unfinished suspension has its row");
    assert.equal(recovered.action, "SUSPEND");
    assert.equal(recovered.moodle_id, "3");
    // The journal's check found it in the forum: a row revert can undo.
    assert.equal(recovered.status, "SUCCESS");
    assert.match(recovered.message, /holds suspended as written/);
    assert.equal(recovered.after, '{"suspended":true}');
    assert.equal(rows.indexOf(recovered), 0, "logged before anything else");
    for (const id of [12, 13, 14, 15]) assert.ok(suspendedInForum(world, id));
  });
});
Deno.test("store: a run interrupted between suspensions marks exactly the ones it logged as SUCCESS", async () => {
  const ids = [2, 3, 4, 5];
  await withWorld({
    moodleUsers: withGuest(
      ids.map((id) => moodleUser(id, `leaver${id}`, { suspended: true })),
    ),
    forumUsers: ids.map((id) => discourseUser(10 + id, `leaver${id}`)),
    settings: { deprovision: { suspendedInMoodle: "suspend" } },
  }, async (world) => {
    await seedStore(
      world,
      ids.map((id) => ({
        moodleId: id,
        forumId: 10 + id,
        name: `leaver${id}`,
      })),
    );
    world.discourse.inject({
      kind: "slow",
      count: 1,
      delayMs: 600,
      method: "PUT",
      path: /^\/admin\/users\/13\/suspend\.json$/,
    });
    const run = world.spawn([
      "--all",
      "--apply",
      "--state",
      storeOf(world).path,
    ]);
    await waitUntil(
      "the slow suspension to arrive",
      () =>
        world.discourse.requests.some((r) =>
          r.path === "/admin/users/13/suspend.json"
        ),
    );
    run.kill("SIGINT");
    const result = await run.done;
    assert.equal(result.code, 130, result.stdout + result.stderr);
    const { rows } = await readLog((await logsOf(world, "apply"))[0]);
    const logged = rows.filter((r) =>
      r.action === "SUSPEND" && r.status === "SUCCESS"
    ).map((r) => Number(r.moodle_id));
    const marked = [...(await readAll(storeOf(world))).values()].filter((e) =>
      e.suspendedByUsAt !== undefined
    ).map((e) => e.moodleId);
    assert.deepEqual(logged, [2, 3]);
    assert.deepEqual(marked, logged, "the store marks what the log says");

    const rest = await world.run([
      "--all",
      "--apply",
      "--state",
      storeOf(world).path,
    ]);
    assert.equal(rest.code, 0, rest.stdout + rest.stderr);
    const all = [...(await readAll(storeOf(world))).values()].filter((e) =>
      e.suspendedByUsAt !== undefined
    ).map((e) => e.moodleId);
    assert.deepEqual(all, ids);
  });
});
