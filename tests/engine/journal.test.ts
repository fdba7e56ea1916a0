// No write without its record, in-process: a disk that fills mid-run, and
// a profile written while its email change is refused. Crashes and signals
// are in tests/cli/journal.test.ts.
import assert from "node:assert/strict";
import { exists, journals, newestLog } from "../support/journal.ts";
import { auditLogs, readLog } from "../support/world.ts";
import { withWorld, writes } from "../support/reliability.ts";

Deno.test("profile written, email change refused: the row lists the fields written with their before values, and revert puts them back", async () => {
  await withWorld({}, async (world) => {
    world.discourse.inject({
      kind: "5xx",
      count: 1000,
      status: 500,
      path: /^\/u\/all\.fields\/preferences\/email\.json$/,
    });
    const result = await world.engine(["--all", "--apply"]);
    assert.equal(result.code, 1, result.stderr);
    const { path, rows } = await newestLog(world.dir);
    const row = rows.find((r) => r.normalized_username === "all.fields")!;
    assert.equal(`${row.action}/${row.status}`, "UPDATE/ERROR");
    assert.match(row.message, /name, location, bio written, then the email/);
    assert.equal(row.fields, "name;location;bio");
    assert.deepEqual(JSON.parse(row.before), {
      name: "Some Fields",
      location: "Guayaquil",
      bio: "Old bio",
    });
    const user = world.discourse.userByUsername("all.fields")!;
    assert.equal(user.name, "All Fields");

    const undo = await world.engine(["revert", path, "--apply"]);
    assert.equal(undo.code, 0, undo.stderr);
    assert.equal(user.name, "Some Fields");
    assert.equal(user.location, "Guayaquil");
    assert.equal(user.bio_raw, "Old bio");
  });
});

/** A tmpfs of `bytes` at `dir`, or why the platform does not allow one. */
const mountTmpfs = (dir: string, bytes: number): string | undefined => {
  try {
    const out = new Deno.Command("mount", {
      args: ["-t", "tmpfs", "-o", `size=${bytes}`, "tmpfs", dir],
      stdout: "null",
      stderr: "piped",
    }).outputSync();
    return out.success ? undefined : new TextDecoder().decode(out.stderr);
  } catch (error) {
    return String(error);
  }
};

const tmpfsRefusal = (() => {
  const probe = Deno.makeTempDirSync({ prefix: "sync-tmpfs-probe-" });
  const refusal = mountTmpfs(probe, 64 * 1024);
  if (refusal === undefined) {
    new Deno.Command("umount", { args: [probe] }).outputSync();
  }
  Deno.removeSync(probe, { recursive: true });
  return refusal;
})();
if (tmpfsRefusal !== undefined) {
  console.warn(
    `skipping the full-disk test: this platform does not let the tests mount a tmpfs (${tmpfsRefusal.trim()}); run them as root on Linux to include it`,
  );
}

/** How often the disk filled after a forum write: the case that matters. */
let fullAfterWrite = 0;

Deno.test({
  name:
    "a disk that fills mid-run: exit 3 saying what reached the forum, never exit 2 after contact; every write sent is logged, at the latest by the next run",
  ignore: tmpfsRefusal !== undefined,
  fn: async () => {
    const page = 4096;
    // Free space from one page (the log cannot even open) to several (the
    // disk fills between a write and its row, or not at all).
    for (let freePages = 1; freePages <= 4; freePages++) {
      await withWorld({}, async (world) => {
        const logDir = `${world.dir}/small`;
        await Deno.mkdir(logDir);
        assert.equal(mountTmpfs(logDir, 16 * page), undefined);
        try {
          const filler = `${logDir}/filler`;
          await Deno.writeFile(filler, new Uint8Array((16 - freePages) * page));
          // One user at a time: each fill level fails at the same point.
          const result = await world.engine([
            "--all",
            "--apply",
            "--concurrency",
            "1",
            "--log-dir",
            logDir,
          ]);
          const contacted = world.moodle.requestCount() +
            world.discourse.requests.length;
          const sent = new Set(
            writes(world.discourse).map((r) =>
              decodeURIComponent(r.path.split("/")[2].replace(/\.json$/, ""))
            ),
          );
          if (result.code === 2) {
            assert.equal(contacted, 0, "exit 2 promises nothing contacted");
            assert.match(result.stderr, /Cannot write the audit log/);
          } else if (result.code === 3) {
            assert.match(
              result.stderr,
              /Cannot write the audit log .*The run stopped there\. (Not logged: |Nothing was sent for )/,
            );
            if (/Not logged: \S+ .*UPDATE\/SUCCESS/.test(result.stderr)) {
              fullAfterWrite++;
            }
          } else {
            assert.equal(result.code, 0, result.stderr);
          }
          const [first] = await auditLogs(logDir);
          // What the first run's log holds, as far as its MAC vouches for it.
          const logged = new Set<string>();
          if (first && await exists(`${first}.mac`)) {
            const seal = JSON.parse(await Deno.readTextFile(`${first}.mac`));
            const bytes = (await Deno.readFile(first)).subarray(0, seal.bytes);
            const sealed = `${first}.sealed`;
            await Deno.remove(filler);
            await Deno.writeFile(sealed, bytes);
            const { rows } = await readLog(sealed);
            await Deno.remove(sealed);
            for (const row of rows) {
              if (row.fields !== "") logged.add(row.normalized_username);
            }
          } else {
            await Deno.remove(filler);
          }
          // Room again: the next run recovers what the first could not log.
          const next = await world.engine([
            "--all",
            "--apply",
            "--log-dir",
            logDir,
          ]);
          assert.equal(next.code, 0, next.stderr);
          const { rows } = await newestLog(logDir);
          for (const row of rows) {
            if (/^recovered from /.test(row.message) && row.fields !== "") {
              logged.add(row.normalized_username);
            }
          }
          for (const username of sent) {
            assert.ok(
              logged.has(username),
              `${freePages} free pages: ${username} was written but no row says so`,
            );
          }
          assert.deepEqual(journals(logDir), []);
        } finally {
          await new Deno.Command("umount", { args: [logDir] }).output();
        }
      });
    }
    assert.ok(fullAfterWrite > 0, "no fill level hit a write before its row");
  },
});
