// Operator words for decoding problems, and secrets hidden before a value is cut.
import assert from "node:assert/strict";
import { Either, Schema } from "effect";
import { describeParseError } from "../../src/parseProblems.ts";
import { makeScrubber } from "../../src/domain/secrets.ts";

const Record = Schema.Struct({ id: Schema.Number, suspended: Schema.Boolean });

const problemOf = (value: unknown, scrub?: (text: string) => string) => {
  const decoded = Schema.decodeUnknownEither(Record)(value);
  assert.ok(Either.isLeft(decoded));
  return describeParseError(decoded.left, "the record", scrub);
};

Deno.test("describeParseError: each field once, in operator words", () => {
  assert.equal(
    problemOf({ id: 1, suspended: "no" }),
    'suspended: expected true or false, found "no"',
  );
  assert.equal(problemOf({ suspended: true }), "id: missing");
  assert.equal(
    problemOf("x"),
    'the record: expected an object, found "x"',
  );
});

Deno.test("describeParseError: a secret that a cut value would halve is hidden first", () => {
  const token = "moodle-token-3f9a8b7c6d5e4f3a2b1c";
  // The token straddles the 60-character cut of a shown value.
  const value = `${"x".repeat(45)}${token}`;
  const problem = problemOf(
    { id: 1, suspended: value },
    makeScrubber([token]),
  );
  assert.match(problem, /\(hidden\)/);
  for (let n = 8; n <= token.length; n++) {
    assert.ok(!problem.includes(token.slice(0, n)), problem);
  }
});
