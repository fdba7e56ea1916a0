// Every error path, run with recognisable secrets: none of them may show up
// on stdout, stderr or in any CSV, whether plain or URL-encoded.
import assert from "node:assert/strict";
import { auditLogs, type CliResult, runInProcess } from "../support/world.ts";
import { makeScrubber } from "../../src/domain/secrets.ts";
import { redirectTarget } from "../../src/http/guarded.ts";
import { startHttpDouble } from "../doubles/http.ts";
import {
  moodleUsers,
  withWorld,
  type World,
  type WorldOptions,
} from "../support/reliability.ts";

const moodleSecret = "mdl-SECRET-7d1+Tok/en=";
const discourseSecret = "dsc-SECRET-93f+Key/x=";
const wrongKey = "dsc-WRONG-SECRET-51+/=";
const wrongToken = "mdl-WRONG-SECRET-77+/=";
const secrets = [moodleSecret, discourseSecret, wrongKey, wrongToken];

/** Every character as a JSON `\u` escape: how a JSON body may spell it. */
const jsonEscaped = (secret: string) =>
  [...secret].map((c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`)
    .join("");

/** Every form a secret could take in text: as is, URL-encoded, JSON-escaped. */
const forms = (secret: string): string[] => [
  secret,
  encodeURIComponent(secret),
  new URLSearchParams({ s: secret }).toString().slice(2),
  encodeURI(secret),
  JSON.stringify(secret).slice(1, -1),
  jsonEscaped(secret),
  // Its halves too: a cut excerpt must not leave a usable part.
  secret.slice(0, 12),
  secret.slice(-12),
];

let pathsRun = 0;
let leaks = 0;

const assertNoSecrets = async (
  name: string,
  result: CliResult,
  dir: string,
) => {
  pathsRun++;
  const places: Array<[string, string]> = [
    ["stdout", result.stdout],
    ["stderr", result.stderr],
  ];
  for (const log of await auditLogs(dir)) {
    places.push([log, await Deno.readTextFile(log)]);
  }
  for (const [where, text] of places) {
    for (const secret of secrets) {
      for (const form of forms(secret)) {
        if (text.includes(form)) {
          leaks++;
          assert.fail(`${name}: ${where} holds a secret (${form}):\n${text}`);
        }
      }
    }
  }
};

interface Case {
  readonly name: string;
  readonly code: number;
  /** Shown on stdout or stderr: proves the path was really taken. */
  readonly says: RegExp;
  readonly args?: string[];
  readonly env?: Record<string, string>;
  readonly setup?: (world: World) => void | Promise<void>;
  readonly world?: WorldOptions;
}

const cases: ReadonlyArray<Case> = [
  {
    name: "a wrong Discourse API key",
    env: { DISCOURSE_API_KEY: wrongKey },
    code: 3,
    says: /Check discourse\.apiKey \/ DISCOURSE_API_KEY/,
  },
  {
    name: "a wrong Moodle token",
    env: { MOODLE_TOKEN: wrongToken },
    code: 3,
    says: /invalidtoken/,
  },
  {
    name: "a Moodle exception echoing the token",
    setup: (world) =>
      world.moodle.inject({
        kind: "moodle-exception",
        count: 1,
        errorcode: "weird",
        message: `Token ${moodleSecret} was refused for ${
          encodeURIComponent(moodleSecret)
        }`,
      }),
    code: 3,
    says: /errorcode weird/,
  },
  {
    name: "Discourse 403 on email changes (DiscourseConnect owns email)",
    world: { discourse: { site: { ssoOverridesEmail: true } } },
    code: 1,
    says: /does not allow API user/,
  },
  {
    name: "Discourse 404 on admin routes (API user not an admin)",
    env: { DISCOURSE_API_USER: "jose.nunez" },
    code: 3,
    says: /answered 404/,
  },
  {
    name: "Discourse 422 (email changes over the per-user limit)",
    // Discourse allows 3 email changes a minute per user: spend them first.
    setup: async (world) => {
      for (const n of [1, 2, 3]) {
        const response = await fetch(
          `${world.discourse.url}/u/email.changer/preferences/email.json`,
          {
            method: "PUT",
            headers: {
              "Api-Key": discourseSecret,
              "Api-Username": "system",
              "Content-Type": "application/json",
              Accept: "application/json",
            },
            body: JSON.stringify({ email: `spent${n}@uni.example` }),
          },
        );
        await response.body?.cancel();
      }
    },
    code: 1,
    says: /HTTP 422: "You’ve performed this action too many times/,
  },
  {
    name: "Discourse 429 for good on one user",
    setup: (world) =>
      world.discourse.inject({
        kind: "429-json",
        count: 1000,
        path: /margherita_cospe/,
      }),
    code: 1,
    says: /429/,
  },
  {
    name: "Discourse 5xx for good on one user",
    setup: (world) =>
      world.discourse.inject({
        kind: "5xx",
        count: 1000,
        path: /margherita_cospe/,
      }),
    code: 1,
    says: /HTTP 502/,
  },
  {
    name: "Discourse timing out",
    setup: (world) =>
      world.discourse.inject({ kind: "slow", count: 1000, delayMs: 800 }),
    code: 3,
    says: /timed out/,
  },
  {
    name: "Discourse dropping connections",
    setup: (world) =>
      world.discourse.inject({ kind: "drop-connection", count: 1000 }),
    code: 3,
    says: /Could not reach Discourse/,
  },
  {
    name: "Moodle timing out",
    setup: (world) =>
      world.moodle.inject({ kind: "slow", count: 1000, delayMs: 800 }),
    code: 3,
    says: /did not answer/,
  },
  {
    name: "malformed JSON, for good",
    setup: (world) => {
      world.discourse.inject({ kind: "malformed-json", count: 1000 });
    },
    code: 3,
    says: /cannot read/,
  },
  {
    name: "--log-level debug through retries and 429s",
    args: ["--log-level", "debug"],
    setup: (world) => {
      world.moodle.inject({ kind: "5xx", count: 2 });
      world.discourse.inject({ kind: "429-json", count: 3 });
      world.discourse.inject({ kind: "5xx", count: 3 });
      world.discourse.inject({ kind: "drop-connection", count: 1 });
    },
    code: 0,
    says: /DEBUG|level=DEBUG|retrying/i,
  },
  {
    name: "--json with failures",
    args: ["--json"],
    setup: (world) =>
      world.discourse.inject({
        kind: "5xx",
        count: 1000,
        path: /margherita_cospe/,
      }),
    code: 1,
    says: /"status":"ERROR"/,
  },
  {
    name: "a Discourse error body with the key JSON-escaped",
    setup: (world) =>
      world.discourse.inject({
        kind: "answer",
        count: 1000,
        status: 422,
        // Parsed, this is the key itself: a scrub before decoding misses it.
        body: `{"errors":["the key ${
          jsonEscaped(discourseSecret)
        } is not allowed here"]}`,
        path: /^\/u\/margherita_cospe\.json$/,
      }),
    code: 1,
    says: /HTTP 422: "the key \(hidden\) is not allowed here"/,
  },
  {
    name: "a Discourse message with the key URL-encoded",
    setup: (world) =>
      world.discourse.inject({
        kind: "answer",
        count: 1000,
        status: 422,
        body: JSON.stringify({
          errors: [
            `see /session?api_key=${
              encodeURIComponent(discourseSecret)
            }&sso=${new URLSearchParams({ s: discourseSecret })}`,
          ],
        }),
        path: /^\/u\/margherita_cospe\.json$/,
      }),
    code: 1,
    says: /api_key=\(hidden\)/,
  },
  {
    name: "a Moodle warning carrying the token",
    setup: (world) =>
      world.moodle.inject({
        kind: "answer",
        count: 1,
        status: 200,
        body: JSON.stringify({
          // One user: an empty list is an error of its own.
          users: [{
            id: 2,
            username: "ana",
            fullname: "Ana",
            email: "a@x.org",
          }],
          warnings: [{
            warningcode: "echo",
            message: `token ${moodleSecret}, encoded ${
              encodeURIComponent(moodleSecret)
            }`,
          }],
        }).replace("echo", `echo ${jsonEscaped(moodleSecret)}`),
      }),
    code: 0,
    says:
      /Moodle warning echo \(hidden\): token \(hidden\), encoded \(hidden\)/,
  },
  {
    name: "revert with a wrong key",
    args: ["revert", "LOG"],
    env: { DISCOURSE_API_KEY: wrongKey },
    code: 3,
    says: /rejected the API credentials/,
  },
];

for (const each of cases) {
  Deno.test(`no secret leaks: ${each.name}`, async () => {
    await withWorld({
      ...each.world,
      moodleToken: moodleSecret,
      discourse: { ...each.world?.discourse, apiKey: discourseSecret },
    }, async (world) => {
      await each.setup?.(world);
      let args = each.args ?? ["--all", "--apply"];
      if (args[0] === "revert") {
        const applied = await world.engine(["--all", "--apply"]);
        assert.equal(applied.code, 0, applied.stderr);
        const [log] = await auditLogs(world.dir);
        // A dry-run: --apply would refuse the log (its MAC is keyed by the
        // right key) before reaching the forum with the wrong one.
        args = ["revert", log];
      } else if (!args.includes("--apply")) {
        args = [...args, "--all", "--apply"];
      }
      const result = await world.engine(args, each.env);
      assert.equal(result.code, each.code, result.stderr + result.stdout);
      assert.match(result.stdout + result.stderr, each.says);
      await assertNoSecrets(each.name, result, world.dir);
    });
  });
}

/** Settings files that are wrong in ways that put a secret near the error. */
const badSettings: ReadonlyArray<{ name: string; text: string }> = [
  {
    name: "a syntax error right after the token",
    text:
      `{"moodle": {"endpoint": "https://m.example", "token": "${moodleSecret}" "x": 1}}`,
  },
  {
    name: "an unterminated token string",
    text: `{"discourse": {"apiKey": "${discourseSecret}`,
  },
  {
    name: "the token in the endpoint's query string",
    text: JSON.stringify({
      moodle: {
        endpoint: `https://m.example/?wstoken=${moodleSecret}`,
        token: moodleSecret,
      },
      discourse: { url: "https://f.example", apiKey: discourseSecret },
    }),
  },
  {
    name: "the key in the forum URL's user info",
    text: JSON.stringify({
      moodle: { endpoint: "https://m.example", token: moodleSecret },
      discourse: {
        url: `https://system:${discourseSecret}@f.example`,
        apiKey: discourseSecret,
      },
    }),
  },
  {
    name: "secrets of the wrong type",
    text: JSON.stringify({
      moodle: { endpoint: "https://m.example", token: [moodleSecret] },
      discourse: {
        url: "https://f.example",
        apiKey: { value: discourseSecret },
      },
    }),
  },
  {
    name: "a secret under a misspelt key",
    text: JSON.stringify({
      moodle: { endpoint: "https://m.example", tokn: moodleSecret },
      discourse: { url: "https://f.example", apikey: discourseSecret },
    }),
  },
  {
    name: "a secret as another key's value",
    text: JSON.stringify({
      moodle: { endpoint: moodleSecret, token: moodleSecret },
      discourse: {
        url: "https://f.example",
        apiKey: discourseSecret,
        apiUser: 5,
        requestsPerMinute: discourseSecret,
      },
    }),
  },
  {
    name: "the whole file is the secret",
    text: JSON.stringify(moodleSecret),
  },
];

for (const each of badSettings) {
  Deno.test(`no secret leaks: malformed settings, ${each.name}`, async () => {
    const dir = await Deno.makeTempDir({ prefix: "sync-secrets-" });
    try {
      const path = `${dir}/settings.json`;
      await Deno.writeTextFile(path, each.text);
      await Deno.chmod(path, 0o600);
      const result = await runInProcess([
        "--settings",
        path,
        "--log-level",
        "debug",
      ]);
      assert.equal(result.code, 2, result.stderr + result.stdout);
      assert.match(result.stderr, /settings\.json/);
      await assertNoSecrets(each.name, result, dir);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}

Deno.test("a settings file other users can read draws a warning (and no secret)", async () => {
  await withWorld({ moodleToken: moodleSecret }, async (world) => {
    await Deno.chmod(world.settingsPath, 0o644);
    const text = (await Deno.readTextFile(world.settingsPath)).replace(
      '"token": "x"',
      `"token": ${JSON.stringify(moodleSecret)}`,
    );
    await Deno.writeTextFile(world.settingsPath, text);
    const result = await world.engine(["--all"]);
    assert.match(result.stderr, /chmod 600/);
    await assertNoSecrets("readable settings", result, world.dir);
  });
});

// ---------------------------------------------------------------------------
// Redirects: the secrets stay with the configured origin

/** Another origin (another port on loopback): records whatever reaches it. */
const withElsewhere = async (
  body: (elsewhere: Awaited<ReturnType<typeof startHttpDouble>>) => Promise<
    void
  >,
) => {
  const elsewhere = await startHttpDouble({
    handle: () => Promise.resolve(Response.json({ users: [], user: {} })),
  });
  try {
    await body(elsewhere);
  } finally {
    await elsewhere.close();
  }
};

for (const status of [301, 302, 307, 308] as const) {
  Deno.test(`no secret leaves: Discourse answering ${status} to another origin stops the run, sending nothing there`, async () => {
    await withElsewhere(async (elsewhere) => {
      await withWorld({
        moodleToken: moodleSecret,
        discourse: { apiKey: discourseSecret },
      }, async (world) => {
        world.discourse.inject({
          kind: "redirect",
          count: 1000,
          status,
          location: `${elsewhere.origin}/u/stolen.json`,
        });
        const result = await world.engine(["--all", "--apply"]);
        assert.equal(result.code, 3, result.stderr + result.stdout);
        const said = result.stdout + result.stderr;
        assert.match(
          said,
          new RegExp(
            `Discourse at ${world.discourse.url} answered GET \\S+ with a redirect \\(HTTP ${status}\\) to ${elsewhere.origin}/u/stolen\\.json, another address: nothing was sent there`,
          ),
        );
        assert.match(said, /A misconfigured discourse\.url is the usual cause/);
        assert.equal(elsewhere.requests.length, 0, "nothing reached it");
        assert.equal(
          world.discourse.requests.filter((r) => r.method !== "GET").length,
          0,
        );
        await assertNoSecrets(`redirect ${status}`, result, world.dir);
      });
    });
  });
}

Deno.test("no secret leaves: Moodle answering 307 to another origin stops the run; the token is not re-posted", async () => {
  await withElsewhere(async (elsewhere) => {
    await withWorld({
      moodleToken: moodleSecret,
      discourse: { apiKey: discourseSecret },
    }, async (world) => {
      world.moodle.inject({
        kind: "redirect",
        count: 1000,
        status: 307,
        location: `${elsewhere.origin}/webservice/rest/server.php`,
      });
      const result = await world.engine(["--all", "--apply"]);
      assert.equal(result.code, 3, result.stderr + result.stdout);
      assert.match(
        result.stderr,
        new RegExp(
          `Moodle at ${world.moodle.endpoint} answered core_user_get_users with a redirect \\(HTTP 307\\) to ${elsewhere.origin}/webservice/rest/server\\.php, another address: nothing was sent there`,
        ),
      );
      assert.match(result.stderr, /A misconfigured moodle\.endpoint/);
      assert.equal(elsewhere.requests.length, 0, "the token went nowhere");
      assert.equal(world.discourse.requests.length, 0);
      await assertNoSecrets("moodle redirect", result, world.dir);
    });
  });
});

Deno.test("a same-origin redirect is followed; one that loops stops the run after 3", async () => {
  await withWorld({ discourse: { apiKey: discourseSecret } }, async (world) => {
    const path = "/u/margherita_cospe.json";
    world.discourse.inject({
      kind: "redirect",
      count: 1,
      status: 308,
      location: `${path}?skip_track_visit=true`,
      path: /^\/u\/margherita_cospe\.json$/,
    });
    const followed = await world.engine(["--all"]);
    assert.equal(followed.code, 0, followed.stderr + followed.stdout);
    assert.equal(
      world.discourse.requests.filter((r) => r.path === path).length,
      2,
      "the redirect and the request it pointed to",
    );

    world.discourse.inject({
      kind: "redirect",
      count: 1000,
      status: 302,
      location: `${world.discourse.url}${path}?skip_track_visit=true`,
      path: /^\/u\/margherita_cospe\.json$/,
    });
    const looped = await world.engine(["--all"]);
    assert.equal(looped.code, 3, looped.stderr + looped.stdout);
    assert.match(
      looped.stdout + looped.stderr,
      /redirects within the site, more than 3 times/,
    );
  });
});

Deno.test("redirect rules: another scheme, host or port is refused; a write is never turned into a GET", () => {
  const get = { method: "GET", url: "https://forum.example.edu/u/a.json" };
  const refused = (
    request: { method: string; url: string },
    status: number,
    location: string,
  ) => {
    const target = redirectTarget(request, status, location);
    return target._tag === "Refuse" ? target.problem : "followed";
  };
  assert.equal(
    refused(get, 301, "http://forum.example.edu/u/a.json"),
    "other-origin",
  );
  assert.equal(
    refused(get, 302, "https://forum.example.edu:8443/u/a.json"),
    "other-origin",
  );
  assert.equal(refused(get, 307, "https://evil.example/x"), "other-origin");
  assert.equal(refused(get, 301, "/u/b.json"), "followed");
  assert.equal(
    refused({ method: "PUT", url: get.url }, 302, "/u/b.json"),
    "method-change",
  );
  assert.equal(
    refused({ method: "POST", url: get.url }, 308, "/u/b.json"),
    "followed",
  );
  assert.equal(refused(get, 301, "http://[bad"), "unreadable-location");
});

Deno.test("the scrubber hides a secret in every spelling a server may echo it in", () => {
  const secret = "dsc-SECRET-93f+Key/x=";
  const scrub = makeScrubber([secret, undefined, "ab"]);
  const spellings = [
    ...forms(secret).slice(0, 6),
    // Mixed: some characters escaped, some not, in each encoding.
    secret.replace("S", "\\u0053").replace("+", "%2b"),
    secret.replace("-", "&#45;").replace("/", "&#x2F;"),
    secret.replace("K", "\\x4b"),
  ];
  for (const spelling of spellings) {
    const text = `before ${spelling} after`;
    assert.equal(scrub(text), "before (hidden) after", spelling);
  }
  // Words shorter than a real secret are left alone, and so is text without one.
  assert.equal(scrub("ab abc %41 \\u0041 &amp;"), "ab abc %41 \\u0041 &amp;");
});

Deno.test("secrets tally (for the README)", () => {
  assert.equal(leaks, 0);
  assert.ok(pathsRun >= cases.length + badSettings.length);
  console.log(
    `error paths run: ${pathsRun}, secrets leaked: ${leaks}, users in each world: ${moodleUsers().length}`,
  );
});
