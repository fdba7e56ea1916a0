/**
 * One user who needs the forum: match the account, plan the changes, and
 * with --apply write and verify them. A user the forum lacks goes on to
 * `missingUser`.
 */
import { Effect, Option } from "effect";
import type { Discourse, DiscourseError } from "../discourse/Discourse.ts";
import { Journal } from "../audit/Journal.ts";
import { editableFields, heldValues } from "../discourse/schema.ts";
import { applyChanges, limitViolations } from "./apply.ts";
import { type UserCandidate, writeKey } from "./candidate.ts";
import type { RunContext } from "./context.ts";
import { diffProfile, type Plan } from "./diff.ts";
import { type ForumAccount, pendingEmails } from "./fetchDiscourse.ts";
import {
  accountOwnership,
  describeMatch,
  findForumAccount,
  matchSteps,
  needsOwnershipCheck,
  type Seeker,
  withoutSharedEmail,
} from "./match.ts";
import { missingUser } from "./missingUser.ts";
import type { DesiredProfile } from "./profile.ts";
import { type OwnerUnchecked, UserOutcome } from "./UserOutcome.ts";
import { verifyProfile } from "./verify.ts";
import { rowOf } from "./words.ts";

export const syncUser = (ctx: RunContext, candidate: UserCandidate) =>
  Effect.gen(function* () {
    const { settings } = ctx;
    const seeker = seekerOf(ctx, candidate);
    const identity = yield* findForumAccount(
      seeker,
      matchSteps(settings.match, seeker),
      ctx.emailSource,
    );
    if (identity._tag === "NotFound") {
      return yield* missingUser(ctx, candidate, identity.tried);
    }
    const { account, by } = identity;
    if (ctx.accountFound) yield* ctx.accountFound(candidate.user.id, account);
    const plan = yield* planFor(ctx, candidate.desired, account);
    const username = account.user.username;
    const checkOwner = needsOwnershipCheck(by, settings);
    return yield* carryOut(ctx, candidate, {
      username,
      plan,
      how: describeMatch(by),
      ownerUnchecked: checkOwner
        ? { accountId: account.user.id, by }
        : undefined,
      // Checked before anything would be written, in a dry-run too, so
      // that the dry-run shows what --apply would refuse.
      refusal: checkOwner
        ? Effect.map(
          accountOwnership(account, candidate.user.id),
          (owner) =>
            owner._tag === "Foreign"
              ? UserOutcome.ForeignAccount({
                who: { ...candidate, normalized: username },
                by,
                account,
                externalId: owner.externalId,
              })
              : undefined,
        )
        : Effect.succeed(undefined),
    });
  });

/** A found account's plan, and what may still refuse its writes. */
export interface PlannedUser {
  readonly username: string;
  readonly plan: Plan;
  /** How the account was found, for the row. */
  readonly how: string;
  /** Set when `refusal` checks the owner: said by outcomes that skip it. */
  readonly ownerUnchecked?: OwnerUnchecked;
  /** Asked only when there is something to write: an outcome ends there. */
  readonly refusal: Effect.Effect<
    UserOutcome | undefined,
    DiscourseError,
    Discourse
  >;
}

/**
 * A planned user to its end: up to date, refused, or (with --apply, and the
 * operator's word in --interactive) written through the journal and verified.
 */
export const carryOut = (
  ctx: RunContext,
  candidate: UserCandidate,
  { username, plan, how, refusal, ownerUnchecked }: PlannedUser,
) =>
  Effect.gen(function* () {
    const { options } = ctx;
    const who = { ...candidate, normalized: username };
    if (plan.changes.length === 0) {
      return UserOutcome.UpToDate({ who, plan, how, ownerUnchecked });
    }
    const violations = limitViolations(plan.changes);
    if (violations.length > 0) {
      return UserOutcome.TooLong({
        who,
        plan,
        how,
        violations,
        ownerUnchecked,
      });
    }
    const refused = yield* refusal;
    if (refused !== undefined) return refused;
    const pending = UserOutcome.Planned({ who, plan, how });
    if (!options.apply) return pending;
    const intent = rowOf(pending).entry;
    if (!(yield* ctx.operatorAccepts(intent, plan))) {
      return UserOutcome.Declined({ who, action: "UPDATE", plan });
    }
    const journal = yield* Journal;
    const written = yield* ctx.ledger.partly(
      journal.write(
        writeKey(candidate),
        intent,
        applyChanges(username, plan.changes),
      ),
    );
    if (written._tag === "Partial") {
      const { partial } = written;
      // The profile update went through: the row keeps its fields and
      // their before values, so `revert` can put them back.
      return UserOutcome.PartlyWritten({
        who,
        plan: {
          changes: plan.changes.filter((c) =>
            partial.written.includes(c.field)
          ),
          skipped: plan.skipped,
        },
        how,
        written: partial.written,
        error: partial.error.message,
      });
    }
    const { stored, emailRequested } = written.applied;
    const mismatches = Option.match(stored, {
      onNone: () => [],
      onSome: (stored) => verifyProfile(plan.changes, stored),
    });
    return mismatches.length > 0
      ? UserOutcome.VerifyFailed({ who, plan, how, mismatches, emailRequested })
      : UserOutcome.Applied({ who, plan, how, emailRequested });
  });

/** Who the matching looks for; the leavers step matches the same way. */
export const seekerOf = (
  ctx: RunContext,
  candidate: UserCandidate,
): Seeker => ({
  moodleId: candidate.user.id,
  username: candidate.normalized,
  email: candidate.desired.email,
  usernameShared: ctx.collisions.has(candidate.normalized.toLowerCase()),
  emailShared: ctx.emailsShared.has(
    candidate.desired.email.trim().toLowerCase(),
  ),
});

/** The changes a found account needs, under the field policies. */
const planFor = (
  ctx: RunContext,
  desired: DesiredProfile,
  account: ForumAccount,
) =>
  Effect.gen(function* () {
    const { user } = account;
    const current = {
      // Not looked up: the policy cannot change it, so take it as equal.
      ...heldValues(user, account.email ?? desired.email),
      pendingEmails: [] as ReadonlyArray<string>,
    };
    const editable = editableFields(user);
    const diffOptions = { force: ctx.options.force };
    const plan = withoutSharedEmail(
      diffProfile(desired, current, ctx.settings.fields, editable, diffOptions),
      ctx.emailsShared,
    );
    if (!plan.changes.some((c) => c.field === "email")) return plan;
    const pending = account.pendingEmails ??
      (yield* pendingEmails(user.username));
    return diffProfile(
      desired,
      { ...current, pendingEmails: pending },
      ctx.settings.fields,
      editable,
      diffOptions,
    );
  });
