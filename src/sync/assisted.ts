/**
 * A state-assisted run's decisions, pure: whether the store may be used,
 * which users' profiles must be read one by one, and which outcomes the
 * store may remember. The store is a cache: whenever it and the forum's
 * bulk reads disagree, the profile is read and the forum's values count.
 */
import type { Settings } from "../config/Settings.ts";
import { sameUsername } from "../discourse/Discourse.ts";
import type { UserCard } from "../discourse/schema.ts";
import type { StateStoreUnavailable } from "../state/errors.ts";
import type { SiteStatus } from "../state/open.ts";
import {
  type ForumSnapshot,
  profileHash,
  type StoredUser,
} from "../state/Store.ts";
import type { DesiredProfile } from "./profile.ts";
import type { UserOutcome } from "./UserOutcome.ts";

/** How a run reads the forum, and why when it reads every profile. */
export type ReadPlan =
  | { readonly _tag: "Assisted" }
  | {
    readonly _tag: "Full";
    readonly why: string;
    /** Said as a warning: the store was meant to be used and cannot be. */
    readonly warn: boolean;
  };

/** What the run found of its store before its first user. */
export type StoreFound =
  | { readonly _tag: "NotUsed" }
  | { readonly _tag: "Unavailable"; readonly error: StateStoreUnavailable }
  | {
    readonly _tag: "Open";
    readonly path: string;
    readonly status: SiteStatus;
    readonly entries: number;
  };

const full = (why: string, warn = false): ReadPlan => ({
  _tag: "Full",
  why,
  warn,
});

export const chooseReads = (
  store: StoreFound,
  options: { readonly full: boolean; readonly force: boolean },
): ReadPlan => {
  switch (store._tag) {
    case "NotUsed":
      return full("no state store");
    case "Unavailable":
      return store.error.reason === "missing"
        ? full(
          `no state store at ${store.error.path} yet (the first --apply run creates it)`,
        )
        : full(store.error.message, true);
    case "Open":
      break;
  }
  if (options.full) return full("--full");
  if (options.force) return full("--force-recreate re-sends every field");
  if (store.status._tag === "OtherPairs") {
    const pairs = store.status.pairs.map((pair) =>
      `${pair.moodleEndpoint} -> ${pair.discourseUrl}`
    ).join(", ");
    return full(
      `the state store ${store.path} holds only other sites' data (${pairs}): none of it is used here; this forum's entries start with this run`,
      true,
    );
  }
  return store.entries === 0
    ? full(`the state store ${store.path} knows no user of this forum yet`)
    : { _tag: "Assisted" };
};

/** The fields a desired profile is fingerprinted by. */
export type DesiredFields = Pick<
  DesiredProfile,
  "name" | "location" | "bio" | "email"
>;

type HashSettings = Pick<Settings, "fields" | "match">;

/**
 * The fingerprint of what the run would make true: the desired fields and
 * the settings that decide what is written. A changed policy or match mode
 * therefore reads every user once. The email counts only where it is synced,
 * and as the forum compares it (trimmed, lower case).
 */
export const desiredHash = (
  desired: DesiredFields,
  settings: HashSettings,
): string =>
  profileHash({
    name: desired.name,
    location: desired.location,
    bio: desired.bio,
    email: settings.fields.email === "overwrite"
      ? desired.email.trim().toLowerCase()
      : "",
    policies: [
      settings.fields.name,
      settings.fields.location,
      settings.fields.bio,
      settings.fields.email,
    ].join(","),
    match: settings.match,
  });

/**
 * Whether an email-only change may skip the profile read: only where no
 * match needs its owner checked before a write (see `needsOwnershipCheck`),
 * so the account the store knows is the one a full run would write.
 */
const emailOnlyAllowed = (
  settings: HashSettings & {
    readonly discourse: Pick<Settings["discourse"], "ssoSecret">;
  },
): boolean =>
  settings.fields.email === "overwrite" &&
  (settings.match === "external_id" ||
    (settings.match === "username" &&
      settings.discourse.ssoSecret === undefined));

/** What bulk reads show of an account: its card and its primary email. */
export const snapshotOf = (card: UserCard, email: string): ForumSnapshot => ({
  name: card.name,
  location: card.location,
  bioExcerpt: card.bio_excerpt,
  email,
});

/** The card bulk reads showed when the entry was written. */
export const storedCard = (entry: StoredUser): UserCard => ({
  id: entry.forumId,
  username: entry.forumUsername,
  name: entry.snapshot.name,
  location: entry.snapshot.location,
  bio_excerpt: entry.snapshot.bioExcerpt,
});

/** Whether a card shows the account as the entry remembers it. */
export const sameCard = (entry: StoredUser, card: UserCard): boolean => {
  const stored = storedCard(entry);
  return card.username === stored.username && card.name === stored.name &&
    card.location === stored.location &&
    card.bio_excerpt === stored.bio_excerpt;
};

const snapshotFields: ReadonlyArray<
  readonly [keyof ForumSnapshot, string]
> = [
  ["name", "name"],
  ["location", "location"],
  ["bioExcerpt", "bio"],
  ["email", "email"],
];

/** Why a user's profile is read one by one in an assisted run. */
export type ReadReason =
  | { readonly _tag: "New" }
  | { readonly _tag: "MoodleChanged" }
  /**
   * Only Moodle's email changed, and the forum is as the store left it: the
   * email is planned from `emails.json` alone, without the profile.
   */
  | { readonly _tag: "EmailChanged" }
  | { readonly _tag: "ForumChanged"; readonly fields: ReadonlyArray<string> }
  | { readonly _tag: "Renamed"; readonly from: string; readonly to: string }
  | { readonly _tag: "Gone"; readonly forumId: number };

export type UserReads =
  | { readonly _tag: "Unchanged" }
  | { readonly _tag: "Read"; readonly reason: ReadReason };

const read = (reason: ReadReason): UserReads => ({ _tag: "Read", reason });

/**
 * Whether the store and this run's bulk reads agree for one user: the same
 * account under the same name, the same forum values as when it was last in
 * sync, and the same desired profile. Anything else reads the profile.
 */
export const compareUser = (input: {
  readonly entry: StoredUser | undefined;
  readonly desired: DesiredFields;
  readonly settings: Parameters<typeof emailOnlyAllowed>[0];
  readonly card: UserCard | undefined;
  /** The primary email bulk reads show; "" when email is not synced. */
  readonly email: string | undefined;
  /** The forum username matching by username would look up. */
  readonly username: string;
}): UserReads => {
  const { entry, card } = input;
  if (entry === undefined) return read({ _tag: "New" });
  if (card === undefined) return read({ _tag: "Gone", forumId: entry.forumId });
  if (card.username !== entry.forumUsername) {
    return read({
      _tag: "Renamed",
      from: entry.forumUsername,
      to: card.username,
    });
  }
  // Not in the admin list as read for this batch: the profile read decides.
  if (input.email === undefined) {
    return read({ _tag: "Gone", forumId: entry.forumId });
  }
  const now = snapshotOf(card, input.email);
  const changed = snapshotFields.filter(([key]) =>
    now[key] !== entry.snapshot[key]
  ).map(([, field]) => field);
  if (changed.length > 0) {
    return read({ _tag: "ForumChanged", fields: changed });
  }
  const { desired, settings } = input;
  const sameAccountName = settings.match !== "username" ||
    sameUsername(entry.forumUsername, input.username);
  if (!sameAccountName) return read({ _tag: "MoodleChanged" });
  if (desiredHash(desired, settings) === entry.desiredHash) {
    return { _tag: "Unchanged" };
  }
  // The store's hash with the forum's email for Moodle's: equal when the
  // email is all that changed since the user was last in step.
  const onlyEmail = emailOnlyAllowed(settings) &&
    desiredHash({ ...desired, email: entry.snapshot.email }, settings) ===
      entry.desiredHash;
  return read({ _tag: onlyEmail ? "EmailChanged" : "MoodleChanged" });
};

/** The line an assisted run prints for a user it reads because of the forum. */
export const forumDisagrees = (
  username: string,
  reason: ReadReason,
): string | undefined => {
  switch (reason._tag) {
    case "ForumChanged":
      return `${username}: the forum's ${
        reason.fields.join(", ")
      } changed since the last run; the profile is read and the forum's values count`;
    case "Renamed":
      return `forum account "${reason.from}" is now "${reason.to}"; the profile is read as in a full run`;
    case "Gone":
      return `${username}: forum account ${reason.forumId} is not in the bulk reads any more; the profile is read as in a full run`;
    default:
      return undefined;
  }
};

/**
 * Whether the store may remember this outcome as in sync: nothing left to
 * write. An email change already requested counts (the confirmation is the
 * user's); one held back because other Moodle users share the address does
 * not, since it depends on those users.
 */
export const isSettled = (
  outcome: UserOutcome,
  emailsShared: ReadonlyMap<string, unknown>,
): boolean => {
  if (outcome._tag !== "UpToDate" && outcome._tag !== "Applied") return false;
  const emailHeldBack = outcome.plan.skipped.some((s) => s.field === "email");
  return !(emailHeldBack &&
    emailsShared.has(outcome.who.desired.email.trim().toLowerCase()));
};
