/**
 * The users a run considers: `--user`'s one (its Moodle username in any
 * case, a malformed record too), or the slice `--offset` and `--batch-size`
 * pick from the whole list.
 */
import { Effect } from "effect";
import type { Candidate } from "./candidate.ts";
import type { RunOptions } from "./context.ts";
import { UnknownMoodleUser } from "./outcome.ts";
import { selectBatch } from "./select.ts";

export interface Batch {
  readonly batch: ReadonlyArray<Candidate>;
  /** Where the next batch starts; undefined after the last and with --user. */
  readonly nextOffset: number | undefined;
}

const moodleUsernameOf = (candidate: Candidate): string | undefined =>
  candidate._tag === "User"
    ? candidate.username
    : candidate._tag === "Malformed"
    ? candidate.record.username
    : undefined;

export const chooseBatch = (
  candidates: ReadonlyArray<Candidate>,
  options: Pick<RunOptions, "user" | "offset" | "batchSize">,
): Effect.Effect<Batch, UnknownMoodleUser> => {
  const { user } = options;
  if (user === undefined) {
    return Effect.succeed(
      selectBatch(candidates, options.offset, options.batchSize),
    );
  }
  const batch = candidates.filter((candidate) =>
    moodleUsernameOf(candidate)?.toLowerCase() === user.toLowerCase()
  );
  return batch.length === 0
    ? Effect.fail(new UnknownMoodleUser({ username: user }))
    : Effect.succeed({ batch, nextOffset: undefined });
};
