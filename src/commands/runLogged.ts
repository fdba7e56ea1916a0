import { Effect, Either, type Layer, Option } from "effect";
import { AuditLog } from "../audit/AuditLog.ts";
import type { Scrub } from "../domain/secrets.ts";
import { RunFailed } from "./ending.ts";

interface Failure {
  readonly _tag: string;
  readonly message: string;
}

interface Logged<A> {
  readonly outcome: Either.Either<A, Failure>;
  readonly logFile: Option.Option<string>;
}

/**
 * Runs a command's engine on its services. A run stopped by an error ends
 * the command naming the audit log that holds the users done before it; a
 * log that cannot even be made leaves none to name.
 */
export const runLogged = <
  A,
  E extends Failure,
  R,
  ROut,
  LE extends Failure,
  LR,
>(
  run: Effect.Effect<A, E, R>,
  services: Layer.Layer<ROut, LE, LR>,
  ending: { readonly scrub: Scrub; readonly json: boolean },
) =>
  Effect.gen(function* () {
    const audit = yield* AuditLog;
    const outcome: Either.Either<A, Failure> = yield* Effect.either(run);
    const logFile = yield* audit.written;
    return { outcome, logFile };
  }).pipe(
    Effect.provide(services),
    Effect.catchAll((error: Failure) =>
      Effect.succeed<Logged<A>>({
        outcome: Either.left(error),
        logFile: Option.none(),
      })
    ),
    Effect.flatMap(({ outcome, logFile }: Logged<A>) =>
      Either.match(outcome, {
        onLeft: (error) =>
          Effect.fail(new RunFailed({ error, logFile, ...ending })),
        onRight: (value) => Effect.succeed(value),
      })
    ),
  );
