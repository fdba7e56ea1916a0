/**
 * The one way this client talks to Discourse: `execute` sends a call with
 * the API credentials, through the rate limiter, refusing redirects and
 * reading no answer past its size limit; judges each answer; retries the
 * setbacks by their schedules; and decodes the body with the call's Schema.
 */
import * as Headers from "@effect/platform/Headers";
import type * as HttpClient from "@effect/platform/HttpClient";
import * as HttpClientRequest from "@effect/platform/HttpClientRequest";
import {
  Clock,
  Duration,
  Effect,
  Either,
  FiberRef,
  Redacted,
  Schedule,
} from "effect";
import type { Scrub } from "../domain/secrets.ts";
import {
  type Answer,
  type GuardedFailure,
  sendGuarded,
  transportDetail,
} from "../http/guarded.ts";
import { type BodyReader, excerpt } from "./answers.ts";
import { type LatencyMeter, makeLatencyMeter } from "./concurrency.ts";
import type { DiscourseConfig } from "./config.ts";
import type { DiscourseError } from "./errors.ts";
import type { RateLimiter } from "./RateLimiter.ts";
import { retryPolicy } from "./retry.ts";
import {
  type Attempt,
  type CallName,
  gaveUp,
  judge,
  type Setback,
  type Site,
  where,
} from "./verdict.ts";

/**
 * The most an answer is read: a profile or an emails list is a few KB, a
 * page of 100 admin list rows a few hundred.
 */
export const answerLimits = {
  single: 1024 * 1024,
  listPage: 8 * 1024 * 1024,
} as const;

/** One API call: what the operator reads in errors, and what goes on the wire. */
export interface Call extends CallName {
  readonly method: "GET" | "PUT" | "POST" | "DELETE";
  readonly query?: Readonly<Record<string, string>>;
  /** Sent as JSON. */
  readonly body?: unknown;
  /** Sent as application/x-www-form-urlencoded (percent-encoded: `+` safe). */
  readonly form?: Readonly<Record<string, string>>;
  /** Bytes of the answer read at most; default `answerLimits.single`. */
  readonly maxBytes?: number;
}

export interface DiscourseHttp {
  readonly execute: <A>(
    call: Call,
    read: BodyReader<A>,
  ) => Effect.Effect<A, DiscourseError>;
  /** HTTP requests sent so far, retries and followed redirects included. */
  readonly requestsSent: Effect.Effect<number>;
  /** Requests Discourse answered (any status): 0 means never reached. */
  readonly requestsAnswered: Effect.Effect<number>;
  /** How long the forum takes to answer: see concurrency.ts. */
  readonly meter: LatencyMeter;
}

export const makeDiscourseHttp = (
  config: DiscourseConfig,
  client: HttpClient.HttpClient,
  limiter: RateLimiter,
  site: Site,
): Effect.Effect<DiscourseHttp> =>
  Effect.gen(function* () {
    // Plain counters: each request costs an increment, not a Ref's update.
    let sent = 0;
    let answered = 0;
    const timeout = Duration.decode(config.requestTimeout);
    // Built once: every request carries the same credentials.
    const headers = Headers.fromInput({
      "Api-Key": Redacted.value(config.apiKey),
      "Api-Username": config.apiUser,
      Accept: "application/json",
    });
    const redactedNames = [
      ...(yield* FiberRef.get(Headers.currentRedactedNames)),
      "api-key",
    ];
    const meter = yield* makeLatencyMeter;

    const toRequest = (call: Call): HttpClientRequest.HttpClientRequest => {
      const request = HttpClientRequest.make(call.method)(
        `${site.baseUrl}${call.path}`,
        { headers, urlParams: call.query },
      );
      if (call.form !== undefined) {
        return HttpClientRequest.bodyUrlParams(request, call.form);
      }
      return call.body === undefined
        ? request
        : HttpClientRequest.bodyUnsafeJson(request, call.body);
    };

    const unanswered = (failure: GuardedFailure, scrub: Scrub): Attempt => {
      switch (failure._tag) {
        case "RedirectRefused":
          return { _tag: "Redirected", refused: failure };
        case "AnswerTooLarge":
          return { _tag: "TooLarge", limitBytes: failure.limitBytes };
        case "TimedOut":
          return {
            _tag: "Unanswered",
            reason: `no answer within ${
              Duration.format(failure.after)
            } (timed out)`,
          };
        default:
          return {
            _tag: "Unanswered",
            reason: excerpt(scrub(transportDetail(failure))),
          };
      }
    };

    const countSent = Effect.sync(() => {
      sent++;
    });
    // Each request sent, redirects followed included, waits its turn.
    const around = <B, E>(send: Effect.Effect<B, E>) =>
      limiter.withPermit(meter.timed(Effect.zipRight(countSent, send)));

    const attempt = (
      call: Call,
      request: HttpClientRequest.HttpClientRequest,
    ): Effect.Effect<Attempt> =>
      sendGuarded(client, request, {
        maxBytes: call.maxBytes ?? answerLimits.single,
        timeout,
        around,
      }).pipe(
        Effect.match({
          onSuccess: (answer: Answer): Attempt => {
            answered++;
            return { _tag: "Answered", ...answer };
          },
          onFailure: (failure) => unanswered(failure, site.scrub),
        }),
        // Anything that prints this request (spans, logs) hides the key.
        Effect.locally(Headers.currentRedactedNames, redactedNames),
      );

    /** The call's value or its setback; the clock is read for a 429's wait. */
    const judged = <A>(
      call: Call,
      read: BodyReader<A>,
      outcome: Attempt,
    ): Effect.Effect<A, Setback> => {
      const verdict = (now: number) =>
        Either.match(judge(site, call, read, outcome, now), {
          onRight: Effect.succeed,
          onLeft: Effect.fail,
        });
      return outcome._tag === "Answered" && outcome.status === 429
        ? Effect.flatMap(Clock.currentTimeMillis, verdict)
        : verdict(0);
    };

    const execute = <A>(
      call: Call,
      read: BodyReader<A>,
    ): Effect.Effect<A, DiscourseError> => {
      const request = toRequest(call);
      const once = Effect.flatMap(
        attempt(call, request),
        (outcome) => judged(call, read, outcome),
      );
      const giveUp = (setback: Setback, retries: number) =>
        Effect.flatMap(limiter.heldMillis, (heldMs) =>
          Effect.fail(
            gaveUp(site, call, setback, retries, {
              maxRateLimitRetries: config.maxRateLimitRetries,
              heldMs,
            }),
          ));
      // As Effect.retryOrElse, with the schedule built only after a setback:
      // most calls succeed at once, and building it cost every call.
      return Effect.catchAll(once, (first) =>
        Effect.flatMap(
          Schedule.driver(retryPolicy(config, limiter, where(call))),
          (driver) => {
            const retry = (
              setback: Setback,
            ): Effect.Effect<A, DiscourseError> =>
              Effect.matchEffect(driver.next(setback), {
                onFailure: () =>
                  Effect.flatMap(
                    Effect.orDie(driver.last),
                    (retries) => giveUp(setback, retries),
                  ),
                onSuccess: () => Effect.catchAll(once, retry),
              });
            return retry(first);
          },
        ));
    };

    return {
      execute,
      requestsSent: Effect.sync(() => sent),
      requestsAnswered: Effect.sync(() => answered),
      meter,
    };
  });
