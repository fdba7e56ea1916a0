// One user record of Moodle's list is held at most up to a limit (16 MB, or
// 1/64 of moodle.maxResponseMegabytes): a record past it, or an answer that
// never closes one, stops the run with a message naming the user or the
// record's place, never a process that grows until it is killed.
import assert from "node:assert/strict";
import * as FetchHttpClient from "@effect/platform/FetchHttpClient";
import { Effect, Either, Schema } from "effect";
import { moodleLayer } from "../../src/cli/AppLayer.ts";
import { Settings } from "../../src/config/Settings.ts";
import { Moodle } from "../../src/moodle/Moodle.ts";
import { startFakeMoodle } from "../doubles/fakeMoodle.ts";
import type { Fault } from "../doubles/http.ts";
import { withWorld } from "../support/reliability.ts";

const megabyte = 1024 * 1024;

/** Waits for the double to see the answer's end, then how much went out. */
const bytesSent = async (fault: Fault): Promise<number> => {
  assert.equal(fault.kind, "huge-body");
  if (fault.kind !== "huge-body") return 0;
  for (let i = 0; i < 100 && fault.sent === undefined; i++) {
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  assert.ok(fault.sent !== undefined, "the double never saw the answer end");
  return fault.sent;
};

/** A users list whose record goes on for `bytes` bytes of the answer. */
const endlessRecord = (prefix: string, bytes: number): Fault => ({
  kind: "huge-body",
  count: 1000,
  bytes,
  prefix,
  filler: "<p>A CV that never ends. </p>",
});

Deno.test("a user record past 16 MB stops the run naming the user, how to fix it, and reads no further (exit 3, no forum request)", async () => {
  await withWorld({}, async (world) => {
    const fault = endlessRecord(
      '{"users":[{"id":2,"username":"ok.user","fullname":"Ok User","email":"ok@example.edu"},{"id":77,"username":"cv.writer","fullname":"C W","description":"',
      200 * megabyte,
    );
    world.moodle.inject(fault);
    const result = await world.engine(["--all", "--apply"]);
    assert.equal(result.code, 3, result.stderr + result.stdout);
    assert.match(
      result.stderr,
      /Moodle at 127\.0\.0\.1:\d+ sent, for core_user_get_users, the record of Moodle user id 77 \("cv\.writer"\) \(the 2nd record, starting at byte 86 of the answer\) larger than 16 MB; reading stopped there/,
    );
    assert.match(result.stderr, /shorten that user's description in Moodle/);
    assert.match(
      result.stderr,
      /raise moodle\.maxResponseMegabytes \(now 1024\)/,
    );
    assert.equal(world.discourse.requests.length, 0);
    const sent = await bytesSent(fault);
    assert.ok(sent > 16 * megabyte, `only ${sent} bytes went out`);
    assert.ok(
      sent < 48 * megabyte,
      `${sent} bytes of 200 MB went out: reading did not stop near the record limit`,
    );
  });
});

Deno.test("a record with no readable id is named by its place in the answer", async () => {
  await withWorld({}, async (world) => {
    // Not a user object at all: an array that never closes.
    world.moodle.inject(
      endlessRecord('{"users":[{"id":2,"fullname":"A"},\n  ["', 40 * megabyte),
    );
    const result = await world.engine(["--all"]);
    assert.equal(result.code, 3, result.stderr + result.stdout);
    assert.match(
      result.stderr,
      /a user record whose id could not be read \(the 2nd record, starting at byte 37 of the answer\) larger than 16 MB/,
    );
    assert.match(result.stderr, /check that moodle\.endpoint points at Moodle/);
  });
});

Deno.test("raising moodle.maxResponseMegabytes raises the record limit: a 20 MB description is read whole", async () => {
  const prefix =
    '{"users":[{"id":9,"username":"long.bio","fullname":"Long Bio","description":"';
  const suffix = '"}],"warnings":[]}';
  const fault = (): Fault => ({
    kind: "huge-body",
    count: 1,
    bytes: 20 * megabyte,
    prefix,
    filler: "x",
    suffix,
  });
  const fake = await startFakeMoodle({ token: "t0ken-for-records", users: [] });
  try {
    const read = (maxResponseMegabytes: number | undefined) => {
      fake.inject(fault());
      const settings = Schema.decodeUnknownSync(Settings)({
        moodle: {
          endpoint: fake.endpoint,
          token: fake.token,
          ...(maxResponseMegabytes === undefined
            ? {}
            : { maxResponseMegabytes }),
        },
        discourse: { url: "http://127.0.0.1:9", apiKey: "unused" },
      });
      return Effect.runPromise(
        Effect.flatMap(Moodle, (moodle) => moodle.allUsers).pipe(
          Effect.either,
          Effect.provide(
            moodleLayer(settings, { retries: 0 }, FetchHttpClient.layer),
          ),
        ),
      );
    };
    const refused = await read(undefined);
    assert.ok(Either.isLeft(refused));
    assert.equal(refused.left._tag, "MoodleRecordTooLarge");
    assert.match(refused.left.message, /user id 9 \("long\.bio"\)/);

    const accepted = await read(2048);
    assert.ok(Either.isRight(accepted), JSON.stringify(accepted));
    const [record] = accepted.right.records;
    assert.equal(record._tag, "Valid");
    if (record._tag !== "Valid") return;
    assert.equal(
      record.user.description?.length,
      20 * megabyte - prefix.length - suffix.length,
    );
  } finally {
    await fake.close();
  }
});
