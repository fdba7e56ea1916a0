import { Context, Either, ParseResult, Schema } from "effect";
import { expecting } from "../domain/expecting.ts";
import { FieldPolicy } from "../domain/fields.ts";
import { deprovisionSettingsFields } from "../domain/deprovision.ts";
import { groupsSettingsFields } from "../groups/settings.ts";

export { expecting };

const wholeNumber = (min: number) =>
  Schema.Int.pipe(Schema.greaterThanOrEqualTo(min)).annotations(
    expecting(`a whole number >= ${min}`),
  );
const wholeNumberBetween = (min: number, max: number) =>
  Schema.Int.pipe(Schema.between(min, max)).annotations(
    expecting(`a whole number from ${min} to ${max}`),
  );
/** Waits are in seconds, fractions allowed (tests shrink them to milliseconds). */
const seconds = Schema.Number.pipe(
  Schema.finite(),
  Schema.greaterThan(0),
  Schema.lessThanOrEqualTo(3600),
).annotations(
  expecting("a number of seconds > 0 and <= 3600, such as 30 or 0.5"),
);
const retryCount = wholeNumberBetween(0, 20);
/** A bound on a whole run's waiting: up to a day. */
const totalSeconds = Schema.Number.pipe(
  Schema.finite(),
  Schema.greaterThan(0),
  Schema.lessThanOrEqualTo(86400),
).annotations(
  expecting("a number of seconds > 0 and <= 86400, such as 1800"),
);
const text = (expected: string) =>
  Schema.NonEmptyTrimmedString.annotations(expecting(expected));
const required = <S extends Schema.Schema.Any>(schema: S, expected: string) =>
  Schema.propertySignature(schema).annotations({
    missingMessage: () => expected,
  });

const MOODLE_REST_PATH = "/webservice/rest/server.php";

/** Either the URL with no trailing slash, or why it cannot be used. */
const checkHttpUrl = (raw: string): Either.Either<URL, string> => {
  let url: URL;
  try {
    url = new URL(raw.trim());
  } catch {
    return Either.left("an http(s) URL such as https://example.org");
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    return Either.left("an http:// or https:// URL");
  }
  // Credentials or a query in the URL would end up in logs and error texts;
  // secrets have their own keys (moodle.token, discourse.apiKey).
  if (url.username !== "" || url.password !== "") {
    return Either.left("a URL without user:password@ (use the token keys)");
  }
  if (url.search !== "" || url.hash !== "") {
    return Either.left(
      "a URL without ?query or #fragment (use the token keys)",
    );
  }
  return Either.right(url);
};

const urlSchema = (
  normalize: (url: URL) => Either.Either<string, string>,
  expected: string,
) =>
  Schema.transformOrFail(
    Schema.String.annotations(expecting(expected)),
    Schema.String,
    {
      strict: true,
      decode: (raw, _, ast) =>
        Either.flatMap(checkHttpUrl(raw), normalize).pipe(
          Either.mapLeft((why) => new ParseResult.Type(ast, raw, why)),
        ),
      encode: ParseResult.succeed,
    },
  );

const withoutTrailingSlashes = (path: string) => path.replace(/\/+$/, "");

/**
 * Operators often paste the Moodle site root (what they see in the browser)
 * rather than the REST entry point; both name the same site, so the root is
 * accepted and completed instead of failing every call with a 404.
 */
const MoodleEndpoint = urlSchema(
  (url) => {
    const path = withoutTrailingSlashes(url.pathname);
    if (path.endsWith(MOODLE_REST_PATH)) {
      return Either.right(`${url.origin}${path}`);
    }
    if (path.includes(".php") || path.includes("/webservice")) {
      return Either.left(
        `the site root or .../webservice/rest/server.php (this URL points elsewhere in Moodle)`,
      );
    }
    return Either.right(`${url.origin}${path}${MOODLE_REST_PATH}`);
  },
  "an http(s) URL: the Moodle site root or its /webservice/rest/server.php",
);

/** Clients join paths onto it, so it never ends in a slash. */
const DiscourseUrl = urlSchema(
  (url) => Either.right(`${url.origin}${withoutTrailingSlashes(url.pathname)}`),
  "an http(s) URL of the forum, such as https://forum.example.org",
);

const isSupportedLocale = (locale: string): boolean => {
  try {
    return Intl.DisplayNames.supportedLocalesOf([locale]).length > 0;
  } catch {
    return false;
  }
};

const Locale = Schema.String.pipe(Schema.filter(isSupportedLocale))
  .annotations(
    expecting(
      'a locale Intl.DisplayNames knows, such as "en", "es" or "pt-BR"',
    ),
  );

const policy = Schema.optionalWith(
  FieldPolicy.annotations(expecting('"overwrite", "fill-empty" or "off"')),
  { default: () => "overwrite" as const },
);

const Username = Schema.String.annotations(expecting("a username (a string)"));

/** `settings.json`, as decoded; every default applied. */
export const Settings = Schema.Struct({
  ...groupsSettingsFields,
  env: Schema.optionalWith(
    text('a non-empty name such as "development" or "production"'),
    { default: () => "development" },
  ),
  moodle: Schema.Struct({
    endpoint: required(
      MoodleEndpoint,
      "the Moodle web service URL (or set MOODLE_ENDPOINT)",
    ),
    token: required(
      Schema.Redacted(text("the web service token (a non-empty string)")),
      "the Moodle web service token (or set MOODLE_TOKEN)",
    ),
    // Absent means the client's default: see README "Settings".
    timeoutSeconds: Schema.optional(seconds),
    retries: Schema.optional(retryCount),
    retryDelaySeconds: Schema.optional(seconds),
    /** The largest answer read; the whole user list is one answer. */
    maxResponseMegabytes: Schema.optional(wholeNumberBetween(1, 4096)),
  }).annotations({
    message: () =>
      "an object with endpoint, token, timeoutSeconds, retries, retryDelaySeconds, maxResponseMegabytes",
  }),
  discourse: Schema.Struct({
    url: required(DiscourseUrl, "the forum's URL (or set DISCOURSE_URL)"),
    apiKey: required(
      Schema.Redacted(text("an admin API key (a non-empty string)")),
      "a Discourse admin API key (or set DISCOURSE_API_KEY)",
    ),
    apiUser: Schema.optionalWith(text("a Discourse admin's username"), {
      default: () => "system",
    }),
    requestsPerMinute: Schema.optionalWith(wholeNumber(1), {
      default: () => 60,
    }),
    timeoutSeconds: Schema.optional(seconds),
    retries: Schema.optional(retryCount),
    retryDelaySeconds: Schema.optional(seconds),
    maxRateLimitWaitSeconds: Schema.optional(seconds),
    maxTotalRateLimitWaitSeconds: Schema.optional(totalSeconds),
    /** The forum's discourse_connect_secret: signs `sync_sso` payloads. */
    ssoSecret: Schema.optional(
      Schema.Redacted(text("the DiscourseConnect secret (a non-empty string)")),
    ),
  }).annotations({
    message: () =>
      "an object with url, apiKey, apiUser, requestsPerMinute, timeoutSeconds, retries, retryDelaySeconds, maxRateLimitWaitSeconds, maxTotalRateLimitWaitSeconds, ssoSecret",
  }),
  batchSize: Schema.optionalWith(wholeNumber(0), { default: () => 10 }),
  // Absent: as many users as the limit and the forum's latency call for.
  concurrency: Schema.optional(wholeNumber(1)),
  // Not the working folder: logs hold every user's email, and a folder of
  // their own keeps them (and their journals and MACs) together.
  logDir: Schema.optionalWith(text("a directory path"), {
    default: () => "logs",
  }),
  /**
   * How a Moodle user finds their forum account: by normalised username, by
   * DiscourseConnect external id (the Moodle id), or external id, then
   * username, then exact email.
   */
  match: Schema.optionalWith(
    Schema.Literal("username", "external_id", "auto").annotations(
      expecting('"username", "external_id" or "auto"'),
    ),
    { default: () => "username" as const },
  ),
  /** Accounts made by --create-missing. */
  create: Schema.optionalWith(
    Schema.Struct({
      suppressWelcomeMessage: Schema.optionalWith(
        Schema.Boolean.annotations(expecting("true or false")),
        { default: () => true },
      ),
    }).annotations({ message: () => "an object with suppressWelcomeMessage" }),
    { default: () => ({ suppressWelcomeMessage: true }) },
  ),
  /** The state store; absent: `sync-state.sqlite` beside the settings file. */
  state: Schema.optional(
    Schema.Struct({ path: Schema.optional(text("a file path")) }).annotations(
      { message: () => "an object with path" },
    ),
  ),
  /** Where --apply runs lock the forum; absent: the OS temp dir. */
  lockDir: Schema.optional(text("a directory path")),
  exclude: Schema.optionalWith(
    Schema.Struct({
      usernames: Schema.optionalWith(
        Schema.Array(Username).annotations({
          message: () => 'a list of usernames, such as ["admin", "guest"]',
        }),
        { default: () => [] },
      ),
      file: Schema.optional(
        Schema.String.annotations(expecting("a file path")),
      ),
      suspended: Schema.optionalWith(
        Schema.Boolean.annotations(expecting("true or false")),
        { default: () => true },
      ),
    }).annotations({
      message: () => "an object with usernames, file, suspended",
    }),
    { default: () => ({ usernames: [], suspended: true }) },
  ),
  fields: Schema.optionalWith(
    Schema.Struct({
      name: policy,
      location: policy,
      bio: policy,
      email: policy,
    }).annotations({
      message: () => "an object with name, location, bio, email",
    }),
    {
      default: () => ({
        name: "overwrite" as const,
        location: "overwrite" as const,
        bio: "overwrite" as const,
        email: "overwrite" as const,
      }),
    },
  ),
  location: Schema.optionalWith(
    Schema.Struct({
      country: Schema.optionalWith(
        Schema.Literal("code", "name").annotations(
          expecting('"code" (AR) or "name" (Argentina)'),
        ),
        { default: () => "code" as const },
      ),
      locale: Schema.optionalWith(Locale, { default: () => "en" }),
    }).annotations({ message: () => "an object with country, locale" }),
    { default: () => ({ country: "code" as const, locale: "en" }) },
  ),
  username: Schema.optionalWith(
    Schema.Struct({
      maxLength: Schema.optionalWith(wholeNumberBetween(3, 60), {
        default: () => 20,
      }),
      minLength: Schema.optionalWith(wholeNumberBetween(1, 60), {
        default: () => 3,
      }),
    }).annotations({ message: () => "an object with minLength, maxLength" })
      .pipe(
        Schema.filter((lengths) =>
          lengths.minLength <= lengths.maxLength || {
            path: ["minLength"],
            message:
              `a number <= username.maxLength (${lengths.maxLength}): Discourse cannot satisfy both`,
          }
        ),
      ),
    { default: () => ({ maxLength: 20, minLength: 3 }) },
  ),
  ...deprovisionSettingsFields,
});
export type Settings = typeof Settings.Type;

/** The settings this run uses, after the file, the environment and flags. */
export class CurrentSettings extends Context.Tag("CurrentSettings")<
  CurrentSettings,
  Settings
>() {}
