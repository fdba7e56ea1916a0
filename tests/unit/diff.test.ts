import assert from "node:assert/strict";
import type { DiscourseUser } from "../../src/discourse/schema.ts";
import type { FieldPolicy, SyncedField } from "../../src/domain/fields.ts";
import {
  type CurrentProfile,
  diffProfile,
  type Editability,
  type Plan,
  type Policies,
  sameValue,
} from "../../src/sync/diff.ts";
import type { DesiredProfile } from "../../src/sync/profile.ts";
import { verifyProfile } from "../../src/sync/verify.ts";

const allEditable: Editability = {
  name: true,
  location: true,
  bio: true,
  email: true,
};
const policiesAll = (policy: FieldPolicy): Policies => ({
  name: policy,
  location: policy,
  bio: policy,
  email: policy,
});
const empty: DesiredProfile = { name: "", location: "", bio: "", email: "" };
const noForce = { force: false };

const current = (
  fields: Partial<CurrentProfile> = {},
): CurrentProfile => ({ ...empty, pendingEmails: [], ...fields });

/** The plan for one field alone, every other field equal and empty. */
const planFor = (
  field: SyncedField,
  policy: FieldPolicy,
  desiredValue: string,
  currentValue: string,
  options: {
    readonly force?: boolean;
    readonly editable?: boolean;
    readonly pending?: ReadonlyArray<string>;
  } = {},
): Plan =>
  diffProfile(
    { ...empty, [field]: desiredValue },
    current({ [field]: currentValue, pendingEmails: options.pending ?? [] }),
    { ...policiesAll("off"), [field]: policy },
    { ...allEditable, [field]: options.editable ?? true },
    { force: options.force ?? false },
  );

const changed = (plan: Plan) =>
  plan.changes.map(({ field, before, after }) => [field, before, after]);

Deno.test("sameValue ignores surrounding whitespace, bio line endings and email case", () => {
  assert.equal(sameValue("name", " Ana ", "Ana"), true);
  assert.equal(sameValue("name", "Ana", "ana"), false);
  assert.equal(sameValue("location", "Lima, PE", "Lima,  PE"), false);
  assert.equal(sameValue("bio", "a\r\nb\r\n", "a\nb"), true);
  assert.equal(sameValue("name", "a\r\nb", "a\nb"), false);
  assert.equal(sameValue("email", " Ana@X.org", "ana@x.org "), true);
  assert.equal(sameValue("bio", "Ana", "ana"), false);
});

type Case = readonly [
  desired: string,
  current: string,
  overwrite: boolean,
  fillEmpty: boolean,
];

// For name, location and bio Moodle is the source of truth: under overwrite
// an empty Moodle value clears Discourse's.
const textCases: ReadonlyArray<Case> = [
  ["same", "same", false, false],
  ["  same ", "same", false, false],
  ["new", "old", true, false],
  ["new", "", true, true],
  ["", "old", true, false],
  ["", "", false, false],
];

for (const field of ["name", "location", "bio"] as const) {
  Deno.test(`${field}: every policy against equal, different and empty values`, () => {
    for (const [desired, now, overwrite, fillEmpty] of textCases) {
      const label = `${field} ${JSON.stringify(desired)} over ${
        JSON.stringify(now)
      }`;
      const expected = (wanted: boolean) =>
        wanted ? [[field, now, desired]] : [];
      assert.deepEqual(
        changed(planFor(field, "overwrite", desired, now)),
        expected(overwrite),
        `overwrite ${label}`,
      );
      assert.deepEqual(
        changed(planFor(field, "fill-empty", desired, now)),
        expected(fillEmpty),
        `fill-empty ${label}`,
      );
      assert.deepEqual(
        planFor(field, "off", desired, now),
        { changes: [], skipped: [] },
        `off ${label}`,
      );
    }
  });
}

Deno.test("email: an empty Moodle address never replaces Discourse's", () => {
  const emailCases: ReadonlyArray<Case> = [
    ["a@x.org", "a@x.org", false, false],
    ["A@X.org", "a@x.org", false, false],
    ["b@x.org", "a@x.org", true, false],
    ["b@x.org", "", true, true],
    ["", "a@x.org", false, false],
    ["  ", "a@x.org", false, false],
    ["", "", false, false],
  ];
  for (const [desired, now, overwrite, fillEmpty] of emailCases) {
    const expected = (wanted: boolean) =>
      wanted ? [["email", now, desired]] : [];
    assert.deepEqual(
      changed(planFor("email", "overwrite", desired, now)),
      expected(overwrite),
      `overwrite ${desired} over ${now}`,
    );
    assert.deepEqual(
      changed(planFor("email", "fill-empty", desired, now)),
      expected(fillEmpty),
      `fill-empty ${desired} over ${now}`,
    );
    assert.deepEqual(planFor("email", "off", desired, now), {
      changes: [],
      skipped: [],
    });
  }
});

Deno.test("bio differing only in line endings or surrounding space is no change", () => {
  assert.deepEqual(
    changed(planFor("bio", "overwrite", "a\nb", "  a\r\nb\r\n")),
    [],
  );
});

Deno.test("changes come in the order name, location, bio, email", () => {
  const plan = diffProfile(
    {
      name: "Ana",
      location: "Lima, PE",
      bio: "Hola",
      email: "ana@x.org",
    },
    current({ email: "old@x.org" }),
    policiesAll("overwrite"),
    allEditable,
    noForce,
  );
  assert.deepEqual(changed(plan), [
    ["name", "", "Ana"],
    ["location", "", "Lima, PE"],
    ["bio", "", "Hola"],
    ["email", "old@x.org", "ana@x.org"],
  ]);
  assert.deepEqual(plan.skipped, []);
});

Deno.test("fields the site does not let the API write are skipped with the reason", () => {
  const plan = diffProfile(
    { name: "Ana", location: "Lima", bio: "Hola", email: "ana@x.org" },
    current({ email: "old@x.org" }),
    policiesAll("overwrite"),
    { name: false, location: false, bio: false, email: false },
    noForce,
  );
  assert.deepEqual(plan.changes, []);
  assert.deepEqual(plan.skipped.map(({ field }) => field), [
    "name",
    "location",
    "bio",
    "email",
  ]);
  const reason = (field: SyncedField) =>
    plan.skipped.find((skip) => skip.field === field)?.reason ?? "";
  assert.match(reason("name"), /can_edit_name is false/);
  assert.match(reason("location"), /^DiscourseConnect overrides location/);
  assert.match(reason("bio"), /^DiscourseConnect overrides bio/);
  assert.equal(reason("email"), "email is managed by DiscourseConnect");
});

Deno.test("a non-editable field that would not change is not reported", () => {
  assert.deepEqual(
    planFor("bio", "overwrite", "same", "same", { editable: false }),
    { changes: [], skipped: [] },
  );
  assert.deepEqual(
    planFor("name", "off", "new", "old", { editable: false }),
    { changes: [], skipped: [] },
  );
});

Deno.test("an email change already awaiting confirmation is skipped", () => {
  const plan = planFor("email", "overwrite", "New@X.org", "old@x.org", {
    pending: ["other@x.org", "new@x.org"],
  });
  assert.deepEqual(plan.changes, []);
  assert.deepEqual(plan.skipped, [{
    field: "email",
    reason: "change to New@X.org already awaiting the user's confirmation",
  }]);
  // A different pending address does not stop a change to this one.
  assert.deepEqual(
    changed(planFor("email", "overwrite", "new@x.org", "old@x.org", {
      pending: ["older@x.org"],
    })),
    [["email", "old@x.org", "new@x.org"]],
  );
});

Deno.test("force rewrites enabled, editable, non-empty fields even when equal", () => {
  const desired: DesiredProfile = {
    name: "Ana",
    location: "Lima, PE",
    bio: "Hola",
    email: "ana@x.org",
  };
  const plan = diffProfile(
    desired,
    current({ ...desired, email: "ANA@x.org" }),
    policiesAll("overwrite"),
    allEditable,
    { force: true },
  );
  // Email is equal (case-insensitively): resending its confirmation is pointless.
  assert.deepEqual(changed(plan), [
    ["name", "Ana", "Ana"],
    ["location", "Lima, PE", "Lima, PE"],
    ["bio", "Hola", "Hola"],
  ]);
  assert.deepEqual(plan.skipped, []);
});

Deno.test("force respects off, empty Moodle values, editability and fill-empty", () => {
  const force = { force: true };
  assert.deepEqual(planFor("name", "off", "Ana", "Ana", force), {
    changes: [],
    skipped: [],
  });
  // Nothing to rewrite when Moodle's value is empty and Discourse's too.
  assert.deepEqual(changed(planFor("bio", "overwrite", "", "", force)), []);
  // fill-empty rewrites an equal value but never a different one.
  assert.deepEqual(changed(planFor("bio", "fill-empty", "x", "x", force)), [[
    "bio",
    "x",
    "x",
  ]]);
  assert.deepEqual(changed(planFor("bio", "fill-empty", "x", "y", force)), []);
  // Non-editable: reported, not written.
  const skipped = planFor("location", "overwrite", "Lima", "Lima", {
    force: true,
    editable: false,
  });
  assert.deepEqual(skipped.changes, []);
  assert.deepEqual(skipped.skipped.map(({ field }) => field), ["location"]);
  // Different email: changed, even when already pending (repair resends it).
  assert.deepEqual(
    changed(planFor("email", "overwrite", "new@x.org", "old@x.org", {
      force: true,
      pending: ["new@x.org"],
    })),
    [["email", "old@x.org", "new@x.org"]],
  );
  // Empty Moodle email: never a change, even forced.
  assert.deepEqual(
    changed(planFor("email", "overwrite", "", "old@x.org", force)),
    [],
  );
});

const stored = (fields: Partial<DiscourseUser>): DiscourseUser => ({
  id: 3,
  username: "ana",
  name: "",
  location: "",
  website: "",
  bio_raw: "",
  can_edit_name: true,
  can_change_bio: true,
  can_change_location: true,
  can_change_website: true,
  ...fields,
});

Deno.test("verify: stored values that match what was sent give no mismatch", () => {
  assert.deepEqual(
    verifyProfile(
      [
        { field: "name", before: "", after: "Ana" },
        { field: "location", before: "", after: "Lima, PE" },
        { field: "bio", before: "", after: "a\nb" },
      ],
      stored({ name: "Ana ", location: "Lima, PE", bio_raw: "a\r\nb" }),
    ),
    [],
  );
});

Deno.test("verify: a silently ignored field is a mismatch; email is not checked", () => {
  assert.deepEqual(
    verifyProfile(
      [
        { field: "name", before: "Old", after: "Ana" },
        { field: "bio", before: "", after: "Hola" },
        { field: "email", before: "old@x.org", after: "ana@x.org" },
      ],
      stored({ name: "Old", bio_raw: "Hola" }),
    ),
    [{ field: "name", expected: "Ana", actual: "Old" }],
  );
  assert.deepEqual(
    verifyProfile(
      [{ field: "location", before: "Lima", after: "" }],
      stored({ location: "Lima" }),
    ),
    [{ field: "location", expected: "", actual: "Lima" }],
  );
});
