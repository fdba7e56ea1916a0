/**
 * The forum accounts the leavers step acts on: those of users suspended in
 * Moodle, found as the profile sync finds them, and those of gone users,
 * read by the name the state store keeps and checked by id.
 */
import { Effect, Option } from "effect";
import { Discourse } from "../discourse/Discourse.ts";
import type { DiscourseUser } from "../discourse/schema.ts";
import type { AccountLink, ForumSnapshot } from "../state/Store.ts";
import { identity, type UserCandidate } from "../sync/candidate.ts";
import type { RunContext } from "../sync/context.ts";
import {
  accountOwnership,
  findForumAccount,
  foreignAccountMessage,
  matchSteps,
  needsOwnershipCheck,
} from "../sync/match.ts";
import { exclusionReason } from "../sync/select.ts";
import { seekerOf } from "../sync/syncUser.ts";
import type { ForumAccountState, LeaverAccount, StoredLink } from "./model.ts";
import type { LeaverIdentity } from "./words.ts";

export const accountState = (user: DiscourseUser): ForumAccountState => ({
  id: user.id,
  username: user.username,
  staff: user.admin === true || user.moderator === true,
  suspendedTill: user.suspended_till ?? undefined,
  suspendReason: user.suspend_reason ?? undefined,
});

/**
 * A gone user's row: who they were, as the store last knew them. Without the
 * snapshot (the store could not be read again) the row still says who.
 */
export const goneIdentity = (
  link: Pick<AccountLink, "moodleId" | "moodleUsername" | "forumUsername">,
  snapshot: ForumSnapshot | undefined,
): LeaverIdentity => ({
  originalUsername: link.moodleUsername,
  normalizedUsername: link.forumUsername,
  fullname: snapshot?.name ?? "",
  email: snapshot?.email ?? "",
  location: snapshot?.location ?? "",
  moodleId: link.moodleId,
});

export const presentIdentity = (
  who: UserCandidate,
  forumUsername: string | undefined,
): LeaverIdentity => ({
  ...identity(who),
  normalizedUsername: forumUsername ?? who.normalized,
});

export type Lookup =
  | { readonly _tag: "Account"; readonly account: LeaverAccount | undefined }
  | { readonly _tag: "Failed"; readonly message: string };

export const lookupFailed = (message: string): Lookup => ({
  _tag: "Failed",
  message,
});
const lookedUp = (account: LeaverAccount | undefined): Lookup => ({
  _tag: "Account",
  account,
});

/** A Moodle-suspended user's forum account, by the profile sync's rules. */
export const findAccount = (ctx: RunContext, who: UserCandidate) =>
  Effect.gen(function* () {
    const seeker = seekerOf(ctx, who);
    const found = yield* findForumAccount(
      seeker,
      matchSteps(ctx.settings.match, seeker),
      { _tag: "none" },
    );
    if (found._tag === "NotFound") return lookedUp(undefined);
    if (needsOwnershipCheck(found.by, ctx.settings)) {
      const owner = yield* accountOwnership(found.account, who.user.id);
      if (owner._tag === "Foreign") {
        return lookedUp({
          _tag: "Refused",
          message: foreignAccountMessage(
            found.by,
            found.account,
            owner.externalId,
            who.user.id,
          ).replace(/^not written/, "not suspended"),
        });
      }
    }
    return lookedUp({
      _tag: "Found",
      account: accountState(found.account.user),
    });
  });

/**
 * Accounts by the link the state store keeps, one read each: an account
 * renamed or replaced since is not the one linked, so it is refused, never
 * guessed. Gone users are read this way, and users active again whose
 * account the store marks as suspended by us (an assisted run does not
 * read every profile, so the profile sync may not have seen it).
 */
export const readLinkedAccounts = (
  links: ReadonlyArray<StoredLink>,
  wanted: "suspend" | "reactivate",
) =>
  Effect.gen(function* () {
    const discourse = yield* Discourse;
    const not = wanted === "suspend" ? "not suspended" : "not reactivated";
    const accounts = new Map<number, LeaverAccount>();
    for (const link of links) {
      const found = yield* Effect.either(
        discourse.userByUsername(link.forumUsername),
      );
      if (found._tag === "Left") {
        accounts.set(link.moodleId, {
          _tag: "Refused",
          message:
            `${not}: the forum account could not be read: ${found.left.message}`,
        });
      } else if (Option.isSome(found.right)) {
        const user = found.right.value;
        accounts.set(
          link.moodleId,
          user.id === link.forumId
            ? { _tag: "Found", account: accountState(user) }
            : {
              _tag: "Refused",
              message:
                `${not}: the forum account "${user.username}" is id ${user.id}, not the id ${link.forumId} the state store links to this Moodle user (renamed or replaced since): check it by hand`,
            },
        );
      }
    }
    return accounts;
  });

/** Gone users `exclude` covers, by their forum name (no Moodle name is kept). */
export const goneExclusions = (
  ctx: RunContext,
  gone: ReadonlyArray<StoredLink>,
): ReadonlyMap<number, string> => {
  const rules = {
    patterns: [
      ...ctx.settings.exclude.usernames,
      ...ctx.options.excludedByFile,
    ],
    suspended: false,
  };
  return new Map(gone.flatMap((link) => {
    const reason = exclusionReason(
      { id: link.moodleId, username: link.forumUsername },
      rules,
    );
    return reason === undefined ? [] : [[link.moodleId, reason] as const];
  }));
};
