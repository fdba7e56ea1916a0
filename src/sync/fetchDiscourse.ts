import { Effect } from "effect";
import { Discourse, type DiscourseError } from "../discourse/Discourse.ts";
import type { DiscourseUser } from "../discourse/schema.ts";
import { adminPageSize, type ForumEmails } from "./forumEmails.ts";

/** A forum account as the diff needs it: the profile and the primary email. */
export interface ForumAccount {
  readonly user: DiscourseUser;
  /** Undefined when the email was not looked up (email sync is off). */
  readonly email: string | undefined;
  /**
   * Addresses awaiting confirmation, when the email lookup brought them
   * (`emails.json` does); undefined means they are read only if needed.
   */
  readonly pendingEmails?: ReadonlyArray<string>;
}

/**
 * How the run reads forum emails. Reading the whole admin list costs one
 * request per 100 forum accounts; looking each user up costs one per user.
 * The forum's accounts come from Moodle, so Moodle's size estimates the list.
 */
export const chooseEmailStrategy = (
  usersToProcess: number,
  moodleUsers: number,
): "bulk" | "per-user" =>
  Math.ceil(moodleUsers / adminPageSize) + 1 < usersToProcess
    ? "bulk"
    : "per-user";

export type EmailSource =
  | { readonly _tag: "none" }
  | {
    readonly _tag: "bulk";
    readonly emails: ForumEmails;
    /** Pending addresses, where an `emails.json` read already brought them. */
    readonly pending?: ReadonlyMap<string, ReadonlyArray<string>>;
  }
  /** Each user's `emails.json`: one request, pending addresses included. */
  | { readonly _tag: "per-user" };

/** A profile read by any route, completed with its primary email. */
export const withEmail = (
  user: DiscourseUser,
  emailSource: EmailSource,
): Effect.Effect<ForumAccount, DiscourseError, Discourse> =>
  Effect.gen(function* () {
    const discourse = yield* Discourse;
    if (emailSource._tag === "none") return { user, email: undefined };
    const key = user.username.toLowerCase();
    const listed = emailSource._tag === "bulk"
      ? yield* emailSource.emails.lookup(key)
      : undefined;
    if (listed !== undefined) {
      const pending = emailSource._tag === "bulk"
        ? emailSource.pending?.get(key)
        : undefined;
      return { user, email: listed, pendingEmails: pending };
    }
    // One emails.json read gives the primary address and the pending ones:
    // a user whose email differs then needs no second read to be planned.
    const emails = yield* discourse.emails(user.username);
    return {
      user,
      email: emails.email,
      pendingEmails: emails.unconfirmed_emails,
    };
  });

/** Pending (unconfirmed) addresses: read only when an email would change. */
export const pendingEmails = (
  username: string,
): Effect.Effect<ReadonlyArray<string>, DiscourseError, Discourse> =>
  Effect.flatMap(
    Discourse,
    (discourse) =>
      Effect.map(discourse.emails(username), (e) => e.unconfirmed_emails),
  );
