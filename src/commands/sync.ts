/** `sync-moodle-discourse [flags]`: the settings, the lock, then the engine. */
import process from "node:process";
import { Prompt } from "@effect/cli";
import * as Terminal from "@effect/platform/Terminal";
import { Console, Effect, Option } from "effect";
import { outOfRange, syncFlags } from "../cli/args.ts";
import { syncLayer } from "../cli/AppLayer.ts";
import { StopSignal } from "../cli/StopSignal.ts";
import { loadSettingsAndWarning, readExclusionList } from "../config/load.ts";
import type { Settings } from "../config/Settings.ts";
import { scrubberFor } from "../domain/secrets.ts";
import { consoleReporter } from "../report/console.ts";
import { describeFullChanges, describePending } from "../report/console.ts";
import { createMissingProblem } from "../sync/create.ts";
import { exitCodeOf } from "../sync/outcome.ts";
import { type Decision, runSync } from "../sync/runSync.ts";
import { Finished, UsageProblem } from "./ending.ts";
import { lockForum } from "./lockForum.ts";
import { runLogged } from "./runLogged.ts";
import { stateOptions } from "./stateOptions.ts";

export interface SyncFlags {
  readonly apply: boolean;
  readonly user: Option.Option<string>;
  readonly batchSize: Option.Option<number>;
  readonly offset: number;
  readonly all: boolean;
  readonly forceRecreate: boolean;
  readonly settingsFile: string;
  readonly logDir: Option.Option<string>;
  readonly stateFile: Option.Option<string>;
  readonly full: boolean;
  readonly concurrency: Option.Option<number>;
  readonly check: boolean;
  readonly json: boolean;
  readonly interactive: boolean;
  readonly createMissing: boolean;
  readonly allowRemovals: Option.Option<number>;
  readonly allowEmptyGroups: boolean;
}

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

/** Ends with the run's summary, or with why it could not run. */
export const syncCommand = (flags: SyncFlags) =>
  Effect.gen(function* () {
    const usage = (message: string) =>
      new UsageProblem({ message, json: flags.json });
    if (flags.check && (flags.apply || flags.interactive)) {
      return yield* usage(
        "--check is a dry-run: it cannot be combined with --apply or --interactive",
      );
    }
    if (flags.interactive && flags.json) {
      return yield* usage("--interactive cannot be combined with --json");
    }
    if (flags.interactive && !process.stdin.isTTY) {
      return yield* usage(
        "--interactive needs a terminal to ask on; standard input is not one. Use a dry-run, then --apply, in scripts.",
      );
    }
    const batchSize = Option.getOrUndefined(flags.batchSize);
    const concurrency = Option.getOrUndefined(flags.concurrency);
    const allowRemovals = Option.getOrUndefined(flags.allowRemovals);
    const rangeProblem = outOfRange(syncFlags, {
      offset: flags.offset,
      "batch-size": batchSize,
      concurrency,
      "allow-removals": allowRemovals,
    });
    if (rangeProblem !== undefined) return yield* usage(rangeProblem);
    const { settings: loaded, warning } = yield* loadSettingsAndWarning(
      flags.settingsFile,
      process.env,
    ).pipe(Effect.mapError((error) => usage(error.message)));
    const excludedByFile = yield* readExclusionList(
      loaded,
      flags.settingsFile,
    ).pipe(Effect.mapError((error) => usage(error.message)));
    const settings: Settings = {
      ...loaded,
      logDir: Option.getOrElse(flags.logDir, () => loaded.logDir),
      concurrency: concurrency ?? loaded.concurrency,
    };
    if (Option.isSome(warning)) {
      yield* Console.error(`warning: ${warning.value}`);
    }
    const applying = flags.apply || flags.interactive;
    const creationProblem = flags.createMissing
      ? createMissingProblem(settings)
      : undefined;
    if (creationProblem !== undefined) return yield* usage(creationProblem);
    if (applying) yield* lockForum(settings, "sync --apply", flags.json);
    const terminal = yield* Terminal.Terminal;
    const stop = yield* StopSignal;
    const summary = yield* runLogged(
      runSync({
        apply: applying,
        user: Option.getOrUndefined(flags.user),
        offset: flags.offset,
        batchSize: flags.all ? 0 : batchSize ?? settings.batchSize,
        force: flags.forceRecreate,
        full: flags.full,
        createMissing: flags.createMissing,
        concurrency: settings.concurrency,
        confirm: flags.interactive
          ? (pending) =>
            askOperator(pending).pipe(
              Effect.provideService(Terminal.Terminal, terminal),
            )
          : undefined,
        stopRequested: stop.requested,
        stopNow: stop.now,
        excludedByFile,
        allowRemovals,
        allowEmptyGroups: flags.allowEmptyGroups,
      }),
      syncLayer(settings, {
        mode: applying ? "apply" : "dryrun",
        // A dry-run reads the store but never changes or creates it.
        state: stateOptions(settings, flags.settingsFile, flags.stateFile, {
          readOnly: !applying,
        }),
        reporter: consoleReporter({
          json: flags.json,
          scrub: scrubberFor(settings),
          exitCode: (summary) => exitCodeOf(summary, flags.check),
        }),
      }),
      { scrub: scrubberFor(settings), json: flags.json },
    );
    return yield* new Finished({ summary, check: flags.check });
  });
