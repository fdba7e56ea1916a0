import assert from "node:assert/strict";
import { PlatformLayer } from "../../src/platform.ts";
import { Effect, Either, Option, Redacted } from "effect";
import type { Settings } from "../../src/config/Settings.ts";
import {
  jsonSyntaxErrorOffset,
  loadSettings,
  loadSettingsAndWarning,
  type SettingsError,
  settingsFileMode,
} from "../../src/config/load.ts";

const MOODLE_TOKEN = "0123456789abcdef0123456789abcdef";
const DISCOURSE_KEY = "fedcba9876543210fedcba9876543210feedface";

const completeEnv = {
  MOODLE_ENDPOINT: "https://moodle.example.edu",
  MOODLE_TOKEN,
  DISCOURSE_URL: "https://forum.example.edu",
  DISCOURSE_API_KEY: DISCOURSE_KEY,
};

const minimalFile = {
  moodle: {
    endpoint: "https://moodle.example.edu/webservice/rest/server.php",
    token: MOODLE_TOKEN,
  },
  discourse: { url: "https://forum.example.edu", apiKey: DISCOURSE_KEY },
};

const withTempDir = async (
  body: (dir: string) => Promise<void>,
): Promise<void> => {
  const dir = await Deno.makeTempDir({ prefix: "settings-test-" });
  try {
    await body(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
};

const writeSettings = async (
  dir: string,
  content: unknown,
): Promise<string> => {
  const path = `${dir}/settings.json`;
  await Deno.writeTextFile(
    path,
    typeof content === "string" ? content : JSON.stringify(content, null, 2),
  );
  return path;
};

const load = (
  path: string,
  env: Record<string, string | undefined> = {},
): Promise<Either.Either<Settings, SettingsError>> =>
  Effect.runPromise(
    loadSettings(path, env).pipe(
      Effect.either,
      Effect.provide(PlatformLayer),
    ),
  );

const loaded = async (
  path: string,
  env: Record<string, string | undefined> = {},
): Promise<Settings> => {
  const result = await load(path, env);
  if (Either.isLeft(result)) {
    assert.fail(`expected settings, got:\n${result.left.message}`);
  }
  return result.right;
};

const failed = async (
  path: string,
  env: Record<string, string | undefined> = {},
): Promise<SettingsError> => {
  const result = await load(path, env);
  if (Either.isRight(result)) assert.fail("expected a SettingsError");
  assert.equal(result.left._tag, "SettingsError");
  return result.left;
};

const assertNoSecret = (error: SettingsError, ...secrets: string[]) => {
  const everything = `${error.message}\n${JSON.stringify(error.problems)}`;
  for (const secret of secrets) {
    assert.ok(!everything.includes(secret), `secret leaked: ${everything}`);
  }
  assert.ok(!everything.includes("    at "), "looks like a stack trace");
};

Deno.test("a file with only the required keys gets every default", async () => {
  await withTempDir(async (dir) => {
    const settings = await loaded(await writeSettings(dir, minimalFile));
    assert.equal(Redacted.value(settings.moodle.token), MOODLE_TOKEN);
    assert.equal(Redacted.value(settings.discourse.apiKey), DISCOURSE_KEY);
    assert.deepEqual(
      { ...settings, moodle: null, discourse: { ...settings.discourse } },
      {
        env: "development",
        moodle: null,
        discourse: {
          url: "https://forum.example.edu",
          apiKey: settings.discourse.apiKey,
          apiUser: "system",
          requestsPerMinute: 60,
        },
        batchSize: 10,
        logDir: "logs",
        exclude: { usernames: [], suspended: true },
        fields: {
          name: "overwrite",
          location: "overwrite",
          bio: "overwrite",
          email: "overwrite",
        },
        location: { country: "code", locale: "en" },
        username: { maxLength: 20, minLength: 3 },
        match: "username",
        create: { suppressWelcomeMessage: true },
        deprovision: {
          suspendedInMoodle: "off",
          goneFromMoodle: "off",
          reason: "Account closed in Moodle",
          reactivate: false,
        },
        safety: { maxRemovals: 25 },
      },
    );
    assert.equal(
      settings.moodle.endpoint,
      "https://moodle.example.edu/webservice/rest/server.php",
    );
  });
});

Deno.test("settings.example.json loads and states the defaults", async () => {
  const example = await loaded(
    new URL("../../settings.example.json", import.meta.url).pathname,
  );
  await withTempDir(async (dir) => {
    const defaults = await loaded(await writeSettings(dir, minimalFile));
    const comparable = (settings: Settings) => ({
      ...settings,
      moodle: { endpoint: settings.moodle.endpoint },
      discourse: { ...settings.discourse, apiKey: null, url: null },
    });
    assert.deepEqual(comparable(example), comparable(defaults));
  });
});

Deno.test("a site root endpoint is completed, a forum URL loses its trailing slash", async () => {
  await withTempDir(async (dir) => {
    const settings = await loaded(
      await writeSettings(dir, {
        moodle: { endpoint: "https://school.example/moodle/", token: "t0k" },
        discourse: { url: "https://forum.example/community/", apiKey: "k" },
      }),
    );
    assert.equal(
      settings.moodle.endpoint,
      "https://school.example/moodle/webservice/rest/server.php",
    );
    assert.equal(settings.discourse.url, "https://forum.example/community");
  });
});

Deno.test("environment variables override the file", async () => {
  await withTempDir(async (dir) => {
    const path = await writeSettings(dir, {
      ...minimalFile,
      env: "development",
      batchSize: 5,
    });
    const settings = await loaded(path, {
      MOODLE_ENDPOINT: "http://other-moodle.example",
      MOODLE_TOKEN: "env-token-value",
      DISCOURSE_URL: "https://other-forum.example",
      DISCOURSE_API_KEY: "env-api-key",
      DISCOURSE_API_USER: "sync-bot",
      BATCH_SIZE: "25",
      ENV: "production",
      // Unrelated variables are not settings.
      HOME: "/root",
    });
    assert.equal(
      settings.moodle.endpoint,
      "http://other-moodle.example/webservice/rest/server.php",
    );
    assert.equal(Redacted.value(settings.moodle.token), "env-token-value");
    assert.equal(settings.discourse.url, "https://other-forum.example");
    assert.equal(Redacted.value(settings.discourse.apiKey), "env-api-key");
    assert.equal(settings.discourse.apiUser, "sync-bot");
    assert.equal(settings.batchSize, 25);
    assert.equal(settings.env, "production");
  });
});

Deno.test("an empty environment variable does not override the file", async () => {
  await withTempDir(async (dir) => {
    const path = await writeSettings(dir, minimalFile);
    const settings = await loaded(path, { MOODLE_TOKEN: "", BATCH_SIZE: " " });
    assert.equal(Redacted.value(settings.moodle.token), MOODLE_TOKEN);
    assert.equal(settings.batchSize, 10);
  });
});

Deno.test("every problem is reported at once with file, key, found and expected", async () => {
  await withTempDir(async (dir) => {
    const path = await writeSettings(dir, {
      moodle: { endpoint: "ftp://moodle.example.edu" },
      discourse: {
        url: "https://forum.example.edu",
        apiKey: DISCOURSE_KEY,
        requestsPerMinute: "fast",
      },
      concurrency: 0,
      fields: { bio: "sometimes" },
      username: { minLength: 30, maxLength: 10 },
      location: { locale: "not a locale!" },
      exclude: { usernames: ["admin", 3] },
    });
    const error = await failed(path, { BATCH_SIZE: "ten" });
    const byPath = new Map(error.problems.map((p) => [p.path, p]));
    assert.deepEqual(byPath.get("discourse.requestsPerMinute"), {
      path: "discourse.requestsPerMinute",
      found: '"fast"',
      expected: "a whole number >= 1",
      source: path,
    });
    assert.deepEqual(byPath.get("moodle.token"), {
      path: "moodle.token",
      found: "nothing",
      expected: "the Moodle web service token (or set MOODLE_TOKEN)",
      source: path,
    });
    assert.deepEqual(byPath.get("batchSize"), {
      path: "batchSize",
      found: '"ten"',
      expected: "a whole number >= 0",
      source: "environment variable BATCH_SIZE",
    });
    assert.equal(byPath.get("concurrency")?.found, "0");
    assert.equal(byPath.get("fields.bio")?.found, '"sometimes"');
    assert.match(byPath.get("fields.bio")?.expected ?? "", /fill-empty/);
    assert.equal(
      byPath.get("moodle.endpoint")?.found,
      '"ftp://moodle.example.edu"',
    );
    assert.match(byPath.get("moodle.endpoint")?.expected ?? "", /https?:/);
    assert.equal(byPath.get("username.minLength")?.found, "30");
    assert.match(byPath.get("username.minLength")?.expected ?? "", /maxLength/);
    assert.match(byPath.get("location.locale")?.expected ?? "", /locale/);
    assert.equal(byPath.get("exclude.usernames.1")?.found, "3");
    assert.deepEqual([...byPath.keys()].sort(), [
      "batchSize",
      "concurrency",
      "discourse.requestsPerMinute",
      "exclude.usernames.1",
      "fields.bio",
      "location.locale",
      "moodle.endpoint",
      "moodle.token",
      "username.minLength",
    ]);

    const lines = error.message.split("\n");
    assert.equal(lines.length, error.problems.length);
    assert.ok(
      lines.includes(
        `${path}: discourse.requestsPerMinute: found "fast", expected a whole number >= 1`,
      ),
      error.message,
    );
    assert.ok(
      lines.includes(
        `environment variable BATCH_SIZE: batchSize: found "ten", expected a whole number >= 0`,
      ),
      error.message,
    );
    assert.ok(!error.message.includes("Expected undefined"), error.message);
  });
});

Deno.test("unknown keys are errors, with a suggestion for a near miss", async () => {
  await withTempDir(async (dir) => {
    const path = await writeSettings(dir, {
      ...minimalFile,
      batchsize: 20,
      moodle: { ...minimalFile.moodle, tokne: "a-secret-in-a-typo" },
      colour: "blue",
    });
    const error = await failed(path);
    const byPath = new Map(error.problems.map((p) => [p.path, p]));
    assert.deepEqual(byPath.get("batchsize"), {
      path: "batchsize",
      found: "an unknown key",
      expected: 'a known key: did you mean "batchSize"?',
      source: path,
    });
    assert.match(byPath.get("moodle.tokne")?.expected ?? "", /"token"/);
    assert.match(byPath.get("colour")?.expected ?? "", /batchSize/);
    assert.equal(error.problems.length, 3);
    assertNoSecret(error, "a-secret-in-a-typo");
  });
});

Deno.test("malformed JSON names the file, line and column, and quotes no secret", async () => {
  await withTempDir(async (dir) => {
    const path = await writeSettings(
      dir,
      `{\n  "moodle": {\n    "token": s3cr3t-${MOODLE_TOKEN}\n  }\n}\n`,
    );
    const error = await failed(path);
    assert.equal(error.problems.length, 1);
    const [problem] = error.problems;
    assert.equal(problem.source, path);
    assert.equal(problem.path, "");
    assert.match(problem.found, /invalid JSON at line 3, column 14/);
    assert.match(error.message, new RegExp(`^${path}: found invalid JSON`));
    assertNoSecret(error, MOODLE_TOKEN, MOODLE_TOKEN.slice(0, 12));
  });
});

Deno.test("a trailing comma is located", async () => {
  await withTempDir(async (dir) => {
    const path = await writeSettings(dir, `{\n  "batchSize": 3,\n}`);
    const error = await failed(path);
    assert.match(error.problems[0].found, /line 3, column 1/);
  });
});

Deno.test("a JSON list instead of an object is refused", async () => {
  await withTempDir(async (dir) => {
    const error = await failed(await writeSettings(dir, "[1, 2]"));
    assert.match(error.message, /found a JSON list, expected a JSON object/);
  });
});

Deno.test("a missing file with no environment says what to do", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/settings.json`;
    const error = await failed(path, { MOODLE_TOKEN });
    assert.equal(error.problems.length, 1);
    assert.equal(error.problems[0].source, path);
    assert.equal(error.problems[0].found, "no such file");
    assert.match(error.message, /copy settings\.example\.json to /);
    assert.match(
      error.message,
      /MOODLE_ENDPOINT, DISCOURSE_URL, DISCOURSE_API_KEY/,
    );
    assert.ok(!error.message.includes("MOODLE_TOKEN"), error.message);
    assertNoSecret(error, MOODLE_TOKEN);
  });
});

Deno.test("a missing file is fine when the environment has every required key", async () => {
  await withTempDir(async (dir) => {
    const settings = await loaded(`${dir}/nothing-here.json`, completeEnv);
    assert.equal(Redacted.value(settings.moodle.token), MOODLE_TOKEN);
    assert.equal(
      settings.moodle.endpoint,
      "https://moodle.example.edu/webservice/rest/server.php",
    );
    assert.equal(settings.discourse.apiUser, "system");
    assert.equal(settings.batchSize, 10);
  });
});

Deno.test("secrets are never shown, whatever is wrong with them", async () => {
  await withTempDir(async (dir) => {
    const path = await writeSettings(dir, {
      moodle: {
        endpoint: `https://moodle.example.edu/?wstoken=${MOODLE_TOKEN}`,
        token: ["not", MOODLE_TOKEN],
      },
      discourse: { url: "https://forum.example.edu", apiKey: "   " },
    });
    const error = await failed(path);
    const byPath = new Map(error.problems.map((p) => [p.path, p]));
    assert.equal(byPath.get("moodle.token")?.found, "(hidden)");
    assert.equal(byPath.get("discourse.apiKey")?.found, "(hidden)");
    assert.match(byPath.get("moodle.endpoint")?.found ?? "", /\?\(hidden\)/);
    assert.match(byPath.get("moodle.endpoint")?.expected ?? "", /query/);
    assertNoSecret(error, MOODLE_TOKEN);
  });
});

Deno.test("an endpoint pointing elsewhere in Moodle is refused", async () => {
  await withTempDir(async (dir) => {
    const path = await writeSettings(dir, {
      ...minimalFile,
      moodle: {
        ...minimalFile.moodle,
        endpoint: "https://moodle.example.edu/login/index.php",
      },
    });
    const error = await failed(path);
    assert.equal(error.problems.length, 1);
    assert.equal(error.problems[0].path, "moodle.endpoint");
    assert.match(error.problems[0].expected, /webservice\/rest\/server\.php/);
  });
});

Deno.test("the settings warn only for a secret in a readable file", {
  ignore: Deno.build.os === "windows",
}, async () => {
  await withTempDir(async (dir) => {
    const secretsFromEnvironment = {
      MOODLE_TOKEN,
      DISCOURSE_API_KEY: DISCOURSE_KEY,
    };
    const check = (path: string) =>
      Effect.runPromise(
        loadSettingsAndWarning(path, {
          ...secretsFromEnvironment,
          MOODLE_ENDPOINT: minimalFile.moodle.endpoint,
          DISCOURSE_URL: minimalFile.discourse.url,
        }).pipe(
          Effect.map((loaded) => loaded.warning),
          Effect.provide(PlatformLayer),
        ),
      );
    const secretFile = await writeSettings(dir, minimalFile);
    await Deno.chmod(secretFile, 0o644);
    const warning = await check(secretFile);
    assert.ok(Option.isSome(warning));
    assert.match(warning.value, /chmod 600/);
    assert.match(warning.value, /644/);
    assert.ok(!warning.value.includes(MOODLE_TOKEN));

    await Deno.chmod(secretFile, 0o600);
    assert.ok(Option.isNone(await check(secretFile)));

    // The secrets come from the environment: the file holds none.
    const noSecret = `${dir}/public.json`;
    await Deno.writeTextFile(noSecret, JSON.stringify({ batchSize: 3 }));
    await Deno.chmod(noSecret, 0o644);
    assert.ok(Option.isNone(await check(noSecret)));

    assert.ok(Option.isNone(await check(`${dir}/absent.json`)));
  });
});

Deno.test("settingsFileMode looks at group and others' read bits", () => {
  assert.ok(Option.isSome(settingsFileMode("s.json", 0o100640, true)));
  assert.ok(Option.isSome(settingsFileMode("s.json", 0o604, true)));
  assert.ok(Option.isNone(settingsFileMode("s.json", 0o100600, true)));
  assert.ok(Option.isNone(settingsFileMode("s.json", 0o644, false)));
});

Deno.test("jsonSyntaxErrorOffset finds the first error", () => {
  assert.equal(jsonSyntaxErrorOffset('{"a": 1}'), 8);
  assert.equal(jsonSyntaxErrorOffset('{"a": x}'), 6);
  assert.equal(jsonSyntaxErrorOffset('{"a": 1,}'), 8);
  assert.equal(jsonSyntaxErrorOffset("[1, 2"), 5);
  assert.equal(jsonSyntaxErrorOffset('{"a" 1}'), 5);
});
