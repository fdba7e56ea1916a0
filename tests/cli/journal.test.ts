// No write without its record, where only a process shows it: a crash with
// a write on the wire, a second signal, the files' permissions and the
// default log folder. A full disk and partial writes are in
// tests/engine/journal.test.ts.
import assert from "node:assert/strict";
import { exists, journals, modeOf, newestLog } from "../support/journal.ts";
import { auditLogs, runCli } from "../support/world.ts";
import {
  forumState,
  type Spawned,
  waitUntil,
  withWorld,
  type World,
  writes,
} from "../support/reliability.ts";

/** The forum's answers wait; the client must not give up on a held write. */
const patient = { discourse: { requestsPerMinute: 300, timeoutSeconds: 30 } };

const holdPut = (world: World, username: string, delayMs: number) =>
  world.discourse.inject({
    kind: "slow",
    count: 1,
    delayMs,
    method: "PUT",
    path: new RegExp(`^/u/${username.replace(".", "\\.")}\\.json$`),
  });

const putArrived = (world: World, username: string) => () =>
  writes(world.discourse).some((r) => r.path === `/u/${username}.json`);

/** An --apply run, killed -9 while the forum holds bio.filler's write open. */
const killWhileWriting = async (world: World, heldMs: number) => {
  holdPut(world, "bio.filler", heldMs);
  const run = world.spawn(["--all", "--apply", "--concurrency", "1"]);
  await waitUntil("the held write", putArrived(world, "bio.filler"));
  run.kill("SIGKILL");
  await run.done;
};

Deno.test("kill -9 with a write on the wire: its intent was on disk first, and the next run checks it against the forum and logs it before writing", async () => {
  await withWorld({ settings: patient }, async (world) => {
    await killWhileWriting(world, 1500);

    const killed = await newestLog(world.dir);
    assert.ok(
      !killed.rows.some((r) => r.normalized_username === "bio.filler"),
      "the killed run had no time to log bio.filler",
    );
    const journal = `${killed.path}.journal`;
    assert.equal(await modeOf(journal), 0o600);
    const intents = (await Deno.readTextFile(journal)).trim().split("\n")
      .map((line) => JSON.parse(line));
    const open = intents.filter((line) =>
      "intent" in line &&
      !intents.some((other) => other.done === line.intent)
    );
    assert.equal(open.length, 1, JSON.stringify(intents));
    assert.equal(open[0].entry.normalizedUsername, "bio.filler");
    assert.deepEqual(open[0].entry.before, { bio: "" });
    assert.deepEqual(open[0].entry.fields, ["bio"]);

    // The forum finishes the write it was holding, as a real one would.
    await waitUntil(
      "the held write to land",
      () =>
        (world.discourse.userByUsername("bio.filler")?.bio_raw ?? "") !== "",
    );
    const landed = world.discourse.userByUsername("bio.filler")!.bio_raw;

    const next = await world.engine(["--all", "--apply"]);
    assert.equal(next.code, 0, next.stderr);
    assert.match(next.stderr, /bio\.filler UPDATE\/SUCCESS: recovered from/);
    const { path, rows } = await newestLog(world.dir);
    assert.notEqual(path, killed.path);
    // Logged first, before this run's own users.
    const [recovered] = rows;
    assert.equal(recovered.normalized_username, "bio.filler");
    assert.equal(`${recovered.action}/${recovered.status}`, "UPDATE/SUCCESS");
    assert.match(recovered.message, /\.journal: that run stopped.*holds bio/);
    assert.equal(recovered.fields, "bio");
    assert.deepEqual(JSON.parse(recovered.before), { bio: "" });
    assert.deepEqual(JSON.parse(recovered.after), { bio: landed });
    assert.equal(await exists(journal), false, "the journal was retired");
    assert.deepEqual(journals(world.dir), []);

    // The killed run's log still verifies up to its last row, even with a
    // row cut in half after it; the recovered row can be undone like any other.
    const dry = await world.engine(["revert", killed.path]);
    assert.equal(dry.code, 0, dry.stderr);
    assert.doesNotMatch(dry.stderr, /will refuse/);
    await Deno.writeTextFile(killed.path, '2026-12-01T02:00:00,"half a r', {
      append: true,
    });
    const cut = await world.engine(["revert", killed.path]);
    assert.equal(cut.code, 0, cut.stderr);
    assert.match(cut.stderr, /appended after its last MAC/);
    const undo = await world.engine(["revert", path, "--apply"]);
    assert.equal(undo.code, 0, undo.stderr);
    assert.equal(
      world.discourse.userByUsername("bio.filler")!.bio_raw ?? "",
      "",
    );
  });
});

Deno.test("kill -9 before the held write lands: the next run finds it never arrived, says so, and writes the user afresh", async () => {
  await withWorld({ settings: patient }, async (world) => {
    // Held far longer than the test: it never lands while the test runs.
    await killWhileWriting(world, 120_000);
    const next = await world.engine(["--all", "--apply"]);
    assert.equal(next.code, 0, next.stderr);
    const { rows } = await newestLog(world.dir);
    const [recovered, ...own] = rows;
    assert.equal(recovered.normalized_username, "bio.filler");
    assert.equal(`${recovered.action}/${recovered.status}`, "UPDATE/SKIPPED");
    assert.match(recovered.message, /holds none of it, so it never arrived/);
    assert.equal(recovered.fields, "");
    const again = own.find((r) => r.normalized_username === "bio.filler");
    assert.equal(again?.status, "SUCCESS");
  });
});

Deno.test("when the next --apply run is a revert, it too logs the unfinished write first, then reverts the sealed rows", async () => {
  await withWorld({ settings: patient }, async (world) => {
    await killWhileWriting(world, 1500);
    const killed = await newestLog(world.dir);
    await waitUntil(
      "the held write to land",
      () =>
        (world.discourse.userByUsername("bio.filler")?.bio_raw ?? "") !== "",
    );
    const revert = await world.engine(["revert", killed.path, "--apply"]);
    assert.equal(revert.code, 0, revert.stderr);
    const { rows } = await newestLog(world.dir);
    const [recovered, ...reverted] = rows;
    assert.equal(recovered.normalized_username, "bio.filler");
    assert.equal(`${recovered.action}/${recovered.status}`, "UPDATE/SUCCESS");
    assert.match(recovered.message, /^recovered from /);
    assert.equal(
      reverted.length,
      killed.rows.filter((r) => r.status === "SUCCESS").length,
    );
    assert.deepEqual(journals(world.dir), []);
  });
});

/** SIGINT, another `gapMs` later, and the exit that must follow: 130. */
const interruptTwice = async (run: Spawned, gapMs: number) => {
  run.kill("SIGINT");
  await new Promise((resolve) => setTimeout(resolve, gapMs));
  run.kill("SIGINT");
  const result = await run.done;
  assert.equal(result.code, 130, result.stderr + result.stdout);
  return result;
};

Deno.test("two signals within a second are one: the users in flight finish with their rows", async () => {
  await withWorld({ settings: patient }, async (world) => {
    holdPut(world, "bio.filler", 2500);
    const run = world.spawn(["--all", "--apply", "--concurrency", "2"]);
    await waitUntil("the held write", putArrived(world, "bio.filler"));
    // What `deno task sync` delivers for one Ctrl-C: the terminal's signal,
    // then the task runner's, a moment apart (sent at once, the kernel
    // would merge them into one).
    const result = await interruptTwice(run, 300);
    assert.doesNotMatch(result.stderr, /Stopping now/);
    const { rows } = await newestLog(world.dir);
    const row = rows.find((r) => r.normalized_username === "bio.filler");
    assert.equal(row?.status, "SUCCESS");
    assert.ok(!rows.some((r) => /stop now/.test(r.message)));
  });
});

Deno.test("a second signal drops users whose write is not sent, finishes the rows of writes already sent, then exits 130", async () => {
  const expected = await (async () => {
    let forum: ReturnType<typeof forumState> = [];
    await withWorld({}, async (world) => {
      assert.equal((await world.engine(["--all", "--apply"])).code, 0);
      forum = forumState(world.discourse);
    });
    return new Map(forum.map((u) => [u.username, u]));
  })();
  await withWorld({ settings: patient }, async (world) => {
    // Held long enough to still be out when the second signal comes.
    holdPut(world, "bio.filler", 6000);
    // The other user in flight waits on a read when the second signal comes.
    world.discourse.inject({
      kind: "slow",
      count: 1,
      delayMs: 120_000,
      method: "GET",
      path: /^\/u\/name\.changer\.json$/,
    });
    const run = world.spawn(["--all", "--apply", "--concurrency", "2"]);
    await waitUntil(
      "the held write and the held read",
      () =>
        putArrived(world, "bio.filler")() &&
        world.discourse.requests.some((r) => r.path === "/u/name.changer.json"),
    );
    const result = await interruptTwice(run, 1300);
    assert.match(result.stderr, /Stopping now/);
    const { rows } = await newestLog(world.dir);
    const byName = new Map(rows.map((r) => [r.normalized_username, r]));
    assert.equal(byName.get("bio.filler")?.status, "SUCCESS");
    const dropped = byName.get("name.changer");
    assert.equal(dropped?.status, "SKIPPED");
    assert.match(dropped?.message ?? "", /second signal.*before/);
    assert.ok(!putArrived(world, "name.changer")(), "name.changer was written");
    const forum = new Map(
      forumState(world.discourse).map((u) => [u.username, u]),
    );
    for (const row of rows.filter((r) => r.status === "SUCCESS")) {
      assert.deepEqual(
        forum.get(row.normalized_username),
        expected.get(row.normalized_username),
      );
    }
    // The lock went with the run, second signal and all: the next run takes
    // it as a free lock, not over a dead holder.
    assert.equal(result.code, 130, result.stderr);
    const next = await world.engine(["--all", "--apply"]);
    assert.equal(next.code, 0, next.stderr);
    assert.doesNotMatch(next.stderr, /took over the lock/);
  });
});

Deno.test("audit logs and their MAC files are mode 600; the default logDir is logs/, created when missing", async () => {
  // No logDir in the settings: the default applies, in the working folder.
  await withWorld({ settings: { logDir: undefined } }, async (world) => {
    const result = await runCli(
      ["--settings", world.settingsPath, "--all", "--apply"],
      { env: world.env, cwd: world.dir },
    );
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(
      (await auditLogs(world.dir)).filter((p) => p.endsWith(".csv")),
      [],
      "no log in the working folder itself",
    );
    const { path } = await newestLog(`${world.dir}/logs`);
    assert.equal(await modeOf(path), 0o600);
    assert.equal(await modeOf(`${path}.mac`), 0o600);
  });
});
