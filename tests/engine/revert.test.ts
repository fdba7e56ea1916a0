// `revert LOG.csv`: undo an --apply run from its audit log, safely.
import assert from "node:assert/strict";
import { Effect } from "effect";
import { applyLog, forgeLog, logMatching } from "../support/revert.ts";
import { readLog } from "../support/world.ts";
import {
  forumState,
  lastLog,
  withWorld,
  writes,
} from "../support/reliability.ts";
import { acquireLock } from "../../src/lock.ts";

Deno.test("apply, then revert: the forum is exactly as before, and the revert has its own logs", async () => {
  await withWorld({}, async (world) => {
    const before = forumState(world.discourse);
    const log = await applyLog(world);
    assert.notDeepEqual(forumState(world.discourse), before);
    const syncMailRequests = world.discourse.emailChangeRequests.length;
    const { rows: applied } = await readLog(log);
    const successes = applied.filter((r) => r.status === "SUCCESS");

    const writesBefore = writes(world.discourse).length;
    const dry = await world.engine(["revert", log]);
    assert.equal(dry.code, 0, dry.stderr);
    assert.equal(writes(world.discourse).length, writesBefore, "dry-run wrote");
    assert.match(dry.stdout, /would put back name, location, bio/);
    const dryLog = await logMatching(
      world,
      /sync_log_test_revert_dryrun_\d{8}_\d{6}\.csv$/,
    );
    assert.equal(dryLog.rows.length, successes.length);

    const result = await world.engine(["revert", log, "--apply"]);
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(forumState(world.discourse), before);
    // The sync's email change was never confirmed: nothing is mailed again.
    assert.equal(world.discourse.emailChangeRequests.length, syncMailRequests);

    const revertLog = await logMatching(
      world,
      /sync_log_test_revert_apply_\d{8}_\d{6}\.csv$/,
    );
    assert.deepEqual(revertLog.header, dryLog.header);
    assert.equal(revertLog.rows.length, successes.length);
    const byId = new Map(revertLog.rows.map((r) => [r.moodle_id, r]));
    for (const row of successes) {
      const reverted = byId.get(row.moodle_id);
      assert.ok(reverted, `no revert row for ${row.normalized_username}`);
      if (row.fields === "email") {
        assert.equal(reverted.status, "EXISTS");
        assert.match(reverted.message, /never confirmed.*no mail sent/);
        continue;
      }
      assert.equal(reverted.status, "SUCCESS", reverted.message);
      // The revert's before/after are the sync's after/before.
      const fields = row.fields.split(";").filter((f) => f !== "email");
      const pick = (json: string) =>
        Object.fromEntries(
          Object.entries(JSON.parse(json)).filter(([k]) => fields.includes(k)),
        );
      assert.deepEqual(JSON.parse(reverted.before), pick(row.after));
      assert.deepEqual(JSON.parse(reverted.after), pick(row.before));
    }
    const mixed = byId.get("10");
    assert.match(
      mixed?.message ?? "",
      /put back name, location, bio.*never confirmed/,
    );

    // Reverting the revert replays the sync.
    const redo = await world.engine(["revert", revertLog.path, "--apply"]);
    assert.equal(redo.code, 0, redo.stderr);
    const again = await world.engine(["--all", "--check"]);
    assert.equal(again.code, 0, again.stdout);
  });
});

Deno.test("revert leaves alone every field changed since the sync, and says so", async () => {
  await withWorld({}, async (world) => {
    const log = await applyLog(world);
    const jose = world.discourse.userByUsername("jose.nunez")!;
    jose.name = "José N. (edited by José)";
    const result = await world.engine(["revert", log, "--apply"]);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(jose.name, "José N. (edited by José)");
    assert.equal(jose.location ?? "", "");
    assert.equal(jose.bio_raw ?? "", "");
    const { rows } = await logMatching(world, /revert_apply/);
    const row = rows.find((r) => r.normalized_username === "jose.nunez");
    assert.equal(row?.status, "SUCCESS");
    assert.equal(row?.fields, "location;bio");
    assert.match(row?.message ?? "", /name skipped: changed since the sync/);
  });
});

Deno.test("an email change the user confirmed is asked back; the row says a confirmation link goes out", async () => {
  await withWorld({}, async (world) => {
    const log = await applyLog(world);
    const user = world.discourse.userByUsername("email.changer")!;
    // The user clicked the link.
    user.email = "new-address@uni.example";
    user.unconfirmed_emails = [];
    const result = await world.engine(["revert", log, "--apply"]);
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(world.discourse.emailChangeRequests.at(-1), {
      username: "email.changer",
      email: "old-address@uni.example",
    });
    const { rows } = await logMatching(world, /revert_apply/);
    const row = rows.find((r) => r.normalized_username === "email.changer");
    assert.equal(row?.status, "SUCCESS");
    assert.match(row?.message ?? "", /confirmation link goes to old-address/);
  });
});

Deno.test("revert refuses a dry-run log, a CSV that is not an audit log and a missing file, with exit 2 and nothing contacted", async () => {
  await withWorld({}, async (world) => {
    const dry = await world.engine(["--all"]);
    assert.equal(dry.code, 0, dry.stderr);
    const { path: dryLog } = await lastLog(world);
    const requests = world.discourse.requests.length;

    const refusedDry = await world.engine(["revert", dryLog, "--apply"]);
    assert.equal(refusedDry.code, 2);
    assert.match(refusedDry.stderr, /dry-run.*nothing to put back/);

    const other = `${world.dir}/people.csv`;
    await Deno.writeTextFile(other, "name,email\nAna,ana@example.org\n");
    const refusedOther = await world.engine(["revert", other]);
    assert.equal(refusedOther.code, 2);
    assert.match(refusedOther.stderr, /not an audit log/);

    const binary = `${world.dir}/garbage.csv`;
    await Deno.writeTextFile(binary, 'a,"b\n');
    assert.equal((await world.engine(["revert", binary])).code, 2);

    const missing = await world.engine(["revert", `${world.dir}/nope.csv`]);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /cannot be read/);

    assert.equal((await world.engine(["revert"])).code, 2);
    assert.equal(world.discourse.requests.length, requests);
  });
});

Deno.test("revert --apply takes the forum's lock; its dry-run does not", async () => {
  await withWorld({}, async (world) => {
    const log = await applyLog(world);
    const held = await Effect.runPromise(acquireLock({
      dir: world.lockDir,
      discourseUrl: world.discourse.url,
      command: "another run",
    }));
    try {
      const refused = await world.engine(["revert", log, "--apply"]);
      assert.equal(refused.code, 3, refused.stderr);
      assert.match(refused.stderr, /another run/);
      const dry = await world.engine(["revert", log]);
      assert.equal(dry.code, 0, dry.stderr);
    } finally {
      held.release();
    }
  });
});

Deno.test("revert --apply refuses an edited log, a log without its MAC, and another forum's or environment's log, writing nothing", async () => {
  await withWorld({}, async (world) => {
    const log = await applyLog(world);
    const mac = `${log}.mac`;
    const sealed = await Deno.readTextFile(mac);
    const writesBefore = writes(world.discourse).length;

    const otherEnv = await world.engine(["revert", log, "--apply"], {
      ENV: "staging",
    });
    assert.equal(otherEnv.code, 2, otherEnv.stderr);
    assert.match(otherEnv.stderr, /written for the forum .*\(env "test"\)/);

    const otherForum = await world.engine(["revert", log, "--apply"], {
      DISCOURSE_URL: world.discourse.url.replace("127.0.0.1", "localhost"),
    });
    assert.equal(otherForum.code, 2, otherForum.stderr);
    assert.match(
      otherForum.stderr,
      /written for the forum http:\/\/127\.0\.0\.1/,
    );

    const otherKey = await world.engine(["revert", log, "--apply"], {
      DISCOURSE_API_KEY: "another-key-of-another-forum",
    });
    assert.equal(otherKey.code, 2, otherKey.stderr);
    assert.match(otherKey.stderr, /another Discourse API key/);

    await Deno.remove(mac);
    const unsealed = await world.engine(["revert", log, "--apply"]);
    assert.equal(unsealed.code, 2, unsealed.stderr);
    assert.match(unsealed.stderr, /no MAC file/);
    await Deno.writeTextFile(mac, sealed);

    await forgeLog(log);
    const forged = await world.engine(["revert", log, "--apply"]);
    assert.equal(forged.code, 2, forged.stderr);
    assert.match(forged.stderr, /not byte-for-byte what this tool wrote/);
    // The override needs a person at a terminal: never from a script.
    const trusted = await world.engine([
      "revert",
      log,
      "--apply",
      "--trust-edited-log",
    ]);
    assert.equal(trusted.code, 2, trusted.stderr);
    assert.match(trusted.stderr, /needs a terminal/);
    // A dry-run reads it, and says --apply will refuse it.
    const dry = await world.engine(["revert", log]);
    assert.equal(dry.code, 0, dry.stderr);
    assert.match(dry.stderr, /revert --apply will refuse/);

    assert.equal(writes(world.discourse).length, writesBefore);
    assert.equal(
      world.discourse.userByUsername("jose.nunez")?.name,
      "José Núñez",
    );
  });
});
