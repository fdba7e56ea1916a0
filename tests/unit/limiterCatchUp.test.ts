// The limiter's pacing when its timers fire late, as they do in a busy
// process: a head that was waiting keeps the schedule (within a bound), so
// lateness is not rate lost for good; an idle line and a hold still start
// the schedule afresh.
import assert from "node:assert/strict";
import { Duration } from "effect";
import {
  admit,
  finish,
  holdState,
  initialLimiterState,
  limiterPlan,
  type LimiterState,
} from "../../src/discourse/RateLimiter.ts";

const fast = limiterPlan({ limit: 30_000, window: Duration.minutes(1) });

/** Sends admitted at `now` one after another until the first wait. */
const sendsAt = (state: LimiterState, now: number, waited: boolean) => {
  let sends = 0;
  for (;;) {
    const [admission, next] = admit(fast, state, now, waited);
    state = next;
    if (admission._tag === "Wait") return { sends, state };
    sends++;
  }
};

/** A schedule running: one send at 0, the next turn due an interval later. */
const running = admit(fast, initialLimiterState, 0)[1];

Deno.test("a waiting head that woke late sends the turns it missed, no more", () => {
  const late = 20;
  const { sends } = sendsAt(running, fast.intervalMs + late, true);
  // Due at one interval; by then `late` ms more have passed.
  assert.equal(sends, 1 + Math.floor(late / fast.intervalMs));
});

Deno.test("a caller arriving at an idle line late starts the schedule afresh", () => {
  const { sends, state } = sendsAt(running, fast.intervalMs + 20, false);
  assert.equal(sends, 1);
  assert.equal(state.nextSendAt, fast.intervalMs + 20 + fast.intervalMs);
});

Deno.test("lateness past the catch-up bound starts the schedule afresh", () => {
  assert.ok(fast.catchUpMs >= fast.intervalMs && fast.catchUpMs <= 250);
  const { sends } = sendsAt(
    running,
    fast.catchUpMs + 2 * fast.intervalMs,
    true,
  );
  assert.equal(sends, 1);
});

Deno.test("no catch-up after a 429's hold", () => {
  const held = holdState(running, 100);
  const [first] = admit(fast, held, 50, true);
  assert.deepEqual(first, { _tag: "Wait", millis: 50 });
  const { sends } = sendsAt(held, 100, true);
  assert.equal(sends, 1);
});

Deno.test("a slow limit never bursts, whatever its lateness", () => {
  const slow = limiterPlan({ limit: 60, window: Duration.minutes(1) });
  assert.equal(slow.catchUpMs, slow.intervalMs);
  const started = admit(slow, initialLimiterState, 0)[1];
  const [first, next] = admit(slow, started, slow.intervalMs + 900, true);
  assert.equal(first._tag, "Send");
  assert.equal(admit(slow, next, slow.intervalMs + 900, true)[0]._tag, "Wait");
});

Deno.test("with timers up to 12 ms late, a busy run still sends at the limit and no window holds more", () => {
  const windowMs = 60_000;
  const sent: Array<number> = [];
  let state = initialLimiterState;
  let now = 0;
  let waited = false;
  // Every answer takes 50 ms; a head that must wait wakes 0-12 ms late.
  const answers: Array<number> = [];
  for (let step = 0; sent.length < 40_000; step++) {
    while (answers.length > 0 && answers[0] <= now) {
      state = finish(state, answers.shift()!);
    }
    const [admission, next] = admit(fast, state, now, waited);
    state = next;
    if (admission._tag === "Send") {
      sent.push(now);
      answers.push(now + 50);
      // The next head was already in line.
      waited = true;
    } else {
      now += admission.millis + (step * 7919) % 13;
    }
  }
  const rate = (sent.length - 1) / (sent.at(-1)! - sent[0]) * windowMs;
  assert.ok(rate >= 0.95 * 30_000, `${rate} a minute`);
  assert.ok(rate < 30_000, `${rate} a minute`);
  let oldest = 0;
  for (let index = 0; index < sent.length; index++) {
    while (sent[oldest] <= sent[index] - windowMs) oldest++;
    assert.ok(index - oldest + 1 <= fast.budget, `window at ${sent[index]}`);
  }
});
