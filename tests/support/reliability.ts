// The users and helpers of the fault tests, in the shared world with every
// wait made short: short timeouts, tiny backoffs.
import assert from "node:assert/strict";
import type { MoodleScenario } from "../doubles/fakeMoodle.ts";
import type {
  DiscourseScenario,
  DiscourseScenarioUser,
  FakeDiscourse,
} from "../doubles/fakeDiscourse.ts";
import { type LogRow, spawnCli, type Spawned } from "./world.ts";
import {
  lastLog,
  withWorld as withSharedWorld,
  type World,
  worldCredentials,
} from "./world.ts";

export const moodleToken = worldCredentials.moodleToken;
export const discourseKey = worldCredentials.discourseKey;

/** Ten Moodle users; eight have a forum account that differs somehow. */
export const moodleUsers = (): MoodleScenario["users"] => [
  { id: 1, username: "guest", fullname: "Guest user", email: "root@localhost" },
  {
    id: 2,
    username: "josé.núñez",
    fullname: "José Núñez",
    email: "jose@uni.example",
    city: "Buenos Aires",
    country: "AR",
    description: "<p>Profesor de <strong>física</strong></p>",
    descriptionformat: 1,
  },
  {
    id: 3,
    username: "margherita cospe",
    fullname: "Margherita Cospe",
    email: "margherita@uni.example",
    city: "Firenze",
    country: "IT",
  },
  {
    id: 4,
    username: "up.to.date",
    fullname: "Up To Date",
    email: "same@uni.example",
    city: "Madrid",
    country: "ES",
    description: "Plain bio",
    descriptionformat: 2,
  },
  {
    id: 5,
    username: "email.changer",
    fullname: "Email Changer",
    email: "new-address@uni.example",
  },
  {
    id: 6,
    username: "bio.filler",
    fullname: "Bio Filler",
    email: "bio@uni.example",
    description: "<ul><li>one</li><li>two</li></ul>",
    descriptionformat: 1,
  },
  {
    id: 7,
    username: "new.person",
    fullname: "New Person",
    email: "new@uni.example",
  },
  {
    id: 8,
    username: "name.changer",
    fullname: "Name Changed",
    email: "namechanger@uni.example",
  },
  {
    id: 9,
    username: "loc.changer",
    fullname: "Loc Changer",
    email: "loc@uni.example",
    city: "Lima",
    country: "PE",
  },
  {
    id: 10,
    username: "all.fields",
    fullname: "All Fields",
    email: "all-new@uni.example",
    city: "Quito",
    country: "EC",
    description: "<p>New bio</p>",
    descriptionformat: 1,
  },
];

export const forumUsers = (): DiscourseScenarioUser[] => [
  { id: 1, username: "system", email: "no_email@forum.example", admin: true },
  {
    id: 3,
    username: "jose.nunez",
    name: "Jose Nunez",
    email: "jose@uni.example",
  },
  {
    id: 4,
    username: "margherita_cospe",
    name: "Margherita",
    email: "margherita@uni.example",
    location: "Roma, IT",
    bio_raw: "old bio",
  },
  {
    id: 8,
    username: "up.to.date",
    name: "Up To Date",
    email: "same@uni.example",
    location: "Madrid, ES",
    bio_raw: "Plain bio",
  },
  {
    id: 9,
    username: "email.changer",
    name: "Email Changer",
    email: "old-address@uni.example",
  },
  {
    id: 10,
    username: "bio.filler",
    name: "Bio Filler",
    email: "bio@uni.example",
  },
  {
    id: 11,
    username: "name.changer",
    name: "Name Unchanged",
    email: "namechanger@uni.example",
  },
  {
    id: 12,
    username: "loc.changer",
    name: "Loc Changer",
    email: "loc@uni.example",
    location: "Cusco",
  },
  {
    id: 13,
    username: "all.fields",
    name: "Some Fields",
    email: "all-old@uni.example",
    location: "Guayaquil",
    bio_raw: "Old bio",
  },
];

/** Settings that make every wait short: faults cost milliseconds. */
export const fastTuning = {
  moodle: { timeoutSeconds: 0.5, retries: 3, retryDelaySeconds: 0.01 },
  discourse: {
    timeoutSeconds: 0.5,
    retries: 4,
    retryDelaySeconds: 0.01,
    maxRateLimitWaitSeconds: 0.05,
  },
};

export type { Spawned, World };

export interface WorldOptions {
  readonly settings?: Record<string, unknown>;
  readonly discourse?: Partial<DiscourseScenario>;
  readonly moodleUsers?: MoodleScenario["users"];
  readonly forumUsers?: DiscourseScenarioUser[];
  readonly moodleToken?: string;
  readonly moodle?: Partial<MoodleScenario>;
}

/** The shared world, with this file's users and every wait made short. */
export const withWorld = (
  options: WorldOptions,
  body: (world: World) => Promise<void>,
): Promise<void> =>
  withSharedWorld({
    ...options,
    moodleUsers: options.moodleUsers ?? moodleUsers(),
    forumUsers: options.forumUsers ?? forumUsers(),
    tuning: fastTuning,
  }, body);

export { lastLog, spawnCli };

/** Every user appears at most once; returns rows by Moodle id. */
export const oneRowPerUser = (rows: ReadonlyArray<LogRow>) => {
  const byId = new Map<number, LogRow>();
  for (const row of rows) {
    const id = Number(row.moodle_id);
    assert.ok(!byId.has(id), `user ${id} has two rows`);
    byId.set(id, row);
  }
  return byId;
};

/** Writes (anything but GET) the forum received. */
export const writes = (discourse: FakeDiscourse) =>
  discourse.requests.filter((r) => r.method !== "GET");

/** Lock files left in the world's lock folder (none before the first run). */
export const lockFiles = (world: World): string[] => {
  try {
    return [...Deno.readDirSync(world.lockDir)].map((entry) => entry.name);
  } catch {
    return [];
  }
};

/** Every outcome of a fault-free --apply run: the reference for the others. */
interface Reference {
  readonly outcome: ReadonlyMap<number, string>;
  readonly forum: ReturnType<typeof forumState>;
}

let reference: Reference | undefined;

export const outcomeOf = (rows: ReadonlyArray<Record<string, string>>) =>
  new Map(
    [...oneRowPerUser(rows)].map((
      [id, row],
    ) => [id, `${row.action}/${row.status}`]),
  );

export const referenceRun = async (): Promise<Reference> => {
  if (reference) return reference;
  let found: Reference | undefined;
  await withWorld({}, async (world) => {
    const result = await world.engine(["--all", "--apply"]);
    assert.equal(result.code, 0, result.stderr);
    const { rows } = await lastLog(world);
    found = { outcome: outcomeOf(rows), forum: forumState(world.discourse) };
  });
  reference = found!;
  return reference;
};

/**
 * The newest log holds exactly one row for each user the run says it
 * considered: no row lost, none twice.
 */
export const rowsOfEveryUserConsidered = async (
  world: World,
  stdout: string,
) => {
  const { rows } = await lastLog(world);
  const considered = Number(
    /(\d+) users? considered/.exec(stdout)?.[1] ?? Number.NaN,
  );
  assert.equal(rows.length, considered, "one row per user considered");
  oneRowPerUser(rows);
  return rows;
};

/** Polls until `check` holds; fails after `timeoutMs`. */
export const waitUntil = async (
  what: string,
  check: () => boolean | Promise<boolean>,
  timeoutMs = 15_000,
): Promise<void> => {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
};

/** A user as compared across runs: blank and absent fields are the same. */
export const comparableUser = (user: DiscourseScenarioUser) => ({
  id: user.id,
  username: user.username,
  name: user.name ?? "",
  email: user.email,
  location: user.location ?? "",
  bio_raw: user.bio_raw ?? "",
  website: user.website ?? "",
  secondary_emails: user.secondary_emails ?? [],
  active: user.active ?? true,
  admin: user.admin ?? false,
});

export const forumState = (discourse: FakeDiscourse) =>
  [...discourse.users.values()].sort((a, b) => a.id - b.id).map(
    comparableUser,
  );
