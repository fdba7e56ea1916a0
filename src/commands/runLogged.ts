import { Effect, Either, Option } from "effect";
import { AuditLog } from "../audit/AuditLog.ts";

/**
 * A run's result and the audit log it left, if any: a run stopped by an
 * error names the file that holds the users done before it.
 */
export const withLogFile = <A, E, R>(run: Effect.Effect<A, E, R>) =>
  Effect.flatMap(
    AuditLog,
    (audit) =>
      Effect.flatMap(
        Effect.either(run),
        (outcome) =>
          Effect.map(audit.written, (logFile) => ({ outcome, logFile })),
      ),
  );

/** The services themselves failed (a log that cannot be made): no log. */
export const servicesFailed = <E>(error: E) =>
  Effect.succeed({
    outcome: Either.left(error),
    logFile: Option.none<string>(),
  });
