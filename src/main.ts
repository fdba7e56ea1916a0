import process from "node:process";
import { makeRunMain } from "@effect/platform/Runtime";
import { Exit } from "effect";
import { constVoid } from "effect/Function";
import { program } from "./cli/Cli.ts";
import { ExitCode } from "./cli/ExitCode.ts";
import { deniedByDeno, missingPermissionMessage } from "./permissions.ts";

/**
 * `deno task sync -- --apply` passes a literal `--` first; people type both
 * forms, so one leading `--` is dropped.
 */
const given = process.argv.slice(2);
const argv = given[0] === "--" ? given.slice(1) : given;

/**
 * NodeRuntime.runMain, except for signals: it interrupts the program at the
 * first one, which would cut the users in flight short, while StopSignal
 * gives the first signal to the run. The process ends only once the
 * program's finalizers (the forum lock, the audit log, the journal) ran.
 */
const runMain = makeRunMain(({ fiber, teardown }) => {
  const keepAlive = setInterval(constVoid, 2 ** 31 - 1);
  let refusedOutsideEffect = false;
  // Deno's node:fs refuses some calls (fs.access wants sys access to "uid")
  // in a promise of its own that nobody awaits: the refusal still gets named,
  // and the program stops through its finalizers.
  globalThis.addEventListener("unhandledrejection", (event) => {
    const denied = deniedByDeno(event.reason);
    if (denied === undefined) return;
    event.preventDefault();
    process.stderr.write(`error: ${missingPermissionMessage(denied)}\n`);
    refusedOutsideEffect = true;
    fiber.unsafeInterruptAsFork(fiber.id());
  });
  fiber.addObserver((exit) => {
    clearInterval(keepAlive);
    teardown(
      exit,
      (code) => process.exit(refusedOutsideEffect ? ExitCode.usage : code),
    );
  });
});

runMain(program(argv), {
  disableErrorReporting: true,
  disablePrettyLogger: true,
  teardown: (exit, onExit) =>
    onExit(
      Exit.isSuccess(exit) && typeof exit.value === "number"
        ? exit.value
        : ExitCode.failures,
    ),
});
