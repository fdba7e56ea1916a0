import type * as FileSystem from "@effect/platform/FileSystem";
import { Clock, Effect, Either, Option, Ref, Stream } from "effect";
import {
  type AuditAction,
  type AuditEntry,
  AuditLog,
  type AuditStatus,
} from "../audit/AuditLog.ts";
import { Discourse, type DiscourseError } from "../discourse/Discourse.ts";
import { Moodle, type MoodleError } from "../moodle/Moodle.ts";
import {
  DescriptionFormat,
  type MoodleRecord,
  type MoodleUser,
} from "../moodle/schema.ts";
import type { DiscourseUser } from "../discourse/schema.ts";
import { Reporter } from "../report/Reporter.ts";
import { CurrentSettings, type Settings } from "../settings.ts";
import { normalizeUsername } from "./normalize.ts";
import {
  desiredBio,
  type DesiredProfile,
  desiredProfile,
  removalNotes,
  removals,
} from "./profile.ts";
import { exclusionReason, findCollisions, selectBatch } from "./select.ts";
import {
  chooseEmailStrategy,
  type EmailSource,
  type ForumAccount,
  pendingEmails,
  readForumEmails,
} from "./fetchDiscourse.ts";
import {
  accountOwnership,
  describeMatch,
  describeSteps,
  emailSharers,
  findForumAccount,
  foreignAccountMessage,
  type MatchStep,
  matchSteps,
  needsOwnershipCheck,
  type Seeker,
  withoutSharedEmail,
} from "./match.ts";
import { diffProfile, type FieldChange, type Plan } from "./diff.ts";
import {
  createAccount,
  createdMessage,
  creationPlan,
  creationRefusal,
  creationRoute,
} from "./create.ts";
import { applyChanges, limitViolations, PartialWrite } from "./apply.ts";
import { verifyProfile } from "./verify.ts";
import { terminalSafe } from "../domain/terminal.ts";
import {
  NoMoodleUsers,
  pendingOf,
  type RunSummary,
  type StopReason,
  UnknownMoodleUser,
  type UserDone,
} from "./outcome.ts";
import type { AuditLogError } from "../audit/AuditLog.ts";
import {
  Journal,
  recoverUnfinishedWrites,
  unlessStoppedNow,
} from "../audit/Journal.ts";
import { forumKey } from "../lock.ts";

/** The operator's answer in `--interactive`. */
export type Decision = "apply" | "skip" | "all" | "quit";

export interface RunOptions {
  readonly apply: boolean;
  /** Only this Moodle username. */
  readonly user: string | undefined;
  readonly offset: number;
  /** 0: every user from the offset on. */
  readonly batchSize: number;
  /** Send every enabled field even when equal: the repair after a restore. */
  readonly force: boolean;
  /** With `apply`: create the forum accounts of users the forum lacks. */
  readonly createMissing?: boolean;
  readonly concurrency: number;
  /** Asked before each user's writes in `--interactive`. */
  readonly confirm?: (
    pending: { readonly entry: AuditEntry; readonly plan: Plan },
  ) => Effect.Effect<Decision>;
  /** Polled before each user: true once SIGINT/SIGTERM asked to stop. */
  readonly stopRequested?: Effect.Effect<boolean>;
  /**
   * Completes at a second signal: users whose write is not yet sent are
   * dropped (with a row saying so); writes already sent finish and are logged.
   */
  readonly stopNow?: Effect.Effect<void>;
  /** The lines of `exclude.file`, read before anything is contacted. */
  readonly excludedByFile: ReadonlyArray<string>;
}

/** A Moodle record in list order, with what every later stage needs. */
type Candidate =
  | {
    readonly _tag: "Malformed";
    readonly record: Extract<MoodleRecord, { _tag: "Malformed" }>;
  }
  | {
    readonly _tag: "User";
    readonly user: MoodleUser;
    readonly username: string;
    readonly normalized: string;
    readonly desired: DesiredProfile;
  }
  | { readonly _tag: "NoUsername"; readonly user: MoodleUser };

const candidateOf = (
  record: MoodleRecord,
  settings: Settings,
): Candidate => {
  if (record._tag === "Malformed") return { _tag: "Malformed", record };
  const user = record.user;
  if (!user.username) return { _tag: "NoUsername", user };
  return {
    _tag: "User",
    user,
    username: user.username,
    normalized: normalizeUsername(user.username, settings.username),
    desired: new BioOnDemand(user, settings.location),
  };
};

/**
 * A user's desired profile whose bio is converted each time it is read rather
 * than held: a run keeps every candidate to its end, and holding 100,000
 * users' bios in Markdown took the run's peak memory past 1 GB (README,
 * Performance). A bio is read only while its user is planned and verified.
 */
class BioOnDemand implements DesiredProfile {
  readonly name: string;
  readonly location: string;
  readonly email: string;
  readonly #user: MoodleUser;
  readonly #rest: DesiredProfile;

  constructor(user: MoodleUser, rules: Settings["location"]) {
    // An empty plain-text description converts to "" without a parse.
    const rest = desiredProfile(
      { ...user, description: "", descriptionformat: DescriptionFormat.plain },
      rules,
    );
    this.name = rest.name;
    this.location = rest.location;
    this.email = rest.email;
    this.#user = user;
    this.#rest = rest;
  }

  get bio(): string {
    return desiredBio(this.#user.description, this.#user.descriptionformat)
      .text;
  }

  get removed(): DesiredProfile["removed"] {
    return removals({
      name: this.#rest.removed?.name ?? 0,
      location: this.#rest.removed?.location ?? 0,
      bio: desiredBio(this.#user.description, this.#user.descriptionformat)
        .removed,
    });
  }
}

/**
 * Errors after which no further user should be written. A transport failure
 * is one user's unless the forum was never reached or it repeats across
 * users: see `transportFailuresToStop`.
 */
const isFatal = (error: { readonly _tag: string }): boolean =>
  error._tag === "DiscourseCredentialsRejected" ||
  // A wrong DiscourseConnect secret fails every creation alike.
  error._tag === "DiscourseConnectRejected" ||
  // discourse.url answers with redirects elsewhere: so will every request.
  error._tag === "DiscourseRedirected" ||
  error._tag === "DiscourseRateLimitBudgetSpent";

/** Users in a row whose requests found no forum: the forum is down, stop. */
export const transportFailuresToStop = 3;

/**
 * The sync: select -> exclude/collide -> fetch Discourse -> diff -> apply ->
 * verify -> record. Every user considered ends as exactly one audit row.
 */
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
> =>
  Effect.gen(function* () {
    const settings = yield* CurrentSettings;
    const discourse = yield* Discourse;
    const audit = yield* AuditLog;
    const journal = yield* Journal;
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

    const records = yield* loadMoodleUsers.pipe(
      orOnStopNow<ReadonlyArray<MoodleRecord>>([]),
    );
    const candidates = records.map((r) => candidateOf(r, settings));
    const collisions = findCollisions(
      candidates.flatMap((c) =>
        c._tag === "User"
          ? [{ moodleUsername: c.username, discourseUsername: c.normalized }]
          : []
      ),
    );
    const emailsShared = emailSharers(
      candidates.flatMap((c) =>
        c._tag === "User"
          ? [{ username: c.username, email: c.desired.email }]
          : []
      ),
    );
    const seekerOf = (candidate: Extract<Candidate, { _tag: "User" }>) => ({
      moodleId: candidate.user.id,
      username: candidate.normalized,
      email: candidate.desired.email,
      usernameShared: collisions.has(candidate.normalized.toLowerCase()),
      emailShared: emailsShared.has(
        candidate.desired.email.trim().toLowerCase(),
      ),
    } satisfies Seeker);
    // Only username matching refuses a shared username outright; the other
    // modes may still find the account by external id or email.
    const refusedForCollision = (normalized: string) =>
      settings.match === "username" && collisions.has(normalized.toLowerCase());
    const exclusionRules = {
      patterns: [
        ...settings.exclude.usernames,
        ...options.excludedByFile,
      ],
      suspended: settings.exclude.suspended,
    };
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

    const rows = yield* Ref.make<Record<string, number>>({});
    const stop = yield* Ref.make<StopReason | undefined>(undefined);
    const stopWith = (message: string) =>
      Ref.update(
        stop,
        (reason) => reason ?? { _tag: "Fatal", message } as const,
      );
    // Users in a row that found Discourse unreachable.
    const transportStreak = yield* Ref.make(0);
    const noteForumReached = Ref.set(transportStreak, 0);
    /** One user failed with `error`: stop the run, or only this user? */
    const noteFailure = (
      error: { readonly _tag: string; readonly message: string },
    ) =>
      Effect.gen(function* () {
        if (isFatal(error)) return yield* stopWith(error.message);
        if (error._tag !== "DiscourseTransportError") {
          return yield* noteForumReached;
        }
        const streak = yield* Ref.updateAndGet(transportStreak, (n) => n + 1);
        // Never reached at all: discourse.url or the network is wrong.
        if ((yield* discourse.requestsAnswered) === 0) {
          return yield* stopWith(error.message);
        }
        if (streak >= transportFailuresToStop) {
          yield* stopWith(
            `Discourse could not be reached for ${streak} users in a row ` +
              `(last: ${error.message})`,
          );
        }
      });
    const pendingUsers = yield* Ref.make(0);
    const missingAccounts = yield* Ref.make(0);
    const considered = yield* Ref.make(0);
    const applyAll = yield* Ref.make(false);

    /** In --interactive, the operator's word before each user's writes. */
    const operatorAccepts = (entry: AuditEntry, plan: Plan) =>
      Effect.gen(function* () {
        if (!options.confirm || (yield* Ref.get(applyAll))) return true;
        const decision = yield* options.confirm({ entry, plan });
        if (decision === "all") yield* Ref.set(applyAll, true);
        if (decision === "quit") yield* Ref.set(stop, { _tag: "OperatorQuit" });
        return decision === "apply" || decision === "all";
      });

    const finish = (
      user: string,
      done: Omit<UserDone, "row">,
    ): Effect.Effect<void, AuditLogError> =>
      Effect.gen(function* () {
        const row = yield* journal.record(user, done.entry);
        const key = `${done.entry.action}/${done.entry.status}`;
        yield* Ref.update(rows, (c) => ({ ...c, [key]: (c[key] ?? 0) + 1 }));
        switch (pendingOf(mode, done, options.createMissing ?? false)) {
          case "change":
            yield* Ref.update(pendingUsers, (n) => n + 1);
            break;
          case "missing":
            yield* Ref.update(missingAccounts, (n) => n + 1);
            break;
        }
        yield* reporter.userDone({ ...done, row });
      });

    // Users that need the forum, and the cheapest way to read their emails.
    const toProcess = batch.filter((
      c,
    ): c is Extract<Candidate, { _tag: "User" }> =>
      c._tag === "User" && !exclusionReason(c.user, exclusionRules) &&
      !refusedForCollision(c.normalized)
    );
    yield* reporter.start({
      mode,
      users: batch.length,
      budget: {
        requestsPerMinute: settings.discourse.requestsPerMinute,
        requestsSent: discourse.requestsSent,
      },
    });
    const emailSource: EmailSource = yield* chooseEmailSource(
      settings,
      toProcess.length,
      // Other modes learn forum usernames only while matching.
      settings.match === "username"
        ? toProcess.map((c) => c.normalized.toLowerCase())
        : undefined,
      records.length,
    ).pipe(orOnStopNow<EmailSource>({ _tag: "none" }));

    const processOne = (candidate: Candidate) =>
      Effect.gen(function* () {
        const stopped = (yield* Ref.get(stop)) !== undefined ||
          (options.stopRequested ? yield* options.stopRequested : false);
        if (stopped) {
          yield* Ref.update(
            stop,
            (reason) => reason ?? { _tag: "Interrupted" } as const,
          );
          return;
        }
        yield* Ref.update(considered, (n) => n + 1);
        const key = writeKey(candidate);
        const done = yield* unlessStoppedNow(
          decide(candidate).pipe(
            Effect.catchAllDefect((defect) =>
              Effect.succeed(
                simple(
                  candidate,
                  "ERROR",
                  "EXCEPTION",
                  `unexpected failure: ${String(defect)}`,
                ),
              )
            ),
          ),
          {
            key,
            // A dry-run writes nothing, so there is nothing to cut short; and
            // the watch costs ~0.15 ms a user, which 100,000 users would feel.
            stopNow: options.apply ? options.stopNow : undefined,
            stopped: () =>
              simple(candidate, "UPDATE", "SKIPPED", stoppedBeforeWrite),
          },
        );
        yield* finish(key, done);
      });

    const decide = (
      candidate: Candidate,
    ): Effect.Effect<
      Omit<UserDone, "row">,
      AuditLogError,
      Discourse | Journal
    > => {
      switch (candidate._tag) {
        case "Malformed":
          return Effect.succeed(simple(
            candidate,
            "ERROR",
            "ERROR",
            `Moodle sent a record that cannot be read: ${candidate.record.problem}`,
          ));
        case "NoUsername":
          return Effect.succeed(simple(
            candidate,
            "ERROR",
            "ERROR",
            "Moodle hides this user's username from the token's user: give it the capability moodle/user:viewalldetails",
          ));
        case "User":
          return decideUser(candidate);
      }
    };

    const decideUser = (
      candidate: Extract<Candidate, { _tag: "User" }>,
    ): Effect.Effect<
      Omit<UserDone, "row">,
      AuditLogError,
      Discourse | Journal
    > => {
      const reason = exclusionReason(candidate.user, exclusionRules);
      if (reason) {
        return Effect.succeed(simple(candidate, "EXCLUDE", "EXCLUDED", reason));
      }
      const others = collisions.get(candidate.normalized.toLowerCase());
      if (others && refusedForCollision(candidate.normalized)) {
        return Effect.succeed(simple(
          candidate,
          "ERROR",
          "ERROR",
          collisionMessage(candidate, others),
        ));
      }
      return syncUser(candidate).pipe(
        Effect.tap(() => noteForumReached),
        Effect.catchAll((error) =>
          Effect.gen(function* () {
            if (error._tag === "AuditLogError") return yield* error;
            if (error._tag === "StoppedBeforeWrite") {
              return simple(candidate, "UPDATE", "SKIPPED", error.message);
            }
            yield* noteFailure(error);
            return simple(candidate, "ERROR", "ERROR", error.message);
          })
        ),
      );
    };

    const syncUser = (candidate: Extract<Candidate, { _tag: "User" }>) =>
      Effect.gen(function* () {
        const seeker = seekerOf(candidate);
        const identity = yield* findForumAccount(
          seeker,
          matchSteps(settings.match, seeker),
          emailSource,
        );
        if (identity._tag === "NotFound") {
          return yield* missingUser(candidate, identity.tried);
        }
        const account = identity;
        const how = describeMatch(identity.by);
        const plan = yield* planFor(candidate.desired, account.account);
        const username = account.account.user.username;
        const withUsername = { ...candidate, normalized: username };
        if (plan.changes.length === 0) {
          return withPlan(
            withUsername,
            plan,
            "UPDATE",
            "EXISTS",
            messageWith("already up to date", plan, how),
          );
        }
        const tooLong = limitViolations(plan.changes);
        if (tooLong.length > 0) {
          return withPlan(
            withUsername,
            plan,
            "ERROR",
            "ERROR",
            `not sent: ${tooLong.join("; ")}; ${how}`,
          );
        }
        // Checked before anything would be written, in a dry-run too, so
        // that the dry-run shows what --apply would refuse.
        if (needsOwnershipCheck(identity.by, settings)) {
          const owner = yield* accountOwnership(
            account.account,
            candidate.user.id,
          );
          if (owner._tag === "Foreign") {
            return simple(
              withUsername,
              "ERROR",
              "ERROR",
              foreignAccountMessage(
                identity.by,
                account.account,
                owner.externalId,
                candidate.user.id,
              ),
            );
          }
        }
        if (!options.apply) {
          return withPlan(
            withUsername,
            plan,
            "UPDATE",
            "DRY_RUN",
            messageWith(`would update ${fieldList(plan.changes)}`, plan, how),
          );
        }
        const pending = withPlan(
          withUsername,
          plan,
          "UPDATE",
          "DRY_RUN",
          messageWith(`would update ${fieldList(plan.changes)}`, plan, how),
        );
        if (!(yield* operatorAccepts(pending.entry, plan))) {
          return withPlan(
            withUsername,
            plan,
            "UPDATE",
            "SKIPPED",
            "skipped by the operator",
          );
        }
        const written = yield* journal.write(
          writeKey(candidate),
          pending.entry,
          applyChanges(username, plan.changes),
        ).pipe(Effect.either);
        if (Either.isLeft(written)) {
          const failure = written.left;
          if (!(failure instanceof PartialWrite)) {
            return yield* failure;
          }
          yield* noteFailure(failure.error);
          // The profile update went through: the row keeps its fields and
          // their before values, so `revert` can put them back.
          return withPlan(
            withUsername,
            {
              changes: plan.changes.filter((c) =>
                failure.written.includes(c.field)
              ),
              skipped: plan.skipped,
            },
            "UPDATE",
            "ERROR",
            `${
              failure.written.join(", ")
            } written, then the email change failed: ${failure.error.message}; ${how}`,
          );
        }
        const applied = written.right;
        const mismatches = Option.match(applied.stored, {
          onNone: () => [],
          onSome: (stored) => verifyProfile(plan.changes, stored),
        });
        const emailNote = Option.match(applied.emailRequested, {
          onNone: () => "",
          onSome: (email) =>
            `; email change to ${email} requested: it waits for the user's confirmation`,
        });
        if (mismatches.length > 0) {
          return withPlan(
            withUsername,
            plan,
            "UPDATE",
            "VERIFY_FAILED",
            `Discourse did not keep ${
              mismatches.map((m) =>
                `${m.field} (holds ${JSON.stringify(m.actual)})`
              )
                .join(", ")
            }: a site setting may override it${emailNote}; ${how}`,
          );
        }
        return withPlan(
          withUsername,
          plan,
          "UPDATE",
          "SUCCESS",
          messageWith(
            `updated ${
              fieldList(plan.changes.filter((c) => c.field !== "email"))
            }`
              .replace(/^updated $/, "") + emailNote,
            plan,
            how,
          ).replace(/^; /, ""),
        );
      });

    /** No account found: logged as missing, or created with --create-missing. */
    const missingUser = (
      candidate: Extract<Candidate, { _tag: "User" }>,
      tried: ReadonlyArray<MatchStep>,
    ) =>
      Effect.gen(function* () {
        const notFound = `not in Discourse (no account has its ${
          describeSteps(tried)
        })`;
        const others = collisions.get(candidate.normalized.toLowerCase());
        // Unfound, a shared username cannot be told apart from the others'.
        if (others && settings.match === "auto") {
          return simple(
            candidate,
            "ERROR",
            "ERROR",
            `${collisionMessage(candidate, others)}; ${notFound}`,
          );
        }
        const creation = creationFor(candidate);
        // A dry-run shows what --apply with the same flags would do: with
        // --create-missing a refusal is an ERROR in both; without it the
        // row promises no creation that --create-missing would refuse.
        if (options.createMissing && creation.refusal) {
          return simple(candidate, "ERROR", "ERROR", creation.refusal);
        }
        const howCreated = creation.refusal
          ? `accounts are created at first SSO login; --create-missing would refuse this one: ${creation.refusal}`
          : undefined;
        if (!options.apply) {
          return options.createMissing
            ? withPlan(
              candidate,
              creation.plan,
              "CREATE",
              "DRY_RUN",
              `${notFound}: would be created`,
            )
            : simple(
              candidate,
              "CREATE",
              "DRY_RUN",
              `${notFound}: ${
                howCreated ??
                  "would be created at first SSO login, or now by --apply --create-missing"
              }`,
            );
        }
        if (!options.createMissing) {
          return simple(
            candidate,
            "CREATE",
            "SKIPPED",
            `${notFound}: not created (${
              howCreated ??
                "accounts are created at first SSO login, or by --create-missing"
            })`,
          );
        }
        return yield* createUser(candidate, tried, creation);
      });

    /** How a missing user's account would be made, or why it would not. */
    const creationFor = (candidate: Extract<Candidate, { _tag: "User" }>) => {
      const route = creationRoute(settings);
      const plan = creationPlan(candidate.desired, settings.fields);
      const refusal = creationRefusal({
        username: candidate.normalized,
        email: candidate.desired.email,
        usernameShared: collisions.has(candidate.normalized.toLowerCase()),
        route,
        plan,
      });
      return { route, plan, refusal };
    };

    /** Only for a user whose creation nothing refuses (see missingUser). */
    const createUser = (
      candidate: Extract<Candidate, { _tag: "User" }>,
      tried: ReadonlyArray<MatchStep>,
      { route, plan }: ReturnType<typeof creationFor>,
    ) =>
      Effect.gen(function* () {
        const pending = withPlan(
          candidate,
          plan,
          "CREATE",
          "DRY_RUN",
          "would create",
        );
        if (!(yield* operatorAccepts(pending.entry, plan))) {
          return simple(
            candidate,
            "CREATE",
            "SKIPPED",
            "skipped by the operator",
          );
        }
        const created = yield* journal.write(
          writeKey(candidate),
          pending.entry,
          createAccount({
            moodleId: candidate.user.id,
            username: candidate.normalized,
            email: candidate.desired.email.trim(),
            plan,
            route,
            suppressWelcomeMessage: settings.create.suppressWelcomeMessage,
            emailKnownFree: tried.includes("email"),
          }),
        );
        const withUsername = {
          ...candidate,
          normalized: created.user.username,
        };
        // Verified like an update: whatever Discourse did not take at
        // creation (POST /users.json has no bio or location) is written now,
        // and what still differs afterwards is reported.
        const rest = diffAgainst(candidate.desired, created.user);
        const made = createdMessage(
          route,
          created,
          candidate.user.id,
          settings.create.suppressWelcomeMessage,
        );
        const completed = rest.changes.length === 0
          ? Either.right(created.user)
          : yield* journal.write(
            writeKey(candidate),
            withPlan(withUsername, rest, "UPDATE", "DRY_RUN", "completing")
              .entry,
            applyChanges(created.user.username, rest.changes),
          ).pipe(
            Effect.map((applied) =>
              Option.getOrElse(applied.stored, () => created.user)
            ),
            Effect.either,
          );
        if (Either.isLeft(completed)) {
          if (
            completed.left._tag === "AuditLogError" ||
            completed.left._tag === "StoppedBeforeWrite"
          ) return yield* completed.left;
          // The account exists: the row must say so, not only what failed.
          const error = completed.left instanceof PartialWrite
            ? completed.left.error
            : completed.left;
          yield* noteFailure(error);
          return simple(
            withUsername,
            "ERROR",
            "ERROR",
            `${made}, then writing ${
              fieldList(rest.changes)
            } failed: ${error.message}`,
          );
        }
        const stored = completed.right;
        const mismatches = diffAgainst(candidate.desired, stored).changes;
        if (mismatches.length > 0) {
          return withPlan(
            withUsername,
            plan,
            "CREATE",
            "VERIFY_FAILED",
            `${made}, but Discourse did not keep ${
              mismatches.map((m) =>
                `${m.field} (holds ${JSON.stringify(m.before)})`
              ).join(", ")
            }: a site setting may override it`,
          );
        }
        return withPlan(
          withUsername,
          plan,
          "CREATE",
          "SUCCESS",
          messageWith(made, rest),
        );
      });

    /** A just-created account against Moodle, under the field policies. */
    const diffAgainst = (desired: DesiredProfile, user: DiscourseUser) =>
      diffProfile(
        desired,
        {
          name: user.name,
          location: user.location,
          bio: user.bio_raw,
          // Set at creation; Discourse shows it only to a separate request.
          email: desired.email,
          pendingEmails: [],
        },
        settings.fields,
        {
          name: user.can_edit_name,
          location: user.can_change_location,
          bio: user.can_change_bio,
          email: true,
        },
        { force: false },
      );

    const planFor = (desired: DesiredProfile, account: ForumAccount) =>
      Effect.gen(function* () {
        const { user } = account;
        const current = {
          name: user.name,
          location: user.location,
          bio: user.bio_raw,
          // Not looked up: the policy cannot change it, so take it as equal.
          email: account.email ?? desired.email,
          pendingEmails: [] as ReadonlyArray<string>,
        };
        const editable = {
          name: user.can_edit_name,
          location: user.can_change_location,
          bio: user.can_change_bio,
          email: true,
        };
        const diffOptions = { force: options.force };
        const plan = withoutSharedEmail(
          diffProfile(desired, current, settings.fields, editable, diffOptions),
          emailsShared,
        );
        if (!plan.changes.some((c) => c.field === "email")) return plan;
        const pending = account.pendingEmails ??
          (yield* pendingEmails(user.username));
        return diffProfile(
          desired,
          { ...current, pendingEmails: pending },
          settings.fields,
          editable,
          diffOptions,
        );
      });

    yield* Stream.fromIterable(batch).pipe(
      Stream.mapEffect(processOne, {
        concurrency: options.confirm ? 1 : options.concurrency,
        unordered: true,
      }),
      Stream.runDrain,
    );

    const counts = yield* Ref.get(rows);
    const consideredCount = yield* Ref.get(considered);
    const stoppedBy = yield* Ref.get(stop);
    const summary: RunSummary = {
      mode,
      moodleUsers: options.user !== undefined ? batch.length : records.length,
      considered: consideredCount,
      notReached: batch.length - consideredCount,
      counts,
      pendingChanges: yield* Ref.get(pendingUsers),
      missingAccounts: yield* Ref.get(missingAccounts),
      failures: Object.entries(counts).filter(([key]) =>
        /\/(ERROR|EXCEPTION|VERIFY_FAILED)$/.test(key)
      ).reduce((sum, [, n]) => sum + n, 0),
      discourseRequests: yield* discourse.requestsSent,
      elapsedMs: (yield* Clock.currentTimeMillis) - startedAt,
      logPath: Option.getOrUndefined(yield* audit.written),
      offset: options.user ? 0 : options.offset,
      // A stopped run resumes where it stopped, not after its batch.
      nextOffset: stoppedBy ? undefined : nextOffset,
      stoppedBy,
    };
    yield* reporter.finish(summary);
    return summary;
  });

/**
 * Every Moodle user in id order, for `--user` too: a collision is only seen
 * against the whole list (`ana_garcia` cannot see `ana garcia` otherwise),
 * and the list is one Moodle request that costs no Discourse budget.
 */
const loadMoodleUsers = Effect.gen(function* () {
  const moodle = yield* Moodle;
  const reporter = yield* Reporter;
  const all = yield* moodle.allUsers;
  if (all.records.length === 0) return yield* new NoMoodleUsers();
  for (const warning of all.warnings) {
    yield* reporter.warn(
      `Moodle warning ${warning.warningcode}: ${warning.message}`,
    );
  }
  return all.records;
});

const chooseEmailSource = (
  settings: Settings,
  usersToProcess: number,
  /** Lower-case forum usernames; undefined when not known before matching. */
  wanted: ReadonlyArray<string> | undefined,
  moodleUsers: number,
) =>
  Effect.gen(function* () {
    if (settings.fields.email !== "overwrite" || usersToProcess === 0) {
      return { _tag: "none" } as const;
    }
    if (chooseEmailStrategy(usersToProcess, moodleUsers) === "per-user") {
      return { _tag: "per-user" } as const;
    }
    const reporter = yield* Reporter;
    yield* reporter.info("Reading forum emails from the admin user list...");
    return {
      _tag: "bulk",
      emails: yield* readForumEmails(
        wanted === undefined ? undefined : new Set(wanted),
      ),
    } as const;
  });

const collisionMessage = (
  candidate: Extract<Candidate, { _tag: "User" }>,
  sharing: ReadonlyArray<string>,
) => {
  const others = sharing.filter((name) => name !== candidate.username);
  const names = others.map((name) => `"${name}"`).join(", ");
  return `username collision: Moodle ${
    others.length === 1 ? "user" : "users"
  } ${names} also ${
    others.length === 1 ? "becomes" : "become"
  } "${candidate.normalized}" in Discourse. None of them is synced, so no profile gets another person's data: rename one in Moodle or exclude it`;
};

const fieldList = (changes: ReadonlyArray<FieldChange>) =>
  changes.map((c) => c.field).join(", ");

const messageWith = (text: string, plan: Plan, how = "") =>
  [text, ...plan.skipped.map((s) => `${s.field} skipped: ${s.reason}`), how]
    .filter((part) => part.length > 0).join("; ");

const identity = (candidate: Candidate) => {
  switch (candidate._tag) {
    case "Malformed":
      return {
        originalUsername: candidate.record.username ?? "",
        normalizedUsername: "",
        fullname: "",
        email: "",
        location: "",
        moodleId: candidate.record.id,
      };
    case "NoUsername":
      return {
        originalUsername: "",
        normalizedUsername: "",
        fullname: candidate.user.fullname,
        email: candidate.user.email ?? "",
        location: "",
        moodleId: candidate.user.id,
      };
    case "User":
      return {
        originalUsername: candidate.username,
        normalizedUsername: candidate.normalized,
        fullname: candidate.desired.name,
        email: candidate.desired.email,
        location: candidate.desired.location,
        moodleId: candidate.user.id,
      };
  }
};

const noPlan: Plan = { changes: [], skipped: [] };

/** The row says which written values lost control characters Moodle held. */
const withRemovalNotes = (
  message: string,
  candidate: Candidate,
  plan: Plan,
): string => {
  if (candidate._tag !== "User" || plan.changes.length === 0) return message;
  const notes = removalNotes(
    candidate.desired,
    plan.changes.map((change) => change.field),
  );
  return [message, ...notes].filter((part) => part !== "").join("; ");
};

/** Names a user's writes in the journal: a Moodle id is unique in a run. */
const writeKey = (candidate: Candidate) =>
  `moodle:${identity(candidate).moodleId}`;

const stoppedBeforeWrite =
  "not written: the run was told to stop now (a second signal) before this user's write was sent";

/** A row with no field changes: excluded, refused, missing, failed. */
const simple = (
  candidate: Candidate,
  action: AuditAction,
  status: AuditStatus,
  message: string,
): Omit<UserDone, "row"> =>
  withPlan(candidate, noPlan, action, status, message);

const withPlan = (
  candidate: Candidate,
  plan: Plan,
  action: AuditAction,
  status: AuditStatus,
  message: string,
): Omit<UserDone, "row"> => ({
  entry: {
    ...identity(candidate),
    action,
    status,
    // Moodle's and Discourse's words in it: controls escaped, as on a console.
    message: terminalSafe(withRemovalNotes(message, candidate, plan)),
    fields: plan.changes.map((c) => c.field),
    before: Object.fromEntries(plan.changes.map((c) => [c.field, c.before])),
    after: Object.fromEntries(plan.changes.map((c) => [c.field, c.after])),
  },
  changes: plan.changes,
  skipped: plan.skipped,
});
