/**
 * `--create-missing`: forum accounts for Moodle users the forum lacks. On a
 * DiscourseConnect site through `sync_sso`, which binds the account to the
 * Moodle id; elsewhere through `POST /users.json`. Either way the account is
 * read back before it counts as created: Discourse's answers alone prove
 * nothing (`POST /users.json` "succeeds" on a taken address).
 */
import { Data, Effect, Option } from "effect";
import { Discourse, type DiscourseError } from "../discourse/Discourse.ts";
import type { DiscourseUser } from "../discourse/schema.ts";
import type { Settings } from "../config/Settings.ts";
import { limitViolations } from "./apply.ts";
import { diffProfile, type Plan, type Policies } from "./diff.ts";
import { isReservedUsername } from "./normalize.ts";
import type { DesiredProfile } from "./profile.ts";
import { ownershipOf } from "./match.ts";

/** Discourse answered, yet no account exists: nothing to verify or log as made. */
export class AccountNotCreated extends Data.TaggedError("AccountNotCreated")<{
  readonly message: string;
}> {}

export type CreationRoute = "discourse_connect" | "local";

/** A DiscourseConnect secret means the forum's accounts come from SSO. */
export const creationRoute = (
  settings: { readonly discourse: Pick<Settings["discourse"], "ssoSecret"> },
): CreationRoute =>
  settings.discourse.ssoSecret === undefined ? "local" : "discourse_connect";

/**
 * Why `--create-missing` cannot run with these settings, checked before
 * anything is contacted; undefined when it can. Without `--apply` it is the
 * preview (and `--check`) of `--apply --create-missing`.
 */
export const createMissingProblem = (
  settings: Pick<Settings, "match"> & {
    readonly discourse: Pick<Settings["discourse"], "ssoSecret">;
  },
): string | undefined => {
  if (settings.match === "external_id" && creationRoute(settings) === "local") {
    return '--create-missing with match "external_id" needs discourse.ssoSecret (or DISCOURSE_SSO_SECRET): an account made without DiscourseConnect carries no external id, so the next run would not find it and would try to create it again';
  }
  return undefined;
};

const nothingHeld = {
  name: "",
  location: "",
  bio: "",
  email: "",
  pendingEmails: [],
} as const;
const everythingEditable = {
  name: true,
  location: true,
  bio: true,
  email: true,
} as const;

/**
 * What a new account gets from Moodle, as a change from an empty profile.
 * Fields whose policy is "off" are left out, except the email: Discourse
 * cannot create an account without one.
 */
export const creationPlan = (
  desired: DesiredProfile,
  policies: Policies,
): Plan =>
  diffProfile(
    desired,
    nothingHeld,
    { ...policies, email: "overwrite" },
    everythingEditable,
    { force: false },
  );

/** Why this user must not be created, or undefined. Pure. */
export const creationRefusal = (
  input: {
    readonly username: string;
    readonly email: string;
    readonly usernameShared: boolean;
    readonly route: CreationRoute;
    readonly plan: Plan;
  },
): string | undefined => {
  if (isReservedUsername(input.username)) {
    return `not created: "${input.username}" is a username Discourse reserves. Rename the user in Moodle${
      input.route === "discourse_connect"
        ? ", or let them log in through DiscourseConnect: Discourse then picks a free name"
        : ", or create the account by hand in Discourse"
    }`;
  }
  if (input.email.trim() === "") {
    return "not created: Moodle gives no email for this user, and Discourse needs one (give the token's user moodle/user:viewhiddendetails, or set the email in Moodle)";
  }
  if (input.usernameShared && input.route === "local") {
    return `not created: another Moodle user also becomes "${input.username}", and without DiscourseConnect the username is all that links an account to its owner. Rename one in Moodle or exclude it`;
  }
  const tooLong = limitViolations(input.plan.changes);
  if (tooLong.length > 0) return `not created: ${tooLong.join("; ")}`;
  return undefined;
};

const valueOf = (plan: Plan, field: "name" | "location" | "bio") =>
  plan.changes.find((change) => change.field === field)?.after;

/** The account as Discourse holds it once made, read back. */
export interface Created {
  readonly user: DiscourseUser;
  /** DiscourseConnect linked an account that already had this email. */
  readonly linked: boolean;
}

/**
 * The account `sync_sso` would link instead of creating one: the one with
 * this email (Discourse moves its SSO record to the new external id, as at
 * that person's first SSO login). One owned by another external id is refused.
 */
const accountToLink = (
  email: string,
  moodleId: number,
): Effect.Effect<
  Option.Option<string>,
  DiscourseError | AccountNotCreated,
  Discourse
> =>
  Effect.gen(function* () {
    const discourse = yield* Discourse;
    const rows = (yield* discourse.adminUserPage(1, { email })).filter((row) =>
      row.email.toLowerCase() === email.toLowerCase()
    );
    if (rows.length === 0) return Option.none();
    const owner = ownershipOf(
      yield* discourse.externalIdOf(rows[0].id),
      moodleId,
    );
    if (owner._tag === "Foreign") {
      return yield* new AccountNotCreated({
        message: `not created: forum account "${
          rows[0].username
        }" already has ${email} and belongs to external id ${owner.externalId}; DiscourseConnect would move that account to Moodle id ${moodleId}. Correct the address in Moodle, or settle in Discourse whose account it is`,
      });
    }
    return Option.some(rows[0].username);
  });

/**
 * Creates the account and reads it back. On a DiscourseConnect site an
 * account that already has the email is linked rather than duplicated
 * (Discourse's rule), after checking it belongs to nobody else; the check is
 * skipped when matching already looked the email up and found nothing.
 */
export const createAccount = (
  input: {
    readonly moodleId: number;
    readonly username: string;
    readonly email: string;
    readonly plan: Plan;
    readonly route: CreationRoute;
    readonly suppressWelcomeMessage: boolean;
    readonly emailKnownFree: boolean;
  },
): Effect.Effect<
  Created,
  DiscourseError | AccountNotCreated,
  Discourse
> =>
  Effect.gen(function* () {
    const discourse = yield* Discourse;
    const name = valueOf(input.plan, "name");
    if (input.route === "discourse_connect") {
      const externalId = String(input.moodleId);
      const linking = input.emailKnownFree
        ? Option.none<string>()
        : yield* accountToLink(input.email, input.moodleId);
      const location = valueOf(input.plan, "location");
      const bio = valueOf(input.plan, "bio");
      yield* discourse.syncSso({
        external_id: externalId,
        email: input.email,
        username: input.username,
        ...(name === undefined ? {} : { name }),
        ...(bio === undefined ? {} : { bio }),
        ...(location === undefined ? {} : { location }),
        suppress_welcome_message: input.suppressWelcomeMessage,
      });
      const linked = yield* discourse.userByExternalId(externalId);
      if (Option.isNone(linked)) {
        return yield* new AccountNotCreated({
          message:
            `Discourse accepted the DiscourseConnect sync for external id ${externalId}, but no account carries that id afterwards. Check the forum's logs (Admin > Logs > Error Logs)`,
        });
      }
      return { user: linked.value, linked: Option.isSome(linking) };
    }
    yield* discourse.createUser({
      username: input.username,
      email: input.email,
      ...(name === undefined ? {} : { name }),
    });
    const created = yield* discourse.userByUsername(input.username);
    if (Option.isNone(created)) {
      return yield* new AccountNotCreated({
        message:
          `not created: Discourse answered success but no account "${input.username}" exists. It does that when ${input.email} already belongs to another forum account (it hides which): find that account in Admin > Users and rename it, or use match "auto", which finds accounts by email`,
      });
    }
    return { user: created.value, linked: false };
  });

/** What the CSV says about a created account. */
export const createdMessage = (
  route: CreationRoute,
  created: Created,
  moodleId: number,
  suppressWelcomeMessage: boolean,
): string => {
  const username = created.user.username;
  if (route === "local") {
    return `created "${username}": active and approved, no password (the user sets one with "I forgot my password")`;
  }
  return created.linked
    ? `linked the existing account "${username}" (same email, no SSO record) to external id ${moodleId} through DiscourseConnect`
    : `created "${username}" through DiscourseConnect with external id ${moodleId}${
      suppressWelcomeMessage ? ", no welcome message" : ""
    }`;
};
