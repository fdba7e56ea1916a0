/**
 * The write-ahead journal beside the audit log (`LOG.csv.journal`): before
 * any write reaches the forum, its intent (who, which fields, before and
 * after) is on disk. The intent is closed once the user's row is in the log.
 * A run that dies in between leaves the intent open, and the next `--apply`
 * run checks it against the forum and logs what it finds before writing
 * anything else (recovery.ts).
 */
import * as FileSystem from "@effect/platform/FileSystem";
import { Context, Data, Effect, Layer, Scope } from "effect";
import {
  type AuditEntry,
  AuditLog,
  AuditLogError,
  type AuditRow,
} from "./AuditLog.ts";
import { journalledAction, journalPath } from "./journalLines.ts";
import { makeLine } from "../domain/line.ts";

/** A user's row when a second signal came before its first write. */
export const stoppedBeforeWriteMessage =
  "not written: the run was told to stop now (a second signal) before this user's write was sent";

export class StoppedBeforeWrite extends Data.TaggedError("StoppedBeforeWrite") {
  override get message(): string {
    return stoppedBeforeWriteMessage;
  }
}

const who = (entry: Pick<AuditEntry, "normalizedUsername" | "moodleId">) =>
  `${entry.normalizedUsername} (Moodle id ${entry.moodleId ?? "?"})`;

export class Journal extends Context.Tag("Journal")<Journal, {
  readonly path: string;
  /**
   * Runs `write` once its intent is on disk (fsync'd). `key` names the user
   * within the run; the intent stays open until `record` writes its row.
   */
  readonly write: <A, E, R>(
    key: string,
    intent: AuditEntry,
    write: Effect.Effect<A, E, R>,
  ) => Effect.Effect<A, E | AuditLogError | StoppedBeforeWrite, R>;
  /**
   * `write` for one request that makes several rows' changes (a group's
   * members, 1000 a call): every intent is on disk before it is sent.
   */
  readonly writeAll: <A, E, R>(
    intents: ReadonlyArray<
      { readonly key: string; readonly intent: AuditEntry }
    >,
    write: Effect.Effect<A, E, R>,
  ) => Effect.Effect<A, E | AuditLogError | StoppedBeforeWrite, R>;
  /** Appends the user's row, then closes the user's intents. */
  readonly record: (
    key: string,
    entry: AuditEntry,
  ) => Effect.Effect<AuditRow, AuditLogError>;
  /**
   * After a second signal: no write starts any more. True when this user had
   * not started one (its work may be dropped); false when one is out.
   */
  readonly stopBefore: (key: string) => Effect.Effect<boolean>;
}>() {
  static readonly layer = (options: { readonly forum: string }) =>
    Layer.scoped(
      Journal,
      Effect.gen(function* () {
        const fs = yield* FileSystem.FileSystem;
        const audit = yield* AuditLog;
        const path = journalPath(audit.path);
        const encoder = new TextEncoder();
        const fail = (reason: unknown, reached: string) =>
          new AuditLogError({
            path,
            reason: reason instanceof Error ? reason.message : String(reason),
            reached,
          });
        const open = new Map<string, Array<number>>();
        const writing = new Set<string>();
        let stopped = false;
        let nextId = 1;
        // Opened at the first intent: a run that writes nothing leaves none.
        let file: FileSystem.File | undefined;
        const turns = yield* makeLine;
        const scope = yield* Effect.scope;
        const append = (line: string, durable: boolean) =>
          turns.inTurn(Effect.gen(function* () {
            file ??= yield* fs.open(path, { flag: "a", mode: 0o600 }).pipe(
              Scope.extend(scope),
            );
            yield* file.writeAll(encoder.encode(line));
            if (durable) yield* file.sync;
          }));
        const leftOpen = () =>
          `Writes sent but not logged stay in the journal ${path}: the next --apply run (sync or revert) checks them against the forum and logs them before writing anything.`;

        const intentLine = (id: number, intent: AuditEntry) =>
          JSON.stringify({
            intent: id,
            forum: options.forum,
            log: audit.path,
            entry: {
              originalUsername: intent.originalUsername,
              normalizedUsername: intent.normalizedUsername,
              fullname: intent.fullname,
              email: intent.email,
              location: intent.location,
              moodleId: intent.moodleId ?? null,
              action: journalledAction(intent.action),
              fields: intent.fields,
              before: intent.before,
              after: intent.after,
            },
          });
        /** One write carrying several rows' intents: all on disk, one fsync. */
        const writeAll = <A, E, R>(
          intents: ReadonlyArray<
            { readonly key: string; readonly intent: AuditEntry }
          >,
          write: Effect.Effect<A, E, R>,
        ) =>
          Effect.gen(function* () {
            const refused = yield* Effect.sync(() => {
              // A user whose first write is out finishes its writes (an
              // account created is completed): only new users stop.
              if (stopped && intents.some(({ key }) => !writing.has(key))) {
                return true;
              }
              for (const { key } of intents) writing.add(key);
              return false;
            });
            if (refused) return yield* new StoppedBeforeWrite();
            const lines = intents.map(({ key, intent }) => {
              const id = nextId++;
              return { key, id, line: intentLine(id, intent) };
            });
            yield* append(lines.map(({ line }) => `${line}\n`).join(""), true)
              .pipe(
                Effect.mapError((error) =>
                  fail(
                    error,
                    `Nothing was sent for ${
                      intents.map(({ intent }) => who(intent)).join(", ")
                    }: a write is sent only once its record is on disk. ${leftOpen()}`,
                  )
                ),
              );
            for (const { key, id } of lines) {
              open.set(key, [...(open.get(key) ?? []), id]);
            }
            return yield* write;
          });

        yield* Effect.addFinalizer(() =>
          open.size === 0 && file !== undefined
            ? fs.remove(path).pipe(Effect.ignore)
            : Effect.void
        );

        return {
          path,
          write: <A, E, R>(
            key: string,
            intent: AuditEntry,
            write: Effect.Effect<A, E, R>,
          ) => writeAll([{ key, intent }], write),
          writeAll,
          record: (key: string, entry: AuditEntry) =>
            Effect.gen(function* () {
              const row = yield* audit.record(entry).pipe(
                Effect.mapError((error) =>
                  new AuditLogError({
                    ...error,
                    reached: `Not logged: ${who(entry)} ${entry.action}/${
                      open.has(key)
                        ? `${entry.status} (${
                          entry.fields.join(", ") || "no field"
                        }): ${entry.message}`
                        : `${entry.status}, nothing written for it`
                    }. ${leftOpen()}`,
                  })
                ),
              );
              const ids = open.get(key) ?? [];
              for (const id of ids) {
                // Neither fsync'd nor fatal: the row is logged; a `done` lost
                // only makes the next run check the forum again.
                yield* append(`${JSON.stringify({ done: id })}\n`, false).pipe(
                  Effect.ignore,
                );
              }
              open.delete(key);
              writing.delete(key);
              return row;
            }),
          stopBefore: (key: string) =>
            Effect.sync(() => {
              stopped = true;
              return !writing.has(key);
            }),
        };
      }),
    );
}

/**
 * A user's work that a second signal may cut short, but only before its
 * write is sent: once it is out, the work runs on and its row is written.
 */
export const unlessStoppedNow = <A, E, R>(
  work: Effect.Effect<A, E, R>,
  options: {
    readonly key: string;
    readonly stopNow: Effect.Effect<void> | undefined;
    /** The row of a user dropped before any write. */
    readonly stopped: () => A;
  },
): Effect.Effect<A, E, R | Journal> => {
  const stopNow = options.stopNow;
  if (stopNow === undefined) return work;
  return Effect.gen(function* () {
    const journal = yield* Journal;
    return yield* Effect.raceFirst(
      work,
      stopNow.pipe(
        Effect.zipRight(journal.stopBefore(options.key)),
        Effect.flatMap((free) =>
          free ? Effect.sync(options.stopped) : Effect.never
        ),
      ),
    );
  });
};
