import assert from "node:assert/strict";
import type {
  AccountVerdict,
  GroupPlan,
  GroupRead,
  GroupsPlanInput,
  SourceRead,
} from "../../src/groups/model.ts";
import { sourceKey } from "../../src/groups/model.ts";
import { planGroups } from "../../src/groups/plan.ts";
import { membershipRequests } from "../../src/groups/requests.ts";
import type { GroupMapEntry } from "../../src/groups/settings.ts";

const cohort = (name: string, group: string): GroupMapEntry => ({
  _tag: "Cohort",
  cohort: name,
  group,
});
const course = (
  name: string,
  group: string,
  roles?: [string, ...string[]],
): GroupMapEntry => ({ _tag: "Course", course: name, roles, group });

const members = (...moodleIds: number[]): SourceRead => ({
  _tag: "Members",
  moodleIds,
});
const found = (
  groupMembers: ReadonlyArray<string>,
  owners: ReadonlyArray<string> = [],
): GroupRead => ({
  _tag: "Found",
  id: 41,
  automatic: false,
  members: [...groupMembers, ...owners],
  owners,
});

/** Moodle user N maps to forum account uN unless the test says otherwise. */
const accountsFor = (ids: Iterable<number>) =>
  new Map<number, AccountVerdict>(
    [...ids].map((id) => [id, {
      _tag: "Account",
      username: `u${id}`,
      moodleUsername: `m${id}`,
    }]),
  );

const plan = (
  given: Partial<GroupsPlanInput> & {
    readonly reads: ReadonlyArray<[GroupMapEntry, SourceRead]>;
    readonly group: GroupRead;
  },
): GroupPlan => {
  const { reads, group, ...rest } = given;
  const plans = planGroups({
    map: reads.map(([entry]) => entry),
    sources: new Map(reads.map(([entry, read]) => [sourceKey(entry), read])),
    accounts: accountsFor([1, 2, 3, 4, 5, 6, 7, 8, 9]),
    groups: new Map([[reads[0][0].group.toLowerCase(), group]]),
    untouchable: () => undefined,
    remove: true,
    create: false,
    allowEmptyGroups: false,
    ...rest,
  });
  assert.equal(plans.length, 1, "one group mapped");
  return plans[0];
};

const usernames = (changes: ReadonlyArray<{ readonly username: string }>) =>
  changes.map((change) => change.username);

Deno.test("source members who are not in the group are added; members not in the source removed", () => {
  const result = plan({
    reads: [[cohort("students-2026", "students"), members(1, 2, 3)]],
    group: found(["u2", "u4", "stranger"]),
  });
  assert.deepEqual(usernames(result.additions), ["u1", "u3"]);
  assert.deepEqual(result.additions[0], {
    username: "u1",
    moodleId: 1,
    reason: 'in cohort "students-2026"',
  });
  assert.deepEqual(usernames(result.removals), ["u4", "stranger"]);
  assert.equal(result.removals[0].moodleId, 4, "u4 maps to Moodle user 4");
  assert.equal(result.removals[1].moodleId, undefined, "a forum-only account");
  assert.match(result.removals[0].reason, /in none of cohort "students-2026"/);
  assert.deepEqual(result.guards, []);
  assert.equal(result.groupId, 41);
});

Deno.test("usernames compare case-insensitively, as Discourse compares them", () => {
  const result = plan({
    reads: [[cohort("c", "g1x"), members(1)]],
    group: found(["U1"]),
  });
  assert.deepEqual(result.additions, []);
  assert.deepEqual(result.removals, []);
});

Deno.test("several entries feed one group: its members are their union", () => {
  const result = plan({
    reads: [
      [cohort("students-2026", "hist101"), members(1, 2)],
      [course("HIST101", "HIST101", ["editingteacher"]), members(2, 3)],
    ],
    group: found(["u1", "u3", "u5"]),
  });
  assert.deepEqual(usernames(result.additions), ["u2"]);
  assert.deepEqual(usernames(result.removals), ["u5"]);
  assert.match(
    result.removals[0].reason,
    /cohort "students-2026", course "HIST101" \(roles editingteacher\)/,
  );
});

Deno.test("a user in several sources of the union is added, or refused, once", () => {
  const accounts = accountsFor([1]);
  accounts.set(2, {
    _tag: "Refused",
    kind: "NotFound",
    message: "no forum account",
  });
  const result = plan({
    reads: [
      [cohort("a", "g1x"), members(1, 2)],
      [course("B", "g1x"), members(2, 1)],
    ],
    group: found([]),
    accounts,
  });
  assert.deepEqual(usernames(result.additions), ["u1"]);
  assert.deepEqual(result.leftAlone.map((left) => left.moodleId), [2]);
});

Deno.test("a group the forum marks automatic is never changed", () => {
  const result = plan({
    reads: [[cohort("c", "helpers"), members(1)]],
    group: {
      _tag: "Found",
      id: 3,
      automatic: true,
      members: ["u9"],
      owners: [],
    },
  });
  assert.equal(result.guards[0]._tag, "AutomaticGroup");
  assert.match(result.guards[0].message, /remove it from groups\.map/);
  assert.deepEqual([result.additions, result.removals], [[], []]);
});

Deno.test("a missing group is an error naming the group and the fix, unless create is on", () => {
  const reads: ReadonlyArray<[GroupMapEntry, SourceRead]> = [
    [cohort("c", "hist101"), members(1, 2)],
  ];
  const refused = plan({ reads, group: { _tag: "Missing" } });
  assert.equal(refused.guards[0]._tag, "GroupMissing");
  assert.match(refused.guards[0].message, /group "hist101" does not exist/);
  assert.match(refused.guards[0].message, /"groups\.create": true/);
  assert.deepEqual(refused.additions, []);
  assert.equal(refused.create, false);

  const created = plan({ reads, group: { _tag: "Missing" }, create: true });
  assert.equal(created.create, true);
  assert.equal(created.groupId, undefined);
  assert.deepEqual(usernames(created.additions), ["u1", "u2"]);
  assert.deepEqual(created.guards, []);
});

Deno.test("a group that could not be read is left unchanged with an error", () => {
  const result = plan({
    reads: [[cohort("c", "g1x"), members(1)]],
    group: { _tag: "Failed", reason: "HTTP 500" },
  });
  assert.equal(result.guards[0]._tag, "GroupUnreadable");
  assert.match(result.guards[0].message, /HTTP 500/);
  assert.deepEqual(result.additions, []);
});

Deno.test("a user the sync would not write is not added, with the profile sync's reason", () => {
  const accounts = accountsFor([1, 2]);
  accounts.set(3, {
    _tag: "Refused",
    kind: "Excluded",
    message: 'matches exclusion "teacher*"',
  });
  accounts.set(4, {
    _tag: "Refused",
    kind: "Collision",
    message: 'forum username "ana" is shared by ana, Ana',
    username: "ana",
  });
  const result = plan({
    reads: [[cohort("c", "g1x"), members(1, 3, 4, 77)]],
    group: found(["u2", "ana"]),
    accounts,
  });
  assert.deepEqual(usernames(result.additions), ["u1"]);
  assert.deepEqual(result.leftAlone, [
    {
      username: undefined,
      moodleId: 3,
      direction: "add",
      reason: 'not added: matches exclusion "teacher*"',
    },
    {
      username: undefined,
      moodleId: 77,
      direction: "add",
      reason:
        "not added: this Moodle user was not among the users this run read",
    },
    {
      username: "ana",
      moodleId: undefined,
      direction: "remove",
      reason: 'not removed: forum username "ana" is shared by ana, Ana',
    },
  ]);
  // A colliding user's account is not judged either way: it stays.
  assert.deepEqual(usernames(result.removals), ["u2"]);
});

Deno.test("accounts the sync never touches (exclusions, the API user) are neither added nor removed", () => {
  const result = plan({
    reads: [[cohort("c", "g1x"), members(1, 2)]],
    group: found(["system"]),
    untouchable: (username) =>
      username === "system" || username === "u2"
        ? "the account the sync works as"
        : undefined,
  });
  assert.deepEqual(usernames(result.additions), ["u1"]);
  assert.deepEqual(result.removals, []);
  assert.deepEqual(
    result.leftAlone.map((left) => `${left.direction} ${left.username}`),
    ["add u2", "remove system"],
  );
});

Deno.test("group owners are never removed, even when no source names them", () => {
  const result = plan({
    reads: [[cohort("c", "g1x"), members()]],
    group: found(["u4"], ["teacher"]),
    allowEmptyGroups: true,
  });
  assert.deepEqual(usernames(result.removals), ["u4"]);
  assert.deepEqual(result.leftAlone, [{
    username: "teacher",
    moodleId: undefined,
    direction: "remove",
    reason: "not removed: group owners are never removed by the sync",
  }]);
});

Deno.test("an empty source while the group has members removes no one, until --allow-empty-groups", () => {
  const given = {
    reads: [[cohort("students-2026", "students"), members()]] as Array<
      [GroupMapEntry, SourceRead]
    >,
    group: found(["u1", "u2"]),
  };
  const guarded = plan(given);
  assert.deepEqual(guarded.removals, []);
  assert.deepEqual(usernames(guarded.heldRemovals), ["u1", "u2"]);
  assert.equal(guarded.guards[0]._tag, "EmptySource");
  assert.match(
    guarded.guards[0].message,
    /cohort "students-2026" came back empty/,
  );
  assert.match(guarded.guards[0].message, /--allow-empty-groups/);

  const allowed = plan({ ...given, allowEmptyGroups: true });
  assert.deepEqual(usernames(allowed.removals), ["u1", "u2"]);
  assert.deepEqual(allowed.guards, []);
});

Deno.test("an empty source that would remove no one raises no alarm", () => {
  const result = plan({
    reads: [
      [cohort("new-cohort", "g1x"), members()],
      [course("C1", "g1x"), members(1)],
    ],
    group: found(["u1"], ["owner1"]),
  });
  assert.deepEqual(result.guards, []);
  assert.deepEqual(result.removals, []);
});

Deno.test("a failed source is never read as empty; additions from the union's healthy sources proceed", () => {
  const result = plan({
    reads: [
      [cohort("c", "g1x"), members(1)],
      [course("HIST101", "g1x"), {
        _tag: "Failed",
        reason: "moodle/course:enrolreview missing",
      }],
    ],
    group: found(["u5", "u6"]),
  });
  assert.deepEqual(usernames(result.additions), ["u1"]);
  assert.deepEqual(result.removals, []);
  assert.deepEqual(usernames(result.heldRemovals), ["u5", "u6"]);
  assert.equal(result.guards.length, 1);
  assert.equal(result.guards[0]._tag, "SourceFailed");
  assert.match(result.guards[0].message, /course "HIST101" could not be read/);
  assert.match(result.guards[0].message, /enrolreview missing/);
});

Deno.test("a source the runner did not read at all counts as failed", () => {
  const plans = planGroups({
    map: [cohort("c", "g1x")],
    sources: new Map(),
    accounts: accountsFor([1]),
    groups: new Map([["g1x", found(["u1"])]]),
    untouchable: () => undefined,
    remove: true,
    create: false,
    allowEmptyGroups: false,
  });
  assert.equal(plans[0].guards[0]._tag, "SourceFailed");
  assert.deepEqual(plans[0].removals, []);
});

Deno.test("remove: false only adds", () => {
  const result = plan({
    reads: [[cohort("c", "g1x"), members(1)]],
    group: found(["u2"]),
    remove: false,
  });
  assert.deepEqual(usernames(result.additions), ["u1"]);
  assert.deepEqual([result.removals, result.heldRemovals], [[], []]);
});

Deno.test("--user changes only that user's memberships; forum-only members stay", () => {
  const result = plan({
    reads: [[cohort("c", "g1x"), members(1, 2)]],
    group: found(["u3", "stranger"]),
    onlyMoodleIds: new Set([2]),
  });
  assert.deepEqual(usernames(result.additions), ["u2"]);
  assert.deepEqual(result.removals, []);
  const leaving = plan({
    reads: [[cohort("c", "g1x"), members(1)]],
    group: found(["u3", "stranger"]),
    onlyMoodleIds: new Set([3]),
  });
  assert.deepEqual(usernames(leaving.removals), ["u3"]);
  assert.deepEqual(leaving.additions, []);
});

Deno.test("groups come out in map order, one plan per group", () => {
  const plans = planGroups({
    map: [cohort("a", "zeta"), cohort("b", "alpha"), course("c", "ZETA")],
    sources: new Map([
      [sourceKey(cohort("a", "zeta")), members(1)],
      [sourceKey(cohort("b", "alpha")), members(2)],
      [sourceKey(course("c", "ZETA")), members(3)],
    ]),
    accounts: accountsFor([1, 2, 3]),
    groups: new Map([["zeta", found([])], ["alpha", found([])]]),
    untouchable: () => undefined,
    remove: true,
    create: false,
    allowEmptyGroups: false,
  });
  assert.deepEqual(
    plans.map((p) => [p.group, usernames(p.additions)]),
    [["zeta", ["u1", "u3"]], ["alpha", ["u2"]]],
  );
});

Deno.test("2,500 changes in one group cost three calls a direction, not 2,500", () => {
  const ids = Array.from({ length: 2500 }, (_, i) => i + 1);
  const leavers = Array.from({ length: 2500 }, (_, i) => `old${i}`);
  const result = plan({
    reads: [[cohort("big", "big_group"), members(...ids)]],
    group: found(leavers),
    accounts: accountsFor(ids),
    allowEmptyGroups: true,
  });
  const requests = membershipRequests(result);
  assert.deepEqual(
    requests.map((r) => `${r.direction} ${r.usernames.length}`),
    [
      "add 1000",
      "add 1000",
      "add 500",
      "remove 1000",
      "remove 1000",
      "remove 500",
    ],
  );
  assert.deepEqual(
    requests.filter((r) => r.direction === "add").flatMap((r) => r.usernames),
    ids.map((id) => `u${id}`),
  );
  assert.ok(requests.every((r) => r.group === "big_group"));
  assert.deepEqual(
    membershipRequests({ ...result, additions: [], removals: [] }),
    [],
  );
});
