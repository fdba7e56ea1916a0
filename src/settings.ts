import * as FileSystem from "@effect/platform/FileSystem";
import { closestName } from "./suggest.ts";
import { meaningfulIssues } from "./parseProblems.ts";
import {
  Context,
  Data,
  Effect,
  Either,
  Option,
  ParseResult,
  Schema,
} from "effect";
import { fileLimits, readSmallFile, type SmallFileError } from "./smallFile.ts";
import { parseExclusionFile } from "./sync/select.ts";

/**
 * How a field is synced: `overwrite` makes Discourse equal Moodle,
 * `fill-empty` writes only where Discourse holds nothing, `off` never writes.
 */
export const FieldPolicy = Schema.Literal("overwrite", "fill-empty", "off");
export type FieldPolicy = typeof FieldPolicy.Type;

export const SyncedField = Schema.Literal("name", "location", "bio", "email");
export type SyncedField = typeof SyncedField.Type;
export const syncedFields: ReadonlyArray<SyncedField> = [
  "name",
  "location",
  "bio",
  "email",
];

/**
 * The text of an annotated schema's failure becomes the "expected" half of a
 * problem line, so it is phrased for the operator, not the programmer.
 * `override` keeps inner messages (e.g. "Expected number") from winning.
 */
const expecting = (expected: string) => ({
  message: () => ({ message: expected, override: true }),
});

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

/** A URL as written, minus any part that may carry a secret. */
const describeUrl = (raw: string): string => {
  try {
    const url = new URL(raw);
    if (url.username === "" && url.password === "" && url.search === "") {
      return raw;
    }
    url.username = "";
    url.password = "";
    url.search = url.search === "" ? "" : "?(hidden)";
    return url.href;
  } catch {
    // Unparsable, yet it may still hold user:password@ or a query.
    const withoutUser = raw.replace(/\/\/[^/?#]*@/, "//(hidden)@");
    return withoutUser.includes("?")
      ? `${withoutUser.slice(0, withoutUser.indexOf("?"))}?(hidden)`
      : withoutUser;
  }
};

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
    maxResponseMegabytes: Schema.optional(wholeNumberBetween(1, 500)),
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
  concurrency: Schema.optionalWith(wholeNumber(1), { default: () => 4 }),
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
});
export type Settings = typeof Settings.Type;

/** The settings this run uses, after the file, the environment and flags. */
export class CurrentSettings extends Context.Tag("CurrentSettings")<
  CurrentSettings,
  Settings
>() {}

// ---------------------------------------------------------------------------
// Loading

/** One thing wrong with the settings, located well enough to fix it. */
export interface SettingsProblem {
  /** Dotted key, e.g. `discourse.apiKey`; empty when the whole file is wrong. */
  readonly path: string;
  /** What was there, never a secret: tokens show as `(hidden)`. */
  readonly found: string;
  readonly expected: string;
  /** The file path, or `environment variable BATCH_SIZE`. */
  readonly source: string;
}

const problemLine = (problem: SettingsProblem): string =>
  `${problem.source}: ${
    problem.path === "" ? "" : `${problem.path}: `
  }found ${problem.found}, expected ${problem.expected}`;

/** The settings cannot be used; `message` lists every problem, one a line. */
export class SettingsError extends Data.TaggedError("SettingsError")<{
  readonly problems: ReadonlyArray<SettingsProblem>;
}> {
  override get message(): string {
    return this.problems.map(problemLine).join("\n");
  }
}

/** The Python script's environment variables, and the key each one sets. */
export const settingsEnvironmentVariables = {
  MOODLE_ENDPOINT: ["moodle", "endpoint"],
  MOODLE_TOKEN: ["moodle", "token"],
  DISCOURSE_URL: ["discourse", "url"],
  DISCOURSE_API_KEY: ["discourse", "apiKey"],
  DISCOURSE_API_USER: ["discourse", "apiUser"],
  DISCOURSE_SSO_SECRET: ["discourse", "ssoSecret"],
  BATCH_SIZE: ["batchSize"],
  ENV: ["env"],
} as const satisfies Record<string, ReadonlyArray<string>>;
type SettingsVariable = keyof typeof settingsEnvironmentVariables;

const requiredVariables: ReadonlyArray<SettingsVariable> = [
  "MOODLE_ENDPOINT",
  "MOODLE_TOKEN",
  "DISCOURSE_URL",
  "DISCOURSE_API_KEY",
];

const secretPaths: ReadonlySet<string> = new Set([
  "moodle.token",
  "discourse.apiKey",
  "discourse.ssoSecret",
]);
const urlPaths: ReadonlySet<string> = new Set([
  "moodle.endpoint",
  "discourse.url",
]);

type JsonObject = Record<string, unknown>;
const isObject = (value: unknown): value is JsonObject =>
  typeof value === "object" && value !== null && !Array.isArray(value);

const valueAt = (root: unknown, path: ReadonlyArray<PropertyKey>): unknown =>
  path.reduce<unknown>(
    (node, key) =>
      isObject(node) || Array.isArray(node)
        ? (node as Record<PropertyKey, unknown>)[key]
        : undefined,
    root,
  );

/** The token and key as given (file or environment), to hide anywhere. */
const secretsIn = (input: JsonObject): ReadonlyArray<string> =>
  [...secretPaths].flatMap((path) => {
    const value = valueAt(input, path.split("."));
    return typeof value === "string" && value.trim().length >= 4
      ? [value, value.trim()]
      : [];
  });

/** A value as the operator wrote it, short, and with no secret in it. */
const describeFound = (
  path: string,
  value: unknown,
  secrets: ReadonlyArray<string> = [],
): string => {
  if (value === undefined) return "nothing";
  if (secretPaths.has(path)) return "(hidden)";
  if (Array.isArray(value)) return "a list";
  if (isObject(value)) return "an object";
  if (typeof value === "string") {
    // A secret pasted under the wrong key is still a secret.
    const unsecret = secrets.reduce(
      (text, secret) => text.split(secret).join("(hidden)"),
      value,
    );
    const shown = urlPaths.has(path) ? describeUrl(unsecret) : unsecret;
    return JSON.stringify(
      shown.length > 80 ? `${shown.slice(0, 80)}...` : shown,
    );
  }
  return String(value);
};

/** Effect reports an excess key as `is unexpected, expected: "a" | "b"`. */
const unknownKeyExpectation = (formatterMessage: string, key: string) => {
  const known = [...formatterMessage.matchAll(/"([^"]+)"/g)].map((m) => m[1]);
  const suggestion = closestName(key, known);
  return suggestion !== undefined
    ? `a known key: did you mean "${suggestion}"?`
    : `a known key (${known.join(", ")})`;
};

/**
 * The offset of the first JSON syntax error (the length when there is
 * none). V8's messages do not always
 * carry one, and some quote the offending source text, which may hold a
 * secret, so the location is found here and V8's quote is dropped.
 */
export const jsonSyntaxErrorOffset = (source: string): number => {
  let at = 0;
  const skipSpace = () => {
    while (" \t\n\r".includes(source[at] ?? "x")) at++;
  };
  const literal = (word: string) => {
    if (!source.startsWith(word, at)) return false;
    at += word.length;
    return true;
  };
  const string = (): boolean => {
    at++;
    while (at < source.length) {
      const char = source[at];
      if (char === '"') {
        at++;
        return true;
      }
      if (char < " ") return false;
      at += char === "\\" ? 2 : 1;
    }
    return false;
  };
  const number = (): boolean => {
    const match = /^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/.exec(
      source.slice(at),
    );
    if (match === null) return false;
    at += match[0].length;
    return true;
  };
  const sequence = (close: string, item: () => boolean): boolean => {
    at++;
    skipSpace();
    if (source[at] === close) {
      at++;
      return true;
    }
    for (;;) {
      if (!item()) return false;
      skipSpace();
      if (source[at] === ",") {
        at++;
      } else if (source[at] === close) {
        at++;
        return true;
      } else {
        return false;
      }
    }
  };
  const member = (): boolean => {
    skipSpace();
    if (source[at] !== '"' || !string()) return false;
    skipSpace();
    if (source[at] !== ":") return false;
    at++;
    return value();
  };
  const value = (): boolean => {
    skipSpace();
    const char = source[at];
    if (char === "{") return sequence("}", member);
    if (char === "[") return sequence("]", value);
    if (char === '"') return string();
    if (char === "-" || (char >= "0" && char <= "9")) return number();
    return literal("true") || literal("false") || literal("null");
  };
  if (value()) skipSpace();
  return at;
};

const lineAndColumn = (source: string, offset: number) => {
  const before = source.slice(0, offset).split("\n");
  return { line: before.length, column: before[before.length - 1].length + 1 };
};

const jsonSyntaxProblem = (
  file: string,
  source: string,
  error: unknown,
): SettingsProblem => {
  const reason = (error instanceof Error ? error.message : "")
    .replace(/,\s*(?:\.\.\.)?".*$/s, "")
    .replace(/\s+(in JSON\s+)?at position \d+.*$/s, "")
    .trim();
  const { line, column } = lineAndColumn(
    source,
    jsonSyntaxErrorOffset(source),
  );
  return {
    path: "",
    found: `invalid JSON at line ${line}, column ${column}${
      reason === "" ? "" : ` (${reason})`
    }`,
    expected:
      "a JSON object like settings.example.json (double quotes, no trailing commas, no comments)",
    source: file,
  };
};

type ReadResult =
  | { readonly _tag: "Missing" }
  | { readonly _tag: "Read"; readonly json: JsonObject };

const settingsFileExpected = (error: SmallFileError): string => {
  switch (error.refusal._tag) {
    case "TooLarge":
      return "a settings file like settings.example.json (a few KB): check the --settings path";
    case "Unreadable":
      return "a readable JSON file: check its permissions";
    default:
      return "a regular JSON file like settings.example.json: check the --settings path";
  }
};

const readSettingsFile = (
  file: string,
): Effect.Effect<ReadResult, SettingsError> =>
  Effect.gen(function* () {
    const fail = (found: string, expected: string) =>
      new SettingsError({
        problems: [{ path: "", found, expected, source: file }],
      });
    const source = yield* readSmallFile(file, fileLimits.settings).pipe(
      Effect.map(Option.some),
      Effect.catchAll((error) =>
        error.refusal._tag === "Missing"
          ? Effect.succeed(Option.none<string>())
          : Effect.fail(fail(error.found, settingsFileExpected(error)))
      ),
    );
    if (Option.isNone(source)) return { _tag: "Missing" } as const;
    const parsed = yield* Effect.try({
      try: () => JSON.parse(source.value) as unknown,
      catch: (error) =>
        new SettingsError({
          problems: [jsonSyntaxProblem(file, source.value, error)],
        }),
    });
    if (!isObject(parsed)) {
      return yield* fail(
        Array.isArray(parsed) ? "a JSON list" : typeof parsed === "string"
          // The string could be a pasted secret: name only its kind.
          ? "a JSON string"
          : `the JSON value ${parsed}`,
        "a JSON object { ... } like settings.example.json",
      );
    }
    return { _tag: "Read", json: parsed } as const;
  });

/** An empty variable counts as unset, as in most shells' `VAR= command`. */
const presentVariables = (env: Record<string, string | undefined>) =>
  (Object.keys(settingsEnvironmentVariables) as Array<SettingsVariable>)
    .flatMap((name) => {
      const value = env[name];
      return value === undefined || value.trim() === ""
        ? []
        : [{ name, value }];
    });

const withOverride = (
  root: JsonObject,
  path: ReadonlyArray<string>,
  value: unknown,
): JsonObject => {
  const [head, ...rest] = path;
  if (rest.length === 0) return { ...root, [head]: value };
  const child = isObject(root[head]) ? root[head] as JsonObject : {};
  return { ...root, [head]: withOverride(child, rest, value) };
};

/**
 * Reads the JSON settings file, lets the Python script's environment
 * variables override it, and decodes the result with every default applied.
 * A missing file is fine when the environment holds every required key.
 */
export const loadSettings = (
  path: string,
  env: Record<string, string | undefined>,
): Effect.Effect<Settings, SettingsError, FileSystem.FileSystem> =>
  Effect.gen(function* () {
    const file = yield* readSettingsFile(path);
    const variables = presentVariables(env);
    if (file._tag === "Missing") {
      const unset = requiredVariables.filter((name) =>
        !variables.some((variable) => variable.name === name)
      );
      if (unset.length > 0) {
        return yield* new SettingsError({
          problems: [{
            path: "",
            found: "no such file",
            expected:
              `a settings file (copy settings.example.json to ${path} and edit it), or the environment variables ${
                unset.join(", ")
              }`,
            source: path,
          }],
        });
      }
    }
    const sources = new Map<string, string>();
    let input: JsonObject = file._tag === "Read" ? file.json : {};
    for (const { name, value } of variables) {
      const keyPath = settingsEnvironmentVariables[name];
      const parsed = name === "BATCH_SIZE" && /^\s*\d+\s*$/.test(value)
        ? Number(value)
        : value;
      input = withOverride(input, keyPath, parsed);
      sources.set(keyPath.join("."), `environment variable ${name}`);
    }
    // Absent sections are reported key by key, which says more than
    // "moodle is missing".
    for (const section of ["moodle", "discourse"]) {
      if (input[section] === undefined) input = { ...input, [section]: {} };
    }
    const decoded = Schema.decodeUnknownEither(Settings)(input, {
      errors: "all",
      onExcessProperty: "error",
    });
    if (Either.isRight(decoded)) return decoded.right;
    const issues = meaningfulIssues(decoded.left);
    const problems: Array<SettingsProblem> = [];
    const seen = new Set<string>();
    for (const issue of issues) {
      const key = issue.path.join(".");
      if (seen.has(key)) continue;
      seen.add(key);
      const unknownKey = issue._tag === "Unexpected";
      problems.push({
        path: key,
        found: unknownKey
          ? "an unknown key"
          : issue._tag === "Missing"
          ? "nothing"
          : describeFound(key, valueAt(input, issue.path), secretsIn(input)),
        expected: unknownKey
          ? unknownKeyExpectation(
            issue.message,
            String(issue.path[issue.path.length - 1]),
          )
          : issue.message === "is missing"
          ? "a value"
          : issue.message,
        source: sources.get(key) ?? path,
      });
    }
    return yield* new SettingsError({ problems });
  });

/** Whether the parsed settings file itself holds a token or API key. */
const holdsSecret = (json: JsonObject): boolean =>
  [["moodle", "token"], ["discourse", "apiKey"], ["discourse", "ssoSecret"]]
    .some((keyPath) => {
      const value = valueAt(json, keyPath);
      return typeof value === "string" && value.trim() !== "";
    });

/**
 * The warning for a secret-holding settings file that group or others may
 * read (`mode` as stat reports it), or none.
 */
export const settingsFileMode = (
  path: string,
  mode: number,
  secretInside: boolean,
): Option.Option<string> =>
  secretInside && (mode & 0o044) !== 0
    ? Option.some(
      `${path} holds secrets (moodle.token, discourse.apiKey or discourse.ssoSecret) and other users of this machine can read it (mode ${
        (mode & 0o777).toString(8).padStart(3, "0")
      }); restrict it with: chmod 600 ${path}`,
    )
    : Option.none();

/**
 * A warning when the settings file holds a secret and group or others may
 * read it. Windows has no such mode bits, so it never warns there; an
 * unreadable or missing file is loadSettings' business, not this check's.
 */
export const warnIfReadableByOthers = (
  path: string,
): Effect.Effect<Option.Option<string>, never, FileSystem.FileSystem> =>
  Effect.gen(function* () {
    if (Deno.build.os === "windows") return Option.none();
    const fs = yield* FileSystem.FileSystem;
    const info = yield* fs.stat(path);
    const mode = Option.getOrUndefined(Option.fromNullable(info.mode));
    if (mode === undefined) return Option.none();
    const source = yield* readSmallFile(path, fileLimits.settings);
    const json = yield* Effect.try(() => JSON.parse(source) as unknown);
    return settingsFileMode(path, mode, isObject(json) && holdsSecret(json));
  }).pipe(Effect.orElseSucceed(() => Option.none<string>()));

/**
 * The usernames and patterns of `exclude.file`, read before anything is
 * contacted. A configured list that cannot be read is a settings error: run
 * without it, the users it names would be written.
 */
export const readExclusionList = (
  settings: Pick<Settings, "exclude">,
  settingsPath: string,
): Effect.Effect<ReadonlyArray<string>, SettingsError> => {
  const file = settings.exclude.file;
  if (file === undefined) return Effect.succeed([]);
  return readSmallFile(file, fileLimits.exclusionList).pipe(
    Effect.map(parseExclusionFile),
    Effect.mapError((error) =>
      new SettingsError({
        problems: [{
          path: "exclude.file",
          found: `${JSON.stringify(file)}: ${error.found}`,
          expected: error.refusal._tag === "Missing"
            ? "an existing file of usernames, one a line (relative paths start in the working folder), or no exclude.file"
            : error.refusal._tag === "Unreadable"
            ? "a file of usernames this user can read: check its permissions"
            : "a regular text file of usernames, one a line",
          source: settingsPath,
        }],
      })
    ),
  );
};
