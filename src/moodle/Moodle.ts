import * as HttpClient from "@effect/platform/HttpClient";
import * as HttpClientRequest from "@effect/platform/HttpClientRequest";
import { Context, Effect, Layer, Redacted, Schedule, Schema } from "effect";
import { terminalSafe } from "../domain/terminal.ts";
import { type Answer, sendGuarded } from "../http/guarded.ts";
import type { MoodleClientOptions, MoodleConfig } from "./config.ts";
import {
  apiError,
  guardFailure,
  httpError,
  isRetriable,
  type MoodleError,
  MoodleHttpError,
  type MoodleSite,
  MoodleTransportError,
  notJson,
  unexpectedShape,
} from "./errors.ts";
import {
  byMoodleId,
  isObject,
  moodleFormFields,
  type MoodleParam,
  toMoodleRecord,
} from "./records.ts";
import { type MoodleRecord, MoodleWarning } from "./schema.ts";

export type { MoodleError } from "./errors.ts";

export interface MoodleUsers {
  /** In Moodle id order. */
  readonly records: ReadonlyArray<MoodleRecord>;
  readonly warnings: ReadonlyArray<MoodleWarning>;
}

/** A cohort as `core_cohort_get_cohorts` lists it. */
export interface MoodleCohort {
  readonly id: number;
  readonly name: string;
  /** "" when unset. */
  readonly idnumber: string;
}

/** An active enrolment: the user and their role shortnames in the course. */
export interface MoodleEnrolment {
  readonly userId: number;
  readonly roles: ReadonlyArray<string>;
}

export interface MoodleService {
  /** Every user (`core_user_get_users`, email `%`), one request. */
  readonly allUsers: Effect.Effect<MoodleUsers, MoodleError>;
  /** Every cohort the token's user can see (`core_cohort_get_cohorts`). */
  readonly cohorts: Effect.Effect<ReadonlyArray<MoodleCohort>, MoodleError>;
  /** Members' ids by cohort id, for all of them in one call. */
  readonly cohortMembers: (
    cohortIds: ReadonlyArray<number>,
  ) => Effect.Effect<ReadonlyMap<number, ReadonlyArray<number>>, MoodleError>;
  /** The ids of the courses with this exact shortname (0 or 1). */
  readonly coursesByShortname: (
    shortname: string,
  ) => Effect.Effect<ReadonlyArray<number>, MoodleError>;
  /** A course's active enrolments (`onlyactive`), with their roles. */
  readonly activeEnrolments: (
    courseId: number,
  ) => Effect.Effect<ReadonlyArray<MoodleEnrolment>, MoodleError>;
}

/**
 * Transient failures (a 5xx, a timeout, a broken connection) are tried
 * again `retries` times, `retryDelay` first and doubling after.
 */
export const moodleRetry = (
  options: Pick<MoodleClientOptions, "retries" | "retryDelay">,
): Schedule.Schedule<unknown, MoodleError> =>
  Schedule.exponential(options.retryDelay).pipe(
    Schedule.intersect(Schedule.recurs(options.retries)),
    Schedule.whileInput(isRetriable),
  );

/** Says, on the error a retried call ends in, that it was tried again. */
const afterRetries = (error: MoodleError, retries: number): MoodleError => {
  if (!isRetriable(error) || retries === 0) return error;
  const message = `${error.message} (gave up after ${retries + 1} attempts)`;
  return error._tag === "MoodleHttpError"
    ? new MoodleHttpError({ status: error.status, message })
    : new MoodleTransportError({ message });
};

const hostOf = (endpoint: string): string => {
  try {
    return new URL(endpoint).host;
  } catch {
    return "(invalid moodle.endpoint)";
  }
};

const UsersReply = Schema.Struct({
  users: Schema.Array(Schema.Unknown),
  warnings: Schema.optionalWith(Schema.Array(MoodleWarning), {
    default: () => [],
  }),
});

const CohortsReply = Schema.Array(Schema.Struct({
  id: Schema.Int,
  name: Schema.String,
  idnumber: Schema.optionalWith(Schema.String, { default: () => "" }),
}));

const CohortMembersReply = Schema.Array(Schema.Struct({
  cohortid: Schema.Int,
  userids: Schema.Array(Schema.Int),
}));

const CoursesReply = Schema.Struct({
  courses: Schema.Array(Schema.Struct({ id: Schema.Int })),
});

const EnrolledReply = Schema.Array(Schema.Struct({
  id: Schema.Int,
  roles: Schema.optionalWith(
    Schema.Array(Schema.Struct({ shortname: Schema.String })),
    { default: () => [] },
  ),
}));

/** The Moodle client for `config`. */
const makeMoodle = (
  config: MoodleConfig,
): Effect.Effect<MoodleService, never, HttpClient.HttpClient> =>
  Effect.gen(function* () {
    const { endpoint, timeout, maxAnswerBytes } = config;
    const client = yield* HttpClient.HttpClient;
    const token = Redacted.value(config.token);

    // Moodle echoes parts of requests in some messages; a token must never
    // leave this module, whatever text carries it (encoded, escaped), and
    // its words are shown on a terminal: controls escaped.
    const scrubSecrets = config.scrub;
    const site: MoodleSite = {
      host: hostOf(endpoint),
      endpoint,
      scrub: (text) => terminalSafe(scrubSecrets(text), { keepNewlines: true }),
    };

    const attempt = (
      wsfunction: string,
      request: HttpClientRequest.HttpClientRequest,
    ) =>
      sendGuarded(client, request, { maxBytes: maxAnswerBytes, timeout }).pipe(
        Effect.map((answer: Answer) => ({
          status: answer.status,
          body: answer.text,
        })),
        Effect.mapError((failure) => guardFailure(site, wsfunction, failure)),
        Effect.filterOrElse(
          ({ status }) => status >= 200 && status < 300,
          ({ status, body }) =>
            Effect.fail(httpError(site, wsfunction, status, body)),
        ),
      );

    const readJson = (wsfunction: string, body: string) =>
      Effect.try({
        try: (): unknown => JSON.parse(body),
        catch: () => notJson(site, wsfunction, body),
      });

    /**
     * One web service call: the token travels only in the POST body (URLs
     * and headers end up in proxy and server logs), transient failures are
     * retried, and Moodle's HTTP-200 exception replies become errors.
     */
    const execute = <A, I>(
      wsfunction: string,
      params: Readonly<Record<string, MoodleParam>>,
      reply: Schema.Schema<A, I>,
    ): Effect.Effect<A, MoodleError> => {
      const request = HttpClientRequest.post(endpoint).pipe(
        HttpClientRequest.acceptJson,
        HttpClientRequest.bodyUrlParams([
          ["wstoken", token],
          ["wsfunction", wsfunction],
          ["moodlewsrestformat", "json"],
          ...moodleFormFields(params),
        ]),
      );
      return attempt(wsfunction, request).pipe(
        Effect.tapError((error) =>
          isRetriable(error)
            ? Effect.logDebug(`Moodle call failed, may retry: ${error.message}`)
            : Effect.void
        ),
        Effect.retry(moodleRetry(config)),
        Effect.mapError((error) => afterRetries(error, config.retries)),
        Effect.flatMap(({ body }) => readJson(wsfunction, body)),
        Effect.flatMap((json) =>
          isObject(json) && "exception" in json
            ? Effect.fail(apiError(site, wsfunction, json))
            : Effect.succeed(json)
        ),
        Effect.flatMap((json) =>
          Schema.decodeUnknown(reply, { errors: "all" })(json).pipe(
            Effect.mapError((error) =>
              unexpectedShape(site, wsfunction, error)
            ),
          )
        ),
      );
    };

    const allUsers = execute(
      "core_user_get_users",
      { criteria: [{ key: "email", value: "%" }] },
      UsersReply,
    ).pipe(
      Effect.map(({ users, warnings }): MoodleUsers => ({
        records: byMoodleId(
          users.map((raw) => toMoodleRecord(raw, site.scrub)),
        ),
        // Printed to the operator: Moodle's words, minus secrets and controls.
        warnings: warnings.map((warning) => ({
          ...warning,
          warningcode: site.scrub(warning.warningcode),
          message: site.scrub(warning.message),
        })),
      })),
    );

    const cohorts = execute("core_cohort_get_cohorts", {}, CohortsReply);

    const cohortMembers = (cohortIds: ReadonlyArray<number>) =>
      cohortIds.length === 0
        ? Effect.succeed(new Map<number, ReadonlyArray<number>>())
        : execute(
          "core_cohort_get_cohort_members",
          { cohortids: cohortIds },
          CohortMembersReply,
        ).pipe(
          Effect.map((answer) =>
            new Map(answer.map((entry) => [entry.cohortid, entry.userids]))
          ),
        );

    const coursesByShortname = (shortname: string) =>
      execute(
        "core_course_get_courses_by_field",
        { field: "shortname", value: shortname },
        CoursesReply,
      ).pipe(Effect.map(({ courses }) => courses.map((course) => course.id)));

    const activeEnrolments = (courseId: number) =>
      execute(
        "core_enrol_get_enrolled_users",
        {
          courseid: courseId,
          // Suspended enrolments have lost the course: they are not members.
          options: [
            { name: "onlyactive", value: "1" },
            { name: "userfields", value: "id,roles" },
          ],
        },
        EnrolledReply,
      ).pipe(
        Effect.map((users) =>
          users.map((user) => ({
            userId: user.id,
            roles: user.roles.map((role) => role.shortname),
          }))
        ),
      );

    return {
      allUsers,
      cohorts,
      cohortMembers,
      coursesByShortname,
      activeEnrolments,
    };
  });

export class Moodle extends Context.Tag("Moodle")<Moodle, MoodleService>() {
  static readonly layer = (
    config: MoodleConfig,
  ): Layer.Layer<Moodle, never, HttpClient.HttpClient> =>
    Layer.effect(Moodle, makeMoodle(config));
}
