/**
 * The sync: read Moodle's users, classify each once (exclusion, collision,
 * malformed), then match, plan, apply and verify those that need the forum;
 * every user considered ends as exactly one row of the ledger.
 */
import type * as FileSystem from "@effect/platform/FileSystem";
import { Clock, Effect } from "effect";
import type { AuditLog, AuditLogError } from "../audit/AuditLog.ts";
import { type Journal, stoppedBeforeWriteMessage } from "../audit/Journal.ts";
import { CurrentSettings } from "../config/Settings.ts";
import { defaultConcurrencyCap } from "../discourse/concurrency.ts";
import { Discourse, type DiscourseError } from "../discourse/Discourse.ts";
import { noteSuspended, type SuspendedAccounts } from "../leavers/route.ts";
import { groupIdsSeen } from "../groups/idsSeen.ts";
import { forumKey } from "../lock.ts";
import type { Moodle, MoodleError } from "../moodle/Moodle.ts";
import type { OpenedStateStore } from "../state/opened.ts";
import { chooseBatch } from "./batch.ts";
import { type Candidate, candidateOf, writeKey } from "./candidate.ts";
import type { RunContext, RunOptions } from "./context.ts";
import type { EmailSource } from "./fetchDiscourse.ts";
import { type Fallbacks, makeLedger } from "./ledger.ts";
import { askOperatorEachUser } from "./operatorAccepts.ts";
import type { NoMoodleUsers, UnknownMoodleUser } from "./outcome.ts";
import { recoverAndWarn } from "./recovered.ts";
import { runRemovingStages } from "./removals.ts";
import { removingStages } from "./removingStages.ts";
import { Reporter } from "./Reporter.ts";
import { chooseEmailSource, loadMoodleUsers } from "./sources.ts";
import { openTextSpill } from "./spill.ts";
import { prepareStateRun } from "./stateRun.ts";
import type { RunSummary } from "./summary.ts";
import { makeTally } from "./tally.ts";
import { triage } from "./triage.ts";
import { UserOutcome } from "./UserOutcome.ts";
import { rowOf } from "./words.ts";

export type { Decision, RunOptions } from "./context.ts";

/** Users in a row whose requests found no forum: the forum is down, stop. */
export const transportFailuresToStop = 3;

const fallbacksFor = (who: Candidate): Fallbacks<UserOutcome> => ({
  failed: (message) => UserOutcome.Failed({ who, message }),
  notWritten: (message) => UserOutcome.NotWritten({ who, message }),
  crashed: (message) => UserOutcome.Crashed({ who, message }),
});

export const runSync = (
  options: RunOptions,
): Effect.Effect<
  RunSummary,
  | MoodleError
  | DiscourseError
  | AuditLogError
  | UnknownMoodleUser
  | NoMoodleUsers,
  | Moodle
  | Discourse
  | AuditLog
  | Journal
  | Reporter
  | CurrentSettings
  | FileSystem.FileSystem
  | OpenedStateStore
> =>
  Effect.gen(function* () {
    const settings = yield* CurrentSettings;
    const discourse = yield* Discourse;
    const reporter = yield* Reporter;
    const startedAt = yield* Clock.currentTimeMillis;
    const mode = options.apply ? "apply" : "dryrun";
    /** Before a user's work starts, a second signal ends the waiting. */
    const orOnStopNow =
      <A>(fallback: A) => <E, R>(work: Effect.Effect<A, E, R>) =>
        options.stopNow
          ? Effect.raceFirst(work, Effect.as(options.stopNow, fallback))
          : work;

    if (options.apply) yield* recoverAndWarn(forumKey(settings.discourse.url));

    const spill = yield* Effect.acquireRelease(
      Effect.sync(() => openTextSpill(settings.logDir)),
      (opened) => Effect.sync(opened.close),
    );
    const candidates = yield* loadMoodleUsers((r) =>
      candidateOf(r, settings, spill)
    ).pipe(orOnStopNow<ReadonlyArray<Candidate>>([]));
    const { batch, nextOffset } = yield* chooseBatch(candidates, options);
    const { collisions, emailsShared, classified, leaving, toProcess } = triage(
      candidates,
      batch,
      settings,
      options,
    );

    yield* reporter.start({
      mode,
      users: batch.length,
      budget: {
        requestsPerMinute: settings.discourse.requestsPerMinute,
        requestsSent: discourse.requestsSent,
      },
    });
    // The list is read by a child of this fiber, alongside the users: not
    // raced against a stop, which would end it at once.
    const emailSource: EmailSource = yield* chooseEmailSource(
      settings,
      toProcess.length,
      // Other modes learn forum usernames only while matching.
      settings.match === "username"
        ? toProcess.map((c) => c.normalized.toLowerCase())
        : undefined,
      candidates.length,
    );

    const ledger = yield* makeLedger({
      transportFailuresToStop,
      stopRequested: options.stopRequested,
      // A dry-run writes nothing, so there is nothing to cut short; and
      // the watch costs ~0.15 ms a user, which 100,000 users would feel.
      stopNow: options.apply ? options.stopNow : undefined,
    });
    const stateRun = yield* prepareStateRun(
      { full: options.full ?? false, force: options.force },
      toProcess,
      {
        // Card requests at once: 4, the old fixed default, unless told.
        concurrency: options.concurrency ?? 4,
        stopped: Effect.map(ledger.stopped, (why) => why !== undefined),
      },
    );
    const suspendedAccounts: SuspendedAccounts = new Map();
    const groupIds = groupIdsSeen(settings.groups);
    const ctx: RunContext = {
      settings,
      options,
      collisions,
      emailsShared,
      emailSource,
      ledger,
      // From the accounts found, at no request of their own: the leavers
      // step reactivates, the groups stage learns its groups' ids.
      accountFound: (moodleId, account) =>
        Effect.zipRight(
          noteSuspended(suspendedAccounts)(moodleId, account),
          groupIds.note(account.user.groups),
        ),
      operatorAccepts: yield* askOperatorEachUser(options.confirm, ledger),
    };
    const { tally, mapped, pendingUsers, missingAccounts } = yield* makeTally({
      mode,
      createMissing: options.createMissing ?? false,
      groups: settings.groups !== undefined,
    });

    // As many users at once as the limit and the forum's latency call for.
    const cap = options.confirm
      ? 1
      : options.concurrency ?? defaultConcurrencyCap;
    const gate = yield* discourse.userGate(cap);
    // Effect.forEach, not Stream.mapEffect: the stream forked three fibers
    // and ran ~500 operations a user for its queue and permits.
    yield* Effect.forEach(classified, (user) => {
      const who = user._tag === "Settled" ? user.outcome.who : user.candidate;
      const fallbacks = fallbacksFor(who);
      return gate.withPermit(ledger.run(
        writeKey(who),
        user._tag === "Settled"
          ? Effect.succeed(user.outcome)
          : ledger.settle(stateRun.syncOne(ctx, user.candidate), fallbacks),
        {
          fallbacks,
          stoppedMessage: stoppedBeforeWriteMessage,
          rowOf,
          tally,
        },
      ));
    }, { concurrency: cap, discard: true });

    const removals = yield* runRemovingStages(
      yield* removingStages(ctx, {
        mapped,
        groupIds: groupIds.byName,
        batch,
        wholeList: !options.user && !options.offset && !nextOffset,
        leavers: { suspended: leaving, candidates, batch, suspendedAccounts },
      }),
      {
        maxRemovals: settings.safety.maxRemovals,
        allowRemovals: options.allowRemovals,
      },
    );
    const totals = yield* ledger.totals(mode);
    const summary: RunSummary = {
      ...totals,
      command: "sync",
      moodleUsers: options.user !== undefined
        ? batch.length
        : candidates.length,
      notReached: batch.length - (totals.considered - removals.extraTurns),
      pendingChanges: (yield* pendingUsers) + removals.pendingUsers,
      missingAccounts: yield* missingAccounts,
      reads: yield* stateRun.summary,
      discourseRequests: yield* discourse.requestsSent,
      elapsedMs: (yield* Clock.currentTimeMillis) - startedAt,
      offset: options.user ? 0 : options.offset,
      // A stopped run resumes where it stopped, not after its batch.
      nextOffset: totals.stoppedBy ? undefined : nextOffset,
      membershipChanges: removals.pending,
      removalsHeld: removals.held,
    };
    yield* reporter.finish(summary);
    return summary;
  }).pipe(Effect.scoped);
