/**
 * A strict first-come, first-served line: leaving hands the turn straight to
 * the next caller, so a newcomer can never slip in between, and a turn wakes
 * only the caller whose turn it is.
 *
 * Not Effect's Semaphore for one-at-a-time work: each release wakes every
 * waiter and all but one line up again, so n callers waiting cost n wake-ups
 * a turn. The audit log's lock, taken once a user with up to 256 users in
 * flight, spent half of a fast run's CPU that way.
 */
import { Deferred, Effect } from "effect";

type Restore = <A, E, R>(
  effect: Effect.Effect<A, E, R>,
) => Effect.Effect<A, E, R>;

export interface Line {
  /**
   * Waits for the caller's turn. Run it uninterruptibly: only the wait
   * itself, through `restore`, can be interrupted, and a caller that gives up
   * loses no turn (one handed over just then goes on to the next). True
   * when the caller had to wait for its turn behind another.
   */
  readonly enter: (restore: Restore) => Effect.Effect<boolean>;
  /** Ends the turn: the next caller's begins. */
  readonly leave: Effect.Effect<void>;
  /** Runs `work` in its turn: one at a time, in arrival order. */
  readonly inTurn: <A, E, R>(
    work: Effect.Effect<A, E, R>,
  ) => Effect.Effect<A, E, R>;
}

export const makeLine: Effect.Effect<Line> = Effect.sync(() => {
  let busy = false;
  // A queue read from `head`: taking the next turn is O(1).
  let waiting: Array<Deferred.Deferred<void>> = [];
  let head = 0;

  const leave = Effect.suspend(() => {
    if (head === waiting.length) {
      busy = false;
      return Effect.void;
    }
    const next = waiting[head++];
    if (head >= 1024 && head * 2 >= waiting.length) {
      waiting = waiting.slice(head);
      head = 0;
    }
    // Still busy: the turn passes straight to `next`.
    return Effect.asVoid(Deferred.succeed(next, undefined));
  });

  /** Out of the line before its turn came: true; false if the turn came. */
  const giveUp = (turn: Deferred.Deferred<void>) =>
    Effect.sync(() => {
      const index = waiting.indexOf(turn, head);
      if (index === -1) return false;
      waiting.splice(index, 1);
      return true;
    });

  const enter = (restore: Restore) =>
    Effect.suspend(() => {
      if (!busy) {
        busy = true;
        return Effect.succeed(false);
      }
      return Effect.flatMap(Deferred.make<void>(), (turn) => {
        waiting.push(turn);
        return restore(Deferred.await(turn)).pipe(
          Effect.as(true),
          Effect.onInterrupt(() =>
            Effect.flatMap(
              giveUp(turn),
              // The turn came just as the caller gave up: pass it on.
              (left) => left ? Effect.void : leave,
            )
          ),
        );
      });
    });

  return {
    enter,
    leave,
    inTurn: (work) =>
      Effect.uninterruptibleMask((restore) =>
        Effect.zipRight(
          enter(restore),
          restore(work).pipe(Effect.ensuring(leave)),
        )
      ),
  };
});
