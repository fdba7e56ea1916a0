/**
 * The process's exit code, decided here and nowhere else: from the ending a
 * command failed with, from @effect/cli's own refusal of argv, from Deno's
 * refusal of a permission, or from a stop signal.
 */
import process from "node:process";
import { ValidationError } from "@effect/cli";
import { type Cause, Console, Effect, Option } from "effect";
import { AuditLogError } from "../audit/AuditLog.ts";
import type { CommandEnding } from "../commands/ending.ts";
import { terminalSafe, terminalSafeJson } from "../domain/terminal.ts";
import { makeScrubber } from "../domain/secrets.ts";
import { deniedByDenoIn, missingPermissionMessage } from "../permissions.ts";
import { ExitCode, exitCodeOf } from "../sync/outcome.ts";

export { ExitCode };

const endingTags: ReadonlySet<string> = new Set<CommandEnding["_tag"]>([
  "UsageProblem",
  "LockRefused",
  "RunFailed",
  "Finished",
]);

const isCommandEnding = (error: unknown): error is CommandEnding =>
  typeof error === "object" && error !== null && "_tag" in error &&
  typeof error._tag === "string" && endingTags.has(error._tag);

export const exitCodeOfEnding = (ending: CommandEnding): number => {
  switch (ending._tag) {
    case "UsageProblem":
      return ExitCode.usage;
    case "LockRefused":
      return ending.error._tag === "LockHeld" ? ExitCode.fatal : ExitCode.usage;
    case "RunFailed":
      // A log that could not even be opened: nothing was contacted. A log
      // that failed after the run contacted a server is fatal, and its
      // message says what reached the forum.
      return ending.error instanceof AuditLogError &&
          ending.error.reached === undefined
        ? ExitCode.usage
        : ending.error._tag === "UnknownMoodleUser" ||
            ending.error._tag === "NoMoodleUsers"
        ? ExitCode.failures
        : ExitCode.fatal;
    case "Finished":
      return exitCodeOf(ending.summary, ending.check);
  }
};

/**
 * Says how a command ended when its own output has not: the error on stderr
 * (secrets hidden, server text's controls escaped) and, with --json, a
 * summary object on stdout too, so a script reading stdout alone still
 * learns that the run failed, why, and its exit code.
 */
const reportEnding = (ending: CommandEnding): Effect.Effect<number> =>
  Effect.gen(function* () {
    const code = exitCodeOfEnding(ending);
    if (ending._tag === "Finished") return code;
    const message = ending._tag === "LockRefused"
      ? ending.error.message
      : ending._tag === "RunFailed"
      ? ending.error.message
      : ending.message;
    const scrub = ending._tag === "RunFailed"
      ? ending.scrub
      : (text: string) => text;
    yield* Console.error(
      `error: ${terminalSafe(scrub(message), { keepNewlines: true })}`,
    );
    if (ending.json) {
      yield* Console.log(
        scrub(terminalSafeJson({
          type: "summary",
          error: message,
          exit_code: code,
        })),
      );
    }
    if (ending._tag === "RunFailed" && Option.isSome(ending.logFile)) {
      yield* Console.error(
        `The audit log ${ending.logFile.value} holds the users done before the error.`,
      );
    }
    return code;
  });

/** A failure no command turned into an ending: a refused permission or a bug. */
export const unexpectedEnding = (cause: Cause.Cause<unknown>) =>
  Effect.sync(() => {
    const denied = deniedByDenoIn(cause);
    if (denied !== undefined) {
      process.stderr.write(`error: ${missingPermissionMessage(denied)}\n`);
      return ExitCode.usage;
    }
    // A bug's report may quote anything, server text included: hidden and
    // escaped like every other line (the settings' secrets are out of reach
    // here; the environment's are not).
    const scrub = makeScrubber(
      ["MOODLE_TOKEN", "DISCOURSE_API_KEY", "DISCOURSE_SSO_SECRET"].map((
        name,
      ) => process.env[name]),
    );
    process.stderr.write(
      `error: ${terminalSafe(scrub(String(cause)), { keepNewlines: true })}\n`,
    );
    return ExitCode.failures;
  });

/**
 * The program's code as a value. Its endings are reported before the scope
 * around it closes, so they come out before the run's finalizers do.
 */
export const exitCodeOfProgram = <R>(
  program: Effect.Effect<void, unknown, R>,
): Effect.Effect<number, never, R> =>
  program.pipe(
    Effect.as<number>(ExitCode.ok),
    Effect.catchIf(isCommandEnding, reportEnding),
    // @effect/cli has already said what is wrong with argv.
    Effect.catchIf(ValidationError.isValidationError, () =>
      Effect.succeed(ExitCode.usage)),
    Effect.catchAllCause(unexpectedEnding),
  );

/** A stopped run exits 130, unless it failed as a whole first. */
export const withStop = (code: number, stopRequested: boolean): number =>
  stopRequested && code !== ExitCode.fatal ? ExitCode.interrupted : code;
