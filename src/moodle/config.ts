import { Duration, type Redacted } from "effect";
import type { Scrub } from "../domain/secrets.ts";

/** How patient the client is; tests shrink these. */
export interface MoodleClientOptions {
  /** Limit for one attempt, reading the body included. */
  readonly timeout: Duration.DurationInput;
  /** Further attempts after a 5xx, a timeout or a broken connection. */
  readonly retries: number;
  /** Pause before the first retry; it doubles for each one after. */
  readonly retryDelay: Duration.DurationInput;
  /** Bytes of one answer read at most (`moodle.maxResponseMegabytes`). */
  readonly maxAnswerBytes: number;
}

/**
 * The whole user list comes in one answer: about 600 bytes a user plus the
 * description, so 100,000 users take some 60-100 MB with short bios and
 * 270 MB with 2 KB HTML ones. It is decoded as it arrives, so the cap
 * bounds time and traffic, not memory.
 */
const defaultMoodleAnswerMegabytes = 1024;

const megabyte = 1024 * 1024;

/**
 * The most one user record may take while the list is read; only one is
 * held at a time. Moodle's fields have short limits (100 characters for a
 * username or a name) but for the description, a text of any length: with
 * images or documents pasted in as data it can reach megabytes. 16 MB, or
 * 1/64 of the answer's limit when that is more, so the one setting raises
 * both.
 */
export const recordLimitBytes = (maxAnswerBytes: number): number =>
  Math.max(16 * megabyte, Math.floor(maxAnswerBytes / 64));

export const defaultMoodleClientOptions: MoodleClientOptions = {
  // The all-users call is one unpaged reply: thousands of users with their
  // HTML descriptions take a while for Moodle to build and send.
  timeout: Duration.seconds(120),
  retries: 3,
  retryDelay: Duration.seconds(1),
  maxAnswerBytes: defaultMoodleAnswerMegabytes * 1024 * 1024,
};

/** All the Moodle client knows of the settings. */
export interface MoodleConfig extends MoodleClientOptions {
  /** `https://<site>/webservice/rest/server.php`. */
  readonly endpoint: string;
  readonly token: Redacted.Redacted<string>;
  /**
   * Hides every secret the process holds, the Discourse key included: text
   * Moodle echoes never shows one.
   */
  readonly scrub: Scrub;
}
