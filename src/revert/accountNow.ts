/**
 * The forum account a log row names, as the forum holds it now: every
 * revert step starts from it, and says the same when it is gone.
 */
import { Effect, Either } from "effect";
import { Discourse, type DiscourseError } from "../discourse/Discourse.ts";
import type { DiscourseUser } from "../discourse/schema.ts";

/** Right: the account; Left: the row's message, nothing put back. */
export const accountNow = (
  username: string,
): Effect.Effect<
  Either.Either<DiscourseUser, string>,
  DiscourseError,
  Discourse
> =>
  Effect.flatMap(Discourse, (discourse) => discourse.userByUsername(username))
    .pipe(
      Effect.map(
        Either.fromOption(() =>
          `"${username}" is no longer in Discourse (deleted or renamed since the sync): nothing put back`
        ),
      ),
    );
