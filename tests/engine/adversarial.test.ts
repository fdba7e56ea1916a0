// Hostile input: Moodle records built to break things, settings files full
// of random JSON, and data crafted to run formulas in the operator's
// spreadsheet. None may crash a run, leak into a malformed request, or land
// in the CSV as a live formula.
import assert from "node:assert/strict";
import fc from "fast-check";
import { PlatformLayer } from "../../src/platform.ts";
import { Cause, Effect, Either, Exit, Layer, Option } from "effect";
import { parse } from "csv-parse/sync";
import { syncLayer } from "../../src/cli/AppLayer.ts";
import { Reporter } from "../../src/sync/Reporter.ts";
import type { Settings } from "../../src/config/Settings.ts";
import { loadSettings, SettingsError } from "../../src/config/load.ts";
import { normalizeUsername } from "../../src/sync/normalize.ts";
import { runSync } from "../../src/sync/runSync.ts";
import { startFakeMoodle } from "../doubles/fakeMoodle.ts";
import {
  type DiscourseScenarioUser,
  startFakeDiscourse,
  usernameFormatError,
} from "../doubles/fakeDiscourse.ts";
import type { RecordedRequest } from "../doubles/http.ts";
import { auditLogs, readLog } from "../support/world.ts";
import {
  discourseKey,
  fastTuning,
  moodleToken,
  withWorld,
} from "../support/reliability.ts";

// ---------------------------------------------------------------------------
// Adversarial Moodle records

const nasty = [
  "",
  " ",
  "\u0000",
  "\t\r\n",
  "\u202Eevil\u202C",
  "مرحبا بالعالم",
  "שלום",
  "😀👩‍👩‍👧‍👦🏳️‍🌈",
  "<script>alert(document.cookie)</script>",
  '<img src=x onerror="alert(1)">',
  "<p>unclosed <b>bold",
  "=cmd|' /C calc'!A0",
  "+1-1",
  "@SUM(A1)",
  "Robert'); DROP TABLE users;--",
  "\\\\server\\share",
  "%00%0d%0a",
  "a\u0301\u0301\u0301",
  "ǅ ß ẞ Æ ø ł đ",
  "\uFEFFbom",
  "\uD800",
];

const text = fc.oneof(
  fc.constantFrom(...nasty),
  fc.string({ unit: "binary", maxLength: 40 }),
  fc.string({ unit: "grapheme", maxLength: 40 }),
  // Past Discourse's limits: 255 for names, 3000 for bios and locations.
  fc.tuple(
    fc.constantFrom("x", "é", "😀", "<b>a</b>", "ab "),
    fc.integer({ min: 100, max: 1600 }),
  )
    .map(([unit, n]) => unit.repeat(n)),
);

const username = fc.oneof(
  fc.constantFrom(
    "admin",
    "system",
    "user.json",
    "a",
    "__",
    "..",
    "-lead",
    "trail-",
    "ü",
    "中文用户",
    "😀😀",
    "user name",
    "a@b.c",
    "x".repeat(300),
    "user!@#$%name",
    "café.png",
    "\u202Eadmin",
  ),
  fc.string({ unit: "binary", minLength: 1, maxLength: 30 }),
  fc.string({ unit: "grapheme", minLength: 1, maxLength: 30 }),
);

const moodleRecord = fc.record(
  {
    username,
    fullname: text,
    firstname: text,
    lastname: text,
    email: fc.oneof(fc.emailAddress(), text),
    city: text,
    country: fc.oneof(fc.constantFrom("AR", "IT", "ZZ", "ar", "", "XXX"), text),
    description: text,
    descriptionformat: fc.constantFrom(0, 1, 2, 4, 9),
    suspended: fc.boolean(),
  },
  // Moodle omits what is unset or hidden: any key may be missing.
  { requiredKeys: [] },
);

const forumProfile = fc.record({
  name: fc.option(text, { nil: undefined }),
  location: fc.option(text, { nil: undefined }),
  bio_raw: fc.option(text, { nil: undefined }),
});

const rules = { minLength: 3, maxLength: 20 };

/** The username a request is about: /u/{name}.json, /u/{name}/... */
const requestUsername = (request: RecordedRequest): string | undefined => {
  const match = /^\/u\/([^/]+?)(?:\.json$|\/)/.exec(request.path);
  if (!match || match[1] === "by-external") return undefined;
  return decodeURIComponent(match[1]);
};

const limits: Record<string, number> = {
  name: 255,
  location: 3000,
  bio_raw: 3000,
};

/** Every form rule of the real servers a request could break. */
const checkRequest = (request: RecordedRequest) => {
  const name = requestUsername(request);
  if (name !== undefined) {
    assert.equal(
      usernameFormatError(name),
      undefined,
      `request for an invalid username ${JSON.stringify(name)}`,
    );
  }
  if (request.method === "PUT") {
    const body: unknown = JSON.parse(request.body);
    assert.ok(
      typeof body === "object" && body !== null && !Array.isArray(body),
    );
    for (const [key, value] of Object.entries(body)) {
      assert.equal(typeof value, "string", `${key} is not a string`);
      const limit = limits[key];
      if (limit !== undefined) {
        assert.ok(
          [...(value as string)].length <= limit,
          `${key} of ${[...(value as string)].length} characters sent`,
        );
      }
    }
  }
};

const silentReporter = Layer.succeed(Reporter, {
  warn: () => Effect.void,
  info: () => Effect.void,
  start: () => Effect.void,
  userDone: () => Effect.void,
  heading: () => Effect.void,
  finish: () => Effect.void,
});

/** Moodle's `email LIKE '%'` drops users whose email is empty or hidden. */
const visibleToMoodleQuery = (user: Record<string, unknown>) =>
  typeof user.email === "string" && user.email !== "";

let adversarialRuns = 0;
let adversarialUsers = 0;

/** One in-process --apply run over `records`, through the real layers. */
const runInProcess = async (
  records: ReadonlyArray<Record<string, unknown>>,
  profiles: ReadonlyArray<
    { name?: string; location?: string; bio_raw?: string }
  >,
) => {
  const moodleUsers: Array<Record<string, unknown>> = records.map((
    record,
    index,
  ) => ({ id: index + 2, ...record }));
  const taken = new Set<string>(["system"]);
  const forumUsers: DiscourseScenarioUser[] = [];
  moodleUsers.forEach((user, index) => {
    if (typeof user.username !== "string") return;
    const normalized = normalizeUsername(user.username, rules);
    // The normaliser's promise: always a name Discourse accepts.
    assert.equal(
      usernameFormatError(normalized),
      undefined,
      `${JSON.stringify(user.username)} -> ${JSON.stringify(normalized)}`,
    );
    if (taken.has(normalized.toLowerCase())) return;
    taken.add(normalized.toLowerCase());
    forumUsers.push({
      id: index + 10,
      username: normalized,
      email: `user${index}@forum.example`,
      ...profiles[index % profiles.length],
    });
  });
  const moodle = await startFakeMoodle({
    token: moodleToken,
    users: moodleUsers,
  });
  const discourse = await startFakeDiscourse({
    apiKey: discourseKey,
    apiUser: "system",
    users: [
      { id: 1, username: "system", email: "system@forum.example", admin: true },
      ...forumUsers,
    ],
    rateLimit: { adminPerMinute: 1e6, ipPer10Seconds: 1e6, ipPerMinute: 1e6 },
  });
  const dir = await Deno.makeTempDir({ prefix: "sync-adv-" });
  try {
    const decoded = await Effect.runPromise(
      loadSettings(`${dir}/absent.json`, {
        MOODLE_ENDPOINT: moodle.endpoint,
        MOODLE_TOKEN: moodleToken,
        DISCOURSE_URL: discourse.url,
        DISCOURSE_API_KEY: discourseKey,
      }).pipe(Effect.provide(PlatformLayer)),
    );
    const settings: Settings = {
      ...decoded,
      moodle: { ...decoded.moodle, ...fastTuning.moodle },
      discourse: {
        ...decoded.discourse,
        ...fastTuning.discourse,
        requestsPerMinute: 1e6,
      },
      env: "adv",
      logDir: dir,
    };
    const services = syncLayer(settings, {
      mode: "apply",
      reporter: silentReporter,
    }).pipe(Layer.provideMerge(PlatformLayer));
    const exit = await Effect.runPromiseExit(
      runSync({
        apply: true,
        user: undefined,
        offset: 0,
        batchSize: 0,
        force: false,
        concurrency: 4,
        excludedByFile: [],
      }).pipe(Effect.provide(services)),
    );
    const visible = moodleUsers.filter(visibleToMoodleQuery).length;
    if (visible === 0) {
      // Moodle listing nobody is the token's problem: an error, no log.
      const failure = Exit.isFailure(exit)
        ? Cause.failureOption(exit.cause)
        : Option.none();
      assert.equal(Option.getOrUndefined(failure)?._tag, "NoMoodleUsers");
      assert.deepEqual(await auditLogs(dir), []);
      return;
    }
    if (!Exit.isSuccess(exit)) assert.fail(`the run failed: ${exit.cause}`);
    const summary = exit.value;
    const [log] = await auditLogs(dir);
    const { rows } = await readLog(log);
    assert.equal(rows.length, visible, "one row per Moodle user");
    assert.equal(summary.considered, visible);
    for (const row of rows) {
      // Discourse refusing a request for its form shows as 400/422.
      assert.doesNotMatch(row.message, /HTTP (400|422)/, row.message);
      assert.notEqual(row.status, "EXCEPTION", row.message);
    }
    for (const request of discourse.requests) checkRequest(request);
    assert.equal(moodle.requests.length, 1);
    adversarialRuns++;
    adversarialUsers += rows.length;
  } finally {
    await moodle.close();
    await discourse.close();
    await Deno.remove(dir, { recursive: true });
  }
};

Deno.test("property: adversarial Moodle records never crash a run nor produce a request the servers would reject for its form", async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.array(moodleRecord, { minLength: 1, maxLength: 8 }),
      fc.array(forumProfile, { minLength: 1, maxLength: 3 }),
      (records, profiles) => runInProcess(records, profiles),
    ),
    { numRuns: 150 },
  );
  console.log(
    `adversarial runs: ${adversarialRuns}, Moodle users: ${adversarialUsers}`,
  );
});

Deno.test("adversarial records through the CLI: dry-run then apply, one row each, nothing the forum refuses", async () => {
  const records =
    fc.sample(fc.array(moodleRecord, { minLength: 12, maxLength: 12 }), {
      numRuns: 1,
      seed: 4242,
    })[0];
  const moodleUsers = [
    ...records.map((record, index) => ({ id: index + 2, ...record })),
    {
      id: 99,
      username: "long.bio",
      fullname: "N".repeat(300),
      email: "long@uni.example",
      description: "<p>" + "word ".repeat(1000) + "</p>",
      descriptionformat: 1,
    },
  ];
  await withWorld({
    moodleUsers,
    forumUsers: [
      { id: 1, username: "system", email: "s@forum.example", admin: true },
      { id: 2, username: "long.bio", email: "long@uni.example", name: "Short" },
    ],
  }, async (world) => {
    for (const args of [["--all"], ["--all", "--apply"]]) {
      const result = await world.engine(args);
      assert.ok([0, 1].includes(result.code), result.stderr);
      const logs = await auditLogs(world.dir);
      const { rows } = await readLog(logs[logs.length - 1]);
      assert.equal(
        rows.length,
        moodleUsers.filter(visibleToMoodleQuery).length,
      );
    }
    for (const request of world.discourse.requests) checkRequest(request);
    const { rows } = await readLog((await auditLogs(world.dir)).at(-1)!);
    const long = rows.find((r) => r.normalized_username === "long.bio");
    assert.equal(long?.status, "ERROR");
    assert.match(long?.message ?? "", /name is 300 characters.*at most 255/);
    assert.match(long?.message ?? "", /bio is \d+ characters.*at most 3000/);
    assert.equal(world.discourse.userByUsername("long.bio")?.name, "Short");
  });
});

// ---------------------------------------------------------------------------
// Server text is terminal input

/**
 * What a terminal obeys rather than shows, and what the forum must not be
 * given: ESC, BEL, NUL, CR, bidi overrides (newline and tab are fine).
 */
const unsafeControls =
  // deno-lint-ignore no-control-regex
  /[\x00-\x08\x0b-\x1f\x7f\u202a-\u202e\u2066-\u2069]/;

Deno.test("control characters and bidi overrides: stripped from what is written, said in the row, shown escaped on the console", async () => {
  const moodleUsers = [
    {
      id: 2,
      username: "ctrl.user",
      fullname: "Ana\u0000 \u001b[31mRed\u0007",
      email: "ctrl@uni.example",
      city: "Ro\u202Ema\r\n",
      country: "IT",
      description: "line one\r\n\tline two\u001b]0;pwned\u0007\u2066x",
      descriptionformat: 2,
    },
    // Malformed: the problem quotes Moodle's value in the row's message.
    {
      id: 4,
      username: "bad.record",
      fullname: "Bad Record",
      email: "bad@uni.example",
      suspended: "\u001b]0;owned\u0007no",
    },
    // Not in the forum: its row shows Moodle's username as it is.
    {
      id: 3,
      username: "\u202Eexe.txt",
      fullname: "Reversed",
      email: "rev@uni.example",
    },
  ];
  const forumUsers: DiscourseScenarioUser[] = [
    { id: 1, username: "system", email: "s@forum.example", admin: true },
    { id: 2, username: "ctrl.user", email: "ctrl@uni.example", name: "Old" },
  ];
  await withWorld({ moodleUsers, forumUsers }, async (world) => {
    // Discourse's own words with controls in them reach the console too.
    world.discourse.inject({
      kind: "answer",
      count: 1,
      status: 422,
      body: JSON.stringify({
        errors: ["\u001b[2J\u001b]0;owned\u0007 refused \u202Etxt.exe"],
      }),
      path: /^\/u\/ctrl\.user\.json$/,
    });
    const refused = await world.engine(["--all"]);
    assert.equal(refused.code, 1, refused.stderr + refused.stdout);
    assert.match(
      refused.stdout,
      /\\x1b\[2J\\x1b\]0;owned\\x07 refused \\u202etxt\.exe/,
    );

    const dryRun = await world.engine(["--all"]);
    const applied = await world.engine(["--all", "--apply"]);
    const json = await world.engine(["--all", "--json"]);
    for (const result of [refused, dryRun, applied, json]) {
      assert.doesNotMatch(result.stdout, unsafeControls, result.stdout);
      assert.doesNotMatch(result.stderr, unsafeControls, result.stderr);
    }
    // 1: the malformed record is an ERROR row.
    assert.equal(applied.code, 1, applied.stderr + applied.stdout);
    // The diff shows what will be written, and says what was taken out.
    assert.match(dryRun.stdout, /name: 'Old' → 'Ana \[31mRed'/);
    assert.match(dryRun.stdout, /removed 3 control characters from name/);

    const user = world.discourse.userByUsername("ctrl.user")!;
    assert.equal(user.name, "Ana [31mRed");
    assert.equal(user.location, "Roma, IT");
    assert.equal(user.bio_raw, "line one\n\tline two]0;pwnedx");
    for (const value of [user.name, user.location, user.bio_raw]) {
      assert.doesNotMatch(value ?? "", unsafeControls);
    }
    const applyLog = (await auditLogs(world.dir)).find((log) =>
      log.includes("_apply_")
    )!;
    const { rows } = await readLog(applyLog);
    const row = rows.find((r) => r.normalized_username === "ctrl.user")!;
    const malformed = rows.find((r) => r.original_username === "bad.record")!;
    assert.match(malformed.message, /\\u001b\]0;owned\\u0007no/);
    for (const each of rows) assert.doesNotMatch(each.message, unsafeControls);
    assert.equal(row.status, "SUCCESS");
    assert.match(json.stdout, /"original_username":"\\u202eexe\.txt"/);
    assert.match(
      row.message,
      /removed 3 control characters from name; removed 1 control character from location; removed 3 control characters from bio/,
    );
  });
});

// ---------------------------------------------------------------------------
// Malformed settings

const settingsKeys = [
  "env",
  "moodle",
  "moodle.endpoint",
  "moodle.token",
  "moodle.timeoutSeconds",
  "moodle.retries",
  "moodle.retryDelaySeconds",
  "moodle.maxResponseMegabytes",
  "discourse",
  "discourse.url",
  "discourse.apiKey",
  "discourse.apiUser",
  "discourse.requestsPerMinute",
  "discourse.timeoutSeconds",
  "discourse.retries",
  "discourse.retryDelaySeconds",
  "discourse.maxRateLimitWaitSeconds",
  "discourse.maxTotalRateLimitWaitSeconds",
  "batchSize",
  "concurrency",
  "logDir",
  "lockDir",
  "exclude",
  "exclude.usernames",
  "exclude.file",
  "exclude.suspended",
  "fields",
  "fields.name",
  "fields.location",
  "fields.bio",
  "fields.email",
  "location",
  "location.country",
  "location.locale",
  "username",
  "username.minLength",
  "username.maxLength",
] as const;

const validSettings = () => ({
  moodle: { endpoint: "https://moodle.example.edu", token: "t0ken-value" },
  discourse: { url: "https://forum.example.edu", apiKey: "k3y-value" },
});

const withValueAt = (
  root: Record<string, unknown>,
  path: string,
  value: unknown,
) => {
  const keys = path.split(".");
  let node = root;
  for (const key of keys.slice(0, -1)) {
    if (typeof node[key] !== "object" || node[key] === null) node[key] = {};
    node = node[key] as Record<string, unknown>;
  }
  node[keys[keys.length - 1]] = value;
  return root;
};

let settingsCases = 0;

Deno.test("property: any JSON value under any settings key loads, or fails with a SettingsError naming that key", async () => {
  const dir = await Deno.makeTempDir({ prefix: "sync-adv-settings-" });
  try {
    const path = `${dir}/settings.json`;
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...settingsKeys),
        fc.jsonValue({ maxDepth: 2 }),
        async (key, value) => {
          settingsCases++;
          await Deno.writeTextFile(
            path,
            JSON.stringify(withValueAt(validSettings(), key, value)),
          );
          const result = await Effect.runPromise(
            loadSettings(path, {}).pipe(
              Effect.either,
              Effect.provide(PlatformLayer),
            ),
          );
          if (Either.isRight(result)) return;
          const error = result.left;
          assert.ok(error instanceof SettingsError);
          const named = error.problems.some((problem) =>
            problem.path === key || problem.path.startsWith(`${key}.`) ||
            // Two keys that must agree (minLength <= maxLength).
            (key.startsWith("username.") && problem.path.startsWith("username"))
          );
          assert.ok(named, `${key}=${JSON.stringify(value)}: ${error.message}`);
          assert.ok(error.message.includes(key.split(".")[0]));
          assert.ok(!error.message.includes("t0ken-value"));
          assert.ok(!error.message.includes("k3y-value"));
        },
      ),
      { numRuns: 400 },
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  console.log(`malformed settings cases: ${settingsCases}`);
});

Deno.test("malformed settings through the CLI: exit 2, the key named, nothing contacted", async () => {
  await withWorld({}, async (world) => {
    const bad = JSON.parse(await Deno.readTextFile(world.settingsPath));
    bad.discourse.retries = "many";
    bad.moodle.timeoutSeconds = -1;
    await Deno.writeTextFile(world.settingsPath, JSON.stringify(bad));
    const result = await world.engine(["--all", "--apply"]);
    assert.equal(result.code, 2);
    assert.match(result.stderr, /discourse\.retries: found "many"/);
    assert.match(result.stderr, /moodle\.timeoutSeconds: found -1/);
    assert.equal(world.moodle.requests.length, 0);
    assert.equal(world.discourse.requests.length, 0);
  });
});

// ---------------------------------------------------------------------------
// CSV formula injection

const formulas = [
  '=HYPERLINK("http://evil.example","click")',
  "=cmd|' /C calc'!A0",
  "+1+cmd|' /C calc'!A0",
  "-2+3",
  "@SUM(1+1)*cmd|' /C calc'!A0",
  "\t=1+1",
  "\r=1+1",
];

Deno.test("CSV formula injection: no cell a spreadsheet opens starts a formula", async () => {
  const moodleUsers = formulas.map((formula, index) => ({
    id: index + 2,
    username: `${formula}${index}`,
    fullname: formula,
    firstname: formula,
    lastname: formula,
    email: `${formula.replace(/[^a-z0-9]/gi, "")}${index}@uni.example`,
    city: formula,
    country: "AR",
    description: formula,
    descriptionformat: 2,
  }));
  const forumUsers: DiscourseScenarioUser[] = [
    { id: 1, username: "system", email: "s@forum.example", admin: true },
    ...moodleUsers.map((user, index) => ({
      id: index + 10,
      username: normalizeUsername(user.username, rules),
      name: "Old",
      email: user.email,
      location: "Old",
      bio_raw: "Old",
    })),
  ];
  await withWorld({ moodleUsers, forumUsers }, async (world) => {
    for (const args of [["--all"], ["--all", "--apply"]]) {
      const result = await world.engine(args);
      assert.ok([0, 1].includes(result.code), result.stderr);
    }
    // Formulas really reached Discourse: the test is not vacuous.
    assert.ok(
      [...world.discourse.users.values()].some((u) => u.name === formulas[0]),
    );
    const logs = await auditLogs(world.dir);
    assert.equal(logs.length, 2);
    let cells = 0;
    for (const log of logs) {
      const records: string[][] = parse(await Deno.readTextFile(log));
      assert.equal(records.length, moodleUsers.length + 1);
      for (const record of records) {
        for (const cell of record) {
          cells++;
          assert.doesNotMatch(cell, /^[=+\-@\t\r]/, `live formula: ${cell}`);
        }
      }
      const rows = (await readLog(log)).rows;
      for (const row of rows) {
        // Neutralised, not mangled: one quote in front of the formula.
        assert.match(row.fullname, /^'[=+\-@]/);
      }
    }
    console.log(`CSV cells checked: ${cells}`);

    // A revert reads the neutralised cells back and does not quote twice.
    const applyLog = logs.find((log) => log.includes("_apply_"))!;
    const revert = await world.engine(["revert", applyLog]);
    assert.equal(revert.code, 0, revert.stderr);
    const revertLog = (await auditLogs(world.dir)).find((l) =>
      l.includes("revert")
    )!;
    for (const row of (await readLog(revertLog)).rows) {
      assert.doesNotMatch(row.fullname, /^''/);
      assert.match(row.fullname, /^'/);
    }
  });
});
