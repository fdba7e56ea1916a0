import assert from "node:assert/strict";
import {
  defaultMaxRemovals,
  judgeRemovals,
  type RemovalVerdict,
} from "../../src/domain/removals.ts";

const held = (verdict: RemovalVerdict) => {
  assert.equal(verdict._tag, "Held");
  return verdict._tag === "Held" ? verdict : assert.fail("not held");
};

Deno.test("removals up to safety.maxRemovals go through, counted together", () => {
  const verdict = judgeRemovals(
    { groupMemberships: 15, suspensions: 10 },
    { maxRemovals: 25, allowRemovals: undefined },
  );
  assert.deepEqual(verdict, { _tag: "Proceed", total: 25 });
});

Deno.test("one removal over the limit holds them all, naming the setting and the flag", () => {
  const verdict = held(judgeRemovals(
    { groupMemberships: 20, suspensions: 6 },
    { maxRemovals: 25, allowRemovals: undefined },
  ));
  assert.equal(verdict.total, 26);
  assert.equal(verdict.limit, 25);
  assert.match(verdict.message, /would make 26 removals/);
  assert.match(verdict.message, /20 group memberships and 6 suspensions/);
  assert.match(verdict.message, /more than safety\.maxRemovals \(25\)/);
  assert.match(verdict.message, /made none of them/);
  assert.match(verdict.message, /--allow-removals 26/);
  assert.match(verdict.message, /raise safety\.maxRemovals/);
});

Deno.test("group removals alone and suspensions alone are each held past the limit", () => {
  assert.match(
    held(judgeRemovals(
      { groupMemberships: 3, suspensions: 0 },
      { maxRemovals: 2, allowRemovals: undefined },
    )).message,
    /\(3 group memberships\)/,
  );
  assert.match(
    held(judgeRemovals(
      { groupMemberships: 0, suspensions: 1 },
      { maxRemovals: 0, allowRemovals: undefined },
    )).message,
    /\(1 suspension\)/,
  );
});

Deno.test("--allow-removals N lets up to N through for the run, and no more", () => {
  const limits = { maxRemovals: 25, allowRemovals: 40 };
  assert.equal(
    judgeRemovals({ groupMemberships: 30, suspensions: 10 }, limits)._tag,
    "Proceed",
  );
  const verdict = held(
    judgeRemovals({ groupMemberships: 30, suspensions: 11 }, limits),
  );
  assert.match(verdict.message, /more than --allow-removals 40 allows/);
  assert.match(verdict.message, /--allow-removals 41/);
});

Deno.test("--allow-removals replaces the setting even when lower: it is the reviewed number", () => {
  const verdict = judgeRemovals(
    { groupMemberships: 5, suspensions: 0 },
    { maxRemovals: 25, allowRemovals: 3 },
  );
  assert.equal(held(verdict).limit, 3);
});

Deno.test("nothing planned always goes through, even with a limit of 0", () => {
  assert.deepEqual(
    judgeRemovals(
      { groupMemberships: 0, suspensions: 0 },
      { maxRemovals: 0, allowRemovals: undefined },
    ),
    { _tag: "Proceed", total: 0 },
  );
  assert.equal(defaultMaxRemovals, 25);
});
