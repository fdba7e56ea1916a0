/**
 * The one place the settings become each client's config: a client reads
 * its own small config, never the whole settings.
 */
import { Duration } from "effect";
import {
  defaultDiscourseOptions,
  type DiscourseConfig,
  type DiscourseOptions,
} from "../discourse/config.ts";
import {
  defaultMoodleClientOptions,
  type MoodleClientOptions,
  type MoodleConfig,
} from "../moodle/config.ts";
import { scrubberFor } from "../domain/secrets.ts";
import type { Settings } from "./Settings.ts";

const fromSeconds = (seconds: number | undefined) =>
  seconds === undefined ? undefined : Duration.millis(seconds * 1000);

/** Only the keys the settings set: the rest keep the clients' defaults. */
const defined = <A extends object>(options: A): Partial<A> =>
  Object.fromEntries(
    Object.entries(options).filter(([, value]) => value !== undefined),
  ) as Partial<A>;

/**
 * The Discourse client's config: the defaults, then what the settings say,
 * then `overrides` (tests and the benchmark shrink the waits).
 */
export const discourseConfig = (
  settings: Settings,
  overrides: Partial<DiscourseOptions> = {},
): DiscourseConfig => ({
  ...defaultDiscourseOptions,
  ...defined({
    requestTimeout: fromSeconds(settings.discourse.timeoutSeconds),
    maxFailureRetries: settings.discourse.retries,
    backoffBase: fromSeconds(settings.discourse.retryDelaySeconds),
    maxRateLimitWait: fromSeconds(settings.discourse.maxRateLimitWaitSeconds),
    maxTotalRateLimitWait: fromSeconds(
      settings.discourse.maxTotalRateLimitWaitSeconds,
    ),
  }),
  ...overrides,
  url: settings.discourse.url,
  apiKey: settings.discourse.apiKey,
  apiUser: settings.discourse.apiUser,
  requestsPerMinute: settings.discourse.requestsPerMinute,
  ssoSecret: settings.discourse.ssoSecret,
  scrub: scrubberFor(settings),
});

/** The Moodle client's config, built the same way. */
export const moodleConfig = (
  settings: Settings,
  overrides: Partial<MoodleClientOptions> = {},
): MoodleConfig => ({
  ...defaultMoodleClientOptions,
  ...defined({
    timeout: fromSeconds(settings.moodle.timeoutSeconds),
    retries: settings.moodle.retries,
    retryDelay: fromSeconds(settings.moodle.retryDelaySeconds),
    maxAnswerBytes: settings.moodle.maxResponseMegabytes === undefined
      ? undefined
      : settings.moodle.maxResponseMegabytes * 1024 * 1024,
  }),
  ...overrides,
  endpoint: settings.moodle.endpoint,
  token: settings.moodle.token,
  scrub: scrubberFor(settings),
});
