// The per-request timeout bounds the wait for the headers and the read of the
// body alike, and a request given up (timed out or interrupted) is aborted:
// the server sees its connection closed. The server is a raw socket on
// loopback, so it can stall at any byte and see when the client lets go.
import assert from "node:assert/strict";
import * as FetchHttpClient from "@effect/platform/FetchHttpClient";
import * as HttpClient from "@effect/platform/HttpClient";
import * as HttpClientRequest from "@effect/platform/HttpClientRequest";
import { Duration, Effect, Either, Fiber } from "effect";
import { type GuardOptions, sendGuarded } from "../../src/http/guarded.ts";

const encode = (text: string) => new TextEncoder().encode(text);

/** Long past every timeout here: a server that stalls this long gives up. */
const stallMs = 3_000;

/**
 * Answers one request with `head` and `parts`, then stalls; after `stallMs`
 * it sends `rest` and closes. `letGo` says who ended the connection: the
 * client, by dropping it while the server stalled, or the server.
 */
const stallingServer = (
  head: string,
  parts: ReadonlyArray<string> = [],
  rest = "",
) => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  let requested!: () => void;
  const requestArrived = new Promise<void>((resolve) => requested = resolve);
  const served = (async (): Promise<"client" | "server"> => {
    const conn = await listener.accept();
    const buffer = new Uint8Array(64 * 1024);
    try {
      await conn.read(buffer);
      requested();
      if (head !== "") await conn.write(encode(head));
      for (const part of parts) await conn.write(encode(part));
      let timer: ReturnType<typeof setTimeout> | undefined;
      const stalled = new Promise<"stalled">((resolve) => {
        timer = setTimeout(() => resolve("stalled"), stallMs);
      });
      // A client sends nothing more: a read ends only when it goes.
      const gone = conn.read(buffer).then(
        () => "gone" as const,
        () => "gone" as const,
      );
      const first = await Promise.race([stalled, gone]);
      clearTimeout(timer);
      if (first === "gone") return "client";
      await conn.write(encode(rest));
      return "server";
    } catch {
      return "client";
    } finally {
      conn.close();
    }
  })();
  return {
    url: `http://127.0.0.1:${(listener.addr as Deno.NetAddr).port}/`,
    requestArrived,
    letGo: served,
    close: () => listener.close(),
  };
};

const complete = (body: string) =>
  `HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`;

const send = (url: string, options: Partial<GuardOptions> = {}) =>
  Effect.flatMap(
    HttpClient.HttpClient,
    (client) =>
      sendGuarded(client, HttpClientRequest.get(url), {
        maxBytes: 64 * 1024,
        ...options,
      }),
  ).pipe(Effect.provide(FetchHttpClient.layer));

/** Where an answer stalls: what the server sends first, and the rest. */
type Stall = readonly [string, ReadonlyArray<string>, string];
const stalls: Readonly<Record<string, Stall>> = {
  "the headers are awaited": ["", [], complete('{"user":{}}')],
  "a body of declared length stalls": [
    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n",
    ['{"user":'],
    "{}}",
  ],
  "a chunked body stalls": [
    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
    ['8\r\n{"user":\r\n'],
    "3\r\n{}}\r\n0\r\n\r\n",
  ],
} as const;

for (const [when, [head, parts, rest]] of Object.entries(stalls)) {
  Deno.test(`the timeout fires while ${when}, and the connection is dropped`, async () => {
    const server = stallingServer(head, parts, rest);
    try {
      const answer = await Effect.runPromise(
        Effect.either(send(server.url, { timeout: Duration.millis(200) })),
      );
      assert.ok(Either.isLeft(answer), "no answer was expected");
      assert.equal(answer.left._tag, "TimedOut");
      assert.equal(await server.letGo, "client");
    } finally {
      server.close();
    }
  });
}

Deno.test("a request whose fiber is interrupted is aborted: the server sees the connection go", async () => {
  for (const stallAt of ["headers", "body"] as const) {
    const server = stallingServer(
      ...stalls[
        stallAt === "headers"
          ? "the headers are awaited"
          : "a body of declared length stalls"
      ],
    );
    try {
      await Effect.runPromise(Effect.gen(function* () {
        // A long timeout: only the interruption can end this request.
        const fiber = yield* Effect.fork(
          send(server.url, { timeout: Duration.minutes(5) }),
        );
        yield* Effect.promise(() => server.requestArrived);
        yield* Fiber.interrupt(fiber);
      }));
      assert.equal(await server.letGo, "client");
    } finally {
      server.close();
    }
  }
});

Deno.test("an answer cut at the size cap within the timeout is too large, not timed out", async () => {
  const chunk = "x".repeat(16 * 1024);
  const chunked = `${chunk.length.toString(16)}\r\n${chunk}\r\n`;
  // Past the 64 KB cap, then a stall: only the cap can end the read.
  const server = stallingServer(
    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n",
    Array.from({ length: 5 }, () => chunked),
    "0\r\n\r\n",
  );
  try {
    const answer = await Effect.runPromise(
      Effect.either(send(server.url, { timeout: Duration.minutes(5) })),
    );
    assert.ok(Either.isLeft(answer), "no answer was expected");
    assert.equal(answer.left._tag, "AnswerTooLarge");
    assert.equal(await server.letGo, "client");
  } finally {
    server.close();
  }
});
