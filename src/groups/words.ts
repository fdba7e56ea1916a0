/**
 * The words of every group row: one membership change (or one member left
 * alone, or one guard) as its audit entry. Pure.
 */
import type {
  AuditAction,
  AuditEntry,
  AuditStatus,
} from "../audit/AuditLog.ts";
import { terminalSafe } from "../domain/terminal.ts";
import { type Done, doneRow } from "../sync/summary.ts";
import type { GroupPlan } from "./model.ts";
import type { Identity } from "./verdicts.ts";

export type Direction = "add" | "remove";

export const actionOf = (direction: Direction): AuditAction =>
  direction === "add" ? "GROUP_ADD" : "GROUP_REMOVE";

/** A forum account no Moodle user maps to: its forum name only. */
export const forumOnly = (username: string): Identity => ({
  originalUsername: "",
  normalizedUsername: username,
  fullname: "",
  email: "",
  location: "",
  moodleId: undefined,
});

/** What a membership row says happened, in words, by status. */
export type MembershipWords =
  | { readonly _tag: "Planned"; readonly creating: boolean }
  | { readonly _tag: "Done" }
  | { readonly _tag: "AlreadyThere" }
  | { readonly _tag: "Failed"; readonly error: string }
  | { readonly _tag: "NotSent"; readonly why: string }
  | { readonly _tag: "Held"; readonly why: string };

const sentence = (
  direction: Direction,
  group: string,
  words: MembershipWords,
): { readonly status: AuditStatus; readonly text: string } => {
  const to = direction === "add"
    ? `to group "${group}"`
    : `from group "${group}"`;
  const verb = direction === "add" ? "add" : "remove";
  const done = direction === "add" ? "added" : "removed";
  switch (words._tag) {
    case "Planned":
      return {
        status: "DRY_RUN",
        text: `would ${verb} ${to}${
          words.creating
            ? ` (the group does not exist yet: --apply creates it, as groups.create says)`
            : ""
        }`,
      };
    case "Done":
      return {
        status: "SUCCESS",
        text: `${done} ${to}`,
      };
    case "AlreadyThere":
      return {
        status: "EXISTS",
        text: direction === "add"
          ? `already a member of group "${group}" (added since this run read it)`
          : `no longer a member of group "${group}" (removed since this run read it)`,
      };
    case "Failed":
      return { status: "ERROR", text: `not ${done} ${to}: ${words.error}` };
    case "NotSent":
      return { status: "SKIPPED", text: `not ${done} ${to}: ${words.why}` };
    case "Held":
      return { status: "DRY_RUN", text: `not ${done} ${to}: ${words.why}` };
  }
};

/** One membership change's row; `reason` says why the change is wanted. */
export const membershipRow = (
  change: {
    readonly direction: Direction;
    readonly group: string;
    readonly username: string;
    readonly identity: Identity | undefined;
    readonly reason: string;
  },
  words: MembershipWords,
): Done => {
  const { status, text } = sentence(change.direction, change.group, words);
  const value = { group: change.group };
  const entry: AuditEntry = {
    ...(change.identity ?? forumOnly(change.username)),
    // The account the membership is about, as the forum spells it.
    normalizedUsername: change.username,
    action: actionOf(change.direction),
    status,
    message: terminalSafe(`${text}; ${change.reason}`),
    fields: ["group"],
    before: change.direction === "add" ? {} : value,
    after: change.direction === "add" ? value : {},
  };
  return { entry, changes: [], skipped: [] };
};

const noChange = { changes: [], skipped: [] };

/** A member the plan leaves alone: a SKIPPED row saying why. */
export const leftAloneRow = (
  group: string,
  direction: Direction,
  username: string | undefined,
  identity: Identity | undefined,
  reason: string,
): Done =>
  doneRow(
    {
      ...(identity ?? forumOnly(username ?? "")),
      normalizedUsername: username ?? identity?.normalizedUsername ?? "",
    },
    noChange,
    actionOf(direction),
    "SKIPPED",
    `group "${group}": ${reason}`,
  );

/** A guard that stopped a group's changes or removals: one ERROR row. */
export const guardRow = (message: string): Done =>
  doneRow(forumOnly(""), noChange, "GROUP_REMOVE", "ERROR", message);

const count = (n: number, one: string, many: string) =>
  `${n} ${n === 1 ? one : many}`;

/** The console's heading over a group's rows. */
export const groupHeading = (plan: GroupPlan, apply: boolean): string => {
  const parts = [
    count(plan.additions.length, "addition", "additions"),
    count(plan.removals.length, "removal", "removals"),
    ...(plan.heldRemovals.length > 0
      ? [count(plan.heldRemovals.length, "removal held", "removals held")]
      : []),
    ...(plan.leftAlone.length > 0
      ? [
        count(plan.leftAlone.length, "member left alone", "members left alone"),
      ]
      : []),
    ...(plan.guards.length > 0
      ? [count(plan.guards.length, "error", "errors")]
      : []),
  ];
  return `Group "${plan.group}"${plan.create ? " (new)" : ""}: ${
    parts.join(", ")
  }${apply ? "" : " (dry-run)"}`;
};

/** The warning of a run stopped by a signal before these groups started. */
export const stoppedBetweenGroups = (groups: ReadonlyArray<string>): string =>
  `group${groups.length === 1 ? "" : "s"} ${
    groups.map((g) => `"${g}"`).join(", ")
  } not synced: the run stopped before ${
    groups.length === 1 ? "it" : "them"
  }; the next run syncs ${groups.length === 1 ? "it" : "them"}`;
