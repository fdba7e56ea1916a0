import { Console, Effect, Option } from "effect";
import type { Settings } from "../config/Settings.ts";
import { defaultLockDir, withForumLock } from "../lock.ts";
import { LockRefused } from "./ending.ts";

/**
 * Takes the forum's lock for a run that writes, for as long as the scope
 * lasts, or ends the command saying who holds it.
 */
export const lockForum = (
  settings: Settings,
  command: string,
  json = false,
) =>
  withForumLock({
    dir: settings.lockDir ?? defaultLockDir(),
    discourseUrl: settings.discourse.url,
    command,
  }).pipe(
    Effect.tap((lock) =>
      Option.match(lock.tookOverFrom, {
        onNone: () => Effect.void,
        onSome: (dead) =>
          Console.error(
            `warning: took over the lock of ${settings.discourse.url} left by pid ${dead.pid} on ${dead.host} (started ${dead.startedAt}), which is no longer running: that run was killed or crashed, so check its audit log`,
          ),
      })
    ),
    Effect.mapError((error) => new LockRefused({ error, json })),
  );
