/**
 * A user no account was found for: logged as missing, or, with
 * --apply --create-missing, created, completed and verified.
 */
import { Effect, Either, Option } from "effect";
import { AuditLogError } from "../audit/AuditLog.ts";
import { Journal, StoppedBeforeWrite } from "../audit/Journal.ts";
import {
  type DiscourseUser,
  editableFields,
  heldValues,
} from "../discourse/schema.ts";
import { applyChanges } from "./apply.ts";
import { type UserCandidate, writeKey } from "./candidate.ts";
import type { RunContext } from "./context.ts";
import {
  createAccount,
  creationPlan,
  creationRefusal,
  creationRoute,
} from "./create.ts";
import { diffProfile } from "./diff.ts";
import type { MatchStep } from "./match.ts";
import type { DesiredProfile } from "./profile.ts";
import { UserOutcome } from "./UserOutcome.ts";
import { rowOf } from "./words.ts";

export const missingUser = (
  ctx: RunContext,
  candidate: UserCandidate,
  tried: ReadonlyArray<MatchStep>,
) =>
  Effect.gen(function* () {
    const { settings, options } = ctx;
    const others = ctx.collisions.get(candidate.normalized.toLowerCase());
    // Unfound, a shared username cannot be told apart from the others'.
    if (others && settings.match === "auto") {
      return UserOutcome.Collision({ who: candidate, others, tried });
    }
    const creation = creationFor(ctx, candidate);
    // A dry-run shows what --apply with the same flags would do: with
    // --create-missing a refusal is an ERROR in both; without it the
    // row promises no creation that --create-missing would refuse.
    if (options.createMissing && creation.refusal) {
      return UserOutcome.CreationRefused({
        who: candidate,
        refusal: creation.refusal,
      });
    }
    if (options.createMissing && !options.apply) {
      return UserOutcome.CreationPlanned({
        who: candidate,
        tried,
        plan: creation.plan,
      });
    }
    if (!options.createMissing) {
      return UserOutcome.Missing({
        who: candidate,
        tried,
        refusal: creation.refusal,
        apply: options.apply,
      });
    }
    return yield* createUser(ctx, candidate, tried, creation);
  });

/** How a missing user's account would be made, or why it would not. */
const creationFor = (ctx: RunContext, candidate: UserCandidate) => {
  const route = creationRoute(ctx.settings);
  const plan = creationPlan(candidate.desired, ctx.settings.fields);
  const refusal = creationRefusal({
    username: candidate.normalized,
    email: candidate.desired.email,
    usernameShared: ctx.collisions.has(candidate.normalized.toLowerCase()),
    route,
    plan,
  });
  return { route, plan, refusal };
};

/** Only for a user whose creation nothing refuses (see missingUser). */
const createUser = (
  ctx: RunContext,
  candidate: UserCandidate,
  tried: ReadonlyArray<MatchStep>,
  { route, plan }: ReturnType<typeof creationFor>,
) =>
  Effect.gen(function* () {
    const { settings } = ctx;
    const journal = yield* Journal;
    const pending = rowOf(UserOutcome.CreatePending({ who: candidate, plan }))
      .entry;
    if (!(yield* ctx.operatorAccepts(pending, plan))) {
      return UserOutcome.Declined({
        who: candidate,
        action: "CREATE",
        plan: { changes: [], skipped: [] },
      });
    }
    const created = yield* journal.write(
      writeKey(candidate),
      pending,
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
    const who = { ...candidate, normalized: created.user.username };
    const creation = {
      route,
      created,
      suppressWelcomeMessage: settings.create.suppressWelcomeMessage,
    };
    // Verified like an update: whatever Discourse did not take at
    // creation (POST /users.json has no bio or location) is written now,
    // and what still differs afterwards is reported.
    const rest = diffAgainst(ctx, candidate.desired, created.user);
    const completed = rest.changes.length === 0
      ? Either.right(created.user)
      : yield* completeAccount(ctx, who, rest, created.user);
    if (Either.isLeft(completed)) {
      // The account exists: the row must say so, not only what failed.
      return UserOutcome.CreatedThenFailed({
        who,
        rest,
        creation,
        error: completed.left,
      });
    }
    const mismatches = diffAgainst(ctx, candidate.desired, completed.right)
      .changes;
    return mismatches.length > 0
      ? UserOutcome.CreatedNotKept({ who, plan, creation, mismatches })
      : UserOutcome.Created({ who, plan, rest, creation });
  });

/**
 * Writes what creation could not set. A failure is noted and given back as
 * its message; only the log's and the stop's errors end the user's turn.
 */
const completeAccount = (
  ctx: RunContext,
  who: UserCandidate,
  rest: ReturnType<typeof diffAgainst>,
  created: DiscourseUser,
) =>
  Effect.gen(function* () {
    const journal = yield* Journal;
    const written = yield* ctx.ledger.partly(
      journal.write(
        writeKey(who),
        rowOf(UserOutcome.Completing({ who, plan: rest })).entry,
        applyChanges(created.username, rest.changes),
      ),
    ).pipe(Effect.either);
    if (Either.isRight(written)) {
      return written.right._tag === "Partial"
        ? Either.left(written.right.partial.error.message)
        : Either.right(
          Option.getOrElse(written.right.applied.stored, () => created),
        );
    }
    const error = written.left;
    if (error instanceof AuditLogError || error instanceof StoppedBeforeWrite) {
      return yield* error;
    }
    yield* ctx.ledger.noteFailure(error);
    return Either.left(error.message);
  });

/** A just-created account against Moodle, under the field policies. */
const diffAgainst = (
  ctx: RunContext,
  desired: DesiredProfile,
  user: DiscourseUser,
) =>
  diffProfile(
    desired,
    // The email was set at creation.
    { ...heldValues(user, desired.email), pendingEmails: [] },
    ctx.settings.fields,
    editableFields(user),
    { force: false },
  );
