import { parse } from "csv-parse/sync";
import { denoRunFlags } from "../../src/permissions.ts";

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
