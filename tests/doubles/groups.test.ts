// Pins what the doubles learned for groups, leavers and bulk reads (issues
// 12 to 15): user cards, groups and their members, suspensions, Moodle
// cohorts and course enrolments, answer latency. Each behaviour is one of
// the real servers', limits and refusals included.
import assert from "node:assert/strict";
import {
  bioExcerpt,
  type DiscourseScenario,
  startFakeDiscourse,
} from "./fakeDiscourse.ts";
import {
  groupSyncFunctions,
  type MoodleScenario,
  startFakeMoodle,
} from "./fakeMoodle.ts";
import {
  demoCases,
  demoScenario,
  discourseUser,
  moodleUser,
  withGuest,
} from "./scenarios.ts";
import {
  api,
  callMoodle,
  invalidCredentials,
  moodleJson,
  notFound,
  withDiscourse,
  withMoodle,
} from "../support/world.ts";

// ---------------------------------------------------------------------------
// Discourse

const forum = (
  overrides: Partial<DiscourseScenario> = {},
): DiscourseScenario => ({
  apiKey: "k3y",
  apiUser: "system",
  users: [
    discourseUser(10, "ana", {
      name: "Ana Ruiz",
      location: "Sevilla, ES",
      website: "https://www.example.org/ana",
      bio_raw:
        "First line  \nsecond line\n\nSee [my page](https://example.org/x) & more",
    }),
    discourseUser(11, "blank.one", { name: "", location: " ", bio_raw: "" }),
    discourseUser(12, "newbie", {
      trust_level: 0,
      bio_raw: "Visit [here](https://spam.example)",
    }),
    discourseUser(13, "boss", { admin: true }),
    discourseUser(14, "mod.erator", { moderator: true }),
    discourseUser(15, "carla", {}),
    discourseUser(16, "dario", {}),
    discourseUser(17, "owner.one", {}),
  ],
  groups: [
    {
      name: "hist101",
      full_name: "History 101",
      members: ["ana", "carla"],
      owners: ["owner.one"],
    },
    { name: "empty_group" },
  ],
  ...overrides,
});

const asUser = (user: string) => ({ key: "k3y", user });

Deno.test("user cards: the reference's fields, blank ones omitted, no email or bio_raw, 50 ids at most", async () => {
  await withDiscourse(forum(), async (discourse) => {
    const answer = await api(discourse, "/user-cards.json?user_ids=11,10,999");
    assert.equal(answer.status, 200);
    const { users } = answer.json();
    assert.deepEqual(users.map((card: { id: number }) => card.id), [10, 11]);
    const [ana, blank] = users;
    assert.equal(ana.username, "ana");
    assert.equal(ana.name, "Ana Ruiz");
    assert.equal(ana.location, "Sevilla, ES");
    assert.equal(ana.website, "https://www.example.org/ana");
    assert.equal(ana.website_name, "example.org/ana");
    assert.equal(ana.trust_level, 1);
    assert.equal(ana.admin, false);
    assert.equal(ana.moderator, false);
    assert.equal(ana.title, null);
    for (const absent of ["email", "bio_raw", "bio_cooked", "suspended_till"]) {
      assert.equal(absent in ana, false, `${absent} is not on a card`);
    }
    for (
      const blankField of [
        "name",
        "location",
        "website",
        "website_name",
        "bio_excerpt",
        "user_fields",
      ]
    ) {
      assert.equal(blankField in blank, false, `${blankField} omitted`);
    }
    const fifty = Array.from({ length: 50 }, (_, index) => index + 1);
    assert.equal(
      (await api(discourse, `/user-cards.json?user_ids=${fifty.join(",")}`))
        .status,
      200,
    );
    const tooMany = await api(
      discourse,
      `/user-cards.json?user_ids=${[...fifty, 51].join(",")}`,
    );
    assert.equal(tooMany.status, 400);
    assert.equal(tooMany.json().error_type, "invalid_parameters");
    assert.equal((await api(discourse, "/user-cards.json")).status, 400);
  });
});

Deno.test("user cards: bio_excerpt is the cooked bio's text, newlines kept as <br>, links kept from TL1, cut at 350", async () => {
  await withDiscourse(forum(), async (discourse) => {
    const cards = (await api(discourse, "/user-cards.json?user_ids=10,12"))
      .json().users;
    assert.equal(
      cards[0].bio_excerpt,
      'First line<br>\nsecond line<br>\nSee <a href="https://example.org/x">my page</a> &amp; more',
    );
    // Trust level 0: the link's text stays, the tag goes.
    assert.equal(cards[1].bio_excerpt, "Visit here");
    // The single read shows the same excerpt.
    const single = (await api(discourse, "/u/ana.json")).json().user;
    assert.equal(single.bio_excerpt, cards[0].bio_excerpt);
  });
  // Only the first 350 visible characters count; tags and <br> do not.
  const long = `<p>${"a".repeat(340)}</p>\n<p>${"b".repeat(20)}</p>`;
  assert.equal(
    bioExcerpt(long),
    `${"a".repeat(340)}<br>\n${"b".repeat(9)}&hellip;`,
  );
  const exact = `<p>${"c".repeat(350)}</p>`;
  assert.equal(bioExcerpt(exact), "c".repeat(350));
  // An edit past the first 350 characters leaves the excerpt unchanged.
  assert.equal(
    bioExcerpt(`<p>${"d".repeat(400)}</p>`),
    bioExcerpt(`<p>${"d".repeat(380)}x</p>`),
  );
});

Deno.test("user cards: the same auth and admin rate limit as every route", async () => {
  let now = 0;
  await withDiscourse(
    forum({
      clock: () => now,
      rateLimit: { adminPerMinute: 2, ipPer10Seconds: 1000, ipPerMinute: 1000 },
    }),
    async (discourse) => {
      const anonymous = await api(discourse, "/user-cards.json?user_ids=10", {
        auth: false,
      });
      assert.equal(anonymous.status, 403);
      assert.deepEqual(anonymous.json(), invalidCredentials);
      assert.equal(
        (await api(discourse, "/user-cards.json?user_ids=10")).status,
        200,
      );
      assert.equal(
        (await api(discourse, "/groups/hist101/members.json")).status,
        200,
      );
      const limited = await api(discourse, "/user-cards.json?user_ids=10");
      assert.equal(limited.status, 429);
      assert.equal(
        limited.headers.get("discourse-rate-limit-error-code"),
        "admin_api_key_rate_limit",
      );
      assert.equal(limited.headers.get("retry-after"), "60");
      // A PUT to a group is refused by the same window.
      const write = await api(discourse, "/groups/41/members.json", {
        method: "PUT",
        form: { usernames: "dario" },
      });
      assert.equal(write.status, 429);
      assert.deepEqual(discourse.groupMembers("hist101"), [
        "ana",
        "carla",
        "owner.one",
      ]);
      now = 60_000;
      assert.equal(
        (await api(discourse, "/user-cards.json?user_ids=10")).status,
        200,
      );
    },
  );
});

Deno.test("groups: show by name (any case) or 404; automatic groups exist and say so", async () => {
  await withDiscourse(forum(), async (discourse) => {
    const shown = await api(discourse, "/groups/HIST101.json");
    assert.equal(shown.status, 200);
    const { group, extras } = shown.json();
    assert.equal(group.id, 41);
    assert.equal(group.name, "hist101");
    assert.equal(group.full_name, "History 101");
    assert.equal(group.automatic, false);
    assert.equal(group.user_count, 3);
    assert.ok(extras.visible_group_names.includes("trust_level_1"));
    const missing = await api(discourse, "/groups/nope.json");
    assert.equal(missing.status, 404);
    assert.deepEqual(missing.json(), notFound);
    const automatic = (await api(discourse, "/groups/trust_level_1.json"))
      .json().group;
    assert.equal(automatic.id, 11);
    assert.equal(automatic.automatic, true);
    const staff = (await api(discourse, "/groups/staff.json")).json().group;
    assert.equal(staff.id, 3);
    // boss and mod.erator; the system user (id -1) is not a human member.
    assert.equal(staff.user_count, 2);
    const anonymous = await api(discourse, "/groups/hist101.json", {
      auth: false,
    });
    assert.equal(anonymous.status, 403);
  });
});

Deno.test("groups: members page by limit (at most 1000) and offset, owners first, meta.total counts all", async () => {
  const many = Array.from(
    { length: 120 },
    (_, index) =>
      discourseUser(100 + index, `member${String(index).padStart(3, "0")}`),
  );
  await withDiscourse(
    forum({
      users: [...forum().users, ...many],
      groups: [{
        name: "big",
        members: many.map((user) => user.username),
        owners: ["ana"],
      }],
    }),
    async (discourse) => {
      const page = async (query: string) =>
        (await api(discourse, `/groups/big/members.json?${query}`)).json();
      const first = await page("limit=50&offset=0");
      assert.deepEqual(first.meta, { total: 121, limit: 50, offset: 0 });
      assert.equal(first.members.length, 50);
      // Owners first, then usernames descending unless asc is given.
      assert.equal(first.members[0].username, "ana");
      assert.equal(first.members[1].username, "member119");
      assert.deepEqual(
        first.owners.map((owner: { username: string }) => owner.username),
        ["ana"],
      );
      const ascending = await page("limit=2&asc=true");
      assert.deepEqual(
        ascending.members.map((member: { username: string }) =>
          member.username
        ),
        ["ana", "member000"],
      );
      const last = await page("limit=50&offset=100");
      assert.equal(last.members.length, 21);
      const seen = new Set<string>();
      for (let offset = 0; offset < first.meta.total; offset += 50) {
        for (
          const member of (await page(`limit=50&offset=${offset}`)).members
        ) {
          seen.add(member.username);
        }
      }
      assert.equal(
        seen.size,
        121,
        "paging until offset >= total sees everyone",
      );
      assert.equal((await page("")).meta.limit, 50, "default limit");
      assert.equal((await page("limit=1000")).members.length, 121);
      for (const bad of ["limit=1001", "limit=-1", "limit=ten", "offset=-5"]) {
        const refused = await api(discourse, `/groups/big/members.json?${bad}`);
        assert.equal(refused.status, 400, bad);
        assert.equal(refused.json().error_type, "invalid_parameters");
      }
      assert.equal(
        (await api(discourse, "/groups/none/members.json")).status,
        404,
      );
      // An automatic group lists its members; never the system user.
      const admins = (await api(discourse, "/groups/admins/members.json"))
        .json();
      assert.deepEqual(
        admins.members.map((member: { username: string }) => member.username),
        ["boss"],
      );
    },
  );
});

Deno.test("groups: PUT members adds by usernames (form or JSON), 422 when all are members, 1000 a call", async () => {
  await withDiscourse(forum(), async (discourse) => {
    const add = (
      body: { form?: Record<string, string>; json?: unknown },
      id = 41,
    ) =>
      api(discourse, `/groups/${id}/members.json`, { method: "PUT", ...body });
    const added = await add({ form: { usernames: "DARIO,ana" } });
    assert.equal(added.status, 200);
    assert.deepEqual(added.json(), {
      success: "OK",
      usernames: ["ana", "dario"],
      emails: [],
    });
    assert.deepEqual(discourse.groupMembers("hist101"), [
      "ana",
      "carla",
      "dario",
      "owner.one",
    ]);
    const again = await add({ json: { usernames: "dario,ana" } });
    assert.equal(again.status, 422);
    assert.deepEqual(again.json(), {
      errors: [
        "The following users are already members of this group: ana, dario",
      ],
    });
    const one = await add({ json: { usernames: "dario" } });
    assert.equal(one.status, 422);
    assert.match(one.json().errors[0], /'dario' is already a member/);
    // Split on "," only: " newbie" names nobody, so only known names count.
    const spaced = await add({ form: { usernames: "ana, newbie" } });
    assert.equal(spaced.status, 422, "ana alone is already a member");
    assert.equal(
      (await add({ form: { usernames: "ghost1,ghost2" } })).status,
      400,
    );
    assert.equal((await add({ form: {} })).status, 400);
    assert.equal(
      (await add({ form: { usernames: "carla" } }, 999)).status,
      404,
    );
    // user_ids and user_emails name users too; unknown ones are dropped.
    const byIds = await add({ json: { user_ids: "12,999" } });
    assert.deepEqual(byIds.json().usernames, ["newbie"]);
    const byEmail = await add({
      form: { user_emails: "BOSS@campus.example,nobody@x.example" },
    });
    assert.deepEqual(byEmail.json().usernames, ["boss"]);
    // A JSON array where Discourse splits a string: the real server crashes.
    const asArray = await add({ json: { usernames: ["mod.erator"] } });
    assert.equal(asArray.status, 500);
    assert.ok(!discourse.groupMembers("hist101").includes("mod.erator"));
    // The id is a number: a group name in its place is not found.
    const byName = await api(discourse, "/groups/hist101/members.json", {
      method: "PUT",
      form: { usernames: "dario" },
    });
    assert.equal(byName.status, 404);
  });
  const crowd = Array.from(
    { length: 1001 },
    (_, index) => discourseUser(1000 + index, `crowd${index}`),
  );
  await withDiscourse(
    forum({ users: [...forum().users, ...crowd] }),
    async (discourse) => {
      const names = crowd.map((user) => user.username);
      const tooMany = await api(discourse, "/groups/42/members.json", {
        method: "PUT",
        json: { usernames: names.join(",") },
      });
      assert.equal(tooMany.status, 422);
      assert.deepEqual(tooMany.json(), {
        errors: ["Maximum 1000 users can be added at once"],
      });
      assert.deepEqual(discourse.groupMembers("empty_group"), []);
      const thousand = await api(discourse, "/groups/42/members.json", {
        method: "PUT",
        json: { usernames: names.slice(0, 1000).join(",") },
      });
      assert.equal(thousand.status, 200);
      assert.equal(discourse.groupMembers("empty_group").length, 1000);
    },
  );
});

Deno.test("groups: DELETE members answers removed and skipped usernames; owners can be removed", async () => {
  await withDiscourse(forum(), async (discourse) => {
    const removed = await api(discourse, "/groups/41/members.json", {
      method: "DELETE",
      json: { usernames: "carla,dario,owner.one" },
    });
    assert.equal(removed.status, 200);
    assert.deepEqual(removed.json(), {
      success: "OK",
      usernames: ["carla", "owner.one"],
      skipped_usernames: ["dario"],
    });
    assert.deepEqual(discourse.groupMembers("hist101"), ["ana"]);
    assert.equal(discourse.groupByName("hist101")?.ownerIds.size, 0);
    const query = await api(
      discourse,
      "/groups/41/members.json?usernames=ana",
      {
        method: "DELETE",
      },
    );
    assert.deepEqual(query.json().usernames, ["ana"]);
    assert.equal(
      (await api(discourse, "/groups/41/members.json", {
        method: "DELETE",
        form: { usernames: "nobody" },
      })).status,
      400,
    );
    assert.equal(
      (await api(discourse, "/groups/41/members.json", { method: "DELETE" }))
        .status,
      400,
    );
    assert.equal(
      (await api(discourse, "/groups/77/members.json", {
        method: "DELETE",
        form: { usernames: "ana" },
      })).status,
      404,
    );
  });
});

Deno.test("groups: automatic groups cannot be written (403); owners may write their group, members may not", async () => {
  await withDiscourse(forum(), async (discourse) => {
    for (const method of ["PUT", "DELETE"]) {
      for (const id of [0, 1, 2, 3, 10, 11, 12, 13, 14]) {
        const refused = await api(discourse, `/groups/${id}/members.json`, {
          method,
          form: { usernames: "dario" },
        });
        assert.equal(refused.status, 403, `${method} group ${id}`);
        assert.deepEqual(refused.json().error_type, "invalid_access");
      }
    }
    const byOwner = await api(discourse, "/groups/41/members.json", {
      method: "PUT",
      form: { usernames: "dario" },
      auth: asUser("owner.one"),
    });
    assert.equal(byOwner.status, 200);
    const byMember = await api(discourse, "/groups/41/members.json", {
      method: "PUT",
      form: { usernames: "newbie" },
      auth: asUser("carla"),
    });
    assert.equal(byMember.status, 403);
    const byModerator = await api(discourse, "/groups/41/members.json", {
      method: "DELETE",
      form: { usernames: "dario" },
      auth: asUser("mod.erator"),
    });
    assert.equal(byModerator.status, 403);
    assert.ok(discourse.groupMembers("hist101").includes("dario"));
  });
});

Deno.test("groups: POST /admin/groups.json creates a group under the username rules and namespace", async () => {
  await withDiscourse(forum(), async (discourse) => {
    const create = (
      form: Record<string, string>,
      auth?: { key: string; user: string } | false,
    ) => api(discourse, "/admin/groups.json", { method: "POST", form, auth });
    const created = await create({
      "group[name]": "students_2026",
      "group[full_name]": "Students 2026",
      "group[visibility_level]": "2",
      "group[usernames]": "carla,Dario",
    });
    assert.equal(created.status, 200);
    const { basic_group } = created.json();
    assert.equal(basic_group.name, "students_2026");
    assert.equal(basic_group.visibility_level, 2);
    assert.equal(basic_group.automatic, false);
    // Admin::GroupsController matches these usernames case-sensitively.
    assert.deepEqual(discourse.groupMembers("students_2026"), ["carla"]);
    assert.equal(
      (await api(discourse, "/groups/students_2026.json")).json().group.id,
      basic_group.id,
    );
    const refusals: Array<[string, string]> = [
      ["ana", "Name has already been taken"],
      ["STAFF", "Name has already been taken"],
      ["Students_2026", "Name has already been taken"],
      ["ab", "Name must be at least 3 characters"],
      [
        "bad name",
        "Name must only include numbers, letters, dashes, dots, and underscores",
      ],
      [
        "report.json",
        "Name must not end with a confusing suffix like .json or .png etc.",
      ],
    ];
    for (const [name, message] of refusals) {
      const refused = await create({ "group[name]": name });
      assert.equal(refused.status, 422, name);
      assert.deepEqual(refused.json(), { errors: [message] }, name);
    }
    const badLevel = await create({
      "group[name]": "levelled",
      "group[visibility_level]": "9",
    });
    assert.equal(badLevel.status, 422);
    assert.equal(
      (await create({ name: "flat" })).status,
      400,
      "group[...] needed",
    );
    // A group name is taken for usernames too.
    const clash = await api(discourse, "/users.json", {
      method: "POST",
      json: { username: "students_2026", email: "s@campus.example" },
    });
    assert.deepEqual(clash.json().errors.username, ["must be unique"]);
    assert.equal(
      (await create({ "group[name]": "by_mod" }, asUser("mod.erator"))).status,
      403,
    );
    assert.equal(
      (await create({ "group[name]": "by_member" }, asUser("carla"))).status,
      404,
      "admin routes hide from non-staff",
    );
    assert.equal((await create({ "group[name]": "anon" }, false)).status, 404);
    assert.equal(discourse.groupByName("by_mod"), undefined);
  });
});

Deno.test("suspensions: suspend_until and reason required, reason <= 300, 409 when suspended, 403 for staff", async () => {
  await withDiscourse(forum(), async (discourse) => {
    const suspend = (id: number, json: Record<string, unknown>) =>
      api(discourse, `/admin/users/${id}/suspend.json`, {
        method: "PUT",
        json,
      });
    const missing = await suspend(15, {});
    assert.equal(missing.status, 400);
    assert.deepEqual(missing.json(), {
      failed: "FAILED",
      errors: ["Reason can't be blank", "Suspend until can't be blank"],
    });
    assert.equal(
      (await suspend(15, { reason: "x", suspend_until: "someday" })).status,
      400,
      "a date that does not parse is a missing date",
    );
    const long = await suspend(15, {
      reason: "r".repeat(301),
      suspend_until: "3000-01-01",
    });
    assert.deepEqual(long.json().errors, [
      "Reason is too long (maximum is 300 characters)",
    ]);
    assert.equal(discourse.users.get(15)?.suspended_till, undefined);
    assert.equal(
      (await suspend(999, {})).status,
      404,
      "the user is found first",
    );

    const done = await suspend(15, {
      reason: "é".repeat(300),
      suspend_until: "3000-01-01",
    });
    assert.equal(done.status, 200);
    const { suspension } = done.json();
    assert.equal(suspension.suspended_till, "3000-01-01T00:00:00.000Z");
    assert.equal(suspension.suspend_reason, "é".repeat(300));
    assert.equal(suspension.suspended_by.username, "system");
    assert.equal(typeof suspension.suspended_at, "string");
    assert.deepEqual(discourse.suspensionEmails, [], "no message, no email");

    const twice = await suspend(15, {
      reason: "again",
      suspend_until: "3000-01-01",
    });
    assert.equal(twice.status, 409);
    assert.equal(twice.json().failed, "FAILED");
    assert.equal(typeof twice.json().message, "string");

    for (const staff of [13, 14]) {
      const refused = await suspend(staff, {
        reason: "no",
        suspend_until: "3000-01-01",
      });
      assert.equal(refused.status, 403);
      assert.equal(refused.json().error_type, "invalid_access");
    }
    await suspend(16, {
      reason: "left",
      suspend_until: "3000-01-01",
      message: "Your account was closed",
    });
    assert.deepEqual(discourse.suspensionEmails, [{
      username: "dario",
      message: "Your account was closed",
    }]);
    const viaPost = await api(discourse, "/admin/users/16/suspend.json", {
      method: "POST",
      json: { reason: "x", suspend_until: "3000-01-01" },
    });
    assert.equal(viaPost.status, 404, "PUT only");
    const byMember = await api(discourse, "/admin/users/17/suspend.json", {
      method: "PUT",
      json: { reason: "x", suspend_until: "3000-01-01" },
      auth: asUser("carla"),
    });
    assert.equal(byMember.status, 404);
  });
});

Deno.test("suspensions: the state shows in the admin list, the user JSON and cards; unsuspend lifts it", async () => {
  await withDiscourse(forum(), async (discourse) => {
    await api(discourse, "/admin/users/15/suspend.json", {
      method: "PUT",
      form: { reason: "Account closed in Moodle", suspend_until: "3000-01-01" },
    });
    const row = (await api(
      discourse,
      "/admin/users/list/suspended.json?show_emails=true",
    )).json();
    assert.deepEqual(row.map((user: { id: number }) => user.id), [15]);
    assert.equal(row[0].suspended_till, "3000-01-01T00:00:00.000Z");
    assert.equal(typeof row[0].suspended_at, "string");
    const user = (await api(discourse, "/u/carla.json")).json().user;
    assert.equal(user.suspended_till, "3000-01-01T00:00:00.000Z");
    assert.equal(user.suspend_reason, "Account closed in Moodle");
    const card = (await api(discourse, "/user-cards.json?user_ids=15")).json()
      .users[0];
    assert.equal(card.suspended_till, "3000-01-01T00:00:00.000Z");
    // Other members do not see why.
    const seenByPeer = (await api(discourse, "/u/carla.json", {
      auth: asUser("dario"),
    })).json().user;
    assert.equal("suspend_reason" in seenByPeer, false);
    assert.equal(seenByPeer.suspended_till, "3000-01-01T00:00:00.000Z");

    const lifted = await api(discourse, "/admin/users/15/unsuspend.json", {
      method: "PUT",
    });
    assert.equal(lifted.status, 200);
    assert.deepEqual(lifted.json(), {
      suspension: { suspended_till: null, suspended_at: null },
    });
    assert.equal(
      "suspended_till" in (await api(discourse, "/u/carla.json")).json().user,
      false,
    );
    assert.equal(
      "suspended_till" in
        (await api(discourse, "/user-cards.json?user_ids=15")).json().users[0],
      false,
    );
    assert.deepEqual(
      (await api(discourse, "/admin/users/list/suspended.json")).json(),
      [],
    );
    assert.equal(
      (await api(discourse, "/admin/users/13/unsuspend.json", {
        method: "PUT",
      }))
        .status,
      403,
    );
    assert.equal(
      (await api(discourse, "/admin/users/404/unsuspend.json", {
        method: "PUT",
      }))
        .status,
      404,
    );
  });
});

Deno.test("latency: every answer waits the configured time; it can be changed while running", async () => {
  await withDiscourse(forum({ latencyMs: 400 }), async (discourse) => {
    await assert.rejects(
      fetch(`${discourse.url}/groups/hist101.json`, {
        headers: { "api-key": "k3y", "api-username": "system" },
        signal: AbortSignal.timeout(25),
      }),
    );
    discourse.setLatency(0);
    assert.equal((await api(discourse, "/groups/hist101.json")).status, 200);
    assert.throws(() => discourse.setLatency(-1), RangeError);
  });
  await withMoodle(
    { token: "t", users: [], latencyMs: 400 },
    async (moodle) => {
      await assert.rejects(
        fetch(moodle.endpoint, {
          method: "POST",
          body: new URLSearchParams({ wstoken: "t" }),
          signal: AbortSignal.timeout(25),
        }),
      );
      moodle.setLatency(0);
      assert.equal((await callMoodle(moodle, {})).status, 200);
    },
  );
});

// ---------------------------------------------------------------------------
// Moodle

const campus = (overrides: Partial<MoodleScenario> = {}): MoodleScenario => ({
  token: "t0ken",
  allowedFunctions: [...groupSyncFunctions, "core_user_get_users"],
  users: withGuest([
    moodleUser(2, "admin", { firstname: "Admin", lastname: "User" }),
    moodleUser(3, "zoe", { firstname: "Zoe", lastname: "Abad" }),
    moodleUser(4, "bea", { firstname: "Bea", lastname: "Zubia" }),
    moodleUser(5, "alba", { firstname: "Alba", lastname: "Abad" }),
    moodleUser(6, "gone", { deleted: 1 }),
    moodleUser(7, "sus", { suspended: true }),
  ]),
  cohorts: [
    {
      id: 5,
      name: "Students 2026",
      idnumber: "students-2026",
      members: [4, 3, 5, 6],
    },
    { id: 7, name: "Staff", members: [2] },
  ],
  courses: [
    {
      id: 12,
      shortname: "HIST101",
      fullname: "History 101",
      idnumber: "H-101",
      enrolments: [
        { userid: 4, roles: ["student"] },
        { userid: 3, roles: ["editingteacher"] },
        { userid: 5, roles: ["student"], status: "suspended" },
        { userid: 7, roles: ["student", "tutor"] },
        { userid: 6 },
      ],
    },
    {
      id: 13,
      shortname: "SECRET",
      visible: false,
      accessible: false,
      enrolments: [],
    },
    { id: 14, shortname: "PUBLIC", accessible: false, enrolments: [] },
  ],
  ...overrides,
});

const call = (
  wsfunction: string,
  params: Record<string, string> = {},
) => ({ wsfunction, ...params });

Deno.test("moodle cohorts: all or by id, idnumber always present, members by cohort in Moodle's order", async () => {
  await withMoodle(campus(), async (moodle) => {
    const all = await moodleJson(moodle, call("core_cohort_get_cohorts"));
    assert.ok(Array.isArray(all), "a bare array");
    assert.deepEqual(all.map((cohort: { id: number }) => cohort.id), [5, 7]);
    assert.deepEqual(all[1], {
      id: 7,
      name: "Staff",
      idnumber: "",
      description: "",
      descriptionformat: 1,
      visible: true,
    });
    const some = await moodleJson(
      moodle,
      call("core_cohort_get_cohorts", {
        "cohortids[0]": "7",
        "cohortids[1]": "99",
      }),
    );
    assert.deepEqual(some.map((cohort: { id: number }) => cohort.id), [7]);
    const members = await moodleJson(
      moodle,
      call("core_cohort_get_cohort_members", {
        "cohortids[0]": "5",
        "cohortids[1]": "7",
      }),
    );
    // ORDER BY lastname, firstname; deleted users are no members.
    assert.deepEqual(members, [
      { cohortid: 5, userids: [5, 3, 4] },
      { cohortid: 7, userids: [2] },
    ]);
    const unknown = await moodleJson(
      moodle,
      call("core_cohort_get_cohort_members", { "cohortids[0]": "99" }),
    );
    assert.equal(unknown.errorcode, "invalidrecord");
    const none = await moodleJson(
      moodle,
      call("core_cohort_get_cohort_members"),
    );
    assert.equal(none.errorcode, "invalidparameter");
  });
});

Deno.test("moodle courses: by shortname -> {courses, warnings}; a course outside the token's reach shows public fields or nothing", async () => {
  await withMoodle(campus(), async (moodle) => {
    const byField = (field: string, value: string) =>
      moodleJson(
        moodle,
        call("core_course_get_courses_by_field", { field, value }),
      );
    const hist = await byField("shortname", "HIST101");
    assert.equal(hist.courses.length, 1);
    assert.deepEqual(hist.warnings, []);
    assert.equal(hist.courses[0].id, 12);
    assert.equal(hist.courses[0].fullname, "History 101");
    assert.equal(hist.courses[0].idnumber, "H-101");
    assert.deepEqual((await byField("shortname", "hist101")).courses, []);
    assert.deepEqual((await byField("shortname", "SECRET")).courses, []);
    const outside = (await byField("shortname", "PUBLIC")).courses[0];
    assert.equal(outside.id, 14);
    assert.equal("idnumber" in outside, false);
    assert.equal("visible" in outside, false);
    const bad = await byField("name", "x");
    assert.equal(bad.errorcode, "invalidparameter");
  });
});

Deno.test("moodle enrolments: roles with shortnames, onlyactive drops suspended enrolments, paging, no suspended field", async () => {
  await withMoodle(campus(), async (moodle) => {
    const enrolled = (options: Array<[string, string]> = [], courseid = "12") =>
      moodleJson(
        moodle,
        call("core_enrol_get_enrolled_users", {
          courseid,
          ...Object.fromEntries(
            options.flatMap(([name, value], index) => [
              [`options[${index}][name]`, name],
              [`options[${index}][value]`, value],
            ]),
          ),
        }),
      );
    const everyone = await enrolled();
    assert.deepEqual(everyone.map((user: { id: number }) => user.id), [
      3,
      4,
      5,
      7,
    ]);
    const teacher = everyone[0];
    assert.equal(teacher.username, "zoe");
    assert.deepEqual(teacher.roles, [{
      roleid: 3,
      name: "",
      shortname: "editingteacher",
      sortorder: 3,
    }]);
    assert.deepEqual(teacher.groups, []);
    const suspendedUser = everyone[3];
    assert.equal("suspended" in suspendedUser, false);
    assert.deepEqual(
      suspendedUser.roles.map((role: { shortname: string }) => role.shortname),
      ["student", "tutor"],
    );
    assert.equal(
      suspendedUser.roles[1].name,
      "tutor",
      "custom roles have a name",
    );
    const active = await enrolled([["onlyactive", "1"]]);
    assert.deepEqual(active.map((user: { id: number }) => user.id), [3, 4, 7]);
    // PHP's empty(): "0" is off, "false" is on.
    assert.equal((await enrolled([["onlyactive", "0"]])).length, 4);
    assert.equal((await enrolled([["onlyactive", "false"]])).length, 3);
    const paged = await enrolled([["limitfrom", "1"], ["limitnumber", "2"]]);
    assert.deepEqual(paged.map((user: { id: number }) => user.id), [4, 5]);
    const narrow = await enrolled([["userfields", "username, roles"]]);
    assert.deepEqual(Object.keys(narrow[0]).sort(), [
      "id",
      "roles",
      "username",
    ]);
    assert.equal((await enrolled([], "99")).errorcode, "invalidrecord");
    const outside = await enrolled([], "14");
    assert.equal(outside.errorcode, "errorcoursecontextnotvalid");
    // The site course still lists every user.
    assert.equal((await enrolled([], "1")).length, 6);
  });
});

Deno.test("moodle: a token without the capability gets nopermissions, one without the function accessexception", async () => {
  await withMoodle(
    campus({
      withoutCapabilities: ["moodle/cohort:view", "moodle/course:enrolreview"],
    }),
    async (moodle) => {
      for (
        const params of [
          call("core_cohort_get_cohorts"),
          call("core_cohort_get_cohort_members", { "cohortids[0]": "5" }),
        ]
      ) {
        assert.deepEqual(await moodleJson(moodle, params), {
          exception: "required_capability_exception",
          errorcode: "nopermissions",
          message:
            "Sorry, but you do not currently have permissions to do that (View site-wide cohorts).",
        });
      }
      const active = await moodleJson(
        moodle,
        call("core_enrol_get_enrolled_users", {
          courseid: "12",
          "options[0][name]": "onlyactive",
          "options[0][value]": "1",
        }),
      );
      assert.equal(active.errorcode, "nopermissions");
      assert.match(active.message, /Review course enrolments/);
      const plain = await moodleJson(
        moodle,
        call("core_enrol_get_enrolled_users", { courseid: "12" }),
      );
      assert.equal(plain.length, 4, "without onlyactive the list still comes");
    },
  );
  await withMoodle(
    campus({ withoutCapabilities: ["moodle/course:viewparticipants"] }),
    async (moodle) => {
      const denied = await moodleJson(
        moodle,
        call("core_enrol_get_enrolled_users", { courseid: "12" }),
      );
      assert.equal(denied.errorcode, "nopermissions");
      assert.match(denied.message, /View participants/);
    },
  );
  // The default service has only the two user lookups.
  await withMoodle(campus({ allowedFunctions: undefined }), async (moodle) => {
    for (const wsfunction of groupSyncFunctions) {
      const refused = await moodleJson(moodle, call(wsfunction));
      assert.equal(refused.errorcode, "accessexception", wsfunction);
    }
    const { status } = await callMoodle(
      moodle,
      call("core_cohort_get_cohorts"),
    );
    assert.equal(status, 200, "an exception still travels as HTTP 200");
  });
});

Deno.test("demo scenario: a cohort and a course in Moodle, their groups in the forum", async () => {
  const demo = demoScenario();
  const { groups } = demoCases;
  const moodle = await startFakeMoodle(demo.moodle);
  const discourse = await startFakeDiscourse(demo.discourse);
  try {
    const cohorts = await moodleJson(moodle, call("core_cohort_get_cohorts"));
    const cohort = cohorts.find((candidate: { idnumber: string }) =>
      candidate.idnumber === groups.cohort.idnumber
    );
    assert.equal(cohort.name, groups.cohort.name);
    const [{ userids }] = await moodleJson(
      moodle,
      call("core_cohort_get_cohort_members", { "cohortids[0]": cohort.id }),
    );
    const { users } = await moodleJson(moodle, {
      wsfunction: "core_user_get_users",
      "criteria[0][key]": "email",
      "criteria[0][value]": "%",
    });
    const usernameOf = new Map(
      users.map((user: { id: number; username: string }) => [
        user.id,
        user.username,
      ]),
    );
    const cohortMembers = userids.map((id: number) => usernameOf.get(id));
    assert.ok(cohortMembers.includes("emma.wilson"));
    assert.ok(!cohortMembers.includes(groups.staleMember));
    assert.ok(!cohortMembers.includes(groups.owner));

    const { courses } = await moodleJson(
      moodle,
      call("core_course_get_courses_by_field", {
        field: "shortname",
        value: groups.course.shortname,
      }),
    );
    assert.equal(courses.length, 1);
    const enrolled = async (onlyActive: string) =>
      (await moodleJson(
        moodle,
        call("core_enrol_get_enrolled_users", {
          courseid: String(courses[0].id),
          "options[0][name]": "onlyactive",
          "options[0][value]": onlyActive,
        }),
      )).map((user: { username: string }) => user.username);
    assert.ok((await enrolled("0")).includes(groups.suspendedEnrolment));
    const active = await enrolled("1");
    assert.ok(!active.includes(groups.suspendedEnrolment));
    assert.ok(active.includes(groups.teacher));

    const cohortGroup = (await api(
      discourse,
      `/groups/${groups.cohort.group}/members.json?limit=1000`,
    )).json();
    const memberNames = cohortGroup.members.map((member: {
      username: string;
    }) => member.username);
    assert.ok(memberNames.includes(groups.staleMember));
    assert.deepEqual(
      cohortGroup.owners.map((owner: { username: string }) => owner.username),
      [groups.owner],
    );
    assert.equal(
      (await api(discourse, `/groups/${groups.course.group}.json`)).status,
      200,
    );
  } finally {
    await moodle.close();
    await discourse.close();
  }
});
