/**
 * The `groups` and `safety` settings blocks. Every mistake an operator can
 * make in the group map is refused here, before anything is read, with the
 * entry's index (the loader prints the path, e.g. `groups.map.1.group`) and
 * what to write instead: a group map typo would otherwise surface mid-run as
 * a 422, or worse, aim the sync at a group nobody meant it to manage.
 */
import { Schema } from "effect";
import { expecting } from "../domain/expecting.ts";
import { defaultMaxRemovals } from "../domain/removals.ts";
import { confusingSuffix } from "../domain/usernames.ts";

/**
 * Groups Discourse fills by itself: writing them is refused by the forum, and
 * mapping a cohort onto `staff` would be a dangerous mistake anyway.
 */
export const automaticGroupNames: ReadonlyArray<string> = [
  "everyone",
  "staff",
  "admins",
  "moderators",
  "trust_level_0",
  "trust_level_1",
  "trust_level_2",
  "trust_level_3",
  "trust_level_4",
];

export const isAutomaticGroupName = (name: string): boolean =>
  automaticGroupNames.includes(name.trim().toLowerCase());

/** Discourse's hard cap on usernames, which group names share. */
const maxGroupNameLength = 60;

/**
 * Why Discourse's UsernameValidator (which group names go through) would
 * refuse `name`, or undefined. Length is only checked against the hard cap:
 * the site's own limits are unknown here, and an existing group passed them.
 */
export function groupNameProblem(name: string): string | undefined {
  if (name.length > maxGroupNameLength) {
    return `at most ${maxGroupNameLength} characters`;
  }
  if (/[^A-Za-z0-9_.-]/.test(name)) {
    return "only letters a-z, digits and _ . - (no spaces or accents)";
  }
  if (!/^[A-Za-z0-9_]/.test(name)) {
    return "a name that starts with a letter, a digit or _";
  }
  if (!/[A-Za-z0-9]$/.test(name)) {
    return "a name that ends with a letter or a digit";
  }
  if (/[-_.]{2}/.test(name)) return "no two of _ . - in a row";
  if (confusingSuffix.test(name)) {
    return "a name that does not end like a file (.json, .png...)";
  }
  return undefined;
}

const GroupName = Schema.String.annotations(
  expecting('a Discourse group name (its "name", not its full name)'),
).pipe(
  Schema.filter((name) =>
    name.trim() !== "" ||
    'a group name such as "hist101" (the group\'s "name" in Discourse, not its full name)'
  ),
  Schema.filter((name) => {
    const problem = groupNameProblem(name);
    return problem === undefined ||
      `a valid Discourse group name: ${problem}, as in Admin > Groups`;
  }),
  Schema.filter((name) =>
    !isAutomaticGroupName(name) ||
    `a group of your own: "${name}" is automatic (Discourse fills ${
      automaticGroupNames.join(", ")
    } itself and refuses changes); map the source to a group you created`
  ),
);

const SourceName = (expected: string) =>
  Schema.NonEmptyTrimmedString.annotations(expecting(expected));

const RoleList = Schema.NonEmptyArray(
  SourceName('a Moodle role shortname such as "student"'),
).annotations(
  expecting(
    'a non-empty list of role shortnames such as ["student", "editingteacher"]; leave roles out to take every role',
  ),
);

/** A map entry as written: which keys are present is checked as a whole. */
const WrittenEntry = Schema.Struct({
  cohort: Schema.optional(
    SourceName("a cohort's idnumber or exact name (a non-empty string)"),
  ),
  course: Schema.optional(
    SourceName("a course's shortname (a non-empty string)"),
  ),
  roles: Schema.optional(RoleList),
  group: Schema.propertySignature(GroupName).annotations({
    missingMessage: () =>
      'the forum group this source fills, such as "group": "hist101"',
  }),
}).annotations({
  message: () => "an object with cohort or course, roles, group",
}).pipe(
  Schema.filter((entry) => {
    if (entry.cohort !== undefined && entry.course !== undefined) {
      return 'one source per entry, "cohort" or "course", not both: split it into two entries with the same "group" (their members are joined)';
    }
    if (entry.cohort === undefined && entry.course === undefined) {
      return 'a source: "cohort" (a cohort\'s idnumber or name) or "course" (a course\'s shortname)';
    }
    if (entry.cohort !== undefined && entry.roles !== undefined) {
      return {
        path: ["roles"],
        message:
          'no roles on a cohort entry (roles filter course enrolments): remove "roles", or use "course"',
      };
    }
    return true;
  }),
);

const CohortEntry = Schema.TaggedStruct("Cohort", {
  cohort: Schema.String,
  group: Schema.String,
});
const CourseEntry = Schema.TaggedStruct("Course", {
  course: Schema.String,
  /** Absent: every role. */
  roles: Schema.optional(Schema.NonEmptyArray(Schema.String)),
  group: Schema.String,
});

/** One `groups.map` entry, decoded into the source it names. */
export const GroupMapEntry = Schema.transform(
  WrittenEntry,
  Schema.Union(CohortEntry, CourseEntry),
  {
    strict: true,
    // The filter above has made sure exactly one of cohort and course is set.
    decode: (written) =>
      written.cohort !== undefined
        ? CohortEntry.make({ cohort: written.cohort, group: written.group })
        : CourseEntry.make({
          course: written.course ?? "",
          roles: written.roles,
          group: written.group,
        }),
    encode: (entry) =>
      entry._tag === "Cohort"
        ? { cohort: entry.cohort, group: entry.group }
        : { course: entry.course, roles: entry.roles, group: entry.group },
  },
);
export type GroupMapEntry = typeof GroupMapEntry.Type;

const flag = (fallback: boolean) =>
  Schema.optionalWith(Schema.Boolean.annotations(expecting("true or false")), {
    default: () => fallback,
  });

/** `groups`: absent means nothing about groups is read or written. */
export const GroupsSettings = Schema.Struct({
  map: Schema.propertySignature(
    Schema.Array(GroupMapEntry).annotations({
      message: () =>
        'a list of entries such as { "cohort": "students-2026", "group": "students_2026" }',
    }),
  ).annotations({
    missingMessage: () =>
      'a "map" list of { "cohort" or "course", "group" } entries (or remove "groups")',
  }),
  /** Create a mapped group the forum lacks, instead of an ERROR row. */
  create: flag(false),
  /** Remove members who are not in the group's sources. */
  remove: flag(true),
}).annotations({ message: () => "an object with map, create, remove" });
export type GroupsSettings = typeof GroupsSettings.Type;

/** `safety`: limits shared by group removals and suspensions. */
export const SafetySettings = Schema.Struct({
  maxRemovals: Schema.optionalWith(
    Schema.Int.pipe(Schema.greaterThanOrEqualTo(0)).annotations(
      expecting(
        "a whole number >= 0 (0: every removal needs --allow-removals)",
      ),
    ),
    { default: () => defaultMaxRemovals },
  ),
}).annotations({ message: () => "an object with maxRemovals" });
export type SafetySettings = typeof SafetySettings.Type;

/** The keys to spread into the settings Struct when the loader takes them in. */
export const groupsSettingsFields = {
  groups: Schema.optional(GroupsSettings),
  safety: Schema.optionalWith(SafetySettings, {
    default: () => ({ maxRemovals: defaultMaxRemovals }),
  }),
};
