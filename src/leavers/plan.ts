/**
 * Which forum accounts a run suspends or reactivates, decided from what was
 * read. Pure. Suspending is the one thing this sync does that locks people
 * out, so every doubt here resolves to "leave the account as it is": a
 * partial view of Moodle never suspends anyone as gone, a shrunken Moodle
 * list stops the gone-user check altogether, and only our own suspensions
 * are ever lifted.
 */

import type {
  ForumAccountState,
  GoneCheck,
  LeaverRefusal,
  LeaversPlan,
  LeaversPlanInput,
  MoodleUserState,
  Reactivation,
  RefusalKind,
  StoredLink,
  Suspension,
  SuspensionCause,
} from "./model.ts";

/** Moodle lists shorter than this share of the store's users are not trusted. */
export const shrinkGuardPercent = 90;
/** Full lists in a row a user must be missing from before counting as gone. */
export const absencesBeforeGone = 2;

/** Discourse keeps `suspended_till` after it passes: only a future one counts. */
export const isSuspendedNow = (
  account: Pick<ForumAccountState, "suspendedTill">,
  now: Date,
): boolean =>
  account.suspendedTill !== undefined &&
  Date.parse(account.suspendedTill) > now.getTime();

const goneMessage = (cause: Extract<SuspensionCause, { _tag: "Gone" }>) =>
  cause.lastSeenAt === undefined
    ? `absent from the last ${cause.absentFullLists} full Moodle lists`
    : `absent from Moodle since ${cause.lastSeenAt.slice(0, 10)}`;

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

const goneCheckOf = (
  input: Pick<LeaversPlanInput, "policy" | "store" | "runKind" | "moodleUsers">,
  shrunk: boolean,
): GoneCheck => {
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
      message: shrinkMessage(input.moodleUsers.length, input.store.size),
    };
  }
  return { _tag: "Done" };
};

/** One account's verdict; undefined when there is nothing to do or say. */
type Decision =
  | { readonly _tag: "Suspend"; readonly suspension: Suspension }
  | { readonly _tag: "Reactivate"; readonly reactivation: Reactivation }
  | { readonly _tag: "Refuse"; readonly refusal: LeaverRefusal }
  | undefined;

const refuse = (
  moodleId: number,
  account: ForumAccountState | undefined,
  wanted: "suspend" | "reactivate",
  kind: RefusalKind,
  message: string,
): Decision => ({
  _tag: "Refuse",
  refusal: {
    moodleId,
    forumUsername: account?.username,
    wanted,
    kind,
    message,
  },
});

/** The forum account to act on, or the matching's refusal. */
const accountOf = (
  moodleId: number,
  wanted: "suspend" | "reactivate",
  input: LeaversPlanInput,
): ForumAccountState | Decision => {
  const found = input.accounts.get(moodleId);
  // No forum account: nothing to suspend or reactivate, nothing to say.
  if (found === undefined) return undefined;
  return found._tag === "Refused"
    ? refuse(moodleId, undefined, wanted, "AccountRefused", found.message)
    : found.account;
};

const isAccount = (
  value: ForumAccountState | Decision,
): value is ForumAccountState => value !== undefined && !("_tag" in value);

function decideSuspension(
  user: { readonly id: number; readonly username: string | undefined },
  cause: SuspensionCause,
  input: LeaversPlanInput,
): Decision {
  const account = accountOf(user.id, "suspend", input);
  if (!isAccount(account)) return account;
  const refusal = suspensionRefusal(
    account,
    input.excluded.get(user.id),
    input,
  );
  if (refusal !== undefined) {
    return refuse(user.id, account, "suspend", refusal.kind, refusal.message);
  }
  return {
    _tag: "Suspend",
    suspension: {
      moodleId: user.id,
      moodleUsername: user.username,
      forumUserId: account.id,
      forumUsername: account.username,
      cause,
      message: cause._tag === "Gone"
        ? goneMessage(cause)
        : "suspended in Moodle",
    },
  };
}

function decideReactivation(
  user: MoodleUserState,
  suspendedByUs: boolean,
  input: LeaversPlanInput,
): Decision {
  const account = accountOf(user.id, "reactivate", input);
  if (!isAccount(account)) return account;
  if (!isSuspendedNow(account, input.now)) return undefined;
  const exclusion = input.excluded.get(user.id);
  if (exclusion !== undefined) {
    return refuse(
      user.id,
      account,
      "reactivate",
      "Excluded",
      `not reactivated: ${exclusion}`,
    );
  }
  // Ours: recorded in the store, or carrying the reason only we write.
  if (!suspendedByUs && account.suspendReason !== input.policy.reason) {
    return refuse(
      user.id,
      account,
      "reactivate",
      "NotOurs",
      `not reactivated: suspended by someone else (reason: ${
        JSON.stringify(account.suspendReason ?? "")
      }); the sync only lifts its own suspensions`,
    );
  }
  return {
    _tag: "Reactivate",
    reactivation: {
      moodleId: user.id,
      moodleUsername: user.username,
      forumUserId: account.id,
      forumUsername: account.username,
      message: "active again in Moodle",
    },
  };
}

/** Whole numbers: 0.9 * 70 is 63.00000000000001, which would distrust 63. */
const listShrunk = (
  input: Pick<LeaversPlanInput, "moodleUsers" | "store">,
): boolean =>
  input.moodleUsers.length * 100 <
    shrinkGuardPercent * (input.store?.size ?? 0);

/**
 * The store's links this run counts as gone: none unless the gone check runs
 * (on, with a store, a full and trusted list). The runner reads their
 * accounts before planning; planning them needs nothing else.
 */
export const goneLinks = (
  input: Omit<LeaversPlanInput, "accounts" | "excluded">,
): ReadonlyArray<StoredLink & { readonly absentFullLists: number }> => {
  if (goneCheckOf(input, listShrunk(input))._tag !== "Done") return [];
  const listed = new Set(input.moodleUsers.map((user) => user.id));
  return [...(input.store?.values() ?? [])].flatMap((link) => {
    const absentFullLists = link.absentFullLists + 1;
    // One we already suspended needs no read and no row every night; if
    // someone lifted it since, that was their call.
    return listed.has(link.moodleId) ||
        absentFullLists < absencesBeforeGone ||
        link.suspendedByUsAt !== undefined
      ? []
      : [{ ...link, absentFullLists }];
  });
};

export function planLeavers(input: LeaversPlanInput): LeaversPlan {
  const { policy } = input;
  const store = input.store ?? new Map<number, StoredLink>();
  const decisions: Decision[] = input.moodleUsers.map((user) =>
    user.suspended
      ? policy.suspendedInMoodle === "suspend"
        ? decideSuspension(user, { _tag: "SuspendedInMoodle" }, input)
        : undefined
      : policy.reactivate
      ? decideReactivation(
        user,
        store.get(user.id)?.suspendedByUsAt !== undefined,
        input,
      )
      : undefined
  );

  const shrunk = listShrunk(input);
  const goneCheck = goneCheckOf(input, shrunk);
  for (const link of goneLinks(input)) {
    decisions.push(decideSuspension(
      { id: link.moodleId, username: undefined },
      {
        _tag: "Gone",
        absentFullLists: link.absentFullLists,
        lastSeenAt: link.lastSeenAt,
      },
      input,
    ));
  }

  return {
    suspensions: decisions.flatMap((d) =>
      d?._tag === "Suspend" ? [d.suspension] : []
    ),
    reactivations: decisions.flatMap((d) =>
      d?._tag === "Reactivate" ? [d.reactivation] : []
    ),
    refusals: decisions.flatMap((d) => d?._tag === "Refuse" ? [d.refusal] : []),
    goneCheck,
    exitRemovalsHeld: goneCheck._tag === "ListShrunk",
    recordFullList: input.runKind === "full" && !shrunk,
  };
}
