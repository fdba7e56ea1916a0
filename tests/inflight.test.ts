// Work in flight (issue 15): by default a run keeps as many users going as
// the limit and the forum's latency need, `concurrency` still bounds it, and
// the admin list's emails are read alongside the profiles, not before them.
import assert from "node:assert/strict";
import { discourseUser, moodleUser, withGuest } from "./doubles/scenarios.ts";
import type { RecordedRequest } from "./doubles/http.ts";
import { lastLog, withWorld } from "./support/world.ts";

const population = (count: number) => {
  const usernames = Array.from({ length: count }, (_, i) => `member${i + 1}`);
  return {
    moodleUsers: withGuest(
      usernames.map((username, i) => moodleUser(i + 2, username)),
    ),
    forumUsers: usernames.map((username, i) => discourseUser(i + 10, username)),
  };
};

const profileRead = (request: RecordedRequest) =>
  request.method === "GET" && /^\/u\/[^/]+\.json$/.test(request.path);
const listPage = (request: RecordedRequest) =>
  request.path.startsWith("/admin/users/list/");

/**
 * The most requests that arrived within `spanMs` of each other. Each takes
 * the double's latency, longer than the span, so all of them were in flight
 * together.
 */
const mostArrivingWithin = (
  requests: ReadonlyArray<RecordedRequest>,
  spanMs: number,
) => {
  const times = requests.map((request) => request.at).sort((a, b) => a - b);
  let most = 0;
  let first = 0;
  for (let last = 0; last < times.length; last++) {
    while (times[last] - times[first] > spanMs) first++;
    most = Math.max(most, last - first + 1);
  }
  return most;
};

Deno.test("the admin list's emails are read alongside the profile reads, and every email still comes from it", async () => {
  // Six pages: the reader asks for four at once, the rest as those come in.
  const { moodleUsers, forumUsers } = population(600);
  await withWorld({ moodleUsers, forumUsers }, async (world) => {
    const result = await world.run(["--all"]);
    assert.equal(result.code, 0, result.stderr);
    const requests = world.discourse.requests;
    const firstProfile = requests.findIndex(profileRead);
    const lastPage = requests.findLastIndex(listPage);
    // Every page the list has, and not one past its end: the first short
    // page ends it.
    const accounts = world.discourse.users.size;
    assert.equal(
      requests.filter(listPage).length,
      Math.floor(accounts / 100) + 1,
    );
    assert.ok(
      firstProfile !== -1 && firstProfile < lastPage,
      `first profile read at ${firstProfile}, last list page at ${lastPage}`,
    );
    // A user whose page was not in yet waited for it: no email was read
    // one by one, and every user is up to date.
    assert.equal(
      requests.filter((r) => r.path.endsWith("/emails.json")).length,
      0,
    );
    const rows = (await lastLog(world)).rows.filter((row) =>
      row.action !== "EXCLUDE"
    );
    assert.equal(rows.length, 600);
    assert.ok(rows.every((row) => row.status === "EXISTS"));
  });
});

Deno.test("by default a slow forum gets more users at once than the old fixed 4; concurrency still bounds them", async () => {
  const { moodleUsers, forumUsers } = population(120);
  const latencyMs = 300;
  for (const concurrency of [undefined, 2]) {
    await withWorld({
      moodleUsers,
      forumUsers,
      discourse: { latencyMs },
      settings: {
        fields: { email: "off" },
        ...(concurrency === undefined ? {} : { concurrency }),
      },
    }, async (world) => {
      const result = await world.run(["--all"]);
      assert.equal(result.code, 0, result.stderr);
      const together = mostArrivingWithin(
        world.discourse.requests.filter(profileRead),
        latencyMs / 2,
      );
      if (concurrency === undefined) {
        assert.ok(together > 4, `${together} requests in flight at most`);
      } else {
        assert.ok(
          together <= concurrency,
          `${together} requests in flight with concurrency ${concurrency}`,
        );
      }
    });
  }
});
