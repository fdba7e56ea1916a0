/**
 * A small campus for the group tests: five Moodle users with forum
 * accounts, a cohort and a course, and their two forum groups.
 */
import type { DiscourseScenario } from "../doubles/fakeDiscourse.ts";
import {
  defaultAllowedFunctions,
  groupSyncFunctions,
  type MoodleScenario,
} from "../doubles/fakeMoodle.ts";
import { discourseUser, moodleUser, withGuest } from "../doubles/scenarios.ts";
import {
  auditLogs,
  type LogRow,
  readLog,
  withWorld,
  type World,
  type WorldOptions,
} from "./world.ts";

export const campusUsers = ["ana", "ben", "carla", "dario", "eva"] as const;

/** Moodle ids 2..6 in `campusUsers` order; forum ids 12..16. */
export const moodleIdOf = (username: string) =>
  2 + campusUsers.indexOf(username as (typeof campusUsers)[number]);

export const defaultMap = [
  { cohort: "students-2026", group: "students_2026" },
  { course: "HIST101", roles: ["student", "editingteacher"], group: "hist101" },
];

export interface CampusOptions {
  readonly map?: ReadonlyArray<Record<string, unknown>>;
  readonly groupsSettings?: Record<string, unknown>;
  readonly settings?: Record<string, unknown>;
  /** Campus usernames or Moodle ids. */
  readonly cohortMembers?: ReadonlyArray<string | number>;
  readonly enrolments?: MoodleScenario["courses"];
  readonly forumGroups?: DiscourseScenario["groups"];
  readonly moodle?: Partial<MoodleScenario>;
  readonly discourse?: Partial<DiscourseScenario>;
  readonly extraMoodleUsers?: WorldOptions["moodleUsers"];
  readonly extraForumUsers?: WorldOptions["forumUsers"];
}

/**
 * The cohort holds ana, ben, carla; HIST101 has ben (student), dario
 * (editingteacher) and eva (suspended enrolment). students_2026 holds ana,
 * dario and the forum-only "visitor"; hist101 is empty.
 */
export const withCampus = (
  options: CampusOptions,
  body: (world: World) => Promise<void>,
) =>
  withWorld({
    moodleUsers: withGuest([
      ...campusUsers.map((name) => moodleUser(moodleIdOf(name), name)),
      ...(options.extraMoodleUsers ?? []),
    ]),
    forumUsers: [
      ...campusUsers.map((name) => discourseUser(10 + moodleIdOf(name), name)),
      discourseUser(30, "visitor"),
      discourseUser(31, "owner.one"),
      ...(options.extraForumUsers ?? []),
    ],
    settings: {
      batchSize: 0,
      groups: { map: options.map ?? defaultMap, ...options.groupsSettings },
      ...options.settings,
    },
    moodle: {
      allowedFunctions: [...defaultAllowedFunctions, ...groupSyncFunctions],
      cohorts: [{
        id: 5,
        name: "Students 2026",
        idnumber: "students-2026",
        members: (options.cohortMembers ?? ["ana", "ben", "carla"]).map(
          (member) => typeof member === "number" ? member : moodleIdOf(member),
        ),
      }],
      courses: options.enrolments ?? [{
        id: 7,
        shortname: "HIST101",
        enrolments: [
          { userid: moodleIdOf("ben"), roles: ["student"] },
          { userid: moodleIdOf("dario"), roles: ["editingteacher"] },
          { userid: moodleIdOf("eva"), status: "suspended" },
        ],
      }],
      ...options.moodle,
    },
    discourse: {
      groups: options.forumGroups ?? [
        { name: "students_2026", members: ["ana", "dario", "visitor"] },
        { name: "hist101" },
      ],
      ...options.discourse,
    },
  }, body);

/** The membership rows of a log, as `ACTION STATUS user group` lines, sorted. */
export const membershipRows = (rows: ReadonlyArray<LogRow>) =>
  rows.filter((row) => row.action.startsWith("GROUP_") && row.fields !== "")
    .map((row) =>
      `${row.action} ${row.status} ${row.normalized_username} ${
        JSON.parse(row.after || row.before).group
      }`
    ).sort();

export const groupRequests = (world: World) =>
  world.discourse.requests.filter((r) => r.path.includes("groups"));

/** The rows of the newest log of that mode (names sort apply before dryrun). */
export const newestLog = async (
  world: Pick<World, "dir">,
  mode: "apply" | "dryrun",
) => {
  const logs = (await auditLogs(world.dir)).filter((path) =>
    path.includes(`_${mode}_`)
  );
  const path = logs[logs.length - 1];
  if (path === undefined) throw new Error(`no ${mode} log in ${world.dir}`);
  return { path, ...(await readLog(path)) };
};
