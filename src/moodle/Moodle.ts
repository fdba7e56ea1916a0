// CONTRACT STUB: the helper implementing the Moodle client replaces the body
// of this file, keeping the exported names and signatures below.
import { Context, Data, type Effect, type Option } from "effect";
import type { MoodleRecord, MoodleWarning } from "./schema.ts";

/** Moodle answered with an exception (HTTP 200 and an `exception` key). */
export class MoodleApiError extends Data.TaggedError("MoodleApiError")<{
  readonly errorcode: string;
  readonly message: string;
}> {}

/** Moodle answered with an HTTP error status (403: web services disabled). */
export class MoodleHttpError extends Data.TaggedError("MoodleHttpError")<{
  readonly status: number;
  readonly message: string;
}> {}

/** Moodle could not be reached, or timed out. */
export class MoodleTransportError extends Data.TaggedError(
  "MoodleTransportError",
)<{ readonly message: string }> {}

/** Moodle's answer was not the JSON this function returns. */
export class MoodleDecodeError extends Data.TaggedError("MoodleDecodeError")<{
  readonly message: string;
}> {}

export type MoodleError =
  | MoodleApiError
  | MoodleHttpError
  | MoodleTransportError
  | MoodleDecodeError;

export interface MoodleUsers {
  /** In Moodle id order. */
  readonly records: ReadonlyArray<MoodleRecord>;
  readonly warnings: ReadonlyArray<MoodleWarning>;
}

export class Moodle extends Context.Tag("Moodle")<Moodle, {
  /** Every user (`core_user_get_users`, email `%`), one request. */
  readonly allUsers: Effect.Effect<MoodleUsers, MoodleError>;
  /** One user by exact username (`core_user_get_users_by_field`). */
  readonly userByUsername: (
    username: string,
  ) => Effect.Effect<Option.Option<MoodleRecord>, MoodleError>;
}>() {}
