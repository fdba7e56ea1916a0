import assert from "node:assert/strict";
import { discourseUser, moodleUser } from "../doubles/scenarios.ts";
import { byMoodleId, lastLog, withWorld, writes } from "../support/world.ts";

const system = discourseUser(-1, "system", { admin: true });

const profilePuts = (world: Parameters<Parameters<typeof withWorld>[1]>[0]) =>
  writes(world).filter((r) =>
    r.method === "PUT" && /^\/u\/[^/]+\.json$/.test(r.path)
  );

Deno.test("field policies: fill-empty only fills, off never writes, overwrite replaces", async () => {
  await withWorld({
    moodleUsers: [
      moodleUser(2, "ada", {
        firstname: "Ada",
        lastname: "Lovelace",
        city: "London",
        country: "GB",
        description: "Mathematician",
        descriptionformat: 2,
        email: "ada@new.example",
      }),
    ],
    forumUsers: [
      system,
      discourseUser(2, "ada", {
        name: "Ada L.",
        location: "",
        bio_raw: "Old bio",
        email: "ada@old.example",
      }),
    ],
    settings: {
      fields: {
        name: "fill-empty",
        location: "fill-empty",
        bio: "overwrite",
        email: "off",
      },
    },
  }, async (world) => {
    const result = await world.engine(["--all", "--apply"]);
    assert.equal(result.code, 0, result.stderr);
    const ada = world.discourse.userByUsername("ada");
    assert.equal(ada?.name, "Ada L."); // not empty: kept
    assert.equal(ada?.location, "London, GB"); // empty: filled
    assert.equal(ada?.bio_raw, "Mathematician"); // overwritten
    assert.equal(ada?.email, "ada@old.example"); // off
    assert.equal(world.discourse.emailChangeRequests.length, 0);
    const row = byMoodleId((await lastLog(world)).rows).get(2);
    assert.equal(row?.fields, "location;bio");
    assert.deepEqual(JSON.parse(row?.before ?? ""), {
      location: "",
      bio: "Old bio",
    });
  });
});

Deno.test("a site with names disabled: the name is skipped with the reason, the rest is written", async () => {
  await withWorld({
    moodleUsers: [
      moodleUser(2, "bea", {
        firstname: "Beatriz",
        lastname: "Sol",
        city: "Quito",
        country: "EC",
      }),
    ],
    forumUsers: [system, discourseUser(2, "bea", { name: "B" })],
    discourse: { site: { enableNames: false } },
  }, async (world) => {
    const result = await world.engine(["--all", "--apply"]);
    assert.equal(result.code, 0, result.stderr);
    const [put] = profilePuts(world);
    assert.deepEqual(Object.keys(JSON.parse(put.body)), ["location"]);
    const row = byMoodleId((await lastLog(world)).rows).get(2);
    assert.equal(row?.status, "SUCCESS");
    assert.equal(row?.fields, "location");
    assert.match(row?.message ?? "", /name skipped: .*can_edit_name/);
  });
});

Deno.test("--force-recreate re-sends every enabled field of existing users and verifies them", async () => {
  const moodle = [
    moodleUser(2, "carla", {
      firstname: "Carla",
      lastname: "Rossi",
      city: "Roma",
      country: "IT",
      description: "<p>Ciao</p>",
      descriptionformat: 1,
    }),
  ];
  const forum = [
    system,
    discourseUser(2, "carla", {
      name: "Carla Rossi",
      location: "Roma, IT",
      bio_raw: "Ciao",
      email: "carla@campus.example",
    }),
  ];
  await withWorld(
    { moodleUsers: moodle, forumUsers: forum },
    async (world) => {
      const plain = await world.engine(["--all", "--apply"]);
      assert.equal(plain.code, 0, plain.stderr);
      assert.equal(profilePuts(world).length, 0);
      assert.equal(
        byMoodleId((await lastLog(world)).rows).get(2)?.status,
        "EXISTS",
      );

      const forced = await world.engine([
        "--all",
        "--apply",
        "--force-recreate",
      ]);
      assert.equal(forced.code, 0, forced.stderr);
      // Re-sent values are shown as such, not as a change to themselves.
      assert.match(
        forced.stdout,
        /name: 'Carla Rossi' \(unchanged, re-sent\)/,
      );
      assert.doesNotMatch(forced.stdout, /→/);
      const puts = profilePuts(world);
      assert.equal(puts.length, 1);
      assert.deepEqual(JSON.parse(puts[0].body), {
        name: "Carla Rossi",
        location: "Roma, IT",
        bio_raw: "Ciao",
      });
      // The email is equal: no confirmation mail is sent again.
      assert.equal(world.discourse.emailChangeRequests.length, 0);
      const row = byMoodleId((await lastLog(world)).rows).get(2);
      assert.equal(row?.status, "SUCCESS");
      assert.equal(row?.fields, "name;location;bio");
    },
  );
});

Deno.test("country names in the configured language, and an exclusion file", async () => {
  const dir = await Deno.makeTempDir();
  const exclusionFile = `${dir}/excluded_users.txt`;
  await Deno.writeTextFile(
    exclusionFile,
    "# staff accounts\nDoris   # trailing comment\n\n",
  );
  try {
    await withWorld({
      moodleUsers: [
        moodleUser(2, "doris", { city: "Lima", country: "PE" }),
        moodleUser(3, "elena", { city: "Lima", country: "PE" }),
      ],
      forumUsers: [
        system,
        discourseUser(2, "doris", {}),
        discourseUser(3, "elena", {}),
      ],
      settings: {
        location: { country: "name", locale: "es" },
        exclude: { usernames: [], file: exclusionFile },
      },
    }, async (world) => {
      const result = await world.engine(["--all", "--apply"]);
      assert.equal(result.code, 0, result.stderr);
      assert.equal(
        world.discourse.userByUsername("elena")?.location,
        "Lima, Perú",
      );
      assert.equal(world.discourse.userByUsername("doris")?.location ?? "", "");
      const rows = byMoodleId((await lastLog(world)).rows);
      assert.equal(rows.get(2)?.status, "EXCLUDED");
      assert.match(rows.get(2)?.message ?? "", /doris/i);
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a missing exclusion file is a settings error before anything is contacted, and is not created", async () => {
  const missing = `${await Deno.makeTempDir()}/nope/excluded_users.txt`;
  await withWorld({
    moodleUsers: [moodleUser(2, "fabio")],
    forumUsers: [system, discourseUser(2, "fabio", {})],
    settings: { exclude: { file: missing } },
  }, async (world) => {
    const result = await world.engine(["--all", "--apply"]);
    assert.equal(result.code, 2, result.stderr);
    assert.match(
      result.stderr,
      /exclude\.file: found ".*excluded_users\.txt": no such file, expected an existing file of usernames/,
    );
    assert.equal(world.moodle.requestCount(), 0);
    assert.equal(world.discourse.requestCount(), 0);
    await assert.rejects(() => Deno.stat(missing));
    await assert.rejects(() => lastLog(world));
  });
});

Deno.test("a value Discourse would refuse is caught before sending, for that user only", async () => {
  await withWorld({
    moodleUsers: [
      moodleUser(2, "gina", {
        description: "x".repeat(3001),
        descriptionformat: 2,
      }),
      moodleUser(3, "hugo", { city: "Oslo", country: "NO" }),
    ],
    forumUsers: [
      system,
      discourseUser(2, "gina", {}),
      discourseUser(3, "hugo", {}),
    ],
  }, async (world) => {
    const result = await world.engine(["--all", "--apply"]);
    assert.equal(result.code, 1);
    const rows = byMoodleId((await lastLog(world)).rows);
    assert.equal(rows.get(2)?.action, "ERROR");
    assert.match(rows.get(2)?.message ?? "", /bio is 3001 characters.*3000/);
    assert.equal(rows.get(3)?.status, "SUCCESS");
    assert.equal(profilePuts(world).length, 1);
  });
});
