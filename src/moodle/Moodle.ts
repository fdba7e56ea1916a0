import * as HttpClient from "@effect/platform/HttpClient";
import * as HttpClientRequest from "@effect/platform/HttpClientRequest";
import { Context, Effect, Layer, Redacted, Schedule, Schema } from "effect";
import { terminalSafe } from "../domain/terminal.ts";
import type * as HttpClientError from "@effect/platform/HttpClientError";
import {
  type Answer,
  type AnswerTooLarge,
  readCapped,
  sendGuarded,
  sendGuardedWith,
} from "../http/guarded.ts";
import {
  type MoodleClientOptions,
  type MoodleConfig,
  recordLimitBytes,
} from "./config.ts";
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
  recordTooLarge,
  unexpectedShape,
} from "./errors.ts";
import {
  byMoodleId,
  isObject,
  moodleFormFields,
  type MoodleParam,
  recordId,
  toMoodleRecord,
} from "./records.ts";
import { type MoodleRecord, MoodleWarning } from "./schema.ts";
import {
  type RecordTooLarge,
  type SplitAnswer,
  splitUsersAnswer,
} from "./streamUsers.ts";

export type { MoodleError } from "./errors.ts";

export interface MoodleUsers<A = MoodleRecord> {
  /** In Moodle id order. */
  readonly records: ReadonlyArray<A>;
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
  /**
   * `allUsers`, each record handed to `keep` as it arrives: only what `keep`
   * returns is held, never the whole answer.
   */
  readonly eachUser: <A>(
    keep: (record: MoodleRecord) => A,
  ) => Effect.Effect<MoodleUsers<A>, MoodleError>;
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

    const readJson = (
      wsfunction: string,
      body: string,
      notJsonBody: { readonly head: string; readonly bytes: number } = {
        head: body,
        bytes: body.length,
      },
    ) =>
      Effect.try({
        try: (): unknown => JSON.parse(body),
        catch: () =>
          notJson(site, wsfunction, notJsonBody.head, notJsonBody.bytes),
      });

    const requestFor = (
      wsfunction: string,
      params: Readonly<Record<string, MoodleParam>>,
    ) =>
      HttpClientRequest.post(endpoint).pipe(
        HttpClientRequest.acceptJson,
        HttpClientRequest.bodyUrlParams([
          ["wstoken", token],
          ["wsfunction", wsfunction],
          ["moodlewsrestformat", "json"],
          ...moodleFormFields(params),
        ]),
      );

    /** Transient failures are tried again; the last one says how often. */
    const retried = <A>(attempts: Effect.Effect<A, MoodleError>) =>
      attempts.pipe(
        Effect.tapError((error) =>
          isRetriable(error)
            ? Effect.logDebug(`Moodle call failed, may retry: ${error.message}`)
            : Effect.void
        ),
        Effect.retry(moodleRetry(config)),
        Effect.mapError((error) => afterRetries(error, config.retries)),
      );

    /** Moodle's HTTP-200 exception replies become errors; the rest is decoded. */
    const decodeReply = <A, I>(
      wsfunction: string,
      json: unknown,
      reply: Schema.Schema<A, I>,
    ): Effect.Effect<A, MoodleError> =>
      isObject(json) && "exception" in json
        ? Effect.fail(apiError(site, wsfunction, json))
        : Schema.decodeUnknown(reply, { errors: "all" })(json).pipe(
          Effect.mapError((error) => unexpectedShape(site, wsfunction, error)),
        );

    /**
     * One web service call: the token travels only in the POST body (URLs
     * and headers end up in proxy and server logs), transient failures are
     * retried, and Moodle's HTTP-200 exception replies become errors.
     */
    const execute = <A, I>(
      wsfunction: string,
      params: Readonly<Record<string, MoodleParam>>,
      reply: Schema.Schema<A, I>,
    ): Effect.Effect<A, MoodleError> =>
      retried(attempt(wsfunction, requestFor(wsfunction, params))).pipe(
        Effect.flatMap(({ body }) => readJson(wsfunction, body)),
        Effect.flatMap((json) => decodeReply(wsfunction, json, reply)),
      );

    const usersFunction = "core_user_get_users";
    const usersRequest = requestFor(usersFunction, {
      criteria: [{ key: "email", value: "%" }],
    });

    /**
     * The users list, its records decoded one by one as the answer arrives
     * (each attempt starts afresh); a non-2xx answer is read whole, as any.
     */
    const usersAttempt = <A>(keep: (record: MoodleRecord) => A) =>
      Effect.suspend(() => {
        const kept: Array<
          { readonly id: number | undefined; readonly value: A }
        > = [];
        const onRecord = (raw: unknown) => {
          const record = toMoodleRecord(raw, site.scrub);
          kept.push({ id: recordId(record), value: keep(record) });
        };
        type UsersAnswer =
          | {
            readonly _tag: "Split";
            readonly split: SplitAnswer;
            readonly kept: typeof kept;
          }
          | {
            readonly _tag: "Failed";
            readonly status: number;
            readonly body: string;
          };
        return sendGuardedWith(
          client,
          usersRequest,
          { maxBytes: maxAnswerBytes, timeout },
          (response): Effect.Effect<
            UsersAnswer,
            AnswerTooLarge | RecordTooLarge | HttpClientError.ResponseError
          > =>
            response.status >= 200 && response.status < 300
              ? Effect.map(
                splitUsersAnswer(response, {
                  answerBytes: maxAnswerBytes,
                  recordBytes: recordLimitBytes(maxAnswerBytes),
                }, onRecord),
                (split) => ({ _tag: "Split", split, kept } as const),
              )
              : Effect.map(
                readCapped(response, maxAnswerBytes),
                (body) =>
                  ({ _tag: "Failed", status: response.status, body }) as const,
              ),
        ).pipe(
          Effect.mapError((failure) =>
            failure._tag === "RecordTooLarge"
              ? recordTooLarge(site, usersFunction, failure, maxAnswerBytes)
              : guardFailure(site, usersFunction, failure)
          ),
          Effect.flatMap((answer) =>
            answer._tag === "Failed"
              ? Effect.fail(
                httpError(site, usersFunction, answer.status, answer.body),
              )
              : Effect.succeed(answer)
          ),
        );
      });

    const eachUser = <A>(
      keep: (record: MoodleRecord) => A,
    ): Effect.Effect<MoodleUsers<A>, MoodleError> =>
      retried(usersAttempt(keep)).pipe(
        Effect.flatMap(({ split, kept }) =>
          readSplit(split).pipe(
            Effect.map(({ warnings }): MoodleUsers<A> => ({
              records: byMoodleId(kept, (item) => item.id).map((item) =>
                item.value
              ),
              // Printed to the operator: Moodle's words, minus secrets and
              // controls.
              warnings: warnings.map((warning) => ({
                ...warning,
                warningcode: site.scrub(warning.warningcode),
                message: site.scrub(warning.message),
              })),
            })),
          )
        ),
      );

    /** What surrounds the users: an exception, warnings, or a wrong shape. */
    const readSplit = (split: SplitAnswer) =>
      (split.wellFormed
        ? readJson(usersFunction, split.rest, split)
        : Effect.fail(notJson(site, usersFunction, split.head, split.bytes)))
        .pipe(
          Effect.flatMap((json) =>
            decodeReply(usersFunction, json, UsersReply)
          ),
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

    const allUsers = eachUser((record) => record);

    return {
      allUsers,
      eachUser,
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
