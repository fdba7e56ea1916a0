// The one world of the tests: a fake Moodle, a fake Discourse, a temp
// folder with settings, and the program pointed at them, run either as the
// operator runs it (a subprocess: exit codes, signals, permissions, the
// terminal) or in-process through the app's own layers (the engine tier:
// the same argv, output and exit code, without a process's start-up).
// The clients that pin the doubles' own behaviour live here too.
import assert from "node:assert/strict";
import process from "node:process";
import { parse } from "csv-parse/sync";
import { Effect } from "effect";
import { program } from "../../src/cli/Cli.ts";
import { denoRunFlags } from "../../src/permissions.ts";
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

const mainModule = new URL("../../src/main.ts", import.meta.url).pathname;
/** Named, so that the CLI finds its imports from any working folder. */
const configFile = new URL("../../deno.json", import.meta.url).pathname;

export interface CliResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** `deno run` with the permissions the compiled binary gets, on src/main.ts. */
export const cliArgs = (args: ReadonlyArray<string>): string[] => [
  "run",
  "--config",
  configFile,
  ...denoRunFlags,
  mainModule,
  ...args,
];

/** A clean environment: only what is given, as cron would give it. */
export const cliEnv = (
  env: Record<string, string> = {},
): Record<string, string> => ({
  NO_COLOR: "1",
  PATH: Deno.env.get("PATH") ?? "",
  HOME: Deno.env.get("HOME") ?? "/tmp",
  ...env,
});

/** The CLI as an operator runs it: a subprocess, from source. */
export const runCli = async (
  args: ReadonlyArray<string>,
  options: {
    readonly env?: Record<string, string>;
    readonly cwd?: string;
  } = {},
): Promise<CliResult> => {
  const command = new Deno.Command(Deno.execPath(), {
    args: cliArgs(args),
    cwd: options.cwd,
    env: cliEnv(options.env),
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  });
  const output = await command.output();
  const decoder = new TextDecoder();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
};

/** The environment that points the CLI at a pair of doubles. */
export const doublesEnv = (
  moodle: { readonly endpoint: string; readonly token: string },
  discourse: {
    readonly url: string;
    readonly apiKey: string;
    readonly apiUser: string;
  },
): Record<string, string> => ({
  MOODLE_ENDPOINT: moodle.endpoint,
  MOODLE_TOKEN: moodle.token,
  DISCOURSE_URL: discourse.url,
  DISCOURSE_API_KEY: discourse.apiKey,
  DISCOURSE_API_USER: discourse.apiUser,
});

/** Every CSV audit log in `dir`, oldest first. */
export const auditLogs = async (dir: string): Promise<string[]> => {
  const names: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    if (entry.isFile && /^sync_log_.*\.csv$/.test(entry.name)) {
      names.push(`${dir}/${entry.name}`);
    }
  }
  return names.sort();
};

export type LogRow = Record<string, string>;

/** Parses a log strictly: every row must have exactly the header's columns. */
export const readLog = async (
  path: string,
): Promise<{ header: string[]; rows: LogRow[] }> => {
  const text = await Deno.readTextFile(path);
  const records: string[][] = parse(text, { relax_column_count: false });
  const [header, ...rest] = records;
  return {
    header,
    rows: rest.map((cells) =>
      Object.fromEntries(header.map((h, i) => [h, cells[i]]))
    ),
  };
};

export const writeSettings = async (
  dir: string,
  settings: Record<string, unknown>,
): Promise<string> => {
  const path = `${dir}/settings.json`;
  await Deno.writeTextFile(path, JSON.stringify(settings, null, 2));
  await Deno.chmod(path, 0o600);
  return path;
};

/** A CLI run in the background, to signal or kill. */
export interface Spawned {
  readonly pid: number;
  readonly child: Deno.ChildProcess;
  kill(signal: Deno.Signal): void;
  /** Exit code and everything printed. */
  readonly done: Promise<CliResult>;
}

export const spawnCli = (
  args: ReadonlyArray<string>,
  env: Record<string, string>,
): Spawned => {
  const child = new Deno.Command(Deno.execPath(), {
    args: cliArgs(args),
    env: cliEnv(env),
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const done = child.output().then((output) => ({
    code: output.code,
    stdout: new TextDecoder().decode(output.stdout),
    stderr: new TextDecoder().decode(output.stderr),
  }));
  return {
    pid: child.pid,
    child,
    kill: (signal) => {
      try {
        child.kill(signal);
      } catch {
        // already exited
      }
    },
    done,
  };
};

let inProcessRunning = false;

/** Replaces `key` of `target` for the duration of a run; returns the undo. */
const swap = (target: object, key: string, value: unknown): () => void => {
  const own = Object.getOwnPropertyDescriptor(target, key);
  Object.defineProperty(target, key, {
    value,
    configurable: true,
    writable: true,
  });
  return () => {
    if (own === undefined) Reflect.deleteProperty(target, key);
    else Object.defineProperty(target, key, own);
  };
};

/**
 * The program as `runCli` runs it, but in this process: the same argv, the
 * environment `cliEnv` gives (and nothing else), no terminal, and every line
 * it prints, on either stream, caught. The app's own layers
 * (src/cli/AppLayer.ts) do the work; only the process around them is
 * skipped. What only a process shows (permissions, signals, the terminal,
 * exit through `runMain`) stays with `runCli`.
 */
export const runInProcess = async (
  args: ReadonlyArray<string>,
  options: { readonly env?: Record<string, string> } = {},
): Promise<CliResult> => {
  // One process, one environment and one pair of streams: runs that
  // overlapped would read each other's.
  assert.ok(!inProcessRunning, "in-process runs cannot overlap; use runCli");
  inProcessRunning = true;
  let stdout = "";
  let stderr = "";
  const capture = (append: (text: string) => void) => (chunk: unknown) => {
    append(
      chunk instanceof Uint8Array
        ? new TextDecoder().decode(chunk)
        : String(chunk),
    );
    return true;
  };
  const toStdout = capture((text) => (stdout += text));
  const toStderr = capture((text) => (stderr += text));
  const line = (values: ReadonlyArray<unknown>) =>
    `${
      values.map((v) => typeof v === "string" ? v : Deno.inspect(v)).join(" ")
    }\n`;
  const out = (...values: ReadonlyArray<unknown>) =>
    void toStdout(line(values));
  const err = (...values: ReadonlyArray<unknown>) =>
    void toStderr(line(values));
  const undo = [
    swap(process, "env", cliEnv(options.env)),
    swap(process.stdout, "write", toStdout),
    swap(process.stderr, "write", toStderr),
    swap(process.stdin, "isTTY", false),
    swap(process.stdout, "isTTY", false),
    swap(process.stderr, "isTTY", false),
    swap(console, "log", out),
    swap(console, "info", out),
    swap(console, "debug", out),
    swap(console, "error", err),
    swap(console, "warn", err),
    swap(console, "trace", err),
  ];
  try {
    const code = await Effect.runPromise(program(args));
    return { code, stdout, stderr };
  } finally {
    for (const restore of undo.reverse()) restore();
    inProcessRunning = false;
  }
};

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
  /** The same run in-process (the engine tier): see `runInProcess`. */
  readonly engine: (
    args: ReadonlyArray<string>,
    env?: Record<string, string>,
  ) => Promise<CliResult>;
  readonly spawn: (args: ReadonlyArray<string>) => Spawned;
}

/** Limits high enough that a test's few requests never meet them. */
export const worldRateLimit = {
  adminPerMinute: 6000,
  ipPer10Seconds: 6000,
  ipPerMinute: 6000,
};

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
    rateLimit: worldRateLimit,
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
      engine: (args, extraEnv) =>
        runInProcess(["--settings", settingsPath, ...args], {
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

// ---------------------------------------------------------------------------
// Clients for the tests that pin the doubles' behaviour: they start a
// double and call it as a real client would; the tests judge the answers.

/** Runs `body` against a double started for it, closed whatever happens. */
const withDouble = <Scenario, Double extends { close(): Promise<void> }>(
  start: (scenario: Scenario) => Promise<Double>,
) =>
async (
  scenario: Scenario,
  body: (double: Double) => Promise<void>,
): Promise<void> => {
  const double = await start(scenario);
  try {
    await body(double);
  } finally {
    await double.close();
  }
};

export const withMoodle = withDouble(startFakeMoodle);
export const withDiscourse = withDouble(startFakeDiscourse);

export const callMoodle = async (
  moodle: FakeMoodle,
  params: Record<string, string>,
  options: { token?: string | null; json?: boolean; headers?: HeadersInit } =
    {},
) => {
  const form = new URLSearchParams();
  if (options.token !== null) {
    form.set("wstoken", options.token ?? moodle.token);
  }
  if (options.json !== false) form.set("moodlewsrestformat", "json");
  for (const [key, value] of Object.entries(params)) form.append(key, value);
  const response = await fetch(moodle.endpoint, {
    method: "POST",
    body: form,
    headers: options.headers,
  });
  const text = await response.text();
  return {
    status: response.status,
    text,
    type: response.headers.get("content-type") ?? "",
  };
};

export const moodleJson = async (
  moodle: FakeMoodle,
  params: Record<string, string>,
  options: { token?: string | null; headers?: HeadersInit } = {},
  // deno-lint-ignore no-explicit-any
): Promise<any> => {
  const { status, text } = await callMoodle(moodle, params, options);
  assert.equal(status, 200);
  return JSON.parse(text);
};

export interface ApiOptions {
  method?: string;
  json?: unknown;
  form?: Record<string, string>;
  auth?: { key: string; user: string } | false;
  accept?: string | false;
}

export const api = async (
  discourse: FakeDiscourse,
  path: string,
  options: ApiOptions = {},
) => {
  const headers = new Headers();
  if (options.accept !== false) {
    headers.set("Accept", options.accept ?? "application/json");
  }
  const auth = options.auth ??
    { key: discourse.apiKey, user: discourse.apiUser };
  if (auth) {
    headers.set("api-key", auth.key);
    headers.set("API-USERNAME", auth.user);
  }
  let body: BodyInit | undefined;
  if (options.json !== undefined) {
    headers.set("Content-Type", "application/json");
    body = JSON.stringify(options.json);
  } else if (options.form) {
    body = new URLSearchParams(options.form);
  }
  const response = await fetch(`${discourse.url}${path}`, {
    method: options.method ?? "GET",
    headers,
    body,
  });
  const text = await response.text();
  return {
    status: response.status,
    text,
    headers: response.headers,
    // deno-lint-ignore no-explicit-any
    json: (): any => JSON.parse(text),
  };
};

export const invalidCredentials = {
  errors: [
    "You do not have permission to view the requested resource. The API username or key is invalid.",
  ],
  error_type: "invalid_access",
};
export const notFound = {
  errors: ["The requested URL or resource could not be found."],
  error_type: "not_found",
};
