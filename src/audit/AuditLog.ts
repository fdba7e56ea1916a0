import * as FileSystem from "@effect/platform/FileSystem";
import { Context, Data, Effect, Layer, Option, Ref, Schema } from "effect";
import { stringify } from "csv-stringify/sync";
import { makeLine } from "../domain/line.ts";
import { macPath, RunningSeal, type SealScope } from "./LogMac.ts";

/** The columns of the audit log, in order. One place decides them. */
export const auditColumns = [
  "timestamp",
  "original_username",
  "normalized_username",
  "fullname",
  "email",
  "location",
  "action",
  "status",
  "message",
  "moodle_id",
  "fields",
  "before",
  "after",
] as const;

export type AuditAction =
  | "CREATE"
  | "UPDATE"
  | "EXCLUDE"
  | "ERROR"
  | "GROUP_ADD"
  | "GROUP_REMOVE"
  | "SUSPEND"
  | "UNSUSPEND";
export type AuditStatus =
  | "DRY_RUN"
  | "SUCCESS"
  | "EXISTS"
  | "EXCLUDED"
  | "SKIPPED"
  | "VERIFY_FAILED"
  | "ERROR"
  | "EXCEPTION";

/** What the pipeline knows about one user when it is done with them. */
export interface AuditEntry {
  readonly originalUsername: string;
  readonly normalizedUsername: string;
  readonly fullname: string;
  readonly email: string;
  readonly location: string;
  readonly action: AuditAction;
  readonly status: AuditStatus;
  readonly message: string;
  readonly moodleId: number | undefined;
  readonly fields: ReadonlyArray<string>;
  /** Profile fields as text; a suspension as `{"suspended": false}`. */
  readonly before: Readonly<Record<string, string | boolean>>;
  readonly after: Readonly<Record<string, string | boolean>>;
}

/**
 * One row of the log as its cells: what the writer writes and what `revert`
 * decodes when it reads a log back. Every cell is text in a CSV.
 */
export const AuditRow = Schema.Struct(
  {
    timestamp: Schema.String,
    original_username: Schema.String,
    normalized_username: Schema.String,
    fullname: Schema.String,
    email: Schema.String,
    location: Schema.String,
    action: Schema.String,
    status: Schema.String,
    message: Schema.String,
    moodle_id: Schema.String,
    fields: Schema.String,
    before: Schema.String,
    after: Schema.String,
  } satisfies Record<(typeof auditColumns)[number], typeof Schema.String>,
);
export type AuditRow = typeof AuditRow.Type;

export type RunMode = "dryrun" | "apply";

export class AuditLogError extends Data.TaggedError("AuditLogError")<{
  readonly path: string;
  readonly reason: string;
  /**
   * Set once the run has contacted a server: what reached the forum without
   * its row. Absent: the log could not even be opened, nothing was contacted.
   */
  readonly reached?: string;
}> {
  override get message() {
    const base = `Cannot write the audit log ${this.path}: ${this.reason}.`;
    return this.reached === undefined
      ? `${base} Check that logDir (or --log-dir) names a folder this user can write to.`
      : `${base} The run stopped there. ${this.reached}`;
  }
}

const pad = (n: number, width = 2) => String(n).padStart(width, "0");

/** `2026-11-28T15:40:03.120+01:00`: local time with its offset. */
export const isoWithOffset = (date: Date): string => {
  const offset = -date.getTimezoneOffset();
  const sign = offset >= 0 ? "+" : "-";
  const abs = Math.abs(offset);
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${
    pad(date.getDate())
  }T${pad(date.getHours())}:${pad(date.getMinutes())}:${
    pad(date.getSeconds())
  }.${pad(date.getMilliseconds(), 3)}${sign}${pad(Math.floor(abs / 60))}:${
    pad(abs % 60)
  }`;
};

/** `sync_log_{env}_{mode}_{YYYYMMDD_HHMMSS}.csv`, as the Python script named them. */
export const logFileName = (env: string, mode: RunMode, date: Date): string =>
  `sync_log_${
    env.replace(/[^A-Za-z0-9_.-]/g, "_")
  }_${mode}_${date.getFullYear()}${pad(date.getMonth() + 1)}${
    pad(date.getDate())
  }_${pad(date.getHours())}${pad(date.getMinutes())}${
    pad(date.getSeconds())
  }.csv`;

/**
 * Spreadsheets run a cell that starts with one of these as a formula, so an
 * attacker-controlled Moodle field could execute in the operator's Excel.
 */
// A leading `'` is escaped too, so the reader can strip exactly one.
const formulaStart = /^['=+\-@\t\r]/;
export const neutraliseFormula = (cell: string): string =>
  formulaStart.test(cell) ? `'${cell}` : cell;

const jsonCell = (
  fields: ReadonlyArray<string>,
  values: Readonly<Record<string, string | boolean>>,
) =>
  fields.length > 0 && Object.keys(values).length > 0
    ? JSON.stringify(values)
    : "";

export const toAuditRow = (entry: AuditEntry, at: Date): AuditRow => ({
  timestamp: isoWithOffset(at),
  original_username: entry.originalUsername,
  normalized_username: entry.normalizedUsername,
  fullname: entry.fullname,
  email: entry.email,
  location: entry.location,
  action: entry.action,
  status: entry.status,
  message: entry.message,
  moodle_id: entry.moodleId === undefined ? "" : String(entry.moodleId),
  fields: entry.fields.join(";"),
  // Empty for a side that holds nothing (a membership's add has no before).
  before: jsonCell(entry.fields, entry.before),
  after: jsonCell(entry.fields, entry.after),
});

const csvLine = (cells: ReadonlyArray<string>): string =>
  stringify([cells.map(neutraliseFormula)], { record_delimiter: "windows" });

export class AuditLog extends Context.Tag("AuditLog")<AuditLog, {
  readonly path: string;
  /**
   * The log's path once it holds a row. A log that ends without one is
   * removed with its seal: a run that logged nobody leaves no file.
   */
  readonly written: Effect.Effect<Option.Option<string>>;
  /** Appends one row and returns it; the row is on disk when this succeeds. */
  readonly record: (
    entry: AuditEntry,
  ) => Effect.Effect<AuditRow, AuditLogError>;
}>() {
  /**
   * A new log file in `dir`. Rows are appended whole lines at a time, so a
   * run killed mid-way still leaves a file that parses, holding every
   * finished user.
   */
  static readonly layer = (
    options: {
      readonly dir: string;
      readonly env: string;
      readonly mode: RunMode;
      readonly now?: () => Date;
      /** Hides the run's secrets in every cell. */
      readonly scrub?: (text: string) => string;
      /** Keeps `LOG.csv.mac` up to date after every row, for `revert`. */
      readonly seal?: SealScope;
    },
  ) =>
    Layer.scoped(
      AuditLog,
      Effect.gen(function* () {
        const fs = yield* FileSystem.FileSystem;
        const now = options.now ?? (() => new Date());
        const fail = (path: string) => (error: unknown) =>
          new AuditLogError({
            path,
            reason: error instanceof Error ? error.message : String(error),
          });
        yield* fs.makeDirectory(options.dir, { recursive: true, mode: 0o700 })
          .pipe(Effect.mapError(fail(options.dir)));
        const file = yield* openFresh(
          fs,
          options.dir,
          options.env,
          options.mode,
          now(),
        );
        const encoder = new TextEncoder();
        const seal = options.seal && new RunningSeal(options.seal);
        /** Lines written in one go; with a seal, one fsync and one MAC. */
        const writeLines = (lines: ReadonlyArray<string>) => {
          const parts = lines.map((line) => encoder.encode(line));
          const bytes = parts.length === 1 ? parts[0] : concatBytes(parts);
          const written = file.handle.writeAll(bytes).pipe(
            Effect.mapError(fail(file.path)),
          );
          if (!seal) return written;
          // A sealed row is on disk before its MAC says so: a killed run
          // leaves a log whose sealed prefix still verifies.
          return written.pipe(
            Effect.zipRight(
              file.handle.sync.pipe(Effect.mapError(fail(file.path))),
            ),
            Effect.zipRight(
              Effect.sync(() => parts.forEach((part) => seal.add(part))),
            ),
            Effect.zipRight(
              Effect.suspend(() =>
                replaceFile(fs, macPath(file.path), seal.text())
              ).pipe(
                Effect.mapError(fail(macPath(file.path))),
              ),
            ),
          );
        };
        yield* writeLines([csvLine(auditColumns)]);
        // Made (and its name reserved) before anything is contacted, so a
        // log that cannot be written stops the run before its first write.
        const rows = yield* Ref.make(0);
        yield* Effect.addFinalizer(() =>
          Effect.flatMap(Ref.get(rows), (count) =>
            count > 0 ? Effect.void : Effect.all([
              fs.remove(file.path),
              seal ? fs.remove(macPath(file.path)) : Effect.void,
            ]).pipe(Effect.ignore))
        );
        // Rows from concurrent users must not interleave mid-line. Rows that
        // come while a write is on its way go out together in the next one:
        // the first caller to get its turn writes every row waiting, and a
        // later one finds its own already on disk (or the failure that kept
        // it off).
        const line = yield* makeLine;
        const waiting: Array<string> = [];
        let queued = 0;
        let onDisk = 0;
        let failed: AuditLogError | undefined;
        const append = (text: string) =>
          Effect.suspend(() => {
            waiting.push(text);
            const mine = ++queued;
            return line.inTurn(Effect.suspend(() => {
              if (mine <= onDisk) {
                return Effect.void;
              }
              if (failed !== undefined) {
                return Effect.fail(failed);
              }
              const batch = waiting.splice(0);
              // Others' rows ride on this write: it runs to its end.
              return Effect.uninterruptible(writeLines(batch)).pipe(
                Effect.tap(() => {
                  onDisk += batch.length;
                  return Ref.update(rows, (n) =>
                    n + batch.length);
                }),
                Effect.tapError((error) =>
                  Effect.sync(() => {
                    failed = error;
                  })
                ),
              );
            }));
          });
        return {
          path: file.path,
          written: Effect.map(
            Ref.get(rows),
            (count) =>
              count > 0 ? Option.some(file.path) : Option.none(),
          ),
          record: (entry: AuditEntry) => {
            const raw = toAuditRow(entry, now());
            const scrub = options.scrub;
            const row: AuditRow = scrub === undefined
              ? raw
              : Object.fromEntries(
                auditColumns.map((column) => [column, scrub(raw[column])]),
              ) as AuditRow;
            return append(csvLine(auditColumns.map((c) => row[c]))).pipe(
              Effect.as(row),
            );
          },
        };
      }),
    );
}

const concatBytes = (parts: ReadonlyArray<Uint8Array>): Uint8Array => {
  const all = new Uint8Array(
    parts.reduce((sum, part) => sum + part.byteLength, 0),
  );
  let offset = 0;
  for (const part of parts) {
    all.set(part, offset);
    offset += part.byteLength;
  }
  return all;
};

/** Two runs started in the same second get `_2`, `_3`...: never overwrite a log. */
const openFresh = (
  fs: FileSystem.FileSystem,
  dir: string,
  env: string,
  mode: RunMode,
  date: Date,
) =>
  Effect.gen(function* () {
    const base = logFileName(env, mode, date).replace(/\.csv$/, "");
    for (let attempt = 1;; attempt++) {
      const path = `${dir.replace(/\/+$/, "")}/${base}${
        attempt === 1 ? "" : `_${attempt}`
      }.csv`;
      // 600: the log holds every user's email.
      const opened = yield* fs.open(path, { flag: "wx", mode: 0o600 }).pipe(
        Effect.map((handle) => ({ path, handle })),
        Effect.catchIf(
          (error) =>
            error._tag === "SystemError" && error.reason === "AlreadyExists" &&
            attempt < 100,
          () => Effect.succeed(undefined),
        ),
        Effect.mapError((error) =>
          new AuditLogError({ path, reason: error.message })
        ),
      );
      if (opened) return opened;
    }
  });

/**
 * Writes `path` through a temporary file and a rename, so a reader (or a
 * run killed mid-write) sees the old content or the new, never half.
 */
export const replaceFile = (
  fs: FileSystem.FileSystem,
  path: string,
  text: string,
) =>
  Effect.gen(function* () {
    const temporary = `${path}.tmp`;
    yield* Effect.scoped(Effect.gen(function* () {
      const file = yield* fs.open(temporary, { flag: "w", mode: 0o600 });
      yield* file.writeAll(new TextEncoder().encode(text));
      yield* file.sync;
    }));
    yield* fs.rename(temporary, path);
  });
