// How many users a run keeps going: Little's law on the limit and the latency
// observed, within the cap; and the gate that holds the others back.
import assert from "node:assert/strict";
import { Deferred, Effect, Fiber, Ref, TestClock, TestContext } from "effect";
import {
  makeAdaptiveGate,
  makeLatencyMeter,
  usersInFlight,
} from "../../src/discourse/concurrency.ts";

const perMinute = (limit: number) => limit / 60_000;

Deno.test("users in flight grow with the limit and the latency, past the old fixed 4", () => {
  const at = (limit: number, latencyMs: number) =>
    usersInFlight(perMinute(limit), latencyMs, 256);
  // 600/min at 50 ms needs well under one request in flight.
  assert.ok(at(600, 50) <= 3);
  assert.ok(at(30_000, 250) > at(30_000, 50));
  assert.ok(at(30_000, 250) > at(6_000, 250));
  // Little's law: λ·W users keep the limiter's line from running dry.
  for (const [limit, latency] of [[6_000, 250], [30_000, 50], [30_000, 250]]) {
    assert.ok(at(limit, latency) >= perMinute(limit) * latency);
    assert.ok(at(limit, latency) > 4);
  }
});

Deno.test("the cap bounds users in flight, however slow the forum gets", () => {
  assert.equal(usersInFlight(perMinute(30_000), 60_000, 256), 256);
  assert.equal(usersInFlight(perMinute(30_000), 60_000, 8), 8);
  assert.equal(usersInFlight(perMinute(60), 1, 256) >= 1, true);
  assert.equal(usersInFlight(perMinute(60), 1, 1), 1);
});

Deno.test("the forum's latency is read from its quicker answers, not dragged up by slow ones", async () => {
  const latencies = await Effect.runPromise(
    Effect.gen(function* () {
      const meter = yield* makeLatencyMeter;
      const first = yield* meter.latencyMs;
      // Most answers take 100 ms; a few waited 2 s behind a busy process.
      const requests = Array.from(
        { length: 40 },
        (_, i) =>
          meter.timed(Effect.sleep(i % 8 === 0 ? "2 seconds" : "100 millis")),
      );
      const all = yield* Effect.fork(
        Effect.all(requests, { concurrency: "unbounded" }),
      );
      yield* TestClock.adjust("2 seconds");
      yield* Fiber.join(all);
      return [first, yield* meter.latencyMs];
    }).pipe(Effect.provide(TestContext.TestContext)),
  );
  assert.equal(latencies[1], 100);
  assert.notEqual(latencies[0], latencies[1]);
});

Deno.test("the gate lets in no more than its width, and more as it widens", async () => {
  const seen = await Effect.runPromise(
    Effect.gen(function* () {
      const width = yield* Ref.make(2);
      const gate = yield* makeAdaptiveGate(Ref.get(width));
      const release = yield* Deferred.make<void>();
      const inside = yield* Ref.make(0);
      const most = yield* Ref.make(0);
      const work = Effect.gen(function* () {
        const now = yield* Ref.updateAndGet(inside, (n) => n + 1);
        yield* Ref.update(most, (m) => Math.max(m, now));
        yield* Deferred.await(release);
        yield* Ref.update(inside, (n) => n - 1);
      });
      const fibers = yield* Effect.forEach(
        Array.from({ length: 6 }),
        () => Effect.fork(gate.withPermit(work)),
      );
      yield* Effect.yieldNow({ priority: 1 });
      const atFirst = yield* gate.inside;
      yield* Ref.set(width, 4);
      yield* Deferred.succeed(release, undefined);
      yield* Effect.forEach(fibers, Fiber.join);
      return { atFirst, most: yield* Ref.get(most), after: yield* gate.inside };
    }),
  );
  assert.equal(seen.atFirst, 2);
  assert.ok(seen.most <= 4);
  assert.equal(seen.after, 0);
});

Deno.test("a caller interrupted while waiting gives its place up", async () => {
  const after = await Effect.runPromise(
    Effect.gen(function* () {
      const gate = yield* makeAdaptiveGate(Effect.succeed(1));
      const hold = yield* Deferred.make<void>();
      const first = yield* Effect.fork(gate.withPermit(Deferred.await(hold)));
      yield* Effect.yieldNow();
      const waiting = yield* Effect.fork(gate.withPermit(Effect.void));
      yield* Effect.yieldNow();
      yield* Fiber.interrupt(waiting);
      yield* Deferred.succeed(hold, undefined);
      yield* Fiber.join(first);
      // The place is free again: a newcomer enters at once.
      yield* gate.withPermit(Effect.void);
      return yield* gate.inside;
    }),
  );
  assert.equal(after, 0);
});
