import assert from "node:assert/strict";
import {
  Clock,
  Duration,
  Effect,
  Either,
  Fiber,
  Option,
  Random,
  Schedule,
  Schema,
  TestClock,
  TestContext,
} from "effect";
import {
  Discourse,
  type DiscourseError,
} from "../../src/discourse/Discourse.ts";
import {
  excerpt,
  rateLimitWaitMillis,
  serverWords,
} from "../../src/discourse/answers.ts";
import {
  defaultDiscourseOptions,
  type DiscourseOptions,
} from "../../src/discourse/config.ts";
import { DiscourseNotFound } from "../../src/discourse/errors.ts";
import { failureBackoff, retryPolicy } from "../../src/discourse/retry.ts";
import type { Setback } from "../../src/discourse/verdict.ts";
import { discourseLayer } from "../../src/cli/AppLayer.ts";
import {
  admit,
  finish,
  holdState,
  initialLimiterState,
  limiterPlan,
  makeRateLimiter,
} from "../../src/discourse/RateLimiter.ts";
import { Settings } from "../../src/config/Settings.ts";
import {
  type DiscourseScenario,
  type DiscourseScenarioUser,
  type FakeDiscourse,
  startFakeDiscourse,
} from "../doubles/fakeDiscourse.ts";
import type { Fault } from "../doubles/http.ts";

const apiKey = "SECRET-KEY-7f3a9c1e5b2d4a6f8e0c";
const wrongKey = "WRONG-SECRET-d41d8cd98f00b204e980";

const people: DiscourseScenarioUser[] = [
  {
    id: 10,
    username: "alice",
    name: "Alice Liddell",
    email: "alice@example.org",
    location: "Oxford, GB",
    bio_raw: "Curious *reader*.",
    external_id: "101",
    secondary_emails: ["alice@old.example.org"],
    unconfirmed_emails: ["alice@new.example.org"],
  },
  {
    id: 11,
    username: "Bob.Smith",
    name: "Bob Smith",
    email: "bob@example.org",
  },
  { id: 12, username: "carol", email: "carol@example.org", location: "" },
  ...Array.from({ length: 60 }, (_, i) => ({
    id: 100 + i,
    username: `member${i}`,
    name: `Member ${i}`,
    email: `member${i}@example.org`,
  })),
];

/** Generous limits unless a test is about them: the admin window is shrunk. */
const roomyLimits = {
  adminPerMinute: 100_000,
  ipPer10Seconds: 100_000,
  ipPerMinute: 100_000,
  windowMs: 1000,
};

/** Waits shrunk so the whole file runs in seconds. */
const fast: Partial<DiscourseOptions> = {
  requestTimeout: Duration.seconds(5),
  backoffBase: Duration.millis(5),
  backoffCap: Duration.millis(40),
  rateLimitWindow: Duration.seconds(1),
  defaultRateLimitWait: Duration.millis(50),
  maxRateLimitWait: Duration.millis(100),
};

const startFake = (overrides: Partial<DiscourseScenario> = {}) =>
  startFakeDiscourse({
    apiKey,
    apiUser: "sync_admin",
    users: structuredClone(people),
    rateLimit: roomyLimits,
    ...overrides,
  });

interface RunOptions {
  readonly key?: string;
  readonly apiUser?: string;
  readonly requestsPerMinute?: number;
  readonly tuning?: Partial<DiscourseOptions>;
}

/** Runs `program` against the fake with a fresh client (fresh limiter). */
const runWith = <A, E>(
  fake: FakeDiscourse,
  program: Effect.Effect<A, E, Discourse>,
  options: RunOptions = {},
): Promise<A> => {
  const settings = Schema.decodeUnknownSync(Settings)({
    moodle: {
      endpoint: "http://127.0.0.1:9/webservice/rest/server.php",
      token: "moodle-token-unused",
    },
    discourse: {
      // The trailing slash must be tolerated.
      url: `${fake.url}/`,
      apiKey: options.key ?? fake.apiKey,
      apiUser: options.apiUser ?? fake.apiUser,
      requestsPerMinute: options.requestsPerMinute ?? 100_000,
    },
  });
  const layer = discourseLayer(settings, { ...fast, ...options.tuning });
  return Effect.runPromise(Effect.provide(program, layer));
};

/** The failure of `program`, which must fail. */
const failureOf = async <A>(
  fake: FakeDiscourse,
  program: Effect.Effect<A, DiscourseError, Discourse>,
  options: RunOptions = {},
): Promise<DiscourseError> => {
  const result = await runWith(fake, Effect.either(program), options);
  assert.ok(Either.isLeft(result), "expected the call to fail");
  return result.left;
};

/** Every form an error can take when printed or logged. */
const renderings = (error: DiscourseError): string[] => [
  error.message,
  String(error),
  JSON.stringify(error),
  Deno.inspect(error, { depth: 10 }),
];

const assertNoSecret = (error: DiscourseError) => {
  for (const text of renderings(error)) {
    assert.ok(!text.includes(apiKey), `API key leaked: ${text}`);
    assert.ok(!text.includes(wrongKey), `API key leaked: ${text}`);
  }
};

const requestsTo = (fake: FakeDiscourse, path: string) =>
  fake.requests.filter((request) => request.path === path);

/** Not Discourse: a server answering whatever `handler` says, in its place. */
const withServer = async (
  handler: (request: Request) => Response,
  body: (fakeLike: FakeDiscourse) => Promise<void>,
) => {
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    handler,
  );
  try {
    await body(
      {
        url: `http://127.0.0.1:${server.addr.port}`,
        apiKey,
        apiUser: "sync_admin",
      } as FakeDiscourse,
    );
  } finally {
    await server.shutdown();
  }
};

const withFake = async (
  scenario: Partial<DiscourseScenario>,
  body: (fake: FakeDiscourse) => Promise<void>,
) => {
  const fake = await startFake(scenario);
  try {
    await body(fake);
  } finally {
    await fake.close();
  }
};

const test = (
  name: string,
  scenario: Partial<DiscourseScenario>,
  body: (fake: FakeDiscourse) => Promise<void>,
) => Deno.test(name, () => withFake(scenario, body));

// ---------------------------------------------------------------- operations

test(
  "userByUsername reads the user with auth headers and no profile view",
  {},
  async (fake) => {
    const user = await runWith(
      fake,
      Effect.flatMap(
        Discourse,
        (discourse) => discourse.userByUsername("alice"),
      ),
    );
    assert.ok(Option.isSome(user));
    assert.equal(user.value.id, 10);
    assert.equal(user.value.username, "alice");
    assert.equal(user.value.name, "Alice Liddell");
    assert.equal(user.value.location, "Oxford, GB");
    assert.equal(user.value.bio_raw, "Curious *reader*.");

    const [request] = requestsTo(fake, "/u/alice.json");
    assert.ok(request, "GET /u/alice.json was sent");
    assert.equal(request.method, "GET");
    assert.equal(request.query.get("skip_track_visit"), "true");
    assert.equal(request.headers.get("api-key"), apiKey);
    assert.equal(request.headers.get("api-username"), "sync_admin");
    assert.match(request.headers.get("accept") ?? "", /application\/json/);
    for (const value of request.query.values()) {
      assert.ok(!value.includes(apiKey), "the key never goes in the URL");
    }
  },
);

test("blank profile fields decode to the empty string", {}, async (fake) => {
  const user = await runWith(
    fake,
    Effect.flatMap(Discourse, (discourse) => discourse.userByUsername("carol")),
  );
  assert.ok(Option.isSome(user));
  assert.equal(user.value.name, "");
  assert.equal(user.value.location, "");
  assert.equal(user.value.bio_raw, "");
  assert.equal(user.value.website, "");
});

test(
  "userByUsername is None for a missing user and URL-encodes names",
  {},
  async (fake) => {
    const [missing, odd, mixedCase] = await runWith(
      fake,
      Effect.flatMap(Discourse, (discourse) =>
        Effect.all([
          discourse.userByUsername("nobody"),
          discourse.userByUsername("a b/c?d"),
          discourse.userByUsername("bob.smith"),
        ])),
    );
    assert.ok(Option.isNone(missing));
    assert.ok(Option.isNone(odd));
    assert.ok(Option.isSome(mixedCase), "lookup is case-insensitive");
    assert.equal(mixedCase.value.username, "Bob.Smith");
    const oddPaths = fake.requests.map((request) => request.path).filter((
      path,
    ) => path.startsWith("/u/a"));
    assert.deepEqual(oddPaths, ["/u/a%20b%2Fc%3Fd.json"]);
  },
);

test(
  "userByExternalId finds the DiscourseConnect record, None when absent",
  { site: { discourseConnectSecret: "connect-secret" } },
  async (fake) => {
    const [found, absent] = await runWith(
      fake,
      Effect.flatMap(Discourse, (discourse) =>
        Effect.all([
          discourse.userByExternalId("101"),
          discourse.userByExternalId("999"),
        ])),
    );
    assert.ok(Option.isSome(found));
    assert.equal(found.value.username, "alice");
    assert.ok(Option.isNone(absent));
    assert.equal(requestsTo(fake, "/u/by-external/101.json").length, 1);
  },
);

test(
  "emails returns primary, secondary and unconfirmed addresses",
  {},
  async (fake) => {
    const emails = await runWith(
      fake,
      Effect.flatMap(Discourse, (discourse) => discourse.emails("alice")),
    );
    assert.equal(emails.email, "alice@example.org");
    assert.deepEqual(emails.secondary_emails, ["alice@old.example.org"]);
    assert.deepEqual(emails.unconfirmed_emails, ["alice@new.example.org"]);
    assert.equal(requestsTo(fake, "/u/alice/emails.json").length, 1);
  },
);

test(
  "adminUserPage pages 100 rows with emails, and filters",
  {},
  async (fake) => {
    const [first, second, byEmail, bySubstring] = await runWith(
      fake,
      Effect.flatMap(Discourse, (discourse) =>
        Effect.all([
          discourse.adminUserPage(1),
          discourse.adminUserPage(2),
          discourse.adminUserPage(1, { email: "bob@example.org" }),
          discourse.adminUserPage(1, { filter: "member1" }),
        ])),
    );
    const all = [...first, ...second];
    // 63 scenario users plus the API user the double adds.
    assert.ok(first.length >= 63 && first.length <= 100);
    assert.equal(second.length, 0);
    const alice = all.find((row) => row.username === "alice");
    assert.equal(alice?.email, "alice@example.org");
    assert.deepEqual(alice?.secondary_emails, ["alice@old.example.org"]);
    assert.deepEqual(byEmail.map((row) => row.username), ["Bob.Smith"]);
    assert.ok(bySubstring.length >= 11);
    assert.ok(bySubstring.every((row) => row.username.includes("member1")));

    const pages = requestsTo(fake, "/admin/users/list/active.json");
    assert.equal(pages.length, 4);
    for (const request of pages) {
      assert.equal(request.query.get("show_emails"), "true");
      assert.equal(request.query.get("order"), "created");
      assert.equal(request.query.get("asc"), "true");
    }
    assert.deepEqual(pages.map((request) => request.query.get("page")), [
      "1",
      "2",
      "1",
      "1",
    ]);
    assert.equal(pages[2].query.get("email"), "bob@example.org");
    assert.equal(pages[3].query.get("filter"), "member1");
  },
);

test(
  "updateProfile sends top-level JSON fields and returns the stored user",
  {},
  async (fake) => {
    const stored = await runWith(
      fake,
      Effect.flatMap(
        Discourse,
        (discourse) =>
          discourse.updateProfile("alice", {
            location: "Wonderland",
            bio_raw: "Down the *rabbit hole*.",
          }),
      ),
    );
    assert.equal(stored.location, "Wonderland");
    assert.equal(stored.bio_raw, "Down the *rabbit hole*.");
    assert.equal(stored.name, "Alice Liddell", "an absent field is left alone");
    assert.equal(fake.users.get(10)?.location, "Wonderland");

    const [request] = requestsTo(fake, "/u/alice.json").filter((r) =>
      r.method === "PUT"
    );
    assert.deepEqual(JSON.parse(request.body), {
      location: "Wonderland",
      bio_raw: "Down the *rabbit hole*.",
    });
    assert.match(
      request.headers.get("content-type") ?? "",
      /application\/json/,
    );
    assert.equal(request.headers.get("api-key"), apiKey);
  },
);

test("requestEmailChange succeeds on the empty 200 body", {}, async (fake) => {
  await runWith(
    fake,
    Effect.flatMap(
      Discourse,
      (discourse) =>
        discourse.requestEmailChange("Bob.Smith", "bob@new.example.org"),
    ),
  );
  assert.deepEqual(fake.emailChangeRequests, [{
    username: "Bob.Smith",
    email: "bob@new.example.org",
  }]);
  const [request] = requestsTo(fake, "/u/Bob.Smith/preferences/email.json");
  assert.equal(request.method, "PUT");
  assert.deepEqual(JSON.parse(request.body), { email: "bob@new.example.org" });
});

test(
  "requestsSent counts every request, retries included",
  {},
  async (fake) => {
    fake.inject({ kind: "5xx", count: 2, path: /alice/ });
    const sent = await runWith(
      fake,
      Effect.flatMap(
        Discourse,
        (discourse) =>
          discourse.userByUsername("alice").pipe(
            Effect.zipRight(discourse.emails("alice")),
            Effect.zipRight(discourse.requestsSent),
          ),
      ),
    );
    assert.equal(sent, 4);
    assert.equal(fake.requests.length, 4);
  },
);

// ---------------------------------------------------------------- error mapping

test(
  "a wrong API key is DiscourseCredentialsRejected naming the settings",
  {},
  async (fake) => {
    const error = await failureOf(
      fake,
      Effect.flatMap(
        Discourse,
        (discourse) => discourse.userByUsername("alice"),
      ),
      { key: wrongKey },
    );
    assert.equal(error._tag, "DiscourseCredentialsRejected");
    assert.match(error.message, /discourse\.apiKey/);
    assert.match(error.message, /DISCOURSE_API_KEY/);
    assert.match(error.message, /DISCOURSE_API_USER/);
    assert.match(error.message, /global|unscoped/);
    assert.match(error.message, /alice/);
    assertNoSecret(error);
    assert.equal(fake.requests.length, 1, "credentials errors are not retried");
  },
);

test(
  "an unknown API user is DiscourseCredentialsRejected",
  {},
  async (fake) => {
    const error = await failureOf(
      fake,
      Effect.flatMap(Discourse, (discourse) => discourse.emails("alice")),
      { apiUser: "no_such_admin" },
    );
    assert.equal(error._tag, "DiscourseCredentialsRejected");
    assert.match(error.message, /no_such_admin/);
    assertNoSecret(error);
  },
);

test(
  "a 404 on an admin route is DiscourseCredentialsRejected",
  {},
  async (fake) => {
    const error = await failureOf(
      fake,
      Effect.flatMap(Discourse, (discourse) => discourse.adminUserPage(1)),
      { key: wrongKey },
    );
    assert.equal(error._tag, "DiscourseCredentialsRejected");
    assert.match(error.message, /404/);
    assert.match(error.message, /admin/);
    assert.match(error.message, /DISCOURSE_API_KEY/);
    assertNoSecret(error);
  },
);

test("a 404 on a user route is DiscourseNotFound", {}, async (fake) => {
  const [emails, update] = await runWith(
    fake,
    Effect.flatMap(Discourse, (discourse) =>
      Effect.all([
        Effect.flip(discourse.emails("ghost")),
        Effect.flip(discourse.updateProfile("ghost", { name: "Ghost" })),
      ])),
  );
  for (const error of [emails, update]) {
    assert.equal(error._tag, "DiscourseNotFound");
    assert.match(error.message, /ghost/);
    assertNoSecret(error);
  }
});

test(
  "an email change the site forbids is DiscourseForbidden with Discourse's words",
  { site: { ssoOverridesEmail: true, discourseConnectSecret: "s" } },
  async (fake) => {
    const error = await failureOf(
      fake,
      Effect.flatMap(
        Discourse,
        (discourse) =>
          discourse.requestEmailChange("alice", "alice@elsewhere.example.org"),
      ),
    );
    assert.equal(error._tag, "DiscourseForbidden");
    assert.match(error.message, /alice/);
    assert.match(error.message, /403/);
    assertNoSecret(error);
    assert.equal(fake.emailChangeRequests.length, 0);
  },
);

test(
  "a 422 is DiscourseValidationError carrying Discourse's errors",
  {},
  async (fake) => {
    const error = await failureOf(
      fake,
      Effect.flatMap(
        Discourse,
        (discourse) =>
          discourse.updateProfile("alice", { bio_raw: "x".repeat(3001) }),
      ),
    );
    assert.equal(error._tag, "DiscourseValidationError");
    if (error._tag !== "DiscourseValidationError") {
      return;
    }
    assert.ok(error.errors.some((words) => /bio/i.test(words)), error.message);
    assert.match(error.message, /alice/);
    assert.match(error.message, /422/);
    assertNoSecret(error);
    assert.equal(fake.users.get(10)?.bio_raw, "Curious *reader*.");
  },
);

Deno.test("a server echoing the key back never gets it into an error", async () => {
  // Not Discourse: a misbehaving proxy that pastes request headers into its
  // answers, each time where an excerpt would cut the key in half.
  const filler = "x".repeat(185);
  await withServer(
    (request) => {
      const key = request.headers.get("api-key") ?? "";
      const path = new URL(request.url).pathname;
      if (path.startsWith("/u/refused")) {
        return Response.json({ errors: [`${filler} ${key}`] }, { status: 422 });
      }
      if (path.startsWith("/u/broken")) {
        return new Response(`<html><body>${filler} ${key}</body></html>`, {
          status: 500,
        });
      }
      return new Response(`${filler} ${key}`, { status: 200 });
    },
    async (fakeLike) => {
      const errors = await runWith(
        fakeLike,
        Effect.flatMap(Discourse, (discourse) =>
          Effect.all([
            Effect.flip(discourse.updateProfile("refused", { name: "R" })),
            Effect.flip(discourse.userByUsername("broken")),
            Effect.flip(discourse.emails("garbled")),
          ])),
        { tuning: { maxFailureRetries: 0 } },
      );
      assert.deepEqual(errors.map((error) => error._tag), [
        "DiscourseValidationError",
        "DiscourseServerError",
        "DiscourseDecodeError",
      ]);
      for (const error of errors) {
        for (const text of renderings(error)) {
          assert.ok(!text.includes(apiKey.slice(0, 10)), `key leaked: ${text}`);
        }
      }
    },
  );
});

// ---------------------------------------------------------------- retries

/**
 * Faults a read rides out: each is retried (or waited out) and the read
 * succeeds; `requests` counts the first try and every retry.
 */
const riddenOut: ReadonlyArray<{
  readonly name: string;
  readonly fault: Fault;
  readonly read: keyof typeof reads;
  readonly requests: number;
  readonly tuning?: Partial<DiscourseOptions>;
}> = [
  {
    name: "5xx answers are retried, then succeed",
    fault: { kind: "5xx", count: 3, status: 502 },
    read: "user",
    requests: 4,
  },
  {
    name: "dropped connections are retried, then succeed",
    fault: { kind: "drop-connection", count: 2 },
    read: "emails",
    requests: 3,
  },
  {
    name: "a slow answer times out, is retried, and the retry succeeds",
    fault: { kind: "slow", count: 1, delayMs: 1500 },
    read: "user",
    requests: 2,
    tuning: { requestTimeout: Duration.millis(150) },
  },
  {
    name: "one malformed JSON answer is survived by the retry",
    fault: { kind: "malformed-json", count: 1 },
    read: "emails",
    requests: 2,
  },
  {
    name: "JSON 429 bursts are waited out and retried",
    fault: { kind: "429-json", count: 3, retryAfter: 1 },
    read: "user",
    requests: 4,
  },
  {
    name: "plain-text 429s are waited out and retried",
    fault: { kind: "429-text", count: 2, retryAfter: 1 },
    read: "emails",
    requests: 3,
  },
];

const readUser = Effect.flatMap(
  Discourse,
  (discourse) => discourse.userByUsername("alice"),
);
const readEmails = Effect.flatMap(
  Discourse,
  (discourse) => discourse.emails("alice"),
);

/** The reads the fault tables make: the route each asks for, its success. */
const reads = {
  user: {
    path: "/u/alice.json",
    fails: (fake: FakeDiscourse, options: RunOptions) =>
      failureOf(fake, readUser, options),
    succeeds: async (fake: FakeDiscourse, options: RunOptions) =>
      assert.ok(Option.isSome(await runWith(fake, readUser, options))),
  },
  emails: {
    path: "/u/alice/emails.json",
    fails: (fake: FakeDiscourse, options: RunOptions) =>
      failureOf(fake, readEmails, options),
    succeeds: async (fake: FakeDiscourse, options: RunOptions) =>
      assert.equal(
        (await runWith(fake, readEmails, options)).email,
        "alice@example.org",
      ),
  },
} as const;

for (const each of riddenOut) {
  test(each.name, {}, async (fake) => {
    fake.inject(each.fault);
    const read = reads[each.read];
    await read.succeeds(fake, { tuning: each.tuning });
    assert.equal(requestsTo(fake, read.path).length, each.requests);
  });
}

/**
 * Faults a read gives up on after its retries: the error's kind, the words
 * that tell the operator why (the user always named, no secret), and every
 * try counted.
 */
const givenUp: ReadonlyArray<{
  readonly name: string;
  readonly fault: Fault;
  readonly read: keyof typeof reads;
  readonly tuning?: Partial<DiscourseOptions>;
  readonly tag: DiscourseError["_tag"];
  readonly says: ReadonlyArray<RegExp>;
  /** A server error's status, as the error carries it. */
  readonly status?: number;
  readonly requests: number;
}> = [
  {
    name: "persistent 5xx stops after maxFailureRetries + 1 attempts",
    fault: { kind: "5xx", count: 100, status: 503 },
    read: "user",
    tuning: { maxFailureRetries: 3 },
    tag: "DiscourseServerError",
    says: [/4 attempts/],
    status: 503,
    requests: 4,
  },
  {
    name: "connections that keep dropping end in DiscourseTransportError",
    fault: { kind: "drop-connection", count: 100 },
    read: "emails",
    tuning: { maxFailureRetries: 2 },
    tag: "DiscourseTransportError",
    says: [/discourse\.url/],
    requests: 3,
  },
  {
    name:
      "answers slower than the timeout every time end in DiscourseTransportError",
    fault: { kind: "slow", count: 2, delayMs: 1500 },
    read: "user",
    tuning: { requestTimeout: Duration.millis(150), maxFailureRetries: 1 },
    tag: "DiscourseTransportError",
    says: [/timed out/],
    requests: 2,
  },
  {
    name: "malformed JSON is retried once, then DiscourseDecodeError",
    fault: { kind: "malformed-json", count: 5 },
    read: "user",
    tag: "DiscourseDecodeError",
    says: [],
    requests: 2,
  },
  {
    name: "429s past maxRateLimitRetries end in DiscourseRateLimited",
    fault: { kind: "429-json", count: 100, retryAfter: 1 },
    read: "user",
    tuning: { maxRateLimitRetries: 2 },
    tag: "DiscourseRateLimited",
    says: [/requestsPerMinute/],
    requests: 3,
  },
];

for (const each of givenUp) {
  test(each.name, {}, async (fake) => {
    fake.inject(each.fault);
    const read = reads[each.read];
    const error = await read.fails(fake, { tuning: each.tuning });
    assert.equal(error._tag, each.tag, error.message);
    if (each.status !== undefined) {
      assert.ok(error._tag === "DiscourseServerError");
      assert.equal(error.status, each.status);
    }
    for (const words of [/alice/, ...each.says]) {
      assert.match(error.message, words);
    }
    assert.ok(error.message.length < 800, "no whole error page in the message");
    assertNoSecret(error);
    assert.equal(requestsTo(fake, read.path).length, each.requests);
  });
}

// ---------------------------------------------------------------- 429s

test(
  "a 429 holds every fiber for its Retry-After, not only the one that got it",
  {},
  async (fake) => {
    fake.inject({ kind: "429-json", count: 1, retryAfter: 1 });
    const users = await runWith(
      fake,
      Effect.flatMap(Discourse, (discourse) =>
        Effect.forEach(
          ["member1", "member2", "member3", "member4", "member5", "member6"],
          (username) => discourse.userByUsername(username),
          { concurrency: 6 },
        )),
      {
        // Paced at ~260 ms so the 429's answer is back before the next send,
        // even on a machine busy enough to slow every answer down.
        requestsPerMinute: 4,
        tuning: { maxRateLimitWait: Duration.seconds(5) },
      },
    );
    assert.ok(users.every(Option.isSome));
    const [limited, ...rest] = fake.requests;
    assert.equal(rest.length, 6);
    for (const request of rest) {
      assert.ok(
        request.at - limited.at >= 950,
        `${request.path} went ${request.at - limited.at} ms after the 429`,
      );
    }
  },
);

test(
  "foreign load that exhausts the admin budget is recovered from",
  {
    rateLimit: {
      adminPerMinute: 10,
      ipPer10Seconds: 100_000,
      ipPerMinute: 100_000,
      windowMs: 1000,
    },
  },
  async (fake) => {
    fake.foreignLoad(10);
    const users = await runWith(
      fake,
      Effect.flatMap(Discourse, (discourse) =>
        Effect.forEach(
          ["member1", "member2", "member3"],
          (username) => discourse.userByUsername(username),
          { concurrency: 3 },
        )),
      {
        requestsPerMinute: 10,
        tuning: { maxRateLimitWait: Duration.seconds(2) },
      },
    );
    assert.ok(users.every(Option.isSome));
    assert.ok(fake.rateLimited429s() >= 1, "the foreign load was felt");
  },
);

// ---------------------------------------------------------------- limiter

test(
  "the limiter never trips the admin limit and runs near it",
  {
    rateLimit: {
      adminPerMinute: 20,
      ipPer10Seconds: 100_000,
      ipPerMinute: 100_000,
      windowMs: 1000,
    },
  },
  async (fake) => {
    const usernames = Array.from({ length: 45 }, (_, i) => `member${i}`);
    const users = await runWith(
      fake,
      Effect.flatMap(
        Discourse,
        (discourse) =>
          Effect.forEach(
            usernames,
            (username) => discourse.userByUsername(username),
            { concurrency: 12 },
          ),
      ),
      { requestsPerMinute: 20 },
    );
    assert.ok(users.every(Option.isSome));
    assert.equal(fake.rateLimited429s(), 0);
    const times = fake.requests.map((request) => request.at);
    assert.equal(times.length, 45);
    for (let i = 20; i < times.length; i++) {
      assert.ok(
        times[i] - times[i - 20] >= 1000,
        "never 21 requests in one window",
      );
    }
    // 44 gaps at the limit of 20/s would take 2.2 s; at 0.75 of it, 2.93 s.
    const span = times[times.length - 1] - times[0];
    assert.ok(span < 44 / (20 * 0.75) * 1000, `45 requests took ${span} ms`);
  },
);

interface Sent {
  readonly index: number;
  readonly sentAt: number;
  readonly finishedAt: number;
}

/**
 * Replays the limiter's decisions for `count` requests made `concurrency` at
 * a time (a new one starts when any finishes), request i taking `latency(i)`
 * ms, exactly as `withPermit` applies them: the head of the line asks `admit`,
 * sleeps what it says, and finishes are recorded as answers come back.
 */
const simulate = (
  config: { readonly limit: number; readonly windowMs: number },
  count: number,
  concurrency: number,
  latency: (index: number) => number,
): Sent[] => {
  const plan = limiterPlan({
    limit: config.limit,
    window: Duration.millis(config.windowMs),
  });
  let state = initialLimiterState;
  const sent: Sent[] = [];
  let unrecorded: number[] = [];
  let headFreeAt = 0;
  for (let index = 0; index < count; index++) {
    const finishes = sent.map((request) => request.finishedAt).sort((a, b) =>
      a - b
    );
    const startsAt = index < concurrency ? 0 : finishes[index - concurrency];
    let now = Math.max(startsAt, headFreeAt);
    while (true) {
      for (const at of unrecorded.filter((at) => at <= now)) {
        state = finish(state, at);
      }
      unrecorded = unrecorded.filter((at) => at > now);
      const [admission, next] = admit(plan, state, now);
      state = next;
      if (admission._tag === "Send") break;
      now += admission.millis;
    }
    const finishedAt = now + latency(index);
    sent.push({ index, sentAt: now, finishedAt });
    unrecorded = [...unrecorded, finishedAt].sort((a, b) => a - b);
    headFreeAt = now;
  }
  return sent;
};

/** Sends per window over the whole run. */
const achievedRate = (sent: Sent[], windowMs: number) => {
  const first = sent[0].sentAt;
  const last = sent[sent.length - 1].sentAt;
  return (sent.length - 1) / (last - first) * windowMs;
};

Deno.test("limiter: whatever the latency, no server window holds the limit", () => {
  for (
    const [limit, windowMs, concurrency, maxLatency] of [
      [20, 1000, 16, 90],
      [60, 60_000, 4, 400],
      [60, 2000, 16, 300],
      [5, 1000, 8, 2500],
    ]
  ) {
    // An irregular pattern of latencies from 0 to maxLatency.
    const latency = (i: number) => ((i * 7919) % 101) / 100 * maxLatency;
    const sent = simulate({ limit, windowMs }, 300, concurrency, latency);
    // The server counts a request somewhere between its send and its answer.
    // Whatever those moments are, a request may share the server's window
    // only with those sent before it whose answer came back inside its own
    // trailing window: fewer than limit - 1 of them.
    for (const request of sent) {
      const crowd = sent.filter((other) =>
        other.index !== request.index && other.sentAt <= request.sentAt &&
        other.finishedAt > request.sentAt - windowMs
      );
      assert.ok(
        crowd.length <= limit - 2,
        `${limit}/${windowMs} ms: request ${request.index} shares a window with ${crowd.length}`,
      );
    }
    const expected = Math.min(
      0.97 * limit,
      (limit - 1) * windowMs / (windowMs * 1.01 + maxLatency),
    );
    const rate = achievedRate(sent, windowMs);
    assert.ok(
      rate >= 0.95 * expected,
      `${limit}/${windowMs} ms ran at ${rate} a window, not ${expected}`,
    );
  }
});

Deno.test("limiter: with quick answers it paces evenly just under the limit", () => {
  const sent = simulate({ limit: 60, windowMs: 60_000 }, 500, 12, () => 50);
  const gaps = sent.slice(1).map((request, i) =>
    request.sentAt - sent[i].sentAt
  );
  const interval = 60_000 / (60 * 0.97);
  assert.ok(gaps.every((gap) => gap >= interval - 1), "no bursts");
  assert.ok(gaps.every((gap) => gap <= interval * 1.05), "no stalls");
  const rate = achievedRate(sent, 60_000);
  assert.ok(rate >= 0.95 * 60 && rate < 60, `ran at ${rate} a minute`);
});

Deno.test("limiter: callers go in arrival order and a hold stops them all", async () => {
  const times = await Effect.runPromise(
    Effect.gen(function* () {
      const limiter = yield* makeRateLimiter({
        limit: 10,
        window: Duration.seconds(1),
      });
      const times: number[] = [];
      const fiber = yield* Effect.forEach(
        Array.from({ length: 16 }, (_, i) => i),
        (i) =>
          limiter.withPermit(Clock.currentTimeMillis).pipe(
            Effect.map((at) => {
              times[i] = at;
            }),
          ),
        { concurrency: 8 },
      ).pipe(Effect.fork);
      yield* TestClock.adjust(Duration.millis(250));
      // A 429 at 250 ms asks everyone to wait 2 s.
      yield* limiter.holdFor(Duration.seconds(2));
      while (fiber.unsafePoll() === null) {
        yield* TestClock.adjust(Duration.millis(50));
      }
      yield* Fiber.join(fiber);
      return times;
    }).pipe(Effect.provide(TestContext.TestContext)),
  );
  assert.deepEqual(times.filter((at) => at <= 250).length, 3);
  assert.ok(
    times.every((at) => at <= 250 || at >= 2250),
    `sent during the hold: ${times.filter((at) => at > 250 && at < 2250)}`,
  );
  for (let i = 1; i < times.length; i++) {
    assert.ok(times[i] > times[i - 1], `first come, first served: ${times}`);
  }
});

Deno.test("limiter: callers that give up neither block the line nor keep their count", async () => {
  const result = await Effect.runPromise(
    Effect.gen(function* () {
      // A budget of one: a request counted forever would stop everything.
      const limiter = yield* makeRateLimiter({
        limit: 2,
        window: Duration.seconds(1),
      });
      const stuck = yield* Effect.fork(limiter.withPermit(Effect.never));
      yield* TestClock.adjust(Duration.millis(1));
      const second = yield* Effect.fork(
        limiter.withPermit(Clock.currentTimeMillis),
      );
      yield* TestClock.adjust(Duration.millis(1));
      const queued = yield* Effect.fork(
        limiter.withPermit(Clock.currentTimeMillis),
      );
      yield* TestClock.adjust(Duration.millis(98));
      yield* Fiber.interrupt(queued);
      yield* Fiber.interrupt(stuck);
      const third = yield* Effect.fork(
        limiter.withPermit(Clock.currentTimeMillis),
      );
      // Bounded: a leaked count would otherwise hang the test, not fail it.
      for (let step = 0; step < 100 && third.unsafePoll() === null; step++) {
        yield* TestClock.adjust(Duration.millis(50));
      }
      const finished = third.unsafePoll() !== null;
      yield* Fiber.interrupt(third);
      return {
        finished,
        second: yield* Fiber.join(second),
        third: finished ? yield* Fiber.join(third) : NaN,
      };
    }).pipe(Effect.provide(TestContext.TestContext)),
  );
  assert.ok(result.finished, "a later caller got through");
  const plan = limiterPlan({ limit: 2, window: Duration.seconds(1) });
  // The stuck request finished when interrupted at 100 ms.
  assert.equal(result.second, Math.ceil(100 + 1000 + plan.marginMs));
  assert.equal(
    result.third,
    result.second + Math.ceil(1000 + plan.marginMs),
  );
});

Deno.test("limiter: admit waits for the pace, the window and any hold", () => {
  const plan = limiterPlan({ limit: 4, window: Duration.seconds(1) });
  assert.equal(plan.budget, 3);
  assert.equal(plan.intervalMs, 1000 / (4 * 0.97));
  let state = initialLimiterState;
  const [first, afterFirst] = admit(plan, state, 0);
  assert.equal(first._tag, "Send");
  const [tooSoon] = admit(plan, afterFirst, 100);
  assert.deepEqual(tooSoon, {
    _tag: "Wait",
    millis: Math.ceil(plan.intervalMs - 100),
  });
  state = afterFirst;
  for (const at of [300, 600]) {
    const [admission, next] = admit(plan, state, at);
    assert.equal(admission._tag, "Send");
    state = next;
  }
  state = finish(finish(state, 350), 420);
  // Two answered (at 350 and 420 ms), one still in flight: the window is full.
  const [full, afterFull] = admit(plan, state, 900);
  assert.deepEqual(full, {
    _tag: "Wait",
    millis: Math.ceil(350 + 1000 + plan.marginMs - 900),
  });
  const [later] = admit(plan, afterFull, 1350 + plan.marginMs + 1);
  assert.equal(later._tag, "Send");
  const [held] = admit(plan, holdState(afterFull, 5000), 4000);
  assert.deepEqual(held, { _tag: "Wait", millis: 1000 });
});

// ---------------------------------------------------------------- pure parts

Deno.test("rateLimitWaitMillis reads Retry-After, wait_seconds, or both", () => {
  const body = JSON.stringify({
    errors: ["Slow down"],
    error_type: "rate_limit",
    extras: { wait_seconds: 7, time_left: "7 seconds" },
  });
  assert.deepEqual(
    rateLimitWaitMillis({ "retry-after": "3" }, "Too many", 0),
    Option.some(3000),
  );
  assert.deepEqual(rateLimitWaitMillis({}, body, 0), Option.some(7000));
  assert.deepEqual(
    rateLimitWaitMillis({ "retry-after": "3" }, body, 0),
    Option.some(7000),
  );
  const now = Date.parse("2025-01-01T00:00:00Z");
  assert.deepEqual(
    rateLimitWaitMillis(
      { "retry-after": "Wed, 01 Jan 2025 00:00:05 GMT" },
      "",
      now,
    ),
    Option.some(5000),
  );
  assert.deepEqual(
    rateLimitWaitMillis({}, "<html>busy</html>", 0),
    Option.none(),
  );
});

/** The delays `failureBackoff` waits before each retry, at a fixed jitter. */
const backoffDelays = (random01: number, retries = 12): Array<number> =>
  Effect.runSync(
    Schedule.run(
      Schedule.delays(
        failureBackoff({
          backoffBase: Duration.millis(500),
          backoffCap: Duration.seconds(30),
          maxFailureRetries: retries,
        }),
      ),
      0,
      Array.from({ length: retries + 5 }, () => "failed"),
    ).pipe(
      Effect.withRandom(Random.fixed([random01])),
      Effect.map((delays) => [...delays].map(Duration.toMillis)),
    ),
  );

Deno.test("the failure backoff doubles, caps and jitters within the upper half", () => {
  const longest = backoffDelays(1);
  const shortest = backoffDelays(0);
  assert.equal(longest[0], 500);
  assert.equal(shortest[0], 250);
  assert.equal(longest[3], 4000);
  assert.equal(longest[10], 30_000);
  assert.equal(shortest[10], 15_000);
  assert.deepEqual(
    longest.slice(0, 8),
    [500, 1000, 2000, 4000, 8000, 16_000, 30_000, 30_000],
  );
  // Retries stop after maxFailureRetries: the last step gives up, no delay.
  assert.equal(longest.length, 13);
  assert.equal(longest[12], 0);
  assert.deepEqual(backoffDelays(1, 0), [0]);
});

/** What `retryPolicy` outputs for each setback until it gives up. */
const policyOutputs = (
  setbacks: ReadonlyArray<Setback>,
  options: Partial<DiscourseOptions> = {},
): Promise<Array<number>> =>
  Effect.runPromise(Effect.gen(function* () {
    const limiter = yield* makeRateLimiter({
      limit: 1000,
      window: Duration.minutes(1),
    });
    const policy = retryPolicy(
      {
        ...defaultDiscourseOptions,
        backoffBase: Duration.millis(1),
        backoffCap: Duration.millis(1),
        ...options,
      },
      limiter,
      "GET /x",
    );
    return [...yield* Schedule.run(policy, 0, setbacks)];
  }));

Deno.test("the retry policy counts each kind of setback on its own", async () => {
  const lost: Setback = {
    _tag: "Failed",
    status: Option.none(),
    detail: "connection reset",
  };
  const limited: Setback = { _tag: "RateLimited", waitMs: 0, words: [] };
  const garbled: Setback = { _tag: "Undecodable", detail: "not JSON" };
  const limits = { maxFailureRetries: 2, maxRateLimitRetries: 1 };
  // A 429 and a garbled body between two failures use none of their retries;
  // the second 429 is one past maxRateLimitRetries: given up, output 1.
  assert.deepEqual(
    await policyOutputs([lost, limited, garbled, lost, limited, lost], limits),
    [0, 0, 0, 1, 1],
  );
  assert.deepEqual(await policyOutputs([lost, lost, lost, lost], limits), [
    0,
    1,
    2,
  ]);
  assert.deepEqual(await policyOutputs([garbled, garbled, garbled]), [0, 1]);
  const fatal: Setback = {
    _tag: "Fatal",
    error: new DiscourseNotFound({ message: "no such user" }),
  };
  assert.deepEqual(await policyOutputs([fatal, lost]), [0]);
  // A wait past the run's 429 budget gives up before the retry count does.
  const long: Setback = { _tag: "RateLimited", waitMs: 5000, words: [] };
  assert.deepEqual(
    await policyOutputs([long, long], {
      maxTotalRateLimitWait: Duration.seconds(1),
    }),
    [0],
  );
});

Deno.test("serverWords and excerpt keep messages short and readable", () => {
  assert.deepEqual(
    serverWords('{"errors":["Name is too long"],"error_type":"x"}'),
    ["Name is too long"],
  );
  assert.deepEqual(serverWords('{"failed":"FAILED"}'), ['{"failed":"FAILED"}']);
  const page = `<!DOCTYPE html><html><body><h1>Bad Gateway</h1>${
    "<p>filler</p>".repeat(500)
  }</body></html>`;
  const [words] = serverWords(page);
  assert.ok(words.length <= 201, `excerpt of ${words.length} chars`);
  assert.match(words, /Bad Gateway/);
  assert.ok(!words.includes("<"));
  assert.equal(excerpt("  a \n\n b  "), "a b");
});

Deno.test("an answer of the wrong shape is described field by field, in words", async () => {
  // A proxy or a plugin that changed the answer: the user's id as a string.
  await withServer(
    () => Response.json({ user: { id: "7", username: "odd", name: 5 } }),
    async (fakeLike) => {
      const error = await failureOf(
        fakeLike,
        Effect.flatMap(
          Discourse,
          (discourse) => discourse.userByUsername("odd"),
        ),
        { tuning: { maxFailureRetries: 0 } },
      );
      assert.equal(error._tag, "DiscourseDecodeError");
      assert.match(error.message, /user\.id: expected a number, found "7"/);
      assert.doesNotMatch(error.message, /Struct|Encoded side|Expected|└/);
    },
  );
});
