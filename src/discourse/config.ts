import { Duration, type Redacted } from "effect";
import type { Scrub } from "../domain/secrets.ts";

/** Knobs of the client; tests and the benchmark shrink the waits. */
export interface DiscourseOptions {
  /** One attempt, response body included. */
  readonly requestTimeout: Duration.DurationInput;
  /** Retries after a 429 before giving up with DiscourseRateLimited. */
  readonly maxRateLimitRetries: number;
  /** Retries after a 5xx, a timeout or a lost connection. */
  readonly maxFailureRetries: number;
  /** First backoff after a failure; doubles each retry, jittered. */
  readonly backoffBase: Duration.DurationInput;
  readonly backoffCap: Duration.DurationInput;
  /** The span `requestsPerMinute` is counted over. */
  readonly rateLimitWindow: Duration.DurationInput;
  /** Wait after a 429 that says neither Retry-After nor wait_seconds. */
  readonly defaultRateLimitWait: Duration.DurationInput;
  /** Longest wait honoured for one 429, whatever the server asks. */
  readonly maxRateLimitWait: Duration.DurationInput;
  /** Longest the whole run may be held by 429s, all of them together. */
  readonly maxTotalRateLimitWait: Duration.DurationInput;
}

export const defaultDiscourseOptions: DiscourseOptions = {
  requestTimeout: Duration.seconds(30),
  maxRateLimitRetries: 8,
  maxFailureRetries: 4,
  backoffBase: Duration.millis(500),
  backoffCap: Duration.seconds(30),
  rateLimitWindow: Duration.minutes(1),
  defaultRateLimitWait: Duration.seconds(5),
  maxRateLimitWait: Duration.minutes(2),
  maxTotalRateLimitWait: Duration.minutes(30),
};

/** All the Discourse client knows of the settings. */
export interface DiscourseConfig extends DiscourseOptions {
  /** The forum's address, without a trailing slash. */
  readonly url: string;
  readonly apiKey: Redacted.Redacted<string>;
  readonly apiUser: string;
  readonly requestsPerMinute: number;
  /** Signs `sync_sso`; without it no DiscourseConnect account is created. */
  readonly ssoSecret: Redacted.Redacted<string> | undefined;
  /**
   * Hides every secret the process holds, Moodle's token included: a server
   * echoing any of them never gets it into a message.
   */
  readonly scrub: Scrub;
}
