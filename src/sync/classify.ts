/**
 * Each Moodle record judged once, before the forum is asked anything: a
 * record that cannot be synced ends here with its outcome; the others go on
 * to the forum. Pure.
 */
import type { Candidate, UserCandidate } from "./candidate.ts";
import type { MatchMode } from "./match.ts";
import { exclusionReason, type ExclusionRules } from "./select.ts";
import { UserOutcome } from "./UserOutcome.ts";

export type Classified =
  | { readonly _tag: "Settled"; readonly outcome: UserOutcome }
  | { readonly _tag: "NeedsForum"; readonly candidate: UserCandidate };

export interface ClassifyRules {
  readonly exclusions: ExclusionRules;
  readonly collisions: ReadonlyMap<string, ReadonlyArray<string>>;
  readonly match: MatchMode;
}

export const classify = (
  candidate: Candidate,
  rules: ClassifyRules,
): Classified => {
  const settled = (outcome: UserOutcome) =>
    ({ _tag: "Settled", outcome }) as const;
  switch (candidate._tag) {
    case "Malformed":
      return settled(
        UserOutcome.Malformed({
          who: candidate,
          problem: candidate.record.problem,
        }),
      );
    case "NoUsername":
      return settled(UserOutcome.NoUsername({ who: candidate }));
    case "User": {
      const reason = exclusionReason(candidate.user, rules.exclusions);
      if (reason) {
        return settled(UserOutcome.Excluded({ who: candidate, reason }));
      }
      const others = rules.collisions.get(candidate.normalized.toLowerCase());
      // Only username matching refuses a shared username outright; the other
      // modes may still find the account by external id or email.
      if (others && rules.match === "username") {
        return settled(
          UserOutcome.Collision({ who: candidate, others, tried: undefined }),
        );
      }
      return { _tag: "NeedsForum", candidate };
    }
  }
};
