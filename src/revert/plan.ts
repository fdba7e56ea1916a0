/**
 * Which fields of a reverted row go back, decided from what the forum holds
 * now. Pure.
 */
import {
  type DiscourseUser,
  editableFields,
  heldValues,
} from "../discourse/schema.ts";
import {
  type FieldChange,
  sameValue,
  type SkippedField,
} from "../sync/diff.ts";
import type { RevertTarget } from "./readLog.ts";

/** What to do for one row, decided from the forum's current values. Pure. */
export interface RevertPlan {
  readonly changes: ReadonlyArray<FieldChange>;
  readonly skipped: ReadonlyArray<SkippedField>;
  /** Said in the row, not a reason to skip: e.g. an unconfirmed email. */
  readonly notes: ReadonlyArray<string>;
}

export const shown = (value: string) =>
  JSON.stringify(value.length > 60 ? `${value.slice(0, 60)}…` : value);

/**
 * Which fields go back. A field goes back only while Discourse still holds
 * the row's `after`. Email is special: Discourse changes it only when the
 * user clicks the confirmation link, so an unconfirmed change has nothing to
 * undo, and asking again would mail the user about a change they never made.
 */
export const planRevert = (
  target: RevertTarget,
  current: {
    readonly user: DiscourseUser;
    /** Primary email; undefined when the row changed no email. */
    readonly email: string | undefined;
  },
): RevertPlan => {
  const changes: Array<FieldChange> = [];
  const skipped: Array<SkippedField> = [];
  const notes: Array<string> = [];
  const values = heldValues(current.user, current.email ?? "");
  const editable = editableFields(current.user);
  for (const field of target.fields) {
    const before = target.before[field];
    const after = target.after[field];
    const now = values[field];
    if (field === "email") {
      if (sameValue("email", now, before)) {
        notes.push(
          `email: the change to ${after} was never confirmed by the user, so Discourse still has ${now}; nothing to put back and no mail sent (the pending confirmation link expires on its own)`,
        );
        continue;
      }
      if (!sameValue("email", now, after)) {
        skipped.push({
          field,
          reason: `changed since the sync (now ${shown(now)}): left alone`,
        });
        continue;
      }
      changes.push({ field, before: now, after: before });
      notes.push(
        `email: the user confirmed ${after}; a confirmation link goes to ${before} and the change back happens when they click it`,
      );
      continue;
    }
    if (!sameValue(field, now, after)) {
      skipped.push({
        field,
        reason: sameValue(field, now, before)
          ? "already holds the value from before the sync"
          : `changed since the sync (now ${shown(now)}): left alone`,
      });
      continue;
    }
    if (!editable[field]) {
      skipped.push({
        field,
        reason: "the site no longer lets the API change it",
      });
      continue;
    }
    changes.push({ field, before: now, after: before });
  }
  return { changes, skipped, notes };
};
