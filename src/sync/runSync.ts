/**
 * The sync: read Moodle's users, classify each once (exclusion, collision,
 * malformed), then match, plan, apply and verify those that need the forum;
 * every user considered ends as exactly one row of the ledger.
 */
import type * as FileSystem from "@effect/platform/FileSystem";
import { Clock, Effect, Ref, Stream } from "effect";
import type { AuditLog, AuditLogError } from "../audit/AuditLog.ts";
import { type Journal, stoppedBeforeWriteMessage } from "../audit/Journal.ts";
import { recoverUnfinishedWrites } from "../audit/recovery.ts";
import { defaultConcurrencyCap } from "../discourse/concurrency.ts";
import { Discourse, type DiscourseError } from "../discourse/Discourse.ts";
import { forumKey } from "../lock.ts";
import type { Moodle, MoodleError } from "../moodle/Moodle.ts";
import { CurrentSettings } from "../config/Settings.ts";
import type { OpenedStateStore } from "../state/opened.ts";
import { type Candidate, candidateOf, writeKey } from "./candidate.ts";
import { classify } from "./classify.ts";
import type { RunContext, RunOptions } from "./context.ts";
import type { EmailSource } from "./fetchDiscourse.ts";
import { chooseEmailSource, loadMoodleUsers } from "./sources.ts";
import { type Fallbacks, makeLedger } from "./ledger.ts";
import { emailSharers } from "./match.ts";
import { type NoMoodleUsers, pendingOf, UnknownMoodleUser } from "./outcome.ts";
import type { Done, RunSummary } from "./summary.ts";
import { Reporter } from "./Reporter.ts";
import { findCollisions, selectBatch } from "./select.ts";
import { prepareStateRun } from "./stateRun.ts";
import { UserOutcome } from "./UserOutcome.ts";
import { openTextSpill } from "./spill.ts";
import { rowOf } from "./words.ts";
import { type MappedUser, mappedUser } from "../groups/verdicts.ts";
import { runRemovingStages } from "./removals.ts";
import { removingStages } from "./removingStages.ts";
import {
  excludesSuspended,
  noteSuspended,
  routeLeavers,
  type SuspendedAccounts,
} from "../leavers/route.ts";

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

    if (options.apply) {
      for (
        const entry of yield* recoverUnfinishedWrites(
          forumKey(settings.discourse.url),
        )
      ) {
        yield* reporter.warn(
          `${entry.normalizedUsername} ${entry.action}/${entry.status}: ${entry.message}`,
        );
      }
    }

    const spill = yield* Effect.acquireRelease(
      Effect.sync(() => openTextSpill(settings.logDir)),
      (opened) => Effect.sync(opened.close),
    );
    const candidates = yield* loadMoodleUsers((r) =>
      candidateOf(r, settings, spill)
    ).pipe(orOnStopNow<ReadonlyArray<Candidate>>([]));
    const users = candidates.flatMap((c) => c._tag === "User" ? [c] : []);
    const collisions = findCollisions(
      users.map((c) => ({
        moodleUsername: c.username,
        discourseUsername: c.normalized,
      })),
    );
    const { batch, nextOffset } = options.user !== undefined
      ? {
        batch: candidates.filter((c) =>
          (c._tag === "User"
            ? c.username
            : c._tag === "Malformed"
            ? c.record.username
            : undefined)?.toLowerCase() === options.user?.toLowerCase()
        ),
        nextOffset: undefined,
      }
      : selectBatch(candidates, options.offset, options.batchSize);
    if (options.user !== undefined && batch.length === 0) {
      return yield* new UnknownMoodleUser({ username: options.user });
    }
    // One rules object for the run: its patterns are compiled once.
    const rules = {
      exclusions: {
        patterns: [...settings.exclude.usernames, ...options.excludedByFile],
        suspended: excludesSuspended(settings),
      },
      collisions,
      match: settings.match,
    };
    const { profile: classified, suspended: leaving } = routeLeavers(
      batch.map((candidate) => classify(candidate, rules)),
      settings.deprovision,
    );
    const toProcess = classified.flatMap((c) =>
      c._tag === "NeedsForum" ? [c.candidate] : []
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
    const applyAll = yield* Ref.make(false);
    const pendingUsers = yield* Ref.make(0);
    const missingAccounts = yield* Ref.make(0);
    const suspendedAccounts: SuspendedAccounts = new Map();
    const ctx: RunContext = {
      settings,
      options,
      collisions,
      emailsShared: emailSharers(
        users.map((c) => ({ username: c.username, email: c.desired.email })),
      ),
      emailSource,
      ledger,
      // The leavers step reactivates from these at no request of its own.
      accountFound: noteSuspended(suspendedAccounts),
      operatorAccepts: (entry, plan) =>
        Effect.gen(function* () {
          if (!options.confirm || (yield* Ref.get(applyAll))) return true;
          const decision = yield* options.confirm({ entry, plan });
          if (decision === "all") yield* Ref.set(applyAll, true);
          if (decision === "quit") {
            yield* ledger.stopWith({ _tag: "OperatorQuit" });
          }
          return decision === "apply" || decision === "all";
        }),
    };
    // What the profile sync made of each user, for the group stage.
    const mapped = new Map<number, MappedUser>();
    /** What a recorded user leaves to do, for the summary. */
    const tally = (done: Done, outcome: UserOutcome) => {
      const user = settings.groups && mappedUser(outcome, done.entry);
      if (user) mapped.set(user.moodleId, user);
      switch (pendingOf(mode, done, options.createMissing ?? false)) {
        case "change":
          return Ref.update(pendingUsers, (n) => n + 1);
        case "missing":
          return Ref.update(missingAccounts, (n) => n + 1);
        default:
          return Effect.void;
      }
    };

    // As many users at once as the limit and the forum's latency call for.
    const cap = options.confirm
      ? 1
      : options.concurrency ?? defaultConcurrencyCap;
    const gate = yield* discourse.userGate(cap);
    yield* Stream.fromIterable(classified).pipe(
      Stream.mapEffect((user) => {
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
      }, { concurrency: cap, unordered: true }),
      Stream.runDrain,
    );

    const removals = yield* runRemovingStages(
      yield* removingStages(ctx, {
        mapped,
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
      pendingChanges: (yield* Ref.get(pendingUsers)) + removals.pendingUsers,
      missingAccounts: yield* Ref.get(missingAccounts),
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
