/** What a finished run and its users leave behind, for the Reporter. */
import type {
  AuditAction,
  AuditEntry,
  AuditRow,
  AuditStatus,
  RunMode,
} from "../audit/AuditLog.ts";
import { terminalSafe } from "../domain/terminal.ts";
import type { FieldChange, SkippedField } from "./diff.ts";

/** One user, finished: its log row and what the console shows of it. */
export interface UserDone {
  readonly entry: AuditEntry;
  readonly row: AuditRow;
  readonly changes: ReadonlyArray<FieldChange>;
  readonly skipped: ReadonlyArray<SkippedField>;
}

/** A finished user before its row is written. */
export type Done = Omit<UserDone, "row">;

/** The identity columns of a row: who it is about. */
export type RowIdentity = Omit<
  AuditEntry,
  "action" | "status" | "message" | "fields" | "before" | "after"
>;

/**
 * The one builder of a finished row: its fields are the plan's changes, and
 * its message (which quotes Moodle's and Discourse's words) has controls
 * escaped, as on a console.
 */
export const doneRow = (
  who: RowIdentity,
  plan: {
    readonly changes: ReadonlyArray<FieldChange>;
    readonly skipped: ReadonlyArray<SkippedField>;
  },
  action: AuditAction,
  status: AuditStatus,
  message: string,
): Done => ({
  entry: {
    ...who,
    action,
    status,
    message: terminalSafe(message),
    fields: plan.changes.map((c) => c.field),
    before: Object.fromEntries(plan.changes.map((c) => [c.field, c.before])),
    after: Object.fromEntries(plan.changes.map((c) => [c.field, c.after])),
  },
  changes: plan.changes,
  skipped: plan.skipped,
});

/** Why a run stopped before its last user. */
export type StopReason =
  | { readonly _tag: "Fatal"; readonly message: string }
  | { readonly _tag: "Interrupted" }
  | { readonly _tag: "OperatorQuit" };

/** What every command's summary says. */
export interface LedgerTotals {
  readonly mode: RunMode;
  readonly considered: number;
  /** `ACTION/STATUS` -> rows. */
  readonly counts: Readonly<Record<string, number>>;
  /** Rows with status ERROR, EXCEPTION or VERIFY_FAILED. */
  readonly failures: number;
  /** Absent when no row was logged, so no file was made. */
  readonly logPath: string | undefined;
  readonly stoppedBy: StopReason | undefined;
}

/** How a sync read the forum: with the state store's help or every profile. */
export interface ReadsSummary {
  readonly mode: "state-assisted" | "full";
  /** Why every profile was read. */
  readonly why: string | undefined;
  /** Users whose profile was read one by one (`GET /u/{username}.json`). */
  readonly singleProfileReads: number;
  /** Users the store and the bulk reads showed unchanged: not read. */
  readonly unchanged: number;
  /** Users read because the forum changed since the store's last entry. */
  readonly forumChanged: number;
  /** Entries this run wrote to the store. */
  readonly storeUpdated: number;
}

export interface RunSummary extends LedgerTotals {
  readonly command: "sync";
  readonly moodleUsers: number;
  /** Users in the batch that were never started because the run stopped. */
  readonly notReached: number;
  /**
   * Dry-run: users `--apply` with the same flags would write (real
   * differences only, creations with `--create-missing`). Apply: users whose
   * profile still differs from Moodle.
   */
  readonly pendingChanges: number;
  /** Dry-run without `--create-missing`: users the forum lacks, not counted above. */
  readonly missingAccounts: number;
  readonly discourseRequests: number;
  readonly reads: ReadsSummary;
  readonly elapsedMs: number;
  readonly offset: number;
  /** Where the next batch starts; undefined when the list is finished. */
  readonly nextOffset: number | undefined;
  /**
   * Group memberships a dry-run would change (held ones included), or an
   * apply left unchanged.
   */
  readonly membershipChanges?: number;
  /** Why the run's removals were held back (the threshold), exit 5. */
  readonly removalsHeld?: string | undefined;
}

/** What a `revert` did with the rows of the log it was given. */
export interface RevertSummary extends LedgerTotals {
  readonly command: "revert";
  /** Rows of the log that wrote something, so are reverted. */
  readonly rows: number;
  /** Rows of the log that had written nothing. */
  readonly ignored: number;
  readonly notReached: number;
  /** Dry-run: rows `--apply` would put back. */
  readonly pendingChanges: number;
  readonly discourseRequests: number;
  readonly elapsedMs: number;
}
