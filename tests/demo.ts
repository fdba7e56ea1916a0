/**
 * `deno task demo`: the tool against the test doubles, no servers or settings
 * of your own. Starts a fake Moodle and a fake Discourse seeded with about 25
 * users covering every case, runs a dry-run, and says where the log is.
 * Extra arguments go to the CLI: `deno task demo --apply`.
 *
 * Some users are refused on purpose (a username collision, an unreadable
 * Moodle record, a bio over Discourse's limit, a reserved username), so the
 * CLI exits 1 by design. The demo checks that what it shows is what it was
 * built to show and then exits 0; anything else (doubles that do not start,
 * an error row nobody planted, an unexpected exit code) exits non-zero.
 */
import { startFakeMoodle } from "./doubles/fakeMoodle.ts";
import { startFakeDiscourse } from "./doubles/fakeDiscourse.ts";
import { demoCases, demoScenario } from "./doubles/scenarios.ts";
import { auditLogs, cliArgs, type LogRow, readLog } from "./support/world.ts";
import { syncedFields } from "../src/domain/fields.ts";
import { pendingOf } from "../src/sync/outcome.ts";

/** The users the demo plants to be refused, and why, in the operator's words. */
const plantedErrors: ReadonlyMap<string, string> = new Map([
  [demoCases.collidingSpaces, "a username collision"],
  [demoCases.collidingUnderscore, "a username collision"],
  [demoCases.malformed, "an unreadable Moodle record"],
  [demoCases.bioTooLong, "a bio over 3000 characters"],
  // Refused whenever a creation is previewed or asked for.
  [demoCases.moodleAdmin, 'the reserved username "admin"'],
]);

/** Refused in every mode: a whole-list run that does not show them broke. */
const alwaysRefused = [
  demoCases.collidingSpaces,
  demoCases.collidingUnderscore,
  demoCases.malformed,
  demoCases.bioTooLong,
];

const failedStatuses = new Set(["ERROR", "EXCEPTION", "VERIFY_FAILED"]);

/** A log row as the finished user it records: its action, status, changes. */
const asFinished = (row: LogRow) => {
  const before: Record<string, string> = JSON.parse(row.before || "{}");
  const after: Record<string, string> = JSON.parse(row.after || "{}");
  return {
    entry: { action: row.action, status: row.status },
    changes: syncedFields.filter((field) =>
      row.fields.split(";").includes(field)
    )
      .map((field) => ({ field, before: before[field], after: after[field] })),
  };
};

export type DemoVerdict =
  | { readonly _tag: "AsIntended"; readonly explanation: string | undefined }
  | { readonly _tag: "Broke"; readonly problem: string }
  /** The CLI refused the arguments (exit 2) and said why: pass it on. */
  | { readonly _tag: "Usage"; readonly code: number };

/**
 * Whether the CLI run showed what the demo is built to show: the exit code
 * its rows call for, and no failed row the demo did not plant.
 */
export const demoVerdict = (
  run: {
    readonly args: ReadonlyArray<string>;
    readonly code: number;
    /** The rows of the audit log this run wrote; none for --help and such. */
    readonly rows: ReadonlyArray<LogRow> | undefined;
  },
): DemoVerdict => {
  if (run.code === 2) return { _tag: "Usage", code: 2 };
  if (run.rows === undefined) {
    return run.code === 0
      ? { _tag: "AsIntended", explanation: undefined }
      : { _tag: "Broke", problem: `the CLI exited ${run.code} with no log` };
  }
  const failed = run.rows.filter((row) => failedStatuses.has(row.status));
  const unplanted = failed.filter((row) =>
    !plantedErrors.has(row.original_username)
  );
  if (unplanted.length > 0) {
    return {
      _tag: "Broke",
      problem: `errors the demo did not plant: ${
        unplanted.map((row) =>
          `${
            row.original_username || `Moodle id ${row.moodle_id}`
          } (${row.message})`
        ).join("; ")
      }`,
    };
  }
  const wholeList = !run.args.some((arg) =>
    /^--(user|batch-size|offset)(=|$)/.test(arg)
  );
  const shown = new Set(failed.map((row) => row.original_username));
  const hidden = alwaysRefused.filter((name) => !shown.has(name));
  if (wholeList && hidden.length > 0) {
    return {
      _tag: "Broke",
      problem: `users the demo plants to be refused were not: ${
        hidden.join(", ")
      }`,
    };
  }
  // --check exits 4 when --apply would write; the rows say whether it would.
  const createMissing = run.args.includes("--create-missing");
  const wouldWrite = run.args.includes("--check") &&
    run.rows.some((row) =>
      pendingOf("dryrun", asFinished(row), createMissing) === "change" ||
      (row.action.startsWith("GROUP_") && row.status === "DRY_RUN")
    );
  const expected = wouldWrite ? 4 : failed.length > 0 ? 1 : 0;
  if (run.code !== expected) {
    return {
      _tag: "Broke",
      problem:
        `the CLI exited ${run.code}, where its log calls for ${expected}`,
    };
  }
  if (failed.length === 0) {
    return { _tag: "AsIntended", explanation: undefined };
  }
  const reasons = [
    ...new Set(failed.map((row) => plantedErrors.get(row.original_username))),
  ];
  return {
    _tag: "AsIntended",
    explanation:
      `The ${failed.length} errors above (${
        reasons.join(", ")
      }) are part of the demo: it plants them to show what the tool refuses to write.` +
      ` The CLI exited ${run.code}, as these rows call for: the demo ran as intended.`,
  };
};

const runDemo = async (args: ReadonlyArray<string>): Promise<number> => {
  const scenario = demoScenario();
  // The doubles enforce Discourse's limits; the demo raises them to be quick.
  scenario.discourse.rateLimit = {
    ...scenario.discourse.rateLimit,
    adminPerMinute: 600,
    ipPer10Seconds: 600,
    ipPerMinute: 1200,
  };
  const moodle = await startFakeMoodle(scenario.moodle);
  const discourse = await startFakeDiscourse(scenario.discourse);
  try {
    const workDir = "demo-output";
    await Deno.mkdir(workDir, { recursive: true });
    const settingsPath = `${workDir}/settings.json`;
    await Deno.writeTextFile(
      settingsPath,
      JSON.stringify(
        {
          env: "demo",
          moodle: { endpoint: moodle.endpoint, token: moodle.token },
          discourse: {
            url: discourse.url,
            apiKey: discourse.apiKey,
            apiUser: discourse.apiUser,
            requestsPerMinute: 600,
          },
          batchSize: 0,
          logDir: workDir,
          exclude: { usernames: ["test*"] },
          // A cohort and a course, each filling its forum group.
          groups: {
            map: [
              {
                cohort: demoCases.groups.cohort.idnumber,
                group: demoCases.groups.cohort.group,
              },
              {
                course: demoCases.groups.course.shortname,
                roles: ["student", "editingteacher"],
                group: demoCases.groups.course.group,
              },
            ],
          },
        },
        null,
        2,
      ),
    );
    await Deno.chmod(settingsPath, 0o600);

    console.error(
      `Fake Moodle:    ${moodle.endpoint}\nFake Discourse: ${discourse.url}\n` +
        `Running: sync-moodle-discourse --settings ${settingsPath} ${
          args.join(" ")
        }\n`,
    );
    const logsBefore = new Set(await auditLogs(workDir));
    const child = new Deno.Command(Deno.execPath(), {
      args: cliArgs(["--settings", settingsPath, ...args]),
      stdin: "inherit",
      stdout: "inherit",
      stderr: "inherit",
    }).spawn();
    const { code } = await child.status;
    const newLogs = (await auditLogs(workDir)).filter((path) =>
      !logsBefore.has(path)
    );
    const rows = newLogs.length === 0
      ? undefined
      : (await readLog(newLogs[newLogs.length - 1])).rows;
    const verdict = demoVerdict({ args, code, rows });
    switch (verdict._tag) {
      case "Usage":
        return verdict.code;
      case "Broke":
        console.error(`\nThe demo broke: ${verdict.problem}.`);
        return code === 0 ? 1 : code;
      case "AsIntended":
        if (verdict.explanation) console.error(`\n${verdict.explanation}`);
        console.error(
          `\nThe CSV audit log and the settings the demo used are in ./${workDir}/.` +
            `\nTry: deno task demo --apply   (writes to the fake forum)` +
            `\n     deno task demo --json    (one JSON object per user)`,
        );
        return 0;
    }
  } finally {
    await moodle.close();
    await discourse.close();
  }
};

if (import.meta.main) {
  const args = Deno.args[0] === "--" ? Deno.args.slice(1) : Deno.args;
  const code = await runDemo(args).catch((error) => {
    console.error(
      `The demo broke: ${error instanceof Error ? error.message : error}`,
    );
    return 1;
  });
  Deno.exit(code);
}
