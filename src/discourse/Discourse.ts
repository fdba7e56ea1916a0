import * as Headers from "@effect/platform/Headers";
import * as HttpClient from "@effect/platform/HttpClient";
import * as HttpClientRequest from "@effect/platform/HttpClientRequest";
import {
  Clock,
  Context,
  Data,
  Duration,
  Effect,
  Either,
  Layer,
  Option,
  Random,
  Redacted,
  Ref,
  Schema,
} from "effect";
import { describeParseError } from "../parseProblems.ts";
import { CurrentSettings } from "../settings.ts";
import { scrubberFor } from "../domain/secrets.ts";
import { terminalSafe } from "../domain/terminal.ts";
import {
  type Answer,
  describeBytes,
  type GuardedFailure,
  type RedirectRefused,
  sendGuarded,
} from "../http/guarded.ts";
import { makeRateLimiter } from "./RateLimiter.ts";
import {
  AdminUserDetail,
  AdminUserPage,
  type AdminUserRow,
  CreateUserResponse,
  type DiscourseUser,
  EmailsResponse,
  ErrorBody,
  type NewLocalAccount,
  type ProfileUpdate,
  type SsoAccount,
  SyncSsoResponse,
  UpdateResponse,
  UserResponse,
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

/** Knobs of the client; tests and the benchmark shrink the waits. */
export interface DiscourseOptions {
  /** One attempt, response body included. */
  readonly requestTimeout: Duration.DurationInput;
  /** Retries after a 429 before giving up with DiscourseRateLimited. */
  readonly maxRateLimitRetries: number;
  /** Retries after a 5xx, a timeout or a lost connection. */
  readonly maxFailureRetries: number;
  /** First backoff after a failure; doubles each retry, jittered. */
  readonly backoffBase: Duration.DurationInput;
  readonly backoffCap: Duration.DurationInput;
  /** The span `settings.discourse.requestsPerMinute` is counted over. */
  readonly rateLimitWindow: Duration.DurationInput;
  /** Wait after a 429 that says neither Retry-After nor wait_seconds. */
  readonly defaultRateLimitWait: Duration.DurationInput;
  /** Longest wait honoured for one 429, whatever the server asks. */
  readonly maxRateLimitWait: Duration.DurationInput;
  /** Longest the whole run may be held by 429s, all of them together. */
  readonly maxTotalRateLimitWait: Duration.DurationInput;
}

export const defaultDiscourseOptions: DiscourseOptions = {
  requestTimeout: Duration.seconds(30),
  maxRateLimitRetries: 8,
  maxFailureRetries: 4,
  backoffBase: Duration.millis(500),
  backoffCap: Duration.seconds(30),
  rateLimitWindow: Duration.minutes(1),
  defaultRateLimitWait: Duration.seconds(5),
  maxRateLimitWait: Duration.minutes(2),
  maxTotalRateLimitWait: Duration.minutes(30),
};

/**
 * The most an answer is read: a profile or an emails list is a few KB, a
 * page of 100 admin list rows a few hundred.
 */
export const answerLimits = {
  single: 1024 * 1024,
  listPage: 8 * 1024 * 1024,
} as const;

export interface DiscourseService {
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
  /**
   * `GET /admin/users/{id}.json`: the DiscourseConnect external id the
   * account carries, or None when it has no SSO record.
   */
  readonly externalIdOf: (
    userId: number,
  ) => Effect.Effect<Option.Option<string>, DiscourseError>;
  /**
   * `POST /admin/users/sync_sso`, signed with `discourse.ssoSecret`: the
   * account Discourse created, or the one it found by SSO record or email.
   */
  readonly syncSso: (
    account: SsoAccount,
  ) => Effect.Effect<SyncSsoResponse, DiscourseError>;
  /**
   * `POST /users.json` as admin, active and approved, without a password.
   * Its `success: false` fails as DiscourseValidationError. Success does not
   * prove an account exists (a taken email also "succeeds"): read it back.
   */
  readonly createUser: (
    account: NewLocalAccount,
  ) => Effect.Effect<void, DiscourseError>;
  /** `PUT /u/{username}/preferences/email.json` (empty 200 body). */
  readonly requestEmailChange: (
    username: string,
    email: string,
  ) => Effect.Effect<void, DiscourseError>;
  /** HTTP requests sent so far by this process, retries included. */
  readonly requestsSent: Effect.Effect<number>;
  /** Requests Discourse answered (any status): 0 means never reached. */
  readonly requestsAnswered: Effect.Effect<number>;
}

/** One API call: what the operator reads in errors, and what goes on the wire. */
interface Call {
  /** Completes "could not …", e.g. `read user "alice"`. */
  readonly what: string;
  readonly method: "GET" | "PUT" | "POST";
  /** Already URL-encoded, starting with a slash. */
  readonly path: string;
  readonly query?: Readonly<Record<string, string>>;
  /** Sent as JSON. */
  readonly body?: unknown;
  /** Sent as application/x-www-form-urlencoded (percent-encoded: `+` safe). */
  readonly form?: Readonly<Record<string, string>>;
  /** Bytes of the answer read at most; default `answerLimits.single`. */
  readonly maxBytes?: number;
}

/** What one attempt brought back, before any judgement. */
export type Attempt =
  | {
    readonly _tag: "Answered";
    readonly status: number;
    readonly headers: Readonly<Record<string, string>>;
    readonly text: string;
  }
  | { readonly _tag: "Unanswered"; readonly reason: string }
  | { readonly _tag: "Redirected"; readonly refused: RedirectRefused }
  | { readonly _tag: "TooLarge"; readonly limitBytes: number };

const excerptLength = 200;

/**
 * Collapses whitespace, drops HTML tags, shows control characters escaped
 * (server text is terminal input) and cuts the text to an excerpt.
 */
export const excerpt = (text: string, max: number = excerptLength): string => {
  const looksLikeHtml = /^\s*</.test(text);
  const plain = terminalSafe(
    (looksLikeHtml ? text.replace(/<[^>]*>/g, " ") : text)
      .replace(/\s+/g, " ")
      .trim(),
  );
  return plain.length > max ? `${plain.slice(0, max)}…` : plain;
};

const parseJson = (text: string): Option.Option<unknown> => {
  try {
    return Option.some(JSON.parse(text));
  } catch {
    return Option.none();
  }
};

const decodeErrorBody = Schema.decodeUnknownOption(ErrorBody);

/**
 * Discourse's own explanation in an error answer: JSON `errors`, or the
 * text. `scrub` runs on each decoded string before it is cut, so neither an
 * escaped secret nor half of one survives.
 */
export const serverWords = (
  text: string,
  scrub: (text: string) => string = (text) => text,
): ReadonlyArray<string> => {
  const json = parseJson(text);
  if (Option.isSome(json)) {
    const body = decodeErrorBody(json.value);
    if (Option.isSome(body) && body.value.errors?.length) {
      return body.value.errors.map((words) => excerpt(scrub(words)));
    }
    const value = json.value;
    if (typeof value === "object" && value !== null) {
      const record = value as Record<string, unknown>;
      if (typeof record.message === "string" && record.message.trim()) {
        return [excerpt(scrub(record.message))];
      }
    }
  }
  const plain = excerpt(scrub(text));
  return plain === "" ? [] : [plain];
};

/**
 * Discourse also answers error_type invalid_access for plain "not permitted",
 * so only its bad-credentials sentence marks the key or user as wrong.
 */
const isInvalidCredentials = (text: string): boolean =>
  /api username or key is invalid/i.test(text);

/**
 * Milliseconds to wait after a 429: `Retry-After` (seconds or an HTTP date) or the
 * JSON `extras.wait_seconds`, the longer when both are present.
 */
export const rateLimitWaitMillis = (
  headers: Readonly<Record<string, string>>,
  text: string,
  now: number,
): Option.Option<number> => {
  const fromHeader = Option.fromNullable(headers["retry-after"]).pipe(
    Option.flatMap((value) => {
      const seconds = Number(value.trim());
      if (value.trim() !== "" && Number.isFinite(seconds)) {
        return Option.some(Math.max(0, seconds * 1000));
      }
      const date = Date.parse(value);
      return Number.isNaN(date)
        ? Option.none()
        : Option.some(Math.max(0, date - now));
    }),
  );
  const fromBody = parseJson(text).pipe(
    Option.flatMap(decodeErrorBody),
    Option.flatMap((body) => Option.fromNullable(body.extras?.wait_seconds)),
    Option.filter(Number.isFinite),
    Option.map((seconds) => Math.max(0, seconds * 1000)),
  );
  const waits = [fromHeader, fromBody].flatMap(Option.toArray);
  return waits.length === 0 ? Option.none() : Option.some(Math.max(...waits));
};

/** Exponential, capped, with the upper half jittered so fibers spread out. */
export const backoffMillis = (
  baseMs: number,
  capMs: number,
  retry: number,
  random01: number,
): number => {
  const ceiling = Math.min(capMs, baseMs * 2 ** retry);
  return ceiling * (0.5 + 0.5 * random01);
};

/** Whether two usernames name one account, as Discourse compares them. */
export const sameUsername = (a: string, b: string): boolean =>
  a.normalize("NFC").toLowerCase() === b.normalize("NFC").toLowerCase();

const make = (tuning: Partial<DiscourseOptions>) =>
  Effect.gen(function* () {
    const options: DiscourseOptions = { ...defaultDiscourseOptions, ...tuning };
    const settings = yield* CurrentSettings;
    const client = yield* HttpClient.HttpClient;
    const { apiUser, requestsPerMinute } = settings.discourse;
    const apiKey = Redacted.value(settings.discourse.apiKey);
    const baseUrl = settings.discourse.url.replace(/\/+$/, "");
    const limiter = yield* makeRateLimiter({
      limit: requestsPerMinute,
      window: options.rateLimitWindow,
    });
    const sent = yield* Ref.make(0);
    const answered = yield* Ref.make(0);
    const timeout = Duration.decode(options.requestTimeout);
    const backoffBaseMs = Duration.toMillis(options.backoffBase);
    const backoffCapMs = Duration.toMillis(options.backoffCap);
    const defaultWaitMs = Duration.toMillis(options.defaultRateLimitWait);
    const maxWaitMs = Duration.toMillis(options.maxRateLimitWait);
    const maxTotalWaitMs = Duration.toMillis(options.maxTotalRateLimitWait);

    // Server text is the only outside input in messages; a server echoing the
    // request headers back must not leak the key into a log. Scrubbed after
    // decoding and before any excerpt, so a cut can never leave half a key.
    const ssoSecret = settings.discourse.ssoSecret === undefined
      ? undefined
      : Redacted.value(settings.discourse.ssoSecret);
    const scrub = scrubberFor(settings);
    const wordsOf = (text: string) => serverWords(text, scrub);
    const quoted = (words: ReadonlyArray<string>) =>
      words.length === 0 ? "no explanation given" : `"${words.join("; ")}"`;
    const where = (call: Call) => `${call.method} ${call.path}`;
    const credentialsAdvice =
      `Check discourse.apiKey / DISCOURSE_API_KEY and discourse.apiUser / ` +
      `DISCOURSE_API_USER (now "${apiUser}"): the key must exist, not be ` +
      `revoked, belong to an admin, and be global (unscoped) for email changes.`;

    const toRequest = (call: Call): HttpClientRequest.HttpClientRequest => {
      const request = HttpClientRequest.make(call.method)(
        `${baseUrl}${call.path}`,
      ).pipe(
        HttpClientRequest.setUrlParams(call.query ?? {}),
        HttpClientRequest.setHeaders({
          "Api-Key": apiKey,
          "Api-Username": apiUser,
          Accept: "application/json",
        }),
      );
      if (call.form !== undefined) {
        return HttpClientRequest.bodyUrlParams(request, call.form);
      }
      return call.body === undefined
        ? request
        : HttpClientRequest.bodyUnsafeJson(request, call.body);
    };

    const attempt = (
      call: Call,
      request: HttpClientRequest.HttpClientRequest,
    ): Effect.Effect<Attempt> =>
      sendGuarded(client, request, {
        maxBytes: call.maxBytes ?? answerLimits.single,
        timeout,
        // Each request sent, redirects followed included, waits its turn.
        around: (send) =>
          limiter.withPermit(
            Ref.update(sent, (n) => n + 1).pipe(Effect.zipRight(send)),
          ),
      }).pipe(
        Effect.tap(() => Ref.update(answered, (n) => n + 1)),
        Effect.map((answer: Answer): Attempt => ({
          _tag: "Answered",
          ...answer,
        })),
        Effect.catchAll((failure: GuardedFailure) =>
          Effect.succeed<Attempt>(
            failure._tag === "RedirectRefused"
              ? { _tag: "Redirected", refused: failure }
              : failure._tag === "AnswerTooLarge"
              ? { _tag: "TooLarge", limitBytes: failure.limitBytes }
              : failure._tag === "TimedOut"
              ? {
                _tag: "Unanswered",
                reason: `no answer within ${
                  Duration.format(failure.after)
                } (timed out)`,
              }
              : {
                _tag: "Unanswered",
                reason: excerpt(scrub(transportReason(failure))),
              },
          )
        ),
        // Anything that prints this request (spans, logs) hides the key.
        Effect.locallyWith(
          Headers.currentRedactedNames,
          (names) => [...names, "api-key"],
        ),
      );

    const redirectAdvice = (refused: RedirectRefused) => {
      const to = excerpt(scrub(refused.to));
      switch (refused.problem) {
        case "other-origin":
          return `pointing to ${to}, another address: nothing was sent ` +
            `there (the API key goes only to discourse.url)`;
        case "method-change":
          return `asking for the write to be repeated as a read at ${to}: ` +
            `a write is never re-sent that way`;
        case "too-many":
          return `and kept redirecting within the site, more than ` +
            `${refused.hops} times (last to ${to})`;
        case "unreadable-location":
          return `pointing to "${to}", which is not a URL`;
      }
    };

    type Verdict<A> =
      | { readonly _tag: "Done"; readonly value: A }
      | { readonly _tag: "Fatal"; readonly error: DiscourseError }
      | {
        readonly _tag: "RateLimited";
        readonly waitMs: number;
        readonly words: ReadonlyArray<string>;
      }
      | {
        readonly _tag: "Failed";
        readonly status: Option.Option<number>;
        readonly detail: string;
      }
      | { readonly _tag: "Undecodable"; readonly detail: string };

    const judge = <A>(
      call: Call,
      decode: (text: string) => Either.Either<A, string>,
      outcome: Attempt,
      now: number,
    ): Verdict<A> => {
      if (outcome._tag === "Unanswered") {
        return {
          _tag: "Failed",
          status: Option.none(),
          detail: outcome.reason,
        };
      }
      if (outcome._tag === "Redirected") {
        return {
          _tag: "Fatal",
          error: new DiscourseRedirected({
            message: `Discourse at ${baseUrl} answered ${where(call)} with ` +
              `HTTP ${outcome.refused.status} ${
                redirectAdvice(outcome.refused)
              }. A misconfigured discourse.url is the usual cause (http:// ` +
              `for an https:// forum, www. or not, a wrong path): set it to ` +
              `the address the forum itself answers on.`,
          }),
        };
      }
      if (outcome._tag === "TooLarge") {
        return {
          _tag: "Fatal",
          error: new DiscourseAnswerTooLarge({
            message:
              `Discourse answered more than ${
                describeBytes(outcome.limitBytes)
              } for ${where(call)} (trying to ${call.what}); reading stopped ` +
              `there. No real answer to this request is that large: check ` +
              `that discourse.url points at the forum itself, not a proxy ` +
              `or another site.`,
          }),
        };
      }
      const { status, text, headers } = outcome;
      if (status >= 200 && status < 300) {
        return Either.match(decode(text), {
          onRight: (value): Verdict<A> => ({ _tag: "Done", value }),
          onLeft: (detail): Verdict<A> => ({
            _tag: "Undecodable",
            detail,
          }),
        });
      }
      const words = wordsOf(text);
      const fatal = (error: DiscourseError): Verdict<A> => ({
        _tag: "Fatal",
        error,
      });
      if (status === 429) {
        const waitMs = Option.getOrElse(
          rateLimitWaitMillis(headers, text, now),
          () => defaultWaitMs,
        );
        return {
          _tag: "RateLimited",
          waitMs: Math.min(waitMs, maxWaitMs),
          words,
        };
      }
      if (status >= 500) {
        return {
          _tag: "Failed",
          status: Option.some(status),
          detail: `HTTP ${status}: ${quoted(words)}`,
        };
      }
      if (status === 401 || (status === 403 && isInvalidCredentials(text))) {
        return fatal(
          new DiscourseCredentialsRejected({
            message: `Discourse rejected the API credentials when trying to ` +
              `${call.what} (${where(call)}, HTTP ${status}: ${
                quoted(words)
              }). ${credentialsAdvice}`,
          }),
        );
      }
      if (status === 403) {
        return fatal(
          new DiscourseForbidden({
            message:
              `Discourse does not allow API user "${apiUser}" to ${call.what} ` +
              `(${where(call)}, HTTP 403: ${quoted(words)}). A site setting ` +
              `(such as DiscourseConnect overriding this field) or a scoped API ` +
              `key prevents it: change that on Discourse or set this field's ` +
              `policy to "off".`,
          }),
        );
      }
      if (status === 404 && call.path.startsWith("/admin/")) {
        return fatal(
          new DiscourseCredentialsRejected({
            message: `Discourse answered 404 when trying to ${call.what} ` +
              `(${where(call)}): it does so on /admin/ routes when the API ` +
              `key is invalid or its user is not an admin. ` +
              credentialsAdvice,
          }),
        );
      }
      if (status === 404) {
        return fatal(
          new DiscourseNotFound({
            message: `Discourse has no such user: could not ${call.what} ` +
              `(${where(call)}, HTTP 404: ${quoted(words)}).`,
          }),
        );
      }
      if (status >= 400) {
        return fatal(
          new DiscourseValidationError({
            errors: words,
            message: `Discourse refused to ${call.what} (${where(call)}, ` +
              `HTTP ${status}: ${quoted(words)}). Its words name the value ` +
              `to fix, in Moodle or in settings; a field that can never be ` +
              `valid can have its policy set to "off".`,
          }),
        );
      }
      return {
        _tag: "Undecodable",
        detail: `unexpected HTTP ${status}: ${quoted(words)}`,
      };
    };

    const execute = <A>(
      call: Call,
      decode: (text: string) => Either.Either<A, string>,
    ): Effect.Effect<A, DiscourseError> => {
      const request = toRequest(call);
      const loop = (retries: {
        readonly rateLimited: number;
        readonly failed: number;
        readonly undecodable: number;
      }): Effect.Effect<A, DiscourseError> =>
        Effect.gen(function* () {
          const outcome = yield* attempt(call, request);
          const now = yield* Clock.currentTimeMillis;
          const verdict = judge(call, decode, outcome, now);
          switch (verdict._tag) {
            case "Done":
              return verdict.value;
            case "Fatal":
              return yield* Effect.fail(verdict.error);
            case "RateLimited": {
              if (retries.rateLimited >= options.maxRateLimitRetries) {
                return yield* Effect.fail(
                  new DiscourseRateLimited({
                    message: `Discourse still answered 429 (rate limited) ` +
                      `after ${retries.rateLimited} retries when trying to ` +
                      `${call.what} (${where(call)}: ${
                        quoted(verdict.words)
                      }). Another client is spending the site's admin API ` +
                      `budget: lower discourse.requestsPerMinute (now ` +
                      `${requestsPerMinute}) or run again later.`,
                  }),
                );
              }
              const heldMs = yield* limiter.heldMillis;
              if (heldMs + verdict.waitMs > maxTotalWaitMs) {
                return yield* Effect.fail(
                  new DiscourseRateLimitBudgetSpent({
                    message: `Discourse keeps answering 429 (rate limited): ` +
                      `this run has waited ${
                        inSeconds(heldMs)
                      } for it in all, and waiting ${
                        inSeconds(verdict.waitMs)
                      } more to ${call.what} (${where(call)}) would pass ` +
                      `discourse.maxTotalRateLimitWaitSeconds (${
                        inSeconds(maxTotalWaitMs)
                      }). The remaining users are not reached: run again ` +
                      `later, and look for the other client spending the ` +
                      `forum's admin API budget.`,
                  }),
                );
              }
              yield* Effect.logDebug(
                `Discourse 429 on ${where(call)}: every request waits ${
                  Math.round(verdict.waitMs)
                } ms`,
              );
              // The budget is shared: hold every fiber, not only this one.
              yield* limiter.holdFor(Duration.millis(verdict.waitMs));
              return yield* loop({
                ...retries,
                rateLimited: retries.rateLimited + 1,
              });
            }
            case "Failed": {
              if (retries.failed >= options.maxFailureRetries) {
                const attempts = retries.failed + 1;
                return yield* Effect.fail(
                  Option.match(verdict.status, {
                    onSome: (status): DiscourseError =>
                      new DiscourseServerError({
                        status,
                        message: `Discourse failed on each of ${attempts} ` +
                          `attempts to ${call.what} (${where(call)}, last ` +
                          `${verdict.detail}). Check the Discourse server's ` +
                          `health and logs, then run again.`,
                      }),
                    onNone: (): DiscourseError =>
                      new DiscourseTransportError({
                        message: `Could not reach Discourse at ${baseUrl} on ` +
                          `each of ${attempts} attempts to ${call.what} ` +
                          `(${where(call)}, last: ${verdict.detail}). Check ` +
                          `discourse.url and the network, then run again.`,
                      }),
                  }),
                );
              }
              const random01 = yield* Random.next;
              const delayMs = backoffMillis(
                backoffBaseMs,
                backoffCapMs,
                retries.failed,
                random01,
              );
              yield* Effect.logDebug(
                `Discourse ${where(call)} failed (${verdict.detail}); ` +
                  `retrying in ${Math.round(delayMs)} ms`,
              );
              yield* Effect.sleep(Duration.millis(delayMs));
              return yield* loop({ ...retries, failed: retries.failed + 1 });
            }
            case "Undecodable": {
              // A garbled body is usually a proxy hiccup: once more, not forever.
              if (retries.undecodable >= 1) {
                return yield* Effect.fail(
                  new DiscourseDecodeError({
                    message: `Discourse answered, twice, with a body this ` +
                      `tool cannot read when trying to ${call.what} ` +
                      `(${where(call)}: ${verdict.detail}). Check that ` +
                      `discourse.url points at the Discourse site itself, ` +
                      `not a proxy or login page.`,
                  }),
                );
              }
              return yield* loop({
                ...retries,
                undecodable: retries.undecodable + 1,
              });
            }
          }
        });
      return loop({ rateLimited: 0, failed: 0, undecodable: 0 });
    };

    const json = <A, I>(schema: Schema.Schema<A, I>) => {
      const decode = Schema.decodeUnknownEither(schema);
      return (text: string): Either.Either<A, string> =>
        Option.match(parseJson(text), {
          onNone: () => Either.left(`not JSON: ${quotedExcerpt(scrub(text))}`),
          onSome: (value) =>
            Either.mapLeft(
              decode(value),
              (error) =>
                `unexpected shape: ${
                  excerpt(
                    scrub(describeParseError(error, "the answer")),
                    300,
                  )
                }`,
            ),
        });
    };
    const ignoreBody = (): Either.Either<void, string> => Either.void;

    const user = encodeURIComponent;
    /**
     * The account answered must be the account asked for. Discourse looks
     * usernames up by their NFC lower case (User.normalize_username).
     */
    const sameAccount = (
      username: string,
      asked: string,
      written: boolean,
    ) =>
    (
      answered: DiscourseUser,
    ): Effect.Effect<DiscourseUser, DiscourseWrongAccount> =>
      sameUsername(answered.username, username)
        ? Effect.succeed(answered)
        : Effect.fail(
          new DiscourseWrongAccount({
            asked,
            answered: `the account "${answered.username}"`,
            written,
          }),
        );
    const optionalUser = (
      effect: Effect.Effect<DiscourseUser, DiscourseError>,
    ) =>
      effect.pipe(
        Effect.map(Option.some),
        Effect.catchTag("DiscourseNotFound", () => Effect.succeedNone),
      );
    const readUser = json(UserResponse);
    const readUpdate = json(UpdateResponse);
    const readEmails = json(EmailsResponse);
    const readAdminPage = json(AdminUserPage);
    const readAdminUser = json(AdminUserDetail);
    const readSyncSso = json(SyncSsoResponse);
    const readCreated = json(CreateUserResponse);
    const connectAdvice =
      `discourse.ssoSecret / DISCOURSE_SSO_SECRET must equal the forum's ` +
      `discourse_connect_secret site setting (Admin > Settings > Login).`;

    const service: DiscourseService = {
      userByUsername: (username) =>
        optionalUser(
          execute({
            what: `read user "${username}"`,
            method: "GET",
            path: `/u/${user(username)}.json`,
            query: { skip_track_visit: "true" },
          }, readUser).pipe(
            Effect.flatMap((body) =>
              sameAccount(username, `the read of user "${username}"`, false)(
                body.user,
              )
            ),
          ),
        ),
      userByExternalId: (externalId) =>
        optionalUser(
          execute({
            what: `read the user with external id "${externalId}"`,
            method: "GET",
            path: `/u/by-external/${user(externalId)}.json`,
            query: { skip_track_visit: "true" },
          }, readUser).pipe(
            Effect.flatMap((body) =>
              // The public profile carries no external id; where an answer
              // does carry one, it must be the one asked for.
              body.user.external_id === undefined ||
                body.user.external_id === null ||
                String(body.user.external_id).trim() === externalId.trim()
                ? Effect.succeed(body.user)
                : Effect.fail(
                  new DiscourseWrongAccount({
                    asked:
                      `the read of the user with external id "${externalId}"`,
                    written: false,
                    answered: `the account "${body.user.username}" ` +
                      `(external id "${String(body.user.external_id)}")`,
                  }),
                )
            ),
          ),
        ),
      emails: (username) =>
        execute({
          what: `read the emails of user "${username}"`,
          method: "GET",
          path: `/u/${user(username)}/emails.json`,
        }, readEmails),
      adminUserPage: (page, filter) =>
        execute({
          what: `list page ${page} of the active users${
            filter?.email !== undefined
              ? ` with email "${filter.email}"`
              : filter?.filter !== undefined
              ? ` matching "${filter.filter}"`
              : ""
          }`,
          method: "GET",
          path: "/admin/users/list/active.json",
          maxBytes: answerLimits.listPage,
          query: {
            show_emails: "true",
            order: "created",
            asc: "true",
            page: String(page),
            ...(filter?.filter !== undefined ? { filter: filter.filter } : {}),
            ...(filter?.email !== undefined ? { email: filter.email } : {}),
          },
        }, readAdminPage),
      updateProfile: (username, fields) =>
        execute({
          what: `update the profile of user "${username}"`,
          method: "PUT",
          path: `/u/${user(username)}.json`,
          body: definedFields(fields),
        }, readUpdate).pipe(
          Effect.flatMap((body) =>
            sameAccount(username, `the update of user "${username}"`, true)(
              body.user,
            )
          ),
        ),
      externalIdOf: (userId) =>
        execute({
          what: `read the DiscourseConnect record of user id ${userId}`,
          method: "GET",
          path: `/admin/users/${userId}.json`,
        }, readAdminUser).pipe(
          Effect.map((detail) =>
            Option.fromNullable(detail.single_sign_on_record?.external_id).pipe(
              Option.map(String),
            )
          ),
        ),
      syncSso: (account) =>
        Effect.gen(function* () {
          const call = (form: Record<string, string>): Call => ({
            what: `create or link the DiscourseConnect account of external ` +
              `id "${account.external_id}" ("${account.username}")`,
            method: "POST",
            path: "/admin/users/sync_sso",
            form,
          });
          if (ssoSecret === undefined) {
            return yield* new DiscourseConnectRejected({
              message: `Cannot ${
                call({}).what
              }: discourse.ssoSecret is not set. ${connectAdvice}`,
            });
          }
          const sso = encodeSsoPayload(account);
          const sig = yield* signSsoPayload(sso, ssoSecret);
          return yield* execute(call({ sso, sig }), readSyncSso).pipe(
            Effect.catchTags({
              DiscourseValidationError: (error) =>
                error.errors.some((words) => /signature|base64/i.test(words))
                  ? Effect.fail(
                    new DiscourseConnectRejected({
                      message: `Discourse rejected the DiscourseConnect ` +
                        `signature (POST /admin/users/sync_sso, HTTP 422: ` +
                        `"${error.errors.join("; ")}"): the secret is wrong, ` +
                        `so no account can be created. ${connectAdvice}`,
                    }),
                  )
                  : Effect.fail(error),
              // The judge reads any /admin/ 404 as bad credentials; here the
              // likelier cause is DiscourseConnect being off.
              DiscourseCredentialsRejected: () =>
                Effect.fail(
                  new DiscourseConnectRejected({
                    message: `Discourse answered 404 to POST ` +
                      `/admin/users/sync_sso: DiscourseConnect is not enabled ` +
                      `on the forum (site setting enable_discourse_connect), ` +
                      `or the API key is not a valid admin key. Enable ` +
                      `DiscourseConnect, or remove discourse.ssoSecret to ` +
                      `create accounts with POST /users.json instead.`,
                  }),
                ),
            }),
          );
        }),
      createUser: (account) =>
        execute({
          what: `create user "${account.username}"`,
          method: "POST",
          path: "/users.json",
          body: {
            username: account.username,
            email: account.email,
            ...(account.name === undefined ? {} : { name: account.name }),
            active: true,
            approved: true,
          },
        }, readCreated).pipe(
          Effect.flatMap((answer) => {
            if (answer.success) return Effect.void;
            const words = [
              ...(answer.message ? [excerpt(scrub(answer.message))] : []),
              ...Object.entries(answer.errors ?? {}).flatMap((
                [field, messages],
              ) => messages.map((m) => excerpt(scrub(`${field} ${m}`)))),
            ];
            return Effect.fail(
              new DiscourseValidationError({
                errors: words,
                message: `Discourse refused to create user ` +
                  `"${account.username}" (POST /users.json answered success ` +
                  `false: ${quoted(words)}).`,
              }),
            );
          }),
        ),
      requestEmailChange: (username, email) =>
        execute({
          what: `request an email change for user "${username}"`,
          method: "PUT",
          path: `/u/${user(username)}/preferences/email.json`,
          body: { email },
        }, ignoreBody),
      requestsSent: Ref.get(sent),
      requestsAnswered: Ref.get(answered),
    };
    return service;
  });

/**
 * The `sso` parameter of `sync_sso`: Base64 of the URL-encoded payload.
 * URLSearchParams percent-encodes everything but ASCII letters, digits and
 * `*-._`, so the Base64 input is ASCII and Discourse's Rack parser reads it.
 */
export const encodeSsoPayload = (account: SsoAccount): string => {
  const payload = new URLSearchParams();
  payload.set("external_id", account.external_id);
  payload.set("email", account.email);
  payload.set("username", account.username);
  if (account.name !== undefined) payload.set("name", account.name);
  if (account.bio !== undefined) payload.set("bio", account.bio);
  if (account.location !== undefined) payload.set("location", account.location);
  payload.set(
    "suppress_welcome_message",
    String(account.suppress_welcome_message),
  );
  return btoa(payload.toString());
};

/** Lowercase hex HMAC-SHA256 of the Base64 payload, keyed with the secret. */
export const signSsoPayload = (
  sso: string,
  secret: string,
): Effect.Effect<string> =>
  Effect.promise(async () => {
    const encoder = new TextEncoder();
    const key = await crypto.subtle.importKey(
      "raw",
      encoder.encode(secret),
      { name: "HMAC", hash: "SHA-256" },
      false,
      ["sign"],
    );
    const signature = await crypto.subtle.sign(
      "HMAC",
      key,
      encoder.encode(sso),
    );
    return [...new Uint8Array(signature)]
      .map((byte) => byte.toString(16).padStart(2, "0")).join("");
  });

/** `0.2 s`, `1800 s`. */
const inSeconds = (ms: number) => `${+(ms / 1000).toFixed(1)} s`;

const quotedExcerpt = (text: string) =>
  text.trim() === "" ? "an empty body" : `"${excerpt(text)}"`;

/** Only the fields the caller set: an absent key leaves Discourse's value alone. */
const definedFields = (fields: ProfileUpdate): Record<string, string> =>
  Object.fromEntries(
    Object.entries(fields).filter(([, value]) => value !== undefined),
  );

/** What went wrong with a request that got no answer, as the runtime said it. */
const transportReason = (failure: unknown): string => {
  const cause = typeof failure === "object" && failure !== null &&
      "cause" in failure
    ? (failure as { cause: unknown }).cause
    : failure;
  const text = cause instanceof Error
    ? cause.message
    : typeof failure === "object" && failure !== null && "reason" in failure
    ? String((failure as { reason: unknown }).reason)
    : "connection failed";
  return text;
};

export class Discourse extends Context.Tag("Discourse")<
  Discourse,
  DiscourseService
>() {
  /** The client with its waits tuned; the process's one rate limiter inside. */
  static readonly layerWith = (
    options: Partial<DiscourseOptions> = {},
  ): Layer.Layer<Discourse, never, CurrentSettings | HttpClient.HttpClient> =>
    Layer.effect(Discourse, make(options));

  static readonly layer: Layer.Layer<
    Discourse,
    never,
    CurrentSettings | HttpClient.HttpClient
  > = Discourse.layerWith();
}
