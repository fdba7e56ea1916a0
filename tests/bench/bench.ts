/**
 * `deno task bench [--quick] [--only NAME,...] [--keep] [--list] [--proc]`: the CLI, as a real
 * subprocess, against the test doubles served from this process on loopback
 * (ephemeral ports, 127.0.0.1 only), with Discourse's admin limit raised so
 * that runs take seconds. The ratios are what count: requests per user,
 * achieved rate against the configured limit, 429s, cost per user at scale.
 *
 * Counts come from the doubles' own request logs, never from the CLI. Prints a
 * table, the targets of issue 4 with PASS/FAIL, then one JSON line per
 * scenario. Exits 1 when a target is missed: it measures, it asserts nothing
 * in the test suite.
 */
import { startFakeMoodle } from "../doubles/fakeMoodle.ts";
import { startFakeDiscourse } from "../doubles/fakeDiscourse.ts";
import { auditLogs, readLog } from "../support/world.ts";
import {
  benchCredentials,
  benchSsoSecret,
  type GroupsPlanting,
  type Planted,
  syntheticPopulation,
  usernameOf,
} from "./population.ts";
import { chooseMethod, type Method, runMeasuredCli } from "./measure.ts";
import { type AssistedReport, runAssistedBench } from "./assisted.ts";

const assistedName = "assisted";
const assistedDescription =
  "state-assisted night of 10,000 users against --full (2,000 with --quick); 100,000-user assisted dry-run memory, short and 2 KB HTML bios (not with --quick)";
import {
  countDiscourse,
  type DiscourseTraffic,
  drainPeriodically,
  emptyTraffic,
} from "./traffic.ts";

const usage =
  "usage: deno task bench [--quick] [--only NAME,...] [--keep] [--list] [--proc]\n" +
  "  --quick        smaller populations, no 100,000-user run: under a minute\n" +
  "  --only NAMES   run only these scenarios (comma-separated; see --list)\n" +
  "  --keep         keep the temporary settings and audit logs\n" +
  "  --proc         measure by polling /proc even if /usr/bin/time exists\n" +
  "  --list         list the scenarios and exit";

/** Foreign load: another admin client spending the same site budget. */
interface ForeignLoad {
  /** Share of the per-minute limit spent at `burstAtMs`. */
  readonly burst: number;
  readonly burstAtMs: number;
  /** Share of the per-minute limit spent steadily, once a second. */
  readonly steady: number;
}

interface Scenario {
  readonly name: string;
  readonly description: string;
  /** Synthetic Moodle users (plus the guest and one colliding pair). */
  readonly population: number;
  readonly args: ReadonlyArray<string>;
  /** Admin requests a minute: the doubles' limit and the CLI's setting. */
  readonly limitPerMin: number;
  /** The double's window; shorter than a minute only to make waits short. */
  readonly windowMs?: number;
  /** `concurrency` in the settings; absent, as an operator leaves it. */
  readonly concurrency?: number;
  /** The forum double's answer latency, milliseconds. */
  readonly latencyMs?: number;
  readonly foreign?: ForeignLoad;
  /** A DiscourseConnect forum whose accounts carry external ids. */
  readonly sso?: boolean;
  /** Longer than the default bound: an apply logs (and fsyncs) every row. */
  readonly timeLimitMs?: number;
  /** Cohorts mapped to forum groups, with membership churn. */
  readonly groups?: GroupsPlanting;
  /** Bytes of HTML CV in each Moodle user's description. */
  readonly bioBytes?: number;
  /** Settings beyond the bench's own (`match`, `discourse.ssoSecret`). */
  readonly settings?: {
    readonly match?: "username" | "external_id" | "auto";
    readonly ssoSecret?: string;
  };
  readonly targets: (result: Result) => ReadonlyArray<Check>;
}

interface Check {
  readonly target: string;
  readonly ok: boolean;
  readonly detail: string;
}

interface Result {
  readonly scenario: Scenario;
  readonly exitCode: number;
  readonly users: number;
  readonly traffic: DiscourseTraffic;
  readonly moodleRequests: number;
  readonly moodleAllUsersCalls: number;
  readonly moodleByFieldCalls: number;
  readonly achievedPerMin: number | null;
  readonly own429s: number;
  readonly ip429s: number;
  readonly failedUsers: number;
  readonly statusCounts: Readonly<Record<string, number>>;
  readonly emailChangeRequests: number;
  readonly planted: Planted;
  readonly wallSeconds: number;
  readonly cpuSeconds: number;
  readonly peakRssMb: number;
  readonly stderrTail: string;
}

const raisedLimit = 3_000;
const cpuBoundLimit = 1_000_000;

// ---------------------------------------------------------------------------
// Targets (issue 4)

const check = (target: string, ok: boolean, detail: string): Check => ({
  target,
  ok,
  detail,
});

const fmt = (value: number, digits = 3) => value.toFixed(digits);

const requestsPerUser = (result: Result) =>
  result.users === 0 ? 0 : result.traffic.total / result.users;

const noFailures = (result: Result): Check =>
  check(
    "no user fails",
    result.failedUsers === 0 && result.exitCode !== 3,
    `${result.failedUsers} unplanted ERROR/EXCEPTION/VERIFY_FAILED rows, exit ${result.exitCode}${
      result.exitCode === 1 && result.failedUsers === 0
        ? " (the planted collision's ERROR rows)"
        : ""
    }`,
  );

const moodleOnce = (result: Result): Check =>
  check(
    "Moodle: one request for all users",
    result.moodleRequests === 1 && result.moodleAllUsersCalls === 1,
    `${result.moodleRequests} request(s), core_user_get_users x${result.moodleAllUsersCalls}`,
  );

const perUserAtMost = (limit: number) => (result: Result): Check =>
  check(
    `<= ${limit} Discourse requests per user`,
    requestsPerUser(result) <= limit,
    `${result.traffic.total} requests / ${result.users} users = ${
      fmt(requestsPerUser(result))
    }`,
  );

const pacing = (result: Result): ReadonlyArray<Check> => {
  const utilisation = (result.achievedPerMin ?? 0) /
    result.scenario.limitPerMin;
  return [
    check(
      "achieved >= 0.9 of the limit",
      utilisation >= 0.9,
      `${
        fmt(result.achievedPerMin ?? 0, 0)
      }/min of ${result.scenario.limitPerMin} = ${fmt(utilisation)}`,
    ),
    check(
      "no 429 from our own pacing",
      result.own429s === 0 && result.ip429s === 0,
      `${result.own429s} admin 429s, ${result.ip429s} per-IP 429s`,
    ),
  ];
};

/** The dry-run found exactly the differences the population holds. */
const dryRunMatchesPlanted = (result: Result): Check => {
  const { planted, statusCounts } = result;
  const changed = new Set([...planted.profileDiffers, ...planted.emailDiffers]);
  const updates = statusCounts["UPDATE/DRY_RUN"] ?? 0;
  const creates = statusCounts["CREATE/DRY_RUN"] ?? 0;
  return check(
    "plan matches the planted differences",
    updates === changed.size && creates === planted.missing.size,
    `${updates} updates (planted ${changed.size}), ${creates} missing (planted ${planted.missing.size})`,
  );
};

// ---------------------------------------------------------------------------
// Scenarios

const scenarios = (quick: boolean): ReadonlyArray<Scenario> => {
  const small = quick ? 200 : 1_000;
  const paced = quick ? 300 : 2_000;
  const list: Scenario[] = [
    {
      name: "dry-run-all",
      description: `full dry-run of ${small} users, all four fields`,
      population: small,
      args: ["--all"],
      limitPerMin: raisedLimit,
      targets: (r) => [
        perUserAtMost(1.05)(r),
        moodleOnce(r),
        dryRunMatchesPlanted(r),
        noFailures(r),
      ],
    },
    {
      name: "user",
      description: "--user, a user whose name, bio and email differ",
      population: small,
      args: ["--user", usernameOf(97)],
      limitPerMin: raisedLimit,
      targets: (r) => [
        perUserAtMost(2)(r),
        check(
          "Moodle: one request, the whole list (collisions are seen only there)",
          r.moodleRequests === 1 && r.moodleAllUsersCalls === 1,
          `${r.moodleRequests} request(s), core_user_get_users x${r.moodleAllUsersCalls}`,
        ),
        check(
          "one user considered",
          r.users === 1,
          `${r.users} user row(s)`,
        ),
        noFailures(r),
      ],
    },
    {
      name: "batch-10",
      description:
        "--batch-size 10 --offset 90 (a missing user and a changed one)",
      population: small,
      args: ["--batch-size", "10", "--offset", "90"],
      limitPerMin: raisedLimit,
      targets: (r) => [
        perUserAtMost(2)(r),
        moodleOnce(r),
        check("ten users considered", r.users === 10, `${r.users} user rows`),
        noFailures(r),
      ],
    },
    {
      name: "apply",
      description: `--apply --all over ${small} users, a known number changed`,
      population: small,
      args: ["--apply", "--all"],
      limitPerMin: raisedLimit,
      targets: (r) => [
        check(
          "one profile write per changed user",
          r.traffic.profileWrites === r.planted.profileDiffers.size &&
            (r.statusCounts["UPDATE/SUCCESS"] ?? 0) ===
              new Set([...r.planted.profileDiffers, ...r.planted.emailDiffers])
                .size,
          `${r.traffic.profileWrites} PUTs for ${r.planted.profileDiffers.size} changed profiles; ${
            r.statusCounts["UPDATE/SUCCESS"] ?? 0
          } SUCCESS rows`,
        ),
        check(
          "one email request only where the email differs",
          r.traffic.emailWrites === r.planted.emailDiffers.size &&
            r.emailChangeRequests === r.planted.emailDiffers.size,
          `${r.traffic.emailWrites} email change requests, ${r.planted.emailDiffers.size} emails differ`,
        ),
        check(
          "verification without a re-read",
          r.traffic.rereads === 0,
          `${r.traffic.rereads} profile reads after a write`,
        ),
        moodleOnce(r),
        noFailures(r),
      ],
    },
    {
      name: "pacing",
      description: `dry-run of ${paced} users at the raised limit`,
      population: paced,
      args: ["--all"],
      limitPerMin: raisedLimit,
      targets: (r) => [...pacing(r), noFailures(r)],
    },
  ];
  // What each `match` mode costs (issue 6): the bounds are the documented
  // costs, so a regression in any mode shows here.
  const matchModes: ReadonlyArray<
    {
      readonly name: string;
      readonly description: string;
      readonly sso: boolean;
      readonly settings: Scenario["settings"];
      readonly bound: number;
    }
  > = [
    {
      name: "match-external_id",
      description: "match external_id on a DiscourseConnect forum",
      sso: true,
      settings: { match: "external_id", ssoSecret: benchSsoSecret },
      bound: 1.05,
    },
    {
      name: "match-auto",
      description:
        "match auto, accounts carry external ids (missing users try all three ways)",
      sso: true,
      settings: { match: "auto", ssoSecret: benchSsoSecret },
      bound: 1.1,
    },
    {
      name: "match-username-sso",
      description:
        "match username with the SSO secret: changed accounts' owners checked",
      sso: true,
      settings: { match: "username", ssoSecret: benchSsoSecret },
      bound: 1.15,
    },
    {
      name: "match-auto-no-ids",
      description:
        "match auto on a forum without external ids: found by username, owner checked",
      sso: false,
      settings: { match: "auto" },
      bound: 2.5,
    },
  ];
  for (const mode of matchModes) {
    list.push({
      name: mode.name,
      description: `${mode.description}; dry-run of ${small} users`,
      population: small,
      args: ["--all"],
      limitPerMin: raisedLimit,
      sso: mode.sso,
      settings: mode.settings,
      targets: (r) => [perUserAtMost(mode.bound)(r), noFailures(r)],
    });
  }
  if (!quick) {
    list.push({
      name: "pacing-window",
      description: "2000 users at 1,500/min: the run outlasts the 60 s window",
      population: 2_000,
      args: ["--all"],
      limitPerMin: 1_500,
      targets: (r) => [...pacing(r), noFailures(r)],
    });
  }
  list.push({
    name: "foreign-load",
    description: quick
      ? `${paced} users; another client spends 25% at once, then 40% steadily (10 s window)`
      : `${paced} users; another client spends 25% at once, then 40% steadily`,
    population: paced,
    args: ["--all"],
    limitPerMin: raisedLimit,
    // Quick: a 10 s window (same rate) so each 429's wait is seconds, not a minute.
    windowMs: quick ? 10_000 : 60_000,
    foreign: { burst: 0.25, burstAtMs: 2_000, steady: 0.4 },
    targets: (r) => [
      check(
        "foreign load provoked 429s",
        r.own429s > 0,
        `${r.own429s} admin 429s`,
      ),
      noFailures(r),
      dryRunMatchesPlanted(r),
    ],
  });
  const groupUsers = quick ? 2_000 : 10_000;
  const groupCount = quick ? 4 : 20;
  list.push({
    name: "groups",
    description:
      `--apply --all: ${groupUsers} users in ${groupCount} cohort groups of 500, 2% churn`,
    population: groupUsers,
    args: ["--apply", "--all", "--allow-removals", String(groupCount * 5)],
    limitPerMin: cpuBoundLimit,
    groups: { count: groupCount, size: 500, churn: 0.02 },
    timeLimitMs: 900_000,
    targets: (r) => [
      check(
        `group reads: one members page per group, ids from the profile reads (<= ${groupCount})`,
        r.traffic.groupReads <= groupCount,
        `${r.traffic.groupReads} reads for ${groupCount} groups`,
      ),
      check(
        `group writes: one add and one remove per group (<= ${2 * groupCount})`,
        r.traffic.groupWrites <= 2 * groupCount,
        `${r.traffic.groupWrites} writes for ${r.planted.membershipChanges} membership changes`,
      ),
      check(
        "every planted membership change made",
        (r.statusCounts["GROUP_ADD/SUCCESS"] ?? 0) +
            (r.statusCounts["GROUP_REMOVE/SUCCESS"] ?? 0) ===
          r.planted.membershipChanges,
        `${r.statusCounts["GROUP_ADD/SUCCESS"] ?? 0} added, ${
          r.statusCounts["GROUP_REMOVE/SUCCESS"] ?? 0
        } removed (planted ${r.planted.membershipChanges})`,
      ),
      noFailures(r),
    ],
  });
  // Issue 15: full speed at any limit and latency, default settings. Each
  // run is sized to send for about `utilSeconds` (the whole run is the
  // measured window: first request to last).
  const utilSeconds = quick ? 12 : 30;
  for (const limit of [600, 6_000, 30_000]) {
    for (const latency of [50, 250]) {
      list.push({
        name: `util-${limit}-${latency}ms`,
        description:
          `dry-run at ${limit}/min, forum answering in ${latency} ms, default settings`,
        population: Math.round(limit * 0.97 * utilSeconds / 60 / 1.03),
        args: ["--all"],
        limitPerMin: limit,
        latencyMs: latency,
        targets: (r) => [...pacing(r), noFailures(r)],
      });
    }
  }
  // Issue 15: memory follows the work in flight, not Moodle's answer.
  const cvUsers = quick ? 10_000 : 100_000;
  for (const apply of [false, true]) {
    list.push({
      name: `cv-${cvUsers / 1000}k${apply ? "-apply" : ""}`,
      description: `${
        apply ? "--apply" : "dry-run"
      } of ${cvUsers} users with 2 KB HTML bios: peak memory`,
      population: cvUsers,
      bioBytes: 2048,
      args: apply ? ["--apply", "--all"] : ["--all"],
      // The grid's highest limit: a real forum's, unlike the scale runs'.
      limitPerMin: 30_000,
      targets: (r) => [
        check(
          "peak memory < 1 GB",
          r.peakRssMb < 1024,
          `${fmt(r.peakRssMb, 0)} MB`,
        ),
        moodleOnce(r),
        noFailures(r),
      ],
    });
  }
  const scales = quick ? [1_000, 2_500] : [1_000, 10_000, 100_000];
  for (const size of scales) {
    list.push({
      name: `scale-${size >= 1000 ? `${size / 1000}k` : size}`,
      description: `dry-run of ${size} users, limits raised: CPU-bound`,
      population: size,
      args: ["--all"],
      limitPerMin: cpuBoundLimit,
      targets: (r) => [
        check(
          "peak memory < 1 GB",
          r.peakRssMb < 1024,
          `${fmt(r.peakRssMb, 0)} MB`,
        ),
        perUserAtMost(1.05)(r),
        moodleOnce(r),
        noFailures(r),
      ],
    });
  }
  return list;
};

// ---------------------------------------------------------------------------
// Running one scenario

const bounded = <T>(promise: Promise<T>, ms: number, onTimeout: () => void) => {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        onTimeout();
        reject(new Error(`timed out after ${Math.round(ms / 1000)} s`));
      }, ms);
    }),
  ]).finally(() => clearTimeout(timer));
};

/** A generous bound: the paced time, four times over, plus a minute. */
const timeLimitMs = (scenario: Scenario) =>
  scenario.timeLimitMs ??
    (scenario.population / scenario.limitPerMin) * 60_000 * 4 + 60_000 +
      // Converting a 2 KB HTML bio takes a few milliseconds more per user.
      scenario.population * (scenario.bioBytes === undefined ? 5 : 30);

const runScenario = async (
  scenario: Scenario,
  method: Method,
  workDir: string,
): Promise<Result> => {
  const population = syntheticPopulation(scenario.population, {
    sso: scenario.sso,
    groups: scenario.groups,
    bioBytes: scenario.bioBytes,
  });
  const windowMs = scenario.windowMs ?? 60_000;
  const perWindow = Math.max(
    1,
    Math.round(scenario.limitPerMin * windowMs / 60_000),
  );
  // Discourse's defaults are 200/min and 50/10 s per IP for an admin limit of
  // 60/min: raise them in the same proportion.
  const moodle = await startFakeMoodle(population.moodle);
  const discourse = await startFakeDiscourse({
    ...population.discourse,
    latencyMs: scenario.latencyMs,
    rateLimit: {
      adminPerMinute: perWindow,
      ipPerMinute: Math.ceil(perWindow * 200 / 60),
      ipPer10Seconds: Math.ceil(perWindow * 50 / 60),
      windowMs,
    },
  });
  const dir = `${workDir}/${scenario.name}`;
  await Deno.mkdir(dir, { recursive: true });
  const settingsPath = `${dir}/settings.json`;
  await Deno.writeTextFile(
    settingsPath,
    JSON.stringify({
      env: "bench",
      moodle: { endpoint: moodle.endpoint, token: moodle.token },
      discourse: {
        url: discourse.url,
        apiKey: benchCredentials.discourseApiKey,
        apiUser: benchCredentials.discourseApiUser,
        requestsPerMinute: scenario.limitPerMin,
        ...(scenario.settings?.ssoSecret
          ? { ssoSecret: scenario.settings.ssoSecret }
          : {}),
      },
      ...(scenario.settings?.match ? { match: scenario.settings.match } : {}),
      ...(population.groupMap ? { groups: { map: population.groupMap } } : {}),
      batchSize: 10,
      ...(scenario.concurrency === undefined
        ? {}
        : { concurrency: scenario.concurrency }),
      logDir: dir,
    }),
  );
  await Deno.chmod(settingsPath, 0o600);

  const traffic = emptyTraffic();
  const written = new Set<string>();
  const discourseLog = drainPeriodically(
    discourse.requests,
    (batch) => countDiscourse(traffic, batch, written),
  );
  const moodleLog = drainPeriodically(moodle.requests, () => {});

  const foreignTimers: Array<ReturnType<typeof setTimeout>> = [];
  if (scenario.foreign) {
    const { burst, burstAtMs, steady } = scenario.foreign;
    foreignTimers.push(setTimeout(
      () => discourse.foreignLoad(Math.round(burst * perWindow)),
      burstAtMs,
    ));
    const perSecond = Math.max(
      1,
      Math.round(steady * perWindow * 1000 / windowMs),
    );
    foreignTimers.push(setInterval(
      () => discourse.foreignLoad(perSecond),
      1_000,
    ));
  }

  let measured;
  try {
    measured = await bounded(
      runMeasuredCli(method, ["--settings", settingsPath, ...scenario.args], {
        cwd: dir,
        timeFile: `${dir}/time.txt`,
      }),
      timeLimitMs(scenario),
      // The CLI cannot finish without the doubles: it stops on its own.
      () => void Promise.all([moodle.close(), discourse.close()]),
    );
  } finally {
    for (const timer of foreignTimers) clearTimeout(timer);
    discourseLog.stop();
    moodleLog.stop();
    await Promise.all([moodle.close(), discourse.close()]);
  }
  return await resultOf(
    scenario,
    population.planted,
    dir,
    measured,
    traffic,
    {
      moodleRequests: moodle.requestCount(),
      moodleAllUsersCalls: moodle.functionCallCount("core_user_get_users"),
      moodleByFieldCalls: moodle.functionCallCount(
        "core_user_get_users_by_field",
      ),
      own429s: discourse.rateLimited429s(),
      ip429s: discourse.ipRateLimited429s(),
      emailChangeRequests: discourse.emailChangeRequests.length,
    },
  );
};

const failedStatuses = new Set(["ERROR", "EXCEPTION", "VERIFY_FAILED"]);

/** Fewer requests than this give no meaningful rate. */
const minimumForRate = 50;

const resultOf = async (
  scenario: Scenario,
  planted: Planted,
  dir: string,
  measured: Awaited<ReturnType<typeof runMeasuredCli>>,
  traffic: DiscourseTraffic,
  counters: {
    moodleRequests: number;
    moodleAllUsersCalls: number;
    moodleByFieldCalls: number;
    own429s: number;
    ip429s: number;
    emailChangeRequests: number;
  },
): Promise<Result> => {
  const logs = await auditLogs(dir);
  const rows = logs.length === 0 ? [] : (await readLog(logs.at(-1)!)).rows;
  const statusCounts: Record<string, number> = {};
  let users = 0;
  let failedUsers = 0;
  for (const row of rows) {
    const key = `${row.action}/${row.status}`;
    statusCounts[key] = (statusCounts[key] ?? 0) + 1;
    // The guest and the planted collision never reach the forum.
    const planned = planted.collisions.has(row.original_username);
    const membership = row.action.startsWith("GROUP_");
    if (row.action !== "EXCLUDE" && !planned && !membership) users++;
    if (failedStatuses.has(row.status) && !planned) failedUsers++;
  }
  const span = traffic.firstAt !== undefined && traffic.lastAt !== undefined
    ? traffic.lastAt - traffic.firstAt
    : 0;
  return {
    scenario,
    exitCode: measured.code,
    users,
    traffic,
    ...counters,
    // n requests evenly spaced span n - 1 intervals; a handful says nothing.
    achievedPerMin: traffic.total >= minimumForRate && span > 0
      ? (traffic.total - 1) / span * 60_000
      : null,
    failedUsers,
    statusCounts,
    planted,
    wallSeconds: measured.wallSeconds,
    cpuSeconds: measured.cpuSeconds,
    peakRssMb: measured.peakRssMb,
    stderrTail: measured.stderrTail,
  };
};

// ---------------------------------------------------------------------------
// Output

const jsonLine = (r: Result) => {
  const rounded = (value: number, digits: number) =>
    Math.round(value * 10 ** digits) / 10 ** digits;
  return JSON.stringify({
    scenario: r.scenario.name,
    users: r.users,
    discourse_requests: r.traffic.total,
    requests_per_user: rounded(requestsPerUser(r), 4),
    limit_per_min: r.scenario.limitPerMin,
    achieved_per_min: r.achievedPerMin === null
      ? null
      : rounded(r.achievedPerMin, 1),
    utilisation: r.achievedPerMin === null
      ? null
      : rounded(r.achievedPerMin / r.scenario.limitPerMin, 4),
    own_429s: r.own429s,
    failed_users: r.failedUsers,
    wall_s: rounded(r.wallSeconds, 2),
    cpu_s: rounded(r.cpuSeconds, 2),
    peak_rss_mb: rounded(r.peakRssMb, 1),
  });
};

const table = (
  header: ReadonlyArray<string>,
  rows: ReadonlyArray<ReadonlyArray<string>>,
): string => {
  const widths = header.map((h, i) =>
    Math.max(h.length, ...rows.map((row) => row[i].length))
  );
  const line = (cells: ReadonlyArray<string>) =>
    cells.map((cell, i) =>
      i === 0 ? cell.padEnd(widths[i]) : cell.padStart(widths[i])
    ).join("  ");
  return [
    line(header),
    widths.map((w) => "-".repeat(w)).join("  "),
    ...rows.map(line),
  ].join("\n");
};

const resultsTable = (results: ReadonlyArray<Result>) =>
  table(
    [
      "scenario",
      "users",
      "requests",
      "req/user",
      "limit/min",
      "achieved/min",
      "util",
      "429s",
      "failed",
      "wall s",
      "cpu s",
      "peak MB",
      "moodle",
      "reads/pages/emails/PUT/email-PUT/group-reads/group-writes",
    ],
    results.map((r) => [
      r.scenario.name,
      String(r.users),
      String(r.traffic.total),
      fmt(requestsPerUser(r)),
      String(r.scenario.limitPerMin),
      r.achievedPerMin === null ? "-" : fmt(r.achievedPerMin, 0),
      r.achievedPerMin === null
        ? "-"
        : fmt(r.achievedPerMin / r.scenario.limitPerMin),
      String(r.own429s + r.ip429s),
      String(r.failedUsers),
      fmt(r.wallSeconds, 2),
      fmt(r.cpuSeconds, 2),
      fmt(r.peakRssMb, 0),
      String(r.moodleRequests),
      [
        r.traffic.profileReads,
        r.traffic.adminPages,
        r.traffic.emailReads,
        r.traffic.profileWrites,
        r.traffic.emailWrites,
        r.traffic.groupReads,
        r.traffic.groupWrites,
      ].join("/"),
    ]),
  );

/**
 * Cost per user at the largest scale against the smallest, and the marginal
 * cost between the two largest, which startup does not flatter.
 */
const scaleChecks = (results: ReadonlyArray<Result>): ReadonlyArray<Check> => {
  const scale = results.filter((r) => r.scenario.name.startsWith("scale-"))
    .sort((a, b) => a.users - b.users);
  if (scale.length < 2) return [];
  const smallest = scale[0];
  const largest = scale.at(-1)!;
  const perUser = (r: Result, value: number) => value / r.users;
  const checks: Check[] = [];
  for (
    const [label, pick] of [
      ["wall", (r: Result) => r.wallSeconds],
      ["CPU", (r: Result) => r.cpuSeconds],
    ] as const
  ) {
    const ratio = perUser(largest, pick(largest)) /
      perUser(smallest, pick(smallest));
    checks.push(check(
      `${label} cost per user at ${largest.users} within 1.5x of ${smallest.users}`,
      ratio <= 1.5,
      `${fmt(perUser(largest, pick(largest)) * 1000)} ms vs ${
        fmt(perUser(smallest, pick(smallest)) * 1000)
      } ms per user: ${fmt(ratio, 2)}x`,
    ));
  }
  if (scale.length >= 3) {
    const [a, b, c] = scale.slice(-3);
    const marginal = (from: Result, to: Result) =>
      (to.cpuSeconds - from.cpuSeconds) / (to.users - from.users);
    const ratio = marginal(b, c) / marginal(a, b);
    checks.push(check(
      `marginal CPU per user ${b.users}->${c.users} within 1.5x of ${a.users}->${b.users}`,
      ratio <= 1.5,
      `${fmt(marginal(b, c) * 1000)} ms vs ${fmt(marginal(a, b) * 1000)} ms: ${
        fmt(ratio, 2)
      }x`,
    ));
  }
  return checks;
};

// ---------------------------------------------------------------------------

const parseArgs = (args: ReadonlyArray<string>) => {
  let quick = false;
  let keep = false;
  let list = false;
  let proc = false;
  let only: ReadonlyArray<string> | undefined;
  for (let index = 0; index < args.length; index++) {
    const [flag, inline] = args[index].split("=", 2);
    switch (flag) {
      case "--":
        break;
      case "--quick":
        quick = true;
        break;
      case "--keep":
        keep = true;
        break;
      case "--list":
        list = true;
        break;
      case "--proc":
        proc = true;
        break;
      case "--only": {
        const value = inline ?? args[++index];
        if (!value) {
          console.error(`--only needs scenario names\n${usage}`);
          Deno.exit(2);
        }
        only = value.split(",").map((name) => name.trim());
        break;
      }
      case "--help":
      case "-h":
        console.log(usage);
        Deno.exit(0);
        break;
      default:
        console.error(`unknown argument ${args[index]}\n${usage}`);
        Deno.exit(2);
    }
  }
  return { quick, keep, list, only, proc };
};

const main = async () => {
  const options = parseArgs(Deno.args);
  const all = scenarios(options.quick);
  if (options.list) {
    for (const s of all) console.log(`${s.name.padEnd(16)} ${s.description}`);
    console.log(`${assistedName.padEnd(16)} ${assistedDescription}`);
    return 0;
  }
  const unknown = (options.only ?? []).filter((name) =>
    name !== assistedName && !all.some((s) => s.name === name)
  );
  if (unknown.length > 0) {
    console.error(`unknown scenario ${unknown.join(", ")}; try --list`);
    return 2;
  }
  const chosen = options.only
    ? all.filter((s) => options.only!.includes(s.name))
    : all;
  const method: Method = options.proc ? "proc" : await chooseMethod();
  const workDir = await Deno.makeTempDir({ prefix: "sync-bench-" });
  console.error(
    `Benchmark${
      options.quick ? " (quick)" : ""
    }: ${chosen.length} scenarios; ` +
      `CLI measured with ${
        method === "gnu-time" ? "/usr/bin/time" : "/proc polling"
      }; work dir ${workDir}`,
  );
  // Module loading is not what is measured: fill Deno's caches first.
  await runMeasuredCli(method, ["--version"], {
    cwd: workDir,
    timeFile: `${workDir}/warmup-time.txt`,
  });

  const results: Result[] = [];
  let assisted: AssistedReport | undefined;
  try {
    for (const scenario of chosen) {
      console.error(`- ${scenario.name}: ${scenario.description}...`);
      const result = await runScenario(scenario, method, workDir);
      console.error(
        `  ${result.users} users, ${result.traffic.total} Discourse requests, ` +
          `${fmt(result.wallSeconds, 1)} s, exit ${result.exitCode}`,
      );
      if (result.exitCode !== 0 && result.exitCode !== 1) {
        console.error(result.stderrTail.split("\n").slice(-10).join("\n"));
      }
      results.push(result);
    }
    if (!options.only || options.only.includes(assistedName)) {
      console.error(`- ${assistedName}: ${assistedDescription}...`);
      assisted = await runAssistedBench({ ...options, method, workDir });
    }
  } finally {
    if (!options.keep) await Deno.remove(workDir, { recursive: true });
  }

  const checks = [
    ...results.flatMap((r) =>
      r.scenario.targets(r).map((c) => ({ ...c, scenario: r.scenario.name }))
    ),
    ...scaleChecks(results).map((c) => ({ ...c, scenario: "scale" })),
    ...(assisted?.checks ?? []).map((c) => ({ ...c, scenario: assistedName })),
  ];
  console.log(resultsTable(results));
  if (assisted) console.log(`\n${assisted.lines.join("\n")}`);
  console.log(
    "\n429s: admin and per-IP 429s the doubles answered (foreign-load provokes them on purpose)." +
      "\nreads/pages/emails/PUT/email-PUT: profile reads, admin list pages, emails.json reads, profile writes, email change requests.",
  );
  console.log("\nTargets:");
  for (const c of checks) {
    console.log(
      `  ${c.ok ? "PASS" : "FAIL"}  ${
        c.scenario.padEnd(14)
      } ${c.target}: ${c.detail}`,
    );
  }
  console.log("");
  for (const r of results) console.log(jsonLine(r));
  return checks.every((c) => c.ok) ? 0 : 1;
};

Deno.exit(await main());
