import type { AuditEntry, AuditRow, RunMode } from "../audit/AuditLog.ts";
import type { FieldChange, SkippedField } from "./diff.ts";

/** One user, finished: its log row and what the console shows of it. */
export interface UserDone {
  readonly entry: AuditEntry;
  readonly row: AuditRow;
  readonly changes: ReadonlyArray<FieldChange>;
  readonly skipped: ReadonlyArray<SkippedField>;
}

/** Why a run stopped before its last user. */
export type StopReason =
  | { readonly _tag: "Fatal"; readonly message: string }
  | { readonly _tag: "Interrupted" }
  | { readonly _tag: "OperatorQuit" };

export interface RunSummary {
  readonly mode: RunMode;
  readonly moodleUsers: number;
  readonly considered: number;
  /** Users in the batch that were never started because the run stopped. */
  readonly notReached: number;
  /** `ACTION/STATUS` -> rows. */
  readonly counts: Readonly<Record<string, number>>;
  /** Users whose forum profile differs from Moodle (dry-run) or still does. */
  readonly pendingChanges: number;
  /** Rows with status ERROR, EXCEPTION or VERIFY_FAILED. */
  readonly failures: number;
  readonly discourseRequests: number;
  readonly elapsedMs: number;
  readonly logPath: string;
  readonly offset: number;
  /** Where the next batch starts; undefined when the list is finished. */
  readonly nextOffset: number | undefined;
  readonly stoppedBy: StopReason | undefined;
}

/** The exit code of a finished run; one place decides the mapping. */
export const exitCodeOf = (summary: RunSummary, check: boolean): number => {
  if (summary.stoppedBy?._tag === "Interrupted") return 130;
  if (summary.stoppedBy?._tag === "Fatal") return 3;
  if (summary.failures > 0) return 1;
  if (check && summary.pendingChanges > 0) return 4;
  return 0;
};

export const ExitCode = {
  ok: 0,
  failures: 1,
  usage: 2,
  fatal: 3,
  drift: 4,
  interrupted: 130,
} as const;
