/**
 * `revert LOG.csv`: puts back the `before` values of an apply log's SUCCESS
 * rows, field by field, only where Discourse still holds what the sync wrote.
 */
import process from "node:process";
import { Prompt } from "@effect/cli";
import * as Terminal from "@effect/platform/Terminal";
import { Console, Effect, Option } from "effect";
import { sealScope } from "../audit/LogMac.ts";
import { revertLayer } from "../cli/AppLayer.ts";
import { StopSignal } from "../cli/StopSignal.ts";
import { loadSettings } from "../config/load.ts";
import type { Settings } from "../config/Settings.ts";
import { scrubberFor } from "../domain/secrets.ts";
import { forumKey } from "../lock.ts";
import { consoleReporter } from "../report/console.ts";
import { readApplyLog } from "../revert/readLog.ts";
import { runRevert } from "../revert/runRevert.ts";
import { Finished, UsageProblem } from "./ending.ts";
import { lockForum } from "./lockForum.ts";
import { runLogged } from "./runLogged.ts";
import { stateOptions } from "./stateOptions.ts";

export interface RevertFlags {
  readonly log: string;
  readonly apply: boolean;
  readonly trustEditedLog: boolean;
  readonly json: boolean;
  readonly settingsFile: string;
  readonly logDir: Option.Option<string>;
  readonly stateFile: Option.Option<string>;
}

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

/** Ends with the revert's summary, or with why it could not run. */
export const revertCommand = (flags: RevertFlags) =>
  Effect.gen(function* () {
    const usage = (message: string) =>
      new UsageProblem({ message, json: flags.json });
    const loaded = yield* loadSettings(flags.settingsFile, process.env).pipe(
      Effect.mapError((error) => usage(error.message)),
    );
    const settings: Settings = {
      ...loaded,
      logDir: Option.getOrElse(flags.logDir, () => loaded.logDir),
    };
    if (flags.trustEditedLog && !flags.apply) {
      return yield* usage(
        "--trust-edited-log only matters with --apply: a dry-run reads any log",
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
    }).pipe(Effect.mapError((error) => usage(error.message)));
    for (const warning of read.warnings) {
      yield* Console.error(`warning: ${warning}`);
    }
    if (flags.apply) yield* lockForum(settings, "revert --apply", flags.json);
    const stop = yield* StopSignal;
    const summary = yield* runLogged(
      runRevert({
        log: read.log,
        apply: flags.apply,
        forum: forumKey(settings.discourse.url),
        suspendReason: settings.deprovision.reason,
        stopRequested: stop.requested,
        stopNow: stop.now,
      }),
      revertLayer(settings, {
        mode: flags.apply ? "apply" : "dryrun",
        // Only an apply changes the forum, so only an apply updates the store.
        state: flags.apply
          ? stateOptions(settings, flags.settingsFile, flags.stateFile, {
            readOnly: false,
            // Reverting never creates a store: nothing to remember then.
            onlyIfPresent: true,
          })
          : undefined,
        // A revert's rows come one at a time: no progress bar to keep.
        reporter: consoleReporter({
          json: flags.json,
          progress: false,
          scrub: scrubberFor(settings),
        }),
      }),
      { scrub: scrubberFor(settings), json: flags.json },
    );
    return yield* new Finished({ summary, check: false });
  });
