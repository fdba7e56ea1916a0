import * as FileSystem from "@effect/platform/FileSystem";
import { Data, Effect, Either, Option, Schema } from "effect";
import { closestName } from "../suggest.ts";
import { meaningfulIssues } from "../parseProblems.ts";
import {
  fileLimits,
  readSmallFile,
  type SmallFileError,
} from "../smallFile.ts";
import { parseExclusionFile } from "../sync/select.ts";
import { Settings } from "./Settings.ts";

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
const settingsEnvironmentVariables = {
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
  Effect.map(loadSettingsAndWarning(path, env), (loaded) => loaded.settings);

/**
 * The settings, and a warning when the file holds a secret that other
 * users of the machine may read: the file is read once for both.
 */
export const loadSettingsAndWarning = (
  path: string,
  env: Record<string, string | undefined>,
): Effect.Effect<
  { readonly settings: Settings; readonly warning: Option.Option<string> },
  SettingsError,
  FileSystem.FileSystem
> =>
  Effect.gen(function* () {
    const file = yield* readSettingsFile(path);
    const settings = yield* decodeSettings(path, file, env);
    const warning = file._tag === "Read" && holdsSecret(file.json)
      ? yield* readableByOthers(path)
      : Option.none<string>();
    return { settings, warning };
  });

const decodeSettings = (
  path: string,
  file: ReadResult,
  env: Record<string, string | undefined>,
): Effect.Effect<Settings, SettingsError> =>
  Effect.gen(function* () {
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
 * The warning for a secret-holding settings file that group or others may
 * read. Windows has no such mode bits, so it never warns there; a file that
 * cannot be stat'ed was just read, so it is not this check's business.
 */
const readableByOthers = (
  path: string,
): Effect.Effect<Option.Option<string>, never, FileSystem.FileSystem> =>
  Effect.gen(function* () {
    if (Deno.build.os === "windows") return Option.none();
    const fs = yield* FileSystem.FileSystem;
    const info = yield* fs.stat(path);
    const mode = Option.getOrUndefined(Option.fromNullable(info.mode));
    if (mode === undefined) return Option.none();
    return settingsFileMode(path, mode, true);
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
