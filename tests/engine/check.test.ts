// `--check` answers one question: would `--apply` with the same flags write
// anything? 4 if so, whatever else happened; else 1 after ERROR rows; else 0.
import assert from "node:assert/strict";
import { discourseUser, moodleUser } from "../doubles/scenarios.ts";
import {
  byMoodleId,
  forumState,
  lastLog,
  withWorld,
  writes,
} from "../support/world.ts";

const system = discourseUser(-1, "system", { admin: true });

/** Over Discourse's 3000-character bio limit: refused, never sent. */
const tooLongBio = "word ".repeat(700).trim();

const users = {
  /** Name differs: drift. */
  stale: moodleUser(2, "stale", { firstname: "Stale", lastname: "Now" }),
  /** In step. */
  same: moodleUser(3, "same", { firstname: "Same", lastname: "Person" }),
  /** Its bio is refused: an ERROR row with a change --apply would not send. */
  longBio: moodleUser(4, "long.bio", {
    firstname: "Long",
    lastname: "Bio",
    description: tooLongBio,
    descriptionformat: 2,
  }),
  /** `ana garcia` and `ana_garcia` collide: ERROR rows. */
  collidingSpace: moodleUser(5, "ana garcia", { firstname: "Ana" }),
  collidingUnderscore: moodleUser(6, "ana_garcia", { firstname: "Ana" }),
  /** Not in the forum. */
  missing: moodleUser(7, "new.person", {
    firstname: "New",
    lastname: "Person",
  }),
};

const forum = [
  system,
  discourseUser(2, "stale", { name: "Stale Then" }),
  discourseUser(3, "same", { name: "Same Person" }),
  discourseUser(4, "long.bio", { name: "Long Bio", bio_raw: "short" }),
  discourseUser(5, "ana_garcia", { name: "Ana" }),
];

Deno.test("--check: drift exits 4 even beside ERROR rows; the refused change is neither drift nor counted", async () => {
  await withWorld({
    moodleUsers: [
      users.stale,
      users.same,
      users.longBio,
      users.collidingSpace,
      users.collidingUnderscore,
    ],
    forumUsers: forum,
  }, async (world) => {
    const before = forumState(world);
    const check = await world.engine(["--check", "--all"]);
    assert.equal(check.code, 4, check.stdout + check.stderr);
    const rows = byMoodleId((await lastLog(world)).rows);
    assert.equal(rows.get(4)?.action, "ERROR");
    assert.equal(rows.get(5)?.action, "ERROR");
    // Only "stale" would be written: one user, in the singular.
    assert.match(check.stdout, /\n {2}1 user would change: add --apply/);
    assert.equal(writes(world).length, 0);
    assert.equal(forumState(world), before);
  });
});

Deno.test("--check: only ERROR rows exit 1, in step exits 0, and --force-recreate counts only real differences", async () => {
  await withWorld({
    moodleUsers: [users.same, users.longBio],
    forumUsers: forum,
  }, async (world) => {
    const errorsOnly = await world.engine(["--check", "--all"]);
    assert.equal(errorsOnly.code, 1, errorsOnly.stdout);
    assert.doesNotMatch(errorsOnly.stdout, /would change/);
    // Everything would be re-sent, yet nothing differs: no drift.
    const forced = await world.engine(["--check", "--all", "--force-recreate"]);
    assert.equal(forced.code, 1, forced.stdout);
  });
  await withWorld({
    moodleUsers: [users.same],
    forumUsers: forum,
  }, async (world) => {
    assert.equal((await world.engine(["--check", "--all"])).code, 0);
    const forced = await world.engine(["--check", "--all", "--force-recreate"]);
    assert.equal(forced.code, 0, forced.stdout);
    assert.match(forced.stdout, /\(unchanged, re-sent\)/);
  });
  await withWorld({
    moodleUsers: [users.stale],
    forumUsers: forum,
  }, async (world) => {
    const forced = await world.engine(["--check", "--all", "--force-recreate"]);
    assert.equal(forced.code, 4, forced.stdout);
  });
});

Deno.test("--check: a missing user is drift only with --create-missing, whose refusals show as in --apply", async () => {
  const admin = moodleUser(8, "admin", {
    firstname: "Site",
    lastname: "Admin",
  });
  await withWorld({
    moodleUsers: [users.same, users.missing],
    forumUsers: forum,
  }, async (world) => {
    const plain = await world.engine(["--check", "--all"]);
    assert.equal(plain.code, 0, plain.stdout);
    assert.match(plain.stdout, /1 user not in the forum/);
    const creating = await world.engine([
      "--check",
      "--all",
      "--create-missing",
    ]);
    assert.equal(creating.code, 4, creating.stdout + creating.stderr);
    assert.match(creating.stdout, /1 user would change/);
    assert.equal(writes(world).length, 0);
  });
  await withWorld({
    moodleUsers: [users.same, admin],
    forumUsers: forum,
  }, async (world) => {
    // "admin" cannot be created: --apply --create-missing would write nothing.
    const result = await world.engine(["--check", "--all", "--create-missing"]);
    assert.equal(result.code, 1, result.stdout);
    const row = byMoodleId((await lastLog(world)).rows).get(8);
    assert.equal(row?.action, "ERROR");
    assert.match(row?.message ?? "", /reserves/);
    // Without --create-missing, --apply would skip it: so does the dry-run,
    // naming the refusal instead of promising a creation.
    const dry = await world.engine(["--all"]);
    assert.equal(dry.code, 0, dry.stdout);
    assert.match(
      dry.stdout,
      /admin CREATE\/DRY_RUN: .*--create-missing would refuse this one: not created: "admin"/,
    );
    assert.doesNotMatch(dry.stdout, /or now by --apply --create-missing/);
    const plainCheck = await world.engine(["--check", "--all"]);
    assert.equal(plainCheck.code, 0, plainCheck.stdout);
  });
});
