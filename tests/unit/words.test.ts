// The words of sync rows: one pure function from a user's outcome to its
// audit entry and the changes the console lists.
import assert from "node:assert/strict";
import { Option } from "effect";
import type { UserCandidate } from "../../src/sync/candidate.ts";
import type { Plan } from "../../src/sync/diff.ts";
import { UserOutcome } from "../../src/sync/UserOutcome.ts";
import { rowOf } from "../../src/sync/words.ts";
import { describeUser } from "../../src/report/console.ts";

const ana: UserCandidate = {
  _tag: "User",
  user: { id: 42, username: "Ana.Garcia" },
  username: "Ana.Garcia",
  normalized: "ana.garcia",
  desired: {
    name: "Ana García",
    location: "Madrid, ES",
    bio: "Hola",
    email: "ana@example.org",
  },
};

const how = "matched by username";
const plan: Plan = {
  changes: [
    { field: "name", before: "Ana", after: "Ana García" },
    { field: "email", before: "old@example.org", after: "ana@example.org" },
  ],
  skipped: [{ field: "bio", reason: "the site does not let the API edit it" }],
};

Deno.test("words: an applied update names its fields, the email request, the skips and the match", () => {
  const done = rowOf(
    UserOutcome.Applied({
      who: ana,
      plan,
      how,
      emailRequested: Option.some("ana@example.org"),
    }),
  );
  assert.equal(done.entry.action, "UPDATE");
  assert.equal(done.entry.status, "SUCCESS");
  assert.equal(
    done.entry.message,
    "updated name; email change to ana@example.org requested: it waits for the user's confirmation; bio skipped: the site does not let the API edit it; matched by username",
  );
  assert.deepEqual(done.entry.fields, ["name", "email"]);
  assert.deepEqual(done.entry.before, {
    name: "Ana",
    email: "old@example.org",
  });
  assert.equal(done.entry.moodleId, 42);
  assert.equal(done.entry.normalizedUsername, "ana.garcia");
});

Deno.test("words: an update of the email alone starts with the request, not a bare 'updated'", () => {
  const emailOnly: Plan = { changes: [plan.changes[1]!], skipped: [] };
  const done = rowOf(
    UserOutcome.Applied({
      who: ana,
      plan: emailOnly,
      how,
      emailRequested: Option.some("ana@example.org"),
    }),
  );
  assert.equal(
    done.entry.message,
    "email change to ana@example.org requested: it waits for the user's confirmation; matched by username",
  );
});

Deno.test("words: outcomes without changes carry no fields; each has its action and status", () => {
  const cases: ReadonlyArray<[UserOutcome, string, string, RegExp]> = [
    [
      UserOutcome.Excluded({ who: ana, reason: "suspended in Moodle" }),
      "EXCLUDE",
      "EXCLUDED",
      /^suspended in Moodle$/,
    ],
    [
      UserOutcome.Collision({
        who: ana,
        others: ["Ana.Garcia", "ana garcia"],
        tried: undefined,
      }),
      "ERROR",
      "ERROR",
      /^username collision: Moodle user "ana garcia" also becomes "ana.garcia"/,
    ],
    [
      UserOutcome.Missing({
        who: ana,
        tried: ["username"],
        refusal: undefined,
        apply: false,
      }),
      "CREATE",
      "DRY_RUN",
      /^not in Discourse \(no account has its username\): would be created at first SSO login/,
    ],
    [
      UserOutcome.Missing({
        who: ana,
        tried: ["username"],
        refusal: undefined,
        apply: true,
      }),
      "CREATE",
      "SKIPPED",
      /: not created \(accounts are created at first SSO login, or by --create-missing\)$/,
    ],
    [
      UserOutcome.Failed({ who: ana, message: "Discourse answered 500" }),
      "ERROR",
      "ERROR",
      /^Discourse answered 500$/,
    ],
    [
      UserOutcome.NotWritten({ who: ana, message: "not written: stop" }),
      "UPDATE",
      "SKIPPED",
      /^not written: stop$/,
    ],
    [
      UserOutcome.Crashed({ who: ana, message: "unexpected failure: boom" }),
      "ERROR",
      "EXCEPTION",
      /^unexpected failure: boom$/,
    ],
  ];
  for (const [outcome, action, status, message] of cases) {
    const done = rowOf(outcome);
    assert.equal(done.entry.action, action, outcome._tag);
    assert.equal(done.entry.status, status, outcome._tag);
    assert.match(done.entry.message, message, outcome._tag);
    assert.deepEqual(done.entry.fields, [], outcome._tag);
    assert.deepEqual(done.changes, [], outcome._tag);
  }
});

Deno.test("words: a dry-run row and its console line list the changes", () => {
  const done = rowOf(UserOutcome.Planned({ who: ana, plan, how }));
  assert.equal(done.entry.status, "DRY_RUN");
  assert.match(done.entry.message, /^would update name, email; bio skipped/);
  const lines = describeUser({ ...done, row: rowFromEntry() });
  assert.match(
    lines[0]!,
    /^~ ana\.garcia \(Moodle: Ana\.Garcia\) UPDATE\/DRY_RUN: would update/,
  );
  assert.equal(lines[1], "    name: 'Ana' → 'Ana García'");
});

Deno.test("words: Moodle's control characters are escaped in the row, as on a console", () => {
  const done = rowOf(
    UserOutcome.Excluded({ who: ana, reason: "pattern \x1b[31mred" }),
  );
  assert.ok(!done.entry.message.includes("\x1b"), done.entry.message);
});

/** The console line needs a row; its cells do not matter to it. */
const rowFromEntry = () => ({
  timestamp: "",
  original_username: "",
  normalized_username: "",
  fullname: "",
  email: "",
  location: "",
  action: "",
  status: "",
  message: "",
  moodle_id: "",
  fields: "",
  before: "",
  after: "",
});
