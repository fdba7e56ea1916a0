import process from "node:process";
import { Command, Options, Prompt } from "@effect/cli";
import { FetchHttpClient, FileSystem, Terminal } from "@effect/platform";
import { Console, Effect, Layer, Option } from "effect";
import denoJson from "../deno.json" with { type: "json" };
import { AuditLog } from "./audit/AuditLog.ts";
import { Discourse } from "./discourse/Discourse.ts";
import { Moodle } from "./moodle/Moodle.ts";
import { consoleReporter } from "./report/console.ts";
import {
  CurrentSettings,
  loadSettings,
  type Settings,
  warnIfReadableByOthers,
} from "./settings.ts";
import { ExitCode, exitCodeOf } from "./sync/outcome.ts";
import { type Decision, runSync } from "./sync/pipeline.ts";
import { describeUser } from "./report/console.ts";

export const version = denoJson.version;

/** What the entry point lends the command: signals live outside Effect. */
export interface Process {
  readonly stopRequested: Effect.Effect<boolean>;
  readonly setExitCode: (code: number) => void;
}

const apply = Options.boolean("apply").pipe(
  Options.withDescription(
    "Write the changes to Discourse. Without it the run is a dry-run that only shows them.",
  ),
);
const user = Options.text("user").pipe(
  Options.withDescription("Sync only this Moodle username."),
  Options.optional,
);
const batchSize = Options.integer("batch-size").pipe(
  Options.withDescription(
    "Users to consider in this run (default: batchSize in settings, 10). 0 means all.",
  ),
  Options.optional,
);
const offset = Options.integer("offset").pipe(
  Options.withDescription(
    "Users to skip from the start of the Moodle list (ordered by Moodle id).",
  ),
  Options.withDefault(0),
);
const all = Options.boolean("all").pipe(
  Options.withDescription("Consider every user from the offset on."),
);
const forceRecreate = Options.boolean("force-recreate").pipe(
  Options.withDescription(
    "Send every enabled field even when Discourse already holds it (repair after a forum restore).",
  ),
);
const settingsFile = Options.text("settings").pipe(
  Options.withDescription(
    "Settings file. It may be absent when environment variables give every required key.",
  ),
  Options.withDefault("./settings.json"),
);
const logDir = Options.text("log-dir").pipe(
  Options.withDescription(
    "Folder for the CSV audit log (default: logDir in settings).",
  ),
  Options.optional,
);
const concurrency = Options.integer("concurrency").pipe(
  Options.withDescription(
    "Users processed at once (default: concurrency in settings, 4). Discourse's rate limit still applies.",
  ),
  Options.optional,
);
const check = Options.boolean("check").pipe(
  Options.withDescription(
    "Dry-run that exits 4 when any change is pending (drift check for CI).",
  ),
);
const json = Options.boolean("json").pipe(
  Options.withDescription(
    "One JSON object per user on stdout, then a summary object; nothing else on stdout.",
  ),
);
const interactive = Options.boolean("interactive").pipe(
  Options.withAlias("i"),
  Options.withDescription(
    "Show each user's pending changes and ask: apply, skip, apply all, quit.",
  ),
);

/** A usage problem: said once, exit 2, nothing contacted. */
const usage = (proc: Process, message: string) =>
  Effect.zipRight(
    Console.error(`error: ${message}`),
    Effect.sync(() => proc.setExitCode(ExitCode.usage)),
  );

const askOperator = (
  pending: Parameters<NonNullable<Parameters<typeof runSync>[0]["confirm"]>>[0],
) =>
  Effect.gen(function* () {
    for (
      const line of describeUser({
        entry: pending.entry,
        row: {} as never,
        changes: pending.plan.changes,
        skipped: pending.plan.skipped,
      })
    ) yield* Console.log(line);
    return yield* Prompt.select<Decision>({
      message: `Apply these changes to ${pending.entry.normalizedUsername}?`,
      choices: [
        { title: "apply", value: "apply" },
        { title: "skip", value: "skip" },
        { title: "apply all remaining", value: "all" },
        { title: "quit", value: "quit" },
      ],
    });
  }).pipe(Effect.orElseSucceed((): Decision => "quit"));

export const makeCommand = (proc: Process) =>
  Command.make(
    "sync-moodle-discourse",
    {
      apply,
      user,
      batchSize,
      offset,
      all,
      forceRecreate,
      settingsFile,
      logDir,
      concurrency,
      check,
      json,
      interactive,
    },
    (flags) =>
      Effect.gen(function* () {
        if (flags.check && (flags.apply || flags.interactive)) {
          return yield* usage(
            proc,
            "--check is a dry-run: it cannot be combined with --apply or --interactive",
          );
        }
        if (flags.interactive && flags.json) {
          return yield* usage(
            proc,
            "--interactive cannot be combined with --json",
          );
        }
        if (flags.interactive && !process.stdin.isTTY) {
          return yield* usage(
            proc,
            "--interactive needs a terminal to ask on; standard input is not one. Use a dry-run, then --apply, in scripts.",
          );
        }
        if (flags.offset < 0) {
          return yield* usage(
            proc,
            `--offset must be 0 or more, not ${flags.offset}`,
          );
        }
        const batchSize = Option.getOrUndefined(flags.batchSize);
        if (batchSize !== undefined && batchSize < 0) {
          return yield* usage(
            proc,
            `--batch-size must be 0 or more, not ${batchSize}`,
          );
        }
        const concurrency = Option.getOrUndefined(flags.concurrency);
        if (concurrency !== undefined && concurrency < 1) {
          return yield* usage(
            proc,
            `--concurrency must be 1 or more, not ${concurrency}`,
          );
        }
        const loaded = yield* loadSettings(flags.settingsFile, process.env)
          .pipe(
            Effect.either,
          );
        if (loaded._tag === "Left") {
          return yield* usage(proc, loaded.left.message);
        }
        const settings: Settings = {
          ...loaded.right,
          logDir: Option.getOrElse(flags.logDir, () => loaded.right.logDir),
          concurrency: concurrency ?? loaded.right.concurrency,
        };
        const fs = yield* FileSystem.FileSystem;
        if (
          yield* fs.exists(flags.settingsFile).pipe(
            Effect.orElseSucceed(() => false),
          )
        ) {
          const warning = yield* warnIfReadableByOthers(flags.settingsFile);
          if (Option.isSome(warning)) {
            yield* Console.error(`warning: ${warning.value}`);
          }
        }
        const applying = flags.apply || flags.interactive;
        const terminal = yield* Terminal.Terminal;
        const services = Layer.mergeAll(
          Moodle.layer,
          Discourse.layer,
          AuditLog.layer({
            dir: settings.logDir,
            env: settings.env,
            mode: applying ? "apply" : "dryrun",
          }),
          consoleReporter({ json: flags.json }),
        ).pipe(
          Layer.provideMerge(Layer.succeed(CurrentSettings, settings)),
          Layer.provide(FetchHttpClient.layer),
        );
        const outcome = yield* runSync({
          apply: applying,
          user: Option.getOrUndefined(flags.user),
          offset: flags.offset,
          batchSize: flags.all ? 0 : batchSize ?? settings.batchSize,
          force: flags.forceRecreate,
          concurrency: settings.concurrency,
          confirm: flags.interactive
            ? (pending) =>
              askOperator(pending).pipe(
                Effect.provideService(Terminal.Terminal, terminal),
              )
            : undefined,
          stopRequested: proc.stopRequested,
        }).pipe(Effect.provide(services), Effect.either);
        if (outcome._tag === "Left") {
          const error = outcome.left;
          yield* Console.error(`error: ${error.message}`);
          proc.setExitCode(
            error._tag === "AuditLogError" ? ExitCode.usage : ExitCode.fatal,
          );
          return;
        }
        const summary = outcome.right;
        if (
          flags.user._tag === "Some" && summary.moodleUsers === 0
        ) {
          yield* Console.error(
            `error: no Moodle user has the username "${flags.user.value}" (usernames are matched exactly, in lower case)`,
          );
          proc.setExitCode(ExitCode.failures);
          return;
        }
        proc.setExitCode(exitCodeOf(summary, flags.check));
      }),
  ).pipe(
    Command.withDescription(
      "Keep Discourse user profiles (name, location, bio, email) in step with Moodle. Dry-run unless --apply.",
    ),
  );

export const makeCli = (proc: Process) =>
  Command.run(makeCommand(proc), {
    name: "sync-moodle-discourse",
    version,
  });
