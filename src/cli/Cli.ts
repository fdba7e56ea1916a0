/**
 * The command tree @effect/cli parses: names only. What each flag means and
 * the ranges of its value are said once, in args.ts (help, completions and
 * the check of argv come from there).
 */
import process from "node:process";
import { Args, Command, Options } from "@effect/cli";
import { Console, Effect, Logger, Option } from "effect";
import denoJson from "../../deno.json" with { type: "json" };
import { PlatformLayer } from "../platform.ts";
import { completionScript, helpText, readRequest } from "./args.ts";
import {
  ExitCode,
  exitCodeOfProgram,
  unexpectedEnding,
  withStop,
} from "./ExitCode.ts";
import { StopSignal } from "./StopSignal.ts";
import { revertCommand } from "../commands/revert.ts";
import { syncCommand } from "../commands/sync.ts";

export const version = denoJson.version;

const settingsFile = Options.text("settings").pipe(
  Options.withDefault("./settings.json"),
);
const logDir = Options.text("log-dir").pipe(Options.optional);
const stateFile = Options.text("state").pipe(Options.optional);

const sync = Command.make(
  "sync-moodle-discourse",
  {
    apply: Options.boolean("apply"),
    user: Options.text("user").pipe(Options.optional),
    batchSize: Options.integer("batch-size").pipe(Options.optional),
    offset: Options.integer("offset").pipe(Options.withDefault(0)),
    all: Options.boolean("all"),
    forceRecreate: Options.boolean("force-recreate"),
    settingsFile,
    logDir,
    stateFile,
    full: Options.boolean("full"),
    concurrency: Options.integer("concurrency").pipe(Options.optional),
    check: Options.boolean("check"),
    json: Options.boolean("json"),
    interactive: Options.boolean("interactive").pipe(Options.withAlias("i")),
    createMissing: Options.boolean("create-missing"),
    allowRemovals: Options.integer("allow-removals").pipe(Options.optional),
    allowEmptyGroups: Options.boolean("allow-empty-groups"),
  },
  syncCommand,
);

const revert = Command.make(
  "revert",
  {
    log: Args.text({ name: "LOG.csv" }),
    apply: Options.boolean("apply"),
    trustEditedLog: Options.boolean("trust-edited-log"),
    json: Options.boolean("json"),
    settingsFile: Options.text("settings").pipe(Options.optional),
    logDir,
    stateFile,
  },
  (flags) =>
    sync.pipe(
      // `--settings` and `--log-dir` may come before `revert` too.
      Effect.flatMap((parent) =>
        revertCommand({
          ...flags,
          settingsFile: Option.getOrElse(
            flags.settingsFile,
            () => parent.settingsFile,
          ),
          logDir: Option.orElse(flags.logDir, () => parent.logDir),
          stateFile: Option.orElse(flags.stateFile, () => parent.stateFile),
        })
      ),
    ),
);

/** Parses argv and runs the command it names. */
const cli = Command.run(
  sync.pipe(Command.withSubcommands([revert])),
  { name: "sync-moodle-discourse", version },
);

/**
 * The whole program as an exit code. Help, version, completions and argv
 * mistakes are answered from the flag table and never reach @effect/cli,
 * whose answer to a typo is "Invalid subcommand ... use 'revert'".
 */
export const program = (argv: ReadonlyArray<string>) => {
  const request = readRequest(argv);
  switch (request._tag) {
    case "Help":
      return answer(helpText(request.command, version));
    case "Version":
      return answer(`${version}\n`);
    case "Completions":
      return answer(completionScript(request.shell));
    case "Invalid":
      return Console.error(`error: ${request.problem}`).pipe(
        Effect.as<number>(ExitCode.usage),
      );
    case "Run":
      return runCommand(argv);
  }
};

const answer = (text: string) =>
  Effect.sync(() => {
    process.stdout.write(text);
    return ExitCode.ok as number;
  });

const runCommand = (argv: ReadonlyArray<string>) =>
  Effect.gen(function* () {
    const code = yield* Effect.scoped(
      exitCodeOfProgram(
        cli([...process.argv.slice(0, 2), ...hoistLogLevel(argv)]),
      ),
    );
    const stop = yield* StopSignal;
    return withStop(code, yield* stop.requested);
  }).pipe(
    Effect.provide(StopSignal.layer),
    Effect.provide(PlatformLayer),
    // Logs (--log-level) go to stderr: stdout is the diff, or --json's objects.
    Effect.provide(
      Logger.replace(
        Logger.defaultLogger,
        Logger.withConsoleError(Logger.stringLogger),
      ),
    ),
    // The platform's own layers may fail too (a refused permission).
    Effect.catchAllCause(unexpectedEnding),
  );

/**
 * @effect/cli reads its built-in `--log-level` only before the command's own
 * flags; operators append it anywhere, so it is moved to the front.
 */
const hoistLogLevel = (given: ReadonlyArray<string>): Array<string> => {
  const hoisted: Array<string> = [];
  const rest: Array<string> = [];
  for (let i = 0; i < given.length; i++) {
    if (given[i].startsWith("--log-level=")) {
      hoisted.push(given[i]);
    } else if (given[i] === "--log-level" && i + 1 < given.length) {
      hoisted.push(given[i], given[i + 1]);
      i++;
    } else {
      rest.push(given[i]);
    }
  }
  return [...hoisted, ...rest];
};
