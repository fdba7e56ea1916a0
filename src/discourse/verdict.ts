/**
 * What one attempt at a call means: done, a fatal error, or a setback worth
 * another try (a 429, a 5xx or lost connection, a garbled body); and the
 * error a call ends in once its setbacks have used up their retries.
 */
import { Either, Option } from "effect";
import type { Scrub } from "../domain/secrets.ts";
import {
  describeBytes,
  describeRefusedRedirect,
  type RedirectRefused,
} from "../http/guarded.ts";
import {
  type BodyReader,
  excerpt,
  isInvalidCredentials,
  quoted,
  rateLimitWaitMillis,
  serverWords,
} from "./answers.ts";
import {
  DiscourseAnswerTooLarge,
  DiscourseCredentialsRejected,
  DiscourseDecodeError,
  type DiscourseError,
  DiscourseForbidden,
  DiscourseNotFound,
  DiscourseRateLimitBudgetSpent,
  DiscourseRateLimited,
  DiscourseRedirected,
  DiscourseServerError,
  DiscourseTransportError,
  DiscourseValidationError,
} from "./errors.ts";

/** A call as the operator reads it in errors. */
export interface CallName {
  /** Completes "could not …", e.g. `read user "alice"`. */
  readonly what: string;
  readonly method: string;
  /** Already URL-encoded, starting with a slash. */
  readonly path: string;
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

/** Why an attempt did not give the call its value. */
export type Setback =
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

/** The forum as the messages name it, and the waits a 429 is allowed. */
export interface Site {
  readonly baseUrl: string;
  readonly apiUser: string;
  readonly requestsPerMinute: number;
  readonly scrub: Scrub;
  readonly defaultRateLimitWaitMs: number;
  readonly maxRateLimitWaitMs: number;
  readonly maxTotalRateLimitWaitMs: number;
}

export const where = (call: CallName) => `${call.method} ${call.path}`;

/** `0.2 s`, `1800 s`. */
const inSeconds = (ms: number) => `${+(ms / 1000).toFixed(1)} s`;

const credentialsAdvice = (site: Site) =>
  `Check discourse.apiKey / DISCOURSE_API_KEY and discourse.apiUser / ` +
  `DISCOURSE_API_USER (now "${site.apiUser}"): the key must exist, not be ` +
  `revoked, belong to an admin, and be global (unscoped) for email changes.`;

const fatal = (error: DiscourseError): Setback => ({ _tag: "Fatal", error });

/** An error status: fatal, or worth another try. */
const judgeStatus = (
  site: Site,
  call: CallName,
  answer: Extract<Attempt, { _tag: "Answered" }>,
  now: number,
): Setback => {
  const { status, text, headers } = answer;
  const words = serverWords(text, site.scrub);
  if (status === 429) {
    const waitMs = Option.getOrElse(
      rateLimitWaitMillis(headers, text, now),
      () => site.defaultRateLimitWaitMs,
    );
    return {
      _tag: "RateLimited",
      waitMs: Math.min(waitMs, site.maxRateLimitWaitMs),
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
        status,
        message: `Discourse rejected the API credentials when trying to ` +
          `${call.what} (${where(call)}, HTTP ${status}: ${quoted(words)}). ` +
          credentialsAdvice(site),
      }),
    );
  }
  if (status === 403) {
    return fatal(
      new DiscourseForbidden({
        message:
          `Discourse does not allow API user "${site.apiUser}" to ${call.what} ` +
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
        status,
        message: `Discourse answered 404 when trying to ${call.what} ` +
          `(${where(call)}): it does so on /admin/ routes when the API ` +
          `key is invalid or its user is not an admin. ` +
          credentialsAdvice(site),
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
        status,
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

/** The call's value, or why this attempt did not give it. */
export const judge = <A>(
  site: Site,
  call: CallName,
  read: BodyReader<A>,
  attempt: Attempt,
  now: number,
): Either.Either<A, Setback> => {
  switch (attempt._tag) {
    case "Unanswered":
      return Either.left({
        _tag: "Failed",
        status: Option.none(),
        detail: attempt.reason,
      });
    case "Redirected":
      return Either.left(fatal(
        new DiscourseRedirected({
          message: `Discourse at ${site.baseUrl} answered ${where(call)} ` +
            `with ${
              describeRefusedRedirect(
                attempt.refused,
                excerpt(site.scrub(attempt.refused.to)),
                "the API key goes only to discourse.url",
              )
            }. A misconfigured discourse.url is the usual cause (http:// ` +
            `for an https:// forum, www. or not, a wrong path): set it to ` +
            `the address the forum itself answers on.`,
        }),
      ));
    case "TooLarge":
      return Either.left(fatal(
        new DiscourseAnswerTooLarge({
          message:
            `Discourse answered more than ${
              describeBytes(attempt.limitBytes)
            } for ${where(call)} (trying to ${call.what}); reading stopped ` +
            `there. No real answer to this request is that large: check ` +
            `that discourse.url points at the forum itself, not a proxy ` +
            `or another site.`,
        }),
      ));
    case "Answered":
      if (attempt.status >= 200 && attempt.status < 300) {
        return Either.mapLeft(
          read(attempt.text),
          (detail): Setback => ({ _tag: "Undecodable", detail }),
        );
      }
      return Either.left(judgeStatus(site, call, attempt, now));
  }
};

/**
 * The error a call ends in when `setback` may not be retried (any more):
 * `retries` is how many setbacks of its kind were retried, `heldMs` how long
 * 429s have held the run in all.
 */
export const gaveUp = (
  site: Site,
  call: CallName,
  setback: Setback,
  retries: number,
  limits: { readonly maxRateLimitRetries: number; readonly heldMs: number },
): DiscourseError => {
  switch (setback._tag) {
    case "Fatal":
      return setback.error;
    case "RateLimited":
      return retries >= limits.maxRateLimitRetries
        ? new DiscourseRateLimited({
          message: `Discourse still answered 429 (rate limited) after ` +
            `${retries} retries when trying to ${call.what} (${where(call)}: ${
              quoted(setback.words)
            }). Another client is spending the site's admin API budget: ` +
            `lower discourse.requestsPerMinute (now ` +
            `${site.requestsPerMinute}) or run again later.`,
        })
        : new DiscourseRateLimitBudgetSpent({
          message: `Discourse keeps answering 429 (rate limited): this run ` +
            `has waited ${inSeconds(limits.heldMs)} for it in all, and ` +
            `waiting ${inSeconds(setback.waitMs)} more to ${call.what} ` +
            `(${where(call)}) would pass ` +
            `discourse.maxTotalRateLimitWaitSeconds (${
              inSeconds(site.maxTotalRateLimitWaitMs)
            }). The remaining users are not reached: run again later, and ` +
            `look for the other client spending the forum's admin API budget.`,
        });
    case "Failed": {
      const attempts = retries + 1;
      return Option.match(setback.status, {
        onSome: (status): DiscourseError =>
          new DiscourseServerError({
            status,
            message: `Discourse failed on each of ${attempts} attempts to ` +
              `${call.what} (${where(call)}, last ${setback.detail}). Check ` +
              `the Discourse server's health and logs, then run again.`,
          }),
        onNone: (): DiscourseError =>
          new DiscourseTransportError({
            message: `Could not reach Discourse at ${site.baseUrl} on each ` +
              `of ${attempts} attempts to ${call.what} (${where(call)}, ` +
              `last: ${setback.detail}). Check discourse.url and the ` +
              `network, then run again.`,
          }),
      });
    }
    case "Undecodable":
      return new DiscourseDecodeError({
        message: `Discourse answered, twice, with a body this tool cannot ` +
          `read when trying to ${call.what} (${where(call)}: ` +
          `${setback.detail}). Check that discourse.url points at the ` +
          `Discourse site itself, not a proxy or login page.`,
      });
  }
};
