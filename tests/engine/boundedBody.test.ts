// An answer is read whole only when the HTTP layer itself bounds it; a body
// that declares a short length but can run longer (chunked, or compressed)
// is still cut at the cap. The server here is a raw socket on loopback: the
// doubles' node:http would not send such contradictory headers.
import assert from "node:assert/strict";
import { gzipSync } from "node:zlib";
import * as FetchHttpClient from "@effect/platform/FetchHttpClient";
import * as HttpClient from "@effect/platform/HttpClient";
import * as HttpClientRequest from "@effect/platform/HttpClientRequest";
import { Effect, Either } from "effect";
import { sendGuarded } from "../../src/http/guarded.ts";

const cap = 64 * 1024;

/** One answer, written as given: headers, then the body's parts. */
const rawServer = (head: string, parts: ReadonlyArray<Uint8Array>) => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const served = (async () => {
    for await (const conn of listener) {
      try {
        await conn.read(new Uint8Array(64 * 1024));
        await conn.write(new TextEncoder().encode(head));
        for (const part of parts) await conn.write(part);
      } catch {
        // The client stopped reading: what the cap is for.
      } finally {
        conn.close();
      }
    }
  })();
  return {
    url: `http://127.0.0.1:${(listener.addr as Deno.NetAddr).port}/`,
    close: async () => {
      listener.close();
      await served.catch(() => {});
    },
  };
};

const read = (url: string) =>
  Effect.runPromise(
    Effect.flatMap(HttpClient.HttpClient, (client) =>
      Effect.either(
        sendGuarded(client, HttpClientRequest.get(url), { maxBytes: cap }),
      )).pipe(Effect.provide(FetchHttpClient.layer)),
  );

const encode = (text: string) => new TextEncoder().encode(text);

Deno.test("a body within its declared length is read whole", async () => {
  const body = JSON.stringify({ user: { id: 1, username: "ana" } });
  const server = rawServer(
    `HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n`,
    [encode(body)],
  );
  try {
    const answer = await read(server.url);
    assert.ok(Either.isRight(answer));
    assert.equal(answer.right.text, body);
  } finally {
    await server.close();
  }
});

Deno.test("a short declared length with a chunked body still stops at the cap", async () => {
  const chunk = "x".repeat(50_000);
  const server = rawServer(
    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 10\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
    [
      ...Array.from(
        { length: 10 },
        () => encode(`${chunk.length.toString(16)}\r\n${chunk}\r\n`),
      ),
      encode("0\r\n\r\n"),
    ],
  );
  try {
    const answer = await read(server.url);
    assert.ok(Either.isLeft(answer));
    assert.equal(answer.left._tag, "AnswerTooLarge");
  } finally {
    await server.close();
  }
});

Deno.test("a short compressed body that decodes past the cap stops at the cap", async () => {
  const body = gzipSync(encode(`"${"x".repeat(1024 * 1024)}"`));
  assert.ok(body.byteLength < cap);
  const server = rawServer(
    `HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\nContent-Length: ${body.byteLength}\r\nConnection: close\r\n\r\n`,
    [body],
  );
  try {
    const answer = await read(server.url);
    assert.ok(Either.isLeft(answer));
    assert.equal(answer.left._tag, "AnswerTooLarge");
  } finally {
    await server.close();
  }
});
