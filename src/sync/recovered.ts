/**
 * Before an `--apply` run (sync or revert) writes anything: the writes an
 * earlier run left open in its journal are checked and logged, and each is
 * shown to the operator as a warning.
 */
import type * as FileSystem from "@effect/platform/FileSystem";
import { Effect } from "effect";
import type { AuditLog, AuditLogError } from "../audit/AuditLog.ts";
import { recoverUnfinishedWrites } from "../audit/recovery.ts";
import type { Discourse, DiscourseError } from "../discourse/Discourse.ts";
import { Reporter } from "./Reporter.ts";

export const recoverAndWarn = (forum: string): Effect.Effect<
  void,
  AuditLogError | DiscourseError,
  AuditLog | Discourse | FileSystem.FileSystem | Reporter
> =>
  Effect.gen(function* () {
    const reporter = yield* Reporter;
    for (const entry of yield* recoverUnfinishedWrites(forum)) {
      yield* reporter.warn(
        `${entry.normalizedUsername} ${entry.action}/${entry.status}: ${entry.message}`,
      );
    }
  });
