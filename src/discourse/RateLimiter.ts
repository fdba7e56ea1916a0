import { Clock, Duration, Effect, Ref } from "effect";

/**
 * Discourse counts admin API requests in a sliding window shared by the whole
 * site. The limiter keeps this process under that window on its own: it paces
 * sends evenly a little below the limit and, as a hard bound, never lets
 * `limit - 1` sends fall into any trailing window, so network jitter cannot
 * push one request over.
 */
export interface RateLimiterConfig {
  /** Requests the server accepts per window. */
  readonly limit: number;
  readonly window: Duration.DurationInput;
  /** Fraction of the limit the even pacing aims at. */
  readonly pacing?: number;
}

export interface RateLimiter {
  /** Waits for this caller's turn to send one request. First come, first served. */
  readonly acquire: Effect.Effect<void>;
  /**
   * Holds every sender, queued or still to come, until `duration` from now has
   * elapsed: a 429 means the shared budget is spent, whoever spent it.
   */
  readonly holdFor: (duration: Duration.DurationInput) => Effect.Effect<void>;
}

/** The fixed numbers the limiter plans with, all in milliseconds. */
export interface LimiterPlan {
  readonly windowMs: number;
  /** Sends allowed in any trailing window (one below the server's limit). */
  readonly budget: number;
  /** Even spacing between two sends. */
  readonly intervalMs: number;
  /** Added to the window so a timer firing a millisecond early stays safe. */
  readonly marginMs: number;
}

export interface LimiterState {
  readonly nextSlotAt: number;
  /** The latest `budget` reserved send times, ascending. */
  readonly recent: ReadonlyArray<number>;
  readonly heldUntil: number;
}

export const initialLimiterState: LimiterState = {
  nextSlotAt: 0,
  recent: [],
  heldUntil: 0,
};

const defaultPacing = 0.97;

export const limiterPlan = (config: RateLimiterConfig): LimiterPlan => {
  const limit = Math.max(1, Math.floor(config.limit));
  const windowMs = Duration.toMillis(Duration.decode(config.window));
  const pacing = config.pacing ?? defaultPacing;
  return {
    windowMs,
    budget: Math.max(1, limit - 1),
    intervalMs: windowMs / (limit * pacing),
    marginMs: windowMs * 0.005,
  };
};

/** The earliest send time for a request asking at `now`, and the state after it. */
export const reserveSlot = (
  plan: LimiterPlan,
  state: LimiterState,
  now: number,
): readonly [number, LimiterState] => {
  let slot = Math.max(now, state.nextSlotAt, state.heldUntil);
  if (state.recent.length >= plan.budget) {
    const oldestInWindow = state.recent[state.recent.length - plan.budget];
    slot = Math.max(slot, oldestInWindow + plan.windowMs + plan.marginMs);
  }
  return [slot, {
    nextSlotAt: slot + plan.intervalMs,
    recent: [...state.recent, slot].slice(-plan.budget),
    heldUntil: state.heldUntil,
  }];
};

/** Gives back a slot that was never used, so it does not count against the window. */
export const releaseSlot = (
  state: LimiterState,
  slot: number,
): LimiterState => {
  const index = state.recent.indexOf(slot);
  return index < 0 ? state : {
    ...state,
    recent: [
      ...state.recent.slice(0, index),
      ...state.recent.slice(index + 1),
    ],
  };
};

export const holdState = (
  state: LimiterState,
  until: number,
): LimiterState => ({ ...state, heldUntil: Math.max(state.heldUntil, until) });

export const makeRateLimiter = (
  config: RateLimiterConfig,
): Effect.Effect<RateLimiter> =>
  Effect.gen(function* () {
    const plan = limiterPlan(config);
    const state = yield* Ref.make(initialLimiterState);

    const release = (slot: number) =>
      Ref.update(state, (current) => releaseSlot(current, slot));

    // Reserving is one atomic update, so slots go out in arrival order and no
    // lock is held while a caller sleeps until its slot.
    const acquire: Effect.Effect<void> = Effect.gen(function* () {
      while (true) {
        const now = yield* Clock.currentTimeMillis;
        const slot = yield* Ref.modify(
          state,
          (current) => reserveSlot(plan, current, now),
        );
        if (slot > now) {
          yield* Effect.sleep(Duration.millis(slot - now)).pipe(
            Effect.onInterrupt(() => release(slot)),
          );
        }
        const { heldUntil } = yield* Ref.get(state);
        // A hold that began after this reservation and outlasts it wins.
        if (heldUntil <= slot) return;
        yield* release(slot);
      }
    });

    const holdFor = (duration: Duration.DurationInput) =>
      Effect.flatMap(
        Clock.currentTimeMillis,
        (now) =>
          Ref.update(
            state,
            (current) => holdState(current, now + Duration.toMillis(duration)),
          ),
      );

    return { acquire, holdFor };
  });
