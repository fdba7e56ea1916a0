/**
 * How a command ends: as a typed failure the edge turns into output and an
 * exit code (src/cli/ExitCode.ts), so no command sets a code or exits.
 */
import { Data, type Option } from "effect";
import type { LockError, LockHeld } from "../lock.ts";
import type { RevertSummary, RunSummary } from "../sync/summary.ts";
import type { Scrub } from "../domain/secrets.ts";

/** A mistake in the command line or an operator file: nothing contacted. */
export class UsageProblem extends Data.TaggedError("UsageProblem")<{
  readonly message: string;
  /** --json: a summary object on stdout says it too. */
  readonly json: boolean;
}> {}

/** The forum's lock could not be taken. */
export class LockRefused extends Data.TaggedError("LockRefused")<{
  readonly error: LockHeld | LockError;
  readonly json: boolean;
}> {}

/** A run that failed as a whole, and the audit log it left, if any. */
export class RunFailed extends Data.TaggedError("RunFailed")<{
  readonly error: { readonly _tag: string; readonly message: string };
  readonly logFile: Option.Option<string>;
  readonly scrub: Scrub;
  readonly json: boolean;
}> {}

/** A run that reached its summary (already printed by the Reporter). */
export class Finished extends Data.TaggedError("Finished")<{
  readonly summary: RunSummary | RevertSummary;
  /** `--check`: drift decides the code. */
  readonly check: boolean;
}> {}

export type CommandEnding =
  | UsageProblem
  | LockRefused
  | RunFailed
  | Finished;
