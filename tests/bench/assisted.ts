/**
 * The state-assisted run (issue 12), measured as `deno task bench` runs it:
 * a night's run already in the store, then 1% of users changed in Moodle
 * (name, location, bio and email in turn), 0.2% edited on the forum by their
 * owners and 0.1% new in Moodle (no forum account yet: DiscourseConnect
 * makes it at their first login). The same night runs twice from identical forums: once
 * state-assisted, once with `--full`, so requests per user compare side by
 * side and the assisted forum can be checked against the full one.
 *
 * Then, unless --quick, a 100,000-user state-assisted dry-run's peak memory.
 * Counts come from the doubles' request logs, never from the CLI.
 */
import { startFakeMoodle } from "../doubles/fakeMoodle.ts";
import {
  type DiscourseScenarioUser,
  type FakeDiscourse,
  startFakeDiscourse,
} from "../doubles/fakeDiscourse.ts";
import { moodleUser } from "../doubles/scenarios.ts";
import { Effect } from "effect";
import { userCardsPerRequest } from "../../src/discourse/Discourse.ts";
import type { UserCard } from "../../src/discourse/schema.ts";
import type { MoodleUser } from "../../src/moodle/schema.ts";
import { StateStore } from "../../src/state/Store.ts";
import { desiredHash, snapshotOf } from "../../src/sync/assisted.ts";
import { desiredProfile } from "../../src/sync/profile.ts";
import { type Method, runMeasuredCli } from "./measure.ts";
import {
  benchCredentials,
  syntheticPopulation,
  usernameOf,
} from "./population.ts";

export interface AssistedCheck {
  readonly target: string;
  readonly ok: boolean;
  readonly detail: string;
}

export interface AssistedReport {
  readonly lines: ReadonlyArray<string>;
  readonly checks: ReadonlyArray<AssistedCheck>;
}

const unlimited = 1_000_000;

/** What one night changes, by forum username. */
interface Night {
  readonly moodleChanged: ReadonlyArray<string>;
  readonly forumEdited: ReadonlyArray<string>;
  readonly added: ReadonlyArray<string>;
  readonly emailChanged: number;
}

const settingsFor = async (
  dir: string,
  name: string,
  moodleEndpoint: string,
  discourseUrl: string,
): Promise<string> => {
  const path = `${dir}/${name}.json`;
  await Deno.writeTextFile(
    path,
    JSON.stringify({
      env: "bench",
      moodle: { endpoint: moodleEndpoint, token: benchCredentials.moodleToken },
      discourse: {
        url: discourseUrl,
        apiKey: benchCredentials.discourseApiKey,
        apiUser: benchCredentials.discourseApiUser,
        requestsPerMinute: unlimited,
      },
      concurrency: 4,
      logDir: `${dir}/${name}-logs`,
      lockDir: `${dir}/locks`,
    }),
  );
  await Deno.chmod(path, 0o600);
  return path;
};

const forumOf = (users: ReadonlyArray<DiscourseScenarioUser>) =>
  startFakeDiscourse({
    apiKey: benchCredentials.discourseApiKey,
    apiUser: benchCredentials.discourseApiUser,
    users: users.map((user) => structuredClone(user)),
    rateLimit: {
      adminPerMinute: unlimited,
      ipPerMinute: unlimited,
      ipPer10Seconds: unlimited,
    },
    recordBodies: false,
  });

/** Changes the night brings, the same on every forum it is applied to. */
const planNight = (
  size: number,
  moodleUsers: Array<Record<string, unknown>>,
): Night & { readonly forumEdit: (forum: FakeDiscourse) => void } => {
  const changed = Math.round(size * 0.01);
  const edited = Math.round(size * 0.002);
  const added = Math.round(size * 0.001);
  const moodleChanged: string[] = [];
  let emailChanged = 0;
  // Spread over the list; Moodle ids are index + 1, records after the guest.
  for (let n = 0; n < changed; n++) {
    const index = 1 + Math.floor((n * size) / changed);
    const record = moodleUsers.find((r) => r.id === index + 1)!;
    switch (n % 4) {
      case 0:
        record.firstname = `Renamed${index}`;
        record.fullname = `Renamed${index} ${record.lastname}`;
        break;
      case 1:
        record.city = "Valparaíso";
        record.country = "CL";
        break;
      case 2:
        record.description = `<p>A new bio for ${index}.</p>`;
        break;
      case 3:
        record.email = `new.${index}@campus.example`;
        emailChanged++;
        break;
    }
    moodleChanged.push(usernameOf(index));
  }
  const forumEdited: string[] = [];
  for (let n = 0; n < edited; n++) {
    // Never a user Moodle changed: each user is one kind of change.
    forumEdited.push(usernameOf(3 + Math.floor((n * size) / edited)));
  }
  const addedNames: string[] = [];
  for (let n = 0; n < added; n++) {
    const index = size + 10 + n;
    const username = usernameOf(index);
    moodleUsers.push(
      moodleUser(index + 1, username, { city: "Quito", country: "EC" }),
    );
    addedNames.push(username);
  }
  return {
    moodleChanged,
    forumEdited,
    added: addedNames,
    emailChanged,
    forumEdit: (forum) => {
      forumEdited.forEach((username, n) => {
        const user = forum.userByUsername(username)!;
        if (n % 3 === 0) user.name = `${user.name} (edited)`;
        else if (n % 3 === 1) user.location = "Edited town";
        else user.bio_raw = "Edited on the forum by its owner.";
      });
    },
  };
};

const profileOf = (forum: FakeDiscourse, username: string) => {
  const user = forum.userByUsername(username);
  return user === undefined ? undefined : JSON.stringify([
    user.name ?? "",
    user.location ?? "",
    user.bio_raw ?? "",
    user.email,
  ]);
};

const check = (
  target: string,
  ok: boolean,
  detail: string,
): AssistedCheck => ({ target, ok, detail });

const fmt = (value: number, digits = 3) => value.toFixed(digits);

const row = (
  label: string,
  requests: number,
  users: number,
  measured: { wallSeconds: number; cpuSeconds: number; peakRssMb: number },
) =>
  [
    label.padEnd(27),
    String(requests).padStart(8),
    fmt(requests / users).padStart(8),
    fmt(measured.wallSeconds, 1).padStart(6),
    fmt(measured.cpuSeconds, 1).padStart(6),
    fmt(measured.peakRssMb, 0).padStart(7),
  ].join("  ");

export const runAssistedBench = async (
  options: {
    readonly quick: boolean;
    readonly method: Method;
    readonly workDir: string;
  },
): Promise<AssistedReport> => {
  const size = options.quick ? 2_000 : 10_000;
  const dir = `${options.workDir}/assisted`;
  await Deno.mkdir(dir, { recursive: true });
  const population = syntheticPopulation(size, { inStep: true });
  const moodleUsers = population.moodle.users;
  const night0 = await startFakeMoodle({
    ...population.moodle,
    users: moodleUsers.map((r) => ({ ...r })),
  });
  const port = Number(new URL(night0.endpoint).port);
  const forumA = await forumOf(population.discourse.users);
  const lines: string[] = [];
  const checks: AssistedCheck[] = [];
  let forumB: FakeDiscourse | undefined;
  let moodle = night0;
  try {
    const settingsA = await settingsFor(
      dir,
      "assisted",
      night0.endpoint,
      forumA.url,
    );
    const run = (settings: string, args: ReadonlyArray<string>) =>
      runMeasuredCli(options.method, ["--settings", settings, ...args], {
        cwd: dir,
        timeFile: `${dir}/time.txt`,
      });
    const before0 = forumA.requestCount();
    const first = await run(settingsA, ["--all", "--apply"]);
    const firstRequests = forumA.requestCount() - before0;

    // The next night: Moodle and the forum have moved on.
    const night = planNight(size, moodleUsers);
    await moodle.close();
    moodle = await startFakeMoodle({
      ...population.moodle,
      users: moodleUsers,
      port,
    });
    night.forumEdit(forumA);
    forumB = await forumOf([...forumA.users.values()]);
    const settingsB = await settingsFor(
      dir,
      "full",
      moodle.endpoint,
      forumB.url,
    );
    forumA.requests.splice(0);
    forumA.emailChangeRequests.splice(0);

    const assisted = await run(settingsA, ["--all", "--apply"]);
    const assistedLog = forumA.requests.splice(0);
    const full = await run(settingsB, ["--all", "--apply", "--full"]);
    const fullRequests = forumB.requestCount();
    const again = await run(settingsA, ["--all", "--apply"]);
    const againLog = forumA.requests.splice(0);

    const users = size + night.added.length;
    const affected = night.moodleChanged.length + night.forumEdited.length +
      night.added.length;
    const bound = 0.03 * users + 2 * affected;
    const puts = assistedLog.filter((r) => r.method === "PUT").map((r) =>
      r.path
    );
    const writtenTwice = puts.length - new Set(puts).size;
    const usernames = [
      ...population.usernames.filter((u) => !u.startsWith("bench")),
      ...night.added,
    ];
    const differing = usernames.filter((u) =>
      profileOf(forumA, u) !== profileOf(forumB!, u)
    );
    const emailRequests = (forum: FakeDiscourse) =>
      forum.emailChangeRequests.map((r) => `${r.username} ${r.email}`).sort()
        .join("\n");
    const singleReads = assistedLog.filter((r) =>
      r.method === "GET" && /^\/u\/[^/]+\.json$/.test(r.path)
    ).length;
    const cards = assistedLog.filter((r) =>
      r.path === "/user-cards.json"
    )
      .length;
    const adminPages = assistedLog.filter((r) =>
      r.path.startsWith("/admin/users/list/")
    ).length;

    lines.push(
      `State-assisted night over ${users} users: ${night.moodleChanged.length} changed in Moodle (${night.emailChanged} emails), ${night.forumEdited.length} edited on the forum, ${night.added.length} new`,
      "",
      "run                         requests  req/user  wall s   cpu s  peak MB",
      row("first --apply (full, store)", firstRequests, size, first),
      row("night, state-assisted", assistedLog.length, users, assisted),
      row("night, --full", fullRequests, users, full),
      row("next night, nothing changed", againLog.length, users, again),
      "",
      `state-assisted night: ${adminPages} admin list pages, ${cards} user-card requests, ${singleReads} single-profile reads, ${puts.length} profile writes, ${
        assistedLog.filter((r) => r.path.endsWith("/emails.json")).length
      } emails.json reads, ${
        assistedLog.filter((r) => r.path.endsWith("/preferences/email.json"))
          .length
      } email change requests`,
    );
    checks.push(
      check(
        `requests <= 0.03 x users + 2 x (changed + edited + new)`,
        assistedLog.length <= bound,
        `${assistedLog.length} <= ${bound} (${
          fmt(assistedLog.length / users)
        } a user; --full: ${fmt(fullRequests / users)})`,
      ),
      check(
        "single-profile reads only for the users that changed, but their email",
        singleReads === affected - night.emailChanged,
        `${singleReads} reads for ${affected} changed, edited or new users, ${night.emailChanged} of them only by email`,
      ),
      check(
        "every profile as --full --apply leaves it",
        differing.length === 0 &&
          emailRequests(forumA) === emailRequests(forumB),
        `${differing.length} profiles differ${
          differing.length > 0 ? ` (${differing.slice(0, 3).join(", ")})` : ""
        }; email change requests ${
          emailRequests(forumA) === emailRequests(forumB) ? "equal" : "differ"
        }`,
      ),
      check("no user written twice", writtenTwice === 0, `${writtenTwice}`),
      check(
        "a second assisted run writes nothing",
        againLog.every((r) => r.method === "GET"),
        `${
          againLog.filter((r) => r.method !== "GET").length
        } writes, ${againLog.length} requests`,
      ),
      check(
        "runs ended as planned (exit 0, or 1 for the planted collision)",
        [first, assisted, full, again].every((m) => m.code <= 1),
        [first, assisted, full, again].map((m) => m.code).join(", "),
      ),
    );
  } finally {
    await moodle.close();
    await forumA.close();
    await forumB?.close();
  }
  if (!options.quick) {
    for (const bioBytes of [undefined, 2048]) {
      const memory = await hundredThousand(options.method, options.workDir, {
        bioBytes,
      });
      lines.push(...memory.lines);
      checks.push(...memory.checks);
    }
  }
  return { lines, checks };
};

/**
 * The store a night's run leaves for a forum in step with Moodle, written
 * directly (a first run of 100,000 users takes as long as it takes): each
 * entry from the forum's own answers (its cards, its admin list) and the
 * sync's own fingerprint, so the assisted run below has nothing to read.
 */
const prefillStore = async (
  path: string,
  moodle: { readonly endpoint: string },
  forum: FakeDiscourse,
  moodleUsers: ReadonlyArray<Record<string, unknown>>,
) => {
  const ask = async (route: string) => {
    const answer = await fetch(`${forum.url}${route}`, {
      headers: {
        "Api-Key": benchCredentials.discourseApiKey,
        "Api-Username": benchCredentials.discourseApiUser,
        Accept: "application/json",
      },
    });
    return await answer.json();
  };
  const emails = new Map<number, string>();
  for (let page = 1;; page++) {
    const rows: Array<{ id: number; email: string }> = await ask(
      `/admin/users/list/active.json?show_emails=true&order=created&asc=true&page=${page}`,
    );
    for (const row of rows) emails.set(row.id, row.email);
    if (rows.length < 100) break;
  }
  const byUsername = new Map(
    [...forum.users.values()].map((user) => [user.username, user.id]),
  );
  const rules = { country: "code", locale: "en" } as const;
  const hashSettings = {
    fields: {
      name: "overwrite",
      location: "overwrite",
      bio: "overwrite",
      email: "overwrite",
    },
    match: "username",
  } as const;
  const known = moodleUsers.flatMap((record) => {
    const forumId = byUsername.get(String(record.username));
    return forumId === undefined || record.username === "guest"
      ? []
      : [{ record, forumId }];
  });
  await Effect.runPromise(
    Effect.gen(function* () {
      const store = yield* StateStore;
      for (let at = 0; at < known.length; at += userCardsPerRequest) {
        const chunk = known.slice(at, at + userCardsPerRequest);
        const answer: { users: Array<UserCard> } = yield* Effect.promise(() =>
          ask(`/user-cards.json?user_ids=${chunk.map((k) => k.forumId)}`)
        );
        const cards = new Map(answer.users.map((card) => [card.id, card]));
        for (const { record, forumId } of chunk) {
          const card = cards.get(forumId)!;
          const desired = desiredProfile(
            record as unknown as MoodleUser,
            rules,
          );
          yield* store.upsert({
            moodleId: Number(record.id),
            moodleUsername: String(record.username),
            forumId,
            forumUsername: card.username,
            desiredHash: desiredHash(desired, hashSettings),
            snapshot: snapshotOf(
              {
                ...card,
                name: card.name ?? "",
                location: card.location ?? "",
                bio_excerpt: card.bio_excerpt ?? "",
              },
              emails.get(forumId) ?? "",
            ),
          });
        }
      }
    }).pipe(
      Effect.provide(
        StateStore.layer({
          path,
          moodleEndpoint: moodle.endpoint,
          discourseUrl: forum.url,
        }),
      ),
    ),
  );
  return known.length;
};

/**
 * 100,000 users with a night's store: the assisted dry-run's peak memory,
 * under 1 GB (issue 12), or with 2 KB HTML bios under 600 MB (issue 15).
 */
export const hundredThousand = async (
  method: Method,
  workDir: string,
  options: { readonly bioBytes?: number; readonly size?: number } = {},
): Promise<AssistedReport> => {
  const size = options.size ?? 100_000;
  const { bioBytes } = options;
  const peakMb = bioBytes === undefined ? 1024 : 600;
  const dir = `${workDir}/assisted-100k${bioBytes === undefined ? "" : "-cv"}`;
  await Deno.mkdir(dir, { recursive: true });
  const population = syntheticPopulation(size, { inStep: true, bioBytes });
  const moodle = await startFakeMoodle(population.moodle);
  const forum = await startFakeDiscourse({
    ...population.discourse,
    recordRequests: false,
    rateLimit: {
      adminPerMinute: unlimited,
      ipPerMinute: unlimited,
      ipPer10Seconds: unlimited,
    },
  });
  try {
    const settings = await settingsFor(dir, "s", moodle.endpoint, forum.url);
    const entries = await prefillStore(
      `${dir}/sync-state.sqlite`,
      moodle,
      forum,
      population.moodle.users,
    );
    const before = forum.requestCount();
    const dry = await runMeasuredCli(
      method,
      ["--settings", settings, "--all"],
      {
        cwd: dir,
        timeFile: `${dir}/time.txt`,
      },
    );
    const requests = forum.requestCount() - before;
    return {
      lines: [
        "",
        `${size} users${
          bioBytes === undefined ? "" : ` with ${bioBytes}-byte HTML bios`
        }, ${entries} in the store: state-assisted dry-run ${requests} requests (${
          fmt(requests / size)
        } a user), ${fmt(dry.wallSeconds, 0)} s, ${
          fmt(dry.cpuSeconds, 0)
        } s CPU, ${fmt(dry.peakRssMb, 0)} MB peak`,
      ],
      checks: [
        check(
          `${size}-user state-assisted dry-run${
            bioBytes === undefined ? "" : `, ${bioBytes}-byte bios`
          }: peak < ${peakMb} MB, bulk reads only`,
          dry.peakRssMb < peakMb && dry.code <= 1 && requests <= 0.035 * size,
          `${fmt(dry.peakRssMb, 0)} MB, ${requests} requests, exit ${dry.code}`,
        ),
      ],
    };
  } finally {
    await moodle.close();
    await forum.close();
  }
};
