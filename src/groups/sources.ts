/**
 * Reads what feeds the managed groups: each mapped cohort's and course's
 * members, from Moodle. A call that fails, and a name Moodle does not know,
 * is a failed read, never an empty one: only a source read whole may remove.
 */
import { Effect, Option } from "effect";
import type { GroupSeen } from "./idsSeen.ts";
import { Discourse } from "../discourse/Discourse.ts";
import { Moodle, type MoodleCohort } from "../moodle/Moodle.ts";
import { type GroupRead, type GroupSource, sourceKey } from "./model.ts";
import type { SourceRead } from "./model.ts";
import type { GroupMapEntry } from "./settings.ts";

const failed = (reason: string): SourceRead => ({ _tag: "Failed", reason });

/** A cohort by idnumber, else by exact name; a name two cohorts share is no answer. */
const findCohort = (
  cohorts: ReadonlyArray<MoodleCohort>,
  wanted: string,
): MoodleCohort | string => {
  const byIdnumber = cohorts.filter((cohort) => cohort.idnumber === wanted);
  if (byIdnumber.length === 1) return byIdnumber[0];
  const byName = cohorts.filter((cohort) => cohort.name === wanted);
  if (byName.length === 1 && byIdnumber.length === 0) return byName[0];
  return byIdnumber.length + byName.length > 1
    ? `several cohorts have the idnumber or name "${wanted}": give the cohort's idnumber, which is unique`
    : `Moodle lists no cohort with idnumber or name "${wanted}" (check groups.map, and that the token's user has moodle/cohort:view)`;
};

/** Members of every mapped cohort: one list of cohorts, one members call. */
const readCohorts = (names: ReadonlyArray<string>) =>
  Effect.gen(function* () {
    const reads = new Map<string, SourceRead>();
    if (names.length === 0) return reads;
    const moodle = yield* Moodle;
    const listed = yield* Effect.either(moodle.cohorts);
    if (listed._tag === "Left") {
      for (const name of names) reads.set(name, failed(listed.left.message));
      return reads;
    }
    const found = new Map<string, MoodleCohort>();
    for (const name of names) {
      const cohort = findCohort(listed.right, name);
      if (typeof cohort === "string") reads.set(name, failed(cohort));
      else found.set(name, cohort);
    }
    const members = yield* Effect.either(
      moodle.cohortMembers([...new Set([...found.values()].map((c) => c.id))]),
    );
    for (const [name, cohort] of found) {
      if (members._tag === "Left") {
        reads.set(name, failed(members.left.message));
        continue;
      }
      const ids = members.right.get(cohort.id);
      reads.set(
        name,
        ids === undefined
          ? failed(`Moodle did not answer the members of cohort "${name}"`)
          : { _tag: "Members", moodleIds: ids },
      );
    }
    return reads;
  });

/** A course's active enrolments with any of `roles` (absent: every role). */
const readCourse = (
  shortname: string,
  roleSets: ReadonlyArray<ReadonlyArray<string> | undefined>,
) =>
  Effect.gen(function* () {
    const moodle = yield* Moodle;
    const ids = yield* moodle.coursesByShortname(shortname);
    if (ids.length !== 1) {
      return yield* Effect.fail(
        ids.length === 0
          ? `Moodle lists no course with shortname "${shortname}" (check groups.map, and that the token's user can see the course)`
          : `several courses have the shortname "${shortname}"`,
      );
    }
    const enrolments = yield* moodle.activeEnrolments(ids[0]);
    return roleSets.map((roles): SourceRead => ({
      _tag: "Members",
      moodleIds: enrolments.filter((enrolment) =>
        roles === undefined ||
        enrolment.roles.some((role) => roles.includes(role))
      ).map((enrolment) => enrolment.userId),
    }));
  }).pipe(
    Effect.catchAll((error) =>
      Effect.succeed(
        roleSets.map(() =>
          failed(typeof error === "string" ? error : error.message)
        ),
      )
    ),
  );

/**
 * Every source the map names, by `sourceKey`. Costs two Moodle calls for
 * all cohorts together and two per course, whatever the roles.
 */
export const readSources = (
  map: ReadonlyArray<GroupMapEntry>,
): Effect.Effect<ReadonlyMap<string, SourceRead>, never, Moodle> =>
  Effect.gen(function* () {
    const reads = new Map<string, SourceRead>();
    const cohortNames = [
      ...new Set(
        map.flatMap((entry) => entry._tag === "Cohort" ? [entry.cohort] : []),
      ),
    ];
    const cohorts = yield* readCohorts(cohortNames);
    for (const name of cohortNames) {
      const source: GroupSource = { _tag: "Cohort", cohort: name };
      reads.set(sourceKey(source), cohorts.get(name) ?? failed("not read"));
    }
    const courses = new Map<string, Array<GroupSource & { _tag: "Course" }>>();
    for (const entry of map) {
      if (entry._tag !== "Course") continue;
      courses.set(entry.course, [...(courses.get(entry.course) ?? []), entry]);
    }
    for (const [shortname, entries] of courses) {
      const answers = yield* readCourse(
        shortname,
        entries.map((entry) => entry.roles),
      );
      entries.forEach((entry, index) =>
        reads.set(sourceKey(entry), answers[index])
      );
    }
    return reads;
  });

/**
 * Each managed group as the forum holds it: one members read a group (1000
 * members a page); a 404 is a group the forum lacks. Its id and whether it
 * is automatic come from `seen` (this run's profile reads) when they showed
 * it, otherwise from `readGroupIds` once a change needs them.
 */
export const readGroups = (
  names: ReadonlyArray<string>,
  seen: ReadonlyMap<string, GroupSeen>,
): Effect.Effect<ReadonlyMap<string, GroupRead>, never, Discourse> =>
  Effect.gen(function* () {
    const discourse = yield* Discourse;
    const reads = new Map<string, GroupRead>();
    for (const name of names) {
      const key = name.toLowerCase();
      const read = yield* discourse.groupMembers(name).pipe(
        Effect.map(({ members, owners }): GroupRead => ({
          _tag: "Found",
          id: seen.get(key)?.id,
          automatic: seen.get(key)?.automatic ?? false,
          members,
          owners,
        })),
        Effect.catchAll((error) =>
          Effect.succeed<GroupRead>(
            error._tag === "DiscourseNotFound"
              ? { _tag: "Missing" }
              : { _tag: "Failed", reason: error.message },
          )
        ),
      );
      reads.set(key, read);
    }
    return reads;
  });

/**
 * `GET /groups/{name}.json` for each of `names` (lowercased keys of
 * `reads`): the id the writes need, and whether the group is automatic.
 */
export const readGroupIds = (
  reads: ReadonlyMap<string, GroupRead>,
  names: ReadonlyArray<string>,
): Effect.Effect<ReadonlyMap<string, GroupRead>, never, Discourse> =>
  Effect.gen(function* () {
    const discourse = yield* Discourse;
    const known = new Map(reads);
    for (const name of names) {
      const read = known.get(name.toLowerCase());
      if (read?._tag !== "Found") continue;
      const group = yield* Effect.either(discourse.group(name));
      known.set(
        name.toLowerCase(),
        group._tag === "Left"
          ? { _tag: "Failed", reason: group.left.message }
          : Option.isNone(group.right)
          ? {
            _tag: "Failed",
            reason:
              "the forum no longer finds it by name: it was renamed or deleted during the run",
          }
          : {
            ...read,
            id: group.right.value.id,
            automatic: group.right.value.automatic,
          },
      );
    }
    return known;
  });
