// Moodle's user list cut into its records as the bytes arrive: whatever the
// chunking, the records are those JSON.parse finds, the rest of the document
// reads as before with the array emptied, and a broken answer is seen as one.
import assert from "node:assert/strict";
import fc from "fast-check";
import { UsersArraySplitter } from "../../src/moodle/streamUsers.ts";

const split = (document: string, cuts: ReadonlyArray<number>) => {
  const records: unknown[] = [];
  const splitter = new UsersArraySplitter((record) => records.push(record));
  const bytes = new TextEncoder().encode(document);
  let from = 0;
  for (const cut of [...cuts].sort((a, b) => a - b)) {
    const at = Math.min(bytes.length, cut);
    splitter.push(bytes.slice(from, Math.max(from, at)));
    from = Math.max(from, at);
  }
  splitter.push(bytes.slice(from));
  return { records, ...splitter.finish() };
};

const cutsOf = fc.array(fc.nat({ max: 4000 }), { maxLength: 12 });

Deno.test("any users array, cut anywhere, yields JSON.parse's records and an emptied rest", () => {
  fc.assert(
    fc.property(
      fc.array(fc.jsonValue(), { maxLength: 8 }),
      fc.dictionary(
        fc.string().filter((key) => key !== "users"),
        fc.jsonValue(),
        { maxKeys: 3 },
      ),
      fc.boolean(),
      cutsOf,
      (users, others, pretty, cuts) => {
        const document = JSON.stringify(
          { ...others, users, warnings: [] },
          null,
          pretty ? 2 : undefined,
        );
        const result = split(document, cuts);
        assert.equal(result.wellFormed, true);
        assert.deepEqual(result.records, JSON.parse(JSON.stringify(users)));
        assert.deepEqual(JSON.parse(result.rest), {
          ...JSON.parse(JSON.stringify(others)),
          users: [],
          warnings: [],
        });
        assert.equal(result.bytes, new TextEncoder().encode(document).length);
      },
    ),
    { numRuns: 300 },
  );
});

Deno.test("brackets, braces and quotes inside strings do not cut a record", () => {
  const users = [
    { id: 2, description: '<p>a ] } [ { , "quoted" \\ back</p>' },
    { id: 3, description: "ñ € 😀 \u0000" },
  ];
  for (const size of [1, 2, 3, 7, 64]) {
    const document = JSON.stringify({ users });
    const cuts = Array.from(
      { length: Math.ceil(document.length / size) },
      (_, i) => i * size,
    );
    assert.deepEqual(split(document, cuts).records, users);
  }
});

Deno.test("only the top-level users array is cut; any other is left in the rest", () => {
  for (
    const document of [
      `{"other":{"users":[1,2]},"users":[3]}`,
      `{"users2":[1],"users":[]}`,
      `[{"users":[1]}]`,
      `{"users":{"id":1}}`,
    ]
  ) {
    const result = split(document, []);
    assert.equal(result.wellFormed, true, document);
    const parsed = JSON.parse(document);
    const expected = Array.isArray(parsed) || !Array.isArray(parsed.users)
      ? []
      : parsed.users;
    assert.deepEqual(result.records, expected, document);
  }
});

Deno.test("a broken array is reported, not read as fewer users", () => {
  for (
    const document of [
      `{"users":[{"id":1},]}`,
      `{"users":[,{"id":1}]}`,
      `{"users":[{"id":1} {"id":2}]}`,
      `{"users":[{"id":1}`,
      `{"users":[{"id":1`,
    ]
  ) {
    assert.equal(split(document, []).wellFormed, false, document);
  }
});

Deno.test("an answer that is not an object goes to the rest whole, with its start kept", () => {
  const page = "<html><body>Login</body></html>";
  const result = split(page, [5, 9]);
  assert.equal(result.rest, page);
  assert.equal(result.head, page);
  assert.deepEqual(result.records, []);
});
