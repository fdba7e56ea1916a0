/**
 * The removal threshold: the one place that decides whether a run's removals
 * (group memberships and account suspensions together) go through. A sync
 * that suddenly wants to remove many people is more often broken (a lost
 * capability, an emptied cohort) than right, so past the limit it removes
 * no one and asks the operator to look. Pure.
 */

/** `safety.maxRemovals` when the settings leave it out. */
export const defaultMaxRemovals = 25;

/** The exit code of a run whose removals or suspensions were held back. */
export const removalsHeldExitCode = 5;

/** What one run plans to take away, by kind; additions are never limited. */
export interface PlannedRemovals {
  readonly groupMemberships: number;
  readonly suspensions: number;
}

export interface RemovalLimits {
  /** `safety.maxRemovals`. */
  readonly maxRemovals: number;
  /**
   * `--allow-removals N`: replaces `maxRemovals` for this run only. It is
   * the operator's reviewed number, so it is honoured even when lower.
   */
  readonly allowRemovals: number | undefined;
}

export type RemovalVerdict =
  | { readonly _tag: "Proceed"; readonly total: number }
  | {
    readonly _tag: "Held";
    readonly total: number;
    readonly limit: number;
    /** For the operator: what was held, why, and what lets it through. */
    readonly message: string;
  };

const plural = (count: number, one: string, many: string) =>
  `${count} ${count === 1 ? one : many}`;

const describePlanned = (planned: PlannedRemovals): string => {
  const parts = [
    planned.groupMemberships > 0
      ? plural(
        planned.groupMemberships,
        "group membership",
        "group memberships",
      )
      : undefined,
    planned.suspensions > 0
      ? plural(planned.suspensions, "suspension", "suspensions")
      : undefined,
  ].filter((part) => part !== undefined);
  return parts.join(" and ");
};

/**
 * All or nothing: at or under the limit every removal goes through; over it
 * none does, so a half-applied mass removal never has to be untangled.
 */
export function judgeRemovals(
  planned: PlannedRemovals,
  limits: RemovalLimits,
): RemovalVerdict {
  const total = planned.groupMemberships + planned.suspensions;
  const limit = limits.allowRemovals ?? limits.maxRemovals;
  if (total <= limit) return { _tag: "Proceed", total };
  const source = limits.allowRemovals === undefined
    ? `safety.maxRemovals (${limits.maxRemovals})`
    : `--allow-removals ${limits.allowRemovals}`;
  const message =
    `this run would make ${total} removals (${
      describePlanned(planned)
    }), more than ${source} allows, so it made none of them. ` +
    `Check each planned removal in the DRY_RUN rows of the log; if they are ` +
    `right, run again with --allow-removals ${total}, or raise ` +
    `safety.maxRemovals in the settings to allow this many in every run`;
  return { _tag: "Held", total, limit, message };
}
