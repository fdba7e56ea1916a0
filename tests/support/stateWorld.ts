// A forum that lives across several runs while Moodle changes between them:
// each run starts a fake Moodle on the users as they are now, and the state
// store stays in the world's folder beside its settings file.
import assert from "node:assert/strict";
import { startFakeMoodle } from "../doubles/fakeMoodle.ts";
import {
  type DiscourseScenario,
  type FakeDiscourse,
  type RecordedRequest,
  startFakeDiscourse,
} from "../doubles/fakeDiscourse.ts";
import {
  type CliResult,
  doublesEnv,
  runCli,
  spawnCli,
  type Spawned,
  writeSettings,
} from "./cli.ts";
import { worldCredentials, worldRateLimit } from "./world.ts";
import { readAll } from "./state.ts";
import type { StoredUser } from "../../src/state/Store.ts";

export interface Summary {
  readonly reads: {
    readonly mode: "state-assisted" | "full";
    readonly why: string | null;
    readonly single_profile_reads: number;
    readonly unchanged: number;
    readonly forum_changed: number;
    readonly store_updated: number;
  };
  readonly counts: Readonly<Record<string, number>>;
  readonly discourse_requests: number;
}

export interface StateRun extends CliResult {
  /** The `--json` summary line. */
  readonly summary: Summary;
  /** What the forum received during this run. */
  readonly requests: ReadonlyArray<RecordedRequest>;
}

export interface StateWorld {
  readonly discourse: FakeDiscourse;
  readonly dir: string;
  readonly settingsPath: string;
  /** `sync-state.sqlite` beside the settings file: the default store. */
  readonly statePath: string;
  /** Moodle's users for the next run; edit them between runs. */
  readonly moodleUsers: Array<Record<string, unknown>>;
  /** Runs the CLI with `--json` against a fresh Moodle on `moodleUsers`. */
  readonly run: (
    args: ReadonlyArray<string>,
    env?: Record<string, string>,
  ) => Promise<StateRun>;
  /** A run in the background, to kill; Moodle stays up until it ends. */
  readonly spawn: (args: ReadonlyArray<string>) => Promise<Spawned>;
  /** The CLI as is (no `--json` added), pointed as the last run was. */
  readonly cli: (args: ReadonlyArray<string>) => Promise<CliResult>;
  /** The store's entries for this pair, opened read-only (after a run). */
  readonly entries: () => Promise<ReadonlyMap<number, StoredUser>>;
}

/** `GET /u/{username}.json` and `/u/by-external/{id}.json`: one profile each. */
export const profileReads = (requests: ReadonlyArray<RecordedRequest>) =>
  requests.filter((r) =>
    r.method === "GET" && /^\/u\/[^/]+\.json$/.test(r.path)
  );

export const forumWrites = (requests: ReadonlyArray<RecordedRequest>) =>
  requests.filter((r) => r.method !== "GET");

export const withStateWorld = async (
  options: {
    readonly moodleUsers: Array<Record<string, unknown>>;
    readonly forumUsers: DiscourseScenario["users"];
    readonly settings?: Record<string, unknown>;
  },
  body: (world: StateWorld) => Promise<void>,
): Promise<void> => {
  const discourse = await startFakeDiscourse({
    apiKey: worldCredentials.discourseKey,
    apiUser: "system",
    users: options.forumUsers,
    rateLimit: worldRateLimit,
  });
  const dir = await Deno.makeTempDir({ prefix: "sync-state-" });
  try {
    const settingsPath = await writeSettings(dir, {
      env: "test",
      logDir: dir,
      lockDir: `${dir}/locks`,
      moodle: { endpoint: "http://placeholder.invalid", token: "x" },
      discourse: {
        url: "http://placeholder.invalid",
        apiKey: "x",
        requestsPerMinute: 6000,
      },
      ...options.settings,
    });
    const moodleUsers = options.moodleUsers;
    // One Moodle address for every run: the store is keyed by it.
    let port: number | undefined;
    let moodleEndpoint = "";
    let lastEnv: Record<string, string> = {};
    const startMoodle = async () => {
      const moodle = await startFakeMoodle({
        token: worldCredentials.moodleToken,
        users: moodleUsers,
        port,
      });
      port = Number(new URL(moodle.endpoint).port);
      moodleEndpoint = moodle.endpoint;
      return moodle;
    };
    const run = async (
      args: ReadonlyArray<string>,
      env: Record<string, string> = {},
    ): Promise<StateRun> => {
      const moodle = await startMoodle();
      const before = discourse.requests.length;
      lastEnv = { ...doublesEnv(moodle, discourse), ...env };
      try {
        const result = await runCli(
          ["--settings", settingsPath, "--json", ...args],
          { env: lastEnv },
        );
        const lines = result.stdout.trim().split("\n");
        const summary = JSON.parse(lines[lines.length - 1]);
        assert.equal(summary.type, "summary", result.stdout + result.stderr);
        return {
          ...result,
          summary,
          requests: discourse.requests.slice(before),
        };
      } finally {
        await moodle.close();
      }
    };
    await body({
      discourse,
      dir,
      settingsPath,
      statePath: `${dir}/sync-state.sqlite`,
      moodleUsers,
      run,
      spawn: async (args) => {
        const moodle = await startMoodle();
        lastEnv = doublesEnv(moodle, discourse);
        const spawned = spawnCli(
          ["--settings", settingsPath, ...args],
          lastEnv,
        );
        return { ...spawned, done: spawned.done.finally(() => moodle.close()) };
      },
      cli: (args) =>
        runCli(["--settings", settingsPath, ...args], { env: lastEnv }),
      entries: () =>
        readAll({
          path: `${dir}/sync-state.sqlite`,
          moodleEndpoint,
          discourseUrl: discourse.url,
          readOnly: true,
        }),
    });
  } finally {
    await discourse.close();
    await Deno.remove(dir, { recursive: true });
  }
};
