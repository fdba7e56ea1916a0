/**
 * The leavers step of a sync, after the profiles: read the accounts of
 * users suspended in Moodle and of users gone from it, plan, hold the lot
 * back past the removal threshold, then suspend and reactivate one account
 * at a time, each through the journal and into the ledger.
 */
import { Effect, Ref } from "effect";
import type { AuditLogError } from "../audit/AuditLog.ts";
import { Journal, stoppedBeforeWriteMessage } from "../audit/Journal.ts";
import { Discourse } from "../discourse/Discourse.ts";
import { suspendUntil } from "../domain/deprovision.ts";
import type { RemovalVerdict } from "../domain/removals.ts";
import type { StageResult } from "../sync/removals.ts";
import { OpenedStateStore } from "../state/opened.ts";
import type { StateStoreService } from "../state/Store.ts";
import type { Candidate, UserCandidate } from "../sync/candidate.ts";
import type { RunContext } from "../sync/context.ts";
import type { Fallbacks } from "../sync/ledger.ts";
import { Reporter } from "../sync/Reporter.ts";
import {
  accountState,
  findAccount,
  goneExclusions,
  goneIdentity,
  lookupFailed,
  presentIdentity,
  readLinkedAccounts,
} from "./accounts.ts";
import type { LeaverAccount, LeaversPlan } from "./model.ts";
import { goneLinks, planLeavers } from "./plan.ts";
import { listedUsers } from "./route.ts";
import type { DiscourseUser } from "../discourse/schema.ts";
import {
  heldWords,
  type LeaverChange,
  type LeaverIdentity,
  LeaverOutcome,
  leaverRowOf,
} from "./words.ts";

export interface LeaversInput {
  /** Users suspended in Moodle whom the sync routed here, in list order. */
  readonly suspended: ReadonlyArray<UserCandidate>;
  /** Every record Moodle listed (the whole list, also for a batch). */
  readonly candidates: ReadonlyArray<Candidate>;
  /** This run's users: all of them, a batch, or the --user. */
  readonly batch: ReadonlyArray<Candidate>;
  /** The batch is the whole list: not --user, not a batch. */
  readonly wholeList: boolean;
  /**
   * Suspended forum accounts the profile sync matched to active Moodle
   * users, by Moodle id: the reactivation candidates, read at no extra cost.
   */
  readonly suspendedAccounts: ReadonlyMap<number, DiscourseUser>;
}

/**
 * The step planned, its suspensions not yet judged: the run judges every
 * removing stage's removals together (`runRemovingStages`), then carries
 * each out.
 */
export interface LeaversStage {
  readonly planned: { readonly suspensions: number };
  readonly carryOut: (
    verdict: RemovalVerdict,
  ) => Effect.Effect<
    StageResult,
    AuditLogError,
    Discourse | Journal | Reporter
  >;
}

const nothingToDo: LeaversStage = {
  planned: { suspensions: 0 },
  carryOut: () => Effect.succeed({ pending: 0 }),
};

const fallbacksFor = (
  who: LeaverIdentity,
  action: "SUSPEND" | "UNSUSPEND",
): Fallbacks<LeaverOutcome> => ({
  failed: (message) =>
    LeaverOutcome.Failed({ who, action, status: "ERROR", message }),
  notWritten: (message) =>
    LeaverOutcome.Failed({ who, action, status: "SKIPPED", message }),
  crashed: (message) =>
    LeaverOutcome.Failed({ who, action, status: "EXCEPTION", message }),
});

/**
 * The run's store, if it has one that can be read (the run has said why
 * not); a dry-run's is read-only.
 */
const readStore = Effect.gen(function* () {
  const reporter = yield* Reporter;
  const opened = yield* OpenedStateStore;
  if (opened._tag !== "Open") return undefined;
  const service = opened.store;
  // Links only: the snapshots of the few gone users are read when needed.
  return yield* service.readLinks.pipe(
    Effect.map((entries) => ({ service, entries })),
    Effect.catchAll((error) =>
      Effect.as(
        reporter.warn(
          `${error.message} Gone users are not looked for in this run.`,
        ),
        undefined,
      )
    ),
  );
});

/** Reads and plans; writes nothing until `carryOut`. */
export const prepareLeavers = (ctx: RunContext, input: LeaversInput) =>
  Effect.gen(function* () {
    const { settings, options, ledger } = ctx;
    const policy = settings.deprovision;
    const reporter = yield* Reporter;
    const store = yield* readStore;
    // A run stopped in the profile sync starts nothing more.
    const stopAsked = options.stopRequested ?? Effect.succeed(false);
    if ((yield* ledger.stopped) !== undefined || (yield* stopAsked)) {
      yield* ledger.stopWith({ _tag: "Interrupted" });
      return nothingToDo;
    }

    // Phase 1, reads only: the accounts of the users suspended in Moodle,
    // matched as the profile sync matches, ownership checked the same way.
    const lookups = yield* Effect.forEach(
      input.suspended,
      (who) =>
        ledger.settle(
          findAccount(ctx, who),
          {
            failed: lookupFailed,
            notWritten: lookupFailed,
            crashed: lookupFailed,
          },
        ).pipe(Effect.map((found) => ({ who, found }))),
      { concurrency: options.concurrency },
    );
    const activeInBatch = new Map(
      input.batch.flatMap((c) =>
        c._tag === "User" && c.user.suspended !== true ? [[c.user.id, c]] : []
      ),
    );
    const accounts = new Map<number, LeaverAccount>();
    for (const { who, found } of lookups) {
      if (found._tag === "Account" && found.account !== undefined) {
        accounts.set(who.user.id, found.account);
      }
    }
    for (const [moodleId, user] of input.suspendedAccounts) {
      if (activeInBatch.has(moodleId)) {
        accounts.set(moodleId, { _tag: "Found", account: accountState(user) });
      }
    }

    const planInput = {
      policy,
      moodleUsers: listedUsers(input.candidates),
      runKind: input.wholeList ? "full" as const : "partial" as const,
      store: store?.entries,
      apiUser: settings.discourse.apiUser,
      now: new Date(
        yield* Effect.clockWith((clock) => clock.currentTimeMillis),
      ),
    };
    // Gone users' accounts: one read each, by the name the store keeps.
    const gone = goneLinks(planInput);
    const excluded = goneExclusions(ctx, gone);
    for (const [id, account] of yield* readLinkedAccounts(gone, "suspend")) {
      accounts.set(id, account);
    }
    // Our suspensions of users in this run the profile sync did not read.
    const marked = policy.reactivate
      ? [...store?.entries.values() ?? []].filter((entry) =>
        entry.suspendedByUsAt !== undefined && !accounts.has(entry.moodleId) &&
        activeInBatch.has(entry.moodleId)
      )
      : [];
    for (
      const [id, account] of yield* readLinkedAccounts(marked, "reactivate")
    ) {
      accounts.set(id, account);
    }

    const plan = planLeavers({ ...planInput, accounts, excluded });
    const shrunk = yield* sayGoneCheck(plan);
    const carryOut = (verdict: RemovalVerdict) =>
      Effect.gen(function* () {
        const extraTurns = yield* Ref.make(0);
        const pending = yield* Ref.make(0);

        // Phase 2: one row per account, in the ledger's turns.
        const whoOf = new Map<number, LeaverIdentity>();
        for (const who of input.suspended) {
          const found = accounts.get(who.user.id);
          whoOf.set(
            who.user.id,
            presentIdentity(
              who,
              found?._tag === "Found" ? found.account.username : undefined,
            ),
          );
        }
        for (const [moodleId, account] of accounts) {
          const who = activeInBatch.get(moodleId);
          if (who !== undefined) {
            whoOf.set(
              moodleId,
              presentIdentity(
                who,
                account._tag === "Found" ? account.account.username : undefined,
              ),
            );
          }
        }
        for (const link of gone) {
          const stored = store?.entries.get(link.moodleId);
          if (store === undefined || stored === undefined) continue;
          const entry = yield* Effect.orElseSucceed(
            store.service.lookup(link.moodleId),
            () => undefined,
          );
          whoOf.set(link.moodleId, goneIdentity(stored, entry?.snapshot));
        }
        const routed = new Set(input.suspended.map((who) => who.user.id));
        const turn = (
          moodleId: number,
          action: "SUSPEND" | "UNSUSPEND",
          work: (
            who: LeaverIdentity,
          ) => Effect.Effect<
            LeaverOutcome,
            AuditLogError,
            Discourse | Journal | Reporter
          >,
        ) =>
          Effect.gen(function* () {
            const who = whoOf.get(moodleId);
            if (who === undefined) return;
            const fallbacks = fallbacksFor(who, action);
            yield* ledger.run(`moodle:${moodleId}`, work(who), {
              fallbacks,
              stoppedMessage: stoppedBeforeWriteMessage,
              rowOf: leaverRowOf,
              // Only rows written count: a stopped run skips the turn.
              tally: (done) =>
                Effect.all([
                  routed.has(moodleId)
                    ? Effect.void
                    : Ref.update(extraTurns, (n) => n + 1),
                  done.entry.status === "DRY_RUN"
                    ? Ref.update(pending, (n) => n + 1)
                    : Effect.void,
                ]),
            });
          });

        for (const { who, found } of lookups) {
          if (found._tag === "Failed") {
            yield* turn(who.user.id, "SUSPEND", (identity) =>
              Effect.succeed(
                fallbacksFor(identity, "SUSPEND").failed(found.message),
              ));
          } else if (found.account === undefined) {
            yield* turn(
              who.user.id,
              "SUSPEND",
              (identity) =>
                Effect.succeed(LeaverOutcome.NoAccount({ who: identity })),
            );
          }
        }
        for (const refusal of plan.refusals) {
          yield* turn(
            refusal.moodleId,
            refusal.wanted === "suspend" ? "SUSPEND" : "UNSUSPEND",
            (who) => Effect.succeed(LeaverOutcome.Refused({ who, refusal })),
          );
        }
        const changes: ReadonlyArray<LeaverChange> = [
          ...plan.suspensions.map((change) =>
            ({ kind: "suspend", change }) as const
          ),
          ...plan.reactivations.map((change) =>
            ({ kind: "reactivate", change }) as const
          ),
        ];
        for (const change of changes) {
          const isHeld = change.kind === "suspend" && verdict._tag === "Held";
          yield* turn(
            change.change.moodleId,
            change.kind === "suspend" ? "SUSPEND" : "UNSUSPEND",
            (who) => {
              const planned = LeaverOutcome.Planned({
                who,
                planned: change,
                heldBy: isHeld ? heldWords : undefined,
              });
              return !options.apply || isHeld
                ? Effect.succeed(planned)
                : ledger.settle(
                  writeChange(ctx, who, change, store?.service),
                  fallbacksFor(
                    who,
                    change.kind === "suspend" ? "SUSPEND" : "UNSUSPEND",
                  ),
                );
            },
          );
        }

        // Absences count only on a full list the shrink guard trusts, and only
        // in a run that got to its end.
        const stopped = yield* ledger.stopped;
        if (
          store !== undefined && options.apply && plan.recordFullList &&
          stopped === undefined
        ) {
          yield* store.service.markFullListSeen(
            planInput.moodleUsers.map((u) => u.id),
          ).pipe(
            Effect.catchAll((error) => reporter.warn(error.message)),
          );
        }
        return {
          pending: 0,
          pendingUsers: yield* Ref.get(pending),
          extraTurns: yield* Ref.get(extraTurns),
          held: shrunk,
        } satisfies StageResult;
      });
    return {
      planned: { suspensions: plan.suspensions.length },
      carryOut,
    } satisfies LeaversStage;
  });

/**
 * The gone check's verdict, said once; a shrunken list holds the run (the
 * message is returned for the summary).
 */
const sayGoneCheck = (plan: LeaversPlan) =>
  Effect.gen(function* () {
    const reporter = yield* Reporter;
    const check = plan.goneCheck;
    switch (check._tag) {
      case "NoStore":
        yield* reporter.warn(check.message);
        return undefined;
      case "PartialRun":
        yield* reporter.info(check.message);
        return undefined;
      case "ListShrunk":
        yield* reporter.warn(check.message);
        return check.message;
      default:
        return undefined;
    }
  });

/** One suspension or reactivation, its intent journalled first. */
const writeChange = (
  ctx: RunContext,
  who: LeaverIdentity,
  planned: LeaverChange,
  store: StateStoreService | undefined,
) =>
  Effect.gen(function* () {
    const discourse = yield* Discourse;
    const journal = yield* Journal;
    const reporter = yield* Reporter;
    const { kind, change } = planned;
    const intent = leaverRowOf(
      LeaverOutcome.Planned({ who, planned, heldBy: undefined }),
    ).entry;
    if (!(yield* ctx.operatorAccepts(intent, { changes: [], skipped: [] }))) {
      return LeaverOutcome.Declined({ who, planned });
    }
    const account = { id: change.forumUserId, username: change.forumUsername };
    const key = `moodle:${change.moodleId}`;
    const result = kind === "suspend"
      ? yield* journal.write(
        key,
        intent,
        discourse.suspendUser(account, {
          until: suspendUntil,
          reason: ctx.settings.deprovision.reason,
        }),
      )
      : yield* journal.write(
        key,
        intent,
        Effect.as(discourse.unsuspendUser(account), "Suspended" as const),
      );
    if (result === "AlreadySuspended") {
      return LeaverOutcome.AlreadySo({ who, planned });
    }
    if (store !== undefined) {
      // The row is what counts; a store that cannot record it only loses
      // the "ours" mark, and the reason still says whose suspension it is.
      yield* (kind === "suspend"
        ? store.recordSuspended(change.moodleId)
        : store.clearSuspended(change.moodleId)).pipe(
          Effect.catchAll((error) => reporter.warn(error.message)),
        );
    }
    return LeaverOutcome.Written({ who, planned });
  });
