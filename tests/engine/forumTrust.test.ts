// The forum is not trusted blindly: an answer about another account than the
// one asked for stops that user, and an address several Moodle users share is
// never requested for any of them.
import assert from "node:assert/strict";
import type { WrongAccountAnswer } from "../doubles/fakeDiscourse.ts";
import { discourseUser, moodleUser } from "../doubles/scenarios.ts";
import { byMoodleId, lastLog, withWorld, writes } from "../support/world.ts";

const moodleUsers = [
  moodleUser(2, "alice", { city: "Lyon", country: "FR" }),
  moodleUser(3, "bob", { city: "Rome", country: "IT" }),
];

/** Forum accounts that all differ from Moodle, and an admin to aim at. */
const forumUsers = () => [
  discourseUser(10, "alice", { external_id: "2", email: "old@forum.example" }),
  discourseUser(11, "bob", { external_id: "3" }),
  discourseUser(12, "victim_admin", {
    admin: true,
    name: "The Admin",
    email: "admin@forum.example",
    external_id: "99",
  }),
];

const connectSecret = "a-discourse-connect-secret";

const withHostileForum = (
  lies: ReadonlyArray<WrongAccountAnswer>,
  settings: Record<string, unknown>,
  body: Parameters<typeof withWorld>[1],
) =>
  withWorld({
    moodleUsers,
    forumUsers: forumUsers(),
    settings,
    discourse: {
      wrongAccount: lies,
      site: { discourseConnectSecret: connectSecret },
    },
  }, body);

const victimUntouched = (
  world: Parameters<Parameters<typeof withWorld>[1]>[0],
) => {
  const victim = world.discourse.userByUsername("victim_admin");
  assert.equal(victim?.name, "The Admin");
  assert.equal(victim?.location, undefined);
  assert.equal(
    writes(world).filter((r) => r.path.includes("victim_admin")).length,
    0,
  );
  assert.deepEqual(
    world.discourse.emailChangeRequests.filter((r) => r.username !== "bob"),
    [],
  );
};

Deno.test("a profile read answered with another account: that user is an ERROR row, nothing is written to either account", async () => {
  await withHostileForum(
    [{ asked: { username: "alice" }, answeredWith: "victim_admin" }],
    {},
    async (world) => {
      const result = await world.engine(["--all", "--apply"]);
      assert.equal(result.code, 1, result.stderr);
      const rows = byMoodleId((await lastLog(world)).rows);
      assert.equal(rows.get(2)?.action, "ERROR");
      assert.equal(rows.get(2)?.status, "ERROR");
      assert.match(
        rows.get(2)?.message ?? "",
        /not written: Discourse answered the read of user "alice" with the account "victim_admin"/,
      );
      assert.equal(rows.get(2)?.fields, "");
      victimUntouched(world);
      assert.equal(
        world.discourse.userByUsername("alice")?.location,
        undefined,
      );
      // The honest answers still sync.
      assert.equal(rows.get(3)?.status, "SUCCESS");
      assert.equal(world.discourse.userByUsername("bob")?.location, "Rome, IT");
    },
  );
});

Deno.test("a username answered in another case is the same account and is synced", async () => {
  await withWorld({
    moodleUsers,
    forumUsers: [discourseUser(10, "Alice"), discourseUser(11, "bob")],
  }, async (world) => {
    const result = await world.engine(["--all", "--apply"]);
    assert.equal(result.code, 0, result.stderr);
    const rows = byMoodleId((await lastLog(world)).rows);
    assert.equal(rows.get(2)?.status, "SUCCESS");
    assert.equal(world.discourse.userByUsername("Alice")?.location, "Lyon, FR");
  });
});

Deno.test("by-external answered with an account carrying another external id: ERROR, nothing written", async () => {
  await withHostileForum(
    [{
      asked: { externalId: "2" },
      answeredWith: "victim_admin",
      withExternalId: true,
    }],
    { match: "external_id" },
    async (world) => {
      const result = await world.engine(["--all", "--apply"], {
        DISCOURSE_SSO_SECRET: connectSecret,
      });
      assert.equal(result.code, 1, result.stderr);
      const rows = byMoodleId((await lastLog(world)).rows);
      assert.equal(rows.get(2)?.action, "ERROR");
      assert.match(
        rows.get(2)?.message ?? "",
        /not written: Discourse answered the read of the user with external id "2" with the account "victim_admin" \(external id "99"\)/,
      );
      victimUntouched(world);
      assert.equal(rows.get(3)?.status, "SUCCESS");
    },
  );
});

Deno.test("an update answered with another account: ERROR row that says the write went out, and no email change follows", async () => {
  await withHostileForum(
    [{
      asked: { username: "alice" },
      answeredWith: "victim_admin",
      on: ["update"],
    }],
    {},
    async (world) => {
      const result = await world.engine(["--all", "--apply"]);
      assert.equal(result.code, 1, result.stderr);
      const rows = byMoodleId((await lastLog(world)).rows);
      assert.equal(rows.get(2)?.action, "ERROR");
      assert.notEqual(rows.get(2)?.status, "SUCCESS");
      assert.match(
        rows.get(2)?.message ?? "",
        /Discourse answered the update of user "alice" with the account "victim_admin": what it stored, and to which account, is unknown/,
      );
      // The email change that would have followed the update was not sent.
      assert.deepEqual(
        world.discourse.emailChangeRequests.filter((r) =>
          r.username === "alice"
        ),
        [],
      );
      victimUntouched(world);
    },
  );
});

Deno.test("an email several Moodle users share is requested for none of them; their other fields still sync", async () => {
  const shared = "alice@campus.example";
  await withWorld({
    // The forum's alice owns the address; Moodle gives it to bob and carol.
    moodleUsers: [
      moodleUser(3, "bob", { email: shared, city: "Rome", country: "IT" }),
      moodleUser(4, "carol", { email: shared, city: "Oslo", country: "NO" }),
    ],
    forumUsers: [
      discourseUser(10, "alice"),
      discourseUser(11, "bob"),
      discourseUser(12, "carol"),
    ],
  }, async (world) => {
    const result = await world.engine(["--all", "--apply"]);
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(world.discourse.emailChangeRequests, []);
    const rows = byMoodleId((await lastLog(world)).rows);
    for (
      const [id, username, location] of [
        [3, "bob", "Rome, IT"],
        [4, "carol", "Oslo, NO"],
      ] as const
    ) {
      assert.equal(rows.get(id)?.status, "SUCCESS", username);
      assert.equal(rows.get(id)?.fields, "location", username);
      assert.match(
        rows.get(id)?.message ?? "",
        /email skipped: alice@campus\.example is shared by Moodle users bob, carol: not sent/,
      );
      assert.equal(
        world.discourse.userByUsername(username)?.location,
        location,
      );
      assert.equal(
        world.discourse.userByUsername(username)?.email,
        `${username}@campus.example`,
      );
    }
  });
});
