/**
 * The words of every leavers row: one pure function from an account's
 * outcome to its audit entry. SUSPEND and UNSUSPEND rows carry the field
 * `suspended` with JSON booleans, so `revert` reads them back as written.
 */
import { Data } from "effect";
import type { AuditAction, AuditStatus } from "../audit/AuditLog.ts";
import { type Done, doneRow, type RowIdentity } from "../sync/summary.ts";
import type { LeaverRefusal, Reactivation, Suspension } from "./model.ts";

/** Who a row is about: the audit entry's identity columns. */
export type LeaverIdentity = RowIdentity;

export type LeaverChange =
  | { readonly kind: "suspend"; readonly change: Suspension }
  | { readonly kind: "reactivate"; readonly change: Reactivation };

interface Changing {
  readonly who: LeaverIdentity;
  readonly planned: LeaverChange;
}

export type LeaverOutcome = Data.TaggedEnum<{
  /** Suspended in Moodle, but the forum has no account for the user. */
  NoAccount: { readonly who: LeaverIdentity };
  Refused: { readonly who: LeaverIdentity; readonly refusal: LeaverRefusal };
  /**
   * A dry-run's row, or the pending write's intent; `heldBy` is set when the
   * removal threshold held it back in an --apply run.
   */
  Planned: Changing & { readonly heldBy: string | undefined };
  Declined: Changing;
  Written: Changing;
  /** A 409: someone (or a retry of ours) suspended it first. */
  AlreadySo: Changing;
  Failed: {
    readonly who: LeaverIdentity;
    readonly action: AuditAction;
    readonly status: AuditStatus;
    readonly message: string;
  };
}>;
export const LeaverOutcome = Data.taggedEnum<LeaverOutcome>();

const actionOf = (kind: LeaverChange["kind"]): AuditAction =>
  kind === "suspend" ? "SUSPEND" : "UNSUSPEND";

const noChanges = { changes: [], skipped: [] };

const row = (
  who: LeaverIdentity,
  action: AuditAction,
  status: AuditStatus,
  message: string,
  /** The suspension state written (or to write): `fields` lists it. */
  written?: LeaverChange["kind"],
): Done => {
  const done = doneRow(who, noChanges, action, status, message);
  if (written === undefined) return done;
  return {
    ...done,
    entry: {
      ...done.entry,
      fields: ["suspended"],
      before: { suspended: written === "reactivate" },
      after: { suspended: written === "suspend" },
    },
  };
};

const verb = (kind: LeaverChange["kind"], done: boolean) =>
  kind === "suspend"
    ? done ? "suspended" : "would suspend"
    : done
    ? "reactivated"
    : "would reactivate";

/** The row of a leaver's outcome. */
export const leaverRowOf = (outcome: LeaverOutcome): Done => {
  switch (outcome._tag) {
    case "NoAccount":
      return row(
        outcome.who,
        "EXCLUDE",
        "EXCLUDED",
        "suspended in Moodle; there is no forum account to suspend",
      );
    case "Refused":
      return row(
        outcome.who,
        actionOf(outcome.refusal.wanted),
        // A matching refusal is an error of the data, as in the profile
        // sync; the rest are the rules working.
        outcome.refusal.kind === "AccountRefused" ? "ERROR" : "SKIPPED",
        outcome.refusal.message,
      );
    case "Planned":
      return row(
        outcome.who,
        actionOf(outcome.planned.kind),
        "DRY_RUN",
        `${
          verb(outcome.planned.kind, false)
        }: ${outcome.planned.change.message}${
          outcome.heldBy === undefined ? "" : `; held back: ${outcome.heldBy}`
        }`,
        outcome.planned.kind,
      );
    case "Declined":
      return row(
        outcome.who,
        actionOf(outcome.planned.kind),
        "SKIPPED",
        "skipped by the operator",
      );
    case "Written":
      return row(
        outcome.who,
        actionOf(outcome.planned.kind),
        "SUCCESS",
        `${
          verb(outcome.planned.kind, true)
        }: ${outcome.planned.change.message}`,
        outcome.planned.kind,
      );
    case "AlreadySo":
      return row(
        outcome.who,
        actionOf(outcome.planned.kind),
        "SKIPPED",
        `${outcome.planned.change.message}; already suspended in the forum (Discourse answered 409): nothing to do`,
      );
    case "Failed":
      return row(outcome.who, outcome.action, outcome.status, outcome.message);
  }
};

/** What a held row says; the run's warning says the rest, once. */
export const heldWords =
  "more removals than the limit allows (see the run's warning)";
