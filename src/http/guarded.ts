/**
 * How both clients send a request: secrets travel only to the configured
 * origin, and no answer is read past a size. Shared, so Moodle's token and
 * Discourse's key get the same protection.
 *
 * - fetch follows redirects by itself, re-sending headers (the API key) and,
 *   after a 307/308, the body (Moodle's token) to wherever `Location` points,
 *   https to http included. Here nothing is followed automatically: a
 *   redirect within the same origin (scheme, host and port) is followed a
 *   few times, anything else is refused before a byte goes there.
 * - An answer is read as a stream and reading stops past `maxBytes`, so a
 *   runaway or hostile body costs that much memory, not all of it.
 */
import * as FetchHttpClient from "@effect/platform/FetchHttpClient";
import type * as HttpClient from "@effect/platform/HttpClient";
import type * as HttpClientError from "@effect/platform/HttpClientError";
import * as HttpClientRequest from "@effect/platform/HttpClientRequest";
import type * as HttpClientResponse from "@effect/platform/HttpClientResponse";
import { Data, Duration, Effect, Stream } from "effect";

/** A whole answer, read within its size limit. */
export interface Answer {
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  readonly text: string;
}

/** Why a redirect was not followed. */
export type RedirectProblem =
  /** Another scheme, host or port: the secrets would go there. */
  | "other-origin"
  /** A 301/302/303 to a write: following it would turn the write into a GET. */
  | "method-change"
  | "too-many"
  | "unreadable-location";

export class RedirectRefused extends Data.TaggedError("RedirectRefused")<{
  readonly status: number;
  /** Where `Location` pointed, resolved; as given when it cannot be read. */
  readonly to: string;
  readonly problem: RedirectProblem;
  readonly hops: number;
}> {}

export class AnswerTooLarge extends Data.TaggedError("AnswerTooLarge")<{
  readonly limitBytes: number;
}> {}

/** No whole answer within the time allowed for one request. */
export class TimedOut extends Data.TaggedError("TimedOut")<{
  readonly after: Duration.Duration;
}> {}

export type GuardedFailure =
  | HttpClientError.HttpClientError
  | RedirectRefused
  | AnswerTooLarge
  | TimedOut;

/**
 * A refused redirect in the operator's words, for either client.
 * `secretHome` says where the secret may go ("the API key goes only to
 * discourse.url"); `to` is the target, already scrubbed.
 */
export const describeRefusedRedirect = (
  refused: RedirectRefused,
  to: string,
  secretHome: string,
): string => {
  switch (refused.problem) {
    case "other-origin":
      return `a redirect (HTTP ${refused.status}) to ${to}, another address: nothing was sent there (${secretHome})`;
    case "method-change":
      return `a redirect (HTTP ${refused.status}) that would repeat the call as a GET of ${to} (often a login page): it is not re-sent that way`;
    case "too-many":
      return `redirects within the site, more than ${refused.hops} times (last to ${to})`;
    case "unreadable-location":
      return `a redirect (HTTP ${refused.status}) to "${to}", which is not a URL`;
  }
};

/**
 * Why a request got no answer, in the runtime's words: fetch wraps the
 * useful ones ("Connection refused") in its causes.
 */
export const transportDetail = (
  failure: HttpClientError.HttpClientError,
): string => {
  if (failure.description !== undefined) return failure.description;
  let found: string | undefined;
  let cause: unknown = failure.cause;
  for (let depth = 0; cause instanceof Error && depth < 5; depth++) {
    if (cause.message !== "") found = cause.message;
    cause = cause.cause;
  }
  return found ?? failure.reason;
};

const defaultMaxRedirects = 3;

const redirectStatuses: ReadonlySet<number> = new Set([
  301,
  302,
  303,
  307,
  308,
]);
/** These keep the method and body; the others turn a request into a GET. */
const methodKeeping: ReadonlySet<number> = new Set([307, 308]);

const megabyte = 1024 * 1024;

/** `1 MB`, `512 MB`, `200 KB`: a limit as the operator reads it. */
export const describeBytes = (bytes: number): string =>
  bytes >= megabyte
    ? `${+(bytes / megabyte).toFixed(1)} MB`
    : `${+(bytes / 1024).toFixed(1)} KB`;

/**
 * Gives a buffer's memory back at once instead of when the collector gets to
 * it. A chunk that lived through the effect stream's hand-offs is often
 * promoted, so its buffer was freed only at the next full collection: the
 * allocator meanwhile took fresh memory for each 64 KB chunk of a 270 MB
 * answer and kept most of it mapped to the end of the run.
 */
const release = (buffer: ArrayBufferLike | undefined): void => {
  if (!(buffer instanceof ArrayBuffer) || buffer.detached) return;
  try {
    buffer.transfer(0);
  } catch {
    // Not detachable (a Wasm memory, a non-transferable buffer): the
    // collector frees it, as before.
  }
};

/**
 * Hands each chunk of the body to `onChunk` as it arrives, or fails with
 * AnswerTooLarge as soon as more than `maxBytes` came: the rest is never read
 * (the stream is cancelled). `onChunk` must copy whatever it keeps of a
 * chunk: its memory is released once the next buffer comes or the read
 * ends. A failure of `onChunk` ends the read.
 */
export const forEachChunkCapped = <E = never>(
  response: HttpClientResponse.HttpClientResponse,
  maxBytes: number,
  onChunk: (chunk: Uint8Array) => Effect.Effect<void, E>,
): Effect.Effect<void, E | AnswerTooLarge | HttpClientError.ResponseError> =>
  Effect.suspend(() => {
    let size = 0;
    // A buffer is released once a chunk of another one comes: a stream may
    // hand out several views of one buffer in a row.
    let previous: ArrayBufferLike | undefined;
    // Not Stream.runForEachWhile: it keeps every chunk it was given to the
    // end (a 270 MB answer held 300 MB of buffers); failing ends the read.
    return Stream.runForEach(
      response.stream,
      (chunk): Effect.Effect<void, E | AnswerTooLarge> => {
        size += chunk.byteLength;
        if (size > maxBytes) {
          return Effect.fail(new AnswerTooLarge({ limitBytes: maxBytes }));
        }
        if (chunk.buffer !== previous) release(previous);
        previous = chunk.buffer;
        return onChunk(chunk);
      },
    ).pipe(Effect.ensuring(Effect.sync(() => release(previous))));
  });

/**
 * Whether the HTTP layer itself stops the body at `maxBytes`: a length
 * declared within it, and nothing that lets more arrive (a chunked transfer
 * ignores the declared length; a compressed body grows when decoded).
 */
const boundedByItsLength = (
  headers: Readonly<Record<string, string | undefined>>,
  maxBytes: number,
): boolean => {
  const declared = headers["content-length"];
  const encoding = headers["content-encoding"];
  return declared !== undefined && /^\d+$/.test(declared) &&
    Number(declared) <= maxBytes &&
    headers["transfer-encoding"] === undefined &&
    (encoding === undefined || encoding.trim().toLowerCase() === "identity");
};

/**
 * The body as text, or AnswerTooLarge as soon as more than `maxBytes` came:
 * the rest is never read (the stream is cancelled). A body the HTTP layer
 * already bounds is read whole: reading it as a stream cost more CPU than
 * the rest of the request (about 0.4 ms a request).
 */
export const readCapped = (
  response: HttpClientResponse.HttpClientResponse,
  maxBytes: number,
): Effect.Effect<string, AnswerTooLarge | HttpClientError.ResponseError> =>
  Effect.suspend(() => {
    if (boundedByItsLength(response.headers, maxBytes)) return response.text;
    const decoder = new TextDecoder();
    const parts: string[] = [];
    return forEachChunkCapped(
      response,
      maxBytes,
      (chunk) =>
        Effect.sync(() => {
          parts.push(decoder.decode(chunk, { stream: true }));
        }),
    ).pipe(
      Effect.map(() => {
        parts.push(decoder.decode());
        return parts.join("");
      }),
    );
  });

/** Where a redirect may be followed to, or why not. */
export const redirectTarget = (
  request: { readonly method: string; readonly url: string },
  status: number,
  location: string,
): { readonly _tag: "Follow"; readonly url: URL } | {
  readonly _tag: "Refuse";
  readonly to: string;
  readonly problem: RedirectProblem;
} => {
  let target: URL;
  let from: URL;
  try {
    from = new URL(request.url);
    target = new URL(location, from);
  } catch {
    return { _tag: "Refuse", to: location, problem: "unreadable-location" };
  }
  if (target.origin !== from.origin) {
    return { _tag: "Refuse", to: target.href, problem: "other-origin" };
  }
  const readOnly = request.method === "GET" || request.method === "HEAD";
  if (!readOnly && !methodKeeping.has(status)) {
    return { _tag: "Refuse", to: target.href, problem: "method-change" };
  }
  return { _tag: "Follow", url: target };
};

/**
 * fetch for the requests run inside: its own redirect handling off, and cut
 * off by `deadline`, which the client's own abort (its fiber interrupted)
 * also triggers. An abort reaches the body too: a read of it fails at once,
 * so the deadline bounds the headers and the whole body alike.
 */
const guardedFetch =
  (deadline: AbortController | undefined): typeof fetch => (input, init) => {
    const own = init?.signal ?? undefined;
    if (deadline !== undefined && own !== undefined) {
      // Linked by hand: AbortSignal.any keeps weak references, which cost
      // the garbage collector more than the listener does.
      if (own.aborted) deadline.abort(own.reason);
      else {
        own.addEventListener("abort", () => deadline.abort(own.reason), {
          once: true,
        });
      }
    }
    return globalThis.fetch(input, {
      ...init,
      redirect: "manual",
      signal: deadline?.signal ?? own,
    });
  };

const withFetch = <A, E, R>(
  effect: Effect.Effect<A, E, R>,
  deadline: AbortController | undefined,
) =>
  Effect.provideService(effect, FetchHttpClient.Fetch, guardedFetch(deadline));

export interface GuardOptions {
  readonly maxBytes: number;
  readonly maxRedirects?: number;
  /**
   * For each request sent, its body read included (not the wait for a
   * permit). Enforced by aborting fetch: `client` is fetch's (FetchHttpClient).
   */
  readonly timeout?: Duration.DurationInput;
  /**
   * Wraps each request sent (the first and every redirect followed), body
   * read included: a rate limiter's permit, a request counter.
   */
  readonly around?: <A, E>(
    send: Effect.Effect<A, E>,
  ) => Effect.Effect<A, E>;
}

/**
 * Sends `request`, follows same-origin redirects (at most `maxRedirects`),
 * refuses every other one, and reads the final answer within `maxBytes`.
 */
export const sendGuarded = (
  client: HttpClient.HttpClient,
  request: HttpClientRequest.HttpClientRequest,
  options: GuardOptions,
): Effect.Effect<Answer, GuardedFailure> =>
  sendGuardedWith(
    client,
    request,
    options,
    (response) =>
      Effect.map(
        readCapped(response, options.maxBytes),
        (text): Answer => ({
          status: response.status,
          headers: response.headers,
          text,
        }),
      ),
  );

/**
 * `sendGuarded`, with the final answer read by `readAnswer` (within the
 * timeout and the permit, like the whole body): a caller that decodes the
 * body as it arrives never holds all of it.
 */
export const sendGuardedWith = <A, E>(
  client: HttpClient.HttpClient,
  request: HttpClientRequest.HttpClientRequest,
  options: GuardOptions,
  readAnswer: (
    response: HttpClientResponse.HttpClientResponse,
  ) => Effect.Effect<A, E | AnswerTooLarge | HttpClientError.ResponseError>,
): Effect.Effect<A, GuardedFailure | E> => {
  const maxRedirects = options.maxRedirects ?? defaultMaxRedirects;
  const around = options.around ?? ((send) => send);
  const timeout = options.timeout === undefined
    ? undefined
    : Duration.decode(options.timeout);
  const timeoutMs = timeout === undefined
    ? undefined
    : Duration.toMillis(timeout);
  /**
   * Sends within the timeout: a timer aborts the fetch, which fails the wait
   * for the headers or the read of the body. Not Effect.timeoutFail: it
   * forked two fibers a request, ~6% of a fast run's CPU.
   */
  const timed = <B>(
    send: (
      deadline: AbortController | undefined,
    ) => Effect.Effect<B, GuardedFailure | E>,
  ): Effect.Effect<B, GuardedFailure | E> => {
    if (timeout === undefined || timeoutMs === undefined) {
      return send(undefined);
    }
    return Effect.suspend(() => {
      const deadline = new AbortController();
      let fired = false;
      const timer = setTimeout(() => {
        fired = true;
        deadline.abort();
      }, timeoutMs);
      return send(deadline).pipe(
        // What fails once the timer fired failed because of it (the client
        // also aborts, e.g. after a capped read: that is not a timeout).
        Effect.catchIf(
          () => fired,
          () => Effect.fail(new TimedOut({ after: timeout })),
        ),
        Effect.ensuring(Effect.sync(() => clearTimeout(timer))),
      );
    });
  };
  type Hop =
    | { readonly _tag: "Answer"; readonly answer: A }
    | { readonly _tag: "Redirect"; readonly status: number; location: string };
  const hop = (
    current: HttpClientRequest.HttpClientRequest,
  ): Effect.Effect<Hop, GuardedFailure | E> =>
    around(
      timed((deadline) =>
        withFetch(client.execute(current), deadline).pipe(
          Effect.flatMap((response): Effect.Effect<Hop, GuardedFailure | E> => {
            const location = response.headers["location"];
            if (redirectStatuses.has(response.status) && location) {
              // Its body is never shown; read a little so the connection frees.
              return readCapped(response, 64 * 1024).pipe(
                Effect.ignore,
                Effect.as(
                  {
                    _tag: "Redirect",
                    status: response.status,
                    location,
                  } as const,
                ),
              );
            }
            return readAnswer(response).pipe(
              Effect.map((answer) => ({ _tag: "Answer", answer } as const)),
            );
          }),
        )
      ),
    );
  const loop = (
    current: HttpClientRequest.HttpClientRequest,
    hops: number,
  ): Effect.Effect<A, GuardedFailure | E> =>
    Effect.flatMap(hop(current), (result) => {
      if (result._tag === "Answer") return Effect.succeed(result.answer);
      const target = redirectTarget(current, result.status, result.location);
      const refuse = (to: string, problem: RedirectProblem) =>
        Effect.fail(
          new RedirectRefused({
            status: result.status,
            to,
            problem,
            hops,
          }),
        );
      if (target._tag === "Refuse") return refuse(target.to, target.problem);
      if (hops >= maxRedirects) return refuse(target.url.href, "too-many");
      return loop(HttpClientRequest.setUrl(current, target.url), hops + 1);
    });
  return loop(request, 0);
};
