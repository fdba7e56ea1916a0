/**
 * What the profile sync made of each Moodle user, as the group planner
 * needs it: the forum account it found (and may write), or why it refused
 * the user, in the profile row's own words. Pure.
 */
import type { AuditEntry } from "../audit/AuditLog.ts";
import type { UserOutcome } from "../sync/UserOutcome.ts";
import { rowOf } from "../sync/words.ts";
import type { AccountVerdict } from "./model.ts";

/** Who a membership row is about: a Moodle user's columns. */
export type Identity = Pick<
  AuditEntry,
  | "originalUsername"
  | "normalizedUsername"
  | "fullname"
  | "email"
  | "location"
  | "moodleId"
>;

export interface MappedUser {
  readonly moodleId: number;
  readonly verdict: AccountVerdict;
  readonly identity: Identity;
}

const refused = (
  outcome: UserOutcome,
  kind: Extract<AccountVerdict, { _tag: "Refused" }>["kind"],
  username: string | undefined,
): AccountVerdict => ({
  _tag: "Refused",
  kind,
  message: rowOf(outcome).entry.message,
  username,
});

/** The forum name a refused user's account would have, by username. */
const guessedName = (outcome: UserOutcome): string | undefined =>
  outcome.who._tag === "User" ? outcome.who.normalized : undefined;

/**
 * A user's verdict. An account is only given for a user the profile sync
 * matched and would write; a user it refused or failed points at the
 * account its name would match, so that account is never removed for it.
 */
export const verdictOf = (outcome: UserOutcome): AccountVerdict => {
  switch (outcome._tag) {
    case "UpToDate":
    case "TooLong":
    case "Planned":
    case "PartlyWritten":
    case "VerifyFailed":
    case "Applied":
      return {
        _tag: "Account",
        username: outcome.who.normalized,
        moodleUsername: outcome.who.username,
        ownerUnchecked: outcome.ownerUnchecked,
      };
    case "Created":
    case "CreatedNotKept":
    case "CreatedThenFailed":
      return {
        _tag: "Account",
        username: outcome.creation.created.user.username,
        moodleUsername: outcome.who.username,
      };
    case "Excluded":
      return refused(outcome, "Excluded", guessedName(outcome));
    case "Collision":
      return refused(outcome, "Collision", guessedName(outcome));
    case "ForeignAccount":
      return refused(outcome, "ForeignAccount", outcome.account.user.username);
    case "Missing":
    case "CreationPlanned":
    case "CreationRefused":
      return refused(outcome, "NotFound", undefined);
    case "Malformed":
    case "NoUsername":
      return refused(outcome, "Unreadable", undefined);
    case "Declined":
    case "CreatePending":
    case "Completing":
    case "NotWritten":
      return refused(outcome, "Skipped", guessedName(outcome));
    case "Failed":
    case "Crashed":
      return refused(outcome, "Failed", guessedName(outcome));
  }
};

/** A user's mapping for groups, or nothing when the record has no id. */
export const mappedUser = (
  outcome: UserOutcome,
  entry: AuditEntry,
): MappedUser | undefined =>
  entry.moodleId === undefined ? undefined : {
    moodleId: entry.moodleId,
    verdict: verdictOf(outcome),
    identity: {
      originalUsername: entry.originalUsername,
      normalizedUsername: entry.normalizedUsername,
      fullname: entry.fullname,
      email: entry.email,
      location: entry.location,
      moodleId: entry.moodleId,
    },
  };
