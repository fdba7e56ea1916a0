import * as HttpClient from "@effect/platform/HttpClient";
import * as HttpClientRequest from "@effect/platform/HttpClientRequest";
import type * as HttpClientError from "@effect/platform/HttpClientError";
import {
  Context,
  Data,
  Duration,
  Effect,
  Either,
  Layer,
  Option,
  Redacted,
  Schedule,
  Schema,
} from "effect";
import { describeParseError } from "../parseProblems.ts";
import { CurrentSettings } from "../settings.ts";
import { scrubberFor } from "../domain/secrets.ts";
import { terminalSafe } from "../domain/terminal.ts";
import {
  type Answer,
  describeBytes,
  type GuardedFailure,
  type RedirectRefused,
  sendGuarded,
} from "../http/guarded.ts";
import {
  MoodleException,
  type MoodleRecord,
  MoodleUser,
  MoodleWarning,
} from "./schema.ts";

/** Moodle answered with an exception (HTTP 200 and an `exception` key). */
export class MoodleApiError extends Data.TaggedError("MoodleApiError")<{
  readonly errorcode: string;
  readonly message: string;
}> {}

/** Moodle answered with an HTTP error status (403: web services disabled). */
export class MoodleHttpError extends Data.TaggedError("MoodleHttpError")<{
  readonly status: number;
  readonly message: string;
}> {}

/** Moodle could not be reached, or timed out. */
export class MoodleTransportError extends Data.TaggedError(
  "MoodleTransportError",
)<{ readonly message: string }> {}

/**
 * Moodle answered with a redirect this client does not follow (another
 * origin, or a POST turned into a GET): moodle.endpoint is not where the
 * web services answer. Nothing was sent to the other address.
 */
export class MoodleRedirected extends Data.TaggedError("MoodleRedirected")<{
  readonly message: string;
}> {}

/** An answer over the size limit: reading stopped there. */
export class MoodleAnswerTooLarge extends Data.TaggedError(
  "MoodleAnswerTooLarge",
)<{ readonly message: string }> {}

/** Moodle's answer was not the JSON this function returns. */
export class MoodleDecodeError extends Data.TaggedError("MoodleDecodeError")<{
  readonly message: string;
}> {}

export type MoodleError =
  | MoodleApiError
  | MoodleHttpError
  | MoodleTransportError
  | MoodleDecodeError
  | MoodleRedirected
  | MoodleAnswerTooLarge;

export interface MoodleUsers {
  /** In Moodle id order. */
  readonly records: ReadonlyArray<MoodleRecord>;
  readonly warnings: ReadonlyArray<MoodleWarning>;
}

export interface MoodleService {
  /** Every user (`core_user_get_users`, email `%`), one request. */
  readonly allUsers: Effect.Effect<MoodleUsers, MoodleError>;
  /** One user by exact username (`core_user_get_users_by_field`). */
  readonly userByUsername: (
    username: string,
  ) => Effect.Effect<Option.Option<MoodleRecord>, MoodleError>;
  /** The users with any of these usernames, in one request; unknown ones are left out. */
  readonly usersByUsername: (
    usernames: ReadonlyArray<string>,
  ) => Effect.Effect<ReadonlyArray<MoodleRecord>, MoodleError>;
}

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
 * description, so 100,000 users with short bios take some 60-100 MB. A
 * JavaScript string cannot hold much more than 512 MB anyway.
 */
export const defaultMoodleAnswerMegabytes = 256;

export const defaultMoodleClientOptions: MoodleClientOptions = {
  // The all-users call is one unpaged reply: thousands of users with their
  // HTML descriptions take a while for Moodle to build and send.
  timeout: Duration.seconds(120),
  retries: 3,
  retryDelay: Duration.seconds(1),
  maxAnswerBytes: defaultMoodleAnswerMegabytes * 1024 * 1024,
};

// ---------------------------------------------------------------------------
// Pure helpers

/** A web service parameter, as PHP reads nested arrays from a form. */
export type MoodleParam =
  | string
  | number
  | boolean
  | ReadonlyArray<MoodleParam>
  | { readonly [key: string]: MoodleParam };

const isParamList = (
  value: MoodleParam,
): value is ReadonlyArray<MoodleParam> => Array.isArray(value);

/**
 * Flattens parameters into PHP's bracket syntax:
 * `{criteria: [{key: "email", value: "%"}]}` becomes
 * `criteria[0][key]=email`, `criteria[0][value]=%`.
 */
export const moodleFormFields = (
  params: Readonly<Record<string, MoodleParam>>,
): Array<readonly [string, string]> => {
  const fields: Array<readonly [string, string]> = [];
  const add = (name: string, value: MoodleParam): void => {
    if (isParamList(value)) {
      value.forEach((item, index) => add(`${name}[${index}]`, item));
    } else if (typeof value === "object") {
      for (const [key, item] of Object.entries(value)) {
        add(`${name}[${key}]`, item);
      }
    } else {
      // PHP's clean_param reads booleans as 1/0.
      fields.push([
        name,
        typeof value === "boolean" ? (value ? "1" : "0") : String(value),
      ]);
    }
  };
  for (const [name, value] of Object.entries(params)) add(name, value);
  return fields;
};

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value);

const decodeUser = Schema.decodeUnknownEither(MoodleUser, { errors: "all" });

/**
 * One raw user record as the pipeline sees it: a malformed one carries
 * whatever identifies it, so it shows up as that user's error instead of
 * failing the whole fetch.
 */
export const toMoodleRecord = (raw: unknown): MoodleRecord => {
  if (!isObject(raw)) {
    return {
      _tag: "Malformed",
      id: undefined,
      username: undefined,
      problem: `the record is ${
        Array.isArray(raw) ? "a list" : `${raw}`
      }, not an object`,
    };
  }
  return Either.match(decodeUser(raw), {
    onRight: (user): MoodleRecord => ({ _tag: "Valid", user }),
    onLeft: (error): MoodleRecord => ({
      _tag: "Malformed",
      id: typeof raw.id === "number" && Number.isInteger(raw.id)
        ? raw.id
        : undefined,
      username: typeof raw.username === "string" ? raw.username : undefined,
      problem: describeParseError(error, "the record"),
    }),
  });
};

const recordId = (record: MoodleRecord): number | undefined =>
  record._tag === "Valid" ? record.user.id : record.id;

/** By id, as Moodle sends them; records with no readable id go last. */
export const byMoodleId = (
  records: ReadonlyArray<MoodleRecord>,
): Array<MoodleRecord> =>
  [...records].sort((a, b) =>
    (recordId(a) ?? Number.POSITIVE_INFINITY) -
    (recordId(b) ?? Number.POSITIVE_INFINITY)
  );

/** Where the operator must look, and what Moodle means by each errorcode. */
export const moodleApiErrorMessage = (
  host: string,
  wsfunction: string,
  exception: {
    readonly errorcode: string;
    readonly message: string;
    readonly debuginfo?: string | null | undefined;
  },
): string => {
  const { errorcode, message } = exception;
  switch (errorcode) {
    case "invalidtoken":
      return `Moodle at ${host} rejected the token (invalidtoken): check moodle.token in the settings file or the MOODLE_TOKEN environment variable; Site administration > Server > Web services > Manage tokens lists the valid ones.`;
    case "accessexception":
      return `Moodle at ${host} refused ${wsfunction} for this token (accessexception): add ${wsfunction} to the token's external service in Site administration > Server > Web services > External services > Functions. If it is there, the token has expired or is restricted to other IP addresses (Manage tokens).`;
    case "invalidrecord":
      return `Moodle at ${host} does not know the web service function ${wsfunction} (invalidrecord): this Moodle version is probably too old or too new for it. Moodle said: ${message}`;
    case "nopermissions":
      return `The token's user on ${host} lacks a capability ${wsfunction} needs (nopermissions): give that user's role the capabilities it names, such as moodle/user:viewdetails, moodle/user:viewhiddendetails and moodle/course:useremail, or use a token of a user who has them. Moodle said: ${message}`;
    case "wsaccessusersuspended":
      return `The token's user on ${host} is suspended (wsaccessusersuspended): unsuspend that account, or create the token for an active user.`;
    case "wsaccessusernologin":
      return `The token's user on ${host} has the "No login" authentication method (wsaccessusernologin): give that account a real authentication method, or create the token for another user.`;
    case "sitemaintenance":
      return `Moodle at ${host} is in maintenance mode (sitemaintenance): run the sync again when maintenance is over.`;
    default: {
      const debug = exception.debuginfo
        ? ` Debug info: ${exception.debuginfo}`
        : "";
      return errorcode.startsWith("wsaccessuser")
        ? `The token's user on ${host} may not use web services (${errorcode}): ${message} Fix that account or create the token for another user.${debug}`
        : `Moodle at ${host} answered ${wsfunction} with an error: ${message} (errorcode ${errorcode}).${debug}`;
    }
  }
};

const hostOf = (endpoint: string): string => {
  try {
    return new URL(endpoint).host;
  } catch {
    return "(invalid moodle.endpoint)";
  }
};

/** fetch wraps the useful words ("Connection refused") in its causes. */
const deepestMessage = (cause: unknown): string | undefined => {
  let found: string | undefined;
  for (let depth = 0; cause instanceof Error && depth < 5; depth++) {
    if (cause.message !== "") found = cause.message;
    cause = cause.cause;
  }
  return found;
};

const isRetriable = (error: MoodleError): boolean =>
  error._tag === "MoodleTransportError" ||
  (error._tag === "MoodleHttpError" && error.status >= 500);

const UsersReply = Schema.Struct({
  users: Schema.Array(Schema.Unknown),
  warnings: Schema.optionalWith(Schema.Array(MoodleWarning), {
    default: () => [],
  }),
});
const UsersByFieldReply = Schema.Array(Schema.Unknown);

// ---------------------------------------------------------------------------
// The service

/** The Moodle client for the current settings. */
export const makeMoodle = (
  options: Partial<MoodleClientOptions> = {},
): Effect.Effect<
  MoodleService,
  never,
  CurrentSettings | HttpClient.HttpClient
> =>
  Effect.gen(function* () {
    const { timeout, retries, retryDelay, maxAnswerBytes } = {
      ...defaultMoodleClientOptions,
      ...options,
    };
    const settings = yield* CurrentSettings;
    const client = yield* HttpClient.HttpClient;
    const endpoint = settings.moodle.endpoint;
    const token = Redacted.value(settings.moodle.token);
    const host = hostOf(endpoint);

    // Moodle echoes parts of requests in some messages; a token must never
    // leave this module, whatever text carries it (encoded, escaped), and
    // its words are shown on a terminal: controls escaped.
    const scrubSecrets = scrubberFor(settings);
    const scrub = (text: string): string =>
      terminalSafe(scrubSecrets(text), { keepNewlines: true });
    const excerpt = (body: string): string => {
      const flat = scrub(body.replace(/\s+/g, " ").trim());
      return flat.length > 80 ? `${flat.slice(0, 80)}...` : flat;
    };

    const transportError = (
      wsfunction: string,
      error: HttpClientError.HttpClientError,
    ) => {
      const detail = scrub(
        error.description ?? deepestMessage(error.cause) ?? error.reason,
      );
      return new MoodleTransportError({
        message:
          `Could not get ${wsfunction} from Moodle at ${host}: ${detail}. Check moodle.endpoint and that this machine can reach the site (network, proxy, firewall).`,
      });
    };

    const httpError = (wsfunction: string, status: number, body: string) => {
      if (status === 403 && body.trim() === "") {
        return new MoodleHttpError({
          status,
          message:
            `Moodle at ${host} refused the web service call (HTTP 403 with an empty body): web services or the REST protocol are disabled. An administrator enables them in Site administration > Advanced features > Enable web services, and in Site administration > Server > Web services > Manage protocols > REST.`,
        });
      }
      const advice = status === 404
        ? `: moodle.endpoint is probably wrong; it should be the site's https://<site>/webservice/rest/server.php`
        : status >= 500
        ? ": the server failed; try again later, or ask the Moodle administrator to check its logs"
        : status === 401 || status === 403
        ? ": access was denied, by Moodle or a proxy in front of it"
        : "";
      return new MoodleHttpError({
        status,
        message:
          `Moodle at ${host} answered HTTP ${status} to ${wsfunction}${advice}.`,
      });
    };

    const readJson = (wsfunction: string, body: string) =>
      Effect.try({
        try: () => JSON.parse(body) as unknown,
        catch: () =>
          new MoodleDecodeError({
            message: /^\s*</.test(body)
              ? `Moodle at ${host} answered ${wsfunction} with an HTML page instead of JSON (often a login or error page): moodle.endpoint is probably wrong; it should end in /webservice/rest/server.php.`
              : `Moodle at ${host} answered ${wsfunction} with something that is not JSON (${body.length} bytes starting "${
                excerpt(body)
              }").`,
          }),
      });

    const apiError = (wsfunction: string, json: Record<string, unknown>) => {
      const exception = Either.getOrElse(
        Schema.decodeUnknownEither(MoodleException)(json),
        () => ({
          errorcode: typeof json.errorcode === "string"
            ? json.errorcode
            : "unknown",
          message: typeof json.message === "string"
            ? json.message
            : "(no message)",
          debuginfo: undefined,
        }),
      );
      return new MoodleApiError({
        errorcode: exception.errorcode,
        message: scrub(moodleApiErrorMessage(host, wsfunction, exception)),
      });
    };

    const redirected = (wsfunction: string, refused: RedirectRefused) => {
      const to = scrub(refused.to);
      const what = refused.problem === "other-origin"
        ? `a redirect (HTTP ${refused.status}) to ${to}, another address: nothing was sent there (the token goes only to moodle.endpoint)`
        : refused.problem === "method-change"
        ? `a redirect (HTTP ${refused.status}) that turns the call into a GET of ${to} (often a login page): the call is not re-sent that way`
        : refused.problem === "too-many"
        ? `redirects within the site, more than ${refused.hops} times (last to ${to})`
        : `a redirect (HTTP ${refused.status}) to "${to}", which is not a URL`;
      return new MoodleRedirected({
        message:
          `Moodle at ${endpoint} answered ${wsfunction} with ${what}. A misconfigured moodle.endpoint is the usual cause (http:// for an https:// site, www. or not, a wrong path): set it to the site's own https://<site>/webservice/rest/server.php.`,
      });
    };

    const guardFailure = (wsfunction: string, failure: GuardedFailure) => {
      switch (failure._tag) {
        case "RedirectRefused":
          return redirected(wsfunction, failure);
        case "AnswerTooLarge":
          return new MoodleAnswerTooLarge({
            message: `Moodle at ${host} answered more than ${
              describeBytes(failure.limitBytes)
            } for ${wsfunction}; reading stopped there. If the site really has that many users, raise moodle.maxResponseMegabytes (now ${
              Math.round(failure.limitBytes / 1024 / 1024)
            }); otherwise check that moodle.endpoint points at Moodle itself.`,
          });
        case "TimedOut":
          return new MoodleTransportError({
            message: `Moodle at ${host} did not answer ${wsfunction} within ${
              Duration.format(failure.after)
            }: the site may be overloaded or down.`,
          });
        default:
          return transportError(wsfunction, failure);
      }
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
        Effect.mapError((failure) => guardFailure(wsfunction, failure)),
        Effect.filterOrElse(
          ({ status }) => status >= 200 && status < 300,
          ({ status, body }) =>
            Effect.fail(httpError(wsfunction, status, body)),
        ),
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
        Effect.retry({
          schedule: Schedule.exponential(retryDelay),
          times: retries,
          while: isRetriable,
        }),
        Effect.mapError((error) =>
          isRetriable(error) && retries > 0
            ? error._tag === "MoodleHttpError"
              ? new MoodleHttpError({
                status: error.status,
                message: `${error.message} (gave up after ${
                  retries + 1
                } attempts)`,
              })
              : new MoodleTransportError({
                message: `${error.message} (gave up after ${
                  retries + 1
                } attempts)`,
              })
            : error
        ),
        Effect.flatMap(({ body }) => readJson(wsfunction, body)),
        Effect.filterOrElse(
          (json) => !(isObject(json) && "exception" in json),
          (json) =>
            Effect.fail(apiError(wsfunction, json as Record<string, unknown>)),
        ),
        Effect.flatMap((json) =>
          Schema.decodeUnknown(reply, { errors: "all" })(json).pipe(
            Effect.mapError((error) =>
              new MoodleDecodeError({
                message: scrub(
                  `Moodle at ${host} answered ${wsfunction} with JSON of an unexpected shape: ${
                    describeParseError(error, "the answer")
                  }`,
                ),
              })
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
        records: byMoodleId(users.map(toMoodleRecord)),
        // Printed to the operator: Moodle's words, minus secrets and controls.
        warnings: warnings.map((warning) => ({
          ...warning,
          warningcode: scrub(warning.warningcode),
          message: scrub(warning.message),
        })),
      })),
    );

    const usersByUsername = (usernames: ReadonlyArray<string>) =>
      execute(
        "core_user_get_users_by_field",
        // Moodle cleans the value as a username and refuses upper case
        // with invalidparameter instead of matching it.
        {
          field: "username",
          values: [...new Set(usernames.map((u) => u.toLowerCase()))],
        },
        UsersByFieldReply,
      ).pipe(Effect.map((users) => users.map(toMoodleRecord)));

    const userByUsername = (username: string) =>
      Effect.map(
        usersByUsername([username]),
        (records) => Option.fromNullable(records[0]),
      );

    return { allUsers, userByUsername, usersByUsername };
  });

export class Moodle extends Context.Tag("Moodle")<Moodle, MoodleService>() {
  static readonly layer: Layer.Layer<
    Moodle,
    never,
    CurrentSettings | HttpClient.HttpClient
  > = Layer.effect(Moodle, makeMoodle());

  /** The same client with other timeouts and retries (tests, slow sites). */
  static readonly layerWith = (
    options: Partial<MoodleClientOptions>,
  ): Layer.Layer<Moodle, never, CurrentSettings | HttpClient.HttpClient> =>
    Layer.effect(Moodle, makeMoodle(options));
}
