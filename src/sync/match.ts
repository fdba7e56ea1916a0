/**
 * Identity: which forum account belongs to a Moodle user. By DiscourseConnect
 * external id (exact: the Moodle id the forum stored at SSO login), by
 * normalised username (a guess) or by exact email (a guess with better odds).
 * Guesses are checked against the account's external id before anything is
 * written to it.
 */
import { Effect, Option } from "effect";
import { Discourse, type DiscourseError } from "../discourse/Discourse.ts";
import type { Settings } from "../config/Settings.ts";
import type { Plan } from "./diff.ts";
import {
  type EmailSource,
  type ForumAccount,
  withEmail,
} from "./fetchDiscourse.ts";

export type MatchMode = Settings["match"];

/** One way of looking an account up, in the order `auto` tries them. */
export type MatchStep = "external_id" | "username" | "email";

/** How the account was found: what the CSV message reports. */
export type MatchedBy =
  | { readonly _tag: "ExternalId"; readonly externalId: string }
  | { readonly _tag: "Username"; readonly username: string }
  | { readonly _tag: "Email"; readonly email: string };

/** What a Moodle user offers to be found by. */
export interface Seeker {
  readonly moodleId: number;
  /** The normalised Discourse username. */
  readonly username: string;
  /** Moodle's address; "" when Moodle gives none. */
  readonly email: string;
  /** Another Moodle user normalises to the same username. */
  readonly usernameShared: boolean;
  /** Another Moodle user has the same address. */
  readonly emailShared: boolean;
}

/**
 * The lookups a mode allows for this user. A username shared with another
 * Moodle user is never guessed (either could own the account), nor is a
 * shared email; an external id is exact, so it is always allowed.
 */
export const matchSteps = (
  mode: MatchMode,
  seeker: Seeker,
): ReadonlyArray<MatchStep> => {
  const byUsername: ReadonlyArray<MatchStep> = seeker.usernameShared
    ? []
    : ["username"];
  const byEmail: ReadonlyArray<MatchStep> =
    seeker.email.trim() === "" || seeker.emailShared ? [] : ["email"];
  switch (mode) {
    case "username":
      return byUsername;
    case "external_id":
      return ["external_id"];
    case "auto":
      return ["external_id", ...byUsername, ...byEmail];
  }
};

/**
 * Lower-case addresses more than one Moodle user has (Moodle allows it with
 * `allowaccountssameemail`), each with those users' usernames in input order:
 * matching by them could pick someone else's account, and a change request
 * for one would go to several people.
 */
export const emailSharers = (
  users: ReadonlyArray<{ readonly username: string; readonly email: string }>,
): ReadonlyMap<string, ReadonlyArray<string>> => {
  const byEmail = new Map<string, Array<string>>();
  for (const { username, email: raw } of users) {
    const email = raw.trim().toLowerCase();
    if (email === "") continue;
    const sharing = byEmail.get(email);
    if (sharing === undefined) byEmail.set(email, [username]);
    else sharing.push(username);
  }
  return new Map([...byEmail].filter(([, sharing]) => sharing.length > 1));
};

/**
 * The plan without an email change to an address other Moodle users share:
 * the forum would send each of them a request for the same address, and at
 * most one can be its owner. The row says why.
 */
export const withoutSharedEmail = (
  plan: Plan,
  sharers: ReadonlyMap<string, ReadonlyArray<string>>,
): Plan => {
  const change = plan.changes.find((c) => c.field === "email");
  const sharing = change && sharers.get(change.after.trim().toLowerCase());
  if (change === undefined || sharing === undefined) return plan;
  return {
    changes: plan.changes.filter((c) => c !== change),
    skipped: [...plan.skipped, {
      field: "email",
      reason: `${change.after.trim()} is shared by Moodle users ${
        sharing.join(", ")
      }: not sent (give each their own address in Moodle)`,
    }],
  };
};

export type Identity =
  | {
    readonly _tag: "Found";
    readonly account: ForumAccount;
    readonly by: MatchedBy;
  }
  | { readonly _tag: "NotFound"; readonly tried: ReadonlyArray<MatchStep> };

export const describeMatch = (by: MatchedBy): string => {
  switch (by._tag) {
    case "ExternalId":
      return `matched by external id ${by.externalId}`;
    case "Username":
      return `matched by username "${by.username}"`;
    case "Email":
      return `matched by email ${by.email}`;
  }
};

const stepNames: { readonly [S in MatchStep]: string } = {
  external_id: "external id",
  username: "username",
  email: "email",
};

/** "external id, username or email", for "no account has its ...". */
export const describeSteps = (steps: ReadonlyArray<MatchStep>): string => {
  const names = steps.map((step) => stepNames[step]);
  return names.length <= 1
    ? names.join("")
    : `${names.slice(0, -1).join(", ")} or ${names[names.length - 1]}`;
};

/**
 * The first step that finds an account. Costs one request per step tried,
 * plus one for the profile after an email hit (the admin list has no bio or
 * location); emails come from `emailSource` as for any account.
 */
export const findForumAccount = (
  seeker: Seeker,
  steps: ReadonlyArray<MatchStep>,
  emailSource: EmailSource,
): Effect.Effect<Identity, DiscourseError, Discourse> =>
  Effect.gen(function* () {
    const discourse = yield* Discourse;
    for (const step of steps) {
      switch (step) {
        case "external_id": {
          const externalId = String(seeker.moodleId);
          const found = yield* discourse.userByExternalId(externalId);
          if (Option.isSome(found)) {
            return {
              _tag: "Found",
              account: yield* withEmail(found.value, emailSource),
              by: { _tag: "ExternalId", externalId },
            } as const;
          }
          break;
        }
        case "username": {
          const found = yield* discourse.userByUsername(seeker.username);
          if (Option.isSome(found)) {
            return {
              _tag: "Found",
              account: yield* withEmail(found.value, emailSource),
              by: { _tag: "Username", username: seeker.username },
            } as const;
          }
          break;
        }
        case "email": {
          const email = seeker.email.trim();
          const rows = (yield* discourse.adminUserPage(1, { email })).filter(
            (row) => row.email.toLowerCase() === email.toLowerCase(),
          );
          // One owner or none: an address is unique among primary emails.
          if (rows.length !== 1) break;
          const found = yield* discourse.userByUsername(rows[0].username);
          if (Option.isSome(found)) {
            return {
              _tag: "Found",
              account: { user: found.value, email: rows[0].email },
              by: { _tag: "Email", email },
            } as const;
          }
          break;
        }
      }
    }
    return { _tag: "NotFound", tried: steps } as const;
  });

/**
 * Whether a guessed match must be checked before writing: only where forum
 * accounts can carry external ids, i.e. DiscourseConnect sites (a `match`
 * other than "username", or `discourse.ssoSecret` set). External-id matches
 * are exact and never need it.
 */
export const needsOwnershipCheck = (
  by: MatchedBy,
  settings: Pick<Settings, "match"> & {
    readonly discourse: Pick<Settings["discourse"], "ssoSecret">;
  },
): boolean =>
  by._tag !== "ExternalId" &&
  (settings.match !== "username" || settings.discourse.ssoSecret !== undefined);

/** Whose account it is, by the external id it carries. */
export type Ownership =
  | { readonly _tag: "Own" }
  /** No SSO record: a local account, or one never logged in through SSO. */
  | { readonly _tag: "Unlinked" }
  | { readonly _tag: "Foreign"; readonly externalId: string };

export const ownershipOf = (
  carried: Option.Option<string>,
  moodleId: number,
): Ownership =>
  Option.match(carried, {
    onNone: (): Ownership => ({ _tag: "Unlinked" }),
    onSome: (externalId): Ownership =>
      externalId.trim() === String(moodleId)
        ? { _tag: "Own" }
        : { _tag: "Foreign", externalId },
  });

/** One `GET /admin/users/{id}.json`: the public profile does not say. */
export const accountOwnership = (
  account: ForumAccount,
  moodleId: number,
): Effect.Effect<Ownership, DiscourseError, Discourse> =>
  Effect.flatMap(
    Discourse,
    (discourse) =>
      Effect.map(
        discourse.externalIdOf(account.user.id),
        (carried) => ownershipOf(carried, moodleId),
      ),
  );

export const foreignAccountMessage = (
  by: MatchedBy,
  account: { readonly user: { readonly username: string } },
  externalId: string,
  moodleId: number,
): string =>
  `not written: forum account "${account.user.username}" (${
    describeMatch(by)
  }) belongs to someone else: its DiscourseConnect external id is ` +
  `${externalId}, not this user's Moodle id ${moodleId}. Rename one of ` +
  `the two in Discourse or Moodle; if the account is in fact this user's, ` +
  `correct its external id in Discourse (Admin > Users > the account)`;
