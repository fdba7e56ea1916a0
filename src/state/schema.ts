/** The state store's tables, their migrations and its rows as values. */
import { Schema } from "effect";

/**
 * Migration `n` takes a store from schema version `n` to `n + 1`; version 0
 * is an empty file. Append, never edit: released stores hold these versions.
 */
export const migrations: ReadonlyArray<string> = [
  `
  CREATE TABLE schema_version (version INTEGER NOT NULL) STRICT;
  INSERT INTO schema_version (version) VALUES (0);
  -- One row per (Moodle endpoint, Discourse URL): one file may serve several
  -- pairs without mixing their users.
  CREATE TABLE sites (
    id INTEGER PRIMARY KEY,
    moodle_endpoint TEXT NOT NULL,
    discourse_url TEXT NOT NULL,
    first_used_at TEXT NOT NULL,
    UNIQUE (moodle_endpoint, discourse_url)
  ) STRICT;
  CREATE TABLE users (
    site_id INTEGER NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
    moodle_id INTEGER NOT NULL,
    forum_id INTEGER NOT NULL,
    forum_username TEXT NOT NULL,
    desired_hash TEXT NOT NULL,
    forum_name TEXT NOT NULL,
    forum_location TEXT NOT NULL,
    forum_bio_excerpt TEXT NOT NULL,
    forum_email TEXT NOT NULL,
    last_seen_at TEXT,
    absent_full_lists INTEGER NOT NULL DEFAULT 0,
    suspended_by_us_at TEXT,
    PRIMARY KEY (site_id, moodle_id)
  ) STRICT, WITHOUT ROWID;
  `,
  // A leaver's row names the Moodle user, who is gone from Moodle's list.
  `
  ALTER TABLE users ADD COLUMN moodle_username TEXT NOT NULL DEFAULT '';
  `,
];

export const currentSchemaVersion = migrations.length;

export const VersionRow = Schema.Struct({ version: Schema.Int });
export const CountRow = Schema.Struct({ n: Schema.Int });
export const SiteRow = Schema.Struct({
  id: Schema.Int,
  moodle_endpoint: Schema.String,
  discourse_url: Schema.String,
});

/** What the forum's bulk reads showed when it last equalled the desired profile. */
export interface ForumSnapshot {
  readonly name: string;
  readonly location: string;
  /** The user card's excerpt, not the whole bio: what a bulk read can compare. */
  readonly bioExcerpt: string;
  readonly email: string;
}

/** What a run records for a Moodle user once their forum account is in sync. */
export interface UserEntry {
  readonly moodleId: number;
  /** Empty in entries written before the store kept it. */
  readonly moodleUsername: string;
  readonly forumId: number;
  readonly forumUsername: string;
  /** `profileHash` of the desired fields last made true on the forum. */
  readonly desiredHash: string;
  readonly snapshot: ForumSnapshot;
}

/** An entry with what the store tracks across runs. */
export interface StoredUser extends UserEntry {
  /** ISO 8601: the last full Moodle list that held this user. */
  readonly lastSeenAt: string | undefined;
  /** Consecutive full Moodle lists without this user, up to now. */
  readonly absentFullLists: number;
  /** ISO 8601: when this tool suspended the forum account, if it did. */
  readonly suspendedByUsAt: string | undefined;
}

const UserRow = Schema.Struct({
  moodle_id: Schema.Int,
  moodle_username: Schema.String,
  forum_id: Schema.Int,
  forum_username: Schema.String,
  desired_hash: Schema.String,
  forum_name: Schema.String,
  forum_location: Schema.String,
  forum_bio_excerpt: Schema.String,
  forum_email: Schema.String,
  last_seen_at: Schema.NullOr(Schema.String),
  absent_full_lists: Schema.NonNegativeInt,
  suspended_by_us_at: Schema.NullOr(Schema.String),
});

export const userColumns = Object.keys(UserRow.fields).join(", ");

export const decodeUserRow = Schema.decodeUnknownSync(UserRow);

export const storedUserFromRow = (
  row: typeof UserRow.Type,
): StoredUser => ({
  moodleId: row.moodle_id,
  moodleUsername: row.moodle_username,
  forumId: row.forum_id,
  forumUsername: row.forum_username,
  desiredHash: row.desired_hash,
  snapshot: {
    name: row.forum_name,
    location: row.forum_location,
    bioExcerpt: row.forum_bio_excerpt,
    email: row.forum_email,
  },
  lastSeenAt: row.last_seen_at ?? undefined,
  absentFullLists: row.absent_full_lists,
  suspendedByUsAt: row.suspended_by_us_at ?? undefined,
});
