import process from "node:process";
import { PlatformLayer } from "./platform.ts";
import { Deferred, Effect, Logger } from "effect";
import { ValidationError } from "@effect/cli";
import { completionScript, helpText, readRequest } from "./args.ts";
import { makeCli, version } from "./cli.ts";
import { releaseAllLocks } from "./lock.ts";
import {
  deniedByDeno,
  deniedByDenoIn,
  missingPermissionMessage,
} from "./permissions.ts";
import { ExitCode } from "./sync/outcome.ts";

/**
 * `deno task sync -- --apply` passes a literal `--` first; people type both
 * forms, so one leading `--` is dropped.
 */
const args = process.argv.slice(2);
const withoutDashes = args[0] === "--" ? args.slice(1) : args;

/** Help, version, completions and argv mistakes never reach @effect/cli. */
const request = readRequest(withoutDashes);
switch (request._tag) {
  case "Help":
    process.stdout.write(helpText(request.command, version));
    process.exit(ExitCode.ok);
    break;
  case "Version":
    process.stdout.write(`${version}\n`);
    process.exit(ExitCode.ok);
    break;
  case "Completions":
    process.stdout.write(completionScript(request.shell));
    process.exit(ExitCode.ok);
    break;
  case "Invalid":
    process.stderr.write(`error: ${request.problem}\n`);
    process.exit(ExitCode.usage);
}

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
 * The first SIGINT/SIGTERM starts no new user and lets the users in flight
 * finish; a second one stops every user whose write is not yet sent, while
 * writes already sent finish and get their rows. `deno task sync` delivers
 * one Ctrl-C twice (the terminal's and the task runner's), so signals within
 * a second of the last one taken count as that one.
 */
const sameSignalWithinMs = 1000;
let stopRequested = false;
let lastSignalAt = Number.NEGATIVE_INFINITY;
let stopNowRequested = false;
// A Deferred, not a promise: every user in flight waits on it, and a waiter
// that gives up must leave nothing behind.
const stopNow = Effect.runSync(Deferred.make<void>());
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
  Effect.runSync(Deferred.succeed(stopNow, undefined));
  process.stderr.write(
    "\nStopping now: no further write is sent; the writes already sent finish and are logged...\n",
  );
};
process.on("SIGINT", onSignal);
process.on("SIGTERM", onSignal);
// process.exit skips Effect finalizers (the end of the run): the forum lock
// must not outlive the run, whichever way it ends.
process.on("exit", releaseAllLocks);

/**
 * Deno's node:fs refuses some calls (fs.access wants sys access to "uid")
 * in a promise of its own that nobody awaits: the refusal still gets named.
 */
globalThis.addEventListener("unhandledrejection", (event) => {
  const denied = deniedByDeno(event.reason);
  if (denied === undefined) return;
  event.preventDefault();
  process.stderr.write(`error: ${missingPermissionMessage(denied)}\n`);
  process.exit(ExitCode.usage);
});

let exitCode: number = ExitCode.ok;
const cli = makeCli({
  stopRequested: Effect.sync(() => stopRequested),
  stopNow: Deferred.await(stopNow),
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
    Effect.provide(PlatformLayer),
    // Logs (--log-level) go to stderr: stdout is the diff, or --json's objects.
    Effect.provide(
      Logger.replace(
        Logger.defaultLogger,
        Logger.withConsoleError(Logger.stringLogger),
      ),
    ),
  ),
).then((exit) => {
  if (exit._tag === "Failure") {
    const denied = deniedByDenoIn(exit.cause);
    if (denied !== undefined) {
      process.stderr.write(`error: ${missingPermissionMessage(denied)}\n`);
      exitCode = ExitCode.usage;
    } else {
      process.stderr.write(`error: ${String(exit.cause)}\n`);
      exitCode = exitCode || ExitCode.failures;
    }
  }
  process.exit(
    stopRequested && exitCode !== ExitCode.fatal
      ? ExitCode.interrupted
      : exitCode,
  );
});
