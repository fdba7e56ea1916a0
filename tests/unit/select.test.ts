import assert from "node:assert/strict";
import {
  compileExclusions,
  exclusionReason,
  type ExclusionRules,
  findCollisions,
  parseExclusionFile,
  selectBatch,
} from "../../src/sync/select.ts";

const rules = (
  patterns: ReadonlyArray<string>,
  suspended = true,
): ExclusionRules => ({ patterns, suspended });

Deno.test("exact patterns match whole usernames, case-insensitively", () => {
  const reason = compileExclusions(rules(["Teacher1", "ana.lopez"]));
  assert.equal(reason("teacher1"), `matches exclusion "Teacher1"`);
  assert.equal(reason("TEACHER1"), `matches exclusion "Teacher1"`);
  assert.equal(reason("ANA.LOPEZ"), `matches exclusion "ana.lopez"`);
  assert.equal(reason("teacher10"), undefined);
  assert.equal(reason("anaxlopez"), undefined, "a dot is not a wildcard");
});

Deno.test("* matches any run of characters, anywhere in the pattern", () => {
  const reason = compileExclusions(rules(["test*", "*@example.org", "a*b*c"]));
  assert.equal(reason("test"), `matches exclusion "test*"`);
  assert.equal(reason("Tester_42"), `matches exclusion "test*"`);
  assert.equal(reason("juan@EXAMPLE.org"), `matches exclusion "*@example.org"`);
  assert.equal(reason("abc"), `matches exclusion "a*b*c"`);
  assert.equal(reason("a-xx-b-yy-c"), `matches exclusion "a*b*c"`);
  assert.equal(reason("mytest"), undefined);
  assert.equal(reason("juan@example.org.ar"), undefined);
  assert.equal(reason("abcd"), undefined);
});

Deno.test("regular expression characters in patterns are literal", () => {
  const reason = compileExclusions(rules(["a+b", "(x)", "c.d*"]));
  assert.equal(reason("a+b"), `matches exclusion "a+b"`);
  assert.equal(reason("aab"), undefined);
  assert.equal(reason("(x)"), `matches exclusion "(x)"`);
  assert.equal(reason("c.d-1"), `matches exclusion "c.d*"`);
  assert.equal(reason("cxd"), undefined);
});

Deno.test("blank patterns exclude nobody", () => {
  const reason = compileExclusions(rules(["", "  "]));
  assert.equal(reason(""), undefined);
  assert.equal(reason("anyone"), undefined);
});

Deno.test("the exclusion file: one name a line, comments and blank lines ignored", () => {
  const text = [
    "# staff accounts",
    "teacher1",
    "  ana.lopez   # left in 2023",
    "",
    "   ",
    "test*\r",
    "#commented.out",
    "last",
  ].join("\n");
  assert.deepEqual(parseExclusionFile(text), [
    "teacher1",
    "ana.lopez",
    "test*",
    "last",
  ]);
  assert.deepEqual(parseExclusionFile(""), []);
  assert.deepEqual(parseExclusionFile("a\r\nb\r\n"), ["a", "b"]);
});

Deno.test("Moodle's guest account is always excluded", () => {
  assert.equal(
    exclusionReason({ id: 1, username: "guest" }, rules([], false)),
    "Moodle's guest account",
  );
  assert.equal(
    exclusionReason({ id: 9, username: "Guest", auth: "manual" }, rules([])),
    "Moodle's guest account",
  );
  assert.equal(
    exclusionReason({ id: 2, username: "guests" }, rules([])),
    undefined,
  );
});

Deno.test("suspended users are excluded only when the rules say so", () => {
  const suspended = { id: 5, username: "ana", suspended: true };
  assert.equal(exclusionReason(suspended, rules([])), "suspended in Moodle");
  assert.equal(exclusionReason(suspended, rules([], false)), undefined);
  assert.equal(
    exclusionReason({ id: 5, username: "ana", suspended: false }, rules([])),
    undefined,
  );
});

Deno.test("exclusionReason applies the patterns; no username is not excluded here", () => {
  const testRules = rules(["test*"]);
  assert.equal(
    exclusionReason({ id: 3, username: "TestUser" }, testRules),
    `matches exclusion "test*"`,
  );
  assert.equal(
    exclusionReason({ id: 4, username: "ana" }, testRules),
    undefined,
  );
  assert.equal(exclusionReason({ id: 6 }, testRules), undefined);
  // Repeated calls with the same rules give the same answers.
  for (let i = 0; i < 3; i++) {
    assert.equal(
      exclusionReason({ id: 3, username: "tester" }, testRules),
      `matches exclusion "test*"`,
    );
  }
});

Deno.test("collisions: Discourse names shared by 2+ Moodle users, case-insensitive", () => {
  const collisions = findCollisions([
    { moodleUsername: "ana lopez", discourseUsername: "ana_lopez" },
    { moodleUsername: "juan", discourseUsername: "juan" },
    { moodleUsername: "ana@lopez", discourseUsername: "ana_lopez" },
    { moodleUsername: "Ana_Lopez", discourseUsername: "Ana_Lopez" },
    { moodleUsername: "josé", discourseUsername: "jose" },
    { moodleUsername: "jose", discourseUsername: "jose" },
  ]);
  assert.deepEqual(
    [...collisions.entries()],
    [
      ["ana_lopez", ["ana lopez", "ana@lopez", "Ana_Lopez"]],
      ["jose", ["josé", "jose"]],
    ],
  );
  assert.equal(collisions.has("juan"), false);
  assert.equal(findCollisions([]).size, 0);
});

Deno.test("batches at offsets 0, 10, 20 tile the list with no gap or overlap", () => {
  const items = Array.from({ length: 25 }, (_, i) => i);
  const first = selectBatch(items, 0, 10);
  const second = selectBatch(items, 10, 10);
  const third = selectBatch(items, 20, 10);
  assert.deepEqual(first, {
    batch: items.slice(0, 10),
    nextOffset: 10,
  });
  assert.deepEqual(second, {
    batch: items.slice(10, 20),
    nextOffset: 20,
  });
  assert.deepEqual(third, { batch: items.slice(20), nextOffset: undefined });
  assert.deepEqual(
    [...first.batch, ...second.batch, ...third.batch],
    items,
  );
});

Deno.test("following nextOffset visits every item exactly once", () => {
  const items = Array.from({ length: 23 }, (_, i) => `u${i}`);
  const seen: Array<string> = [];
  let offset: number | undefined = 0;
  let runs = 0;
  while (offset !== undefined) {
    const { batch, nextOffset }: ReturnType<typeof selectBatch<string>> =
      selectBatch(items, offset, 7);
    seen.push(...batch);
    offset = nextOffset;
    runs++;
  }
  assert.deepEqual(seen, items);
  assert.equal(runs, 4);
});

Deno.test("batch edge cases: size 0 takes the rest, past the end is empty", () => {
  const items = ["a", "b", "c"];
  assert.deepEqual(selectBatch(items, 0, 0), {
    batch: items,
    nextOffset: undefined,
  });
  assert.deepEqual(selectBatch(items, 1, 0), {
    batch: ["b", "c"],
    nextOffset: undefined,
  });
  assert.deepEqual(selectBatch(items, 3, 2), {
    batch: [],
    nextOffset: undefined,
  });
  assert.deepEqual(selectBatch(items, 10, 2), {
    batch: [],
    nextOffset: undefined,
  });
  assert.deepEqual(selectBatch(items, 1, 2), {
    batch: ["b", "c"],
    nextOffset: undefined,
  });
  assert.deepEqual(selectBatch(items, 0, 3), {
    batch: items,
    nextOffset: undefined,
  });
  assert.deepEqual(selectBatch([], 0, 10), {
    batch: [],
    nextOffset: undefined,
  });
});
