import { Data } from "effect";

/** 403 invalid_access for a bad key, or a 404 on an admin route. Fatal. */
export class DiscourseCredentialsRejected extends Data.TaggedError(
  "DiscourseCredentialsRejected",
)<{
  readonly message: string;
  /** 401, 403, or the 404 Discourse gives on /admin/ routes. */
  readonly status: number;
}> {}

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
)<{
  readonly errors: ReadonlyArray<string>;
  readonly message: string;
  /** The HTTP status, when an answer gave it: a 409 is "already so". */
  readonly status?: number;
}> {}

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

/**
 * Discourse answered with a redirect to another origin (or one this client
 * must not follow): discourse.url is not where the forum answers. Nothing
 * was sent to the other address; every further request would do the same,
 * so it is fatal.
 */
export class DiscourseRedirected extends Data.TaggedError(
  "DiscourseRedirected",
)<{ readonly message: string }> {}

/** An answer larger than such an answer can be: not read past the limit. */
export class DiscourseAnswerTooLarge extends Data.TaggedError(
  "DiscourseAnswerTooLarge",
)<{ readonly message: string }> {}

/**
 * 429s have held this run for `maxTotalRateLimitWait` in all: the remaining
 * users are not reached rather than holding the run and its lock for hours.
 */
export class DiscourseRateLimitBudgetSpent extends Data.TaggedError(
  "DiscourseRateLimitBudgetSpent",
)<{ readonly message: string }> {}

/** A 2xx whose body is not what the endpoint returns. */
export class DiscourseDecodeError extends Data.TaggedError(
  "DiscourseDecodeError",
)<{ readonly message: string }> {}

/**
 * DiscourseConnect refused a `sync_sso` call as a whole: a bad signature (the
 * secret is wrong), DiscourseConnect disabled, or no secret set. Every
 * further call would fail the same way, so it is fatal.
 */
export class DiscourseConnectRejected extends Data.TaggedError(
  "DiscourseConnectRejected",
)<{ readonly message: string }> {}

/**
 * The forum answered a request about one account with another account's
 * data: a rewriting proxy or a hostile server. Nothing may be written on the
 * strength of that answer, to either account.
 */
export class DiscourseWrongAccount extends Data.TaggedError(
  "DiscourseWrongAccount",
)<{
  /** What was asked: `the read of user "alice"`, `the update of user "alice"`... */
  readonly asked: string;
  /** `the account "bob"`, with its external id when the answer had one. */
  readonly answered: string;
  /** The request was a write: it reached the forum before the answer. */
  readonly written: boolean;
}> {
  override get message(): string {
    const answer = `Discourse answered ${this.asked} with ${this.answered}`;
    const cause = `A proxy or plugin in front of the forum may be rewriting ` +
      `answers: check discourse.url and what serves it`;
    return this.written
      ? `${answer}: what it stored, and to which account, is unknown, and ` +
        `nothing further was sent. Compare both accounts in Discourse. ${cause}`
      : `not written: ${answer}, so nothing was written to either account. ` +
        cause;
  }
}

export type DiscourseError =
  | DiscourseWrongAccount
  | DiscourseConnectRejected
  | DiscourseCredentialsRejected
  | DiscourseForbidden
  | DiscourseNotFound
  | DiscourseValidationError
  | DiscourseRateLimited
  | DiscourseServerError
  | DiscourseTransportError
  | DiscourseDecodeError
  | DiscourseRedirected
  | DiscourseAnswerTooLarge
  | DiscourseRateLimitBudgetSpent;
