/**
 * Which forum accounts a run suspends or reactivates, decided from what was
 * read. Pure. Suspending is the one thing this sync does that locks people
 * out, so every doubt here resolves to "leave the account as it is": a
 * partial view of Moodle never suspends anyone as gone, a shrunken Moodle
 * list stops the gone-user check altogether, and only our own suspensions
 * are ever lifted.
 */

import type {
  AbsenceUpdate,
  ForumAccountState,
  GoneCheck,
  LeaverRefusal,
  LeaversPlan,
  LeaversPlanInput,
  MoodleUserState,
  Reactivation,
  RefusalKind,
  Suspension,
  SuspensionCause,
} from "./model.ts";

/** Moodle lists shorter than this share of the store's users are not trusted. */
export const shrinkGuardPercent = 90;
/** Full lists in a row a user must be missing from before counting as gone. */
export const absencesBeforeGone = 2;

const isSuspendedNow = (account: ForumAccountState, now: Date): boolean =>
  account.suspendedTill !== undefined &&
  Date.parse(account.suspendedTill) > now.getTime();

const isoDate = (now: Date) => now.toISOString().slice(0, 10);

/** Why the account must not be suspended, or undefined. */
const suspensionRefusal = (
  account: ForumAccountState,
  exclusion: string | undefined,
  input: LeaversPlanInput,
): { kind: RefusalKind; message: string } | undefined => {
  if (exclusion !== undefined) {
    return { kind: "Excluded", message: `not suspended: ${exclusion}` };
  }
  if (account.username.toLowerCase() === input.apiUser.toLowerCase()) {
    return {
      kind: "ApiUser",
      message:
        "not suspended: it is the account the sync works as (discourse.apiUser)",
    };
  }
  if (account.staff) {
    return {
      kind: "Staff",
      message:
        "not suspended: staff accounts (admins, moderators) are never suspended by the sync; do it by hand if it is meant",
    };
  }
  if (isSuspendedNow(account, input.now)) {
    return {
      kind: "AlreadySuspended",
      message:
        `already suspended until ${account.suspendedTill}: nothing to do`,
    };
  }
  return undefined;
};

/** The Moodle list cannot be trusted to say who is gone. */
const shrinkMessage = (listed: number, known: number) =>
  `the Moodle list holds ${listed} users, fewer than ${shrinkGuardPercent}% of the ${known} the state store knows, so no account was suspended as gone from Moodle. A token that lost a capability or a changed criterion looks like this: check the web service user in Moodle. Once the list is whole again, the next run carries on`;

const goneCheckOf = (input: LeaversPlanInput, shrunk: boolean): GoneCheck => {
  if (input.policy.goneFromMoodle === "off") return { _tag: "Off" };
  if (input.store === undefined) {
    return {
      _tag: "NoStore",
      message:
        'deprovision.goneFromMoodle is "suspend", but without the state store the sync cannot know who left Moodle: no account was suspended as gone. Configure the state store, or set goneFromMoodle to "off"',
    };
  }
  if (input.runKind === "partial") {
    return {
      _tag: "PartialRun",
      message:
        "gone users are only looked for in runs over the whole Moodle list, not with --user or a batch",
    };
  }
  if (shrunk) {
    return {
      _tag: "ListShrunk",
      message: shrinkMessage(input.moodleUsers.length, input.store.length),
    };
  }
  return { _tag: "Done" };
};

export function planLeavers(input: LeaversPlanInput): LeaversPlan {
  const { policy, now } = input;
  const suspensions: Suspension[] = [];
  const reactivations: Reactivation[] = [];
  const refusals: LeaverRefusal[] = [];
  const storeById = new Map(
    (input.store ?? []).map((link) => [link.moodleId, link]),
  );

  const consider = (
    moodleId: number,
    wanted: "suspend" | "reactivate",
    decide: (account: ForumAccountState) => void,
  ) => {
    const found = input.accounts.get(moodleId);
    // No forum account: nothing to suspend or reactivate, nothing to say.
    if (found === undefined) return;
    if (found._tag === "Refused") {
      refusals.push({
        moodleId,
        forumUsername: undefined,
        wanted,
        kind: "AccountRefused",
        message: found.message,
      });
      return;
    }
    decide(found.account);
  };

  const suspend = (
    user: { readonly id: number; readonly username: string },
    cause: SuspensionCause,
  ) =>
    consider(user.id, "suspend", (account) => {
      const refusal = suspensionRefusal(
        account,
        input.excluded.get(user.id),
        input,
      );
      if (refusal !== undefined) {
        refusals.push({
          moodleId: user.id,
          forumUsername: account.username,
          wanted: "suspend",
          ...refusal,
        });
        return;
      }
      suspensions.push({
        moodleId: user.id,
        moodleUsername: user.username,
        forumUserId: account.id,
        forumUsername: account.username,
        cause,
        message: cause._tag === "Gone"
          ? `absent from Moodle since ${cause.since}`
          : "suspended in Moodle",
      });
    });

  const reactivate = (user: MoodleUserState) =>
    consider(user.id, "reactivate", (account) => {
      if (!isSuspendedNow(account, now)) return;
      const refuse = (kind: RefusalKind, message: string) =>
        refusals.push({
          moodleId: user.id,
          forumUsername: account.username,
          wanted: "reactivate",
          kind,
          message,
        });
      const exclusion = input.excluded.get(user.id);
      if (exclusion !== undefined) {
        return refuse("Excluded", `not reactivated: ${exclusion}`);
      }
      const ours = storeById.get(user.id)?.suspendedByUs === true ||
        account.suspendReason === policy.reason;
      if (!ours) {
        return refuse(
          "NotOurs",
          `not reactivated: suspended by someone else (reason: ${
            JSON.stringify(account.suspendReason ?? "")
          }); the sync only lifts its own suspensions`,
        );
      }
      reactivations.push({
        moodleId: user.id,
        moodleUsername: user.username,
        forumUserId: account.id,
        forumUsername: account.username,
        message: "active again in Moodle",
      });
    });

  for (const user of input.moodleUsers) {
    if (user.suspended) {
      if (policy.suspendedInMoodle === "suspend") {
        suspend(user, { _tag: "SuspendedInMoodle" });
      }
    } else if (policy.reactivate) {
      reactivate(user);
    }
  }

  const listed = new Set(input.moodleUsers.map((user) => user.id));
  const known = input.store?.length ?? 0;
  // Whole numbers: 0.9 * 70 is 63.00000000000001, which would distrust 63.
  const shrunk = input.moodleUsers.length * 100 < shrinkGuardPercent * known;
  const goneCheck = goneCheckOf(input, shrunk);
  // Absences only count from lists that could show the user: a partial or
  // shrunken list would bring honest users closer to suspension.
  const trustedList = input.runKind === "full" && !shrunk;
  const absenceUpdates: AbsenceUpdate[] = [];
  for (const link of trustedList ? input.store ?? [] : []) {
    if (listed.has(link.moodleId)) {
      if (link.absences > 0) {
        absenceUpdates.push({
          moodleId: link.moodleId,
          absences: 0,
          absentSince: undefined,
        });
      }
      continue;
    }
    const absence = {
      moodleId: link.moodleId,
      absences: link.absences + 1,
      absentSince: link.absentSince ?? isoDate(now),
    };
    absenceUpdates.push(absence);
    if (goneCheck._tag === "Done" && absence.absences >= absencesBeforeGone) {
      suspend(
        { id: link.moodleId, username: link.moodleUsername },
        { _tag: "Gone", since: absence.absentSince },
      );
    }
  }

  return {
    suspensions,
    reactivations,
    refusals,
    goneCheck,
    exitRemovalsHeld: goneCheck._tag === "ListShrunk",
    absenceUpdates,
  };
}
