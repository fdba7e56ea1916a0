/**
 * The data the group planner reads and returns: plain values, so the runner
 * can fill them from any client and tests can write them by hand.
 */
import type { OwnerUnchecked } from "../sync/UserOutcome.ts";
import type { GroupMapEntry } from "./settings.ts";

/** A Moodle cohort or course (with its roles) that feeds a group. */
export type GroupSource =
  | { readonly _tag: "Cohort"; readonly cohort: string }
  | {
    readonly _tag: "Course";
    readonly course: string;
    readonly roles?: ReadonlyArray<string> | undefined;
  };

/**
 * The key the runner files a source's read under. Roles are part of it: the
 * same course with other roles is another member list.
 */
export const sourceKey = (source: GroupSource): string =>
  source._tag === "Cohort"
    ? `cohort:${source.cohort}`
    : `course:${source.course}:${
      source.roles === undefined ? "*" : [...source.roles].sort().join(",")
    }`;

export const describeSource = (source: GroupSource): string =>
  source._tag === "Cohort"
    ? `cohort "${source.cohort}"`
    : `course "${source.course}"${
      source.roles === undefined ? "" : ` (roles ${source.roles.join(", ")})`
    }`;

/** A source's members, or why they could not be read (never read as none). */
export type SourceRead =
  | { readonly _tag: "Members"; readonly moodleIds: ReadonlyArray<number> }
  | { readonly _tag: "Failed"; readonly reason: string };

/** What the profile sync's matching made of one Moodle user. */
export type AccountVerdict =
  | {
    readonly _tag: "Account";
    readonly username: string;
    readonly moodleUsername: string;
    /**
     * The account's id when it was guessed on a DiscourseConnect site and
     * its owner is still to be checked before it joins a group.
     */
    readonly ownerUnchecked?: OwnerUnchecked | undefined;
  }
  | {
    readonly _tag: "Refused";
    readonly kind:
      | "Excluded"
      | "Collision"
      | "NotFound"
      | "ForeignAccount"
      | "Unreadable"
      | "Failed"
      | "Skipped";
    /** The profile sync's own wording, so both rows say the same. */
    readonly message: string;
    /** The forum account it points at, when one was found. */
    readonly username?: string | undefined;
  };

/** A managed group as the forum shows it (usernames as the forum spells them). */
export type GroupRead =
  | {
    readonly _tag: "Found";
    /**
     * Undefined until known: the members page does not carry it. The
     * stage reads it before any change is made to the group.
     */
    readonly id: number | undefined;
    readonly automatic: boolean;
    /** Every member, owners included. */
    readonly members: ReadonlyArray<string>;
    readonly owners: ReadonlyArray<string>;
  }
  | { readonly _tag: "Missing" }
  | { readonly _tag: "Failed"; readonly reason: string };

export interface GroupsPlanInput {
  readonly map: ReadonlyArray<GroupMapEntry>;
  /** By `sourceKey`. A source without an entry counts as failed. */
  readonly sources: ReadonlyMap<string, SourceRead>;
  /** By Moodle id; a source member without a verdict was not read this run. */
  readonly accounts: ReadonlyMap<number, AccountVerdict>;
  /** By group name as mapped, lowercased. A group without an entry counts as failed. */
  readonly groups: ReadonlyMap<string, GroupRead>;
  /** Why a forum account must not be touched (exclusions, the API user). */
  readonly untouchable: (username: string) => string | undefined;
  readonly remove: boolean;
  readonly create: boolean;
  readonly allowEmptyGroups: boolean;
  /**
   * `--user` or a batch: only these Moodle users' memberships change. The
   * mapping then covers only them, so a member it cannot place may well be
   * someone else's account: forum-only members are removed by full runs only.
   */
  readonly onlyMoodleIds?: ReadonlySet<number> | undefined;
}

export interface MembershipChange {
  /** As the forum spells it (removals) or as the mapping found it (additions). */
  readonly username: string;
  /** Undefined for a forum-only account being removed. */
  readonly moodleId: number | undefined;
  readonly reason: string;
}

/** A member the plan leaves alone, and why (one log row each). */
export interface MemberLeftAlone {
  readonly username: string | undefined;
  readonly moodleId: number | undefined;
  readonly direction: "add" | "remove";
  readonly reason: string;
}

/** Why a group's changes (or only its removals) are stopped: an ERROR row each. */
export type GroupGuard =
  | { readonly _tag: "GroupMissing"; readonly message: string }
  | { readonly _tag: "GroupUnreadable"; readonly message: string }
  | { readonly _tag: "AutomaticGroup"; readonly message: string }
  | { readonly _tag: "SourceFailed"; readonly message: string }
  | { readonly _tag: "EmptySource"; readonly message: string };

export interface GroupPlan {
  readonly group: string;
  /** Undefined when the group is to be created first, or cannot be changed. */
  readonly groupId: number | undefined;
  readonly create: boolean;
  readonly additions: ReadonlyArray<MembershipChange>;
  readonly removals: ReadonlyArray<MembershipChange>;
  /** Removals a guard stopped: shown, never made. */
  readonly heldRemovals: ReadonlyArray<MembershipChange>;
  readonly leftAlone: ReadonlyArray<MemberLeftAlone>;
  readonly guards: ReadonlyArray<GroupGuard>;
}
