import assert from "node:assert/strict";
import {
  type FakeMoodle,
  type MoodleScenario,
  startFakeMoodle,
} from "../doubles/fakeMoodle.ts";
import {
  type DiscourseScenario,
  type FakeDiscourse,
  startFakeDiscourse,
} from "../doubles/fakeDiscourse.ts";
import {
  auditLogs,
  type CliResult,
  doublesEnv,
  type LogRow,
  readLog,
  runCli,
  spawnCli,
  type Spawned,
  writeSettings,
} from "./cli.ts";

/** A fake Moodle, a fake Discourse, a temp folder, and the CLI pointed at them. */
export interface World {
  readonly moodle: FakeMoodle;
  readonly discourse: FakeDiscourse;
  /** The scenario object the double reads its key from: tests may revoke it. */
  readonly discourseScenario: DiscourseScenario;
  readonly dir: string;
  /** A lock folder of this world's own, so parallel worlds never share one. */
  readonly lockDir: string;
  readonly settingsPath: string;
  readonly env: Record<string, string>;
  readonly run: (
    args: ReadonlyArray<string>,
    env?: Record<string, string>,
  ) => Promise<CliResult>;
  readonly spawn: (args: ReadonlyArray<string>) => Spawned;
}

export const worldCredentials = {
  moodleToken: "moodle-token-3f9a",
  discourseKey: "discourse-key-77c1",
} as const;

export interface WorldOptions {
  readonly moodleUsers: MoodleScenario["users"];
  readonly forumUsers: DiscourseScenario["users"];
  /** Settings beside the doubles' own; `moodle` and `discourse` are merged. */
  readonly settings?: Record<string, unknown>;
  readonly discourse?: Partial<DiscourseScenario>;
  readonly moodle?: Partial<MoodleScenario>;
  readonly moodleToken?: string;
  /** Timeouts and retries, merged under `settings.moodle`/`discourse`. */
  readonly tuning?: {
    readonly moodle?: Record<string, unknown>;
    readonly discourse?: Record<string, unknown>;
  };
}

export const withWorld = async (
  options: WorldOptions,
  body: (world: World) => Promise<void>,
): Promise<void> => {
  const moodle = await startFakeMoodle({
    token: options.moodleToken ?? worldCredentials.moodleToken,
    users: options.moodleUsers,
    ...options.moodle,
  });
  const discourseScenario: DiscourseScenario = {
    apiKey: worldCredentials.discourseKey,
    apiUser: "system",
    users: options.forumUsers,
    rateLimit: {
      adminPerMinute: 6000,
      ipPer10Seconds: 6000,
      ipPerMinute: 6000,
    },
    ...options.discourse,
  };
  const discourse = await startFakeDiscourse(discourseScenario);
  const dir = await Deno.makeTempDir({ prefix: "sync-cli-" });
  const lockDir = `${dir}/locks`;
  try {
    const extra = options.settings ?? {};
    const settingsPath = await writeSettings(dir, {
      env: "test",
      logDir: dir,
      lockDir,
      exclude: { usernames: ["test*"] },
      ...extra,
      // The environment points these at the doubles, as an operator's would.
      moodle: {
        endpoint: "http://placeholder.invalid",
        token: "x",
        ...options.tuning?.moodle,
        ...(extra.moodle as Record<string, unknown> | undefined),
      },
      discourse: {
        url: "http://placeholder.invalid",
        apiKey: "x",
        requestsPerMinute: 6000,
        ...options.tuning?.discourse,
        ...(extra.discourse as Record<string, unknown> | undefined),
      },
    });
    const env = doublesEnv(moodle, discourse);
    await body({
      moodle,
      discourse,
      discourseScenario,
      dir,
      lockDir,
      settingsPath,
      env,
      run: (args, extraEnv) =>
        runCli(["--settings", settingsPath, ...args], {
          env: { ...env, ...extraEnv },
        }),
      spawn: (args) => spawnCli(["--settings", settingsPath, ...args], env),
    });
  } finally {
    await moodle.close();
    await discourse.close();
    await Deno.remove(dir, { recursive: true });
  }
};

/** The rows of the newest audit log in the world's folder. */
export const lastLog = async (
  world: Pick<World, "dir">,
): Promise<{ path: string; header: string[]; rows: LogRow[] }> => {
  const logs = await auditLogs(world.dir);
  assert.ok(logs.length > 0, "no audit log written");
  const path = logs[logs.length - 1];
  return { path, ...(await readLog(path)) };
};

export const byMoodleId = (rows: LogRow[]) =>
  new Map(rows.map((row) => [Number(row.moodle_id), row]));

/** Requests that change something in the forum. */
export const writes = (world: World) =>
  world.discourse.requests.filter((r) => r.method !== "GET");

export const forumState = (world: World) =>
  JSON.stringify([...world.discourse.users.values()]);
