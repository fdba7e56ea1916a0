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
  /** Group memberships. */
  readonly pending: number;
  /** Users' accounts (suspensions, reactivations): the users' own count. */
  readonly pendingUsers?: number;
  /** Rows about users the profile sync had already counted. */
  readonly extraTurns?: number;
  /** The stage's own reason to exit 5 (the leavers' shrunken list). */
  readonly held?: string | undefined;
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
  readonly pendingUsers: number;
  readonly extraTurns: number;
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
    const results: Array<StageResult> = [];
    for (const stage of stages) results.push(yield* stage.carryOut(verdict));
    const sum = (of: (result: StageResult) => number | undefined) =>
      results.reduce((n, result) => n + (of(result) ?? 0), 0);
    const held = [
      ...results.map((result) => result.held),
      verdict._tag === "Held" ? verdict.message : undefined,
    ].filter((why) => why !== undefined);
    return {
      pending: sum((result) => result.pending),
      pendingUsers: sum((result) => result.pendingUsers),
      extraTurns: sum((result) => result.extraTurns),
      held: held.length === 0 ? undefined : held.join("; "),
    };
  });
