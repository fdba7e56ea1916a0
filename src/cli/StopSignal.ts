/**
 * SIGINT and SIGTERM as a service. The first one starts no new user and lets
 * the users in flight finish; a later one stops every user whose write is
 * not yet sent, while writes already sent finish and get their rows.
 * `deno task sync` delivers one Ctrl-C twice (the terminal's and the task
 * runner's), so signals within a second of the last one taken count as that
 * one. The handlers stay installed until the scope closes: a signal during
 * the run's finalizers must not kill the process before the lock is freed.
 */
import process from "node:process";
import { Context, Deferred, Effect, Layer } from "effect";

const sameSignalWithinMs = 1000;

export interface Stop {
  /** Whether a first signal came: start no new user. */
  readonly requested: Effect.Effect<boolean>;
  /** Completes at a later signal: stop before any further write. */
  readonly now: Effect.Effect<void>;
}

export class StopSignal extends Context.Tag("StopSignal")<StopSignal, Stop>() {
  static readonly layer = Layer.scoped(
    StopSignal,
    Effect.gen(function* () {
      const stopNow = yield* Deferred.make<void>();
      let stopRequested = false;
      let stopNowRequested = false;
      let lastSignalAt = Number.NEGATIVE_INFINITY;
      const onSignal = () => {
        const now = Date.now();
        if (now - lastSignalAt < sameSignalWithinMs) return;
        lastSignalAt = now;
        if (!stopRequested) {
          stopRequested = true;
          process.stderr.write(
            "\nStopping: finishing the users in flight (signal again to stop before any further write)...\n",
          );
          return;
        }
        if (stopNowRequested) return;
        stopNowRequested = true;
        // A Deferred, not a promise: every user in flight waits on it, and a
        // waiter that gives up must leave nothing behind.
        Effect.runSync(Deferred.succeed(stopNow, undefined));
        process.stderr.write(
          "\nStopping now: no further write is sent; the writes already sent finish and are logged...\n",
        );
      };
      yield* Effect.acquireRelease(
        Effect.sync(() => {
          process.on("SIGINT", onSignal);
          process.on("SIGTERM", onSignal);
        }),
        () =>
          Effect.sync(() => {
            process.off("SIGINT", onSignal);
            process.off("SIGTERM", onSignal);
          }),
      );
      return {
        requested: Effect.sync(() => stopRequested),
        now: Deferred.await(stopNow),
      };
    }),
  );
}
