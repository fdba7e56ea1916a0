/**
 * `--interactive`: the operator's word before each user's writes, until an
 * "apply all" makes the rest go without asking or a "quit" stops the run.
 */
import { Effect, Ref } from "effect";
import type { RunContext, RunOptions } from "./context.ts";
import type { Ledger } from "./ledger.ts";

export const askOperatorEachUser = (
  confirm: RunOptions["confirm"],
  ledger: Pick<Ledger, "stopWith">,
): Effect.Effect<RunContext["operatorAccepts"]> =>
  Effect.map(
    Ref.make(false),
    (applyAll) => (entry, plan) =>
      Effect.gen(function* () {
        if (!confirm || (yield* Ref.get(applyAll))) return true;
        const decision = yield* confirm({ entry, plan });
        if (decision === "all") yield* Ref.set(applyAll, true);
        if (decision === "quit") {
          yield* ledger.stopWith({ _tag: "OperatorQuit" });
        }
        return decision === "apply" || decision === "all";
      }),
  );
