import assert from "node:assert/strict";
import { type MoodleScenario, startFakeMoodle } from "../doubles/fakeMoodle.ts";
import {
  type DiscourseScenario,
  startFakeDiscourse,
} from "../doubles/fakeDiscourse.ts";
import {
  auditLogs,
  doublesEnv,
  type LogRow,
  readLog,
  runCli,
  writeSettings,
} from "./cli.ts";

/** A fake Moodle, a fake Discourse, a temp folder, and the CLI pointed at them. */
export interface World {
  readonly moodle: Awaited<ReturnType<typeof startFakeMoodle>>;
  readonly discourse: Awaited<ReturnType<typeof startFakeDiscourse>>;
  readonly dir: string;
  readonly settingsPath: string;
  readonly env: Record<string, string>;
  readonly run: (args: string[]) => ReturnType<typeof runCli>;
}

export const worldCredentials = {
  moodleToken: "moodle-token-3f9a",
  discourseKey: "discourse-key-77c1",
} as const;

export const withWorld = async (
  options: {
    readonly moodleUsers: MoodleScenario["users"];
    readonly forumUsers: DiscourseScenario["users"];
    readonly settings?: Record<string, unknown>;
    readonly discourse?: Partial<DiscourseScenario>;
  },
  body: (world: World) => Promise<void>,
) => {
  const moodle = await startFakeMoodle({
    token: worldCredentials.moodleToken,
    users: options.moodleUsers,
  });
  const discourse = await startFakeDiscourse({
    apiKey: worldCredentials.discourseKey,
    apiUser: "system",
    users: options.forumUsers,
    rateLimit: {
      adminPerMinute: 6000,
      ipPer10Seconds: 6000,
      ipPerMinute: 6000,
    },
    ...options.discourse,
  });
  const dir = await Deno.makeTempDir({ prefix: "sync-cli-" });
  try {
    const settingsPath = await writeSettings(dir, {
      env: "test",
      // The environment points these at the doubles, as an operator's would.
      moodle: { endpoint: "http://placeholder.invalid", token: "x" },
      discourse: {
        url: "http://placeholder.invalid",
        apiKey: "x",
        requestsPerMinute: 6000,
      },
      logDir: dir,
      exclude: { usernames: ["test*"] },
      ...options.settings,
    });
    const env = doublesEnv(moodle, discourse);
    await body({
      moodle,
      discourse,
      dir,
      settingsPath,
      env,
      run: (args) => runCli(["--settings", settingsPath, ...args], { env }),
    });
  } finally {
    await moodle.close();
    await discourse.close();
    await Deno.remove(dir, { recursive: true });
  }
};

/** The newest audit log of the world's runs. */
export const lastLog = async (world: World) => {
  const logs = await auditLogs(world.dir);
  assert.ok(logs.length > 0, "no audit log written");
  return readLog(logs[logs.length - 1]);
};

export const byMoodleId = (rows: LogRow[]) =>
  new Map(rows.map((row) => [Number(row.moodle_id), row]));

/** Requests that change something in the forum. */
export const writes = (world: World) =>
  world.discourse.requests.filter((r) => r.method !== "GET");

export const forumState = (world: World) =>
  JSON.stringify([...world.discourse.users.values()]);
