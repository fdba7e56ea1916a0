import { Schema } from "effect";

/**
 * How a field is synced: `overwrite` makes Discourse equal Moodle,
 * `fill-empty` writes only where Discourse holds nothing, `off` never writes.
 */
export const FieldPolicy = Schema.Literal("overwrite", "fill-empty", "off");
export type FieldPolicy = typeof FieldPolicy.Type;

export const SyncedField = Schema.Literal("name", "location", "bio", "email");
export type SyncedField = typeof SyncedField.Type;
export const syncedFields: ReadonlyArray<SyncedField> = [
  "name",
  "location",
  "bio",
  "email",
];
