// The state-assisted run's decisions (sync/assisted.ts), pure.
import assert from "node:assert/strict";
import { Redacted } from "effect";
import {
  chooseReads,
  compareUser,
  type DesiredFields,
  desiredHash,
} from "../../src/sync/assisted.ts";
import type { StoredUser } from "../../src/state/Store.ts";
import { StateStoreUnavailable } from "../../src/state/errors.ts";
import { SiteStatus } from "../../src/state/open.ts";

const settings = {
  fields: {
    name: "overwrite",
    location: "overwrite",
    bio: "overwrite",
    email: "overwrite",
  },
  match: "username",
  discourse: { ssoSecret: undefined },
} as const;

const desired: DesiredFields = {
  name: "Ada Lovelace",
  location: "London, GB",
  bio: "Analyst.",
  email: "ada@campus.example",
};

const card = {
  id: 12,
  username: "ada",
  name: "Ada Lovelace",
  location: "London, GB",
  bio_excerpt: "Analyst.",
};

const entry: StoredUser = {
  moodleId: 2,
  moodleUsername: "ada",
  forumId: 12,
  forumUsername: "ada",
  desiredHash: desiredHash(desired, settings),
  snapshot: {
    name: "Ada Lovelace",
    location: "London, GB",
    bioExcerpt: "Analyst.",
    email: "ada@campus.example",
  },
  lastSeenAt: undefined,
  absentFullLists: 0,
  suspendedByUsAt: undefined,
};

const compare = (over: Partial<Parameters<typeof compareUser>[0]> = {}) =>
  compareUser({
    entry,
    desired,
    settings,
    card,
    email: "ada@campus.example",
    username: "ada",
    ...over,
  });

const reason = (reads: ReturnType<typeof compareUser>) =>
  reads._tag === "Read" ? reads.reason : reads;

Deno.test("assisted: the store and the bulk reads agree: not read", () => {
  assert.deepEqual(compare(), { _tag: "Unchanged" });
  // The forum keeps emails in lower case; Moodle's case does not matter.
  assert.deepEqual(
    compare({ desired: { ...desired, email: "Ada@Campus.example " } }),
    { _tag: "Unchanged" },
  );
});

Deno.test("assisted: what makes a user's profile read, and why", () => {
  assert.deepEqual(reason(compare({ entry: undefined })), { _tag: "New" });
  assert.deepEqual(reason(compare({ card: undefined })), {
    _tag: "Gone",
    forumId: 12,
  });
  assert.deepEqual(reason(compare({ card: { ...card, username: "ada_2" } })), {
    _tag: "Renamed",
    from: "ada",
    to: "ada_2",
  });
  assert.deepEqual(
    reason(compare({
      card: { ...card, name: "Ada L.", bio_excerpt: "Edited." },
      email: "other@campus.example",
    })),
    { _tag: "ForumChanged", fields: ["name", "bio", "email"] },
  );
  assert.deepEqual(
    reason(compare({ desired: { ...desired, location: "Paris, FR" } })),
    { _tag: "MoodleChanged" },
  );
  // The username rules now give another forum name: read as a full run would.
  assert.deepEqual(reason(compare({ username: "ada_lovelace" })), {
    _tag: "MoodleChanged",
  });
  // A changed policy changes the fingerprint: everybody is read once.
  assert.deepEqual(
    reason(compare({
      settings: { ...settings, fields: { ...settings.fields, bio: "off" } },
    })),
    { _tag: "MoodleChanged" },
  );
});

Deno.test("assisted: an email-only change skips the profile only where no owner check could be needed", () => {
  const moved = { ...desired, email: "ada@new.example" };
  assert.deepEqual(reason(compare({ desired: moved })), {
    _tag: "EmailChanged",
  });
  for (
    const other of [
      { ...settings, discourse: { ssoSecret: Redacted.make("s") } },
      { ...settings, match: "auto" as const },
    ]
  ) {
    const stored = { ...entry, desiredHash: desiredHash(desired, other) };
    assert.deepEqual(
      reason(compare({ desired: moved, settings: other, entry: stored })),
      { _tag: "MoodleChanged" },
    );
  }
  // Email and something else: the profile is read.
  assert.deepEqual(
    reason(compare({ desired: { ...moved, name: "Ada King" } })),
    { _tag: "MoodleChanged" },
  );
});

Deno.test("assisted: how a run reads, from what it found of its store", () => {
  const open = {
    _tag: "Open" as const,
    path: "/srv/sync-state.sqlite",
    status: SiteStatus.Known(),
    entries: 3,
  };
  const flags = { full: false, force: false };
  assert.deepEqual(chooseReads(open, flags), { _tag: "Assisted" });
  assert.deepEqual(chooseReads(open, { ...flags, full: true }), {
    _tag: "Full",
    why: "--full",
    warn: false,
  });
  assert.equal(chooseReads(open, { ...flags, force: true })._tag, "Full");
  const empty = chooseReads({ ...open, entries: 0 }, flags);
  assert.ok(empty._tag === "Full" && !empty.warn);
  const others = chooseReads({
    ...open,
    entries: 0,
    status: SiteStatus.OtherPairs({
      pairs: [{ moodleEndpoint: "https://m", discourseUrl: "https://f" }],
    }),
  }, flags);
  assert.ok(others._tag === "Full" && others.warn);
  assert.match(
    others.why,
    /holds only other sites' data \(https:\/\/m -> https:\/\/f\)/,
  );
  const damaged = chooseReads({
    _tag: "Unavailable",
    error: new StateStoreUnavailable({
      path: "/srv/s.sqlite",
      reason: "corrupt",
      detail: "",
    }),
  }, flags);
  assert.ok(damaged._tag === "Full" && damaged.warn);
  assert.match(damaged.why, /is damaged: move it away/);
  const missing = chooseReads({
    _tag: "Unavailable",
    error: new StateStoreUnavailable({
      path: "/srv/s.sqlite",
      reason: "missing",
      detail: "",
    }),
  }, flags);
  assert.ok(missing._tag === "Full" && !missing.warn);
});
