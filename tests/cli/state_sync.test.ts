// The state store in real runs (issue 12): the CLI as a subprocess against
// the doubles, nights apart, with Moodle and the forum changing in between.
import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { discourseUser, moodleUser } from "../doubles/scenarios.ts";
import { fileBytes } from "../support/state.ts";
import {
  forumWrites,
  profileReads,
  type StateWorld,
  withStateWorld,
} from "../support/stateWorld.ts";

const admin = discourseUser(-1, "system", { admin: true });

/** Three users, all in step on both sides: a first run writes nothing. */
const inStep = () => ({
  moodleUsers: [
    moodleUser(2, "ada", { city: "Paris", country: "FR" }),
    moodleUser(3, "bob", {}),
    moodleUser(4, "cyd", {}),
  ],
  forumUsers: [
    admin,
    discourseUser(12, "ada", { location: "Paris, FR" }),
    discourseUser(13, "bob", {}),
    discourseUser(14, "cyd", {}),
  ],
});

const rowsOf = (run: { readonly stdout: string }) =>
  run.stdout.split("\n").filter((line) => line !== "").map((line) =>
    JSON.parse(line)
  );

const paths = (world: { readonly requests: ReadonlyArray<{ path: string }> }) =>
  world.requests.map((r) => r.path);

/** The first --apply run: full reads, then every user remembered. */
const firstApply = async (world: StateWorld) => {
  const first = await world.run(["--all", "--apply"]);
  assert.equal(first.code, 0, first.stderr);
  assert.equal(first.summary.reads.mode, "full");
  return first;
};

Deno.test("state: a first run without a store reads every profile and writes the store; the next run reads none and writes nothing", async () => {
  await withStateWorld(inStep(), async (world) => {
    const first = await firstApply(world);
    assert.match(first.summary.reads.why ?? "", /knows no user of this forum/);
    assert.equal(profileReads(first.requests).length, 3);
    assert.equal(first.summary.reads.single_profile_reads, 3);
    assert.equal(first.summary.reads.store_updated, 3);
    assert.equal((await Deno.stat(world.statePath)).mode! & 0o777, 0o600);
    const entries = await world.entries();
    assert.deepEqual(
      [...entries.values()].map((
        e,
      ) => [e.moodleId, e.moodleUsername, e.forumId, e.forumUsername]),
      [[2, "ada", 12, "ada"], [3, "bob", 13, "bob"], [4, "cyd", 14, "cyd"]],
    );
    assert.equal(entries.get(2)?.snapshot.location, "Paris, FR");

    const second = await world.run(["--all", "--apply"]);
    assert.equal(second.code, 0, second.stderr);
    assert.equal(second.summary.reads.mode, "state-assisted");
    assert.deepEqual(profileReads(second.requests), []);
    assert.deepEqual(forumWrites(second.requests), []);
    assert.equal(second.summary.reads.unchanged, 3);
    assert.deepEqual(second.summary.counts, { "UPDATE/EXISTS": 3 });
  });
});

Deno.test("state: a Moodle-side change reads and writes only that user; the audit row's before is the forum's", async () => {
  await withStateWorld(inStep(), async (world) => {
    await firstApply(world);
    world.moodleUsers[0] = moodleUser(2, "ada", {
      city: "Lyon",
      country: "FR",
    });
    const run = await world.run(["--all", "--apply"]);
    assert.equal(run.code, 0, run.stderr);
    assert.deepEqual(profileReads(run.requests).map((r) => r.path), [
      "/u/ada.json",
    ]);
    assert.deepEqual(forumWrites(run.requests).map((r) => r.path), [
      "/u/ada.json",
    ]);
    assert.equal(world.discourse.userByUsername("ada")?.location, "Lyon, FR");
    const row = rowsOf(run)
      .find((line) => line.normalized_username === "ada");
    assert.equal(JSON.parse(row.before).location, "Paris, FR");
    assert.equal((await world.entries()).get(2)?.snapshot.location, "Lyon, FR");
    const next = await world.run(["--all", "--apply"]);
    assert.deepEqual(profileReads(next.requests), []);
    assert.deepEqual(forumWrites(next.requests), []);
  });
});

Deno.test("state: a forum-side edit is seen in the bulk reads, read in full and handled by the field policy", async () => {
  for (const policy of ["overwrite", "fill-empty"] as const) {
    await withStateWorld({
      ...inStep(),
      settings: {
        fields: { name: policy, location: "overwrite", bio: "overwrite" },
      },
    }, async (world) => {
      await firstApply(world);
      world.discourse.userByUsername("bob")!.name = "Bobby Tables";
      const run = await world.run(["--all", "--apply"]);
      assert.equal(run.code, 0, run.stderr);
      assert.equal(run.summary.reads.forum_changed, 1, policy);
      assert.deepEqual(profileReads(run.requests).map((r) => r.path), [
        "/u/bob.json",
      ]);
      const row = rowsOf(run)
        .find((line) => line.normalized_username === "bob");
      assert.match(row.message, /the forum's name changed since the last run/);
      assert.equal(
        world.discourse.userByUsername("bob")?.name,
        policy === "overwrite" ? "Bob" : "Bobby Tables",
      );
      assert.equal(
        forumWrites(run.requests).length,
        policy === "overwrite" ? 1 : 0,
      );
      // Either way the store now knows the forum as it is: no read next time.
      const next = await world.run(["--all", "--apply"]);
      assert.deepEqual(profileReads(next.requests), [], policy);
    });
  }
});

Deno.test("state: an edit past the bio's 350-character excerpt is not seen by an assisted run, and --full finds and rewrites it", async () => {
  const bio = `${"Historian of the Mediterranean. ".repeat(14)}Ends here.`;
  assert.ok(bio.length > 400);
  await withStateWorld({
    moodleUsers: [
      moodleUser(2, "ada", { description: bio, descriptionformat: 2 }),
    ],
    forumUsers: [admin, discourseUser(12, "ada", { bio_raw: bio })],
  }, async (world) => {
    await firstApply(world);
    const edited = bio.replace("Ends here.", "Edited on the forum.");
    world.discourse.userByUsername("ada")!.bio_raw = edited;
    const assisted = await world.run(["--all", "--apply"]);
    assert.equal(assisted.summary.reads.mode, "state-assisted");
    assert.deepEqual(profileReads(assisted.requests), []);
    assert.equal(world.discourse.userByUsername("ada")?.bio_raw, edited);
    const full = await world.run(["--all", "--apply", "--full"]);
    assert.equal(full.summary.reads.mode, "full");
    assert.equal(full.summary.reads.why, "--full");
    assert.deepEqual(profileReads(full.requests).map((r) => r.path), [
      "/u/ada.json",
    ]);
    assert.equal(world.discourse.userByUsername("ada")?.bio_raw, bio);
  });
});

Deno.test("state: an account renamed on the forum is read again, ending as a full run would, and the run says so", async () => {
  await withStateWorld(inStep(), async (world) => {
    await firstApply(world);
    world.discourse.userByUsername("cyd")!.username = "cyd_2";
    const run = await world.run(["--all", "--apply"]);
    assert.equal(run.code, 0, run.stderr);
    assert.deepEqual(profileReads(run.requests).map((r) => r.path), [
      "/u/cyd.json",
    ]);
    assert.equal(run.summary.reads.forum_changed, 1);
    // Matching by username, as in a full run: the account is no longer found.
    assert.equal(run.summary.counts["CREATE/SKIPPED"], 1, run.stdout);
    assert.match(
      run.stderr,
      /warning: forum account "cyd" is now "cyd_2"; the profile is read as in a full run/,
    );
    assert.deepEqual(forumWrites(run.requests), []);
  });
});

Deno.test("state: a store of another forum is left alone and said so; this forum's reads are full", async () => {
  await withStateWorld(inStep(), async (world) => {
    await firstApply(world);
    const before = fileBytes(world.statePath);
    const moved = new URL(world.discourse.url);
    // The same forum under another name is another site to the store.
    const other = await world.run(["--all"], {
      DISCOURSE_URL: `http://localhost:${moved.port}`,
    });
    assert.equal(other.code, 0, other.stderr);
    assert.equal(other.summary.reads.mode, "full");
    assert.match(
      other.stderr,
      /warning: Reading every profile: the state store .* holds only other sites' data/,
    );
    assert.equal(profileReads(other.requests).length, 3);
    assert.deepEqual(
      fileBytes(world.statePath),
      before,
      "a dry-run changes nothing",
    );
  });
});

Deno.test("state: a corrupt or foreign file is said clearly, every profile is read, nothing is written wrongly", async () => {
  for (
    const [content, words] of [
      [
        "this is not a database at all, just text\n".repeat(200),
        /is not a state store of this tool|is damaged/,
      ],
      [null, /is not a state store of this tool/],
    ] as const
  ) {
    await withStateWorld(inStep(), async (world) => {
      if (content === null) {
        const db = new DatabaseSync(world.statePath);
        db.exec("CREATE TABLE notes (text TEXT)");
        db.close();
      } else {
        await Deno.writeTextFile(world.statePath, content);
      }
      const before = fileBytes(world.statePath);
      world.moodleUsers[1] = moodleUser(3, "bob", {
        city: "Oslo",
        country: "NO",
      });
      const run = await world.run(["--all", "--apply"]);
      assert.equal(run.code, 0, run.stderr);
      assert.match(
        run.stderr,
        /^warning: Reading every profile: The state store .*/m,
      );
      assert.match(run.stderr, words);
      assert.equal(run.summary.reads.mode, "full");
      assert.equal(profileReads(run.requests).length, 3);
      assert.deepEqual(forumWrites(run.requests).map((r) => r.path), [
        "/u/bob.json",
      ]);
      assert.deepEqual(fileBytes(world.statePath), before);
    });
  }
});

Deno.test("state: a dry-run reads the store but never changes or creates it", async () => {
  await withStateWorld(inStep(), async (world) => {
    const none = await world.run(["--all"]);
    assert.equal(none.summary.reads.mode, "full");
    assert.match(
      none.summary.reads.why ?? "",
      /the first --apply run creates it/,
    );
    await assert.rejects(Deno.stat(world.statePath), Deno.errors.NotFound);
    await firstApply(world);
    const before = fileBytes(world.statePath);
    world.moodleUsers[0] = moodleUser(2, "ada", {
      city: "Lyon",
      country: "FR",
    });
    const dry = await world.run(["--all"]);
    assert.equal(dry.summary.reads.mode, "state-assisted");
    assert.equal(dry.summary.reads.single_profile_reads, 1);
    assert.deepEqual(dry.summary.counts, {
      "UPDATE/DRY_RUN": 1,
      "UPDATE/EXISTS": 2,
    });
    assert.deepEqual(fileBytes(world.statePath), before);
  });
});

Deno.test("state: --user and --state use and update the store named", async () => {
  await withStateWorld(inStep(), async (world) => {
    const statePath = `${world.dir}/elsewhere.sqlite`;
    const first = await world.run(["--all", "--apply", "--state", statePath]);
    assert.equal(first.summary.reads.store_updated, 3);
    await assert.rejects(Deno.stat(world.statePath), Deno.errors.NotFound);
    world.moodleUsers[1] = moodleUser(3, "bob", {
      city: "Oslo",
      country: "NO",
    });
    const one = await world.run([
      "--user",
      "bob",
      "--apply",
      "--state",
      statePath,
    ]);
    assert.equal(one.summary.reads.mode, "state-assisted");
    assert.deepEqual(paths({ requests: profileReads(one.requests) }), [
      "/u/bob.json",
    ]);
    const unchanged = await world.run(["--user", "ada", "--state", statePath]);
    assert.deepEqual(profileReads(unchanged.requests), []);
    const again = await world.run(["--all", "--apply", "--state", statePath]);
    assert.deepEqual(profileReads(again.requests), []);
    assert.deepEqual(forumWrites(again.requests), []);
  });
});

Deno.test("state: revert --apply marks the users it writes for a full read, and the next sync puts Moodle's values back", async () => {
  await withStateWorld(inStep(), async (world) => {
    await firstApply(world);
    world.moodleUsers[0] = moodleUser(2, "ada", {
      city: "Lyon",
      country: "FR",
    });
    const changed = await world.run(["--all", "--apply"]);
    const log = rowsOf(changed).find((line) =>
      line.type === "summary"
    ).log_path;
    const reverted = await world.cli(["revert", log, "--apply"]);
    assert.equal(reverted.code, 0, reverted.stderr);
    assert.equal(world.discourse.userByUsername("ada")?.location, "Paris, FR");
    const entries = await world.entries();
    assert.equal(entries.get(2)?.desiredHash, "");
    assert.notEqual(entries.get(3)?.desiredHash, "");
    const next = await world.run(["--all", "--apply"]);
    assert.deepEqual(profileReads(next.requests).map((r) => r.path), [
      "/u/ada.json",
    ]);
    assert.equal(world.discourse.userByUsername("ada")?.location, "Lyon, FR");
  });
});

Deno.test("state: a run killed mid-way leaves a store the next run reads, and that run ends every user as a full run would", async () => {
  // More than one card request's worth (50), so some are remembered.
  const users = 130;
  const ids = Array.from({ length: users }, (_, i) => i + 2);
  await withStateWorld({
    moodleUsers: ids.map((id) =>
      moodleUser(id, `user${id}`, { city: "Quito", country: "EC" })
    ),
    forumUsers: [
      admin,
      ...ids.map((id) => discourseUser(100 + id, `user${id}`)),
    ],
    settings: { concurrency: 1 },
  }, async (world) => {
    // Writes are held a moment each, so the kill lands among them.
    world.discourse.setLatency(5);
    const killed = await world.spawn(["--all", "--apply"]);
    const deadline = Date.now() + 60_000;
    while (
      forumWrites(world.discourse.requests).length < 80 &&
      Date.now() < deadline
    ) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    killed.kill("SIGKILL");
    await killed.done;
    world.discourse.setLatency(0);
    const kept = await world.entries();
    assert.ok(kept.size > 0 && kept.size < users, `${kept.size} entries`);
    for (const entry of kept.values()) {
      // Every entry is whole: remembered only once its user was in step.
      assert.equal(entry.snapshot.location, "Quito, EC");
    }
    const next = await world.run(["--all", "--apply"]);
    assert.equal(next.code, 0, next.stderr);
    assert.equal(next.summary.reads.mode, "state-assisted");
    for (const id of ids) {
      assert.equal(
        world.discourse.userByUsername(`user${id}`)?.location,
        "Quito, EC",
      );
    }
    assert.equal((await world.entries()).size, users);
    const last = await world.run(["--all", "--apply"]);
    assert.deepEqual(profileReads(last.requests), []);
    assert.deepEqual(forumWrites(last.requests), []);
  });
});

Deno.test("state: a Moodle email change is planned from emails.json alone, and a pending change is not sent again", async () => {
  await withStateWorld(inStep(), async (world) => {
    await firstApply(world);
    world.moodleUsers[2] = moodleUser(4, "cyd", { email: "cyd@new.example" });
    const run = await world.run(["--user", "cyd", "--apply"]);
    assert.equal(run.code, 0, run.stderr);
    assert.deepEqual(profileReads(run.requests), []);
    assert.deepEqual(forumWrites(run.requests).map((r) => r.path), [
      "/u/cyd/preferences/email.json",
    ]);
    assert.deepEqual(world.discourse.emailChangeRequests, [
      { username: "cyd", email: "cyd@new.example" },
    ]);
    // Unconfirmed yet: remembered as requested, nothing sent again.
    const next = await world.run(["--all", "--apply"]);
    assert.deepEqual(forumWrites(next.requests), []);
    assert.deepEqual(profileReads(next.requests), []);
    // A --full run checks the pending address as any full run does.
    const full = await world.run(["--all", "--apply", "--full"]);
    assert.deepEqual(forumWrites(full.requests), []);
    const row = rowsOf(full).find((line) => line.normalized_username === "cyd");
    assert.match(row.message, /already awaiting the user's confirmation/);
  });
});
