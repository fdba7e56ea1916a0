import process from "node:process";
import { Args, Command, Options, Prompt } from "@effect/cli";
import * as FileSystem from "@effect/platform/FileSystem";
import * as Terminal from "@effect/platform/Terminal";
import { Console, Effect, Either, Layer, Option } from "effect";
import denoJson from "../deno.json" with { type: "json" };
import { AuditLog, AuditLogError, type RunMode } from "./audit/AuditLog.ts";
import { Journal } from "./audit/Journal.ts";
import { sealScope } from "./audit/LogMac.ts";
import { Discourse } from "./discourse/Discourse.ts";
import { Moodle } from "./moodle/Moodle.ts";
import { discourseConfig, moodleConfig } from "./config/clients.ts";
import { defaultLockDir, forumKey, withForumLock } from "./lock.ts";
import { readApplyLog } from "./revert/readLog.ts";
import { runRevert } from "./revert/runRevert.ts";
import { consoleReporter } from "./report/console.ts";
import { HttpLayer } from "./platform.ts";
import { CurrentSettings, type Settings } from "./config/Settings.ts";
import {
  loadSettings,
  readExclusionList,
  warnIfReadableByOthers,
} from "./config/load.ts";
import { ExitCode, exitCodeOf } from "./sync/outcome.ts";
import { type Decision, runSync } from "./sync/runSync.ts";
import { createMissingProblem } from "./sync/create.ts";
import { describeFullChanges, describePending } from "./report/console.ts";
import { type Scrub, scrubberFor } from "./domain/secrets.ts";
import { terminalSafe, terminalSafeJson } from "./domain/terminal.ts";

export const version = denoJson.version;

/** What the entry point lends the command: signals live outside Effect. */
export interface Process {
  readonly stopRequested: Effect.Effect<boolean>;
  /** Completes at a second signal: stop before any further write. */
  readonly stopNow: Effect.Effect<void>;
  readonly setExitCode: (code: number) => void;
}

// Names only: what each flag means is said once, in args.ts (help,
// completions and the check of argv come from there).
const apply = Options.boolean("apply");
const user = Options.text("user").pipe(Options.optional);
const batchSize = Options.integer("batch-size").pipe(Options.optional);
const offset = Options.integer("offset").pipe(Options.withDefault(0));
const all = Options.boolean("all");
const forceRecreate = Options.boolean("force-recreate");
const settingsFile = Options.text("settings").pipe(
  Options.withDefault("./settings.json"),
);
const logDir = Options.text("log-dir").pipe(Options.optional);
const concurrency = Options.integer("concurrency").pipe(Options.optional);
const check = Options.boolean("check");
const json = Options.boolean("json");
const interactive = Options.boolean("interactive").pipe(Options.withAlias("i"));

const createMissing = Options.boolean("create-missing");

/**
 * Takes the forum's lock for a run that writes, or says who holds it and
 * sets exit 3. Some(lock) when taken; None when the run must stop.
 */
const lockForum = (
  proc: Process,
  settings: Settings,
  command: string,
  json = false,
) =>
  withForumLock({
    dir: settings.lockDir ?? defaultLockDir(),
    discourseUrl: settings.discourse.url,
    command,
  }).pipe(
    Effect.tap((lock) =>
      Option.match(lock.tookOverFrom, {
        onNone: () => Effect.void,
        onSome: (dead) =>
          Console.error(
            `warning: took over the lock of ${settings.discourse.url} left by pid ${dead.pid} on ${dead.host} (started ${dead.startedAt}), which is no longer running: that run was killed or crashed, so check its audit log`,
          ),
      })
    ),
    Effect.map(Option.some),
    Effect.catchAll((error) =>
      Effect.as(
        endRun(
          proc,
          json,
          error.message,
          error._tag === "LockHeld" ? ExitCode.fatal : ExitCode.usage,
        ),
        Option.none(),
      )
    ),
  );

/**
 * An error as the operator reads it: secrets hidden, server text's controls
 * escaped (messages may span lines).
 */
const printError = (message: string, scrub: Scrub = (text) => text) =>
  Console.error(
    `error: ${terminalSafe(scrub(message), { keepNewlines: true })}`,
  );

/**
 * The audit log and its journal. An apply log is sealed (`LOG.csv.mac`) for
 * the forum and environment, so `revert` can tell it from an edited file.
 */
export const auditLayers = (
  settings: Settings,
  options: { readonly env: string; readonly mode: RunMode },
) =>
  Journal.layer({ forum: forumKey(settings.discourse.url) }).pipe(
    Layer.provideMerge(AuditLog.layer({
      dir: settings.logDir,
      env: options.env,
      mode: options.mode,
      scrub: scrubberFor(settings),
      seal: options.mode === "apply"
        ? sealScope(
          settings.discourse.apiKey,
          settings.discourse.url,
          settings.env,
        )
        : undefined,
    })),
  );

/**
 * A run that failed as a whole: exit 3. Except a log that could not even be
 * opened: nothing was contacted, exit 2. A log that failed after the run
 * contacted a server is exit 3, and its message says what reached the forum.
 */
const runFailed = (
  proc: Process,
  settings: Settings,
  error: { readonly _tag: string; readonly message: string },
  logFile: Option.Option<string>,
  json = false,
) =>
  Effect.zipRight(
    endRun(
      proc,
      json,
      error.message,
      error instanceof AuditLogError && error.reached === undefined
        ? ExitCode.usage
        : error._tag === "UnknownMoodleUser" ||
            error._tag === "NoMoodleUsers"
        ? ExitCode.failures
        : ExitCode.fatal,
      scrubberFor(settings),
    ),
    Option.match(logFile, {
      onNone: () => Effect.void,
      onSome: (path) =>
        Console.error(
          `The audit log ${path} holds the users done before the error.`,
        ),
    }),
  );

/**
 * A run's result and the audit log it left, if any: a run stopped by an
 * error names the file that holds the users done before it.
 */
const withLogFile = <A, E, R>(run: Effect.Effect<A, E, R>) =>
  Effect.flatMap(
    AuditLog,
    (audit) =>
      Effect.flatMap(Effect.either(run), (outcome) =>
        Effect.map(audit.written, (logFile) => ({ outcome, logFile }))),
  );

/** The services themselves failed (a log that cannot be made): no log. */
const servicesFailed = <E>(error: E) =>
  Effect.succeed({
    outcome: Either.left(error),
    logFile: Option.none<string>(),
  });

/**
 * Ends a run that has no summary of its own: the error on stderr and, with
 * --json, a summary object on stdout too, so a script reading stdout alone
 * still learns that the run failed, why, and its exit code.
 */
const endRun = (
  proc: Process,
  json: boolean,
  message: string,
  code: number,
  scrub: Scrub = (text) => text,
) =>
  Effect.gen(function* () {
    yield* printError(message, scrub);
    if (json) {
      yield* Console.log(
        scrub(
          terminalSafeJson({
            type: "summary",
            error: message,
            exit_code: code,
          }),
        ),
      );
    }
    proc.setExitCode(code);
  });

/** A usage problem: said once, exit 2, nothing contacted. */
const usage = (proc: Process, message: string, json = false) =>
  endRun(proc, json, message, ExitCode.usage);

const askOperator = (
  pending: Parameters<NonNullable<Parameters<typeof runSync>[0]["confirm"]>>[0],
) =>
  Effect.gen(function* () {
    // The progress bar shares the terminal: clear its line first.
    if (process.stderr.isTTY) process.stderr.write("\r\x1b[K");
    const { changes } = pending.plan;
    for (const line of describePending(pending.entry, changes)) {
      yield* Console.log(line);
    }
    // Long values are cut above: the operator may see them whole first.
    while (true) {
      const answer = yield* Prompt.select<Decision | "show">({
        message: `Apply these changes to ${pending.entry.normalizedUsername}?`,
        choices: [
          { title: "apply", value: "apply" },
          { title: "skip", value: "skip" },
          { title: "apply all remaining", value: "all" },
          { title: "show full changes", value: "show" },
          { title: "quit", value: "quit" },
        ],
      });
      if (answer !== "show") return answer;
      for (const line of describeFullChanges(changes)) yield* Console.log(line);
    }
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
      createMissing,
    },
    (flags) =>
      // Scoped: the forum lock of an --apply run is released when it ends.
      Effect.scoped(Effect.gen(function* () {
        if (flags.check && (flags.apply || flags.interactive)) {
          return yield* usage(
            proc,
            "--check is a dry-run: it cannot be combined with --apply or --interactive",
            flags.json,
          );
        }
        if (flags.interactive && flags.json) {
          return yield* usage(
            proc,
            "--interactive cannot be combined with --json",
            flags.json,
          );
        }
        if (flags.interactive && !process.stdin.isTTY) {
          return yield* usage(
            proc,
            "--interactive needs a terminal to ask on; standard input is not one. Use a dry-run, then --apply, in scripts.",
            flags.json,
          );
        }
        if (flags.offset < 0) {
          return yield* usage(
            proc,
            `--offset must be 0 or more, not ${flags.offset}`,
            flags.json,
          );
        }
        const batchSize = Option.getOrUndefined(flags.batchSize);
        if (batchSize !== undefined && batchSize < 0) {
          return yield* usage(
            proc,
            `--batch-size must be 0 or more, not ${batchSize}`,
            flags.json,
          );
        }
        const concurrency = Option.getOrUndefined(flags.concurrency);
        if (concurrency !== undefined && concurrency < 1) {
          return yield* usage(
            proc,
            `--concurrency must be 1 or more, not ${concurrency}`,
            flags.json,
          );
        }
        const loaded = yield* loadSettings(flags.settingsFile, process.env)
          .pipe(
            Effect.either,
          );
        if (loaded._tag === "Left") {
          return yield* usage(proc, loaded.left.message, flags.json);
        }
        const excludedByFile = yield* readExclusionList(
          loaded.right,
          flags.settingsFile,
        ).pipe(Effect.either);
        if (excludedByFile._tag === "Left") {
          return yield* usage(proc, excludedByFile.left.message, flags.json);
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
        const creationProblem = flags.createMissing
          ? createMissingProblem(settings)
          : undefined;
        if (creationProblem !== undefined) {
          return yield* usage(proc, creationProblem, flags.json);
        }
        if (
          applying &&
          Option.isNone(
            yield* lockForum(proc, settings, "sync --apply", flags.json),
          )
        ) {
          return;
        }
        const terminal = yield* Terminal.Terminal;
        const services = Layer.mergeAll(
          Moodle.layer(moodleConfig(settings)),
          Discourse.layer(discourseConfig(settings)),
          auditLayers(settings, {
            env: settings.env,
            mode: applying ? "apply" : "dryrun",
          }),
          consoleReporter({
            json: flags.json,
            scrub: scrubberFor(settings),
            exitCode: (summary) => exitCodeOf(summary, flags.check),
          }),
        ).pipe(
          Layer.provideMerge(Layer.succeed(CurrentSettings, settings)),
          Layer.provide(HttpLayer),
        );
        const { outcome, logFile } = yield* runSync({
          apply: applying,
          user: Option.getOrUndefined(flags.user),
          offset: flags.offset,
          batchSize: flags.all ? 0 : batchSize ?? settings.batchSize,
          force: flags.forceRecreate,
          createMissing: flags.createMissing,
          concurrency: settings.concurrency,
          confirm: flags.interactive
            ? (pending) =>
              askOperator(pending).pipe(
                Effect.provideService(Terminal.Terminal, terminal),
              )
            : undefined,
          stopRequested: proc.stopRequested,
          stopNow: proc.stopNow,
          excludedByFile: excludedByFile.right,
        }).pipe(
          withLogFile,
          Effect.provide(services),
          Effect.catchAll(servicesFailed),
        );
        if (outcome._tag === "Left") {
          return yield* runFailed(
            proc,
            settings,
            outcome.left,
            logFile,
            flags.json,
          );
        }
        proc.setExitCode(exitCodeOf(outcome.right, flags.check));
      })),
  );

const revertLog = Args.text({ name: "LOG.csv" });
const revertApply = Options.boolean("apply");
const trustEditedLog = Options.boolean("trust-edited-log");

/** The word the operator types to revert a log that failed its check. */
const trustWord = "trust";

/** `--trust-edited-log`: never silent, never without a person at a terminal. */
const confirmTrust = (path: string) => (reason: string) =>
  Effect.gen(function* () {
    if (!process.stdin.isTTY) {
      yield* Console.error(
        "error: --trust-edited-log needs a terminal to confirm on; standard input is not one",
      );
      return false;
    }
    yield* Console.error(
      `${path} failed its integrity check: ${reason}.\nReverting it writes whatever it says to the forum.`,
    );
    const answer = yield* Prompt.text({
      message: `Type "${trustWord}" to revert it anyway`,
    });
    return answer.trim() === trustWord;
  }).pipe(Effect.orElseSucceed(() => false));

/**
 * `revert LOG.csv`: puts back the `before` values of an apply log's SUCCESS
 * rows, field by field, only where Discourse still holds what the sync wrote.
 */
export const makeRevertCommand = (
  proc: Process,
  root: ReturnType<typeof makeCommand>,
) =>
  Command.make(
    "revert",
    {
      log: revertLog,
      apply: revertApply,
      trustEditedLog,
      json,
      settingsFile: Options.text("settings").pipe(Options.optional),
      logDir,
    },
    (flags) =>
      Effect.scoped(Effect.gen(function* () {
        // `--settings` and `--log-dir` may come before `revert` too.
        const parent = yield* root;
        const settingsPath = Option.getOrElse(
          flags.settingsFile,
          () => parent.settingsFile,
        );
        const logDirFlag = Option.orElse(flags.logDir, () => parent.logDir);
        const loaded = yield* loadSettings(settingsPath, process.env)
          .pipe(Effect.either);
        if (loaded._tag === "Left") {
          return yield* usage(proc, loaded.left.message, flags.json);
        }
        const settings: Settings = {
          ...loaded.right,
          logDir: Option.getOrElse(logDirFlag, () => loaded.right.logDir),
        };
        if (flags.trustEditedLog && !flags.apply) {
          return yield* usage(
            proc,
            "--trust-edited-log only matters with --apply: a dry-run reads any log",
            flags.json,
          );
        }
        const terminal = yield* Terminal.Terminal;
        const read = yield* readApplyLog(flags.log, {
          scope: sealScope(
            settings.discourse.apiKey,
            settings.discourse.url,
            settings.env,
          ),
          apply: flags.apply,
          confirmTrust: flags.trustEditedLog
            ? (reason) =>
              confirmTrust(flags.log)(reason).pipe(
                Effect.provideService(Terminal.Terminal, terminal),
              )
            : undefined,
        }).pipe(Effect.either);
        if (read._tag === "Left") {
          return yield* usage(proc, read.left.message, flags.json);
        }
        for (const warning of read.right.warnings) {
          yield* Console.error(`warning: ${warning}`);
        }
        const log = read.right;
        if (
          flags.apply &&
          Option.isNone(
            yield* lockForum(proc, settings, "revert --apply", flags.json),
          )
        ) {
          return;
        }
        const services = Layer.mergeAll(
          Discourse.layer(discourseConfig(settings)),
          auditLayers(settings, {
            // Recognisable next to the sync's logs: sync_log_{env}_revert_apply_...
            env: `${settings.env}_revert`,
            mode: flags.apply ? "apply" : "dryrun",
          }),
          // A revert's rows come one at a time: no progress bar to keep.
          consoleReporter({
            json: flags.json,
            progress: false,
            scrub: scrubberFor(settings),
          }),
        ).pipe(
          Layer.provideMerge(Layer.succeed(CurrentSettings, settings)),
          Layer.provide(HttpLayer),
        );
        const { outcome, logFile } = yield* runRevert({
          log: log.log,
          apply: flags.apply,
          forum: forumKey(settings.discourse.url),
          stopRequested: proc.stopRequested,
          stopNow: proc.stopNow,
        }).pipe(
          withLogFile,
          Effect.provide(services),
          Effect.catchAll(servicesFailed),
        );
        if (outcome._tag === "Left") {
          return yield* runFailed(
            proc,
            settings,
            outcome.left,
            logFile,
            flags.json,
          );
        }
        proc.setExitCode(exitCodeOf(outcome.right, false));
      })),
  );

export const makeCli = (proc: Process) => {
  const root = makeCommand(proc);
  return Command.run(
    root.pipe(Command.withSubcommands([makeRevertCommand(proc, root)])),
    { name: "sync-moodle-discourse", version },
  );
};
