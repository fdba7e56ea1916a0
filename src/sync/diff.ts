/** Desired x current x field policies -> what this run would write. Pure. */
import {
  type FieldPolicy,
  type SyncedField,
  syncedFields,
} from "../domain/fields.ts";
import type { DesiredProfile } from "./profile.ts";

/** What Discourse holds now; blank fields as "". */
export interface CurrentProfile {
  readonly name: string;
  readonly location: string;
  readonly bio: string;
  readonly email: string;
  /** Addresses awaiting the user's confirmation (`unconfirmed_emails`). */
  readonly pendingEmails: ReadonlyArray<string>;
}

/** Which fields the site lets the API change for this user. */
export interface Editability {
  readonly name: boolean;
  readonly location: boolean;
  readonly bio: boolean;
  readonly email: boolean;
}

export interface FieldChange {
  readonly field: SyncedField;
  readonly before: string;
  readonly after: string;
}

export interface SkippedField {
  readonly field: SyncedField;
  readonly reason: string;
}

export interface Plan {
  /** In the order name, location, bio, email. */
  readonly changes: ReadonlyArray<FieldChange>;
  /** Not writable, or the email change is already pending. */
  readonly skipped: ReadonlyArray<SkippedField>;
}

export type Policies = { readonly [F in SyncedField]: FieldPolicy };

const comparable = (field: SyncedField, value: string): string => {
  const trimmed = value.trim();
  switch (field) {
    case "bio":
      return trimmed.replace(/\r\n?/g, "\n");
    case "email":
      return trimmed.toLowerCase();
    default:
      return trimmed;
  }
};

/**
 * Whether two values of `field` mean the same: surrounding whitespace never
 * matters, line endings do not in a bio, case does not in an email.
 */
export function sameValue(field: SyncedField, a: string, b: string): boolean {
  return comparable(field, a) === comparable(field, b);
}

/** A change `--force-recreate` re-sends although Discourse already holds it. */
export const isResend = (change: FieldChange): boolean =>
  sameValue(change.field, change.before, change.after);

const isBlank = (value: string): boolean => value.trim() === "";

/** Why a field the site does not let the API write is left alone. */
export const notEditableReasons: { readonly [F in SyncedField]: string } = {
  name:
    "site does not allow name edits (can_edit_name is false: names disabled or auth_overrides_name)",
  location:
    "DiscourseConnect overrides location (can_change_location is false)",
  bio: "DiscourseConnect overrides bio (can_change_bio is false)",
  email: "email is managed by DiscourseConnect",
};

/**
 * Whether `field` would be written. `force` (the --force-recreate repair)
 * rewrites enabled fields even when Discourse already holds Moodle's value,
 * but never widens a policy: `fill-empty` still leaves a different, non-empty
 * Discourse value alone, and no field is written with an empty Moodle value
 * unless the policy would have cleared it anyway.
 */
const wantsWrite = (
  field: SyncedField,
  policy: FieldPolicy,
  desired: string,
  current: string,
  force: boolean,
): boolean => {
  const equal = sameValue(field, desired, current);
  if (policy === "off") return false;
  // Moodle hiding or lacking an email is no reason to erase Discourse's.
  if (field === "email" && isBlank(desired)) return false;
  // Resending a confirmation for the address Discourse already has is pointless.
  if (field === "email" && equal) return false;
  if (force && equal && !isBlank(desired)) return true;
  if (equal) return false;
  return policy === "overwrite" || (isBlank(current) && !isBlank(desired));
};

const isPending = (email: string, pending: ReadonlyArray<string>): boolean =>
  pending.some((address) => sameValue("email", address, email));

export function diffProfile(
  desired: DesiredProfile,
  current: CurrentProfile,
  policies: Policies,
  editable: Editability,
  options: { readonly force: boolean },
): Plan {
  const changes: Array<FieldChange> = [];
  const skipped: Array<SkippedField> = [];
  for (const field of syncedFields) {
    const after = desired[field];
    const before = current[field];
    if (!wantsWrite(field, policies[field], after, before, options.force)) {
      continue;
    }
    if (!editable[field]) {
      skipped.push({ field, reason: notEditableReasons[field] });
    } else if (
      field === "email" && !options.force &&
      isPending(after, current.pendingEmails)
    ) {
      skipped.push({
        field,
        reason:
          `change to ${after.trim()} already awaiting the user's confirmation`,
      });
    } else {
      changes.push({ field, before, after });
    }
  }
  return { changes, skipped };
}
