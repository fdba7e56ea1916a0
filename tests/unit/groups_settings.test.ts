import assert from "node:assert/strict";
import { Either, ParseResult, Schema } from "effect";
import {
  groupNameProblem,
  groupsSettingsFields,
} from "../../src/groups/settings.ts";

// Decoded the way the settings loader decodes the whole file: every issue,
// unknown keys refused, paths joined with dots.
const Blocks = Schema.Struct(groupsSettingsFields);
const decode = (input: unknown) =>
  Schema.decodeUnknownEither(Blocks)(input, {
    errors: "all",
    onExcessProperty: "error",
  });

/** `path: message` per issue, minus the loader's "Expected undefined" noise. */
const problems = (input: unknown): ReadonlyArray<string> => {
  const result = decode(input);
  if (Either.isRight(result)) return [];
  return ParseResult.ArrayFormatter.formatErrorSync(result.left)
    .filter((issue) => !issue.message.startsWith("Expected undefined"))
    .map((issue) => `${issue.path.join(".")}: ${issue.message}`);
};

const problemAt = (input: unknown, path: string): string => {
  const found = problems(input).find((line) => line.startsWith(`${path}: `));
  return found ?? assert.fail(`no problem at ${path}: ${problems(input)}`);
};

const map = (...entries: ReadonlyArray<unknown>) => ({
  groups: { map: entries },
});

Deno.test("no groups key: nothing about groups; safety defaults to 25 removals", () => {
  const decoded = decode({});
  assert.ok(Either.isRight(decoded));
  assert.deepEqual(decoded.right, { safety: { maxRemovals: 25 } });
});

Deno.test("the issue's example decodes into cohort and course sources with defaults", () => {
  const input = {
    groups: {
      map: [
        { cohort: "students-2026", group: "students_2026" },
        {
          course: "HIST101",
          roles: ["student", "editingteacher"],
          group: "hist101",
        },
        { course: "MATH1", group: "math1" },
      ],
    },
    safety: { maxRemovals: 10 },
  };
  const decoded = decode(input);
  assert.ok(Either.isRight(decoded), problems(input).join("\n"));
  assert.deepEqual(decoded.right.groups, {
    map: [
      { _tag: "Cohort", cohort: "students-2026", group: "students_2026" },
      {
        _tag: "Course",
        course: "HIST101",
        roles: ["student", "editingteacher"],
        group: "hist101",
      },
      { _tag: "Course", course: "MATH1", roles: undefined, group: "math1" },
    ],
    create: false,
    remove: true,
  });
  assert.equal(decoded.right.safety.maxRemovals, 10);
});

Deno.test("an entry with both cohort and course is refused at its index, saying to split it", () => {
  const input = map(
    { cohort: "a", group: "ok_group" },
    { cohort: "a", course: "b", group: "g1x" },
  );
  assert.match(problemAt(input, "groups.map.1"), /not both: split it/);
  assert.equal(problems(input).length, 1);
});

Deno.test("an entry with no source, or roles on a cohort, says what to write", () => {
  assert.match(
    problemAt(map({ group: "abc" }), "groups.map.0"),
    /"cohort" .* or "course"/,
  );
  assert.match(
    problemAt(
      map({ cohort: "x", roles: ["student"], group: "abc" }),
      "groups.map.0.roles",
    ),
    /no roles on a cohort entry/,
  );
  assert.match(
    problemAt(
      map({ course: "x", roles: [], group: "abc" }),
      "groups.map.0.roles",
    ),
    /leave roles out to take every role/,
  );
  assert.match(
    problemAt(map({ course: " ", group: "abc" }), "groups.map.0.course"),
    /shortname/,
  );
});

Deno.test("an empty or missing group name is refused with an example", () => {
  assert.match(
    problemAt(map({ cohort: "x", group: "  " }), "groups.map.0.group"),
    /a group name such as "hist101"/,
  );
  assert.match(
    problemAt(map({ cohort: "x" }), "groups.map.0.group"),
    /the forum group this source fills/,
  );
});

Deno.test("automatic groups are refused whatever their case, naming the group", () => {
  for (
    const name of [
      "staff",
      "Admins",
      "moderators",
      "everyone",
      "trust_level_0",
      "TRUST_LEVEL_4",
    ]
  ) {
    const message = problemAt(
      map({ cohort: "x", group: "mine" }, { cohort: "y", group: name }),
      "groups.map.1.group",
    );
    assert.match(message, new RegExp(`"${name}" is automatic`));
    assert.match(message, /a group you created/);
  }
  assert.deepEqual(problems(map({ cohort: "x", group: "trust_level_5" })), []);
});

Deno.test("group names Discourse's validator refuses are caught before any request", () => {
  const refused: ReadonlyArray<[string, RegExp]> = [
    ["hist 101", /only letters/],
    ["história", /only letters/],
    ["-hist", /starts with/],
    ["hist_", /ends with a letter or a digit/],
    ["hi__st", /no two of/],
    ["hist.json", /does not end like a file/],
    ["h".repeat(61), /at most 60/],
  ];
  for (const [name, why] of refused) {
    assert.match(groupNameProblem(name) ?? "", why, name);
    assert.match(
      problemAt(map({ cohort: "x", group: name }), "groups.map.0.group"),
      /a valid Discourse group name/,
    );
  }
  for (const name of ["hist101", "_private", "Year.2026", "a-b_c.d9"]) {
    assert.equal(groupNameProblem(name), undefined, name);
  }
});

Deno.test("unknown keys, a non-list map and bad flags are each reported", () => {
  const lines = problems({
    groups: { map: "students", create: "yes", remvoe: true },
    safety: { maxRemovals: -1 },
  });
  assert.ok(lines.some((l) => /^groups\.map: a list of entries/.test(l)));
  assert.ok(lines.some((l) => /^groups\.create: true or false/.test(l)));
  assert.ok(lines.some((l) => /^groups\.remvoe: is unexpected/.test(l)));
  assert.ok(
    lines.some((l) => /^safety\.maxRemovals: a whole number >= 0/.test(l)),
  );
  assert.match(
    problemAt({ groups: {} }, "groups.map"),
    /a "map" list .* \(or remove "groups"\)/,
  );
});
