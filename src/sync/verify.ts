/** After a write: does Discourse hold what was sent? Pure. */
import type { DiscourseUser } from "../discourse/schema.ts";
import type { SyncedField } from "../domain/fields.ts";
import { type FieldChange, sameValue } from "./diff.ts";

export interface Mismatch {
  readonly field: SyncedField;
  readonly expected: string;
  readonly actual: string;
}

/**
 * The written fields Discourse did not store as sent, which is how a silently
 * ignored field shows. Email is not checked: Discourse changes it only once
 * the user confirms the new address.
 */
export function verifyProfile(
  changes: ReadonlyArray<FieldChange>,
  stored: DiscourseUser,
): ReadonlyArray<Mismatch> {
  const storedValues: { readonly [F in SyncedField]?: string } = {
    name: stored.name,
    location: stored.location,
    bio: stored.bio_raw,
  };
  const mismatches: Array<Mismatch> = [];
  for (const { field, after } of changes) {
    const actual = storedValues[field];
    if (actual !== undefined && !sameValue(field, after, actual)) {
      mismatches.push({ field, expected: after, actual });
    }
  }
  return mismatches;
}
