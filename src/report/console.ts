import process from "node:process";
import { Clock, Effect, Layer } from "effect";
import { auditColumns, type AuditEntry } from "../audit/AuditLog.ts";
import { type FieldChange, isResend } from "../sync/diff.ts";
import { exitCodeOf, noLogWritten } from "../sync/outcome.ts";
import type {
  ReadsSummary,
  RevertSummary,
  RunSummary,
  UserDone,
} from "../sync/summary.ts";
import { describeEstimate, estimateProgress } from "./progress.ts";
import { Reporter, type RequestBudget } from "../sync/Reporter.ts";
import type { Scrub } from "../domain/secrets.ts";
import { terminalSafe, terminalSafeJson } from "../domain/terminal.ts";

const clip = (value: string, width = 70): string => {
  const flat = value.replace(/\r?\n/g, "⏎");
  return flat.length > width ? `${flat.slice(0, width - 1)}…` : flat;
};

const quote = (value: string) => `'${clip(value)}'`;

const marks: Record<string, string> = {
  DRY_RUN: "~",
  SUCCESS: "✓",
  EXISTS: "=",
  EXCLUDED: "-",
  SKIPPED: "·",
  VERIFY_FAILED: "!",
  ERROR: "✗",
  EXCEPTION: "✗",
};

const whoIs = (entry: AuditEntry): string =>
  entry.normalizedUsername && entry.originalUsername &&
    entry.normalizedUsername !== entry.originalUsername
    ? `${entry.normalizedUsername} (Moodle: ${entry.originalUsername})`
    : entry.originalUsername || entry.normalizedUsername ||
      (entry.action.startsWith("GROUP_")
        ? "group"
        : `Moodle id ${entry.moodleId ?? "?"}`);

/** One line a field, long values cut with "…". */
const changeLines = (changes: ReadonlyArray<FieldChange>) =>
  changes.map((c) =>
    isResend(c)
      ? `    ${c.field}: ${quote(c.after)} (unchanged, re-sent)`
      : `    ${c.field}: ${quote(c.before)} → ${quote(c.after)}`
  );

/** The lines a person reads for one user; quiet for users with nothing to do. */
export const describeUser = (done: UserDone): ReadonlyArray<string> => {
  const { entry } = done;
  const interesting = done.changes.length > 0 ||
    ["ERROR", "EXCEPTION", "VERIFY_FAILED"].includes(entry.status) ||
    entry.action === "CREATE" ||
    (entry.action.startsWith("GROUP_") && entry.status !== "EXISTS");
  if (!interesting) return [];
  // Moodle's and the forum's text: controls shown escaped, never obeyed.
  return [
    `${marks[entry.status] ?? "?"} ${
      whoIs(entry)
    } ${entry.action}/${entry.status}: ${entry.message}`,
    ...changeLines(done.changes),
  ].map((line) => terminalSafe(line));
};

/**
 * What `--interactive` asks about: the user and the changes, with no status,
 * since nothing is decided yet (the row printed after says what happened).
 */
export const describePending = (
  entry: AuditEntry,
  changes: ReadonlyArray<FieldChange>,
): ReadonlyArray<string> =>
  [
    `? ${whoIs(entry)} ${entry.action}: ${entry.message}`,
    ...changeLines(changes),
  ].map((line) => terminalSafe(line));

/** Every changed field in full, line by line: nothing cut. */
export const describeFullChanges = (
  changes: ReadonlyArray<FieldChange>,
): ReadonlyArray<string> =>
  changes.flatMap((c) => {
    const lines = (mark: string, value: string) =>
      value === ""
        ? [`      ${mark} (empty)`]
        : value.split(/\r\n?|\n/).map((line) => `      ${mark} ${line}`);
    return (isResend(c)
      ? [`    ${c.field} (unchanged, re-sent):`, ...lines(" ", c.after)]
      : [`    ${c.field}:`, ...lines("-", c.before), ...lines("+", c.after)])
      .map((line) => terminalSafe(line));
  });

/** `UPDATE/SUCCESS 12, CREATE/DRY_RUN 3` ... in a stable order. */
const countLines = (counts: Readonly<Record<string, number>>) =>
  Object.entries(counts).sort(([a], [b]) => a.localeCompare(b)).map((
    [key, n],
  ) => `  ${key.padEnd(22)} ${n}`);

/** `1 user`, `2 users`. */
const count = (n: number, noun: string): string =>
  `${n} ${noun}${n === 1 ? "" : "s"}`;

const describeReads = (reads: ReadsSummary): ReadonlyArray<string> => [
  `  Reads                  ${
    reads.mode === "full" ? `full (${reads.why})` : "state-assisted"
  }: ${count(reads.singleProfileReads, "single-profile read")}`,
  ...(reads.mode === "state-assisted"
    ? [
      `  Unchanged, not read    ${reads.unchanged}`,
      `  Changed on the forum   ${reads.forumChanged}`,
    ]
    : []),
  ...(reads.storeUpdated > 0
    ? [`  State store updated    ${count(reads.storeUpdated, "user")}`]
    : []),
];

export const describeSummary = (summary: RunSummary): ReadonlyArray<string> => [
  "",
  `Summary (${summary.mode === "apply" ? "apply" : "dry-run"}): ${
    count(summary.considered, "user")
  } considered of ${summary.moodleUsers} in Moodle`,
  ...countLines(summary.counts),
  `  Discourse requests     ${summary.discourseRequests}`,
  ...describeReads(summary.reads),
  `  Elapsed                ${(summary.elapsedMs / 1000).toFixed(1)} s`,
  `  Audit log              ${summary.logPath ?? noLogWritten}`,
  summary.nextOffset === undefined
    ? summary.stoppedBy
      ? `  Stopped early (${
        summary.stoppedBy._tag === "Fatal"
          ? summary.stoppedBy.message
          : summary.stoppedBy._tag === "Interrupted"
          ? "interrupted"
          : "quit by the operator"
      }); ${
        count(summary.notReached, "user")
      } not reached: run the same batch again`
      : "  The list is finished: no users after this batch."
    : `  Next batch             --offset ${summary.nextOffset}`,
  ...(summary.mode === "dryrun" && summary.pendingChanges > 0
    ? [
      `  ${
        count(summary.pendingChanges, "user")
      } would change: add --apply to write`,
    ]
    : []),
  ...(summary.missingAccounts > 0
    ? [
      `  ${
        count(summary.missingAccounts, "user")
      } not in the forum: created at first SSO login, or by --apply --create-missing`,
    ]
    : []),
  ...(summary.mode === "dryrun" && (summary.membershipChanges ?? 0) > 0
    ? [
      `  ${
        count(summary.membershipChanges ?? 0, "group membership")
      } would change: add --apply to write`,
    ]
    : []),
  ...(summary.removalsHeld === undefined
    ? []
    : [`  Removals held back (exit 5): ${summary.removalsHeld}`]),
];

/** The summary a person reads after a revert. */
export const describeRevertSummary = (
  summary: RevertSummary,
): ReadonlyArray<string> => [
  "",
  `Revert (${
    summary.mode === "apply" ? "apply" : "dry-run"
  }): ${summary.considered} of ${summary.rows} SUCCESS rows considered; ${summary.ignored} other rows had written nothing`,
  ...countLines(summary.counts),
  `  Audit log              ${summary.logPath ?? noLogWritten}`,
  ...(summary.stoppedBy?._tag === "Fatal"
    ? [`  Stopped early: ${summary.stoppedBy.message}`]
    : summary.stoppedBy?._tag === "Interrupted"
    ? [`  Interrupted: ${summary.notReached} rows not reached`]
    : []),
  ...(summary.mode === "dryrun" && summary.pendingChanges > 0
    ? ["  Add --apply to put these values back"]
    : []),
];

/** What every command's JSON summary ends with. */
const outcomeJson = (
  summary: RunSummary | RevertSummary,
  exitCode: number,
) => ({
  log_path: summary.logPath ?? null,
  stopped_by: summary.stoppedBy ?? null,
  error: summary.stoppedBy?._tag === "Fatal" ? summary.stoppedBy.message : null,
  exit_code: exitCode,
});

/** A revert's summary: the sync's keys, with the log's rows for Moodle's users. */
const revertSummaryJson = (summary: RevertSummary, exitCode: number) => ({
  type: "summary",
  command: "revert",
  mode: summary.mode,
  rows: summary.rows,
  ignored_rows: summary.ignored,
  considered: summary.considered,
  not_reached: summary.notReached,
  counts: summary.counts,
  pending_changes: summary.pendingChanges,
  failures: summary.failures,
  discourse_requests: summary.discourseRequests,
  elapsed_ms: summary.elapsedMs,
  ...outcomeJson(summary, exitCode),
});

const summaryJson = (summary: RunSummary, exitCode: number) => ({
  type: "summary",
  mode: summary.mode,
  moodle_users: summary.moodleUsers,
  considered: summary.considered,
  not_reached: summary.notReached,
  counts: summary.counts,
  pending_changes: summary.pendingChanges,
  missing_accounts: summary.missingAccounts,
  failures: summary.failures,
  discourse_requests: summary.discourseRequests,
  reads: {
    mode: summary.reads.mode,
    why: summary.reads.why ?? null,
    single_profile_reads: summary.reads.singleProfileReads,
    unchanged: summary.reads.unchanged,
    forum_changed: summary.reads.forumChanged,
    store_updated: summary.reads.storeUpdated,
  },
  elapsed_ms: summary.elapsedMs,
  offset: summary.offset,
  next_offset: summary.nextOffset ?? null,
  membership_changes: summary.membershipChanges ?? 0,
  removals_held: summary.removalsHeld ?? null,
  ...outcomeJson(summary, exitCode),
});

const write = (stream: NodeJS.WriteStream, text: string) =>
  Effect.sync(() => {
    stream.write(text);
  });

/**
 * People get diffs on stdout and a progress bar on stderr (only when stderr
 * is a terminal); `--json` gets one object a user and a summary on stdout,
 * nothing else, so it can be piped to jq.
 */
export const consoleReporter = (
  options: {
    readonly json: boolean;
    readonly progress?: boolean;
    /** Hides the run's secrets in everything printed. */
    readonly scrub?: Scrub;
    /** The exit code a summary ends the run with; the JSON summary says it. */
    readonly exitCode?: (summary: RunSummary | RevertSummary) => number;
  },
) =>
  Layer.sync(Reporter, () => {
    const scrub = options.scrub ?? ((text: string) => text);
    const safe = (text: string) => terminalSafe(scrub(text));
    const jsonLine = (value: unknown) => `${scrub(terminalSafeJson(value))}\n`;
    const showProgress = !options.json &&
      (options.progress ?? Boolean(process.stderr.isTTY));
    let total = 0;
    let done = 0;
    let startedAt = 0;
    let budget: RequestBudget | undefined;
    const bar = Effect.gen(function* () {
      const width = 30;
      const filled = total ? Math.round((done / total) * width) : width;
      const estimate = budget === undefined ? undefined : estimateProgress({
        done,
        total,
        elapsedMs: (yield* Clock.currentTimeMillis) - startedAt,
        requestsSent: yield* budget.requestsSent,
        requestsPerMinute: budget.requestsPerMinute,
      });
      return `\r\x1b[K[${"#".repeat(filled)}${
        ".".repeat(width - filled)
      }] ${done}/${total} users${describeEstimate(estimate)}`;
    });
    const clearBar = showProgress ? "\r\x1b[K" : "";
    const printOut = (lines: ReadonlyArray<string>) =>
      lines.length === 0 ? Effect.void : Effect.andThen(
        write(process.stderr, clearBar),
        write(process.stdout, lines.map((l) => `${safe(l)}\n`).join("")),
      );
    return {
      warn: (message) =>
        write(process.stderr, `${clearBar}warning: ${safe(message)}\n`),
      info: (message) =>
        options.json
          ? Effect.void
          : write(process.stderr, `${clearBar}${safe(message)}\n`),
      start: (run) =>
        Effect.map(Clock.currentTimeMillis, (now) => {
          total = run.users;
          done = 0;
          startedAt = now;
          budget = run.budget;
        }),
      userDone: (user) =>
        Effect.gen(function* () {
          // Membership rows follow the users: the bar counts users.
          if (!user.entry.action.startsWith("GROUP_")) done++;
          if (options.json) {
            const row = Object.fromEntries(
              auditColumns.map((c) => [c, user.row[c]]),
            );
            yield* write(process.stdout, jsonLine(row));
            return;
          }
          yield* printOut(describeUser(user));
          if (showProgress) yield* write(process.stderr, yield* bar);
        }),
      heading: (line) => options.json ? Effect.void : printOut(["", line]),
      finish: (summary) => {
        const exitCode = (options.exitCode ?? ((s) => exitCodeOf(s, false)))(
          summary,
        );
        if (!options.json) {
          return printOut(
            summary.command === "sync"
              ? describeSummary(summary)
              : describeRevertSummary(summary),
          );
        }
        return write(
          process.stdout,
          jsonLine(
            summary.command === "sync"
              ? summaryJson(summary, exitCode)
              : revertSummaryJson(summary, exitCode),
          ),
        );
      },
    };
  });
