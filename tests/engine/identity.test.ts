// Matching Moodle users to forum accounts: by username, by DiscourseConnect
// external id, or "auto" (external id, username, email), through the CLI
// against the doubles, plus the pure rules and the client's new read.
import assert from "node:assert/strict";
import { Effect, Option, Schema } from "effect";
import { Discourse } from "../../src/discourse/Discourse.ts";
import { discourseLayer } from "../../src/cli/AppLayer.ts";
import { Settings } from "../../src/config/Settings.ts";
import {
  describeSteps,
  emailSharers,
  matchSteps,
  needsOwnershipCheck,
  ownershipOf,
  type Seeker,
} from "../../src/sync/match.ts";
import {
  type DiscourseScenarioUser,
  startFakeDiscourse,
} from "../doubles/fakeDiscourse.ts";
import {
  discourseUser,
  identityCases,
  identityScenario,
  identitySecret,
  moodleUser,
  withGuest,
} from "../doubles/scenarios.ts";
import {
  auditLogs,
  byMoodleId,
  lastLog,
  readLog,
  runInProcess,
  withWorld,
  type World,
  writes,
} from "../support/world.ts";

// ---------------------------------------------------------------------------
// Pure rules

const seeker = (overrides: Partial<Seeker> = {}): Seeker => ({
  moodleId: 7,
  username: "ana_garcia",
  email: "ana@campus.example",
  usernameShared: false,
  emailShared: false,
  ...overrides,
});

Deno.test("matchSteps: each mode's lookups, and shared usernames or emails are never guessed", () => {
  assert.deepEqual(matchSteps("username", seeker()), ["username"]);
  assert.deepEqual(matchSteps("external_id", seeker()), ["external_id"]);
  assert.deepEqual(matchSteps("auto", seeker()), [
    "external_id",
    "username",
    "email",
  ]);
  const shared = seeker({ usernameShared: true, emailShared: true });
  assert.deepEqual(matchSteps("username", shared), []);
  assert.deepEqual(matchSteps("external_id", shared), ["external_id"]);
  assert.deepEqual(matchSteps("auto", shared), ["external_id"]);
  assert.deepEqual(matchSteps("auto", seeker({ email: " " })), [
    "external_id",
    "username",
  ]);
  assert.equal(
    describeSteps(["external_id", "username", "email"]),
    "external id, username or email",
  );
  assert.equal(describeSteps(["username"]), "username");
});

Deno.test("emailSharers: addresses of more than one Moodle user, case-insensitive, with who shares them", () => {
  assert.deepEqual(
    [
      ...emailSharers([
        { username: "ana", email: "a@x.example" },
        { username: "bob", email: "A@X.example " },
        { username: "cy", email: "b@x.example" },
        { username: "dee", email: "" },
        { username: "eve", email: "" },
      ]),
    ],
    [["a@x.example", ["ana", "bob"]]],
  );
});

Deno.test("ownership: own, unlinked or someone else's; checked only where it can differ", () => {
  assert.deepEqual(ownershipOf(Option.some("7"), 7), { _tag: "Own" });
  assert.deepEqual(ownershipOf(Option.none(), 7), { _tag: "Unlinked" });
  assert.deepEqual(ownershipOf(Option.some("70"), 7), {
    _tag: "Foreign",
    externalId: "70",
  });
  const plain = { match: "username", discourse: {} } as const;
  const withSecret = {
    match: "username",
    discourse: { ssoSecret: "s" as never },
  } as const;
  const byName = { _tag: "Username", username: "x" } as const;
  const byId = { _tag: "ExternalId", externalId: "7" } as const;
  assert.equal(needsOwnershipCheck(byName, plain), false);
  assert.equal(needsOwnershipCheck(byName, withSecret), true);
  assert.equal(
    needsOwnershipCheck(byName, { match: "auto", discourse: {} }),
    true,
  );
  assert.equal(
    needsOwnershipCheck({ _tag: "Email", email: "e" }, {
      match: "auto",
      discourse: {},
    }),
    true,
  );
  assert.equal(
    needsOwnershipCheck(byId, { match: "auto", discourse: {} }),
    false,
  );
});

// ---------------------------------------------------------------------------
// The client's new read

Deno.test("client: externalIdOf reads the SSO record from /admin/users/{id}.json", async () => {
  const fake = await startFakeDiscourse({
    apiKey: "key-5d1e",
    apiUser: "system",
    users: [
      discourseUser(-1, "system", { admin: true }),
      discourseUser(5, "linked", { external_id: "42" }),
      discourseUser(6, "local"),
    ],
    rateLimit: { adminPerMinute: 10_000 },
  });
  try {
    const settings = Schema.decodeUnknownSync(Settings)({
      moodle: { endpoint: "http://127.0.0.1:9", token: "unused" },
      discourse: { url: fake.url, apiKey: "key-5d1e", requestsPerMinute: 1e5 },
    });
    const layer = discourseLayer(settings);
    const [linked, local] = await Effect.runPromise(
      Effect.flatMap(Discourse, (discourse) =>
        Effect.all([
          discourse.externalIdOf(5),
          discourse.externalIdOf(6),
        ])).pipe(Effect.provide(layer)),
    );
    assert.deepEqual(linked, Option.some("42"));
    assert.deepEqual(local, Option.none());
    assert.deepEqual(
      fake.requests.map((r) => `${r.method} ${r.path}`),
      ["GET /admin/users/5.json", "GET /admin/users/6.json"],
    );
  } finally {
    await fake.close();
  }
});

// ---------------------------------------------------------------------------
// Through the CLI

const scenario = identityScenario();

const withIdentityWorld = (
  settings: Record<string, unknown>,
  body: (world: World) => Promise<void>,
  forumUsers: DiscourseScenarioUser[] = scenario.discourse.users,
) =>
  withWorld({
    moodleUsers: scenario.moodle.users,
    forumUsers,
    settings,
    discourse: { site: scenario.discourse.site },
  }, body);

/** The CLI with the DiscourseConnect secret in the environment. */
const runWithSecret = (world: World, args: string[]) =>
  runInProcess(["--settings", world.settingsPath, ...args], {
    env: { ...world.env, DISCOURSE_SSO_SECRET: identitySecret },
  });

/** The newest log of an --apply run (dry-run logs sort after apply ones). */
const lastApplyLog = async (world: World) => {
  const logs = (await auditLogs(world.dir)).filter((p) => /_apply_/.test(p));
  assert.ok(logs.length > 0, "no apply log written");
  return readLog(logs[logs.length - 1]);
};

const ownershipReads = (world: World) =>
  world.discourse.requests.filter((r) =>
    /^\/admin\/users\/\d+\.json$/.test(r.path)
  );

const putsTo = (world: World, username: string) =>
  writes(world).filter((r) =>
    r.method === "PUT" && decodeURIComponent(r.path) === `/u/${username}.json`
  );

Deno.test("match username: renamed accounts are missing, colliding users are refused, nothing is checked without DiscourseConnect", async () => {
  await withIdentityWorld({}, async (world) => {
    const result = await world.engine(["--all"]);
    assert.equal(result.code, 1, result.stderr); // the collision
    const rows = byMoodleId((await lastLog(world)).rows);
    assert.equal(rows.get(2)?.action, "CREATE");
    assert.equal(rows.get(2)?.status, "DRY_RUN");
    assert.match(rows.get(2)?.message ?? "", /no account has its username/);
    for (const id of [3, 4]) {
      assert.equal(rows.get(id)?.action, "ERROR", `user ${id}`);
      assert.match(rows.get(id)?.message ?? "", /username collision/);
    }
    // Without DiscourseConnect settings nothing says accounts carry ids.
    assert.equal(rows.get(5)?.status, "DRY_RUN");
    assert.match(
      rows.get(5)?.message ?? "",
      /matched by username "taken\.name"/,
    );
    assert.equal(rows.get(8)?.status, "EXISTS");
    assert.equal(ownershipReads(world).length, 0);
    // One profile read per user reaching the forum, nothing else per user.
    const profileReads = world.discourse.requests.filter((r) =>
      /^\/u\/[^/]+\.json$/.test(r.path)
    );
    assert.equal(profileReads.length, 7); // 9 users minus the colliding pair
  });
});

Deno.test("match username on a DiscourseConnect site: an account carrying another external id is refused, never written", async () => {
  await withIdentityWorld({}, async (world) => {
    const dry = await runWithSecret(world, ["--all"]);
    assert.equal(dry.code, 1, dry.stderr);
    const dryRows = byMoodleId((await lastLog(world)).rows);
    assert.equal(dryRows.get(5)?.action, "ERROR");
    assert.match(
      dryRows.get(5)?.message ?? "",
      /belongs to someone else.*external id is 99.*Moodle id 5/,
    );
    assert.equal(dryRows.get(5)?.normalized_username, "taken.name");
    // Unlinked: a local account may be matched by its username.
    assert.equal(dryRows.get(6)?.status, "DRY_RUN");
    // Only accounts that would be written are checked: in.step is not.
    assert.deepEqual(
      ownershipReads(world).map((r) => r.path).sort(),
      ["/admin/users/23.json", "/admin/users/24.json"],
    );

    const applied = await runWithSecret(world, ["--all", "--apply"]);
    assert.equal(applied.code, 1, applied.stderr);
    assert.equal(putsTo(world, "taken.name").length, 0);
    assert.equal(
      world.discourse.userByUsername("taken.name")?.name,
      "Somebody Else",
    );
    assert.equal(
      world.discourse.userByUsername("plain.user")?.name,
      "Plain User",
    );
    const appliedRows = byMoodleId((await lastApplyLog(world)).rows);
    assert.equal(appliedRows.get(6)?.status, "SUCCESS");
    assert.equal(appliedRows.get(5)?.action, "ERROR");
  });
});

Deno.test("match external_id: renamed and colliding users are synced to their own accounts; no username is guessed", async () => {
  await withIdentityWorld({ match: "external_id" }, async (world) => {
    const result = await world.engine(["--all", "--apply"]);
    assert.equal(result.code, 0, result.stderr);
    const rows = byMoodleId((await lastLog(world)).rows);

    assert.equal(rows.get(2)?.status, "SUCCESS");
    assert.equal(rows.get(2)?.normalized_username, "ro_forum");
    assert.match(rows.get(2)?.message ?? "", /matched by external id 2/);
    assert.equal(
      world.discourse.userByUsername("ro_forum")?.location,
      "Lyon, FR",
    );

    // Both members of the collision group, each to the account with its id.
    assert.equal(rows.get(3)?.normalized_username, "anagarcia.m");
    assert.equal(rows.get(4)?.normalized_username, "ana_garcia");
    assert.equal(rows.get(3)?.status, "SUCCESS");
    assert.equal(rows.get(4)?.status, "SUCCESS");
    assert.equal(
      world.discourse.userByUsername("anagarcia.m")?.location,
      "Sevilla, ES",
    );
    assert.equal(
      world.discourse.userByUsername("ana_garcia")?.location,
      "Granada, ES",
    );

    // No external id: missing, whatever the usernames say.
    for (const id of [5, 6, 7, 9, 10]) {
      assert.equal(rows.get(id)?.action, "CREATE", `user ${id}`);
      assert.equal(rows.get(id)?.status, "SKIPPED", `user ${id}`);
    }
    assert.equal(putsTo(world, "taken.name").length, 0);
    assert.equal(putsTo(world, "plain.user").length, 0);
    assert.equal(rows.get(8)?.status, "EXISTS");
    assert.equal(
      world.discourse.requests.filter((r) =>
        /^\/u\/(?!by-external\/)[^/]+\.json$/.test(r.path) && r.method === "GET"
      ).length,
      0,
    );
    assert.equal(ownershipReads(world).length, 0);
  });
});

Deno.test("match auto: external id, then username, then email; guessed matches owned by someone else are refused", async () => {
  await withIdentityWorld({ match: "auto" }, async (world) => {
    const dry = await world.engine(["--all"]);
    assert.equal(dry.code, 1, dry.stderr); // the two foreign accounts
    const rows = byMoodleId((await lastLog(world)).rows);
    assert.match(rows.get(2)?.message ?? "", /matched by external id 2/);
    assert.equal(rows.get(3)?.normalized_username, "anagarcia.m");
    assert.equal(rows.get(4)?.normalized_username, "ana_garcia");
    assert.equal(rows.get(5)?.action, "ERROR");
    assert.match(rows.get(5)?.message ?? "", /external id is 99/);
    assert.match(
      rows.get(6)?.message ?? "",
      /matched by username "plain\.user"/,
    );
    assert.equal(rows.get(7)?.normalized_username, "mm_other");
    assert.match(
      rows.get(7)?.message ?? "",
      /matched by email mail\.match@campus\.example/,
    );
    assert.equal(rows.get(9)?.action, "ERROR");
    assert.equal(rows.get(9)?.normalized_username, "fm_x");
    assert.match(rows.get(9)?.message ?? "", /external id is 77/);
    assert.equal(rows.get(10)?.action, "CREATE");
    assert.match(
      rows.get(10)?.message ?? "",
      /no account has its external id, username or email/,
    );

    const applied = await world.engine(["--all", "--apply"]);
    assert.equal(applied.code, 1, applied.stderr);
    assert.equal(putsTo(world, "taken.name").length, 0);
    assert.equal(putsTo(world, "fm_x").length, 0);
    assert.equal(
      world.discourse.userByUsername("mm_other")?.name,
      "Mail Match",
    );
    assert.equal(
      world.discourse.userByUsername("plain.user")?.name,
      "Plain User",
    );
  });
});

Deno.test("match auto: a colliding user found by neither external id nor email stays refused", async () => {
  const forum = scenario.discourse.users.map((user) =>
    user.username === identityCases.collidingSpace.discourse
      ? { ...user, external_id: undefined, email: "other@elsewhere.example" }
      : user
  );
  await withIdentityWorld({ match: "auto" }, async (world) => {
    await world.engine(["--all", "--apply"]);
    const rows = byMoodleId((await lastLog(world)).rows);
    assert.equal(rows.get(3)?.action, "ERROR");
    assert.match(rows.get(3)?.message ?? "", /username collision/);
    assert.match(rows.get(3)?.message ?? "", /external id or email/);
    // Its partner is found by its own external id and synced.
    assert.equal(rows.get(4)?.status, "SUCCESS");
    assert.equal(putsTo(world, "anagarcia.m").length, 0);
  }, forum);
});

// ---------------------------------------------------------------------------
// What each mode costs

/** n Moodle users, all in the forum with their Moodle id, a third changed. */
const population = (n: number) => {
  const moodleUsers = withGuest(
    Array.from({ length: n }, (_, i) =>
      moodleUser(i + 2, `member${i}`, {
        firstname: "Member",
        lastname: `${i}`,
        city: "Lima",
        country: "PE",
      })),
  );
  const forumUsers = [
    discourseUser(-1, "system", { admin: true }),
    ...Array.from({ length: n }, (_, i) =>
      discourseUser(i + 2, `member${i}`, {
        name: i % 3 === 0 ? "Old Name" : `Member ${i}`,
        location: "Lima, PE",
        external_id: String(i + 2),
      })),
  ];
  return { moodleUsers, forumUsers };
};

const costPerUser = async (
  settings: Record<string, unknown>,
  env: Record<string, string> = {},
): Promise<number> => {
  const users = 200;
  let perUser = Number.NaN;
  // Limits raised so the runs take no time: only the counts matter here.
  const roomy = 600_000;
  await withWorld({
    ...population(users),
    settings: {
      discourse: {
        url: "http://x.invalid",
        apiKey: "x",
        requestsPerMinute: roomy,
      },
      concurrency: 16,
      ...settings,
    },
    discourse: {
      site: { discourseConnectSecret: identitySecret },
      rateLimit: {
        adminPerMinute: roomy,
        ipPer10Seconds: roomy,
        ipPerMinute: roomy,
      },
    },
  }, async (world) => {
    const result = await runInProcess(
      ["--settings", world.settingsPath, "--all"],
      { env: { ...world.env, ...env } },
    );
    assert.equal(result.code, 0, result.stderr);
    perUser = world.discourse.requests.length / users;
  });
  return perUser;
};

Deno.test("request budget per user on a full dry-run: username and external_id modes stay within 1.05", async () => {
  const username = await costPerUser({});
  const externalId = await costPerUser({ match: "external_id" });
  const auto = await costPerUser({ match: "auto" });
  const usernameChecked = await costPerUser({}, {
    DISCOURSE_SSO_SECRET: identitySecret,
  });
  assert.ok(username <= 1.05, `username: ${username}`);
  assert.ok(externalId <= 1.05, `external_id: ${externalId}`);
  // Every account is found by its external id first: no guess to check.
  assert.ok(auto <= 1.05, `auto: ${auto}`);
  // On a DiscourseConnect site each account that would be written is checked.
  assert.ok(
    usernameChecked > 1.3 && usernameChecked <= 1.4,
    `username with ssoSecret: ${usernameChecked}`,
  );
});
