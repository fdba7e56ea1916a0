// Which store links count as gone: the selection the runner reads accounts
// for before planning (pure).
import assert from "node:assert/strict";
import type { StoredLink } from "../../src/leavers/model.ts";
import { goneLinks } from "../../src/leavers/plan.ts";

const link = (id: number, extra: Partial<StoredLink> = {}): StoredLink => ({
  moodleId: id,
  forumId: 100 + id,
  forumUsername: `f${id}`,
  absentFullLists: 1,
  lastSeenAt: "2026-11-30T02:00:00.000Z",
  suspendedByUsAt: undefined,
  ...extra,
});

const selection = (
  links: ReadonlyArray<StoredLink>,
  listed: ReadonlyArray<number>,
  runKind: "full" | "partial" = "full",
) =>
  goneLinks({
    policy: {
      suspendedInMoodle: "off",
      goneFromMoodle: "suspend",
      reason: "Account closed in Moodle",
      reactivate: false,
    },
    moodleUsers: listed.map((id) => ({
      id,
      username: `m${id}`,
      suspended: false,
    })),
    runKind,
    store: new Map(links.map((l) => [l.moodleId, l])),
    apiUser: "system",
    now: new Date("2026-12-01T12:00:00Z"),
  }).map((l) => [l.moodleId, l.absentFullLists]);

const listed = Array.from({ length: 20 }, (_, i) => i + 1);

Deno.test("goneLinks: missing from this list and the one before, this run's absence counted", () => {
  assert.deepEqual(
    selection([link(1), link(30), link(31, { absentFullLists: 0 })], listed),
    [[30, 2]],
  );
});

Deno.test("goneLinks: one the sync already suspended is not read again every run", () => {
  assert.deepEqual(
    selection([
      link(30, { suspendedByUsAt: "2026-11-29T02:00:00.000Z" }),
      link(31, { absentFullLists: 5 }),
    ], listed),
    [[31, 6]],
  );
});

Deno.test("goneLinks: none from a partial run or a shrunken list", () => {
  assert.deepEqual(selection([link(30)], listed, "partial"), []);
  // 20 listed of 30 known is under 90%.
  const known = Array.from({ length: 30 }, (_, i) => link(i + 1));
  assert.deepEqual(selection(known, listed), []);
});
