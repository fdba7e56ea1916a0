/** A group plan's writes, batched the way Discourse takes them. Pure. */
import type { GroupPlan, MembershipChange } from "./model.ts";

/** Discourse takes at most this many usernames per add or remove call. */
export const membersPerRequest = 1000;

/** The usernames of one add or remove call. */
export interface MembershipRequest {
  readonly group: string;
  readonly direction: "add" | "remove";
  readonly usernames: ReadonlyArray<string>;
}

const chunks = <T>(items: ReadonlyArray<T>, size: number): T[][] =>
  Array.from(
    { length: Math.ceil(items.length / size) },
    (_, index) => items.slice(index * size, (index + 1) * size),
  );

/**
 * A group plan's writes: one call per 1,000 changes and direction, never one
 * per membership. Additions come first so a partial run loses no access.
 */
export function membershipRequests(
  plan: Pick<GroupPlan, "group" | "additions" | "removals">,
  size: number = membersPerRequest,
): ReadonlyArray<MembershipRequest> {
  const calls = (
    direction: "add" | "remove",
    changes: ReadonlyArray<MembershipChange>,
  ) =>
    chunks(changes.map((change) => change.username), size).map((usernames) => ({
      group: plan.group,
      direction,
      usernames,
    }));
  return [
    ...calls("add", plan.additions),
    ...calls("remove", plan.removals),
  ];
}
