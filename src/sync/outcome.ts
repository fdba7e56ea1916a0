import type { RunMode } from "../audit/AuditLog.ts";
import type { LedgerTotals } from "./summary.ts";
import { Data } from "effect";
import { removalsHeldExitCode } from "../domain/removals.ts";
import { type FieldChange, isResend } from "./diff.ts";

/** `--user` named a username Moodle does not have: nothing to run. */
export class UnknownMoodleUser extends Data.TaggedError("UnknownMoodleUser")<{
  readonly username: string;
}> {
  override get message(): string {
    return `no Moodle user has the username "${this.username}" (usernames are matched exactly, in lower case); nothing was done and no log was written`;
  }
}

/**
 * Moodle listed nobody. Every site has users (the guest at least), so this
 * is the token's user not seeing them: a capability taken away leaves the
 * call working and the list empty. Syncing nobody and exiting 0 would
 * hide it for as long as nobody reads the logs.
 */
export class NoMoodleUsers extends Data.TaggedError("NoMoodleUsers") {
  override get message(): string {
    return "Moodle returned no users at all. Every site has some (the guest user at least), and the call leaves out users whose email the token's user cannot see: a token that lost a capability looks exactly like this. Give that user's role moodle/user:viewdetails, moodle/user:viewhiddendetails and moodle/course:useremail at the system level. Nothing was done and no log was written.";
  }
}

/** The summary's words for a run that logged nobody. */
export const noLogWritten = "none (no user was logged)";

export const ExitCode = {
  ok: 0,
  failures: 1,
  usage: 2,
  fatal: 3,
  drift: 4,
  removalsHeld: removalsHeldExitCode,
  interrupted: 130,
} as const;

/**
 * What a finished user leaves to do. In a dry-run: "change" when `--apply`
 * with the same flags would write it (a re-send of equal values under
 * `--force-recreate` is no difference; a refused user is not written), and
 * "missing" for an account only `--create-missing` would make. After
 * `--apply`: "change" while a real difference remains.
 */
export const pendingOf = (
  mode: RunMode,
  // Plain strings: a row read back from a CSV log is judged the same way.
  done: {
    readonly entry: { readonly action: string; readonly status: string };
    readonly changes: ReadonlyArray<FieldChange>;
  },
  createMissing: boolean,
): "change" | "missing" | undefined => {
  const { action, status } = done.entry;
  const differs = done.changes.some((change) => !isResend(change));
  if (mode === "apply") {
    return differs && status !== "SUCCESS" ? "change" : undefined;
  }
  if (status !== "DRY_RUN") return undefined;
  if (action === "CREATE") return createMissing ? "change" : "missing";
  return differs ? "change" : undefined;
};

/**
 * The exit code of a finished run; one place decides the mapping. `--check`
 * answers whether `--apply` would write anything: a yes is 4 whatever else
 * went wrong, since the forum is out of step either way.
 */
export const exitCodeOf = (
  summary: LedgerTotals & {
    readonly pendingChanges: number;
    readonly membershipChanges?: number;
    readonly removalsHeld?: string | undefined;
  },
  check: boolean,
): number => {
  if (summary.stoppedBy?._tag === "Interrupted") return ExitCode.interrupted;
  const drift = summary.pendingChanges + (summary.membershipChanges ?? 0);
  if (check && drift > 0) return ExitCode.drift;
  if (summary.stoppedBy?._tag === "Fatal") return ExitCode.fatal;
  // Removals past the threshold wait for the operator: the run's own code.
  if (summary.removalsHeld !== undefined) return ExitCode.removalsHeld;
  if (summary.failures > 0) return ExitCode.failures;
  return ExitCode.ok;
};
