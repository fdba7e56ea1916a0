// What the leavers' tests share: the forum's suspension state, a run's
// logs by kind, and a state store linked as an earlier --apply run would.
import { Effect } from "effect";
import { profileHash, StateStore } from "../../src/state/Store.ts";
import { auditLogs, readLog, type World } from "./world.ts";

/** Whether the forum holds the account as suspended now. */
export const suspendedInForum = (
  world: Pick<World, "discourse">,
  id: number,
): boolean => {
  const till = world.discourse.users.get(id)?.suspended_till;
  return till !== undefined && Date.parse(till) > Date.now();
};

/** The logs of one kind of run (`apply`, `dryrun`, `revert_apply`...), oldest first. */
export const logsOf = async (world: Pick<World, "dir">, kind: string) =>
  (await auditLogs(world.dir)).filter((path) =>
    new RegExp(`sync_log_test_${kind}_\\d`).test(path)
  );

/** The rows of the newest log of that kind. */
export const newestRows = async (world: Pick<World, "dir">, kind: string) => {
  const logs = await logsOf(world, kind);
  if (logs.length === 0) throw new Error(`no ${kind} log in ${world.dir}`);
  return (await readLog(logs[logs.length - 1])).rows;
};

/** The state store a test's runs use (`--state`). */
export const storeOf = (world: World) => ({
  path: `${world.dir}/state.sqlite`,
  moodleEndpoint: world.moodle.endpoint,
  discourseUrl: world.discourse.url,
});

/** Links Moodle users to forum accounts as an earlier --apply run would. */
export const seedStore = (
  world: World,
  links: ReadonlyArray<{ moodleId: number; forumId: number; name: string }>,
) =>
  Effect.runPromise(
    Effect.flatMap(StateStore, (store) =>
      Effect.forEach(links, ({ moodleId, forumId, name }) => {
        const snapshot = {
          name,
          location: "",
          bioExcerpt: "",
          email: `${name}@campus.example`,
        };
        return store.upsert({
          moodleId,
          moodleUsername: name,
          forumId,
          forumUsername: name,
          desiredHash: profileHash(snapshot),
          snapshot,
        });
      })).pipe(Effect.provide(StateStore.layer(storeOf(world)))),
  );
