// Pins the strictness of the test doubles: each behaviour here is a fact of
// the real Moodle or Discourse that a client must cope with.
import assert from "node:assert/strict";
import { type MoodleScenario, startFakeMoodle } from "./fakeMoodle.ts";
import {
  type DiscourseScenario,
  signDiscourseConnect,
  startFakeDiscourse,
  suggestUsername,
} from "./fakeDiscourse.ts";
import {
  api,
  callMoodle,
  invalidCredentials,
  moodleJson,
  notFound,
  withDiscourse,
  withMoodle,
} from "../support/world.ts";
import {
  demoCases,
  demoCredentials,
  demoScenario,
  discourseUser,
  moodleUser,
  withGuest,
} from "./scenarios.ts";
import { SlidingWindow } from "./http.ts";

// ---------------------------------------------------------------------------
// Moodle

const moodleScenario = (
  overrides: Partial<MoodleScenario> = {},
): MoodleScenario => ({
  token: "t0ken",
  users: withGuest([
    moodleUser(2, "admin", { firstname: "Admin", lastname: "User" }),
    moodleUser(5, "ana_garcia", {
      firstname: "Ana",
      lastname: "García",
      city: "Sevilla",
      country: "ES",
      description: "<p>Hola</p>",
      descriptionformat: 1,
    }),
    moodleUser(3, "anaxgarcia", {
      firstname: "Ana",
      lastname: "Xgarcia",
      idnumber: "X1",
    }),
    moodleUser(4, "no.mail", { email: "", city: "", country: "" }),
    moodleUser(6, "gone", { deleted: 1 }),
    {
      id: 7,
      username: "broken",
      email: "broken@campus.example",
      suspended: "no",
    },
  ]),
  ...overrides,
});

const allUsers = {
  wsfunction: "core_user_get_users",
  "criteria[0][key]": "email",
  "criteria[0][value]": "%",
};

Deno.test("moodle: all users by email %, ordered by id, guest kept, empty email and deleted dropped, unset fields omitted", async () => {
  await withMoodle(moodleScenario(), async (moodle) => {
    const body = await moodleJson(moodle, allUsers);
    assert.deepEqual(body.warnings, []);
    assert.deepEqual(
      body.users.map((user: { id: number }) => user.id),
      [1, 2, 3, 5, 7],
    );
    const guest = body.users[0];
    assert.equal(guest.username, "guest");
    assert.equal(guest.email, "root@localhost");
    const ana = body.users.find((user: { id: number }) => user.id === 5);
    assert.equal(ana.city, "Sevilla");
    assert.equal(ana.descriptionformat, 1);
    const admin = body.users.find((user: { id: number }) => user.id === 2);
    for (const [key, value] of Object.entries(admin)) {
      assert.notEqual(value, "", `${key} must be omitted, not empty`);
    }
    assert.equal("description" in admin, false);
    assert.equal("descriptionformat" in admin, false);
    assert.equal("city" in admin, false);
    assert.equal("department" in admin, false);
    // Malformed records travel as they are.
    assert.deepEqual(body.users.at(-1), {
      id: 7,
      username: "broken",
      email: "broken@campus.example",
      suspended: "no",
    });
  });
});

Deno.test("moodle: errors are HTTP 200 exception bodies; disabled web services are a bare 403", async () => {
  await withMoodle(
    moodleScenario({ allowedFunctions: ["core_user_get_users"] }),
    async (moodle) => {
      assert.deepEqual(await moodleJson(moodle, allUsers, { token: "wrong" }), {
        exception: "moodle_exception",
        errorcode: "invalidtoken",
        message: "Invalid token - token not found",
      });
      // The token is only read from wstoken, never from a header.
      const headerOnly = await moodleJson(moodle, allUsers, {
        token: null,
        headers: { Authorization: moodle.token, wstoken: moodle.token },
      });
      assert.equal(headerOnly.errorcode, "invalidtoken");
      const notInService = await moodleJson(moodle, {
        wsfunction: "core_user_get_users_by_field",
        field: "id",
        "values[0]": "2",
      });
      assert.equal(notInService.errorcode, "accessexception");
      const unknown = await moodleJson(moodle, {
        wsfunction: "core_user_get_everything",
      });
      assert.equal(unknown.errorcode, "invalidrecord");
      const noCriteria = await moodleJson(moodle, {
        wsfunction: "core_user_get_users",
      });
      assert.equal(noCriteria.errorcode, "invalidparameter");
      const stray = await moodleJson(moodle, { ...allUsers, page: "2" });
      assert.equal(stray.errorcode, "invalidparameter");
      assert.match(stray.debuginfo, /Unexpected keys \(page\)/);
      const twice = await moodleJson(moodle, {
        ...allUsers,
        "criteria[1][key]": "email",
        "criteria[1][value]": "a%",
      });
      assert.equal(twice.errorcode, "keyalreadyset");
    },
  );
  await withMoodle(
    moodleScenario({ webServicesEnabled: false }),
    async (moodle) => {
      const { status, text } = await callMoodle(moodle, allUsers);
      assert.equal(status, 403);
      assert.equal(text, "");
    },
  );
});

Deno.test("moodle: without moodlewsrestformat=json the answer is not JSON", async () => {
  await withMoodle(moodleScenario(), async (moodle) => {
    const { status, text, type } = await callMoodle(moodle, allUsers, {
      json: false,
    });
    assert.equal(status, 200);
    assert.match(type, /xml/);
    assert.throws(() => JSON.parse(text));
    assert.match(text, /<RESPONSE>/);
  });
});

Deno.test("moodle: criteria are ANDed; LIKE is case-insensitive with % and _; unknown keys warn", async () => {
  await withMoodle(moodleScenario(), async (moodle) => {
    const ids = async (params: Record<string, string>) =>
      (await moodleJson(moodle, {
        wsfunction: "core_user_get_users",
        ...params,
      })).users
        .map((user: { id: number }) => user.id);
    assert.deepEqual(
      await ids({
        "criteria[0][key]": "lastname",
        "criteria[0][value]": "GARC_A",
      }),
      [5],
    );
    // `_` is a one-character wildcard: ana_garcia also matches anaxgarcia.
    assert.deepEqual(
      await ids({
        "criteria[0][key]": "email",
        "criteria[0][value]": "ana_garcia@%",
      }),
      [3, 5],
    );
    assert.deepEqual(
      await ids({
        "criteria[0][key]": "email",
        "criteria[0][value]": "ana_garcia@%",
        "criteria[1][key]": "idnumber",
        "criteria[1][value]": "X1",
      }),
      [3],
    );
    // username is compared lower-cased and exactly.
    assert.deepEqual(
      await ids({
        "criteria[0][key]": "username",
        "criteria[0][value]": "ANA_GARCIA",
      }),
      [5],
    );
    assert.deepEqual(
      await ids({
        "criteria[0][key]": "username",
        "criteria[0][value]": "ana%",
      }),
      [],
    );
    const warned = await moodleJson(moodle, {
      wsfunction: "core_user_get_users",
      "criteria[0][key]": "city",
      "criteria[0][value]": "Sevilla",
      "criteria[1][key]": "id",
      "criteria[1][value]": "5",
    });
    assert.deepEqual(warned.users.map((user: { id: number }) => user.id), [5]);
    assert.equal(warned.warnings.length, 1);
    assert.equal(warned.warnings[0].warningcode, "invalidfieldparameter");
    assert.equal(warned.warnings[0].item, "city");
  });
});

Deno.test("moodle: get_users_by_field answers a bare array, skips unknown values, rejects upper-case usernames", async () => {
  await withMoodle(moodleScenario(), async (moodle) => {
    const found = await moodleJson(moodle, {
      wsfunction: "core_user_get_users_by_field",
      field: "username",
      "values[0]": "ana_garcia",
      "values[1]": "nobody",
      "values[2]": "admin",
    });
    assert.ok(Array.isArray(found));
    assert.deepEqual(found.map((user: { id: number }) => user.id), [2, 5]);
    const upper = await moodleJson(moodle, {
      wsfunction: "core_user_get_users_by_field",
      field: "username",
      "values[]": "Ana_Garcia",
    });
    assert.equal(upper.errorcode, "invalidparameter");
    const badField = await moodleJson(moodle, {
      wsfunction: "core_user_get_users_by_field",
      field: "city",
      "values[0]": "x",
    });
    assert.equal(badField.errorcode, "invalidparameter");
  });
});

Deno.test("moodle: faults are applied in order to the next matching requests, and every request is recorded", async () => {
  await withMoodle(moodleScenario(), async (moodle) => {
    moodle.inject({
      kind: "moodle-exception",
      count: 1,
      errorcode: "sitemaintenance",
    });
    moodle.inject({ kind: "5xx", count: 1, status: 503 });
    moodle.inject({ kind: "malformed-json", count: 1 });
    moodle.inject({ kind: "drop-connection", count: 1 });
    assert.equal(
      (await moodleJson(moodle, allUsers)).errorcode,
      "sitemaintenance",
    );
    const proxy = await callMoodle(moodle, allUsers);
    assert.equal(proxy.status, 503);
    assert.match(proxy.type, /text\/html/);
    const truncated = await callMoodle(moodle, allUsers);
    assert.equal(truncated.status, 200);
    assert.match(truncated.type, /application\/json/);
    assert.throws(() => JSON.parse(truncated.text));
    await assert.rejects(callMoodle(moodle, allUsers), TypeError);
    assert.equal((await moodleJson(moodle, allUsers)).users.length, 5);
    // Five calls; the dropped one may also have been resent by fetch itself.
    assert.ok(moodle.requests.length >= 5);
    assert.equal(moodle.requestCount(), moodle.requests.length);
    assert.equal(moodle.requests[0].method, "POST");
    assert.match(moodle.requests[0].body, /wsfunction=core_user_get_users/);
  });
  await withMoodle(moodleScenario({ recordBodies: false }), async (moodle) => {
    await moodleJson(moodle, allUsers);
    assert.equal(moodle.requests[0].body, "");
    assert.equal(moodle.functionCallCount("core_user_get_users"), 1);
  });
});

Deno.test("moodle: a slow fault delays the answer past a client timeout, then normal service resumes", async () => {
  await withMoodle(moodleScenario(), async (moodle) => {
    moodle.inject({ kind: "slow", count: 1, delayMs: 400 });
    await assert.rejects(
      fetch(moodle.endpoint, {
        method: "POST",
        body: new URLSearchParams({
          ...allUsers,
          wstoken: moodle.token,
          moodlewsrestformat: "json",
        }),
        signal: AbortSignal.timeout(25),
      }),
    );
    assert.equal((await moodleJson(moodle, allUsers)).users.length, 5);
  });
});

// ---------------------------------------------------------------------------
// Discourse

const discourseScenario = (
  overrides: Partial<DiscourseScenario> = {},
): DiscourseScenario => ({
  apiKey: "k3y",
  apiUser: "system",
  users: [
    discourseUser(10, "Jose.Nunez", {
      name: "Jose Nunez",
      location: "Madrid, ES",
      bio_raw: "Hola **mundo**",
      external_id: "3",
    }),
    discourseUser(11, "empty.profile", { name: "", location: "  " }),
    discourseUser(12, "rgalli.forum", {
      email: "taken@campus.example",
      secondary_emails: ["other@campus.example"],
    }),
    discourseUser(13, "plain.member", {}),
  ],
  ...overrides,
});

Deno.test("discourse: a user read omits blank fields and email, is case-insensitive, and tracks views unless told not to", async () => {
  await withDiscourse(discourseScenario(), async (discourse) => {
    const read = await api(
      discourse,
      "/u/jose.NUNEZ.json?skip_track_visit=true",
    );
    assert.equal(read.status, 200);
    const { user, user_badges } = read.json();
    assert.deepEqual(user_badges, []);
    assert.equal(user.username, "Jose.Nunez");
    assert.equal(user.name, "Jose Nunez");
    assert.equal(user.bio_raw, "Hola **mundo**");
    assert.match(user.bio_cooked, /<strong>mundo<\/strong>/);
    assert.equal("email" in user, false);
    assert.equal("active" in user, false);
    assert.equal("external_id" in user, false);
    assert.equal(user.can_edit_name, true);
    assert.equal(user.can_change_bio, true);
    assert.equal(discourse.profileViews("jose.nunez"), 0);

    const empty = (await api(discourse, "/u/empty.profile.json")).json().user;
    for (
      const blank of [
        "name",
        "location",
        "bio_raw",
        "website",
        "suspended_till",
      ]
    ) {
      assert.equal(blank in empty, false, `${blank} must be omitted`);
    }
    assert.equal(discourse.profileViews("empty.profile"), 1);

    const missing = await api(discourse, "/u/nobody.json");
    assert.equal(missing.status, 404);
    assert.deepEqual(missing.json(), notFound);
  });
  await withDiscourse(
    discourseScenario({ site: { enableNames: false, ssoOverridesBio: true } }),
    async (discourse) => {
      const { user } = (await api(discourse, "/u/jose.nunez.json")).json();
      assert.equal("name" in user, false);
      assert.equal(user.can_edit_name, false);
      assert.equal(user.can_change_bio, false);
      assert.equal(user.can_change_location, true);
    },
  );
});

Deno.test("discourse: credentials only count in headers; bad ones are 403 on normal routes and 404 on /admin", async () => {
  await withDiscourse(discourseScenario(), async (discourse) => {
    const anonymous = await api(discourse, "/u/jose.nunez.json", {
      auth: false,
    });
    assert.equal(anonymous.status, 403);
    assert.deepEqual(anonymous.json(), invalidCredentials);
    const inQuery = await api(
      discourse,
      `/u/jose.nunez.json?api_key=${discourse.apiKey}&api_username=${discourse.apiUser}`,
      { auth: false },
    );
    assert.equal(inQuery.status, 403);
    const badKey = await api(discourse, "/u/jose.nunez.json", {
      auth: { key: "nope", user: "system" },
    });
    assert.deepEqual(badKey.json(), invalidCredentials);
    const unknownUser = await api(discourse, "/u/jose.nunez.json", {
      auth: { key: discourse.apiKey, user: "ghost" },
    });
    assert.equal(unknownUser.status, 403);
    const admin = await api(discourse, "/admin/users/list/active.json", {
      auth: false,
    });
    assert.equal(admin.status, 404);
    assert.deepEqual(admin.json(), notFound);
    const nonStaff = await api(discourse, "/admin/users/list/active.json", {
      auth: { key: discourse.apiKey, user: "plain.member" },
    });
    assert.equal(nonStaff.status, 404);
    // The API user name is matched case-insensitively.
    assert.equal(
      (await api(discourse, "/u/jose.nunez.json", {
        auth: { key: discourse.apiKey, user: "SYSTEM" },
      })).status,
      200,
    );
  });
});

Deno.test("discourse: without Accept: application/json or .json, errors are HTML and a user page is an empty 200", async () => {
  await withDiscourse(discourseScenario(), async (discourse) => {
    const noAccept = await api(discourse, "/u/nobody.json", { accept: false });
    assert.equal(noAccept.status, 404);
    assert.match(noAccept.headers.get("content-type") ?? "", /text\/html/);
    assert.throws(() => noAccept.json());
    const page = await api(discourse, "/u/jose.nunez");
    assert.equal(page.status, 200);
    assert.match(page.headers.get("content-type") ?? "", /text\/html/);
    assert.doesNotMatch(page.text, /Jose Nunez/);
    const putWithoutJson = await api(discourse, "/u/jose.nunez", {
      method: "PUT",
      json: { name: "X" },
    });
    assert.match(
      putWithoutJson.headers.get("content-type") ?? "",
      /text\/html/,
    );
    assert.equal(discourse.userByUsername("jose.nunez")?.name, "Jose Nunez");
  });
});

Deno.test("discourse: emails.json lists addresses and logs a staff action per call", async () => {
  await withDiscourse(discourseScenario(), async (discourse) => {
    const emails = (await api(discourse, "/u/rgalli.forum/emails.json")).json();
    assert.deepEqual(emails, {
      email: "taken@campus.example",
      secondary_emails: ["other@campus.example"],
      unconfirmed_emails: [],
      associated_accounts: [],
    });
    await api(discourse, "/u/rgalli.forum/emails.json");
    assert.equal(discourse.staffActionLog.length, 2);
    assert.equal(discourse.staffActionLog[0].action, "check_email");
    assert.equal(discourse.staffActionLog[0].targetUser, "rgalli.forum");
    const denied = await api(discourse, "/u/rgalli.forum/emails.json", {
      auth: { key: discourse.apiKey, user: "plain.member" },
    });
    assert.equal(denied.status, 403);
    assert.deepEqual(denied.json(), { failed: "FAILED" });
  });
});

Deno.test("discourse: the admin list pages by 100, page 0 is page 1, emails need show_emails, no profile fields", async () => {
  const many = Array.from(
    { length: 230 },
    (_, index) =>
      discourseUser(100 + index, `member${index}`, {
        location: "Somewhere",
        bio_raw: "Bio",
      }),
  );
  await withDiscourse(discourseScenario({ users: many }), async (discourse) => {
    const page = async (query: string) =>
      (await api(discourse, `/admin/users/list/active.json?${query}`)).json();
    const base = "show_emails=true&order=created&asc=true";
    const zero = await page(`${base}&page=0`);
    const one = await page(`${base}&page=1`);
    const three = await page(`${base}&page=3`);
    assert.deepEqual(zero, one);
    assert.equal(one.length, 100);
    assert.equal(three.length, 30);
    assert.equal(one[0].username, "member0");
    assert.equal(three.at(-1).username, "member229");
    assert.equal(one[0].email, "member0@campus.example");
    for (const field of ["location", "bio_raw", "website"]) {
      assert.equal(field in one[0], false);
    }
    const withoutEmails = await page("order=created&asc=true");
    assert.equal("email" in withoutEmails[0], false);
    // Without asc=true the newest come first.
    assert.equal((await page("order=created"))[0].username, "member229");
    assert.deepEqual(
      (await page(`${base}&filter=MEMBER22`)).map((row: { username: string }) =>
        row.username
      ),
      [
        "member22",
        "member220",
        "member221",
        "member222",
        "member223",
        "member224",
        "member225",
        "member226",
        "member227",
        "member228",
        "member229",
      ],
    );
    assert.deepEqual(
      (await page(`${base}&email=member7@campus.example`)).map((
        row: { id: number },
      ) => row.id),
      [107],
    );
    assert.equal(
      discourse.staffActionLog.filter((entry) => entry.action === "show_emails")
        .length,
      5,
    );
  });
});

Deno.test("discourse: user-cards accepts at most 50 ids and never returns bio_raw", async () => {
  await withDiscourse(discourseScenario(), async (discourse) => {
    const cards = (await api(discourse, "/user-cards.json?user_ids=10,11,999"))
      .json();
    assert.deepEqual(cards.users.map((card: { id: number }) => card.id), [
      10,
      11,
    ]);
    assert.equal("bio_raw" in cards.users[0], false);
    assert.equal(typeof cards.users[0].bio_excerpt, "string");
    const ids = Array.from({ length: 51 }, (_, index) => index + 1).join(",");
    assert.equal(
      (await api(discourse, `/user-cards.json?user_ids=${ids}`)).status,
      400,
    );
  });
});

Deno.test("discourse: PUT reads top-level fields only, ignores username/email/user wrapper, answers the stored user", async () => {
  await withDiscourse(discourseScenario(), async (discourse) => {
    const put = (json: unknown) =>
      api(discourse, "/u/jose.nunez.json", { method: "PUT", json });
    const wrapped = await put({ user: { name: "Wrapped" } });
    assert.equal(wrapped.status, 200);
    assert.equal(wrapped.json().user.name, "Jose Nunez");

    const updated = await put({
      name: "José Núñez",
      location: "Sevilla, ES",
      website: "example.org/me",
      username: "hijack",
      email: "hijack@evil.example",
    });
    assert.equal(updated.status, 200);
    const body = updated.json();
    assert.equal(body.success, "OK");
    assert.equal(body.user.name, "José Núñez");
    assert.equal(body.user.website, "http://example.org/me");
    assert.equal(body.user.username, "Jose.Nunez");
    const stored = discourse.userByUsername("jose.nunez")!;
    assert.equal(stored.location, "Sevilla, ES");
    assert.equal(stored.email, "jose.nunez@campus.example");

    const form = await api(discourse, "/u/jose.nunez.json", {
      method: "PUT",
      form: { bio_raw: "Nuevo" },
    });
    assert.equal(form.status, 200);
    assert.equal(stored.bio_raw, "Nuevo");

    const cleared = await put({ location: "" });
    assert.equal("location" in cleared.json().user, false);

    const tooLong = await put({ bio_raw: "x".repeat(3001), name: "Still Old" });
    assert.equal(tooLong.status, 422);
    assert.deepEqual(tooLong.json(), {
      errors: ["Bio raw is too long (maximum is 3000 characters)"],
    });
    assert.equal(stored.name, "José Núñez", "a refused update changes nothing");
    assert.equal(
      (await put({ name: "n".repeat(256) })).json().errors[0],
      "Name is too long (maximum is 255 characters)",
    );
    assert.equal(
      (await put({ bio_raw: "é".repeat(3000) })).status,
      200,
      "limits count characters",
    );
    assert.equal((await put({ website: "not a url" })).status, 422);

    const denied = await api(discourse, "/u/jose.nunez.json", {
      method: "PUT",
      json: { name: "X" },
      auth: { key: discourse.apiKey, user: "plain.member" },
    });
    assert.equal(denied.status, 403);
    assert.deepEqual(denied.json().errors, [
      "You are not permitted to view the requested resource.",
    ]);
  });
});

Deno.test("discourse: fields overridden by site settings are silently ignored", async () => {
  await withDiscourse(
    discourseScenario({
      site: {
        authOverridesName: true,
        ssoOverridesBio: true,
        ssoOverridesLocation: true,
      },
    }),
    async (discourse) => {
      const put = await api(discourse, "/u/jose.nunez.json", {
        method: "PUT",
        json: { name: "New", bio_raw: "New bio", location: "New place" },
      });
      assert.equal(put.status, 200);
      const { user } = put.json();
      assert.equal(user.name, "Jose Nunez");
      assert.equal(user.bio_raw, "Hola **mundo**");
      assert.equal(user.location, "Madrid, ES");
      assert.equal(user.can_edit_name, false);
    },
  );
});

Deno.test("discourse: an email change answers an empty 200, only queues a confirmation, and is limited per user", async () => {
  await withDiscourse(discourseScenario(), async (discourse) => {
    const change = (email: string, username = "jose.nunez") =>
      api(discourse, `/u/${username}/preferences/email.json`, {
        method: "PUT",
        json: { email },
      });
    const first = await change("New.Address@campus.example");
    assert.equal(first.status, 200);
    assert.equal(first.text, "");
    assert.doesNotMatch(first.headers.get("content-type") ?? "", /json/);
    const stored = discourse.userByUsername("jose.nunez")!;
    assert.equal(stored.email, "jose.nunez@campus.example");
    assert.deepEqual(stored.unconfirmed_emails, ["new.address@campus.example"]);
    assert.deepEqual(discourse.emailChangeRequests, [{
      username: "Jose.Nunez",
      email: "new.address@campus.example",
    }]);

    // Another account has it: success, nothing happens.
    const taken = await change("other@campus.example");
    assert.equal(taken.status, 200);
    assert.equal(discourse.emailChangeRequests.length, 1);

    const invalid = await change("not-an-email");
    assert.equal(invalid.status, 422);
    // Three a minute per target user: the fourth is refused.
    const limited = await change("fourth@campus.example");
    assert.equal(limited.status, 422);
    assert.match(limited.json().errors[0], /too many times/);
    assert.equal(
      (await change("fine@campus.example", "plain.member")).status,
      200,
    );
    assert.equal(
      (await api(discourse, "/u/jose.nunez/preferences/email.json", {
        method: "PUT",
        json: {},
      })).status,
      400,
    );
  });
  await withDiscourse(
    discourseScenario({ site: { ssoOverridesEmail: true } }),
    async (discourse) => {
      const refused = await api(
        discourse,
        "/u/jose.nunez/preferences/email.json",
        {
          method: "PUT",
          json: { email: "x@campus.example" },
        },
      );
      assert.equal(refused.status, 403);
      assert.equal(discourse.emailChangeRequests.length, 0);
    },
  );
});

Deno.test("discourse: POST /users.json always answers 200; duplicates and bad usernames do not create", async () => {
  await withDiscourse(discourseScenario(), async (discourse) => {
    const create = (json: Record<string, unknown>) =>
      api(discourse, "/users.json", { method: "POST", json });
    const before = discourse.users.size;
    const duplicate = await create({
      username: "someone.new",
      email: "TAKEN@campus.example",
      name: "X",
    });
    assert.equal(duplicate.status, 200);
    assert.equal(duplicate.json().success, true);
    assert.equal(discourse.users.size, before);

    const reserved = await create({
      username: "Admin",
      email: "a@campus.example",
    });
    assert.equal(reserved.status, 200);
    assert.equal(reserved.json().success, false);

    const invalid = await create({
      username: "ana garcia",
      email: "ana@campus.example",
    });
    assert.equal(invalid.status, 200);
    assert.equal(invalid.json().success, false);
    assert.deepEqual(invalid.json().errors.username, [
      "must only include numbers, letters, dashes, dots, and underscores",
    ]);
    const clash = await create({
      username: "JOSE.NUNEZ",
      email: "new@campus.example",
    });
    assert.deepEqual(clash.json().errors.username, ["must be unique"]);
    const confusing = await create({
      username: "report.json",
      email: "r@campus.example",
    });
    assert.equal(confusing.json().success, false);

    const created = await create({
      username: "ana_garcia",
      email: "Ana@Campus.example",
      name: "Ana",
      active: true,
    });
    assert.equal(created.json().success, true);
    assert.equal(created.json().active, true);
    assert.equal("user_id" in created.json(), false);
    assert.equal(
      discourse.userByUsername("ana_garcia")?.email,
      "ana@campus.example",
    );
    assert.equal(discourse.users.size, before + 1);
  });
});

const ssoPayload = async (fields: Record<string, string>, secret: string) => {
  const sso = btoa(new URLSearchParams(fields).toString());
  return { sso, sig: await signDiscourseConnect(sso, secret) };
};

Deno.test("discourse: DiscourseConnect: by-external and sync_sso need it; bad signatures are 422", async () => {
  await withDiscourse(discourseScenario(), async (discourse) => {
    assert.equal((await api(discourse, "/u/by-external/3.json")).status, 404);
    const sync = await api(discourse, "/admin/users/sync_sso", {
      method: "POST",
      form: await ssoPayload(
        { external_id: "3", email: "x@campus.example" },
        "s",
      ),
    });
    assert.equal(sync.status, 404);
  });
  const secret = "connect-secret";
  await withDiscourse(
    discourseScenario({ site: { discourseConnectSecret: secret } }),
    async (discourse) => {
      assert.equal(
        (await api(discourse, "/u/by-external/3.json")).json().user.username,
        "Jose.Nunez",
      );
      assert.equal((await api(discourse, "/u/by-external/4.json")).status, 404);
      const bad = await api(discourse, "/admin/users/sync_sso", {
        method: "POST",
        form: {
          ...(await ssoPayload({ external_id: "4" }, secret)),
          sig: "00",
        },
      });
      assert.equal(bad.status, 422);
      assert.equal(bad.json().failed, "FAILED");
      // Unknown external id and email: a new account, username suggested.
      const created = await api(discourse, "/admin/users/sync_sso", {
        method: "POST",
        form: await ssoPayload({
          external_id: "8",
          email: "lucia@campus.example",
          username: "lucía.fernández",
          name: "Lucía Fernández",
        }, secret),
      });
      assert.equal(created.status, 200);
      assert.equal(created.json().username, "lucia.fernandez");
      // Same email, no record yet: linked, not duplicated.
      const linked = await api(discourse, "/admin/users/sync_sso", {
        method: "POST",
        form: await ssoPayload({
          external_id: "12",
          email: "taken@campus.example",
        }, secret),
      });
      assert.equal(linked.json().id, 12);
      assert.equal(discourse.users.get(12)?.external_id, "12");
    },
  );
});

Deno.test("discourse: username suggestions follow Discourse's sanitiser", () => {
  assert.equal(suggestUsername("josé.núñez"), "jose.nunez");
  assert.equal(suggestUsername("ana garcia"), "ana_garcia");
  assert.equal(suggestUsername("giorgio@unimi.it"), "giorgio_unimi.it");
  assert.equal(suggestUsername("..x"), "x11");
  assert.equal(suggestUsername("report.json"), "report");
  assert.equal(
    suggestUsername("a very long username indeed"),
    "a_very_long_username",
  );
});

// ---------------------------------------------------------------------------
// Rate limits (a fake clock makes Retry-After exact)

const limitedScenario = (
  clock: () => number,
  overrides: Partial<DiscourseScenario> = {},
) =>
  discourseScenario({
    clock,
    rateLimit: {
      adminPerMinute: 3,
      windowMs: 60_000,
      ipPer10Seconds: 1000,
      ipPerMinute: 1000,
    },
    ...overrides,
  });

Deno.test("discourse: the admin limit is one sliding window; Retry-After is the real wait; refusals do not count", async () => {
  let now = 0;
  await withDiscourse(limitedScenario(() => now), async (discourse) => {
    const read = () =>
      api(discourse, "/u/jose.nunez.json?skip_track_visit=true");
    for (const at of [0, 10_000, 20_000]) {
      now = at;
      assert.equal((await read()).status, 200);
    }
    now = 30_000;
    const refused = await read();
    assert.equal(refused.status, 429);
    assert.equal(refused.headers.get("retry-after"), "30");
    assert.equal(
      refused.headers.get("discourse-rate-limit-error-code"),
      "admin_api_key_rate_limit",
    );
    assert.deepEqual(refused.json(), {
      errors: [
        "You’ve performed this action too many times. Please wait 30 seconds before trying again.",
      ],
      error_type: "rate_limit",
      extras: { wait_seconds: 30, time_left: "30 seconds" },
    });
    now = 59_999.5;
    assert.equal(
      (await read()).headers.get("retry-after"),
      "1",
      "rounded up, at least 1",
    );
    // The refusals above took no slot: the first one frees at 60 s.
    now = 60_000;
    assert.equal((await read()).status, 200);
    const next = await read();
    assert.equal(next.status, 429);
    assert.equal(next.headers.get("retry-after"), "10");
    assert.equal(discourse.rateLimited429s(), 3);
    // 404s and every route share the one window.
    now = 70_000;
    assert.equal((await api(discourse, "/u/nobody.json")).status, 404);
    assert.equal((await read()).status, 429);
    // Another client's load eats the budget too.
    now = 200_000;
    discourse.foreignLoad(2);
    assert.equal(discourse.adminWindowUsed(), 2);
    assert.equal((await read()).status, 200);
    assert.equal((await read()).status, 429);
  });
});

Deno.test("discourse: rejected credentials and injected faults do not consume the admin window", async () => {
  await withDiscourse(limitedScenario(() => 0), async (discourse) => {
    await api(discourse, "/u/jose.nunez.json", { auth: false });
    discourse.inject({ kind: "429-json", count: 2, retryAfter: 7 });
    const injected = await api(discourse, "/u/jose.nunez.json");
    assert.equal(injected.status, 429);
    assert.equal(injected.headers.get("retry-after"), "7");
    assert.equal(injected.json().extras.wait_seconds, 7);
    await api(discourse, "/u/jose.nunez.json");
    assert.equal(discourse.adminWindowUsed(), 0);
    assert.equal(discourse.rateLimited429s(), 0);
    assert.equal(
      discourse.requests.length,
      3,
      "every request is recorded, refused or not",
    );
  });
});

Deno.test("discourse: per-IP limits answer plain-text 429s with their own error codes", async () => {
  let now = 0;
  await withDiscourse(
    limitedScenario(() => now, {
      rateLimit: {
        adminPerMinute: 100,
        windowMs: 60_000,
        ipPer10Seconds: 2,
        ipPerMinute: 3,
      },
    }),
    async (discourse) => {
      await api(discourse, "/u/jose.nunez.json");
      await api(discourse, "/u/jose.nunez.json");
      now = 1_000;
      const ten = await api(discourse, "/u/jose.nunez.json");
      assert.equal(ten.status, 429);
      assert.match(ten.headers.get("content-type") ?? "", /text\/plain/);
      assert.match(
        ten.text,
        /^Slow down, too many requests from this IP address/,
      );
      assert.throws(() => ten.json());
      assert.equal(
        ten.headers.get("discourse-rate-limit-error-code"),
        "ip_10_secs_limit",
      );
      assert.equal(ten.headers.get("retry-after"), "9");
      now = 10_000;
      assert.equal((await api(discourse, "/u/jose.nunez.json")).status, 200);
      now = 20_000;
      const sixty = await api(discourse, "/u/jose.nunez.json");
      assert.equal(
        sixty.headers.get("discourse-rate-limit-error-code"),
        "ip_60_secs_limit",
      );
      assert.equal(sixty.headers.get("retry-after"), "40");
      assert.equal(discourse.ipRateLimited429s(), 2);
      assert.equal(
        discourse.adminWindowUsed(),
        3,
        "IP-refused requests never reach the admin limiter",
      );
    },
  );
});

Deno.test("discourse: with a shrunk window the real clock frees slots again", async () => {
  await withDiscourse(
    discourseScenario({ rateLimit: { adminPerMinute: 2, windowMs: 120 } }),
    async (discourse) => {
      const read = () =>
        api(discourse, "/u/jose.nunez.json?skip_track_visit=true");
      assert.equal((await read()).status, 200);
      assert.equal((await read()).status, 200);
      const refused = await read();
      assert.equal(refused.status, 429);
      assert.equal(refused.headers.get("retry-after"), "1");
      await new Promise((resolve) => setTimeout(resolve, 200));
      assert.equal((await read()).status, 200);
    },
  );
});

Deno.test("discourse: faults: text 429, 5xx pages, truncated JSON, dropped connections, path filters", async () => {
  await withDiscourse(discourseScenario(), async (discourse) => {
    discourse.inject({ kind: "drop-connection", count: 1, path: /emails/ });
    discourse.inject({ kind: "429-text", count: 1 });
    discourse.inject({ kind: "5xx", count: 1 });
    discourse.inject({ kind: "malformed-json", count: 1 });
    const text = await api(discourse, "/u/jose.nunez.json");
    assert.equal(text.status, 429);
    assert.equal(text.headers.get("retry-after"), "1");
    assert.match(text.text, /Slow down/);
    const bad = await api(discourse, "/u/jose.nunez.json");
    assert.equal(bad.status, 502);
    assert.match(bad.headers.get("content-type") ?? "", /text\/html/);
    const truncated = await api(discourse, "/u/jose.nunez.json");
    assert.equal(truncated.status, 200);
    assert.throws(() => truncated.json());
    assert.equal((await api(discourse, "/u/jose.nunez.json")).status, 200);
    await assert.rejects(
      api(discourse, "/u/jose.nunez/emails.json"),
      TypeError,
    );
    assert.equal(
      (await api(discourse, "/u/jose.nunez/emails.json")).status,
      200,
    );
  });
});

Deno.test("discourse: a drop is one client-visible connection error, on a fresh or a reused connection", async () => {
  await withDiscourse(
    discourseScenario({ recordRequests: false }),
    async (discourse) => {
      // The very first request opens a fresh connection.
      discourse.inject({ kind: "drop-connection", count: 1 });
      await assert.rejects(api(discourse, "/u/jose.nunez.json"), TypeError);
      assert.equal((await api(discourse, "/u/jose.nunez.json")).status, 200);
      // Now the connection is reused: fetch's own silent resend is dropped too.
      discourse.inject({ kind: "drop-connection", count: 1 });
      await assert.rejects(api(discourse, "/u/jose.nunez.json"), TypeError);
      assert.equal((await api(discourse, "/u/jose.nunez.json")).status, 200);
      assert.equal(
        discourse.requests.length,
        0,
        "recordRequests: false keeps nothing",
      );
      assert.ok(discourse.requestCount() >= 4);
    },
  );
});

Deno.test("sliding window: O(1) ring keeps exact semantics over many admissions", () => {
  const window = new SlidingWindow(1000, 1000);
  let admitted = 0;
  // Two attempts every millisecond for 100 s against 1000 a second.
  for (let attempt = 0; attempt < 200_000; attempt++) {
    if (window.tryAcquire(Math.floor(attempt / 2)) === 0) admitted++;
  }
  assert.equal(admitted, 100_000);
  const tight = new SlidingWindow(2, 1000);
  assert.equal(tight.tryAcquire(0), 0);
  assert.equal(tight.tryAcquire(100), 0);
  assert.equal(tight.tryAcquire(500), 500);
  assert.equal(tight.tryAcquire(1000), 0);
  assert.equal(tight.spend(5, 1000), 0);
  assert.equal(tight.used(1000), 2);
  assert.equal(tight.used(1100), 1);
});

// ---------------------------------------------------------------------------
// The demo scenario

Deno.test("demo scenario: every case is present and the up-to-date users really are", async () => {
  const demo = demoScenario();
  assert.equal(demo.moodle.token, demoCredentials.moodleToken);
  assert.ok(demo.moodle.users.length >= 25);
  const moodle = await startFakeMoodle(demo.moodle);
  const discourse = await startFakeDiscourse(demo.discourse);
  try {
    const { users } = await moodleJson(moodle, allUsers);
    const byName = new Map(
      users.map((user: { username: string }) => [user.username, user]),
    );
    assert.equal(users[0].username, demoCases.guest);
    assert.equal(byName.has(demoCases.noEmail), false);
    assert.ok(byName.has(demoCases.accented.moodle));
    assert.ok(
      byName.has(demoCases.collidingSpaces) &&
        byName.has(demoCases.collidingUnderscore),
    );
    assert.equal(
      (byName.get(demoCases.suspended) as { suspended: boolean }).suspended,
      true,
    );
    assert.equal(
      "fullname" in (byName.get(demoCases.malformed) as object),
      false,
    );
    for (const missing of demoCases.missing) {
      assert.equal((await api(discourse, `/u/${missing}.json`)).status, 404);
    }
    for (const username of demoCases.upToDate) {
      // deno-lint-ignore no-explicit-any
      const source = byName.get(username) as any;
      const target = discourse.userByUsername(suggestUsername(username))!;
      assert.equal(target.name, source.fullname, username);
      assert.equal(
        target.location,
        `${source.city}, ${source.country}`,
        username,
      );
      assert.equal(`<p>${target.bio_raw}</p>`, source.description, username);
      assert.equal(target.email, source.email, username);
    }
    assert.ok(discourse.userByUsername(demoCases.capitals.discourse));
    assert.ok(discourse.userByUsername(demoCases.atSign.discourse));
    // deno-lint-ignore no-explicit-any
    const longBio = byName.get(demoCases.bioTooLong) as any;
    assert.ok(longBio.description.length > 3000);
  } finally {
    await moodle.close();
    await discourse.close();
  }
});
