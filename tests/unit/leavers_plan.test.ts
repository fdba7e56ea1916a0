import assert from "node:assert/strict";
import type {
  ForumAccountState,
  LeaverAccount,
  LeaversPlanInput,
  MoodleUserState,
  StoredLink,
} from "../../src/leavers/model.ts";
import { planLeavers } from "../../src/leavers/plan.ts";
import type { StoredUser } from "../../src/state/Store.ts";

// The runner hands the store's entries over as they are.
const _storeEntriesFit = (entry: StoredUser): StoredLink => entry;

const ourReason = "Account closed in Moodle";
const now = new Date("2026-12-01T12:00:00Z");
const suspendedTill = "3000-01-01T00:00:00.000Z";

const moodleUser = (id: number, suspended = false): MoodleUserState => ({
  id,
  username: `m${id}`,
  suspended,
});

/** Moodle user N owns forum account N, named fN. */
const forumAccount = (
  id: number,
  extra: Partial<ForumAccountState> = {},
): ForumAccountState => ({
  id,
  username: `f${id}`,
  staff: false,
  suspendedTill: undefined,
  suspendReason: undefined,
  ...extra,
});

const link = (id: number, extra: Partial<StoredLink> = {}): StoredLink => ({
  moodleId: id,
  forumId: id,
  forumUsername: `f${id}`,
  absentFullLists: 0,
  lastSeenAt: "2026-11-30T02:00:00.000Z",
  suspendedByUsAt: undefined,
  ...extra,
});
const storeOf = (links: ReadonlyArray<StoredLink>) =>
  new Map(links.map((entry) => [entry.moodleId, entry]));
/** The ten users' store, with some entries replaced. */
const storeWith = (...changed: ReadonlyArray<StoredLink>) =>
  storeOf(
    [...input().store!.values()].map((entry) =>
      changed.find((c) => c.moodleId === entry.moodleId) ?? entry
    ),
  );

const found = (account: ForumAccountState): LeaverAccount => ({
  _tag: "Found",
  account,
});

/** Ten users in Moodle, the store and the forum, unless a test says otherwise. */
const input = (given: Partial<LeaversPlanInput> = {}): LeaversPlanInput => {
  const ids = Array.from({ length: 10 }, (_, i) => i + 1);
  return {
    policy: {
      suspendedInMoodle: "suspend",
      goneFromMoodle: "suspend",
      reason: ourReason,
      reactivate: true,
    },
    moodleUsers: ids.map((id) => moodleUser(id)),
    runKind: "full",
    accounts: new Map(ids.map((id) => [id, found(forumAccount(id))])),
    store: storeOf(ids.map((id) => link(id))),
    excluded: new Map(),
    apiUser: "system",
    now,
    ...given,
  };
};

/** The ten users with some of them replaced. */
const usersWith = (...changed: ReadonlyArray<MoodleUserState>) =>
  input().moodleUsers.map((user) =>
    changed.find((c) => c.id === user.id) ?? user
  );
const accountsWith = (...changed: ReadonlyArray<ForumAccountState>) =>
  new Map([...input().accounts].map(([id, account]) => {
    const replaced = changed.find((c) => c.id === id);
    return [id, replaced === undefined ? account : found(replaced)];
  }));

Deno.test("a user suspended in Moodle is suspended in the forum", () => {
  const plan = planLeavers(
    input({ moodleUsers: usersWith(moodleUser(3, true)) }),
  );
  assert.deepEqual(plan.suspensions, [{
    moodleId: 3,
    moodleUsername: "m3",
    forumUserId: 3,
    forumUsername: "f3",
    cause: { _tag: "SuspendedInMoodle" },
    message: "suspended in Moodle",
  }]);
  assert.deepEqual([plan.reactivations, plan.refusals], [[], []]);
  assert.equal(plan.exitRemovalsHeld, false);
});

Deno.test('suspendedInMoodle "off" leaves such users alone', () => {
  const plan = planLeavers(input({
    moodleUsers: usersWith(moodleUser(3, true)),
    policy: { ...input().policy, suspendedInMoodle: "off" },
  }));
  assert.deepEqual([plan.suspensions, plan.refusals], [[], []]);
});

Deno.test("staff, the API user and excluded users are never suspended, each with its reason", () => {
  const plan = planLeavers(input({
    moodleUsers: usersWith(
      moodleUser(1, true),
      moodleUser(2, true),
      moodleUser(3, true),
    ),
    accounts: accountsWith(
      forumAccount(1, { staff: true }),
      forumAccount(2, { username: "System" }),
    ),
    excluded: new Map([[3, 'matches exclusion "teacher*"']]),
  }));
  assert.deepEqual(plan.suspensions, []);
  assert.deepEqual(
    plan.refusals.map((r) => [r.moodleId, r.kind, r.wanted]),
    [[1, "Staff", "suspend"], [2, "ApiUser", "suspend"], [
      3,
      "Excluded",
      "suspend",
    ]],
  );
  assert.match(plan.refusals[0].message, /staff accounts .* never suspended/);
  assert.match(plan.refusals[1].message, /discourse\.apiUser/);
  assert.equal(
    plan.refusals[2].message,
    'not suspended: matches exclusion "teacher*"',
  );
});

Deno.test("an account already suspended is already done, not suspended again", () => {
  const plan = planLeavers(input({
    moodleUsers: usersWith(moodleUser(4, true)),
    accounts: accountsWith(forumAccount(4, { suspendedTill })),
  }));
  assert.deepEqual(plan.suspensions, []);
  assert.equal(plan.refusals[0].kind, "AlreadySuspended");
  assert.match(plan.refusals[0].message, /nothing to do/);
});

Deno.test("an account the matching refused is not suspended; no account, nothing to say", () => {
  const accounts = new Map(input().accounts);
  accounts.set(5, {
    _tag: "Refused",
    message: 'forum account "f5" belongs to someone else',
  });
  accounts.delete(6);
  const plan = planLeavers(input({
    moodleUsers: usersWith(moodleUser(5, true), moodleUser(6, true)),
    accounts,
  }));
  assert.deepEqual(plan.suspensions, []);
  assert.deepEqual(plan.refusals.map((r) => [r.moodleId, r.kind]), [
    [5, "AccountRefused"],
  ]);
});

const withoutUser = (id: number) =>
  input().moodleUsers.filter((user) => user.id !== id);

Deno.test("gone from one full list: nothing suspended, the list is recorded", () => {
  const plan = planLeavers(input({ moodleUsers: withoutUser(7) }));
  assert.deepEqual([plan.suspensions, plan.refusals], [[], []]);
  assert.deepEqual(plan.goneCheck, { _tag: "Done" });
  assert.equal(plan.recordFullList, true);
});

Deno.test("gone from two full lists in a row: suspended, saying since when", () => {
  const store = storeWith(
    link(7, { absentFullLists: 1, lastSeenAt: "2026-11-24T02:00:00.000Z" }),
  );
  const plan = planLeavers(input({ moodleUsers: withoutUser(7), store }));
  assert.deepEqual(plan.suspensions, [{
    moodleId: 7,
    moodleUsername: undefined,
    forumUserId: 7,
    forumUsername: "f7",
    cause: {
      _tag: "Gone",
      absentFullLists: 2,
      lastSeenAt: "2026-11-24T02:00:00.000Z",
    },
    message: "absent from Moodle since 2026-11-24",
  }]);
});

Deno.test("a gone user no full list ever held is counted in lists, not dated", () => {
  const store = storeWith(
    link(7, { absentFullLists: 4, lastSeenAt: undefined }),
  );
  const plan = planLeavers(input({ moodleUsers: withoutUser(7), store }));
  assert.equal(
    plan.suspensions[0].message,
    "absent from the last 5 full Moodle lists",
  );
});

Deno.test("a gone staff account is refused like any other", () => {
  const plan = planLeavers(input({
    moodleUsers: withoutUser(7),
    store: storeWith(link(7, { absentFullLists: 3 })),
    accounts: accountsWith(forumAccount(7, { staff: true })),
  }));
  assert.deepEqual(plan.suspensions, []);
  assert.equal(plan.refusals[0].kind, "Staff");
});

Deno.test("a Moodle list shrunk to half suspends no one as gone, and the run must exit 5", () => {
  const store = storeOf(
    [...input().store!.values()].map((entry) =>
      link(entry.moodleId, { absentFullLists: 1 })
    ),
  );
  const half = input().moodleUsers.slice(0, 5).map((user) =>
    user.id === 2 ? moodleUser(2, true) : user
  );
  const plan = planLeavers(input({ moodleUsers: half, store }));
  assert.deepEqual(
    plan.suspensions.map((s) => s.cause._tag),
    ["SuspendedInMoodle"],
    "users Moodle does list are still handled",
  );
  assert.equal(plan.goneCheck._tag, "ListShrunk");
  assert.match(
    plan.goneCheck._tag === "ListShrunk" ? plan.goneCheck.message : "",
    /holds 5 users, fewer than 90% of the 10 the state store knows/,
  );
  assert.equal(plan.exitRemovalsHeld, true);
  assert.equal(plan.recordFullList, false, "a broken list counts no absence");
});

Deno.test("a list at exactly 90% of the store is trusted", () => {
  const store = storeWith(link(10, { absentFullLists: 1 }));
  const plan = planLeavers(input({ store, moodleUsers: withoutUser(10) }));
  assert.equal(plan.goneCheck._tag, "Done");
  assert.deepEqual(plan.suspensions.map((s) => s.moodleId), [10]);

  const seventy = Array.from({ length: 70 }, (_, i) => link(i + 1));
  const listed = (count: number) =>
    planLeavers(input({
      store: storeOf(seventy),
      moodleUsers: seventy.slice(0, count).map((l) => moodleUser(l.moodleId)),
    })).goneCheck._tag;
  assert.equal(listed(63), "Done", "63 of 70 is 90%");
  assert.equal(listed(62), "ListShrunk");
});

Deno.test("--user and batch runs never suspend gone users nor count absences", () => {
  const store = storeOf(
    [...input().store!.values()].map((entry) =>
      link(entry.moodleId, { absentFullLists: 5 })
    ),
  );
  const plan = planLeavers(input({
    runKind: "partial",
    moodleUsers: [moodleUser(1, true)],
    store,
  }));
  assert.deepEqual(plan.suspensions.map((s) => s.moodleId), [1]);
  assert.equal(plan.goneCheck._tag, "PartialRun");
  assert.equal(plan.recordFullList, false);
  assert.equal(plan.exitRemovalsHeld, false);
});

Deno.test("without the state store, gone users are never suspended and the run says why", () => {
  const plan = planLeavers(
    input({ store: undefined, moodleUsers: withoutUser(7) }),
  );
  assert.equal(plan.goneCheck._tag, "NoStore");
  assert.match(
    plan.goneCheck._tag === "NoStore" ? plan.goneCheck.message : "",
    /without the state store/,
  );
  assert.deepEqual(plan.suspensions, []);
  const off = planLeavers(input({
    store: undefined,
    policy: { ...input().policy, goneFromMoodle: "off" },
  }));
  assert.deepEqual(off.goneCheck, { _tag: "Off" });
});

Deno.test("our suspension is lifted when the Moodle user is active again", () => {
  const store = storeWith(
    link(2, { suspendedByUsAt: "2026-11-20T02:00:00.000Z" }),
  );
  const plan = planLeavers(input({
    store,
    accounts: accountsWith(
      forumAccount(2, { suspendedTill, suspendReason: "edited by hand" }),
      forumAccount(3, { suspendedTill, suspendReason: ourReason }),
    ),
  }));
  assert.deepEqual(
    plan.reactivations.map((r) => [r.moodleId, r.forumUsername, r.message]),
    [[2, "f2", "active again in Moodle"], [3, "f3", "active again in Moodle"]],
    "recorded in the store, or recognisable by our reason",
  );
});

Deno.test("someone else's suspension is never lifted", () => {
  const plan = planLeavers(input({
    accounts: accountsWith(
      forumAccount(4, { suspendedTill, suspendReason: "spam" }),
    ),
  }));
  assert.deepEqual(plan.reactivations, []);
  assert.equal(plan.refusals[0].kind, "NotOurs");
  assert.equal(plan.refusals[0].wanted, "reactivate");
  assert.match(plan.refusals[0].message, /reason: "spam"/);
});

Deno.test("no reactivation when reactivate is off, the account is excluded, or the suspension is over", () => {
  const accounts = accountsWith(
    forumAccount(2, { suspendedTill, suspendReason: ourReason }),
    forumAccount(3, {
      suspendedTill: "2026-11-30T00:00:00.000Z",
      suspendReason: ourReason,
    }),
  );
  const off = planLeavers(input({
    accounts,
    policy: { ...input().policy, reactivate: false },
  }));
  assert.deepEqual([off.reactivations, off.refusals], [[], []]);
  const excluded = planLeavers(input({
    accounts,
    excluded: new Map([[2, 'matches exclusion "f2"']]),
  }));
  assert.deepEqual(excluded.reactivations, []);
  assert.deepEqual(excluded.refusals.map((r) => r.kind), ["Excluded"]);
});
