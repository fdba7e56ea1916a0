// The exit code of each way a command ends, decided in src/cli/ExitCode.ts,
// and the flag ranges the table in src/cli/args.ts holds.
import assert from "node:assert/strict";
import { Option } from "effect";
import { AuditLogError } from "../../src/audit/AuditLog.ts";
import { outOfRange, syncFlags } from "../../src/cli/args.ts";
import {
  ExitCode,
  exitCodeOfEnding,
  withStop,
} from "../../src/cli/ExitCode.ts";
import {
  LockRefused,
  RunFailed,
  UsageProblem,
} from "../../src/commands/ending.ts";
import { LockError, LockHeld } from "../../src/lock.ts";

const failed = (error: { readonly _tag: string; readonly message: string }) =>
  new RunFailed({
    error,
    logFile: Option.none(),
    scrub: (text) => text,
    json: false,
  });

Deno.test("each ending maps to its exit code", () => {
  const cases: ReadonlyArray<
    [string, Parameters<typeof exitCodeOfEnding>[0], number]
  > = [
    [
      "a usage problem",
      new UsageProblem({ message: "x", json: false }),
      ExitCode.usage,
    ],
    [
      "a lock held by another run",
      new LockRefused({
        error: new LockHeld({ path: "/l", holder: Option.none(), forum: "f" }),
        json: false,
      }),
      ExitCode.fatal,
    ],
    [
      "a lock that cannot be made",
      new LockRefused({
        error: new LockError({ path: "/l", reason: "read-only" }),
        json: false,
      }),
      ExitCode.usage,
    ],
    [
      "a log that could not be opened",
      failed(new AuditLogError({ path: "/log", reason: "denied" })),
      ExitCode.usage,
    ],
    [
      "a log that failed after a write",
      failed(
        new AuditLogError({ path: "/log", reason: "full", reached: "a write" }),
      ),
      ExitCode.fatal,
    ],
    [
      "an unknown --user",
      failed({ _tag: "UnknownMoodleUser", message: "" }),
      ExitCode.failures,
    ],
    [
      "no Moodle users",
      failed({ _tag: "NoMoodleUsers", message: "" }),
      ExitCode.failures,
    ],
    [
      "a forum that refuses the key",
      failed({ _tag: "DiscourseAuth", message: "" }),
      ExitCode.fatal,
    ],
  ];
  for (const [name, ending, code] of cases) {
    assert.equal(exitCodeOfEnding(ending), code, name);
  }
});

Deno.test("a stopped run exits 130 unless it failed as a whole", () => {
  assert.equal(withStop(ExitCode.ok, true), ExitCode.interrupted);
  assert.equal(withStop(ExitCode.failures, true), ExitCode.interrupted);
  assert.equal(withStop(ExitCode.fatal, true), ExitCode.fatal);
  assert.equal(withStop(ExitCode.failures, false), ExitCode.failures);
});

Deno.test("integer flags hold the table's ranges", () => {
  assert.equal(
    outOfRange(syncFlags, { offset: 0, "batch-size": 0, concurrency: 1 }),
    undefined,
  );
  assert.equal(
    outOfRange(syncFlags, { offset: -1 }),
    "--offset must be 0 or more, not -1",
  );
  assert.equal(
    outOfRange(syncFlags, { "batch-size": -3 }),
    "--batch-size must be 0 or more, not -3",
  );
  assert.equal(
    outOfRange(syncFlags, { concurrency: 0 }),
    "--concurrency must be 1 or more, not 0",
  );
});
