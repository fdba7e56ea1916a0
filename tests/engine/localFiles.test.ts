// Local attacks and bad files: a link planted at the lock's path, a lock file
// of another user, a settings path naming a device, a pipe or a folder, a
// huge file, and an exclusion file that is not there.
import assert from "node:assert/strict";
import os from "node:os";
import { Effect, Exit, Option } from "effect";
import { acquireLock, defaultLockDir, lockPath } from "../../src/lock.ts";
import { discourseUser, moodleUser } from "../doubles/scenarios.ts";
import {
  lastLog,
  runInProcess,
  withWorld,
  type World,
} from "../support/world.ts";

const forum = "https://forum.example.edu";

const withTempDir = async (body: (dir: string) => Promise<void>) => {
  const dir = await Deno.makeTempDir({ prefix: "sync-local-" });
  try {
    await body(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
};

const lockIn = (dir: string) =>
  Effect.runPromiseExit(
    acquireLock({ dir, discourseUrl: forum, command: "test" }),
  );

// ---------------------------------------------------------------------------
// The lock (item 10)

Deno.test("a symbolic link planted at the lock's path is refused; the file it points to is untouched", async () => {
  await withTempDir(async (dir) => {
    const target = `${dir}/precious.conf`;
    await Deno.writeTextFile(target, "precious\n");
    Deno.symlinkSync(target, lockPath(dir, forum));
    const exit = await lockIn(dir);
    assert.ok(Exit.isFailure(exit), "the lock was taken through a link");
    assert.match(String(exit.cause), /symbolic link/);
    assert.equal(await Deno.readTextFile(target), "precious\n");
  });
});

Deno.test("a dangling symbolic link at the lock's path creates nothing where it points", async () => {
  await withTempDir(async (dir) => {
    const target = `${dir}/cron.d-evil`;
    Deno.symlinkSync(target, lockPath(dir, forum));
    const exit = await lockIn(dir);
    assert.ok(Exit.isFailure(exit));
    assert.match(String(exit.cause), /symbolic link/);
    await assert.rejects(() => Deno.lstat(target));
  });
});

Deno.test({
  name: "a lock file owned by another user is refused with a clear message",
  ignore: Deno.build.os === "windows" || Deno.uid() !== 0,
  fn: async () => {
    await withTempDir(async (dir) => {
      const path = lockPath(dir, forum);
      const fake = JSON.stringify({
        pid: 1,
        host: "elsewhere",
        startedAt: "2020-01-01T00:00:00.000Z",
      });
      await Deno.writeTextFile(path, fake);
      const nobody = 65534;
      await Deno.chown(path, nobody, nobody);
      const exit = await lockIn(dir);
      assert.ok(Exit.isFailure(exit), "root took a lock another user owns");
      assert.match(
        String(exit.cause),
        new RegExp(
          `belongs to another user \\(uid ${nobody}; this run is uid 0\\)`,
        ),
      );
      assert.equal(await Deno.readTextFile(path), fake);
    });
  },
});

Deno.test("the holder left in a lock file is decoded strictly: a well-formed one is reported, anything else is not", async () => {
  await withTempDir(async (dir) => {
    const path = lockPath(dir, forum);
    await Deno.writeTextFile(
      path,
      JSON.stringify({
        pid: 4242,
        host: "cron-host",
        startedAt: "2026-01-01T00:00:00.000Z",
        command: "sync --apply",
      }),
    );
    const took = await Effect.runPromise(
      acquireLock({ dir, discourseUrl: forum, command: "test" }),
    );
    assert.equal(Option.getOrUndefined(took.tookOverFrom)?.pid, 4242);
    took.release();
    await Deno.writeTextFile(path, JSON.stringify({ pid: "4242", host: 1 }));
    const again = await Effect.runPromise(
      acquireLock({ dir, discourseUrl: forum, command: "test" }),
    );
    assert.ok(Option.isNone(again.tookOverFrom));
    again.release();
  });
});

Deno.test("the default lock folder is the user's private state folder, not the shared temp folder", async () => {
  assert.equal(
    defaultLockDir({ XDG_STATE_HOME: "/var/lib/me/state" }),
    "/var/lib/me/state/sync-moodle-discourse/locks",
  );
  assert.equal(
    defaultLockDir({ HOME: "/home/ops" }),
    "/home/ops/.local/state/sync-moodle-discourse/locks",
  );
  // A relative XDG_STATE_HOME is invalid by the spec, and ignored.
  assert.equal(
    defaultLockDir({ XDG_STATE_HOME: "state", HOME: "/home/ops" }),
    "/home/ops/.local/state/sync-moodle-discourse/locks",
  );
  assert.ok(!defaultLockDir().startsWith(os.tmpdir()));

  await withWorld({
    moodleUsers: [moodleUser(2, "ana", { city: "Lima", country: "PE" })],
    forumUsers: [discourseUser(2, "ana")],
    settings: { lockDir: undefined },
  }, async (world) => {
    const state = `${world.dir}/state`;
    const result = await world.engine(["--all", "--apply"], {
      XDG_STATE_HOME: state,
    });
    assert.equal(result.code, 0, result.stderr);
    const locks = `${state}/sync-moodle-discourse/locks`;
    const info = await Deno.stat(locks);
    assert.ok(info.isDirectory);
    if (Deno.build.os !== "windows") {
      assert.equal((info.mode ?? 0) & 0o777, 0o700);
    }
  });
});

// ---------------------------------------------------------------------------
// Files the operator names (items 11 and 12; a missing exclusion file: sync.test.ts)

/** The CLI's settings error for `path`, with nothing contacted. */
const refusedSettings = async (world: World, path: string) => {
  const result = await runInProcess(["--settings", path, "--all"], {
    env: world.env,
  });
  assert.equal(result.code, 2, result.stderr);
  assert.equal(world.moodle.requestCount(), 0);
  assert.equal(world.discourse.requestCount(), 0);
  return result.stderr;
};

const smallWorld = (
  settings: Record<string, unknown>,
  body: (world: World) => Promise<void>,
) =>
  withWorld({
    moodleUsers: [moodleUser(2, "fabio")],
    forumUsers: [discourseUser(2, "fabio")],
    settings,
  }, body);

Deno.test("--settings naming a device, a folder or a huge file is refused at once, nothing contacted", async () => {
  await smallWorld({}, async (world) => {
    if (Deno.build.os !== "windows") {
      assert.match(
        await refusedSettings(world, "/dev/zero"),
        /\/dev\/zero: found a device, not a regular file, expected a regular JSON file/,
      );
    }
    assert.match(
      await refusedSettings(world, world.dir),
      /found a directory, not a regular file/,
    );
    const huge = `${world.dir}/huge.json`;
    await Deno.writeTextFile(huge, `{"env": "${"x".repeat(1024 * 1024)}"}`);
    assert.match(
      await refusedSettings(world, huge),
      /huge\.json: found a file larger than 1 MB/,
    );
  });
});

Deno.test({
  name: "--settings naming a named pipe is refused without opening it",
  ignore: Deno.build.os === "windows",
  fn: async () => {
    await smallWorld({}, async (world) => {
      const fifo = `${world.dir}/settings.fifo`;
      const made = await new Deno.Command("mkfifo", { args: [fifo] }).output();
      assert.ok(made.success);
      // Opening a FIFO for reading waits for a writer: a run that opened
      // it would never end, so this guard turns a hang into a failure.
      const guard = setTimeout(() => {
        const writer = Deno.openSync(fifo, { write: true });
        writer.writeSync(new TextEncoder().encode("{}"));
        writer.close();
      }, 60_000);
      try {
        const stderr = await refusedSettings(world, fifo);
        assert.match(stderr, /found a named pipe \(FIFO\), not a regular file/);
      } finally {
        clearTimeout(guard);
      }
    });
  },
});

Deno.test("an exclusion file that is a folder is a settings error too; a readable one still excludes", async () => {
  await smallWorld({}, async (world) => {
    const settings = JSON.parse(await Deno.readTextFile(world.settingsPath));
    await Deno.writeTextFile(
      world.settingsPath,
      JSON.stringify({ ...settings, exclude: { file: world.dir } }),
    );
    const refused = await world.engine(["--all"]);
    assert.equal(refused.code, 2, refused.stderr);
    assert.match(
      refused.stderr,
      /exclude\.file: .*a directory, not a regular file/,
    );
    assert.equal(world.moodle.requestCount(), 0);

    const list = `${world.dir}/excluded.txt`;
    await Deno.writeTextFile(list, "fabio\n");
    await Deno.writeTextFile(
      world.settingsPath,
      JSON.stringify({ ...settings, exclude: { file: list } }),
    );
    const ran = await world.engine(["--all"]);
    assert.equal(ran.code, 0, ran.stderr);
    assert.equal((await lastLog(world)).rows[0]?.status, "EXCLUDED");
  });
});

Deno.test("revert refuses a log that is not a regular file", async () => {
  await smallWorld({}, async (world) => {
    const result = await world.engine(["revert", world.dir]);
    assert.equal(result.code, 2, result.stderr);
    assert.match(result.stderr, /a directory, not a regular file/);
    assert.equal(world.discourse.requestCount(), 0);
  });
});
