/**
 * Opening the state store's file: the site pair it is keyed by, the file's
 * mode, its schema version and migrations, and which pairs it already holds.
 */
import { dirname, join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { Data, Schema } from "effect";
import { forumKey } from "../lock.ts";
import { StateStoreUnavailable } from "./errors.ts";
import {
  currentSchemaVersion,
  migrations,
  SiteRow,
  VersionRow,
} from "./schema.ts";

/** `sync-state.sqlite` in the settings file's folder. */
export const defaultStatePath = (settingsPath: string): string =>
  join(dirname(settingsPath), "sync-state.sqlite");

/** The pair a store's data belongs to, spelled one way however it was typed. */
export interface SitePair {
  readonly moodleEndpoint: string;
  readonly discourseUrl: string;
}

/** Scheme, case-folded host and path without trailing slashes, for both. */
export const sitePair = (
  moodleEndpoint: string,
  discourseUrl: string,
): SitePair => ({
  moodleEndpoint: forumKey(moodleEndpoint),
  discourseUrl: forumKey(discourseUrl),
});

/** What the file held for this pair when it was opened. */
export type SiteStatus = Data.TaggedEnum<{
  /** This pair's data is here. */
  Known: Record<never, never>;
  /** Nothing for any pair yet: a new store. */
  Fresh: Record<never, never>;
  /** Only other pairs' data: this pair starts empty and theirs is ignored. */
  OtherPairs: { readonly pairs: ReadonlyArray<SitePair> };
}>;
export const SiteStatus = Data.taggedEnum<SiteStatus>();

export interface StateStoreOptions {
  readonly path: string;
  readonly moodleEndpoint: string;
  readonly discourseUrl: string;
  /** A dry-run's store: read, never changed, never created. */
  readonly readOnly?: boolean;
  /** How long to wait for another process's transaction. */
  readonly busyTimeoutMs?: number;
}

/** Runs `work` in one transaction, rolled back if it throws. */
export const inTransaction = <A>(db: DatabaseSync, work: () => A): A => {
  // IMMEDIATE takes the write lock up front, so a concurrent writer waits
  // for the busy timeout instead of failing halfway through.
  db.exec("BEGIN IMMEDIATE");
  try {
    const result = work();
    db.exec("COMMIT");
    return result;
  } catch (error) {
    if (db.isTransaction) db.exec("ROLLBACK");
    throw error;
  }
};

const fileExists = (path: string): boolean => {
  try {
    Deno.statSync(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
};

/** Profiles and e-mail addresses: readable by this user alone. */
const createPrivateFile = (path: string): void => {
  try {
    Deno.openSync(path, { write: true, createNew: true, mode: 0o600 }).close();
  } catch (error) {
    // Another run created it a moment ago: its mode is already set.
    if (error instanceof Deno.errors.AlreadyExists) return;
    throw error;
  }
  // The umask may have narrowed the mode; SQLite gives its -wal and -shm
  // files the database's mode, so this one setting covers all three.
  if (Deno.build.os !== "windows") Deno.chmodSync(path, 0o600);
};

const schemaVersion = (db: DatabaseSync, path: string): number => {
  const tables = db.prepare(
    "SELECT name FROM sqlite_master WHERE type = 'table'",
  ).all();
  if (tables.length === 0) return 0;
  if (!tables.some((table) => table.name === "schema_version")) {
    throw new StateStoreUnavailable({
      path,
      reason: "not-a-store",
      detail: "it is SQLite but has no schema_version table",
    });
  }
  return Schema.decodeUnknownSync(VersionRow)(
    db.prepare("SELECT version FROM schema_version").get(),
  ).version;
};

const migrate = (db: DatabaseSync, path: string): void =>
  inTransaction(db, () => {
    // Read again under the lock: another process may have migrated meanwhile.
    for (
      let from = schemaVersion(db, path);
      from < currentSchemaVersion;
      from++
    ) {
      db.exec(migrations[from]);
      db.prepare("UPDATE schema_version SET version = ?").run(from + 1);
    }
  });

const findSite = (
  db: DatabaseSync,
  pair: SitePair,
  readOnly: boolean,
): { readonly id: number | undefined; readonly status: SiteStatus } => {
  const sites = db.prepare(
    "SELECT id, moodle_endpoint, discourse_url FROM sites",
  ).all().map((row) => Schema.decodeUnknownSync(SiteRow)(row));
  const mine = sites.find((site) =>
    site.moodle_endpoint === pair.moodleEndpoint &&
    site.discourse_url === pair.discourseUrl
  );
  if (mine !== undefined) return { id: mine.id, status: SiteStatus.Known() };
  const status = sites.length === 0
    ? SiteStatus.Fresh()
    : SiteStatus.OtherPairs({
      pairs: sites.map((site) => ({
        moodleEndpoint: site.moodle_endpoint,
        discourseUrl: site.discourse_url,
      })),
    });
  if (readOnly) return { id: undefined, status };
  const id = inTransaction(db, () => {
    db.prepare(
      `INSERT OR IGNORE INTO sites (moodle_endpoint, discourse_url, first_used_at)
       VALUES (?, ?, ?)`,
    ).run(pair.moodleEndpoint, pair.discourseUrl, new Date().toISOString());
    return Schema.decodeUnknownSync(SiteRow)(
      db.prepare(
        `SELECT id, moodle_endpoint, discourse_url FROM sites
         WHERE moodle_endpoint = ? AND discourse_url = ?`,
      ).get(pair.moodleEndpoint, pair.discourseUrl),
    ).id;
  });
  return { id, status };
};

export const openDatabase = (options: StateStoreOptions, pair: SitePair) => {
  const { path } = options;
  const readOnly = options.readOnly ?? false;
  if (!fileExists(path)) {
    if (readOnly) {
      throw new StateStoreUnavailable({ path, reason: "missing", detail: "" });
    }
    createPrivateFile(path);
  }
  const db = new DatabaseSync(path, {
    readOnly,
    timeout: options.busyTimeoutMs ?? 5000,
  });
  try {
    // Before anything that writes: a file that is not ours stays untouched.
    const version = schemaVersion(db, path);
    const found =
      `schema ${version}, this version reads up to ${currentSchemaVersion}`;
    if (version > currentSchemaVersion) {
      throw new StateStoreUnavailable({ path, reason: "newer", detail: found });
    }
    if (version < currentSchemaVersion && readOnly) {
      throw new StateStoreUnavailable({ path, reason: "older", detail: found });
    }
    if (!readOnly) {
      // WAL: readers (a dry-run) never block the writer. NORMAL sync in WAL
      // may lose the last commits on power loss but never corrupts the file.
      db.exec("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL");
      if (version < currentSchemaVersion) migrate(db, path);
    }
    return { db, site: findSite(db, pair, readOnly) };
  } catch (error) {
    db.close();
    throw error;
  }
};
