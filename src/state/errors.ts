/** Why the state store cannot be used, worded for the operator. */
import { Data } from "effect";

export type UnavailableReason =
  /** A read-only open (a dry-run) found no file: it never creates one. */
  | "missing"
  /** Not SQLite, or SQLite without this tool's tables. */
  | "not-a-store"
  | "corrupt"
  /** Written by a newer version of this tool. */
  | "newer"
  /** Needs a schema upgrade, which a read-only open does not make. */
  | "older"
  /** Another process holds it past the busy timeout. */
  | "locked"
  | "cannot-open"
  | "write-failed";

const whatAndFix: Record<
  UnavailableReason,
  readonly [what: string, fix: string]
> = {
  "missing": [
    "does not exist yet",
    "a dry-run never creates it; the first --apply run does",
  ],
  "not-a-store": [
    "is not a state store of this tool",
    "move it away or choose another file: the next --apply run starts a new store",
  ],
  "corrupt": [
    "is damaged",
    "move it away: the next --apply run builds a new one from a full read",
  ],
  "newer": [
    "was written by a newer version of this tool",
    "run that version, or choose another state file",
  ],
  "older": [
    "needs an upgrade that a dry-run does not make",
    "the next --apply run upgrades it",
  ],
  "locked": [
    "is locked by another process",
    "wait for the other run to finish; a store shared by several forums is only held for moments",
  ],
  "cannot-open": [
    "cannot be opened",
    "check that its folder exists and this user may read and write there",
  ],
  "write-failed": [
    "cannot be written",
    "check the free disk space and that this user may write its folder",
  ],
};

/**
 * The store cannot be read or written. Never fatal: the engine says so and
 * reads every profile instead, as a run without a store does.
 */
export class StateStoreUnavailable extends Data.TaggedError(
  "StateStoreUnavailable",
)<{
  readonly path: string;
  readonly reason: UnavailableReason;
  readonly detail: string;
}> {
  override get message(): string {
    const [what, fix] = whatAndFix[this.reason];
    const detail = this.detail === "" ? "" : ` (${this.detail})`;
    return `The state store ${this.path} ${what}${detail}: ${fix}.`;
  }
}

/** A write was asked of a store opened read-only (a dry-run); nothing changed. */
export class StateStoreReadOnly extends Data.TaggedError("StateStoreReadOnly")<{
  readonly path: string;
  readonly operation: string;
}> {
  override get message(): string {
    return `The state store ${this.path} is open read-only (a dry-run); ` +
      `${this.operation} was not recorded.`;
  }
}

export type StateStoreWriteError = StateStoreUnavailable | StateStoreReadOnly;

const sqliteCode = (error: unknown): number | undefined =>
  typeof error === "object" && error !== null && "errcode" in error &&
    typeof error.errcode === "number"
    ? error.errcode & 0xff // the primary code; extended codes refine it
    : undefined;

/** SQLite's primary result codes that say what went wrong for the operator. */
const reasonByCode: ReadonlyMap<number, UnavailableReason> = new Map([
  [5, "locked"], // SQLITE_BUSY
  [6, "locked"], // SQLITE_LOCKED
  [11, "corrupt"], // SQLITE_CORRUPT
  [26, "not-a-store"], // SQLITE_NOTADB
  [14, "cannot-open"], // SQLITE_CANTOPEN
  [23, "cannot-open"], // SQLITE_AUTH
  [8, "write-failed"], // SQLITE_READONLY
  [10, "write-failed"], // SQLITE_IOERR
  [13, "write-failed"], // SQLITE_FULL
]);

/** Turns whatever SQLite or the file system threw into the typed error. */
export const unavailable = (
  path: string,
  fallback: UnavailableReason,
) =>
(error: unknown): StateStoreUnavailable => {
  if (error instanceof StateStoreUnavailable) return error;
  const code = sqliteCode(error);
  const reason = (code === undefined ? undefined : reasonByCode.get(code)) ??
    (error instanceof Deno.errors.PermissionDenied ? "cannot-open" : fallback);
  const detail = error instanceof Error ? error.message : String(error);
  return new StateStoreUnavailable({ path, reason, detail });
};
