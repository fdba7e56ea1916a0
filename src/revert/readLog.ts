/**
 * Reads back the apply log given to `revert`: its MAC checked, its rows
 * decoded with the writer's own `AuditRow` schema, the rows that wrote
 * something kept.
 */
import { Data, Effect, Either, Option, Schema } from "effect";
import { parse } from "csv-parse/sync";
import { auditColumns, type AuditEntry, AuditRow } from "../audit/AuditLog.ts";
import { type SyncedField, syncedFields } from "../domain/fields.ts";
import { fileLimits, readSmallFile, readSmallFileBytes } from "../smallFile.ts";
import { checkSeal, macPath, type SealScope } from "../audit/LogMac.ts";

/** The file given to `revert` is not an apply log this tool can undo. */
export class RevertInputError extends Data.TaggedError("RevertInputError")<{
  readonly path: string;
  readonly reason: string;
}> {
  override get message(): string {
    return `${this.path} cannot be reverted: ${this.reason}`;
  }
}

import {
  isSuspensionRow,
  readSuspensionRow,
  type SuspensionTarget,
} from "./suspension.ts";

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

/** A SUCCESS membership row of the apply log: one change to undo. */
export interface MembershipTarget {
  readonly line: number;
  readonly entry: RevertTarget["entry"];
  /** What the sync did: undone by the other direction. */
  readonly direction: "add" | "remove";
  readonly group: string;
}

export interface ApplyLog {
  readonly targets: ReadonlyArray<RevertTarget>;
  readonly memberships: ReadonlyArray<MembershipTarget>;
  /** SUSPEND and UNSUSPEND rows: undone by the opposite call. */
  readonly suspensions: ReadonlyArray<SuspensionTarget>;
  readonly unreadable: ReadonlyArray<UnreadableRow>;
  /** Rows that were not SUCCESS: nothing was written for them. */
  readonly ignored: number;
}

/** The audit log put `'` before cells a spreadsheet would run: undo that. */
const unneutralise = (cell: string): string =>
  /^'['=+\-@\t\r]/.test(cell) ? cell.slice(1) : cell;

/** What csv-parse gives with `info: true`: a row's cells and where it ends. */
const ParsedCsv = Schema.Array(Schema.Struct({
  record: Schema.Array(Schema.String),
  info: Schema.Struct({ lines: Schema.Number }),
}));

const FieldNames = Schema.Array(Schema.Literal(...syncedFields));

/** The `before` and `after` cells: JSON objects of field -> text. */
const FieldValues = Schema.parseJson(
  Schema.Record({ key: Schema.String, value: Schema.String }),
);
const fieldValues = Schema.decodeUnknownOption(FieldValues);

/**
 * A SUCCESS row, or an UPDATE/CREATE row with status ERROR that still lists
 * fields: a write that went partly through (the profile, not the email),
 * whose fields were written. A refusal before sending is action ERROR.
 */
/**
 * Rows whose `before` values are what the forum held. A CREATE row's are
 * the empty profile the account was made from: putting them back would blank
 * the account and ask for an email change to "", so revert leaves created (or
 * linked) accounts alone; it does not delete accounts.
 */
const wroteSomething = (
  action: string,
  status: string,
  fields: string,
): boolean =>
  action === "UPDATE" &&
  (status === "SUCCESS" || (status === "ERROR" && fields !== ""));

/** The `{"group": name}` cell of a membership row. */
const GroupCell = Schema.parseJson(Schema.Struct({ group: Schema.String }));

/** A SUCCESS membership row as a target, or what is wrong with it. */
const readMembership = (
  row: AuditRow,
): Either.Either<Omit<MembershipTarget, "line">, string> => {
  const direction = row.action === "GROUP_ADD" ? "add" : "remove";
  const cell = Schema.decodeUnknownOption(GroupCell)(
    direction === "add" ? row.after : row.before,
  );
  if (Option.isNone(cell) || row.normalized_username === "") {
    return Either.left(
      'its membership cells are not the ones this tool writes (a forum username and {"group": name})',
    );
  }
  return Either.right({
    entry: entryOf(row),
    direction,
    group: cell.value.group,
  });
};

const isMembership = (action: string) =>
  action === "GROUP_ADD" || action === "GROUP_REMOVE";

/** Who a row is about, as the sync logged them. */
const entryOf = (row: AuditRow): RevertTarget["entry"] => {
  const id = Number(row.moodle_id);
  return {
    originalUsername: row.original_username,
    normalizedUsername: row.normalized_username,
    fullname: row.fullname,
    email: row.email,
    location: row.location,
    moodleId: row.moodle_id !== "" && Number.isInteger(id) ? id : undefined,
  };
};

/** A row that wrote something, as a revert target, or what is wrong with it. */
export const readRow = (
  row: AuditRow,
): Either.Either<Omit<RevertTarget, "line">, string> => {
  const entry = entryOf(row);
  if (entry.normalizedUsername === "") {
    return Either.left("the row names no Discourse username");
  }
  const fields = Schema.decodeUnknownOption(FieldNames)(
    row.fields.split(";").filter((f) => f !== ""),
  );
  if (Option.isNone(fields)) {
    return Either.left(`unknown fields "${row.fields}"`);
  }
  const before = fieldValues(row.before);
  const after = fieldValues(row.after);
  if (Option.isNone(before) || Option.isNone(after)) {
    return Either.left(
      "its before/after cells are not the JSON objects this tool writes",
    );
  }
  if (
    fields.value.some((f) =>
      !Object.hasOwn(before.value, f) || !Object.hasOwn(after.value, f)
    )
  ) {
    return Either.left("its before/after cells lack some of its fields");
  }
  return Either.right({
    entry,
    fields: fields.value,
    before: before.value,
    after: after.value,
  });
};

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
      try: (): unknown =>
        parse(text, {
          relax_column_count: false,
          skip_empty_lines: true,
          info: true,
        }),
      catch: () => refuse(`${notALog}: it does not parse as CSV`),
    }).pipe(
      Effect.flatMap(Schema.decodeUnknown(ParsedCsv)),
      Effect.mapError(() => refuse(`${notALog}: it does not parse as CSV`)),
    );
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
    // The header matched, so every row has one cell a column (csv-parse
    // refuses rows of another length): a row decodes to the writer's AuditRow.
    const decoded = yield* Effect.forEach(rows, ({ record, info }) =>
      Schema.decodeUnknown(AuditRow)(
        Object.fromEntries(
          auditColumns.map((name, i) => [name, unneutralise(record[i] ?? "")]),
        ),
      ).pipe(
        Effect.map((row) => ({ line: info.lines, row })),
        Effect.mapError(() =>
          refuse(`${notALog}: line ${info.lines} lacks some of its columns`)
        ),
      ));
    const fileName = path.split(/[\\/]/).pop() ?? path;
    if (
      /_dryrun_/.test(fileName) ||
      // An apply log holds DRY_RUN rows only for removals the threshold
      // held back, which changed nothing.
      decoded.some(({ row }) =>
        row.status === "DRY_RUN" && row.action !== "GROUP_REMOVE"
      )
    ) {
      return yield* refuse(
        "it is the log of a dry-run, which changed nothing, so there is nothing to put back. Give the log of the --apply run (sync_log_{env}_apply_{date}.csv)",
      );
    }
    const targets: Array<RevertTarget> = [];
    const memberships: Array<MembershipTarget> = [];
    const suspensions: Array<SuspensionTarget> = [];
    const unreadable: Array<UnreadableRow> = [];
    let ignored = 0;
    for (const { row, line } of decoded) {
      if (isSuspensionRow(row)) {
        const read = readSuspensionRow(row);
        if (Either.isLeft(read)) {
          unreadable.push({ line, entry: entryOf(row), problem: read.left });
        } else {
          suspensions.push({
            line,
            entry: entryOf(row),
            suspended: read.right,
          });
        }
        continue;
      }
      if (isMembership(row.action) && row.status === "SUCCESS") {
        const read = readMembership(row);
        if (Either.isLeft(read)) {
          unreadable.push({ line, entry: entryOf(row), problem: read.left });
        } else memberships.push({ line, ...read.right });
        continue;
      }
      if (!wroteSomething(row.action, row.status, row.fields)) {
        ignored++;
        continue;
      }
      const read = readRow(row);
      if (Either.isLeft(read)) {
        unreadable.push({ line, entry: entryOf(row), problem: read.left });
        continue;
      }
      targets.push({ line, ...read.right });
    }
    return { targets, memberships, suspensions, unreadable, ignored };
  });

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
