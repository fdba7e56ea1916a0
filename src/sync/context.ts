/** What a sync's steps share: the run's options and what was learnt up front. */
import type { Effect } from "effect";
import type { AuditEntry } from "../audit/AuditLog.ts";
import type { Settings } from "../config/Settings.ts";
import type { Plan } from "./diff.ts";
import type { EmailSource, ForumAccount } from "./fetchDiscourse.ts";
import type { Ledger } from "./ledger.ts";

/** The operator's answer in `--interactive`. */
export type Decision = "apply" | "skip" | "all" | "quit";

export interface RunOptions {
  readonly apply: boolean;
  /** Only this Moodle username. */
  readonly user: string | undefined;
  readonly offset: number;
  /** 0: every user from the offset on. */
  readonly batchSize: number;
  /** Send every enabled field even when equal: the repair after a restore. */
  readonly force: boolean;
  /** Read every profile whatever the state store says, and rewrite it. */
  readonly full?: boolean;
  /** With `apply`: create the forum accounts of users the forum lacks. */
  readonly createMissing?: boolean;
  /** Users in flight at most; undefined: as the limit and latency need. */
  readonly concurrency: number | undefined;
  /** Asked before each user's writes in `--interactive`. */
  readonly confirm?: (
    pending: { readonly entry: AuditEntry; readonly plan: Plan },
  ) => Effect.Effect<Decision>;
  /** Polled before each user: true once SIGINT/SIGTERM asked to stop. */
  readonly stopRequested?: Effect.Effect<boolean>;
  /**
   * Completes at a second signal: users whose write is not yet sent are
   * dropped (with a row saying so); writes already sent finish and are logged.
   */
  readonly stopNow?: Effect.Effect<void>;
  /** The lines of `exclude.file`, read before anything is contacted. */
  readonly excludedByFile: ReadonlyArray<string>;
  /** `--allow-removals N`: this run's removal threshold. */
  readonly allowRemovals?: number | undefined;
  /** `--allow-empty-groups`: an empty source may empty its group. */
  readonly allowEmptyGroups?: boolean;
}

/** A run's context, handed to each user's steps. */
export interface RunContext {
  readonly settings: Settings;
  readonly options: RunOptions;
  /** Lower-case forum username -> the Moodle usernames that become it. */
  readonly collisions: ReadonlyMap<string, ReadonlyArray<string>>;
  /** Lower-case addresses more than one Moodle user has. */
  readonly emailsShared: ReadonlyMap<string, ReadonlyArray<string>>;
  readonly emailSource: EmailSource;
  readonly ledger: Ledger;
  /** Told of each forum account a user's steps find (the state store's). */
  readonly accountFound?: (
    moodleId: number,
    account: ForumAccount,
  ) => Effect.Effect<void>;
  /** In --interactive, the operator's word before a user's writes. */
  readonly operatorAccepts: (
    pending: AuditEntry,
    plan: Plan,
  ) => Effect.Effect<boolean>;
}
