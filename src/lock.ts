import os from "node:os";
import process from "node:process";
import { Data, Effect, Option } from "effect";
import { dieWhenDenied } from "./permissions.ts";

/**
 * One `--apply` run per forum at a time. Overlapping cron jobs would race each
 * other on the same profiles and spend the forum's admin API budget twice.
 *
 * The lock is an OS advisory lock (flock) on a file named after the forum's
 * URL. The kernel drops it when the holder dies, even by `kill -9`, so a
 * crashed run can never block the next one; the holder's details, written
 * into the file, tell the next run that it took over from a dead process.
 */

/** Who holds a lock, as written in the lock file. */
export interface LockHolder {
  readonly pid: number;
  readonly host: string;
  /** ISO 8601. */
  readonly startedAt: string;
  readonly forum: string;
  readonly command: string;
}

/** Another live run holds the lock for this forum. */
export class LockHeld extends Data.TaggedError("LockHeld")<{
  readonly path: string;
  readonly holder: Option.Option<LockHolder>;
  readonly forum: string;
}> {
  override get message(): string {
    const who = Option.match(this.holder, {
      onNone: () => "another run (its details are not readable yet)",
      onSome: (h) =>
        `another run (pid ${h.pid} on ${h.host}, started ${h.startedAt}: ${h.command})`,
    });
    return `${who} is already writing to ${this.forum}; this run wrote nothing. ` +
      `Wait for it to finish, or stop it. Lock file: ${this.path}. ` +
      `Runs of two crontab lines or timers must not overlap: space them further apart.`;
  }
}

/** The lock file cannot be created or opened. */
export class LockError extends Data.TaggedError("LockError")<{
  readonly path: string;
  readonly reason: string;
  /** What failed, so a refusal by Deno's permissions can be told apart. */
  readonly cause?: unknown;
}> {
  override get message(): string {
    return `Cannot use the lock file ${this.path}: ${this.reason}. ` +
      `Set lockDir in the settings to a folder every run of this tool on this ` +
      `machine can write to (the default is the system's temp folder).`;
  }
}

/** A lock this process holds; `release` is idempotent. */
export interface HeldLock {
  readonly path: string;
  /** The dead run whose lock this one took over, if any. */
  readonly tookOverFrom: Option.Option<LockHolder>;
  readonly release: () => void;
}

/** The folder every run on this machine agrees on unless told otherwise. */
export const defaultLockDir = (): string => os.tmpdir();

const fnv1a64 = (text: string): string => {
  // Two 32-bit FNV-1a halves: a stable, dependency-free name, not a secret.
  let a = 0x811c9dc5;
  let b = 0x01000193 ^ 0x5bd1e995;
  for (const byte of new TextEncoder().encode(text)) {
    a = Math.imul(a ^ byte, 0x01000193) >>> 0;
    b = Math.imul(b ^ byte, 0x5bd1e995) >>> 0;
  }
  return a.toString(16).padStart(8, "0") + b.toString(16).padStart(8, "0");
};

/**
 * The forum's identity: scheme, host and path, case-folded where URLs are
 * case-insensitive, so two settings files spelling the same forum differently
 * still share one lock.
 */
export const forumKey = (discourseUrl: string): string => {
  try {
    const url = new URL(discourseUrl.trim());
    const path = url.pathname.replace(/\/+$/, "");
    return `${url.protocol}//${url.host.toLowerCase()}${path}`;
  } catch {
    return discourseUrl.trim().replace(/\/+$/, "").toLowerCase();
  }
};

/** `sync-moodle-discourse-forum.example.edu-<hash>.lock` in `dir`. */
export const lockPath = (dir: string, discourseUrl: string): string => {
  const key = forumKey(discourseUrl);
  let host = "forum";
  try {
    host = new URL(key).host;
  } catch {
    // keep the generic name
  }
  const safeHost = host.replace(/[^A-Za-z0-9.-]/g, "_").slice(0, 60);
  return `${dir.replace(/\/+$/, "")}/sync-moodle-discourse-${safeHost}-${
    fnv1a64(key)
  }.lock`;
};

const parseHolder = (text: string): Option.Option<LockHolder> => {
  try {
    const value = JSON.parse(text) as Partial<LockHolder>;
    return typeof value.pid === "number" && typeof value.host === "string" &&
        typeof value.startedAt === "string"
      ? Option.some({
        pid: value.pid,
        host: value.host,
        startedAt: value.startedAt,
        forum: String(value.forum ?? ""),
        command: String(value.command ?? ""),
      })
      : Option.none();
  } catch {
    return Option.none();
  }
};

const readHolder = (path: string): Option.Option<LockHolder> => {
  try {
    return parseHolder(Deno.readTextFileSync(path));
  } catch {
    // Windows forbids reading a region another process has locked.
    return Option.none();
  }
};

/** Locks held by this process, released by `releaseAllLocks` at exit. */
const held = new Set<HeldLock>();

/**
 * Releases every lock this process holds. Synchronous, so it can run in a
 * `process.on("exit")` handler, after a second Ctrl-C has cut things short.
 */
export const releaseAllLocks = (): void => {
  for (const lock of [...held]) lock.release();
};

const sameFile = (a: Deno.FileInfo, b: Deno.FileInfo): boolean =>
  a.ino === null || b.ino === null || (a.ino === b.ino && a.dev === b.dev);

const describeError = (error: unknown): string =>
  error instanceof Error ? error.message : String(error);

/**
 * Takes the lock for `discourseUrl` in `dir`, or fails with `LockHeld`
 * naming the run that holds it. Never waits.
 */
export const acquireLock = (
  options: {
    readonly dir: string;
    readonly discourseUrl: string;
    readonly command: string;
    readonly now?: () => Date;
  },
): Effect.Effect<HeldLock, LockHeld | LockError> =>
  Effect.gen(function* () {
    const path = lockPath(options.dir, options.discourseUrl);
    const forum = forumKey(options.discourseUrl);
    const fail = (error: unknown) =>
      new LockError({ path, reason: describeError(error), cause: error });
    yield* Effect.try({
      try: () => Deno.mkdirSync(options.dir, { recursive: true }),
      catch: fail,
    });
    // A release unlinks the file; a run that opened it just before must not
    // lock the orphaned inode while a third run creates a new file: so the
    // lock only counts if the path still names the file that was locked.
    for (let attempt = 0; attempt < 20; attempt++) {
      const file = yield* Effect.try({
        try: () =>
          Deno.openSync(path, {
            read: true,
            write: true,
            create: true,
            mode: 0o644,
          }),
        catch: fail,
      });
      const locked = yield* Effect.tryPromise({
        try: () => file.tryLock(true),
        catch: fail,
      }).pipe(Effect.tapError(() => Effect.sync(() => file.close())));
      if (!locked) {
        file.close();
        return yield* new LockHeld({ path, holder: readHolder(path), forum });
      }
      const stillThere = Effect.try({
        try: () => sameFile(file.statSync(), Deno.statSync(path)),
        catch: () => false,
      }).pipe(Effect.orElseSucceed(() => false));
      if (!(yield* stillThere)) {
        file.close();
        continue;
      }
      const previous = yield* Effect.try({
        try: () => {
          const size = file.statSync().size;
          const buffer = new Uint8Array(size);
          let read = 0;
          while (read < size) {
            const n = file.readSync(buffer.subarray(read));
            if (n === null) break;
            read += n;
          }
          return new TextDecoder().decode(buffer.subarray(0, read));
        },
        catch: fail,
      });
      const holder: LockHolder = {
        pid: process.pid,
        host: os.hostname(),
        startedAt: (options.now ?? (() => new Date()))().toISOString(),
        forum,
        command: options.command,
      };
      yield* Effect.try({
        try: () => {
          file.truncateSync(0);
          file.seekSync(0, Deno.SeekMode.Start);
          const bytes = new TextEncoder().encode(
            `${JSON.stringify(holder)}\n`,
          );
          let written = 0;
          while (written < bytes.length) {
            written += file.writeSync(bytes.subarray(written));
          }
        },
        catch: fail,
      }).pipe(Effect.tapError(() => Effect.sync(() => file.close())));
      let released = false;
      const lock: HeldLock = {
        path,
        tookOverFrom: parseHolder(previous),
        release: () => {
          if (released) return;
          released = true;
          held.delete(lock);
          // Unlink first: once unlocked, the file may belong to the next run.
          try {
            Deno.removeSync(path);
          } catch {
            // already gone, or not ours to remove: the unlock still frees it
          }
          try {
            file.close();
          } catch {
            // closed already
          }
        },
      };
      held.add(lock);
      return lock;
    }
    return yield* new LockError({
      path,
      reason: "it kept being replaced while this run tried to lock it",
    });
  });

/** The lock as a scoped resource: released when the scope closes. */
export const withForumLock = (
  options: Parameters<typeof acquireLock>[0],
) =>
  Effect.acquireRelease(
    dieWhenDenied(acquireLock(options)),
    (lock) => Effect.sync(() => lock.release()),
  );
