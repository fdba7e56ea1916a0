// Each Moodle record is judged once, before the forum is asked anything.
import assert from "node:assert/strict";
import type { Candidate } from "../../src/sync/candidate.ts";
import { classify, type ClassifyRules } from "../../src/sync/classify.ts";

const user = (username: string, normalized = username.toLowerCase()) =>
  ({
    _tag: "User",
    user: { id: 7, username },
    username,
    normalized,
    desired: { name: "Ana", location: "", bio: "", email: "a@x.org" },
  }) satisfies Candidate;

const rules = (fields: Partial<ClassifyRules> = {}): ClassifyRules => ({
  exclusions: { patterns: ["test*"], suspended: true },
  collisions: new Map([["ana_garcia", ["Ana_Garcia", "ana garcia"]]]),
  match: "username",
  ...fields,
});

Deno.test("classify: malformed, hidden usernames, exclusions and collisions end before the forum", () => {
  const outcome = (candidate: Candidate, with_ = rules()) => {
    const judged = classify(candidate, with_);
    return judged._tag === "Settled" ? judged.outcome._tag : judged._tag;
  };
  assert.equal(
    outcome({
      _tag: "Malformed",
      record: { _tag: "Malformed", id: 3, username: "x", problem: "no id" },
    }),
    "Malformed",
  );
  assert.equal(
    outcome({ _tag: "NoUsername", user: { id: 4, fullname: "Hidden" } }),
    "NoUsername",
  );
  assert.equal(outcome(user("tester")), "Excluded");
  assert.equal(outcome(user("guest")), "Excluded");
  assert.equal(outcome(user("Ana_Garcia", "ana_garcia")), "Collision");
  assert.equal(outcome(user("ana")), "NeedsForum");
});

Deno.test("classify: only username matching refuses a shared username up front", () => {
  const shared = user("Ana_Garcia", "ana_garcia");
  for (const match of ["auto", "external_id"] as const) {
    assert.equal(classify(shared, rules({ match }))._tag, "NeedsForum", match);
  }
  const judged = classify(shared, rules());
  assert.ok(judged._tag === "Settled" && judged.outcome._tag === "Collision");
  assert.deepEqual(judged.outcome.others, ["Ana_Garcia", "ana garcia"]);
});
