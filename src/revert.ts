/**
 * `sync-moodle-discourse revert LOG.csv`: puts back the `before` values of
 * every SUCCESS row of an apply log. A field is only put back while Discourse
 * still holds what the sync wrote: anything changed since (by the user, an
 * admin or a later sync) is newer than the log and is left alone.
 */
import type * as FileSystem from "@effect/platform/FileSystem";
import { Console, Data, Effect, Either, Option, Ref } from "effect";
import { parse } from "csv-parse/sync";
import {
  type AuditAction,
  auditColumns,
  type AuditEntry,
  AuditLog,
  type AuditLogError,
  type AuditStatus,
} from "./audit/AuditLog.ts";
import {
  Journal,
  recoverUnfinishedWrites,
  unlessStoppedNow,
} from "./audit/Journal.ts";
import { Discourse, type DiscourseError } from "./discourse/Discourse.ts";
import type { DiscourseUser } from "./discourse/schema.ts";
import { describeUser } from "./report/console.ts";
import { type SyncedField, syncedFields } from "./settings.ts";
import { applyChanges, PartialWrite } from "./sync/apply.ts";
import { type FieldChange, sameValue, type SkippedField } from "./sync/diff.ts";
import { ExitCode, noLogWritten } from "./sync/outcome.ts";
import { fileLimits, readSmallFile, readSmallFileBytes } from "./smallFile.ts";
import { verifyProfile } from "./sync/verify.ts";
import { checkSeal, macPath, type SealScope } from "./audit/LogMac.ts";

/** The file given to `revert` is not an apply log this tool can undo. */
export class RevertInputError extends Data.TaggedError("RevertInputError")<{
  readonly path: string;
  readonly reason: string;
}> {
  override get message(): string {
    return `${this.path} cannot be reverted: ${this.reason}`;
  }
}

/** One SUCCESS row of the apply log, read back. */
export interface RevertTarget {
  /** Line of the CSV file the row starts on (1 is the header). */
  readonly line: number;
  readonly entry: Omit<
    AuditEntry,
    "action" | "status" | "message" | "fields" | "before" | "after"
  >;
  readonly fields: ReadonlyArray<SyncedField>;
  readonly before: Readonly<Record<string, string>>;
  readonly after: Readonly<Record<string, string>>;
}

/** A row that cannot be read back: reported as that user's ERROR. */
export interface UnreadableRow {
  readonly line: number;
  readonly entry: RevertTarget["entry"];
  readonly problem: string;
}

export interface ApplyLog {
  readonly targets: ReadonlyArray<RevertTarget>;
  readonly unreadable: ReadonlyArray<UnreadableRow>;
  /** Rows that were not SUCCESS: nothing was written for them. */
  readonly ignored: number;
}

/** The audit log put `'` before cells a spreadsheet would run: undo that. */
const unneutralise = (cell: string): string =>
  /^'[=+\-@\t\r]/.test(cell) ? cell.slice(1) : cell;

const isSyncedField = (name: string): name is SyncedField =>
  (syncedFields as ReadonlyArray<string>).includes(name);

const stringRecord = (
  text: string,
): Option.Option<Readonly<Record<string, string>>> => {
  try {
    const value: unknown = JSON.parse(text);
    if (
      typeof value !== "object" || value === null || Array.isArray(value) ||
      !Object.values(value).every((v) => typeof v === "string")
    ) return Option.none();
    return Option.some(value as Record<string, string>);
  } catch {
    return Option.none();
  }
};

/**
 * A SUCCESS row, or an UPDATE/CREATE row with status ERROR that still lists
 * fields: a write that went partly through (the profile, not the email),
 * whose fields were written. A refusal before sending is action ERROR.
 */
const wroteSomething = (
  action: string,
  status: string,
  fields: string,
): boolean =>
  status === "SUCCESS" ||
  (status === "ERROR" && (action === "UPDATE" || action === "CREATE") &&
    fields !== "");

/**
 * Reads an apply log: refuses anything that is not one (another CSV, a
 * dry-run log, a revert dry-run), and returns its SUCCESS rows. Pure.
 */
export const parseApplyLog = (
  path: string,
  text: string,
): Effect.Effect<ApplyLog, RevertInputError> =>
  Effect.gen(function* () {
    const refuse = (reason: string) => new RevertInputError({ path, reason });
    const notALog =
      "it is not an audit log of sync-moodle-discourse (sync_log_{env}_apply_{date}.csv)";
    const records = yield* Effect.try({
      try: () =>
        parse(text, {
          relax_column_count: false,
          skip_empty_lines: true,
          info: true,
        }) as unknown as Array<
          { record: string[]; info: { lines: number } }
        >,
      catch: () => refuse(`${notALog}: it does not parse as CSV`),
    });
    const [header, ...rows] = records;
    if (
      header === undefined ||
      header.record.join(",") !== auditColumns.join(",")
    ) {
      return yield* refuse(
        `${notALog}: its first line is not the audit log's columns (${
          auditColumns.join(",")
        })`,
      );
    }
    const column = (name: (typeof auditColumns)[number]) =>
      auditColumns.indexOf(name);
    const cell = (row: string[], name: (typeof auditColumns)[number]) =>
      unneutralise(row[column(name)] ?? "");
    const fileName = path.split(/[\\/]/).pop() ?? path;
    if (
      /_dryrun_/.test(fileName) ||
      rows.some((row) => cell(row.record, "status") === "DRY_RUN")
    ) {
      return yield* refuse(
        "it is the log of a dry-run, which changed nothing, so there is nothing to put back. Give the log of the --apply run (sync_log_{env}_apply_{date}.csv)",
      );
    }
    const targets: Array<RevertTarget> = [];
    const unreadable: Array<UnreadableRow> = [];
    let ignored = 0;
    for (const { record, info } of rows) {
      if (
        !wroteSomething(
          cell(record, "action"),
          cell(record, "status"),
          cell(record, "fields"),
        )
      ) {
        ignored++;
        continue;
      }
      const id = Number(cell(record, "moodle_id"));
      const entry = {
        originalUsername: cell(record, "original_username"),
        normalizedUsername: cell(record, "normalized_username"),
        fullname: cell(record, "fullname"),
        email: cell(record, "email"),
        location: cell(record, "location"),
        moodleId: cell(record, "moodle_id") !== "" && Number.isInteger(id)
          ? id
          : undefined,
      };
      const line = info.lines;
      const fields = cell(record, "fields").split(";").filter((f) => f !== "");
      const before = stringRecord(cell(record, "before"));
      const after = stringRecord(cell(record, "after"));
      const problem = entry.normalizedUsername === ""
        ? "the row names no Discourse username"
        : !fields.every(isSyncedField)
        ? `unknown fields "${cell(record, "fields")}"`
        : Option.isNone(before) || Option.isNone(after)
        ? "its before/after cells are not the JSON objects this tool writes"
        : fields.some((f) => !(f in before.value) || !(f in after.value))
        ? "its before/after cells lack some of its fields"
        : undefined;
      if (
        problem !== undefined || Option.isNone(before) || Option.isNone(after)
      ) {
        unreadable.push({
          line,
          entry,
          problem: problem ?? "unreadable row",
        });
        continue;
      }
      targets.push({
        line,
        entry,
        fields: fields as Array<SyncedField>,
        before: before.value,
        after: after.value,
      });
    }
    return { targets, unreadable, ignored };
  });

/** What to do for one row, decided from the forum's current values. Pure. */
export interface RevertPlan {
  readonly changes: ReadonlyArray<FieldChange>;
  readonly skipped: ReadonlyArray<SkippedField>;
  /** Said in the row, not a reason to skip: e.g. an unconfirmed email. */
  readonly notes: ReadonlyArray<string>;
}

const shown = (value: string) =>
  JSON.stringify(value.length > 60 ? `${value.slice(0, 60)}…` : value);

/**
 * Which fields go back. A field goes back only while Discourse still holds
 * the row's `after`. Email is special: Discourse changes it only when the
 * user clicks the confirmation link, so an unconfirmed change has nothing to
 * undo, and asking again would mail the user about a change they never made.
 */
export const planRevert = (
  target: RevertTarget,
  current: {
    readonly user: DiscourseUser;
    /** Primary email; undefined when the row changed no email. */
    readonly email: string | undefined;
  },
): RevertPlan => {
  const changes: Array<FieldChange> = [];
  const skipped: Array<SkippedField> = [];
  const notes: Array<string> = [];
  const values: Record<SyncedField, string> = {
    name: current.user.name,
    location: current.user.location,
    bio: current.user.bio_raw,
    email: current.email ?? "",
  };
  const editable: Record<SyncedField, boolean> = {
    name: current.user.can_edit_name,
    location: current.user.can_change_location,
    bio: current.user.can_change_bio,
    email: true,
  };
  for (const field of target.fields) {
    const before = target.before[field];
    const after = target.after[field];
    const now = values[field];
    if (field === "email") {
      if (sameValue("email", now, before)) {
        notes.push(
          `email: the change to ${after} was never confirmed by the user, so Discourse still has ${now}; nothing to put back and no mail sent (the pending confirmation link expires on its own)`,
        );
        continue;
      }
      if (!sameValue("email", now, after)) {
        skipped.push({
          field,
          reason: `changed since the sync (now ${shown(now)}): left alone`,
        });
        continue;
      }
      changes.push({ field, before: now, after: before });
      notes.push(
        `email: the user confirmed ${after}; a confirmation link goes to ${before} and the change back happens when they click it`,
      );
      continue;
    }
    if (!sameValue(field, now, after)) {
      skipped.push({
        field,
        reason: sameValue(field, now, before)
          ? "already holds the value from before the sync"
          : `changed since the sync (now ${shown(now)}): left alone`,
      });
      continue;
    }
    if (!editable[field]) {
      skipped.push({
        field,
        reason: "the site no longer lets the API change it",
      });
      continue;
    }
    changes.push({ field, before: now, after: before });
  }
  return { changes, skipped, notes };
};

export interface RevertSummary {
  readonly mode: "dryrun" | "apply";
  readonly rows: number;
  readonly considered: number;
  readonly notReached: number;
  readonly counts: Readonly<Record<string, number>>;
  readonly failures: number;
  /** Absent when no row was logged, so no file was made. */
  readonly logPath: string | undefined;
  readonly stoppedBy: string | undefined;
  readonly interrupted: boolean;
}

/** Names a row's writes in the journal: one line of the log, one user. */
const lineKey = (row: { readonly line: number }) => `line:${row.line}`;

/** Errors after which no further user should be written. */
const isFatal = (error: { readonly _tag: string }): boolean =>
  error._tag === "DiscourseCredentialsRejected" ||
  error._tag === "DiscourseTransportError" ||
  // discourse.url redirects elsewhere, or 429s used up the run's waiting.
  error._tag === "DiscourseRedirected" ||
  error._tag === "DiscourseRateLimitBudgetSpent";

interface Done {
  readonly entry: AuditEntry;
  readonly changes: ReadonlyArray<FieldChange>;
  readonly skipped: ReadonlyArray<SkippedField>;
}

/**
 * Reverts the SUCCESS rows of `log`, in the order they were written, and
 * records one row per SUCCESS row in the revert's own audit log.
 */
export const runRevert = (
  options: {
    readonly log: ApplyLog;
    readonly apply: boolean;
    /** The forum's key (lock.ts forumKey): whose unfinished writes to check. */
    readonly forum: string;
    readonly stopRequested?: Effect.Effect<boolean>;
    /** Completes at a second signal: no further write starts. */
    readonly stopNow?: Effect.Effect<void>;
  },
): Effect.Effect<
  RevertSummary,
  AuditLogError | DiscourseError,
  Discourse | AuditLog | Journal | FileSystem.FileSystem
> =>
  Effect.gen(function* () {
    const discourse = yield* Discourse;
    const audit = yield* AuditLog;
    const journal = yield* Journal;
    const counts = yield* Ref.make<Record<string, number>>({});
    const stop = yield* Ref.make<string | undefined>(undefined);
    const interrupted = yield* Ref.make(false);
    const considered = yield* Ref.make(0);

    const finish = (user: string, done: Done) =>
      Effect.gen(function* () {
        const row = yield* journal.record(user, done.entry);
        const key = `${done.entry.action}/${done.entry.status}`;
        yield* Ref.update(counts, (c) => ({ ...c, [key]: (c[key] ?? 0) + 1 }));
        for (
          const line of describeUser({
            entry: done.entry,
            row,
            changes: done.changes,
            skipped: done.skipped,
          })
        ) yield* Console.log(line);
      });

    const entryOf = (
      target: Pick<RevertTarget, "entry">,
      action: AuditAction,
      status: AuditStatus,
      message: string,
      changes: ReadonlyArray<FieldChange> = [],
    ): AuditEntry => ({
      ...target.entry,
      action,
      status,
      message,
      fields: changes.map((c) => c.field),
      before: Object.fromEntries(changes.map((c) => [c.field, c.before])),
      after: Object.fromEntries(changes.map((c) => [c.field, c.after])),
    });

    const describe = (
      head: string,
      plan: RevertPlan,
    ) =>
      [
        head,
        ...plan.skipped.map((s) => `${s.field} skipped: ${s.reason}`),
        ...plan.notes,
      ].filter((part) => part !== "").join("; ");

    const revertOne = (target: RevertTarget) =>
      Effect.gen(function* () {
        const username = target.entry.normalizedUsername;
        const found = yield* discourse.userByUsername(username);
        if (Option.isNone(found)) {
          return {
            entry: entryOf(
              target,
              "ERROR",
              "ERROR",
              `"${username}" is no longer in Discourse (deleted or renamed since the sync): nothing put back`,
            ),
            changes: [],
            skipped: [],
          } satisfies Done;
        }
        const user = found.value;
        const email = target.fields.includes("email")
          ? (yield* discourse.emails(user.username)).email
          : undefined;
        const plan = planRevert(target, { user, email });
        const fieldNames = plan.changes.map((c) => c.field).join(", ");
        if (plan.changes.length === 0) {
          const status: AuditStatus = plan.skipped.length > 0
            ? "SKIPPED"
            : "EXISTS";
          return {
            entry: entryOf(
              target,
              "UPDATE",
              status,
              describe("nothing to put back", plan),
            ),
            changes: [],
            skipped: plan.skipped,
          } satisfies Done;
        }
        if (!options.apply) {
          return {
            entry: entryOf(
              target,
              "UPDATE",
              "DRY_RUN",
              describe(`would put back ${fieldNames}`, plan),
              plan.changes,
            ),
            changes: plan.changes,
            skipped: plan.skipped,
          } satisfies Done;
        }
        const pending = entryOf(
          target,
          "UPDATE",
          "DRY_RUN",
          describe(`would put back ${fieldNames}`, plan),
          plan.changes,
        );
        const written = yield* journal.write(
          lineKey(target),
          pending,
          applyChanges(user.username, plan.changes),
        ).pipe(Effect.either);
        if (Either.isLeft(written)) {
          const failure = written.left;
          if (!(failure instanceof PartialWrite)) return yield* failure;
          // What was put back is listed, with its values, so the row itself
          // can be reverted.
          const put = plan.changes.filter((c) =>
            failure.written.includes(c.field)
          );
          if (isFatal(failure.error)) {
            yield* Ref.update(stop, (now) => now ?? failure.error.message);
          }
          return {
            entry: entryOf(
              target,
              "UPDATE",
              "ERROR",
              `${
                failure.written.join(", ")
              } put back, then the email change failed: ${failure.error.message}`,
              put,
            ),
            changes: put,
            skipped: plan.skipped,
          } satisfies Done;
        }
        const applied = written.right;
        const mismatches = Option.match(applied.stored, {
          onNone: () => [],
          onSome: (stored) => verifyProfile(plan.changes, stored),
        });
        if (mismatches.length > 0) {
          return {
            entry: entryOf(
              target,
              "UPDATE",
              "VERIFY_FAILED",
              describe(
                `Discourse did not keep ${
                  mismatches.map((m) => `${m.field} (holds ${shown(m.actual)})`)
                    .join(", ")
                }: a site setting may override it`,
                plan,
              ),
              plan.changes,
            ),
            changes: plan.changes,
            skipped: plan.skipped,
          } satisfies Done;
        }
        return {
          entry: entryOf(
            target,
            "UPDATE",
            "SUCCESS",
            describe(`put back ${fieldNames}`, plan),
            plan.changes,
          ),
          changes: plan.changes,
          skipped: plan.skipped,
        } satisfies Done;
      }).pipe(
        Effect.catchAll((error) =>
          Effect.gen(function* () {
            if (error._tag === "AuditLogError") return yield* error;
            if (error._tag === "StoppedBeforeWrite") {
              return stoppedRow(target, error.message);
            }
            if (isFatal(error)) {
              yield* Ref.update(stop, (now) => now ?? error.message);
            }
            return {
              entry: entryOf(target, "ERROR", "ERROR", error.message),
              changes: [],
              skipped: [],
            } satisfies Done;
          })
        ),
        Effect.catchAllDefect((defect) =>
          Effect.succeed(
            {
              entry: entryOf(
                target,
                "ERROR",
                "EXCEPTION",
                `unexpected failure: ${String(defect)}`,
              ),
              changes: [],
              skipped: [],
            } satisfies Done,
          )
        ),
      );

    const stoppedRow = (target: RevertTarget, message: string): Done => ({
      entry: entryOf(target, "UPDATE", "SKIPPED", message),
      changes: [],
      skipped: [],
    });

    if (options.apply) {
      for (const entry of yield* recoverUnfinishedWrites(options.forum)) {
        yield* Console.error(
          `warning: ${entry.normalizedUsername} ${entry.action}/${entry.status}: ${entry.message}`,
        );
      }
    }

    for (const row of options.log.unreadable) {
      yield* Ref.update(considered, (n) => n + 1);
      yield* finish(lineKey(row), {
        entry: entryOf(
          row,
          "ERROR",
          "ERROR",
          `line ${row.line} of the log cannot be reverted: ${row.problem}`,
        ),
        changes: [],
        skipped: [],
      });
    }

    yield* Effect.forEach(
      options.log.targets,
      (target) =>
        Effect.gen(function* () {
          if ((yield* Ref.get(stop)) !== undefined) return;
          if (options.stopRequested && (yield* options.stopRequested)) {
            yield* Ref.set(interrupted, true);
            return;
          }
          yield* Ref.update(considered, (n) => n + 1);
          yield* finish(
            lineKey(target),
            yield* unlessStoppedNow(revertOne(target), {
              key: lineKey(target),
              stopNow: options.stopNow,
              stopped: () =>
                stoppedRow(
                  target,
                  "not put back: the revert was told to stop now (a second signal) before this row's write was sent",
                ),
            }),
          );
        }),
      { concurrency: 1, discard: true },
    );

    const finalCounts = yield* Ref.get(counts);
    const rows = options.log.targets.length + options.log.unreadable.length;
    const consideredCount = yield* Ref.get(considered);
    return {
      mode: options.apply ? "apply" : "dryrun",
      rows,
      considered: consideredCount,
      notReached: rows - consideredCount,
      counts: finalCounts,
      failures: Object.entries(finalCounts).filter(([key]) =>
        /\/(ERROR|EXCEPTION|VERIFY_FAILED)$/.test(key)
      ).reduce((sum, [, n]) => sum + n, 0),
      logPath: Option.getOrUndefined(yield* audit.written),
      stoppedBy: yield* Ref.get(stop),
      interrupted: yield* Ref.get(interrupted),
    } satisfies RevertSummary;
  });

/** The summary a person reads after a revert. */
export const describeRevertSummary = (
  summary: RevertSummary,
  ignored: number,
): ReadonlyArray<string> => [
  "",
  `Revert (${
    summary.mode === "apply" ? "apply" : "dry-run"
  }): ${summary.considered} of ${summary.rows} SUCCESS rows considered; ${ignored} other rows had written nothing`,
  ...Object.entries(summary.counts).sort(([a], [b]) => a.localeCompare(b))
    .map(([key, n]) => `  ${key.padEnd(22)} ${n}`),
  `  Audit log              ${summary.logPath ?? noLogWritten}`,
  ...(summary.stoppedBy !== undefined
    ? [`  Stopped early: ${summary.stoppedBy}`]
    : summary.interrupted
    ? [`  Interrupted: ${summary.notReached} rows not reached`]
    : []),
  ...(summary.mode === "dryrun" && (summary.counts["UPDATE/DRY_RUN"] ?? 0) > 0
    ? ["  Add --apply to put these values back"]
    : []),
];

/** The exit code of a revert; the same meanings as a sync's. */
export const revertExitCode = (summary: RevertSummary): number =>
  summary.stoppedBy !== undefined
    ? ExitCode.fatal
    : summary.interrupted
    ? ExitCode.interrupted
    : summary.failures > 0
    ? ExitCode.failures
    : ExitCode.ok;

/** How `revert` treats the log's MAC (`LOG.csv.mac`). */
export interface SealCheck {
  readonly scope: SealScope;
  /** `--apply`: a log that fails its check is refused unless trusted. */
  readonly apply: boolean;
  /**
   * `--trust-edited-log`: asks the operator to confirm in the terminal;
   * undefined when the flag was not given.
   */
  readonly confirmTrust:
    | ((reason: string) => Effect.Effect<boolean>)
    | undefined;
}

/**
 * Reads the log file named on the command line. Under `--apply` only bytes
 * this tool wrote and sealed for this forum and environment are reverted;
 * `warnings` says what the operator should know (a dry-run of an unsealed
 * log, rows appended after the last MAC).
 */
export const readApplyLog = (
  path: string,
  check: SealCheck,
): Effect.Effect<
  { readonly log: ApplyLog; readonly warnings: ReadonlyArray<string> },
  RevertInputError
> =>
  Effect.gen(function* () {
    const bytes = yield* readSmallFileBytes(path, fileLimits.applyLog).pipe(
      Effect.mapError((error) =>
        new RevertInputError({
          path,
          reason: `it is ${error.found}, so it cannot be read: give the path ` +
            `of an apply log`,
        })
      ),
    );
    const decoder = new TextDecoder();
    const macText = yield* readSmallFile(macPath(path), fileLimits.logSeal)
      .pipe(
        Effect.map(Option.some),
        Effect.orElseSucceed(() => Option.none<string>()),
      );
    const seal = checkSeal(bytes, Option.getOrUndefined(macText), check.scope);
    if (Either.isRight(seal)) {
      // Only the sealed rows: a row cut by a kill or a full disk is after them.
      const log = yield* parseApplyLog(path, decoder.decode(seal.right.sealed));
      return {
        log,
        warnings: seal.right.unsealedBytes === 0 ? [] : [
          `the last ${seal.right.unsealedBytes} bytes of ${path} were appended after its last MAC (a run stopped mid-row): only the rows before them are reverted`,
        ],
      };
    }
    // What the file is comes first: a dry-run log has no MAC to speak of.
    const whole = yield* parseApplyLog(path, decoder.decode(bytes));
    const reason = seal.left;
    if (!check.apply) {
      return {
        log: whole,
        warnings: [`revert --apply will refuse ${path}: ${reason}`],
      };
    }
    if (check.confirmTrust === undefined) {
      return yield* new RevertInputError({
        path,
        reason:
          `${reason}. Revert writes whatever the log says, so it only takes a log this tool wrote for this forum. If you have checked this file line by line, --trust-edited-log reverts it after you confirm in a terminal`,
      });
    }
    if (!(yield* check.confirmTrust(reason))) {
      return yield* new RevertInputError({
        path,
        reason: `${reason}; --trust-edited-log was not confirmed`,
      });
    }
    return {
      log: whole,
      warnings: [
        `${path} failed its integrity check and is reverted on the operator's word: ${reason}`,
      ],
    };
  });
