/**
 * How many users a run works on at once, without the operator tuning it.
 *
 * The rate limiter sends at the limit only while someone is waiting at the
 * head of its line. By Little's law the requests in flight at a rate λ and a
 * latency W average λ·W, and a user with k requests in turn holds k·W of
 * time while spending k of the rate: the users in flight needed are λ·W as
 * well, whatever their mix. So the run keeps λ·W users going, plus a margin
 * for the time between a user's requests and for jitter, with W the latency
 * observed so far. A fixed number instead starves a fast limit behind a slow
 * forum (4 users at 250 ms send at most 16 a second), or crowds a slow
 * limit with users that only wait (and that a stop must still finish).
 *
 * A cap bounds it all: when the forum slows down, W grows and so would the
 * users sent at it; past the cap the run goes slower instead. `concurrency`
 * (setting or flag), when given, is a lower cap.
 */
import { Clock, Deferred, Effect } from "effect";

/** Users in flight at most unless `concurrency` says fewer. */
export const defaultConcurrencyCap = 256;

/** Assumed until a few answers are in: a forum across the internet. */
const initialLatencyMs = 250;

/** Margin over Little's law, for the time between a user's requests and jitter. */
const headroom = 1.25;
const spareUsers = 2;

/**
 * Users to keep in flight to send `ratePerMs` when a request takes
 * `latencyMs`, within 1 and `cap`.
 */
export const usersInFlight = (
  ratePerMs: number,
  latencyMs: number,
  cap: number,
): number =>
  Math.max(
    1,
    Math.min(cap, Math.ceil(ratePerMs * latencyMs * headroom) + spareUsers),
  );

/**
 * How long the forum takes to answer: a low quantile of the recent requests'
 * times (from the permit to the whole answer). Not the mean: when this
 * process is the bottleneck (its CPU, a fast forum at a high limit), every
 * answer waits for the event loop, and a mean would ask for more users,
 * which only lengthens that wait; the quickest answers show the forum's
 * own pace.
 */
export interface LatencyMeter {
  /** Wraps one request sent: its time counts. */
  readonly timed: <A, E, R>(
    send: Effect.Effect<A, E, R>,
  ) => Effect.Effect<A, E, R>;
  readonly latencyMs: Effect.Effect<number>;
}

/** Recent answers kept, and how often the quantile is worked out again. */
const samplesKept = 64;
const recomputeEvery = 16;
const quantile = 0.25;

export const makeLatencyMeter: Effect.Effect<LatencyMeter> = Effect.sync(
  () => {
    const samples: number[] = [];
    let next = 0;
    let noted = 0;
    let latency = initialLatencyMs;
    const note = (sample: number) => {
      samples[next] = sample;
      next = (next + 1) % samplesKept;
      noted++;
      if (noted >= 8 && noted % recomputeEvery === 8 % recomputeEvery) {
        const sorted = [...samples].sort((a, b) => a - b);
        latency = Math.max(1, sorted[Math.floor(sorted.length * quantile)]);
      }
    };
    return {
      timed: (send) =>
        Effect.flatMap(Clock.currentTimeMillis, (started) =>
          send.pipe(
            Effect.ensuring(
              Effect.map(
                Clock.currentTimeMillis,
                (ended) => note(Math.max(0, ended - started)),
              ),
            ),
          )),
      latencyMs: Effect.sync(() => latency),
    };
  },
);

type Restore = <A, E, R>(
  effect: Effect.Effect<A, E, R>,
) => Effect.Effect<A, E, R>;

export interface AdaptiveGate {
  /** Runs `work` once the gate lets it in; its place frees when it ends. */
  readonly withPermit: <A, E, R>(
    work: Effect.Effect<A, E, R>,
  ) => Effect.Effect<A, E, R>;
  /** Callers inside now. */
  readonly inside: Effect.Effect<number>;
}

/**
 * A gate whose width follows `width`, read at each entry and exit: callers
 * beyond it wait, first come first served, and enter as others leave or as
 * the width grows. Its state is plain variables (JavaScript runs one step at
 * a time); a caller let straight in costs no Deferred.
 */
export const makeAdaptiveGate = (
  width: Effect.Effect<number>,
): Effect.Effect<AdaptiveGate> =>
  Effect.sync(() => {
    let inside = 0;
    // A queue read from `head`: letting the next one in is O(1).
    let waiting: Array<Deferred.Deferred<void>> = [];
    let head = 0;

    /** Lets in as many waiting callers as the width now allows. */
    const admitWaiting = Effect.flatMap(width, (allowed) => {
      const admitted: Array<Deferred.Deferred<void>> = [];
      while (head < waiting.length && inside < allowed) {
        admitted.push(waiting[head++]);
        inside++;
      }
      if (head >= 1024 && head * 2 >= waiting.length) {
        waiting = waiting.slice(head);
        head = 0;
      }
      return admitted.length === 0 ? Effect.void : Effect.forEach(
        admitted,
        (turn) => Deferred.succeed(turn, undefined),
        { discard: true },
      );
    });

    const leave = Effect.suspend(() => {
      inside--;
      return admitWaiting;
    });

    /** Uninterruptible but for the wait itself, so no place is ever lost. */
    const enter = (restore: Restore) =>
      Effect.flatMap(width, (allowed) => {
        if (head === waiting.length && inside < allowed) {
          inside++;
          return Effect.void;
        }
        return Effect.flatMap(Deferred.make<void>(), (turn) => {
          waiting.push(turn);
          return restore(Deferred.await(turn)).pipe(
            Effect.onInterrupt(() =>
              Effect.suspend(() => {
                const index = waiting.indexOf(turn, head);
                if (index === -1) {
                  // Admitted just as it gave up: its place goes to the next.
                  return leave;
                }
                waiting.splice(index, 1);
                return Effect.void;
              })
            ),
          );
        });
      });

    return {
      withPermit: <A, E, R>(
        work: Effect.Effect<A, E, R>,
      ): Effect.Effect<A, E, R> =>
        Effect.uninterruptibleMask((restore) =>
          enter(restore).pipe(
            Effect.zipRight(
              restore(work).pipe(Effect.ensuring(leave)),
            ),
          )
        ),
      inside: Effect.sync(() => inside),
    };
  });
