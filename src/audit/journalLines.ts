/**
 * The journal's lines, one JSON object each: an intent (the forum, the log
 * and the entry about to be written) or the `done` that closes it. One
 * format for the writer (Journal.ts) and the reader (recovery.ts).
 */
import { Schema } from "effect";
import { syncedFields } from "../domain/fields.ts";
import type { AuditEntry } from "./AuditLog.ts";

/** The actions whose writes are journalled; other rows write nothing. */
const journalledActions = [
  "CREATE",
  "UPDATE",
  "GROUP_ADD",
  "GROUP_REMOVE",
  "SUSPEND",
  "UNSUSPEND",
] as const;
export const journalledAction = (
  action: AuditEntry["action"],
): (typeof journalledActions)[number] =>
  action === "EXCLUDE" || action === "ERROR" ? "UPDATE" : action;

export const IntentEntry = Schema.Struct({
  originalUsername: Schema.String,
  normalizedUsername: Schema.String,
  fullname: Schema.String,
  email: Schema.String,
  location: Schema.String,
  moodleId: Schema.NullOr(Schema.Int),
  action: Schema.Literal(...journalledActions),
  fields: Schema.Array(Schema.Literal(...syncedFields, "group", "suspended")),
  // Text, or a suspension's true/false.
  before: Schema.Record({
    key: Schema.String,
    value: Schema.Union(Schema.String, Schema.Boolean),
  }),
  after: Schema.Record({
    key: Schema.String,
    value: Schema.Union(Schema.String, Schema.Boolean),
  }),
});
export type IntentEntry = typeof IntentEntry.Type;

const IntentLine = Schema.Struct({
  intent: Schema.Int,
  forum: Schema.String,
  log: Schema.String,
  entry: IntentEntry,
});
const DoneLine = Schema.Struct({ done: Schema.Int });
export const JournalLine = Schema.parseJson(Schema.Union(IntentLine, DoneLine));

export const journalPath = (logPath: string): string => `${logPath}.journal`;
