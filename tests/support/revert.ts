// What the revert tests start from: an --apply run's log, and that log
// edited the way someone tampering with it would.
import assert from "node:assert/strict";
import { auditLogs, readLog, type World } from "./world.ts";

/** Syncs every user with --apply (in-process); the log it wrote. */
export const applyLog = async (world: World) => {
  const result = await world.engine(["--all", "--apply"]);
  assert.equal(result.code, 0, result.stderr);
  const logs = await auditLogs(world.dir);
  const path = logs.find((p) =>
    /sync_log_test_apply_\d{8}_\d{6}\.csv$/.test(p)
  );
  assert.ok(path, `no apply log among ${logs}`);
  return path;
};

export const logMatching = async (world: World, pattern: RegExp) => {
  const path = (await auditLogs(world.dir)).find((p) => pattern.test(p));
  assert.ok(path, `no log matching ${pattern}`);
  return { path, ...(await readLog(path)) };
};

/** The apply log with jose's `before` name changed, same length: a valid CSV. */
export const forgeLog = async (path: string) => {
  const text = await Deno.readTextFile(path);
  assert.ok(text.includes('""name"":""Jose Nunez""'));
  await Deno.writeTextFile(
    path,
    text.replace('""name"":""Jose Nunez""', '""name"":""Evil Nunez""'),
  );
};
