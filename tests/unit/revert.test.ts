// The pure half of `revert`: reading an apply log back and deciding, field by
// field, what goes back.
import assert from "node:assert/strict";
import { Effect, Either, Schema } from "effect";
import {
  auditColumns,
  type AuditEntry,
  neutraliseFormula,
  toAuditRow,
} from "../../src/audit/AuditLog.ts";
import { DiscourseUser } from "../../src/discourse/schema.ts";
import { planRevert } from "../../src/revert/plan.ts";
import {
  parseApplyLog,
  readRow,
  type RevertTarget,
} from "../../src/revert/readLog.ts";

const entry = (fields: Partial<AuditEntry> = {}): AuditEntry => ({
  originalUsername: "Ana.Garcia",
  normalizedUsername: "ana.garcia",
  fullname: "Ana García",
  email: "ana@example.org",
  location: "Madrid, ES",
  action: "UPDATE",
  status: "SUCCESS",
  message: "updated name",
  moodleId: 42,
  fields: ["name"],
  before: { name: "Ana" },
  after: { name: "Ana García" },
  ...fields,
});

const at = new Date(2026, 10, 28, 15, 40, 3);

/** A log as the writer makes it: header, then one CSV line a row. */
const logOf = (...rows: ReadonlyArray<Record<string, string>>) =>
  [auditColumns, ...rows.map((row) => auditColumns.map((c) => row[c] ?? ""))]
    .map((cells) =>
      cells.map((cell) => `"${neutraliseFormula(cell).replaceAll('"', '""')}"`)
        .join(",")
    ).join("\r\n") + "\r\n";

const read = (text: string, path = "sync_log_test_apply_20261128_154003.csv") =>
  Effect.runSync(Effect.either(parseApplyLog(path, text)));

Deno.test("readLog: SUCCESS rows and partly written ERROR rows are targets; others are only counted", () => {
  const log = read(logOf(
    toAuditRow(entry(), at),
    toAuditRow(
      entry({
        originalUsername: "bob",
        normalizedUsername: "bob",
        status: "ERROR",
        fields: ["name"],
      }),
      at,
    ),
    toAuditRow(
      entry({ status: "EXISTS", fields: [], before: {}, after: {} }),
      at,
    ),
    toAuditRow(
      entry({
        action: "ERROR",
        status: "ERROR",
        fields: [],
        before: {},
        after: {},
      }),
      at,
    ),
  ));
  assert.ok(Either.isRight(log));
  assert.deepEqual(
    log.right.targets.map((
      t,
    ) => [t.line, t.entry.normalizedUsername, t.fields]),
    [[2, "ana.garcia", ["name"]], [3, "bob", ["name"]]],
  );
  assert.equal(log.right.ignored, 2);
  assert.deepEqual(log.right.unreadable, []);
  assert.equal(log.right.targets[0]!.entry.moodleId, 42);
  assert.deepEqual(log.right.targets[0]!.before, { name: "Ana" });
});

Deno.test("readLog: a cell the spreadsheet guard quoted reads back as written", () => {
  const log = read(logOf(
    toAuditRow(entry({ before: { name: "=Ana" }, after: { name: "-x" } }), at),
  ));
  assert.ok(Either.isRight(log));
  // The JSON cell starts with {, so only whole cells starting = + - @ are guarded.
  assert.deepEqual(log.right.targets[0]!.before, { name: "=Ana" });
  const guarded = read(logOf(
    toAuditRow(entry({ fullname: "=HYPERLINK()" }), at),
  ));
  assert.ok(Either.isRight(guarded));
  assert.equal(guarded.right.targets[0]!.entry.fullname, "=HYPERLINK()");
});

Deno.test("readLog: not a log, a dry-run log, or CSV that does not parse is refused with the reason", () => {
  const notLog = read("a,b\r\n1,2\r\n");
  assert.ok(Either.isLeft(notLog));
  assert.match(
    notLog.left.message,
    /first line is not the audit log's columns/,
  );
  const dry = read(logOf(toAuditRow(entry({ status: "DRY_RUN" }), at)));
  assert.ok(Either.isLeft(dry));
  assert.match(dry.left.message, /log of a dry-run/);
  const byName = read(logOf(), "sync_log_test_dryrun_20261128_154003.csv");
  assert.ok(Either.isLeft(byName));
  const broken = read(`${auditColumns.join(",")}\r\n"unclosed`);
  assert.ok(Either.isLeft(broken));
  assert.match(broken.left.message, /does not parse as CSV/);
});

Deno.test("readRow: each unreadable row says what is wrong with it", () => {
  const problem = (fields: Partial<AuditEntry>, cells = {}) => {
    const read = readRow({ ...toAuditRow(entry(fields), at), ...cells });
    return Either.isLeft(read) ? read.left : undefined;
  };
  assert.equal(problem({}), undefined);
  assert.equal(
    problem({ normalizedUsername: "" }),
    "the row names no Discourse username",
  );
  assert.equal(
    problem({ fields: ["website"] }),
    'unknown fields "website"',
  );
  assert.equal(
    problem({}, { before: "[1]" }),
    "its before/after cells are not the JSON objects this tool writes",
  );
  assert.equal(
    problem({}, { after: '{"name": 3}' }),
    "its before/after cells are not the JSON objects this tool writes",
  );
  assert.equal(
    problem({}, { after: "{}" }),
    "its before/after cells lack some of its fields",
  );
});

const target = (
  fields: RevertTarget["fields"],
  before: Record<string, string>,
  after: Record<string, string>,
): RevertTarget => ({
  line: 2,
  entry: {
    originalUsername: "ana",
    normalizedUsername: "ana",
    fullname: "",
    email: "",
    location: "",
    moodleId: 1,
  },
  fields,
  before,
  after,
});

/** A profile as the client decodes it: the can_* flags default to true. */
const forumUser = (fields: Partial<DiscourseUser> = {}): DiscourseUser =>
  Schema.decodeUnknownSync(DiscourseUser)({
    id: 1,
    username: "ana",
    name: "Ana García",
    location: "Madrid",
    ...fields,
  });

Deno.test("planRevert: a field goes back only while the forum holds what the sync wrote", () => {
  const row = target(
    ["name", "location"],
    { name: "Ana", location: "Sevilla" },
    { name: "Ana García", location: "Madrid" },
  );
  const back = planRevert(row, { user: forumUser(), email: undefined });
  assert.deepEqual(back.changes, [
    { field: "name", before: "Ana García", after: "Ana" },
    { field: "location", before: "Madrid", after: "Sevilla" },
  ]);
  const since = planRevert(row, {
    user: forumUser({ name: "Ana G.", location: "Sevilla" }),
    email: undefined,
  });
  assert.deepEqual(since.changes, []);
  assert.deepEqual(since.skipped.map((s) => [s.field, s.reason]), [
    ["name", 'changed since the sync (now "Ana G."): left alone'],
    ["location", "already holds the value from before the sync"],
  ]);
  const locked = planRevert(row, {
    user: forumUser({ can_edit_name: false }),
    email: undefined,
  });
  assert.deepEqual(locked.skipped.map((s) => s.field), ["name"]);
  assert.deepEqual(locked.changes.map((c) => c.field), ["location"]);
});

Deno.test("planRevert: an unconfirmed email change has nothing to undo and mails nobody", () => {
  const row = target(["email"], { email: "old@x.org" }, { email: "new@x.org" });
  const unconfirmed = planRevert(row, {
    user: forumUser(),
    email: "old@x.org",
  });
  assert.deepEqual(unconfirmed.changes, []);
  assert.match(unconfirmed.notes[0]!, /never confirmed by the user/);
  const confirmed = planRevert(row, { user: forumUser(), email: "new@x.org" });
  assert.deepEqual(confirmed.changes, [
    { field: "email", before: "new@x.org", after: "old@x.org" },
  ]);
  const elsewhere = planRevert(row, {
    user: forumUser(),
    email: "third@x.org",
  });
  assert.deepEqual(elsewhere.changes, []);
  assert.deepEqual(elsewhere.skipped.map((s) => s.field), ["email"]);
});

Deno.test("readLog: an account the sync created is not a target (its before values are an empty profile, not the forum's)", () => {
  const created = toAuditRow(
    entry({
      action: "CREATE",
      status: "SUCCESS",
      fields: ["name", "email"],
      before: { name: "", email: "" },
      after: { name: "Ana García", email: "ana@example.org" },
    }),
    at,
  );
  const updated = toAuditRow(
    entry({ originalUsername: "bob", normalizedUsername: "bob" }),
    at,
  );
  const log = read(logOf(created, updated));
  assert.ok(Either.isRight(log));
  assert.deepEqual(log.right.targets.map((t) => t.entry.normalizedUsername), [
    "bob",
  ]);
  assert.equal(log.right.ignored, 1);
});

Deno.test("readLog: cells read back exactly as written, a leading ' or formula sign included", () => {
  const names = ["'=quoted", "=SUM(A1)", "'plain", "-x", "plain"];
  const log = read(logOf(
    ...names.map((fullname, i) =>
      toAuditRow(
        entry({
          fullname,
          originalUsername: `u${i}`,
          normalizedUsername: `u${i}`,
        }),
        at,
      )
    ),
  ));
  assert.ok(Either.isRight(log));
  assert.deepEqual(log.right.targets.map((t) => t.entry.fullname), names);
});
