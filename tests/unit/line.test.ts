// The one-at-a-time line the rate limiter, the audit log and the journal
// share: arrival order, one at a time, and no turn lost to a caller
// that gives up.
import assert from "node:assert/strict";
import { Deferred, Effect, Fiber } from "effect";
import { makeLine } from "../../src/domain/line.ts";

/** Lets every fiber that can run, run. */
const settle = Effect.repeatN(Effect.yieldNow(), 20);

Deno.test("turns go in arrival order, one at a time", async () => {
  const order = await Effect.runPromise(Effect.gen(function* () {
    const line = yield* makeLine;
    const order: Array<string> = [];
    const inside = { now: 0, most: 0 };
    const work = (name: string) =>
      line.inTurn(Effect.gen(function* () {
        inside.now++;
        inside.most = Math.max(inside.most, inside.now);
        order.push(`${name} in`);
        yield* settle;
        order.push(`${name} out`);
        inside.now--;
      }));
    yield* Effect.all(["a", "b", "c", "d"].map(work), {
      concurrency: "unbounded",
    });
    assert.equal(inside.most, 1);
    return order;
  }));
  assert.deepEqual(order, [
    "a in",
    "a out",
    "b in",
    "b out",
    "c in",
    "c out",
    "d in",
    "d out",
  ]);
});

Deno.test("fifty callers held behind one all get their turn, in arrival order", async () => {
  const stillWaiting = await Effect.runPromise(Effect.gen(function* () {
    const line = yield* makeLine;
    const release = yield* Deferred.make<void>();
    const holder = yield* Effect.fork(line.inTurn(Deferred.await(release)));
    yield* settle;
    const woken: Array<number> = [];
    const waiters = yield* Effect.forEach(
      Array.from({ length: 50 }, (_, index) => index),
      (index) => Effect.fork(line.inTurn(Effect.sync(() => woken.push(index)))),
    );
    yield* settle;
    assert.deepEqual(woken, []);
    yield* Deferred.succeed(release, undefined);
    yield* Fiber.join(holder);
    yield* Effect.forEach(waiters, Fiber.join);
    return woken;
  }));
  assert.deepEqual(stillWaiting, Array.from({ length: 50 }, (_, i) => i));
});

Deno.test("a caller that gives up while waiting loses no turn for the others", async () => {
  const ran = await Effect.runPromise(Effect.gen(function* () {
    const line = yield* makeLine;
    const release = yield* Deferred.make<void>();
    const ran: Array<string> = [];
    const holder = yield* Effect.fork(line.inTurn(Deferred.await(release)));
    yield* settle;
    const quitter = yield* Effect.fork(
      line.inTurn(Effect.sync(() => ran.push("quitter"))),
    );
    const patient = yield* Effect.fork(
      line.inTurn(Effect.sync(() => ran.push("patient"))),
    );
    yield* settle;
    yield* Fiber.interrupt(quitter);
    yield* Deferred.succeed(release, undefined);
    yield* Fiber.join(holder);
    yield* Fiber.join(patient);
    // The line is free again afterwards.
    yield* line.inTurn(Effect.sync(() => ran.push("later")));
    return ran;
  }));
  assert.deepEqual(ran, ["patient", "later"]);
});

Deno.test("a turn handed over just as its caller gives up passes on", async () => {
  const ran = await Effect.runPromise(Effect.gen(function* () {
    const line = yield* makeLine;
    const ran: Array<string> = [];
    yield* Effect.uninterruptibleMask((restore) => line.enter(restore));
    const quitter = yield* Effect.fork(
      line.inTurn(Effect.sync(() => ran.push("quitter"))),
    );
    const patient = yield* Effect.fork(
      line.inTurn(Effect.sync(() => ran.push("patient"))),
    );
    yield* settle;
    // The turn goes to the quitter while it is being interrupted: whether
    // its work ran or not, the turn must reach the patient caller (a lost
    // turn hangs this test).
    yield* Effect.zip(line.leave, Fiber.interrupt(quitter), {
      concurrent: true,
    });
    yield* Fiber.join(patient);
    yield* line.inTurn(Effect.sync(() => ran.push("later")));
    return ran;
  }));
  assert.deepEqual(ran.filter((name) => name !== "quitter"), [
    "patient",
    "later",
  ]);
});
