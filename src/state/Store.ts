/**
 * The state store: what the last runs knew about each Moodle user's forum
 * account, so that a run can skip reading profiles that cannot have changed.
 * One SQLite file (Deno's built-in `node:sqlite`), keyed by the pair
 * (Moodle endpoint, Discourse URL) so one file never mixes two forums.
 *
 * Every write is one SQLite transaction: a process killed at any moment
 * leaves each user as before or after that write, never half-written.
 */
import type { DatabaseSync } from "node:sqlite";
import { Clock, Context, Effect, Layer, Schema } from "effect";
import {
  StateStoreReadOnly,
  type StateStoreUnavailable,
  type StateStoreWriteError,
  unavailable,
} from "./errors.ts";
import {
  inTransaction,
  openDatabase,
  type SitePair,
  sitePair,
  type SiteStatus,
  type StateStoreOptions,
} from "./open.ts";
import {
  CountRow,
  decodeUserRow,
  type StoredUser,
  storedUserFromRow,
  userColumns,
  type UserEntry,
} from "./schema.ts";

export {
  StateStoreReadOnly,
  StateStoreUnavailable,
  type StateStoreWriteError,
} from "./errors.ts";
export {
  defaultStatePath,
  type SitePair,
  sitePair,
  SiteStatus,
  type StateStoreOptions,
} from "./open.ts";
export { profileHash } from "./profileHash.ts";
export type { ForumSnapshot, StoredUser, UserEntry } from "./schema.ts";

/** How a full Moodle list changed the absence counts. */
export interface AbsenceTally {
  readonly present: number;
  readonly absent: number;
}

/** An entry without what only a profile comparison needs. */
export type AccountLink = Omit<StoredUser, "desiredHash" | "snapshot">;

/** A write to one user's entry: whether the user had one. */
type WriteOfOne = (
  moodleId: number,
) => Effect.Effect<boolean, StateStoreWriteError>;

export interface StateStoreService {
  readonly path: string;
  readonly pair: SitePair;
  readonly status: SiteStatus;
  readonly readOnly: boolean;
  /** This pair's entries by Moodle id. */
  readonly readAll: Effect.Effect<
    ReadonlyMap<number, StoredUser>,
    StateStoreUnavailable
  >;
  /** This pair's entries by Moodle id, without their profile snapshots. */
  readonly readLinks: Effect.Effect<
    ReadonlyMap<number, AccountLink>,
    StateStoreUnavailable
  >;
  /**
   * Reads every entry of this pair, page by page, as `readAll` does, but
   * keeps none: how many there are, once each has been found readable.
   */
  readonly checkAll: Effect.Effect<number, StateStoreUnavailable>;
  /** One entry by Moodle id: a run holds none of the others meanwhile. */
  readonly lookup: (
    moodleId: number,
  ) => Effect.Effect<StoredUser | undefined, StateStoreUnavailable>;
  readonly count: Effect.Effect<number, StateStoreUnavailable>;
  /**
   * Records a user as in sync. Keeps the suspension mark; resets the absence
   * count, since the user was just seen in Moodle.
   */
  readonly upsert: (
    entry: UserEntry,
  ) => Effect.Effect<void, StateStoreWriteError>;
  /**
   * Moodle returned its full list (not `--user`, not a batch): entries in it
   * are present now, every other entry has missed one more list.
   */
  readonly markFullListSeen: (
    moodleIds: Iterable<number>,
  ) => Effect.Effect<AbsenceTally, StateStoreWriteError>;
  /** Marks the forum account as suspended by this tool (issue 14). */
  readonly recordSuspended: WriteOfOne;
  readonly clearSuspended: WriteOfOne;
  readonly forget: WriteOfOne;
  /**
   * Keeps the entry but makes its profile hash match nothing: the next run
   * reads the user's profile in full (after a revert, an unfinished user).
   */
  readonly invalidate: WriteOfOne;
}

const pageSize = 2000;

/** Every statement, prepared once: a run calls them per user. */
const prepare = (db: DatabaseSync) => ({
  selectPage: db.prepare(
    `SELECT ${userColumns} FROM users WHERE site_id = ? AND moodle_id > ?
     ORDER BY moodle_id LIMIT ?`,
  ),
  selectOne: db.prepare(
    `SELECT ${userColumns} FROM users WHERE site_id = ? AND moodle_id = ?`,
  ),
  selectCount: db.prepare(
    "SELECT count(*) AS n FROM users WHERE site_id = ?",
  ),
  upsert: db.prepare(
    `INSERT INTO users (site_id, moodle_id, forum_id, forum_username,
       desired_hash, forum_name, forum_location, forum_bio_excerpt, forum_email,
       moodle_username)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
     ON CONFLICT (site_id, moodle_id) DO UPDATE SET
       moodle_username = excluded.moodle_username,
       forum_id = excluded.forum_id,
       forum_username = excluded.forum_username,
       desired_hash = excluded.desired_hash,
       forum_name = excluded.forum_name,
       forum_location = excluded.forum_location,
       forum_bio_excerpt = excluded.forum_bio_excerpt,
       forum_email = excluded.forum_email,
       absent_full_lists = 0`,
  ),
  // The ids travel as one JSON array: one parameter for 100,000 users.
  countAbsence: db.prepare(
    `UPDATE users SET absent_full_lists = absent_full_lists + 1
     WHERE site_id = ? AND moodle_id NOT IN (SELECT value FROM json_each(?))`,
  ),
  countPresence: db.prepare(
    `UPDATE users SET absent_full_lists = 0, last_seen_at = ?
     WHERE site_id = ? AND moodle_id IN (SELECT value FROM json_each(?))`,
  ),
  setSuspended: db.prepare(
    `UPDATE users SET suspended_by_us_at = ?
     WHERE site_id = ? AND moodle_id = ?`,
  ),
  remove: db.prepare(
    "DELETE FROM users WHERE site_id = ? AND moodle_id = ?",
  ),
  invalidate: db.prepare(
    "UPDATE users SET desired_hash = '' WHERE site_id = ? AND moodle_id = ?",
  ),
});

const make = (options: StateStoreOptions) =>
  Effect.gen(function* () {
    const { path } = options;
    const readOnly = options.readOnly ?? false;
    const pair = sitePair(options.moodleEndpoint, options.discourseUrl);
    const { db, site } = yield* Effect.acquireRelease(
      Effect.try({
        try: () => openDatabase(options, pair),
        catch: unavailable(path, "corrupt"),
      }),
      ({ db }) => Effect.sync(() => db.close()),
    );
    const siteId = site.id;
    // A read-only open of a pair the file does not know: nothing to read.
    const read = <A>(work: (siteId: number) => A, empty: A) =>
      Effect.try({
        try: () => (siteId === undefined ? empty : work(siteId)),
        catch: unavailable(path, "corrupt"),
      });
    const write = <A>(
      operation: string,
      work: (siteId: number) => A,
    ): Effect.Effect<A, StateStoreWriteError> =>
      readOnly || siteId === undefined
        ? Effect.fail(new StateStoreReadOnly({ path, operation }))
        : Effect.try({
          try: () => work(siteId),
          catch: unavailable(path, "write-failed"),
        });
    const statements = yield* Effect.try({
      try: () => prepare(db),
      catch: unavailable(path, "corrupt"),
    });
    const nowIso = Clock.currentTimeMillis.pipe(
      Effect.map((millis) => new Date(millis).toISOString()),
    );
    /** Every entry in Moodle id order, decoded. */
    const eachEntry = (siteId: number, visit: (user: StoredUser) => void) => {
      // Pages by key, never the whole table as row objects at once; not
      // `iterate()`, which in Deno ends quietly on a damaged page.
      let after = -Infinity;
      for (;;) {
        const rows = statements.selectPage.all(siteId, after, pageSize);
        for (const row of rows) {
          const user = storedUserFromRow(decodeUserRow(row));
          visit(user);
          after = user.moodleId;
        }
        if (rows.length < pageSize) return;
      }
    };
    const markSuspended = (moodleId: number, at: string | null) =>
      write(
        `the ${
          at === null ? "lifted " : ""
        }suspension of Moodle user ${moodleId}`,
        (siteId) =>
          statements.setSuspended.run(at, siteId, moodleId).changes > 0,
      );
    return {
      path,
      pair,
      status: site.status,
      readOnly,
      readAll: read((siteId) => {
        const entries = new Map<number, StoredUser>();
        eachEntry(siteId, (user) => entries.set(user.moodleId, user));
        return entries;
      }, new Map()),
      readLinks: read((siteId) => {
        const links = new Map<number, AccountLink>();
        eachEntry(siteId, ({ desiredHash: _, snapshot: __, ...link }) => {
          links.set(link.moodleId, link);
        });
        return links;
      }, new Map()),
      checkAll: read((siteId) => {
        let entries = 0;
        eachEntry(siteId, () => entries++);
        return entries;
      }, 0),
      lookup: (moodleId) =>
        read((siteId) => {
          const row = statements.selectOne.get(siteId, moodleId);
          return row === undefined
            ? undefined
            : storedUserFromRow(decodeUserRow(row));
        }, undefined),
      count: read(
        (siteId) =>
          Schema.decodeUnknownSync(CountRow)(statements.selectCount.get(siteId))
            .n,
        0,
      ),
      upsert: (entry) =>
        write(`the entry of Moodle user ${entry.moodleId}`, (siteId) => {
          statements.upsert.run(
            siteId,
            entry.moodleId,
            entry.forumId,
            entry.forumUsername,
            entry.desiredHash,
            entry.snapshot.name,
            entry.snapshot.location,
            entry.snapshot.bioExcerpt,
            entry.snapshot.email,
            entry.moodleUsername,
          );
        }),
      markFullListSeen: (moodleIds) =>
        Effect.flatMap(nowIso, (now) =>
          write("the full Moodle list", (siteId) => {
            const ids = JSON.stringify([...moodleIds]);
            return inTransaction(db, () => ({
              absent: Number(statements.countAbsence.run(siteId, ids).changes),
              present: Number(
                statements.countPresence.run(now, siteId, ids).changes,
              ),
            }));
          })),
      recordSuspended: (moodleId) =>
        Effect.flatMap(nowIso, (now) =>
          markSuspended(moodleId, now)),
      clearSuspended: (moodleId) => markSuspended(moodleId, null),
      forget: (moodleId) =>
        write(
          `the removal of Moodle user ${moodleId}`,
          (siteId) => statements.remove.run(siteId, moodleId).changes > 0,
        ),
      invalidate: (moodleId) =>
        write(
          `the reset of Moodle user ${moodleId}'s entry`,
          (siteId) => statements.invalidate.run(siteId, moodleId).changes > 0,
        ),
    } satisfies StateStoreService;
  });

/** The state store of one (Moodle endpoint, Discourse URL) pair. */
export class StateStore extends Context.Tag("StateStore")<
  StateStore,
  StateStoreService
>() {
  static readonly make = make;
  static readonly layer = (
    options: StateStoreOptions,
  ): Layer.Layer<StateStore, StateStoreUnavailable> =>
    Layer.scoped(StateStore, make(options));
}
