import assert from "node:assert/strict";
import {
  describeEstimate,
  estimateProgress,
  formatDuration,
} from "../../src/report/progress.ts";

const minute = 60_000;

Deno.test("estimateProgress: nothing to say before the first user is done", () => {
  const sample = {
    done: 0,
    total: 100,
    elapsedMs: 5_000,
    requestsSent: 3,
    requestsPerMinute: 60,
  };
  assert.equal(estimateProgress(sample), undefined);
  assert.equal(
    estimateProgress({ ...sample, done: 1, elapsedMs: 0 }),
    undefined,
  );
  assert.equal(describeEstimate(undefined), "");
});

Deno.test("estimateProgress: far under the rate limit, the observed rate gives the time left", () => {
  const estimate = estimateProgress({
    done: 100,
    total: 1000,
    elapsedMs: 2 * minute,
    requestsSent: 103,
    requestsPerMinute: 6000,
  });
  assert.equal(estimate?.basis, "observed");
  assert.equal(estimate?.usersPerMinute, 50);
  // 900 users left at 50 a minute.
  assert.equal(estimate?.remainingMs, 18 * minute);
  assert.equal(describeEstimate(estimate), ", 50 users/min, about 18 min left");
});

Deno.test("estimateProgress: held by the rate limit, the request budget gives the time left", () => {
  // 60 a minute paces at 97%: 58.2 requests a minute. The run sent 95% of
  // that, at 2 requests a user: the budget allows 29.1 users a minute.
  const estimate = estimateProgress({
    done: 276,
    total: 10_000,
    elapsedMs: 10 * minute,
    requestsSent: 552,
    requestsPerMinute: 60,
  });
  assert.equal(estimate?.basis, "budget");
  assert.equal(estimate?.usersPerMinute, 27.6);
  const expected = ((10_000 - 276) / (58.2 / 2)) * minute;
  assert.ok(Math.abs((estimate?.remainingMs ?? 0) - expected) < 1);
  // The observed rate alone would promise a later end.
  assert.ok(expected < ((10_000 - 276) / 27.6) * minute);
  assert.equal(
    describeEstimate(estimate),
    ", 28 users/min, about 5 h 34 min left",
  );
});

Deno.test("estimateProgress: a finished batch has no time left", () => {
  const estimate = estimateProgress({
    done: 10,
    total: 10,
    elapsedMs: 3_000,
    requestsSent: 20,
    requestsPerMinute: 60,
  });
  assert.equal(estimate?.remainingMs, 0);
});

Deno.test("formatDuration: seconds, minutes, hours and minutes", () => {
  assert.equal(formatDuration(0), "0 s");
  assert.equal(formatDuration(44_600), "45 s");
  assert.equal(formatDuration(12 * minute + 10_000), "12 min");
  assert.equal(formatDuration(174 * minute), "2 h 54 min");
});
