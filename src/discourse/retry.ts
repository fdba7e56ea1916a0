/**
 * When a call is tried again. Each kind of setback has its own schedule and
 * its own count: a 429 does not use up the retries a 5xx is allowed, nor the
 * other way round. Every schedule outputs how many setbacks of its kind it
 * has let through, which names the error a call ends in.
 */
import { Duration, Effect, Schedule } from "effect";
import * as ScheduleDecision from "effect/ScheduleDecision";
import type { DiscourseOptions } from "./config.ts";
import type { RateLimiter } from "./RateLimiter.ts";
import type { Setback } from "./verdict.ts";

type SetbackOf<K extends Setback["_tag"]> = Extract<Setback, { _tag: K }>;

/**
 * After a 5xx, a timeout or a lost connection: exponential from
 * `backoffBase`, capped at `backoffCap`, each delay jittered within its upper
 * half so concurrent fibers spread out; `maxFailureRetries` at most.
 */
export const failureBackoff = (
  options: Pick<
    DiscourseOptions,
    "backoffBase" | "backoffCap" | "maxFailureRetries"
  >,
): Schedule.Schedule<number> =>
  Schedule.exponential(options.backoffBase).pipe(
    Schedule.union(Schedule.spaced(options.backoffCap)),
    Schedule.jitteredWith({ min: 0.5, max: 1 }),
    Schedule.intersect(Schedule.recurs(options.maxFailureRetries)),
    Schedule.map(([, retries]) => retries),
  );

/**
 * After a 429: no delay of its own, because the wait is the limiter's hold,
 * which stops every fiber, not only this one. Given up after
 * `maxRateLimitRetries`, or when waiting would pass the run's total budget
 * for 429s.
 */
const rateLimitRetries = (
  options: DiscourseOptions,
  limiter: RateLimiter,
  where: string,
): Schedule.Schedule<number, SetbackOf<"RateLimited">> => {
  const maxTotalMs = Duration.toMillis(options.maxTotalRateLimitWait);
  const counted: Schedule.Schedule<number, SetbackOf<"RateLimited">> = Schedule
    .recurs(options.maxRateLimitRetries);
  return counted.pipe(
    // Reached only while retries remain, so the hold comes before a retry
    // and never after the call has given up.
    Schedule.checkEffect((setback) =>
      Effect.gen(function* () {
        const heldMs = yield* limiter.heldMillis;
        if (heldMs + setback.waitMs > maxTotalMs) return false;
        yield* Effect.logDebug(
          `Discourse 429 on ${where}: every request waits ${
            Math.round(setback.waitMs)
          } ms`,
        );
        yield* limiter.holdFor(Duration.millis(setback.waitMs));
        return true;
      })
    ),
  );
};

const failureRetries = (
  options: DiscourseOptions,
  where: string,
): Schedule.Schedule<number, SetbackOf<"Failed">> =>
  Schedule.identity<SetbackOf<"Failed">>().pipe(
    Schedule.intersect(failureBackoff(options)),
    Schedule.modifyDelayEffect(([setback], delay) =>
      Effect.as(
        Effect.logDebug(
          `Discourse ${where} failed (${setback.detail}); retrying in ${
            Math.round(Duration.toMillis(delay))
          } ms`,
        ),
        delay,
      )
    ),
    Schedule.map(([, retries]) => retries),
  );

/** A garbled body is usually a proxy hiccup: once more, not forever. */
const undecodableRetries: Schedule.Schedule<number, SetbackOf<"Undecodable">> =
  Schedule.recurs(1);

interface States {
  readonly RateLimited: unknown;
  readonly Failed: unknown;
  readonly Undecodable: unknown;
}

/** Steps one kind's schedule on its own state, the others' left alone. */
const stepKind = <I, K extends keyof States>(
  kind: K,
  schedule: Schedule.Schedule<number, I>,
  now: number,
  input: I,
  states: States,
) =>
  Effect.map(
    schedule.step(now, input, states[kind]),
    ([state, retries, decision]) =>
      [{ ...states, [kind]: state }, retries, decision] as const,
  );

/** The retry policy of one call; a Fatal setback is never retried. */
export const retryPolicy = (
  options: DiscourseOptions,
  limiter: RateLimiter,
  where: string,
): Schedule.Schedule<number, Setback> => {
  const rateLimited = rateLimitRetries(options, limiter, where);
  const failed = failureRetries(options, where);
  const initial: States = {
    RateLimited: rateLimited.initial,
    Failed: failed.initial,
    Undecodable: undecodableRetries.initial,
  };
  return Schedule.makeWithState(initial, (now, setback: Setback, states) => {
    switch (setback._tag) {
      case "Fatal":
        return Effect.succeed([states, 0, ScheduleDecision.done] as const);
      case "RateLimited":
        return stepKind("RateLimited", rateLimited, now, setback, states);
      case "Failed":
        return stepKind("Failed", failed, now, setback, states);
      case "Undecodable":
        return stepKind(
          "Undecodable",
          undecodableRetries,
          now,
          setback,
          states,
        );
    }
  });
};
