import os from "node:os";
import process from "node:process";
import { Data, Effect, Option, Schema } from "effect";
import { dieWhenDenied } from "./permissions.ts";

/**
 * One `--apply` run per forum at a time. Overlapping cron jobs would race each
 * other on the same profiles and spend the forum's admin API budget twice.
 *
 * The lock is an OS advisory lock (flock) on a file named after the forum's
 * URL. The kernel drops it when the holder dies, even by `kill -9`, so a
 * crashed run can never block the next one; the holder's details, written
 * into the file, tell the next run that it took over from a dead process.
 *
 * A run may be root, and a lock folder may be shared: the file is never
 * opened through a symbolic link (which could aim a root run's writes at any
 * file), and a lock file another user owns is refused, not used.
 */

/** Who holds a lock, as written in the lock file. */
const LockHolderSchema = Schema.Struct({
  pid: Schema.Int,
  host: Schema.String,
  /** ISO 8601. */
  startedAt: Schema.String,
  forum: Schema.optionalWith(Schema.String, { default: () => "" }),
  command: Schema.optionalWith(Schema.String, { default: () => "" }),
});
export type LockHolder = typeof LockHolderSchema.Type;

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
      `machine can write to and no other user can (the default is ` +
      `${defaultLockDir()}).`;
  }
}

/** A lock this process holds; `release` is idempotent. */
export interface HeldLock {
  readonly path: string;
  /** The dead run whose lock this one took over, if any. */
  readonly tookOverFrom: Option.Option<LockHolder>;
  readonly release: () => void;
}

/**
 * The folder every run of this user agrees on unless told otherwise: the
 * user's own state folder (XDG), never the world-writable temp folder, where
 * anyone could plant a file or a link at the lock's predictable path.
 */
export const defaultLockDir = (
  env: Readonly<Record<string, string | undefined>> = process.env,
): string => {
  const stateHome = env.XDG_STATE_HOME?.trim();
  const base = Deno.build.os === "windows"
    ? env.LOCALAPPDATA ?? `${os.homedir()}\\AppData\\Local`
    : stateHome !== undefined && stateHome.startsWith("/")
    ? stateHome
    : `${env.HOME?.trim() || os.homedir()}/.local/state`;
  return `${base.replace(/[\\/]+$/, "")}/sync-moodle-discourse/locks`;
};

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

const parseHolder = Schema.decodeUnknownOption(
  Schema.parseJson(LockHolderSchema),
);

const sameFile = (a: Deno.FileInfo, b: Deno.FileInfo): boolean =>
  a.ino === null || b.ino === null || (a.ino === b.ino && a.dev === b.dev);

const describeError = (error: unknown): string =>
  error instanceof Error ? error.message : String(error);

const readAll = (file: Deno.FsFile): string => {
  const size = file.statSync().size;
  const buffer = new Uint8Array(size);
  let read = 0;
  file.seekSync(0, Deno.SeekMode.Start);
  while (read < size) {
    const n = file.readSync(buffer.subarray(read));
    if (n === null) break;
    read += n;
  }
  return new TextDecoder().decode(buffer.subarray(0, read));
};

/** What is at the path itself, a link not followed; None when nothing is. */
const lstatIfAny = (path: string): Option.Option<Deno.FileInfo> => {
  try {
    return Option.some(Deno.lstatSync(path));
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return Option.none();
    throw error;
  }
};

const kindOf = (info: Deno.FileInfo): string =>
  info.isSymlink
    ? "a symbolic link (never followed: it could aim this run's writes at another file)"
    : info.isDirectory
    ? "a directory"
    : "not a regular file";

/** The uid this process runs as; undefined where there are none (Windows). */
const ownUid = (): number | undefined => process.getuid?.();

/**
 * Why the opened file cannot serve as this run's lock, if it cannot: it must
 * be a regular file with one name, owned by this user, and still be what
 * the path names (nothing swapped in since the path was checked).
 */
const unusableBecause = (
  opened: Deno.FileInfo,
  atPath: Option.Option<Deno.FileInfo>,
): string | undefined => {
  if (!opened.isFile) return `it is ${kindOf(opened)}`;
  const uid = ownUid();
  if (uid !== undefined && opened.uid !== null && opened.uid !== uid) {
    return `it belongs to another user (uid ${opened.uid}; this run is uid ${uid}). ` +
      `Another account runs this tool against the same forum, or someone ` +
      `planted the file: run every --apply as one user, and remove the file ` +
      `if no run of that user holds it`;
  }
  if (opened.nlink !== null && opened.nlink > 1) {
    return "it has other names (hard links): it may be another file's";
  }
  if (Option.isNone(atPath) || !sameFile(opened, atPath.value)) {
    return "it was replaced while this run opened it";
  }
  return undefined;
};

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
      // Created private: the holder's file is nobody else's business.
      try: () => Deno.mkdirSync(options.dir, { recursive: true, mode: 0o700 }),
      catch: fail,
    });
    // A release unlinks the file; a run that opened it just before must not
    // lock the orphaned inode while a third run creates a new file: so the
    // lock only counts if the path still names the file that was locked.
    for (let attempt = 0; attempt < 20; attempt++) {
      const before = yield* Effect.try({
        try: () => lstatIfAny(path),
        catch: fail,
      });
      if (Option.isSome(before) && !before.value.isFile) {
        return yield* new LockError({
          path,
          reason: `it is ${kindOf(before.value)}; remove it`,
        });
      }
      // A new file is made with O_EXCL, which refuses a link planted in the
      // meantime; an existing one is opened without O_CREAT and checked
      // below before a byte is written to it.
      const opened = yield* Effect.try({
        try: () =>
          Option.some(Deno.openSync(path, {
            read: true,
            write: true,
            ...(Option.isNone(before) ? { createNew: true, mode: 0o644 } : {}),
          })),
        catch: (error) => error,
      }).pipe(
        Effect.catchAll((error) =>
          error instanceof Deno.errors.AlreadyExists ||
            error instanceof Deno.errors.NotFound
            ? Effect.succeed(Option.none<Deno.FsFile>())
            : Effect.fail(fail(error))
        ),
      );
      if (Option.isNone(opened)) continue; // created or removed meanwhile
      const file = opened.value;
      const closeFile = Effect.sync(() => file.close());
      const problem = yield* Effect.try({
        try: () => unusableBecause(file.statSync(), lstatIfAny(path)),
        catch: fail,
      }).pipe(Effect.tapError(() => closeFile));
      if (problem !== undefined) {
        yield* closeFile;
        return yield* new LockError({ path, reason: problem });
      }
      const locked = yield* Effect.tryPromise({
        try: () => file.tryLock(true),
        catch: fail,
      }).pipe(Effect.tapError(() => closeFile));
      if (!locked) {
        const holder = Option.flatMap(
          Option.liftThrowable(readAll)(file),
          parseHolder,
        );
        yield* closeFile;
        return yield* new LockHeld({ path, holder, forum });
      }
      const stillThere = Effect.try({
        try: () =>
          Option.match(lstatIfAny(path), {
            onNone: () => false,
            onSome: (info) => sameFile(file.statSync(), info),
          }),
        catch: () => false,
      }).pipe(Effect.orElseSucceed(() => false));
      if (!(yield* stillThere)) {
        yield* closeFile;
        continue;
      }
      const previous = yield* Effect.try({
        try: () => readAll(file),
        catch: fail,
      }).pipe(Effect.tapError(() => closeFile));
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
      }).pipe(Effect.tapError(() => closeFile));
      let released = false;
      const lock: HeldLock = {
        path,
        tookOverFrom: parseHolder(previous),
        release: () => {
          if (released) return;
          released = true;
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
