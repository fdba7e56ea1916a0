// CONTRACT STUB: the helper implementing the Discourse client replaces the
// body of this file, keeping the exported names and signatures below.
import { Context, Data, type Effect, type Option } from "effect";
import type {
  AdminUserRow,
  DiscourseUser,
  EmailsResponse,
  ProfileUpdate,
} from "./schema.ts";

/** 403 invalid_access for a bad key, or a 404 on an admin route. Fatal. */
export class DiscourseCredentialsRejected extends Data.TaggedError(
  "DiscourseCredentialsRejected",
)<{ readonly message: string }> {}

/** 403 for something this user may not do (email not editable...). */
export class DiscourseForbidden extends Data.TaggedError("DiscourseForbidden")<
  { readonly message: string }
> {}

export class DiscourseNotFound extends Data.TaggedError("DiscourseNotFound")<{
  readonly message: string;
}> {}

/** 422 (or 400): Discourse refused the data; `errors` are its own words. */
export class DiscourseValidationError extends Data.TaggedError(
  "DiscourseValidationError",
)<{ readonly errors: ReadonlyArray<string>; readonly message: string }> {}

/** Still 429 after every retry allowed. */
export class DiscourseRateLimited extends Data.TaggedError(
  "DiscourseRateLimited",
)<{ readonly message: string }> {}

/** 5xx after every retry allowed. */
export class DiscourseServerError extends Data.TaggedError(
  "DiscourseServerError",
)<{ readonly status: number; readonly message: string }> {}

/** Timeout or connection failure after every retry allowed. */
export class DiscourseTransportError extends Data.TaggedError(
  "DiscourseTransportError",
)<{ readonly message: string }> {}

/** A 2xx whose body is not what the endpoint returns. */
export class DiscourseDecodeError extends Data.TaggedError(
  "DiscourseDecodeError",
)<{ readonly message: string }> {}

export type DiscourseError =
  | DiscourseCredentialsRejected
  | DiscourseForbidden
  | DiscourseNotFound
  | DiscourseValidationError
  | DiscourseRateLimited
  | DiscourseServerError
  | DiscourseTransportError
  | DiscourseDecodeError;

export class Discourse extends Context.Tag("Discourse")<Discourse, {
  /** `GET /u/{username}.json?skip_track_visit=true`; 404 is None. */
  readonly userByUsername: (
    username: string,
  ) => Effect.Effect<Option.Option<DiscourseUser>, DiscourseError>;
  /** `GET /u/by-external/{id}.json`; 404 is None. */
  readonly userByExternalId: (
    externalId: string,
  ) => Effect.Effect<Option.Option<DiscourseUser>, DiscourseError>;
  /** `GET /u/{username}/emails.json`. */
  readonly emails: (
    username: string,
  ) => Effect.Effect<EmailsResponse, DiscourseError>;
  /**
   * One page (1-based, 100 rows) of `GET /admin/users/list/active.json`
   * with `show_emails=true&order=created&asc=true`, optionally filtered.
   */
  readonly adminUserPage: (
    page: number,
    filter?: { readonly filter?: string; readonly email?: string },
  ) => Effect.Effect<ReadonlyArray<AdminUserRow>, DiscourseError>;
  /** `PUT /u/{username}.json`; the user as stored after the update. */
  readonly updateProfile: (
    username: string,
    fields: ProfileUpdate,
  ) => Effect.Effect<DiscourseUser, DiscourseError>;
  /** `PUT /u/{username}/preferences/email.json` (empty 200 body). */
  readonly requestEmailChange: (
    username: string,
    email: string,
  ) => Effect.Effect<void, DiscourseError>;
  /** HTTP requests sent so far by this process, retries included. */
  readonly requestsSent: Effect.Effect<number>;
}>() {}
