import assert from "node:assert/strict";
import * as FetchHttpClient from "@effect/platform/FetchHttpClient";
import * as HttpClient from "@effect/platform/HttpClient";
import * as HttpClientResponse from "@effect/platform/HttpClientResponse";
import { Duration, Effect, Either, Layer, Schedule, Schema } from "effect";
import {
  Moodle,
  type MoodleError,
  moodleRetry,
} from "../../src/moodle/Moodle.ts";
import type { MoodleClientOptions } from "../../src/moodle/config.ts";
import {
  MoodleApiError,
  MoodleHttpError,
  MoodleTransportError,
} from "../../src/moodle/errors.ts";
import { moodleFormFields } from "../../src/moodle/records.ts";
import type { MoodleRecord } from "../../src/moodle/schema.ts";
import { Settings } from "../../src/config/Settings.ts";
import { moodleLayer } from "../../src/cli/AppLayer.ts";
import {
  type FakeMoodle,
  type MoodleScenario,
  startFakeMoodle,
} from "../doubles/fakeMoodle.ts";
import type { Fault } from "../doubles/http.ts";

const TOKEN = "6f1ed002ab5595859014ebf0951522d9";

const users: Array<Record<string, unknown>> = [
  {
    id: 5,
    username: "maria",
    fullname: "María Pérez",
    firstname: "María",
    lastname: "Pérez",
    email: "maria@example.edu",
    auth: "manual",
    suspended: false,
    confirmed: true,
    city: "Córdoba",
    country: "AR",
    description: "<p>Profe de <b>física</b></p>",
    descriptionformat: 1,
  },
  {
    id: 1,
    username: "guest",
    fullname: "Guest user",
    firstname: "Guest user",
    lastname: " ",
    email: "root@localhost",
    auth: "manual",
    suspended: false,
    confirmed: true,
    description: "This user is a special user that allows read-only access",
    descriptionformat: 1,
  },
  // Everything optional omitted, as Moodle does for unset or hidden fields.
  { id: 3, fullname: "Quiet Person", email: "quiet@example.edu" },
  {
    id: 2,
    username: "admin",
    fullname: "Admin User",
    email: "admin@example.edu",
    auth: "manual",
    suspended: false,
  },
  // Malformed on purpose: the id is a string, the fullname a number.
  { id: "7", username: "broken", fullname: 42, email: "b@example.edu" },
  { id: 6, username: "suspended.one", fullname: "Sus Pended", email: "s@x.io" },
];

const fastOptions: Partial<MoodleClientOptions> = {
  timeout: "2 seconds",
  retries: 2,
  retryDelay: "5 millis",
};

const settingsFor = (endpoint: string, token = TOKEN): Settings =>
  Schema.decodeUnknownSync(Settings)({
    moodle: { endpoint, token },
    discourse: { url: "http://127.0.0.1:9", apiKey: "unused" },
  });

const runWith = <A>(
  settings: Settings,
  httpClient: Layer.Layer<HttpClient.HttpClient>,
  program: Effect.Effect<A, MoodleError, Moodle>,
  options: Partial<MoodleClientOptions> = fastOptions,
): Promise<Either.Either<A, MoodleError>> =>
  Effect.runPromise(
    program.pipe(
      Effect.either,
      Effect.provide(
        moodleLayer(settings, options, httpClient),
      ),
    ),
  );

const withFake = async (
  scenario: Partial<MoodleScenario>,
  body: (fake: FakeMoodle) => Promise<void>,
): Promise<void> => {
  const fake = await startFakeMoodle({ token: TOKEN, users, ...scenario });
  try {
    await body(fake);
  } finally {
    await fake.close();
  }
};

const run = <A>(
  fake: FakeMoodle,
  program: Effect.Effect<A, MoodleError, Moodle>,
  options?: Partial<MoodleClientOptions>,
) =>
  runWith(
    settingsFor(fake.endpoint, fake.token),
    FetchHttpClient.layer,
    program,
    options,
  );

const allUsers = Effect.flatMap(Moodle, (moodle) => moodle.allUsers);

const succeeded = <A>(result: Either.Either<A, MoodleError>): A => {
  if (Either.isLeft(result)) {
    assert.fail(
      `expected success, got ${result.left._tag}: ${result.left.message}`,
    );
  }
  return result.right;
};

const failedWith = <A>(
  result: Either.Either<A, MoodleError>,
  tag: MoodleError["_tag"],
): MoodleError => {
  if (Either.isRight(result)) assert.fail(`expected a ${tag}, got success`);
  assert.equal(result.left._tag, tag, result.left.message);
  return result.left;
};

const validUser = (record: MoodleRecord | undefined) => {
  assert.ok(record !== undefined && record._tag === "Valid", String(record));
  return record.user;
};

/** Every text an error can reach an operator through. */
const errorTexts = (error: MoodleError): string =>
  [error.message, String(error), JSON.stringify(error)].join("\n");

const errorHost = (fake: FakeMoodle) => new URL(fake.endpoint).host;

Deno.test("allUsers returns every user sorted by id, guest included", async () => {
  await withFake({}, async (fake) => {
    const { records } = succeeded(await run(fake, allUsers));
    const ids = records.map((r) => r._tag === "Valid" ? r.user.id : r.id);
    assert.deepEqual(ids, [1, 2, 3, 5, 6, undefined]);

    const guest = validUser(records[0]);
    assert.equal(guest.username, "guest");
    assert.equal(guest.email, "root@localhost");

    const maria = validUser(records[3]);
    assert.deepEqual(
      {
        fullname: maria.fullname,
        city: maria.city,
        country: maria.country,
        description: maria.description,
        descriptionformat: maria.descriptionformat,
        suspended: maria.suspended,
      },
      {
        fullname: "María Pérez",
        city: "Córdoba",
        country: "AR",
        description: "<p>Profe de <b>física</b></p>",
        descriptionformat: 1,
        suspended: false,
      },
    );

    const quiet = validUser(records[2]);
    assert.equal(quiet.fullname, "Quiet Person");
    assert.equal(quiet.username, undefined);
    assert.equal(quiet.city, undefined);
    assert.equal(quiet.country, undefined);
    assert.equal(quiet.description, undefined);
  });
});

Deno.test("a malformed record is isolated, not fatal", async () => {
  await withFake({}, async (fake) => {
    const { records } = succeeded(await run(fake, allUsers));
    const malformed = records.filter((r) => r._tag === "Malformed");
    assert.equal(malformed.length, 1);
    const [broken] = malformed;
    assert.ok(broken._tag === "Malformed");
    assert.equal(broken.id, undefined);
    assert.equal(broken.username, "broken");
    assert.match(broken.problem, /id/);
    assert.match(broken.problem, /fullname/);
    assert.equal(records.filter((r) => r._tag === "Valid").length, 5);
  });
});

Deno.test("the call is a form POST with the token only in the body", async () => {
  await withFake({}, async (fake) => {
    succeeded(await run(fake, allUsers));
    assert.equal(fake.requests.length, 1);
    for (const request of fake.requests) {
      assert.equal(request.method, "POST");
      assert.equal(request.path, "/webservice/rest/server.php");
      assert.ok(!request.path.includes(TOKEN));
      assert.equal([...request.query.keys()].length, 0);
      assert.ok(!request.query.toString().includes(TOKEN));
      for (const [name, value] of request.headers) {
        assert.ok(!value.includes(TOKEN), `token in header ${name}`);
      }
      assert.match(
        request.headers.get("content-type") ?? "",
        /^application\/x-www-form-urlencoded/,
      );
      const form = new URLSearchParams(request.body);
      assert.equal(form.get("wstoken"), TOKEN);
      assert.equal(form.get("moodlewsrestformat"), "json");
    }
    const [all] = fake.requests.map((r) => new URLSearchParams(r.body));
    assert.equal(all.get("wsfunction"), "core_user_get_users");
    assert.equal(all.get("criteria[0][key]"), "email");
    assert.equal(all.get("criteria[0][value]"), "%");
  });
});

Deno.test("a wrong token is invalidtoken, pointing at moodle.token", async () => {
  await withFake({}, async (fake) => {
    const result = await runWith(
      settingsFor(fake.endpoint, "wrong0token0wrong0token0wrong000"),
      FetchHttpClient.layer,
      allUsers,
    );
    const error = failedWith(result, "MoodleApiError");
    assert.ok(error._tag === "MoodleApiError");
    assert.equal(error.errorcode, "invalidtoken");
    assert.match(error.message, /moodle\.token/);
    assert.match(error.message, /MOODLE_TOKEN/);
    assert.ok(!errorTexts(error).includes("wrong0token0wrong0token"));
    // An exception is an answer, not a transient failure: no retry.
    assert.equal(fake.requests.length, 1);
  });
});

Deno.test("a function missing from the service is accessexception, named", async () => {
  await withFake(
    { allowedFunctions: ["core_user_get_users_by_field"] },
    async (fake) => {
      const error = failedWith(await run(fake, allUsers), "MoodleApiError");
      assert.ok(error._tag === "MoodleApiError");
      assert.equal(error.errorcode, "accessexception");
      assert.match(error.message, /core_user_get_users/);
      assert.match(error.message, /External services/);
      assert.match(error.message, /expired|IP/);
    },
  );
});

const errorcodeAdvice: ReadonlyArray<[string, RegExp]> = [
  ["invalidrecord", /does not know .*core_user_get_users.*version/],
  ["nopermissions", /token's user.*capabilit/],
  ["wsaccessusersuspended", /token's user.*suspended/],
  ["wsaccessusernologin", /token's user.*No login/],
  ["sitemaintenance", /maintenance/],
  ["invalidparameter", /Invalid parameter value detected.*invalidparameter/],
];

for (const [errorcode, advice] of errorcodeAdvice) {
  Deno.test(`errorcode ${errorcode} is explained`, async () => {
    await withFake({}, async (fake) => {
      fake.inject({
        kind: "moodle-exception",
        count: 1,
        errorcode,
        message: errorcode === "invalidparameter"
          ? "Invalid parameter value detected"
          : `Moodle says ${errorcode}`,
      });
      const error = failedWith(await run(fake, allUsers), "MoodleApiError");
      assert.ok(error._tag === "MoodleApiError");
      assert.equal(error.errorcode, errorcode);
      assert.match(error.message, advice);
      assert.match(error.message, new RegExp(errorHost(fake)));
      assert.ok(!errorTexts(error).includes(TOKEN));
      assert.equal(fake.requests.length, 1);
    });
  });
}

Deno.test("HTTP 403 with an empty body means web services are disabled", async () => {
  await withFake({ webServicesEnabled: false }, async (fake) => {
    const error = failedWith(await run(fake, allUsers), "MoodleHttpError");
    assert.ok(error._tag === "MoodleHttpError");
    assert.equal(error.status, 403);
    assert.match(error.message, /Enable web services/);
    assert.match(error.message, /REST/);
    assert.equal(fake.requests.length, 1);
  });
});

/** Transient faults the client rides out: one table, a test each. */
const recoveredFaults: ReadonlyArray<{
  readonly name: string;
  readonly fault: Fault;
  readonly options?: Partial<MoodleClientOptions>;
  /** The first try and each retry. */
  readonly requests: number;
}> = [
  {
    name: "a 5xx is retried, then the call succeeds",
    fault: { kind: "5xx", count: 2, status: 503 },
    requests: 3,
  },
  {
    name: "a dropped connection is retried",
    fault: { kind: "drop-connection", count: 1 },
    requests: 2,
  },
  {
    name: "a slow answer times out and is retried",
    fault: { kind: "slow", count: 1, delayMs: 1_000 },
    options: { ...fastOptions, timeout: "150 millis" },
    requests: 2,
  },
];

for (const each of recoveredFaults) {
  Deno.test(each.name, async () => {
    await withFake({}, async (fake) => {
      fake.inject(each.fault);
      const { records } = succeeded(
        await run(fake, allUsers, each.options),
      );
      assert.equal(records.length, users.length);
      assert.equal(fake.requests.length, each.requests);
    });
  });
}

Deno.test("a 5xx that persists fails after the allowed retries", async () => {
  await withFake({}, async (fake) => {
    fake.inject({ kind: "5xx", count: 10, status: 502 });
    const error = failedWith(await run(fake, allUsers), "MoodleHttpError");
    assert.ok(error._tag === "MoodleHttpError");
    assert.equal(error.status, 502);
    assert.match(error.message, /HTTP 502/);
    assert.match(error.message, /3 attempts/);
    assert.equal(fake.requests.length, 3);
    assert.ok(!errorTexts(error).includes(TOKEN));
  });
});

Deno.test("an answer that never comes in time is a transport error", async () => {
  await withFake({}, async (fake) => {
    fake.inject({ kind: "slow", count: 2, delayMs: 600 });
    const error = failedWith(
      await run(fake, allUsers, {
        timeout: "100 millis",
        retries: 1,
        retryDelay: "1 millis",
      }),
      "MoodleTransportError",
    );
    assert.match(error.message, /did not answer/);
    assert.match(error.message, new RegExp(errorHost(fake)));
    assert.ok(!errorTexts(error).includes(TOKEN));
  });
});

Deno.test("malformed JSON is a decode error, not retried", async () => {
  await withFake({}, async (fake) => {
    fake.inject({ kind: "malformed-json", count: 1 });
    const error = failedWith(await run(fake, allUsers), "MoodleDecodeError");
    assert.match(error.message, /not JSON/);
    assert.match(error.message, new RegExp(errorHost(fake)));
    assert.ok(!errorTexts(error).includes(TOKEN));
    assert.equal(fake.requests.length, 1);
  });
});

Deno.test("an unreachable Moodle is a transport error naming the host", async () => {
  const fake = await startFakeMoodle({ token: TOKEN, users });
  const endpoint = fake.endpoint;
  await fake.close();
  const error = failedWith(
    await runWith(settingsFor(endpoint), FetchHttpClient.layer, allUsers, {
      retries: 1,
      retryDelay: "1 millis",
    }),
    "MoodleTransportError",
  );
  assert.match(error.message, new RegExp(new URL(endpoint).host));
  assert.match(error.message, /moodle\.endpoint/);
  assert.match(error.message, /2 attempts/);
  assert.match(error.message, /refused/i);
  assert.ok(!errorTexts(error).includes(TOKEN));
});

/** A client that answers every request with one canned response. */
const cannedClient = (
  status: number,
  body: string,
  contentType = "application/json",
) =>
  Layer.succeed(
    HttpClient.HttpClient,
    HttpClient.make((request) =>
      Effect.succeed(
        HttpClientResponse.fromWeb(
          request,
          new Response(body, {
            status,
            headers: { "content-type": contentType },
          }),
        ),
      )
    ),
  );

const cannedEndpoint = "https://moodle.example.edu/webservice/rest/server.php";

Deno.test("warnings from Moodle are returned with the users", async () => {
  const reply = {
    users: [{ id: 2, fullname: "Admin User", username: "admin" }],
    warnings: [{
      item: "criteria",
      warningcode: "invalidfieldparameter",
      message: "The search key 'x' is not supported",
    }],
  };
  const result = succeeded(
    await runWith(
      settingsFor(cannedEndpoint),
      cannedClient(200, JSON.stringify(reply)),
      allUsers,
    ),
  );
  assert.deepEqual(result.warnings, reply.warnings);
  assert.equal(validUser(result.records[0]).username, "admin");
});

/** Answers that are not Moodle's, and what the operator is told. */
const foreignAnswers: ReadonlyArray<{
  readonly name: string;
  readonly status: number;
  readonly body: string;
  readonly contentType?: string;
  readonly tag: MoodleError["_tag"];
  readonly says: ReadonlyArray<RegExp>;
}> = [
  {
    name: "an HTML page instead of JSON points at the endpoint",
    status: 200,
    body: "<!DOCTYPE html><html><body>Log in to the site</body></html>",
    contentType: "text/html",
    tag: "MoodleDecodeError",
    says: [/HTML/, /moodle\.endpoint/, /moodle\.example\.edu/],
  },
  {
    name: "a 404 says the endpoint is probably wrong",
    status: 404,
    body: "Not found",
    contentType: "text/plain",
    tag: "MoodleHttpError",
    says: [/HTTP 404/, /moodle\.endpoint/],
  },
  {
    name: "a reply of the wrong shape is a decode error",
    status: 200,
    body: JSON.stringify({ users: "none" }),
    tag: "MoodleDecodeError",
    says: [/core_user_get_users/, /users/],
  },
];

for (const each of foreignAnswers) {
  Deno.test(each.name, async () => {
    const error = failedWith(
      await runWith(
        settingsFor(cannedEndpoint),
        cannedClient(each.status, each.body, each.contentType),
        allUsers,
      ),
      each.tag,
    );
    for (const words of each.says) assert.match(error.message, words);
  });
}

Deno.test("an exception that echoes the token does not leak it", async () => {
  const error = failedWith(
    await runWith(
      settingsFor(cannedEndpoint),
      cannedClient(
        200,
        JSON.stringify({
          exception: "core\\exception\\moodle_exception",
          errorcode: "somethingodd",
          message: `Bad request for token ${TOKEN}`,
          debuginfo: `wstoken=${TOKEN}`,
        }),
      ),
      allUsers,
    ),
    "MoodleApiError",
  );
  assert.match(error.message, /somethingodd/);
  assert.match(error.message, /\(hidden\)/);
  assert.ok(!errorTexts(error).includes(TOKEN));
});

Deno.test("parameters flatten to PHP bracket syntax", () => {
  assert.deepEqual(
    moodleFormFields({
      criteria: [{ key: "email", value: "%" }, {
        key: "auth",
        value: "oauth2",
      }],
      values: ["a", "b"],
      field: "username",
      flag: true,
    }),
    [
      ["criteria[0][key]", "email"],
      ["criteria[0][value]", "%"],
      ["criteria[1][key]", "auth"],
      ["criteria[1][value]", "oauth2"],
      ["values[0]", "a"],
      ["values[1]", "b"],
      ["field", "username"],
      ["flag", "1"],
    ],
  );
});

Deno.test("the retry schedule doubles its delay, and retries only what is transient", () => {
  const delays = (errors: ReadonlyArray<MoodleError>) =>
    Effect.runSync(
      Schedule.run(
        Schedule.delays(moodleRetry({ retries: 3, retryDelay: "1 second" })),
        0,
        errors,
      ),
    ).pipe((chunk) => [...chunk].map(Duration.toMillis));
  const lost = new MoodleTransportError({ message: "connection reset" });
  const failing = new MoodleHttpError({ status: 503, message: "busy" });
  assert.deepEqual(delays([lost, failing, lost, lost, lost]), [
    1000,
    2000,
    4000,
    0,
  ]);
  const refused = new MoodleApiError({
    errorcode: "invalidtoken",
    message: "",
  });
  assert.deepEqual(delays([refused, lost]), [0]);
  const denied = new MoodleHttpError({ status: 403, message: "denied" });
  assert.deepEqual(delays([lost, denied, lost]), [1000, 0]);
});
