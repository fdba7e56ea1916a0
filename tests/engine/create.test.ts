// --create-missing: accounts made through DiscourseConnect's sync_sso or
// POST /users.json, read back and verified, through the CLI against the
// doubles; plus the client's two new writes and the pure rules.
import assert from "node:assert/strict";
import fc from "fast-check";
import { Effect, Either, Schema } from "effect";
import {
  Discourse,
  type DiscourseError,
} from "../../src/discourse/Discourse.ts";
import { encodeSsoPayload, signSsoPayload } from "../../src/discourse/sso.ts";
import { discourseLayer } from "../../src/cli/AppLayer.ts";
import type { SsoAccount } from "../../src/discourse/schema.ts";
import { loadSettings } from "../../src/config/load.ts";
import { Settings } from "../../src/config/Settings.ts";
import { PlatformLayer } from "../../src/platform.ts";
import { Redacted } from "effect";
import {
  createMissingProblem,
  creationPlan,
  creationRefusal,
} from "../../src/sync/create.ts";
import type { DesiredProfile } from "../../src/sync/profile.ts";
import {
  type DiscourseScenarioUser,
  type FakeDiscourse,
  signDiscourseConnect,
  startFakeDiscourse,
} from "../doubles/fakeDiscourse.ts";
import {
  discourseUser,
  identityScenario,
  identitySecret,
  moodleUser,
  withGuest,
} from "../doubles/scenarios.ts";
import {
  auditLogs,
  byMoodleId,
  forumState,
  lastLog,
  readLog,
  runInProcess,
  withWorld,
  type World,
  writes,
} from "../support/world.ts";

// ---------------------------------------------------------------------------
// Pure rules

const desired: DesiredProfile = {
  name: "Brand New",
  location: "Quito, EC",
  bio: "Nueva en el foro",
  email: "brand.new@campus.example",
};
const overwriteAll = {
  name: "overwrite",
  location: "overwrite",
  bio: "overwrite",
  email: "overwrite",
} as const;

Deno.test("creationPlan: every enabled field from empty, and always the email", () => {
  const plan = creationPlan(desired, {
    ...overwriteAll,
    bio: "off",
    email: "off",
  });
  assert.deepEqual(plan.changes.map((c) => c.field), [
    "name",
    "location",
    "email",
  ]);
  assert.ok(plan.changes.every((c) => c.before === ""));
});

Deno.test("creationRefusal: reserved names, no email, a shared name without SSO, too long values", () => {
  const plan = creationPlan(desired, overwriteAll);
  const base = {
    username: "brand.new",
    email: desired.email,
    usernameShared: false,
    route: "local" as const,
    plan,
  };
  assert.equal(creationRefusal(base), undefined);
  assert.match(
    creationRefusal({ ...base, username: "Admin" }) ?? "",
    /reserves/,
  );
  assert.match(creationRefusal({ ...base, email: "" }) ?? "", /no email/);
  assert.match(
    creationRefusal({ ...base, usernameShared: true }) ?? "",
    /another Moodle user/,
  );
  assert.equal(
    creationRefusal({
      ...base,
      usernameShared: true,
      route: "discourse_connect",
    }),
    undefined,
  );
  assert.match(
    creationRefusal({
      ...base,
      plan: creationPlan({ ...desired, bio: "x".repeat(3001) }, overwriteAll),
    }) ?? "",
    /bio is 3001 characters/,
  );
});

Deno.test("createMissingProblem: external_id matching needs DiscourseConnect", () => {
  assert.equal(
    createMissingProblem({ match: "username", discourse: {} }),
    undefined,
  );
  assert.match(
    createMissingProblem({ match: "external_id", discourse: {} }) ?? "",
    /ssoSecret/,
  );
  assert.equal(
    createMissingProblem({
      match: "external_id",
      discourse: { ssoSecret: "s" as never },
    }),
    undefined,
  );
});

const decodeSso = (sso: string): Record<string, string> =>
  Object.fromEntries(
    new URLSearchParams(
      new TextDecoder().decode(
        Uint8Array.from(atob(sso), (char) => char.charCodeAt(0)),
      ),
    ),
  );

Deno.test("encodeSsoPayload: any text survives Base64 of the URL-encoded payload, which never holds + or /", () => {
  fc.assert(
    fc.property(
      fc.string({ unit: "grapheme" }),
      fc.string({ unit: "grapheme" }),
      fc.string(),
      (name, bio, location) => {
        const account: SsoAccount = {
          external_id: "42",
          email: "a+b@campus.example",
          username: "a.b",
          name,
          bio,
          location,
          suppress_welcome_message: true,
        };
        const sso = encodeSsoPayload(account);
        // URL-encoding leaves only bytes whose Base64 avoids + and /: the
        // form body needs no care beyond its own encoding.
        assert.match(sso, /^[A-Za-z0-9]*=*$/);
        assert.deepEqual(decodeSso(sso), {
          external_id: "42",
          email: "a+b@campus.example",
          username: "a.b",
          name,
          bio,
          location,
          suppress_welcome_message: "true",
        });
      },
    ),
  );
});

Deno.test("signSsoPayload: lowercase hex HMAC-SHA256, as Discourse computes it", async () => {
  const sso = encodeSsoPayload({
    external_id: "1",
    email: "x@campus.example",
    username: "x",
    suppress_welcome_message: false,
  });
  const ours = await Effect.runPromise(signSsoPayload(sso, "s3cret"));
  assert.equal(ours, await signDiscourseConnect(sso, "s3cret"));
  assert.match(ours, /^[0-9a-f]{64}$/);
});

Deno.test("settings: the secret comes from DISCOURSE_SSO_SECRET, is redacted, and a bad one is never echoed", async () => {
  const env = {
    MOODLE_ENDPOINT: "https://moodle.example.edu",
    MOODLE_TOKEN: "t",
    DISCOURSE_URL: "https://forum.example.edu",
    DISCOURSE_API_KEY: "k",
  };
  const load = (extra: Record<string, string>) =>
    Effect.runPromise(
      loadSettings("/nonexistent/settings.json", { ...env, ...extra }).pipe(
        Effect.either,
        Effect.provide(PlatformLayer),
      ),
    );
  const loaded = await load({ DISCOURSE_SSO_SECRET: "from-env-5e1" });
  assert.ok(Either.isRight(loaded));
  assert.equal(
    Redacted.value(loaded.right.discourse.ssoSecret!),
    "from-env-5e1",
  );
  assert.ok(!JSON.stringify(loaded.right).includes("from-env-5e1"));
  assert.equal(loaded.right.match, "username");
  assert.equal(loaded.right.create.suppressWelcomeMessage, true);
  // Not trimmed: refused, and the message shows where, never the value.
  const padded = await load({ DISCOURSE_SSO_SECRET: " padded-secret-3 " });
  assert.ok(Either.isLeft(padded));
  assert.match(
    padded.left.message,
    /DISCOURSE_SSO_SECRET: discourse\.ssoSecret/,
  );
  assert.match(padded.left.message, /\(hidden\)/);
  assert.ok(!padded.left.message.includes("padded-secret-3"));
});

// ---------------------------------------------------------------------------
// The client's new writes

const clientKey = "client-key-90ab";

const withClient = async <A>(
  site: { readonly discourseConnectSecret?: string },
  secret: string | undefined,
  users: DiscourseScenarioUser[],
  program: Effect.Effect<A, DiscourseError, Discourse>,
): Promise<
  { result: Either.Either<A, DiscourseError>; fake: FakeDiscourse }
> => {
  const fake = await startFakeDiscourse({
    apiKey: clientKey,
    apiUser: "system",
    users: [discourseUser(-1, "system", { admin: true }), ...users],
    site,
    rateLimit: { adminPerMinute: 10_000 },
    recordBodies: true,
  });
  try {
    const settings = Schema.decodeUnknownSync(Settings)({
      moodle: { endpoint: "http://127.0.0.1:9", token: "unused" },
      discourse: {
        url: fake.url,
        apiKey: clientKey,
        requestsPerMinute: 100_000,
        ...(secret === undefined ? {} : { ssoSecret: secret }),
      },
    });
    const layer = discourseLayer(settings);
    const result = await Effect.runPromise(
      Effect.either(program).pipe(Effect.provide(layer)),
    );
    return { result, fake };
  } finally {
    await fake.close();
  }
};

const lucia: SsoAccount = {
  external_id: "8",
  email: "lucia@campus.example",
  username: "lucia.fernandez",
  name: "Lucía Fernández",
  bio: "Ingeniera & docente: 100% *Markdown*",
  location: "Valencia, ES",
  suppress_welcome_message: true,
};

Deno.test("client: syncSso signs the payload, sends it as a form, and Discourse creates the account", async () => {
  const { result, fake } = await withClient(
    { discourseConnectSecret: "shh" },
    "shh",
    [],
    Effect.flatMap(Discourse, (d) => d.syncSso(lucia)),
  );
  assert.ok(
    Either.isRight(result),
    String(Either.isLeft(result) && result.left),
  );
  assert.equal(result.right.username, "lucia.fernandez");
  const created = fake.userByUsername("lucia.fernandez");
  assert.equal(created?.external_id, "8");
  assert.equal(created?.bio_raw, lucia.bio);
  assert.equal(created?.location, "Valencia, ES");
  const [request] = fake.requests;
  assert.equal(request.path, "/admin/users/sync_sso");
  const form = new URLSearchParams(request.body);
  assert.equal(form.get("sso"), encodeSsoPayload(lucia));
  assert.equal(
    form.get("sig"),
    await signDiscourseConnect(form.get("sso") ?? "", "shh"),
  );
});

Deno.test("client: a wrong secret or DiscourseConnect switched off is DiscourseConnectRejected, secret never shown", async () => {
  const wrong = await withClient(
    { discourseConnectSecret: "right-secret" },
    "wrong-secret-71f",
    [],
    Effect.flatMap(Discourse, (d) => d.syncSso(lucia)),
  );
  assert.ok(Either.isLeft(wrong.result));
  assert.equal(wrong.result.left._tag, "DiscourseConnectRejected");
  assert.match(wrong.result.left.message, /signature/);
  assert.match(wrong.result.left.message, /DISCOURSE_SSO_SECRET/);
  assert.ok(!wrong.result.left.message.includes("wrong-secret-71f"));
  assert.equal(wrong.fake.users.size, 1);

  const off = await withClient(
    {},
    "any",
    [],
    Effect.flatMap(Discourse, (d) => d.syncSso(lucia)),
  );
  assert.ok(Either.isLeft(off.result));
  assert.equal(off.result.left._tag, "DiscourseConnectRejected");
  assert.match(off.result.left.message, /enable_discourse_connect/);

  const unset = await withClient(
    { discourseConnectSecret: "right-secret" },
    undefined,
    [],
    Effect.flatMap(Discourse, (d) => d.syncSso(lucia)),
  );
  assert.ok(Either.isLeft(unset.result));
  assert.match(unset.result.left.message, /not set/);
  assert.equal(unset.fake.requests.length, 0);
});

Deno.test("client: createUser sends active and approved without a password; success false is a validation error", async () => {
  const ok = await withClient(
    {},
    undefined,
    [],
    Effect.flatMap(
      Discourse,
      (d) =>
        d.createUser({
          username: "brand.new",
          email: "brand.new@campus.example",
          name: "Brand New",
        }),
    ),
  );
  assert.ok(Either.isRight(ok.result));
  assert.deepEqual(JSON.parse(ok.fake.requests[0].body), {
    username: "brand.new",
    email: "brand.new@campus.example",
    name: "Brand New",
    active: true,
    approved: true,
  });
  assert.equal(ok.fake.userByUsername("brand.new")?.active, true);

  const refused = await withClient(
    {},
    undefined,
    [],
    Effect.flatMap(
      Discourse,
      (d) => d.createUser({ username: "bad name", email: "x@campus.example" }),
    ),
  );
  assert.ok(Either.isLeft(refused.result));
  assert.equal(refused.result.left._tag, "DiscourseValidationError");
  assert.match(refused.result.left.message, /letters, dashes, dots/);
});

// ---------------------------------------------------------------------------
// Through the CLI

const identity = identityScenario();

const runWith = (world: World, args: string[], env = {}) =>
  runInProcess(["--settings", world.settingsPath, ...args], {
    env: { ...world.env, ...env },
  });

const lastApplyLog = async (world: World) => {
  const logs = (await auditLogs(world.dir)).filter((p) => /_apply_/.test(p));
  assert.ok(logs.length > 0, "no apply log written");
  return byMoodleId((await readLog(logs[logs.length - 1])).rows);
};

const syncSsoCalls = (world: World) =>
  world.discourse.requests.filter((r) => r.path === "/admin/users/sync_sso");

Deno.test("DiscourseConnect site: missing users are created by sync_sso with their Moodle id, verified, and found next time", async () => {
  await withWorld({
    moodleUsers: identity.moodle.users,
    forumUsers: identity.discourse.users,
    settings: { match: "external_id" },
    discourse: { site: identity.discourse.site, recordBodies: true },
  }, async (world) => {
    const secret = { DISCOURSE_SSO_SECRET: identitySecret };
    const result = await runWith(
      world,
      ["--all", "--apply", "--create-missing"],
      secret,
    );
    assert.equal(result.code, 1, result.stderr); // two foreign emails refused
    assert.ok(!(result.stdout + result.stderr).includes(identitySecret));
    const rows = await lastApplyLog(world);

    // Nobody has brand.new's id or email: a new account.
    const created = world.discourse.userByUsername("brand.new");
    assert.equal(created?.external_id, "10");
    assert.equal(created?.name, "Brand New");
    assert.equal(created?.location, "Quito, EC");
    assert.equal(created?.bio_raw, "Nueva en el foro");
    assert.equal(rows.get(10)?.action, "CREATE");
    assert.equal(rows.get(10)?.status, "SUCCESS");
    assert.equal(rows.get(10)?.normalized_username, "brand.new");
    assert.equal(rows.get(10)?.fields, "name;location;bio;email");
    assert.match(rows.get(10)?.message ?? "", /external id 10/);
    const payload = decodeSso(
      new URLSearchParams(
        syncSsoCalls(world).find((r) =>
          decodeSso(new URLSearchParams(r.body).get("sso") ?? "")
            .external_id === "10"
        )?.body ?? "",
      ).get("sso") ?? "",
    );
    assert.equal(payload.suppress_welcome_message, "true");
    assert.equal(payload.username, "brand.new");
    assert.equal(payload.email, "brand.new@campus.example");

    // An unlinked account with the same email is linked, not duplicated.
    assert.equal(rows.get(6)?.status, "SUCCESS");
    assert.match(rows.get(6)?.message ?? "", /linked the existing account/);
    assert.equal(
      world.discourse.userByUsername("plain.user")?.external_id,
      "6",
    );
    assert.equal(
      world.discourse.userByUsername("plain.user")?.location,
      "Porto, PT",
    );

    // An account with that email owned by another external id is left alone.
    assert.equal(rows.get(9)?.action, "ERROR");
    assert.match(rows.get(9)?.message ?? "", /belongs to external id 77/);
    assert.equal(world.discourse.userByUsername("fm_x")?.external_id, "77");
    assert.equal(
      syncSsoCalls(world).filter((r) =>
        decodeSso(new URLSearchParams(r.body).get("sso") ?? "").external_id ===
          "9"
      ).length,
      0,
    );

    // Created accounts are found by external id and are in step next time.
    const again = await runWith(
      world,
      ["--all", "--apply", "--create-missing"],
      secret,
    );
    assert.equal(again.code, 1, again.stderr);
    const second = await lastApplyLog(world);
    for (const id of [6, 10]) {
      assert.equal(second.get(id)?.status, "EXISTS", `user ${id}`);
      assert.match(second.get(id)?.message ?? "", /matched by external id/);
    }
  });
});

Deno.test("a wrong DiscourseConnect secret: exit 3, a clear error, nothing created", async () => {
  await withWorld({
    moodleUsers: identity.moodle.users,
    forumUsers: identity.discourse.users,
    settings: { match: "external_id", concurrency: 1 },
    discourse: { site: identity.discourse.site },
  }, async (world) => {
    const before = world.discourse.users.size;
    const result = await runWith(
      world,
      ["--all", "--apply", "--create-missing"],
      { DISCOURSE_SSO_SECRET: "not-the-secret-3c9" },
    );
    assert.equal(result.code, 3, result.stderr);
    assert.match(result.stderr + result.stdout, /signature/);
    assert.match(result.stderr + result.stdout, /DISCOURSE_SSO_SECRET/);
    assert.ok(!(result.stderr + result.stdout).includes("not-the-secret-3c9"));
    assert.equal(world.discourse.users.size, before);
    // The first refusal stops the run: no second attempt.
    assert.equal(syncSsoCalls(world).length, 1);
  });
});

/** A forum without DiscourseConnect, and Moodle users it lacks. */
const localSite = () => ({
  moodleUsers: withGuest([
    moodleUser(2, "brand.new", {
      firstname: "Brand",
      lastname: "New",
      city: "Quito",
      country: "EC",
      description: "<p>Nueva en el foro</p>",
      descriptionformat: 1,
    }),
    // Its address already belongs to "someone" in the forum.
    moodleUser(3, "dup.mail", { email: "someone@campus.example" }),
    // Discourse reserves "admin".
    moodleUser(4, "admin", { email: "admin@campus.example" }),
    moodleUser(5, "exists.already", {
      firstname: "Exists",
      lastname: "Already",
    }),
  ]),
  forumUsers: [
    discourseUser(-1, "system", { admin: true }),
    discourseUser(10, "someone", { email: "someone@campus.example" }),
    discourseUser(11, "exists.already", { name: "Exists" }),
  ],
});

Deno.test("a site without DiscourseConnect: POST /users.json, read back, bio and location written after; duplicates and reserved names refused", async () => {
  await withWorld({
    ...localSite(),
    discourse: { recordBodies: true },
  }, async (world) => {
    const result = await world.engine(["--all", "--apply", "--create-missing"]);
    assert.equal(result.code, 1, result.stderr);
    const rows = await lastApplyLog(world);

    const created = world.discourse.userByUsername("brand.new");
    assert.equal(created?.active, true);
    assert.equal(created?.email, "brand.new@campus.example");
    assert.equal(created?.location, "Quito, EC");
    assert.equal(created?.bio_raw, "Nueva en el foro");
    assert.equal(rows.get(2)?.action, "CREATE");
    assert.equal(rows.get(2)?.status, "SUCCESS");
    assert.match(rows.get(2)?.message ?? "", /no password/);
    const posts = world.discourse.requests.filter((r) =>
      r.method === "POST" && r.path === "/users.json"
    );
    for (const post of posts) {
      const body = JSON.parse(post.body);
      assert.equal("password" in body, false);
      assert.equal(body.active, true);
      assert.equal(body.approved, true);
    }

    // Discourse said success, created nothing: the read-back tells.
    assert.equal(rows.get(3)?.action, "ERROR");
    assert.match(rows.get(3)?.message ?? "", /answered success but no account/);
    assert.equal(world.discourse.userByUsername("dup.mail"), undefined);

    // Reserved: refused before asking Discourse.
    assert.equal(rows.get(4)?.action, "ERROR");
    assert.match(rows.get(4)?.message ?? "", /reserves/);
    assert.equal(
      posts.filter((p) => JSON.parse(p.body).username === "admin").length,
      0,
    );
    assert.equal(posts.length, 2); // brand.new and dup.mail
    assert.equal(rows.get(5)?.status, "SUCCESS"); // an ordinary update

    const again = await world.engine(["--all", "--apply", "--create-missing"]);
    assert.equal(again.code, 1);
    assert.equal((await lastApplyLog(world)).get(2)?.status, "EXISTS");
  });
});

Deno.test("without --create-missing nothing is created; a dry-run with it previews the creations and refuses what --apply would refuse", async () => {
  await withWorld(localSite(), async (world) => {
    const applied = await world.engine(["--all", "--apply"]);
    assert.equal(applied.code, 0, applied.stderr);
    const rows = await lastApplyLog(world);
    assert.equal(rows.get(2)?.action, "CREATE");
    assert.equal(rows.get(2)?.status, "SKIPPED");
    assert.equal(world.discourse.userByUsername("brand.new"), undefined);

    const forumBefore = forumState(world);
    const writesBefore = writes(world).length;
    const dry = await world.engine(["--all", "--create-missing"]);
    assert.equal(dry.code, 1, dry.stderr); // "admin" is refused
    const preview = byMoodleId((await lastLog(world)).rows);
    assert.equal(preview.get(2)?.action, "CREATE");
    assert.equal(preview.get(2)?.status, "DRY_RUN");
    assert.equal(preview.get(2)?.fields, "name;location;bio;email");
    // The refusal --apply --create-missing gives, not a promise.
    assert.equal(preview.get(4)?.action, "ERROR");
    assert.match(preview.get(4)?.message ?? "", /reserves/);
    assert.doesNotMatch(dry.stdout, /admin CREATE\/DRY_RUN/);
    assert.match(dry.stdout, /2 users would change: add --apply/);
    // Missing users are drift only when --apply would create them.
    const check = await world.engine(["--check", "--create-missing"]);
    assert.equal(check.code, 4, check.stdout);
    // Without --create-missing --apply creates nothing and refuses nothing.
    const plainCheck = await world.engine(["--check"]);
    assert.equal(plainCheck.code, 0, plainCheck.stdout);
    assert.match(plainCheck.stdout, /3 users not in the forum/);
    assert.equal(writes(world).length, writesBefore);
    assert.equal(forumState(world), forumBefore);
  });
  await withWorld({
    ...localSite(),
    settings: { match: "external_id" },
  }, async (world) => {
    const result = await world.engine(["--all", "--apply", "--create-missing"]);
    assert.equal(result.code, 2);
    assert.match(result.stderr, /ssoSecret/);
    assert.equal(world.discourse.requests.length, 0);
    assert.equal(world.moodle.requests.length, 0);
  });
});
