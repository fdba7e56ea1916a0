/** The progress bar's rate and time left. Pure. */
import { limiterPlan } from "../discourse/RateLimiter.ts";

export interface ProgressSample {
  /** Users finished so far, and in the whole batch. */
  readonly done: number;
  readonly total: number;
  readonly elapsedMs: number;
  /** Discourse requests sent so far. */
  readonly requestsSent: number;
  /** `discourse.requestsPerMinute`: the forum's admin API limit. */
  readonly requestsPerMinute: number;
}

export interface ProgressEstimate {
  /** Users finished a minute, as observed. */
  readonly usersPerMinute: number;
  readonly remainingMs: number;
  /** "budget" when the run is held to the forum's rate limit. */
  readonly basis: "budget" | "observed";
}

/**
 * A run sending at least this share of the paced rate is held by the rate
 * limiter, not by the servers' speed: its future pace is the budget's.
 */
const rateLimitedShare = 0.9;

/** Requests a minute the client's pacing lets through under this limit. */
const pacedRequestsPerMinute = (requestsPerMinute: number): number =>
  60_000 /
  limiterPlan({ limit: requestsPerMinute, window: "1 minute" }).intervalMs;

/**
 * Users a minute and the time left. On a rate-limited run the time left
 * comes from the request budget (the paced requests a minute over the
 * requests each user has cost so far), which early samples cannot skew;
 * otherwise from the observed rate. Undefined before the first user is done.
 */
export const estimateProgress = (
  sample: ProgressSample,
): ProgressEstimate | undefined => {
  if (sample.done <= 0 || sample.elapsedMs <= 0) return undefined;
  const minutes = sample.elapsedMs / 60_000;
  const usersPerMinute = sample.done / minutes;
  const paced = pacedRequestsPerMinute(sample.requestsPerMinute);
  const requestsPerUser = sample.requestsSent / sample.done;
  const rateLimited = requestsPerUser > 0 &&
    sample.requestsSent / minutes >= rateLimitedShare * paced;
  const rate = rateLimited ? paced / requestsPerUser : usersPerMinute;
  const remaining = Math.max(0, sample.total - sample.done);
  return {
    usersPerMinute,
    remainingMs: (remaining / rate) * 60_000,
    basis: rateLimited ? "budget" : "observed",
  };
};

/** `45 s`, `12 min`, `2 h 54 min`. */
export const formatDuration = (ms: number): string => {
  const seconds = Math.round(ms / 1000);
  if (seconds < 60) return `${seconds} s`;
  const minutes = Math.round(seconds / 60);
  if (minutes < 60) return `${minutes} min`;
  return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
};

/** What follows the bar: `, 58 users/min, about 15 min left`. */
export const describeEstimate = (
  estimate: ProgressEstimate | undefined,
): string =>
  estimate === undefined
    ? ""
    : `, ${Math.round(estimate.usersPerMinute)} users/min, about ${
      formatDuration(estimate.remainingMs)
    } left`;
