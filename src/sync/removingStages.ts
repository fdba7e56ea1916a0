/**
 * The stages that follow the profile sync and may take something away
 * (group memberships today), planned from what the profile sync made of
 * each user. They run only after a sync that reached every user of its
 * batch: a user not reached has no verdict, and would read as "not in the
 * group's sources".
 */
import { Effect } from "effect";
import { planGroupStage } from "../groups/runGroups.ts";
import type { GroupSeen } from "../groups/idsSeen.ts";
import type { MappedUser } from "../groups/verdicts.ts";
import { type Candidate, identity } from "./candidate.ts";
import type { RunContext } from "./context.ts";
import { Reporter } from "./Reporter.ts";
import { leaversOn } from "../domain/deprovision.ts";
import { type LeaversInput, prepareLeavers } from "../leavers/runLeavers.ts";

export const removingStages = (
  ctx: RunContext,
  run: {
    readonly mapped: ReadonlyMap<number, MappedUser>;
    /** The managed groups' ids this run's profile reads showed. */
    readonly groupIds: ReadonlyMap<string, GroupSeen>;
    readonly batch: ReadonlyArray<Candidate>;
    /** Every Moodle user was in the batch: forum-only members may go. */
    readonly wholeList: boolean;
    readonly leavers: Omit<LeaversInput, "wholeList">;
  },
) =>
  Effect.gen(function* () {
    const { settings, options, ledger } = ctx;
    const groups = settings.groups;
    const leavers = leaversOn(settings.deprovision);
    if (groups === undefined && !leavers) return [];
    const stopping = (yield* ledger.stopped) !== undefined ||
      (options.stopRequested ? yield* options.stopRequested : false);
    if (stopping) {
      // A signal after the last user: the users left out are not reached.
      yield* ledger.stopWith({ _tag: "Interrupted" });
      if (groups === undefined) return [];
      const reporter = yield* Reporter;
      yield* reporter.warn(
        "group memberships were not synced: the run stopped before every user was done; the next run syncs them",
      );
      return [];
    }
    const leaversStage = leavers
      ? [
        yield* prepareLeavers(ctx, {
          ...run.leavers,
          wholeList: run.wholeList,
        }),
      ]
      : [];
    if (groups === undefined) return leaversStage;
    const onlyMoodleIds = run.wholeList ? undefined : new Set(
      run.batch.flatMap((c) => {
        const id = identity(c).moodleId;
        return id === undefined ? [] : [id];
      }),
    );
    // One threshold judges the group removals and the suspensions together.
    return [
      ...leaversStage,
      yield* planGroupStage({
        groups,
        settings,
        apply: options.apply,
        allowEmptyGroups: options.allowEmptyGroups ?? false,
        excludedByFile: options.excludedByFile,
        mapped: run.mapped,
        groupIds: run.groupIds,
        onlyMoodleIds,
        ledger,
        stopRequested: options.stopRequested,
      }),
    ];
  });
