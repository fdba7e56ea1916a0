/**
 * How one Moodle user ended: a value the sync's stages return. What the row
 * and the console say of it is worded in one place, `words.ts`.
 */
import { Data, type Option } from "effect";
import type { Candidate, UserCandidate } from "./candidate.ts";
import type { Created, CreationRoute } from "./create.ts";
import type { FieldChange, Plan } from "./diff.ts";
import type { ForumAccount } from "./fetchDiscourse.ts";
import type { MatchedBy, MatchStep } from "./match.ts";
import type { Mismatch } from "./verify.ts";

/**
 * A matched user: `who` carries the forum's username as `normalized`, and
 * `how` says how the account was found.
 */
interface Matched {
  readonly who: UserCandidate;
  readonly plan: Plan;
  readonly how: string;
  /**
   * The account's id when it was guessed on a DiscourseConnect site and its
   * owner not yet checked (nothing was to be written): groups check it
   * before adding the account anywhere.
   */
  readonly ownerUnchecked?: OwnerUnchecked | undefined;
}

/** A guessed account whose owner nobody checked yet. */
export interface OwnerUnchecked {
  readonly accountId: number;
  readonly by: MatchedBy;
}

/** An account this run made, and how. */
export interface Creation {
  readonly route: CreationRoute;
  readonly created: Created;
  readonly suppressWelcomeMessage: boolean;
}

export type UserOutcome = Data.TaggedEnum<{
  /** Moodle sent a record that does not decode. */
  Malformed: { readonly who: Candidate; readonly problem: string };
  /** Moodle hides the username from the token's user. */
  NoUsername: { readonly who: Candidate };
  Excluded: { readonly who: Candidate; readonly reason: string };
  /** Others in Moodle become the same forum username. */
  Collision: {
    readonly who: UserCandidate;
    readonly others: ReadonlyArray<string>;
    /** Set when the user was also not found by any other step. */
    readonly tried: ReadonlyArray<MatchStep> | undefined;
  };
  UpToDate: Matched;
  /** Values over Discourse's length limits: nothing sent. */
  TooLong: Matched & { readonly violations: ReadonlyArray<string> };
  /** The matched account carries another user's external id. */
  ForeignAccount: {
    readonly who: UserCandidate;
    readonly by: MatchedBy;
    readonly account: ForumAccount;
    readonly externalId: string;
  };
  /** Dry-run, and the pending write in --apply: what would be written. */
  Planned: Matched;
  /** The operator said no in --interactive. */
  Declined: {
    readonly who: UserCandidate;
    readonly action: "UPDATE" | "CREATE";
    readonly plan: Plan;
  };
  /** The profile was written, then the email change failed. */
  PartlyWritten: Matched & {
    readonly written: ReadonlyArray<string>;
    readonly error: string;
  };
  VerifyFailed: Matched & {
    readonly mismatches: ReadonlyArray<Mismatch>;
    readonly emailRequested: Option.Option<string>;
  };
  Applied: Matched & { readonly emailRequested: Option.Option<string> };
  /** Not in the forum, and not created by this run. */
  Missing: {
    readonly who: UserCandidate;
    readonly tried: ReadonlyArray<MatchStep>;
    /** Why --create-missing would refuse it. */
    readonly refusal: string | undefined;
    readonly apply: boolean;
  };
  /** Dry-run with --create-missing: --apply would create it. */
  CreationPlanned: {
    readonly who: UserCandidate;
    readonly tried: ReadonlyArray<MatchStep>;
    readonly plan: Plan;
  };
  CreationRefused: { readonly who: UserCandidate; readonly refusal: string };
  /** The pending creation, asked about and journaled before it is sent. */
  CreatePending: { readonly who: UserCandidate; readonly plan: Plan };
  /** The pending write of what creation could not set. */
  Completing: { readonly who: UserCandidate; readonly plan: Plan };
  Created: {
    readonly who: UserCandidate;
    readonly plan: Plan;
    readonly rest: Plan;
    readonly creation: Creation;
  };
  CreatedNotKept: {
    readonly who: UserCandidate;
    readonly plan: Plan;
    readonly creation: Creation;
    readonly mismatches: ReadonlyArray<FieldChange>;
  };
  CreatedThenFailed: {
    readonly who: UserCandidate;
    readonly rest: Plan;
    readonly creation: Creation;
    readonly error: string;
  };
  /** A step failed: the error's own words. */
  Failed: { readonly who: Candidate; readonly message: string };
  /** A second signal came before the user's write was sent. */
  NotWritten: { readonly who: Candidate; readonly message: string };
  /** A defect: a bug, kept to this user. */
  Crashed: { readonly who: Candidate; readonly message: string };
}>;

export const UserOutcome = Data.taggedEnum<UserOutcome>();
