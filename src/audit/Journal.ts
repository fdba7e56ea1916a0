/**
 * The write-ahead journal beside the audit log (`LOG.csv.journal`): before
 * any write reaches the forum, its intent (who, which fields, before and
 * after) is on disk. The intent is closed once the user's row is in the log.
 * A run that dies in between leaves the intent open, and the next `--apply`
 * run checks it against the forum and logs what it finds before writing
 * anything else.
 */
import * as FileSystem from "@effect/platform/FileSystem";
import {
  Clock,
  Context,
  Data,
  Effect,
  Either,
  Layer,
  Option,
  Schema,
  Scope,
} from "effect";
import { Discourse, type DiscourseError } from "../discourse/Discourse.ts";
import { syncedFields } from "../domain/fields.ts";
import { isSuspendedNow } from "../leavers/plan.ts";
import { sameValue } from "../sync/diff.ts";
import {
  type AuditEntry,
  AuditLog,
  AuditLogError,
  type AuditRow,
} from "./AuditLog.ts";

/** A second signal came before this user's write started: nothing sent. */
/** A user's row when a second signal came before its first write. */
export const stoppedBeforeWriteMessage =
  "not written: the run was told to stop now (a second signal) before this user's write was sent";

export class StoppedBeforeWrite extends Data.TaggedError("StoppedBeforeWrite") {
  override get message(): string {
    return stoppedBeforeWriteMessage;
  }
}

/** The actions whose writes are journalled; other rows write nothing. */
const journalledActions = [
  "CREATE",
  "UPDATE",
  "GROUP_ADD",
  "GROUP_REMOVE",
  "SUSPEND",
  "UNSUSPEND",
] as const;
const journalledAction = (
  action: AuditEntry["action"],
): (typeof journalledActions)[number] =>
  action === "EXCLUDE" || action === "ERROR" ? "UPDATE" : action;

const IntentEntry = Schema.Struct({
  originalUsername: Schema.String,
  normalizedUsername: Schema.String,
  fullname: Schema.String,
  email: Schema.String,
  location: Schema.String,
  moodleId: Schema.NullOr(Schema.Int),
  action: Schema.Literal(...journalledActions),
  fields: Schema.Array(Schema.Literal(...syncedFields, "group", "suspended")),
  // Text, or a suspension's true/false.
  before: Schema.Record({
    key: Schema.String,
    value: Schema.Union(Schema.String, Schema.Boolean),
  }),
  after: Schema.Record({
    key: Schema.String,
    value: Schema.Union(Schema.String, Schema.Boolean),
  }),
});
type IntentEntry = typeof IntentEntry.Type;

const IntentLine = Schema.Struct({
  intent: Schema.Int,
  forum: Schema.String,
  log: Schema.String,
  entry: IntentEntry,
});
const DoneLine = Schema.Struct({ done: Schema.Int });
const JournalLine = Schema.parseJson(Schema.Union(IntentLine, DoneLine));

export const journalPath = (logPath: string): string => `${logPath}.journal`;

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
        const lock = yield* Effect.makeSemaphore(1);
        const scope = yield* Effect.scope;
        const append = (line: string, durable: boolean) =>
          lock.withPermits(1)(Effect.gen(function* () {
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

/** An intent of an earlier run that never got its row. */
interface Unfinished {
  readonly journal: string;
  readonly entry: IntentEntry;
}

/** Reads a journal: its intents without a `done`, and lines it cannot read. */
const unfinishedIntents = (
  journal: string,
  text: string,
  forum: string,
): {
  readonly unfinished: ReadonlyArray<Unfinished>;
  /**
   * Whether this forum's run wrote it: another forum's journal (or one whose
   * first line is still being written) is left to a run on that forum.
   */
  readonly ours: boolean;
} => {
  const intents = new Map<number, Unfinished>();
  let ours = false;
  let otherForum = false;
  for (const raw of text.split("\n")) {
    if (raw.trim() === "") continue;
    const line = Schema.decodeUnknownEither(JournalLine)(raw);
    if (Either.isLeft(line)) {
      // A run killed mid-append leaves half a line: that intent was never
      // complete on disk, so its write was never sent.
      continue;
    }
    const value = line.right;
    if ("done" in value) intents.delete(value.done);
    else if (value.forum !== forum) otherForum = true;
    else {
      ours = true;
      intents.set(value.intent, { journal, entry: value.entry });
    }
  }
  return { unfinished: [...intents.values()], ours: ours && !otherForum };
};

type IntentField = IntentEntry["fields"][number];

/** Whether a membership change arrived: the member is in (or out of) the group. */
const membershipLanded = (entry: IntentEntry) =>
  Effect.gen(function* () {
    const discourse = yield* Discourse;
    const adding = entry.action === "GROUP_ADD";
    const group = String(
      (adding ? entry.after.group : entry.before.group) ?? "",
    );
    const { members } = yield* discourse.groupMembers(group).pipe(
      Effect.catchTag(
        "DiscourseNotFound",
        () => Effect.succeed({ members: [] }),
      ),
    );
    const member = members.some((name) =>
      name.toLowerCase() === entry.normalizedUsername.toLowerCase()
    );
    return Option.some<ReadonlyArray<IntentField>>(
      member === adding ? ["group"] : [],
    );
  });

/** What the forum holds now, for the fields an intent was writing. */
const currentValues = (entry: IntentEntry) =>
  Effect.gen(function* () {
    if (entry.action === "GROUP_ADD" || entry.action === "GROUP_REMOVE") {
      return yield* membershipLanded(entry);
    }
    const discourse = yield* Discourse;
    const found = yield* discourse.userByUsername(entry.normalizedUsername);
    if (Option.isNone(found)) return Option.none();
    const user = found.value;
    const emails = entry.fields.includes("email")
      ? yield* discourse.emails(user.username)
      : undefined;
    const now = new Date(yield* Clock.currentTimeMillis);
    const landed = (field: IntentField): boolean => {
      const after = String(entry.after[field] ?? "");
      switch (field) {
        case "group":
          return false;
        case "suspended":
          return String(
            isSuspendedNow(
              { suspendedTill: user.suspended_till ?? undefined },
              now,
            ),
          ) === after;
        case "name":
          return sameValue(field, user.name, after);
        case "location":
          return sameValue(field, user.location, after);
        case "bio":
          return sameValue(field, user.bio_raw, after);
        case "email":
          // An email change waits for the user's click: asked is landed.
          return emails !== undefined &&
            [emails.email, ...emails.unconfirmed_emails].some((address) =>
              sameValue("email", address, after)
            );
      }
    };
    return Option.some<ReadonlyArray<IntentField>>(
      entry.fields.filter(landed),
    );
  });

/** The row that says what an unfinished intent left in the forum. */
const recoveredEntry = (
  item: Unfinished,
  landed: Option.Option<ReadonlyArray<IntentField>>,
): AuditEntry => {
  const { entry } = item;
  const journalName = item.journal.split(/[\\/]/).pop() ?? item.journal;
  const head = `recovered from ${journalName}: that run stopped while writing ${
    entry.fields.join(", ")
  } and never logged it; checked on restart`;
  const only = (fields: ReadonlyArray<IntentField>) => ({
    fields,
    before: Object.fromEntries(fields.map((f) => [f, entry.before[f] ?? ""])),
    after: Object.fromEntries(fields.map((f) => [f, entry.after[f] ?? ""])),
  });
  const base = {
    originalUsername: entry.originalUsername,
    normalizedUsername: entry.normalizedUsername,
    fullname: entry.fullname,
    email: entry.email,
    location: entry.location,
    moodleId: entry.moodleId ?? undefined,
  };
  if (Option.isNone(landed)) {
    return {
      ...base,
      ...only([]),
      action: entry.action === "CREATE" ? "CREATE" : "ERROR",
      status: entry.action === "CREATE" ? "SKIPPED" : "ERROR",
      message:
        `${head}: the forum has no account "${entry.normalizedUsername}"${
          entry.action === "CREATE"
            ? ", so it was not created"
            : " any more (deleted or renamed since), so what arrived cannot be checked"
        }`,
    };
  }
  const fields = landed.value;
  const missing = entry.fields.filter((f) => !fields.includes(f));
  if (fields.length === 0) {
    return {
      ...base,
      ...only([]),
      action: entry.action,
      status: "SKIPPED",
      message: `${head}: the forum holds none of it, so it never arrived`,
    };
  }
  return {
    ...base,
    ...only(fields),
    action: entry.action,
    // Partly arrived: an error row that still lists what was written, so
    // `revert` can put it back.
    status: missing.length === 0 ? "SUCCESS" : "ERROR",
    message: `${head}: the forum holds ${fields.join(", ")} as written${
      missing.length > 0 ? `; ${missing.join(", ")} did not arrive` : ""
    }`,
  };
};

/**
 * Before a run writes anything: every unfinished intent an earlier run left
 * in the log folder, for this forum, is checked against the forum and logged
 * in this run's log; its journal is then retired. Returns the rows written.
 */
export const recoverUnfinishedWrites = (forum: string): Effect.Effect<
  ReadonlyArray<AuditEntry>,
  AuditLogError | DiscourseError,
  AuditLog | Discourse | FileSystem.FileSystem
> =>
  Effect.gen(function* () {
    const fs = yield* FileSystem.FileSystem;
    const audit = yield* AuditLog;
    const dir = audit.path.replace(/[\\/][^\\/]*$/, "") || ".";
    const own = journalPath(audit.path);
    const names = yield* fs.readDirectory(dir).pipe(
      Effect.orElseSucceed((): ReadonlyArray<string> => []),
    );
    const recovered: Array<AuditEntry> = [];
    for (const name of [...names].sort()) {
      const path = `${dir}/${name}`;
      if (!name.endsWith(".journal") || path === own) continue;
      const text = yield* fs.readFileString(path).pipe(
        Effect.mapError((error) =>
          new AuditLogError({
            path,
            reason:
              `an earlier run's journal cannot be read (${error.message}); its writes must be checked before this run writes`,
          })
        ),
      );
      const { unfinished, ours } = unfinishedIntents(path, text, forum);
      if (!ours) continue;
      for (const item of unfinished) {
        const entry = recoveredEntry(item, yield* currentValues(item.entry));
        yield* audit.record(entry);
        recovered.push(entry);
      }
      // Every row above is on disk (sealed logs are fsync'd row by row).
      yield* fs.remove(path).pipe(
        Effect.mapError((error) =>
          new AuditLogError({ path, reason: error.message })
        ),
      );
    }
    return recovered;
  });

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
