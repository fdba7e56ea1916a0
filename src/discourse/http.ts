/**
 * The one way this client talks to Discourse: `execute` sends a call with
 * the API credentials, through the rate limiter, refusing redirects and
 * reading no answer past its size limit; judges each answer; retries the
 * setbacks by their schedules; and decodes the body with the call's Schema.
 */
import * as Headers from "@effect/platform/Headers";
import type * as HttpClient from "@effect/platform/HttpClient";
import * as HttpClientRequest from "@effect/platform/HttpClientRequest";
import { Clock, Duration, Effect, Either, Redacted, Ref } from "effect";
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
    const sent = yield* Ref.make(0);
    const answered = yield* Ref.make(0);
    const timeout = Duration.decode(config.requestTimeout);
    const apiKey = Redacted.value(config.apiKey);
    const meter = yield* makeLatencyMeter;

    const toRequest = (call: Call): HttpClientRequest.HttpClientRequest => {
      const request = HttpClientRequest.make(call.method)(
        `${site.baseUrl}${call.path}`,
      ).pipe(
        HttpClientRequest.setUrlParams(call.query ?? {}),
        HttpClientRequest.setHeaders({
          "Api-Key": apiKey,
          "Api-Username": config.apiUser,
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
            meter.timed(
              Ref.update(sent, (n) => n + 1).pipe(Effect.zipRight(send)),
            ),
          ),
      }).pipe(
        Effect.tap(() => Ref.update(answered, (n) => n + 1)),
        Effect.map((answer: Answer): Attempt => ({
          _tag: "Answered",
          ...answer,
        })),
        Effect.catchAll((failure) =>
          Effect.succeed(unanswered(failure, site.scrub))
        ),
        // Anything that prints this request (spans, logs) hides the key.
        Effect.locallyWith(
          Headers.currentRedactedNames,
          (names) => [...names, "api-key"],
        ),
      );

    const execute = <A>(
      call: Call,
      read: BodyReader<A>,
    ): Effect.Effect<A, DiscourseError> => {
      const request = toRequest(call);
      const once = attempt(call, request).pipe(
        Effect.zip(Clock.currentTimeMillis),
        Effect.flatMap(([outcome, now]) =>
          Either.match(judge(site, call, read, outcome, now), {
            onRight: Effect.succeed,
            onLeft: Effect.fail,
          })
        ),
      );
      return once.pipe(
        Effect.retryOrElse(
          retryPolicy(config, limiter, where(call)),
          (setback, retries) =>
            Effect.flatMap(limiter.heldMillis, (heldMs) =>
              Effect.fail(
                gaveUp(site, call, setback, retries, {
                  maxRateLimitRetries: config.maxRateLimitRetries,
                  heldMs,
                }),
              )),
        ),
      );
    };

    return {
      execute,
      requestsSent: Ref.get(sent),
      requestsAnswered: Ref.get(answered),
      meter,
    };
  });
