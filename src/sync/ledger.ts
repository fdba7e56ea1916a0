/**
 * The ledger every command keeps: each user (or log row) it finishes is
 * recorded through the journal into the audit log, counted and reported;
 * failures decide whether the run stops; the totals end in the summary.
 * `sync` and `revert` both run their rows through it.
 */
import { Effect, Option, Ref } from "effect";
import {
  type AuditAction,
  AuditLog,
  AuditLogError,
  type AuditStatus,
  type RunMode,
} from "../audit/AuditLog.ts";
import {
  Journal,
  StoppedBeforeWrite,
  unlessStoppedNow,
} from "../audit/Journal.ts";
import { Discourse } from "../discourse/Discourse.ts";
import { PartialWrite } from "./apply.ts";
import { Reporter } from "./Reporter.ts";
import type { Done, LedgerTotals, StopReason } from "./summary.ts";

const failureStatus = /\/(ERROR|EXCEPTION|VERIFY_FAILED)$/;

/**
 * Errors after which no further user should be written. A transport failure
 * is one user's unless the forum was never reached or it repeats across
 * users: see `LedgerPolicy.transportFailuresToStop`.
 */
const isFatal = (error: { readonly _tag: string }): boolean =>
  error._tag === "DiscourseCredentialsRejected" ||
  // A wrong DiscourseConnect secret fails every creation alike.
  error._tag === "DiscourseConnectRejected" ||
  // discourse.url answers with redirects elsewhere: so will every request.
  error._tag === "DiscourseRedirected" ||
  error._tag === "DiscourseRateLimitBudgetSpent";

/** A failure a user's steps may end with. */
export interface StepFailure {
  readonly _tag: string;
  readonly message: string;
}

export interface LedgerPolicy {
  /** Users in a row whose requests found no forum before the run stops. */
  readonly transportFailuresToStop: number;
  /** Polled before each user: true once SIGINT/SIGTERM asked to stop. */
  readonly stopRequested?: Effect.Effect<boolean>;
  /**
   * Completes at a second signal: rows whose write is not yet sent are
   * dropped (with a row saying so); writes already sent finish and are logged.
   */
  readonly stopNow?: Effect.Effect<void>;
}

/** The outcomes the ledger itself gives a user's turn, in a command's type. */
export interface Fallbacks<O> {
  /** A step failed: the user's ERROR row, in the error's words. */
  readonly failed: (message: string) => O;
  /** A second signal came before the user's write was sent. */
  readonly notWritten: (message: string) => O;
  /** A defect: a bug, kept to this user. */
  readonly crashed: (message: string) => O;
}

/** A command whose rows are already entries needs no outcome type. */
export const doneFallbacks = (
  rowFor: (action: AuditAction, status: AuditStatus, message: string) => Done,
): Fallbacks<Done> => ({
  failed: (message) => rowFor("ERROR", "ERROR", message),
  notWritten: (message) => rowFor("UPDATE", "SKIPPED", message),
  crashed: (message) => rowFor("ERROR", "EXCEPTION", message),
});

export const makeLedger = (policy: LedgerPolicy) =>
  Effect.gen(function* () {
    const journal = yield* Journal;
    const reporter = yield* Reporter;
    const discourse = yield* Discourse;
    const audit = yield* AuditLog;
    const counts = yield* Ref.make<Record<string, number>>({});
    const stop = yield* Ref.make<StopReason | undefined>(undefined);
    const considered = yield* Ref.make(0);
    // Users in a row that found Discourse unreachable.
    const transportStreak = yield* Ref.make(0);

    const stopWith = (reason: StopReason) =>
      Ref.update(stop, (now) => now ?? reason);
    const fatal = (message: string) => stopWith({ _tag: "Fatal", message });
    const noteForumReached = Ref.set(transportStreak, 0);

    /** One user failed with `error`: stop the run, or only this user? */
    const noteFailure = (error: StepFailure) =>
      Effect.gen(function* () {
        if (isFatal(error)) return yield* fatal(error.message);
        if (error._tag !== "DiscourseTransportError") {
          return yield* noteForumReached;
        }
        const streak = yield* Ref.updateAndGet(transportStreak, (n) => n + 1);
        // Never reached at all: discourse.url or the network is wrong.
        if ((yield* discourse.requestsAnswered) === 0) {
          return yield* fatal(error.message);
        }
        if (streak >= policy.transportFailuresToStop) {
          yield* fatal(
            streak === 1 ? error.message : (
              `Discourse could not be reached for ${streak} users in a row ` +
              `(last: ${error.message})`
            ),
          );
        }
      });

    /** Writes the row, counts it, shows it. */
    const record = (key: string, done: Done) =>
      Effect.gen(function* () {
        const row = yield* journal.record(key, done.entry);
        const count = `${done.entry.action}/${done.entry.status}`;
        yield* Ref.update(
          counts,
          (c) => ({ ...c, [count]: (c[count] ?? 0) + 1 }),
        );
        yield* reporter.userDone({ ...done, row });
        return row;
      });

    /**
     * A user's steps that reach the forum: a failure becomes that user's
     * ERROR row (and may stop the run), a second signal before the write a
     * SKIPPED row; only a log that cannot be written ends the run.
     */
    const settle = <O, E extends StepFailure, R>(
      steps: Effect.Effect<O, E | AuditLogError | StoppedBeforeWrite, R>,
      fallbacks: Fallbacks<O>,
    ): Effect.Effect<O, AuditLogError, R> =>
      steps.pipe(
        Effect.tap(() => noteForumReached),
        Effect.catchAll((error) =>
          Effect.gen(function* () {
            if (error instanceof AuditLogError) return yield* error;
            if (error instanceof StoppedBeforeWrite) {
              return fallbacks.notWritten(error.message);
            }
            yield* noteFailure(error);
            return fallbacks.failed(error.message);
          })
        ),
      );

    /**
     * A write whose first part went through: the failure is noted and given
     * back as a value, since the row must list what was written.
     */
    const partly = <A, E, R>(write: Effect.Effect<A, E | PartialWrite, R>) =>
      write.pipe(
        Effect.map((applied) => ({ _tag: "Written", applied } as const)),
        Effect.catchIf(
          (error): error is PartialWrite => error instanceof PartialWrite,
          (partial) =>
            Effect.as(
              noteFailure(partial.error),
              {
                _tag: "Partial",
                partial,
              } as const,
            ),
        ),
      );

    /**
     * One user's whole turn: skipped once the run is stopping, otherwise
     * counted, cut short only before its write by a second signal, kept from
     * a defect, and recorded.
     */
    const run = <O, R>(
      key: string,
      work: Effect.Effect<O, AuditLogError, R>,
      turn: {
        readonly fallbacks: Fallbacks<O>;
        /** Why a user dropped by a second signal before any write has no write. */
        readonly stoppedMessage: string;
        readonly rowOf: (outcome: O) => Done;
        /** Counts what a recorded row leaves to do, for the summary. */
        readonly tally?: (done: Done, outcome: O) => Effect.Effect<void>;
      },
    ) =>
      Effect.gen(function* () {
        const stopped = (yield* Ref.get(stop)) !== undefined ||
          (policy.stopRequested ? yield* policy.stopRequested : false);
        if (stopped) return yield* stopWith({ _tag: "Interrupted" });
        yield* Ref.update(considered, (n) => n + 1);
        const outcome = yield* unlessStoppedNow(
          work.pipe(
            Effect.catchAllDefect((defect) =>
              Effect.succeed(
                turn.fallbacks.crashed(`unexpected failure: ${String(defect)}`),
              )
            ),
          ),
          {
            key,
            stopNow: policy.stopNow,
            stopped: () => turn.fallbacks.notWritten(turn.stoppedMessage),
          },
        );
        const done = turn.rowOf(outcome);
        yield* record(key, done);
        if (turn.tally) yield* turn.tally(done, outcome);
      });

    const totals = (mode: RunMode) =>
      Effect.gen(function* () {
        const finalCounts = yield* Ref.get(counts);
        return {
          mode,
          considered: yield* Ref.get(considered),
          counts: finalCounts,
          failures: Object.entries(finalCounts).filter(([key]) =>
            failureStatus.test(key)
          ).reduce((sum, [, n]) => sum + n, 0),
          logPath: Option.getOrUndefined(yield* audit.written),
          stoppedBy: yield* Ref.get(stop),
        } satisfies LedgerTotals;
      });

    return {
      record,
      settle,
      partly,
      run,
      noteFailure,
      stopWith,
      stopped: Ref.get(stop),
      totals,
    };
  });

export type Ledger = Effect.Effect.Success<ReturnType<typeof makeLedger>>;
