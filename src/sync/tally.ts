/**
 * What each recorded user leaves to do, counted for the summary (changes
 * pending, accounts missing), and what the profile sync made of each user,
 * kept for the group stage.
 */
import { Effect, Ref } from "effect";
import type { RunMode } from "../audit/AuditLog.ts";
import { type MappedUser, mappedUser } from "../groups/verdicts.ts";
import { pendingOf } from "./outcome.ts";
import type { Done } from "./summary.ts";
import type { UserOutcome } from "./UserOutcome.ts";

export interface Tally {
  /** The ledger's hook after a user's row is written. */
  readonly tally: (done: Done, outcome: UserOutcome) => Effect.Effect<void>;
  /** Moodle id -> the user as the profile sync left it (groups on only). */
  readonly mapped: Map<number, MappedUser>;
  readonly pendingUsers: Effect.Effect<number>;
  readonly missingAccounts: Effect.Effect<number>;
}

export const makeTally = (
  options: {
    readonly mode: RunMode;
    readonly createMissing: boolean;
    /** Whether a group stage follows, which needs `mapped`. */
    readonly groups: boolean;
  },
): Effect.Effect<Tally> =>
  Effect.gen(function* () {
    const pendingUsers = yield* Ref.make(0);
    const missingAccounts = yield* Ref.make(0);
    const mapped = new Map<number, MappedUser>();
    return {
      tally: (done, outcome) => {
        const user = options.groups && mappedUser(outcome, done.entry);
        if (user) mapped.set(user.moodleId, user);
        switch (pendingOf(options.mode, done, options.createMissing)) {
          case "change":
            return Ref.update(pendingUsers, (n) => n + 1);
          case "missing":
            return Ref.update(missingAccounts, (n) => n + 1);
          default:
            return Effect.void;
        }
      },
      mapped,
      pendingUsers: Ref.get(pendingUsers),
      missingAccounts: Ref.get(missingAccounts),
    };
  });
