// Where the groups stage gets a group's numeric id (which the membership
// writes need and its members page lacks): from the profiles this run read,
// which list each account's groups with their ids; only a group with changes
// whose id no profile showed costs `GET /groups/{name}.json`.
import assert from "node:assert/strict";
import { api, type World } from "../support/world.ts";
import {
  groupRequests,
  membershipRows,
  newestLog,
  withCampus,
} from "../support/groupWorld.ts";

/** Ids no default would give: a write to them proves where they came from. */
const forumGroups = (hist101Members: ReadonlyArray<string>) => [
  { id: 77, name: "students_2026", members: ["ana", "dario", "visitor"] },
  { id: 78, name: "hist101", members: [...hist101Members] },
];

/** What this part of a world's traffic did to groups, as `METHOD path`. */
const groupTraffic = (world: World, from: number) =>
  groupRequests({
    ...world,
    discourse: {
      ...world.discourse,
      requests: world.discourse.requests.slice(from),
    },
  }).map((r) => `${r.method} ${r.path}`);

const idReads = (traffic: ReadonlyArray<string>) =>
  traffic.filter((line) => /^GET \/groups\/[^/]+\.json$/.test(line));

Deno.test("a full run takes each group's id from the profiles it read: one members read a group, no group read", async () => {
  // dario's profile shows hist101, ana's and dario's students_2026.
  await withCampus({ forumGroups: forumGroups(["dario"]) }, async (world) => {
    const result = await world.engine(["--apply"]);
    assert.equal(result.code, 0, result.stderr);
    const traffic = groupTraffic(world, 0);
    assert.deepEqual(idReads(traffic), []);
    assert.deepEqual(
      traffic.filter((line) => line.startsWith("GET")).sort(),
      [
        "GET /groups/hist101/members.json",
        "GET /groups/students_2026/members.json",
      ],
    );
    assert.deepEqual(
      traffic.filter((line) => !line.startsWith("GET")).sort(),
      [
        "DELETE /groups/77/members.json",
        "PUT /groups/77/members.json",
        "PUT /groups/78/members.json",
      ],
    );
    assert.deepEqual(world.discourse.groupMembers("students_2026"), [
      "ana",
      "ben",
      "carla",
    ]);
    assert.deepEqual(world.discourse.groupMembers("hist101"), ["ben", "dario"]);
  });
});

Deno.test("a group with changes whose id no profile showed costs one group read: --user of a new member, a group nobody read is in", async () => {
  await withCampus({ forumGroups: forumGroups([]) }, async (world) => {
    // ben is in neither group: his profile shows neither id.
    const one = await world.engine(["--apply", "--user", "ben"]);
    assert.equal(one.code, 0, one.stderr);
    const traffic = groupTraffic(world, 0);
    assert.deepEqual(idReads(traffic).sort(), [
      "GET /groups/hist101.json",
      "GET /groups/students_2026.json",
    ]);
    assert.deepEqual(
      traffic.filter((line) => line.startsWith("PUT")).sort(),
      ["PUT /groups/77/members.json", "PUT /groups/78/members.json"],
    );
    assert.deepEqual(membershipRows((await newestLog(world, "apply")).rows), [
      "GROUP_ADD SUCCESS ben hist101",
      "GROUP_ADD SUCCESS ben students_2026",
    ]);
  });
  // A full run: students_2026's members showed its id; the empty hist101
  // has additions and no profile that shows it.
  await withCampus({ forumGroups: forumGroups([]) }, async (world) => {
    const full = await world.engine(["--apply"]);
    assert.equal(full.code, 0, full.stderr);
    assert.deepEqual(idReads(groupTraffic(world, 0)), [
      "GET /groups/hist101.json",
    ]);
    assert.deepEqual(world.discourse.groupMembers("hist101"), ["ben", "dario"]);
  });
});

Deno.test("a state-assisted run reads no profile: the group it changes costs its group read, the group it leaves costs none", async () => {
  await withCampus({ forumGroups: forumGroups(["dario"]) }, async (world) => {
    assert.equal((await world.engine(["--apply"])).code, 0);
    // Someone takes ben out of students_2026 by hand; no profile changes.
    const removed = await api(world.discourse, "/groups/77/members.json", {
      method: "DELETE",
      form: { usernames: "ben" },
    });
    assert.equal(removed.status, 200, removed.text);
    const before = world.discourse.requests.length;
    const again = await world.engine(["--apply", "--json"]);
    assert.equal(again.code, 0, again.stderr);
    const summary = JSON.parse(again.stdout.trim().split("\n").at(-1)!);
    assert.equal(summary.reads.mode, "state-assisted");
    assert.equal(summary.reads.single_profile_reads, 0);
    const traffic = groupTraffic(world, before);
    assert.deepEqual(idReads(traffic), ["GET /groups/students_2026.json"]);
    assert.deepEqual(
      traffic.filter((line) => !line.startsWith("GET")),
      ["PUT /groups/77/members.json"],
    );
    assert.deepEqual(world.discourse.groupMembers("students_2026"), [
      "ana",
      "ben",
      "carla",
    ]);
  });
});

Deno.test("a group with nothing to change needs no id: its members read is all it costs", async () => {
  // eva is in neither source (her enrolment is suspended) nor group.
  await withCampus({ forumGroups: forumGroups([]) }, async (world) => {
    const dry = await world.engine(["--user", "eva"]);
    assert.equal(dry.code, 0, dry.stderr);
    assert.deepEqual(groupTraffic(world, 0).sort(), [
      "GET /groups/hist101/members.json",
      "GET /groups/students_2026/members.json",
    ]);
  });
});

Deno.test("a profile whose groups are malformed is still read; a well-formed entry among them is used", async () => {
  await withCampus({ forumGroups: forumGroups([]) }, async (world) => {
    const profile = (username: string) =>
      api(world.discourse, `/u/${username}.json?skip_track_visit=true`).then(
        (answer) => answer.json(),
      );
    // ben's answer lists hist101 among broken entries; carla's `groups`
    // is no list at all.
    const ben = await profile("ben");
    ben.user.groups = [
      { id: "78", name: "hist101" },
      { name: "students_2026" },
      null,
      "hist101",
      { id: 78, name: "hist101", automatic: false, user_count: 0 },
    ];
    const carla = await profile("carla");
    carla.user.groups = { id: 77, name: "students_2026" };
    for (const [name, body] of [["ben", ben], ["carla", carla]]) {
      world.discourse.inject({
        kind: "answer",
        count: 1,
        status: 200,
        body: JSON.stringify(body),
        path: new RegExp(`^/u/${name}\\.json$`),
      });
    }
    const before = world.discourse.requests.length;
    const result = await world.engine(["--apply"]);
    assert.equal(result.code, 0, result.stdout + result.stderr);
    const { rows } = await newestLog(world, "apply");
    for (const name of ["ben", "carla"]) {
      const row = rows.find((r) =>
        r.normalized_username === name && !r.action.startsWith("GROUP_")
      );
      // Read, compared, up to date: not an ERROR row.
      assert.equal(row?.status, "EXISTS", `${name}: ${row?.message}`);
    }
    // hist101's id came from ben's one good entry; students_2026's from
    // ana's and dario's profiles, as the double tells them.
    assert.deepEqual(idReads(groupTraffic(world, before)), []);
    assert.deepEqual(world.discourse.groupMembers("hist101"), ["ben", "dario"]);
  });
});
