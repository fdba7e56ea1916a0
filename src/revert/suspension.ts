/**
 * Reverting the leavers' rows: a SUSPEND is undone by an unsuspension, an
 * UNSUSPEND by a suspension again, and only while the account is still as
 * the sync left it, so a suspension someone made (or lifted) since stands.
 */
import { Effect, Either, Option, Schema } from "effect";
import type { AuditRow } from "../audit/AuditLog.ts";
import { Journal } from "../audit/Journal.ts";
import { Discourse } from "../discourse/Discourse.ts";
import { suspendUntil } from "../domain/deprovision.ts";
import { isSuspendedNow } from "../leavers/plan.ts";
import { OpenedStateStore } from "../state/opened.ts";
import { type Done, doneRow, type RowIdentity } from "../sync/summary.ts";
import { accountNow } from "./accountNow.ts";

/** A SUSPEND or UNSUSPEND row of the apply log, read back. */
export interface SuspensionTarget {
  readonly line: number;
  readonly entry: RowIdentity;
  /** What the sync left: suspended (a SUSPEND row) or not. */
  readonly suspended: boolean;
}

export const isSuspensionRow = (row: Pick<AuditRow, "action" | "status">) =>
  (row.action === "SUSPEND" || row.action === "UNSUSPEND") &&
  row.status === "SUCCESS";

const SuspendedCell = Schema.parseJson(
  Schema.Struct({ suspended: Schema.Boolean }),
);

/** The row's `after`, or what is wrong with it. */
export const readSuspensionRow = (
  row: AuditRow,
): Either.Either<boolean, string> => {
  const after = Schema.decodeUnknownOption(SuspendedCell)(row.after);
  if (row.fields !== "suspended" || Option.isNone(after)) {
    return Either.left(
      'its fields/after cells are not the {"suspended": true|false} this tool writes',
    );
  }
  if (after.value.suspended !== (row.action === "SUSPEND")) {
    return Either.left(`its after cell contradicts its action ${row.action}`);
  }
  return Either.right(after.value.suspended);
};

const row = (
  target: SuspensionTarget,
  status: Done["entry"]["status"],
  message: string,
  wrote: boolean,
): Done => {
  const done = doneRow(
    target.entry,
    { changes: [], skipped: [] },
    target.suspended ? "UNSUSPEND" : "SUSPEND",
    status,
    message,
  );
  return wrote
    ? {
      ...done,
      entry: {
        ...done.entry,
        fields: ["suspended"],
        before: { suspended: target.suspended },
        after: { suspended: !target.suspended },
      },
    }
    : done;
};

/** One suspension row put back (or, in a dry-run, what would be). */
export const revertSuspension = (
  target: SuspensionTarget,
  options: {
    readonly apply: boolean;
    readonly key: string;
    /** `deprovision.reason`: a suspension with another reason is not ours. */
    readonly reason: string;
  },
) =>
  Effect.gen(function* () {
    const discourse = yield* Discourse;
    const found = yield* accountNow(target.entry.normalizedUsername);
    if (Either.isLeft(found)) return row(target, "ERROR", found.left, false);
    const user = found.right;
    const now = new Date(yield* Effect.clockWith((c) => c.currentTimeMillis));
    const suspended = isSuspendedNow(
      { suspendedTill: user.suspended_till ?? undefined },
      now,
    );
    const asLeft = target.suspended
      ? suspended && (user.suspend_reason ?? options.reason) === options.reason
      : !suspended;
    if (!asLeft) {
      return row(
        target,
        "SKIPPED",
        target.suspended
          ? suspended
            ? `suspended again since the sync, by someone else (reason: ${
              JSON.stringify(user.suspend_reason ?? "")
            }): left alone`
            : "no longer suspended: nothing to put back"
          : "suspended again since the sync: left alone",
        false,
      );
    }
    const verb = target.suspended ? "unsuspend" : "suspend again";
    const pending = row(target, "DRY_RUN", `would ${verb}`, true);
    if (!options.apply) return pending;
    const journal = yield* Journal;
    const account = { id: user.id, username: user.username };
    yield* journal.write(
      options.key,
      pending.entry,
      target.suspended
        ? discourse.unsuspendUser(account)
        : discourse.suspendUser(account, {
          until: suspendUntil,
          reason: options.reason,
        }),
    );
    yield* markInStore(target);
    return row(
      target,
      "SUCCESS",
      target.suspended ? "unsuspended" : "suspended again",
      true,
    );
  });

/** The store's "ours" mark follows the revert, when the run has a store. */
const markInStore = (target: SuspensionTarget) =>
  Effect.gen(function* () {
    const opened = yield* OpenedStateStore;
    const moodleId = target.entry.moodleId;
    if (opened._tag !== "Open" || moodleId === undefined) return;
    yield* (target.suspended
      ? opened.store.clearSuspended(moodleId)
      : opened.store.recordSuspended(moodleId)).pipe(Effect.ignore);
  });
