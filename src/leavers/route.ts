/**
 * Who leaves the profile sync for the leavers step, and what the step is
 * told of the rest of the list. Pure, but for the note-taker's map.
 */
import type { Settings } from "../config/Settings.ts";
import type { DeprovisionPolicy } from "../domain/deprovision.ts";
import type { DiscourseUser } from "../discourse/schema.ts";
import { Effect } from "effect";
import type { Candidate, UserCandidate } from "../sync/candidate.ts";
import type { ForumAccount } from "../sync/fetchDiscourse.ts";
import type { Classified } from "../sync/classify.ts";
import type { MoodleUserState } from "./model.ts";

/** A suspended forum account the profile sync matched, by Moodle id. */
export type SuspendedAccounts = Map<number, DiscourseUser>;

/**
 * With `suspendedInMoodle: "suspend"`, users suspended in Moodle leave the
 * profile sync for this step: their one row is the suspension's.
 */
export const routeLeavers = (
  classified: ReadonlyArray<Classified>,
  policy: DeprovisionPolicy,
): {
  readonly profile: ReadonlyArray<Classified>;
  readonly suspended: ReadonlyArray<UserCandidate>;
} => {
  const leaves = (c: Classified) =>
    policy.suspendedInMoodle === "suspend" && c._tag === "NeedsForum" &&
    c.candidate.user.suspended === true;
  return {
    profile: classified.filter((c) => !leaves(c)),
    suspended: classified.flatMap((c) =>
      leaves(c) && c._tag === "NeedsForum" ? [c.candidate] : []
    ),
  };
};

/** The `exclude.suspended` rule, unless such users are this step's. */
export const excludesSuspended = (settings: Settings): boolean =>
  settings.exclude.suspended &&
  settings.deprovision.suspendedInMoodle !== "suspend";

/** What the plan needs of every listed user; malformed records count too. */
export const listedUsers = (
  candidates: ReadonlyArray<Candidate>,
): ReadonlyArray<MoodleUserState> =>
  candidates.flatMap((c) => {
    if (c._tag === "Malformed") {
      return c.record.id === undefined
        ? []
        : [{ id: c.record.id, username: "", suspended: false }];
    }
    return [{
      id: c.user.id,
      username: c.user.username ?? "",
      suspended: c.user.suspended === true,
    }];
  });

/**
 * The profile sync's `accountFound`: keeps the suspended accounts it
 * matched, where reactivations come from.
 */
export const noteSuspended =
  (into: SuspendedAccounts) =>
  (moodleId: number, account: ForumAccount): Effect.Effect<void> =>
    Effect.sync(() => {
      if (account.user.suspended_till) into.set(moodleId, account.user);
    });
