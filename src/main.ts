import process from "node:process";
import { NodeContext } from "@effect/platform-node";
import { Effect } from "effect";
import { ValidationError } from "@effect/cli";
import { makeCli } from "./cli.ts";
import { releaseAllLocks } from "./lock.ts";
import { ExitCode } from "./sync/outcome.ts";

/**
 * `deno task sync -- --apply` passes a literal `--` first; people type both
 * forms, so one leading `--` is dropped.
 */
const args = process.argv.slice(2);
const withoutDashes = args[0] === "--" ? args.slice(1) : args;

/**
 * @effect/cli reads its built-in `--log-level` only before the command's own
 * flags; operators append it anywhere, so it is moved to the front.
 */
const hoistLogLevel = (
  given: ReadonlyArray<string>,
): Array<string> => {
  const hoisted: Array<string> = [];
  const rest: Array<string> = [];
  for (let i = 0; i < given.length; i++) {
    if (given[i].startsWith("--log-level=")) {
      hoisted.push(given[i]);
    } else if (given[i] === "--log-level" && i + 1 < given.length) {
      hoisted.push(given[i], given[i + 1]);
      i++;
    } else {
      rest.push(given[i]);
    }
  }
  return [...hoisted, ...rest];
};

const argv = [...process.argv.slice(0, 2), ...hoistLogLevel(withoutDashes)];

/**
 * The first SIGINT/SIGTERM lets the users in flight finish and their rows be
 * written; a second one quits at once.
 */
let stopRequested = false;
const onSignal = () => {
  if (stopRequested) process.exit(ExitCode.interrupted);
  stopRequested = true;
  process.stderr.write(
    "\nStopping: finishing the users in flight (signal again to quit now)...\n",
  );
};
process.on("SIGINT", onSignal);
process.on("SIGTERM", onSignal);
// process.exit skips Effect finalizers (a second signal, the end of the run):
// the forum lock must not outlive the run, whichever way it ends.
process.on("exit", releaseAllLocks);

let exitCode: number = ExitCode.ok;
const cli = makeCli({
  stopRequested: Effect.sync(() => stopRequested),
  setExitCode: (code) => {
    exitCode = code;
  },
});

Effect.runPromiseExit(
  cli(argv).pipe(
    Effect.catchIf(ValidationError.isValidationError, () =>
      Effect.sync(() => {
        exitCode = ExitCode.usage;
      })),
    Effect.provide(NodeContext.layer),
  ),
).then((exit) => {
  if (exit._tag === "Failure") {
    process.stderr.write(`error: ${String(exit.cause)}\n`);
    exitCode = exitCode || ExitCode.failures;
  }
  process.exit(
    stopRequested && exitCode !== ExitCode.fatal
      ? ExitCode.interrupted
      : exitCode,
  );
});
