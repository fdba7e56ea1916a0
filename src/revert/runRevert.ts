/**
 * `sync-moodle-discourse revert LOG.csv`: puts back the `before` values of
 * every SUCCESS row of an apply log. A field is only put back while Discourse
 * still holds what the sync wrote: anything changed since (by the user, an
 * admin or a later sync) is newer than the log and is left alone.
 */
import type * as FileSystem from "@effect/platform/FileSystem";
import { Clock, Effect, Either, Option } from "effect";
import type {
  AuditAction,
  AuditLog,
  AuditLogError,
  AuditStatus,
} from "../audit/AuditLog.ts";
import { Journal } from "../audit/Journal.ts";
import { Discourse, type DiscourseError } from "../discourse/Discourse.ts";
import { OpenedStateStore } from "../state/opened.ts";
import { applyChanges } from "../sync/apply.ts";
import type { FieldChange } from "../sync/diff.ts";
import { doneFallbacks, makeLedger } from "../sync/ledger.ts";
import { type Done, doneRow, type RevertSummary } from "../sync/summary.ts";
import { accountNow } from "./accountNow.ts";
import { recoverAndWarn } from "../sync/recovered.ts";
import { Reporter } from "../sync/Reporter.ts";
import { verifyProfile } from "../sync/verify.ts";
import { revertMemberships } from "./memberships.ts";
import { planRevert, type RevertPlan, shown } from "./plan.ts";
import type { ApplyLog, RevertTarget } from "./readLog.ts";
import { revertSuspension } from "./suspension.ts";

/** Names a row's writes in the journal: one line of the log, one user. */
const lineKey = (row: { readonly line: number }) => `line:${row.line}`;

/** A revert row; its fields are what it put back (or would). */
const rowFor = (
  target: Pick<RevertTarget, "entry">,
  action: AuditAction,
  status: AuditStatus,
  message: string,
  plan: Pick<RevertPlan, "changes" | "skipped"> = { changes: [], skipped: [] },
): Done => doneRow(target.entry, plan, action, status, message);

/** The rows the ledger writes for a row it stops or that failed. */
const turnOf = (target: Pick<RevertTarget, "entry">) => ({
  fallbacks: doneFallbacks((action, status, message) =>
    rowFor(target, action, status, message)
  ),
  stoppedMessage:
    "not put back: the revert was told to stop now (a second signal) before this row's write was sent",
  rowOf: (done: Done) => done,
});

const describe = (head: string, plan: RevertPlan) =>
  [
    head,
    ...plan.skipped.map((s) => `${s.field} skipped: ${s.reason}`),
    ...plan.notes,
  ].filter((part) => part !== "").join("; ");

const fieldList = (changes: ReadonlyArray<FieldChange>) =>
  changes.map((c) => c.field).join(", ");

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
    /** `deprovision.reason`: how the sync's own suspensions are told apart. */
    readonly suspendReason: string;
    readonly stopRequested?: Effect.Effect<boolean>;
    /** Completes at a second signal: no further write starts. */
    readonly stopNow?: Effect.Effect<void>;
  },
): Effect.Effect<
  RevertSummary,
  AuditLogError | DiscourseError,
  | Discourse
  | AuditLog
  | Journal
  | Reporter
  | FileSystem.FileSystem
  | OpenedStateStore
> =>
  Effect.gen(function* () {
    const discourse = yield* Discourse;
    const reporter = yield* Reporter;
    const journal = yield* Journal;
    const opened = yield* OpenedStateStore;
    const startedAt = yield* Clock.currentTimeMillis;
    const mode = options.apply ? "apply" : "dryrun";
    // Rows are reverted one at a time, so any failure to reach the forum
    // stops the revert.
    const ledger = yield* makeLedger({
      transportFailuresToStop: 1,
      stopRequested: options.stopRequested,
      stopNow: options.stopNow,
    });

    /**
     * The state store's entry no longer describes the forum: the next sync
     * reads this user in full (a store is only opened for an apply).
     */
    const forgetInStore = (moodleId: number | undefined) =>
      Effect.gen(function* () {
        if (moodleId === undefined || opened._tag !== "Open") return;
        const result = yield* Effect.either(opened.store.invalidate(moodleId));
        if (result._tag === "Left") {
          yield* reporter.warn(
            `${result.left.message} Run the next sync with --full.`,
          );
        }
      });

    const revertOne = (target: RevertTarget) =>
      Effect.gen(function* () {
        const found = yield* accountNow(target.entry.normalizedUsername);
        if (Either.isLeft(found)) {
          return rowFor(target, "ERROR", "ERROR", found.left);
        }
        const user = found.right;
        const email = target.fields.includes("email")
          ? (yield* discourse.emails(user.username)).email
          : undefined;
        const plan = planRevert(target, { user, email });
        if (plan.changes.length === 0) {
          return rowFor(
            target,
            "UPDATE",
            plan.skipped.length > 0 ? "SKIPPED" : "EXISTS",
            describe("nothing to put back", plan),
            { changes: [], skipped: plan.skipped },
          );
        }
        const pending = rowFor(
          target,
          "UPDATE",
          "DRY_RUN",
          describe(`would put back ${fieldList(plan.changes)}`, plan),
          plan,
        );
        if (!options.apply) return pending;
        const written = yield* ledger.partly(
          journal.write(
            lineKey(target),
            pending.entry,
            applyChanges(user.username, plan.changes),
          ),
        );
        yield* forgetInStore(target.entry.moodleId);
        if (written._tag === "Partial") {
          const failure = written.partial;
          // What was put back is listed, with its values, so the row itself
          // can be reverted.
          return rowFor(
            target,
            "UPDATE",
            "ERROR",
            `${
              failure.written.join(", ")
            } put back, then the email change failed: ${failure.error.message}`,
            {
              changes: plan.changes.filter((c) =>
                failure.written.includes(c.field)
              ),
              skipped: plan.skipped,
            },
          );
        }
        const mismatches = Option.match(written.applied.stored, {
          onNone: () => [],
          onSome: (stored) => verifyProfile(plan.changes, stored),
        });
        if (mismatches.length > 0) {
          return rowFor(
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
            plan,
          );
        }
        return rowFor(
          target,
          "UPDATE",
          "SUCCESS",
          describe(`put back ${fieldList(plan.changes)}`, plan),
          plan,
        );
      });

    if (options.apply) yield* recoverAndWarn(options.forum);
    const rows = options.log.targets.length + options.log.unreadable.length +
      options.log.memberships.length + options.log.suspensions.length;
    if (opened._tag === "Unavailable") {
      yield* reporter.warn(
        `${opened.error.message} The users this revert writes are not marked in it: run the next sync with --full.`,
      );
    }
    yield* reporter.start({ mode, users: rows });

    for (const row of options.log.unreadable) {
      yield* ledger.run(
        lineKey(row),
        Effect.succeed(
          rowFor(
            row,
            "ERROR",
            "ERROR",
            `line ${row.line} of the log cannot be reverted: ${row.problem}`,
          ),
        ),
        turnOf(row),
      );
    }
    yield* Effect.forEach(
      options.log.targets,
      (target) =>
        ledger.run(
          lineKey(target),
          ledger.settle(revertOne(target), turnOf(target).fallbacks),
          turnOf(target),
        ),
      { concurrency: 1, discard: true },
    );
    for (const target of options.log.suspensions) {
      const key = lineKey(target);
      yield* ledger.run(
        key,
        ledger.settle(
          revertSuspension(target, {
            apply: options.apply,
            key,
            reason: options.suspendReason,
          }),
          turnOf(target).fallbacks,
        ),
        turnOf(target),
      );
    }

    // After the profiles: memberships are read and written group by group.
    const membershipRows = yield* revertMemberships(options.log.memberships, {
      apply: options.apply,
      ledger,
    });
    const totals = yield* ledger.totals(mode);
    const pending = (action: string) => totals.counts[`${action}/DRY_RUN`] ?? 0;
    const summary: RevertSummary = {
      ...totals,
      command: "revert",
      rows,
      ignored: options.log.ignored,
      considered: totals.considered + membershipRows,
      notReached: rows - totals.considered - membershipRows,
      pendingChanges: options.apply
        ? 0
        : pending("UPDATE") + pending("GROUP_ADD") + pending("GROUP_REMOVE") +
          pending("SUSPEND") + pending("UNSUSPEND"),
      discourseRequests: yield* discourse.requestsSent,
      elapsedMs: (yield* Clock.currentTimeMillis) - startedAt,
    };
    yield* reporter.finish(summary);
    return summary;
  });
