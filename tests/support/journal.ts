// What the journal tests look at: the newest log, the journals left beside
// it, and files' modes.
import assert from "node:assert/strict";
import { auditLogs, readLog } from "./world.ts";

/** Rows of the newest log in `dir` (the world's folder by default). */
export const newestLog = async (dir: string) => {
  const logs = await auditLogs(dir);
  assert.ok(logs.length > 0, `no audit log in ${dir}`);
  const path = logs[logs.length - 1];
  return { path, ...(await readLog(path)) };
};

export const modeOf = async (path: string) =>
  (await Deno.stat(path)).mode! & 0o777;

/** Journals left in `dir`. */
export const journals = (dir: string): string[] =>
  [...Deno.readDirSync(dir)].filter((e) => e.name.endsWith(".journal")).map((
    e,
  ) => e.name);

export const exists = async (path: string) => {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
};
