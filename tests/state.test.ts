// The state store's operations through its layer, on real temp files.
import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { Effect, TestClock, TestContext } from "effect";
import {
  defaultStatePath,
  profileHash,
  type StoredUser,
} from "../src/state/Store.ts";
import {
  inTempDir,
  readAll,
  sites,
  valueOf,
  withStore,
} from "./support/state.ts";
import { entryFor } from "./support/stateWriter.ts";

Deno.test("state store: created empty, entries survive a reopen", async () => {
  await inTempDir(async (dir) => {
    const path = `${dir}/sync-state.sqlite`;
    const created = valueOf(
      await withStore({ path, ...sites }, (store) =>
        Effect.gen(function* () {
          const empty = yield* store.count;
          yield* store.upsert(entryFor(1, 1));
          yield* store.upsert(entryFor(2, 1));
          return { status: store.status._tag, empty };
        })),
    );
    assert.deepEqual(created, { status: "Fresh", empty: 0 });
    const reopened = valueOf(
      await withStore(
        { path, ...sites },
        (store) =>
          Effect.map(
            store.readAll,
            (all) => ({ status: store.status._tag, all }),
          ),
      ),
    );
    assert.equal(reopened.status, "Known");
    assert.deepEqual([...reopened.all.keys()].sort(), [1, 2]);
    const first = reopened.all.get(1);
    assert.deepEqual(
      first,
      {
        ...entryFor(1, 1),
        lastSeenAt: undefined,
        absentFullLists: 0,
        suspendedByUsAt: undefined,
      } satisfies StoredUser,
    );
  });
});

Deno.test("state store: another forum in the same file sees none of the first one's users", async () => {
  await inTempDir(async (dir) => {
    const path = `${dir}/s.sqlite`;
    const other = { ...sites, discourseUrl: "https://other-forum.example.edu" };
    await withStore(
      { path, ...sites },
      (store) => store.upsert(entryFor(1, 1)),
    );
    const seen = valueOf(
      await withStore({ path, ...other }, (store) =>
        Effect.gen(function* () {
          const before = yield* store.readAll;
          yield* store.upsert(entryFor(1, 7));
          return { status: store.status, before: before.size };
        })),
    );
    assert.equal(seen.before, 0);
    assert.equal(seen.status._tag, "OtherPairs");
    assert.deepEqual("pairs" in seen.status ? seen.status.pairs : [], [sites]);
    assert.equal(
      (await readAll({ path, ...sites })).get(1)?.forumUsername,
      "user1-g1",
    );
    assert.equal(
      (await readAll({ path, ...other })).get(1)?.forumUsername,
      "user1-g7",
    );
    // The same pair spelled differently is the same pair.
    const respelled = {
      moodleEndpoint: "HTTPS://Moodle.Example.EDU/webservice/rest/server.php/",
      discourseUrl: "https://FORUM.example.edu//",
    };
    const status = await withStore(
      { path, ...respelled },
      (store) => Effect.succeed(store.status._tag),
    );
    assert.equal(valueOf(status), "Known");
  });
});

Deno.test("state store: an upsert replaces the entry, keeps our suspension, forgets absences", async () => {
  await inTempDir(async (dir) => {
    const path = `${dir}/s.sqlite`;
    const result = valueOf(
      await withStore({ path, ...sites }, (store) =>
        Effect.gen(function* () {
          yield* store.upsert(entryFor(1, 1));
          yield* store.upsert(entryFor(2, 1));
          yield* store.markFullListSeen([2]);
          yield* TestClock.setTime(Date.parse("2026-05-04T03:02:01Z"));
          const recorded = yield* store.recordSuspended(1);
          const unknown = yield* store.recordSuspended(99);
          yield* store.upsert(entryFor(1, 2));
          const one = (yield* store.readAll).get(1);
          yield* store.clearSuspended(1);
          const cleared = (yield* store.readAll).get(1)?.suspendedByUsAt;
          const forgotten = yield* store.forget(2);
          const again = yield* store.forget(2);
          return {
            recorded,
            unknown,
            one,
            cleared,
            forgotten,
            again,
            count: yield* store.count,
          };
        }).pipe(Effect.provide(TestContext.TestContext))),
    );
    assert.deepEqual(result.one, {
      ...entryFor(1, 2),
      lastSeenAt: undefined,
      absentFullLists: 0,
      suspendedByUsAt: "2026-05-04T03:02:01.000Z",
    });
    assert.deepEqual(
      { ...result, one: undefined },
      {
        recorded: true,
        unknown: false,
        one: undefined,
        cleared: undefined,
        forgotten: true,
        again: false,
        count: 1,
      },
    );
  });
});

Deno.test("state store: absences count consecutive full lists and reset on presence", async () => {
  await inTempDir(async (dir) => {
    const path = `${dir}/s.sqlite`;
    const absences = (all: ReadonlyMap<number, StoredUser>) =>
      [1, 2, 3].map((id) => all.get(id)?.absentFullLists);
    const result = valueOf(
      await withStore({ path, ...sites }, (store) =>
        Effect.gen(function* () {
          for (const id of [1, 2, 3]) yield* store.upsert(entryFor(id, 1));
          yield* TestClock.setTime(Date.parse("2026-01-01T00:00:00Z"));
          const first = yield* store.markFullListSeen([1, 2, 50]);
          const afterFirst = absences(yield* store.readAll);
          yield* TestClock.setTime(Date.parse("2026-01-02T00:00:00Z"));
          const second = yield* store.markFullListSeen(new Set([1]));
          const all = yield* store.readAll;
          const back = yield* store.markFullListSeen([1, 2, 3]);
          return {
            first,
            afterFirst,
            second,
            all,
            back,
            reset: absences(yield* store.readAll),
          };
        }).pipe(Effect.provide(TestContext.TestContext))),
    );
    assert.deepEqual(result.first, { present: 2, absent: 1 });
    assert.deepEqual(result.afterFirst, [0, 0, 1]);
    assert.deepEqual(result.second, { present: 1, absent: 2 });
    assert.deepEqual(absences(result.all), [0, 1, 2]);
    assert.deepEqual([1, 2, 3].map((id) => result.all.get(id)?.lastSeenAt), [
      "2026-01-02T00:00:00.000Z",
      "2026-01-01T00:00:00.000Z",
      undefined,
    ]);
    assert.deepEqual(result.back, { present: 3, absent: 0 });
    assert.deepEqual(result.reset, [0, 0, 0]);
  });
});

Deno.test("state store: the default file sits beside the settings file", () => {
  assert.equal(
    defaultStatePath("/etc/sync/settings.json"),
    "/etc/sync/sync-state.sqlite",
  );
  assert.equal(defaultStatePath("settings.json"), "sync-state.sqlite");
  assert.equal(defaultStatePath("./conf/prod.json"), "conf/sync-state.sqlite");
});

Deno.test("profileHash: names and values count, key order does not, and it never drifts", () => {
  const profile = {
    name: "Ada",
    location: "London, GB",
    bio: "",
    email: "ada@example.org",
  };
  const reordered = {
    email: "ada@example.org",
    bio: "",
    location: "London, GB",
    name: "Ada",
  };
  assert.equal(profileHash(profile), profileHash(reordered));
  assert.notEqual(profileHash(profile), profileHash({ ...profile, bio: " " }));
  assert.notEqual(
    profileHash({ a: "x", b: "" }),
    profileHash({ a: "", b: "x" }),
  );
  assert.notEqual(profileHash({ a: "x" }), profileHash({ b: "x" }));
  // Stores keep these hashes across upgrades: a changed function would make
  // every user look changed once. Pinned on purpose; computed independently
  // as sha256sum of "v1\n" + the canonical JSON.
  assert.equal(
    profileHash({
      name: "Ada Lovelace",
      location: "London, GB",
      bio: "Analyst.",
      email: "ada@example.org",
    }),
    "f564c4eef805bbf6736a3ff45410284bbae6c64803966e9c5505ce31dc4fabcf",
  );
});

Deno.test("state store: a store from before it kept Moodle usernames is migrated, its entries kept with an empty one", async () => {
  await inTempDir(async (dir) => {
    const path = `${dir}/sync-state.sqlite`;
    valueOf(
      await withStore(
        { path, ...sites },
        (store) => store.upsert(entryFor(1, 1)),
      ),
    );
    // Back to schema 1, as the first release wrote it.
    const db = new DatabaseSync(path);
    db.exec("ALTER TABLE users DROP COLUMN moodle_username");
    db.exec("UPDATE schema_version SET version = 1");
    db.close();

    const migrated = valueOf(
      await withStore({ path, ...sites }, (store) =>
        Effect.gen(function* () {
          const before = (yield* store.readAll).get(1);
          yield* store.upsert(entryFor(2, 1));
          return { before, after: (yield* store.readAll).get(2) };
        })),
    );
    assert.equal(migrated.before?.moodleUsername, "");
    assert.equal(migrated.before?.forumUsername, entryFor(1, 1).forumUsername);
    assert.equal(migrated.after?.moodleUsername, entryFor(2, 1).moodleUsername);
  });
});
