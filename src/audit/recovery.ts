/**
 * Recovery from the journal: before a run writes anything, the intents an
 * earlier run left open (its write sent, its row never logged) are checked
 * against the forum and logged as what the forum holds.
 */
import * as FileSystem from "@effect/platform/FileSystem";
import { Clock, Effect, Either, Option, Schema } from "effect";
import { Discourse, type DiscourseError } from "../discourse/Discourse.ts";
import { isSuspendedNow } from "../leavers/plan.ts";
import { sameValue } from "../sync/diff.ts";
import { type AuditEntry, AuditLog, AuditLogError } from "./AuditLog.ts";
import { type IntentEntry, JournalLine, journalPath } from "./journalLines.ts";

/** An intent of an earlier run that never got its row. */
interface Unfinished {
  readonly journal: string;
  readonly entry: IntentEntry;
}

/** Reads a journal: its intents without a `done`, and lines it cannot read. */
const unfinishedIntents = (
  journal: string,
  text: string,
  forum: string,
): {
  readonly unfinished: ReadonlyArray<Unfinished>;
  /**
   * Whether this forum's run wrote it: another forum's journal (or one whose
   * first line is still being written) is left to a run on that forum.
   */
  readonly ours: boolean;
} => {
  const intents = new Map<number, Unfinished>();
  let ours = false;
  let otherForum = false;
  for (const raw of text.split("\n")) {
    if (raw.trim() === "") continue;
    const line = Schema.decodeUnknownEither(JournalLine)(raw);
    if (Either.isLeft(line)) {
      // A run killed mid-append leaves half a line: that intent was never
      // complete on disk, so its write was never sent.
      continue;
    }
    const value = line.right;
    if ("done" in value) intents.delete(value.done);
    else if (value.forum !== forum) otherForum = true;
    else {
      ours = true;
      intents.set(value.intent, { journal, entry: value.entry });
    }
  }
  return { unfinished: [...intents.values()], ours: ours && !otherForum };
};

type IntentField = IntentEntry["fields"][number];

/** Whether a membership change arrived: the member is in (or out of) the group. */
const membershipLanded = (entry: IntentEntry) =>
  Effect.gen(function* () {
    const discourse = yield* Discourse;
    const adding = entry.action === "GROUP_ADD";
    const group = String(
      (adding ? entry.after.group : entry.before.group) ?? "",
    );
    const { members } = yield* discourse.groupMembers(group).pipe(
      Effect.catchTag(
        "DiscourseNotFound",
        () => Effect.succeed({ members: [] }),
      ),
    );
    const member = members.some((name) =>
      name.toLowerCase() === entry.normalizedUsername.toLowerCase()
    );
    return Option.some<ReadonlyArray<IntentField>>(
      member === adding ? ["group"] : [],
    );
  });

/** What the forum holds now, for the fields an intent was writing. */
const currentValues = (entry: IntentEntry) =>
  Effect.gen(function* () {
    if (entry.action === "GROUP_ADD" || entry.action === "GROUP_REMOVE") {
      return yield* membershipLanded(entry);
    }
    const discourse = yield* Discourse;
    const found = yield* discourse.userByUsername(entry.normalizedUsername);
    if (Option.isNone(found)) return Option.none();
    const user = found.value;
    const emails = entry.fields.includes("email")
      ? yield* discourse.emails(user.username)
      : undefined;
    const now = new Date(yield* Clock.currentTimeMillis);
    const landed = (field: IntentField): boolean => {
      const after = String(entry.after[field] ?? "");
      switch (field) {
        case "group":
          return false;
        case "suspended":
          return String(
            isSuspendedNow(
              { suspendedTill: user.suspended_till ?? undefined },
              now,
            ),
          ) === after;
        case "name":
          return sameValue(field, user.name, after);
        case "location":
          return sameValue(field, user.location, after);
        case "bio":
          return sameValue(field, user.bio_raw, after);
        case "email":
          // An email change waits for the user's click: asked is landed.
          return emails !== undefined &&
            [emails.email, ...emails.unconfirmed_emails].some((address) =>
              sameValue("email", address, after)
            );
      }
    };
    return Option.some<ReadonlyArray<IntentField>>(
      entry.fields.filter(landed),
    );
  });

/** The row that says what an unfinished intent left in the forum. */
const recoveredEntry = (
  item: Unfinished,
  landed: Option.Option<ReadonlyArray<IntentField>>,
): AuditEntry => {
  const { entry } = item;
  const journalName = item.journal.split(/[\\/]/).pop() ?? item.journal;
  const head = `recovered from ${journalName}: that run stopped while writing ${
    entry.fields.join(", ")
  } and never logged it; checked on restart`;
  const only = (fields: ReadonlyArray<IntentField>) => ({
    fields,
    before: Object.fromEntries(fields.map((f) => [f, entry.before[f] ?? ""])),
    after: Object.fromEntries(fields.map((f) => [f, entry.after[f] ?? ""])),
  });
  const base = {
    originalUsername: entry.originalUsername,
    normalizedUsername: entry.normalizedUsername,
    fullname: entry.fullname,
    email: entry.email,
    location: entry.location,
    moodleId: entry.moodleId ?? undefined,
  };
  if (Option.isNone(landed)) {
    return {
      ...base,
      ...only([]),
      action: entry.action === "CREATE" ? "CREATE" : "ERROR",
      status: entry.action === "CREATE" ? "SKIPPED" : "ERROR",
      message:
        `${head}: the forum has no account "${entry.normalizedUsername}"${
          entry.action === "CREATE"
            ? ", so it was not created"
            : " any more (deleted or renamed since), so what arrived cannot be checked"
        }`,
    };
  }
  const fields = landed.value;
  const missing = entry.fields.filter((f) => !fields.includes(f));
  if (fields.length === 0) {
    return {
      ...base,
      ...only([]),
      action: entry.action,
      status: "SKIPPED",
      message: `${head}: the forum holds none of it, so it never arrived`,
    };
  }
  return {
    ...base,
    ...only(fields),
    action: entry.action,
    // Partly arrived: an error row that still lists what was written, so
    // `revert` can put it back.
    status: missing.length === 0 ? "SUCCESS" : "ERROR",
    message: `${head}: the forum holds ${fields.join(", ")} as written${
      missing.length > 0 ? `; ${missing.join(", ")} did not arrive` : ""
    }`,
  };
};

/**
 * Before a run writes anything: every unfinished intent an earlier run left
 * in the log folder, for this forum, is checked against the forum and logged
 * in this run's log; its journal is then retired. Returns the rows written.
 */
export const recoverUnfinishedWrites = (forum: string): Effect.Effect<
  ReadonlyArray<AuditEntry>,
  AuditLogError | DiscourseError,
  AuditLog | Discourse | FileSystem.FileSystem
> =>
  Effect.gen(function* () {
    const fs = yield* FileSystem.FileSystem;
    const audit = yield* AuditLog;
    const dir = audit.path.replace(/[\\/][^\\/]*$/, "") || ".";
    const own = journalPath(audit.path);
    const names = yield* fs.readDirectory(dir).pipe(
      Effect.orElseSucceed((): ReadonlyArray<string> => []),
    );
    const recovered: Array<AuditEntry> = [];
    for (const name of [...names].sort()) {
      const path = `${dir}/${name}`;
      if (!name.endsWith(".journal") || path === own) continue;
      const text = yield* fs.readFileString(path).pipe(
        Effect.mapError((error) =>
          new AuditLogError({
            path,
            reason:
              `an earlier run's journal cannot be read (${error.message}); its writes must be checked before this run writes`,
          })
        ),
      );
      const { unfinished, ours } = unfinishedIntents(path, text, forum);
      if (!ours) continue;
      for (const item of unfinished) {
        const entry = recoveredEntry(item, yield* currentValues(item.entry));
        yield* audit.record(entry);
        recovered.push(entry);
      }
      // Every row above is on disk (sealed logs are fsync'd row by row).
      yield* fs.remove(path).pipe(
        Effect.mapError((error) =>
          new AuditLogError({ path, reason: error.message })
        ),
      );
    }
    return recovered;
  });
