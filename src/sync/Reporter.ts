import { Context, type Effect } from "effect";
import type { RunMode } from "../audit/AuditLog.ts";
import type { RevertSummary, RunSummary, UserDone } from "./summary.ts";

/** The Discourse request budget, from which the time left is estimated. */
export interface RequestBudget {
  readonly requestsPerMinute: number;
  readonly requestsSent: Effect.Effect<number>;
}

/** Where a command tells the operator what happens; the console or JSON lines. */
export class Reporter extends Context.Tag("Reporter")<Reporter, {
  readonly warn: (message: string) => Effect.Effect<void>;
  readonly info: (message: string) => Effect.Effect<void>;
  readonly start: (
    run: {
      readonly mode: RunMode;
      readonly users: number;
      readonly budget?: RequestBudget;
    },
  ) => Effect.Effect<void>;
  readonly userDone: (done: UserDone) => Effect.Effect<void>;
  /** A heading over the rows that follow (a group's); not in `--json`. */
  readonly heading: (line: string) => Effect.Effect<void>;
  readonly finish: (summary: RunSummary | RevertSummary) => Effect.Effect<void>;
}>() {}
