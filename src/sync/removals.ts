/**
 * The run's removing stages (group memberships; suspensions once leavers
 * exist) are planned first, then judged together against the one removal
 * threshold, then carried out: no stage removes anything before the whole
 * run's removals are known.
 */
import { Effect } from "effect";
import {
  judgeRemovals,
  type PlannedRemovals,
  type RemovalLimits,
  type RemovalVerdict,
} from "../domain/removals.ts";

/** What a removing stage leaves to do: changes a dry-run would make. */
export interface StageResult {
  readonly pending: number;
}

/** A stage that may take something away, planned and not yet carried out. */
export interface RemovingStage<E, R> {
  readonly planned: Partial<PlannedRemovals>;
  /** Makes the stage's changes; its removals only when `verdict` proceeds. */
  readonly carryOut: (
    verdict: RemovalVerdict,
  ) => Effect.Effect<StageResult, E, R>;
}

export interface RemovalsOutcome {
  /** Changes the stages would make (dry-run) or left undone (apply). */
  readonly pending: number;
  /** The threshold's message when it held the removals back. */
  readonly held: string | undefined;
}

/** Judges every stage's removals at once, then carries each stage out. */
export const runRemovingStages = <E, R>(
  stages: ReadonlyArray<RemovingStage<E, R>>,
  limits: RemovalLimits,
): Effect.Effect<RemovalsOutcome, E, R> =>
  Effect.gen(function* () {
    const total = (kind: keyof PlannedRemovals) =>
      stages.reduce((sum, stage) => sum + (stage.planned[kind] ?? 0), 0);
    const verdict = judgeRemovals({
      groupMemberships: total("groupMemberships"),
      suspensions: total("suspensions"),
    }, limits);
    let pending = 0;
    for (const stage of stages) {
      pending += (yield* stage.carryOut(verdict)).pending;
    }
    return {
      pending,
      held: verdict._tag === "Held" ? verdict.message : undefined,
    };
  });
