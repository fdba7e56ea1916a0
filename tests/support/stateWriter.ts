// A run that writes the state store until it is killed: for the test that
// kills it with SIGKILL mid-write and reopens the file.
//
//   deno run --allow-read --allow-write stateWriter.ts STORE USERS
//
// Generation g upserts users 1..USERS one by one (each entry derived from
// g), then marks a full Moodle list holding only the odd ids, then prints
// "gen g". The test replays the same steps on a model to find the state the
// file must be in.
import { isDeepStrictEqual } from "node:util";
import { Effect } from "effect";
import {
  profileHash,
  StateStore,
  type StoredUser,
  type UserEntry,
} from "../../src/state/Store.ts";

/** The pair every state test writes under. */
export const sites = {
  moodleEndpoint: "https://moodle.example.edu/webservice/rest/server.php",
  discourseUrl: "https://forum.example.edu",
};

/** Every field depends on the generation, so a mixed entry shows. */
export const entryFor = (moodleId: number, gen: number): UserEntry => {
  const snapshot = {
    name: `User ${moodleId} gen ${gen}`,
    location: `Town ${gen}`,
    bioExcerpt: `Bio of ${moodleId}, generation ${gen}`,
    email: `u${moodleId}.g${gen}@example.edu`,
  };
  return {
    moodleId,
    moodleUsername: `user${moodleId}`,
    forumId: 1000 + moodleId,
    forumUsername: `user${moodleId}-g${gen}`,
    desiredHash: profileHash(snapshot),
    snapshot,
  };
};

/** The ids of each generation's full Moodle list. */
export const listedIds = (users: number): number[] =>
  Array.from({ length: users }, (_, i) => i + 1).filter((id) => id % 2 === 1);

/** Whether the store equals the model after some prefix of the writer's steps. */
export const matchesSomePrefix = (
  actual: ReadonlyMap<number, StoredUser>,
  users: number,
) => {
  const model = new Map<
    number,
    { gen: number; absent: number; listed: boolean }
  >();
  const listed = new Set(listedIds(users));
  const equal = () =>
    actual.size === model.size &&
    [...model].every(([id, want]) => {
      const got = actual.get(id);
      return got !== undefined &&
        (got.lastSeenAt !== undefined) === want.listed &&
        isDeepStrictEqual(got, {
          ...entryFor(id, want.gen),
          lastSeenAt: got.lastSeenAt,
          absentFullLists: want.absent,
          suspendedByUsAt: undefined,
        });
    });
  const genOf = (user: StoredUser) => Number(user.forumUsername.split("-g")[1]);
  const maxGen = Math.max(0, ...[...actual.values()].map(genOf));
  // The writer's steps in order; the entries at the last generation say how
  // far into it the kill came, and the model must then match exactly.
  for (let gen = 1; gen <= maxGen; gen++) {
    const upserted = gen < maxGen
      ? users
      : [...actual.values()].filter((user) => genOf(user) === gen).length;
    for (let id = 1; id <= upserted; id++) {
      model.set(id, { gen, absent: 0, listed: model.get(id)?.listed ?? false });
    }
    if (upserted < users || (gen === maxGen && equal())) return equal();
    for (const [id, user] of model) {
      model.set(
        id,
        listed.has(id)
          ? { ...user, absent: 0, listed: true }
          : { ...user, absent: user.absent + 1 },
      );
    }
  }
  return equal();
};

if (import.meta.main) {
  const [path, users] = [Deno.args[0], Number(Deno.args[1])];
  const encoder = new TextEncoder();
  await Effect.runPromise(
    Effect.gen(function* () {
      const store = yield* StateStore;
      for (let gen = 1;; gen++) {
        for (let id = 1; id <= users; id++) {
          yield* store.upsert(entryFor(id, gen));
        }
        yield* store.markFullListSeen(listedIds(users));
        Deno.stdout.writeSync(encoder.encode(`gen ${gen}\n`));
      }
    }).pipe(Effect.provide(StateStore.layer({ path, ...sites }))),
  );
}
