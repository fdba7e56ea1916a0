/**
 * The data the leavers planner reads and returns: plain values the runner
 * fills from Moodle, the forum and the state store.
 */

import type { DeprovisionPolicy } from "../domain/deprovision.ts";

export type { DeprovisionPolicy };

export interface MoodleUserState {
  readonly id: number;
  readonly username: string;
  readonly suspended: boolean;
}

/**
 * What the state store remembers of one Moodle user: the fields of its
 * `StoredUser` this plan reads, so the runner passes the store's entries as
 * they are.
 */
export interface StoredLink {
  readonly moodleId: number;
  readonly forumId: number;
  readonly forumUsername: string;
  /** Consecutive full Moodle lists without this user, before this run's. */
  readonly absentFullLists: number;
  /** ISO 8601: the last full Moodle list that held this user. */
  readonly lastSeenAt: string | undefined;
  /** ISO 8601: when this tool suspended the forum account, if it did. */
  readonly suspendedByUsAt: string | undefined;
}

export interface ForumAccountState {
  readonly id: number;
  readonly username: string;
  /** Admin or moderator: Discourse refuses to suspend them. */
  readonly staff: boolean;
  /** ISO time; suspended while it lies in the future. */
  readonly suspendedTill: string | undefined;
  readonly suspendReason: string | undefined;
}

/** A Moodle user's forum account, as the profile sync's matching found it. */
export type LeaverAccount =
  | { readonly _tag: "Found"; readonly account: ForumAccountState }
  | { readonly _tag: "Refused"; readonly message: string };

export interface LeaversPlanInput {
  readonly policy: DeprovisionPolicy;
  /** The users this run read from Moodle. */
  readonly moodleUsers: ReadonlyArray<MoodleUserState>;
  /** `full`: the whole Moodle list; `partial`: `--user` or a batch. */
  readonly runKind: "full" | "partial";
  /** By Moodle id; present users by matching, gone users by their store link. No entry: no account. */
  readonly accounts: ReadonlyMap<number, LeaverAccount>;
  /** By Moodle id, as read before this run; undefined without a state store. */
  readonly store: ReadonlyMap<number, StoredLink> | undefined;
  /**
   * By Moodle id, why `exclude` covers the user. Being suspended in Moodle
   * is not an exclusion here: with `suspendedInMoodle` it is the cause.
   */
  readonly excluded: ReadonlyMap<number, string>;
  /** `discourse.apiUser`: the sync never suspends the account it works as. */
  readonly apiUser: string;
  readonly now: Date;
}

export type SuspensionCause =
  | { readonly _tag: "SuspendedInMoodle" }
  | {
    readonly _tag: "Gone";
    /** Full Moodle lists in a row without the user, this run's included. */
    readonly absentFullLists: number;
    /** ISO 8601; undefined when no full list has held the user. */
    readonly lastSeenAt: string | undefined;
  };

interface AccountChange {
  readonly moodleId: number;
  /** Undefined for a gone user: the store keeps only the forum's name. */
  readonly moodleUsername: string | undefined;
  readonly forumUserId: number;
  readonly forumUsername: string;
  readonly message: string;
}
export interface Suspension extends AccountChange {
  readonly cause: SuspensionCause;
}
export type Reactivation = AccountChange;

export type RefusalKind =
  | "Staff"
  | "ApiUser"
  | "Excluded"
  | "AccountRefused"
  | "AlreadySuspended"
  | "NotOurs";

export interface LeaverRefusal {
  readonly moodleId: number;
  readonly forumUsername: string | undefined;
  readonly wanted: "suspend" | "reactivate";
  readonly kind: RefusalKind;
  readonly message: string;
}

/** Whether gone users were looked for, and if not, why. */
export type GoneCheck =
  | { readonly _tag: "Off" }
  | { readonly _tag: "Done" }
  | { readonly _tag: "NoStore"; readonly message: string }
  | { readonly _tag: "PartialRun"; readonly message: string }
  | { readonly _tag: "ListShrunk"; readonly message: string };

export interface LeaversPlan {
  readonly suspensions: ReadonlyArray<Suspension>;
  readonly reactivations: ReadonlyArray<Reactivation>;
  readonly refusals: ReadonlyArray<LeaverRefusal>;
  readonly goneCheck: GoneCheck;
  /** The shrink guard fired: the run must exit 5 even if nothing else failed. */
  readonly exitRemovalsHeld: boolean;
  /**
   * Whether the runner records this list in the store (`markFullListSeen`):
   * only a full list the shrink guard trusts, since a partial or shrunken
   * list would bring users who never left closer to suspension.
   */
  readonly recordFullList: boolean;
}
