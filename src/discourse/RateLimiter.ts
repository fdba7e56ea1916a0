import { Clock, Duration, Effect } from "effect";
import { makeLine } from "../domain/line.ts";

/**
 * Discourse counts admin API requests in a sliding window shared by the whole
 * site, at the moment each one arrives. The limiter keeps this process under
 * that window on its own, in two layers:
 *
 * - pacing: sends are spread evenly a little below the limit, first come,
 *   first served, so a long run goes at a steady rate without bursts;
 * - a hard bound checked at each send: at most `limit - 1` requests, this
 *   one included, may be in flight or have finished within the trailing
 *   window. A request finishes when its answer is back, which is never before
 *   the server counted it, so latency and jitter cannot crowd that window.
 */
export interface RateLimiterConfig {
  /** Requests the server accepts per window. */
  readonly limit: number;
  readonly window: Duration.DurationInput;
  /** Fraction of the limit the even pacing aims at. */
  readonly pacing?: number;
}

export interface RateLimiter {
  /**
   * Runs `send` (one HTTP request) when this process may send it. Waiting
   * callers go in arrival order; the send counts until it completes.
   */
  readonly withPermit: <A, E, R>(
    send: Effect.Effect<A, E, R>,
  ) => Effect.Effect<A, E, R>;
  /**
   * Holds every sender, queued or still to come, until `duration` from now has
   * elapsed: a 429 means the shared budget is spent, whoever spent it.
   */
  readonly holdFor: (duration: Duration.DurationInput) => Effect.Effect<void>;
  /**
   * Milliseconds of holding added so far, overlaps counted once: what 429s
   * have cost this run in waiting.
   */
  readonly heldMillis: Effect.Effect<number>;
}

/** The fixed numbers the limiter plans with, all in milliseconds. */
export interface LimiterPlan {
  readonly windowMs: number;
  /** Requests allowed to count in the trailing window (one below the limit). */
  readonly budget: number;
  /** Even spacing between two sends. */
  readonly intervalMs: number;
  /** Added to the window so early timers and clock drift stay safe. */
  readonly marginMs: number;
  /**
   * How late a waiting head may be and still keep the schedule, sending the
   * turns it missed at once: at least one interval.
   */
  readonly catchUpMs: number;
}

/**
 * When recent requests completed, ascending: the slice [start, end) of an
 * append-only buffer that successive states share. A state appends past its
 * end only when no other state has (it is the newest), and copies otherwise,
 * so no state ever sees another change: the functions stay pure, while a fast
 * run at a raised limit costs O(1) per request rather than a copy of the
 * whole window.
 */
export interface FinishedTimes {
  readonly buffer: ReadonlyArray<number>;
  readonly start: number;
  readonly end: number;
}

export interface LimiterState {
  /** The pacing schedule: the head of the line may not send before this. */
  readonly nextSendAt: number;
  readonly heldUntil: number;
  readonly inFlight: number;
  /** Older completions are dropped as they leave the window. */
  readonly finished: FinishedTimes;
}

export const initialLimiterState: LimiterState = {
  nextSendAt: 0,
  heldUntil: 0,
  inFlight: 0,
  finished: { buffer: [], start: 0, end: 0 },
};

/** Completions at or before `horizon` dropped; the same object if none is. */
const dropUntil = (
  finished: FinishedTimes,
  horizon: number,
): FinishedTimes => {
  const { buffer, start, end } = finished;
  if (start === end || buffer[start] > horizon) return finished;
  let low = start;
  let high = end;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if (buffer[middle] > horizon) high = middle;
    else low = middle + 1;
  }
  // Once the dropped prefix outweighs the buffer's live part, start a fresh
  // buffer: the copy is paid for by the drops, and memory stays bounded.
  if (low >= 64 && low * 2 >= buffer.length) {
    const live = buffer.slice(low, end);
    return { buffer: live, start: 0, end: live.length };
  }
  return { buffer, start: low, end };
};

const defaultPacing = 0.97;

/**
 * A head that was waiting for its turn and woke late (timers fire late
 * while the process is busy: at 30,000 a minute a turn is 2 ms, less than
 * one event-loop turn under load) sends the turns it missed, up to this
 * much lateness: otherwise every late wake-up is rate lost for good, and a
 * busy run at a high limit paced itself at a fraction of it.
 */
const maxCatchUpMs = 250;

export const limiterPlan = (config: RateLimiterConfig): LimiterPlan => {
  const limit = Math.max(1, Math.floor(config.limit));
  const windowMs = Duration.toMillis(Duration.decode(config.window));
  const pacing = config.pacing ?? defaultPacing;
  const intervalMs = windowMs / (limit * pacing);
  return {
    windowMs,
    budget: Math.max(1, limit - 1),
    intervalMs,
    marginMs: Math.min(windowMs * 0.01, intervalMs / 2),
    catchUpMs: Math.max(intervalMs, Math.min(windowMs * 0.01, maxCatchUpMs)),
  };
};

export type Admission =
  | { readonly _tag: "Send" }
  | { readonly _tag: "Wait"; readonly millis: number };

/**
 * Whether the caller at the head of the line may send at `now`: not during a
 * hold, not before its paced turn, and not while `budget` requests are in
 * flight or finished within the trailing window. If it may, it counts.
 * `waited`: the caller was already waiting (in line or at its head) before
 * now, so a late send is the timer's lateness, not an idle line.
 */
export const admit = (
  plan: LimiterPlan,
  state: LimiterState,
  now: number,
  waited = false,
): readonly [Admission, LimiterState] => {
  // Whole milliseconds, as timers count them: a wait of a hair would spin.
  const wait = (millis: number, next: LimiterState = state) =>
    [
      { _tag: "Wait", millis: Math.max(1, Math.ceil(millis)) } as const,
      next,
    ] as const;
  if (state.heldUntil > now) return wait(state.heldUntil - now);
  if (state.nextSendAt > now) return wait(state.nextSendAt - now);
  const horizon = now - plan.windowMs - plan.marginMs;
  const finished = dropUntil(state.finished, horizon);
  const inWindow = finished.end - finished.start;
  const counted = state.inFlight + inWindow;
  if (counted >= plan.budget) {
    // Finished requests leave the window at a known time; requests in flight
    // only once they finish, so then look again shortly.
    const oldest = counted - plan.budget;
    const leavesAt = oldest < inWindow
      ? finished.buffer[finished.start + oldest]
      : undefined;
    return wait(
      leavesAt === undefined
        ? plan.intervalMs / 4
        : leavesAt + plan.windowMs + plan.marginMs - now,
      { ...state, finished },
    );
  }
  // A slightly late head keeps the schedule, and so does a waiting one that
  // woke late, within `catchUpMs`; one late by more (after idling or a hold)
  // starts it afresh instead of bursting.
  const late = now - state.nextSendAt;
  const nextSendAt = late > (waited ? plan.catchUpMs : plan.intervalMs)
    ? now + plan.intervalMs
    : state.nextSendAt + plan.intervalMs;
  return [{ _tag: "Send" }, {
    ...state,
    nextSendAt,
    inFlight: state.inFlight + 1,
    finished,
  }];
};

/** A request sent under `admit` completed (answered, failed or gave up) at `now`. */
export const finish = (state: LimiterState, now: number): LimiterState => {
  const inFlight = Math.max(0, state.inFlight - 1);
  const { buffer, start, end } = state.finished;
  const newest = end > start && end === buffer.length;
  if (newest && buffer[end - 1] <= now) {
    // Nothing lies past this state's end: appending changes no other state.
    (buffer as Array<number>).push(now);
    return { ...state, inFlight, finished: { buffer, start, end: end + 1 } };
  }
  // Another state owns what follows, or the clock stepped back: copy.
  const times = buffer.slice(start, end);
  let index = times.length;
  while (index > 0 && times[index - 1] > now) index--;
  times.splice(index, 0, now);
  return {
    ...state,
    inFlight,
    finished: { buffer: times, start: 0, end: times.length },
  };
};

export const holdState = (
  state: LimiterState,
  until: number,
): LimiterState => ({
  ...state,
  heldUntil: Math.max(state.heldUntil, until),
  // The turns a hold skipped are not caught up after it.
  nextSendAt: Math.max(state.nextSendAt, until),
});

type Restore = <A, E, R>(
  effect: Effect.Effect<A, E, R>,
) => Effect.Effect<A, E, R>;

export const makeRateLimiter = (
  config: RateLimiterConfig,
): Effect.Effect<RateLimiter> =>
  Effect.gen(function* () {
    const plan = limiterPlan(config);
    // A plain variable, changed only by whole steps of the pure functions
    // above (JavaScript runs one at a time): a Ref's update cost each
    // request several Effect operations more.
    let state = initialLimiterState;
    // Callers line up; only the head of the line waits on the clock.
    const line = yield* makeLine;

    const finishNow = Effect.map(Clock.currentTimeMillis, (now) => {
      state = finish(state, now);
    });

    const admitNow = (waited: boolean) =>
      Effect.map(Clock.currentTimeMillis, (now) => {
        const [admission, next] = admit(plan, state, now, waited);
        state = next;
        return admission;
      });

    const waitAtHead = (
      restore: Restore,
      waited: boolean,
    ): Effect.Effect<void> =>
      Effect.flatMap(admitNow(waited), (admission) =>
        admission._tag === "Send" ? Effect.void : Effect.zipRight(
          restore(Effect.sleep(Duration.millis(admission.millis))),
          waitAtHead(restore, true),
        ));

    // Waiting can be interrupted; once admitted, the request is always marked
    // finished, or its count would shrink the budget for good.
    const withPermit = <A, E, R>(
      send: Effect.Effect<A, E, R>,
    ): Effect.Effect<A, E, R> =>
      Effect.uninterruptibleMask((restore) =>
        line.enter(restore).pipe(
          Effect.flatMap((queued) =>
            waitAtHead(restore, queued).pipe(Effect.ensuring(line.leave))
          ),
          Effect.zipRight(restore(send).pipe(Effect.ensuring(finishNow))),
        )
      );

    let held = 0;
    const holdFor = (duration: Duration.DurationInput) =>
      Effect.map(Clock.currentTimeMillis, (now) => {
        const until = now + Duration.toMillis(duration);
        held += Math.max(0, until - Math.max(state.heldUntil, now));
        state = holdState(state, until);
      });

    return {
      withPermit,
      holdFor,
      heldMillis: Effect.sync(() =>
        held
      ),
    };
  });
